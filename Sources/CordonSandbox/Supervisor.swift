import CLinux
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// The event loop while the workload runs: the output relay with its cap, the stdin relay, seccomp
/// notifications, forwarded signals, cancellation, the wall clock and cgroup limit events — one
/// thread, one poll(2) over every descriptor, so no stream can stall the loop that enforces the
/// limits. It owns the streams' descriptors and the seccomp listener and closes each once; the
/// caller's descriptors and init's pidfd (the spawn's) are only borrowed.
struct Supervisor: ~Copyable {
    /// init's pidfd, borrowed from the spawn.
    let pidfd: Int32
    var listener: Descriptor?
    let io: SandboxIO
    let plan: SpawnPlan
    let cgroup: Cgroup
    let wallTime: Double?
    let start: Double
    /// Readable when the sandbox is cancelled (-1: it cannot be); borrowed from `SandboxControl`.
    let cancelFD: Int32

    var stdoutBytes: UInt64 = 0
    var stderrBytes: UInt64 = 0
    /// The last byte relayed to the caller's stdout (nil: none).
    var stdoutLastByte: UInt8?
    var denied: [Int32: DeniedOperation] = [:]
    var deniedOrder: [Int32] = []
    var deniedOmitted = 0
    static let maxDistinctDenials = 64
    var killedFor: TerminationReason?
    /// The output's destination could not be opened (`SandboxIO.openOutput`).
    var outputFailure: SystemError?
    var exited = false

    /// Told of each refused call as it happens (`SandboxControl.onDenial`).
    let onDenial: (@Sendable (Denial) -> Void)?
    /// Given the refused calls as they grow (`SandboxControl.recordSoFar`).
    let control: SandboxControl?

    init(pidfd: Int32, listener: consuming Descriptor?, io: SandboxIO, plan: SpawnPlan, cgroup: Cgroup,
         wallTime: Double?, start: Double, cancelFD: Int32, onDenial: (@Sendable (Denial) -> Void)? = nil, control: SandboxControl? = nil) {
        self.onDenial = onDenial
        self.control = control
        self.pidfd = pidfd
        self.listener = listener
        self.io = io
        self.plan = plan
        self.cgroup = cgroup
        self.wallTime = wallTime
        self.start = start
        self.cancelFD = cancelFD
    }

    /// The calls the workload was refused (or, under `seccomp.action = "log"`, made), in order.
    var deniedCalls: [DeniedOperation] { deniedOrder.compactMap { denied[$0] } }

    mutating func kill(_ reason: TerminationReason) {
        if killedFor == nil { killedFor = reason }
        _ = cl_pidfd_send_signal(pidfd, SIGKILL)
        cgroup.killAll()
    }

