import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSystem
import CordonTools

struct ToolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tool",
        abstract: "Tool manifests: the registry's tools (docs/tools.md).",
        subcommands: [ToolListCommand.self, ToolCallCommand.self, ToolStatsCommand.self, ToolCheckCommand.self]
    )
}

/// `cordon tool check FILE...`: each manifest parsed, then checked with the config directory's
/// manifests (its policy loads, its fallbacks name tools that exist: a command tool, or
/// `SERVER.TOOL`).
struct ToolCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate tool manifests (tools/NAME.toml); list every error.",
        discussion: "The file's stem is the tool's name. Each file is checked together with the manifests of the config directory (a given file replaces the one of the same name there). Exits 1 when any file has an error."
    )

    @Flag(name: .long, help: "Print one JSON report per file.")
    var json = false

    @OptionGroup var locations: LocationOptions

    @Argument(help: "Manifest files to check.")
    var files: [String]

    func run() throws {
        let store = ToolStore(configDir: Locations(configDir: locations.configDir).resolvedConfigDir(), policies: locations.policyStore)
        var parsed: [String: Result<ToolManifest, PolicyError>] = [:]
        for file in files { parsed[file] = store.load(path: file) }
        // The installed manifests, with the given ones in place of those of the same name.
        var byName: [String: ToolManifest] = [:]
        for path in store.manifestPaths() { if case .success(let m) = store.load(path: path) { byName[m.name] = m } }
        for file in files { if case .success(let m)? = parsed[file] { byName[m.name] = m } }
        let problems = store.check(Array(byName.values))

        var reports: [JSON] = []
        var failed = false
        for file in files {
            var errors: [PolicyDiagnostic] = []
            var manifest: ToolManifest?
            switch parsed[file]! {
            case .success(let m):
                manifest = m
                errors = problems[m.name]?.filter { $0.file == m.source } ?? []
            case .failure(let e): errors = e.diagnostics
            }
            failed = failed || !errors.isEmpty
            if json {
                var members: [(String, JSON)] = [("file", .string(file))]
                if let manifest {
                    members += [("tool", .string(manifest.name)), ("kind", .string(manifest.kind.rawValue)), ("policy", .string(manifest.policy))]
                }
                members.append(("ok", .bool(errors.isEmpty)))
                members.append(("errors", .array(errors.map { d in
                    .object([("file", .string(d.file)), ("line", d.line.map { .int(Int64($0)) } ?? .null), ("key", .string(d.keyPath)), ("message", .string(d.message))])
                })))
                reports.append(.object(members))
            } else {
                if errors.isEmpty, let m = manifest { print("\(file): ok (\(m.name): kind \(m.kind.rawValue), policy \(m.policy))") }
                for d in errors { print("\(d.file)\(d.line.map { ":\($0)" } ?? ""): error: \(d.keyPath.isEmpty ? "" : "\(d.keyPath): ")\(d.message)") }
            }
        }
        if json { FileDescriptorIO.writeAll(1, JSON.array(reports).text(JSON.Format(indent: "  ")) + "\n") }
        if failed { throw ExitCode(1) }
    }
}

/// `cordon tool list`: the tools cordond offers the caller.
struct ToolListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the tools cordond lets you call.")
    @OptionGroup var client: ClientOptions

    func run() throws {
        let answer = try client.call("tool.list")
        if client.json { return client.printJSON(answer) }
        let tools = answer["tools"]?.arrayValue ?? []
        // Tools whose requirements are not installed (yet): said on stderr, the table stays a table.
        for r in answer["requirements"]?.arrayValue ?? [] {
            let tool = PrintableText.of(r["tool"]?.stringValue ?? "")
            if r["state"]?.stringValue == "failed" {
                printError("cordon tool list: \(tool): its requirements were not installed: \(PrintableText.of(r["reason"]?.stringValue ?? ""))")
            } else if r["state"]?.stringValue == "installing" {
                printError("cordon tool list: \(tool): its requirements are being installed (since \(PrintableText.of(r["since"]?.stringValue ?? "?")))")
            }
        }
        if tools.isEmpty { print("no tools"); return }
        var rows = [["TOOL", "POLICY", "EXPOSURE", "DESCRIPTION"]]
        for t in tools {
            // A server's words, shown on a terminal: no escape sequences get through.
            let description = PrintableText.of((t["description"]?.stringValue ?? "").split(separator: "\n").first ?? "")
            let exposure = t["exposure"]?.doubleValue.map { "\(Double(Int(($0 * 10).rounded())) / 10)" } ?? "?"
            rows.append([PrintableText.of(t["name"]?.stringValue ?? ""), t["policy"]?.stringValue ?? "", exposure, String(description.prefix(100))])
        }
        printTable(rows)
    }
}

/// `cordon tool call NAME --args JSON`: one call, its result text on stdout.
struct ToolCallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call", abstract: "Call a tool through cordond.",
        discussion: "Prints the tool's text content (or its structured content with --json, the whole answer). Exits 0 when the tool answered without an error, 1 when it answered with one, 2 when no tool answered (refused, invalid arguments, unavailable, timed out)."
    )
    @OptionGroup var client: ClientOptions
    @Argument(help: "The tool's name (cordon tool list).") var name: String
    @Option(name: .customLong("args"), help: "The arguments, a JSON object (default {}).") var arguments = "{}"
    @Option(help: "Seconds to wait for the answer (default 300).") var timeout: Double?

    func run() throws {
        let parsed: JSON
        do { parsed = try JSON.parse(arguments) } catch {
            printError("cordon tool call: --args: not JSON: \(error)")
            throw ExitCode(64)
        }
        guard case .object = parsed else {
            printError("cordon tool call: --args: expected a JSON object, found \(parsed.typeName)")
            throw ExitCode(64)
        }
        var params: [(String, JSON)] = [("name", .string(name)), ("arguments", parsed)]
        if let timeout { params.append(("timeout", .double(timeout))) }
        let answer = try client.call("tool.call", .object(params))
        if client.json { client.printJSON(answer) }
        guard let result = answer["result"], case .object = result else {
            if !client.json { printError("cordon tool call: \(answer["outcome"]?.stringValue ?? "failed"): \(answer["message"]?.stringValue ?? "")") }
            throw ExitCode(2)
        }
        if !client.json {
            // Each text block as it came, ended on a line of its own (a server's JSON often
            // has no final newline: the next block, or the shell's prompt, would run on).
            for block in result["content"]?.arrayValue ?? [] where block["type"]?.stringValue == "text" {
                let text = block["text"]?.stringValue ?? ""
                FileDescriptorIO.writeAll(1, text.isEmpty || text.hasSuffix("\n") ? text : text + "\n")
            }
        }
        if result["isError"] == .bool(true) { throw ExitCode(1) }
    }
}

/// `cordon tool stats`: breakers and instances, per tool.
struct ToolStatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show each tool's breaker and instances (yours).")
    @OptionGroup var client: ClientOptions

    func run() throws {
        let answer = try client.call("tool.stats")
        if client.json { return client.printJSON(answer) }
        for t in answer["tools"]?.arrayValue ?? [] {
            var parts = ["breaker \(t["breaker"]?.stringValue ?? "unused")"]
            if let n = t["instances"]?.intValue { parts.append("\(n) instance\(n == 1 ? "" : "s")") }
            if let n = t["failures"]?.intValue, n > 0 { parts.append("\(n) failure\(n == 1 ? "" : "s")") }
            if let f = t["failed"]?.stringValue { parts.append("failed: \(f)") }
            print("\(t["name"]?.stringValue ?? ""): \(parts.joined(separator: ", "))")
        }
    }
}
