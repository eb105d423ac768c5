import CLinux
import CordonAudit
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What `session.create` asked for: a task's request without its command, and the session's
/// two clocks.
struct SessionRequest: Sendable {
    var task: TaskRequest
    /// The session ends this long after it started, whatever it is doing (the sandbox's wall
    /// time; at most the policy's `wall_time`). Nil: an hour, or the policy's `wall_time`.
    var ttlSeconds: Double?
    /// ...or once no command has run for this long (nil: ten minutes, or the TTL).
    var idleSeconds: Double?
}

/// What `session.exec` asked for.
struct ExecRequest: Sendable {
    var argv: [String]
    var stdin: [UInt8]
    /// Instead of `stdin`: a descriptor handed to the command as it is (a task's sealed stdin).
    var stdinFD: Int32? = nil
    var env: [String: String]
    var cwd: String?
    var timeoutSeconds: Double?
    /// Output as `session.output` notifications while the command runs (else in the answer).
    var stream: Bool
}

/// How a command of a session ended.
struct ExecOutcome: Sendable {
    var exec: Int
    /// "exited", "signaled", "timeout", "output-limit", "memory-limit", "cpu-limit", "cancelled",
    /// "not-started", "session-ended".
    var reason: String
    var exitCode: Int32?
    var signal: Int32?
    var seconds: Double
    var cpuUserSeconds = 0.0
    var cpuSystemSeconds = 0.0
    var peakMemoryBytes: Int64 = 0
    var stdoutBytes: Int64 = 0
    var stderrBytes: Int64 = 0
    /// The output, when not streamed (at most `SessionChannel.maxInlineBytes` of both).
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var truncated = false
    var error: String?
    /// Why it did not start: the server's step (1 chdir, 2 exec, 3 fork) and errno.
    var failedStep: Int32 = 0
    var failedErrno: Int32 = 0
}

/// One command in flight. Its fields are guarded by its channel's monitor; the reader of the
/// channel writes a byte to `wake` whenever one changes.
final class SessionCommand: @unchecked Sendable {
    let id: UInt32
    let wake: Descriptor
    private let wakeWriter: Descriptor
    var started = false
    var exit: (status: Int32, user: Double, system: Double, maxRSS: Int64)?
    var failure: String?
    /// The server's FAILED `what` (1 chdir, 2 exec, 3 fork, 4 request, 5 full).
    var failureWhat: Int32 = 0
    var failureErrno: Int32 = 0
    /// When the request went out, and when a kill was last asked for: the watchdog's clocks.
    var sentAt = MonotonicClock.now
    var killAskedAt: Double?

    init(id: UInt32) throws(SystemError) {
        self.id = id
        let pipe = try Descriptor.pipe(flags: O_CLOEXEC | O_NONBLOCK)
        wake = pipe.read
        wakeWriter = pipe.write
    }

    func nudge() {
        var one: UInt8 = 1
        _ = write(wakeWriter.raw, &one, 1)
    }
}

/// cordond's side of one session (docs/daemon.md, "Sessions"): the SOCK_SEQPACKET socket to
/// its server (cordon-init's `cordon-session` mode, the sandbox's workload: every command is
/// its child and so exactly as confined), the commands in flight and the session's clocks.
/// One reader thread takes the server's replies and keeps the idle clock; each command runs on
/// a thread of its own that feeds it and reads its output.
final class SessionChannel: @unchecked Sendable {
    enum State: String { case starting, ready, closing, ended }

    /// The server's protocol (Sources/cordon-init/session.c).
    enum Wire {
        static let exec: UInt32 = 1, kill: UInt32 = 2
        static let ready: UInt32 = 1, started: UInt32 = 2, exited: UInt32 = 3, failed: UInt32 = 4
        static let requestHeader = 24, replyBytes = 40
        /// The largest request the server reads (its buffer).
        static let maxRequest = 128 * 1024
        static let protocolVersion: Int32 = 1
    }

    /// Commands one session runs at once (the server has room for 64).
    static let maxCommands = 16
    /// Output returned in a non-streaming answer, both streams together; the rest is counted.
    static let maxInlineBytes = 4 << 20
    /// Inline output held by every command of every session together (past it, `truncated`).
    static let maxInlineBytesTotal = 256 << 20
    private static let inlineHeld = Atomic<Int>(0)
    /// A server that has not answered a command's request (STARTED or FAILED) this long after
    /// it was sent, or a kill this long after it was asked for (a large process may take seconds
    /// to exit under load), is taken for stopped or broken:
    /// the session is closed and its cgroup killed.
    static let answerSeconds = 10.0
    static let killSeconds = 30.0
    /// After its leader exits, a command's output is read this long for what its pipes still
    /// hold (a background child keeping them open does not hold the answer).
    static let drainSeconds = 0.2

