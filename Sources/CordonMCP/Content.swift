import CordonJSON

/// One block of a tool result's `content` (both revisions, Tools, Tool Result). The five kinds
/// both revisions define are checked for their required members; a block of another `type`
/// is kept whole as `.unknown` rather than dropped, so the record shows what the server sent.
/// `annotations` and `_meta` ride along unread in `extra`.
public enum MCPContentBlock: Sendable, Equatable {
    case text(String, extra: JSON?)
    /// Base64 `data` and its MIME type.
    case image(data: String, mimeType: String, extra: JSON?)
    case audio(data: String, mimeType: String, extra: JSON?)
    /// A link to a resource: the whole object (uri, name, and optional title, description,
    /// mimeType, size).
    case resourceLink(uri: String, name: String, object: JSON)
    /// An embedded resource: `resource` holds `uri` and `text` or base64 `blob`.
    case resource(uri: String, object: JSON)
    case unknown(JSON)

    public var json: JSON {
        switch self {
        case .text(let text, let extra): return Self.with([("type", .string("text")), ("text", .string(text))], extra)
        case .image(let data, let mimeType, let extra):
            return Self.with([("type", .string("image")), ("data", .string(data)), ("mimeType", .string(mimeType))], extra)
        case .audio(let data, let mimeType, let extra):
            return Self.with([("type", .string("audio")), ("data", .string(data)), ("mimeType", .string(mimeType))], extra)
        case .resourceLink(_, _, let object), .resource(_, let object), .unknown(let object): return object
        }
    }

    /// The text of a text block.
    public var text: String? { if case .text(let t, _) = self { return t }; return nil }

    private static func with(_ members: [(String, JSON)], _ extra: JSON?) -> JSON {
        guard case .object(let more)? = extra else { return .object(members) }
        return .object(members + more)
    }

    /// `annotations` and `_meta`, the members every block may carry.
    private static func extra(_ fields: Fields) throws(MCPError) -> JSON? {
        var members: [(String, JSON)] = []
        for key in ["annotations", "_meta"] {
            if let value = try fields.rawObject(key, maxBytes: 64 << 10) { members.append((key, value)) }
        }
        return members.isEmpty ? nil : .object(members)
    }

    static func parse(_ value: JSON, path: String, limits: MCPLimits) throws(MCPError) -> MCPContentBlock {
        let fields = try Fields(value, path: path)
        let type = try fields.requiredString("type", maxBytes: 64)
        let big = limits.maxMessageBytes
        switch type {
        case "text":
            return .text(try fields.requiredString("text", maxBytes: big), extra: try extra(fields))
        case "image", "audio":
            let data = try fields.requiredString("data", maxBytes: big)
            if let problem = base64Problem(data) { throw .invalid(fields.field("data"), problem) }
            let mimeType = try fields.requiredString("mimeType", maxBytes: 256)
            return type == "image" ? .image(data: data, mimeType: mimeType, extra: try extra(fields))
                : .audio(data: data, mimeType: mimeType, extra: try extra(fields))
        case "resource_link":
            let uri = try fields.requiredString("uri", maxBytes: limits.maxTokenBytes * 8)
            let name = try fields.requiredString("name", maxBytes: limits.maxTitleBytes)
            _ = try fields.string("mimeType", maxBytes: 256)
            _ = try fields.int("size", min: 0, max: Int64.max)
            return .resourceLink(uri: uri, name: name, object: value.uniquingKeys())
        case "resource":
            guard let inner = try fields.object("resource") else { throw .invalid(fields.field("resource"), "required") }
            let uri = try inner.requiredString("uri", maxBytes: limits.maxTokenBytes * 8)
            let text = try inner.string("text", maxBytes: big)
            let blob = try inner.string("blob", maxBytes: big)
            guard (text == nil) != (blob == nil) else { throw .invalid(inner.path, "expected one of text and blob") }
            if let blob, let problem = base64Problem(blob) { throw .invalid(inner.field("blob"), problem) }
            return .resource(uri: uri, object: value.uniquingKeys())
        default:
            return .unknown(value.uniquingKeys())
        }
    }

