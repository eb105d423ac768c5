import CordonPolicy
import CordonConfig
import CordonSandbox
@testable import CordonCLI
import Foundation
import Testing

/// `policy.extends`: the merge rules the README documents, cycles, and errors that name the file
/// that has them.
final class PolicyExtendsTests {
    let store = PolicyStore(configDir: nil)
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "cordon-extends-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = "\(dir)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func load(_ path: String) throws -> Policy { try store.loadPolicy(path) }

    func errors(_ path: String) -> [PolicyDiagnostic] {
        do { _ = try store.loadPolicy(path); return [] } catch { return error.diagnostics }
    }

    @Test func scalarsOverrideListsAppendTablesMerge() throws {
        let path = try write("child.toml", """
            [policy]
            name = "child"
            extends = ["default"]
            [process]
            env = { FOO = "bar", HOME = "/home/tool" }
            pass_env = ["LANG"]
            [limits]
            memory = "1G"
            [capabilities]
            keep = ["NET_BIND_SERVICE"]
            """)
        let base = try load("default")
        let child = try load(path)
        #expect(child.name == "child" && child.description == "", "[policy] is not inherited")
        #expect(child.extends == ["default"])
        #expect(child.limits.memoryBytes == 1 << 30)
        #expect(child.limits.pids == base.limits.pids)
        #expect(child.filesystem.readOnly == base.filesystem.readOnly)
        #expect(child.process.passEnv == base.process.passEnv + ["LANG"])
        #expect(child.capabilities.keep == ["CAP_NET_BIND_SERVICE"])
        let env = Dictionary(child.process.env.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(env["FOO"] == "bar" && env["HOME"] == "/home/tool" && env["PATH"] == "/usr/local/bin:/usr/bin:/bin")
        #expect(child.process.env.filter { $0.name == "HOME" }.count == 1)
    }

    @Test func aMountAtTheSamePathReplacesTheInheritedOne() throws {
        let parent = try write("parent.toml", "[filesystem]\nread_only = [\"/usr\", { path = \"/srv\", source = \"/tmp\" }]\n")
        let child = try write("child.toml", "[policy]\nextends = [\"parent.toml\"]\n[filesystem]\nread_write = [{ path = \"/srv\", source = \"/var/tmp\" }]\n")
        _ = parent
        let policy = try load(child)
        #expect(policy.filesystem.readOnly.map(\.path) == ["/usr"])
        #expect(policy.filesystem.readWrite == [.init(path: "/srv", source: "/var/tmp")])
    }

    @Test func aLaterDenyWins() throws {
        let child = try write("child.toml", "[policy]\nextends = [\"default\"]\n[filesystem]\nhide = [\"/etc/ssl/certs\"]\n")
        let policy = try load(child)
        #expect(!policy.filesystem.readOnly.contains { $0.path == "/etc/ssl/certs" })
        #expect(policy.filesystem.hide == ["/etc/ssl/certs"])
    }

    /// Who may use a policy is the file's own business: a child starts with nobody listed.
    @Test func accessIsNotInherited() throws {
        let parent = try write("shared.toml", "[policy]\nextends = [\"default\"]\n[access]\nusers = [\"alice\"]\ngroups = [\"agents\"]\n")
        #expect(try load(parent).access.users == ["alice"])
        let child = try write("wider.toml", "[policy]\nextends = [\"shared.toml\"]\n[filesystem]\nread_write = [\"/srv\"]\n")
        let policy = try load(child)
        #expect(policy.access == Policy.Access())
        let own = try write("own.toml", "[policy]\nextends = [\"shared.toml\"]\n[access]\ngroups = [\"ops\", \"1234\"]\n")
        #expect(try load(own).access.groups == ["ops", "1234"])
        #expect(try load(own).access.users.isEmpty)
    }

    @Test func aChildCannotUnhideWhatItsParentHides() throws {
        _ = try write("hider.toml", "[policy]\nextends = [\"default\"]\n[filesystem]\nhide = [\"/srv\"]\n")
        let child = try write("child.toml", "[policy]\nextends = [\"hider.toml\"]\n[filesystem]\nread_only = [\"/srv\"]\n")
        let diagnostics = errors(child)
        #expect(diagnostics.map(\.keyPath) == ["filesystem.hide"], "\(diagnostics)")
        #expect(diagnostics.first?.message.contains("after merging extends") == true)
    }

    @Test func aFileContradictingItselfIsStillAnError() throws {
        let child = try write("child.toml", "[policy]\nextends = [\"default\"]\n[filesystem]\nread_only = [\"/opt\"]\nhide = [\"/opt\"]\n")
        let diagnostics = errors(child)
        #expect(diagnostics.map(\.keyPath) == ["filesystem.hide"], "\(diagnostics)")
        #expect(diagnostics.first?.file == child)
    }

    @Test func laterParentsOverrideEarlierOnes() throws {
        _ = try write("small.toml", "[limits]\nmemory = \"64M\"\npids = 10\n")
        _ = try write("big.toml", "[limits]\nmemory = \"2G\"\n")
        let policy = try load(try write("child.toml", "[policy]\nextends = [\"small.toml\", \"big.toml\"]\n"))
        #expect(policy.limits.memoryBytes == 2 << 30)
        #expect(policy.limits.pids == 10)
    }

    @Test func chainsResolveRelativeToEachFile() throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/sub", withIntermediateDirectories: true)
        _ = try write("sub/base.toml", "[policy]\nextends = [\"default\"]\n[limits]\npids = 7\n")
        _ = try write("sub/mid.toml", "[policy]\nextends = [\"base.toml\"]\n[limits]\nmemory = \"128M\"\n")
        let policy = try load(try write("top.toml", "[policy]\nextends = [\"sub/mid.toml\"]\n"))
        #expect(policy.limits.pids == 7 && policy.limits.memoryBytes == 128 << 20)
        #expect(policy.filesystem.readOnly == (try load("default")).filesystem.readOnly)
    }

