import CLinux
import CordonPolicy
import CordonSystem
import CSpawn
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a sandbox keeps its host-side state.
public struct SandboxEnvironment: Sendable {
    /// Runtime directory: uid-range locks and the root mount point (default /run/cordon).
    public var runtimeDir: String
    public var cgroupMount: String = "/sys/fs/cgroup"
    public var cgroupGroup: String = "cordon"
    /// How allowlisted names are resolved (supervisor configuration).
    public var egress = EgressSettings()
    /// Start a cleanup guardian per sandbox: a process that removes the sandbox's cgroup if this
    /// supervisor is killed (`cordon run`). cordond turns it off: its restart sweeps orphaned
    /// cgroups (Recovery), and the sandboxes themselves die with it either way (PDEATHSIG on
    /// init, which takes its pid namespace along). Forking a guardian from a large,
    /// multi-threaded daemon costs a page-table copy and copy-on-write faults per task.
    public var cleanupGuardian = true
    /// The sandbox's child shares this process's memory until it executes (no page-table copy,
    /// no copy-on-write faults in a busy supervisor); false: it gets a copy, as from fork.
    /// Either way pid 1 ends up as cordon-init, holding nothing of this process's memory.
    public var shareMemoryUntilExec = true
    /// cordon-init to execute as pid 1 (nil: next to this executable, then /usr/libexec/cordon).
    public var initProgram: String?

    public init(runtimeDir: String) { self.runtimeDir = runtimeDir }
}

/// The caller's side of the workload's standard streams.
public struct SandboxIO: Sendable {
    public var stdin: Int32 = 0
    public var stdout: Int32 = 1
    public var stderr: Int32 = 2
    /// Give the workload a pseudo-terminal (stdin must be a terminal).
    public var tty = false
    /// Forward SIGINT, SIGTERM, SIGHUP, … sent to this process to the workload (`cordon run`).
    /// A daemon running many sandboxes keeps its signals for itself.
    public var relaySignals = true
    /// When set, `stdout` and `stderr` are not used: each stream's destination is opened by this
    /// when its first byte arrives (true: stdout), so a task that prints nothing creates no file.
    /// The sandbox closes what it returns; a throw ends the sandbox as setup-failed, naming it.
    public var openOutput: (@Sendable (_ isStdout: Bool) throws(SystemError) -> Int32)?
    public init() {}
}

/// A handle on one sandbox from other threads: cancel it, and learn when its workload starts.
public final class SandboxControl: Sendable {
    /// Readable once `cancel()` was called; the supervisor polls it.
    let wakeFD: Int32
    private let signalFD: Int32
    private let started = Mutex<(@Sendable (_ pid: Int32, _ cgroup: [String]) -> Void)?>(nil)

    public init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        guard cl_pipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0 else { throw SystemError("pipe", path: "sandbox control", errno: errno) }
        wakeFD = fds[0]
        signalFD = fds[1]
    }

    /// `body` runs on the sandbox's thread once the child is released, with init's host pid
    /// and the cgroup directories the sandbox runs in.
    public func onStart(_ body: @escaping @Sendable (_ pid: Int32, _ cgroup: [String]) -> Void) {
        started.withLock { $0 = body }
    }

    /// Kills the sandbox's whole cgroup (reason `cancelled`), or keeps it from starting.
    /// Safe to call from any thread, any number of times.
    public func cancel() {
        var one: UInt8 = 1
        _ = write(signalFD, &one, 1)
    }

    public var isCancelled: Bool {
        var pfd = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) == 1
    }

    func didStart(pid: Int32, cgroup: [String]) { started.withLock { $0 }?(pid, cgroup) }

    deinit {
        close(wakeFD)
        close(signalFD)
    }
}

/// Runs one workload in a fresh sandbox and reports how it ended. Blocking; one sandbox per call.
///
/// Parent side of the spawn sequence (ARCHITECTURE.md): claim a uid range, create the cgroup,
/// start the cleanup guardian, create the Landlock ruleset, clone (CSpawn), write the id maps,
/// attach the cgroup, release the child, then relay output, answer seccomp notifications and
/// enforce the wall clock, output cap and cgroup events until init exits.
public enum Sandbox {
    public static func run(plan: SpawnPlan, argv: [String], environment: SandboxEnvironment, io: SandboxIO,
                           wallTime: Double?, control: SandboxControl? = nil) -> SandboxResult {
        // A write to a stream whose reader is gone must fail with EPIPE, not kill the supervisor.
        // (Process-wide; the child resets every disposition before the workload runs.)
        signal(SIGPIPE, SIG_IGN)
        var run = Run(plan: plan, argv: argv, environment: environment, io: io, wallTime: wallTime ?? plan.policy.limits.wallTimeSeconds,
                      control: control)
        return run.execute()
    }
}

/// The namespaces every sandbox gets.
/// (linux/sched.h values: Swift's Glibc module does not export them.)
let namespaceFlags: [(Int32, String)] = [
    (0x1000_0000, "user"), (0x2000_0000, "pid"), (0x0002_0000, "mount"), (0x0800_0000, "ipc"),
    (0x0400_0000, "uts"), (0x4000_0000, "network"),
]
/// The cgroup namespace is entered by the child once it is in the sandbox's cgroup.
let cgroupNamespaceName = "cgroup"

private struct Run {
    let plan: SpawnPlan
    let argv: [String]
    let environment: SandboxEnvironment
    let io: SandboxIO
    let wallTime: Double?
    let control: SandboxControl?

    var start = Clock.now

