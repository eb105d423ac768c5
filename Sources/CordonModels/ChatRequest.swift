import CordonJSON

/// Cordon's normalized chat request: what a client sent to `POST /v1/chat/completions` (or to
/// `model.chat` on the socket), read under `ChatLimits` into the shape every provider's wire is
/// built from. Pure: no I/O.
///
/// What is read, and what happens to the rest:
/// - Modelled: `model`, `messages`, `tools` (function tools), `tool_choice`,
///   `parallel_tool_calls`, `max_completion_tokens` / `max_tokens`, `temperature`, `top_p`,
///   `stop`, `stream`, `stream_options.include_usage`, `n` (1 only), `seed`, `user`.
/// - Passed through to OpenAI-wire providers (openai, ollama, local), type-checked, dropped for
///   Anthropic (except `top_k`, which it takes, and a `response_format` that asks for JSON, which
///   it cannot honour and so refuses): the sampling and format fields of `passThroughFields`.
/// - Accepted and never forwarded: `store`, `metadata`, `service_tier`, `safety_identifier`,
///   `prompt_cache_key`, `stream_options.include_obfuscation`. Cordon holds the provider account:
///   retention and price tier are the admin's choice, not a client's.
/// - Refused, naming the field: everything else (`functions`, `function_call`, `audio`,
///   `logprobs: true`, `n: 2`, `prediction`, …). A gateway that forwarded what it does not
///   understand could not price, audit or translate it; one that dropped it silently would
///   answer a different question than the one asked (llama-cpp-python's silent drop of
///   `max_completion_tokens` is the cautionary tale). A field set to null, or to the value that
///   asks for nothing (`logprobs: false`, `modalities: ["text"]`), is accepted.
///
/// Content parts: text parts are read; `image_url`, `input_audio` and `file` parts are kept whole
/// (`ChatContentPart.media`) and go only to OpenAI-wire providers — the Anthropic translation
/// refuses them with their path, so a router can try an OpenAI-wire model instead. Any other part
/// type is refused here.
public struct ChatRequest: Sendable, Equatable {
    /// What the client asked for by `model`.
    public enum ModelChoice: Sendable, Equatable {
        /// A configured model's name (whether it exists is the router's question).
        case named(String)
        /// `auto` (task type `chat`, as `ModelCatalog.Model.taskTypes` says) or `auto:TASK`.
        case auto(taskType: String)
    }

    /// A field Cordon forwards as given to OpenAI-wire providers.
    public struct PassThrough: Sendable, Equatable {
        public var name: String
        public var value: JSON
        public init(name: String, value: JSON) {
            self.name = name
            self.value = value
        }
    }

    public var model: ModelChoice
    public var messages: [ChatMessage]
    public var tools: [ChatTool] = []
    public var toolChoice: ChatToolChoice?
    public var parallelToolCalls: Bool?
    /// `max_completion_tokens ?? max_tokens`: the client's cap on the answer.
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    /// Stop sequences (`stop` as a string is one of them).
    public var stop: [String] = []
    public var stream = false
    /// `stream_options.include_usage`: the client wants the usage chunk before `[DONE]`.
    public var includeUsage = false
    public var seed: Int64?
    /// The client's end-user id (`user`).
    public var user: String?
    /// In the order given.
    public var passThrough: [PassThrough] = []

    public init(model: ModelChoice, messages: [ChatMessage]) {
        self.model = model
        self.messages = messages
    }

    /// Whether some message holds an image, audio or file part (only OpenAI-wire providers take
    /// them).
    public var hasMedia: Bool {
        messages.contains { m in
            if case .parts(let parts)? = m.content { return parts.contains { if case .media = $0 { true } else { false } } }
            return false
        }
    }

    /// Sampling and format fields forwarded to OpenAI-wire providers, with the JSON type each
    /// must have.
    public static let passThroughFields: [(name: String, type: String)] = [
        ("frequency_penalty", "number"), ("presence_penalty", "number"), ("logit_bias", "object"),
        ("response_format", "object"), ("reasoning_effort", "string"), ("verbosity", "string"),
        // The usual extras of vLLM, llama.cpp and Ollama's /v1.
        ("top_k", "integer"), ("min_p", "number"), ("repetition_penalty", "number"),
    ]
    /// Accepted and never forwarded (see the type's comment).
    public static let ignoredFields: Set<String> = ["store", "metadata", "service_tier", "safety_identifier", "prompt_cache_key"]

