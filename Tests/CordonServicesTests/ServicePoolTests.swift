import CordonConfig
import CordonJSON
import CordonSandbox
import CordonServices
import CordonSystem
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The pool with real sandboxed instances (the JSON-RPC server of JSONRPCConnectionTests):
/// on-demand start, per-owner instances, a kill mid-call, a server that dies at start until it
/// is fixed, a hang, a failed health check, idle stop, waits that expire.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ServicePoolTests {
    final class Switch: @unchecked Sendable {
        let lock = NSLock()
        private var value: String
        init(_ v: String) { value = v }
        var mode: String { get { lock.lock(); defer { lock.unlock() }; return value } set { lock.lock(); value = newValue; lock.unlock() } }
    }

    /// `mode`: "ok", "die-at-start" (writes a reason to stderr and exits 7 before reading).
    static func definition(_ settings: ServicePool.Settings, mode: Switch = Switch("ok")) -> ServicePool.Definition {
        let store = PolicyStore(configDir: nil)
        let plan = try! store.spawnPlan(for: try! store.loadPolicy("default"), cacheDir: nil, callerEnvironment: [:])
        return ServicePool.Definition(settings: settings, spec: { _ in
            let prelude = mode.mode == "die-at-start" ? "import sys; sys.stderr.write('cannot open the model file\\n'); sys.exit(7)\n" : ""
            return SandboxedProcess.Spec(plan: plan, argv: ["/usr/bin/python3", "-u", "-c", prelude + JSONRPCConnectionTests.server],
                                         environment: SandboxEnvironment(runtimeDir: JSONRPCConnectionTests.runtimeDir))
        }, connect: { process, _ in EchoClient(try JSONRPCConnection(process: process)) })
    }

    /// The test server's protocol: `echo` is both the handshake and the health check.
    final class EchoClient: ServiceClient {
        let connection: JSONRPCConnection
        init(_ c: JSONRPCConnection) { connection = c }
        var isOpen: Bool { connection.isOpen }
        func ready(deadline: Double) throws(ServicePool.ServiceError) -> JSON {
            switch connection.call("echo", .string("hello"), deadline: deadline) {
            case .success(let v): return v
            case .failure(let e): throw ServicePool.ServiceError("handshake: \(e)")
            }
        }
        func healthy(deadline: Double) -> Bool { connection.call("echo", .string("ping"), deadline: deadline) == .success(.string("ping")) }
    }

    static func deadline(_ s: Double = 20) -> Double { MonotonicClock.now + s }
    static let alice = ServicePool.Key(service: "echo", owner: 1001)
    static let bob = ServicePool.Key(service: "echo", owner: 1002)

    @Test func startsOnDemandAndKeepsOwnersApart() throws {
        var s = ServicePool.Settings()
        s.concurrency = 1
        s.maxInstances = 2
        let pool = try ServicePool(definitions: ["echo": Self.definition(s)])
        defer { pool.stopAll(until: Self.deadline()) }
        #expect(pool.stats(Self.alice).instances == 0)
        let a1 = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        #expect(a1.handshake == .string("hello"))
        #expect(a1.rpc.call("echo", .int(1), deadline: Self.deadline()) == .success(.int(1)))
        // Its one slot is taken: a second call gets a second instance.
        let a2 = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        #expect(a2.instance != a1.instance)
        let b = try pool.lease(Self.bob, deadline: Self.deadline()).get()
        #expect(Set(pool.pids(Self.alice)).isDisjoint(with: pool.pids(Self.bob)))
        #expect(pool.pids(Self.alice).count == 2 && pool.pids(Self.bob).count == 1)
        // Both of alice's taken and at the limit: a third waits, and gets the first one freed.
        let start = MonotonicClock.now
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { a1.release() }
        let a3 = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        #expect(a3.instance == a1.instance && MonotonicClock.now - start >= 0.25)
        #expect(pool.stats(Self.alice).starts == 2)
        a2.release(); a3.release(); b.release()
    }

    @Test func aKillMidCallFailsThatCallAndTheNextGetsARestartedInstance() throws {
        let pool = try ServicePool(definitions: ["echo": Self.definition(ServicePool.Settings())])
        defer { pool.stopAll(until: Self.deadline()) }
        let lease = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        let pid = try #require(pool.pids(Self.alice).first)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { kill(pid, SIGKILL) }
        #expect(lease.rpc.call("sleep", .object([("seconds", .int(5))]), deadline: Self.deadline()) == .failure(.closed))
        lease.release()
        let next = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        #expect(next.instance != lease.instance)
        #expect(next.rpc.call("echo", .string("again"), deadline: Self.deadline()) == .success(.string("again")))
        // The death is counted once its sandbox has ended (it may end after the next lease).
        var counted = false
        for _ in 0..<40 where !counted { counted = pool.stats(Self.alice).failures == 1; if !counted { Thread.sleep(forTimeInterval: 0.05) } }
        #expect(counted && pool.stats(Self.alice).starts == 2)
        next.release()
    }

    @Test func aServerThatDiesAtStartIsFailedWithItsReasonUntilItIsFixed() throws {
        var s = ServicePool.Settings()
        s.maxRestarts = 2
        s.restartWindowSeconds = 2
        s.backoffBaseSeconds = 0.05
        s.backoffMaxSeconds = 0.2
        let mode = Switch("die-at-start")
        let told = Mutex<[(ServicePool.Key, String, Bool)]>([])
        let pool = try ServicePool(definitions: ["echo": Self.definition(s, mode: mode)], seed: 1,
                                   onFailure: { key, reason, exhausted in told.withLock { $0.append((key, reason, exhausted)) } })
        defer { pool.stopAll(until: Self.deadline()) }
        // Each lease learns at once why the start failed; the third failure within the window
        // marks the service failed.
        for _ in 0..<3 {
            guard case .failure(let error) = pool.lease(Self.alice, deadline: Self.deadline()) else { Issue.record("leased a server that dies at start"); return }
            #expect(error.message.contains("cannot open the model file"), "\(error)")
        }
        #expect(pool.stats(Self.alice).starts == 3)
        guard case .failure(let error) = pool.lease(Self.alice, deadline: Self.deadline()) else { Issue.record("leased a failed service"); return }
        #expect(error.message.contains("3 failures within 2 s"), "\(error)")
        #expect(pool.stats(Self.alice).failed != nil)
        // Each failure was told (for the log) with its reason and the server's stderr, and kept
        // with its time but without the stderr, which a shared server may fill with other users'
        // calls; the third spent the budget. (Told from the pool's threads: within a moment.)
        let last = try #require(pool.stats(Self.alice).lastFailure)
        #expect(last.reason.hasPrefix("start failed") && !last.reason.contains("cannot open the model file"), "\(last.reason)")
        #expect(MonotonicClock.now - last.at < 5)
        for _ in 0..<100 where told.withLock({ $0.count }) < 3 { Thread.sleep(forTimeInterval: 0.02) }
        let calls = told.withLock { $0 }
        #expect(calls.count == 3 && calls.allSatisfy { $0.0 == Self.alice && $0.1.contains("cannot open the model file") })
        #expect(calls.map(\.2) == [false, false, true])
        // Refused at once while failed.
        let start = MonotonicClock.now
        #expect(throws: ServicePool.ServiceError.self) { try pool.lease(Self.alice, deadline: Self.deadline()).get() }
        #expect(MonotonicClock.now - start < 0.1)
        // Fixed, and the window passed: it starts again.
        mode.mode = "ok"
        Thread.sleep(forTimeInterval: 2.1)
        let lease = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        #expect(lease.rpc.call("echo", .int(2), deadline: Self.deadline()) == .success(.int(2)))
        lease.release()
    }

    @Test func anUnresponsiveInstanceIsReplaced() throws {
        let pool = try ServicePool(definitions: ["echo": Self.definition(ServicePool.Settings())])
        defer { pool.stopAll(until: Self.deadline()) }
        let lease = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        let pid = try #require(pool.pids(Self.alice).first)
        #expect(lease.rpc.call("ignore", deadline: MonotonicClock.now + 0.2) == .failure(.timeout))
        lease.release(unresponsive: true)
        let next = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        #expect(next.instance != lease.instance)
        #expect(!pool.pids(Self.alice).contains(pid) || kill(pid, 0) != 0)
        next.release()
    }

    @Test func aFailedHealthCheckReplacesTheInstance() throws {
        var s = ServicePool.Settings()
        s.healthIntervalSeconds = 0.2
        let pool = try ServicePool(definitions: ["echo": Self.definition(s)])
        defer { pool.stopAll(until: Self.deadline()) }
        let lease = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        let first = lease.instance
        // Keep it busy and silent past its health check's deadline: it sleeps 12 s in one call.
        lease.rpc.start("sleep", .object([("seconds", .int(12))]), deadline: Self.deadline(30)) { _ in }
        lease.release()
        var replaced = false
        for _ in 0..<150 where !replaced {
            Thread.sleep(forTimeInterval: 0.1)
            if let l = try? pool.lease(Self.alice, deadline: Self.deadline(1)).get() {
                replaced = l.instance != first
                l.release()
            }
        }
        #expect(replaced)
    }

    @Test func anIdleInstanceIsStopped() throws {
        var s = ServicePool.Settings()
        s.idleTimeoutSeconds = 0.3
        let pool = try ServicePool(definitions: ["echo": Self.definition(s)])
        defer { pool.stopAll(until: Self.deadline()) }
        try pool.lease(Self.alice, deadline: Self.deadline()).get().release()
        #expect(pool.stats(Self.alice).instances == 1)
        var stopped = false
        for _ in 0..<50 where !stopped {
            Thread.sleep(forTimeInterval: 0.1)
            stopped = pool.stats(Self.alice).instances == 0 && pool.pids(Self.alice).isEmpty
        }
        #expect(stopped)
    }

    @Test func aWaitWithNoFreeInstanceExpires() throws {
        var s = ServicePool.Settings()
        s.concurrency = 1
        s.maxInstances = 1
        let pool = try ServicePool(definitions: ["echo": Self.definition(s)])
        defer { pool.stopAll(until: Self.deadline()) }
        let held = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        let start = MonotonicClock.now
        let second = pool.lease(Self.alice, deadline: MonotonicClock.now + 0.3)
        #expect(MonotonicClock.now - start < 2)
        guard case .failure(let e) = second else { Issue.record("leased past the limit"); return }
        #expect(e.message.contains("was free in time"))
        held.release()
    }

    /// A lease handed to a waiter whose completion drops it (its deinit releases it, as the API
    /// allows) must not end while the pool's lock is held: the release then waited for the lock
    /// its own thread held, and every owner's leases with it, for good.
    @Test func aLeaseDroppedByItsCompletionDoesNotDeadlockThePool() throws {
        var s = ServicePool.Settings()
        s.concurrency = 1
        s.maxInstances = 1
        let pool = try ServicePool(definitions: ["echo": Self.definition(s)])
        final class Held: @unchecked Sendable { var lease: ServicePool.Lease? }
        let held = Held()
        held.lease = try pool.lease(Self.alice, deadline: Self.deadline()).get()
        let pid = try #require(pool.pids(Self.alice).first)
        for i in 0..<200 {
            let handed = DispatchSemaphore(value: 0), released = DispatchSemaphore(value: 0)
            // Waits (the one slot is held), and drops what it gets.
            pool.lease(Self.alice, deadline: Self.deadline(5)) { _ in handed.signal() }
            Thread.detachNewThread { held.lease?.release(); released.signal() }
            let next = DispatchSemaphore(value: 0)
            guard released.wait(timeout: .now() + 5) == .success, handed.wait(timeout: .now() + 5) == .success else {
                Issue.record("the pool deadlocked at round \(i)")
                kill(pid, SIGKILL)  // its lock is held for good: stopAll would wait forever
                return
            }
            Thread.detachNewThread { held.lease = try? pool.lease(Self.alice, deadline: Self.deadline(5)).get(); next.signal() }
            guard next.wait(timeout: .now() + 10) == .success, held.lease != nil else {
                Issue.record("no lease at round \(i)")
                kill(pid, SIGKILL)
                return
            }
        }
        held.lease?.release()
        pool.stopAll(until: Self.deadline())
    }
}

