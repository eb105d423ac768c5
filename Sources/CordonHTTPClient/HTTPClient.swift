import CCurl
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 client over libcurl, for the model worker's calls to its provider: POST with a
/// body, the response's status and headers, then its body handed over piece by piece as it
/// arrives (a server-sent event stream is read while it is written), every call bounded.
///
/// Why one curl multi handle driven by one thread, not an easy handle per caller: the multi
/// handle's connection cache is what keeps a provider's connections alive from call to call (a
/// TLS handshake is most of a short call's latency), and its driver sees every transfer at each
/// turn, so a cancel or an idle stream ends at once (the thread is woken with
/// `curl_multi_wakeup`) instead of at the next progress callback, about a second later. Easy
/// handles sharing connections through a share handle would need locks around curl's cache and
/// still only notice a cancel in a callback. The cost: the callbacks of every call (head, body
/// pieces, completion) run on the driver thread, one at a time — they must not block for long.
///
/// The rules every call follows, whatever the caller asks: HTTP/1.1 (HTTPS may be HTTP/2 where a
/// request says `http2`), only `http` and `https`,
/// no redirect followed, no proxy (the environment's `http_proxy` is ignored: inside the
/// sandbox the only way out is the egress allowlist), TCP_NODELAY, HTTPS verified against the
/// system's CA bundle, no `Expect: 100-continue` round trip. Limits: connect timeout, a deadline
/// for the whole call, an idle limit (no byte received for that long, counted from the start),
/// and a cap on the body's bytes (a `Content-Length` over it fails before the body is read).
public final class HTTPClient: Sendable {
    private let engine: Engine
    private let driver: Threads.Joinable
    private let shutting = Mutex(false)

    /// Whether this libcurl speaks HTTP/2 (built with nghttp2): a request that asks for it is
    /// HTTP/1.1 otherwise. (Multiplexing on one connection is libcurl's default since 7.62.)
    static let hasHTTP2 = cordon_curl_has_http2() != 0

    /// The libcurl version and its TLS library (`curl_version()`).
    public static var curlVersion: String { String(cString: curl_version()) }

    public init() throws(HTTPError) {
        guard Engine.globalInit == CURLE_OK else { throw HTTPError(.setup, code: Int32(Engine.globalInit.rawValue), "curl_global_init failed") }
        engine = try Engine()
        do {
            driver = try Threads.start("http-client", signals: .noSIGPIPE) { [engine] in engine.drive() }
        } catch {
            throw HTTPError(.setup, code: 0, "cannot start the HTTP client's thread: \(error)")
        }
    }

    /// Ends every call in flight (each completes `.cancelled`, on the client's thread, before
    /// this returns), fails every later one the same way, and waits for the client's thread to
    /// end. Called again, it does nothing. On the client's own thread — a completion that drops
    /// the last reference to the client — it cannot wait for itself: the thread ends once that
    /// completion returns.
    public func shutDown() {
        let first = shutting.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        engine.stop()
        if driver.isCurrent { driver.detach() } else { driver.join() }
    }

    deinit { shutDown() }

    /// Watches `fd` along with the transfers, calling `onInput` on the client's thread whenever
    /// it is readable or hung up — the model worker's stdin, so that a request is read and its
    /// transfer started on the thread that runs it, with no hand-off between threads on the
    /// call's path. `onInput` must not block for long (the descriptor is ready: one read does
    /// not block) and returns false once it wants no more (the end of its input). One
    /// descriptor at a time: a second call replaces the first.
    public func watch(_ fd: Int32, onInput: @escaping @Sendable () -> Bool) {
        engine.watch(fd, onInput: onInput)
    }

    /// A call, not yet started: `start` runs it, `cancel` (from any thread) ends it.
    public func call(_ request: HTTPRequest) throws(HTTPError) -> HTTPCall {
        try HTTPCall(engine: engine, request: request)
    }
}

