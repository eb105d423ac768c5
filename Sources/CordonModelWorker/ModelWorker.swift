import CordonHTTPClient
import CordonJSON
import CordonRPC
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The model worker: one long-lived process per provider, started by cordond inside a sandbox
/// whose egress allowlist is that provider's host and port alone. It holds the provider's key
/// (in memory only), makes the HTTP calls (connections kept alive, streams read as they come),
/// and parses the provider's untrusted replies, so cordond only ever reads canonical, bounded
/// JSON from it: OpenAI chat completion bodies and chunks, and `ProviderError`s.
///
/// Protocol (docs/models.md, "The model worker"): JSON-RPC 2.0, one message per line, requests
/// on stdin, answers and `chat.delta` notifications on stdout, free text on stderr. Methods
/// `initialize` (first, once), `chat`, `health`; notification `cancel`. stdin's end aborts every
/// call and ends the process with status 0.
///
/// Threads: the HTTP client's thread reads stdin along with the transfers it drives (a request
/// is read and its transfer started on the thread that runs it: no hand-off between threads on
/// a call's path), answers what needs no provider, runs the stream readers (which write the
/// notifications) and answers each call when it ends. A request over 64 KiB, and every one
/// after it until those are done (requests are handled in order), is parsed on a thread of its
/// own, as is a reply over 64 KiB, so no stream waits for a large parse. The main thread waits
/// for stdin's end (it reads stdin itself only if the HTTP client could not start).
public enum ModelWorker {
    /// The protocol revision `initialize` speaks.
    public static let protocolVersion: Int64 = 1
    /// Longest line read from stdin; a longer one is answered with an error and skipped.
    public static let maxLineBytes = 8 << 20

    /// Error codes of the worker's own (JSON-RPC leaves -32000…-32099 to servers).
    public enum Code {
        /// A call to the provider failed: `data` is the `ProviderError` (`ProviderError(json:)`).
        public static let providerFailed: Int64 = -32000
        /// `maxConcurrency` calls are in flight already.
        public static let busy: Int64 = -32001
        /// `initialize` has not been called.
        public static let notInitialized: Int64 = -32002
    }

    /// Runs the worker on stdin and stdout until stdin ends; returns the exit status.
    public static func main() -> Int32 {
        // A write to a daemon that is gone fails with EPIPE; stdin's end follows.
        signal(SIGPIPE, SIG_IGN)
        let output = WorkerOutput()
        output.nonBlocking()
        let session = WorkerSession(output: output)
        if session.readInputOnClientThread() {
            session.waitForInputEnd()
            session.shutDown()
            return 0
        }
        // No HTTP client (its failure is `initialize`'s answer): stdin is read here.
        let input = LineChannel(fd: 0, maxLine: maxLineBytes)
        while true {
            switch input.readLine() {
            case .eof:
                session.shutDown()
                return 0
            case .tooLong:
                session.output.error(id: .null, RPCError(RPCCode.messageTooLarge, "a message longer than \(maxLineBytes) bytes was discarded"))
            case .message(let line):
                session.handle(line)
            }
        }
    }
}

/// The worker's state and its methods.
final class WorkerSession: @unchecked Sendable {
    let output: WorkerOutput
    private let threads = ElasticThreads(name: "chat", maxIdle: 4)

    private struct Setup {
        var provider: ProviderConfig
        var key: String?
        var client: HTTPClient
    }

    /// A call in flight: its HTTP call once made, and whether `cancel` came first.
    private final class Slot: @unchecked Sendable {
        var http: HTTPCall?
        var cancelled = false
    }

    private struct State {
        var setup: Setup?
        var calls: [String: Slot] = [:]
        /// Made at start, reading stdin (`readInputOnClientThread`), or why it could not be.
        var client: Result<HTTPClient, HTTPError>?
    }

    private let state = Mutex(State())
    /// Answers being written, and requests being handled, on a thread of `threads`; whether
    /// stdin has ended. Guarded by `handedOff`.
    private let handedOff = Monitor()
    private var answering = 0
    private var inputEnded = false

    /// stdin as the HTTP client's thread reads it.
    private final class Input: @unchecked Sendable {
        var framer = LineFramer(maxLine: ModelWorker.maxLineBytes)
        var chunk = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
    }
    private let input = Input()
    /// Requests waiting for the thread that handles them in order (see `dispatch`).
    private let ordered = Mutex<(lines: [[UInt8]], draining: Bool)>(([], false))

    /// Requests longer than this are parsed on a thread of their own.
    static let inlineRequestBytes = 64 << 10

    init(output: WorkerOutput) { self.output = output }

