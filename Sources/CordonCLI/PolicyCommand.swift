import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonPolicy
import CordonSandbox
import CordonSystem
import FoundationEssentials

/// `cordon policy …`: commands for people who write policies.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check, explain, score and compare policies and seccomp profiles.",
        subcommands: [PolicyCheckCommand.self, PolicyExplainCommand.self, PolicyScoreCommand.self, PolicyDiffCommand.self, PolicySchemaCommand.self]
    )
}

/// One checked file, as `--json` prints it.
struct PolicyCheckReport: Codable, Equatable {
    struct Problem: Codable, Equatable {
        /// Set when the problem is in another file (one the checked policy extends).
        var inFile: String? = nil
        var line: Int?
        var key: String
        var message: String
    }
    var file: String
    var kind: String          // "policy", "seccomp-profile" or "skipped"
    var errors: [Problem]
    var warnings: [Problem]
}

struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate policy files (.toml) and seccomp profiles (.json); list every error.",
        discussion: "Exits 1 when any file has an error. Other files (documentation next to profiles) are skipped."
    )

    @Flag(name: .long, help: "Print one JSON report per file.")
    var json = false

    @OptionGroup var locations: LocationOptions

    @Argument(help: "Files to check.")
    var files: [String]

    func run() throws {
        let store = locations.policyStore
        let reports = files.map { PolicyChecker(store: store).check($0) }
        if json {
            try printJSON(reports)
        } else {
            for report in reports {
                switch (report.kind, report.errors.isEmpty) {
                case ("skipped", _): print("\(report.file): skipped (not a .toml policy or .json seccomp profile)")
                case (_, true): print("\(report.file): ok")
                default: break
                }
                for e in report.errors { print("\(e.inFile ?? report.file)\(e.line.map { ":\($0)" } ?? ""): error: \(e.key.isEmpty ? "" : "\(e.key): ")\(e.message)") }
                for w in report.warnings { print("\(report.file)\(w.line.map { ":\($0)" } ?? ""): warning: \(w.key.isEmpty ? "" : "\(w.key): ")\(w.message)") }
            }
        }
        if reports.contains(where: { !$0.errors.isEmpty }) { throw ExitCode(1) }
    }
}

/// Checks one file: a policy is parsed, its seccomp profile resolved and compiled, and its host
/// paths looked at (a missing one is a warning: the policy may be meant for another host).
struct PolicyChecker {
    let store: PolicyStore

    func check(_ file: String) -> PolicyCheckReport {
        if file.hasSuffix(".json") { return checkProfile(file) }
        guard file.hasSuffix(".toml") else { return PolicyCheckReport(file: file, kind: "skipped", errors: [], warnings: []) }
        var report = PolicyCheckReport(file: file, kind: "policy", errors: [], warnings: [])
        let policy: Policy
        do {
            policy = try store.loadPolicy(file)
        } catch {
            report.errors = error.diagnostics.map {
                .init(inFile: $0.file == file ? nil : $0.file, line: $0.line, key: $0.keyPath, message: $0.message)
            }
            if report.errors.isEmpty { report.errors = [.init(line: nil, key: "", message: error.description)] }
            return report
        }
        do {
            let (bytes, source) = try store.seccompProfile(policy.seccomp.profile)
            _ = try SeccompCompiler.compile(profileBytes: bytes, file: source, cacheDir: nil)
        } catch let error as PolicyStore.LoadError {
            report.errors.append(.init(line: nil, key: "seccomp.profile", message: error.description))
        } catch {
            report.errors.append(.init(line: nil, key: "seccomp.profile", message: "\(error)"))
        }
        if let image = policy.filesystem.image {
            // Its root is planned by cordond once the image is unpacked (docs/daemon.md).
            if !FileSystem.exists(image.path) {
                report.warnings.append(.init(line: nil, key: "filesystem.image", message: "\(image.path) does not exist on this host"))
            }
        } else {
            do { _ = try MountPlanner().plan(policy) } catch {
                report.warnings.append(.init(line: nil, key: error.key, message: error.message))
            }
        }
        return report
    }

    func checkProfile(_ file: String) -> PolicyCheckReport {
        var report = PolicyCheckReport(file: file, kind: "seccomp-profile", errors: [], warnings: [])
        do {
            let bytes = try FileSystem.read(file, limit: 1 << 20)
            _ = try SeccompCompiler.compile(profileBytes: bytes, file: file, cacheDir: nil)
        } catch let error as SystemError {
            report.errors.append(.init(line: nil, key: "", message: error.description))
        } catch {
            report.errors.append(.init(line: nil, key: "", message: "\(error)"))
        }
        return report
    }
}

