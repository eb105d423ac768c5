import CordonJSON
import CordonMCP
import CordonSystem
import Synchronization

/// An MCP server in a sandbox, as the pool's `ServiceClient`: `MCPClientSession` (CordonMCP)
/// decides what is said — the revision negotiated, pages listed, results read, bounded — and a
/// `JSONRPCConnection` in raw mode carries it (the session's ids, the connection's deadlines).
/// Untrusted bytes from the server are read by the session under its limits.
///
/// Readiness is the negotiation (2026-07-28 probe with fallback to the 2025-11-25 handshake)
/// followed by a complete tool listing; health is `ping` in 2025-11-25 and a listing in
/// 2026-07-28 (which has no ping).
public final class MCPServiceClient: ServiceClient, @unchecked Sendable {
    public enum CallFailure: Error, Equatable, Sendable {
        /// The server answered with a JSON-RPC error (or an unreadable result).
        case server(MCPError)
        case timeout
        /// The instance's stream ended before the answer.
        case closed
        case busy
    }

    public let connection: JSONRPCConnection
    private let session: Mutex<MCPClientSession>
    private let monitor = Monitor()
    // Guarded by `monitor`.
    private var negotiation: Result<MCPClientSession.Negotiated, MCPError>?
    private var listing: Result<MCPClientSession.ToolListing, MCPError>?
    /// Those waiting for the listing in flight (one tools/list at a time answers them all).
    private var listWaiters: [@Sendable (Result<MCPClientSession.ToolListing, MCPError>) -> Void] = []
    /// Bumped when the server says its list changed: a listing asked for before is not kept.
    private var listChanges = 0
    private var listingAskedAt = 0
    private var calls: [MCPRequestID: @Sendable (Result<MCPCallToolOutcome, CallFailure>) -> Void] = [:]
    private let ownIDs = Atomic<Int64>(0)
    private let onToolsChanged: @Sendable () -> Void

    /// What negotiation settled, once it has.
    public var negotiated: MCPClientSession.Negotiated? { session.withLock { $0.negotiated } }
    public var isOpen: Bool { connection.isOpen }

    public init(process: SandboxedProcess, clientInfo: MCPImplementation,
                revisions: [MCPRevision] = [.v2026_07_28, .v2025_11_25], limits: MCPLimits = .default,
                maxInFlight: Int = 64, onToolsChanged: @escaping @Sendable () -> Void = {}) throws(SystemError) {
        session = Mutex(MCPClientSession(clientInfo: clientInfo, revisions: revisions, limits: limits))
        self.onToolsChanged = onToolsChanged
        let box = WeakBox()
        connection = try JSONRPCConnection(process: process, maxInFlight: maxInFlight, onNotification: { method, params in
            var members: [(String, JSON)] = [("jsonrpc", .string("2.0")), ("method", .string(method))]
            if let params { members.append(("params", params)) }
            box.client?.receive(.object(members))
        }, onUnmatched: { message in box.client?.receive(message) })
        box.client = self
    }

    private final class WeakBox: @unchecked Sendable { weak var client: MCPServiceClient? }

    // MARK: ServiceClient

    /// Negotiates, then lists the tools; returns `{"revision", "server", "tools": [names]}`.
    public func ready(deadline: Double) throws(ServicePool.ServiceError) -> JSON {
        // The probe gets part of the time: a handshake-era server may never answer it.
        let probeDeadline = min(deadline, MonotonicClock.now + max(1, (deadline - MonotonicClock.now) / 3))
        dispatch(session.withLock { $0.start() }, deadline: deadline, probeDeadline: probeDeadline)
        let negotiated: MCPClientSession.Negotiated
        switch monitor.locked({ () -> Result<MCPClientSession.Negotiated, MCPError>? in
            _ = monitor.wait(until: deadline) { negotiation != nil }
            return negotiation
        }) {
        case .success(let n)?: negotiated = n
        case .failure(let e)?: throw ServicePool.ServiceError("MCP negotiation failed: \(e)")
        case nil: throw ServicePool.ServiceError("no answer to the MCP handshake in time")
        }
        let tools: MCPClientSession.ToolListing
        do { tools = try listTools(deadline: deadline) } catch { throw ServicePool.ServiceError("tools/list failed: \(error)") }
        if negotiated.capabilities.toolsListChanged, let step = try? session.withLock({ s throws(MCPError) in try s.subscribeToToolChanges() }) {
            dispatch(step, deadline: .infinity)
        }
        var members: [(String, JSON)] = [("revision", .string(negotiated.revision.version))]
        if let server = negotiated.serverInfo { members.append(("server", .string("\(server.name) \(server.version)"))) }
        members.append(("tools", .array(tools.tools.map { .string($0.name) })))
        return .object(members)
    }