    /// Starts the HTTP client with stdin as its input; false when it cannot start (the caller
    /// reads stdin itself, and `initialize` answers with the reason).
    func readInputOnClientThread() -> Bool {
        do {
            let client = try HTTPClient()
            state.withLock { $0.client = .success(client) }
            client.watch(0) { [self] in readInput() }
            return true
        } catch {
            state.withLock { $0.client = .failure(error) }
            return false
        }
    }

    /// Returns once stdin has ended.
    func waitForInputEnd() {
        handedOff.locked { _ = handedOff.wait { inputEnded } }
    }

    /// On the HTTP client's thread, stdin being readable: one read, and every whole request in
    /// it handled. False at stdin's end.
    private func readInput() -> Bool {
        let n = input.chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return true }
        guard n > 0 else {
            handedOff.locked { inputEnded = true; handedOff.broadcast() }
            return false
        }
        input.chunk.withUnsafeBytes { input.framer.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        while let line = input.framer.next() {
            switch line {
            case .tooLong:
                output.error(id: .null, RPCError(RPCCode.messageTooLarge, "a message longer than \(ModelWorker.maxLineBytes) bytes was discarded"))
            case .message(let bytes):
                dispatch(bytes)
            case .eof:
                break
            }
        }
        return true
    }

    /// Handles a request here, or — a large one, or any while large ones wait — queues it for
    /// a thread that handles the queue in order (a `cancel` must not overtake its `chat`).
    private func dispatch(_ line: [UInt8]) {
        let (inline, startDrain) = ordered.withLock { o -> (Bool, Bool) in
            if !o.draining && line.count <= Self.inlineRequestBytes { return (true, false) }
            o.lines.append(line)
            defer { o.draining = true }
            return (false, !o.draining)
        }
        if inline { return handle(line) }
        guard startDrain else { return }
        handedOff.locked { answering += 1 }
        do {
            try threads.run { [self] in drain() }
        } catch {
            drain()
        }
    }

    private func drain() {
        while let next = ordered.withLock({ o -> [UInt8]? in
            if o.lines.isEmpty { o.draining = false; return nil }
            return o.lines.removeFirst()
        }) {
            handle(next)
        }
        handedOff.locked { answering -= 1; handedOff.broadcast() }
    }

    /// The parse limits of one message: a chat body's (`ChatLimits`) plus the envelope.
    static let parseOptions = JSON.ParseOptions(maxDepth: 72, maxValues: 260_000, maxBytes: ModelWorker.maxLineBytes)

    func handle(_ line: [UInt8]) {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        let message: JSON
        do { message = try JSON.parse(line, options: Self.parseOptions) } catch {
            output.error(id: .null, RPCError(RPCCode.parseError, "not JSON: \(error.description)"))
            return
        }
        guard case .object = message, message["jsonrpc"] == .string("2.0"), let method = message["method"]?.stringValue else {
            output.error(id: .null, RPCError(RPCCode.invalidRequest, "not a JSON-RPC 2.0 request"))
            return
        }
        let id: JSON?
        switch message["id"] {
        case nil: id = nil
        case let v? where v == .null || v.intValue != nil || v.stringValue != nil: id = v
        default:
            output.error(id: .null, RPCError(RPCCode.invalidRequest, "id: expected a number, a string or null"))
            return
        }
        let params: Params
        do { params = try Params(message["params"]) } catch {
            if let id { output.error(id: id, error) }
            return
        }
        guard let id else {
            // Notifications: only `cancel` means anything, and nothing is answered.
            if method == "cancel" { cancel(params) }
            return
        }
        let initialized = state.withLock { $0.setup != nil }
        if !initialized && method != "initialize" {
            output.error(id: id, RPCError(ModelWorker.Code.notInitialized, "initialize first"))
            return
        }
        do throws(RPCError) {
            switch method {
            case "initialize": output.result(id: id, try initialize(params))
            case "chat": try chat(id: id, params)
            case "health":
                try params.finish()
                output.result(id: id, .object([("inFlight", .int(Int64(state.withLock { $0.calls.count })))]))
            case "probe": try probe(id: id, params)
            case "cancel":
                cancel(params)
                output.result(id: id, .object([]))
            default: throw RPCError(RPCCode.methodNotFound, "no method \(PrintableText.of(method.prefix(64)))")
            }
        } catch {
            output.error(id: id, error)
        }
    }

    // MARK: initialize

