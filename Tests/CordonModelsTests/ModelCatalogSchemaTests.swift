import Foundation
import Testing
@testable import CordonModels

/// docs/models.schema.json, the JSON Schema of models.toml for editors: it agrees with the parser
/// on the shipped example and on a corpus of files, valid and broken in every way a schema can
/// see (Python's jsonschema and tomllib judge the schema side, with the policy schema's script).
struct ModelCatalogSchemaTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static let provider = "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"\n"
    static let model = "[[model]]\nname = \"m\"\nprovider = \"p\"\n"
    static let local = """
        [[provider]]
        name = "llama"
        kind = "local"
        command = ["/opt/cordon/llama/bin/python3", "-m", "llama_cpp.server", "--model", "{model_file}", "--port", "{port}"]
        model_file = "/srv/models/tiny.gguf"
        memory = "2G"
        keep_alive = "5m"
        preload = true
        service = { health_interval = "30s", max_restarts = 5, backoff = "200ms" }

        """

    /// (name, text, the parser accepts it): the schema must say the same.
    static let corpus: [(String, String, Bool)] = [
        ("minimal", provider + model, true),
        ("issue-example", provider + "\n[[model]]\nname = \"small\"\nprovider = \"p\"\nupstream = \"qwen2.5-0.5b\"\ntask_types = [\"chat\"]\n\n[endpoint]\nlisten = \"127.0.0.1:8089\"\ntokens = \"/etc/cordon/endpoint-tokens\"\n", true),
        ("local", local + "[[model]]\nname = \"local\"\nprovider = \"llama\"\n\n[local]\nmax_loaded = 2\n", true),
        ("everything-on-a-model", provider + "[[provider]]\nname = \"a\"\nkind = \"anthropic\"\napi_key_file = \"/etc/cordon/keys/a\"\n"
         + "[[model]]\nname = \"m:1.5\"\nprovider = \"p\"\ncontext_length = 32768\nmax_output_tokens = 1024\ntools = true\nprice_input = 0.5\nprice_output = 1.5\n"
         + "task_types = [\"chat\", \"code\"]\nfallbacks = [\"c\"]\naccess = { users = [\"alice\", \"1001\"], groups = [\"agents\"] }\nbreaker = { failures = 3, cooldown = \"10s\" }\n"
         + "[[model]]\nname = \"c\"\nprovider = \"a\"\n[selector]\nsuccess = 0.5\nlatency = 0.25\ncost = 0.25\nlatency_reference = \"2s\"\ndiscount = 0.95\nchange_threshold = 5\nexploration = 0.05\n"
         + "[breaker]\nfailure_ratio = 0.4\nmin_calls = 20\nwindow = \"2m\"\n", true),
        ("unknown-table", provider + model + "[selecter]\nsuccess = 1\n", false),
        ("unknown-provider-key", provider + "base_ur = \"x\"\n" + model, false),
        ("unknown-kind", "[[provider]]\nname = \"p\"\nkind = \"azure\"\nbase_url = \"https://x.example/v1\"\n" + model, false),
        ("openai-without-base-url", "[[provider]]\nname = \"p\"\nkind = \"openai\"\n" + model, false),
        ("local-without-model-file", "[[provider]]\nname = \"l\"\nkind = \"local\"\ncommand = [\"/bin/s\"]\n", false),
        ("local-key-on-openai", provider + "command = [\"/bin/s\"]\n" + model, false),
        ("local-with-key", local + "api_key_file = \"/k\"\n", false),
        ("local-off-loopback", "[[provider]]\nname = \"l\"\nkind = \"local\"\nbase_url = \"http://10.0.0.1:8080/v1\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/m\"\n", false),
        ("local-memory-too-small", local.replacingOccurrences(of: "memory = \"2G\"", with: "memory = 1024"), false),
        ("local-unknown-service-key", local.replacingOccurrences(of: "max_restarts = 5", with: "max_instances = 5"), false),
        ("model-named-auto", provider + "[[model]]\nname = \"auto\"\nprovider = \"p\"\n", false),
        ("model-without-provider", provider + "[[model]]\nname = \"m\"\n", false),
        ("concurrency-zero", provider + "max_concurrency = 0\n" + model, false),
        ("bad-task-type", provider + model + "task_types = [\"has space\"]\n", false),
        ("too-much-exploration", provider + model + "[selector]\nexploration = 0.9\n", false),
        ("negative-change-threshold", provider + model + "[selector]\nchange_threshold = -1\n", false),
        ("change-threshold-one-call-tips", provider + model + "[selector]\nchange_threshold = 3\n", false),
        ("change-threshold-off", provider + model + "[selector]\nchange_threshold = 0\n", true),
        ("endpoint-beyond-loopback", provider + model + "[endpoint]\nlisten = \"0.0.0.0:8089\"\ntokens = \"/t\"\n", false),
        ("endpoint-without-tokens", provider + model + "[endpoint]\nlisten = \"127.0.0.1:8089\"\n", false),
        ("bad-max-tokens-field", provider + model + "max_tokens_field = \"max_output\"\n", false),
        ("provider-not-a-table-array", "provider = \"p\"\n", false),
    ]

    /// What no JSON Schema here says: valid to the schema, errors to the parser (references
    /// between tables, sums, one key against another).
    static let parserOnly: [(String, String)] = [
        ("fallback-to-nothing", provider + model + "fallbacks = [\"nowhere\"]\n"),
        ("provider-unknown", provider + "[[model]]\nname = \"m\"\nprovider = \"q\"\n"),
        ("weights-not-summing-to-one", provider + model + "[selector]\nsuccess = 0.9\nlatency = 0.9\ncost = 0.9\n"),
        ("output-fills-the-context", provider + model + "context_length = 1024\nmax_output_tokens = 1024\n"),
        ("duplicate-model", provider + model + model),
        ("more-preloaded-than-loaded", local + local.replacingOccurrences(of: "name = \"llama\"", with: "name = \"llama2\"") + "[[model]]\nname = \"m\"\nprovider = \"llama\"\n"),
    ]

    static func verdicts(_ files: [String]) throws -> [String: String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["\(repo)/Tests/CordonPolicyTests/schema_verdicts.py", "\(repo)/docs/models.schema.json"] + files
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "python3 with jsonschema is needed (make deps)")
        var out: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    @Test func agreesWithTheParserOnTheExampleAndTheCorpus() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-models-schema-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var cases: [(path: String, text: String, parserValid: Bool, parserOnly: Bool)] = []
        let example = "\(Self.repo)/packaging/models.toml"
        cases.append((example, try String(contentsOfFile: example, encoding: .utf8), true, false))
        for (name, text, valid) in Self.corpus {
            try text.write(toFile: "\(dir)/\(name).toml", atomically: true, encoding: .utf8)
            cases.append(("\(dir)/\(name).toml", text, valid, false))
        }
        for (name, text) in Self.parserOnly {
            try text.write(toFile: "\(dir)/\(name).toml", atomically: true, encoding: .utf8)
            cases.append(("\(dir)/\(name).toml", text, false, true))
        }
        let verdicts = try Self.verdicts(cases.map(\.path))
        #expect(verdicts.count == cases.count)
        for c in cases {
            let name = URL(fileURLWithPath: c.path).lastPathComponent
            let parsed = Result { () throws -> ModelCatalog in try ModelCatalogParser.parse(text: c.text, source: name) }
            var parserValid = false
            if case .success = parsed { parserValid = true }
            #expect(parserValid == c.parserValid, "\(name): the parser says \(parsed)")
            let schema = verdicts[c.path] ?? "missing"
            #expect((schema == "valid") == (c.parserValid || c.parserOnly), "\(name): schema \(schema), parser valid \(parserValid)")
        }
    }
}
