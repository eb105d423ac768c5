import CLinux
import CordonHTTP
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The HTTP/1.1 side of cordond's OpenAI-compatible endpoint: one `EventLoop` thread accepts,
/// identifies the peer, reads requests (`HTTPRequestReader`: bounded head and body), enforces
/// the deadlines and writes what handlers could not; handlers run on worker threads
/// (`ElasticThreads`) and answer through an `HTTPResponder`, whole or streamed, from any thread
/// and at any time. A held connection is a descriptor and a few hundred bytes, not a thread.
///
/// Per connection one request is in flight at a time; pipelined requests wait, read and
/// queued, and the next one is handed out only once the previous response has been sent. The
/// socket stays watched while a request is in flight (up to 64 KiB read ahead), so a client
/// that goes away is noticed at once and the responder's `onClose` fires — also when the client
/// only shut down its sending side, as Go's server does: an HTTP client that wants its answer
/// keeps the connection open.
///
/// Bounds (`HTTPServerConfiguration`): a whole request within `requestSeconds` of its first
/// byte (else 408 and close); an idle keep-alive connection closed after `idleSeconds`;
/// `maxConnections` in all and `maxConnectionsPerUser` per uid (Unix peers): a newcomer over a
/// cap takes the slot of the oldest idle connection (in the same uid for the per-user cap), or
/// is refused with 503 when none is idle; output waiting for a slow reader is capped at
/// `highWater` (writers block, up to `sendSeconds`) and must move at least once every
/// `sendSeconds`.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest, HTTPPeer, HTTPResponder) -> Void

    public let configuration: HTTPServerConfiguration
    let handler: Handler
    let loop: EventLoop
    let workers: ElasticThreads
    private let listener: Int32
    private let kind: HTTPPeer.Kind
    private var thread: Threads.Joinable?
    /// Test seam: called on the loop thread with each accepted socket, once it is set up.
    var acceptedSocket: (@Sendable (Int32) -> Void)?

    // The loop's own.
    private var connections: [Int32: HTTPConnection] = [:]
    private var accepting = true
    /// Set once `stop` begins: responses from then on close their connection.
    private let stopFlag = Atomic<Bool>(false)
    var stopping: Bool { stopFlag.load(ordering: .acquiring) }
    /// The loop's read buffer: one for all its connections, since it reads one at a time.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    /// Counts for `stop` to wait on (any thread).
    private let state = Monitor()
    private var open = 0

    /// Takes `listener` (a bound, listening Unix or TCP socket; non-blocking from here on).
    /// `handler` is called on a worker thread for each request read in full.
    public init(listener: consuming Descriptor, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
                handler: @escaping Handler) throws(SystemError) {
        self.configuration = configuration
        self.handler = handler
        loop = try EventLoop()
        workers = ElasticThreads(name: configuration.workerThreadName, maxIdle: configuration.idleWorkers)
        let fd = listener.raw
        var domain: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try syscallRetrying("getsockopt SO_DOMAIN", path: "listener") { getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) }
        kind = domain == AF_UNIX ? .unix : .tcp
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.listener = fd
        try loop.register(listener, .readable) { [unowned self] _ in acceptAll() }
    }

    deinit { readBuffer.deallocate() }

    /// Serves on a thread of its own (`configuration.loopThreadName`) until `stop`.
    public func start() throws(SystemError) {
        precondition(thread == nil, "HTTPServer.start: already started")
        thread = try Threads.start(configuration.loopThreadName, signals: .noSIGPIPE) { [self] in loop.run() }
    }

    /// Stops accepting at once, closes idle connections, lets responses in flight finish for
    /// up to `graceSeconds` (their connections close after them), then closes what is left
    /// (their responders' `onClose` fire) and ends the loop thread. Call once, from a thread
    /// other than the loop's.
    public func stop(graceSeconds: Double) {
        precondition(!loop.inLoopThread, "HTTPServer.stop on the loop thread")
        stopFlag.store(true, ordering: .releasing)
        loop.execute { [self] in
            accepting = false
            shutdown(listener, Int32(SHUT_RDWR))
            loop.deregister(listener)
            for connection in Array(connections.values) { connection.drain() }
        }
        let deadline = MonotonicClock.now + graceSeconds
        state.locked { _ = state.wait(until: deadline) { open == 0 } }
        let done = Atomic<Bool>(false)
        loop.execute { [self] in
            for connection in Array(connections.values) { connection.close() }
            done.store(true, ordering: .releasing)
        }
        loop.stop()
        thread?.join()
        thread = nil
        if !done.load(ordering: .acquiring) {
            // The loop ended before the job ran (it was never started): close on this thread.
            for connection in Array(connections.values) { connection.close() }
        }
    }

    /// Open connections (any thread).
    public var connectionCount: Int { state.locked { open } }

    // MARK: Loop thread

    private func acceptAll() {
        while accepting {
            let raw = cl_accept_nonblock(listener)
            if raw < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { return }
                if code == ECONNABORTED || code == EINTR || code == EPROTO { continue }
                // Out of descriptors or memory: pause rather than spin.
                loop.modify(listener, [])
                loop.schedule(after: 0.1) { [unowned self] in if accepting { loop.modify(listener, .readable) } }
                return
            }
            let socket = Descriptor(adopting: raw)
            guard let peer = identify(socket.raw) else { continue }
            if let refusal = admit(peer) {
                // Answered, not just dropped, so the client can tell why; a few hundred bytes
                // fit an empty socket buffer, and a client that has none left loses them.
                let bytes = HTTPResponse.error(status: 503, refusal, close: true)
                _ = Glibc.send(socket.raw, bytes, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                continue
            }
            let connection = HTTPConnection(fd: socket.raw, peer: peer, server: self)
            do {
                try loop.register(socket, .readable) { [connection] events in connection.ready(events) }
            } catch {
                continue
            }
            connections[connection.fd] = connection
            state.locked { open += 1 }
            acceptedSocket?(connection.fd)
            connection.start()
        }
    }

    /// The peer of a socket just accepted, set up for its kind; nil to drop it.
    private func identify(_ fd: Int32) -> HTTPPeer? {
        switch kind {
        case .unix:
            guard let c = PeerCredentials.of(socket: fd) else { return nil }
            let exe = c.pid > 0 ? FileSystem.symlinkTarget("/proc/\(c.pid)/exe") ?? "?" : "?"
            return .unix(uid: c.uid, gid: c.gid, pid: c.pid, groups: c.groups, exe: exe)
        case .tcp:
            // Without it each small response waits for the client's delayed ACK (~40 ms).
            var one: Int32 = 1
            guard setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else { return nil }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let got = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
            }
            guard got == 0 else { return nil }
            return HTTPPeer.tcp(from: storage)
        }
    }

    /// Takes a slot for `peer`, closing the oldest idle connection when a cap is reached; the
    /// refusal's message when no connection can make room.
    private func admit(_ peer: HTTPPeer) -> String? {
        if case .unix(let uid, _, _, _, _) = peer {
            let mine = connections.values.filter { $0.peer.uid == uid }
            if mine.count >= configuration.maxConnectionsPerUser {
                guard let victim = oldestIdle(mine) else {
                    return "uid \(uid) has \(configuration.maxConnectionsPerUser) connections busy: retry later"
                }
                victim.close()
            }
        }
        if connections.count >= configuration.maxConnections {
            guard let victim = oldestIdle(Array(connections.values)) else {
                return "\(configuration.maxConnections) connections are busy: retry later"
            }
            victim.close()
        }
        return nil
    }

    /// A request that takes longer than this to arrive whole makes its connection a candidate
    /// for closing when the caps are reached (a client's request arrives in milliseconds; one
    /// that trickles in holds a slot, and on TCP no uid caps how many any local user holds).
    static let slowRequestSeconds = 1.0

    /// The connection to close for a newcomer: the one idle longest, else the one whose
    /// unfinished request began longest ago (at least `slowRequestSeconds` ago). Connections
    /// with a request in flight are never taken.
    private func oldestIdle(_ candidates: [HTTPConnection]) -> HTTPConnection? {
        if let idle = candidates.filter(\.isIdle).min(by: { $0.idleSince < $1.idleSince }) { return idle }
        let now = MonotonicClock.now
        return candidates.compactMap { c in c.unfinishedSince.map { (c, $0) } }
            .filter { now - $0.1 >= Self.slowRequestSeconds }
            .min { $0.1 < $1.1 }?.0
    }

    /// Called by a connection as it closes (loop thread).
    func closed(_ connection: HTTPConnection) {
        connections[connection.fd] = nil
        state.locked {
            open -= 1
            state.broadcast()
        }
    }
}

