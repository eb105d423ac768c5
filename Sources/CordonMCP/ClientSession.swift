import CordonJSON

/// cordond's side of a connection to an MCP server in a sandbox, as a pure state machine: the
/// caller writes `Step.send` to the server's stdin, feeds each line of its stdout to
/// `receive`, and tells `negotiationTimedOut()` when its clock says the server is silent.
///
/// How the revision is chosen (2026-07-28, stdio, Backward Compatibility; upstream
/// basic/versioning, Backward Compatibility with Initialization-Based Versions):
/// - With 2026-07-28 first in `revisions`, the session probes with `server/discover`. A
///   `DiscoverResult` naming 2026-07-28 settles it. An `UnsupportedProtocolVersionError`
///   (-32022 with `data.supported`) is a stateless-era server: Cordon uses a version from its
///   list, which for 2025-11-25 means `initialize`, and fails when the list holds none it speaks.
///   A -32021 fails. Any other error, an unreadable result, a result naming no 2026-07-28
///   version, or silence falls back to `initialize` — never keyed to one error code, because
///   handshake-era servers answer an unknown method before `initialize` as they please.
/// - With 2025-11-25 first, it opens with `initialize` and moves to the probe only when the
///   server refuses with -32022 naming 2026-07-28 (once).
/// - `initialize` must come back with 2025-11-25; any other answer fails (Cordon speaks no
///   other handshake revision), and `notifications/initialized` follows a good one.
public struct MCPClientSession: Sendable {
    public enum Phase: Sendable, Equatable {
        case notStarted
        /// `server/discover` sent, no answer yet.
        case discovering
        /// `initialize` sent, no answer yet.
        case initializing
        case ready(MCPRevision)
        case failed(MCPError)
    }

    /// What the negotiation settled.
    public struct Negotiated: Sendable, Equatable {
        public var revision: MCPRevision
        public var serverInfo: MCPImplementation?
        public var capabilities: MCPServerCapabilities
        public var instructions: String?
        /// The versions `server/discover` named; empty after `initialize`.
        public var supportedVersions: [String]
    }

    /// Every tool of every page of one listing.
    public struct ToolListing: Sendable, Equatable {
        public var tools: [MCPTool] = []
        public var rejected: [MCPRejectedTool] = []
        public var pages = 0
        /// The shortest `ttlMs` of the pages (2026-07-28); nil from a 2025-11-25 server.
        public var ttlMs: Int64?
        /// Private when any page was.
        public var cacheScope: MCPCacheScope?
    }

    public enum Event: Sendable, Equatable {
        case negotiated(Negotiated)
        /// The opening revision did not work out; the session tries `to` now.
        case fellBack(from: MCPRevision, to: MCPRevision, reason: String)
        case failed(MCPError)
        case tools(ToolListing)
        case toolsFailed(MCPError)
        case toolResult(id: MCPRequestID, MCPCallToolOutcome)
        /// A request failed: the server's error (`.peerError`) or an unreadable result.
        case requestFailed(id: MCPRequestID, MCPError)
        /// The server's tool list changed: list again.
        case toolsListChanged
        /// The server acknowledged the subscription; false when it will not send list changes.
        case subscribed(toolsListChanged: Bool)
        case subscriptionEnded
        case progress(token: MCPRequestID, progress: Double, total: Double?, message: String?)
        /// Any other notification, for the log.
        case notification(method: String, params: JSON?)
        /// A message not acted on, and why.
        case ignored(String)
    }

    public struct Step: Sendable, Equatable {
        public var send: [MCPMessage] = []
        public var events: [Event] = []
        public init() {}
    }

    private enum Pending: Sendable, Equatable {
        case discover
        case initialize
        case listTools
        case callTool
        case subscription
    }

    public let revisions: [MCPRevision]
    public let clientInfo: MCPImplementation
    public let limits: MCPLimits
    public private(set) var phase: Phase = .notStarted
    public private(set) var negotiated: Negotiated?
    private var nextID: Int64 = 0
    private var pending: [MCPRequestID: Pending] = [:]
    private var reprobed = false
    private var listing: (id: MCPRequestID, cursors: Set<String>, result: ToolListing)?
    private var subscriptionID: MCPRequestID?

