import ArgumentParser
import CordonDefaults
import CordonPolicy
import CordonConfig
import CordonSandbox
@testable import CordonCLI
import Foundation
import Testing

/// `cordon policy score`: every weakening of a policy raises its score by the documented weight,
/// the shipped default is nearly locked down, and "no sandbox" is 10.
struct PolicyScoreTests {
    let store = PolicyStore(configDir: nil)

    func defaultPolicy() throws -> Policy { try store.loadPolicy("default") }

    func profile(_ name: String = "default") throws -> SeccompProfile {
        let (bytes, source) = try store.seccompProfile(name)
        return try SeccompProfile.parse(bytes, file: source)
    }

    func score(_ policy: Policy, _ profile: SeccompProfile? = nil) throws -> PolicyScore {
        PolicyScore.score(policy, seccomp: try profile ?? self.profile())
    }

    @Test func defaultIsNearlyLockedDown() throws {
        let result = try score(try defaultPolicy())
        #expect(result.score == 0.2)
        #expect(result.items.map(\.key) == ["landlock.mode"])
    }

    /// One change each, and the points it must add (the weights the README documents).
    static let weakenings: [(String, Double, @Sendable (inout Policy) -> Void)] = [
        ("no memory limit", 1.0, { $0.limits.memoryBytes = nil }),
        ("no pids limit", 0.7, { $0.limits.pids = nil }),
        ("no wall time", 0.3, { $0.limits.wallTimeSeconds = nil }),
        ("keeps CAP_SYS_ADMIN", 2.0, { $0.capabilities.keep = ["CAP_SYS_ADMIN"] }),
        ("keeps CAP_CHOWN", 0.5, { $0.capabilities.keep = ["CAP_CHOWN"] }),
        ("writable project dir", 1.0, { $0.filesystem.readWrite = [.init(path: "/src", source: "/home/alice/project")] }),
        ("writable /etc", 3.0, { $0.filesystem.readWrite = [.init(path: "/etc")] }),
        ("writable /var/lib/foo", 3.0, { $0.filesystem.readWrite = [.init(path: "/data", source: "/var/lib/foo/")] }),
        ("writable host root", 3.0, { $0.filesystem.readWrite = [.init(path: "/host", source: "/")] }),
        ("writable home directory", 3.0, { $0.filesystem.readWrite = [.init(path: "/h", source: "/home/alice")] }),
        ("writable ~/.ssh", 3.0, { $0.filesystem.readWrite = [.init(path: "/k", source: "/home/alice/.ssh")] }),
        ("readable /home", 1.0, { $0.filesystem.readOnly.append(.init(path: "/home")) }),
        ("readable /root/.ssh", 1.0, { $0.filesystem.readOnly.append(.init(path: "/k", source: "/root/.ssh")) }),
        ("Landlock off", 0.8, { $0.landlock.mode = .off }),
        ("Landlock required", -0.2, { $0.landlock.mode = .required }),
        ("root inside", 0.5, { $0.process.uid = 0 }),
        ("refused calls only logged", 3.0, { $0.seccomp.action = .log }),
        ("refused calls kill the sandbox", 0.0, { $0.seccomp.action = .kill }),
        ("usable by more users", 0.0, { $0.access.users = ["alice"]; $0.access.groups = ["agents"] }),
        ("workspaces under /srv/projects", 1.0, { $0.workspace.allow = ["/srv/projects"] }),
        ("workspaces under /home", 3.0, { $0.workspace.allow = ["/home"] }),
        ("workspaces in two places", 4.0, { $0.workspace.allow = ["/srv/projects", "/home"] }),
    ]

    @Test(arguments: 0..<weakenings.count)
    func weakeningRaisesScoreByItsWeight(_ index: Int) throws {
        let (name, points, change) = Self.weakenings[index]
        var policy = try defaultPolicy()
        let before = try score(policy).score
        change(&policy)
        let after = try score(policy).score
        #expect(abs(after - before - points) < 0.001, "\(name): \(before) -> \(after)")
    }

    @Test func harmlessReadOnlyBindsDoNotCount() throws {
        var policy = try defaultPolicy()
        policy.filesystem.readOnly += [.init(path: "/opt/tool"), .init(path: "/etc/ssl/certs"), .init(path: "/usr/share")]
        #expect(try score(policy).score == 0.2)
    }