    // MARK: Parsing

    /// Reads a request body. Refusals name the JSON path (`messages[2].content[0].type`) and
    /// become OpenAI-style 400 bodies (`ChatRequestError.openAIBody`); a body over
    /// `limits.maxBodyBytes` is refused before it is parsed (413).
    public static func parse(_ body: some Collection<UInt8>, limits: ChatLimits = .default) throws(ChatRequestError) -> ChatRequest {
        guard body.count <= limits.maxBodyBytes else {
            throw ChatRequestError(.tooLarge, "the request body is longer than \(limits.maxBodyBytes) bytes")
        }
        let value: JSON
        do {
            value = try JSON.parse(body, options: JSON.ParseOptions(maxDepth: limits.maxDepth, maxValues: limits.maxValues,
                                                                      maxBytes: limits.maxBodyBytes))
        } catch {
            if error.exceedsLimit { throw ChatRequestError(.limitExceeded, "the request body is \(error.message)") }
            throw ChatRequestError(.notJSON, "the request body is not JSON: \(error.description)")
        }
        return try parse(value, limits: limits)
    }

    /// Reads a request already parsed (the socket's `model.chat` params). The caps on size,
    /// depth and values are the caller's parser's.
    public static func parse(_ value: JSON, limits: ChatLimits = .default) throws(ChatRequestError) -> ChatRequest {
        do { return try RequestReader(limits: limits).request(value) } catch { throw ChatRequestError(error) }
    }
}

/// One message of the conversation.
public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable, CaseIterable {
        case system, developer, user, assistant, tool
    }

    public var role: Role
    /// nil only for an assistant message that carries tool calls.
    public var content: ChatContent?
    /// A participant's name (system, developer, user, assistant).
    public var name: String?
    /// An assistant's calls.
    public var toolCalls: [ChatToolCall] = []
    /// A tool message's answer to this call.
    public var toolCallID: String?

    public init(role: Role, content: ChatContent?, name: String? = nil, toolCalls: [ChatToolCall] = [], toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }

    public static func text(_ role: Role, _ text: String) -> ChatMessage { ChatMessage(role: role, content: .text(text)) }
}

/// A message's `content`: a string, or an array of parts.
public enum ChatContent: Sendable, Equatable {
    case text(String)
    case parts([ChatContentPart])

    /// The text of it: the string, or the text parts joined without separator (as OpenAI reads
    /// a system message given in parts).
    public var text: String {
        switch self {
        case .text(let s): return s
        case .parts(let parts):
            return parts.reduce(into: "") { out, part in if case .text(let t) = part { out += t } }
        }
    }
}

public enum ChatContentPart: Sendable, Equatable {
    public enum MediaKind: String, Sendable, CaseIterable {
        case imageURL = "image_url", inputAudio = "input_audio", file
    }

    case text(String)
    /// An image, audio or file part, kept whole (its `type` member included).
    case media(MediaKind, JSON)
}

/// A call an assistant made: what OpenAI's `tool_calls[i]` holds.
public struct ChatToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    /// JSON text, as OpenAI writes it (not checked to be JSON: it is the model's).
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A function the model may call.
public struct ChatTool: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// A JSON Schema whose `type`, when given, is `object`; nil: no parameters.
    public var parameters: JSON?
    public var strict: Bool?

    public init(name: String, description: String? = nil, parameters: JSON? = nil, strict: Bool? = nil) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.strict = strict
    }

    /// OpenAI's rule for function names, applied for every provider so one request means the
    /// same everywhere: 1 to 64 of A-Z a-z 0-9 _ -.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "empty" }
        if name.utf8.count > 64 { return "longer than 64 characters" }
        for b in name.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default: return "only A-Z a-z 0-9 _ - are allowed"
            }
        }
        return nil
    }
}

public enum ChatToolChoice: Sendable, Equatable {
    case none, auto, required
    case function(String)
}

