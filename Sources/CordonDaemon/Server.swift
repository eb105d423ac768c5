import CLinux
import CordonJSON
import CordonRPC
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The socket side on one event loop (`EventLoop`, epoll; why: docs/architecture.md): one thread
/// accepts, identifies the peer (SO_PEERCRED, SO_PEERGROUPS), admits it, frames its lines and
/// writes what the workers could not, for every connection at once. A held connection costs a
/// descriptor and a few hundred bytes, not a thread. Requests run on the `RequestProcessor`'s
/// workers; one that waits for a task parks without a thread and is answered when the task ends.
/// A client's mistake is answered with an error on its own connection; nothing it sends can
/// stop the daemon.
///
/// Bounds, as the thread-per-connection server had them: a whole request must arrive within
/// `server.idle_timeout` of the connection starting to wait for it; one request is in flight
/// per connection, and the next is not taken while answers wait to be sent (the socket is not
/// read meanwhile, so a pipelining client is held back by its own socket buffer); output
/// waiting for a slow reader is capped (`LoopConnection.highWater`: writers block, then fail)
/// and each message must be sent within `sendSeconds` of becoming the next to send.
final class Server: @unchecked Sendable {
    let daemon: Daemon
    let maxMessage: Int
    let loop: EventLoop
    let processor: RequestProcessor
    let admission: Admission
    /// The listener's number, registered with (and owned by) the loop until `stopAccepting`.
    private let listener: Int32
    // The loop's own.
    private var connections: [Int32: LoopConnection] = [:]
    private var accepting = true
    /// The loop's read buffer: one for all its connections, since it reads one at a time.
    fileprivate let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    /// Takes `listener` (non-blocking from here on) and starts the request workers; `run` serves.
    init(daemon: Daemon, listener: consuming Descriptor, maxMessage: Int, workers: Int) throws(SystemError) {
        self.daemon = daemon
        self.maxMessage = maxMessage
        loop = try EventLoop()
        processor = try RequestProcessor(daemon: daemon, maxMessage: maxMessage, workers: workers)
        admission = Admission(daemon: daemon)
        let fd = listener.raw
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.listener = fd
        // The handler reaches the server through `loop`, which the server owns: unowned.
        try loop.register(listener, .readable) { [unowned self] _ in acceptAll() }
    }

    deinit { readBuffer.deallocate() }

    /// Serves on the calling thread until `stop`.
    func run() { loop.run() }

    /// Accepts, identifies and admits every waiting connection before any of its bytes are
    /// read: a connection whose peer is not known yet never holds a slot, so a flood from one
    /// user is refused at its own caps and rate while admins always get in.
    private func acceptAll() {
        while accepting {
            let raw = cl_accept_nonblock(listener)
            if raw < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { return }
                if code == ECONNABORTED || code == EINTR || code == EPROTO { continue }
                // Out of descriptors or memory (or anything else: only stopAccepting shuts the
                // listener down, and it takes it off the loop first): pause rather than spin.
                daemon.log.error("accept failed; pausing", metadata: ["errno": "\(code)"])
                loop.modify(listener, [])
                loop.schedule(after: 0.1) { [unowned self] in if accepting { loop.modify(listener, .readable) } }
                return
            }
            let socket = Descriptor(adopting: raw)
            guard let peer = Peer.of(socket: socket.raw) else { continue }
            if let refusal = admission.admit(peer) {
                // Answered, not just dropped, so the client can tell why; a few hundred bytes
                // fit an empty socket buffer, and a client that has none left loses them.
                let bytes = Array((admission.refusal(refusal) + "\n").utf8)
                _ = Glibc.send(socket.raw, bytes, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                continue
            }
            daemon.metrics.connection(opened: true)
            let connection = LoopConnection(fd: socket.raw, peer: peer, server: self)
            do {
                try loop.register(socket, .readable) { [connection] events in connection.ready(events) }
            } catch {
                daemon.log.error("cannot watch a connection", metadata: ["error": "\(error)"])
                admission.release(peer)
                daemon.metrics.connection(opened: false)
                continue
            }
            connections[connection.fd] = connection
            connection.start()
        }
    }

