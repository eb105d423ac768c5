import CLinux
import CordonPolicy
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// What a caller hands a sandbox: where it keeps its host-side state (`SandboxEnvironment`), the
// caller's side of its standard streams (`SandboxIO`), and a handle to cancel it from another
// thread (`SandboxControl`).

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
    /// cordon-init to execute as pid 1 (nil: next to this executable, then ../libexec/cordon, then /usr/libexec/cordon).
    public var initProgram: String?
    /// Who owns on the host what the sandbox writes through its writable binds.
    public var writeOwnership = WriteOwnership.sourceOwner

    public init(runtimeDir: String) { self.runtimeDir = runtimeDir }
}

/// A task's workspace at spawn (`SpawnPlan.withWorkspace`): the O_PATH descriptor of its
/// directory, opened with its caller's rights (borrowed: kept open by whoever runs the sandbox
/// until the run returns), and that caller, whose uid and gid are mapped into the sandbox for it
/// — an admin's workspace too, so a workspace is never read or written as anyone else — and
/// the caller's groups (a writable workspace's own group is mapped only when it is one of them).
public struct SandboxWorkspace: Sendable {
    public var descriptor: Int32
    public var caller: Policy.Owner
    public var callerGroups: [UInt32]
    /// For a copy-on-write workspace: the detached tmpfs its changes go to (`WorkspaceChanges.layer`,
    /// borrowed like `descriptor`), read back with `WorkspaceChanges.capture` after the run.
    public var cow: Int32?
    public init(descriptor: Int32, caller: Policy.Owner, callerGroups: [UInt32], cow: Int32? = nil) {
        self.descriptor = descriptor
        self.caller = caller
        self.callerGroups = callerGroups
        self.cow = cow
    }

    /// The gid a writable workspace directory's own group has inside, when it is another of the
    /// caller's groups than their primary one: 65533, or 65532 for a sandbox whose own gid is
    /// 65533. A file created in a setgid workspace takes that group on the host, as it would
    /// have for the caller; the sandbox is not a member unless its policy keeps CAP_SETGID, and
    /// then it has no more of the group than the caller has.
    public static func groupInside(_ sandboxGID: UInt32) -> UInt32 { sandboxGID == 65533 ? 65532 : 65533 }

    /// Why a directory of owner `uid` and group `gid` cannot be a writable workspace of `caller`
    /// (in `groups` besides their primary one), or nil: its owner must be the caller, its group
    /// one of theirs. cordond asks at submit, IdmappedMounts again at spawn.
    public enum WriteRefusal: Sendable { case owner, group }
    public static func writeRefusal(uid: UInt32, gid: UInt32, caller: Policy.Owner, groups: [UInt32]) -> WriteRefusal? {
        if uid != caller.uid { return .owner }
        if gid != caller.gid && !groups.contains(gid) { return .group }
        return nil
    }
}

/// The caller's side of the workload's standard streams.
public struct SandboxIO: Sendable {
    public var stdin: Int32 = 0
    public var stdout: Int32 = 1
    public var stderr: Int32 = 2
    /// Give the workload a pseudo-terminal (stdin must be a terminal).
    public var tty = false
    /// Give the workload `stdout` itself as its standard output (a pipe the caller reads, for
    /// a long-lived service), or /dev/null: not relayed, so not counted against `limits.output`
    /// — the caller bounds what it reads. Not with `tty` or `openOutput`.
    public var passStdout = false
    /// Forward SIGINT, SIGTERM, SIGHUP, … sent to this process to the workload (`cordon run`).
    /// A daemon running many sandboxes keeps its signals for itself.
    public var relaySignals = true
    /// When set, `stdout` and `stderr` are not used: each stream's destination is opened by this
    /// when its first byte arrives (true: stdout), so a task that prints nothing creates no file.
    /// The sandbox closes what it returns; a throw ends the sandbox as setup-failed, naming it.
    public var openOutput: (@Sendable (_ isStdout: Bool) throws(SystemError) -> Int32)?
    /// The workload is a session's server: cordon-init's `cordon-session` mode, executed from
    /// the init program's descriptor once it is as confined as any workload (argv is then the
    /// server's). This socket (SOCK_SEQPACKET) is its standard input, handed over as it is;
    /// `stdin` is not used. See Sources/cordon-init and docs/daemon.md, "Sessions".
    public var sessionChannel: Int32?
    /// With a session channel: a memory or pids limit hit still ends the whole sandbox (a warm
    /// sandbox serving one task, which ends as a cold task would). Without it, the kernel's
    /// kill of one command is that command's status and the session goes on.
    public var limitsEndSession = false
    public init() {}
}

