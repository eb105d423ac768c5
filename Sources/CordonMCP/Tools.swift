import CordonJSON

/// Tool names as both revisions define them (2025-11-25 and 2026-07-28, Tools, Tool Names):
/// 1 to 128 characters of ASCII letters, digits, `_`, `-` and `.`, case-sensitive. The
/// specification says SHOULD; the gateway makes it a MUST, because a name reaches the agent's
/// model and the audit log verbatim.
public enum MCPToolName {
    public static let maxLength = 128

    /// Nil when `name` is valid, else the sentence that says why not.
    public static func problem(_ name: String) -> String? {
        if name.isEmpty { return "empty" }
        if name.utf8.count > maxLength { return "longer than \(maxLength) characters" }
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
                continue
            default:
                let shown = byte >= 0x20 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : hexByte(byte)
                return "contains \(shown): only A-Z a-z 0-9 _ - . are allowed"
            }
        }
        return nil
    }

    public static func isValid(_ name: String) -> Bool { problem(name) == nil }

    private static func hexByte(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "byte 0x" + (hex.count == 1 ? "0" + hex : hex)
    }
}

/// Behaviour hints of a tool: untrusted unless the server is (both revisions, Tools, Tool).
public struct MCPToolAnnotations: Sendable, Equatable {
    public var title: String?
    public var readOnlyHint: Bool?
    public var destructiveHint: Bool?
    public var idempotentHint: Bool?
    public var openWorldHint: Bool?

    public init(title: String? = nil, readOnlyHint: Bool? = nil, destructiveHint: Bool? = nil,
                idempotentHint: Bool? = nil, openWorldHint: Bool? = nil) {
        self.title = title
        self.readOnlyHint = readOnlyHint
        self.destructiveHint = destructiveHint
        self.idempotentHint = idempotentHint
        self.openWorldHint = openWorldHint
    }

    public var json: JSON {
        var members: [(String, JSON)] = []
        if let title { members.append(("title", .string(title))) }
        if let readOnlyHint { members.append(("readOnlyHint", .bool(readOnlyHint))) }
        if let destructiveHint { members.append(("destructiveHint", .bool(destructiveHint))) }
        if let idempotentHint { members.append(("idempotentHint", .bool(idempotentHint))) }
        if let openWorldHint { members.append(("openWorldHint", .bool(openWorldHint))) }
        return .object(members)
    }

    static func parse(_ fields: Fields, limits: MCPLimits) throws(MCPError) -> MCPToolAnnotations {
        MCPToolAnnotations(title: try fields.string("title", maxBytes: limits.maxTitleBytes),
                           readOnlyHint: try fields.bool("readOnlyHint"), destructiveHint: try fields.bool("destructiveHint"),
                           idempotentHint: try fields.bool("idempotentHint"), openWorldHint: try fields.bool("openWorldHint"))
    }
}

/// One tool (both revisions, Tools, Tool). Icons, `execution` and `_meta` are not kept: the
/// gateway shows no icons and runs no task-augmented calls.
public struct MCPTool: Sendable, Equatable {
    public var name: String
    public var title: String?
    public var description: String?
    /// A JSON Schema object with `"type": "object"`.
    public var inputSchema: JSON
    public var outputSchema: JSON?
    public var annotations: MCPToolAnnotations?

    public init(name: String, title: String? = nil, description: String? = nil,
                inputSchema: JSON = .object([("type", .string("object"))]), outputSchema: JSON? = nil,
                annotations: MCPToolAnnotations? = nil) {
        self.name = name
        self.title = title
        self.description = description
        self.inputSchema = inputSchema
        self.outputSchema = outputSchema
        self.annotations = annotations
    }

    /// The tool as `revision` describes it. 2025-11-25 allows only an object `outputSchema`
    /// (`"type": "object"`), so another one is left out there: the agent then gets the result's
    /// text, which a server SHOULD fill with the same JSON.
    public func json(for revision: MCPRevision) -> JSON {
        var members: [(String, JSON)] = [("name", .string(name))]
        if let title { members.append(("title", .string(title))) }
        if let description { members.append(("description", .string(description))) }
        members.append(("inputSchema", inputSchema))
        if let outputSchema, revision.structuredContentMayBeAnyJSON || outputSchema["type"] == .string("object") {
            members.append(("outputSchema", outputSchema))
        }
        if let annotations { members.append(("annotations", annotations.json)) }
        return .object(members)
    }

    public static func parse(_ value: JSON, path: String, limits: MCPLimits) throws(MCPError) -> MCPTool {
        let fields = try Fields(value, path: path)
        let name = try fields.requiredString("name", maxBytes: limits.maxToolNameBytes)
        if let problem = MCPToolName.problem(name) { throw .invalid(fields.field("name"), problem) }
        guard let input = try fields.rawObject("inputSchema", maxBytes: limits.maxSchemaBytes) else {
            throw .invalid(fields.field("inputSchema"), "required")
        }
        guard input["type"] == .string("object") else {
            throw .invalid("\(fields.field("inputSchema")).type", "expected \"object\"")
        }
        // An object in both schemas (2026-07-28 lets it describe any JSON, not be a boolean).
        let output = try fields.rawObject("outputSchema", maxBytes: limits.maxSchemaBytes)
        var annotations: MCPToolAnnotations?
        if let a = try fields.object("annotations") { annotations = try MCPToolAnnotations.parse(a, limits: limits) }
        return MCPTool(name: name,
                       title: try fields.string("title", maxBytes: limits.maxTitleBytes),
                       description: try fields.string("description", maxBytes: limits.maxDescriptionBytes),
                       inputSchema: input, outputSchema: output, annotations: annotations)
    }
}

