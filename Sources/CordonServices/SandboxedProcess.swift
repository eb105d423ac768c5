import CordonRPC
import CordonSandbox
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A long-lived process in a sandbox of its own policy whose standard input and output this
/// process holds: an MCP server, a local model server. Messages are lines (JSON-RPC over stdio,
/// as MCP frames them). The sandbox runs on a thread of its own (`Sandbox.run` supervises it
/// there, with every layer of a one-shot run); its stdout is handed to it straight (no relay,
/// `SandboxIO.passStdout`) and read here a line at a time, each bounded by `maxLine`; its
/// stderr is kept as a short tail for the reason a start or a crash gives.
///
/// Limits from the policy apply to the instance's whole life (its memory, pids, CPU time);
/// the wall-time limit does not (a service runs until stopped). Whoever owns the instance
/// stops it (`stop`), or restarts it when it misbehaves.
public final class SandboxedProcess: @unchecked Sendable {
    public struct Spec: Sendable {
        public var plan: SpawnPlan
        public var argv: [String]
        public var environment: SandboxEnvironment
        /// The longest line read from the process (a longer one ends the instance's stream).
        public var maxLine: Int
        /// The process's stdout is /dev/null (a server that speaks on a port, whose output nobody
        /// reads: a flood of it then costs this process nothing); `readLine` finds the end at once.
        public var discardStdout = false
        public init(plan: SpawnPlan, argv: [String], environment: SandboxEnvironment, maxLine: Int = 4 << 20) {
            self.plan = plan
            self.argv = argv
            self.environment = environment
            self.maxLine = maxLine
        }
    }

    /// How the sandbox ended, once it has.
    public var result: SandboxResult? { shared.ended.withLock { $0 } }
    /// init's host pid and the cgroup, once the sandbox has started.
    public var started: (pid: Int32, cgroup: [String])? { shared.started.withLock { $0 } }

    private let control: SandboxControl
    private let input: Descriptor       // the write end of its stdin
    private let output: Descriptor      // the read end of its stdout
    /// One writer at a time; true while the last line written is unfinished (cut short).
    private let writer = Mutex(false)
    /// Short lines waiting for the writer (`post`): sent before the next line, or by the next
    /// `post` or `flushPosted` that finds the writer free.
    private let posted = Mutex<[[UInt8]]>([])
    static let maxPosted = 64
    private let shared: Shared
    static let tailBytes = 8192

    /// What the sandbox's threads and this object's callers share.
    private final class Shared: Sendable {
        let ended = Mutex<SandboxResult?>(nil)
        let started = Mutex<(pid: Int32, cgroup: [String])?>(nil)
        let tail = Mutex<[UInt8]>([])
        let denials = Mutex(DenialLog())
        let exited = Monitor()
        let framer: Mutex<LineFramer>
        init(maxLine: Int) { framer = Mutex(LineFramer(maxLine: maxLine)) }
    }
    /// Starts the sandbox; `onExit` runs on its thread when it has ended (after `result` is set).
    public init(_ spec: Spec, onExit: @escaping @Sendable (SandboxResult) -> Void = { _ in }) throws(SystemError) {
        control = try SandboxControl()
        let stdin = try Descriptor.pipe()
        // Our end of its stdin non-blocking (its own stays blocking): a blocking write of a
        // chunk larger than the room left in the pipe would wait for the server to read, past
        // any deadline, holding the writer lock for every later line.
        let inFlags = fcntl(stdin.write.raw, F_GETFL)
        guard inFlags >= 0, fcntl(stdin.write.raw, F_SETFL, inFlags | O_NONBLOCK) == 0 else {
            throw SystemError("fcntl", path: "the service's stdin", errno: errno)
        }
        let stdout = try Descriptor.pipe()
        let stderr = try Descriptor.pipe()
        input = stdin.write
        output = stdout.read
        shared = Shared(maxLine: spec.maxLine)
        let childIn = stdin.read, pipeOut = stdout.write, errRead = stderr.read, errWrite = stderr.write
        let childOut: Descriptor
        if spec.discardStdout {
            let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
            guard null >= 0 else { throw SystemError("open", path: "/dev/null", errno: errno) }
            childOut = Descriptor(adopting: null)
            pipeOut.close()
        } else {
            childOut = pipeOut
        }
        var io = SandboxIO()
        io.stdin = childIn.raw
        io.stdout = childOut.raw
        io.stderr = errWrite.raw
        io.passStdout = true
        io.relaySignals = false
        let streams = io
        let shared = self.shared, control = self.control
        let ends = Box3(childIn, childOut, errWrite)
        control.onDenial { d in shared.denials.withLock { $0.add(d) } }
        control.onStart { pid, cgroup in
            shared.started.withLock { $0 = (pid, cgroup) }
            // The child holds its own copy of its stdout from the clone on: with ours gone, the
            // stream ends when the server (and whatever it started) closes it, not only when
            // the sandbox has ended. (On the sandbox's thread, as `ends.close()` below.)
            ends.closeOutput()
        }
        // The stderr tail: read until every writer (the sandbox's relay) is gone.
        let errFD = errRead.raw
        let errOwner = Box(errRead)
        try Threads.detach("service-stderr", signals: .noSIGPIPE) {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(errFD, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                shared.tail.withLock { t in
                    t.append(contentsOf: chunk[0..<n])
                    if t.count > Self.tailBytes { t.removeFirst(t.count - Self.tailBytes) }
                }
            }
            errOwner.close()
        }
        try Threads.detach("service", signals: .noSIGPIPE) {
            let result = Sandbox.run(plan: spec.plan, argv: spec.argv, environment: spec.environment, io: streams,
                                     wallTime: .infinity, control: control)
            ends.close()
            shared.ended.withLock { $0 = result }
            shared.exited.locked { shared.exited.broadcast() }
            onExit(result)
        }
    }