/// The engine's bounds and thread names.
public struct HTTPServerConfiguration: Sendable {
    public var limits: HTTPRequestLimits
    /// A request must arrive whole within this many seconds of its first byte (else 408).
    public var requestSeconds: Double
    /// A keep-alive connection with no request for this long is closed.
    public var idleSeconds: Double
    /// How long a `write` may wait for room, and the longest the output may stand still
    /// while the client does not read, before the connection is closed.
    public var sendSeconds: Double
    /// Unsent output above which writers wait.
    public var highWater: Int
    public var maxConnections: Int
    /// For Unix peers, per uid (TCP peers are counted in `maxConnections` only).
    public var maxConnectionsPerUser: Int
    public var loopThreadName: String
    public var workerThreadName: String
    /// Worker threads kept when idle (a burst starts more; they end after 10 s idle).
    public var idleWorkers: Int

    public init(limits: HTTPRequestLimits = HTTPRequestLimits(), requestSeconds: Double = 30, idleSeconds: Double = 120,
                sendSeconds: Double = 60, highWater: Int = 256 * 1024, maxConnections: Int = 256, maxConnectionsPerUser: Int = 64,
                loopThreadName: String = "cordond-http", workerThreadName: String = "http-handler", idleWorkers: Int = 8) {
        self.limits = limits
        self.requestSeconds = requestSeconds
        self.idleSeconds = idleSeconds
        self.sendSeconds = sendSeconds
        self.highWater = highWater
        self.maxConnections = maxConnections
        self.maxConnectionsPerUser = maxConnectionsPerUser
        self.loopThreadName = loopThreadName
        self.workerThreadName = workerThreadName
        self.idleWorkers = idleWorkers
    }
}