    public func healthy(deadline: Double) -> Bool {
        guard let revision = negotiated?.revision else { return false }
        if revision == .v2025_11_25 {
            // Our own ids are negative: the session's are positive.
            let id = -(ownIDs.add(1, ordering: .relaxed).newValue)
            let box = Awaited<Bool>()
            let request = JSON.object([("jsonrpc", .string("2.0")), ("id", .int(id)), ("method", .string("ping"))])
            connection.startRaw(id: id, message: request, deadline: deadline) { result in
                let ok: Bool
                if case .success(let line) = result { ok = (try? JSON.parse(line))?["result"] != nil } else { ok = false }
                box.set(ok)
            }
            return box.wait(until: deadline) ?? false
        }
        return (try? listTools(deadline: deadline)) != nil
    }

    // MARK: Calls

    /// The complete listing this instance gave last (at readiness, or since), unless the
    /// server said its list changed after it.
    public var knownListing: MCPClientSession.ToolListing? {
        monitor.locked { if case .success(let l)? = listing { return l }; return nil }
    }

    /// Every tool of every page, blocking until then (health checks).
    public func listTools(deadline: Double) throws(MCPError) -> MCPClientSession.ToolListing {
        let answer = Awaited<Result<MCPClientSession.ToolListing, MCPError>>()
        listTools(deadline: deadline) { answer.set($0) }
        switch answer.wait(until: deadline + 1) {
        case .success(let l)?: return l
        case .failure(let e)?: throw e
        case nil: throw MCPError(.timedOut, "no complete tools/list in time")
        }
    }

    /// Every tool of every page; `completion` runs once, on the connection's reader thread (or
    /// here). A listing already in flight answers this one too (its deadline then applies).
    public func listTools(deadline: Double, completion: @escaping @Sendable (Result<MCPClientSession.ToolListing, MCPError>) -> Void) {
        let started = monitor.locked { () -> Result<MCPClientSession.Step, MCPError>? in
            listWaiters.append(completion)
            guard listWaiters.count == 1 else { return nil }
            listing = nil
            listingAskedAt = listChanges
            return Result { () throws(MCPError) in try session.withLock { s throws(MCPError) in try s.listTools() } }
        }
        switch started {
        case nil: return
        case .success(let step)?: dispatch(step, deadline: deadline)
        case .failure(let e)?: answerListing(.failure(e))
        }
    }

    private func answerListing(_ result: Result<MCPClientSession.ToolListing, MCPError>) {
        let waiters = monitor.locked { () -> [@Sendable (Result<MCPClientSession.ToolListing, MCPError>) -> Void] in
            // One asked for before the server changed its list answers its waiters, but is not
            // the instance's known listing.
            listing = listingAskedAt == listChanges ? result : nil
            monitor.broadcast()
            defer { listWaiters = [] }
            return listWaiters
        }
        for w in waiters { w(result) }
    }

