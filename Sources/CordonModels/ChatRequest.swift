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