    let socket: OwnedDescriptor
    /// The server's end, until the sandbox holds its own copy.
    private let serverEnd: Mutex<OwnedDescriptor?>
    /// The sandbox's cgroup directories, once it has started (for its OOM-kill count).
    private let cgroup = Mutex<[String]>([])
    let ttlSeconds: Double
    let idleSeconds: Double
    let createdAt: Double
    private let startedAt = MonotonicClock.now
    /// A server not ready this long after the session was made is killed.
    static let startSeconds = 30.0
    let monitor = Monitor()
    // Guarded by `monitor`:
    private(set) var state = State.starting
    private(set) var closeReason: String?
    private(set) var closedBy: Peer?
    private var closingSince: Double?
    private(set) var lastActivity = MonotonicClock.now
    private var commands: [UInt32: SessionCommand] = [:]
    private var nextCommand: UInt32 = 0
    private(set) var execCount = 0
    private var readyWaiters: [@Sendable (Result<Void, RPCError>) -> Void] = []
    /// Why the session ended before it was ready (the sandbox's setup failure).
    private var endMessage: String?

    init(ttlSeconds: Double, idleSeconds: Double) throws(SystemError) {
        let pair = try Descriptor.socketPair(type: Int32(SOCK_SEQPACKET.rawValue))
        socket = OwnedDescriptor(pair.first)
        serverEnd = Mutex(OwnedDescriptor(pair.second))
        self.ttlSeconds = ttlSeconds
        self.idleSeconds = idleSeconds
        createdAt = UTCTime.epochSeconds()
        // A server that stopped reading (an exec sent it SIGSTOP) cannot hold a sender forever.
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(socket.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The server's end for the sandbox (nil once given up).
    var serverFD: Int32? { serverEnd.withLock { $0?.fd } }

    /// Drops cordond's copy of the server's end: once the sandbox holds its own (or never
    /// will), so that the server's end going away reads as end of file here.
    func releaseServerEnd() { serverEnd.withLock { $0 = nil } }

    var inFlight: Int { monitor.locked { commands.count } }

    /// The sandbox's cgroup directories (from its start).
    func started(cgroup dirs: [String]) { cgroup.withLock { $0 = dirs } }

    /// How many processes the kernel has killed in the sandbox for its memory limit (v2
    /// memory.events, v1 memory.oom_control), or nil when no memory controller says.
    func oomKills() -> Int? {
        for dir in cgroup.withLock({ $0 }) {
            for (file, key) in [("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")] {
                guard let text = try? FileSystem.readString("\(dir)/\(file)") else { continue }
                for line in text.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2, parts[0] == key, let n = Int(parts[1]) { return n }
                }
            }
        }
        return nil
    }

    /// Runs `body` once the server is ready (or the session ended first).
    func whenReady(_ body: @escaping @Sendable (Result<Void, RPCError>) -> Void) {
        let now: Result<Void, RPCError>? = monitor.locked {
            switch state {
            case .starting: readyWaiters.append(body); return nil
            case .ready: return .success(())
            case .closing, .ended: return .failure(endedError())
            }
        }
        if let now { body(now) }
    }

    private func endedError() -> RPCError {
        RPCError(RPCCode.internalError, "the session ended before its server was ready" + (endMessage.map { ": \($0)" } ?? ""))
    }

    /// Asks the server to end (end of file on its socket): it kills every command's group and
    /// exits; the sandbox then ends and is recorded. False when it is already ending.
    @discardableResult
    func close(reason: String, by peer: Peer?) -> Bool {
        let first: Bool = monitor.locked { beginClose(reason: reason, by: peer) }
        if first { _ = shutdown(socket.fd, Int32(SHUT_WR)) }
        return first
    }

    /// With `monitor` held.
    private func beginClose(reason: String, by peer: Peer?) -> Bool {
        guard state == .starting || state == .ready else { return false }
        state = .closing
        closeReason = reason
        closedBy = peer
        closingSince = MonotonicClock.now
        return true
    }

    /// The clocks, checked once a second by the reader: idle (no command in flight for
    /// `idleSeconds`: closed, decided and begun under one lock so no command slips in between),
    /// a server not ready in time, a close not honoured within 5 s, or a command's request or
    /// kill the server does not answer (it was stopped, or is broken): closed and killed.
    private func checkClocks() -> (close: Bool, kill: Bool) {
        monitor.locked {
            let now = MonotonicClock.now
            if state == .ready && commands.isEmpty && now - lastActivity >= idleSeconds {
                return (beginClose(reason: "idle", by: nil), false)
            }
            let unanswered = commands.values.contains { c in
                c.exit == nil && c.failure == nil
                    && ((!c.started && now - c.sentAt >= Self.answerSeconds) || (c.killAskedAt.map { now - $0 >= Self.killSeconds } ?? false))
            }
            let late = (state == .closing && now - (closingSince ?? now) >= 5) || (state == .starting && now - startedAt >= Self.startSeconds)
            if unanswered || late {
                return (beginClose(reason: unanswered ? "unresponsive" : (state == .starting ? "not-ready" : "stuck"), by: nil), true)
            }
            return (false, false)
        }
    }

    /// Reads the server's replies until its end closes; keeps the idle clock (a session with
    /// no command in flight for `idleSeconds` is closed) and, for one that does not end within
    /// 5 s of being closed, calls `kill` (the sandbox's cgroup goes).
    func readReplies(kill: () -> Void) {
        var buffer = [UInt8](repeating: 0, count: 64)
        var killed = false
        var lastCheck = MonotonicClock.now
        while true {
            var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, 1000)
            if r < 0 && errno != EINTR { break }
            // Once a second, however busy the channel is.
            if MonotonicClock.now - lastCheck >= 1 || r == 0 {
                lastCheck = MonotonicClock.now
                let (closing, stuck) = checkClocks()
                if closing { _ = shutdown(socket.fd, Int32(SHUT_WR)) }
                if stuck && !killed { killed = true; kill() }
            }
            if r <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { break }
            guard n == Wire.replyBytes else {
                // Not the server's reply: nothing it says can be trusted any more.
                close(reason: "protocol", by: nil)
                if !killed { killed = true; kill() }
                continue
            }
            handle(buffer)
        }
        ended(message: nil)
    }