    /// Stops accepting (the drain): on the loop's thread the listener is shut down and leaves
    /// the loop, which closes it, so no accept ever runs on a closed (or reused) descriptor.
    /// Returns once that is done; connections already open are still served.
    func stopAccepting() {
        let done = Monitor()
        let stopped = Atomic<Bool>(false)
        loop.execute { [self] in
            accepting = false
            shutdown(listener, Int32(SHUT_RDWR))
            loop.deregister(listener)
            done.locked {
                stopped.store(true, ordering: .releasing)
                done.broadcast()
            }
        }
        done.locked { _ = done.wait(until: nil) { stopped.load(ordering: .acquiring) } }
    }

    /// Called by a connection as it closes (loop thread).
    fileprivate func closed(_ connection: LoopConnection) {
        connections[connection.fd] = nil
        admission.release(connection.peer)
        daemon.metrics.connection(opened: false)
    }
}

/// One client connection on the loop. Loop-thread state is marked; `send`, `requestDone`,
/// `after` and `onClose` are for any thread. The loop owns the descriptor: `fd` is written by
/// workers only under `output` while the connection is not `gone`, and the loop closes it only
/// after setting `gone`, so no thread writes to a closed (or reused) number.
final class LoopConnection: RequestConnection, @unchecked Sendable {
    let fd: Int32
    let peer: Peer
    private unowned let server: Server
    private var loop: EventLoop { server.loop }

    /// Unsent output above which `send` blocks its (worker) caller.
    static let highWater = 1 << 20
    /// How long one message may take to be sent once it is the next to send (a reader taking a
    /// byte now and then must not hold the connection; a slow but steady one gets 60 s a message).
    static let sendSeconds = 60.0

    // Loop thread only.
    private var framer: LineFramer
    private var open = true
    private var inFlight = false
    private var closeWhenFlushed = false
    private var interest: EventLoop.Events = .readable
    private var idleTimer: EventLoop.Timer?
    private var sendTimer: EventLoop.Timer?
    /// The timer of the request in flight (`after`).
    private var requestTimer: EventLoop.Timer?

    // Shared with the workers, under `output`: unsent bytes are pending[sent...]; `ends` are
    // where each queued message ends in `pending`; the first began to be sent at `headSince`
    // and is message number `headNumber`.
    private let output = Monitor()
    private var pending: [UInt8] = []
    private var sent = 0
    private var ends: [Int] = []
    private var headSince = 0.0
    private var headNumber: UInt64 = 0
    private var gone = false
    private var closeHook: (@Sendable () -> Void)?

    init(fd: Int32, peer: Peer, server: Server) {
        self.fd = fd
        self.peer = peer
        self.server = server
        framer = LineFramer(maxLine: server.maxMessage)
    }

    // MARK: Loop thread

    func start() { pump() }

    func ready(_ events: EventLoop.Events) {
        guard open else { return }
        if events.contains(.writable) { flush() }
        if open && events.contains(.readable) && !holdingRequests { readSome() }
        // Gone both ways (a half-close is not reported): nobody can read an answer, and the
        // hangup would be reported again at every turn of the loop.
        if open && events.contains(.hangup) && !events.contains(.readable) { close() }
        if open { pump() }
    }