    init(plan: SpawnPlan, argv: [String], environment: SandboxEnvironment, io: SandboxIO, wallTime: Double?,
         control: SandboxControl?) {
        self.plan = plan
        self.argv = argv
        self.environment = environment
        self.io = io
        self.wallTime = wallTime
        self.control = control
    }

    func failure(_ step: String, _ err: Int32, _ message: String) -> SandboxResult {
        var r = emptyResult(reason: .setupFailed)
        r.setupFailure = SetupFailure(step: step, errno: err, message: message)
        return r
    }

    func emptyResult(reason: TerminationReason) -> SandboxResult {
        SandboxResult(reason: reason, exitCode: nil, signal: nil, signalName: nil, setupFailure: nil,
                      wallTimeSeconds: Clock.since(start), cpuUserSeconds: nil, cpuSystemSeconds: nil,
                      peakMemoryBytes: nil, stdoutBytes: 0, stderrBytes: 0,
                      denied: [], policy: plan.policy.name,
                      policyHash: plan.policy.contentHash, layers: nil)
    }

    mutating func execute() -> SandboxResult {
        start = Clock.now
        if control?.isCancelled == true { return emptyResult(reason: .cancelled) }
        // 1. A host uid/gid range of our own.
        let range: UIDRange
        do { range = try UIDRange.claim() }
        catch { return failure("uid-range", error.errno, "claim uid range: \(error)") }

        // 2. The cgroup, with its limits written before anything runs in it.
        let cgroup: Cgroup
        let hierarchy: CgroupHierarchy
        do {
            hierarchy = try CgroupHierarchy.detect(mount: environment.cgroupMount, group: environment.cgroupGroup)
            cgroup = try hierarchy.create(name: "s\(range.slot)", limits: plan.cgroupLimits)
        } catch { return failure("cgroup", error.errno, "cgroup: \(error)") }

        // 3. The guardian removes the cgroup if we are killed before we can.
        var guardianPipe: [Int32] = [-1, -1]
        if environment.cleanupGuardian, cl_pipe2(&guardianPipe, O_CLOEXEC) != 0 {
            try? cgroup.remove()
            return failure("guardian", errno, "pipe: \(SystemError.text(errno))")
        }
        let dirs = cgroup.directories
        let guardian = environment.cleanupGuardian ? withCStringArray(dirs) { cl_guardian_start(guardianPipe[0], range.lockFD, $0, dirs.count) } : 0
        if guardianPipe[0] >= 0 { close(guardianPipe[0]) }
        defer {
            var done: UInt8 = 1
            if guardianPipe[1] >= 0 {
                _ = write(guardianPipe[1], &done, 1)
                close(guardianPipe[1])
            }
            // The guardian exits at once on that byte; reap it (it has no exit signal: __WALL).
            var status: Int32 = 0
            if guardian > 0 { _ = waitpid(guardian, &status, Int32(bitPattern: 0x4000_0000)) }
        }
        if guardian < 0 {
            try? cgroup.remove()
            return failure("guardian", errno, "start cleanup guardian: \(SystemError.text(errno))")
        }

        var result = spawnAndSupervise(range: range, cgroup: cgroup, hierarchy: hierarchy)
        do { try cgroup.remove() } catch {
            // The sandbox ran; a cgroup we cannot remove is reported, not hidden.
            if result.setupFailure == nil {
                FileDescriptorIO.writeAll(io.stderr, "cordon: cleanup: \(error)\n")
            }
        }
        result.wallTimeSeconds = Clock.since(start)
        return result
    }

