import CordonAudit
import CordonConfig
import CordonJSON
import CordonModelGateway
import CordonModels
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonServices
import CordonSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The model gateway in cordond: `models.toml` read at start, the worker program found, each
/// provider's key read from its root-only file, and the one path every model call takes —
/// the socket's `model.chat` and the OpenAI-compatible endpoint alike (`modelCall`): checked,
/// made, recorded in the audit store before the client has the answer's end.
extension Daemon {
    static let modelsFile = "models.toml"

    /// The catalogue of the config directory, or nil when there is none (then `model.*` say so).
    /// A file that does not parse, or a key that cannot be read, stops the start: an admin's
    /// mistake in a security file is not worked around.
    static func loadModels(config: DaemonConfig, policies: PolicyStore, environment: SandboxEnvironment, authorizer: Authorizer,
                           log: Logger) throws(StartError) -> ModelGateway? {
        guard let dir = config.configDir else { return nil }
        let path = "\(dir)/\(modelsFile)"
        guard FileSystem.exists(path) else { return nil }
        guard let bytes = FileSystem.readTrusted(path, limit: 1 << 20) else {
            throw StartError(description: "\(path): not read: the model catalogue must be a regular file owned by root and writable by root only, in a directory of the same kind (it says where keys go and what sandboxes reach)")
        }
        let catalog: ModelCatalog
        do { catalog = try ModelCatalogParser.parse(text: String(decoding: bytes, as: UTF8.self), source: path) }
        catch { throw StartError(description: "\(error)") }
        var keys: [String: String] = [:]
        for (i, provider) in catalog.providers.enumerated() {
            guard let file = provider.apiKeyFile else { continue }
            let line = catalog.keyLines["provider[\(i)].api_key_file"].map { ":\($0)" } ?? ""
            do { keys[provider.name] = try readKey(file) }
            catch { throw StartError(description: "\(path)\(line): provider[\(i)].api_key_file = \"\(file)\": \(error.description)") }
        }
        let worker: String
        do { worker = try WorkerProgram.locate() } catch { throw StartError(description: "the model gateway: \(error)") }
        do {
            let gateway = try ModelGateway(catalog: catalog, keys: keys, policies: policies, environment: environment, workerProgram: worker,
                                           cacheDir: "\(config.cacheDir)/seccomp", statePath: "\(config.stateDir)/models-selector.json",
                                           onFailure: logServiceFailure(log, "model worker or server failed")) { caller, model in
                let peer = Peer(uid: caller.uid, gid: caller.gid, pid: caller.pid, groups: caller.groups, exe: caller.exe)
                return authorizer.mayUse(peer, model: model)
            }
            for (name, why) in gateway.rejected.sorted(by: { $0.key < $1.key }) {
                log.error("model provider refused", metadata: ["provider": "\(name)", "error": "\(why)"])
            }
            log.info("models", metadata: ["providers": "\(catalog.providers.count)", "models": "\(catalog.models.count)", "file": "\(path)"])
            return gateway
        } catch {
            throw StartError(description: "the model gateway: \(error)")
        }
    }

    /// Logs a sandboxed service's failure (an instance that failed to start, died, failed its
    /// health check or hung a call): each one, with its reason, so an operator learns why a
    /// restart happened even when the restart budget is not spent.
    static func logServiceFailure(_ log: Logger, _ message: String) -> @Sendable (ServicePool.Key, String, Bool) -> Void {
        { key, reason, exhausted in
            let metadata: Logger.Metadata = ["service": "\(key.service)", "owner": "\(key.owner.map { "\($0)" } ?? "shared")", "reason": "\(reason)"]
            if exhausted { log.error("\(message); marked failed (restart budget spent)", metadata: metadata) }
            else { log.warning("\(message)", metadata: metadata) }
        }
    }

    struct KeyError: Error, CustomStringConvertible { var description: String }

