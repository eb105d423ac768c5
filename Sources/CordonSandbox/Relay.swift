import CLinux
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

// The workload's standard streams: the pipes (or the pseudo-terminal) set up before the clone,
// the child's ends of them, and the relays the supervisor moves bytes through. Every descriptor
// here has one owner; the caller's own stdin, stdout and stderr are only ever borrowed.

/// One end of a relayed stream.
enum StreamEnd: ~Copyable {
    /// Ours: closed when the stream is done with it.
    case owned(Descriptor)
    /// The caller's (its stdin or stdout), or another relay's: never closed here.
    case borrowed(Int32)
    case closed

    /// The descriptor number, -1 once closed.
    var fd: Int32 {
        switch self {
        case .owned(let d): return d.raw
        case .borrowed(let fd): return fd
        case .closed: return -1
        }
    }
}

/// One relayed stream: bytes read from `source` wait in a buffer until `sink` takes them. A
/// sink that can block (a pipe or terminal we do not own, the pty) is written only after poll
/// reports it writable and at most PIPE_BUF bytes at a time, so the write does not block; a sink
/// that cannot (a regular file, a non-blocking pipe) takes all that is pending at once.
struct Relay: ~Copyable {
    var source: StreamEnd
    private(set) var sink: StreamEnd
    /// Opens the sink when the first byte arrives (until then `sink` is closed and reads are kept).
    private var opener: (() throws(SystemError) -> Int32)?
    /// `buffer[offset..<filled]` is pending. Reads happen only when nothing is, into the start
    /// of the buffer: it is allocated on the first read and reused for the life of the stream.
    private var buffer: [UInt8] = []
    private var offset = 0
    private var filled = 0
    /// Whether a write to the sink can block; looked up at the first write to each sink.
    private var sinkCanBlock: Bool?
    /// The last byte delivered to the sink: whether what the caller saw ends a line.
    private(set) var lastWritten: UInt8?
    static let chunk = 65536
    static let atomicWrite = 4096

    init(source: consuming StreamEnd, sink: consuming StreamEnd, opener: (() throws(SystemError) -> Int32)? = nil) {
        self.source = source
        self.sink = sink
        self.opener = opener
    }

    var hasPending: Bool { offset < filled }

    /// What to poll for: reading while nothing is pending, writing while something is.
    func pollRequests() -> (read: pollfd, write: pollfd) {
        (pollfd(fd: hasPending ? -1 : source.fd, events: Int16(POLLIN), revents: 0),
         pollfd(fd: hasPending ? sink.fd : -1, events: Int16(POLLOUT), revents: 0))
    }

    /// Reads what is available; returns the byte count, 0 at EOF (the source is then closed).
    /// The bytes are kept for the sink unless it is gone.
    mutating func read() -> Int {
        let fd = source.fd
        guard fd >= 0 else { return 0 }
        if !hasPending { offset = 0; filled = 0 }
        if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: Relay.chunk) }
        guard filled < buffer.count else { return -1 }  // full: the sink must take some first
        let start = filled
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + start, $0.count - start) }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return -1 }
        if n <= 0 {  // EOF, or EIO from a pty whose last user is gone
            closeSource()
            return 0
        }
        if sink.fd >= 0 || opener != nil { filled += n }
        return n
    }

    /// Takes back up to `count` of the bytes read last (what an output cap does not let through).
    mutating func dropLast(_ count: Int) { filled -= min(count, filled - offset) }

    /// Opens the sink through `opener` if it has one still to open (the first byte has come);
    /// a failure leaves the sink closed.
    mutating func openSink() throws(SystemError) {
        guard let open = opener else { return }
        opener = nil
        do throws(SystemError) { sink = .owned(Descriptor(adopting: try open())) } catch {
            closeSink()
            throw error
        }
        sinkCanBlock = nil
    }

    mutating func writeSome() {
        let fd = sink.fd
        guard fd >= 0, hasPending else { return }
        if sinkCanBlock == nil { sinkCanBlock = Relay.canBlock(fd) }
        let count = sinkCanBlock == false ? filled - offset : min(filled - offset, Relay.atomicWrite)
        let start = offset
        let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + start, count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            closeSink()  // the reader went away (EPIPE): drop the rest
            return
        }
        if n > 0 { lastWritten = buffer[offset + n - 1] }
        offset += n
    }

    /// Writes everything pending, blocking (used once the sandbox is gone).
    mutating func flush() {
        let fd = sink.fd
        if fd >= 0, hasPending {
            let start = offset, count = filled - offset
            buffer.withUnsafeBytes { FileDescriptorIO.writeAll(fd, $0.baseAddress! + start, count) }
            lastWritten = buffer[filled - 1]
        }
        offset = 0
        filled = 0
    }

    mutating func closeSource() { source = .closed }

    mutating func closeSink() {
        offset = 0
        filled = 0
        sink = .closed
    }

    /// False for a regular file and for a descriptor in non-blocking mode: a write there returns
    /// at once, whatever its size.
    static func canBlock(_ fd: Int32) -> Bool {
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG { return false }
        let flags = fcntl(fd, F_GETFL)
        return flags < 0 || flags & O_NONBLOCK == 0
    }
}

/// The supervisor's side of the workload's standard streams.
struct StandardStreams: ~Copyable {
    var stdout: Relay
    var stderr: Relay
    var stdin: Relay
}

