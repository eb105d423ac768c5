import CordonJSON

/// `cordon mcp serve`'s side of a connection to an agent's MCP client, as a pure state machine:
/// the caller feeds each line of stdin to `receive`, writes `Step.send` to stdout, runs what
/// `.forward` asks (against the daemon's tool gateway) and hands the outcome to `answer`.
///
/// A dual-era server (upstream basic/versioning, Compatibility Matrix): it answers each request
/// in the era the request itself declares, and may serve both in one process.
/// - A request whose `params._meta` carries `io.modelcontextprotocol/` keys is served
///   statelessly at 2026-07-28: the version and capabilities are required (-32602 naming the
///   missing key), another version gets `UnsupportedProtocolVersionError` (-32022) listing what
///   Cordon serves, `server/discover` is answered here, `ping` no longer exists.
/// - `initialize` opens the 2025-11-25 handshake for the process: Cordon answers with
///   2025-11-25 whatever was asked (2025-11-25, Lifecycle, Version Negotiation: the client
///   decides whether it can speak it), and requests without the envelope are then served as
///   2025-11-25. `ping` is answered in that era at any time.
/// - A request with neither gets -32602: it is either a 2026-07-28 request without its
///   envelope or a 2025-11-25 request before `initialize`.
/// The Python SDK's client (`mcp` 2.x, mode "auto") probes with `server/discover` first and
/// stays in 2026-07-28 on a `DiscoverResult`; its older releases open with `initialize`.
public struct MCPServerSession: Sendable {
    public struct Configuration: Sendable {
        public var serverInfo: MCPImplementation
        public var instructions: String?
        /// Cordon announces tool list changes (both eras).
        public var toolsListChanged: Bool
        /// The `ttlMs` of the discover result: 0, the capabilities may change with the daemon.
        public var discoverTTLMs: Int64
        public var limits: MCPLimits

        public init(serverInfo: MCPImplementation, instructions: String? = nil, toolsListChanged: Bool = true,
                    discoverTTLMs: Int64 = 0, limits: MCPLimits = .default) {
            self.serverInfo = serverInfo
            self.instructions = instructions
            self.toolsListChanged = toolsListChanged
            self.discoverTTLMs = discoverTTLMs
            self.limits = limits
        }
    }

    /// A request the caller carries out and then `answer`s.
    public struct ForwardedRequest: Sendable, Equatable {
        public enum Call: Sendable, Equatable {
            case listTools(cursor: String?)
            case callTool(MCPCallToolParams)
        }

        public var id: MCPRequestID
        /// The era the answer is written in.
        public var revision: MCPRevision
        public var call: Call
        /// Self-reported, for the audit record only.
        public var clientInfo: MCPImplementation?
        public var progressToken: MCPRequestID?
    }

    public enum Answer: Sendable, Equatable {
        case tools(MCPListToolsResult)
        case toolResult(MCPCallToolResult)
        case error(MCPErrorObject)
    }

    public enum Event: Sendable, Equatable {
        /// `initialize` was answered: this process now also serves 2025-11-25.
        case initialized(clientInfo: MCPImplementation, requestedVersion: String)
        /// `notifications/initialized` arrived.
        case clientReady
        case forward(ForwardedRequest)
        /// The client gave up on a forwarded request: stop it; `answer` will send nothing.
        case cancelled(MCPRequestID, reason: String?)
        case subscribed(MCPRequestID)
        case unsubscribed(MCPRequestID)
        /// A message refused (answered with an error, or dropped when it was a notification).
        case refused(MCPError)
    }

    public struct Step: Sendable, Equatable {
        public var send: [MCPMessage] = []
        public var events: [Event] = []
        public init() {}
    }

    /// What `server/discover` lists: the versions served per request.
    public static let statelessVersions = [MCPRevision.v2026_07_28.version]
    /// What a -32022 lists: every version Cordon serves, the handshake one included.
    public static let servedVersions = [MCPRevision.v2026_07_28.version, MCPRevision.v2025_11_25.version]