/// Every size and count a client's request may reach; each refusal names its limit and field.
/// The defaults take a long context (a 2 MiB message is ~500k tokens) and a few images, and keep
/// one request's parsed form to a few tens of MiB.
public struct ChatLimits: Sendable, Equatable {
    /// The body, before it is parsed (413 past it).
    public var maxBodyBytes = 8 << 20
    /// Nesting of the body (CordonJSON recurses once per level).
    public var maxDepth = 64
    /// Values of the body: a boxed value costs far more than its text.
    public var maxValues = 250_000
    public var maxMessages = 2_048
    /// One text: a message's content, a text part, a tool call's arguments, a description.
    public var maxStringBytes = 2 << 20
    /// Parts of one message's content.
    public var maxParts = 256
    /// One image, audio or file part, as written compactly.
    public var maxMediaBytes = 6 << 20
    /// Tools offered (OpenAI's own limit).
    public var maxTools = 128
    /// Calls of one assistant message.
    public var maxToolCalls = 128
    /// A tool's `parameters`, or a `response_format`, as written compactly.
    public var maxSchemaBytes = 64 << 10
    /// A model name, an id, a participant's name, `user`.
    public var maxNameBytes = 256
    public var maxStops = 16
    public var maxStopBytes = 1_024
    /// Each pass-through field, as written compactly.
    public var maxPassThroughBytes = 16 << 10

    public init() {}

    public static let `default` = ChatLimits()
}

/// Why a client's request was refused: a field and the reason, in the sentence an OpenAI-style
/// 400 body carries ("messages[3].tool_call_id: no earlier assistant message made this call").
/// The client's fault, never the provider's: a `ChatRequestError` is not retried and no model's
/// breaker counts it.
public struct ChatRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The body is not JSON.
        case notJSON
        /// A member is missing, of the wrong type, out of range, or unknown.
        case invalidField
        /// A size, count or nesting passed one of `ChatLimits`.
        case limitExceeded
        /// The body is longer than `ChatLimits.maxBodyBytes` (413).
        case tooLarge
        /// Well-formed, but the chosen provider's wire cannot carry it (an image to an Anthropic
        /// model).
        case unsupported
    }

    public var code: Code
    /// The JSON path (`messages[3].content`), or nil for the body as a whole.
    public var field: String?
    public var message: String

    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    init(_ fault: WireFault) {
        self.init(fault.isLimit ? .limitExceeded : .invalidField, fault.message, field: fault.field)
    }

    static func unsupported(_ field: String?, _ message: String) -> ChatRequestError { ChatRequestError(.unsupported, message, field: field) }

    public var description: String { field.map { "\($0): \(message)" } ?? message }

    public var httpStatus: Int { code == .tooLarge ? 413 : 400 }

    /// `{"error":{"message","type","param","code"}}`, as OpenAI answers a bad request.
    public var openAIBody: JSON {
        let code: String
        switch self.code {
        case .notJSON: code = "invalid_json"
        case .invalidField: code = "invalid_value"
        case .limitExceeded: code = "limit_exceeded"
        case .tooLarge: code = "request_too_large"
        case .unsupported: code = "unsupported_value"
        }
        return OpenAIWire.errorBody(message: description, type: "invalid_request_error", param: field, code: code)
    }
}

// MARK: - The reader

/// Reads a request body's fields in order; every refusal is a `WireFault` with its path.
struct RequestReader {
    let limits: ChatLimits

    static let modelled: Set<String> = [
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "stream", "stream_options", "n", "seed", "user",
    ]
    static let passThroughTypes: [String: String] = Dictionary(uniqueKeysWithValues: ChatRequest.passThroughFields.map { ($0.name, $0.type) })

