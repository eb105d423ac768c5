import CordonJSON

/// Who a peer says it is (`Implementation`): self-reported, for logs and display only, never
/// for a decision (2026-07-28, Overview, `_meta`, the note on clientInfo and serverInfo).
public struct MCPImplementation: Sendable, Equatable {
    public var name: String
    public var version: String
    public var title: String?
    public var description: String?

    public init(name: String, version: String, title: String? = nil, description: String? = nil) {
        self.name = name
        self.version = version
        self.title = title
        self.description = description
    }

    /// Icons and website URLs are not kept: Cordon shows none, and they are URIs a peer chose.
    public var json: JSON {
        var members: [(String, JSON)] = [("name", .string(name)), ("version", .string(version))]
        if let title { members.append(("title", .string(title))) }
        if let description { members.append(("description", .string(description))) }
        return .object(members)
    }

    static func parse(_ value: JSON, path: String, limits: MCPLimits) throws(MCPError) -> MCPImplementation {
        let fields = try Fields(value, path: path)
        return MCPImplementation(
            name: try fields.requiredString("name", maxBytes: limits.maxTitleBytes),
            // Some servers leave `version` out although both schemas require it: it is only shown.
            version: try fields.string("version", maxBytes: limits.maxTitleBytes) ?? "",
            title: try fields.string("title", maxBytes: limits.maxTitleBytes),
            description: try fields.string("description", maxBytes: limits.maxDescriptionBytes))
    }
}

/// A server's capabilities: what the gateway reads (`tools`, `tools.listChanged`), with the
/// whole object kept for the record.
public struct MCPServerCapabilities: Sendable, Equatable {
    /// Present when the server offers tools.
    public var tools: Bool
    /// The server announces changes of its tool list.
    public var toolsListChanged: Bool
    /// The object as the server sent it (repeated keys reduced).
    public var raw: JSON

    public init(tools: Bool, toolsListChanged: Bool) {
        self.tools = tools
        self.toolsListChanged = toolsListChanged
        var members: [(String, JSON)] = []
        if tools { members.append(("tools", .object(toolsListChanged ? [("listChanged", .bool(true))] : []))) }
        raw = .object(members)
    }

    static func parse(_ value: JSON, path: String, limits: MCPLimits) throws(MCPError) -> MCPServerCapabilities {
        let fields = try Fields(value, path: path)
        guard value.encodedSize <= limits.maxSchemaBytes else { throw .limit(path, "longer than \(limits.maxSchemaBytes) bytes") }
        var capabilities = MCPServerCapabilities(tools: false, toolsListChanged: false)
        if let tools = try fields.object("tools") {
            capabilities.tools = true
            capabilities.toolsListChanged = try tools.bool("listChanged") ?? false
        }
        capabilities.raw = value.uniquingKeys()
        return capabilities
    }
}

/// The per-request envelope of 2026-07-28 (`params._meta`, 2026-07-28, Overview, `_meta`,
/// Per-request protocol fields): the version and capabilities are required, the rest optional.
public struct MCPRequestMeta: Sendable, Equatable {
    public var protocolVersion: String
    /// The client's capabilities for this request: an object, `{}` for none.
    public var clientCapabilities: JSON
    public var clientInfo: MCPImplementation?
    public var logLevel: String?
    public var progressToken: MCPRequestID?

    public init(protocolVersion: String, clientCapabilities: JSON = .object([]), clientInfo: MCPImplementation? = nil,
                logLevel: String? = nil, progressToken: MCPRequestID? = nil) {
        self.protocolVersion = protocolVersion
        self.clientCapabilities = clientCapabilities
        self.clientInfo = clientInfo
        self.logLevel = logLevel
        self.progressToken = progressToken
    }

    public var json: JSON {
        var members: [(String, JSON)] = [(MCPMetaKey.protocolVersion, .string(protocolVersion))]
        if let clientInfo { members.append((MCPMetaKey.clientInfo, clientInfo.json)) }
        members.append((MCPMetaKey.clientCapabilities, clientCapabilities))
        if let logLevel { members.append((MCPMetaKey.logLevel, .string(logLevel))) }
        if let progressToken { members.append((MCPMetaKey.progressToken, progressToken.json)) }
        return .object(members)
    }

