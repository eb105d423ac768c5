import CLinux
import CordonPolicy
import CordonSystem
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// Runs one workload in a fresh sandbox and reports how it ended. Blocking; one sandbox per call.
///
/// Parent side of the spawn sequence (ARCHITECTURE.md), as a checklist in `Run`: claim a uid
/// range, create the cgroup, start the cleanup guardian, create the Landlock ruleset and the
/// descriptors, clone (CSpawn, from the plan `CSpawnPlan` marshals), write the id maps, wire
/// egress, release the child, read its report (`ChildReport`), supervise (`Supervisor`) until
/// init exits, and classify the end (`Termination`). Each of those lives in a file of its own.
public enum Sandbox {
    /// `workspace`: for a plan with a workspace (`SpawnPlan.withWorkspace`), its directory and
    /// caller.
    public static func run(plan: SpawnPlan, argv: [String], environment: SandboxEnvironment, io: SandboxIO,
                           wallTime: Double?, control: SandboxControl? = nil, workspace: SandboxWorkspace? = nil) -> SandboxResult {
        // A write to a stream whose reader is gone must fail with EPIPE, not kill the supervisor.
        // (Process-wide; the child resets every disposition before the workload runs.)
        signal(SIGPIPE, SIG_IGN)
        let run = Run(plan: plan.withPrivateBindsCloned(), argv: argv, environment: environment, io: io, wallTime: wallTime ?? plan.policy.limits.wallTimeSeconds,
                      control: control, workspace: workspace, start: MonotonicClock.now)
        defer { control?.ended() }
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

/// The highest capability number this kernel knows.
let capLast: Int = {
    let text = (try? FileSystem.readString("/proc/sys/kernel/cap_last_cap")) ?? "40"
    return Int(text.split(separator: "\n").first ?? "40") ?? 40
}()

/// The spawn's own channels to the child.
private struct SpawnChannels: ~Copyable {
    /// The child waits on the read end until it is released; the write end is its lifeline.
    var sync: Pipe
    /// init writes the workload's `cs_status` to the write end.
    var status: Pipe
    /// The child reports failed steps and sends the seccomp listener on the second end.
    var chan: SocketPair

    init() throws(SystemError) {
        let sync = try Descriptor.pipe()
        let status = try Descriptor.pipe()
        let chan = try Descriptor.socketPair(type: Int32(SOCK_SEQPACKET.rawValue))
        self.sync = sync
        self.status = status
        self.chan = chan
    }
}

private struct Run {
    let plan: SpawnPlan
    let argv: [String]
    let environment: SandboxEnvironment
    let io: SandboxIO
    let wallTime: Double?
    let control: SandboxControl?
    let workspace: SandboxWorkspace?
    let start: Double

    /// The record of a sandbox whose workload never ran.
    func failure(_ failure: SetupFailure) -> SandboxResult {
        SandboxResult(Termination.notStarted(failure), policy: plan.policy.name, policyHash: plan.policy.contentHash,
                      wallTimeSeconds: MonotonicClock.since(start))
    }

    func failure(_ step: SetupStep, _ err: Int32, _ message: String) -> SandboxResult {
        failure(SetupFailure(step: step, errno: err, message: message))
    }

    func execute() -> SandboxResult {
        if control?.isCancelled == true {
            return SandboxResult(Termination.cancelledBeforeStart, policy: plan.policy.name, policyHash: plan.policy.contentHash,
                                 wallTimeSeconds: MonotonicClock.since(start))
        }
        // 1. A host uid/gid range of our own.
        let range: UIDRange
        do { range = try UIDRange.claim() }
        catch { return failure(.uidRange, error.errno, "claim uid range: \(error)") }

        // 2. The cgroup, with its limits written before anything runs in it. v2 creates it now
        // (clone3 places the child in it); v1 once the child is building its root (step 8b),
        // which it joins only after.
        let hierarchy: CgroupHierarchy
        do { hierarchy = try CgroupHierarchy.detect(mount: environment.cgroupMount, group: environment.cgroupGroup) }
        catch { return failure(.cgroup, error.errno, "cgroup: \(error)") }
        let cgroup = hierarchy.cgroup(named: "s\(range.slot)")
        if hierarchy.version == .v2 {
            do { try hierarchy.create(cgroup, limits: plan.cgroupLimits) }
            catch { return failure(.cgroup, error.errno, "cgroup: \(error)") }
        }

        // 3. The guardian removes the cgroup (whether or not it was made yet) if we are killed
        // before we can: it waits on a pipe
        // whose write end only we hold (EOF: we died; a byte: we cleaned up ourselves).
        var guardian: pid_t = 0
        var guardianRegion: UnsafeMutableRawPointer?
        var guardianLifeline: Descriptor?
        if environment.cleanupGuardian {
            let pipe: Pipe
            do { pipe = try Descriptor.pipe() } catch {
                try? cgroup.remove()
                return failure(.guardian, error.errno, "pipe: \(SystemError.text(error.errno))")
            }
            let dirs = cgroup.directories
            let readEnd = pipe.read.raw
            guardian = withCStringArray(dirs) { cl_guardian_start(readEnd, range.lockFD, $0, dirs.count, &guardianRegion) }
            let startErrno = errno
            pipe.read.close()  // the guardian has its own copy
            guardianLifeline = .some(pipe.write)
            if guardian < 0 {
                guardianLifeline = nil
                try? cgroup.remove()
                return failure(.guardian, startErrno, "start cleanup guardian: \(SystemError.text(startErrno))")
            }
        }
        defer {
            if let lifeline = guardianLifeline.take() {
                var done: UInt8 = 1
                _ = write(lifeline.raw, &done, 1)
                lifeline.close()
            }
            // The guardian exits at once on that byte; reap it (it has no exit signal: __WALL).
            var status: Int32 = 0
            if guardian > 0 { _ = waitpid(guardian, &status, Int32(bitPattern: 0x4000_0000)) }
            // Its stack, once it has exited (it shares our memory).
            cl_guardian_release(guardianRegion)
        }

        var result = spawnAndSupervise(range: range, cgroup: cgroup, hierarchy: hierarchy)
        do { try cgroup.remove() } catch {
            // The sandbox ran; a cgroup we cannot remove is reported, not hidden.
            if result.setupFailure == nil {
                FileDescriptorIO.writeAll(io.stderr, "cordon: cleanup: \(error)\n")
            }
        }
        result.wallTimeSeconds = MonotonicClock.since(start)
        return result
    }

    /// How reading the child's reports ended.
    enum ReportsEnd {
        /// End of file: every step done (nil) or the first one that failed.
        case complete(ChildReport?)
        /// The wall clock ran out or the sandbox was cancelled while it was being set up.
        case stopped(TerminationReason)
    }

    /// Reads the child's reports until end of file; returns the first failure. A seccomp
    /// listener that rides along lands in `listener`. Set-up counts against the wall clock
    /// (`deadline`, seconds since `start`) and yields to cancellation (`cancelFD` readable): a
    /// step that never returns — a bind source on a hung network filesystem, an init that never
    /// opens the gate — ends the sandbox instead of the caller's wait.
    static func readReports(_ reports: Int32, listener: inout Descriptor?,
                            deadline: Double? = nil, start: Double = 0, cancelFD: Int32 = -1) -> ReportsEnd {
        var failed: ChildReport?
        while true {
            if deadline != nil || cancelFD >= 0 {
                // What the child has sent is read first: a failure it reported, or the end of its
                // reports (the workload executed: the wall clock is the supervisor's from there),
                // is the better account than the clock that ran out meanwhile.
                var fds = [pollfd(fd: reports, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: cancelFD, events: Int16(POLLIN), revents: 0)]
                var timeout: Int32 = -1
                if let deadline {
                    let left = deadline - MonotonicClock.since(start)
                    timeout = left <= 0 ? 0 : Int32(min(Double(Int32.max), left * 1000).rounded(.up))
                }
                let n = poll(&fds, 2, timeout)
                if n < 0 && errno == EINTR { continue }
                if fds[0].revents == 0 {
                    if let failed { return .complete(failed) }
                    if fds[1].revents != 0 { return .stopped(.cancelled) }
                    if let deadline, MonotonicClock.since(start) >= deadline { return .stopped(.timeout) }
                    continue
                }
            }
            var message = cs_report()
            var fd: Int32 = -1
            let n = withUnsafeMutableBytes(of: &message) { cl_recv_with_fd(reports, $0.baseAddress, $0.count, &fd) }
            // A child that exits with our message unread (the cgroup's tasks files: it failed
            // before it joined) leaves ECONNRESET on this end, reported once, ahead of what it
            // had queued for us — its failure among it.
            if n < 0 && errno == ECONNRESET { continue }
            if n <= 0 { break }
            if fd >= 0 { listener = Descriptor(adopting: fd) }
            let report = ChildReport(message)
            if report.isFailure && failed == nil { failed = report }
        }
        return .complete(failed)
    }

    func spawnAndSupervise(range: UIDRange, cgroup: Cgroup, hierarchy: CgroupHierarchy) -> SandboxResult {
        // 4. Landlock's ruleset, created here, restricted in the child.
        let abi = plan.policy.landlock.mode == .off ? 0 : Landlock.abi
        if plan.policy.landlock.mode == .required && abi == 0 {
            return failure(.landlock, ENOSYS, "landlock: required by the policy but not available on this kernel")
        }
        var landlock: Descriptor?
        if abi > 0 {
            do { landlock = try Landlock.createRuleset(abi: abi) }
            catch { return failure(.landlock, error.errno, "landlock: \(error)") }
        }

        // 5. The sync pipe the child waits on, the report channel, init's status pipe and the
        // standard streams. The child's ends are closed here once it holds them (step 6).
        let channels: SpawnChannels
        do { channels = try SpawnChannels() }
        catch { return failure(.pipes, error.errno, "create pipes: \(SystemError.text(error.errno))") }
        let sync = channels.sync
        let status = channels.status
        let chan = channels.chan
        var stdio: StdioPlumbing
        do { stdio = try StdioPlumbing(io: io) } catch { return failure(error) }

        let initFD: Int32  // InitProgram keeps it open for the life of the process
        do { initFD = try InitProgram.open(environment.initProgram) }
        catch { return failure(.initProgram, error.errno, "\(error)") }

        let rootMount = "\(environment.runtimeDir)/root"
        // The sandbox's root (mapped to an unprivileged host uid) must be able to reach this
        // empty mount point: 0755 all the way down.
        do { try FileSystem.ensureDirectory(rootMount, mode: 0o755) }
        catch { return failure(.rootMountpoint, error.errno, "\(error)") }
        // The child mounts on this path: it must be a real directory of root's, not a symlink
        // someone planted. The mode is fixed through the descriptor, never through the path.
        let rootFD = open(rootMount, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        let notRoots = "root-mountpoint: \(rootMount) must be a directory owned by root (not a symlink)"
        guard rootFD >= 0 else { return failure(.rootMountpoint, EPERM, notRoots) }
        let root = Descriptor(adopting: rootFD)
        var rootStat = stat()
        guard fstat(root.raw, &rootStat) == 0, rootStat.st_uid == 0 else { return failure(.rootMountpoint, EPERM, notRoots) }
        fchmod(root.raw, 0o755)
        root.close()

        // Writable binds: idmapped detached mounts, made here (only the host's root may), moved
        // into the tree by the child.
        let idmapped: IdmappedMounts
        do { idmapped = try IdmappedMounts(plan: plan, hostBase: range.hostBase, ownership: environment.writeOwnership, workspace: workspace) }
        catch { return failure(.idmap, error.errno, error.message) }
        defer { withExtendedLifetime(idmapped) {} }

        var cgroupDirectory: Descriptor?
        if cgroup.version == .v2 {
            do { cgroupDirectory = try cgroup.openDirectory() } catch { return failure(.cgroup, error.errno, "cgroup: \(error)") }
        }

        // The flat C plan. What it points to stays valid until this function returns: the child
        // may share our memory (and read the plan) until both it and the workload have executed.
        let cPlan = CSpawnPlan(plan, CSpawnPlan.Spawn(
            argv: argv, rootMountpoint: rootMount, cgroupTaskFiles: cgroup.version == .v1 ? cgroup.directories.count : 0,
            cgroupFD: cgroupDirectory?.raw ?? -1,
            syncFD: sync.read.raw, chanFD: chan.second.raw, statusFD: status.write.raw, stdio: stdio.childStdio, tty: io.tty,
            landlockABI: abi, landlockFD: landlock?.raw ?? -1, initFD: initFD, shareMemory: environment.shareMemoryUntilExec,
            capLast: capLast, attachFDs: idmapped.fds, workloadIsInit: io.sessionChannel != nil))
        defer { withExtendedLifetime(cPlan) {} }

        // 6. clone. The child waits on `sync` until the maps and cgroup are in place.
        var rawPidfd: Int32 = -1
        var region: UnsafeMutableRawPointer?
        let pid = cPlan.withPlan { cs_spawn($0, &rawPidfd, &region) }
        if pid < 0 { return failure(.clone, errno, "clone: \(SystemError.text(errno))") }
        // The child's stack: freed at return, when the channel has reached EOF (both processes
        // executed) or the child was killed and reaped (abort) — never while it may run on it.
        defer { cs_spawn_release(region) }
        let pidfd = Descriptor(adopting: rawPidfd)
        // The sandbox's mount namespace, held until init has been reaped (opened after clone, so
        // the child never has it). Otherwise the last process to leave tears it down in its own
        // exit, an RCU grace period that kept us from reaping it: dropped by us after the reap,
        // the whole run measured 0.4 ms shorter (docs/architecture.md, "Spawn cost").
        let namespaceFD = open("/proc/\(pid)/ns/mnt", O_RDONLY | O_CLOEXEC)
        var mountNamespace = namespaceFD >= 0 ? Descriptor(adopting: namespaceFD) : nil
        // Ours no more: the child's ends (it holds its own copies now).
        sync.read.close()
        chan.second.close()
        status.write.close()
        stdio.childEnds.close()

        let pidNumber = pidfd.raw
        /// Kills init (and with it everything in its pid namespace) and reaps it.
        func killAndReap() {
            _ = cl_pidfd_send_signal(pidNumber, SIGKILL)
            var ws: Int32 = 0
            _ = cl_pidfd_wait(pidNumber, &ws, 0)
        }
        func abort(_ failure: SetupFailure) -> SandboxResult {
            killAndReap()
            return self.failure(failure)
        }
        func abort(_ step: SetupStep, _ error: SystemError) -> SandboxResult {
            abort(SetupFailure(step: step, errno: error.errno, message: "\(step): \(error)"))
        }

        // 7. Map the sandbox's ids 0…65535 onto our host range (the child joins its cgroup itself).
        let mapping = "0 \(range.hostBase) \(UIDRange.size)\n"
        do {
            try FileSystem.writeControl("/proc/\(pid)/uid_map", mapping)
            try FileSystem.writeControl("/proc/\(pid)/gid_map", mapping)
        } catch { return abort(.idMap, error) }

        // 7b. Egress: the proxy's sockets, routes and sk_lookup program in the sandbox's network
        // namespace, before anything runs in it.
        // Refusals as they happen, for a caller that watches them (`SandboxControl.onDenial`).
        var onDenial: (@Sendable (Denial) -> Void)?
        if let control { onDenial = { control.denied($0) } }
        var egress: EgressSession?
        if plan.policy.network.mode == .allowlist {
            do throws(EgressSession.SetupError) {
                egress = try EgressSession(pid: pid, rules: plan.policy.network.allow, settings: environment.egress, onDenied: onDenial)
            }
            catch { return abort(SetupFailure(step: error.step, errno: error.errno, message: error.message)) }
        }
        defer { _ = egress?.finish() }

        // 8. Release the child. The write end stays open until we return: the child's lifeline
        // (see CSpawn).
        var go: UInt8 = 1
        if write(sync.write.raw, &go, 1) != 1 { return abort(.release, SystemError("write", path: "sync pipe", errno: errno)) }

        // 8b. cgroup v1: made while the child builds its root, then its "tasks" files handed to
        // it to join with (see CSpawn) before anything runs there.
        if cgroup.version == .v1 {
            let channel = chan.first.raw
            do throws(SystemError) {
                try hierarchy.create(cgroup, limits: plan.cgroupLimits)
                let files = try cgroup.openTaskFiles()
                let sent = files.raw.withUnsafeBufferPointer { cl_send_fds(channel, $0.baseAddress, $0.count) }
                if sent != 0 { throw SystemError("send", path: "the cgroup's tasks files", errno: errno) }
            } catch {
                // The child may have failed first (a send then finds it gone): its own report
                // says why. Once it is dead and reaped, what it sent is all there is to read.
                killAndReap()
                var unused: Descriptor?
                if case .complete(let reported?) = Self.readReports(channel, listener: &unused) {
                    return self.failure(reported.failure(plan: plan, argv: argv, runtimeDir: environment.runtimeDir))
                }
                return self.failure(SetupFailure(step: .cgroup, errno: error.errno, message: "cgroup: \(error)"))
            }
        }
        let layers = AppliedLayers(
            namespaces: namespaceFlags.map(\.1) + [cgroupNamespaceName], hostUIDRange: "\(range.hostBase)-\(range.hostBase + UIDRange.size - 1)",
            uid: plan.policy.process.uid,
            seccomp: "\(plan.policy.seccomp.profile) (refused calls: \(plan.policy.seccomp.action.rawValue), reported by user notification)",
            seccompInstructions: plan.seccomp.instructionCount, landlockABI: abi,
            cgroup: "\(hierarchy.version.rawValue) \(cgroup.directories.joined(separator: ","))",
            capabilitiesKept: plan.policy.capabilities.keep)
        if let control {
            var record = SandboxResult(Termination.Outcome(reason: .exited, exitCode: 0, signal: nil, setupFailure: nil, exitStatus: 0),
                                       policy: plan.policy.name, policyHash: plan.policy.contentHash)
            record.layers = layers
            control.didStart(pid: pid, cgroup: cgroup, record: record, logMode: plan.policy.seccomp.action == .log, endOnly: egress != nil)
        }

        // 9. Read the report channel until the workload has exec'd (EOF: every copy of the
        // child's end is closed by execve or by init) — or a step failed.
        var listener: Descriptor?
        switch Self.readReports(chan.first.raw, listener: &listener, deadline: wallTime, start: start, cancelFD: control?.wakeFD ?? -1) {
        case .complete(let failed?):
            return abort(failed.failure(plan: plan, argv: argv, runtimeDir: environment.runtimeDir))
        case .complete(nil):
            break
        case .stopped(let reason):
            // Killed mid-set-up: the workload never ran (no exit code, no signal of its own, the
            // status of a sandbox that never ran to an exit; no layers claimed — set-up stopped
            // part way). Everything in the pid namespace goes with init; the cgroup's processes
            // too, should one have joined it and escaped that. A step stuck where SIGKILL cannot
            // reach it (a FUSE daemon that never answers) still holds this wait: SECURITY.md.
            cgroup.killAll()
            killAndReap()
            mountNamespace.take()?.closeInBackground()
            let outcome = Termination.Outcome(reason: reason, exitCode: nil, signal: nil, setupFailure: nil,
                                              exitStatus: Termination.exitStatus(exitCode: nil, signal: nil, setupFailure: nil))
            return SandboxResult(outcome, policy: plan.policy.name, policyHash: plan.policy.contentHash,
                                 wallTimeSeconds: MonotonicClock.since(start))
        }

        // 10. Supervise.
        var supervisor = Supervisor(pidfd: pidNumber, listener: listener.take(), io: io, plan: plan, cgroup: cgroup,
                                    wallTime: wallTime, start: start, cancelFD: control?.wakeFD ?? -1, onDenial: onDenial, control: control)
        supervisor.loop(stdio.streams)

        // 11. Collect: init's exit, the workload's status, the cgroup's counters.
        var initStatus: Int32 = 0
        _ = cl_pidfd_wait(pidNumber, &initStatus, 0)
        // The tree's teardown (an RCU grace period) overlaps the collection and the cgroup's
        // removal below instead of preceding them.
        mountNamespace.take()?.closeInBackground()
        var record = cs_status()
        let statusFD = status.read.raw
        let got = withUnsafeMutableBytes(of: &record) { read(statusFD, $0.baseAddress, $0.count) }
        let reported = got == MemoryLayout<cs_status>.size
        let usage = cgroup.usage()
        // CPU time: the cgroup's accounting covers killed processes too; init's rusage of what it
        // reaped is the fallback.
        var cpuUser = reported ? Double(record.utime_us) / 1e6 : nil
        var cpuSystem = reported ? Double(record.stime_us) / 1e6 : nil
        if let user = usage.cpuUserMicros, let system = usage.cpuSystemMicros {
            cpuUser = Double(user) / 1e6
            cpuSystem = Double(system) / 1e6
        }

        // 12. Classify the end.
        let outcome = Termination.classify(Termination.Observation(
            waitStatus: reported ? record.wait_status : nil, killedFor: supervisor.killedFor,
            outputFailure: supervisor.outputFailure, oomKills: usage.oomKills,
            cpuSeconds: (cpuUser ?? 0) + (cpuSystem ?? 0), cpuLimitSeconds: plan.policy.limits.cpuTimeSeconds))
        var result = SandboxResult(outcome, policy: plan.policy.name, policyHash: plan.policy.contentHash,
                                   wallTimeSeconds: MonotonicClock.since(start))
        result.cpuUserSeconds = cpuUser
        result.cpuSystemSeconds = cpuSystem
        result.peakMemoryBytes = usage.peakMemoryBytes
        result.stdoutBytes = supervisor.stdoutBytes
        result.stderrBytes = supervisor.stderrBytes
        result.stdoutLastByte = supervisor.stdoutLastByte
        if let egress {
            let (records, omitted) = egress.finish()
            result.egress = records
            result.egressOmitted = omitted
        }
        if plan.policy.seccomp.action == .log { result.logged = supervisor.deniedCalls } else { result.denied = supervisor.deniedCalls }
        result.deniedOmitted = supervisor.deniedOmitted
        result.layers = layers
        return result
    }
}
