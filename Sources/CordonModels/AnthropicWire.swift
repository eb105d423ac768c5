import CordonJSON

/// Anthropic's Messages API, translated to and from Cordon's normalized chat (research memo §2;
/// anthropic-sdk-python 0.121 types, LiteLLM's translator for comparison): the request body, a
/// whole reply, and a stream translator from Anthropic's named events to `ChatDelta`s. Failures
/// (`{"type":"error","error":{type,message}}`, 429 with `retry-after`, 529 overloaded, an `error`
/// event after a 200) are classified by `ProviderError`.
///
/// What the Messages API cannot carry is refused with its path (`ChatRequestError`, code
/// `unsupported`), never dropped silently when it would change the answer: image, audio and file
/// parts; a `response_format` that asks for JSON. Sampling hints it lacks are dropped
/// (`frequency_penalty`, `presence_penalty`, `logit_bias`, `seed`, `min_p`, …); `temperature` is
/// clamped to its range, 0…1.
public enum AnthropicWire {
    /// The `anthropic-version` header both SDKs send.
    public static let version = "2023-06-01"

    // MARK: Request

    /// The body of `POST {base}/v1/messages` for `request` sent to `model` (Anthropic's id).
    ///
    /// System and developer messages become the top-level `system` (joined by a blank line);
    /// an assistant's tool calls become `tool_use` blocks (their arguments must be a JSON
    /// object); tool messages become `tool_result` blocks at the head of a user turn; messages of
    /// the same role in a row are merged into one turn. `max_tokens` is required: the client's cap
    /// within the model's.
    public static func requestBody(_ request: ChatRequest, model: String, maxOutputTokens: Int) throws(ChatRequestError) -> JSON {
        var system: [String] = []
        var turns: [Turn] = []
        for (i, message) in request.messages.enumerated() {
            let path = WirePath.index("messages", i)
            switch message.role {
            case .system, .developer:
                if let text = message.content?.text, !text.isEmpty { system.append(text) }
            case .user:
                append(&turns, .user, try blocks(message.content, path: path), from: i)
            case .assistant:
                var out = try blocks(message.content, path: path)
                for (j, call) in message.toolCalls.enumerated() {
                    let input = try toolInput(call.arguments, path: "\(path).tool_calls[\(j)].function.arguments")
                    out.append(.object([("type", .string("tool_use")), ("id", .string(call.id)), ("name", .string(call.name)), ("input", input)]))
                }
                append(&turns, .assistant, out, from: i)
            case .tool:
                var result: [(String, JSON)] = [("type", .string("tool_result")), ("tool_use_id", .string(message.toolCallID ?? ""))]
                if let text = message.content?.text, !text.isEmpty { result.append(("content", .string(text))) }
                append(&turns, .user, [.object(result)], from: i)
            }
        }
        guard !turns.isEmpty else {
            throw ChatRequestError(.invalidField, "no user or assistant message: an Anthropic model needs one", field: "messages")
        }
        for turn in turns where turn.blocks.isEmpty {
            throw ChatRequestError(.invalidField, "empty: Anthropic models take no empty message", field: "messages[\(turn.from)].content")
        }

        var body: [(String, JSON)] = [("model", .string(model)),
                                      ("max_tokens", .int(Int64(OpenAIWire.cappedMaxTokens(request, maxOutputTokens: maxOutputTokens))))]
        if !system.isEmpty { body.append(("system", .string(system.joined(separator: "\n\n")))) }
        body.append(("messages", .array(turns.map { turn in
            .object([("role", .string(turn.role.rawValue)), ("content", .array(turn.ordered))])
        })))
        if !request.tools.isEmpty {
            body.append(("tools", .array(request.tools.map(toolJSON))))
            if let choice = toolChoiceJSON(request.toolChoice, parallel: request.parallelToolCalls) { body.append(("tool_choice", choice)) }
        }
        if !request.stop.isEmpty { body.append(("stop_sequences", .array(request.stop.map(JSON.string)))) }
        if let t = request.temperature { body.append(("temperature", .double(min(t, 1)))) }
        if let p = request.topP { body.append(("top_p", .double(p))) }
        for field in request.passThrough {
            switch field.name {
            case "top_k": body.append(("top_k", field.value))
            case "response_format" where field.value["type"] != .string("text"):
                throw .unsupported("response_format", "an Anthropic model cannot be held to a JSON response format")
            default: break
            }
        }
        if request.stream { body.append(("stream", .bool(true))) }
        if let user = request.user { body.append(("metadata", .object([("user_id", .string(user))]))) }
        return .object(body)
    }