public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", post = "POST" }
    public var url: String
    /// POST sends `body`; GET sends none (`body` must be empty).
    public var method: Method = .post
    /// Sent as given; `Content-Type` is the caller's to set. Names and values must not hold CR
    /// or LF (refused: a header must not smuggle another).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Seconds to make the connection (TCP and TLS).
    public var connectTimeout: Double = 10
    /// Seconds for the whole call, from start to the last byte.
    public var timeout: Double = 120
    /// Seconds without a byte received (headers or body) before the call is abandoned; nil: no
    /// limit but `timeout`.
    public var idleTimeout: Double?
    /// The body's bytes past which the call is abandoned.
    public var maxBodyBytes: Int = 16 << 20
    /// An HTTP proxy to go through (`http://127.0.0.1:3128`: a sandbox's egress proxy, the only
    /// way from a sandbox to a service on the host's loopback); nil: none, whatever the
    /// environment says.
    public var proxy: String?
    /// HTTPS may be HTTP/2 (offered by ALPN), and calls to one host then share one connection,
    /// multiplexed, each waiting for it rather than opening another (the install gate's fetches:
    /// sixteen index pages in one connection, not eight handshakes). false: HTTP/1.1.
    public var http2 = false

    public init(url: String, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// The status line and headers of the final response (an interim 1xx is skipped).
public struct HTTPResponseHead: Sendable {
    public var status: Int
    /// In order received, names as the server spelt them.
    public var headers: [(name: String, value: String)]

    public init(status: Int, headers: [(name: String, value: String)]) {
        self.status = status
        self.headers = headers
    }

    /// The last value of header `name` (any case).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.last { $0.name.lowercased() == wanted }?.value
    }
}

/// How a call went, once its body has been read whole.
public struct HTTPOutcome: Sendable {
    public var head: HTTPResponseHead
    public var bodyBytes: Int
    /// Seconds from the start to the first byte of the body (to the end of the headers when
    /// there was no body).
    public var firstByte: Double
    public var total: Double
    /// Connections curl opened for this call: 0 when it reused one (`CURLINFO_NUM_CONNECTS`).
    public var newConnections: Int
}

/// Why a call failed. `code` is curl's (`CURLcode`, 0 when the failure was not curl's) and
/// `message` curl's words for it (its error buffer, else `curl_easy_strerror`).
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// curl failed the transfer: connection refused, DNS, TLS, the connect timeout, the
        /// deadline (code 28, `CURLE_OPERATION_TIMEDOUT`), a body cut short (18, 56)…
        case transfer
        /// `cancel()`, or the client shut down.
        case cancelled
        /// Nothing received for `idleTimeout` seconds.
        case idle
        /// The body passed `maxBodyBytes` (or its `Content-Length` said it would).
        case bodyTooLarge
        /// The caller's `onHead` or `onBody` asked to stop.
        case stopped
        /// The call could not be set up (a bad header, an option curl refused).
        case setup
    }

    public var reason: Reason
    public var code: Int32
    public var message: String

    public init(_ reason: Reason, code: Int32, _ message: String) {
        self.reason = reason
        self.code = code
        self.message = message
    }

    /// curl's code for the deadline (and the connect timeout).
    public static let operationTimedOut = Int32(CURLE_OPERATION_TIMEDOUT.rawValue)

    public var description: String { code == 0 ? message : "\(message) (curl error \(code))" }
}

/// One call: owns its curl easy handle and the memory curl points into (header list, error
/// buffer). Run once with `start`.
public final class HTTPCall: @unchecked Sendable {
    fileprivate let engine: Engine
    fileprivate let easy: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    fileprivate let request: HTTPRequest
    private let cancelled = Atomic<Bool>(false)
    fileprivate var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    // The caller's until `start` hands the call to the driver (through the engine's monitor),
    // the driver thread's from then on.
    private var onHead: @Sendable (HTTPResponseHead) -> Bool = { _ in true }
    private var onBody: @Sendable (UnsafeRawBufferPointer) -> Bool = { _ in true }
    private var status = 0
    private var headers: [(name: String, value: String)] = []
    private var headerBytes = 0
    private var head: HTTPResponseHead?
    private var bodyBytes = 0
    fileprivate var started = 0.0
    fileprivate var lastByte = 0.0
    private var firstByte: Double?
    private var stopReason: HTTPError.Reason?
    /// Set by `start`, run once by `complete` and then dropped (with `onHead` and `onBody`, so
    /// nothing they hold outlives the call's end).
    private var completion: (@Sendable (Result<HTTPOutcome, HTTPError>) -> Void)?
    private var begun = false