    mutating func spawnAndSupervise(range: UIDRange, cgroup: Cgroup, hierarchy: CgroupHierarchy) -> SandboxResult {
        let abi = plan.policy.landlock.mode == .off ? 0 : Landlock.abi
        if plan.policy.landlock.mode == .required && abi == 0 {
            return failure("landlock", ENOSYS, "landlock: required by the policy but not available on this kernel")
        }
        var landlockFD: Int32 = -1
        if abi > 0 {
            do { landlockFD = try Landlock.createRuleset(abi: abi) }
            catch { return failure("landlock", error.errno, "landlock: \(error)") }
        }
        defer { if landlockFD >= 0 { close(landlockFD) } }

        // Pipes and the report channel; the child's ends are closed here once it runs.
        var sync: [Int32] = [-1, -1], status: [Int32] = [-1, -1], chan: [Int32] = [-1, -1]
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1], input: [Int32] = [-1, -1]
        var ptyMaster: Int32 = -1
        var childStdio: (Int32, Int32, Int32) = (-1, -1, -1)
        var fdsToClose: [Int32] = []
        defer { for fd in fdsToClose where fd >= 0 { close(fd) } }
        guard cl_pipe2(&sync, O_CLOEXEC) == 0, cl_pipe2(&status, O_CLOEXEC) == 0,
              socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &chan) == 0 else {
            return failure("pipes", errno, "create pipes: \(SystemError.text(errno))")
        }
        fdsToClose += sync + status + chan
        var relayStdin = false
        if io.tty {
            guard isatty(io.stdin) == 1 else { return failure("tty", ENOTTY, "--tty needs a terminal on standard input") }
            var slave: Int32 = -1
            guard cl_open_pty(&ptyMaster, &slave) == 0 else {
                return failure("tty", errno, "open a pseudo-terminal: \(SystemError.text(errno))")
            }
            fdsToClose += [ptyMaster, slave]
            var rows: UInt16 = 0, cols: UInt16 = 0
            if cl_get_winsize(io.stdin, &rows, &cols) == 0 { _ = cl_set_winsize(ptyMaster, rows, cols) }
            childStdio = (slave, slave, slave)
        } else {
            guard cl_pipe2(&out, O_CLOEXEC) == 0, cl_pipe2(&err, O_CLOEXEC) == 0 else {
                return failure("pipes", errno, "create pipes: \(SystemError.text(errno))")
            }
            fdsToClose += out + err
            // stdin: pass a read-only pipe or file straight through; relay anything else (a
            // terminal would otherwise hand the sandbox the caller's tty).
            var st = stat()
            let flags = fcntl(io.stdin, F_GETFL)
            let direct = fstat(io.stdin, &st) == 0 && flags >= 0 && (flags & O_ACCMODE) == O_RDONLY
                && isatty(io.stdin) == 0 && ((st.st_mode & S_IFMT) == S_IFIFO || (st.st_mode & S_IFMT) == S_IFREG
                                             || (st.st_mode & S_IFMT) == S_IFCHR)
            var stdinFD = io.stdin
            if !direct {
                guard cl_pipe2(&input, O_CLOEXEC) == 0 else { return failure("pipes", errno, "create pipes: \(SystemError.text(errno))") }
                fdsToClose += input
                stdinFD = input[0]
                relayStdin = fstat(io.stdin, &st) == 0
                if !relayStdin { close(input[1]); input[1] = -1 }
            }
            childStdio = (stdinFD, out[1], err[1])
        }

        let initFD: Int32
        do { initFD = try InitProgram.open(environment.initProgram) }
        catch { return failure("init-program", error.errno, "\(error)") }

        // The flat C plan. Every pointer stays valid until this function returns: the child may
        // share our memory (and read the plan) until both it and the workload have executed.
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }
        let mounts = UnsafeMutablePointer<cs_mount_op>.allocate(capacity: max(plan.mounts.count, 1))
        defer { mounts.deallocate() }
        for (i, step) in plan.mounts.enumerated() {
            mounts[i] = cs_mount_op(kind: step.kind.rawValue, flags: step.flags.rawValue, mode: step.mode,
                                    target: arena.string(step.target), data: arena.bytes(step.data), data_len: step.data.count)
        }
        let rules = UnsafeMutablePointer<cs_landlock_rule>.allocate(capacity: max(plan.landlockRules.count, 1))
        defer { rules.deallocate() }
        let handled = Landlock.FS.handled(abi: abi)
        for (i, rule) in plan.landlockRules.enumerated() {
            rules[i] = cs_landlock_rule(path: arena.string(rule.path), access: rule.access.intersection(handled).rawValue)
        }
        let limits = UnsafeMutablePointer<cs_rlimit>.allocate(capacity: max(plan.rlimits.count, 1))
        defer { limits.deallocate() }
        for (i, l) in plan.rlimits.enumerated() { limits[i] = cs_rlimit(resource: l.resource, soft: l.soft, hard: l.hard) }
        let rootMount = "\(environment.runtimeDir)/root"
        // The sandbox's root (mapped to an unprivileged host uid) must be able to reach this
        // empty mount point: 0755 all the way down.
        do { try FileSystem.ensureDirectory(rootMount, mode: 0o755) }
        catch { return failure("root-mountpoint", error.errno, "\(error)") }
        // The child mounts on this path: it must be a real directory of root's, not a symlink
        // someone planted. The mode is fixed through the descriptor, never through the path.
        let rootFD = open(rootMount, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var rootStat = stat()
        guard rootFD >= 0, fstat(rootFD, &rootStat) == 0, rootStat.st_uid == 0 else {
            if rootFD >= 0 { close(rootFD) }
            return failure("root-mountpoint", EPERM, "root-mountpoint: \(rootMount) must be a directory owned by root (not a symlink)")
        }
        fchmod(rootFD, 0o755)
        close(rootFD)

        var cplan = cs_plan()
        cplan.clone_flags = namespaceFlags.reduce(0) { $0 | $1.0 }
        let taskFiles = cgroup.v1TaskFiles
        cplan.cgroup_tasks = arena.constStringArray(taskFiles)
        cplan.cgroup_task_count = taskFiles.count
        cplan.cgroup_fd = -1
        if cgroup.version == .v2 {
            do { cplan.cgroup_fd = try cgroup.openDirectory() } catch { return failure("cgroup", error.errno, "cgroup: \(error)") }
            fdsToClose.append(cplan.cgroup_fd)
        }
        cplan.new_cgroup_ns = 1
        cplan.sync_fd = sync[0]
        cplan.chan_fd = chan[1]
        cplan.status_fd = status[1]
        cplan.stdio = childStdio
        cplan.set_ctty = io.tty ? 1 : 0
        cplan.root_mountpoint = arena.string(rootMount)
        cplan.root_options = arena.string("size=1m,mode=0755")
        cplan.mounts = UnsafePointer(mounts)
        cplan.mount_count = plan.mounts.count
        cplan.root_readonly = 1
        cplan.hostname = arena.string(plan.policy.process.hostname)
        cplan.loopback_up = 1
        cplan.rlimits = UnsafePointer(limits)
        cplan.rlimit_count = plan.rlimits.count
        cplan.uid = plan.policy.process.uid
        cplan.gid = plan.policy.process.gid
        cplan.cap_last = Int32(capLast)
        cplan.keep_caps = plan.keepCaps
        cplan.landlock_fd = landlockFD
        cplan.landlock_rules = UnsafePointer(rules)
        cplan.landlock_rule_count = abi > 0 ? plan.landlockRules.count : 0
        cplan.init_exec_fd = initFD
        cplan.share_memory = environment.shareMemoryUntilExec ? 1 : 0
        cplan.cwd = arena.string(plan.cwd)
        cplan.exec_path_search = arena.string(plan.searchPath)
        cplan.argv = arena.stringArray(argv)
        cplan.envp = arena.stringArray(plan.env)
        let bpf = UnsafeMutableRawPointer.allocate(byteCount: plan.seccomp.bpf.count, alignment: 8)
        defer { bpf.deallocate() }
        plan.seccomp.bpf.withUnsafeBytes { bpf.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        cplan.seccomp_filter = UnsafeRawPointer(bpf)
        cplan.seccomp_len = plan.seccomp.instructionCount
        cplan.seccomp_flags = UInt32(SECCOMP_FILTER_FLAG_NEW_LISTENER)

        // 6. clone. The child waits on `sync` until the maps and cgroup are in place.
        var pidfd: Int32 = -1
        var region: UnsafeMutableRawPointer?
        let pid = cs_spawn(&cplan, &pidfd, &region)
        if pid < 0 { return failure("clone", errno, "clone: \(SystemError.text(errno))") }
        // The child's stack: freed at return, when the channel has reached EOF (both processes
        // executed) or the child was killed and reaped (abort) — never while it may run on it.
        defer { cs_spawn_release(region) }
        fdsToClose.append(pidfd)
        // Ours no more: the child's ends.
        for fd in [sync[0], chan[1], status[1], childStdio.0, childStdio.1, childStdio.2] where fd >= 0 && fd != io.stdin {
            close(fd)
        }
        fdsToClose.removeAll { [sync[0], chan[1], status[1], childStdio.0, childStdio.1, childStdio.2].contains($0) }

        func abort(_ step: String, _ err: Int32, _ message: String) -> SandboxResult {
            _ = cl_pidfd_send_signal(pidfd, SIGKILL)
            var ws: Int32 = 0
            _ = cl_pidfd_wait(pidfd, &ws, 0)
            return failure(step, err, message)
        }
        func abort(_ step: String, _ error: SystemError) -> SandboxResult { abort(step, error.errno, "\(step): \(error)") }

        // 7. Map the sandbox's ids 0…65535 onto our host range (the child joins its cgroup itself).
        let mapping = "0 \(range.hostBase) \(UIDRange.size)\n"
        do {
            try FileSystem.writeControl("/proc/\(pid)/uid_map", mapping)
            try FileSystem.writeControl("/proc/\(pid)/gid_map", mapping)
        } catch { return abort("id-map", error) }

        // 7b. Egress: the proxy's sockets, routes and sk_lookup program in the sandbox's network
        // namespace, before anything runs in it.
        var egress: EgressSession?
        if plan.policy.network.mode == .allowlist {
            do { egress = try EgressSession(pid: pid, rules: plan.policy.network.allow, settings: environment.egress) }
            catch { return abort(error.step, error.errno, error.message) }
        }
        defer { _ = egress?.finish() }

        // 8. Release the child.
        var go: UInt8 = 1
        // The write end stays open until we return: the child's lifeline (see CSpawn).
        if write(sync[1], &go, 1) != 1 { return abort("release", SystemError("write", path: "sync pipe", errno: errno)) }
        control?.didStart(pid: pid, cgroup: cgroup.directories)

        // 9. Read the report channel until the workload has exec'd (EOF: every copy of the
        // child's end is closed by execve or by init) — or a step failed.
        var listener: Int32 = -1
        var setupError: cs_report?
        while true {
            var report = cs_report()
            var fd: Int32 = -1
            let n = withUnsafeMutableBytes(of: &report) { cl_recv_with_fd(chan[0], $0.baseAddress, $0.count, &fd) }
            if n <= 0 { break }
            if fd >= 0 { listener = fd; fdsToClose.append(fd) }
            if report.has_fd == 0 && report.step != 0 && setupError == nil { setupError = report }
        }
        if let report = setupError { return abort(stepName(report), report.err, describe(report)) }

        // 10. Supervise.
        var supervisor = Supervisor(pidfd: pidfd, listener: listener, stdout: io.tty ? ptyMaster : out[0],
                                    stderr: io.tty ? -1 : err[0], stdinSource: io.tty || relayStdin ? io.stdin : -1,
                                    stdinSink: io.tty ? ptyMaster : input[1], io: io, plan: plan, cgroup: cgroup,
                                    wallTime: wallTime, start: start, cancelFD: control?.wakeFD ?? -1)
        // These belong to the supervisor now, which closes them.
        let handedOver = io.tty ? [ptyMaster] : [out[0], err[0], input[1]]
        fdsToClose.removeAll { handedOver.contains($0) }
        supervisor.loop()

        // 11. Collect: init's exit, the workload's status, the cgroup's counters.
        var initStatus: Int32 = 0
        _ = cl_pidfd_wait(pidfd, &initStatus, 0)
        var record = cs_status()
        let got = withUnsafeMutableBytes(of: &record) { read(status[0], $0.baseAddress, $0.count) }
        let usage = cgroup.usage()

        var result = emptyResult(reason: .exited)
        result.stdoutBytes = supervisor.stdoutBytes
        result.stderrBytes = supervisor.stderrBytes
        if let egress {
            let (records, omitted) = egress.finish()
            result.egress = records
            result.egressOmitted = omitted
        }
        let calls = supervisor.deniedOrder.compactMap { supervisor.denied[$0] }
        if plan.policy.seccomp.action == .log { result.logged = calls } else { result.denied = calls }
        result.deniedOmitted = supervisor.deniedOmitted
        result.peakMemoryBytes = usage.peakMemoryBytes
        var workloadStatus: Int32
        // CPU time: the cgroup's accounting covers killed processes too; init's rusage of what it
        // reaped is the fallback.
        if got == MemoryLayout<cs_status>.size {
            workloadStatus = record.wait_status
            result.cpuUserSeconds = Double(record.utime_us) / 1e6
            result.cpuSystemSeconds = Double(record.stime_us) / 1e6
        } else {
            workloadStatus = SIGKILL  // init was killed: so was everything in its pid namespace
        }
        if let user = usage.cpuUserMicros, let system = usage.cpuSystemMicros {
            result.cpuUserSeconds = Double(user) / 1e6
            result.cpuSystemSeconds = Double(system) / 1e6
        }
        if workloadStatus & 0x7f == 0 {
            result.exitCode = (workloadStatus >> 8) & 0xff
        } else {
            let sig = workloadStatus & 0x7f
            result.signal = sig
            result.signalName = signalName(sig)
        }
        let cpuUsed = (result.cpuUserSeconds ?? 0) + (result.cpuSystemSeconds ?? 0)
        if let failure = supervisor.outputFailure {
            result.setupFailure = SetupFailure(step: "output", errno: failure.errno, message: "output: \(failure)")
        }
        if let reason = supervisor.killedFor {
            result.reason = reason
        } else if usage.oomKills > 0 {
            result.reason = .memoryLimit
        } else if (result.signal == SIGXCPU || result.signal == SIGKILL),
                  let limit = plan.policy.limits.cpuTimeSeconds, cpuUsed >= limit.rounded(.up) - 0.05 {
            // RLIMIT_CPU's SIGXCPU, then SIGKILL a second later; a SIGXCPU the workload sent
            // itself before using its CPU time is only a signal.
            result.reason = .cpuLimit
        } else if result.signal != nil {
            result.reason = .signaled
        }
        result.layers = AppliedLayers(
            namespaces: namespaceFlags.map(\.1) + [cgroupNamespaceName], hostUIDRange: "\(range.hostBase)-\(range.hostBase + UIDRange.size - 1)",
            uid: plan.policy.process.uid,
            seccomp: "\(plan.policy.seccomp.profile) (refused calls: \(plan.policy.seccomp.action.rawValue), reported by user notification)",
            seccompInstructions: plan.seccomp.instructionCount, landlockABI: abi,
            cgroup: "\(hierarchy.version.rawValue) \(cgroup.directories.joined(separator: ","))",
            capabilitiesKept: plan.policy.capabilities.keep)
        return result
    }

    func stepName(_ r: cs_report) -> String {
        switch cs_step(rawValue: UInt32(r.step)) {
        case CS_STEP_WAIT_PARENT: return "wait-parent"
        case CS_STEP_ID_MAP: return "id-map"
        case CS_STEP_SETSID: return "setsid"
        case CS_STEP_MOUNT_PRIVATE: return "mount-private"
        case CS_STEP_ROOT_TMPFS: return "root-tmpfs"
        case CS_STEP_MOUNT: return "mount"
        case CS_STEP_PIVOT_ROOT: return "pivot-root"
        case CS_STEP_ROOT_READONLY: return "root-readonly"
        case CS_STEP_HOSTNAME: return "hostname"
        case CS_STEP_LOOPBACK: return "loopback"
        case CS_STEP_FORK: return "fork"
        case CS_STEP_STDIO: return "stdio"
        case CS_STEP_CHDIR: return "chdir"
        case CS_STEP_RLIMIT: return "rlimit"
        case CS_STEP_CAP_BOUNDING: return "capability-bounding-set"
        case CS_STEP_SECUREBITS: return "securebits"
        case CS_STEP_SETGROUPS: return "setgroups"
        case CS_STEP_SETGID: return "setgid"
        case CS_STEP_SETUID: return "setuid"
        case CS_STEP_CAPSET: return "capset"
        case CS_STEP_AMBIENT: return "ambient-capabilities"
        case CS_STEP_NO_NEW_PRIVS: return "no-new-privs"
        case CS_STEP_LANDLOCK_RULE: return "landlock-rule"
        case CS_STEP_LANDLOCK_RESTRICT: return "landlock-restrict"
        case CS_STEP_SECCOMP: return "seccomp"
        case CS_STEP_SEND_LISTENER: return "seccomp-listener"
        case CS_STEP_EXEC: return "execve"
        case CS_STEP_INIT_SIGNALS: return "init-signals"
        case CS_STEP_CGROUP: return "cgroup-join"
        case CS_STEP_CGROUP_NS: return "cgroup-namespace"
        case CS_STEP_INIT_EXEC: return "init-exec"
        default: return "step \(r.step)"
        }
    }

    /// "mount: mount /usr (read-only bind of /usr) failed: Permission denied".
    func describe(_ r: cs_report) -> String {
        let step = stepName(r)
        let text = SystemError.text(r.err)
        let index = Int(r.index)
        switch cs_step(rawValue: UInt32(r.step)) {
        case CS_STEP_MOUNT where plan.mounts.indices.contains(index):
            return "\(step): \(plan.mounts[index]) failed: \(text)"
        case CS_STEP_LANDLOCK_RULE where plan.landlockRules.indices.contains(index):
            return "\(step): rule for \(plan.landlockRules[index].path) failed: \(text)"
        case CS_STEP_RLIMIT where plan.rlimits.indices.contains(index):
            return "\(step): setrlimit(\(plan.rlimits[index].resource)) failed: \(text)"
        case CS_STEP_EXEC:
            var hint = ""
            if r.err == ENOENT && !argv[0].contains("/") {
                hint = " (searched PATH=\(plan.searchPath) inside the sandbox)"
            } else if r.err == ENOENT && plan.mounts.contains(where: { $0.kind == .bind && argv[0].hasPrefix(String(decoding: $0.data, as: UTF8.self) + "/") }) {
                // The file is bound in, so what is missing is what execve needs next: the
                // script's interpreter or the ELF dynamic loader.
                hint = " (the file is bound into the sandbox: its interpreter or dynamic loader, e.g. /lib64/ld-linux-x86-64.so.2, is probably not)"
            }
            return "\(step): \(argv[0]): \(text)" + hint
        case CS_STEP_ROOT_TMPFS where r.err == EACCES:
            // The sandbox's root is an unprivileged host uid; it must be able to reach the mount point.
            var dir = environment.runtimeDir
            var blocked = dir
            while !dir.isEmpty && dir != "/" {
                var st = stat()
                if stat(dir, &st) == 0 && st.st_mode & 0o001 == 0 { blocked = dir }
                dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
            }
            return "\(step): \(blocked) is not searchable by the sandbox's unprivileged uid: make every directory above the root mount point \(environment.runtimeDir)/root world-searchable (chmod o+x) or use the default /run/cordon"
        case CS_STEP_CHDIR:
            return "\(step): \(plan.cwd): \(text)"
        default:
            return "\(step) failed: \(text)"
        }
    }
}