/// The workload's standard streams before the clone: the child's ends, which the spawn closes
/// once the child holds them, and the supervisor's streams.
struct StdioPlumbing: ~Copyable {
    /// The descriptors that become the workload's 0, 1 and 2.
    var childStdio: (Int32, Int32, Int32)
    /// Their owners (the caller's stdin, passed straight through, has none here).
    var childEnds: ChildEnds
    var streams: StandardStreams

    struct ChildEnds: ~Copyable {
        var first: Descriptor?
        var second: Descriptor?
        var third: Descriptor?

        /// Closes them all, once the child holds its own copies (consuming the ends closes each).
        consuming func close() {}
    }

    /// Sets up the streams `io` asks for: a pseudo-terminal, or a pipe per output stream and,
    /// unless the caller's stdin can be passed straight through, one for stdin.
    init(io: SandboxIO) throws(SetupFailure) {
        func pipe() throws(SetupFailure) -> Pipe {
            do { return try Descriptor.pipe() } catch {
                throw SetupFailure(step: .pipes, errno: error.errno, message: "create pipes: \(SystemError.text(error.errno))")
            }
        }
        // The output's destination: the caller's, or opened on the first byte (`openOutput`).
        func output(_ source: consuming StreamEnd, isStdout: Bool) -> Relay {
            guard let open = io.openOutput else { return Relay(source: source, sink: .borrowed(isStdout ? io.stdout : io.stderr)) }
            return Relay(source: source, sink: .closed, opener: { () throws(SystemError) in try open(isStdout) })
        }
        if io.passStdout {
            // A service's stdout is a pipe its caller reads, or /dev/null (a server nobody reads):
            // anything else (a terminal, a host file) would be handed to the sandbox as is.
            // (/dev/null is character device 1:3, makedev's encoding 0x103.)
            var st = stat()
            guard !io.tty, io.openOutput == nil, fstat(io.stdout, &st) == 0,
                  (st.st_mode & S_IFMT) == S_IFIFO || ((st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0x103) else {
                throw SetupFailure(step: .pipes, errno: EINVAL, message: "passStdout takes a pipe or /dev/null for stdout, without tty or openOutput")
            }
        }
        if io.tty {
            guard isatty(io.stdin) == 1 else { throw SetupFailure(step: .tty, errno: ENOTTY, message: "--tty needs a terminal on standard input") }
            var master: Int32 = -1, slave: Int32 = -1
            guard cl_open_pty(&master, &slave) == 0 else {
                throw SetupFailure(step: .tty, errno: errno, message: "open a pseudo-terminal: \(SystemError.text(errno))")
            }
            let masterEnd = Descriptor(adopting: master)
            var rows: UInt16 = 0, cols: UInt16 = 0
            if cl_get_winsize(io.stdin, &rows, &cols) == 0 { _ = cl_set_winsize(master, rows, cols) }
            childStdio = (slave, slave, slave)
            childEnds = ChildEnds(first: .some(Descriptor(adopting: slave)), second: nil, third: nil)
            // The master is read for the workload's output and written with the caller's input;
            // the output relay owns it (the input relay stops when it is gone).
            streams = StandardStreams(stdout: output(.owned(masterEnd), isStdout: true), stderr: output(.closed, isStdout: false),
                                      stdin: Relay(source: .borrowed(io.stdin), sink: .borrowed(master)))
            return
        }
        let errPipe = try pipe()
        // stdin: pass a read-only pipe or file straight through; relay anything else (a
        // terminal would otherwise hand the sandbox the caller's tty).
        var st = stat()
        let flags = fcntl(io.stdin, F_GETFL)
        let direct = io.sessionChannel != nil || fstat(io.stdin, &st) == 0 && flags >= 0 && (flags & O_ACCMODE) == O_RDONLY
            && isatty(io.stdin) == 0 && ((st.st_mode & S_IFMT) == S_IFIFO || (st.st_mode & S_IFMT) == S_IFREG
                                         || (st.st_mode & S_IFMT) == S_IFCHR)
        var stdin = Relay(source: .closed, sink: .closed)
        var childStdin: Descriptor?
        var stdinFD = io.sessionChannel ?? io.stdin
        if !direct {
            let inPipe = try pipe()
            stdinFD = inPipe.read.raw
            childStdin = .some(inPipe.read)
            // Nothing to relay from a closed stdin: the workload reads EOF at once.
            if fstat(io.stdin, &st) == 0 { stdin = Relay(source: .borrowed(io.stdin), sink: .owned(inPipe.write)) }
        }
        if io.passStdout {
            // A long-lived service: its stdout is the caller's pipe, read and bounded per message
            // by the caller (no relay, no output cap on it).
            childStdio = (stdinFD, io.stdout, errPipe.write.raw)
            childEnds = ChildEnds(first: childStdin, second: nil, third: .some(errPipe.write))
            streams = StandardStreams(stdout: Relay(source: .closed, sink: .closed),
                                      stderr: output(.owned(errPipe.read), isStdout: false), stdin: stdin)
            return
        }
        let outPipe = try pipe()
        childStdio = (stdinFD, outPipe.write.raw, errPipe.write.raw)
        childEnds = ChildEnds(first: childStdin, second: .some(outPipe.write), third: .some(errPipe.write))
        streams = StandardStreams(stdout: output(.owned(outPipe.read), isStdout: true),
                                  stderr: output(.owned(errPipe.read), isStdout: false), stdin: stdin)
    }
}
