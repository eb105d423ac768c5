import CordonHTTPClient
import CordonJSON
import CordonModels
import CordonRPC
import CordonSystem

/// The provider this worker serves, as `initialize` gave it.
struct ProviderConfig: Sendable {
    enum Kind: String, Sendable, CaseIterable { case openai, anthropic, ollama, local }

    var name: String
    var kind: Kind
    /// Without a trailing `/`: paths are appended to it.
    var baseURL: String
    /// Seconds: a call's deadline when `chat` names none.
    var timeout: Double
    /// Seconds a stream may send nothing.
    var idleTimeout: Double
    var maxConcurrency: Int
    /// The sandbox's egress proxy, for a provider on the host's loopback.
    var proxy: String?

    /// The path a chat call is POSTed to: OpenAI's chat completions for every OpenAI-wire kind
    /// (Ollama's base URL includes its `/v1`), Anthropic's messages.
    var chatURL: String { baseURL + (kind == .anthropic ? "/messages" : "/chat/completions") }
}

/// One `chat` call's parameters.
struct ChatCall: Sendable {
    /// Cordon's completion id: the id of the completion and of every chunk.
    var id: String
    var body: JSON
    var stream: Bool
    var timeout: Double
}

/// Seconds to make a connection; a call's own deadline, if shorter, wins.
let connectSeconds = 10.0

/// Builds a call's upstream request. Refusals are the daemon's fault (it sent a body the
/// provider's wire cannot carry): invalid params, naming the field.
func upstreamRequest(_ call: ChatCall, provider: ProviderConfig, key: String?) throws(RPCError) -> (HTTPRequest, model: String) {
    guard case .object(let members) = call.body else { throw RPCError.invalid("params.body", "expected an object") }
    guard let model = call.body["model"]?.stringValue, !model.isEmpty else { throw RPCError.invalid("params.body.model", "required, a string") }
    var headers: [(name: String, value: String)] = [
        ("Content-Type", "application/json"), ("Accept", call.stream ? "text/event-stream" : "application/json"),
        ("User-Agent", "cordon-model-worker"),
    ]
    let body: JSON
    switch provider.kind {
    case .openai, .ollama, .local:
        // The stream flag is the call's, whatever the body said; a stream always asks for usage.
        var out = members.filter { $0.0 != "stream" && $0.0 != "stream_options" }
        out.append(("stream", .bool(call.stream)))
        if call.stream { out.append(("stream_options", .object([("include_usage", .bool(true))]))) }
        body = .object(out)
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
    case .anthropic:
        var request: ChatRequest
        do { request = try ChatRequest.parse(call.body) } catch {
            throw RPCError.invalid(error.field.map { "params.body.\($0)" } ?? "params.body", error.message)
        }
        guard let maxTokens = request.maxTokens else {
            throw RPCError.invalid("params.body.max_tokens", "required for an Anthropic model")
        }
        request.stream = call.stream
        do { body = try AnthropicWire.requestBody(request, model: model, maxOutputTokens: maxTokens) } catch {
            throw RPCError.invalid(error.field.map { "params.body.\($0)" } ?? "params.body", error.message)
        }
        if let key { headers.append(("x-api-key", key)) }
        headers.append(("anthropic-version", AnthropicWire.version))
    }
    var request = HTTPRequest(url: provider.chatURL, headers: headers, body: Array(body.text.utf8))
    request.timeout = call.timeout
    request.connectTimeout = min(connectSeconds, call.timeout)
    // Only a stream has an idle limit: a whole reply comes after the whole generation.
    request.idleTimeout = call.stream ? provider.idleTimeout : nil
    request.maxBodyBytes = ReplyLimits.default.maxBodyBytes
    request.proxy = provider.proxy
    return (request, model)
}

/// Reads one call's reply as it arrives and makes the worker's answer: the chunks of a stream
/// go out as `chat.delta` notifications while it runs (through `emit`); the result or the
/// `ProviderError` when it ends. Used by one thread at a time (hence unchecked): its head and
/// body callbacks run on the HTTP client's thread while the call runs, and `finish` after the
/// call has ended, on that thread or on the one the ended call was handed to.
final class ReplyReader: @unchecked Sendable {
    let call: ChatCall
    let kind: ProviderConfig.Kind
    let model: String
    let limits = ReplyLimits.default
    let created = Int64(UTCTime.epochSeconds())
    private let emit: (JSON) -> Void

    /// Longest error body read: a longer one is classified by its status (ProviderError reads
    /// no more either).
    static let maxErrorBodyBytes = 64 << 10