extension ServicePool.Lease {
    var rpc: JSONRPCConnection { (client as! ServicePoolTests.EchoClient).connection }
}

/// `define`: a service's definition replaced while a call is on one of its instances, then
/// removed. The busy instance finishes its call and only then stops; new leases get the new
/// definition's instances; a removed service refuses leases and its last instance stops.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ServicePoolDefineTests {
    @Test func aReplacedDefinitionRetiresItsInstancesAfterTheirCalls() throws {
        let alice = ServicePoolTests.alice
        let pool = try ServicePool(definitions: ["echo": ServicePoolTests.definition(ServicePool.Settings())])
        defer { pool.stopAll(until: ServicePoolTests.deadline()) }
        let busy = try pool.lease(alice, deadline: ServicePoolTests.deadline()).get()
        let oldPid = try #require(pool.pids(alice).first)
        let answered = DispatchSemaphore(value: 0)
        let answer = ServicePoolTests.Switch("")
        DispatchQueue.global().async {
            if case .success(.string(let s)) = busy.rpc.call("sleep", .object([("seconds", .double(0.6))]), deadline: ServicePoolTests.deadline()) { answer.mode = s }
            answered.signal()
        }
        Thread.sleep(forTimeInterval: 0.1)
        pool.define("echo", ServicePoolTests.definition(ServicePool.Settings()))
        // The old instance takes no new call, but finishes the one it has.
        let fresh = try pool.lease(alice, deadline: ServicePoolTests.deadline()).get()
        #expect(fresh.instance != busy.instance)
        #expect(fresh.rpc.call("echo", .string("new"), deadline: ServicePoolTests.deadline()) == .success(.string("new")))
        #expect(kill(oldPid, 0) == 0, "stopped while busy")
        #expect(answered.wait(timeout: .now() + 20) == .success && answer.mode == "slept")
        busy.release()
        var gone = false
        for _ in 0..<100 where !gone { gone = !pool.pids(alice).contains(oldPid); if !gone { Thread.sleep(forTimeInterval: 0.05) } }
        #expect(gone, "the retired instance was not stopped after its call")
        fresh.release()

        pool.define("echo", nil)
        if case .failure(let e) = pool.lease(alice, deadline: ServicePoolTests.deadline(2)) {
            #expect(e.message.contains("no service"))
        } else {
            Issue.record("a removed service gave a lease")
        }
        var stopped = false
        for _ in 0..<100 where !stopped { stopped = pool.pids(alice).isEmpty; if !stopped { Thread.sleep(forTimeInterval: 0.05) } }
        #expect(stopped, "the removed service's idle instance still runs")
    }
}