/// The event loop while the workload runs: output relay with a cap, stdin relay, seccomp
/// notifications, the wall clock, and cgroup limit events.
private struct Supervisor {
    let pidfd: Int32
    var listener: Int32
    var stdout: Int32
    var stderr: Int32
    var stdinSource: Int32
    var stdinSink: Int32
    let io: SandboxIO
    let plan: SpawnPlan
    let cgroup: Cgroup
    let wallTime: Double?
    let start: Clock.Instant
    /// Readable when the sandbox is cancelled (-1: it cannot be).
    let cancelFD: Int32

    var stdoutBytes: UInt64 = 0
    var stderrBytes: UInt64 = 0
    var denied: [Int32: DeniedOperation] = [:]
    var deniedOrder: [Int32] = []
    var deniedOmitted = 0
    static let maxDistinctDenials = 64
    var killedFor: TerminationReason?
    /// The output's destination could not be opened (`SandboxIO.openOutput`).
    var outputFailure: SystemError?
    var exited = false

    init(pidfd: Int32, listener: Int32, stdout: Int32, stderr: Int32, stdinSource: Int32, stdinSink: Int32,
         io: SandboxIO, plan: SpawnPlan, cgroup: Cgroup, wallTime: Double?, start: Clock.Instant, cancelFD: Int32) {
        self.pidfd = pidfd
        self.listener = listener
        self.stdout = stdout
        self.stderr = stderr
        self.stdinSource = stdinSource
        self.stdinSink = stdinSink
        self.io = io
        self.plan = plan
        self.cgroup = cgroup
        self.wallTime = wallTime
        self.start = start
        self.cancelFD = cancelFD
    }