    enum Role: String { case user, assistant }

    struct Turn {
        var role: Role
        var blocks: [JSON]
        /// The first message merged into it (for a refusal's path).
        var from: Int

        /// `tool_result` blocks first: Anthropic wants a user turn's results before its text.
        var ordered: [JSON] {
            guard role == .user else { return blocks }
            let results = blocks.filter { $0["type"] == .string("tool_result") }
            return results.isEmpty ? blocks : results + blocks.filter { $0["type"] != .string("tool_result") }
        }
    }

    private static func append(_ turns: inout [Turn], _ role: Role, _ blocks: [JSON], from index: Int) {
        if let last = turns.indices.last, turns[last].role == role {
            turns[last].blocks.append(contentsOf: blocks)
        } else {
            turns.append(Turn(role: role, blocks: blocks, from: index))
        }
    }

    /// Text blocks of a message's content (an empty text is left out: Anthropic refuses empty
    /// text blocks); a media part is refused.
    private static func blocks(_ content: ChatContent?, path: String) throws(ChatRequestError) -> [JSON] {
        switch content {
        case nil: return []
        case .text(let s)?: return s.isEmpty ? [] : [textBlock(s)]
        case .parts(let parts)?:
            var out: [JSON] = []
            for (j, part) in parts.enumerated() {
                switch part {
                case .text(let s): if !s.isEmpty { out.append(textBlock(s)) }
                case .media(let kind, _):
                    throw .unsupported("\(path).content[\(j)]", "\(kind.rawValue) parts are not supported by Anthropic models")
                }
            }
            return out
        }
    }

    private static func textBlock(_ s: String) -> JSON { .object([("type", .string("text")), ("text", .string(s))]) }

    /// A tool call's arguments as the object Anthropic wants ("" is an empty object).
    private static func toolInput(_ arguments: String, path: String) throws(ChatRequestError) -> JSON {
        if arguments.allSatisfy({ $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }) { return .object([]) }
        guard let value = try? JSON.parse(arguments, options: JSON.ParseOptions(maxDepth: 64, maxBytes: arguments.utf8.count)), value.isObject else {
            throw ChatRequestError(.invalidField, "not a JSON object, which an Anthropic model needs", field: path)
        }
        return value.uniquingKeys()
    }

    static func toolJSON(_ tool: ChatTool) -> JSON {
        var schema = tool.parameters ?? .object([("type", .string("object")), ("properties", .object([]))])
        if case .object(let members) = schema, schema["type"] == nil { schema = .object([("type", .string("object"))] + members) }
        var out: [(String, JSON)] = [("name", .string(tool.name))]
        if let d = tool.description { out.append(("description", .string(d))) }
        out.append(("input_schema", schema))
        return .object(out)
    }

    /// OpenAI's `tool_choice` and `parallel_tool_calls` as one Anthropic `tool_choice`.
    static func toolChoiceJSON(_ choice: ChatToolChoice?, parallel: Bool?) -> JSON? {
        var out: [(String, JSON)]
        switch choice {
        case .none?: return .object([("type", .string("none"))])
        case .auto?: out = [("type", .string("auto"))]
        case .required?: out = [("type", .string("any"))]
        case .function(let name)?: out = [("type", .string("tool")), ("name", .string(name))]
        case nil:
            guard parallel == false else { return nil }
            out = [("type", .string("auto"))]
        }
        if parallel == false { out.append(("disable_parallel_tool_use", .bool(true))) }
        return .object(out)
    }

    // MARK: Reply

    /// `stop_reason` in OpenAI's words.
    public static func finishReason(stopReason: String) -> FinishReason {
        switch stopReason {
        case "end_turn", "stop_sequence", "pause_turn": return .stop
        case "max_tokens", "model_context_window_exceeded": return .length
        case "tool_use": return .toolCalls
        case "refusal": return .contentFilter
        default: return .other(ProviderError.clean(stopReason, maxBytes: 64))
        }
    }

