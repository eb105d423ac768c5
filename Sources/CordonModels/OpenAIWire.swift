import CordonJSON

/// OpenAI's chat completions wire, both ways (research memo §1; openai-python 2.x types):
/// - toward a provider of an OpenAI-compatible kind (openai, ollama's /v1, a local llama.cpp
///   server): the request body built from a `ChatRequest`, and its reply read under
///   `ReplyLimits` — whole, or chunk by chunk from a stream — into `ChatResult` / `ChatDelta`;
/// - toward Cordon's own clients: a `ChatResult` written as a `chat.completion` body under
///   Cordon's completion id, `ChatDelta`s as `chat.completion.chunk` bodies, error bodies, and
///   the `GET /v1/models` list.
///
/// Lenient where real servers differ, strict where a reply could not mean anything: a usage chunk
/// whose `choices` is null (vLLM) or missing usage is fine; a tool call without an id gets one
/// from its place; a body that is not JSON, has no `choices`, or has members of the wrong type is
/// a `ProviderError` of kind `malformedReply` naming the field.
public enum OpenAIWire {
    /// Which spelling carries the answer's cap upstream. `max_tokens` is the one every
    /// OpenAI-compatible server knows (llama-cpp-python silently ignores the other); OpenAI's
    /// reasoning models refuse it and want `max_completion_tokens`.
    public enum MaxTokensField: String, Sendable {
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
    }

    // MARK: Toward the provider

    /// The body of `POST {base}/chat/completions` for `request` sent to `model` (the provider's
    /// id). The cap is the client's, never above `maxOutputTokens` (the model's), and always sent:
    /// a local server without one may talk until its context is full. A stream always asks for
    /// usage, which Cordon records whether or not the client asked to see it. Developer messages
    /// go as system messages (OpenAI treats them alike for its newer models; llama.cpp's servers
    /// know no developer role). `n` is never sent (Cordon serves one choice).
    public static func requestBody(_ request: ChatRequest, model: String, maxOutputTokens: Int,
                                   maxTokensField: MaxTokensField = .maxTokens) -> JSON {
        var body: [(String, JSON)] = [("model", .string(model)), ("messages", .array(request.messages.map(messageJSON)))]
        if !request.tools.isEmpty { body.append(("tools", .array(request.tools.map(toolJSON)))) }
        if let choice = request.toolChoice { body.append(("tool_choice", toolChoiceJSON(choice))) }
        if let parallel = request.parallelToolCalls { body.append(("parallel_tool_calls", .bool(parallel))) }
        body.append((maxTokensField.rawValue, .int(Int64(cappedMaxTokens(request, maxOutputTokens: maxOutputTokens)))))
        if let t = request.temperature { body.append(("temperature", .double(t))) }
        if let p = request.topP { body.append(("top_p", .double(p))) }
        if !request.stop.isEmpty { body.append(("stop", .array(request.stop.map(JSON.string)))) }
        if let seed = request.seed { body.append(("seed", .int(seed))) }
        if let user = request.user { body.append(("user", .string(user))) }
        for field in request.passThrough { body.append((field.name, field.value)) }
        body.append(("stream", .bool(request.stream)))
        if request.stream { body.append(("stream_options", .object([("include_usage", .bool(true))]))) }
        return .object(body)
    }

    /// The client's cap, within the model's, and at least 1.
    public static func cappedMaxTokens(_ request: ChatRequest, maxOutputTokens: Int) -> Int {
        max(1, min(request.maxTokens ?? maxOutputTokens, maxOutputTokens))
    }