    public let configuration: Configuration
    private var limits: MCPLimits { configuration.limits }
    /// The 2025-11-25 session of this process.
    public struct Handshake: Sendable, Equatable {
        public var clientInfo: MCPImplementation
        /// What the client asked for; Cordon answered 2025-11-25.
        public var requestedVersion: String
        /// `notifications/initialized` arrived.
        public var clientReady: Bool
    }

    /// Set once `initialize` was answered.
    public private(set) var handshake: Handshake?
    private var inFlight: [MCPRequestID: MCPRevision] = [:]
    /// Open `subscriptions/listen` streams, by the id of their request: whether each wants tool
    /// list changes.
    private var subscriptions: [MCPRequestID: Bool] = [:]

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    private var capabilities: MCPServerCapabilities {
        MCPServerCapabilities(tools: true, toolsListChanged: configuration.toolsListChanged)
    }

    /// Requests forwarded and not yet answered or cancelled.
    public var pendingCount: Int { inFlight.count }

    // MARK: Receiving

    /// One line the client wrote.
    public mutating func receive(_ line: some Collection<UInt8>) -> Step {
        var step = Step()
        let message: MCPMessage
        do { message = try MCPMessage.parse(line, limits: limits) } catch {
            // JSON-RPC answers what it cannot read, with the id when it could be read.
            step.send.append(.error(id: error.requestID, error.errorObject))
            step.events.append(.refused(error))
            return step
        }
        switch message {
        case .request(let id, let method, let params):
            do { try request(&step, id, method, params) } catch {
                step.send.append(.error(id: id, error.errorObject))
                step.events.append(.refused(MCPError(error.code, error.message, field: error.field, requestID: id)))
            }
        case .notification(let method, let params): notification(&step, method, params)
        case .result(let id, _), .error(let id?, _):
            step.events.append(.refused(MCPError(.protocolViolation, "a response to \(id), but Cordon sends no requests")))
        case .error(nil, let error):
            step.events.append(.refused(MCPError(.protocolViolation, "an error without an id: \(error)")))
        }
        return step
    }

    private mutating func request(_ step: inout Step, _ id: MCPRequestID, _ method: String, _ params: JSON?) throws(MCPError) {
        guard inFlight[id] == nil, subscriptions[id] == nil else {
            throw MCPError(.protocolViolation, "request id \(id) is already in use by a request in progress", field: "id")
        }
        // initialize selects the handshake era even when a client stamps the envelope on it.
        if method == MCPMethod.initialize { return try initialize(&step, id, params) }
        if let meta = params?["_meta"], meta != .null, !meta.isObject {
            throw .invalid("params._meta", "expected an object, got \(meta.typeName)")
        }
        if let meta = try MCPRequestMeta.parse(params: params, limits: limits) {
            return try stateless(&step, id, method, params, meta)
        }
        if method == MCPMethod.ping {
            step.send.append(.result(id: id, result: .object([])))
            return
        }
        guard let handshake else {
            throw .invalid("params._meta[\"\(MCPMetaKey.protocolVersion)\"]",
                           "required: send initialize first (2025-11-25), or carry the 2026-07-28 request metadata")
        }
        try serve(&step, id, method, params, .v2025_11_25, clientInfo: handshake.clientInfo,
                  progressToken: try legacyProgressToken(params))
    }

    private mutating func initialize(_ step: inout Step, _ id: MCPRequestID, _ params: JSON?) throws(MCPError) {
        guard handshake == nil else { throw MCPError(.protocolViolation, "initialize was already answered in this process") }
        let asked = try MCPInitializeParams.parse(params, limits: limits)
        handshake = Handshake(clientInfo: asked.clientInfo, requestedVersion: asked.protocolVersion, clientReady: false)
        let result = MCPInitializeResult(protocolVersion: MCPRevision.v2025_11_25.version, capabilities: capabilities,
                                         serverInfo: configuration.serverInfo, instructions: configuration.instructions)
        step.send.append(.result(id: id, result: result.json))
        step.events.append(.initialized(clientInfo: asked.clientInfo, requestedVersion: asked.protocolVersion))
    }

