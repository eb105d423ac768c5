import Foundation
import Testing
import CordonConfig
import CordonSandbox
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Limits stop runaway workloads and report why, within 2 s of overshoot (acceptance 3).
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"), .serialized)
struct LimitTests {
    @Test func forkBombStopsAtPidsLimit() {
        let start = Date()
        let r = Harness.run(["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 60"], options: ["--timeout", "60s"])
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.reason == "pids-limit", "\(r.record)")
        #expect(elapsed < 3, "took \(elapsed)s: the limit is hit at once, so this is the overshoot")
    }

    @Test func memoryHogStopsAtMemoryLimit() {
        let r = Harness.run(["python3", "-c", "b = []\nwhile True: b.append(bytearray(16 << 20))"], options: ["--timeout", "60s"])
        #expect(r.reason == "memory-limit", "\(r.record)")
        #expect((r.record["peakMemoryBytes"] as? Int ?? 0) >= 400 << 20)
        #expect((r.record["wallTimeSeconds"] as? Double ?? 99) < 3)
    }

    @Test func timeoutKillsTheWholeSandbox() throws {
        let r = Harness.run(["sh", "-c", "sleep 100 & sleep 100"], options: ["--timeout", "1s"])
        #expect(r.reason == "timeout")
        #expect(r.status == 128 + 9)
        let wall = r.record["wallTimeSeconds"] as? Double ?? 99
        #expect(wall >= 1 && wall < 3, "overshoot: \(wall - 1)s")
        let range = try #require(r.hostUIDRange)
        #expect(Harness.processes(inUIDRange: range).isEmpty)
    }

    @Test func outputCapStopsAFlood() {
        let policy = Harness.policy("small-output", edits: [("output = \"64M\"", "output = \"1M\"")])
        let r = Harness.run(["yes"], policy: policy)
        #expect(r.reason == "output-limit", "\(r.record)")
        #expect((r.record["stdoutBytes"] as? Int ?? 0) == 1 << 20)
        #expect(r.output.utf8.count == (1 << 20) - 1)  // the last "\n" was cut by the harness's line split
    }

    @Test func cpuTimeLimit() {
        let policy = Harness.policy("cpu-1s", edits: [("cpu_time = \"5m\"", "cpu_time = \"1s\"")])
        let r = Harness.run(["sh", "-c", "while :; do :; done"], policy: policy, options: ["--timeout", "20s"])
        #expect(r.reason == "cpu-limit", "\(r.record)")
        #expect((r.record["wallTimeSeconds"] as? Double ?? 99) < 5)
    }

    /// The cgroup's cpu quota holds a busy loop to its share of one CPU.
    @Test func cpuQuota() {
        let policy = Harness.policy("cpu-fifth", edits: [("cpu = 1.0", "cpu = 0.2")])
        let r = Harness.run(["sh", "-c", "while :; do :; done"], policy: policy, options: ["--timeout", "2s"])
        #expect(r.reason == "timeout")
        let cpu = (r.record["cpuUserSeconds"] as? Double ?? 0) + (r.record["cpuSystemSeconds"] as? Double ?? 0)
        // The claim is the ceiling; how much below it the loop got depends on the machine's load
        // (on a busy 2-core machine it got under 0.1 s).
        #expect(cpu > 0 && cpu < 0.7, "a 0.2-core quota over 2 s allows about 0.4 s of CPU, used \(cpu)")
    }

    @Test func fileSizeLimit() {
        let r = Harness.run(["sh", "-c", "head -c 300M /dev/zero > /work/big; echo $?"])
        #expect(r.output != "0", "a 300M file was written past the 256M limit")
    }
}

/// The supervisor enforces limits even when the streams it relays stall.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct StalledStreamTests {
    /// stdin that must be relayed (opened read-write) and a workload that never reads it: the
    /// relay fills the pipe and must not block the loop that enforces the timeout.
    @Test func unreadStdinDoesNotStallTheTimeout() throws {
        let path = "\(Harness.scratch)/big-input-\(getpid())"
        try #require(FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x61, count: 4 << 20)))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.cordon)
        process.arguments = ["run", "--json", "--timeout", "1s", "--policy", Harness.defaultPolicy, "--state-dir", Harness.stateDir,
                             "--runtime-dir", Harness.runtimeDir, "--", "sleep", "30"]
        process.standardInput = FileHandle(forUpdatingAtPath: path)
        let out = Pipe()
        process.standardOutput = out
        let start = Date()
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(String(decoding: data, as: UTF8.self).contains("\"reason\":\"timeout\""))
    }

    /// A caller that stops reading stdout does not keep the sandbox alive past its timeout.
    @Test func unreadStdoutDoesNotStallTheTimeout() throws {
        let out = Pipe()
        let process = try Harness.start(["yes", "stalled-stdout"], options: ["--timeout", "1s"], stdout: out)
        let pid = try #require(Harness.findSandboxed(["yes", "stalled-stdout"]))
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let uid = try #require(UInt32(IsolationTests.field(status, "Uid").split(separator: "\t").first ?? ""))
        let range = (uid - 1000)...(uid - 1000 + 65535)
        // Nobody reads; the pipe to us is full within microseconds. The timeout must still fire.
        var gone = false
        for _ in 0..<150 {
            if Harness.processes(inUIDRange: range).isEmpty { gone = true; break }
            usleep(20_000)
        }
        #expect(gone, "the sandbox outlived its 1 s timeout while its output was not read")
        _ = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + 9)
    }
}