/// A tool of a `tools/list` page the gateway left out, and why: one bad definition must not
/// cost the others (the rule 2026-07-28, Tools, x-mcp-header, states for header annotations).
public struct MCPRejectedTool: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    /// The name as given, when it was a string (shortened).
    public var name: String?
    public var error: MCPError

    public var description: String { "tool \(name.map { "\"\($0)\"" } ?? "#\(index)"): \(error)" }
}

/// One page of `tools/list` (both revisions, Tools, Listing Tools; Pagination).
public struct MCPListToolsResult: Sendable, Equatable {
    public var tools: [MCPTool]
    /// Present (even empty) when more pages follow.
    public var nextCursor: String?
    /// Cache hints of 2026-07-28; nil from a 2025-11-25 server.
    public var ttlMs: Int64?
    public var cacheScope: MCPCacheScope?
    /// Tools left out of `tools`, each with the reason.
    public var rejected: [MCPRejectedTool]

    public init(tools: [MCPTool], nextCursor: String? = nil, ttlMs: Int64? = nil, cacheScope: MCPCacheScope? = nil) {
        self.tools = tools
        self.nextCursor = nextCursor
        self.ttlMs = ttlMs
        self.cacheScope = cacheScope
        self.rejected = []
    }

    /// The page as `revision` writes it: 2026-07-28 requires `resultType`, `ttlMs` and
    /// `cacheScope` (0 and private when unset: a gateway's list depends on who asks).
    public func json(for revision: MCPRevision, serverInfo: MCPImplementation? = nil) -> JSON {
        var members: [(String, JSON)] = []
        if revision.resultsCarryResultType { members.append(("resultType", .string(MCPResultType.complete.rawValue))) }
        members.append(("tools", .array(tools.map { $0.json(for: revision) })))
        if let nextCursor { members.append(("nextCursor", .string(nextCursor))) }
        if revision.listResultsCarryCacheHints {
            members += [("ttlMs", .int(ttlMs ?? 0)), ("cacheScope", .string((cacheScope ?? .private).rawValue))]
        }
        appendServerInfo(&members, revision, serverInfo)
        return .object(members)
    }

    static func parse(_ result: JSON, limits: MCPLimits) throws(MCPError) -> MCPListToolsResult {
        let fields = try Fields(result, path: "result")
        guard try MCPResultType.parse(fields) == .complete else {
            throw .invalid("result.resultType", "tools/list has no input_required result")
        }
        guard let items = try fields.array("tools", maxCount: limits.maxToolsPerPage) else { throw .invalid("result.tools", "required") }
        var page = MCPListToolsResult(tools: [])
        var names: Set<String> = []
        for (i, item) in items.enumerated() {
            do throws(MCPError) {
                let tool = try MCPTool.parse(item, path: "result.tools[\(i)]", limits: limits)
                guard names.insert(tool.name).inserted else {
                    throw MCPError.invalid("result.tools[\(i)].name", "\"\(tool.name)\" is listed twice")
                }
                page.tools.append(tool)
            } catch {
                page.rejected.append(MCPRejectedTool(index: i, name: item["name"]?.stringValue.map { String($0.prefix(160)) }, error: error))
            }
        }
        page.nextCursor = try fields.string("nextCursor", maxBytes: limits.maxTokenBytes)
        page.ttlMs = try fields.int("ttlMs", min: Int64.min, max: Int64.max).map { max(0, $0) }
        if let scope = try fields.string("cacheScope", maxBytes: 16) {
            guard let s = MCPCacheScope(rawValue: scope) else { throw .invalid("result.cacheScope", "expected \"public\" or \"private\"") }
            page.cacheScope = s
        }
        return page
    }
}

/// `tools/call` parameters, without the envelope.
public struct MCPCallToolParams: Sendable, Equatable {
    public var name: String
    /// An object, or nil for none.
    public var arguments: JSON?

    public init(name: String, arguments: JSON? = nil) {
        self.name = name
        self.arguments = arguments
    }

    var members: [(String, JSON)] {
        var members: [(String, JSON)] = [("name", .string(name))]
        if let arguments { members.append(("arguments", arguments)) }
        return members
    }

    static func parse(_ fields: Fields, limits: MCPLimits) throws(MCPError) -> MCPCallToolParams {
        // Any name the agent asks for is only looked up, but it is bounded all the same.
        let name = try fields.requiredString("name", maxBytes: limits.maxToolNameBytes)
        guard let arguments = fields.raw("arguments") else { return MCPCallToolParams(name: name) }
        guard arguments.isObject else { throw .invalid(fields.field("arguments"), "expected an object, got \(arguments.typeName)") }
        return MCPCallToolParams(name: name, arguments: try fields.rawObject("arguments", maxBytes: limits.maxMessageBytes))
    }
}

func appendServerInfo(_ members: inout [(String, JSON)], _ revision: MCPRevision, _ serverInfo: MCPImplementation?) {
    guard revision.requestsCarryMeta, let serverInfo else { return }
    members.append(("_meta", .object([(MCPMetaKey.serverInfo, serverInfo.json)])))
}