/// A handle on one sandbox from other threads: cancel it, and learn when its workload starts.
public final class SandboxControl: Sendable {
    /// Readable once `cancel()` was called; the supervisor polls it.
    private let wake: Descriptor
    private let signal: Descriptor
    private let started = Mutex<(@Sendable (_ pid: Int32, _ cgroup: [String]) -> Void)?>(nil)
    private let denials = Mutex<(@Sendable (Denial) -> Void)?>(nil)
    /// The sandbox as it runs, published by its thread (`recordSoFar`).
    private let live = Mutex<LiveState?>(nil)

    struct LiveState: Sendable {
        /// The record's parts known at the start (policy, layers).
        var record: SandboxResult
        var cgroup: Cgroup
        var logMode: Bool
        /// Egress records are collected only at the end.
        var endOnly: Bool
        var calls: [DeniedOperation] = []
        var omitted = 0
        /// The supervisor has asked the kernel for a refused call and not yet published it.
        var receiving = false
        /// Pidfds of the processes in the sandbox when it became ready to serve (`noteResidents`);
        /// only once there are any does the supervisor publish its refused calls.
        var residents: [Int32] = []
        /// The cgroup's counters, opened with `noteResidents` for `recordSoFar`.
        var counters: CgroupCounters?
        /// Refused calls the supervisor took (all of them), and how many of those its last
        /// publication covered: the same number when `calls` is the whole table.
        var taken = 0
        var publishedTaken = 0
    }

    deinit { ended() }

    /// The sandbox has ended (Sandbox.run returns): what it held for `recordSoFar` and the start
    /// callback (which may hold its caller, and so this control) are let go.
    func ended() {
        let residents: [Int32] = live.withLock { state in
            defer { state = nil }
            return state?.residents ?? []
        }
        for fd in residents { Glibc.close(fd) }
        // Taken out under the lock, let go after it (it may hold the last reference of its objects).
        let body = started.withLock { b in
            defer { b = nil }
            return b
        }
        _ = body
    }

    public init() throws(SystemError) {
        let pipe: Pipe
        do { pipe = try Descriptor.pipe(flags: O_CLOEXEC | O_NONBLOCK) } catch {
            throw SystemError("pipe", path: "sandbox control", errno: error.errno)
        }
        wake = pipe.read
        signal = pipe.write
    }

    /// The descriptor the supervisor polls, readable once cancelled (borrowed: this control owns it).
    public var wakeFD: Int32 { wake.raw }

    /// `body` runs on the sandbox's thread once the child is released, with init's host pid
    /// and the cgroup directories the sandbox runs in.
    public func onStart(_ body: @escaping @Sendable (_ pid: Int32, _ cgroup: [String]) -> Void) {
        started.withLock { $0 = body }
    }

    /// Kills the sandbox's whole cgroup (reason `cancelled`), or keeps it from starting.
    /// Safe to call from any thread, any number of times.
    public func cancel() {
        var one: UInt8 = 1
        _ = write(signal.raw, &one, 1)
    }

    public var isCancelled: Bool {
        var pfd = pollfd(fd: wake.raw, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) == 1
    }

    func didStart(pid: Int32, cgroup: Cgroup, record: SandboxResult, logMode: Bool, endOnly: Bool) {
        live.withLock { $0 = LiveState(record: record, cgroup: cgroup, logMode: logMode, endOnly: endOnly) }
        // Once: the callback is let go after it ran.
        let body = started.withLock { b in
            defer { b = nil }
            return b
        }
        body?(pid, cgroup.directories)
    }

    /// Pins the processes in the sandbox now (for a warm sandbox: its init and its server,
    /// parked and ready): `recordSoFar` holds only while they are all that is in it. False when
    /// they cannot be pinned (not started, a process came or went meanwhile).
    public func noteResidents() -> Bool {
        guard let cgroup = live.withLock({ $0?.cgroup }), let before = cgroup.processIDs() else { return false }
        var fds: [Int32] = []
        for pid in before {
            let fd = cl_pidfd_open(pid)
            if fd < 0 { break }
            fds.append(fd)
        }
        // The same processes after they were pinned: none of the descriptors is of a reused pid.
        guard fds.count == before.count, cgroup.processIDs() == before else {
            for fd in fds { Glibc.close(fd) }
            return false
        }
        let counters = cgroup.openCounters()
        let (old, kept): ([Int32], Bool) = live.withLock { state in
            guard state != nil else { return (fds, false) }  // ended meanwhile
            defer {
                state?.residents = fds
                state?.counters = counters
            }
            return (state?.residents ?? [], true)
        }
        for fd in old { Glibc.close(fd) }
        return kept
    }