/// `maxTotalInstances`: every owner's instances together. At the limit, a new owner's start
/// stops the least recently used idle instance of another owner and starts once it has ended;
/// with every instance busy, the lease waits for one to be free (and expires if none is).
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ServicePoolLimitTests {
    @Test func aNewOwnerTakesTheRoomOfTheIdlestInstance() throws {
        let pool = try ServicePool(definitions: ["echo": ServicePoolTests.definition(ServicePool.Settings())], maxTotalInstances: 2)
        defer { pool.stopAll(until: ServicePoolTests.deadline()) }
        let carol = ServicePool.Key(service: "echo", owner: 1003)
        let a = try pool.lease(ServicePoolTests.alice, deadline: ServicePoolTests.deadline()).get()
        a.release()
        Thread.sleep(forTimeInterval: 0.05)
        let b = try pool.lease(ServicePoolTests.bob, deadline: ServicePoolTests.deadline()).get()
        // Two instances, bob's busy: carol's start stops alice's (idle, used longest ago).
        let alicePid = try #require(pool.pids(ServicePoolTests.alice).first)
        let c = try pool.lease(carol, deadline: ServicePoolTests.deadline()).get()
        #expect(c.rpc.call("echo", .string("carol"), deadline: ServicePoolTests.deadline()) == .success(.string("carol")))
        #expect(pool.pids(ServicePoolTests.alice).isEmpty && kill(alicePid, 0) != 0, "alice's idle instance was not stopped")
        #expect(pool.pids(ServicePoolTests.bob).count == 1, "bob's busy instance was stopped")
        // Both busy: alice waits, and gets nothing before her deadline.
        if case .success = pool.lease(ServicePoolTests.alice, deadline: MonotonicClock.now + 1) {
            Issue.record("a fourth instance started past the limit")
        }
        #expect(pool.stats(ServicePoolTests.alice).instances == 0)
        b.release()
        c.release()
    }
}
