import CordonJSON
import CordonModels
import CordonResilience
import CordonSandbox
import CordonServices
import CordonSystem
import Synchronization

/// How a model call ended, for the record and the metrics.
public enum ModelCallOutcome: String, Sendable, Equatable {
    case ok
    /// The caller may not use the model (or no model serves the task type for them).
    case refused
    /// No such model, or no model serves the task type.
    case notFound = "not found"
    /// The request cannot be served as written (context, tools, the provider's 400).
    case badRequest = "bad request"
    /// Every model tried failed, or none was available (breakers open, workers down).
    case unavailable
    case timeout
    /// The client went away (or stopped reading) before the answer was whole.
    case cancelled
}

/// Why a model call did not answer: what the client is told, and the HTTP status of it.
public struct ModelCallFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var outcome: ModelCallOutcome
    public var message: String
    /// The last provider's failure, when one was tried.
    public var provider: ProviderError?
    /// How long to wait before trying again (the soonest breaker's reopening, a provider's
    /// retry-after), when known.
    public var retryAfterSeconds: Double?
    /// The field of the request at fault, for a bad request.
    public var field: String?

    public init(_ outcome: ModelCallOutcome, _ message: String, provider: ProviderError? = nil, field: String? = nil) {
        self.outcome = outcome
        self.message = message
        self.provider = provider
        self.field = field
    }

    public var description: String { message }

    /// The status Cordon's endpoint answers with.
    public var httpStatus: Int {
        switch outcome {
        case .ok: return 200
        case .refused: return 403
        case .notFound: return 404
        case .badRequest: return provider?.status.flatMap { (400..<500).contains($0) ? $0 : nil } ?? 400
        case .unavailable: return provider?.kind == .rateLimited ? 429 : 503
        case .timeout: return 504
        case .cancelled: return 499
        }
    }
}

/// One model call as the audit store keeps it. Never holds a key, a prompt or an answer: sizes,
/// counts and the provider's classification of a failure only.
public struct ModelCallRecord: Sendable {
    public struct Attempt: Sendable, Equatable {
        public var model: String
        public var provider: String
        public var outcome: String
        public var message: String?
        public var status: Int?
        public var seconds: Double
    }

    /// Cordon's completion id (the handle `/v1/feedback` names).
    public var id: String
    public var time: Double
    public var caller: ModelGateway.Caller
    /// As the client asked: a model's name, `auto` or `auto:TYPE`.
    public var requested: String
    public var taskType: String?
    /// The model that answered, or the last one tried.
    public var model: String?
    public var provider: String?
    /// Why that model: `named`, or the selector's pick and its belief.
    public var reason: String
    public var attempts: [Attempt] = []
    public var stream: Bool
    public var inputTokens: Int?
    public var outputTokens: Int?
    public var cost: Double?
    public var firstTokenSeconds: Double?
    public var latencySeconds: Double = 0
    public var outcome: ModelCallOutcome = .ok
    public var message: String?
    public var finishReason: String?
    public var upstreamID: String?
    /// The worker's sandbox: its policy and the policy's hash, and what it was refused
    /// during the call.
    public var policy: String?
    public var policyHash: String?
    public var denials: [Denial] = []
    public var requestBytes: Int
    public var answerBytes = 0
}

extension ModelGateway {

    /// The models to try for `request`, in order, or why there are none. A named model comes
    /// first with its fallbacks; `auto:TYPE` asks the task type's selector, then tries the
    /// chosen model's fallbacks and the other eligible models by the selector's mean utility.
    ///
    /// Panic (as Envoy's load balancers call it): when the only reason no model is eligible is
    /// that every breaker is open, all of them are tried anyway, through their breakers — a
    /// breaker guards against sending load to an outage, and refusing every call is the outage.
    func plan(_ request: ChatRequest, caller: Caller) -> Result<(models: [ModelCatalog.Model], taskType: String?, reason: String, panic: Bool), ModelCallFailure> {
        switch plan(request, caller: caller, ignoringBreakers: false) {
        case .success(let p): return .success((p.models, p.taskType, p.reason, false))
        case .failure(let f) where f.outcome == .unavailable:
            guard case .success(let p) = plan(request, caller: caller, ignoringBreakers: true) else { return .failure(f) }
            return .success((p.models, p.taskType, "panic: every eligible model's breaker is open; " + p.reason, true))
        case .failure(let f): return .failure(f)
        }
    }