    @Test func cyclesAreErrors() throws {
        _ = try write("a.toml", "[policy]\nextends = [\"b.toml\"]\n")
        let b = try write("b.toml", "[policy]\nextends = [\"./a.toml\"]\n")
        let diagnostics = errors(b)
        #expect(diagnostics.first?.keyPath == "policy.extends[0]")
        #expect(diagnostics.first?.message.hasPrefix("extends cycle: ") == true, "\(diagnostics)")
        let me = try write("me.toml", "[policy]\nextends = [\"me.toml\"]\n")
        #expect(errors(me).first?.message.hasPrefix("extends cycle: ") == true)
    }

    @Test func errorsNameTheFileThatHasThem() throws {
        let bad = try write("bad.toml", "[limits]\n\nmemroy = \"1G\"\n")
        let child = try write("child.toml", "[policy]\nextends = [\"bad.toml\"]\n")
        let diagnostics = errors(child)
        #expect(diagnostics.map { "\($0.file):\($0.line ?? 0) \($0.keyPath)" } == ["\(URL(fileURLWithPath: bad).resolvingSymlinksInPath().path):3 limits.memroy"])
        let report = PolicyChecker(store: store).check(child)
        #expect(report.errors.first?.inFile == URL(fileURLWithPath: bad).resolvingSymlinksInPath().path)
    }

    @Test func fanOutIsBounded() throws {
        _ = try write("leaf.toml", "[limits]\npids = 1\n")
        let many = Array(repeating: "\"leaf.toml\"", count: 100).joined(separator: ", ")
        let wide = try write("wide.toml", "[policy]\nextends = [\(many)]\n")
        #expect(errors(wide).first?.message == "extends pulls in more than \(PolicyParser.maxExtendsFiles) files")
    }

    @Test func relativeProfilePathIsRelativeToTheFileThatNamesIt() throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/base/seccomp", withIntermediateDirectories: true)
        _ = try write("base/seccomp/mine.json", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": []}")
        _ = try write("base/base.toml", "[seccomp]\nprofile = \"seccomp/mine.json\"\n")
        let child = try write("child.toml", "[policy]\nextends = [\"base/base.toml\"]\n")
        let policy = try load(child)
        #expect(policy.seccomp.profile == "\(URL(fileURLWithPath: dir).resolvingSymlinksInPath().path)/base/seccomp/mine.json")
        #expect(throws: Never.self) { _ = try self.store.seccompProfile(policy.seccomp.profile) }
    }

    @Test func runtimeProfilesAreNamedExplicitly() throws {
        // A config-dir policy named like a runtime profile neither shadows it nor cycles.
        try FileManager.default.createDirectory(atPath: "\(dir)/config/policies", withIntermediateDirectories: true)
        _ = try write("config/policies/python.toml", "[policy]\nextends = [\"default\", \"runtime:python\"]\n[limits]\npids = 9\n")
        let store = PolicyStore(configDir: "\(dir)/config")
        let mine = try store.loadPolicy("python")
        #expect(mine.limits.pids == 9)
        #expect(mine.process.env.contains { $0.name == "PYTHONNOUSERSITE" })
        let tool = try store.loadPolicy("python-tool")
        #expect(tool.limits.pids == 256, "python-tool extends runtime:python, not the config dir's python policy")
        let unknown = try write("u.toml", "[policy]\nextends = [\"runtime:cobol\"]\n")
        #expect(errors(unknown).first?.message.contains("unknown runtime profile \"cobol\"") == true)
    }

    @Test func controlCharactersAreRefused() throws {
        let name = try write("n.toml", "[policy]\nname = \"x\\n[limits]\"\n")
        #expect(errors(name).first?.keyPath == "policy.name")
        let path = try write("p.toml", "[filesystem]\nread_only = [{ path = \"/x\\u001b[2K\", optional = true }]\n")
        #expect(errors(path).first?.message == "path contains a control character")
    }

    @Test func unknownParentIsAnError() throws {
        let child = try write("child.toml", "[policy]\nextends = [\"defualt\"]\n")
        let diagnostics = errors(child)
        #expect(diagnostics.first?.keyPath == "policy.extends[0]")
        #expect(diagnostics.first?.message.contains("unknown policy \"defualt\"") == true, "\(diagnostics)")
        let empty = try write("empty.toml", "[policy]\nextends = [\"\"]\n")
        #expect(errors(empty).first?.message == "must not be empty")
    }
}