    mutating func kill(_ reason: TerminationReason) {
        if killedFor == nil { killedFor = reason }
        _ = cl_pidfd_send_signal(pidfd, SIGKILL)
        cgroup.killAll()
    }

    mutating func loop() {
        let watchCgroup = plan.cgroupLimits.pids != nil || plan.cgroupLimits.memoryBytes != nil
        var nextCgroupCheck = Clock.since(start) + 0.05
        let signals = SignalRelay(io.relaySignals ? SignalRelay.relayed : [])
        var terminalMode = TerminalMode(fd: io.tty ? io.stdin : -1)
        defer { terminalMode.restore() }
        // Our own pipe into the sandbox never blocks us: a workload that does not read its
        // stdin must not stall the loop that enforces its limits.
        if stdinSink >= 0 { _ = fcntl(stdinSink, F_SETFL, fcntl(stdinSink, F_GETFL) | O_NONBLOCK) }
        // The supervisor owns the sandbox's ends of the output pipes (or the pty master) and
        // our end of the stdin pipe; the caller's descriptors are never closed here.
        var out = Relay(source: stdout, sink: io.openOutput == nil ? io.stdout : -1, ownsSource: true, ownsSink: false)
        var err = Relay(source: stderr, sink: io.openOutput == nil ? io.stderr : -1, ownsSource: true, ownsSink: false)
        if let open = io.openOutput {
            out.opener = { () throws(SystemError) in try open(true) }
            err.opener = { () throws(SystemError) in try open(false) }
        }
        var input = Relay(source: stdinSource, sink: stdinSink, ownsSource: false, ownsSink: !io.tty)

        while !exited {
            // A stream reads more only when what it read before is written: backpressure.
            var fds: [pollfd] = [
                pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: killedFor == nil ? cancelFD : -1, events: Int16(POLLIN), revents: 0),
            ]
            for relay in [out, err, input] {
                fds.append(pollfd(fd: relay.pending.isEmpty ? relay.source : -1, events: Int16(POLLIN), revents: 0))
                fds.append(pollfd(fd: relay.pending.isEmpty ? -1 : relay.sink, events: Int16(POLLOUT), revents: 0))
            }

            var timeout: Int32 = -1
            let now = Clock.since(start)
            if let wallTime {
                if now >= wallTime { kill(.timeout) }
                timeout = Int32(max(0, min(Double(Int32.max), (wallTime - now) * 1000)).rounded(.up))
            }
            if watchCgroup {
                if now >= nextCgroupCheck {
                    let events = cgroup.limitEvents()
                    if events.pidsLimitHits > 0 { kill(.pidsLimit) }
                    else if events.oomKills > 0 { kill(.memoryLimit) }
                    nextCgroupCheck = now + 0.1
                }
                let untilCheck = Int32(max(0, (nextCgroupCheck - now) * 1000).rounded(.up))
                timeout = timeout < 0 ? untilCheck : min(timeout, untilCheck)
            }
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 { if errno == EINTR { continue }; return }

            if fds[0].revents != 0 { exited = true }
            if fds[1].revents & Int16(POLLIN) != 0 { answerNotification() }
            else if fds[1].revents != 0 { listener = -1 }  // POLLHUP: no process uses the filter any more
            if fds[2].revents != 0 {
                for sig in signals.drain() {
                    if sig == SIGWINCH && io.tty {
                        var rows: UInt16 = 0, cols: UInt16 = 0
                        if out.source >= 0, cl_get_winsize(io.stdin, &rows, &cols) == 0 { _ = cl_set_winsize(out.source, rows, cols) }
                    }
                    _ = cl_pidfd_send_signal(pidfd, sig)  // init forwards it to the workload
                }
            }
            if fds[3].revents != 0 { kill(.cancelled) }
            if fds[4].revents != 0 {
                readOutput(&out, isStdout: true)
                if io.tty && out.source < 0 { input.closeSink() }  // the pty master is gone
            }
            if fds[5].revents != 0 { out.writeSome() }
            if fds[6].revents != 0 { readOutput(&err, isStdout: false) }
            if fds[7].revents != 0 { err.writeSome() }
            if fds[8].revents != 0 {
                if input.read() == 0 && !io.tty { input.closeSink() }  // EOF: the workload sees it
            }
            if fds[9].revents != 0 { input.writeSome() }
        }