    private func plan(_ request: ChatRequest, caller: Caller, ignoringBreakers: Bool) -> Result<(models: [ModelCatalog.Model], taskType: String?, reason: String), ModelCallFailure> {
        let prompt = Self.promptTokens(request)
        switch request.model {
        case .named(let name):
            guard let model = catalog.model(named: name) else {
                return .failure(ModelCallFailure(.notFound, "no model named \"\(String(name.prefix(128)))\" (GET /v1/models or `cordon model list` lists them)", field: "model"))
            }
            guard models(for: caller).contains(where: { $0.name == name }) else {
                return .failure(ModelCallFailure(.refused, "uid \(caller.uid) may not use model \(name)", field: "model"))
            }
            var order: [ModelCatalog.Model] = []
            var reasons: [String] = []
            for candidate in [model] + model.fallbacks.compactMap({ catalog.model(named: $0) }) {
                if let why = ineligibility(candidate, request, caller, promptTokens: prompt, ignoringBreaker: ignoringBreakers) { reasons.append("\(candidate.name): \(why)") }
                else { order.append(candidate) }
            }
            guard !order.isEmpty else { return .failure(noneEligible(reasons, request)) }
            return .success((order, model.taskTypes.first, reasons.isEmpty ? "named" : "named; skipped \(reasons.joined(separator: "; "))"))
        case .auto(let type):
            let serving = catalog.models.filter { $0.taskTypes.contains(type) }
            guard !serving.isEmpty else {
                return .failure(ModelCallFailure(.notFound, "no model serves task type \"\(String(type.prefix(64)))\" (served: \(catalog.taskTypes.joined(separator: ", ")))", field: "model"))
            }
            var eligible: [ModelCatalog.Model] = []
            var reasons: [String] = []
            for m in serving {
                if let why = ineligibility(m, request, caller, promptTokens: prompt, ignoringBreaker: ignoringBreakers) { reasons.append("\(m.name): \(why)") } else { eligible.append(m) }
            }
            guard !eligible.isEmpty else { return .failure(noneEligible(reasons, request)) }
            let candidates = eligible.map { DiscountedThompson.Candidate($0.name, inputPricePer1k: $0.priceInput, outputPricePer1k: $0.priceOutput) }
            guard let choice = selection.choose(taskType: type, among: candidates) else { return .failure(noneEligible(reasons, request)) }
            let chosen = eligible[choice.index]
            var order = [chosen]
            for name in chosen.fallbacks { if let m = eligible.first(where: { $0.name == name }), !order.contains(m) { order.append(m) } }
            let ranked = zip(eligible, choice.candidates).sorted { $0.1.meanUtility > $1.1.meanUtility }.map(\.0)
            for m in ranked where !order.contains(m) { order.append(m) }
            let belief = choice.candidates[choice.index]
            let pick: String
            switch choice.pick {
            case .untried: pick = "untried (every eligible model is tried once first)"
            case .explore: pick = "explored (the exploration chance came up)"
            case .exploit: pick = "highest draw"
            }
            let reason = "selector: \(pick); success \(Self.short(belief.success)), median latency \(Self.short(belief.latencyMedianSeconds)) s, expected cost \(Self.short(belief.expectedCost)), P(best) \(belief.probabilityBest.map(Self.short) ?? "-")"
            return .success((order, type, reason))
        }
    }

    static func short(_ d: Double) -> String {
        guard d.isFinite else { return "\(d)" }
        let scaled = (d * 1000).rounded() / 1000
        return "\(scaled)"
    }

    private func noneEligible(_ reasons: [String], _ request: ChatRequest) -> ModelCallFailure {
        // Only what will pass by itself makes it unavailable; the request's own shape is its fault.
        let transient = reasons.allSatisfy { $0.hasSuffix("its breaker is open") || $0.contains("is not available") }
        return ModelCallFailure(transient ? .unavailable : .badRequest, "no model can serve this request: " + reasons.joined(separator: "; "))
    }

