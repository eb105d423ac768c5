import CordonHTTP
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// One client connection on the server's loop. Loop-thread state is marked; `enqueue`,
/// `responseFinished`, `abort` and the close hook are for any thread. The loop owns the
/// descriptor: other threads write to `fd` only under `output` while the connection is not
/// `gone`, and the loop closes it only after setting `gone`, so no thread writes to a closed
/// (or reused) number.
final class HTTPConnection: @unchecked Sendable {
    let fd: Int32
    let peer: HTTPPeer
    private let server: HTTPServer
    private var loop: EventLoop { server.loop }
    private var configuration: HTTPServerConfiguration { server.configuration }

    /// Bytes read ahead (pipelined requests, or their bodies) while a request is in flight.
    static let readAhead = 64 * 1024
    /// After an error response, how long and how much the client's remaining input is read and
    /// dropped before closing: closing with unread input would reset the connection and could
    /// destroy the response before the client reads it.
    static let lingerSeconds = 2.0
    static let lingerBytes = 1 << 20

    // Loop thread only.
    private var reader: HTTPRequestReader
    private var open = true
    private var inFlight = false
    private var closeWhenFlushed = false
    /// Whether to linger when closing (after an error, when input may be left unread).
    private var lingerOnClose = false
    private var lingering = false
    private var lingered = 0
    private var interest: EventLoop.Events = .readable
    private var waitTimer: EventLoop.Timer?
    private var sendTimer: EventLoop.Timer?
    /// When the request now being received began to arrive (its deadline counts from here).
    private var requestStarted: Double?
    /// Since when the connection has had nothing to do, once the loop has taken back a
    /// finished response (see `idleSince`).
    private var quietSince: Double

    // Shared with writers, under `output`: unsent bytes are pending[sent...].
    private let output = Monitor()
    private var pending: [UInt8] = []
    private var sent = 0
    private var lastProgress = 0.0
    private var gone = false
    private var closeHook: (@Sendable () -> Void)?
    /// When the response in flight was completely queued, the connection staying open: from
    /// then on the client may have the whole response and send its next request, before the
    /// loop has run `responseFinished`'s step, so the connection counts as idle from here.
    private var answeredAt: Double?

    init(fd: Int32, peer: HTTPPeer, server: HTTPServer) {
        self.fd = fd
        self.peer = peer
        self.server = server
        reader = HTTPRequestReader(limits: server.configuration.limits)
        quietSince = MonotonicClock.now
    }

    // MARK: Loop thread

    func start() { pump() }

    /// Nothing in flight (or its response all queued), nothing being received or sent: may be
    /// closed to make room.
    var isIdle: Bool {
        open && !closeWhenFlushed && !reader.hasRequestBytes && output.locked { (!inFlight || answeredAt != nil) && sent == pending.count }
    }

    /// Since when the connection has had nothing to do (eviction takes the oldest first): a
    /// response all queued counts from when it was, not from when the loop took it back.
    var idleSince: Double {
        guard inFlight else { return quietSince }
        return output.locked { answeredAt } ?? MonotonicClock.now
    }

    private var outputEmpty: Bool { output.locked { sent == pending.count } }

    /// When the request still being received began (nil: none, or one is in flight): a
    /// connection whose request has dribbled in for long may be closed to make room.
    var unfinishedSince: Double? {
        open && !inFlight && !closeWhenFlushed && reader.hasRequestBytes ? requestStarted : nil
    }

    func ready(_ events: EventLoop.Events) {
        guard open else { return }
        if events.contains(.writable) { flush() }
        if open && events.contains(.readable) { readSome() }
        if open && events.contains(.hangup) && !events.contains(.readable) { close() }
        if open && !lingering { pump() }
    }

    private func readSome() {
        let buffer = server.readBuffer
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if n <= 0 {
            // The client is gone (or shut down its side; an HTTP client waiting for its answer
            // does not): a response in flight has nobody to go to, and its onClose fires.
            close()
            return
        }
        if lingering {
            lingered += n
            if lingered > Self.lingerBytes { close() }
            return
        }
        reader.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        if requestStarted == nil && !inFlight && reader.hasRequestBytes { requestStarted = MonotonicClock.now }
    }