    /// `revisions`: the ones Cordon accepts, in order of preference; the first decides how the
    /// session opens. Empty or repeated entries are a programming error.
    public init(clientInfo: MCPImplementation, revisions: [MCPRevision] = [.v2026_07_28, .v2025_11_25], limits: MCPLimits = .default) {
        precondition(!revisions.isEmpty && Set(revisions).count == revisions.count, "MCPClientSession: revisions must be non-empty and distinct")
        self.clientInfo = clientInfo
        self.revisions = revisions
        self.limits = limits
    }

    // MARK: Negotiation

    /// The opening message: `server/discover` or `initialize`.
    public mutating func start() -> Step {
        guard phase == .notStarted else { return Step() }
        var step = Step()
        if revisions[0].requestsCarryMeta { probe(&step) } else { initialize(&step) }
        return step
    }

    /// The caller's clock ran out while negotiating. A probe that got no answer is a
    /// handshake-era server (some never answer an unknown method before `initialize`); a
    /// silent `initialize` fails. The unanswered request is not cancelled: neither may be.
    public mutating func negotiationTimedOut() -> Step {
        var step = Step()
        switch phase {
        case .discovering:
            pending = pending.filter { $0.value != .discover }
            fallBack(&step, reason: "no answer to server/discover")
        case .initializing:
            fail(&step, MCPError(.timedOut, "no answer to initialize"))
        default: break
        }
        return step
    }

    private mutating func allocateID() -> MCPRequestID {
        nextID += 1
        return .int(nextID)
    }

    private func envelope(_ revision: MCPRevision, progressToken: MCPRequestID? = nil) -> JSON {
        MCPRequestMeta(protocolVersion: revision.version, clientCapabilities: .object([]), clientInfo: clientInfo,
                       progressToken: progressToken).json
    }

    private mutating func probe(_ step: inout Step) {
        let id = allocateID()
        pending[id] = .discover
        phase = .discovering
        step.send.append(.request(id: id, method: MCPMethod.discover, params: .object([("_meta", envelope(.v2026_07_28))])))
    }

    private mutating func initialize(_ step: inout Step) {
        let id = allocateID()
        pending[id] = .initialize
        phase = .initializing
        let params = MCPInitializeParams(protocolVersion: MCPRevision.v2025_11_25.version, clientInfo: clientInfo)
        step.send.append(.request(id: id, method: MCPMethod.initialize, params: params.json))
    }

    private mutating func fail(_ step: inout Step, _ error: MCPError) {
        phase = .failed(error)
        pending.removeAll()
        listing = nil
        step.events.append(.failed(error))
    }

    private mutating func fallBack(_ step: inout Step, reason: String) {
        guard revisions.contains(.v2025_11_25) else {
            return fail(&step, MCPError(.unsupportedVersion, "the server does not speak 2026-07-28 (\(reason)), and 2025-11-25 is not allowed"))
        }
        step.events.append(.fellBack(from: .v2026_07_28, to: .v2025_11_25, reason: reason))
        initialize(&step)
    }

    private mutating func settle(_ step: inout Step, _ result: Negotiated) {
        phase = .ready(result.revision)
        negotiated = result
        step.events.append(.negotiated(result))
    }

    private mutating func discoverAnswered(_ step: inout Step, _ answer: Result<JSON, MCPErrorObject>) {
        switch answer {
        case .success(let json):
            let result: MCPDiscoverResult
            do { result = try MCPDiscoverResult.parse(json, limits: limits) } catch {
                // Not evidence of a stateless-era server.
                return fallBack(&step, reason: "unreadable server/discover result: \(error)")
            }
            if let revision = result.modernRevisions.last(where: { revisions.contains($0) }) {
                return settle(&step, Negotiated(revision: revision, serverInfo: result.serverInfo, capabilities: result.capabilities,
                                                instructions: result.instructions, supportedVersions: result.supportedVersions))
            }
            if result.supportedVersions.contains(MCPRevision.v2025_11_25.version) || result.modernRevisions.isEmpty {
                return fallBack(&step, reason: "server/discover names no 2026-07-28 version (\(list(result.supportedVersions)))")
            }
            fail(&step, MCPError(.unsupportedVersion, "the server supports \(list(result.supportedVersions)), Cordon \(list(revisions.map(\.version)))"))
        case .failure(let error):
            if let unsupported = MCPUnsupportedVersion.parse(error, limits: limits) {
                // A stateless-era server: no blind fallback, a version from its list or nothing.
                if unsupported.supported.contains(MCPRevision.v2025_11_25.version) && revisions.contains(.v2025_11_25) {
                    return fallBack(&step, reason: "the server refused 2026-07-28 and supports \(list(unsupported.supported))")
                }
                return fail(&step, MCPError(.unsupportedVersion,
                                            "the server refused 2026-07-28 and supports \(list(unsupported.supported)), none of which Cordon speaks"))
            }
            if error.code == MCPErrorCode.missingRequiredClientCapability, error.data?["requiredCapabilities"] != nil {
                return fail(&step, MCPError(.peerError(error.code), "the server requires client capabilities Cordon does not offer: \(error.message)"))
            }
            fallBack(&step, reason: "server/discover answered with \(error)")
        }
    }