    private func handle(_ b: [UInt8]) {
        func u32(_ at: Int) -> UInt32 { UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24 }
        func i64(_ at: Int) -> Int64 { Int64(bitPattern: UInt64(u32(at)) | UInt64(u32(at + 4)) << 32) }
        let type = u32(0), id = u32(4), a = Int32(bitPattern: u32(8)), what = Int32(bitPattern: u32(12))
        if type == Wire.ready {
            guard a == Wire.protocolVersion else {
                close(reason: "protocol", by: nil)
                return
            }
            let waiters: [@Sendable (Result<Void, RPCError>) -> Void] = monitor.locked {
                guard state == .starting else { return [] }
                state = .ready
                lastActivity = MonotonicClock.now
                defer { readyWaiters = [] }
                return readyWaiters
            }
            for w in waiters { w(.success(())) }
            return
        }
        monitor.locked {
            guard let command = commands[id] else { return }
            switch type {
            case Wire.started: command.started = true
            case Wire.exited:
                // Whatever the numbers, they cannot trap here (a server's word is not trusted).
                func seconds(_ us: Int64) -> Double { Double(max(0, min(us, 1 << 50))) / 1e6 }
                command.exit = (a, seconds(i64(16)), seconds(i64(24)), max(0, min(i64(32), 1 << 40)) * 1024)
            case Wire.failed:
                let step = [1: "change to the working directory", 2: "execute the command", 3: "fork", 4: "read the request", 5: "find room for another command"][Int(what)] ?? "start the command"
                command.failure = "cannot \(step): \(SystemError.text(a))"
                command.failureWhat = what
                command.failureErrno = a
            default: return
            }
            command.nudge()
        }
    }

    /// The session's server is gone: every command still in flight ends with it.
    func ended(message: String?) {
        let waiters: [@Sendable (Result<Void, RPCError>) -> Void] = monitor.locked {
            if let message, endMessage == nil { endMessage = message }
            if state == .ended { return [] }
            state = .ended
            for command in commands.values where command.exit == nil && command.failure == nil {
                command.failure = "the session ended"
                command.nudge()
            }
            defer { readyWaiters = [] }
            return readyWaiters
        }
        let error = monitor.locked { endedError() }
        for w in waiters { w(.failure(error)) }
    }

