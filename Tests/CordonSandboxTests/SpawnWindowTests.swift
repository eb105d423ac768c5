import CordonConfig
import CordonSandbox
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A sandbox of the default policy whose pid 1 is a stand-in init, its output to a pipe: where the
/// tests of the spawn's window and of set-up's deadline start.
struct StandInSandbox {
    let plan: SpawnPlan
    var io = SandboxIO()
    var environment: SandboxEnvironment
    /// The read end of the workload's stdout.
    let output: Int32

    init(initProgram: String) throws {
        let store = PolicyStore(configDir: nil)
        plan = try store.spawnPlan(for: try store.loadPolicy(Harness.defaultPolicy), cacheDir: nil, callerEnvironment: [:])
        var out: [Int32] = [-1, -1]
        try #require(pipe(&out) == 0)
        output = out[0]
        io.stdout = out[1]
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        environment = SandboxEnvironment(runtimeDir: Harness.runtimeDir)
        environment.initProgram = initProgram
    }

    /// Closes our ends and reads what the workload wrote (call once the sandbox has ended).
    func finish() -> String {
        close(io.stdout)
        close(io.stdin)
        return String(decoding: FileHandle(fileDescriptor: output, closeOnDealloc: true).readDataToEndOfFile(), as: UTF8.self)
    }
}

/// What a test learns of a sandbox running on another thread: init's host pid and the cgroup
/// (from `SandboxControl.onStart`), then its result.
final class StartedSandbox: @unchecked Sendable {
    let lock = NSLock()
    var pid: Int32 = 0
    var cgroup: [String] = []
    var result: SandboxResult?
}

/// The window between the workload's set-up and its execve: it has dropped to the sandbox's uid,
/// applied Landlock and waits on the gate while pid 1 is still a stand-in for cordon-init (which
/// sleeps 1.5 s here) — in share mode inside the supervisor's own memory. Looked at from the
/// host: what it holds (no cgroup `tasks` file, no mount namespace, nothing inheritable), where
/// it is (already in the sandbox's cgroup), and that a host process with its very uid can
/// neither read nor trace that memory.
@Suite(.enabled(if: Harness.isRoot, "needs root"), .serialized)
struct SpawnWindowTests {
    /// A stand-in init that holds pid 1 for 1.5 s before executing the real cordon-init.
    static let gateInit: String = {
        let built = InitProgramPath.built ?? ""
        let initCopy = "\(Harness.probeDir)/cordon-init"
        if !FileManager.default.fileExists(atPath: initCopy) {
            let partial = "\(initCopy).\(getpid()).window.tmp"
            try? FileManager.default.copyItem(atPath: built, toPath: partial)
            rename(partial, initCopy)
        }
        return Harness.compileC("""
        #include <time.h>
        #include <unistd.h>
        int main(int argc, char **argv, char **envp) {
            (void)argc;
            struct timespec t = { 1, 500000000 };
            nanosleep(&t, 0);
            execve("/opt/cordon-test/cordon-init", argv, envp);
            return 125;
        }
        """, named: "gate-init", linkStatic: true)
    }()

    /// A host program that becomes `uid`/`gid` and tries every way into `pid`'s memory.
    static let intruder: String = {
        let path = "\(Harness.scratch)/bin/intruder"
        let source = "\(Harness.scratch)/intruder.c"
        try? """
        #define _GNU_SOURCE
        #include <errno.h>
        #include <fcntl.h>
        #include <grp.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/ptrace.h>
        #include <sys/uio.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            pid_t pid = atoi(argv[1]);
            unsigned id = (unsigned)strtoul(argv[2], 0, 10);
            if (setgroups(0, 0) || setresgid(id, id, id) || setresuid(id, id, id)) { perror("ids"); return 2; }
            char path[64], buf[16];
            struct iovec local = { buf, sizeof buf }, remote = { (void *)0x400000, sizeof buf };
            errno = 0;
            long n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
            printf("process_vm_readv %s\\n", n >= 0 ? "ok" : strerrorname_np(errno));
            snprintf(path, sizeof path, "/proc/%d/mem", pid);
            int fd = open(path, O_RDONLY);
            printf("mem %s\\n", fd >= 0 ? "ok" : strerrorname_np(errno));
            snprintf(path, sizeof path, "/proc/%d/maps", pid);
            fd = open(path, O_RDONLY);
            printf("maps %s\\n", fd >= 0 && read(fd, buf, sizeof buf) > 0 ? "ok" : strerrorname_np(errno));
            long p = ptrace(PTRACE_SEIZE, pid, 0, 0);
            printf("ptrace %s\\n", p == 0 ? "ok" : strerrorname_np(errno));
            return 0;
        }
        """.write(toFile: source, atomically: true, encoding: .utf8)
        _ = Harness.exec("/usr/bin/cc", ["-O2", "-o", path, source])
        return path
    }()

