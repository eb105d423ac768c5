import ArgumentParser
import CordonPolicy
import CordonConfig
import CordonSandbox
@testable import CordonCLI
import Foundation
import Testing

/// `cordon policy explain`: every value says which file set it, and the explanation is itself a
/// policy that parses back to the effective one.
final class PolicyExplainTests {
    let store = PolicyStore(configDir: nil)
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "cordon-explain-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = "\(dir)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// The parts of a policy that describe the sandbox (not its name or where it was read from).
    func sandboxPart(_ p: Policy) -> [String] {
        ["\(p.filesystem)", "\(p.process)", "\(p.limits)", "\(p.seccomp)", "\(p.capabilities)", "\(p.network)", "\(p.landlock)"]
    }

    func child() throws -> String {
        _ = try write("base.toml", "[policy]\nextends = [\"default\"]\n[capabilities]\nkeep = [\"NET_BIND_SERVICE\"]\n[limits]\npids = 64\n")
        return try write("child.toml", """
            [policy]
            name = "child"
            extends = ["base.toml"]
            [filesystem]
            read_write = [{ path = "/data", source = "/srv/data", optional = true }]
            hide = ["/etc/localtime"]
            tmpfs = [{ path = "/tmp", size = "1G", mode = "1777" }]
            [process]
            env = { FOO = "a \\"quoted\\" value\\n" }
            [limits]
            memory = "1536M"
            wall_time = "1.5s"
            """)
    }

    @Test(arguments: ["default", "child"])
    func explanationParsesBackToTheEffectivePolicy(_ which: String) throws {
        let name = which == "child" ? try child() : which
        let (policy, layers) = try store.loadPolicyLayers(name)
        let text = PolicyExplanation.explain(policy, layers: layers).toml()
        let reparsed = try PolicyParser.parse(text: text, source: "explained", defaultName: "x")
        #expect(sandboxPart(reparsed) == sandboxPart(policy), "\(text)")
    }

    @Test func everyValueNamesItsFile() throws {
        let path = try child()
        let base = "\(dir)/base.toml"
        let (policy, layers) = try store.loadPolicyLayers(path)
        let entries = PolicyExplanation.explain(policy, layers: layers).entries
        func origin(_ key: String, _ value: String? = nil) -> String? {
            entries.first { $0.key == key && (value == nil || $0.value == value) }.map { "\($0.source):\($0.line ?? 0)" }
        }
        #expect(origin("limits.memory") == "\(path):11")
        #expect(origin("limits.pids") == "\(URL(fileURLWithPath: base).resolvingSymlinksInPath().path):6")
        #expect(origin("limits.cpu") == "builtin:policies/default.toml:48")
        #expect(origin("capabilities.keep", "\"CAP_NET_BIND_SERVICE\"")?.hasSuffix("base.toml:4") == true)
        #expect(origin("filesystem.read_only", "\"/usr\"") == "builtin:policies/default.toml:13")
        #expect(origin("filesystem.tmpfs")?.hasPrefix(path) == true, "the child's /tmp replaced the default's")
        #expect(origin("process.env.FOO")?.hasPrefix(path) == true)
        #expect(origin("process.env.PATH")?.hasPrefix("builtin:") == true)
        #expect(!entries.contains { $0.key == "filesystem.read_only" && $0.value.contains("/etc/localtime") })
        // Values no file sets are "default".
        let bare = try write("bare.toml", "[limits]\nmemory = \"1G\"\n")
        let (p2, l2) = try store.loadPolicyLayers(bare)
        #expect(PolicyExplanation.explain(p2, layers: l2).entries.first { $0.key == "process.user" }?.source == "default")
    }

    @Test func extendedPolicyHashCoversItsParents() throws {
        let path = try child()
        let before = try store.loadPolicy(path).contentHash
        _ = try write("base.toml", "[policy]\nextends = [\"default\"]\n[capabilities]\nkeep = [\"NET_BIND_SERVICE\"]\n[limits]\npids = 65\n")
        #expect(try store.loadPolicy(path).contentHash != before)
    }