/// Who is on the other end of a connection.
public enum HTTPPeer: Equatable, Sendable, CustomStringConvertible {
    /// A Unix socket peer, from SO_PEERCRED and SO_PEERGROUPS (as of its connect): its primary
    /// and supplementary groups, and its program as `/proc/PID/exe` named it at accept ("?"
    /// when it could not be read) — once per connection, not per request.
    case unix(uid: UInt32, gid: UInt32, pid: Int32, groups: [UInt32], exe: String)
    /// A TCP peer: its address and port. Loopback tells us no user: the handler identifies the
    /// caller by its `Authorization: Bearer` token.
    case tcp(address: String, port: UInt16)

    enum Kind { case unix, tcp }

    /// The uid of a Unix peer.
    public var uid: UInt32? {
        if case .unix(let uid, _, _, _, _) = self { return uid }
        return nil
    }

    public var description: String {
        switch self {
        case .unix(let uid, let gid, let pid, _, _): return "uid \(uid) gid \(gid) pid \(pid)"
        case .tcp(let address, let port): return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
        }
    }

    static func tcp(from storage: sockaddr_storage) -> HTTPPeer? {
        var s = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a -> HTTPPeer? in
                    var addr = a.pointee.sin_addr
                    guard inet_ntop(AF_INET, &addr, &text, socklen_t(text.count)) != nil else { return nil }
                    return .tcp(address: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port: UInt16(bigEndian: a.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a -> HTTPPeer? in
                    var addr = a.pointee.sin6_addr
                    guard inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count)) != nil else { return nil }
                    return .tcp(address: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port: UInt16(bigEndian: a.pointee.sin6_port))
                }
            }
        default:
            return nil
        }
    }
}

/// Listening sockets for the engine (the daemon may make its own).
public enum HTTPListener {
    /// A TCP listener on 127.0.0.1:`port` (0: any free port) with SO_REUSEADDR; the port it
    /// got in `boundPort`.
    public static func loopbackTCP(port: UInt16 = 0, boundPort: inout UInt16) throws(SystemError) -> Descriptor {
        var bound: Int32 = 0
        let fd = try syscallRetrying("listen", path: "127.0.0.1:\(port)") { cl_tcp_listen_loopback(Int32(port), &bound) }
        boundPort = UInt16(bound)
        return Descriptor(adopting: fd)
    }

    /// A Unix stream listener bound to `path` (which must not exist), created with at most
    /// `mode`'s permissions.
    public static func unix(path: String, backlog: Int32 = 128, mode: mode_t = 0o600) throws(SystemError) -> Descriptor {
        Descriptor(adopting: try syscallRetrying("listen", path: path) { cl_unix_listen(path, backlog, mode) })
    }
}
