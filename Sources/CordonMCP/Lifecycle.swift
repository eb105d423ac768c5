import CordonJSON

/// `initialize` parameters (2025-11-25, Lifecycle, Initialization).
public struct MCPInitializeParams: Sendable, Equatable {
    /// The version the client asks for: any string, compared, never ordered.
    public var protocolVersion: String
    public var capabilities: JSON
    public var clientInfo: MCPImplementation

    public init(protocolVersion: String, capabilities: JSON = .object([]), clientInfo: MCPImplementation) {
        self.protocolVersion = protocolVersion
        self.capabilities = capabilities
        self.clientInfo = clientInfo
    }

    public var json: JSON {
        .object([("protocolVersion", .string(protocolVersion)), ("capabilities", capabilities), ("clientInfo", clientInfo.json)])
    }

    static func parse(_ params: JSON?, limits: MCPLimits) throws(MCPError) -> MCPInitializeParams {
        guard let params else { throw .invalid("params", "required") }
        let fields = try Fields(params, path: "params")
        let version = try fields.requiredString("protocolVersion", maxBytes: limits.maxTokenBytes)
        guard let capabilities = try fields.rawObject("capabilities", maxBytes: limits.maxSchemaBytes) else {
            throw .invalid("params.capabilities", "required")
        }
        guard let info = fields.raw("clientInfo") else { throw .invalid("params.clientInfo", "required") }
        return MCPInitializeParams(protocolVersion: version, capabilities: capabilities,
                                   clientInfo: try MCPImplementation.parse(info, path: "params.clientInfo", limits: limits))
    }
}

/// The `initialize` result (2025-11-25, Lifecycle, Initialization).
public struct MCPInitializeResult: Sendable, Equatable {
    public var protocolVersion: String
    public var capabilities: MCPServerCapabilities
    public var serverInfo: MCPImplementation
    public var instructions: String?

    public init(protocolVersion: String, capabilities: MCPServerCapabilities, serverInfo: MCPImplementation, instructions: String? = nil) {
        self.protocolVersion = protocolVersion
        self.capabilities = capabilities
        self.serverInfo = serverInfo
        self.instructions = instructions
    }

    public var json: JSON {
        var members: [(String, JSON)] = [("protocolVersion", .string(protocolVersion)), ("capabilities", capabilities.raw),
                                         ("serverInfo", serverInfo.json)]
        if let instructions { members.append(("instructions", .string(instructions))) }
        return .object(members)
    }

    static func parse(_ result: JSON, limits: MCPLimits) throws(MCPError) -> MCPInitializeResult {
        let fields = try Fields(result, path: "result")
        let version = try fields.requiredString("protocolVersion", maxBytes: limits.maxTokenBytes)
        guard let capabilities = fields.raw("capabilities") else { throw .invalid("result.capabilities", "required") }
        guard let info = fields.raw("serverInfo") else { throw .invalid("result.serverInfo", "required") }
        return MCPInitializeResult(
            protocolVersion: version,
            capabilities: try MCPServerCapabilities.parse(capabilities, path: "result.capabilities", limits: limits),
            serverInfo: try MCPImplementation.parse(info, path: "result.serverInfo", limits: limits),
            instructions: try fields.string("instructions", maxBytes: limits.maxInstructionsBytes))
    }
}

/// The `server/discover` result (2026-07-28, Discovery, DiscoverResult).
public struct MCPDiscoverResult: Sendable, Equatable {
    /// Every version the server names, known to Cordon or not.
    public var supportedVersions: [String]
    public var capabilities: MCPServerCapabilities
    /// From `_meta["io.modelcontextprotocol/serverInfo"]`: optional, and display only.
    public var serverInfo: MCPImplementation?
    public var instructions: String?
    public var ttlMs: Int64
    public var cacheScope: MCPCacheScope