    /// Makes the call. `id` is Cordon's completion id (unique; the daemon makes it). With
    /// `onDelta` the answer streams (each delta in order, on a worker's reader thread; return
    /// false when the client is gone); without, the whole answer comes in the completion.
    /// `completion` runs once, with the record to keep.
    public func chat(_ request: ChatRequest, id: String, caller: Caller, deadline: Double, requestBytes: Int,
                     onDelta: (@Sendable (ChatDelta) -> Bool)?,
                     completion: @escaping @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void) {
        let start = MonotonicClock.now
        let requested: String
        switch request.model {
        case .named(let n): requested = n
        case .auto(let t): requested = t == "chat" ? "auto" : "auto:\(t)"
        }
        let record = ModelCallRecord(id: id, time: UTCTime.epochSeconds(), caller: caller, requested: String(requested.prefix(128)), reason: "",
                                     stream: onDelta != nil, requestBytes: requestBytes)
        let state = CallState(record, start: start)
        live.withLock { $0[id] = state }
        switch plan(request, caller: caller) {
        case .failure(let f):
            finish(state, .failure(f), completion)
        case .success(let (order, type, reason, panic)):
            state.lock.withLock { _ in
                state.record.taskType = type
                state.record.reason = reason
                state.panic = panic
            }
            attempt(order, 0, request: request, deadline: deadline, state: state, onDelta: onDelta, last: nil, completion: completion)
        }
    }

    /// Abandons call `id` (its client went away): the attempt in flight is cancelled at the
    /// worker, no further attempt is made, and no model is blamed. Unknown ids are ignored.
    public func cancel(_ id: String) {
        guard let state = live.withLock({ $0[id] }) else { return }
        let worker = state.lock.withLock { _ -> ModelWorkerClient? in
            state.clientLeft = true
            state.streamFailure = state.streamFailure ?? ProviderError(.connection, "the client went away")
            return state.worker
        }
        worker?.cancel(id)
    }

    private func finish(_ state: CallState, _ result: Result<ChatResult, ModelCallFailure>,
                        _ completion: @escaping @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void) {
        live.withLock { _ = $0.removeValue(forKey: state.record.id) }
        let record = state.lock.withLock { _ -> ModelCallRecord in
            var r = state.record
            r.latencySeconds = MonotonicClock.now - state.start
            switch result {
            case .success(let answer):
                r.outcome = .ok
                r.finishReason = answer.finishReason?.wire
                r.answerBytes = (answer.content?.utf8.count ?? 0) + answer.toolCalls.reduce(0) { $0 + $1.arguments.utf8.count + $1.name.utf8.count }
            case .failure(let f):
                r.outcome = f.outcome
                r.message = f.message
            }
            return r
        }
        save()
        completion(record, result)
    }

    /// One attempt's fixed facts, passed from the lease to the answer.
    private struct Attempting: @unchecked Sendable {
        var order: [ModelCatalog.Model]
        var index: Int
        var request: ChatRequest
        var deadline: Double
        var callDeadline: Double
        var started: Double
        var state: CallState
        var onDelta: (@Sendable (ChatDelta) -> Bool)?
        var completion: @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void
        var model: ModelCatalog.Model { order[index] }
        var provider: ModelCatalog.Provider
        var breaker: CircuitBreaker
        var ticket: TicketHolder
        /// A local provider's server, held for the call.
        var server: ServerHold?
    }

    /// A call's hold on its local server: released once; as hung (the pool stops it and starts
    /// another, without charging its restart budget: a caller can make a server slow) when the
    /// call timed out on the server's account and the server then failed a probe.
    final class ServerHold: @unchecked Sendable {
        let lease: ServicePool.Lease
        let local: LocalServer
        private let released = Atomic<Bool>(false)
        init(_ lease: ServicePool.Lease, _ local: LocalServer) {
            self.lease = lease
            self.local = local
            local.busy.wrappingAdd(1, ordering: .relaxed)
        }
        func release(hung: Bool) {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            local.busy.wrappingSubtract(1, ordering: .relaxed)
            if hung { lease.releaseReplacing() } else { lease.release() }
        }
        deinit { release(hung: false) }
    }