        // Init is gone and everything in the sandbox with it, so the pipes reach EOF at once.
        // Deliver what is left; the 2 s bound guards against a writer we do not know of.
        input.closeSink()
        input.closeSource()
        let deadline = Clock.since(start) + 2
        for isStdout in [true, false] {
            while true {
                if isStdout { out.flush() } else { err.flush() }
                let source = isStdout ? out.source : err.source
                if source < 0 { break }
                var pfd = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
                let wait = Int32(max(0, (deadline - Clock.since(start)) * 1000))
                if poll(&pfd, 1, wait) <= 0 { break }
                if isStdout { readOutput(&out, isStdout: true) } else { readOutput(&err, isStdout: false) }
            }
        }
        out.closeSource()
        err.closeSource()
        out.closeSink()
        err.closeSink()
        stdout = -1
        stderr = -1
    }

    /// Reads a chunk of the workload's output into the relay, counting it against the cap.
    mutating func readOutput(_ relay: inout Relay, isStdout: Bool) {
        let n = relay.read()
        guard n > 0 else { return }
        if let open = relay.opener {
            relay.opener = nil
            do throws(SystemError) { relay.adoptSink(try open()) } catch {
                relay.closeSink()
                if outputFailure == nil { outputFailure = error }
                kill(.setupFailed)
                return
            }
        }
        let total = stdoutBytes + stderrBytes
        var keep = n
        if let cap = plan.policy.limits.outputBytes, total + UInt64(n) > cap {
            keep = Int(cap - min(cap, total))
            relay.pending.removeLast(n - keep)
            kill(.outputLimit)
        }
        if isStdout { stdoutBytes += UInt64(keep) } else { stderrBytes += UInt64(keep) }
    }

    mutating func answerNotification() {
        var request = seccomp_notif()
        if cl_seccomp_notif_recv(listener, &request) != 0 {
            // ENOENT: the caller died meanwhile. Anything else: stop listening (calls then fail
            // with ENOSYS, still refused).
            if errno != ENOENT && errno != EINTR { listener = -1 }
            return
        }
        let nr = request.data.nr
        let action = plan.policy.seccomp.action
        // log: the call runs (CONTINUE; what it touches was already allowed by everything
        // but this filter). errno and kill: it fails; kill then stops the whole sandbox.
        let err = action == .log ? 0 : plan.seccomp.errnoBySyscall[nr] ?? plan.seccomp.defaultErrno
        _ = cl_seccomp_notif_respond_errno(listener, request.id, err)
        if action == .kill { kill(.seccompViolation) }
        if var entry = denied[nr] {
            entry.count += 1
            denied[nr] = entry
        } else if deniedOrder.count >= Supervisor.maxDistinctDenials {
            // The record itemises a bounded number of syscalls: a workload sweeping syscall
            // numbers must not grow the supervisor's memory (or the record) without bound.
            deniedOmitted += 1
        } else {
            let a = request.data.args
            let args = [a.0, a.1, a.2, a.3, a.4, a.5].map { "0x" + String($0, radix: 16) }
            denied[nr] = DeniedOperation(syscall: SeccompCompiler.syscallName(nr), number: nr, count: 1,
                                         firstArgs: args, errno: err)
            deniedOrder.append(nr)
        }
    }
}