    /// Most header lines and bytes kept of one response.
    static let maxHeaders = 256
    static let maxHeaderBytes = 256 << 10

    fileprivate init(engine: Engine, request: HTTPRequest) throws(HTTPError) {
        guard let easy = curl_easy_init() else { throw HTTPError(.setup, code: 0, "curl_easy_init failed") }
        self.engine = engine
        self.easy = easy
        self.request = request
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        try configure()
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
        errorBuffer.deallocate()
    }

    private func set(_ option: CURLoption, _ value: Int, _ what: String) throws(HTTPError) {
        try check(cordon_curl_easy_setopt_long(easy, option, value), what)
    }

    private func set(_ option: CURLoption, _ value: String, _ what: String) throws(HTTPError) {
        try check(cordon_curl_easy_setopt_string(easy, option, value), what)
    }

    private func check(_ code: CURLcode, _ what: String) throws(HTTPError) {
        guard code == CURLE_OK else {
            throw HTTPError(.setup, code: Int32(code.rawValue), "\(what): \(String(cString: curl_easy_strerror(code)))")
        }
    }

    private func configure() throws(HTTPError) {
        for (name, value) in request.headers {
            guard !name.isEmpty, !name.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F || $0 == UInt8(ascii: ":") }),
                  !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw HTTPError(.setup, code: 0, "header \(PrintableText.of(name)): a name or value a header cannot hold")
            }
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        // An empty `Expect:` removes curl's own: no wait for a 100 Continue on a large body.
        headerList = curl_slist_append(headerList, "Expect:")
        guard headerList != nil else { throw HTTPError(.setup, code: 0, "curl_slist_append failed") }

        try set(CURLOPT_URL, request.url, "the URL")
        try set(CURLOPT_PROTOCOLS_STR, "http,https", "protocols")
        try set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https", "redirect protocols")
        try set(CURLOPT_FOLLOWLOCATION, 0, "redirects")
        if let proxy = request.proxy {
            try set(CURLOPT_PROXY, proxy, "proxy")
            try set(CURLOPT_NOPROXY, "", "no proxy")
            // A tunnel (CONNECT) for http:// too: the proxy decides once per connection, and
            // every request on the kept-alive tunnel reaches the server as the server expects
            // it (origin-form). Without it curl sends each later request on the connection in
            // absolute form, which the proxy relays as is (llama.cpp's server answers 404).
            try set(CURLOPT_HTTPPROXYTUNNEL, 1, "proxy tunnel")
        } else {
            // "" disables every proxy, the environment's included; NOPROXY "*" says so twice.
            try set(CURLOPT_PROXY, "", "proxy")
            try set(CURLOPT_NOPROXY, "*", "no proxy")
        }
        if request.http2 && HTTPClient.hasHTTP2 {
            try set(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS, "HTTP version")
            try set(CURLOPT_PIPEWAIT, 1, "wait to multiplex")
        } else {
            try set(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1, "HTTP version")
        }
        // Signals are not for timeouts in a threaded program (curl would use SIGALRM for DNS).
        try set(CURLOPT_NOSIGNAL, 1, "no signals")
        try set(CURLOPT_TCP_NODELAY, 1, "TCP_NODELAY")
        try set(CURLOPT_TCP_KEEPALIVE, 1, "TCP keep-alive")
        try set(CURLOPT_SSL_VERIFYPEER, 1, "TLS peer verification")
        try set(CURLOPT_SSL_VERIFYHOST, 2, "TLS host verification")
        try set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout), "connect timeout")
        try set(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout), "timeout")
        try check(cordon_curl_easy_setopt_off(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(request.maxBodyBytes)), "body cap")
        switch request.method {
        case .get:
            precondition(request.body.isEmpty, "a GET request has no body")
            try set(CURLOPT_HTTPGET, 1, "GET")
        case .post:
            try set(CURLOPT_POST, 1, "POST")
            try check(cordon_curl_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), "body size")
            // COPYPOSTFIELDS copies the body (its size set first, so a NUL in it is data).
            // (A placeholder byte for an empty body: curl wants a pointer either way.)
            let body = request.body.isEmpty ? [0] : request.body
            try check(body.withUnsafeBytes { cordon_curl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress)) },
                      "body")
        }
        try check(cordon_curl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList)), "headers")
        try check(cordon_curl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer)), "error buffer")
        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(cordon_curl_easy_setopt_write_callback(easy, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            Unmanaged<HTTPCall>.fromOpaque(context!).takeUnretainedValue().received(header: data, size * count)
        }), "header callback")
        try check(cordon_curl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me), "header callback data")
        try check(cordon_curl_easy_setopt_write_callback(easy, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            Unmanaged<HTTPCall>.fromOpaque(context!).takeUnretainedValue().received(body: data, size * count)
        }), "body callback")
        try check(cordon_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me), "body callback data")
    }

    static func milliseconds(_ seconds: Double) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 1 }
        return Int(min(seconds * 1000, 86_400_000).rounded(.up))
    }

    /// Starts the call on the client's thread; `completion` runs once, on that thread, when it
    /// has ended (or at once, on the caller's, when the client is stopping). `onHead` sees the
    /// final response's status and headers before any of its body; `onBody` each piece of the
    /// body as it arrives. All three run on the client's thread, which every call shares: they
    /// must not block for long, and `onHead` and `onBody` end the call (`.stopped`) by returning
    /// false. The result is a failure when curl fails the transfer, the call is cancelled, idle
    /// or over its body cap — the head may have been seen already.
    ///
    /// Why a completion and not a blocking call: the caller's thread would only wait, and
    /// handing the end back to it is one more thread wakeup on every call's path.
    ///
    /// A completion may let go of the last reference to the `HTTPClient` (its `shutDown` then
    /// lets the driver thread end instead of waiting for itself).
    public func start(onHead: @escaping @Sendable (HTTPResponseHead) -> Bool = { _ in true },
                      onBody: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool,
                      completion: @escaping @Sendable (Result<HTTPOutcome, HTTPError>) -> Void) {
        precondition(!begun, "an HTTPCall runs once")
        begun = true
        self.onHead = onHead
        self.onBody = onBody
        self.completion = completion
        engine.run(self)
    }

    /// The call's end: `completion` runs, then the caller's closures are let go.
    fileprivate func complete(_ result: Result<HTTPOutcome, HTTPError>) {
        let done = completion
        completion = nil
        onHead = { _ in true }
        onBody = { _ in true }
        done?(result)
    }

    /// Ends the call, whether it runs yet or not: its result is `.cancelled`. Any thread.
    public func cancel() {
        cancelled.store(true, ordering: .releasing)
        engine.wake()
    }

    // MARK: On the driver thread

    private func received(header data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        lastByte = MonotonicClock.now
        headerBytes += count
        guard let data, headerBytes <= Self.maxHeaderBytes, headers.count < Self.maxHeaders else {
            stopReason = .transfer
            return 0
        }
        var bytes = UnsafeRawBufferPointer(start: data, count: count)[...]
        // (On bytes: "\r\n" is one Character to Swift.)
        while let last = bytes.last, last == 0x0D || last == 0x0A { bytes.removeLast() }
        let line = Substring(String(decoding: bytes, as: UTF8.self))
        if line.hasPrefix("HTTP/") {
            // A status line opens a response (an interim 1xx one may come before the final).
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            headers = []
            return count
        }
        if line.isEmpty {
            guard status >= 200 else { return count }
            let head = HTTPResponseHead(status: status, headers: headers)
            self.head = head
            if !onHead(head) {
                stopReason = .stopped
                return 0
            }
            return count
        }
        if let colon = line.firstIndex(of: ":") {
            var value = line[line.index(after: colon)...]
            while let f = value.first, f == " " || f == "\t" { value.removeFirst() }
            while let l = value.last, l == " " || l == "\t" { value.removeLast() }
            headers.append((String(line[..<colon]), String(value)))
        }
        return count
    }

    private func received(body data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        let now = MonotonicClock.now
        lastByte = now
        if firstByte == nil { firstByte = now - started }
        bodyBytes += count
        guard bodyBytes <= request.maxBodyBytes else {
            stopReason = .bodyTooLarge
            return 0
        }
        guard count > 0, let data else { return count }
        if !onBody(UnsafeRawBufferPointer(start: data, count: count)) {
            stopReason = .stopped
            return 0
        }
        return count
    }

    /// The call's end, from curl's code or the driver's own reason.
    fileprivate func finish(code: CURLcode?, reason: HTTPError.Reason? = nil) -> Result<HTTPOutcome, HTTPError> {
        let total = MonotonicClock.now - started
        if let why = reason ?? stopReason {
            switch why {
            case .cancelled: return .failure(HTTPError(.cancelled, code: 0, "cancelled"))
            case .idle: return .failure(HTTPError(.idle, code: 0, "nothing received for \(request.idleTimeout ?? 0) s"))
            case .bodyTooLarge: return .failure(HTTPError(.bodyTooLarge, code: 0, "the body is longer than \(request.maxBodyBytes) bytes"))
            case .stopped: return .failure(HTTPError(.stopped, code: 0, "stopped by the receiver"))
            case .transfer: return .failure(HTTPError(.transfer, code: 0, "the response's headers are too many or too long"))
            case .setup: return .failure(HTTPError(.setup, code: 0, "setup"))
            }
        }
        guard let code, code == CURLE_OK else {
            let c = code ?? CURLE_FAILED_INIT
            if c == CURLE_FILESIZE_EXCEEDED {
                return .failure(HTTPError(.bodyTooLarge, code: Int32(c.rawValue), "the body is longer than \(request.maxBodyBytes) bytes"))
            }
            let detail = String(cString: errorBuffer)
            return .failure(HTTPError(.transfer, code: Int32(c.rawValue), detail.isEmpty ? String(cString: curl_easy_strerror(c)) : detail))
        }
        guard let head else { return .failure(HTTPError(.transfer, code: 0, "no response")) }
        var connects = 0
        _ = cordon_curl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
        return .success(HTTPOutcome(head: head, bodyBytes: bodyBytes, firstByte: firstByte ?? total, total: total, newConnections: connects))
    }
}

