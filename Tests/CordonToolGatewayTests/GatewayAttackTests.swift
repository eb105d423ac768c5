import CordonConfig
import CordonJSON
import CordonMCP
import CordonPolicy
import CordonSandbox
import CordonSystem
import CordonToolGateway
import CordonTools
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An attacker's view of the gateway (each test failed before its fix): a hostile server
/// (hostile_server.py) and hostile names, against real sandboxes. Calls of different users never
/// share what an instance listed, one user's deadlines never open another's breaker, a name
/// cannot index past its parts, a fallback never runs on a failed instance's reader thread, and
/// a call the tool did not do is not recorded as `ok`.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct GatewayAttackTests {
    static let bob = ToolGateway.Caller(uid: 1002, gid: 1002, pid: 3)
    static let server = "\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests/hostile_server.py"

    /// A non-shared MCP tool whose server (hostile_server.py) does what its caller's code tells it.
    static func hostileGateway() throws -> ToolGateway { try ToolGatewayTests.gateway([try hostileManifest()]) }

    static func hostileManifest() throws -> ToolManifest {
        let policy = "\(ToolGatewayTests.dir)/hostile-tool.toml"
        try """
            [policy]
            name = "hostile-tool"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests"]
            [limits]
            wall_time = "1h"
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let repl = try ToolGatewayTests.manifest("repl", """
            [tool]
            kind = "mcp"
            description = "A per-user Python REPL"
            command = ["/usr/bin/python3", "-I", "\(server)"]
            policy = "\(policy)"
            timeout = "10s"
            """)
        return repl
    }

    /// What an agent is shown (descriptions, schemas) and what its arguments are checked
    /// against are its own instance's listing. Bob controls his own instance (it runs his code),
    /// makes it list a hostile description and a schema that refuses everything and say its list
    /// changed; Alice, who never shared a process with Bob, still sees her instance's listing
    /// and her valid calls go through. (Before the fix the listing was one for all users, taken
    /// from whichever instance listed last.)
    @Test func oneUsersInstanceDecidesTheToolListAndSchemasOfAnother() throws {
        let g = try Self.hostileGateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let before = g.list(for: ToolGatewayTests.alice, deadline: MonotonicClock.now + 30)
        #expect(before.first { $0.name == "repl.greet" }?.description == "Greets", "\(before)")
        // Bob, in his own instance.
        let exec = try ToolGatewayTests.call(g, "repl.exec", .object([]), as: Self.bob)
        #expect(exec.record.outcome == .ok, "\(exec.record)")
        Thread.sleep(forTimeInterval: 0.5)  // the list_changed notification is read
        _ = g.list(for: Self.bob, deadline: MonotonicClock.now + 30)
        // Alice's view: her own instance never changed.
        let after = g.list(for: ToolGatewayTests.alice, deadline: MonotonicClock.now + 30)
        let description = after.first { $0.name == "repl.greet" }?.description
        #expect(description == "Greets", "Alice is shown what Bob's instance listed: \(description ?? "nil")")
        let call = try ToolGatewayTests.call(g, "repl.greet", .object([("name", .string("alice"))]))
        #expect(call.record.outcome == .ok, "Alice's valid call, checked against Bob's instance's schema: \(call.record)")
        #expect(ToolGatewayTests.text(call) == "hello alice")
    }

    /// A server that tries to leave its policy during a call — reads a host file that is not
    /// bound, opens a file by handle, looks up a name its allowlist does not have — is refused
    /// each time, and the call's record names what its instance was refused meanwhile.
    @Test func aServerTryingToEscapeIsRefusedAndTheDenialsAreOnTheCallsRecord() throws {
        let secretDir = "\(ToolGatewayTests.dir)/secret"
        mkdir(secretDir, 0o700)
        try "the host's secret".write(toFile: "\(secretDir)/key", atomically: true, encoding: .utf8)
        let policy = "\(ToolGatewayTests.dir)/escape-tool.toml"
        try """
            [policy]
            name = "escape-tool"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests"]
            [network]
            mode = "allowlist"
            allow = ["allowed.example:443"]
            [limits]
            wall_time = "1h"
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let m = try ToolGatewayTests.manifest("repl", """
            [tool]
            kind = "mcp"
            description = "Tries to escape"
            command = ["/usr/bin/python3", "-I", "\(Self.server)"]
            policy = "\(policy)"
            """)
        let g = try ToolGatewayTests.gateway([m])
        defer { g.stop(until: MonotonicClock.now + 10) }
        // A call before: its record has no denials (they are the call's, not the instance's).
        let calm = try ToolGatewayTests.call(g, "repl.greet", .object([("name", .string("x"))]))
        #expect(calm.record.outcome == .ok && calm.record.denials.isEmpty, "\(calm.record)")
        let r = try ToolGatewayTests.call(g, "repl.escape", .object([("secret", .string("\(secretDir)/key"))]))
        #expect(r.record.outcome == .ok, "\(r.record)")
        let seen = try JSON.parse(Array(ToolGatewayTests.text(r).utf8))
        #expect(seen["read"] == .string("No such file or directory"), "\(seen)")
        #expect(seen["open_by_handle_at"] == .string("Operation not permitted"), "\(seen)")
        #expect(seen["lookup"]?.stringValue?.contains("resolved") == false, "\(seen)")
        #expect(!ToolGatewayTests.text(r).contains("the host's secret"))
        #expect(r.record.denials.contains(Denial(kind: .syscall, what: "open_by_handle_at")), "\(r.record.denials)")
        #expect(r.record.denials.contains { $0.kind == .lookup && $0.what == "exfil.example" }, "\(r.record.denials)")
        // And the next call's record starts clean.
        let after = try ToolGatewayTests.call(g, "repl.greet", .object([("name", .string("y"))]))
        #expect(after.record.denials.isEmpty, "\(after.record.denials)")
    }

    /// A command tool's call is its whole sandbox: whatever it was refused is on its record.
    @Test func aCommandToolsDenialsAreOnItsRecord() throws {
        let g = try ToolGatewayTests.gateway([try ToolGatewayTests.manifest("python", ToolGatewayTests.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let code = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); print(libc.syscall(272 if os.uname().machine == 'x86_64' else 97, 0x10000000), ctypes.get_errno())"
        let r = try ToolGatewayTests.call(g, "python", .object([("code", .string(code))]))
        #expect(r.record.outcome == .ok && ToolGatewayTests.text(r) == "-1 1\n", "\(r.record) \(ToolGatewayTests.text(r))")
        #expect(r.record.denials == [Denial(kind: .syscall, what: "unshare")], "\(r.record.denials)")
    }

    /// A caller's shorter deadline "ends that caller's call and nothing else" (SECURITY.md): five
    /// calls of Bob's with a 50 ms deadline (a command tool, so no instance is involved at all)
    /// and Alice's next call still goes through. (Before the fix breakers were one per tool for
    /// everyone, and a caller's deadline counted as the tool's failure.)
    @Test func oneUsersShortDeadlinesOpenTheBreakerForEveryone() throws {
        let g = try ToolGatewayTests.gateway([try ToolGatewayTests.manifest("python", ToolGatewayTests.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let slow = JSON.object([("code", .string("import time; time.sleep(2)"))])
        for _ in 0..<5 {
            let r = try ToolGatewayTests.call(g, "python", slow, as: Self.bob, within: 0.05)
            #expect(r.record.outcome == .timeout || r.record.outcome == .unavailable, "\(r.record)")
        }
        let alice = try ToolGatewayTests.call(g, "python", .object([("code", .string("print('alice')"))]))
        #expect(alice.record.outcome == .ok, "Alice refused because of Bob's deadlines: \(alice.record)")
        #expect(ToolGatewayTests.text(alice) == "alice\n")
    }

    /// A name with a trailing dot ("repl.") is refused. (Before the fix it passed the kind check
    /// and reached `name.split(separator: ".", maxSplits: 1)[1]`: an index out of range, the
    /// whole daemon down.) Run in a child process (an exit test) so the suite survives a trap.
    @Test func aTrailingDotInAToolNameDoesNotCrash() async throws {
        await #expect(processExitsWith: .success) {
            let g = try GatewayAttackTests.hostileGateway()
            // Once listed (the usual state of a daemon that has served a call).
            _ = g.list(for: ToolGatewayTests.alice, deadline: MonotonicClock.now + 30)
            let r = try ToolGatewayTests.call(g, "repl.", .object([]))
            g.stop(until: MonotonicClock.now + 10)
            exit(r.record.outcome == .refused ? 0 : 1)
        }
    }

    /// A server that answers a call with `input_required` did not do the work (Cordon does not
    /// relay the input): the call is not recorded as `ok`.
    @Test func aCallTheToolDidNotDoIsNotRecordedAsOk() throws {
        let g = try Self.hostileGateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let r = try ToolGatewayTests.call(g, "repl.ask", .object([]))
        guard case .inputRequired? = r.outcome else {
            Issue.record("expected the server's input_required: \(String(describing: r.outcome))")
            return
        }
        #expect(r.record.outcome != .ok, "recorded as ok though no result came: \(r.record)")
    }

    /// `fallbacks = ["repl"]` — an MCP server's manifest name without a tool — is named by
    /// `ToolStore.check`, and a gateway given it anyway refuses that attempt. (Before the fix
    /// both passed it, and a call falling back to it trapped the daemon.)
    @Test func aFallbackNamingAnMCPServerWithoutAToolIsRefusedOrHarmless() async throws {
        let broken = try ToolGatewayTests.broken(fallback: "repl")
        let repl = try Self.hostileManifest()
        let problems = ToolStore(configDir: nil, policies: PolicyStore(configDir: nil)).check([broken, repl])
        #expect(problems["broken"]?.first?.message.contains("name one of its tools") == true, "\(problems)")
        // And a gateway given it anyway (the daemon loads what parses) refuses that attempt.
        await #expect(processExitsWith: .success, "a call that falls back to fallbacks = [\"repl\"] traps") {
            let broken = try ToolGatewayTests.broken(fallback: "repl")
            let g = try ToolGatewayTests.gateway([broken, try GatewayAttackTests.hostileManifest()])
            let r = try ToolGatewayTests.call(g, "broken.anything", .object([]))
            g.stop(until: MonotonicClock.now + 10)
            exit(r.record.outcome == .fallback("repl") || r.record.outcome == .unavailable || r.record.outcome == .refused ? 0 : 1)
        }
    }

    /// A failed call goes on to its fallbacks off the instance's reader thread: here the
    /// fallback's server takes 6 s to start, and a call the failed instance answers at once is
    /// answered at once. (Before the fix the fallback's blocking listing ran on the reader, and
    /// every other call on the instance waited for it.)
    @Test func aFallbackDoesNotStallTheOtherCallsOfTheInstanceThatFailed() throws {
        _ = try Self.hostileManifest()  // writes hostile-tool.toml
        let repl = try ToolGatewayTests.manifest("repl", """
            [tool]
            kind = "mcp"
            description = "A per-user Python REPL"
            command = ["/usr/bin/python3", "-I", "\(Self.server)"]
            policy = "\(ToolGatewayTests.dir)/hostile-tool.toml"
            fallbacks = ["slow.greet"]
            """)
        let slow = try ToolGatewayTests.manifest("slow", """
            [tool]
            kind = "mcp"
            description = "Takes 6 s to start"
            command = ["/usr/bin/python3", "-I", "\(Self.server)", "--slow-start", "6"]
            policy = "\(ToolGatewayTests.dir)/hostile-tool.toml"
            """)
        let g = try ToolGatewayTests.gateway([repl, slow])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let greet = JSON.object([("name", .string("x"))])
        #expect(try ToolGatewayTests.call(g, "repl.greet", greet).record.outcome == .ok)
        // A call that fails (a JSON-RPC error: protocol-error, which the fallbacks answer).
        let failed = ToolGatewayTests.Wait()
        g.call("repl.fail", arguments: greet, caller: ToolGatewayTests.alice, deadline: MonotonicClock.now + 30) { failed.set($0) }
        Thread.sleep(forTimeInterval: 1)
        let start = MonotonicClock.now
        let next = try ToolGatewayTests.call(g, "repl.greet", greet, within: 3)
        let took = MonotonicClock.now - start
        #expect(next.record.outcome == .ok && took < 2, "a call the instance answers at once took \(took) s: \(next.record.outcome)")
        _ = failed.get()
    }
}