/// One relayed stream: bytes read from `source` wait in `pending` until `sink` takes them.
/// Writes to a sink we do not own (the caller's stdout) happen only after poll reports it
/// writable and are at most PIPE_BUF bytes, so they do not block.
struct Relay {
    var source: Int32
    var sink: Int32
    /// Whether closing is ours to do (the caller's stdin and stdout are not).
    let ownsSource: Bool
    var ownsSink: Bool
    /// Opens the sink when the first byte arrives (until then `sink` is -1 and reads are kept).
    var opener: (() throws(SystemError) -> Int32)?
    var pending: [UInt8] = []
    var offset = 0
    static let chunk = 65536
    static let atomicWrite = 4096

    init(source: Int32, sink: Int32, ownsSource: Bool, ownsSink: Bool) {
        self.source = source
        self.sink = sink
        self.ownsSource = ownsSource
        self.ownsSink = ownsSink
    }

    /// Reads what is available; returns the byte count, 0 at EOF (the source is then closed).
    mutating func read() -> Int {
        guard source >= 0 else { return 0 }
        var buffer = [UInt8](repeating: 0, count: Relay.chunk)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return -1 }
        if n <= 0 {  // EOF, or EIO from a pty whose last user is gone
            closeSource()
            return 0
        }
        if sink >= 0 || opener != nil {
            pending.append(contentsOf: buffer[0..<n])
        }
        return n
    }

    /// Takes a sink opened on demand; it is ours to close.
    mutating func adoptSink(_ fd: Int32) {
        sink = fd
        ownsSink = true
    }

    mutating func writeSome() {
        guard sink >= 0, offset < pending.count else { return }
        let count = min(pending.count - offset, Relay.atomicWrite)
        let n = pending.withUnsafeBytes { Glibc.write(sink, $0.baseAddress! + offset, count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            closeSink()  // the reader went away (EPIPE): drop the rest
            return
        }
        offset += n
        if offset == pending.count {
            pending.removeAll(keepingCapacity: true)
            offset = 0
        }
    }

    /// Writes everything pending, blocking (used once the sandbox is gone).
    mutating func flush() {
        guard sink >= 0, offset < pending.count else { pending.removeAll(); offset = 0; return }
        pending.withUnsafeBytes { FileDescriptorIO.writeAll(sink, $0.baseAddress! + offset, pending.count - offset) }
        pending.removeAll(keepingCapacity: true)
        offset = 0
    }

    mutating func closeSource() {
        if source >= 0 && ownsSource { close(source) }
        source = -1
    }

    mutating func closeSink() {
        pending.removeAll()
        offset = 0
        if sink >= 0 && ownsSink { close(sink) }
        sink = -1
    }
}