    /// Calls `name`; `completion` runs once, on the connection's reader thread (or here, when
    /// the call cannot be sent). A timeout sends `notifications/cancelled` for it.
    public func callTool(_ name: String, arguments: JSON?, deadline: Double,
                         completion: @escaping @Sendable (Result<MCPCallToolOutcome, CallFailure>) -> Void) {
        let started: (id: MCPRequestID, step: MCPClientSession.Step)
        do { started = try session.withLock { s throws(MCPError) in try s.callTool(MCPCallToolParams(name: name, arguments: arguments)) } }
        catch { completion(.failure(.server(error))); return }
        monitor.locked { calls[started.id] = completion }
        dispatch(started.step, deadline: deadline)
    }

    // MARK: Inside

    /// Sends what the session said to send; answers come back through `receive`.
    private func dispatch(_ step: MCPClientSession.Step, deadline: Double, probeDeadline: Double? = nil) {
        handle(step.events)
        for message in step.send {
            switch message {
            case .request(let id, let method, _):
                guard case .int(let n) = id else { continue }  // the session's ids are integers
                let isProbe = method == "server/discover" && probeDeadline != nil
                connection.startRaw(id: n, message: message.json, deadline: isProbe ? probeDeadline! : deadline) { [weak self] result in
                    guard let self else { return }
                    switch result {
                    case .success(let line): receive(line: line)
                    case .failure(let failure): requestFailed(id: id, method: method, failure, deadline: deadline)
                    }
                }
            default:
                connection.sendRaw(message.json, deadline: MonotonicClock.now + 5)
            }
        }
    }

    /// A message from the server, through the session.
    private func receive(_ message: JSON) { receive(line: Array(message.text.utf8)) }

    /// A line from the server, read by the session (its own parse, under its limits).
    private func receive(line: [UInt8]) {
        let step = session.withLock { $0.receive(line) }
        dispatch(step, deadline: MonotonicClock.now + 30)
    }

    private func requestFailed(id: MCPRequestID, method: String, _ failure: JSONRPCConnection.CallError, deadline: Double) {
        switch method {
        case "server/discover", "initialize":
            if failure == .timeout {
                dispatch(session.withLock { $0.negotiationTimedOut() }, deadline: deadline)
            } else {
                monitor.locked {
                    if negotiation == nil { negotiation = .failure(MCPError(.timedOut, "\(method): \(failure)")) }
                    monitor.broadcast()
                }
            }
        case "tools/call":
            let cancel = session.withLock { $0.cancel(id, reason: failure == .timeout ? "timed out" : nil) }
            if failure == .timeout { dispatch(cancel, deadline: MonotonicClock.now + 5) }
            let completion = monitor.locked { calls.removeValue(forKey: id) }
            let mapped: CallFailure = switch failure {
            case .timeout: .timeout
            case .busy: .busy
            case .closed, .sendFailed: .closed
            case .error(let code, let message, _): .server(MCPError(.peerError(code), message))
            }
            completion?(.failure(mapped))
        case "tools/list":
            _ = session.withLock { $0.cancel(id) }
            answerListing(.failure(MCPError(.timedOut, "tools/list: \(failure)")))
        default:
            break
        }
    }

    private func handle(_ events: [MCPClientSession.Event]) {
        for event in events {
            switch event {
            case .negotiated(let n):
                monitor.locked { negotiation = .success(n); monitor.broadcast() }
            case .failed(let e):
                let listingWaits = monitor.locked { () -> Bool in
                    if negotiation == nil { negotiation = .failure(e) }
                    monitor.broadcast()
                    return listing == nil || !listWaiters.isEmpty
                }
                if listingWaits { answerListing(.failure(e)) }
            case .tools(let l):
                answerListing(.success(l))
            case .toolsFailed(let e):
                answerListing(.failure(e))
            case .toolResult(let id, let outcome):
                monitor.locked { calls.removeValue(forKey: id) }?(.success(outcome))
            case .requestFailed(let id, let error):
                monitor.locked { calls.removeValue(forKey: id) }?(.failure(.server(error)))
            case .toolsListChanged:
                monitor.locked { listChanges += 1; listing = nil }
                onToolsChanged()
            default:
                break
            }
        }
    }
}