    func request(_ value: JSON) throws(WireFault) -> ChatRequest {
        let body = try WireObject(value, path: "")
        let model = try modelChoice(body)
        guard let rawMessages = try body.array("messages", maxCount: limits.maxMessages) else { throw .invalid("messages", "required") }
        guard !rawMessages.isEmpty else { throw .invalid("messages", "at least one message is required") }

        var request = ChatRequest(model: model, messages: [])
        request.tools = try tools(body)
        request.messages = try messages(rawMessages)
        request.toolChoice = try toolChoice(body, tools: request.tools)
        request.parallelToolCalls = try body.bool("parallel_tool_calls")

        let maxCompletion = try body.int("max_completion_tokens", min: 1, max: Int64(Int32.max))
        let maxTokens = try body.int("max_tokens", min: 1, max: Int64(Int32.max))
        request.maxTokens = (maxCompletion ?? maxTokens).map { Int($0) }
        request.temperature = try body.number("temperature", min: 0, max: 2)
        request.topP = try body.number("top_p", min: 0, max: 1)
        request.stop = try stop(body)
        request.stream = try body.bool("stream") ?? false
        // Read only when streaming: OpenAI refuses stream_options otherwise, Cordon ignores it.
        if request.stream, let options = try body.object("stream_options") {
            try options.refuseOthers(["include_usage", "include_obfuscation"])
            request.includeUsage = try options.bool("include_usage") ?? false
            _ = try options.bool("include_obfuscation")
        }
        if let n = try body.int("n", min: 1, max: Int64(Int32.max)), n != 1 {
            throw .invalid("n", "only one choice (n = 1) is served")
        }
        request.seed = try body.int("seed", min: Int64.min, max: Int64.max)
        request.user = try body.string("user", maxBytes: limits.maxNameBytes)
        request.passThrough = try passThrough(body)
        return request
    }