    /// A whole Messages reply (status 2xx): text blocks joined into `content`, each `tool_use`
    /// a tool call with its input written as JSON text; thinking and other blocks left out.
    public static func parseResponse(_ body: some Collection<UInt8>, limits: ReplyLimits = .default) throws(ProviderError) -> ChatResult {
        let value = try OpenAIWire.parseJSON(body, options: limits.bodyOptions, what: "reply")
        do throws(WireFault) {
            let reply = try WireObject(value, path: "")
            if reply.raw("type") == .string("error") { throw WireFault.providerError(value) }
            guard let blocks = try reply.array("content", maxCount: 1 << 12) else { throw WireFault.invalid("content", "required") }
            var result = ChatResult()
            var text: String?
            for (i, item) in blocks.enumerated() {
                let block = try WireObject(item, path: WirePath.index("content", i))
                switch try block.requiredString("type", maxBytes: 64) {
                case "text":
                    let t = try block.requiredString("text", maxBytes: limits.maxContentBytes)
                    if text == nil { text = t } else { text! += t }
                    guard text!.utf8.count <= limits.maxContentBytes else { throw WireFault.limit("content", "longer than \(limits.maxContentBytes) bytes") }
                case "tool_use":
                    guard result.toolCalls.count < limits.maxToolCalls else { throw WireFault.limit("content", "more than \(limits.maxToolCalls) tool calls") }
                    let id = try block.requiredString("id", maxBytes: limits.maxNameBytes)
                    let name = try block.requiredString("name", maxBytes: limits.maxNameBytes)
                    guard let input = block.raw("input"), input.isObject else { throw WireFault.invalid(block.field("input"), "required, an object") }
                    let arguments = input.text
                    guard arguments.utf8.count <= limits.maxArgumentsBytes else {
                        throw WireFault.limit(block.field("input"), "longer than \(limits.maxArgumentsBytes) bytes")
                    }
                    result.toolCalls.append(ChatToolCall(id: id, name: name, arguments: arguments))
                default:
                    break
                }
            }
            result.content = text
            result.finishReason = try reply.string("stop_reason", maxBytes: limits.maxNameBytes).map(finishReason(stopReason:))
            result.usage = usage(reply.raw("usage"), inputTokens: nil)
            result.upstreamID = try? reply.string("id", maxBytes: limits.maxNameBytes)
            result.upstreamModel = try? reply.string("model", maxBytes: limits.maxNameBytes)
            return result
        } catch {
            throw .malformed(error)
        }
    }

    /// Anthropic's usage, leniently (one Cordon cannot read counts as none). Every input token
    /// counts toward `promptTokens`, cached ones included.
    static func usage(_ value: JSON?, inputTokens known: ChatUsage?) -> ChatUsage? {
        guard let value, let output = value["output_tokens"]?.tokenCount else { return nil }
        let input = value["input_tokens"]?.tokenCount
        let created = value["cache_creation_input_tokens"]?.tokenCount
        let read = value["cache_read_input_tokens"]?.tokenCount
        if input == nil && known == nil { return nil }
        // message_delta's counts are cumulative, and may be 0 where message_start gave them.
        let i = max(input ?? 0, known.map { $0.promptTokens - ($0.cacheCreationTokens ?? 0) - ($0.cachedPromptTokens ?? 0) } ?? 0)
        let c = max(created ?? 0, known?.cacheCreationTokens ?? 0)
        let r = max(read ?? 0, known?.cachedPromptTokens ?? 0)
        let cacheKnown = created != nil || read != nil || known?.cachedPromptTokens != nil
        return ChatUsage(promptTokens: i + c + r, completionTokens: output,
                         cachedPromptTokens: cacheKnown ? r : nil, cacheCreationTokens: cacheKnown ? c : nil)
    }

    /// `{"type":"error","error":{"type","message"}}`: how Anthropic writes a failure (for a
    /// stand-in server, and for tests).
    public static func errorBody(type: String, message: String) -> JSON {
        .object([("type", .string("error")), ("error", .object([("type", .string(type)), ("message", .string(message))]))])
    }

    // MARK: Stream

    /// Turns Anthropic's stream events into `ChatDelta`s as OpenAI's stream would carry them:
    /// `message_start` → the first delta (`role`, empty content); `text_delta` → content;
    /// a `tool_use` block's start → a tool call's first fragment (id, name, empty arguments) and
    /// each `input_json_delta` → an arguments fragment, indexed by Cordon's own counter of tool
    /// calls (Anthropic's block index counts text and thinking blocks too); `message_delta` → the
    /// finish reason with usage (input tokens from `message_start`); `message_stop` → the end
    /// (`isFinished`; the caller writes `[DONE]`); an `error` event → its `ProviderError`;
    /// `ping`, thinking, signature and citation deltas, unknown events → nothing.
    public struct StreamTranslator: Sendable {
        public let limits: ReplyLimits
        public private(set) var isFinished = false
        private var toolByBlock: [Int: Int] = [:]
        private var nextTool = 0
        private var started: ChatUsage?