    /// A provider's key: the first line of a regular file that root owns and no one else may
    /// read or write (the key is as good as the account it pays for).
    static func readKey(_ path: String) throws(KeyError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw KeyError(description: "cannot open it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw KeyError(description: "not a regular file") }
        guard st.st_uid == 0, st.st_mode & 0o077 == 0 else {
            throw KeyError(description: "owned by uid \(st.st_uid) with mode \(String(st.st_mode & 0o7777, radix: 8)): a key file must be root's and readable by root only (chown root; chmod 600)")
        }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw KeyError(description: "empty") }
        let first = bytes[0..<n].split(separator: 10, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        let key = String(decoding: first, as: UTF8.self).trimmingCharacters(in: " \t\r")
        guard !key.isEmpty, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw KeyError(description: "its first line is not a key (printable ASCII without spaces)")
        }
        return key
    }

    // MARK: The one path of a model call

    func modelGateway() throws(RPCError) -> ModelGateway {
        guard let models else {
            throw RPCError(RPCCode.unavailable, "no models are configured: cordond reads \(config.configDir.map { "\($0)/\(Self.modelsFile)" } ?? "models.toml in its config directory (--config-dir)") at start (docs/models.md)")
        }
        return models
    }

    static func modelCaller(_ peer: Peer) -> ModelGateway.Caller {
        ModelGateway.Caller(uid: peer.uid, gid: peer.gid, pid: peer.pid, groups: peer.groups, exe: peer.exe)
    }

    /// A new completion id: `chatcmpl-` and 24 random hex digits (what `/v1/feedback` names).
    static func completionID() -> String {
        var random = SystemRandomNumberGenerator()
        let a = random.next() as UInt64, b = random.next() as UInt32
        return "chatcmpl-" + String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(8)
    }

    /// Makes one model call for `peer` and records it; `completion` gets the record and the
    /// result once the row is in the store (a call that cannot be recorded is reported as
    /// failed, never as done).
    func modelCall(_ request: ChatRequest, id: String, requestBytes: Int, peer: Peer, timeout: Double,
                   onDelta: (@Sendable (ChatDelta) -> Bool)?,
                   completion: @escaping @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void) throws(RPCError) {
        let gateway = try modelGateway()
        try quotas.checkRecords(peer.uid)
        // Calls in flight per uid: a client that leaves ends its call (`cancelModelCall`), and
        // one that does not cannot take more than its share of the providers' workers.
        let admitted = modelCallsInFlight.withLock { calls -> Bool in
            guard calls[peer.uid, default: 0] < config.modelMaxCallsPerUser else { return false }
            calls[peer.uid, default: 0] += 1
            return true
        }
        guard admitted else {
            throw RPCError(RPCCode.busy, "uid \(peer.uid) has \(config.modelMaxCallsPerUser) model calls in flight (models.max_calls_per_user): retry when one has ended")
        }
        gateway.chat(request, id: id, caller: Self.modelCaller(peer), deadline: MonotonicClock.now + timeout, requestBytes: requestBytes,
                     onDelta: onDelta) { [self] record, result in
            // On the worker's reader, which every call to the provider shares: the call is
            // recorded and answered here when the store is free at once (a hand-off to a
            // recorder thread is one more wake-up on every call's path), else on a recorder
            // thread, which may wait for the store. A large answer is written out there too:
            // its serialisation would hold the reader.
            let row = modelCallRow(record, peer: peer)
            if record.answerBytes <= Self.inlineAnswerBytes,
               finishModelCall(record, result, row: row, peer: peer, onlyIfFree: true, completion: completion) { return }
            modelRecorders.submit { [self] in _ = finishModelCall(record, result, row: row, peer: peer, onlyIfFree: false, completion: completion) }
        }
    }

    /// Answers at most this long are recorded and answered on the worker's reader.
    static let inlineAnswerBytes = 64 << 10

