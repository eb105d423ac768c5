import CordonJSON
import Foundation
import Testing

/// cordond keeps the policies it loaded, checked against their files at every use: a policy
/// file rewritten (even to the same size, within the same second), a file it extends changed,
/// or a config-dir file that now shadows a built-in policy is what the next task runs under.
@Suite(.serialized) struct PolicyReloadTests {
    typealias W = WorkspaceTests
    static let users = "[access]\nusers = [\"\(W.alice)\"]\n"

    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"))
    func theNextTaskRunsUnderThePolicyAsItIsNow() throws {
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(W.socketGroup)\"\n", policies: [
            "p": "[policy]\nname = \"p\"\nextends = [\"base\"]\n[process]\nenv = { A = \"one\" }\n" + Self.users,
            "base": "[policy]\nname = \"base\"\nextends = [\"default\"]\n[process]\nenv = { B = \"uno\" }\n" + Self.users,
            "q": "[policy]\nname = \"q\"\nextends = [\"shell-tool\"]\n" + Self.users,
        ])
        chmod(d.dir, 0o755)
        func run() -> String {
            let answer = W.asCaller(W.alice, d, [WarmPoolTests.submit("echo $A $B", policy: "p")]).first?["result"]
            return WarmPoolTests.logs(d, answer?["id"]?.intValue ?? 0)
        }
        #expect(run() == "one uno\n")
        #expect(run() == "one uno\n")
        // Same size, at once: the bytes tell.
        try "[policy]\nname = \"p\"\nextends = [\"base\"]\n[process]\nenv = { A = \"two\" }\n".appending(Self.users)
            .write(toFile: "\(d.configDir)/policies/p.toml", atomically: false, encoding: .utf8)
        #expect(run() == "two uno\n")
        try "[policy]\nname = \"base\"\nextends = [\"default\"]\n[process]\nenv = { B = \"dos\" }\n".appending(Self.users)
            .write(toFile: "\(d.configDir)/policies/base.toml", atomically: true, encoding: .utf8)
        #expect(run() == "two dos\n")
        // A built-in policy extended by name, shadowed by a file put in the config dir afterwards.
        func runQ() -> String {
            let answer = W.asCaller(W.alice, d, [WarmPoolTests.submit("echo C=$C", policy: "q")]).first?["result"]
            return WarmPoolTests.logs(d, answer?["id"]?.intValue ?? 0)
        }
        #expect(runQ() == "C=\n")
        try "[policy]\nname = \"shell-tool\"\nextends = [\"default\"]\n[process]\nenv = { C = \"local\" }\n"
            .write(toFile: "\(d.configDir)/policies/shell-tool.toml", atomically: true, encoding: .utf8)
        #expect(runQ() == "C=local\n")
    }

    /// The config directory's policies through a symlink an admin retargets: the next task runs
    /// under the files it points to now. A seccomp profile that could not be read (not trusted)
    /// keeps no load: once it is fixed, the task's hash is the one `policy.list` shows.
    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"))
    func aRetargetedDirectoryAndAFixedProfileAreSeen() throws {
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(W.socketGroup)\"\n", policies: [:])
        chmod(d.dir, 0o755)
        let fm = FileManager.default
        for (version, value) in [("v1", "one"), ("v2", "two")] {
            try fm.createDirectory(atPath: "\(d.configDir)/policies.\(version)", withIntermediateDirectories: true)
            try ("[policy]\nname = \"p\"\nextends = [\"default\"]\n[process]\nenv = { A = \"\(value)\" }\n" + Self.users)
                .write(toFile: "\(d.configDir)/policies.\(version)/p.toml", atomically: true, encoding: .utf8)
        }
        try fm.removeItem(atPath: "\(d.configDir)/policies")
        try fm.createSymbolicLink(atPath: "\(d.configDir)/policies", withDestinationPath: "policies.v1")
        func run(_ policy: String) -> (out: String, record: JSON?) {
            let answer = W.asCaller(W.alice, d, [WarmPoolTests.submit("echo $A", policy: policy)]).first?["result"]
            return (WarmPoolTests.logs(d, answer?["id"]?.intValue ?? 0), answer)
        }
        #expect(run("p").out == "one\n")
        #expect(run("p").out == "one\n")
        try fm.createSymbolicLink(atPath: "\(d.configDir)/policies.next", withDestinationPath: "policies.v2")
        #expect(rename("\(d.configDir)/policies.next", "\(d.configDir)/policies") == 0)
        #expect(run("p").out == "two\n")

        // A profile only its owner's group may also write: refused, and nothing kept.
        let profile = try String(contentsOfFile: "\(EndpointTests.repo)/Sources/CordonDefaults/profiles/seccomp/default.json", encoding: .utf8)
        try fm.createDirectory(atPath: "\(d.configDir)/profiles/seccomp", withIntermediateDirectories: true)
        try profile.write(toFile: "\(d.configDir)/profiles/seccomp/mine.json", atomically: true, encoding: .utf8)
        chmod("\(d.configDir)/profiles/seccomp/mine.json", 0o664)
        try ("[policy]\nname = \"s\"\nextends = [\"default\"]\n[seccomp]\nprofile = \"mine\"\n" + Self.users)
            .write(toFile: "\(d.configDir)/policies.v2/s.toml", atomically: true, encoding: .utf8)
        let refused = run("s").record
        #expect(refused?["exitCode"] != .int(0), "\(String(describing: refused?.text))")
        chmod("\(d.configDir)/profiles/seccomp/mine.json", 0o644)
        let fixed = run("s")
        let listed = try d.call("policy.list").arrayValue?.first { $0["name"] == .string("s") }?["hash"]
        #expect(fixed.out == "\n" && fixed.record?["policyHash"] == listed, "\(String(describing: fixed.record?.text)) \(String(describing: listed))")
    }
}
