import CordonConfig
import CordonJSON
import CordonSandbox
import CordonServices
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Servers that misbehave on purpose, against the connection and the pool: what they may cost
/// the daemon is bounded by the deadlines its callers give, and nothing they do outlives a stop.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct HostileServerTests {
    static func spec(_ script: String) throws -> SandboxedProcess.Spec {
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy("default"), cacheDir: nil, callerEnvironment: [:])
        return SandboxedProcess.Spec(plan: plan, argv: ["/usr/bin/python3", "-u", "-c", script],
                                     environment: SandboxEnvironment(runtimeDir: JSONRPCConnectionTests.runtimeDir))
    }

    static func connect(_ script: String) throws -> JSONRPCConnection {
        try JSONRPCConnection(process: try SandboxedProcess(try spec(script)))
    }

    final class Slot<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: T?
        var value: T? {
            get { lock.lock(); defer { lock.unlock() }; return stored }
            set { lock.lock(); stored = newValue; lock.unlock() }
        }
    }

    /// A server that stops reading its stdin while a line of ours still sits in the pipe: a
    /// request longer than the room left must fail at its deadline, not block the caller (and
    /// every later writer, the reader's refusals included) for as long as the server likes.
    @Test func aServerThatStopsReadingCannotHoldASendPastItsDeadline() throws {
        let c = try Self.connect("import time\ntime.sleep(600)\n")
        defer { c.process.stop(); c.process.wait(until: MonotonicClock.now + 20) }
        #expect(c.notify("hello", deadline: MonotonicClock.now + 5))
        let result = Slot<Result<JSON, JSONRPCConnection.CallError>>()
        let done = DispatchSemaphore(value: 0)
        let big = JSON.string(String(repeating: "a", count: 1 << 20))
        Thread.detachNewThread {
            result.value = c.call("echo", big, deadline: MonotonicClock.now + 1)
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success, "the call outlived its deadline by more than 9 s")
        // Whichever noticed first: the writer (sendFailed) or the reader's expiry (timeout).
        #expect(result.value == .failure(.sendFailed) || result.value == .failure(.timeout))
    }

    /// A line cut short at its deadline must not swallow the next one: a server that resumes
    /// reading sees the torn line end, and the next request whole.
    @Test func aLineCutShortDoesNotSwallowTheNext() throws {
        let c = try Self.connect(#"""
            import json, sys, time
            time.sleep(2)
            for line in sys.stdin:
                try: m = json.loads(line)
                except ValueError: continue
                if "id" in m: sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": m.get("params")}) + "\n"); sys.stdout.flush()
            """#)
        defer { c.process.stop(); c.process.wait(until: MonotonicClock.now + 20) }
        #expect(c.notify("hello", deadline: MonotonicClock.now + 5))
        let big = JSON.string(String(repeating: "a", count: 1 << 20))
        let cut = c.call("echo", big, deadline: MonotonicClock.now + 0.5)
        #expect(cut == .failure(.sendFailed) || cut == .failure(.timeout))
        #expect(c.call("echo", .string("whole"), deadline: MonotonicClock.now + 15) == .success(.string("whole")))
    }

    /// A server that closes its stdout and keeps running has ended its stream: calls fail at once
    /// with `.closed`, not each at its deadline.
    @Test func aServerThatClosesItsStdoutEndsTheStream() throws {
        let c = try Self.connect("import os, sys, time\nsys.stdin.readline()\nos.close(1)\ntime.sleep(600)\n")
        defer { c.process.stop(); c.process.wait(until: MonotonicClock.now + 20) }
        let start = MonotonicClock.now
        #expect(c.call("echo", .int(1), deadline: MonotonicClock.now + 15) == .failure(.closed))
        #expect(MonotonicClock.now - start < 5)
        #expect(!c.isOpen)
    }

    /// A pool definition whose handshake takes a while after the server's answer (as MCP's does:
    /// initialize, then the initialized notification, then a listing).
    static func slowHandshake(_ settings: ServicePool.Settings, script: @escaping @Sendable () -> String) -> ServicePool.Definition {
        ServicePool.Definition(settings: settings, spec: { _ in try spec(script()) }, connect: { process, _ in
            SlowClient(try JSONRPCConnection(process: process))
        })
    }

    /// The echo protocol, with a handshake that goes on for a while after the server's answer.
    final class SlowClient: ServiceClient {
        let connection: JSONRPCConnection
        init(_ c: JSONRPCConnection) { connection = c }
        var isOpen: Bool { connection.isOpen }
        func ready(deadline: Double) throws(ServicePool.ServiceError) -> JSON {
            guard case .success(let v) = connection.call("echo", .string("hello"), deadline: deadline) else { throw ServicePool.ServiceError("handshake") }
            Thread.sleep(forTimeInterval: 0.8)
            return v
        }
        func healthy(deadline: Double) -> Bool { connection.call("echo", .string("ping"), deadline: deadline) == .success(.string("ping")) }
    }

    static let echoServer = #"""
        import json, os, sys
        for line in sys.stdin:
            m = json.loads(line)
            if "id" in m and m.get("method") == "echo":
                sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": m.get("params")}) + "\n"); sys.stdout.flush()
                if DIE: os._exit(0)
        """#

    /// An instance that answers its handshake and dies before the pool admits it: its exit must
    /// not be lost (it would hold its owner's only slot, never picked, until a health check).
    @Test func anInstanceThatDiesDuringItsHandshakeDoesNotHoldTheSlot() throws {
        var s = ServicePool.Settings()
        s.maxInstances = 1
        s.healthIntervalSeconds = 120
        s.backoffBaseSeconds = 0.05
        s.backoffMaxSeconds = 0.1
        final class Count: @unchecked Sendable { let lock = NSLock(); var n = 0
            func next() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n } }
        let count = Count()
        let pool = try ServicePool(definitions: ["echo": Self.slowHandshake(s) {
            (count.next() == 1 ? "DIE = True\n" : "DIE = False\n") + Self.echoServer
        }], seed: 1)
        defer { pool.stopAll(until: MonotonicClock.now + 20) }
        let key = ServicePool.Key(service: "echo", owner: 1001)
        let start = MonotonicClock.now
        let lease = pool.lease(key, deadline: MonotonicClock.now + 10)
        guard case .success(let l) = lease else { Issue.record("no instance after \(MonotonicClock.now - start) s: \(lease)"); return }
        #expect((l.client as! SlowClient).connection.call("echo", .int(7), deadline: MonotonicClock.now + 10) == .success(.int(7)))
        #expect(pool.stats(key).failures == 1)
        l.release()
    }

    /// After `stopAll` nothing starts again, min_instances or not.
    @Test func nothingStartsAfterStopAll() throws {
        var s = ServicePool.Settings()
        s.minInstances = 1
        let pool = try ServicePool(definitions: ["echo": Self.slowHandshake(s) { "DIE = False\n" + Self.echoServer }])
        let key = ServicePool.Key(service: "echo", owner: 1001)
        try pool.lease(key, deadline: MonotonicClock.now + 20).get().release()
        let starts = pool.stats(key).starts
        pool.stopAll(until: MonotonicClock.now + 20)
        Thread.sleep(forTimeInterval: 2)
        let after = pool.stats(key)
        #expect(after.starts == starts && after.instances == 0 && after.starting == 0, "\(after)")
        #expect(pool.pids(key).isEmpty)
        pool.stopAll(until: MonotonicClock.now + 20)  // whatever did start
    }

    /// What a server writes to stderr reaches a failure's reason, which callers see and logs keep:
    /// its control characters (a terminal escape, a carriage return that rewrites a log line, a
    /// bidi override) never do.
    @Test func aServersStderrReachesAReasonOnlyAsPrintableText() throws {
        var s = ServicePool.Settings()
        s.maxRestarts = 0
        let script = "import sys\nsys.stderr.write('boot \\x1b[2J\\x1b]0;owned\\x07 ok\\rcordond: all good \\u202e1gnp.exe\\n'); sys.exit(7)\n"
        let pool = try ServicePool(definitions: ["echo": Self.slowHandshake(s) { script }])
        defer { pool.stopAll(until: MonotonicClock.now + 20) }
        let key = ServicePool.Key(service: "echo", owner: 1001)
        guard case .failure(let error) = pool.lease(key, deadline: MonotonicClock.now + 20) else { Issue.record("leased a server that exits"); return }
        #expect(error.message.contains("boot ?[2J?]0;owned? ok?cordond: all good ?1gnp.exe"), "\(error.message)")
        #expect(!error.message.unicodeScalars.contains { $0.properties.generalCategory == .control || $0.value == 0x202e })
    }

    /// What a server writes costs the daemon's reader per line, outside the sandbox's cgroup: a
    /// server that writes only newlines (one byte a line, next to no CPU of its own) would keep
    /// a daemon core busy for as long as it liked. Lines that answer no call have a budget per
    /// second (`maxUnsolicitedPerSecond`); past it the connection ends and the process is
    /// stopped, so the daemon's cost stays bounded.
    @Test func aFloodOfEmptyLinesCostsTheDaemonAboutWhatItCostsTheServer() throws {
        let c = try Self.connect(#"""
            import json, os, sys
            for line in sys.stdin:
                m = json.loads(line)
                data = b"\n" * (256 * 1024)
                while data: data = data[os.write(1, data):]
                os.write(1, (json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": "after"}) + "\n").encode())
            """#)
        func cpu() -> Double {
            var ru = rusage()
            getrusage(RUSAGE_SELF.rawValue, &ru)
            return Double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + Double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6
        }
        _ = c.call("echo", deadline: MonotonicClock.now + 30)  // python is up
        let before = cpu()
        #expect(c.call("flood", deadline: MonotonicClock.now + 60) == .failure(.closed))
        let ours = cpu() - before
        #expect(c.endedOverBudget && !c.isOpen)
        #expect(c.protocolErrors <= 2 * c.maxUnsolicitedPerSecond, "\(c.protocolErrors) lines read past a budget of \(c.maxUnsolicitedPerSecond)")
        #expect(c.process.wait(until: MonotonicClock.now + 20))
        let theirs = (c.process.result?.cpuUserSeconds ?? 0) + (c.process.result?.cpuSystemSeconds ?? 0)
        #expect(ours <= 20 * theirs + 0.25, "the daemon spent \(ours) s of CPU on what cost the server \(theirs) s")
    }

    /// The reader answers a server's request (refuses it) through the same lock as callers'
    /// sends. A caller whose large request waits for the server to read holds that lock; a
    /// server that meanwhile sends a request, then a large answer, and reads again only after
    /// (as a single-threaded server does) blocks the reader on the lock, the server on its full
    /// stdout, the caller on its full stdin: nothing moves until the caller's deadline, and no
    /// other call's deadline is kept until then. The reader's refusals never wait on a caller
    /// now (`trySend`: dropped when the writer is busy).
    @Test func aCallersStalledSendHoldsUpTheReader() throws {
        let c = try Self.connect(#"""
            import json, os, sys, time
            first = json.loads(sys.stdin.readline())
            time.sleep(1)  # not reading: the caller's large request fills the pipe meanwhile
            out = [json.dumps({"jsonrpc": "2.0", "id": "p1", "method": "ping"}),
                   json.dumps({"jsonrpc": "2.0", "id": first["id"], "result": "x" * (1 << 20)})]
            data = ("\n".join(out) + "\n").encode()
            while data: data = data[os.write(1, data):]
            for line in sys.stdin: pass
            """#)
        defer { c.process.stop(); c.process.wait(until: MonotonicClock.now + 30) }
        let first = Slot<Result<JSON, JSONRPCConnection.CallError>>()
        let done = DispatchSemaphore(value: 0)
        let start = MonotonicClock.now
        Thread.detachNewThread {
            first.value = c.call("first", deadline: MonotonicClock.now + 4)
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.3)
        let big = JSON.string(String(repeating: "b", count: 2 << 20))
        Thread.detachNewThread { _ = c.call("big", big, deadline: MonotonicClock.now + 15) }
        let returned = done.wait(timeout: .now() + 20) == .success
        let took = MonotonicClock.now - start
        #expect(returned && took < 6, "a call with a 4 s deadline returned after \(took) s: \(String(describing: first.value))")
    }

    /// A server that leaves a daemon holding its stdout and exits: the daemon dies with the
    /// sandbox (cordon-init ends the namespace when the workload exits), so the stream ends and
    /// the connection closes promptly.
    @Test func aDaemonTheServerForkedDoesNotKeepTheStreamOpen() throws {
        let c = try Self.connect("import os, sys, time\nsys.stdin.readline()\nif os.fork() == 0:\n    time.sleep(600)\nos._exit(0)\n")
        defer { c.process.stop(); c.process.wait(until: MonotonicClock.now + 20) }
        let start = MonotonicClock.now
        #expect(c.call("echo", deadline: MonotonicClock.now + 15) == .failure(.closed))
        #expect(c.process.wait(until: MonotonicClock.now + 10))
        #expect(MonotonicClock.now - start < 5)
        #expect(c.process.result?.exitCode == 0)
    }

    /// One owner's instances that keep dying fail that owner's service only.
    @Test func anOwnerWhoseInstancesKeepDyingFailsOnlyItself() throws {
        var s = ServicePool.Settings()
        s.maxRestarts = 1
        s.restartWindowSeconds = 30
        s.backoffBaseSeconds = 0.05
        s.backoffMaxSeconds = 0.1
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy("default"), cacheDir: nil, callerEnvironment: [:])
        let definition = ServicePool.Definition(settings: s, spec: { key in
            let prelude = key.owner == 1001 ? "import sys; sys.exit(7)\n" : ""
            return SandboxedProcess.Spec(plan: plan, argv: ["/usr/bin/python3", "-u", "-c", prelude + JSONRPCConnectionTests.server],
                                         environment: SandboxEnvironment(runtimeDir: JSONRPCConnectionTests.runtimeDir))
        }, connect: { process, _ in ServicePoolTests.EchoClient(try JSONRPCConnection(process: process)) })
        let pool = try ServicePool(definitions: ["echo": definition], seed: 3)
        defer { pool.stopAll(until: MonotonicClock.now + 20) }
        let alice = ServicePool.Key(service: "echo", owner: 1001), bob = ServicePool.Key(service: "echo", owner: 1002)
        guard case .failure = pool.lease(alice, deadline: MonotonicClock.now + 20) else { Issue.record("alice leased"); return }
        #expect(pool.stats(alice).failed != nil)
        let lease = try pool.lease(bob, deadline: MonotonicClock.now + 20).get()
        #expect(lease.rpc.call("echo", .int(1), deadline: MonotonicClock.now + 10) == .success(.int(1)))
        #expect(pool.stats(bob).failed == nil && pool.stats(bob).failures == 0)
        lease.release()
    }
}
