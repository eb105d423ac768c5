@testable import CordonPolicy
import Testing

/// `cordon run`'s flags applied to a policy: the policy's rules and texts, limits only tighten,
/// and what a refused flag names.
struct PolicyOverridesTests {
    static func policy(_ text: String = "") throws -> Policy {
        try PolicyParser.parse(text: """
            [filesystem]
            read_only = ["/usr", "/etc/ssl"]
            tmpfs = ["/tmp"]
            workdir = "/work"
            hide = ["/usr/secret"]
            [process]
            env = { PATH = "/usr/bin", HOME = "/work" }
            [limits]
            memory = "512M"
            pids = 64
            wall_time = "1m"
            \(text)
            """, source: "p.toml", defaultName: "p")
    }

    @Test func bindValuesFollowThePolicysPathRules() throws {
        #expect(try PolicyOverrides.bind("/src", writable: true) == .init(source: "/src", path: "/src", writable: true))
        #expect(try PolicyOverrides.bind("/host/x:/x", writable: false) == .init(source: "/host/x", path: "/x", writable: false))
        #expect(throws: PolicyOverrides.Problem("--bind", "src", "\"src\" must be an absolute path (use \"$PWD/src\")")) {
            try PolicyOverrides.bind("src", writable: true)
        }
        #expect(throws: PolicyOverrides.Problem("--ro-bind", "/a/b/", "\"/a/b/\" must be a normalized path (no '.', '..', '//' or trailing '/') (did you mean /a/b?)")) {
            try PolicyOverrides.bind("/a/b/", writable: false)
        }
        #expect(throws: PolicyOverrides.Problem.self) { try PolicyOverrides.bind("/a:x", writable: false) }
        #expect(throws: PolicyOverrides.Problem.self) { try PolicyOverrides.bind("/", writable: true) }
        // The same text as the policy key.
        #expect(PolicyParser.pathProblem("/a/../b") == "\"/a/../b\" must be a normalized path (no '.', '..', '//' or trailing '/')")
        #expect(throws: PolicyOverrides.Problem("--env", "=x", "expected NAME=VALUE")) { try PolicyOverrides.envVar("=x") }
        #expect(throws: PolicyOverrides.Problem("--env", "X", "expected NAME=VALUE")) { try PolicyOverrides.envVar("X") }
        #expect(try PolicyOverrides.envVar("A=b=c") == Policy.EnvVar("A", "b=c"))
        #expect(throws: PolicyOverrides.Problem.self) { try PolicyOverrides.memory("lots") }
        #expect(throws: PolicyOverrides.Problem.self) { try PolicyOverrides.memory("1k") }
        #expect(throws: PolicyOverrides.Problem.self) { try PolicyOverrides.pids("0") }
        #expect(throws: PolicyOverrides.Problem.self) { try PolicyOverrides.destination("evil.example") }
        #expect(try PolicyOverrides.destination("api.example.com:443") == "api.example.com:443")
    }

    @Test func bindsExtendAndReplaceLikeAnExtendingPolicy() throws {
        var o = PolicyOverrides()
        o.binds = [try PolicyOverrides.bind("/home/me/proj", writable: true), try PolicyOverrides.bind("/usr", writable: true),
                   try PolicyOverrides.bind("/srv/tmp:/tmp", writable: false)]
        let p = try o.apply(to: try Self.policy())
        #expect(p.filesystem.readWrite.map(\.path) == ["/home/me/proj", "/usr"])
        #expect(p.filesystem.readWrite.first?.owner == nil, "the source's owner, as for a policy entry")
        #expect(p.filesystem.readOnly.map(\.path) == ["/etc/ssl", "/tmp"])
        #expect(p.filesystem.readOnly.last?.source == "/srv/tmp")
        #expect(p.filesystem.tmpfs.isEmpty, "the bind at /tmp replaces the policy's tmpfs there")
    }

    @Test func bindsTheyCannotMakeAreRefusedNamingTheKey() throws {
        let base = try Self.policy()
        func refusal(_ flags: [(String, Bool)]) throws -> String {
            var o = PolicyOverrides()
            o.binds = try flags.map { try PolicyOverrides.bind($0.0, writable: $0.1) }
            do { _ = try o.apply(to: base); return "" } catch { return error.description }
        }
        #expect(try refusal([("/work", true)]).contains("filesystem.workdir"))
        #expect(try refusal([("/work", true)]).contains("--bind /work:/src"))
        #expect(try refusal([("/usr/secret/x", false)]) == "--ro-bind /usr/secret/x: /usr/secret is hidden by policy p (filesystem.hide): the flags cannot show it")
        #expect(try refusal([("/a", false), ("/b:/a", true)]) == "--bind /b:/a: /a is already bound by --ro-bind /a")
    }

    @Test func limitsOnlyTighten() throws {
        let base = try Self.policy()
        var o = PolicyOverrides()
        o.memoryBytes = 256 << 20
        o.pids = 16
        o.wallTimeSeconds = 30
        let p = try o.apply(to: base)
        #expect(p.limits.memoryBytes == 256 << 20 && p.limits.pids == 16 && p.limits.wallTimeSeconds == 30)

        o = PolicyOverrides()
        o.wallTimeSeconds = 90
        #expect(throws: PolicyOverrides.Problem("--timeout", "90s",
                                                "looser than policy p's limits.wall_time = 60s: flags only tighten a policy's limits (write a policy that extends p to loosen them)")) {
            try o.apply(to: base)
        }
        o = PolicyOverrides()
        o.memoryBytes = 1 << 30
        #expect(throws: PolicyOverrides.Problem("--memory", "1G",
                                                "looser than policy p's limits.memory = 512M: flags only tighten a policy's limits (write a policy that extends p to loosen them)")) {
            try o.apply(to: base)
        }
        o = PolicyOverrides()
        o.pids = 65
        #expect(throws: PolicyOverrides.Problem.self) { try o.apply(to: base) }
        // A limit the policy does not set is set by the flag.
        var unlimited = base
        unlimited.limits.memoryBytes = nil
        o = PolicyOverrides()
        o.memoryBytes = 1 << 40
        #expect(try o.apply(to: unlimited).limits.memoryBytes == 1 << 40)
    }

    @Test func envCwdAndNetwork() throws {
        var o = PolicyOverrides()
        o.env = [Policy.EnvVar("HOME", "/src"), Policy.EnvVar("API_KEY", "k")]
        o.cwd = "/src"
        o.networkAllow = ["api.example.com:443"]
        let p = try o.apply(to: try Self.policy())
        #expect(p.process.env == [Policy.EnvVar("PATH", "/usr/bin"), Policy.EnvVar("HOME", "/src"), Policy.EnvVar("API_KEY", "k")])
        #expect(p.process.cwd == "/src")
        #expect(p.network.mode == .allowlist && p.network.allow == ["api.example.com:443"])
        let listed = try o.apply(to: try Self.policy("[network]\nmode = \"allowlist\"\nallow = [\"a.example:443\"]"))
        #expect(listed.network.allow == ["a.example:443", "api.example.com:443"])
        #expect(PolicyOverrides().isEmpty && !o.isEmpty)
        #expect(o.canonicalText == "--env HOME=/src\n--env API_KEY=k\n--cwd /src\n--network-allow api.example.com:443")
    }

    @Test func theCallersCwdInsideTheSandbox() throws {
        var o = PolicyOverrides()
        o.binds = [try PolicyOverrides.bind("/home/me/proj", writable: false), try PolicyOverrides.bind("/srv/data:/data", writable: true)]
        let p = try o.apply(to: try Self.policy())
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/home/me/proj", in: p) == "/home/me/proj")
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/home/me/proj/sub", in: p) == "/home/me/proj/sub")
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/srv/data/x", in: p) == "/data/x")
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/usr/lib", in: p) == "/usr/lib")
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/home/me", in: p) == nil)
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/home/me/projects", in: p) == nil)
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/usr/secret/a", in: p) == nil, "hidden")
        #expect(PolicyOverrides.sandboxPath(ofHostDirectory: "/work", in: p) == nil, "the workdir is the sandbox's own")
    }
}