    private func legacyProgressToken(_ params: JSON?) throws(MCPError) -> MCPRequestID? {
        guard let fields = try Fields(optional: params, path: "params"), let meta = try fields.object("_meta") else { return nil }
        return try MCPRequestMeta.progressToken(meta, limits: limits)
    }

    private mutating func stateless(_ step: inout Step, _ id: MCPRequestID, _ method: String, _ params: JSON?, _ meta: MCPRequestMeta) throws(MCPError) {
        guard let revision = MCPRevision(meta.protocolVersion), revision.requestsCarryMeta else {
            let data = MCPUnsupportedVersion(supported: Self.servedVersions, requested: meta.protocolVersion)
            step.send.append(.error(id: id, MCPErrorObject(code: MCPErrorCode.unsupportedProtocolVersion,
                                                           message: "Unsupported protocol version: Cordon serves \(Self.servedVersions.joined(separator: ", "))",
                                                           data: data.json)))
            step.events.append(.refused(MCPError(.unsupportedVersion, "protocol version \(meta.protocolVersion.prefix(64)) is not served",
                                                 field: "params._meta[\"\(MCPMetaKey.protocolVersion)\"]", requestID: id)))
            return
        }
        switch method {
        case MCPMethod.discover:
            let result = MCPDiscoverResult(supportedVersions: Self.statelessVersions, capabilities: capabilities,
                                           serverInfo: configuration.serverInfo, instructions: configuration.instructions,
                                           ttlMs: configuration.discoverTTLMs, cacheScope: .private)
            step.send.append(.result(id: id, result: result.json))
        case MCPMethod.subscriptionsListen:
            try subscribe(&step, id, params, revision)
        default:
            // ping is among the methods 2026-07-28 no longer has: serve() answers -32601.
            try serve(&step, id, method, params, revision, clientInfo: meta.clientInfo, progressToken: meta.progressToken)
        }
    }

    /// The methods both eras forward: `tools/list` and `tools/call`.
    private mutating func serve(_ step: inout Step, _ id: MCPRequestID, _ method: String, _ params: JSON?, _ revision: MCPRevision,
                                clientInfo: MCPImplementation?, progressToken: MCPRequestID?) throws(MCPError) {
        let call: ForwardedRequest.Call
        switch method {
        case MCPMethod.listTools:
            let fields = try Fields(optional: params, path: "params")
            call = .listTools(cursor: try fields?.string("cursor", maxBytes: limits.maxTokenBytes))
        case MCPMethod.callTool:
            guard let params else { throw .invalid("params", "required") }
            let fields = try Fields(params, path: "params")
            // Cordon never answers input_required, so no retry can carry its state.
            for key in ["requestState", "inputResponses"] where fields.has(key) {
                throw .invalid(fields.field(key), "Cordon asked for no input")
            }
            call = .callTool(try MCPCallToolParams.parse(fields, limits: limits))
        default:
            step.send.append(.error(id: id, .methodNotFound(method)))
            step.events.append(.refused(MCPError(.protocolViolation, "method not found: \(method.prefix(64))", requestID: id)))
            return
        }
        guard inFlight.count < limits.maxInFlight else {
            throw MCPError(.limitExceeded, "more than \(limits.maxInFlight) requests in progress")
        }
        inFlight[id] = revision
        step.events.append(.forward(ForwardedRequest(id: id, revision: revision, call: call, clientInfo: clientInfo, progressToken: progressToken)))
    }