    private enum Mode { case waiting, error, whole, stream }
    private var mode = Mode.waiting
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    /// The bytes of a whole or error reply read so far (what `finish` will parse).
    var bufferedBytes: Int { body.count }
    private var decoder: SSEDecoder
    private var translator: AnthropicWire.StreamTranslator
    private var indexer = ToolCallIndexer()
    private var accumulatedBytes = 0
    private var sawEvent = false
    private var finished = false
    private(set) var finishReason: FinishReason?
    private(set) var usage: ChatUsage?
    private(set) var upstreamID: String?
    /// Why the reader stopped the transfer.
    private var failure: ProviderError?

    init(call: ChatCall, kind: ProviderConfig.Kind, model: String, emit: @escaping (JSON) -> Void) {
        self.call = call
        self.kind = kind
        self.model = model
        self.emit = emit
        decoder = SSEDecoder(maxLineBytes: limits.maxEventBytes, maxEventBytes: limits.maxEventBytes)
        translator = AnthropicWire.StreamTranslator(limits: limits)
    }

    func onHead(_ head: HTTPResponseHead) -> Bool {
        self.head = head
        if !(200...299).contains(head.status) {
            mode = .error
        } else if call.stream, head.header("content-type")?.lowercased().contains("text/event-stream") ?? false {
            mode = .stream
        } else {
            // A stream asked for and a whole reply given (a server that ignores `stream`, or
            // answers an error with 200): read it whole, and stream it as one step.
            mode = .whole
        }
        return true
    }

