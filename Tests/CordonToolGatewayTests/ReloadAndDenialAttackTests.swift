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

/// Reloads and denials on records, from the second attacker's review of issue 17 (each test
/// failed before its fix). Real sandboxes, the hostile server of GatewayAttackTests.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ReloadAndDenialAttackTests {
    static let server = GatewayAttackTests.server

    static func policy(_ name: String, wallTime: String) throws -> String {
        let path = "\(ToolGatewayTests.dir)/\(name).toml"
        try """
            [policy]
            name = "\(name)"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests"]
            [limits]
            wall_time = "\(wallTime)"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A call that waits for its instance's start while the manifest is changed to another
    /// policy runs on an instance of the new definition (the pool serves waiting leases with
    /// it), and its row names the policy and hash of the instance it ran on: a pair that
    /// exists. (Before the fix it said "policy A, hash of B".)
    @Test func aCallRacingAReloadRecordsOnePolicysNameWithAnothersHash() throws {
        let a = try Self.policy("reload-a", wallTime: "1h")
        let b = try Self.policy("reload-b", wallTime: "2h")
        let v1 = try ToolGatewayTests.manifest("repl", """
            [tool]
            kind = "mcp"
            description = "Slow to start, policy A"
            command = ["/usr/bin/python3", "-I", "\(Self.server)", "--slow-start", "3"]
            policy = "\(a)"
            timeout = "20s"
            """)
        let v2 = try ToolGatewayTests.manifest("repl", """
            [tool]
            kind = "mcp"
            description = "Policy B"
            command = ["/usr/bin/python3", "-I", "\(Self.server)"]
            policy = "\(b)"
            timeout = "20s"
            """)
        let g = try ToolGatewayTests.gateway([v1])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let raced = ToolGatewayTests.Wait()
        g.call("repl.greet", arguments: .object([("name", .string("x"))]), caller: ToolGatewayTests.alice,
               deadline: MonotonicClock.now + 30) { raced.set($0) }
        Thread.sleep(forTimeInterval: 1)  // its instance (policy A) is starting
        #expect(g.update([v2]) == ["repl"])
        let r = try #require(raced.get())
        // A call made after the reload: the pair B's name and B's hash.
        let fresh = try ToolGatewayTests.call(g, "repl.greet", .object([("name", .string("y"))]))
        #expect(fresh.record.outcome == .ok && fresh.record.policy == b, "\(fresh.record)")
        let hashB = try #require(fresh.record.policyHash)
        #expect(r.record.outcome == .ok, "\(r.record)")
        // It ran on an instance of B (the one the fresh call used, or another of B's).
        #expect((r.record.policyHash == hashB) == (r.record.policy == b),
                "the record says policy \(r.record.policy ?? "nil") with hash \(r.record.policyHash ?? "nil"), which is \(b)'s hash")
    }

    /// A shared instance serves every user at once: Bob's call tries to leave the policy
    /// (open_by_handle_at) while Alice's call is in flight on it, and Alice's record — hers to
    /// read with `cordon audit --calls` — does not carry it. (Before the fix it did: the
    /// instance's refusals since the call's start went on every row.)
    @Test func aSharedToolsDenialsOfOneUserAreOnAnotherUsersRecord() throws {
        let p = try Self.policy("shared-denials", wallTime: "1h")
        let m = try ToolGatewayTests.manifest("shared", """
            [tool]
            kind = "mcp"
            description = "A shared server"
            command = ["/usr/bin/python3", "-I", "\(Self.server)"]
            policy = "\(p)"
            shared = true
            timeout = "20s"
            """)
        let g = try ToolGatewayTests.gateway([m])
        defer { g.stop(until: MonotonicClock.now + 10) }
        // Started and listed.
        #expect(try ToolGatewayTests.call(g, "shared.greet", .object([("name", .string("x"))])).record.outcome == .ok)
        let alices = ToolGatewayTests.Wait()
        g.call("shared.slow", arguments: .object([("seconds", .double(2))]), caller: ToolGatewayTests.alice,
               deadline: MonotonicClock.now + 30) { alices.set($0) }
        Thread.sleep(forTimeInterval: 0.5)
        let bobs = try ToolGatewayTests.call(g, "shared.escape", .object([("secret", .string("/etc/shadow"))]), as: GatewayAttackTests.bob)
        // A shared instance's refusals are nobody's row: whose doing they were is unknown. They
        // go to the daemon as the instance's event (sharedInstanceDenials).
        #expect(bobs.record.outcome == .ok && bobs.record.denials.isEmpty, "\(bobs.record)")
        #expect(bobs.record.sharedInstanceDenials.contains(Denial(kind: .syscall, what: "open_by_handle_at")), "\(bobs.record)")
        let alice = try #require(alices.get())
        #expect(alice.record.outcome == .ok, "\(alice.record)")
        #expect(alice.record.denials.isEmpty,
                "Alice's call only slept; her record carries Bob's call's refusals: \(alice.record.denials)")
    }

    /// A command tool's schema tightened by a reload holds from then on, even when a call was
    /// compiling the old one as the update ran: v2 adds `required = ["must"]`, and `{}` is
    /// refused after the race. (A big schema — 9000 properties, as an admin's generated schema
    /// may be — makes the compile long enough to land an update in it. Before the fix, an
    /// update 0, 10 or 40 ms into the first call left the loose schema in force.)
    @Test func aSchemaTightenedByAReloadIsNotEnforcedAfterARacingCall() throws {
        func manifest(required: Bool) throws -> ToolManifest {
            var text = """
                [tool]
                kind = "command"
                description = "Echoes"
                policy = "python-tool"
                argv = ["/usr/bin/python3", "-I", "-c", "print('ran')"]
                timeout = "20s"
                [tool.input_schema]
                type = "object"

                """
            if required { text += "required = [\"must\"]\n" }
            for i in 0..<9000 { text += "[tool.input_schema.properties.p\(i)]\ntype = \"string\"\nminLength = 1\n" }
            return try ToolGatewayTests.manifest("echo", text)
        }
        let loose = try manifest(required: false), tight = try manifest(required: true)
        var stale: [Double] = []
        // Without a race the update holds: {} is refused once v2 is in.
        do {
            let g = try ToolGatewayTests.gateway([loose])
            defer { g.stop(until: MonotonicClock.now + 10) }
            #expect(try ToolGatewayTests.call(g, "echo", .object([])).record.outcome == .ok)
            g.update([tight])
            #expect(try ToolGatewayTests.call(g, "echo", .object([])).record.outcome == .invalidArguments)
        }
        for delay in [0.0, 0.01, 0.04, 1.0] {
            let g = try ToolGatewayTests.gateway([loose])
            defer { g.stop(until: MonotonicClock.now + 10) }
            let first = ToolGatewayTests.Wait()
            // On a thread of its own: `call` validates (compiles) before it returns.
            Thread.detachNewThread {
                g.call("echo", arguments: .object([]), caller: ToolGatewayTests.alice, deadline: MonotonicClock.now + 30) { first.set($0) }
            }
            Thread.sleep(forTimeInterval: delay)
            #expect(g.update([tight]) == ["echo"])
            _ = first.get()
            let after = try ToolGatewayTests.call(g, "echo", .object([]))
            if after.record.outcome != .invalidArguments { stale.append(delay) }
        }
        #expect(stale.isEmpty, "after the update to required = [\"must\"], {} was accepted (the old schema kept) with the update \(stale) s into the first call")
    }

    /// A denial is on the record of the call during which it happened: the supervisor tells
    /// the instance's DenialLog before the sandbox has its answer (egress too: before the 403 or
    /// NXDOMAIN), so a server that makes one refused syscall and then answers cannot get its
    /// answer read first. 5000 calls of `deny`, each followed by a `greet`: every `deny` record
    /// names open_by_handle_at, no `greet` record does. (Before the fix, 2 and 1 in two runs
    /// lacked it.)
    @Test func aDenialIsLoggedAfterTheAnswerAndLandsOnTheNextCall() throws {
        let g = try GatewayAttackTests.hostileGateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let denial = Denial(kind: .syscall, what: "open_by_handle_at")
        var missing = 0, misplaced = 0
        let until = MonotonicClock.now + 120
        for _ in 0..<5000 where MonotonicClock.now < until {
            let d = try ToolGatewayTests.call(g, "repl.deny", .object([]))
            #expect(d.record.outcome == .ok, "\(d.record)")
            if !d.record.denials.contains(denial) { missing += 1 }
            let n = try ToolGatewayTests.call(g, "repl.greet", .object([("name", .string("x"))]))
            if n.record.denials.contains(denial) { misplaced += 1 }
        }
        #expect(missing == 0 && misplaced == 0, "deny calls without their denial: \(missing); greet calls carrying the previous call's: \(misplaced)")
    }
}