    /// Runs until init has exited, then delivers what is left of the output and closes `streams`.
    mutating func loop(_ streams: consuming StandardStreams) {
        // A hit limit ends a one-shot workload; a session's server outlives the command the
        // kernel refused a process or killed for memory (that command's status says so).
        let watchCgroup = (io.sessionChannel == nil || io.limitsEndSession) && (plan.cgroupLimits.pids != nil || plan.cgroupLimits.memoryBytes != nil)
        var nextCgroupCheck = MonotonicClock.since(start) + 0.05
        let signals = SignalRelay(io.relaySignals ? SignalRelay.relayed : [])
        var terminalMode = TerminalMode(fd: io.tty ? io.stdin : -1)
        defer { terminalMode.restore() }
        var out = streams.stdout
        var err = streams.stderr
        var input = streams.stdin
        // Our own pipe into the sandbox never blocks us: a workload that does not read its
        // stdin must not stall the loop that enforces its limits.
        if input.sink.fd >= 0 { _ = fcntl(input.sink.fd, F_SETFL, fcntl(input.sink.fd, F_GETFL) | O_NONBLOCK) }

        // One array for the life of the loop, refilled in place each turn (the loop runs once
        // per chunk relayed).
        var fds = [pollfd](repeating: pollfd(fd: -1, events: 0, revents: 0), count: 10)
        while !exited {
            // A stream reads more only when what it read before is written: backpressure.
            fds[0] = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            fds[1] = pollfd(fd: listener?.raw ?? -1, events: Int16(POLLIN), revents: 0)
            fds[2] = pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)
            fds[3] = pollfd(fd: killedFor == nil ? cancelFD : -1, events: Int16(POLLIN), revents: 0)
            (fds[4], fds[5]) = out.pollRequests()
            (fds[6], fds[7]) = err.pollRequests()
            (fds[8], fds[9]) = input.pollRequests()

            var timeout: Int32 = -1
            let now = MonotonicClock.since(start)
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
            else if fds[1].revents != 0 { listener = nil }  // POLLHUP: no process uses the filter any more
            if fds[2].revents != 0 {
                for sig in signals.drain() {
                    if sig == SIGWINCH && io.tty {
                        var rows: UInt16 = 0, cols: UInt16 = 0
                        if out.source.fd >= 0, cl_get_winsize(io.stdin, &rows, &cols) == 0 { _ = cl_set_winsize(out.source.fd, rows, cols) }
                    }
                    _ = cl_pidfd_send_signal(pidfd, sig)  // init forwards it to the workload
                }
            }
            if fds[3].revents != 0 { kill(.cancelled) }
            if fds[4].revents != 0 {
                readOutput(&out, isStdout: true)
                if io.tty && out.source.fd < 0 { input.closeSink() }  // the pty master is gone
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
        let deadline = MonotonicClock.since(start) + 2
        drain(&out, isStdout: true, until: deadline)
        drain(&err, isStdout: false, until: deadline)
        stdoutLastByte = out.lastWritten
        out.closeSource()
        err.closeSource()
        out.closeSink()
        err.closeSink()
    }

    private mutating func drain(_ relay: inout Relay, isStdout: Bool, until deadline: Double) {
        while true {
            relay.flush()
            if relay.source.fd < 0 { break }
            var pfd = pollfd(fd: relay.source.fd, events: Int16(POLLIN), revents: 0)
            let wait = Int32(max(0, (deadline - MonotonicClock.since(start)) * 1000))
            if poll(&pfd, 1, wait) <= 0 { break }
            readOutput(&relay, isStdout: isStdout)
        }
    }

    /// Reads a chunk of the workload's output into the relay, counting it against the cap.
    mutating func readOutput(_ relay: inout Relay, isStdout: Bool) {
        let n = relay.read()
        guard n > 0 else { return }
        do throws(SystemError) { try relay.openSink() } catch {
            if outputFailure == nil { outputFailure = error }
            kill(.setupFailed)
            return
        }
        let total = stdoutBytes + stderrBytes
        var keep = n
        if let cap = plan.policy.limits.outputBytes, total + UInt64(n) > cap {
            keep = Int(cap - min(cap, total))
            // Only what this read kept can be taken back: nothing, once the sink is gone (it
            // could not be opened, or its reader left), for `read` then drops what it reads.
            relay.dropLast(n - keep)
            kill(.outputLimit)
        }
        if isStdout { stdoutBytes += UInt64(keep) } else { stderrBytes += UInt64(keep) }
    }

    mutating func answerNotification() {
        guard let fd = listener?.raw else { return }
        // Taking, answering and publishing as one step for `recordSoFar`: before the call is
        // answered its caller waits in it, after it the refusal is published.
        let tracking = control?.receiving() ?? false
        defer { if tracking { control?.published(deniedCalls, omitted: deniedOmitted) } }
        var request = seccomp_notif()
        if cl_seccomp_notif_recv(fd, &request) != 0 {
            // ENOENT: the caller died meanwhile. Anything else: stop listening (calls then fail
            // with ENOSYS, still refused).
            if errno != ENOENT && errno != EINTR { listener = nil }
            return
        }
        let nr = request.data.nr
        let action = plan.policy.seccomp.action
        // log: the call runs (CONTINUE; what it touches was already allowed by everything
        // but this filter). errno and kill: it fails; kill then stops the whole sandbox.
        let err = action == .log ? 0 : plan.seccomp.errnoBySyscall[nr] ?? plan.seccomp.defaultErrno
        // Told before the workload has its answer: a server that answers its caller right after
        // a refused call cannot get the answer out before its refusal is on record.
        if action != .log { onDenial?(Denial(kind: .syscall, what: SeccompCompiler.syscallName(nr))) }
        _ = cl_seccomp_notif_respond_errno(fd, request.id, err)
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

/// Signals sent to the supervisor (Ctrl-C, SIGTERM, window changes) arrive on a signalfd and are
/// forwarded to the sandbox.
private final class SignalRelay {
    static let relayed: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2]
    private let descriptor: Descriptor?
    private var old = sigset_t()
    /// The signalfd (owned by `descriptor`); -1 when no signal is relayed.
    let fd: Int32

    init(_ signals: [Int32]) {
        var previous = sigset_t()
        if signals.isEmpty {
            pthread_sigmask(SIG_SETMASK, nil, &previous)
            fd = -1
            descriptor = nil
        } else {
            fd = signals.withUnsafeBufferPointer { cl_signalfd_for($0.baseAddress, Int32($0.count), &previous) }
            descriptor = fd >= 0 ? Descriptor(adopting: fd) : nil
        }
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

    deinit { pthread_sigmask(SIG_SETMASK, &old, nil) }
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