/// `cordon policy score NAME|FILE`: the exposure score and the itemized table behind it.
struct PolicyScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Exposure score of a policy: 0 (locked down) to 10 (no sandbox), itemized.",
        discussion: "The weights are documented in the README (Policy exposure score)."
    )

    @Flag(name: .long, help: "Print the score and its items as JSON.")
    var json = false

    @OptionGroup var locations: LocationOptions

    @Argument(help: "A policy name (from the config dir or the embedded defaults) or a .toml file.")
    var policy: String

    struct Report: Codable {
        var policy: String
        var source: String
        var score: Double
        var items: [PolicyScore.Item]
    }

    func run() throws {
        let store = locations.policyStore
        let (loaded, profile) = try loadPolicyAndProfile(store, policy, command: "score")
        let result = PolicyScore.score(loaded, seccomp: profile)
        let source = loaded.source
        if json {
            try printJSON(Report(policy: result.policy, source: source, score: result.score, items: result.items))
            return
        }
        print("\(result.policy) (\(source)): exposure \(format(result.score)) / 10")
        if result.items.isEmpty { print("  nothing raises it"); return }
        let width = result.items.map(\.key.count).max() ?? 0
        for item in result.items {
            print("  +\(format(item.points))  \(item.key + String(repeating: " ", count: width - item.key.count))  \(item.finding)")
        }
    }

    func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// Loads a policy and parses the seccomp profile it names; a failure is printed, exit status 2.
func loadPolicyAndProfile(_ store: PolicyStore, _ nameOrPath: String, command: String) throws -> (Policy, SeccompProfile) {
    do {
        let policy = try store.loadPolicy(nameOrPath)
        let (bytes, source) = try store.seccompProfile(policy.seccomp.profile)
        return (policy, try SeccompProfile.parse(bytes, file: source))
    } catch let error as PolicyStore.LoadError {
        printError("cordon policy \(command): \(error.description)")
    } catch {
        printError("cordon policy \(command): \(error)")
    }
    throw ExitCode(2)
}

/// `cordon policy diff A B`: what B allows that A does not, and the reverse.
struct PolicyDiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What policy B allows that A does not, and the reverse.",
        discussion: "Exits 0 whether or not they differ; --json for tools. Exit status 2 when a policy does not load."
    )

    @Flag(name: .long, help: "Print both directions as JSON.")
    var json = false

    @OptionGroup var locations: LocationOptions

    @Argument(help: "The baseline policy (name or .toml file).")
    var a: String

    @Argument(help: "The policy compared with it.")
    var b: String

    struct Report: Codable {
        var a: String
        var b: String
        var onlyB: [PolicyDiff.Entry]
        var onlyA: [PolicyDiff.Entry]
    }

    func run() throws {
        let store = locations.policyStore
        let (pa, sa) = try loadPolicyAndProfile(store, a, command: "diff")
        let (pb, sb) = try loadPolicyAndProfile(store, b, command: "diff")
        let diff = PolicyDiff.diff(pa, sa, pb, sb)
        if json {
            try printJSON(Report(a: a, b: b, onlyB: diff.onlyB, onlyA: diff.onlyA))
            return
        }
        for (title, entries) in [("\(b) allows, \(a) does not:", diff.onlyB), ("\(a) allows, \(b) does not:", diff.onlyA)] {
            print(title)
            if entries.isEmpty { print("  nothing") }
            for entry in entries { print("  \(entry.key): \(entry.detail)") }
        }
    }
}

/// `cordon policy explain NAME|FILE`: the effective policy after `extends`, each value with the
/// file and line that set it.
struct PolicyExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "The effective policy after extends, each value annotated with the file that set it.",
        discussion: "The text output is itself a policy file (TOML) equivalent to the effective policy."
    )

    @Flag(name: .long, help: "Print the entries as JSON.")
    var json = false

    @OptionGroup var locations: LocationOptions

    @Argument(help: "A policy name (from the config dir or the embedded defaults) or a .toml file.")
    var policy: String

    struct Report: Codable {
        var policy: String
        var source: String
        var extends: [String]
        var entries: [PolicyExplanation.Entry]
    }

    func run() throws {
        let store = locations.policyStore
        let loaded: (policy: Policy, layers: [PolicyParser.Layer])
        do { loaded = try store.loadPolicyLayers(policy) } catch {
            printError("cordon policy explain: \(error.description)")
            throw ExitCode(2)
        }
        let explanation = PolicyExplanation.explain(loaded.policy, layers: loaded.layers)
        if json {
            try printJSON(Report(policy: explanation.policy, source: loaded.policy.source, extends: explanation.extends,
                                 entries: explanation.entries))
        } else {
            print(explanation.toml(), terminator: "")
        }
    }
}

/// `cordon policy schema`: the JSON Schema of the policy format, for editors.
struct PolicySchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema (draft-07) of the policy format.",
        discussion: "The same document is checked in as docs/policy.schema.json."
    )

    func run() throws {
        print(PolicySchema.document(), terminator: "")
    }
}

/// The `--json` output of the policy commands: sorted keys, indented.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