    static func field(_ status: String, _ name: String) -> String { IsolationTests.field(status, name) }

    /// Every descriptor of `pid`: number, target, close-on-exec.
    static func descriptors(_ pid: Int32) -> [(fd: Int, target: String, cloexec: Bool)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return names.compactMap(Int.init).sorted().map { fd in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? "?"
            let info = (try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8)) ?? ""
            let flags = info.split(separator: "\n").first { $0.hasPrefix("flags:") }
                .flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0
            return (fd, target, flags & Int(O_CLOEXEC) != 0)
        }
    }

    @Test(arguments: [true, false]) func theWorkloadAtTheGateHoldsNothingOfRootsAndCannotBeReached(shareMemory: Bool) throws {
        _ = try #require(InitProgramPath.built)
        var sandbox = try StandInSandbox(initProgram: Self.gateInit)
        sandbox.environment.shareMemoryUntilExec = shareMemory
        let control = try SandboxControl()
        let started = StartedSandbox()
        control.onStart { pid, cgroup in started.lock.withLock { started.pid = pid; started.cgroup = cgroup } }
        let done = DispatchSemaphore(value: 0)
        // The shell's own descriptors, listed by a child (whose directory descriptor is its own).
        let argv = ["sh", "-c", "ls /proc/$$/fd"]
        let plan = sandbox.plan, streams = sandbox.io, settings = sandbox.environment
        Thread.detachNewThread {
            let r = Sandbox.run(plan: plan, argv: argv, environment: settings, io: streams, wallTime: 30, control: control)
            started.lock.withLock { started.result = r }
            done.signal()
        }
        // Init's host pid, then its one child: the workload, parked at the gate.
        var initPID: Int32 = 0, cgroups: [String] = []
        for _ in 0..<200 where initPID == 0 {
            (initPID, cgroups) = started.lock.withLock { (started.pid, started.cgroup) }
            if initPID == 0 { usleep(10_000) }
        }
        try #require(initPID > 0)
        var workload: Int32 = 0
        var status = ""
        for _ in 0..<100 {
            let children = (try? String(contentsOfFile: "/proc/\(initPID)/task/\(initPID)/children", encoding: .utf8)) ?? ""
            workload = Int32(children.split(separator: " ").first ?? "") ?? 0
            status = workload > 0 ? ((try? String(contentsOfFile: "/proc/\(workload)/status", encoding: .utf8)) ?? "") : ""
            // Set up as far as the gate (its ids dropped, no_new_privs set), and pid 1 the
            // stand-in by now: the workload sets itself up while pid 1 executes it, so either
            // may come first.
            let comm = (try? String(contentsOfFile: "/proc/\(initPID)/comm", encoding: .utf8)) ?? ""
            if Self.field(status, "NoNewPrivs") == "1" && comm == "gate-init\n" { break }
            usleep(10_000)
        }
        try #require(Self.field(status, "NoNewPrivs") == "1", "the workload never reached the gate: \(status)")
        // Still pid 1's stand-in: the window is open.
        #expect(((try? String(contentsOfFile: "/proc/\(initPID)/comm", encoding: .utf8)) ?? "") == "gate-init\n")

        // Where it is and what it is: in the sandbox's cgroup already, its ids and capabilities
        // dropped, its seccomp filter installed (the default profile lets through every call
        // the spawn makes from there to execve, so the filter need not wait for the gate).
        #expect(!cgroups.isEmpty)
        for pid in [initPID, workload] {
            let cgroupFile = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
            for dir in cgroups {
                let below = dir.split(separator: "/").suffix(2).joined(separator: "/")
                #expect(cgroupFile.contains(below), "pid \(pid) outside \(dir): \(cgroupFile)")
            }
        }
        let uid = UInt32(Self.field(status, "Uid").split(separator: "\t").first ?? "") ?? 0
        #expect(uid >= 0x4000_0000 && Self.field(status, "Uid").split(separator: "\t").allSatisfy { UInt32($0) == uid })
        for cap in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(Self.field(status, cap) == "0000000000000000", "\(cap)") }
        #expect(Self.field(status, "Seccomp") == "2")
        if shareMemory {
            // It runs in the supervisor's memory (our test process's).
                let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(workload)/exe")
            let ours = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            #expect(theirs == ours)
        }

        // What it holds: 0–2 and close-on-exec descriptors only; never a cgroup file or a
        // namespace. pid 1's stand-in holds the status pipe and the gate, nothing else.
        let held = Self.descriptors(workload)
        #expect(held.filter { $0.fd > 2 }.allSatisfy { $0.cloexec }, "\(held)")
        #expect(!held.contains { $0.target.contains("cgroup") || $0.target.contains("tasks") || $0.target.hasPrefix("mnt:") }, "\(held)")
        let initHeld = Self.descriptors(initPID)
        #expect(initHeld.count == 2 && initHeld.allSatisfy({ $0.target.hasPrefix("pipe:") }), "\(initHeld)")

        // A host process with the workload's very uid gets nothing of that memory.
        let probe = Harness.exec(Self.intruder, ["\(workload)", "\(uid)"])
        #expect(probe.stdout == "process_vm_readv EPERM\nmem EACCES\nmaps EACCES\nptrace EPERM\n", "\(probe.stdout) \(probe.stderr)")

        #expect(done.wait(timeout: .now() + 30) == .success)
        let text = sandbox.finish()
        let r = try #require(started.lock.withLock { started.result })
        #expect(r.exitCode == 0, "\(r.setupFailure?.message ?? "")")
        // At its execve the workload kept exactly its three streams.
        #expect(text == "0\n1\n2\n", "\(text)")
    }
}