    private mutating func initializeAnswered(_ step: inout Step, _ answer: Result<JSON, MCPErrorObject>) {
        switch answer {
        case .success(let json):
            let result: MCPInitializeResult
            do { result = try MCPInitializeResult.parse(json, limits: limits) } catch {
                return fail(&step, error)
            }
            guard result.protocolVersion == MCPRevision.v2025_11_25.version else {
                return fail(&step, MCPError(.unsupportedVersion, "the server answered initialize with \(result.protocolVersion); Cordon speaks 2025-11-25 in the handshake era",
                                            field: "result.protocolVersion"))
            }
            settle(&step, Negotiated(revision: .v2025_11_25, serverInfo: result.serverInfo, capabilities: result.capabilities,
                                     instructions: result.instructions, supportedVersions: []))
            step.send.append(.notification(method: MCPMethod.initialized, params: nil))
        case .failure(let error):
            if let unsupported = MCPUnsupportedVersion.parse(error, limits: limits),
               unsupported.supported.contains(MCPRevision.v2026_07_28.version), revisions.contains(.v2026_07_28), !reprobed {
                reprobed = true
                step.events.append(.fellBack(from: .v2025_11_25, to: .v2026_07_28, reason: "the server refused initialize and supports \(list(unsupported.supported))"))
                return probe(&step)
            }
            fail(&step, MCPError(.peerError(error.code), "the server refused initialize: \(error.message)"))
        }
    }

    private func list(_ versions: [String]) -> String {
        versions.isEmpty ? "no version" : versions.map { String($0.prefix(64)) }.joined(separator: ", ")
    }

    // MARK: Requests after negotiation

    private func ready() throws(MCPError) -> MCPRevision {
        guard case .ready(let revision) = phase else { throw MCPError(.protocolViolation, "not negotiated yet (\(phase))") }
        return revision
    }

    /// Lists every tool, page after page (the session asks for the next page itself); ends in
    /// `.tools` or `.toolsFailed`. One listing at a time.
    public mutating func listTools() throws(MCPError) -> Step {
        let revision = try ready()
        guard listing == nil else { throw MCPError(.protocolViolation, "a tool listing is already under way") }
        var step = Step()
        let id = requestPage(&step, revision, cursor: nil)
        listing = (id, [], ToolListing())
        return step
    }

    private mutating func requestPage(_ step: inout Step, _ revision: MCPRevision, cursor: String?) -> MCPRequestID {
        let id = allocateID()
        pending[id] = .listTools
        var params: [(String, JSON)] = []
        if revision.requestsCarryMeta { params.append(("_meta", envelope(revision))) }
        if let cursor { params.append(("cursor", .string(cursor))) }
        step.send.append(.request(id: id, method: MCPMethod.listTools, params: params.isEmpty ? nil : .object(params)))
        return id
    }

    /// Calls a tool; the answer comes as `.toolResult` or `.requestFailed` with this id.
    public mutating func callTool(_ call: MCPCallToolParams, progressToken: MCPRequestID? = nil) throws(MCPError) -> (id: MCPRequestID, step: Step) {
        let revision = try ready()
        if let problem = MCPToolName.problem(call.name) { throw .invalid("params.name", problem) }
        if let arguments = call.arguments, !arguments.isObject { throw .invalid("params.arguments", "expected an object, got \(arguments.typeName)") }
        let id = allocateID()
        pending[id] = .callTool
        var params = call.members
        if revision.requestsCarryMeta {
            params.append(("_meta", envelope(revision, progressToken: progressToken)))
        } else if let progressToken {
            params.append(("_meta", .object([(MCPMetaKey.progressToken, progressToken.json)])))
        }
        var step = Step()
        step.send.append(.request(id: id, method: MCPMethod.callTool, params: .object(params)))
        return (id, step)
    }