    @Test func permissiveSeccompProfileCounts() throws {
        let policy = try defaultPolicy()
        let denylist = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["ptrace"], action: .errno(1))])
        #expect(try score(policy, denylist).score == 3.2)
        let logOnly = SeccompProfile(defaultAction: .log, rules: [])
        #expect(try score(policy, logOnly).score == 3.2)
        // SCMP_ACT_LOG lets the call run: it counts as allowing it.
        var logged = try profile()
        logged.rules.append(.init(names: ["bpf", "ptrace"], action: .log))
        #expect(try score(policy, logged).score == 1.2)
        var widened = try profile()
        widened.rules.append(.init(names: ["mount", "ptrace", "bpf"], action: .allow))
        let result = try score(policy, widened)
        #expect(result.score == 1.7)
        #expect(result.items.filter { $0.key == "seccomp.profile" }.count == 3)
        // A conditional allow is not an unconditional one.
        var conditional = try profile()
        conditional.rules.append(.init(names: ["ptrace"], action: .allow, args: [.init(index: 0, value: 0, op: .eq)]))
        #expect(try score(policy, conditional).score == 0.2)
    }

    @Test func dangerousSyscallsAreCapped() throws {
        let everything = SeccompProfile(defaultAction: .errno(1), rules: [.init(names: PolicyScore.Weights.dangerousSyscalls, action: .allow)])
        let result = try score(try defaultPolicy(), everything)
        #expect(result.items.filter { $0.key == "seccomp.profile" }.reduce(0) { $0 + $1.points } == PolicyScore.Weights.dangerousSyscallCap)
    }

    @Test func noSandboxIsTen() throws {
        var policy = Policy(name: "open", source: "test")
        policy.limits = .init()
        policy.landlock.mode = .off
        policy.process.uid = 0
        policy.capabilities.keep = ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"]
        policy.filesystem.readWrite = [.init(path: "/", source: "/")]
        let result = try score(policy, SeccompProfile(defaultAction: .allow, rules: []))
        #expect(result.score == 10)
    }

    /// The shipped policies, in the order the weights give them: the tool policies require
    /// Landlock, so they score below `default` (best-effort); model-http and mcp-fetch add one
    /// network destination (0.5) to python-tool, installer two (1.0); mcp-git one writable host
    /// path (1.0); mcp-time only a read-only bind, which costs nothing; model-worker is default's
    /// system with Landlock required and no network of its own (cordond adds the provider), and
    /// model-server python-tool's with only an optional read-only venv added.
    @Test func shippedPoliciesRank() throws {
        var scores: [String: Double] = [:]
        for name in EmbeddedDefaults.policyNames {
            let policy = try store.loadPolicy(name)
            scores[name] = try score(policy, profile(policy.seccomp.profile)).score
        }
        #expect(scores == ["mcp-time": 0.0, "model-server": 0.0, "model-worker": 0.0, "python-tool": 0.0, "shell-tool": 0.0, "default": 0.2, "mcp-fetch": 0.5,
                           "model-http": 0.5, "installer": 1.0, "mcp-git": 1.0])
        let order = scores.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map(\.key)
        #expect(order == ["mcp-time", "model-server", "model-worker", "python-tool", "shell-tool", "default", "mcp-fetch", "model-http", "installer", "mcp-git"])
    }

    /// Policies that grant more rank higher.
    @Test func orderFollowsWhatIsGranted() throws {
        let locked = try defaultPolicy()
        var tool = locked
        tool.filesystem.readWrite = [.init(path: "/src", source: "/home/alice/project")]
        var installer = tool
        installer.filesystem.readWrite.append(.init(path: "/usr/local"))
        installer.process.uid = 0
        installer.capabilities.keep = ["CAP_CHOWN", "CAP_FOWNER"]
        let scores = try [locked, tool, installer].map { try score($0).score }
        #expect(scores == scores.sorted() && Set(scores).count == 3, "\(scores)")
    }

    @Test func commandRefusesUnknownPolicy() throws {
        let command = try PolicyScoreCommand.parse(["no-such-policy"])
        #expect(throws: ExitCode(2)) { try command.run() }
    }

    @Test func commandScoresAFile() throws {
        let path = NSTemporaryDirectory() + "cordon-score-\(getpid()).toml"
        try "[capabilities]\nkeep = [\"SYS_ADMIN\"]\n[landlock]\nmode = \"required\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let policy = try store.loadPolicy(path)
        let result = try score(policy)
        #expect(result.items.map(\.key).contains("capabilities.keep"))
        let command = try PolicyScoreCommand.parse([path, "--json"])
        try command.run()
    }
}