    private func initialize(_ params: Params) throws(RPCError) -> JSON {
        var params = params
        guard state.withLock({ $0.setup == nil }) else { throw RPCError(RPCCode.invalidRequest, "already initialized") }
        guard try params.requiredInt("protocol", min: 0, max: 1 << 20) == ModelWorker.protocolVersion else {
            throw RPCError.invalid("params.protocol", "this worker speaks protocol \(ModelWorker.protocolVersion)")
        }
        guard var p = try params.object("provider") else { throw RPCError.invalid("params.provider", "required") }
        guard let name = try p.string("name", maxBytes: 128), !name.isEmpty else { throw RPCError.invalid("params.provider.name", "required") }
        guard let kindName = try p.string("kind", maxBytes: 32) else { throw RPCError.invalid("params.provider.kind", "required") }
        guard let kind = ProviderConfig.Kind(rawValue: kindName) else {
            throw RPCError.invalid("params.provider.kind", "one of \(ProviderConfig.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard var base = try p.string("baseURL", maxBytes: 2048) else { throw RPCError.invalid("params.provider.baseURL", "required") }
        guard base.hasPrefix("http://") || base.hasPrefix("https://"),
              !base.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw RPCError.invalid("params.provider.baseURL", "an http:// or https:// URL without spaces or control characters")
        }
        while base.hasSuffix("/") { base.removeLast() }
        guard let timeout = try p.number("timeout", min: 0.001, max: 86_400) else { throw RPCError.invalid("params.provider.timeout", "required") }
        guard let idle = try p.number("idleTimeout", min: 0.001, max: 86_400) else { throw RPCError.invalid("params.provider.idleTimeout", "required") }
        let concurrency = try p.requiredInt("maxConcurrency", min: 1, max: 1024)
        let proxy = try p.string("proxy", maxBytes: 64)
        if let proxy {
            // Only a sandbox's own egress proxy, on its loopback: nothing a worker could be
            // pointed at elsewhere.
            let rest = proxy.hasPrefix("http://127.0.0.1:") ? proxy.dropFirst("http://127.0.0.1:".count) : ""
            guard let port = Int(rest), (1...65535).contains(port) else {
                throw RPCError.invalid("params.provider.proxy", "http://127.0.0.1:PORT (the sandbox's egress proxy)")
            }
        }
        try p.finish()
        let key = try params.string("apiKey", maxBytes: 4096)
        if let key {
            // Printable ASCII without `"` and `\`: a header cannot be smuggled with it, and it
            // reads the same inside a JSON string, so redaction finds it there too.
            guard key.utf8.count >= 8, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) else {
                throw RPCError.invalid("params.apiKey", "8 or more printable ASCII characters, without spaces, quotes or backslashes")
            }
        }
        try params.finish()
        let client: HTTPClient
        switch state.withLock({ $0.client }) {
        case .success(let made)?: client = made
        case .failure(let error)?: throw RPCError(RPCCode.internalError, "the HTTP client: \(error)")
        case nil: throw RPCError(RPCCode.internalError, "the HTTP client was not started")
        }
        let provider = ProviderConfig(name: name, kind: kind, baseURL: base, timeout: timeout, idleTimeout: idle, maxConcurrency: Int(concurrency), proxy: proxy)
        let taken = state.withLock { s -> Bool in
            if s.setup != nil { return false }
            s.setup = Setup(provider: provider, key: key, client: client)
            return true
        }
        guard taken else { throw RPCError(RPCCode.invalidRequest, "already initialized") }
        output.setKey(key)
        output.log("provider \(name) (\(kind.rawValue)) at \(base), \(concurrency) calls at most, key \(key == nil ? "none" : "given")")
        return .object([("worker", .string("cordon-model-worker")), ("protocol", .int(ModelWorker.protocolVersion)),
                        ("curl", .string(HTTPClient.curlVersion))])
    }

    // MARK: chat

    private func chat(id: JSON, _ params: Params) throws(RPCError) {
        var params = params
        guard let callID = try params.string("call", maxBytes: 64), !callID.isEmpty,
              callID.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw RPCError.invalid("params.call", "required: 1 to 64 printable ASCII characters")
        }
        guard let body = params.raw("body") else { throw RPCError.invalid("params.body", "required") }
        let stream = try params.bool("stream") ?? false
        let setup = state.withLock { $0.setup! }
        let timeout = try params.number("timeout", min: 0.001, max: 86_400) ?? setup.provider.timeout
        try params.finish()
        let call = ChatCall(id: callID, body: body, stream: stream, timeout: timeout)
        let (request, model) = try upstreamRequest(call, provider: setup.provider, key: setup.key)