    /// Records a finished call and hands it on; false, having done nothing, when `onlyIfFree`
    /// and the store is busy.
    private func finishModelCall(_ record: ModelCallRecord, _ result: Result<ChatResult, ModelCallFailure>, row: NewModelCall, peer: Peer,
                                 onlyIfFree: Bool, completion: @escaping @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void) -> Bool {
        var failure: AuditError?
        do {
            if onlyIfFree {
                guard try store.recordModelCallIfFree(row) != nil else { return false }
            } else {
                _ = try store.recordModelCall(row)
            }
            // As the store measures a row (Retention's usage query), so a restart agrees.
            quotas.addRecords(peer.uid, Int64(AuditStore.modelCallOverhead + row.caller.exe.utf8.count + row.requested.utf8.count + row.reason.utf8.count
                                              + row.attempts.utf8.count + row.denials.utf8.count + (row.message?.utf8.count ?? 0)))
        } catch {
            failure = error
        }
        modelCallsInFlight.withLock { calls in
            calls[peer.uid, default: 1] -= 1
            if calls[peer.uid] == 0 { calls[peer.uid] = nil }
        }
        metrics.modelCall(model: record.model ?? "-", outcome: record.outcome.rawValue, seconds: record.latencySeconds,
                          inputTokens: record.inputTokens ?? 0, outputTokens: record.outputTokens ?? 0)
        if record.outcome == .refused { metrics.refused(method: "model.chat") }
        if let failure {
            log.error("model call not recorded", metadata: ["id": "\(record.id)", "error": "\(failure)"])
            var failed = record
            failed.outcome = .unavailable
            completion(failed, .failure(ModelCallFailure(.unavailable, "the call ran but could not be recorded: \(failure)")))
            return true
        }
        completion(record, result)
        return true
    }

    /// The audit row of a finished call.
    private func modelCallRow(_ record: ModelCallRecord, peer: Peer) -> NewModelCall {
        let attempts = JSON.array(record.attempts.map { a in
            .object([("model", .string(a.model)), ("provider", .string(a.provider)), ("outcome", .string(a.outcome)),
                     ("message", a.message.map(JSON.string) ?? .null), ("status", a.status.map { .int(Int64($0)) } ?? .null),
                     ("seconds", .double(a.seconds))])
        }).text
        let denials = JSON.array(record.denials.map { d in
            var members: [(String, JSON)] = [("kind", .string(d.kind.rawValue)), ("what", .string(d.what))]
            if let reason = d.reason { members.append(("reason", .string(reason))) }
            return .object(members)
        }).text
        return NewModelCall(completionID: record.id, time: record.time,
                               caller: Submitter(uid: peer.uid, gid: peer.gid, pid: peer.pid, exe: peer.exe), requested: record.requested,
                               taskType: record.taskType, model: record.model, provider: record.provider, reason: record.reason,
                               attempts: attempts, stream: record.stream, inputTokens: record.inputTokens, outputTokens: record.outputTokens,
                               cost: record.cost, firstTokenSeconds: record.firstTokenSeconds, latencySeconds: record.latencySeconds,
                               outcome: record.outcome.rawValue, message: record.message, finishReason: record.finishReason,
                               upstreamID: record.upstreamID, policy: record.policy, policyHash: record.policyHash, denials: denials,
                               requestBytes: record.requestBytes, answerBytes: record.answerBytes)
    }

    /// The client of call `id` went away: the call is abandoned (no further attempt, nothing
    /// blamed) and ends as cancelled.
    func cancelModelCall(_ id: String) { models?.cancel(id) }

    /// A client's verdict on its own call (`model.feedback`, `POST /v1/feedback`).
    func modelFeedback(id: String, peer: Peer, success: Bool?, score: Double?) throws(RPCError) -> (model: String, taskType: String?) {
        let gateway = try modelGateway()
        guard let value = score ?? success.map({ $0 ? 1.0 : 0.0 }) else {
            throw RPCError.invalid("success", "give success (true or false), score (0 to 1), or both")
        }
        let rating: ModelCallRating
        do { rating = try store.rateModelCall(completionID: id, uid: peer.uid, value: value, at: UTCTime.epochSeconds()) }
        catch { throw RPCError(RPCCode.internalError, "the rating could not be recorded: \(error)") }
        switch rating {
        case .rated(let model, let taskType):
            gateway.feedback(model: model, success: success, score: score)
            return (model, taskType)
        case .unknown: throw RPCError(RPCCode.notFound, "no call \(String(id.prefix(64))) of uid \(peer.uid) (only the caller who made a call may rate it)", field: "id")
        case .alreadyRated: throw RPCError(RPCCode.conflict, "call \(id) was rated already (a call is rated once)", field: "id")
        case .notAnswered: throw RPCError(RPCCode.conflict, "call \(id) did not answer: there is nothing to rate", field: "id")
        }
    }
}

