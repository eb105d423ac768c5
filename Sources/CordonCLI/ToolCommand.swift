import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonPolicy
import CordonSystem
import CordonTools

struct ToolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tool",
        abstract: "Tool manifests: the registry's tools (docs/tools.md).",
        subcommands: [ToolCheckCommand.self]
    )
}

/// `cordon tool check FILE...`: each manifest parsed, then checked with the config directory's
/// manifests (its policy loads, its fallbacks exist and do not go round in a circle).
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