        public init(limits: ReplyLimits = .default) { self.limits = limits }

        /// The delta an event makes, if any. Events after `message_stop` are ignored.
        public mutating func translate(_ event: SSEEvent) throws(ProviderError) -> ChatDelta? {
            guard !isFinished else { return nil }
            if event.event == "ping" { return nil }
            guard event.data.utf8.count <= limits.maxEventBytes else {
                throw .malformed(.limit(nil, "a stream event is longer than \(limits.maxEventBytes) bytes"))
            }
            let value = try OpenAIWire.parseJSON(Array(event.data.utf8), options: limits.eventOptions, what: "stream event")
            do { return try translate(type: event.event ?? value["type"]?.stringValue ?? "", value) } catch { throw .malformed(error) }
        }

        private mutating func translate(type: String, _ value: JSON) throws(WireFault) -> ChatDelta? {
            let body = try WireObject(value, path: "")
            switch type {
            case "message_start":
                guard let message = try body.object("message") else { throw .invalid("message", "required") }
                started = usage(message.raw("usage"), inputTokens: nil)
                return ChatDelta(role: .assistant, content: "")
            case "content_block_start":
                let index = try blockIndex(body)
                guard let block = try body.object("content_block") else { throw .invalid("content_block", "required") }
                switch try block.requiredString("type", maxBytes: 64) {
                case "text":
                    let text = try block.string("text", maxBytes: limits.maxContentBytes) ?? ""
                    return text.isEmpty ? nil : ChatDelta(content: text)
                case "tool_use":
                    guard nextTool < limits.maxToolCalls else { throw .limit("content_block", "more than \(limits.maxToolCalls) tool calls") }
                    guard toolByBlock[index] == nil else { throw .invalid("index", "a second block started at index \(index)") }
                    let id = try block.requiredString("id", maxBytes: limits.maxNameBytes)
                    let name = try block.requiredString("name", maxBytes: limits.maxNameBytes)
                    // The input comes in input_json_delta events; a start that already holds it
                    // (never seen, allowed by the types) gives it as the first fragment.
                    var arguments = ""
                    if let input = block.raw("input"), case .object(let members) = input, !members.isEmpty { arguments = input.text }
                    toolByBlock[index] = nextTool
                    nextTool += 1
                    return ChatDelta(toolCalls: [ToolCallFragment(index: nextTool - 1, id: id, name: name, arguments: arguments)])
                default:
                    return nil
                }
            case "content_block_delta":
                let index = try blockIndex(body)
                guard let delta = try body.object("delta") else { throw .invalid("delta", "required") }
                switch try delta.requiredString("type", maxBytes: 64) {
                case "text_delta":
                    let text = try delta.requiredString("text", maxBytes: limits.maxContentBytes)
                    return text.isEmpty ? nil : ChatDelta(content: text)
                case "input_json_delta":
                    guard let tool = toolByBlock[index] else { throw .invalid("index", "no tool_use block started at index \(index)") }
                    let fragment = try delta.string("partial_json", maxBytes: limits.maxArgumentsBytes) ?? ""
                    return fragment.isEmpty ? nil : ChatDelta(toolCalls: [ToolCallFragment(index: tool, arguments: fragment)])
                default:
                    return nil
                }
            case "message_delta":
                let delta = try body.object("delta")
                var out = ChatDelta()
                out.finishReason = try delta?.string("stop_reason", maxBytes: limits.maxNameBytes).map(AnthropicWire.finishReason(stopReason:))
                out.usage = usage(body.raw("usage"), inputTokens: started)
                return out.isEmpty ? nil : out
            case "message_stop":
                isFinished = true
                return nil
            case "error":
                throw WireFault.providerError(value)
            default:
                return nil
            }
        }

        private func blockIndex(_ body: WireObject) throws(WireFault) -> Int {
            guard let index = try body.int("index", min: 0, max: 1 << 16) else { throw .invalid("index", "required") }
            return Int(index)
        }
    }
}