    /// Gives up on a request: `notifications/cancelled` is sent and a late answer ignored. The
    /// negotiation's own requests are not cancelled (2025-11-25, Cancellation, 2).
    public mutating func cancel(_ id: MCPRequestID, reason: String? = nil) -> Step {
        var step = Step()
        guard let kind = pending[id], kind != .discover, kind != .initialize else { return step }
        pending[id] = nil
        if listing?.id == id { listing = nil }
        if subscriptionID == id { subscriptionID = nil }
        step.send.append(.notification(method: MCPMethod.cancelled, params: MCPCancellation(requestID: id, reason: reason).json))
        return step
    }

    /// Asks for `notifications/tools/list_changed`. 2026-07-28 sends them only on a
    /// `subscriptions/listen` stream; a 2025-11-25 server that declared `listChanged` just sends
    /// them, so nothing goes out then.
    public mutating func subscribeToToolChanges() throws(MCPError) -> Step {
        let revision = try ready()
        var step = Step()
        guard revision.listChangedNeedsSubscription, subscriptionID == nil else { return step }
        guard negotiated?.capabilities.toolsListChanged == true else {
            step.events.append(.ignored("the server does not announce tool list changes"))
            return step
        }
        let id = allocateID()
        pending[id] = .subscription
        subscriptionID = id
        step.send.append(.request(id: id, method: MCPMethod.subscriptionsListen,
                                  params: .object([("_meta", envelope(revision)), ("notifications", .object([("toolsListChanged", .bool(true))]))])))
        return step
    }

    // MARK: Receiving

    /// One line the server wrote.
    public mutating func receive(_ line: some Collection<UInt8>) -> Step {
        var step = Step()
        if case .failed = phase {
            step.events.append(.ignored("the session has failed"))
            return step
        }
        let message: MCPMessage
        do { message = try MCPMessage.parse(line, limits: limits) } catch {
            step.events.append(.ignored("unreadable message from the server: \(error)"))
            return step
        }
        switch message {
        case .result(let id, let result): response(&step, id, .success(result))
        case .error(let id?, let error): response(&step, id, .failure(error))
        case .error(nil, let error):
            // A server that could not read the probe answers without an id: that is its answer.
            if phase == .discovering, let probe = pending.first(where: { $0.value == .discover })?.key {
                response(&step, probe, .failure(error))
            } else {
                step.events.append(.ignored("an error without an id: \(error)"))
            }
        case .request(let id, let method, _): serverRequest(&step, id, method)
        case .notification(let method, let params): notification(&step, method, params)
        }
        return step
    }

    private mutating func response(_ step: inout Step, _ id: MCPRequestID, _ answer: Result<JSON, MCPErrorObject>) {
        guard let kind = pending.removeValue(forKey: id) else {
            step.events.append(.ignored("a response to \(id), which is not pending (answered, cancelled or abandoned)"))
            return
        }
        switch kind {
        case .discover: discoverAnswered(&step, answer)
        case .initialize: initializeAnswered(&step, answer)
        case .listTools: pageAnswered(&step, id, answer)
        case .callTool:
            switch answer {
            case .success(let json):
                do { step.events.append(.toolResult(id: id, try MCPCallToolOutcome.parse(json, limits: limits))) } catch {
                    step.events.append(.requestFailed(id: id, error))
                }
            case .failure(let error):
                step.events.append(.requestFailed(id: id, MCPError(.peerError(error.code), error.message)))
            }
        case .subscription:
            subscriptionID = nil
            step.events.append(.subscriptionEnded)
        }
    }