    /// RFC 4648 base64 with padding, no line breaks: what `format: byte` means in both schemas.
    static func base64Problem(_ s: String) -> String? {
        let bytes = s.utf8
        guard bytes.count % 4 == 0 else { return "not base64: length \(bytes.count) is not a multiple of 4" }
        var padding = 0
        for (i, b) in bytes.enumerated() {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding > 0 { return "not base64: data after padding at byte \(i)" }
            case UInt8(ascii: "="):
                padding += 1
                if padding > 2 { return "not base64: more than two padding characters" }
            default: return "not base64: byte \(i) is outside the alphabet"
            }
        }
        return nil
    }
}

/// A finished `tools/call` (both revisions, Tools, Tool Result).
public struct MCPCallToolResult: Sendable, Equatable {
    public var content: [MCPContentBlock]
    /// Any JSON in 2026-07-28, an object in 2025-11-25.
    public var structuredContent: JSON?
    /// The tool failed (its message is in `content`); the call itself worked.
    public var isError: Bool

    public init(content: [MCPContentBlock], structuredContent: JSON? = nil, isError: Bool = false) {
        self.content = content
        self.structuredContent = structuredContent
        self.isError = isError
    }

    /// The result as `revision` writes it. 2025-11-25 allows only an object as
    /// `structuredContent`; another value is left out there (the text blocks carry it).
    public func json(for revision: MCPRevision, serverInfo: MCPImplementation? = nil) -> JSON {
        var members: [(String, JSON)] = []
        if revision.resultsCarryResultType { members.append(("resultType", .string(MCPResultType.complete.rawValue))) }
        members.append(("content", .array(content.map(\.json))))
        if let structuredContent, revision.structuredContentMayBeAnyJSON || structuredContent.isObject {
            members.append(("structuredContent", structuredContent))
        }
        if isError { members.append(("isError", .bool(true))) }
        appendServerInfo(&members, revision, serverInfo)
        return .object(members)
    }

    static func parse(_ fields: Fields, limits: MCPLimits) throws(MCPError) -> MCPCallToolResult {
        guard let items = try fields.array("content", maxCount: limits.maxContentBlocks) else {
            throw .invalid(fields.field("content"), "required")
        }
        var content: [MCPContentBlock] = []
        content.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            content.append(try MCPContentBlock.parse(item, path: "\(fields.field("content"))[\(i)]", limits: limits))
        }
        return MCPCallToolResult(content: content, structuredContent: fields.raw("structuredContent")?.uniquingKeys(),
                                 isError: try fields.bool("isError") ?? false)
    }
}

/// What a `tools/call` came back with: a result, or, from a 2026-07-28 server, a request for
/// input to be retried with (2026-07-28, Multi Round-Trip Requests). Cordon declares no client
/// capability, so `inputRequests` should never ask for anything it could give.
public enum MCPCallToolOutcome: Sendable, Equatable {
    case complete(MCPCallToolResult)
    case inputRequired(requestState: String?, inputRequests: JSON?)

    public static func parse(_ result: JSON, limits: MCPLimits) throws(MCPError) -> MCPCallToolOutcome {
        let fields = try Fields(result, path: "result")
        switch try MCPResultType.parse(fields) {
        case .complete: return .complete(try MCPCallToolResult.parse(fields, limits: limits))
        case .inputRequired:
            let state = try fields.string("requestState", maxBytes: limits.maxSchemaBytes)
            let requests = try fields.rawObject("inputRequests", maxBytes: limits.maxSchemaBytes)
            guard state != nil || requests != nil else {
                throw .invalid("result", "input_required with neither inputRequests nor requestState")
            }
            return .inputRequired(requestState: state, inputRequests: requests)
        }
    }
}