    private func attempt(_ order: [ModelCatalog.Model], _ i: Int, request: ChatRequest, deadline: Double, state: CallState,
                         onDelta: (@Sendable (ChatDelta) -> Bool)?, last: ModelCallFailure?,
                         completion: @escaping @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void) {
        let now = MonotonicClock.now
        if state.lock.withLock({ _ in state.clientLeft }) {
            return finish(state, .failure(ModelCallFailure(.cancelled, "the client went away")), completion)
        }
        guard i < order.count, i < Self.maxAttempts else {
            return finish(state, .failure(last ?? ModelCallFailure(.unavailable, "no model could be tried")), completion)
        }
        guard now < deadline else {
            return finish(state, .failure(ModelCallFailure(.timeout, "the call's deadline passed" + (last.map { " (after: \($0.message))" } ?? ""), provider: last?.provider)), completion)
        }
        let model = order[i]
        guard let provider = catalog.provider(named: model.provider), let breaker = breakerFor(model.name) else {
            return attempt(order, i + 1, request: request, deadline: deadline, state: state, onDelta: onDelta, last: last, completion: completion)
        }
        let ticket: TicketHolder
        switch breaker.acquire(at: MonotonicInstant(seconds: now)) {
        case .allowed(let t): ticket = TicketHolder(t)
        case .refused where state.lock.withLock({ _ in state.panic }):
            ticket = TicketHolder(nil)
        case .refused:
            state.lock.withLock { _ in
                state.record.attempts.append(.init(model: model.name, provider: provider.name, outcome: "breaker open", message: nil, status: nil, seconds: 0))
                state.record.model = model.name
                state.record.provider = provider.name
            }
            return attempt(order, i + 1, request: request, deadline: deadline, state: state, onDelta: onDelta,
                           last: ModelCallFailure(.unavailable, "the breaker of model \(model.name) is open"), completion: completion)
        }
        let a = Attempting(order: order, index: i, request: request, deadline: deadline, callDeadline: min(deadline, now + provider.timeoutSeconds),
                           started: now, state: state, onDelta: onDelta, completion: completion, provider: provider, breaker: breaker, ticket: ticket)
        guard let local = localServers[provider.name] else { return leaseWorker(a) }
        // A local provider's server first (started, or waited for, within the call's deadline).
        servers.lease(ServicePool.Key(service: Self.serverService(provider.name), owner: nil), deadline: a.callDeadline) { [self] leased in
            switch leased {
            case .success(let lease):
                var held = a
                held.server = ServerHold(lease, local)
                // A client that left while its call waited for the server: nothing is sent.
                if state.lock.withLock({ _ in state.clientLeft }) {
                    held.server?.release(hung: false)
                    _ = a.ticket.take()
                    return finish(state, .failure(ModelCallFailure(.cancelled, "the client went away")), a.completion)
                }
                leaseWorker(held)
            case .failure(let e):
                _ = a.ticket.take()
                state.lock.withLock { _ in
                    state.record.attempts.append(.init(model: model.name, provider: provider.name, outcome: "server unavailable", message: e.message,
                                                       status: nil, seconds: MonotonicClock.now - a.started))
                    state.record.model = model.name
                    state.record.provider = provider.name
                }
                next(a, ModelCallFailure(.unavailable, "the local server of provider \(provider.name) is not available: \(e.message)"))
            }
        }
    }

    private func leaseWorker(_ a: Attempting) {
        pool.lease(ServicePool.Key(service: Self.service(a.provider.name), owner: nil), deadline: a.callDeadline) { [self] leased in
            self.leased(leased, a)
        }
    }

    private func next(_ a: Attempting, _ failure: ModelCallFailure) {
        attempt(a.order, a.index + 1, request: a.request, deadline: a.deadline, state: a.state, onDelta: a.onDelta, last: failure, completion: a.completion)
    }

