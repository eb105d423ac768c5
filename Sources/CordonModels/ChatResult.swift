import CordonJSON

/// Why the model stopped, in OpenAI's vocabulary (the one Cordon's endpoint speaks).
public enum FinishReason: Sendable, Equatable {
    case stop, length, toolCalls, contentFilter
    /// A value some server invented (`function_call`, `abort`): passed on as given, cut to 64 bytes.
    case other(String)

    public init(wire: String) {
        switch wire {
        case "stop": self = .stop
        case "length": self = .length
        case "tool_calls": self = .toolCalls
        case "content_filter": self = .contentFilter
        default: self = .other(ProviderError.clean(wire, maxBytes: 64))
        }
    }

    public var wire: String {
        switch self {
        case .stop: return "stop"
        case .length: return "length"
        case .toolCalls: return "tool_calls"
        case .contentFilter: return "content_filter"
        case .other(let s): return s
        }
    }
}

/// Tokens a call cost. `promptTokens` counts every input token, cached ones included (for
/// Anthropic: `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`).
public struct ChatUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Input tokens read from the provider's prompt cache (OpenAI's `cached_tokens`, Anthropic's
    /// `cache_read_input_tokens`).
    public var cachedPromptTokens: Int?
    /// Input tokens written to Anthropic's prompt cache.
    public var cacheCreationTokens: Int?

    public init(promptTokens: Int, completionTokens: Int, cachedPromptTokens: Int? = nil, cacheCreationTokens: Int? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.cacheCreationTokens = cacheCreationTokens
    }

    public var totalTokens: Int { promptTokens + completionTokens }
}

/// A provider's whole answer, normalized. Reasoning text some servers add (`reasoning_content`,
/// Anthropic's thinking blocks) is not kept: OpenAI's chat completion has no place for it.
public struct ChatResult: Sendable, Equatable {
    /// nil when the model said nothing but called tools.
    public var content: String?
    public var refusal: String?
    public var toolCalls: [ChatToolCall] = []
    /// nil when the provider gave none (a stream cut short, a lax server).
    public var finishReason: FinishReason?
    /// nil when the provider gave none, or none Cordon could read.
    public var usage: ChatUsage?
    /// The provider's own id (`chatcmpl-…`, `msg_…`) and served model: for the record only.
    public var upstreamID: String?
    public var upstreamModel: String?

    public init(content: String? = nil, refusal: String? = nil, toolCalls: [ChatToolCall] = [], finishReason: FinishReason? = nil,
                usage: ChatUsage? = nil, upstreamID: String? = nil, upstreamModel: String? = nil) {
        self.content = content
        self.refusal = refusal
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
        self.upstreamID = upstreamID
        self.upstreamModel = upstreamModel
    }
}

/// A piece of a tool call in a stream. The first piece of a call carries `id` and `name`; later
/// ones only `arguments` text, to be appended to the call with the same `index`.
public struct ToolCallFragment: Sendable, Equatable {
    public var index: Int
    public var id: String?
    public var name: String?
    public var arguments: String