extension Authorizer {
    /// Whether `peer` may call `model`: admins; the model's `access` when it has one; otherwise
    /// everyone the socket or the endpoint admitted.
    func mayUse(_ peer: Peer, model: ModelCatalog.Model) -> Bool {
        if isAdmin(peer) { return true }
        guard let access = model.access else { return true }
        if access.users.contains(where: { Accounts.uid($0) == peer.uid }) { return true }
        return access.groups.contains { name in Accounts.gid(name).map { peer.groups.contains($0) || peer.gid == $0 } ?? false }
    }
}


extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let c = s.first, chars.contains(c) { s = s.dropFirst() }
        while let c = s.last, chars.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

// MARK: Socket methods

extension Daemon {
    /// model.list: the models the peer may use.
    func modelList(_ peer: Peer) throws(RPCError) -> JSON {
        let gateway = try modelGateway()
        let caller = Self.modelCaller(peer)
        return .object([
            ("models", .array(gateway.models(for: caller).map { m in
                let kind = gateway.catalog.provider(named: m.provider)?.kind.rawValue ?? "?"
                return .object([("name", .string(m.name)), ("provider", .string(m.provider)), ("kind", .string(kind)),
                                ("upstream", .string(m.upstream)), ("taskTypes", .array(m.taskTypes.map(JSON.string))),
                                ("contextLength", .int(Int64(m.contextLength))), ("maxOutputTokens", .int(Int64(m.maxOutputTokens))),
                                ("tools", .bool(m.tools)), ("priceInput", .double(m.priceInput)), ("priceOutput", .double(m.priceOutput)),
                                ("fallbacks", .array(m.fallbacks.map(JSON.string))),
                                ("available", .bool(gateway.rejected[m.provider] == nil))])
            })),
            ("taskTypes", .array(gateway.catalog.taskTypes.map(JSON.string))),
        ])
    }

    static func requestProblem(_ e: ChatRequestError) -> RPCError {
        RPCError.invalid(e.field.map { "request.\($0)" } ?? "request", e.message)
    }

    /// model.chat {request, timeout?}: `request` is an OpenAI chat-completions body (`model` a
    /// model's name, `auto` or `auto:TYPE`). With `"stream": true` the answer's pieces come
    /// first as `model.delta` notifications ({id, chunk}: OpenAI chunks), then the result.
    func modelChat(_ params: inout Params, _ peer: Peer, _ sink: MessageSink) throws -> Answer {
        _ = try modelGateway()
        guard let body = params.raw("request"), case .object = body else {
            throw RPCError.invalid(params.field("request"), "required: an OpenAI chat-completions request object ({\"model\": \"auto\", \"messages\": [...]})")
        }
        // At least a second: a deadline far shorter than any provider's would only measure the
        // caller (and is not held against the model: see ModelGateway).
        let timeout = try params.number("timeout", min: 1, max: 3600) ?? 600
        try params.finish()
        let request: ChatRequest
        do { request = try ChatRequest.parse(body) } catch { throw Self.requestProblem(error) }
        let bytes = body.text.utf8.count
        let created = Int64(UTCTime.epochSeconds())
        let model: String
        switch request.model { case .named(let n): model = n; case .auto(let t): model = t == "chat" ? "auto" : "auto:\(t)" }
        let stream = request.stream
        let includeUsage = request.includeUsage
        let id = Self.completionID()
        let onDelta = stream ? Self.deltaNotifier(sink, id: id, model: model, created: created, includeUsage: includeUsage) : nil
        return .laterUnlessClosed { [self] reply in
            do {
                try modelCall(request, id: id, requestBytes: bytes, peer: peer, timeout: timeout, onDelta: onDelta) { record, result in
                    let answer = Self.chatAnswer(record, result, model: model, created: created, stream: stream)
                    // A streaming client's connection may be backed up (its deltas were refused
                    // for it): the answer waits for it on a thread of its own, not on the
                    // worker's reader, which every call to the provider shares.
                    if stream, (try? Threads.detach("model-answer", signals: .noSIGPIPE, { reply(answer) })) != nil { return }
                    reply(answer)
                }
            } catch let e as RPCError {
                reply(.failure(e))
            } catch {
                reply(.failure(RPCError(RPCCode.internalError, "\(error)")))
            }
            // The connection closed before the answer: the call is abandoned.
            return { [self] in cancelModelCall(id) }
        }
    }

