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

/// A JSON-RPC server in a real sandbox (the shipped default policy, python3 from /usr), driven
/// through `SandboxedProcess` and `JSONRPCConnection`: answers by id with many calls in flight,
/// notifications, the server's own requests refused, garbage counted and survived, a timeout, a
/// crash seen as the stream's end, and the sandbox's layers all there.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct JSONRPCConnectionTests {
    static let server = #"""
        import json, os, sys, time
        def send(obj):
            sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
        for line in sys.stdin:
            m = json.loads(line)
            if "method" not in m:
                if m.get("id") == "s1": send({"jsonrpc": "2.0", "method": "saw-refusal", "params": m.get("error")})
                continue
            method, i, p = m["method"], m.get("id"), m.get("params")
            if method == "echo": send({"jsonrpc": "2.0", "id": i, "result": p})
            elif method == "sleep": time.sleep(p["seconds"]); send({"jsonrpc": "2.0", "id": i, "result": "slept"})
            elif method == "fail": send({"jsonrpc": "2.0", "id": i, "error": {"code": -32000, "message": "it failed", "data": {"why": 1}}})
            elif method == "garbage":
                sys.stdout.write("this is not json\n{\"jsonrpc\": \"2.0\", \"id\": 999999, \"result\": 1}\n"); sys.stdout.flush()
                send({"jsonrpc": "2.0", "id": i, "result": "after garbage"})
            elif method == "notify":
                send({"jsonrpc": "2.0", "method": "note", "params": {"n": 1}}); send({"jsonrpc": "2.0", "id": i, "result": "noted"})
            elif method == "ask":
                send({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {}}); send({"jsonrpc": "2.0", "id": i, "result": "asked"})
            elif method == "whoami":
                send({"jsonrpc": "2.0", "id": i, "result": {"uid": os.getuid(), "pid": os.getpid(), "root": sorted(os.listdir("/"))}})
            elif method == "ignore": pass
            elif method == "crash": sys.stderr.write("crashing on purpose\n"); sys.stderr.flush(); os._exit(3)
        """#

    static let runtimeDir: String = {
        let dir = "/tmp/cordon-services-tests-\(getpid())"
        mkdir(dir, 0o755)
        chmod(dir, 0o755)
        return "\(dir)/run"
    }()

    final class Notes: @unchecked Sendable {
        let lock = NSLock()
        var seen: [(String, JSON?)] = []
        func add(_ m: String, _ p: JSON?) { lock.lock(); seen.append((m, p)); lock.unlock() }
        var all: [(String, JSON?)] { lock.lock(); defer { lock.unlock() }; return seen }
    }

    static func start(notes: Notes = Notes(), maxInFlight: Int = 256) throws -> JSONRPCConnection {
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy("default"), cacheDir: nil, callerEnvironment: [:])
        let spec = SandboxedProcess.Spec(plan: plan, argv: ["/usr/bin/python3", "-u", "-c", server],
                                         environment: SandboxEnvironment(runtimeDir: runtimeDir))
        let process = try SandboxedProcess(spec)
        return try JSONRPCConnection(process: process, maxInFlight: maxInFlight) { notes.add($0, $1) }
    }

    static func deadline(_ seconds: Double = 20) -> Double { MonotonicClock.now + seconds }

    @Test func answersByIDWithManyCallsInFlight() throws {
        let c = try Self.start()
        defer { c.process.stop(); c.process.wait() }
        // A slow call first, then quick ones: each caller gets its own answer, not the next line.
        let group = DispatchGroup()
        final class Results: @unchecked Sendable { var values = [Int: Result<JSON, JSONRPCConnection.CallError>](); let lock = NSLock() }
        let results = Results()
        DispatchQueue.global().async(group: group) {
            let r = c.call("sleep", .object([("seconds", .double(0.3))]), deadline: Self.deadline())
            results.lock.lock(); results.values[-1] = r; results.lock.unlock()
        }
        for i in 0..<16 {
            DispatchQueue.global().async(group: group) {
                let r = c.call("echo", .object([("n", .int(Int64(i)))]), deadline: Self.deadline())
                results.lock.lock(); results.values[i] = r; results.lock.unlock()
            }
        }
        group.wait()
        for i in 0..<16 { #expect(results.values[i] == .success(.object([("n", .int(Int64(i)))]))) }
        #expect(results.values[-1] == .success(.string("slept")))
        #expect(c.protocolErrors == 0)
    }

    @Test func errorsNotificationsAndTheServersOwnRequests() throws {
        let notes = Notes()
        let c = try Self.start(notes: notes)
        defer { c.process.stop(); c.process.wait() }
        #expect(c.call("fail", deadline: Self.deadline()) == .failure(.error(code: -32000, message: "it failed", data: .object([("why", .int(1))]))))
        #expect(c.call("notify", deadline: Self.deadline()) == .success(.string("noted")))
        #expect(c.call("ask", deadline: Self.deadline()) == .success(.string("asked")))
        // The refusal of its request reaches the server, which says so in a notification.
        #expect(c.call("echo", .int(1), deadline: Self.deadline()) == .success(.int(1)))
        let seen = notes.all
        #expect(seen.contains { $0.0 == "note" && $0.1 == .object([("n", .int(1))]) })
        #expect(seen.contains { $0.0 == "saw-refusal" && $0.1?["code"] == .int(-32601) }, "\(seen)")
    }

    @Test func garbageIsCountedAndTheConnectionGoesOn() throws {
        let c = try Self.start()
        defer { c.process.stop(); c.process.wait() }
        #expect(c.call("garbage", deadline: Self.deadline()) == .success(.string("after garbage")))
        #expect(c.protocolErrors == 2)  // the line that is not JSON, the answer to no call
        #expect(c.call("echo", .string("still"), deadline: Self.deadline()) == .success(.string("still")))
    }

    @Test func aCallWithoutAnAnswerTimesOutAndALateAnswerIsDropped() throws {
        let c = try Self.start()
        defer { c.process.stop(); c.process.wait() }
        let start = MonotonicClock.now
        #expect(c.call("sleep", .object([("seconds", .double(0.6))]), deadline: MonotonicClock.now + 0.2) == .failure(.timeout))
        #expect(MonotonicClock.now - start < 0.5)
        // The late answer arrives while this call waits; it is not mistaken for this one's.
        #expect(c.call("echo", .string("next"), deadline: Self.deadline()) == .success(.string("next")))
        Thread.sleep(forTimeInterval: 0.6)
        #expect(c.protocolErrors == 1)
    }

    /// The reader sleeps until the nearest deadline; a call with an earlier one wakes it.
    @Test func anEarlierDeadlineWakesTheReader() throws {
        let c = try Self.start()
        defer { c.process.stop(); c.process.wait() }
        final class Seen: @unchecked Sendable { var result: Result<JSON, JSONRPCConnection.CallError>? }
        let late = Seen()
        #expect(c.start("ignore", deadline: MonotonicClock.now + 30) { late.result = $0 } != nil)
        Thread.sleep(forTimeInterval: 0.1)  // the reader is asleep until +30 s now
        let start = MonotonicClock.now
        #expect(c.call("ignore", deadline: MonotonicClock.now + 0.3) == .failure(.timeout))
        #expect(MonotonicClock.now - start < 1.5)
        #expect(late.result == nil && c.inFlight == 1)
    }

    /// With nothing in flight the reader takes a turn every `idleTurnSeconds` and a call due
    /// after that turn does not wake it: the call still times out at its own deadline, not at
    /// the turn and not never.
    @Test func aCallDueAfterTheIdleTurnTimesOutAtItsDeadline() throws {
        let c = try Self.start()
        defer { c.process.stop(); c.process.wait() }
        Thread.sleep(forTimeInterval: 0.2)  // the reader is idle: asleep until its turn
        let due = JSONRPCConnection.idleTurnSeconds + 1.5
        let start = MonotonicClock.now
        #expect(c.call("ignore", deadline: start + due) == .failure(.timeout))
        let took = MonotonicClock.now - start
        #expect(took >= due - 0.05 && took < due + 1, "timed out after \(took) s, due at \(due) s")
    }

    @Test func tooManyCallsInFlightAreRefusedAtOnce() throws {
        let c = try Self.start(maxInFlight: 2)
        defer { c.process.stop(); c.process.wait() }
        #expect(c.start("ignore", deadline: MonotonicClock.now + 30) { _ in } != nil)
        #expect(c.start("ignore", deadline: MonotonicClock.now + 30) { _ in } != nil)
        #expect(c.call("echo", deadline: Self.deadline()) == .failure(.busy))
        // The stream's end completes what is in flight.
        c.process.stop()
        #expect(c.process.wait(until: Self.deadline()))
        Thread.sleep(forTimeInterval: 0.2)
        #expect(c.inFlight == 0 && !c.isOpen)
    }

    @Test func aCrashEndsTheStreamAndTheResultSaysHow() throws {
        let c = try Self.start()
        #expect(c.call("crash", deadline: Self.deadline()) == .failure(.closed))
        #expect(c.process.wait(until: Self.deadline()))
        let r = try #require(c.process.result)
        #expect(r.exitStatus == 3)
        #expect(c.process.stderrTail.contains("crashing on purpose"))
        #expect(c.call("echo", deadline: Self.deadline()) == .failure(.closed))
    }

    @Test func theServerRunsInsideEveryLayer() throws {
        let c = try Self.start()
        defer { c.process.stop(); c.process.wait() }
        let who = try c.call("whoami", deadline: Self.deadline()).get()
        #expect(who["uid"] == .int(1000))
        #expect(who["pid"] == .int(2))  // init is pid 1 of its own pid namespace
        #expect(who["root"]?.stringArrayValue?.contains("home") == false)
        let started = try #require(c.process.started)
        #expect(!started.cgroup.isEmpty)
        c.process.stop()
        #expect(c.process.wait(until: Self.deadline()))
        #expect(c.process.result?.reason == .cancelled)
    }
}

/// `SandboxIO.passStdout` hands the caller's descriptor to the workload as it is: only a pipe
/// is taken (a host file or a terminal would give the sandbox that file).
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"))
struct PassStdoutTests {
    @Test func onlyAPipeIsPassedThrough() throws {
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy("default"), cacheDir: nil, callerEnvironment: [:])
        let file = "/tmp/cordon-pass-stdout-\(getpid())"
        let fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(file) }
        var io = SandboxIO()
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(io.stdin) }
        io.stdout = fd
        io.passStdout = true
        let r = Sandbox.run(plan: plan, argv: ["/bin/sh", "-c", "echo escaped"], environment: SandboxEnvironment(runtimeDir: JSONRPCConnectionTests.runtimeDir),
                            io: io, wallTime: 10)
        #expect(r.setupFailure?.step == .pipes, "\(r.reason)")
        var st = stat()
        #expect(fstat(fd, &st) == 0 && st.st_size == 0)
    }
}