    public init(index: Int, id: String? = nil, name: String? = nil, arguments: String = "") {
        self.index = index
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// One step of a streamed answer, normalized from either provider's stream; Cordon's endpoint
/// writes each as one `chat.completion.chunk` (and the usage as the chunk of its own OpenAI
/// sends before `[DONE]`).
public struct ChatDelta: Sendable, Equatable {
    /// Set on the first step: the assistant's message begins.
    public var role: ChatMessage.Role?
    public var content: String?
    public var refusal: String?
    public var toolCalls: [ToolCallFragment] = []
    public var finishReason: FinishReason?
    public var usage: ChatUsage?

    public init(role: ChatMessage.Role? = nil, content: String? = nil, refusal: String? = nil, toolCalls: [ToolCallFragment] = [],
                finishReason: FinishReason? = nil, usage: ChatUsage? = nil) {
        self.role = role
        self.content = content
        self.refusal = refusal
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
    }

    public var isEmpty: Bool {
        role == nil && content == nil && refusal == nil && toolCalls.isEmpty && finishReason == nil && usage == nil
    }

    /// Whether it says something of the choice (a chunk with `choices[0]`), not only usage.
    public var hasChoice: Bool { role != nil || content != nil || refusal != nil || !toolCalls.isEmpty || finishReason != nil }
}

/// Every size and count a provider's reply may reach. A provider is untrusted: a reply past a
/// limit is a `ProviderError` of kind `malformedReply`, never a crash or an unbounded buffer.
public struct ReplyLimits: Sendable, Equatable {
    /// A non-streaming reply body.
    public var maxBodyBytes = 16 << 20
    /// One streamed event's data (give `SSEDecoder` the same number).
    public var maxEventBytes = 1 << 20
    public var maxDepth = 64
    public var maxValues = 250_000
    /// The answer's text, whole or summed over a stream.
    public var maxContentBytes = 8 << 20
    public var maxToolCalls = 128
    /// One call's arguments, whole or summed over a stream.
    public var maxArgumentsBytes = 1 << 20
    /// An id, a tool's name, a model's name.
    public var maxNameBytes = 256

    public init() {}

    public static let `default` = ReplyLimits()

    var bodyOptions: JSON.ParseOptions { JSON.ParseOptions(maxDepth: maxDepth, maxValues: maxValues, maxBytes: maxBodyBytes) }
    var eventOptions: JSON.ParseOptions { JSON.ParseOptions(maxDepth: maxDepth, maxValues: maxValues, maxBytes: maxEventBytes) }
}

/// Builds the whole answer from a stream's deltas, under `ReplyLimits`: what the record (tokens,
/// finish) and a non-streaming client served from a streamed call need.
/// Gives a stream's tool-call fragments Cordon's own indexes, 0, 1, 2… in the order calls
/// begin. Servers disagree on `index`: Ollama's /v1 stream gives every call index 0, each with
/// its own id in a chunk of its own, and some servers leave `index` out (a fragment then carries
/// its place in its chunk). A fragment with an id the call at its upstream index does not have
/// begins a new call; one without an id continues the call its upstream index names (or begins
/// one, if none). Whatever forwards a stream's deltas must run them through the same indexer as
/// the accumulator does (`ChatAccumulator` keeps one), so both see the same calls.
public struct ToolCallIndexer: Sendable {
    /// Upstream index → Cordon's index of the call it names now.
    private var current: [Int: Int] = [:]
    private var ids: [String?] = []

    public init() {}

    public mutating func normalize(_ delta: inout ChatDelta) {
        for i in delta.toolCalls.indices {
            let upstream = delta.toolCalls[i].index
            let id = delta.toolCalls[i].id
            if let ours = current[upstream], id == nil || id == ids[ours] {
                delta.toolCalls[i].index = ours
                continue
            }
            let ours = ids.count
            ids.append(id)
            current[upstream] = ours
            delta.toolCalls[i].index = ours
        }
    }
}

public struct ChatAccumulator: Sendable {
    public let limits: ReplyLimits
    public private(set) var result = ChatResult()
    private var contentBytes = 0
    private var argumentBytes: [Int] = []
    /// Text and arguments together: a stream may hold no more than a whole reply may.
    private var totalBytes = 0
    private var indexer = ToolCallIndexer()

    public init(limits: ReplyLimits = .default) { self.limits = limits }

    public mutating func add(_ delta: ChatDelta) throws(ProviderError) {
        var delta = delta
        indexer.normalize(&delta)
        totalBytes += (delta.content?.utf8.count ?? 0) + (delta.refusal?.utf8.count ?? 0) + delta.toolCalls.reduce(0) { $0 + $1.arguments.utf8.count }
        guard totalBytes <= limits.maxBodyBytes else {
            throw .malformed(.limit(nil, "the streamed answer is longer than \(limits.maxBodyBytes) bytes"))
        }
        if let text = delta.content {
            contentBytes += text.utf8.count
            guard contentBytes <= limits.maxContentBytes else {
                throw .malformed(.limit("content", "the answer is longer than \(limits.maxContentBytes) bytes"))
            }
            if result.content == nil { result.content = text } else { result.content! += text }
        }
        if let text = delta.refusal {
            contentBytes += text.utf8.count
            guard contentBytes <= limits.maxContentBytes else {
                throw .malformed(.limit("refusal", "the answer is longer than \(limits.maxContentBytes) bytes"))
            }
            if result.refusal == nil { result.refusal = text } else { result.refusal! += text }
        }
        for fragment in delta.toolCalls {
            let path = "tool_calls[\(fragment.index)]"
            if fragment.index == result.toolCalls.count {
                guard fragment.index < limits.maxToolCalls else { throw .malformed(.limit(path, "more than \(limits.maxToolCalls) tool calls")) }
                // A lax server may leave the id out: Cordon names the call by its place.
                result.toolCalls.append(ChatToolCall(id: fragment.id ?? "call_\(fragment.index)", name: fragment.name ?? "", arguments: ""))
                argumentBytes.append(0)
            } else if fragment.index > result.toolCalls.count || fragment.index < 0 {
                throw .malformed(.invalid(path, "a tool call's index skips ahead of the calls so far"))
            } else {
                if let name = fragment.name, result.toolCalls[fragment.index].name.isEmpty { result.toolCalls[fragment.index].name = name }
            }
            argumentBytes[fragment.index] += fragment.arguments.utf8.count
            guard argumentBytes[fragment.index] <= limits.maxArgumentsBytes else {
                throw .malformed(.limit("\(path).function.arguments", "longer than \(limits.maxArgumentsBytes) bytes"))
            }
            result.toolCalls[fragment.index].arguments += fragment.arguments
        }
        if let reason = delta.finishReason { result.finishReason = reason }
        if let usage = delta.usage { result.usage = usage }
    }
}