    /// Hands out the next request once nothing is in flight and the last response is sent;
    /// answers a reading error; keeps the deadline and the interest up to date.
    private func pump() {
        guard open, !lingering else { return }
        loop: while !inFlight && !closeWhenFlushed && outputEmpty {
            switch reader.next() {
            case .request(let request):
                dispatch(request)
            case .failed(let error):
                fail(status: error.status, error.message)
            case .needMore:
                if reader.awaitsContinue {
                    reader.sentContinue()
                    _ = enqueue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), wait: false)
                }
                break loop
            }
        }
        if closeWhenFlushed && !inFlight && outputEmpty {
            if lingerOnClose { startLinger() } else { close() }
            return
        }
        armWaitTimer()
        updateInterest()
    }

    private func dispatch(_ request: HTTPRequest) {
        inFlight = true
        requestStarted = nil
        if reader.hasRequestBytes { requestStarted = MonotonicClock.now }
        let responder = HTTPResponder(connection: self, request: request, server: server)
        let handler = server.handler
        let peer = peer
        do {
            try server.workers.run { handler(request, peer, responder) }
        } catch {
            responder.respond(status: 503, error: "no thread to serve the request: \(error)")
        }
    }

    /// Answers with an error and closes once it is sent.
    private func fail(status: Int, _ message: String) {
        _ = enqueue(HTTPResponse.error(status: status, message, close: true), wait: false)
        closeWhenFlushed = true
        lingerOnClose = true
    }

    /// A request that is waiting to arrive has until `requestSeconds` after its first byte; an
    /// idle connection until `idleSeconds` after it fell idle.
    private func armWaitTimer() {
        if let t = waitTimer { loop.cancel(t); waitTimer = nil }
        guard !inFlight, !closeWhenFlushed, outputEmpty else { return }
        if reader.hasRequestBytes {
            let started = requestStarted ?? MonotonicClock.now
            requestStarted = started
            waitTimer = loop.schedule(at: started + configuration.requestSeconds) { [self] in
                waitTimer = nil
                guard open, !inFlight, !closeWhenFlushed else { return }
                fail(status: 408, "the request did not arrive within \(configuration.requestSeconds) s")
                pump()
            }
        } else {
            waitTimer = loop.schedule(at: quietSince + configuration.idleSeconds) { [self] in
                waitTimer = nil
                if isIdle { close() }
            }
        }
    }

    private func updateInterest() {
        var wanted: EventLoop.Events = []
        if !outputEmpty { wanted.insert(.writable) }
        if lingering {
            wanted.insert(.readable)
        } else if !closeWhenFlushed && !reader.hasFailed && ((!inFlight && outputEmpty) || reader.bufferedBytes < Self.readAhead) {
            // While a response is under way the socket is still read (a bounded read-ahead),
            // so that a client that leaves is noticed before the response ends.
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
            let before = sent
            while sent < pending.count {
                let n = pending.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
                failed = true
                break
            }
            if sent > before { lastProgress = MonotonicClock.now }
            if sent == pending.count {
                pending.removeAll(keepingCapacity: pending.count <= 65536)
                sent = 0
            } else if sent >= 65536 {
                pending.removeFirst(sent)
                sent = 0
            }
            if sent > before || pending.isEmpty { output.broadcast() }
            return (pending.count - sent, failed)
        }
        if failed { close(); return }
        if left > 0 {
            armSendTimer()
            updateInterest()
            return
        }
        if let t = sendTimer { loop.cancel(t); sendTimer = nil }
        pump()
    }

    /// Closes the connection when its output has not moved for `sendSeconds`.
    private func armSendTimer() {
        guard sendTimer == nil else { return }
        let since = output.locked { lastProgress }
        sendTimer = loop.schedule(at: since + configuration.sendSeconds) { [self] in
            sendTimer = nil
            let (waiting, last) = output.locked { (sent < pending.count, lastProgress) }
            guard waiting else { return }
            if MonotonicClock.now - last >= configuration.sendSeconds { close() } else { armSendTimer() }
        }
    }

    /// The last response is out and the connection ends: stop sending, read and drop what the
    /// client still sends for a while, then close.
    private func startLinger() {
        guard !lingering else { return }
        lingering = true
        if let t = waitTimer { loop.cancel(t) }
        shutdown(fd, Int32(SHUT_WR))
        waitTimer = loop.schedule(after: Self.lingerSeconds) { [self] in
            waitTimer = nil
            close()
        }
        updateInterest()
    }

    /// The server is stopping: an idle connection closes now, a busy one after its response.
    func drain() {
        if isIdle { close() }
    }

    func close() {
        guard open else { return }
        open = false
        for t in [waitTimer, sendTimer].compactMap({ $0 }) { loop.cancel(t) }
        waitTimer = nil
        sendTimer = nil
        // `gone` first: a writer writes to the descriptor only under `output` and while the
        // connection is not gone, so it is never written after it is closed (or reused).
        let hook: (@Sendable () -> Void)? = output.locked {
            gone = true
            pending = []
            sent = 0
            output.broadcast()
            defer { closeHook = nil }
            return closeHook
        }
        loop.deregister(fd)
        server.closed(self)
        hook?()
    }

    // MARK: Any thread

    /// Queues `bytes` to be sent, after everything queued before. With `wait`, off the loop
    /// thread, waits while more than `highWater` bytes are unsent, for up to `sendSeconds`
    /// (then the connection closes). False when the connection is gone or the wait ran out.
    /// How `enqueue` treats output past `highWater`: wait for room (off the loop thread), queue
    /// anyway, or refuse at once (nothing queued, the connection left open).
    enum Wait { case wait, queue, failWhenFull }

    func enqueue(_ bytes: [UInt8], wait: Bool, completing: Bool = false) -> Bool {
        enqueue(bytes, wait ? .wait : .queue, completing: completing)
    }

    /// With `completing`, `bytes` end the response in flight and the connection stays open:
    /// once they are queued the response is finished (no close hook) and the connection counts
    /// as idle, in the same step, since the client may read them at once (`responseFinished`
    /// must still follow).
    func enqueue(_ bytes: [UInt8], _ mode: Wait, completing: Bool = false) -> Bool {
        enum Outcome { case gone, late, full, sent, queued(first: Bool) }
        let deadline = MonotonicClock.now + configuration.sendSeconds
        let waits = mode == .wait && !loop.inLoopThread
        let highWater = configuration.highWater
        let outcome: Outcome = output.locked {
            if mode == .failWhenFull && !gone && pending.count - sent > highWater { return .full }
            let room = output.wait(until: deadline) { gone || !waits || pending.count - sent <= highWater }
            if gone { return .gone }
            if !room { return .late }
            if completing {
                answeredAt = MonotonicClock.now
                closeHook = nil
            }
            var offset = 0
            if sent == pending.count {
                // Nothing queued: write from this thread, and wake the loop only for a rest the
                // socket did not take (a small response fits at once).
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                    if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
                }
                if offset > 0 { lastProgress = MonotonicClock.now }
                if offset == bytes.count { return .sent }
            }
            let first = sent == pending.count
            if first { lastProgress = MonotonicClock.now }
            pending += bytes[offset...]
            return .queued(first: first)
        }
        switch outcome {
        case .gone, .full: return false
        case .late:
            abort()
            return false
        case .sent: return true
        case .queued(let first):
            if first { loop.execute { [self] in flush() } }
            return true
        }
    }

    /// The response in flight is complete (its bytes queued): the next request may follow,
    /// unless `closeAfter`.
    func responseFinished(closeAfter: Bool) {
        output.locked {
            closeHook = nil
            if !closeAfter && answeredAt == nil { answeredAt = MonotonicClock.now }
        }
        loop.execute { [self] in
            guard open else { return }
            inFlight = false
            if closeAfter { closeWhenFlushed = true }
            quietSince = output.locked {
                defer { answeredAt = nil }
                return answeredAt
            } ?? MonotonicClock.now
            pump()
        }
    }

    /// Closes the connection from any thread (a response that cannot be completed).
    func abort() {
        loop.execute { [self] in close() }
    }

    var isOpen: Bool { output.locked { !gone } }

    /// Sets what runs when the connection closes before the response in flight is finished;
    /// runs it at once if it is already closed.
    func onClose(_ body: @escaping @Sendable () -> Void) {
        let now: (@Sendable () -> Void)? = output.locked {
            if gone { return body }
            closeHook = body
            return nil
        }
        now?()
    }
}