    /// A mark in the sandbox's refusals: `denials(since:)` returns those after it.
    public var denialMark: UInt64 { shared.denials.withLock { $0.count } }

    /// The refusals since `mark` (at most `DenialLog.kept` of them, the rest counted).
    public func denials(since mark: UInt64) -> (denials: [Denial], omitted: Int) {
        shared.denials.withLock { $0.since(mark) }
    }

    /// Writes `line` and a newline to the process's stdin, whole: false when it is gone or the
    /// write did not finish by `deadline` (CLOCK_MONOTONIC seconds). One writer at a time, so
    /// lines never interleave.
    public func send(_ line: [UInt8], deadline: Double) -> Bool {
        // What was posted while this one held the writer goes right after it.
        defer { flushPosted() }
        return writer.withLock { torn in
            // A line cut short by its deadline is ended first, so that this one is read as a
            // line of its own rather than as the rest of that one.
            var bytes: [UInt8] = torn ? [0x0A] : []
            // What was posted meanwhile goes first (whole lines, in order).
            for waiting in posted.withLock({ p in defer { p = [] }; return p }) {
                bytes.append(contentsOf: waiting)
                bytes.append(0x0A)
            }
            bytes.append(contentsOf: line)
            bytes.append(0x0A)
            var offset = 0
            defer { if offset > 0 { torn = offset < bytes.count } }
            while offset < bytes.count {
                var pfd = pollfd(fd: input.raw, events: Int16(POLLOUT), revents: 0)
                let left = deadline - MonotonicClock.now
                if left <= 0 { return false }
                let ready = poll(&pfd, 1, Int32(min(left * 1000 + 1, 60_000)))
                if ready < 0 && errno == EINTR { continue }
                if ready <= 0 { continue }
                if pfd.revents & Int16(POLLERR | POLLHUP) != 0 { return false }
                let n = bytes.withUnsafeBytes { write(input.raw, $0.baseAddress! + offset, min($0.count - offset, 65536)) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    /// Queues a short `line` (under PIPE_BUF with its newline) and sends what is queued if no
    /// one else is writing and the pipe has room now; otherwise it goes before the next line a
    /// caller sends, or at the next `flushPosted`. For what a reader sends in passing (a refusal
    /// of a server's request): it must never wait on a caller's send. False when the queue is
    /// full (the line is dropped).
    @discardableResult
    public func post(_ line: [UInt8]) -> Bool {
        guard line.count < 4095 else { return false }
        let queued = posted.withLock { p -> Bool in
            guard p.count < Self.maxPosted else { return false }
            p.append(line)
            return true
        }
        flushPosted()
        return queued
    }

    /// Sends the posted lines if the writer is free, each whole (a line under PIPE_BUF is
    /// written all or nothing); stops at the first the pipe has no room for.
    public func flushPosted() {
        guard posted.withLock({ !$0.isEmpty }) else { return }
        _ = writer.withLockIfAvailable { torn in
            posted.withLock { p in
                while let first = p.first {
                    var bytes: [UInt8] = torn ? [0x0A] : []
                    bytes.append(contentsOf: first)
                    bytes.append(0x0A)
                    let n = bytes.withUnsafeBytes { write(input.raw, $0.baseAddress, $0.count) }
                    guard n == bytes.count else { return }
                    torn = false
                    p.removeFirst()
                }
            }
        }
    }

    /// The next line the process wrote (one reader at a time), an over-long line, or the end of
    /// its stdout (it exited, or closed it). nil when `deadline` (CLOCK_MONOTONIC seconds) passed
    /// or `wake` became readable first (the caller drains it).
    public func readLine(until deadline: Double? = nil, wake: Int32 = -1) -> LineFramer.Line? {
        // A line already received costs no buffer: a 64 KiB read can hold 65536 lines.
        if let line = shared.framer.withLock({ $0.next() }) { return line }
        // Not zeroed first: only what read() wrote is ever looked at.
        var chunk = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        while true {
            if let line = shared.framer.withLock({ $0.next() }) { return line }
            var fds = [pollfd(fd: output.raw, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            var wait: Int32 = -1
            if let deadline {
                let left = deadline - MonotonicClock.now
                if left <= 0 { return nil }
                wait = Int32(min(left * 1000 + 1, 60_000))
            }
            let ready = poll(&fds, 2, wait)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }  // the deadline check above ends it
            if fds[1].revents != 0 { return nil }
            let n = chunk.withUnsafeMutableBytes { read(output.raw, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .eof }
            chunk.withUnsafeBytes { bytes in shared.framer.withLock { $0.append(UnsafeRawBufferPointer(rebasing: bytes[0..<n])) } }
        }
    }

    /// The last few KiB the process wrote to stderr (for the reason it failed).
    public var stderrTail: String { String(decoding: shared.tail.withLock { $0 }, as: UTF8.self) }

    /// Ends the sandbox (its whole cgroup is killed). Returns at once; `wait` for the end.
    public func stop() { control.cancel() }

    /// Waits until the sandbox has ended, or `deadline`; true when it has.
    @discardableResult
    public func wait(until deadline: Double? = nil) -> Bool {
        shared.exited.locked { shared.exited.wait(until: deadline) { shared.ended.withLock { $0 != nil } } }
    }
}

/// The last refusals of a long-lived sandbox, numbered: `kept` at most (a server refused in a
/// loop costs the daemon that much memory, no more).
public struct DenialLog: Sendable {
    public static let kept = 64
    private var ring: [Denial] = []
    /// Refusals ever added.
    public private(set) var count: UInt64 = 0

    mutating func add(_ d: Denial) {
        if ring.count == Self.kept { ring.removeFirst() }
        ring.append(d)
        count += 1
    }

    /// Those after `mark`, each distinct one once, in order; `omitted`: the others after `mark`
    /// (repeats, and those no longer kept).
    func since(_ mark: UInt64) -> (denials: [Denial], omitted: Int) {
        guard count > mark else { return ([], 0) }
        let wanted = Int(min(count - mark, UInt64(Int.max)))
        var out: [Denial] = []
        for d in ring.suffix(wanted) where !out.contains(d) { out.append(d) }
        return (out, wanted - out.count)
    }
}

/// Holds a descriptor for a closure that closes it once.
private final class Box: @unchecked Sendable {
    private var fd: Descriptor?
    init(_ fd: consuming Descriptor) { self.fd = .some(fd) }
    func close() { fd.take()?.close() }
}

/// The child's ends of its three streams: ours to close once the sandbox has ended (it holds
/// its own copies from the clone on); stdout's as soon as it has started. Used on the sandbox's
/// thread only.
private final class Box3: @unchecked Sendable {
    private var a: Descriptor?, b: Descriptor?, c: Descriptor?
    init(_ a: consuming Descriptor, _ b: consuming Descriptor, _ c: consuming Descriptor) {
        self.a = .some(a); self.b = .some(b); self.c = .some(c)
    }
    func close() { a.take()?.close(); b.take()?.close(); c.take()?.close() }
    /// The stdout end alone, once the child holds its copy.
    func closeOutput() { b.take()?.close() }
}