/// cgroup v1 is made after the clone, while the child builds its root: when making it fails, the
/// child (waiting for its `tasks` files) is killed, nothing is left running or mounted, the
/// cgroup is gone and the supervisor holds none of its files.
@Suite(.enabled(if: Harness.isRoot && FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                "needs root and cgroup v1's cpu controller"), .serialized)
struct CgroupAfterCloneTests {
    /// What this process's descriptors point to.
    static func descriptorTargets() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
        }
    }

    /// The child fails building its root (here: a runtime dir its uid cannot search) before it
    /// has read the `tasks` files sent to it, and exits with them unread: the kernel then marks
    /// our end ECONNRESET, which must not hide the report already queued there — the result is
    /// that step's failure every time, never a sandbox that "ran" and was killed.
    @Test func aChildThatFailsBeforeItJoinsIsReportedEveryTime() throws {
        let dir = "\(Harness.scratch)/private-join-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o700)
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy(Harness.defaultPolicy), cacheDir: nil, callerEnvironment: [:])
        var io = SandboxIO()
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        io.stdout = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(io.stdin); close(io.stdout) }
        var reasons: [String] = []
        for _ in 0..<10 {
            let r = Sandbox.run(plan: plan, argv: ["true"], environment: SandboxEnvironment(runtimeDir: "\(dir)/run"), io: io, wallTime: 30)
            reasons.append(r.setupFailure?.step.name ?? "\(r.reason)")
        }
        #expect(reasons == Array(repeating: "root-tmpfs", count: 10))
    }

    @Test func aCgroupThatCannotBeMadeFailsTheSandboxCleanly() throws {
        // A parent whose CPU quota is below the policy's: the child's quota is refused (EINVAL).
        let group = "cordon-review-\(getpid())"
        let hierarchy = try CgroupHierarchy.detect(group: group)
        defer { for dir in hierarchy.cgroup(named: "").directories { rmdir(dir) } }
        try FileSystem.writeControl("/sys/fs/cgroup/cpu/\(group)/cpu.cfs_quota_us", "1000")
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy(Harness.defaultPolicy), cacheDir: nil, callerEnvironment: [:])
        var environment = SandboxEnvironment(runtimeDir: Harness.runtimeDir)
        environment.cgroupGroup = group
        var io = SandboxIO()
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        io.stdout = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(io.stdin); close(io.stdout) }
        _ = Sandbox.run(plan: plan, argv: ["true"], environment: environment, io: io, wallTime: 30)  // lazy state warmed
        let mountsBefore = Harness.mountsMentioning(Harness.runtimeDir).count
        for _ in 0..<3 {
            let r = Sandbox.run(plan: plan, argv: ["sleep", "4248"], environment: environment, io: io, wallTime: 30)
            #expect(r.reason == .setupFailed)
            #expect(r.setupFailure?.step.name == "cgroup", "\(String(describing: r.setupFailure))")
            #expect(r.setupFailure?.message.contains("cpu.cfs_quota_us") == true, "\(r.setupFailure?.message ?? "")")
        }
        // (Other suites run sandboxes in this process meanwhile: only ours can be told apart.)
        let leaked = Self.descriptorTargets().filter { $0.contains("/\(group)/") }
        #expect(leaked.isEmpty, "\(leaked)")
        #expect(Harness.mountsMentioning(Harness.runtimeDir).count == mountsBefore)
        #expect(Harness.processes(inUIDRange: 0x4000_0000...0xFFFF_FFF0).allSatisfy {
            !(((try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) ?? "").hasPrefix("sleep\u{0}4248"))
        })
        let left = hierarchy.cgroup(named: "").directories.flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("s") && Int($0.dropFirst()) != nil }
        }
        #expect(left.isEmpty, "\(left)")
    }
}