        let slot = Slot()
        let admitted = try state.withLock { (s) throws(RPCError) -> Bool in
            if s.calls[callID] != nil { throw RPCError.invalid("params.call", "a call with this id is in flight") }
            guard s.calls.count < setup.provider.maxConcurrency else { return false }
            s.calls[callID] = slot
            return true
        }
        guard admitted else {
            throw RPCError(ModelWorker.Code.busy, "busy: \(setup.provider.maxConcurrency) calls in flight")
        }
        let reader = ReplyReader(call: call, kind: setup.provider.kind, model: model) { [output] params in
            output.notify("chat.delta", params)
        }
        let http: HTTPCall
        do { http = try setup.client.call(request) } catch {
            return answer(id: id, call: call, reader: reader, .failure(error))
        }
        let cancelledAlready = state.withLock { _ in
            slot.http = http
            return slot.cancelled
        }
        if cancelledAlready { http.cancel() }
        http.start(onHead: reader.onHead, onBody: reader.onBody) { [self] outcome in
            // On the HTTP client's thread, which every call shares: a small reply is read and
            // answered here (no thread handoff on a short call's path); a large one on a thread
            // of its own, so the other calls' streams do not wait for its parse.
            guard case .success = outcome, reader.bufferedBytes > Self.inlineReplyBytes else {
                return answer(id: id, call: call, reader: reader, outcome)
            }
            handedOff.locked { answering += 1 }
            do {
                try threads.run { [self] in
                    answer(id: id, call: call, reader: reader, outcome)
                    handedOff.locked { answering -= 1; handedOff.broadcast() }
                }
            } catch {
                answer(id: id, call: call, reader: reader, outcome)
                handedOff.locked { answering -= 1 }
            }
        }
    }

    /// Replies read on the HTTP client's thread at most this long; longer ones on a thread of
    /// their own.
    static let inlineReplyBytes = 64 << 10

    private func answer(id: JSON, call: ChatCall, reader: ReplyReader, _ outcome: Result<HTTPOutcome, HTTPError>) {
        let answer = reader.finish(outcome)
        // Out of flight before it is answered: cordond may reuse the id, or ask `health`, as
        // soon as it reads the answer.
        state.withLock { _ = $0.calls.removeValue(forKey: call.id) }
        switch answer {
        case .success(let result):
            output.result(id: id, result)
        case .failure(let error):
            output.log("call \(call.id): \(error.description)")
            output.error(id: id, code: ModelWorker.Code.providerFailed, error.description, data: error.json)
        }
    }

    // MARK: probe

    /// `GET {baseURL}/models`, answered with its status: whether the provider's server answers
    /// at all (a local model server's health check; its readiness is this and a one-token
    /// `chat`). What the server sent is read up to 1 MiB and dropped.
    private func probe(id: JSON, _ params: Params) throws(RPCError) {
        var params = params
        let setup = state.withLock { $0.setup! }
        let timeout = try params.number("timeout", min: 0.001, max: 600) ?? 10
        try params.finish()
        var request = HTTPRequest(url: setup.provider.baseURL + "/models", headers: [("Accept", "application/json"), ("User-Agent", "cordon-model-worker")], body: [])
        request.method = .get
        request.timeout = timeout
        request.connectTimeout = min(timeout, connectSeconds)
        request.maxBodyBytes = 1 << 20
        request.proxy = setup.provider.proxy
        if let key = setup.key, setup.provider.kind != .anthropic { request.headers.append(("Authorization", "Bearer \(key)")) }
        let get: HTTPCall
        do { get = try setup.client.call(request) } catch {
            return output.error(id: id, code: ModelWorker.Code.providerFailed, "GET /models: \(error)", data: nil)
        }
        get.start(onBody: { _ in true }) { [output] outcome in
            switch outcome {
            case .success(let o): output.result(id: id, .object([("status", .int(Int64(o.head.status)))]))
            case .failure(let error): output.error(id: id, code: ModelWorker.Code.providerFailed, "GET /models: \(error)", data: nil)
            }
        }
    }

    // MARK: cancel, the end

    private func cancel(_ params: Params) {
        var params = params
        guard let callID = try? params.string("call", maxBytes: 64) else { return }
        let http = state.withLock { s -> HTTPCall? in
            guard let slot = s.calls[callID] else { return nil }
            slot.cancelled = true
            return slot.http
        }
        http?.cancel()
    }

    /// stdin ended: cordond is gone or wants the worker gone. Every transfer is aborted and its
    /// answer written (to no reader, likely) before this returns, so the process ends with no
    /// thread of its own still running Swift code: the HTTP client's thread is joined, and the
    /// answers handed to threads of their own are waited for (10 s at most).
    func shutDown() {
        if case .success(let client)? = state.withLock({ $0.client }) { client.shutDown() }
        handedOff.locked { _ = handedOff.wait(until: MonotonicClock.now + 10) { answering == 0 } }
    }
}