    func onBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        switch mode {
        case .waiting:
            return false
        case .error:
            body.append(contentsOf: bytes.prefix(Self.maxErrorBodyBytes - body.count))
            // Enough to classify it: the rest is not read.
            return body.count < Self.maxErrorBodyBytes
        case .whole:
            body.append(contentsOf: bytes)
            return true
        case .stream:
            do throws(ProviderError) {
                for event in try decoder.feed(bytes) { try handle(event) }
                return true
            } catch {
                failure = error
                return false
            }
        }
    }

    private func handle(_ event: SSEEvent) throws(ProviderError) {
        if finished { return }
        if !sawEvent {
            sawEvent = true
            upstreamID = Self.upstreamID(event.data)
        }
        var delta: ChatDelta?
        switch kind {
        case .anthropic:
            delta = try translator.translate(event)
            finished = translator.isFinished
        case .openai, .ollama, .local:
            if event.isDone {
                finished = true
                return
            }
            delta = try OpenAIWire.parseChunk(Array(event.data.utf8), limits: limits)
        }
        if let delta { try forward(delta) }
    }

    /// The provider's id of the answer, from the first event (`id`, or Anthropic's
    /// `message.id`); nil when it has none Cordon can read.
    static func upstreamID(_ data: String) -> String? {
        guard data.utf8.count <= 1 << 20, let value = try? JSON.parse(data, options: JSON.ParseOptions(maxDepth: 64, maxBytes: 1 << 20)) else {
            return nil
        }
        guard let id = value["id"]?.stringValue ?? value["message"]?["id"]?.stringValue, id.utf8.count <= 256 else { return nil }
        return PrintableText.of(id)
    }

    private func forward(_ delta: ChatDelta) throws(ProviderError) {
        var delta = delta
        indexer.normalize(&delta)
        accumulatedBytes += (delta.content?.utf8.count ?? 0) + (delta.refusal?.utf8.count ?? 0)
            + delta.toolCalls.reduce(0) { $0 + $1.arguments.utf8.count }
        guard accumulatedBytes <= limits.maxBodyBytes else {
            throw ProviderError(.malformedReply, "the streamed answer is longer than \(limits.maxBodyBytes) bytes")
        }
        if let reason = delta.finishReason { finishReason = reason }
        if let u = delta.usage { usage = u }
        for chunk in OpenAIWire.chunkBodies(delta, id: call.id, model: model, created: created, includeUsage: true) {
            emit(.object([("call", .string(call.id)), ("chunk", chunk)]))
        }
    }

    /// The answer once the call has ended, as `outcome` says.
    func finish(_ outcome: Result<HTTPOutcome, HTTPError>) -> Result<JSON, ProviderError> {
        let firstByte: Double, total: Double
        switch outcome {
        case .success(let o):
            (firstByte, total) = (o.firstByte, o.total)
        case .failure(let error):
            if let failure { return .failure(failure) }
            // A failure status is read from what arrived, whatever cut the rest short.
            if let head, mode == .error, error.reason == .stopped || error.reason == .transfer || error.reason == .bodyTooLarge {
                return .failure(providerFailure(head))
            }
            return .failure(Self.providerError(error, call: call, streaming: mode == .stream))
        }
        guard let head else { return .failure(ProviderError(.connection, "no response")) }
        switch mode {
        case .waiting:
            return .failure(ProviderError(.connection, "no response"))
        case .error:
            return .failure(providerFailure(head))
        case .whole:
            let result: ChatResult
            do throws(ProviderError) {
                result = kind == .anthropic ? try AnthropicWire.parseResponse(body, limits: limits) : try OpenAIWire.parseResponse(body, limits: limits)
            } catch {
                return .failure(error)
            }
            if call.stream {
                do throws(ProviderError) { try streamWhole(result) } catch { return .failure(error) }
                return .success(streamAnswer(status: head.status, upstreamID: result.upstreamID, firstByte: firstByte, total: total))
            }
            return .success(.object([
                ("completion", OpenAIWire.completionBody(result, id: call.id, model: result.upstreamModel ?? model, created: created)),
                ("status", .int(Int64(head.status))), ("upstreamID", result.upstreamID.map { .string(PrintableText.of($0)) } ?? .null),
                ("firstByte", .double(firstByte)), ("total", .double(total)),
            ]))
        case .stream:
            do throws(ProviderError) {
                if let last = try decoder.finish() { try handle(last) }
            } catch {
                return .failure(error)
            }
            // OpenAI's stream ends with [DONE], Anthropic's with message_stop. A lax
            // OpenAI-compatible server may close after its finish reason without [DONE]: the
            // answer is whole. Anything else was cut short.
            let whole = finished || (kind != .anthropic && finishReason != nil)
            guard whole else { return .failure(ProviderError(.connection, "the stream ended before the answer did")) }
            return .success(streamAnswer(status: head.status, upstreamID: upstreamID, firstByte: firstByte, total: total))
        }
    }

    private func streamAnswer(status: Int, upstreamID: String?, firstByte: Double, total: Double) -> JSON {
        .object([
            ("status", .int(Int64(status))), ("upstreamID", upstreamID.map { .string(PrintableText.of($0)) } ?? .null),
            ("firstByte", .double(firstByte)), ("total", .double(total)),
            ("finishReason", finishReason.map { .string($0.wire) } ?? .null),
            ("usage", usage.map { .object([("prompt_tokens", .int(Int64($0.promptTokens))), ("completion_tokens", .int(Int64($0.completionTokens)))]) } ?? .null),
        ])
    }

    /// A whole reply given to a stream: its steps as a stream would have carried them.
    private func streamWhole(_ result: ChatResult) throws(ProviderError) {
        try forward(ChatDelta(role: .assistant, content: result.content ?? "", refusal: result.refusal))
        if !result.toolCalls.isEmpty {
            try forward(ChatDelta(toolCalls: result.toolCalls.enumerated().map {
                ToolCallFragment(index: $0.offset, id: $0.element.id, name: $0.element.name, arguments: $0.element.arguments)
            }))
        }
        try forward(ChatDelta(finishReason: result.finishReason ?? (result.toolCalls.isEmpty ? .stop : .toolCalls)))
        if let u = result.usage { try forward(ChatDelta(usage: u)) }
    }

    private func providerFailure(_ head: HTTPResponseHead) -> ProviderError {
        ProviderError.fromHTTP(status: head.status, headers: head.headers, body: body, now: Int64(UTCTime.epochSeconds()))
    }

    /// A transfer that failed before a reply could be read.
    static func providerError(_ error: HTTPError, call: ChatCall, streaming: Bool) -> ProviderError {
        switch error.reason {
        case .cancelled:
            return .timeout("cancelled")
        case .idle:
            return .timeout("the stream sent nothing for too long (\(error.message))")
        case .bodyTooLarge:
            return ProviderError(.malformedReply, "the reply is longer than \(ReplyLimits.default.maxBodyBytes) bytes")
        case .stopped, .setup:
            return .connection(error.description)
        case .transfer:
            if error.code == HTTPError.operationTimedOut {
                // curl says which: "Connection timed out after …" or "Operation timed out after …".
                if error.message.hasPrefix("Connection") || error.message.hasPrefix("Failed to connect") {
                    return .connection(error.description)
                }
                return .timeout("the call's deadline of \(call.timeout) s passed (\(error.description))")
            }
            return .connection(error.description)
        }
    }
}