/// Output past the cap after the output's destination failed (it could not be opened, or its
/// reader went away): the supervisor drops it and stops the sandbox. It used to take the excess
/// off bytes it had not kept, and trap: a workload with a tight output cap took cordond down
/// whenever its log file could not be opened (EMFILE, ENOSPC), and `cordon run` whenever its
/// stdout reader went away.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct OutputFailureTests {
    static func plan(outputBytes: UInt64) throws -> SpawnPlan {
        let store = PolicyStore(configDir: nil)
        var plan = try store.spawnPlan(for: try store.loadPolicy(Harness.defaultPolicy), cacheDir: nil, callerEnvironment: [:])
        plan.policy.limits.outputBytes = outputBytes
        return plan
    }

    static func run(_ plan: SpawnPlan, _ io: SandboxIO) -> SandboxResult {
        Sandbox.run(plan: plan, argv: ["sh", "-c", "head -c 4000000 /dev/zero"],
                    environment: SandboxEnvironment(runtimeDir: Harness.runtimeDir), io: io, wallTime: 30)
    }

    @Test func anOutputThatCannotBeOpenedPastTheCapIsNoCrash() throws {
        var io = SandboxIO()
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(io.stdin) }
        io.openOutput = { _ throws(SystemError) in throw SystemError("open", path: "stdout", errno: EMFILE) }
        let r = Self.run(try Self.plan(outputBytes: 1), io)
        #expect(r.reason == .setupFailed)
        #expect(r.setupFailure?.step == .output, "\(r.setupFailure?.message ?? "")")
    }

    @Test func anOutputWhoseReaderWentAwayPastTheCapIsNoCrash() throws {
        var out: [Int32] = [-1, -1]
        guard pipe(&out) == 0 else { throw POSIXError(.EMFILE) }
        close(out[0])  // nobody reads: the first write fails with EPIPE
        defer { close(out[1]) }
        var io = SandboxIO()
        io.stdout = out[1]
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(io.stdin) }
        let r = Self.run(try Self.plan(outputBytes: 70_000), io)
        #expect(r.reason == .outputLimit)
    }
}

/// Output relayed into files the sandbox opens on the first byte (cordond's task logs): a
/// regular file takes everything pending in one write, and the cap still cuts at its byte.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct OutputFileTests {
    static func run(_ argv: [String], outputBytes: UInt64?) throws -> (SandboxResult, stdout: [UInt8], stderr: [UInt8]) {
        let store = PolicyStore(configDir: nil)
        var plan = try store.spawnPlan(for: try store.loadPolicy(Harness.defaultPolicy), cacheDir: nil, callerEnvironment: [:])
        plan.policy.limits.outputBytes = outputBytes
        let dir = "\(Harness.scratch)/output-files-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var io = SandboxIO()
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(io.stdin) }
        io.openOutput = { isStdout throws(SystemError) in
            let path = "\(dir)/\(isStdout ? "stdout" : "stderr")"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
            return fd
        }
        let r = Sandbox.run(plan: plan, argv: argv, environment: SandboxEnvironment(runtimeDir: Harness.runtimeDir), io: io, wallTime: 30)
        func read(_ name: String) -> [UInt8] { (FileManager.default.contents(atPath: "\(dir)/\(name)")).map { Array($0) } ?? [] }
        return (r, read("stdout"), read("stderr"))
    }

    @Test func everyByteReachesItsFile() throws {
        let (r, stdout, stderr) = try Self.run(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2"], outputBytes: nil)
        #expect(r.reason == .exited && r.exitCode == 0)
        #expect(stdout.count == 3_000_000 && stdout.allSatisfy { $0 == UInt8(ascii: "x") })
        #expect(stderr == Array("done\n".utf8))
        #expect(r.stdoutBytes == 3_000_000 && r.stderrBytes == 5)
    }

    @Test func theCapCutsAtItsByte() throws {
        let (r, stdout, _) = try Self.run(["sh", "-c", "head -c 3000000 /dev/zero"], outputBytes: 1_000_000)
        #expect(r.reason == .outputLimit)
        #expect(stdout.count == 1_000_000)
        #expect(r.stdoutBytes == 1_000_000)
    }
}