    private mutating func subscribe(_ step: inout Step, _ id: MCPRequestID, _ params: JSON?, _ revision: MCPRevision) throws(MCPError) {
        let fields = try Fields(params ?? .object([]), path: "params")
        guard let filter = try fields.object("notifications") else { throw .invalid("params.notifications", "required") }
        guard subscriptions.count < limits.maxSubscriptions else {
            throw MCPError(.limitExceeded, "more than \(limits.maxSubscriptions) subscriptions open")
        }
        // Only tool list changes are honoured; the acknowledgement leaves the rest out.
        let tools = try filter.bool("toolsListChanged") == true && configuration.toolsListChanged
        subscriptions[id] = tools
        var honoured: [(String, JSON)] = []
        if tools { honoured.append(("toolsListChanged", .bool(true))) }
        step.send.append(.notification(method: MCPMethod.subscriptionsAcknowledged,
                                       params: .object([("_meta", .object([(MCPMetaKey.subscriptionID, id.json)])), ("notifications", .object(honoured))])))
        step.events.append(.subscribed(id))
    }

    private mutating func notification(_ step: inout Step, _ method: String, _ params: JSON?) {
        switch method {
        case MCPMethod.initialized:
            guard handshake != nil else {
                return step.events.append(.refused(MCPError(.protocolViolation, "notifications/initialized before initialize")))
            }
            handshake?.clientReady = true
            step.events.append(.clientReady)
        case MCPMethod.cancelled:
            // Unknown, finished and malformed cancellations are ignored (both revisions, Cancellation).
            guard let cancelled = try? MCPCancellation.parse(params, limits: limits) else { return }
            if inFlight.removeValue(forKey: cancelled.requestID) != nil {
                step.events.append(.cancelled(cancelled.requestID, reason: cancelled.reason))
            } else if subscriptions.removeValue(forKey: cancelled.requestID) != nil {
                step.events.append(.unsubscribed(cancelled.requestID))
            }
        default:
            // roots/list_changed, progress and the like: nothing to do for a tool gateway.
            break
        }
    }

    // MARK: Sending

    /// The answer to a forwarded request, in the era it was asked in. Nothing when the request
    /// was cancelled or is unknown (no message may follow a cancellation).
    public mutating func answer(_ id: MCPRequestID, with answer: Answer) -> [MCPMessage] {
        guard let revision = inFlight.removeValue(forKey: id) else { return [] }
        let serverInfo = revision.requestsCarryMeta ? configuration.serverInfo : nil
        switch answer {
        case .tools(let page): return [.result(id: id, result: page.json(for: revision, serverInfo: serverInfo))]
        case .toolResult(let result): return [.result(id: id, result: result.json(for: revision, serverInfo: serverInfo))]
        case .error(let error): return [.error(id: id, error)]
        }
    }

    /// `notifications/tools/list_changed` for every client that should hear of it: a
    /// 2025-11-25 session, and each 2026-07-28 subscription that asked, tagged with its id.
    public func toolsListChanged() -> [MCPMessage] {
        guard configuration.toolsListChanged else { return [] }
        var out: [MCPMessage] = []
        if handshake != nil { out.append(.notification(method: MCPMethod.toolsListChanged, params: nil)) }
        for (id, wants) in subscriptions.sorted(by: { $0.key.description < $1.key.description }) where wants {
            out.append(.notification(method: MCPMethod.toolsListChanged, params: .object([("_meta", .object([(MCPMetaKey.subscriptionID, id.json)]))])))
        }
        return out
    }

    /// Ends every subscription gracefully (before shutting down): a `complete` result to each
    /// `subscriptions/listen` (2026-07-28, Subscriptions, Graceful Closure).
    public mutating func endSubscriptions() -> [MCPMessage] {
        let ids = subscriptions.keys.sorted { $0.description < $1.description }
        subscriptions.removeAll()
        return ids.map { id in
            .result(id: id, result: .object([("resultType", .string(MCPResultType.complete.rawValue)),
                                             ("_meta", .object([(MCPMetaKey.subscriptionID, id.json),
                                                                (MCPMetaKey.serverInfo, configuration.serverInfo.json)]))]))
        }
    }
}