    // MARK: Commands

    private func envLines(_ env: [String: String]) -> [String] { env.keys.sorted().map { "\($0)=\(env[$0]!)" } }

    /// Waits (at most `seconds`) until no command is in flight: the session's record is
    /// written after its commands' own.
    func waitForCommands(seconds: Double) {
        _ = monitor.locked { monitor.wait(until: MonotonicClock.now + seconds) { commands.isEmpty } }
    }

    /// Runs one command in the session and returns how it ended, after `record` has recorded
    /// it (before the command leaves the session's books). `plan` gives the policy's
    /// environment, working directory, search path and limits; `output` receives streamed
    /// output (false: the client is gone, and the command is killed); `cancelled` is polled.
    func run(_ request: ExecRequest, plan: SpawnPlan, baseEnv: [String: String], output: ((_ exec: Int, _ stdout: Bool, _ bytes: ArraySlice<UInt8>) -> Bool)?,
             cancelled: @escaping () -> Bool, cancelFD: Int32 = -1, onKill: (() -> Void)? = nil,
             record: (ExecOutcome) -> Void) throws(RPCError) -> ExecOutcome {
        let start = MonotonicClock.now
        let policy = plan.policy
        let outputCap = Int64(clamping: policy.limits.outputBytes ?? UInt64.max)
        let wall = min(request.timeoutSeconds ?? policy.limits.wallTimeSeconds ?? 86400 * 365, policy.limits.wallTimeSeconds ?? .infinity)
        let deadline = start + wall

        // The request: cwd, search path, argv, env ("K=V", the policy's then the session's then
        // the command's), NUL-terminated.
        var env = [String: String]()
        for entry in plan.env {
            if let eq = entry.firstIndex(of: "=") { env[String(entry[..<eq])] = String(entry[entry.index(after: eq)...]) }
        }
        for (k, v) in baseEnv { env[k] = v }
        for (k, v) in request.env { env[k] = v }
        let cwd = request.cwd ?? plan.cwd
        // A NUL inside one would shift every string after it (the server splits on NUL).
        for (field, values) in [("params.argv", request.argv), ("params.env", envLines(env)), ("params.cwd", [cwd])] where values.contains(where: { $0.utf8.contains(0) }) {
            throw RPCError.invalid(field, "contains a NUL byte, which a command's arguments, environment and directory cannot")
        }
        var strings: [UInt8] = []
        func add(_ s: String) { strings += Array(s.utf8); strings.append(0) }
        add(cwd)
        add(plan.searchPath)
        for a in request.argv { add(a) }
        let lines = envLines(env)
        for e in lines { add(e) }
        guard strings.count + Wire.requestHeader <= Wire.maxRequest else {
            throw RPCError.invalid("params.argv", "the command, its environment and working directory come to \(strings.count) bytes; a session's command takes at most \(Wire.maxRequest - Wire.requestHeader)")
        }

        // Its streams, made before it is registered: stdin a pipe this thread feeds (the bytes
        // stay cordond's only until the command reads them, and go with it), stdout and stderr
        // pipes read here.
        func streams<T: ~Copyable>(_ make: () throws(SystemError) -> T) throws(RPCError) -> T {
            do { return try make() } catch { throw RPCError(RPCCode.internalError, "cannot make the command's streams: \(error)") }
        }
        let input = try streams { () throws(SystemError) in try Descriptor.pipe(flags: O_CLOEXEC) }
        let out = try streams { () throws(SystemError) in try Descriptor.pipe(flags: O_CLOEXEC) }
        let err = try streams { () throws(SystemError) in try Descriptor.pipe(flags: O_CLOEXEC) }
        let inRead = input.read, inWrite = input.write
        let outRead = out.read, outWrite = out.write, errRead = err.read, errWrite = err.write
        var feeding: OwnedDescriptor? = nil
        if request.stdin.isEmpty {
            inWrite.close()
        } else {
            _ = fcntl(inWrite.raw, F_SETFL, fcntl(inWrite.raw, F_GETFL) | O_NONBLOCK)
            feeding = OwnedDescriptor(inWrite)
        }

