import CordonModels
import CordonPolicy
import Foundation
import Testing

@Suite struct ModelCatalogParserTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func parse(_ text: String) throws(PolicyError) -> ModelCatalog { try ModelCatalogParser.parse(text: text, source: "/etc/cordon/models.toml") }

    /// The problems `text` gets, as "key.path: message".
    func problems(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch { return error.diagnostics.map { "\($0.keyPath): \($0.message)" } }
    }

    /// The issue's smallest useful catalogue.
    @Test func theSmallestCatalogueReads() throws {
        let c = try parse("""
            [[provider]]
            name = "local-vllm"
            kind = "openai"
            base_url = "http://127.0.0.1:8000/v1"

            [[model]]
            name = "small"
            provider = "local-vllm"
            upstream = "qwen2.5-0.5b"
            task_types = ["chat"]

            [endpoint]
            listen = "127.0.0.1:8089"
            tokens = "/etc/cordon/endpoint-tokens"
            """)
        let p = try #require(c.provider(named: "local-vllm"))
        #expect(p.kind == .openai && p.baseURL == ModelCatalog.BaseURL(scheme: "http", host: "127.0.0.1", port: 8000, path: "/v1"))
        #expect(p.policy == "model-worker" && p.apiKeyFile == nil && p.server == nil)
        let m = try #require(c.model(named: "small"))
        #expect(m.provider == "local-vllm" && m.upstream == "qwen2.5-0.5b" && m.taskTypes == ["chat"] && m.fallbacks.isEmpty)
        #expect(c.endpoint == ModelCatalog.Endpoint(host: "127.0.0.1", port: 8089, tokensFile: "/etc/cordon/endpoint-tokens"))
        #expect(c.selector == ModelCatalog.SelectorSettings() && c.maxLoaded == 1)
    }

    /// The example shipped in packaging/ reads, with every key it shows.
    @Test func theShippedExampleReads() throws {
        let path = "\(Self.repo)/packaging/models.toml"
        let c = try ModelCatalogParser.parse(text: try String(contentsOfFile: path, encoding: .utf8), source: path)
        #expect(c.providers.map(\.name) == ["local-vllm", "anthropic", "llama"])
        #expect(c.provider(named: "anthropic")?.baseURL.description == "https://api.anthropic.com/v1")
        #expect(c.provider(named: "anthropic")?.apiKeyFile == "/etc/cordon/keys/anthropic")
        let llama = try #require(c.provider(named: "llama")?.server)
        #expect(llama.command.contains("{model_file}") && llama.memoryBytes == 2 << 30 && llama.keepAliveSeconds == 300)
        #expect(llama.service.maxInstances == 1 && llama.service.concurrency == 1 && llama.service.idleTimeoutSeconds == 300)
        #expect(llama.service.healthIntervalSeconds == 30 && llama.service.maxRestarts == 5)
        #expect(c.provider(named: "llama")?.baseURL.port == 8080)
        #expect(c.models.map(\.name) == ["small", "claude", "local"])
        #expect(c.model(named: "claude")?.access?.groups == ["ml"] && c.model(named: "claude")?.tools == true)
        #expect(c.model(named: "claude")?.priceOutput == 0.015)
        #expect(c.taskTypes == ["chat", "code"])
        #expect(c.endpoint == nil)
        #expect(c.selector.discount == 0.98 && c.selector.changeThreshold == 7 && c.selector.exploration == 0.02)
    }

    @Test func theChangeThresholdIsReadAndZeroTurnsDetectionOff() throws {
        let base = "[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\n[selector]\n"
        #expect(try parse(base + "change_threshold = 4.5").selector.changeThreshold == 4.5)
        #expect(try parse(base + "change_threshold = 0").selector.changeThreshold == 0)
        #expect(try parse(base + "discount = 0.9").selector.changeThreshold == 7)
    }

    @Test func anOpenAIModelMaySpellItsCapMaxCompletionTokens() throws {
        let c = try parse("""
            [[provider]]
            name = "openai"
            kind = "openai"
            base_url = "https://api.openai.com/v1"
            [[model]]
            name = "o4"
            provider = "openai"
            max_tokens_field = "max_completion_tokens"
            """)
        #expect(c.model(named: "o4")?.maxTokensField == .maxCompletionTokens)
    }

    @Test func aModelsOwnBreakerStartsFromTheCataloguesOne() throws {
        let c = try parse("""
            [[provider]]
            name = "p"
            kind = "anthropic"
            [[model]]
            name = "m"
            provider = "p"
            breaker = { failures = 2 }
            [breaker]
            cooldown = "5s"
            """)
        // [breaker] comes after the model in the file, and still counts: models are read after.
        let b = try #require(c.model(named: "m")?.breaker)
        #expect(b.failures == 2 && b.cooldownSeconds == 5)
    }

    /// Every mistake is named by its key path, with what would be right.
    @Test(arguments: [
        ("[[provider]]\nname = \"p\"\nkind = \"opneai\"\nbase_url = \"http://127.0.0.1:1/v1\"",
         "provider[0].kind: unknown kind \"opneai\" (expected: openai, anthropic, ollama, local) (did you mean 'openai'?)"),
        ("[selecter]\nsuccess = 1", "selecter: unknown table (did you mean 'selector'?)"),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_ur = \"http://127.0.0.1:1\"",
         "provider[0].base_ur: unknown key (did you mean 'base_url'?)"),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"", "provider[0].base_url: missing required key: where calls go, e.g. \"http://127.0.0.1:8000/v1\""),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"ftp://x/\"", "provider[0].base_url: \"ftp://x/\": expected http:// or https://"),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://u:pw@host/v1\"",
         "provider[0].base_url: \"http://u:pw@host/v1\": no user, query, fragment, spaces or non-ASCII: scheme://host:port/path"),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://h:99999\"", "provider[0].base_url: \"http://h:99999\": bad port \"99999\""),
        ("[[provider]]\nname = \"p\"\nkind = \"local\"\nbase_url = \"http://10.0.0.1:8080/v1\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/m\"",
         "provider[0].base_url: a local server listens on IPv4 loopback inside its own sandbox: http://127.0.0.1:PORT/v1"),
        ("[[provider]]\nname = \"p\"\nkind = \"local\"\nbase_url = \"http://[::1]:8080/v1\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/m\"",
         "provider[0].base_url: a local server listens on IPv4 loopback inside its own sandbox: http://127.0.0.1:PORT/v1"),
        ("[[provider]]\nname = \"p\"\nkind = \"local\"\nbase_url = \"http://127.0.0.1/v1\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/m\"",
         "provider[0].base_url: port 80: a local server runs unprivileged and cannot listen below 1024 (http://127.0.0.1:8080/v1)"),
        ("[local]\nmax_loaded = 1\n[[provider]]\nname = \"a\"\nkind = \"local\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/m\"\npreload = true\n"
         + "[[provider]]\nname = \"b\"\nkind = \"local\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/m\"\npreload = true\n[[model]]\nname = \"m\"\nprovider = \"a\"",
         "local.max_loaded: 2 local servers preload (a, b) but at most 1 may be loaded at once: raise [local] max_loaded or preload fewer"),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://h\"\nmodel_file = \"/m\"",
         "provider[0].model_file: model_file is for kind = \"local\" (a server cordond runs); this provider is kind = \"openai\""),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\napi_key_file = \"keys/a\"",
         "provider[0].api_key_file: \"keys/a\": an absolute path to a root-only file whose first line is the key"),
        ("[[provider]]\nname = \"p\"\nkind = \"local\"\ncommand = [\"/bin/s\", \"{modelfile}\"]\nmodel_file = \"/m\"",
         "provider[0].command[1]: {modelfile}: the placeholders are {model_file} and {port}"),
        ("[[provider]]\nname = \"p\"\nkind = \"local\"\ncommand = [\"s\"]\nmodel_file = \"/m\"",
         "provider[0].command[0]: \"s\": the program is an absolute path inside the sandbox"),
        ("[[provider]]\nname = \"p\"\nkind = \"local\"\ncommand = [\"/bin/s\"]\nmodel_file = \"/srv/../etc/shadow\"",
         "provider[0].model_file: \"/srv/../etc/shadow\": an absolute path to the model (bound read-only into the server's sandbox)"),
        ("[[provider]]\nname = \"a b\"\nkind = \"anthropic\"", "provider[0].name: \"a b\" is not a provider name (letters, digits, '_' and '-')"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"",
         "provider[1].name: a second provider named \"p\""),
        ("[[provider]]\nname = \"anthro\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"anthropic\"",
         "model[0].provider: no provider named \"anthropic\" in this file (did you mean 'anthro'?)"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"auto:code\"\nprovider = \"p\"",
         "model[0].name: \"auto:code\" is reserved: a client asks the selector with auto or auto:TASK"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\nfallbacks = [\"m\"]",
         "model[0].fallbacks[0]: a model cannot fall back to itself"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"big\"\nprovider = \"p\"\nfallbacks = [\"bgi\"]",
         "model[0].fallbacks: \"bgi\" is no model of this file (did you mean 'big'?)"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\ncontext_length = 1024\nmax_output_tokens = 1024",
         "model[0].max_output_tokens: max_output_tokens (1024) leaves no room for a prompt in context_length (1024)"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\nprice_input = -1",
         "model[0].price_input: a price per 1000 tokens is 0 or more (at most 1000000)"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\ntask_types = [\"chat!\"]",
         "model[0].task_types[0]: \"chat!\" is not a task type (1 to 32 letters, digits, '_' and '-')"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\naccess = { user = [\"a\"] }",
         "model[0].access.user: unknown key (did you mean 'users'?)"),
        ("[selector]\nsuccess = 0.5\nlatency = 0.3\ncost = 0.1", "selector: the weights success, latency and cost sum to 1 (these sum to 0.9)"),
        ("[selector]\ndiscount = 0", "selector.discount: above 0 and at most 1 (1: never forget; 0.98: about 50 calls of memory)"),
        ("[selector]\nexploration = 0.9", "selector.exploration: from 0 to 0.5"),
        ("[selector]\nchange_threshold = -1", "selector.change_threshold: 0 (no change detection) or from 4 to 1000 (7: the default; below 4 one call could tip it)"),
        ("[selector]\nchange_threshold = 2", "selector.change_threshold: 0 (no change detection) or from 4 to 1000 (7: the default; below 4 one call could tip it)"),
        ("[endpoint]\nlisten = \"0.0.0.0:8089\"\ntokens = \"/t\"",
         "endpoint.listen: \"0.0.0.0:8089\": a loopback address and port, \"127.0.0.1:8089\" or \"[::1]:8089\" (the endpoint never listens beyond this machine)"),
        ("[endpoint]\nlisten = \"127.0.0.1:8089\"\ntokens = \"tokens\"", "endpoint.tokens: \"tokens\": an absolute path to a root-owned file of lines \"TOKEN USER\""),
        ("[local]\nmax_loaded = 0", "local.max_loaded: 0 is out of range 1...64"),
        ("[breaker]\ncooldown = \"10m\"\nmax_cooldown = \"1m\"", "breaker.cooldown: cooldown (600s) is more than max_cooldown (60s)"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"", "model: no [[model]]: clients name models, not providers (add name, provider, upstream)"),
        ("provider = 3", "provider: expected [[provider]] tables, found integer"),
        ("[[provider]]\nname = \"p\"\nkind = \"anthropic\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\nmax_tokens_field = \"max_completion_tokens\"",
         "model[0].max_tokens_field: the Messages API takes max_tokens only"),
        ("[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\n[[model]]\nname = \"m\"\nprovider = \"p\"\nmax_tokens_field = \"max_toknes\"",
         "model[0].max_tokens_field: \"max_toknes\": expected max_tokens or max_completion_tokens"),
    ])
    func eachMistakeIsNamed(text: String, expected: String) {
        let got = problems(text)
        #expect(got.contains(expected), "\(got)")
    }

    /// A TOML syntax error names its line and column; nothing else is reported from a file that
    /// does not parse.
    @Test func aSyntaxErrorNamesItsLine() throws {
        do {
            _ = try parse("[[provider]]\nname = \"p\n")
            Issue.record("parsed")
        } catch {
            #expect(error.diagnostics.count == 1 && error.diagnostics[0].line == 2, "\(error.diagnostics)")
        }
    }

    @Test func baseURLsAreSplit() throws {
        let cases: [(String, ModelCatalog.BaseURL)] = [
            ("https://API.example.com/v1/", .init(scheme: "https", host: "api.example.com", port: 443, path: "/v1")),
            ("http://[::1]:8000", .init(scheme: "http", host: "::1", port: 8000, path: "")),
            ("http://127.0.0.1:11434/v1", .init(scheme: "http", host: "127.0.0.1", port: 11434, path: "/v1")),
        ]
        for (text, want) in cases {
            let c = try parse("[[provider]]\nname = \"p\"\nkind = \"ollama\"\nbase_url = \"\(text)\"\n[[model]]\nname = \"m\"\nprovider = \"p\"")
            #expect(c.providers.first?.baseURL == want, "\(text)")
        }
    }
}