    private mutating func pageAnswered(_ step: inout Step, _ id: MCPRequestID, _ answer: Result<JSON, MCPErrorObject>) {
        guard var current = listing, current.id == id, case .ready(let revision) = phase else { return }
        listing = nil
        let page: MCPListToolsResult
        switch answer {
        case .failure(let error): return step.events.append(.toolsFailed(MCPError(.peerError(error.code), error.message)))
        case .success(let json):
            do { page = try MCPListToolsResult.parse(json, limits: limits) } catch { return step.events.append(.toolsFailed(error)) }
        }
        var names = Set(current.result.tools.map(\.name))
        for tool in page.tools {
            if names.insert(tool.name).inserted {
                current.result.tools.append(tool)
            } else {
                current.result.rejected.append(MCPRejectedTool(index: current.result.tools.count, name: tool.name,
                                                               error: .invalid("result.tools", "\"\(tool.name)\" is listed on two pages")))
            }
        }
        current.result.rejected += page.rejected
        current.result.pages += 1
        if let ttl = page.ttlMs { current.result.ttlMs = min(current.result.ttlMs ?? ttl, ttl) }
        if let scope = page.cacheScope { current.result.cacheScope = current.result.cacheScope == .private ? .private : scope }
        guard current.result.tools.count <= limits.maxTools else {
            return step.events.append(.toolsFailed(.limit("result.tools", "more than \(limits.maxTools) tools in all")))
        }
        guard let cursor = page.nextCursor else { return step.events.append(.tools(current.result)) }
        guard current.result.pages < limits.maxPages else {
            return step.events.append(.toolsFailed(.limit("result.nextCursor", "more than \(limits.maxPages) pages")))
        }
        guard current.cursors.insert(cursor).inserted else {
            return step.events.append(.toolsFailed(.invalid("result.nextCursor", "a cursor seen before: the server pages in a loop")))
        }
        current.id = requestPage(&step, revision, cursor: cursor)
        listing = current
    }

    private mutating func serverRequest(_ step: inout Step, _ id: MCPRequestID, _ method: String) {
        switch phase {
        case .initializing, .ready(.v2025_11_25):
            // The handshake era lets a server ping its client; Cordon declares nothing else.
            if method == MCPMethod.ping {
                step.send.append(.result(id: id, result: .object([])))
            } else {
                step.send.append(.error(id: id, .methodNotFound(method)))
            }
        default:
            // 2026-07-28 servers send no requests, and its clients write no responses.
            step.events.append(.ignored("a request (\(method.prefix(64))) from a server that may send none"))
        }
    }

    private mutating func notification(_ step: inout Step, _ method: String, _ params: JSON?) {
        guard case .ready(let revision) = phase else {
            step.events.append(.ignored("a notification (\(method.prefix(64))) before negotiation ended"))
            return
        }
        let subscription = params?["_meta"]?[MCPMetaKey.subscriptionID].flatMap { try? MCPRequestID.parse($0, field: "", maxBytes: limits.maxTokenBytes) }
        switch method {
        case MCPMethod.toolsListChanged:
            if !revision.listChangedNeedsSubscription || (subscription != nil && subscription == subscriptionID) {
                step.events.append(.toolsListChanged)
            } else {
                step.events.append(.ignored("a tool list change outside the subscription"))
            }
        case MCPMethod.subscriptionsAcknowledged:
            guard subscription != nil, subscription == subscriptionID else {
                return step.events.append(.ignored("an acknowledgement of no subscription of this session"))
            }
            step.events.append(.subscribed(toolsListChanged: params?["notifications"]?["toolsListChanged"] == .bool(true)))
        case MCPMethod.cancelled:
            // From a 2026-07-28 server it can only end a subscription.
            if let cancelled = try? MCPCancellation.parse(params, limits: limits), cancelled.requestID == subscriptionID, let id = subscriptionID {
                pending[id] = nil
                subscriptionID = nil
                step.events.append(.subscriptionEnded)
            } else {
                step.events.append(.ignored("a cancellation of no request of this session"))
            }
        case MCPMethod.progress:
            guard let fields = try? Fields(optional: params, path: "params"), let rawToken = fields.raw("progressToken"),
                  let token = try? MCPRequestID.parse(rawToken, field: "params.progressToken", maxBytes: limits.maxTokenBytes),
                  let progress = try? fields.number("progress") else {
                return step.events.append(.ignored("an unreadable progress notification"))
            }
            step.events.append(.progress(token: token, progress: progress, total: (try? fields.number("total")) ?? nil,
                                         message: (try? fields.string("message", maxBytes: limits.maxErrorMessageBytes)) ?? nil))
        default:
            step.events.append(.notification(method: method, params: params))
        }
    }
}
