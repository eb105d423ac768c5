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
}