    private func leased(_ leased: Result<ServicePool.Lease, ServicePool.ServiceError>, _ a: Attempting) {
        let state = a.state, model = a.model, provider = a.provider
        let lease: ServicePool.Lease
        switch leased {
        case .failure(let e):
            // Not the model's doing: its worker was busy or would not start (the pool keeps
            // its own account of that). The ticket is dropped unrecorded (a probe's expires).
            _ = a.ticket.take()
            a.server?.release(hung: false)
            state.lock.withLock { _ in
                state.record.attempts.append(.init(model: model.name, provider: provider.name, outcome: "worker unavailable", message: e.message,
                                                   status: nil, seconds: MonotonicClock.now - a.started))
                state.record.model = model.name
                state.record.provider = provider.name
            }
            return next(a, ModelCallFailure(.unavailable, "the worker of provider \(provider.name) is not available: \(e.message)"))
        case .success(let l): lease = l
        }
        guard let client = lease.client as? ModelWorkerClient else {
            lease.release()
            a.server?.release(hung: false)
            return next(a, ModelCallFailure(.unavailable, "provider \(provider.name)'s instance is not a model worker"))
        }
        let process = client.connection.process
        let mark = process.denialMark
        let tag = lease.tag.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let left = state.lock.withLock { _ -> Bool in
            state.record.model = model.name
            state.record.provider = provider.name
            if tag.count == 2 { state.record.policy = String(tag[0]); state.record.policyHash = String(tag[1]) }
            state.accumulator = ChatAccumulator()
            state.indexer = ToolCallIndexer()
            if !state.clientLeft { state.streamFailure = nil }
            state.worker = client
            return state.clientLeft
        }
        // A client that left while its call waited for the worker: nothing is sent.
        if left {
            lease.release()
            a.server?.release(hung: false)
            _ = a.ticket.take()
            return finish(state, .failure(ModelCallFailure(.cancelled, "the client went away")), a.completion)
        }
        let attemptStart = MonotonicClock.now
        let body = OpenAIWire.requestBody(a.request, model: model.upstream, maxOutputTokens: model.maxOutputTokens,
                                          maxTokensField: model.maxTokensField)
        let forward = a.onDelta.map { Self.forwarder(state, $0) }
        defer {
            // cancel() may have come between the check above and the call's start, and found a
            // worker that did not know the call yet: it is told again now that it does.
            if state.lock.withLock({ _ in state.clientLeft }) { client.cancel(state.record.id) }
        }
        client.chat(call: state.record.id, body: body, stream: a.onDelta != nil, deadline: a.callDeadline, onDelta: forward) { [self] outcome in
            let ended = MonotonicClock.now
            // A worker that let its own deadline pass without answering is not trusted again.
            lease.release(unresponsive: ended > a.callDeadline + 1.5)
            // A local server may have hung the call: it had the provider's whole timeout (from
            // when the call reached it, not from when the call began to wait for it), or a
            // stream's idle limit passed well before the call's deadline. A caller's own shorter
            // deadline, or a client that left, says nothing of it. Then the server is probed (a
            // slow answer is not a hang): it is replaced only if it does not answer that either.
            if let server = a.server {
                var suspect = false
                if case .failure(let e) = outcome, e.kind == .timeout, !state.lock.withLock({ _ in state.clientLeft }) {
                    suspect = ended - attemptStart >= provider.timeoutSeconds - 0.5 || (a.onDelta != nil && ended < a.callDeadline - 0.5)
                }
                if suspect {
                    let wait = min(10, max(2, provider.idleSeconds))
                    let probing: Void? = try? Threads.detach("server-probe", signals: .noSIGPIPE) {
                        server.release(hung: client.probe(deadline: MonotonicClock.now + wait).status != 200)
                    }
                    if probing == nil { server.release(hung: true) }
                } else {
                    server.release(hung: false)
                }
            }
            let (denials, _) = process.denials(since: mark)
            answered(outcome, a, seconds: ended - attemptStart, denials: denials)
        }
    }

    /// Each streamed delta: normalized, added to the call's whole answer (under its limits),
    /// then given to the client. False stops the call.
    private static func forwarder(_ state: CallState, _ deliver: @escaping @Sendable (ChatDelta) -> Bool) -> @Sendable (ChatDelta) -> Bool {
        { delta in
            var delta = delta
            let ok: Bool = state.lock.withLock { _ in
                state.indexer.normalize(&delta)
                do throws(ProviderError) { try state.accumulator.add(delta) } catch {
                    state.streamFailure = error
                    return false
                }
                if state.record.firstTokenSeconds == nil { state.record.firstTokenSeconds = MonotonicClock.now - state.start }
                state.sentAny = true
                return true
            }
            guard ok else { return false }
            if deliver(delta) { return true }
            state.lock.withLock { _ in
                state.clientLeft = true
                state.streamFailure = state.streamFailure ?? ProviderError(.connection, "the client went away")
            }
            return false
        }
    }