    /// Sends each delta as `model.delta` notifications; false once the client is gone.
    static func deltaNotifier(_ sink: MessageSink, id: String, model: String, created: Int64, includeUsage: Bool) -> @Sendable (ChatDelta) -> Bool {
        { delta in
            guard sink.isOpen else { return false }
            for chunk in OpenAIWire.chunkBodies(delta, id: id, model: model, created: created, includeUsage: includeUsage) {
                let note = RPCMessage.notification(method: "model.delta", params: .object([("id", .string(id)), ("chunk", chunk)]))
                // Never waits: this runs on the worker's reader, which every call to the provider shares.
                guard sink.sendWithoutWaiting(note) else { return false }
            }
            return true
        }
    }

    static func chatAnswer(_ record: ModelCallRecord, _ result: Result<ChatResult, ModelCallFailure>, model: String, created: Int64, stream: Bool) -> Result<JSON, RPCError> {
        let attempts = JSON.array(record.attempts.map { a in
            .object([("model", .string(a.model)), ("outcome", .string(a.outcome)), ("message", a.message.map(JSON.string) ?? .null),
                     ("seconds", .double(a.seconds))])
        })
        switch result {
        case .success(let answer):
            var members: [(String, JSON)] = [("id", .string(record.id)), ("model", .string(record.model ?? "")), ("reason", .string(record.reason)),
                                             ("attempts", attempts), ("latencySeconds", .double(record.latencySeconds))]
            // The model that answered (a fallback's name when one did), as OpenAI's own answers name the model served.
            if !stream { members.append(("completion", OpenAIWire.completionBody(answer, id: record.id, model: record.model ?? model, created: created))) }
            else {
                members.append(("finishReason", answer.finishReason.map { .string($0.wire) } ?? .null))
                members.append(("usage", answer.usage.map { .object([("prompt_tokens", .int(Int64($0.promptTokens))), ("completion_tokens", .int(Int64($0.completionTokens)))]) } ?? .null))
            }
            return .success(.object(members))
        case .failure(let f):
            let code: Int64
            switch f.outcome {
            case .refused: code = RPCCode.unauthorized
            case .notFound: code = RPCCode.notFound
            case .badRequest: code = RPCCode.invalidParams
            default: code = RPCCode.unavailable
            }
            return .failure(RPCError(code, "\(record.id): \(f.message)", field: f.field.map { "request.\($0)" }))
        }
    }

    /// model.feedback {id, success?, score?}.
    func modelFeedbackMethod(_ params: inout Params, _ peer: Peer) throws(RPCError) -> JSON {
        guard let id = try params.string("id", maxBytes: 64), !id.isEmpty else {
            throw RPCError.invalid(params.field("id"), "required: the completion id a model call answered with (chatcmpl-…)")
        }
        let success = try params.bool("success")
        let score = try params.number("score", min: 0, max: 1)
        try params.finish()
        let (model, taskType) = try modelFeedback(id: id, peer: peer, success: success, score: score)
        return .object([("id", .string(id)), ("model", .string(model)), ("taskType", taskType.map(JSON.string) ?? .null), ("recorded", .bool(true))])
    }

    /// model.explain {model?, request?}: what the selector would do now, and why.
    func modelExplain(_ params: inout Params, _ peer: Peer) throws(RPCError) -> JSON {
        let gateway = try modelGateway()
        let name = try params.string("model", maxBytes: 256) ?? "auto"
        let body = params.raw("request")
        try params.finish()
        var request: ChatRequest
        if let body {
            do { request = try ChatRequest.parse(body) } catch { throw Self.requestProblem(error) }
        } else {
            do { request = try ChatRequest.parse(JSON.object([("model", .string(name)), ("messages", .array([.object([("role", .string("user")), ("content", .string("?"))])]))])) }
            catch { throw Self.requestProblem(error) }
        }
        if body != nil, params.field("model") != "", name != "auto" {
            do { request.model = try ChatRequest.parse(JSON.object([("model", .string(name)), ("messages", .array([.object([("role", .string("user")), ("content", .string("?"))])]))])).model }
            catch { throw Self.requestProblem(error) }
        }
        switch gateway.explain(request, caller: Self.modelCaller(peer)) {
        case .success(let json): return json
        case .failure(let f): throw RPCError(f.outcome == .notFound ? RPCCode.notFound : RPCCode.invalidParams, f.message, field: "model")
        }
    }
}