    private func readSome() {
        let buffer = server.readBuffer
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n > 0 {
            framer.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            return
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if n < 0 { close(); return }
        // The end of the stream (the client may have only shut down its side): the request
        // already read is answered, then the connection closes.
        finishAndClose()
    }

    /// Whether the next request waits: one is in flight, the client has finished, or answers
    /// are still waiting to be sent. The last keeps a client that sends and never reads to the
    /// answers one request makes: otherwise its answers would pile up to `highWater` and then
    /// hold a worker (or the thread that ended a task) in `send` for up to `sendSeconds`.
    private var holdingRequests: Bool {
        inFlight || closeWhenFlushed || output.locked { sent < pending.count }
    }

    /// Takes the next request, if none is in flight; waits for one otherwise.
    private func pump() {
        while open && !holdingRequests {
            guard let line = framer.next() else { break }
            switch line {
            case .tooLong: server.processor.tooLong(self)
            case .eof: break
            case .message(let bytes):
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                inFlight = true
                if let t = idleTimer { loop.cancel(t); idleTimer = nil }
                server.processor.process(bytes, on: self)
            }
        }
        guard open else { return }
        if !holdingRequests && idleTimer == nil {
            // A whole request within the idle timeout, counted from here.
            idleTimer = loop.schedule(after: server.daemon.config.idleSeconds) { [self] in
                idleTimer = nil
                close()
            }
        }
        updateInterest()
    }

    private func updateInterest() {
        var wanted: EventLoop.Events = []
        if output.locked({ sent < pending.count }) {
            wanted.insert(.writable)
        } else if !inFlight && !closeWhenFlushed {
            wanted.insert(.readable)
        }
        if wanted != interest {
            interest = wanted
            loop.modify(fd, wanted)
        }
    }

    /// Writes what it can without blocking; the rest waits for EPOLLOUT.
    private func flush() {
        guard open else { return }
        let (left, failed): (Int, Bool) = output.locked {
            var failed = false
            while sent < pending.count {
                let n = pending.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
                failed = true
                break
            }
            // Messages sent in full: the next one's time starts now.
            var advanced = false
            while let end = ends.first, end <= sent {
                ends.removeFirst()
                advanced = true
            }
            if advanced {
                headNumber &+= 1
                headSince = MonotonicClock.now
            }
            if sent == pending.count {
                pending.removeAll(keepingCapacity: pending.count <= 65536)
                sent = 0
                ends.removeAll()
                output.broadcast()
            } else if sent >= 65536 {
                pending.removeFirst(sent)
                for i in ends.indices { ends[i] -= sent }
                sent = 0
                output.broadcast()
            }
            return (pending.count - sent, failed)
        }
        if failed { close(); return }
        if left > 0 {
            armSendTimer()
        } else {
            if let t = sendTimer { loop.cancel(t); sendTimer = nil }
            if closeWhenFlushed && !inFlight { close(); return }
            // The answers are out: the next request may be taken.
            pump()
            return
        }
        updateInterest()
    }

    /// Closes the connection if the message at the head of the output is still there
    /// `sendSeconds` after it became the head.
    private func armSendTimer() {
        guard sendTimer == nil else { return }
        let (number, since) = output.locked { (headNumber, headSince) }
        sendTimer = loop.schedule(at: since + Self.sendSeconds) { [self] in
            sendTimer = nil
            let (stuck, waiting) = output.locked { (headNumber == number, sent < pending.count) }
            guard waiting else { return }
            if stuck { close() } else { armSendTimer() }
        }
    }

    private func finishAndClose() {
        closeWhenFlushed = true
        let empty = output.locked { sent == pending.count }
        if empty && !inFlight { close() } else { updateInterest() }
    }

    private func close() {
        guard open else { return }
        open = false
        for t in [idleTimer, sendTimer, requestTimer].compactMap({ $0 }) { loop.cancel(t) }
        idleTimer = nil; sendTimer = nil; requestTimer = nil
        // `gone` first: a worker writes to the descriptor only under `output` and while the
        // connection is not gone, so it is never written after it is closed (or reused).
        let hook: (@Sendable () -> Void)? = output.locked {
            gone = true
            pending = []
            sent = 0
            ends = []
            output.broadcast()
            defer { closeHook = nil }
            return closeHook
        }
        loop.deregister(fd)
        server.closed(self)
        hook?()
    }

    // MARK: Any thread

    @discardableResult
    func send(_ text: String) -> Bool { send(text, waiting: true) }

    func sendWithoutWaiting(_ text: String) -> Bool { send(text, waiting: false) }

    private func send(_ text: String, waiting: Bool) -> Bool {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        let deadline = waiting ? MonotonicClock.now + Self.sendSeconds : 0
        let onLoop = loop.inLoopThread
        let first: Bool? = output.locked {
            // Never blocks on the loop's own thread (an over-long line's error): the loop is
            // what drains the output.
            let room = output.wait(until: deadline) { gone || pending.count - sent <= Self.highWater || onLoop }
            guard room, !gone else { return nil }
            var offset = 0
            if sent == pending.count {
                // Nothing queued: write from this thread, and wake the loop only for a rest the
                // socket did not take (the usual answer fits at once).
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                    if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
                }
                if offset == bytes.count { return false }
            }
            let wasEmpty = sent == pending.count
            if wasEmpty {
                // This message is the head from now.
                headNumber &+= 1
                headSince = MonotonicClock.now
            }
            pending += bytes[offset...]
            ends.append(pending.count)
            return wasEmpty
        }
        guard let first else { return false }
        if first { loop.execute { [self] in flush() } }
        return true
    }