/// Set-up counts against the wall clock and yields to cancellation: a sandbox whose set-up never
/// finishes (here pid 1 is a stand-in that never opens the gate; in life a bind source on a hung
/// network filesystem) is killed when its wall time runs out or it is cancelled, and ends with that
/// reason — never a supervisor blocked on the report channel for as long as the step hangs.
@Suite(.enabled(if: Harness.isRoot, "needs root"), .serialized)
struct SetupDeadlineTests {
    /// A stand-in init that holds pid 1 for 60 s and exits, never opening the workload's gate.
    static let stuckInit = Harness.compileC("""
        #include <time.h>
        int main(void) {
            struct timespec t = { 60, 0 };
            nanosleep(&t, 0);
            return 0;
        }
        """, named: "stuck-init", linkStatic: true)

    /// Runs `echo ran` under the stuck init; `cancelAfter` cancels it that long after it started.
    func run(wallTime: Double, cancelAfter: Double?) throws -> (result: SandboxResult?, output: String, seconds: Double, started: StartedSandbox) {
        let sandbox = try StandInSandbox(initProgram: Self.stuckInit)
        let control = try SandboxControl()
        let started = StartedSandbox()
        control.onStart { pid, cgroup in started.lock.withLock { started.pid = pid; started.cgroup = cgroup } }
        let done = DispatchSemaphore(value: 0)
        let plan = sandbox.plan, streams = sandbox.io, settings = sandbox.environment
        let begin = MonotonicClock.now
        Thread.detachNewThread {
            let r = Sandbox.run(plan: plan, argv: ["sh", "-c", "echo ran"], environment: settings, io: streams, wallTime: wallTime, control: control)
            started.lock.withLock { started.result = r }
            done.signal()
        }
        if let cancelAfter {
            for _ in 0..<500 where started.lock.withLock({ started.pid }) == 0 { usleep(10_000) }
            usleep(UInt32(cancelAfter * 1e6))
            control.cancel()
        }
        let finished = done.wait(timeout: .now() + 15) == .success
        let seconds = MonotonicClock.now - begin
        if !finished {
            // Without the deadline the supervisor waits for the stand-in's 60 s: end it now.
            let pid = started.lock.withLock { started.pid }
            if pid > 0 { kill(pid, SIGKILL) }
            _ = done.wait(timeout: .now() + 15)
        }
        let text = sandbox.finish()
        return (finished ? started.lock.withLock({ started.result }) : nil, text, seconds, started)
    }

    func expectGone(_ started: StartedSandbox) {
        let pid = started.lock.withLock { started.pid }
        #expect(pid > 0)
        #expect(kill(pid, 0) == -1 && errno == ESRCH, "init \(pid) still there")
        for dir in started.lock.withLock({ started.cgroup }) {
            #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) left behind")
        }
    }

    @Test func aSetUpThatNeverFinishesEndsAtTheWallClock() throws {
        _ = try #require(InitProgramPath.built)
        for _ in 0..<3 {
            let (result, output, seconds, started) = try run(wallTime: 1.5, cancelAfter: nil)
            let r = try #require(result, "the supervisor was still waiting after 15 s")
            #expect(r.reason == .timeout)
            #expect(r.setupFailure == nil)
            // The workload never ran: no signal of its own, 125, no layers claimed.
            #expect(r.exitStatus == 125 && r.signal == nil && r.exitCode == nil)
            #expect(r.layers == nil)
            #expect(output.isEmpty, "the workload ran: \(output)")
            #expect(seconds >= 1.4 && seconds < 10, "\(seconds) s")
            expectGone(started)
        }
    }

    @Test func aSetUpThatNeverFinishesEndsWhenCancelled() throws {
        _ = try #require(InitProgramPath.built)
        let (result, output, seconds, started) = try run(wallTime: 60, cancelAfter: 0.3)
        let r = try #require(result, "the supervisor was still waiting after 15 s")
        #expect(r.reason == .cancelled)
        #expect(r.exitStatus == 125 && r.signal == nil)
        #expect(output.isEmpty, "the workload ran: \(output)")
        #expect(seconds < 10, "\(seconds) s")
        expectGone(started)
    }
}