    private func modelChoice(_ body: WireObject) throws(WireFault) -> ChatRequest.ModelChoice {
        let name = try body.requiredString("model", maxBytes: limits.maxNameBytes)
        if name.isEmpty { throw .invalid("model", "empty") }
        if name == "auto" { return .auto(taskType: "chat") }
        if name.hasPrefix("auto:") {
            let task = String(name.dropFirst(5))
            guard !task.isEmpty, task.utf8.count <= 64, task.utf8.allSatisfy({ b in
                (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                    || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
            }) else {
                throw .invalid("model", "a task type after auto: is 1 to 64 of A-Z a-z 0-9 _ - .")
            }
            return .auto(taskType: task)
        }
        return .named(name)
    }

    // MARK: Messages

    private func messages(_ items: [JSON]) throws(WireFault) -> [ChatMessage] {
        var out: [ChatMessage] = []
        out.reserveCapacity(items.count)
        // The calls of the latest assistant message that made some: a tool message answers one.
        var openCalls: [String] = []
        for (i, item) in items.enumerated() {
            let message = try self.message(item, path: WirePath.index("messages", i))
            switch message.role {
            case .assistant where !message.toolCalls.isEmpty: openCalls = message.toolCalls.map(\.id)
            case .tool:
                guard let id = message.toolCallID, openCalls.contains(id) else {
                    throw .invalid(WirePath.member(WirePath.index("messages", i), "tool_call_id"),
                                   "no earlier assistant message made this call")
                }
            default: break
            }
            out.append(message)
        }
        return out
    }

    /// What a client replaying an answer it got may leave on an assistant message: output
    /// artifacts no provider reads back. Dropped.
    static let assistantOutputFields: Set<String> = ["refusal", "annotations", "audio", "reasoning_content", "reasoning"]

    private func message(_ value: JSON, path: String) throws(WireFault) -> ChatMessage {
        let m = try WireObject(value, path: path)
        let roleName = try m.requiredString("role", maxBytes: 32)
        guard let role = ChatMessage.Role(rawValue: roleName) else {
            if roleName == "function" { throw .invalid(m.field("role"), "the legacy function role is not supported: use tool messages") }
            throw .invalid(m.field("role"), "expected system, developer, user, assistant or tool")
        }
        var message = ChatMessage(role: role, content: nil)
        switch role {
        case .system, .developer:
            try m.refuseOthers(["role", "content", "name"])
            message.content = try content(m, allowsMedia: false, required: true)
        case .user:
            try m.refuseOthers(["role", "content", "name"])
            message.content = try content(m, allowsMedia: true, required: true)
        case .assistant:
            try m.refuseOthers(Self.assistantOutputFields.union(["role", "content", "name", "tool_calls"]))
            message.content = try content(m, allowsMedia: false, required: false)
            message.toolCalls = try toolCalls(m)
            if message.content == nil && message.toolCalls.isEmpty {
                throw .invalid(m.field("content"), "required unless the message has tool_calls")
            }
        case .tool:
            try m.refuseOthers(["role", "content", "tool_call_id"])
            message.toolCallID = try m.string("tool_call_id", maxBytes: limits.maxNameBytes)
            if message.toolCallID == nil { throw .invalid(m.field("tool_call_id"), "required") }
            message.content = try content(m, allowsMedia: false, required: true)
        }
        if role != .tool { message.name = try m.string("name", maxBytes: limits.maxNameBytes) }
        return message
    }

    private func content(_ m: WireObject, allowsMedia: Bool, required: Bool) throws(WireFault) -> ChatContent? {
        guard let value = m.raw("content") else {
            if required { throw .invalid(m.field("content"), "required") }
            return nil
        }
        let path = m.field("content")
        switch value {
        case .string(let s):
            guard s.utf8.count <= limits.maxStringBytes else { throw .limit(path, "longer than \(limits.maxStringBytes) bytes") }
            return .text(s)
        case .array(let items):
            guard items.count <= limits.maxParts else { throw .limit(path, "more than \(limits.maxParts) parts") }
            var parts: [ChatContentPart] = []
            parts.reserveCapacity(items.count)
            for (j, item) in items.enumerated() {
                parts.append(try part(item, path: WirePath.index(path, j), allowsMedia: allowsMedia))
            }
            return .parts(parts)
        default:
            throw .invalid(path, "expected a string or an array of parts, got \(value.typeName)")
        }
    }

    private func part(_ value: JSON, path: String, allowsMedia: Bool) throws(WireFault) -> ChatContentPart {
        let p = try WireObject(value, path: path)
        let type = try p.requiredString("type", maxBytes: 64)
        if type == "text" {
            try p.refuseOthers(["type", "text"])
            let text = try p.string("text", maxBytes: limits.maxStringBytes)
            guard let text else { throw .invalid(p.field("text"), "required") }
            return .text(text)
        }
        guard let kind = ChatContentPart.MediaKind(rawValue: type) else {
            throw .invalid(p.field("type"), "unknown part type (text, image_url, input_audio and file are known)")
        }
        guard allowsMedia else { throw .invalid(p.field("type"), "only text parts are allowed in this message") }
        guard let inner = p.raw(type), inner.isObject else { throw .invalid(p.field(type), "required, an object") }
        guard value.text.utf8.count <= limits.maxMediaBytes else { throw .limit(path, "longer than \(limits.maxMediaBytes) bytes") }
        return .media(kind, value.uniquingKeys())
    }

    private func toolCalls(_ m: WireObject) throws(WireFault) -> [ChatToolCall] {
        guard let items = try m.array("tool_calls", maxCount: limits.maxToolCalls) else { return [] }
        var out: [ChatToolCall] = []
        for (j, item) in items.enumerated() {
            let c = try WireObject(item, path: WirePath.index(m.field("tool_calls"), j))
            if let type = try c.string("type", maxBytes: 64), type != "function" {
                throw .invalid(c.field("type"), "only function calls are supported")
            }
            try c.refuseOthers(["id", "type", "function"])
            let id = try c.requiredString("id", maxBytes: limits.maxNameBytes)
            if id.isEmpty { throw .invalid(c.field("id"), "empty") }
            guard let f = try c.object("function") else { throw .invalid(c.field("function"), "required") }
            try f.refuseOthers(["name", "arguments"])
            let name = try f.requiredString("name", maxBytes: limits.maxNameBytes)
            let arguments = try f.requiredString("arguments", maxBytes: limits.maxStringBytes)
            if out.contains(where: { $0.id == id }) { throw .invalid(c.field("id"), "repeats an earlier call's id") }
            out.append(ChatToolCall(id: id, name: name, arguments: arguments))
        }
        return out
    }

    // MARK: Tools

    private func tools(_ body: WireObject) throws(WireFault) -> [ChatTool] {
        guard let items = try body.array("tools", maxCount: limits.maxTools) else { return [] }
        var out: [ChatTool] = []
        for (i, item) in items.enumerated() {
            let t = try WireObject(item, path: WirePath.index("tools", i))
            let type = try t.requiredString("type", maxBytes: 64)
            guard type == "function" else { throw .invalid(t.field("type"), "only function tools are supported") }
            try t.refuseOthers(["type", "function"])
            guard let f = try t.object("function") else { throw .invalid(t.field("function"), "required") }
            try f.refuseOthers(["name", "description", "parameters", "strict"])
            let name = try f.requiredString("name", maxBytes: 256)
            if let problem = ChatTool.nameProblem(name) { throw .invalid(f.field("name"), problem) }
            if let j = out.firstIndex(where: { $0.name == name }) { throw .invalid(f.field("name"), "repeats tools[\(j)]") }
            let parameters = try f.rawValue("parameters", maxBytes: limits.maxSchemaBytes)
            if let parameters {
                guard parameters.isObject else { throw .invalid(f.field("parameters"), "expected an object, got \(parameters.typeName)") }
                if let type = parameters["type"], type != .string("object") {
                    throw .invalid(WirePath.member(f.field("parameters"), "type"), "expected \"object\": a tool's arguments are an object")
                }
            }
            out.append(ChatTool(name: name, description: try f.string("description", maxBytes: limits.maxStringBytes),
                                parameters: parameters, strict: try f.bool("strict")))
        }
        return out
    }

    private func toolChoice(_ body: WireObject, tools: [ChatTool]) throws(WireFault) -> ChatToolChoice? {
        guard let value = body.raw("tool_choice") else { return nil }
        let choice: ChatToolChoice
        switch value {
        case .string("none"): choice = .none
        case .string("auto"): choice = .auto
        case .string("required"): choice = .required
        case .string: throw .invalid("tool_choice", "expected none, auto, required or a function")
        case .object:
            let o = try WireObject(value, path: "tool_choice")
            let type = try o.requiredString("type", maxBytes: 64)
            guard type == "function" else { throw .invalid(o.field("type"), "only a function may be named (allowed_tools and custom tools are not supported)") }
            try o.refuseOthers(["type", "function"])
            guard let f = try o.object("function") else { throw .invalid(o.field("function"), "required") }
            try f.refuseOthers(["name"])
            let name = try f.requiredString("name", maxBytes: 256)
            guard tools.contains(where: { $0.name == name }) else { throw .invalid(f.field("name"), "names no tool of tools") }
            choice = .function(name)
        default:
            throw .invalid("tool_choice", "expected a string or an object, got \(value.typeName)")
        }
        if tools.isEmpty, choice != .none, choice != .auto { throw .invalid("tool_choice", "requires tools") }
        return choice
    }

    private func stop(_ body: WireObject) throws(WireFault) -> [String] {
        guard let value = body.raw("stop") else { return [] }
        let items: [JSON]
        switch value {
        case .string: items = [value]
        case .array(let a): items = a
        default: throw .invalid("stop", "expected a string or an array of strings, got \(value.typeName)")
        }
        guard items.count <= limits.maxStops else { throw .limit("stop", "more than \(limits.maxStops) sequences") }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            let path = value.arrayValue == nil ? "stop" : WirePath.index("stop", i)
            guard case .string(let s) = item else { throw .invalid(path, "expected a string, got \(item.typeName)") }
            guard !s.isEmpty else { throw .invalid(path, "empty") }
            guard s.utf8.count <= limits.maxStopBytes else { throw .limit(path, "longer than \(limits.maxStopBytes) bytes") }
            out.append(s)
        }
        return out
    }