    static func messageJSON(_ m: ChatMessage) -> JSON {
        var out: [(String, JSON)] = [("role", .string(m.role == .developer ? "system" : m.role.rawValue))]
        switch (m.role, m.content) {
        case (_, nil): out.append(("content", .null))
        case (.user, .parts(let parts)?): out.append(("content", .array(parts.map(partJSON))))
        // Only user messages may hold media; text given in parts goes as one string, which every
        // server's chat template takes.
        case (_, let content?): out.append(("content", .string(content.text)))
        }
        if let name = m.name { out.append(("name", .string(name))) }
        if !m.toolCalls.isEmpty { out.append(("tool_calls", .array(m.toolCalls.map(toolCallJSON)))) }
        if let id = m.toolCallID { out.append(("tool_call_id", .string(id))) }
        return .object(out)
    }

    static func partJSON(_ part: ChatContentPart) -> JSON {
        switch part {
        case .text(let t): return .object([("type", .string("text")), ("text", .string(t))])
        case .media(_, let value): return value
        }
    }

    static func toolCallJSON(_ call: ChatToolCall) -> JSON {
        .object([("id", .string(call.id)), ("type", .string("function")),
                 ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))]))])
    }

    static func toolJSON(_ tool: ChatTool) -> JSON {
        var f: [(String, JSON)] = [("name", .string(tool.name))]
        if let d = tool.description { f.append(("description", .string(d))) }
        if let p = tool.parameters { f.append(("parameters", p)) }
        if let s = tool.strict { f.append(("strict", .bool(s))) }
        return .object([("type", .string("function")), ("function", .object(f))])
    }

    static func toolChoiceJSON(_ choice: ChatToolChoice) -> JSON {
        switch choice {
        case .none: return .string("none")
        case .auto: return .string("auto")
        case .required: return .string("required")
        case .function(let name): return .object([("type", .string("function")), ("function", .object([("name", .string(name))]))])
        }
    }

    // MARK: Reading the provider's reply

    /// A non-streaming reply (status 2xx). A body that is an error object (some servers answer
    /// errors with 200) is the error it describes.
    public static func parseResponse(_ body: some Collection<UInt8>, limits: ReplyLimits = .default) throws(ProviderError) -> ChatResult {
        let value = try parseJSON(body, options: limits.bodyOptions, what: "reply")
        do { return try ReplyReader(limits: limits).response(value) } catch { throw .malformed(error) }
    }

    /// One streamed event's `data` (not `[DONE]`, which ends the stream). nil when the chunk says
    /// nothing (a keep-alive `delta: {}`, an empty `choices`).
    public static func parseChunk(_ data: some Collection<UInt8>, limits: ReplyLimits = .default) throws(ProviderError) -> ChatDelta? {
        guard data.count <= limits.maxEventBytes else {
            throw .malformed(.limit(nil, "a stream event is longer than \(limits.maxEventBytes) bytes"))
        }
        let value = try parseJSON(data, options: limits.eventOptions, what: "stream event")
        do {
            let delta = try ReplyReader(limits: limits).chunk(value)
            return delta.isEmpty ? nil : delta
        } catch { throw .malformed(error) }
    }

    public static func parseChunk(_ data: String, limits: ReplyLimits = .default) throws(ProviderError) -> ChatDelta? {
        try parseChunk(Array(data.utf8), limits: limits)
    }

    static func parseJSON(_ bytes: some Collection<UInt8>, options: JSON.ParseOptions, what: String) throws(ProviderError) -> JSON {
        guard bytes.count <= options.maxBytes else { throw .malformed(.limit(nil, "the \(what) is longer than \(options.maxBytes) bytes")) }
        do { return try JSON.parse(bytes, options: options) } catch {
            throw .malformed(WireFault(field: nil, message: "the \(what) is not JSON: \(error.description)", isLimit: error.exceedsLimit))
        }
    }

    // MARK: Toward Cordon's clients

    /// A `chat.completion` body: `id` is Cordon's completion id (the handle feedback names),
    /// `model` the name the client knows; the provider's id stays in the record. A missing
    /// finish reason reads as `tool_calls` when the model called tools, else `stop`.
    public static func completionBody(_ result: ChatResult, id: String, model: String, created: Int64) -> JSON {
        var message: [(String, JSON)] = [("role", .string("assistant")), ("content", result.content.map(JSON.string) ?? .null),
                                         ("refusal", result.refusal.map(JSON.string) ?? .null)]
        if !result.toolCalls.isEmpty { message.append(("tool_calls", .array(result.toolCalls.map(toolCallJSON)))) }
        let finish = result.finishReason ?? (result.toolCalls.isEmpty ? .stop : .toolCalls)
        var body: [(String, JSON)] = [
            ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(created)), ("model", .string(model)),
            ("choices", .array([.object([("index", .int(0)), ("message", .object(message)), ("logprobs", .null),
                                         ("finish_reason", .string(finish.wire))])])),
        ]
        if let usage = result.usage { body.append(("usage", usageJSON(usage))) }
        return .object(body)
    }

    /// The chunks one delta becomes: one for the choice (if the delta says anything of it), then
    /// the usage chunk (`choices: []`) if it carries usage and the client asked for it. With
    /// `includeUsage` every choice chunk carries `"usage": null`, as OpenAI's do.
    public static func chunkBodies(_ delta: ChatDelta, id: String, model: String, created: Int64, includeUsage: Bool) -> [JSON] {
        var out: [JSON] = []
        let head: [(String, JSON)] = [("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                                      ("model", .string(model))]
        if delta.hasChoice {
            var d: [(String, JSON)] = []
            if let role = delta.role { d.append(("role", .string(role.rawValue))) }
            if let content = delta.content { d.append(("content", .string(content))) }
            if let refusal = delta.refusal { d.append(("refusal", .string(refusal))) }
            if !delta.toolCalls.isEmpty { d.append(("tool_calls", .array(delta.toolCalls.map(fragmentJSON)))) }
            var chunk = head
            chunk.append(("choices", .array([.object([("index", .int(0)), ("delta", .object(d)), ("logprobs", .null),
                                                       ("finish_reason", delta.finishReason.map { .string($0.wire) } ?? .null)])])))
            if includeUsage { chunk.append(("usage", .null)) }
            out.append(.object(chunk))
        }
        if includeUsage, let usage = delta.usage {
            var chunk = head
            chunk.append(("choices", .array([])))
            chunk.append(("usage", usageJSON(usage)))
            out.append(.object(chunk))
        }
        return out
    }

    static func fragmentJSON(_ f: ToolCallFragment) -> JSON {
        var out: [(String, JSON)] = [("index", .int(Int64(f.index)))]
        if let id = f.id { out.append(("id", .string(id))); out.append(("type", .string("function"))) }
        var function: [(String, JSON)] = []
        if let name = f.name { function.append(("name", .string(name))) }
        function.append(("arguments", .string(f.arguments)))
        out.append(("function", .object(function)))
        return .object(out)
    }

    static func usageJSON(_ u: ChatUsage) -> JSON {
        var out: [(String, JSON)] = [("prompt_tokens", .int(Int64(u.promptTokens))), ("completion_tokens", .int(Int64(u.completionTokens))),
                                     ("total_tokens", .int(Int64(u.totalTokens)))]
        if let cached = u.cachedPromptTokens { out.append(("prompt_tokens_details", .object([("cached_tokens", .int(Int64(cached)))]))) }
        return .object(out)
    }

    /// `{"error":{"message","type","param","code"}}`: the body of every error response, and
    /// (as an SSE data event) of a failure in the middle of a stream, which the openai client
    /// raises as `APIError`.
    public static func errorBody(message: String, type: String, param: String? = nil, code: String? = nil) -> JSON {
        .object([("error", .object([("message", .string(message)), ("type", .string(type)), ("param", param.map(JSON.string) ?? .null),
                                    ("code", code.map(JSON.string) ?? .null)]))])
    }

    /// What Cordon's client is told when a provider's failure ends the call (no fallback left):
    /// the provider's refusal of the request as a 400; a rate limit as 429; overload as 503; a
    /// timeout as 504; anything else as 502, the gateway's upstream having failed.
    public static func errorResponse(for error: ProviderError) -> (status: Int, body: JSON) {
        switch error.kind {
        case .badRequest:
            return (400, errorBody(message: "the model provider refused the request: \(error.message)", type: "invalid_request_error"))
        case .rateLimited:
            return (429, errorBody(message: "the model provider's rate limit was reached", type: "rate_limit_exceeded", code: "rate_limit_exceeded"))
        case .overloaded:
            return (503, errorBody(message: "the model provider is overloaded", type: "server_error", code: "overloaded"))
        case .timeout:
            return (504, errorBody(message: "the model provider did not answer in time", type: "server_error", code: "timeout"))
        default:
            return (502, errorBody(message: "the model provider failed: \(error.kind.rawValue)", type: "server_error", code: "upstream_error"))
        }
    }

    /// An entry of `GET /v1/models`.
    public struct ListedModel: Sendable, Equatable {
        public var id: String
        /// Unix seconds.
        public var created: Int64
        public var ownedBy: String

        public init(id: String, created: Int64, ownedBy: String = "cordon") {
            self.id = id
            self.created = created
            self.ownedBy = ownedBy
        }
    }

    /// `{"object":"list","data":[{"id","object":"model","created","owned_by"}, …]}`.
    public static func modelsBody(_ models: [ListedModel]) -> JSON {
        .object([("object", .string("list")), ("data", .array(models.map {
            .object([("id", .string($0.id)), ("object", .string("model")), ("created", .int($0.created)), ("owned_by", .string($0.ownedBy))])
        }))])
    }
}

/// Reads what an OpenAI-compatible server sent; every refusal is a `WireFault` with its path.
/// Members nobody asks for are let by: servers add fields freely.
struct ReplyReader {
    let limits: ReplyLimits

    func response(_ value: JSON) throws(WireFault) -> ChatResult {
        let body = try WireObject(value, path: "")
        if body.has("error") && !body.has("choices") { throw WireFault.providerError(value) }
        guard let choices = try body.array("choices", maxCount: 1 << 10) else { throw .invalid("choices", "required") }
        guard let first = choices.first else { throw .invalid("choices", "empty") }
        let choice = try WireObject(first, path: "choices[0]")
        guard let message = try choice.object("message") else { throw .invalid(choice.field("message"), "required") }
        var result = ChatResult()
        result.content = try text(message, "content")
        result.refusal = try text(message, "refusal")
        if let calls = try message.array("tool_calls", maxCount: limits.maxToolCalls) {
            for (i, item) in calls.enumerated() {
                result.toolCalls.append(try toolCall(item, index: i, path: WirePath.index(message.field("tool_calls"), i)))
            }
        }
        result.finishReason = try choice.string("finish_reason", maxBytes: limits.maxNameBytes).map(FinishReason.init(wire:))
        result.usage = usage(body.raw("usage"))
        result.upstreamID = try? body.string("id", maxBytes: limits.maxNameBytes)
        result.upstreamModel = try? body.string("model", maxBytes: limits.maxNameBytes)
        return result
    }

    /// A message's text: a string, or (as a few servers write it) an array of text parts.
    private func text(_ message: WireObject, _ key: String) throws(WireFault) -> String? {
        guard let value = message.raw(key) else { return nil }
        let path = message.field(key)
        switch value {
        case .string(let s):
            guard s.utf8.count <= limits.maxContentBytes else { throw .limit(path, "longer than \(limits.maxContentBytes) bytes") }
            return s
        case .array(let parts):
            var out = ""
            for (i, part) in parts.enumerated() {
                guard let t = part["text"]?.stringValue else { throw .invalid(WirePath.index(path, i), "expected a text part") }
                out += t
                guard out.utf8.count <= limits.maxContentBytes else { throw .limit(path, "longer than \(limits.maxContentBytes) bytes") }
            }
            return out
        default:
            throw .invalid(path, "expected a string, got \(value.typeName)")
        }
    }

    private func toolCall(_ value: JSON, index: Int, path: String) throws(WireFault) -> ChatToolCall {
        let c = try WireObject(value, path: path)
        guard let f = try c.object("function") else { throw .invalid(c.field("function"), "required") }
        let name = try f.requiredString("name", maxBytes: limits.maxNameBytes)
        let id = try c.string("id", maxBytes: limits.maxNameBytes)
        return ChatToolCall(id: id.flatMap { $0.isEmpty ? nil : $0 } ?? "call_\(index)", name: name, arguments: try arguments(f) ?? "")
    }

    /// `function.arguments`: JSON text, or (Ollama's native habit, copied by some servers) the
    /// object itself, written out.
    private func arguments(_ f: WireObject) throws(WireFault) -> String? {
        guard let value = f.raw("arguments") else { return nil }
        let text: String
        switch value {
        case .string(let s): text = s
        case .object: text = value.text
        default: throw .invalid(f.field("arguments"), "expected a string, got \(value.typeName)")
        }
        guard text.utf8.count <= limits.maxArgumentsBytes else { throw .limit(f.field("arguments"), "longer than \(limits.maxArgumentsBytes) bytes") }
        return text
    }

    /// A usage object Cordon cannot read counts as none: the answer is worth more than its count.
    func usage(_ value: JSON?) -> ChatUsage? {
        guard let value, let prompt = value["prompt_tokens"]?.tokenCount, let completion = value["completion_tokens"]?.tokenCount else { return nil }
        return ChatUsage(promptTokens: prompt, completionTokens: completion,
                         cachedPromptTokens: value["prompt_tokens_details"]?["cached_tokens"]?.tokenCount)
    }

    func chunk(_ value: JSON) throws(WireFault) -> ChatDelta {
        let body = try WireObject(value, path: "")
        if body.has("error") { throw WireFault.providerError(value) }
        var delta = ChatDelta()
        delta.usage = usage(body.raw("usage"))
        // `choices` may be absent, null (vLLM's usage chunk) or empty (OpenAI's).
        guard let choices = try body.array("choices", maxCount: 1 << 10), let first = choices.first else { return delta }
        let choice = try WireObject(first, path: "choices[0]")
        delta.finishReason = try choice.string("finish_reason", maxBytes: limits.maxNameBytes).map(FinishReason.init(wire:))
        guard let d = try choice.object("delta") else { return delta }
        if d.raw("role") == .string("assistant") { delta.role = .assistant }
        delta.content = try d.string("content", maxBytes: limits.maxContentBytes)
        delta.refusal = try d.string("refusal", maxBytes: limits.maxContentBytes)
        if let calls = try d.array("tool_calls", maxCount: limits.maxToolCalls) {
            for (i, item) in calls.enumerated() {
                let c = try WireObject(item, path: WirePath.index(d.field("tool_calls"), i))
                // Some servers leave `index` out when each chunk holds whole calls: their place.
                let index = try c.int("index", min: 0, max: Int64(limits.maxToolCalls - 1)).map { Int($0) } ?? i
                let f = try c.object("function")
                delta.toolCalls.append(ToolCallFragment(index: index, id: try c.string("id", maxBytes: limits.maxNameBytes),
                                                        name: try f?.string("name", maxBytes: limits.maxNameBytes),
                                                        arguments: try f.flatMap { obj throws(WireFault) in try arguments(obj) } ?? ""))
            }
        }
        return delta
    }
}

extension WireFault {
    /// Marks an error object the provider sent in place of an answer; the caller turns it into
    /// the `ProviderError` it describes.
    static func providerError(_ body: JSON) -> WireFault {
        WireFault(field: nil, message: "the provider sent an error", providerBody: body)
    }
}
