import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Review of issue 17 (attacker's view), through a real cordond: failing tests that demonstrate
/// defects reachable by an unprivileged local user.
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct ReviewToolAttackTests {
    static let venv = ToolMethodsTests.venv
    static let getTime = JSON.object([("timezone", .string("UTC"))])

    /// A user allowed to call an MCP tool (nobody may call time.*) asks for "time." — a trailing
    /// dot. The gateway's `name.split(separator: ".", maxSplits: 1)[1]` traps: cordond (root, every
    /// user's tasks and tools) dies. Reachable through `cordon mcp serve` too: any MCP client (an
    /// agent steered by a prompt injection) may name any tool.
    @Test func aToolNameWithATrailingDotDoesNotKillCordond() throws {
        let d = try ToolMethodsTests.daemon()
        // Listed once, as a daemon that has served anything has.
        #expect(try d.call("tool.call", .object([("name", .string("time.get_current_time")), ("arguments", Self.getTime)]))["outcome"] == .string("ok"))
        let answers = d.asUser(65534, [ToolMethodsTests.request(1, "tool.call", .object([("name", .string("time.")), ("arguments", .object([]))]))], timeout: 10)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(d.process?.isRunning == true, "cordond died: \(answers)\n\(d.log().suffix(2000))")
        #expect(answers.first?["result"]?["outcome"] == .string("refused"), "\(answers)")
    }
}