    // MARK: The rest

    private func passThrough(_ body: WireObject) throws(WireFault) -> [ChatRequest.PassThrough] {
        var out: [ChatRequest.PassThrough] = []
        for (key, value) in body.members where !Self.modelled.contains(key) && value != .null {
            if let type = Self.passThroughTypes[key] {
                let matches = type == "number" ? value.doubleValue?.isFinite == true : value.typeName == type
                guard matches else { throw .invalid(body.field(key), "expected \(type == "number" || type == "string" ? "a" : "an") \(type), got \(value.typeName)") }
                guard value.text.utf8.count <= limits.maxPassThroughBytes else { throw .limit(body.field(key), "longer than \(limits.maxPassThroughBytes) bytes") }
                out.append(.init(name: key, value: value.uniquingKeys()))
                continue
            }
            if ChatRequest.ignoredFields.contains(key) { continue }
            // Fields that ask for nothing, as some clients send them.
            switch (key, value) {
            case ("logprobs", .bool(false)), ("modalities", .array([.string("text")])): continue
            case ("functions", _), ("function_call", _):
                throw .invalid(body.field(key), "legacy function calling is not supported: use tools and tool_choice")
            default:
                throw .invalid(body.field(key), "not supported by Cordon's endpoint")
            }
        }
        return out
    }
}