    public init(supportedVersions: [String], capabilities: MCPServerCapabilities, serverInfo: MCPImplementation?,
                instructions: String? = nil, ttlMs: Int64 = 0, cacheScope: MCPCacheScope = .private) {
        self.supportedVersions = supportedVersions
        self.capabilities = capabilities
        self.serverInfo = serverInfo
        self.instructions = instructions
        self.ttlMs = ttlMs
        self.cacheScope = cacheScope
    }

    /// The revisions both sides speak in the stateless era, newest last.
    public var modernRevisions: [MCPRevision] {
        MCPRevision.allCases.filter { $0.requestsCarryMeta && supportedVersions.contains($0.version) }
    }

    public var json: JSON {
        var members: [(String, JSON)] = [
            ("resultType", .string(MCPResultType.complete.rawValue)),
            ("supportedVersions", .array(supportedVersions.map(JSON.string))),
            ("capabilities", capabilities.raw),
        ]
        if let instructions { members.append(("instructions", .string(instructions))) }
        members += [("ttlMs", .int(ttlMs)), ("cacheScope", .string(cacheScope.rawValue))]
        if let serverInfo { members.append(("_meta", .object([(MCPMetaKey.serverInfo, serverInfo.json)]))) }
        return .object(members)
    }

    static func parse(_ result: JSON, limits: MCPLimits) throws(MCPError) -> MCPDiscoverResult {
        let fields = try Fields(result, path: "result")
        guard try MCPResultType.parse(fields) == .complete else {
            throw .invalid("result.resultType", "server/discover has no input_required result")
        }
        guard let versions = try fields.strings("supportedVersions", maxCount: limits.maxVersions, maxBytes: limits.maxTokenBytes) else {
            throw .invalid("result.supportedVersions", "required")
        }
        guard let capabilities = fields.raw("capabilities") else { throw .invalid("result.capabilities", "required") }
        var serverInfo: MCPImplementation?
        if let meta = try fields.object("_meta"), let info = meta.raw(MCPMetaKey.serverInfo) {
            // Display only: an unreadable one is dropped, not a failed connection.
            serverInfo = try? MCPImplementation.parse(info, path: meta.field(MCPMetaKey.serverInfo), limits: limits)
        }
        let scope = try fields.string("cacheScope", maxBytes: 16)
        guard scope.map({ MCPCacheScope(rawValue: $0) != nil }) ?? true else {
            throw .invalid("result.cacheScope", "expected \"public\" or \"private\"")
        }
        return MCPDiscoverResult(
            supportedVersions: versions,
            capabilities: try MCPServerCapabilities.parse(capabilities, path: "result.capabilities", limits: limits),
            serverInfo: serverInfo,
            instructions: try fields.string("instructions", maxBytes: limits.maxInstructionsBytes),
            // A negative ttl is read as 0 (immediately stale), as the schema's minimum says.
            ttlMs: max(0, try fields.int("ttlMs", min: Int64.min, max: Int64.max) ?? 0),
            cacheScope: scope.flatMap(MCPCacheScope.init(rawValue:)) ?? .private)
    }
}

/// `notifications/cancelled` parameters (2025-11-25, Cancellation; 2026-07-28, Cancellation).
public struct MCPCancellation: Sendable, Equatable {
    public var requestID: MCPRequestID
    public var reason: String?

    public init(requestID: MCPRequestID, reason: String? = nil) {
        self.requestID = requestID
        self.reason = reason
    }

    public var json: JSON {
        var members: [(String, JSON)] = [("requestId", requestID.json)]
        if let reason { members.append(("reason", .string(reason))) }
        return .object(members)
    }

    static func parse(_ params: JSON?, limits: MCPLimits) throws(MCPError) -> MCPCancellation {
        guard let params else { throw .invalid("params", "required") }
        let fields = try Fields(params, path: "params")
        guard let raw = fields.raw("requestId") else { throw .invalid("params.requestId", "required") }
        return MCPCancellation(requestID: try MCPRequestID.parse(raw, field: "params.requestId", maxBytes: limits.maxTokenBytes),
                               reason: try fields.string("reason", maxBytes: limits.maxErrorMessageBytes))
    }
}