    /// The install gate is part of the explanation, so a parent's `[install]` edit changes the
    /// hash of every policy extending it (the hash of such a policy is its explanation's); and
    /// the explained gate parses back to the same gate.
    @Test func aParentsInstallGateIsInTheChildsHash() throws {
        let parent = try write("gate.toml", "[policy]\nextends = [\"default\"]\n[install]\nmin_release_age = \"7d\"\nallow = [\"Requests\"]\n"
                               + "accept = [{ rule = \"install.typosquats\", package = \"httpx2\", reason = \"the 2.x line\" }]\n")
        let path = try write("gated.toml", "[policy]\nname = \"gated\"\nextends = [\"gate.toml\"]\n[install]\ndeny = [\"pycrypto\"]\n"
                             + "accept = [{ rule = \"install.deny_finding_severity\", package = \"HTTPX2\", version = \"2.17.0\", finding = \"credential-access\", file = \"httpx2/_auth.py\", reason = \"reads \\\"~/.netrc\\\"\" }]\n")
        let (policy, layers) = try store.loadPolicyLayers(path)
        #expect(policy.install.minReleaseAgeSeconds == 604_800 && policy.install.allow == ["requests"] && policy.install.deny == ["pycrypto"])
        let explanation = PolicyExplanation.explain(policy, layers: layers)
        let gate = explanation.entries.filter { $0.key.hasPrefix("install.") }
        #expect(gate.count == 14, "\(gate)")
        // Each entry credited to the file that wrote it: the parent's, then the child's.
        #expect(gate.filter { $0.key == "install.accept" }.map(\.source) == [parent, path], "\(gate)")
        #expect(policy.install.accept.last?.reason == "reads \"~/.netrc\"")
        #expect(gate.first { $0.key == "install.allow" }?.source.hasSuffix("gate.toml") == true, "credited to the file that listed it, spelled otherwise")
        #expect(gate.first { $0.key == "install.deny" }?.source == path)
        #expect(gate.first { $0.key == "install.min_release_age" }?.value == "\"7d\"")
        let reparsed = try PolicyParser.parse(text: explanation.toml(), source: "explained", defaultName: "x")
        #expect(reparsed.install == policy.install, "\(explanation.toml())")
        let before = policy.contentHash
        _ = try write("gate.toml", "[policy]\nextends = [\"default\"]\n[install]\nmin_release_age = \"1d\"\nallow = [\"Requests\"]\n")
        #expect(try store.loadPolicy(path).contentHash != before)
        // A policy without a gate of its own explains none.
        let (plain, plainLayers) = try store.loadPolicyLayers("default")
        #expect(!PolicyExplanation.explain(plain, layers: plainLayers).entries.contains { $0.key.hasPrefix("install.") })
    }

    /// Issue 14: a parent with a duration no unit can print passed `check`, then trapped when
    /// the child's hash (its explanation) was computed; now it is refused, naming the parent.
    @Test func aParentOutOfRangeIsRefusedByName() throws {
        _ = try write("huge.toml", "[limits]\ncpu_time = \"3000000000000000s\"\n")
        let path = try write("uses-huge.toml", "[policy]\nextends = [\"default\", \"huge.toml\"]\n")
        do {
            _ = try store.loadPolicyLayers(path)
            Issue.record("loaded")
        } catch {
            #expect(error.description.contains("huge.toml:2: limits.cpu_time: \"3000000000000000s\" is out of range"), "\(error.description)")
        }
        let command = try PolicyExplainCommand.parse([path])
        #expect(throws: ExitCode(2)) { try command.run() }
    }

    /// A long list keeps each entry's origin and parses back (explain used to search every
    /// file once per entry: quadratic).
    @Test func longListExplainsEveryEntry() throws {
        let n = 5000
        let path = try write("many.toml", "[policy]\nextends = [\"default\"]\n[filesystem]\nread_only = [\n"
                             + (0..<n).map { "  \"/m/\($0)\",\n" }.joined() + "]\n")
        let (policy, layers) = try store.loadPolicyLayers(path)
        let explanation = PolicyExplanation.explain(policy, layers: layers)
        let mine = explanation.entries.filter { $0.key == "filesystem.read_only" && $0.source == path }
        #expect(mine.count == n)
        #expect(mine.enumerated().allSatisfy { i, e in e.value == "\"/m/\(i)\"" && e.line == 5 + i })
        #expect(explanation.entries.contains { $0.key == "filesystem.read_only" && $0.value == "\"/usr\"" && $0.source == "builtin:policies/default.toml" })
        let reparsed = try PolicyParser.parse(text: explanation.toml(), source: "explained", defaultName: "x")
        #expect(sandboxPart(reparsed) == sandboxPart(policy))
    }

    @Test func commandRefusesUnknownPolicy() throws {
        let command = try PolicyExplainCommand.parse(["no-such-policy"])
        #expect(throws: ExitCode(2)) { try command.run() }
    }
}