/// Signals sent to the supervisor (Ctrl-C, SIGTERM, window changes) arrive on a signalfd and are
/// forwarded to the sandbox.
private final class SignalRelay {
    static let relayed: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2]
    let fd: Int32
    var old = sigset_t()

    init(_ signals: [Int32]) {
        var previous = sigset_t()
        fd = signals.isEmpty ? -1 : signals.withUnsafeBufferPointer { cl_signalfd_for($0.baseAddress, Int32($0.count), &previous) }
        if signals.isEmpty { pthread_sigmask(SIG_SETMASK, nil, &previous) }
        old = previous
    }

    func drain() -> [Int32] {
        var out: [Int32] = []
        while true {
            let sig = cl_signalfd_next(fd)
            if sig <= 0 { return out }
            out.append(sig)
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }
}

/// Raw mode on the caller's terminal for --tty, restored afterwards.
private struct TerminalMode {
    let fd: Int32
    var saved = termios()
    var active = false

    init(fd: Int32) {
        self.fd = fd
        guard fd >= 0, tcgetattr(fd, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        active = tcsetattr(fd, TCSANOW, &raw) == 0
    }

    mutating func restore() {
        if active { tcsetattr(fd, TCSANOW, &saved) }
        active = false
    }
}

/// C strings and arrays that must outlive a cs_spawn call.
final class CArena {
    var blocks: [UnsafeMutableRawPointer] = []

    func bytes(_ b: [UInt8]) -> UnsafePointer<CChar> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: b.count + 1, alignment: 1)
        b.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: b.count) } }
        p.storeBytes(of: 0, toByteOffset: b.count, as: UInt8.self)
        blocks.append(p)
        return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
    }

    func string(_ s: String) -> UnsafePointer<CChar> { bytes(Array(s.utf8)) }

    func stringArray(_ items: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: items.count + 1)
        for (i, s) in items.enumerated() { array[i] = UnsafeMutablePointer(mutating: string(s)) }
        array[items.count] = nil
        blocks.append(UnsafeMutableRawPointer(array))
        return UnsafePointer(array)
    }

    func constStringArray(_ items: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: items.count + 1)
        for (i, s) in items.enumerated() { array[i] = string(s) }
        array[items.count] = nil
        blocks.append(UnsafeMutableRawPointer(array))
        return UnsafePointer(array)
    }

    deinit { for b in blocks { b.deallocate() } }
}

func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let arena = CArena()
    let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: strings.count + 1)
    defer { array.deallocate() }
    for (i, s) in strings.enumerated() { array[i] = arena.string(s) }
    array[strings.count] = nil
    return body(UnsafePointer(array))
}

/// The highest capability number this kernel knows.
let capLast: Int = {
    let text = (try? FileSystem.readString("/proc/sys/kernel/cap_last_cap")) ?? "40"
    return Int(text.split(separator: "\n").first ?? "40") ?? 40
}()

/// Monotonic time.
enum Clock {
    typealias Instant = Double
    static var now: Instant { UTCTime.monotonic() }
    static func since(_ start: Instant) -> Double { now - start }
}