    private func answered(_ outcome: Result<(ChatResult?, ModelWorkerClient.Finished), ProviderError>, _ a: Attempting, seconds: Double, denials: [Denial]) {
        let state = a.state, model = a.model, provider = a.provider
        let ended = MonotonicClock.now
        let result: Result<ChatResult, ProviderError>
        switch outcome {
        case .success(let (answer, finished)):
            let (failure, streamed) = state.lock.withLock { _ in (state.streamFailure, state.accumulator.result) }
            if let failure {
                result = .failure(failure)
            } else {
                var whole = answer ?? streamed
                whole.upstreamID = finished.upstreamID ?? whole.upstreamID
                result = .success(whole)
            }
        case .failure(let e):
            result = .failure(state.lock.withLock { _ in state.streamFailure } ?? e)
        }
        let cancelled = state.lock.withLock { _ -> Bool in
            for d in denials where !state.record.denials.contains(d) { state.record.denials.append(d) }
            return state.clientLeft
        }
        switch result {
        case .success(let answer):
            let input = answer.usage?.promptTokens ?? 0, output = answer.usage?.completionTokens ?? 0
            let cost = (Double(input) * model.priceInput + Double(output) * model.priceOutput) / 1000
            if let t = a.ticket.take() { a.breaker.record(t, outcome: .success, at: MonotonicInstant(seconds: ended)) }
            // Counts the provider did not give are unknown (-1: the learner ignores them), not 0.
            selection.record(model.name, taskTypes: model.taskTypes, outcome: .success, latency: seconds,
                             inputTokens: answer.usage?.promptTokens ?? -1, outputTokens: answer.usage?.completionTokens ?? -1, cost: cost)
            state.lock.withLock { _ in
                state.record.attempts.append(.init(model: model.name, provider: provider.name, outcome: "ok", message: nil, status: nil, seconds: seconds))
                state.record.inputTokens = answer.usage?.promptTokens
                state.record.outputTokens = answer.usage?.completionTokens
                state.record.cost = answer.usage == nil ? nil : cost
                state.record.upstreamID = answer.upstreamID
            }
            finish(state, .success(answer), a.completion)
        case .failure(let error):
            // The request's own fault, the client's leaving, or a deadline the caller set shorter
            // than the provider's timeout says nothing of the model (a caller could otherwise
            // open a healthy model's breaker for everyone with short deadlines).
            let callersDeadline = error.kind == .timeout && a.callDeadline < a.started + provider.timeoutSeconds - 0.001
            let modelAtFault = !error.blamesRequest && !cancelled && !callersDeadline
            if let t = a.ticket.take() { a.breaker.record(t, outcome: modelAtFault ? .failure : .success, at: MonotonicInstant(seconds: ended)) }
            if modelAtFault {
                selection.record(model.name, taskTypes: model.taskTypes, outcome: .failure, latency: seconds, inputTokens: -1, outputTokens: -1, cost: 0)
            }
            let sentAny = state.lock.withLock { _ -> Bool in
                state.record.attempts.append(.init(model: model.name, provider: provider.name, outcome: cancelled ? "cancelled" : error.kind.rawValue,
                                                   message: error.message, status: error.status, seconds: seconds))
                return state.sentAny
            }
            let kind: ModelCallOutcome = error.blamesRequest ? .badRequest : (error.kind == .timeout ? .timeout : .unavailable)
            var failure = ModelCallFailure(kind, "model \(model.name): \(error.description)", provider: error)
            failure.retryAfterSeconds = error.retryAfter.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
            if cancelled {
                finish(state, .failure(ModelCallFailure(.cancelled, "the client went away")), a.completion)
            } else if error.blamesRequest || sentAny {
                finish(state, .failure(failure), a.completion)
            } else {
                next(a, failure)
            }
        }
    }

    func breakerFor(_ model: String) -> CircuitBreaker? { breakerTable[model] }
}

/// What one call carries from attempt to attempt.
final class CallState: @unchecked Sendable {
    let lock = Mutex(())
    var record: ModelCallRecord
    var accumulator = ChatAccumulator()
    var indexer = ToolCallIndexer()
    /// Whether a piece of the answer reached the client: no fallback after that.
    var sentAny = false
    var streamFailure: ProviderError?
    var clientLeft = false
    /// The worker of the attempt in flight (to cancel it).
    var worker: ModelWorkerClient?
    /// Every eligible model's breaker was open: they are called through them.
    var panic = false
    let start: Double
    init(_ record: ModelCallRecord, start: Double) { self.record = record; self.start = start }
}

/// A breaker's ticket, held by a call that completes on another thread.
final class TicketHolder: @unchecked Sendable {
    private let lock = Mutex(())
    private var ticket: CircuitBreaker.Ticket?
    /// nil: a call made without one (panic: every breaker open).
    init(_ t: consuming CircuitBreaker.Ticket?) { ticket = t }
    func take() -> CircuitBreaker.Ticket? { lock.withLock { _ in ticket.take() } }
}
