import CordonJSON
import CordonModels
import CordonServices
import CordonSystem
import Synchronization

/// One provider's model worker (`cordon-model-worker`, docs/models.md "The model worker") as
/// the pool's `ServiceClient`: JSON-RPC over the worker's stdio. Readiness is `initialize`,
/// which hands the worker its provider and key (the only way the key leaves cordond); health is
/// `health`. A call is `chat`; a stream's pieces come as `chat.delta` notifications, each an
/// OpenAI chunk the worker built from the provider's reply and that is read here again with the
/// same bounded reader a provider's chunk would be (`OpenAIWire.parseChunk`): the worker is in a
/// sandbox, but what it writes is still not trusted.
public final class ModelWorkerClient: ServiceClient, @unchecked Sendable {
    public let connection: JSONRPCConnection
    private let provider: ModelCatalog.Provider
    private let apiKey: String?
    private let limits: ReplyLimits
    /// Streams in flight: a call's delta handler, by the call's id.
    private let streams = Mutex<[String: @Sendable (JSON) -> Void]>([:])

    public var isOpen: Bool { connection.isOpen }

    public init(process: SandboxedProcess, provider: ModelCatalog.Provider, apiKey: String?, limits: ReplyLimits = .default) throws(SystemError) {
        self.provider = provider
        self.apiKey = apiKey
        self.limits = limits
        let box = WeakBox()
        // A fast local model streams thousands of tokens a second, each a notification.
        connection = try JSONRPCConnection(process: process, maxInFlight: max(provider.maxConcurrency, 1) + 4,
                                           maxUnsolicitedPerSecond: 50_000, onNotification: { method, params in
            guard method == "chat.delta", let params, let call = params["call"]?.stringValue, let chunk = params["chunk"] else { return }
            box.client?.delta(call: call, chunk: chunk)
        })
        box.client = self
    }

    private final class WeakBox: @unchecked Sendable { weak var client: ModelWorkerClient? }

    private func delta(call: String, chunk: JSON) {
        guard let handler = streams.withLock({ $0[call] }) else { return }
        handler(chunk)
    }

    // MARK: ServiceClient

    public func ready(deadline: Double) throws(ServicePool.ServiceError) -> JSON {
        let params = JSON.object([
            ("protocol", .int(1)),
            ("provider", .object([("name", .string(provider.name)), ("kind", .string(provider.kind.rawValue)),
                                  ("baseURL", .string(provider.baseURL.description)), ("timeout", .double(provider.timeoutSeconds)),
                                  ("idleTimeout", .double(provider.idleSeconds)), ("maxConcurrency", .int(Int64(provider.maxConcurrency)))]
                                 + (Self.throughEgressProxy(provider.baseURL) ? [("proxy", .string("http://127.0.0.1:3128"))] : []))),
            ("apiKey", apiKey.map(JSON.string) ?? .null),
        ])
        switch connection.call("initialize", params, deadline: deadline) {
        case .success(let answer):
            guard answer["protocol"]?.intValue == 1 else {
                throw ServicePool.ServiceError("the model worker speaks another protocol (\(String((answer["protocol"]?.text ?? "none").prefix(32))))")
            }
            return .object([("worker", .string(String((answer["worker"]?.stringValue ?? "").prefix(64)))),
                            ("curl", .string(String((answer["curl"]?.stringValue ?? "").prefix(64))))])
        case .failure(let e): throw ServicePool.ServiceError("the model worker did not start: \(Self.describe(e))")
        }
    }

    /// A provider on the host's loopback is reached through the sandbox's egress proxy (inside
    /// the sandbox 127.0.0.0/8 is its own loopback; the proxy dials the host's for an address
    /// rule that lists it). Everything else is dialled directly and routed through egress.
    static func throughEgressProxy(_ url: ModelCatalog.BaseURL) -> Bool {
        url.host.hasPrefix("127.") || url.host == "::1" || url.host == "localhost"
    }

    public func healthy(deadline: Double) -> Bool {
        if case .success = connection.call("health", .object([]), deadline: deadline) { return true }
        return false
    }

    // MARK: Calls

    /// What a finished call said besides the answer.
    public struct Finished: Sendable {
        public var status: Int?
        public var upstreamID: String?
        /// Seconds from the worker's request to the reply's first byte, and to its end.
        public var firstByte: Double?
        public var total: Double?
    }