    /// True when `params._meta` carries any `io.modelcontextprotocol/` key: the client means
    /// the stateless era, and a missing required key is then its error, not a legacy request.
    static func claimsEnvelope(_ params: JSON?) -> Bool {
        guard case .object(let meta)? = params?["_meta"] else { return false }
        return meta.contains { $0.0.hasPrefix(MCPMetaKey.reservedPrefix) }
    }

    /// The envelope of a request's `params`, or nil when it has none. Refuses a partial one.
    static func parse(params: JSON?, limits: MCPLimits) throws(MCPError) -> MCPRequestMeta? {
        guard claimsEnvelope(params), let params else { return nil }
        let path = "params._meta"
        let fields = try Fields(params, path: "params")
        guard let meta = try fields.object("_meta") else { return nil }
        guard meta.count <= limits.maxMetaMembers else { throw .limit(path, "more than \(limits.maxMetaMembers) members") }
        let version = try meta.requiredString(MCPMetaKey.protocolVersion, maxBytes: limits.maxTokenBytes)
        guard let capabilities = try meta.rawObject(MCPMetaKey.clientCapabilities, maxBytes: limits.maxSchemaBytes) else {
            throw .invalid(meta.field(MCPMetaKey.clientCapabilities), "required")
        }
        var parsed = MCPRequestMeta(protocolVersion: version, clientCapabilities: capabilities)
        if let info = meta.raw(MCPMetaKey.clientInfo) {
            parsed.clientInfo = try MCPImplementation.parse(info, path: meta.field(MCPMetaKey.clientInfo), limits: limits)
        }
        parsed.logLevel = try meta.string(MCPMetaKey.logLevel, maxBytes: 32)
        parsed.progressToken = try progressToken(meta, limits: limits)
        return parsed
    }

    static func progressToken(_ meta: Fields, limits: MCPLimits) throws(MCPError) -> MCPRequestID? {
        guard let raw = meta.raw(MCPMetaKey.progressToken) else { return nil }
        return try MCPRequestID.parse(raw, field: meta.field(MCPMetaKey.progressToken), maxBytes: limits.maxTokenBytes)
    }
}

/// `resultType` (2026-07-28, Overview, ResultType): absent means complete (a server of an
/// earlier revision), an unknown value is invalid.
public enum MCPResultType: String, Sendable {
    case complete
    case inputRequired = "input_required"

    static func parse(_ fields: Fields) throws(MCPError) -> MCPResultType {
        guard let raw = try fields.string("resultType", maxBytes: 64) else { return .complete }
        guard let type = MCPResultType(rawValue: raw) else { throw .invalid(fields.field("resultType"), "unknown result type \"\(raw)\"") }
        return type
    }
}

/// `cacheScope` of a cacheable result (2026-07-28, Key Changes minor 5).
public enum MCPCacheScope: String, Sendable {
    case `public`
    case `private`
}

/// The `data` of an `UnsupportedProtocolVersionError` (-32022).
public struct MCPUnsupportedVersion: Sendable, Equatable {
    public var supported: [String]
    public var requested: String

    public init(supported: [String], requested: String) {
        self.supported = supported
        self.requested = requested
    }

    public var json: JSON {
        .object([("supported", .array(supported.map(JSON.string))), ("requested", .string(requested))])
    }

    /// Nil when the error is not a -32022 with readable `data.supported`: then it is no
    /// evidence of a stateless-era server (2026-07-28, stdio, Backward Compatibility).
    static func parse(_ error: MCPErrorObject, limits: MCPLimits) -> MCPUnsupportedVersion? {
        guard error.code == MCPErrorCode.unsupportedProtocolVersion, let data = error.data,
              let fields = try? Fields(data, path: "error.data"),
              let supported = try? fields.strings("supported", maxCount: limits.maxVersions, maxBytes: limits.maxTokenBytes)
        else { return nil }
        return MCPUnsupportedVersion(supported: supported, requested: (try? fields.string("requested", maxBytes: limits.maxTokenBytes)) ?? "")
    }
}