    /// The supervisor is about to take a refused call from the kernel (every one is counted);
    /// true when it is to publish its table once it has answered (`published`).
    func receiving() -> Bool {
        live.withLock { state in
            state?.taken += 1
            guard state?.residents.isEmpty == false else { return false }
            state?.receiving = true
            return true
        }
    }

    /// The supervisor's whole table of refused calls, after it answered one (or failed to take
    /// it): it covers every call taken so far, those before tracking began included.
    func published(_ calls: [DeniedOperation], omitted: Int) {
        live.withLock {
            $0?.calls = calls
            $0?.omitted = omitted
            $0?.receiving = false
            let taken = $0?.taken ?? 0
            $0?.publishedTaken = taken
        }
    }

    /// The sandbox's record as it stands while it runs, for a caller that learns its workload's
    /// end by itself (a warm sandbox's one command, ended and reaped by the sandbox's server):
    /// its layers, its cgroup's counters read now, the calls refused so far. Nil before its
    /// residents were noted (`noteResidents`); when only its end can tell (egress records are
    /// collected then); when anything but its residents is in it, or one of them has gone
    /// (what another process does next would be missing); or while the supervisor is between
    /// taking a refused call and publishing it. Otherwise nothing can be added to it: a process
    /// refused a call waits in that call until the supervisor has published the refusal, and
    /// one killed before is dropped by the kernel from what the supervisor can take.
    public func recordSoFar() -> SandboxResult? {
        guard let (cgroup, residents, counters) = live.withLock({ s in s.map { ($0.cgroup, $0.residents, $0.counters) } }), !residents.isEmpty,
              let count = cgroup.processCount(), count <= residents.count else { return nil }
        // Counted first, then found alive: the processes counted were the residents, no other.
        for fd in residents {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) != 0 { return nil }
        }
        guard let state = live.withLock({ $0 }), !state.endOnly, !state.receiving, state.publishedTaken == state.taken else { return nil }
        // Without the cgroup's cpu time the end's record has a fallback (init's rusage): wait for it.
        let usage = counters?.usage() ?? cgroup.usage()
        guard let user = usage.cpuUserMicros, let system = usage.cpuSystemMicros else { return nil }
        var record = state.record
        record.cpuUserSeconds = Double(user) / 1e6
        record.cpuSystemSeconds = Double(system) / 1e6
        record.peakMemoryBytes = usage.peakMemoryBytes
        if state.logMode { record.logged = state.calls } else { record.denied = state.calls }
        record.deniedOmitted = state.omitted
        return record
    }

    /// `body` runs for each refusal as it happens (a syscall the seccomp profile refused, a
    /// lookup or connection egress refused), on the supervisor's or the proxy's thread: a
    /// long-lived service's record of what it was refused during one of its calls. It must be
    /// quick and must not block. (The run's record has them all at the end either way.)
    public func onDenial(_ body: @escaping @Sendable (Denial) -> Void) {
        denials.withLock { $0 = body }
    }

    func denied(_ d: Denial) { denials.withLock { $0 }?(d) }
}

/// One refusal of a sandbox's, as it happened.
public struct Denial: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable { case syscall, lookup, connection }
    public var kind: Kind
    /// The syscall's name; the name looked up; the destination (name:port, or address:port).
    public var what: String
    /// Why egress refused it (nil for a syscall: the seccomp profile).
    public var reason: String?

    public init(kind: Kind, what: String, reason: String? = nil) {
        self.kind = kind
        self.what = what
        self.reason = reason
    }

    /// "syscall ptrace (seccomp.profile)", "connect to evil.example:443 (network.allow: …)".
    public var description: String {
        switch kind {
        case .syscall: "syscall \(what) (seccomp.profile)"
        case .lookup: "lookup of \(what) (network.allow: \(reason ?? "refused"))"
        case .connection: "connect to \(what) (network.allow: \(reason ?? "refused"))"
        }
    }
}