        // Register it (the id the server answers to).
        let (command, number) = try monitor.locked { () throws(RPCError) -> (SessionCommand, Int) in
            guard state == .ready else {
                throw RPCError(RPCCode.conflict, "the session is \(state == .starting ? "still starting" : "ending") and takes no command")
            }
            guard commands.count < Self.maxCommands else {
                throw RPCError(RPCCode.busy, "the session already runs \(Self.maxCommands) commands: wait for one to end")
            }
            nextCommand &+= 1
            let c: SessionCommand
            do { c = try SessionCommand(id: nextCommand) } catch {
                throw RPCError(RPCCode.internalError, "cannot start a command: \(error)")
            }
            commands[c.id] = c
            execCount += 1
            lastActivity = MonotonicClock.now
            return (c, execCount)
        }
        defer {
            monitor.locked {
                commands[command.id] = nil
                lastActivity = MonotonicClock.now
                monitor.broadcast()
            }
        }
        var outcome = ExecOutcome(exec: number, reason: "error", exitCode: nil, signal: nil, seconds: 0)
        var inlineTaken = 0
        defer { if inlineTaken > 0 { Self.inlineHeld.subtract(inlineTaken, ordering: .relaxed) } }

        var header = [UInt8]()
        for v in [Wire.exec, command.id, UInt32(request.argv.count), UInt32(lines.count), UInt32(strings.count), 0] {
            header += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)]
        }
        let message = header + strings
        let fds = [request.stdinFD ?? inRead.raw, outWrite.raw, errWrite.raw]
        let oomBefore = oomKills()
        monitor.locked { command.sentAt = MonotonicClock.now }
        let sent = message.withUnsafeBytes { m in fds.withUnsafeBufferPointer { cl_send_message(socket.fd, m.baseAddress, m.count, $0.baseAddress, 3) } }
        let sendErrno = errno
        inRead.close()
        outWrite.close()
        errWrite.close()
        guard sent == 0 else {
            throw RPCError(RPCCode.internalError, "cannot hand the command to the session's server: \(SystemError.text(sendErrno))")
        }

        // Feed it, read its output, until it has ended and its pipes are drained.
        var open = (stdout: true, stderr: true)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var fed = 0
        var killedFor: String?
        var lastKillSent = -Double.infinity
        var drainUntil: Double?
        func askKill() {
            // Again each second until the server answers (a send may fail while it is stopped;
            // the watchdog ends the session if it never does).
            let now = MonotonicClock.now
            guard now - lastKillSent >= 1 else { return }
            lastKillSent = now
            monitor.locked { if command.killAskedAt == nil { command.killAskedAt = now } }
            var k = [UInt8]()
            for v in [Wire.kill, command.id, 0, 0, 0, UInt32(SIGKILL)] {
                k += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)]
            }
            _ = k.withUnsafeBytes { cl_send_message(socket.fd, $0.baseAddress, $0.count, nil, 0) }
        }
        func kill(_ reason: String) {
            if killedFor == nil {
                killedFor = reason
                onKill?()
            }
            askKill()
        }
        var pollFailed = false
        while true {
            let (exit, failure) = monitor.locked { (command.exit, command.failure) }
            let now = MonotonicClock.now
            if exit != nil || failure != nil {
                // Ended: what its pipes still hold is read for a moment (a background child
                // keeping them open does not hold the answer).
                if !open.stdout && !open.stderr { break }
                if drainUntil == nil { drainUntil = now + Self.drainSeconds }
                if now >= drainUntil! { break }
                feeding = nil
            } else {
                if now >= deadline { kill("timeout") }
                if cancelled() { kill("cancelled") }
                if killedFor != nil { askKill() }
            }
            var waitUntil = exit == nil && failure == nil && killedFor == nil ? deadline : now + 1
            if let d = drainUntil { waitUntil = min(waitUntil, d) }
            var pfds = [pollfd(fd: open.stdout ? outRead.raw : -1, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: open.stderr ? errRead.raw : -1, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: command.wake.raw, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: feeding?.fd ?? -1, events: Int16(POLLOUT), revents: 0),
                        pollfd(fd: killedFor == nil ? cancelFD : -1, events: Int16(POLLIN), revents: 0)]
            // At most a second at a time: a client that went away is noticed.
            let ms = Int32(max(0, min(1000, (waitUntil - now) * 1000)).rounded(.up))
            let r = poll(&pfds, 5, ms)
            if r < 0 && errno != EINTR {
                pollFailed = true
                kill("error")
                break
            }
            if pfds[2].revents != 0 {
                var sink = [UInt8](repeating: 0, count: 64)
                _ = read(command.wake.raw, &sink, sink.count)
            }
            if let f = feeding, pfds[3].revents != 0 {
                let n = request.stdin.withUnsafeBytes { write(f.fd, $0.baseAddress! + fed, $0.count - fed) }
                if n > 0 { fed += n }
                if fed == request.stdin.count || (n < 0 && errno != EAGAIN && errno != EINTR) { feeding = nil }
            }
            for (i, isStdout) in [(0, true), (1, false)] where pfds[i].revents != 0 {
                let fd = isStdout ? outRead.raw : errRead.raw
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    if isStdout { open.stdout = false } else { open.stderr = false }
                    continue
                }
                // Nothing past the cap, nor after a kill, is counted or passed on: what a
                // command writes while its kill is on the way (or a child outside its group)
                // is read and dropped.
                if killedFor != nil { continue }
                let before = outcome.stdoutBytes + outcome.stderrBytes
                let keep = Int(max(0, min(Int64(n), outputCap - before)))
                if isStdout { outcome.stdoutBytes += Int64(keep) } else { outcome.stderrBytes += Int64(keep) }
                if keep < n { kill("output-limit") }
                if keep == 0 { continue }
                let chunk = buffer[0..<keep]
                if let output {
                    if !output(number, isStdout, chunk) { kill("cancelled") }
                } else if outcome.stdout.count + outcome.stderr.count + keep <= Self.maxInlineBytes {
                    if Self.inlineHeld.add(keep, ordering: .relaxed).newValue <= Self.maxInlineBytesTotal {
                        inlineTaken += keep
                        if isStdout { outcome.stdout += chunk } else { outcome.stderr += chunk }
                    } else {
                        Self.inlineHeld.subtract(keep, ordering: .relaxed)
                        outcome.truncated = true
                    }
                } else {
                    outcome.truncated = true
                }
            }
        }
        feeding = nil
        let (exit, failure, failureWhat, started) = monitor.locked { (command.exit, command.failure, command.failureWhat, command.started) }
        outcome.failedStep = failureWhat
        outcome.failedErrno = monitor.locked { command.failureErrno }
        outcome.seconds = MonotonicClock.now - start
        if let exit {
            outcome.cpuUserSeconds = exit.user
            outcome.cpuSystemSeconds = exit.system
            outcome.peakMemoryBytes = exit.maxRSS
            let status = exit.status
            if status & 0x7f == 0 {
                outcome.exitCode = (status >> 8) & 0xff
                outcome.reason = "exited"
            } else {
                outcome.signal = status & 0x7f
                outcome.reason = "signaled"
            }
            // Killed for a reason of ours (or its output cut at the cap): that reason, as a
            // cold task's record says, whatever the status it ended with meanwhile.
            if let killedFor { outcome.reason = killedFor }
            // SIGKILL with an OOM kill in the sandbox while it ran: the kernel's, for the
            // session's memory (another command's OOM kill meanwhile reads the same: the counter
            // is the sandbox's).
            else if outcome.signal == SIGKILL, let before = oomBefore, let after = oomKills(), after > before {
                outcome.reason = "memory-limit"
            }
            // RLIMIT_CPU (the policy's cpu_time, each command's own), as a cold task's record says.
            else if let signal = outcome.signal, Termination.isCPULimit(signal: signal, cpuSeconds: exit.user + exit.system, limit: plan.policy.limits.cpuTimeSeconds) {
                outcome.reason = "cpu-limit"
            }
        } else if let failure {
            switch failureWhat {
            case 4: throw RPCError(RPCCode.internalError, "the session's server refused the request: \(failure)")
            case 5: throw RPCError(RPCCode.busy, "the session's server has no room for another command: \(failure)")
            default: break
            }
            let notStarted = !started && failureWhat != 0
            // Killed for a reason of ours and the sandbox went with it: that reason.
            outcome.reason = notStarted ? "not-started" : (killedFor ?? "session-ended")
            outcome.error = notStarted ? "\(TaskManager.clip(PrintableText.of(request.argv[0]))): \(failure)" : failure
            if notStarted { outcome.exitCode = 127 }
        } else {
            outcome.error = pollFailed ? "cordond could not wait for the command: \(SystemError.text(errno))" : "the command's end was not seen"
        }
        record(outcome)
        return outcome
    }
}

extension TaskManager {
    /// The largest TTL a session may ask for, and what it gets when it asks for none.
    static let defaultSessionTTL = 3600.0
    static let defaultSessionIdle = 600.0
}