    /// Sends one chat call: `body` is the upstream request (OpenAI's shape, model and cap set).
    /// With `onDelta` the call streams: each delta goes there (on the worker's reader thread;
    /// return false to stop the call), and the completion's result holds no content of its own.
    /// `completion` runs once.
    public func chat(call: String, body: JSON, stream: Bool, deadline: Double,
                     onDelta: (@Sendable (ChatDelta) -> Bool)?,
                     completion: @escaping @Sendable (Result<(ChatResult?, Finished), ProviderError>) -> Void) {
        let limits = self.limits
        let failed = Atomic<Bool>(false)
        let stopped = Mutex<ProviderError?>(nil)
        if let onDelta {
            streams.withLock { $0[call] = { [weak self] chunk in
                guard !failed.load(ordering: .relaxed) else { return }
                do throws(ProviderError) {
                    guard let delta = try OpenAIWire.parseChunk(Array(chunk.text.utf8), limits: limits) else { return }
                    if !onDelta(delta) {
                        failed.store(true, ordering: .relaxed)
                        stopped.withLock { $0 = $0 ?? ProviderError(.connection, "the client went away") }
                        self?.cancel(call)
                    }
                } catch {
                    failed.store(true, ordering: .relaxed)
                    stopped.withLock { $0 = $0 ?? error }
                    self?.cancel(call)
                }
            } }
        }
        let params = JSON.object([("call", .string(call)), ("body", body), ("stream", .bool(stream)),
                                  ("timeout", .double(max(0.001, deadline - MonotonicClock.now)))])
        // The worker keeps the deadline; this one is later, so a worker that never answers
        // still ends the call.
        connection.start("chat", params, deadline: deadline + 2) { [weak self] outcome in
            self?.streams.withLock { _ = $0.removeValue(forKey: call) }
            if let problem = stopped.withLock({ $0 }) { return completion(.failure(problem)) }
            switch outcome {
            case .success(let answer):
                var finished = Finished()
                finished.status = answer["status"]?.intValue.map { Int(clamping: $0) }
                finished.upstreamID = answer["upstreamID"]?.stringValue.map { ProviderError.clean(String($0.prefix(128)), maxBytes: 128) }
                finished.firstByte = answer["firstByte"]?.doubleValue.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
                finished.total = answer["total"]?.doubleValue.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
                if stream {
                    completion(.success((nil, finished)))
                    return
                }
                guard let body = answer["completion"] else {
                    return completion(.failure(ProviderError(.malformedReply, "the model worker's answer has no completion")))
                }
                do throws(ProviderError) {
                    var result = try OpenAIWire.parseResponse(Array(body.text.utf8), limits: limits)
                    result.upstreamID = finished.upstreamID
                    completion(.success((result, finished)))
                } catch {
                    completion(.failure(error))
                }
            case .failure(let e):
                completion(.failure(Self.providerError(e)))
            }
        }
    }

    /// `GET {baseURL}/models` by the worker: the HTTP status the provider's server answered
    /// with, or why there was none (a local model server's health check).
    public func probe(deadline: Double) -> (status: Int?, failure: String?) {
        switch connection.call("probe", .object([("timeout", .double(max(0.001, deadline - MonotonicClock.now)))]), deadline: deadline + 1) {
        case .success(let answer):
            guard let status = answer["status"]?.intValue, (100...599).contains(status) else { return (nil, "the worker's answer has no status") }
            return (Int(status), nil)
        case .failure(let e): return (nil, Self.describe(e))
        }
    }

    /// Asks the worker to abandon `call` (the client left, the deadline passed).
    public func cancel(_ call: String) {
        connection.notify("cancel", .object([("call", .string(call))]), deadline: MonotonicClock.now + 1)
    }

    static func providerError(_ e: JSONRPCConnection.CallError) -> ProviderError {
        switch e {
        case .error(_, let message, let data):
            if let data, let error = try? ProviderError(json: data) { return error }
            return ProviderError(.serverError, ProviderError.clean(message, maxBytes: 512))
        case .timeout: return .timeout("the model worker did not answer in time")
        case .closed: return .connection("the model worker's stream ended (it exited)")
        case .sendFailed: return .connection("the request could not be sent to the model worker")
        case .busy: return ProviderError(.overloaded, "the model worker has too many calls in flight")
        }
    }

    static func describe(_ e: JSONRPCConnection.CallError) -> String {
        switch e {
        case .error(let code, let message, _): return "error \(code): \(ProviderError.clean(message, maxBytes: 512))"
        case .timeout: return "no answer in time"
        case .closed: return "its stream ended"
        case .sendFailed: return "the request could not be sent"
        case .busy: return "busy"
        }
    }
}