    var isOpen: Bool { output.locked { !gone } }

    func requestDone() {
        loop.execute { [self] in
            guard open else { return }
            inFlight = false
            if let t = requestTimer { loop.cancel(t); requestTimer = nil }
            if closeWhenFlushed {
                let empty = output.locked { sent == pending.count }
                if empty { close() }
                return
            }
            pump()
        }
    }

    func after(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
        loop.execute { [self] in
            guard open else { return }
            if let t = requestTimer { loop.cancel(t) }
            requestTimer = loop.schedule(after: seconds) { [self] in
                requestTimer = nil
                body()
            }
        }
    }

    func onClose(_ body: (@Sendable () -> Void)?) {
        let now: (@Sendable () -> Void)? = output.locked {
            if gone { return body }
            closeHook = body
            return nil
        }
        now?()
    }
}

/// Who may hold a connection: the global cap, each user's share and connection rate, and a
/// reserve for admins.
final class Admission: Sendable {
    let daemon: Daemon
    /// Open connections: all, and per uid.
    private let open = Mutex<(total: Int, byUser: [UInt32: Int], rate: [UInt32: (tokens: Double, at: Double)])>((0, [:], [:]))

    init(daemon: Daemon) {
        self.daemon = daemon
    }

    /// Takes a connection slot for `peer`, or says why not. Non-admins are held to the global
    /// cap, their own share and their own connection rate; admins get a reserve above the cap
    /// and no rate, so users in the socket's group cannot lock the admins out.
    func admit(_ peer: Peer) -> String? {
        let config = daemon.config
        let admin = daemon.authorizer.isAdmin(peer)
        let now = MonotonicClock.now
        return open.withLock { o in
            if admin {
                if o.total >= config.maxConnections + DaemonConfig.adminReserve { return "cordond has \(o.total) connections open: retry later" }
            } else {
                // A token bucket per uid: server.connect_rate_per_user a second, bursts of twice that.
                let rate = Double(config.connectRatePerUser)
                var bucket = o.rate[peer.uid] ?? (tokens: 2 * rate, at: now)
                bucket.tokens = min(2 * rate, bucket.tokens + (now - bucket.at) * rate)
                bucket.at = now
                guard bucket.tokens >= 1 else {
                    o.rate[peer.uid] = bucket
                    return "uid \(peer.uid) opens connections faster than \(config.connectRatePerUser) a second (server.connect_rate_per_user): slow down"
                }
                bucket.tokens -= 1
                o.rate[peer.uid] = bucket
                if o.rate.count > 4096 { o.rate = o.rate.filter { now - $0.value.at < 10 } }
                if o.total >= config.maxConnections {
                    return "cordond has \(config.maxConnections) connections open (server.max_connections): retry later"
                }
                if o.byUser[peer.uid, default: 0] >= config.maxConnectionsPerUser {
                    return "uid \(peer.uid) has \(config.maxConnectionsPerUser) connections open (server.max_connections_per_user): close some"
                }
            }
            o.total += 1
            o.byUser[peer.uid, default: 0] += 1
            return nil
        }
    }

    func release(_ peer: Peer) {
        open.withLock { o in
            o.total -= 1
            o.byUser[peer.uid, default: 1] -= 1
            if o.byUser[peer.uid] == 0 { o.byUser[peer.uid] = nil }
        }
    }

    /// The refusal a refused connection is sent before it is closed.
    func refusal(_ message: String) -> String {
        daemon.metrics.requestError(code: RPCCode.busy)
        return RPCMessage.error(id: .null, RPCError(RPCCode.busy, message))
    }
}