/// The multi handle and the thread that drives it. Every curl call on the multi handle, and on
/// an easy handle while it is added to it, is made on the driver thread.
private final class Engine: @unchecked Sendable {
    static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_SSL | CURL_GLOBAL_WIN32))

    let multi: UnsafeMutableRawPointer
    let monitor = Monitor()
    // Guarded by `monitor`.
    private var incoming: [HTTPCall] = []
    private var stopping = false
    // The driver thread's.
    private var active: [UnsafeMutableRawPointer: HTTPCall] = [:]
    // Guarded by `monitor`: a descriptor to watch, from `watch`, for the driver to take.
    private var newInput: (fd: Int32, onInput: @Sendable () -> Bool)?
    // The driver thread's: the watched descriptor (-1: none, or `onInput` wanted no more).
    private var input: Int32 = -1
    private var onInput: (@Sendable () -> Bool)?
    /// The driver thread, once it runs: a call started on it needs no wake-up.
    private let driverThread = Atomic<UInt>(0)

    /// Connections kept open for reuse (curl's default is 4 per easy handle added).
    static let maxKeptConnections = 64

    init() throws(HTTPError) {
        guard let multi = curl_multi_init() else { throw HTTPError(.setup, code: 0, "curl_multi_init failed") }
        self.multi = multi
        _ = cordon_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, Self.maxKeptConnections)
    }

    func watch(_ fd: Int32, onInput: @escaping @Sendable () -> Bool) {
        monitor.locked { newInput = (fd, onInput) }
        if !onDriverThread { wake() }
    }

    deinit { curl_multi_cleanup(multi) }

    func wake() { _ = curl_multi_wakeup(multi) }

    private var onDriverThread: Bool { driverThread.load(ordering: .relaxed) == UInt(pthread_self()) }

    func stop() {
        monitor.locked { stopping = true }
        wake()
    }

    /// Hands `call` to the driver, which completes it when it ends.
    func run(_ call: HTTPCall) {
        let taken = monitor.locked { () -> Bool in
            if stopping { return false }
            incoming.append(call)
            return true
        }
        guard taken else { return call.complete(.failure(HTTPError(.cancelled, code: 0, "the HTTP client is stopping"))) }
        // Started by `onInput` or a completion: the driver takes it at its next turn, before it
        // waits again.
        if !onDriverThread { wake() }
    }

    private func end(_ call: HTTPCall, code: CURLcode?, reason: HTTPError.Reason? = nil) {
        curl_multi_remove_handle(multi, call.easy)
        active[call.easy] = nil
        call.complete(call.finish(code: code, reason: reason))
    }

    func drive() {
        driverThread.store(UInt(pthread_self()), ordering: .relaxed)
        var running: Int32 = 0
        var extra = curl_waitfd(fd: -1, events: Int16(CURL_WAIT_POLLIN), revents: 0)
        while true {
            let (new, stop, watched) = monitor.locked { () -> ([HTTPCall], Bool, (fd: Int32, onInput: @Sendable () -> Bool)?) in
                defer { incoming = []; newInput = nil }
                return (incoming, stopping, newInput)
            }
            if let watched { (input, onInput) = watched }
            for call in new {
                call.started = MonotonicClock.now
                call.lastByte = call.started
                let code = curl_multi_add_handle(multi, call.easy)
                active[call.easy] = call
                if code != CURLM_OK {
                    end(call, code: nil, reason: .setup)
                }
            }
            for call in Array(active.values) where stop || call.isCancelled {
                end(call, code: nil, reason: .cancelled)
            }
            if stop { return }

            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle, let call = active[easy] else { continue }
                end(call, code: message.pointee.data.result)
            }

            // Idle calls end; the wait is until the next one would.
            let now = MonotonicClock.now
            var wait = 1.0
            for call in Array(active.values) {
                guard let idle = call.request.idleTimeout else { continue }
                let left = call.lastByte + idle - now
                if left <= 0 {
                    end(call, code: nil, reason: .idle)
                } else {
                    wait = min(wait, left)
                }
            }
            // A call started on this thread since the top of the turn (by a completion, or a
            // head or body callback) did not wake it: its turn comes now, not after the wait.
            if monitor.locked({ !incoming.isEmpty || newInput != nil || stopping }) { continue }
            let timeout = Int32(max(1, (wait * 1000).rounded(.up)))
            guard input >= 0 else {
                curl_multi_poll(multi, nil, 0, timeout, nil)
                continue
            }
            extra.fd = input
            extra.revents = 0
            curl_multi_poll(multi, &extra, 1, timeout, nil)
            // A hangup or an error is reported as POLLIN too (curl's poll does so): a pipe
            // whose writer is gone, with nothing left in it, shows POLLHUP alone.
            if extra.revents & Int16(CURL_WAIT_POLLIN) != 0, let onInput, !onInput() { input = -1 }
        }
    }
}
