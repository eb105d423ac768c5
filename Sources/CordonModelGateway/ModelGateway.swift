import CordonConfig
import CordonJSON
import CordonModels
import CordonPolicy
import CordonResilience
import CordonSandbox
import CordonServices
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The model gateway: every model call of an agent, authorized, sent to its provider's worker
/// (one long-lived `cordon-model-worker` per provider, in a sandbox whose egress allowlist is that
/// provider's host and port, kept by the `ServicePool`), chosen among the eligible models by the
/// task type's `DiscountedThompson` when the client asks for `auto`, guarded by a breaker per
/// model, tried on fallbacks within the call's deadline, and described by a `ModelCallRecord`
/// for the audit store. docs/models.md describes the whole.
///
/// What the selector learnt and the per-model counts persist in `statePath` (JSON, written
/// atomically after calls at most every `saveInterval` seconds, and when the gateway stops).
public final class ModelGateway: @unchecked Sendable {
    /// Who is calling (from SO_PEERCRED or an endpoint token, through the daemon).
    public struct Caller: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var pid: Int32
        public var groups: [UInt32]
        public var exe: String
        public init(uid: UInt32, gid: UInt32, pid: Int32, groups: [UInt32] = [], exe: String = "") {
            self.uid = uid
            self.gid = gid
            self.pid = pid
            self.groups = groups
            self.exe = exe
        }
    }

    public let catalog: ModelCatalog
    /// Providers left out, and why (their worker's policy does not load here).
    public let rejected: [String: String]
    let pool: ServicePool
    /// Local model servers (`LocalServers.swift`), at most `[local] max_loaded` at once.
    let servers: ServicePool
    /// Each local provider's server, by provider name.
    let localServers: [String: LocalServer]
    private let plans: [String: SpawnPlan]
    /// Each provider's worker's sandbox environment (a local provider's dials into its server).
    private let environments: [String: SandboxEnvironment]
    private let policyHashes: [String: String]
    let breakerTable: [String: CircuitBreaker]
    let selection: Selection
    /// Calls in flight, by completion id (`cancel`).
    let live = Mutex<[String: CallState]>([:])
    private let mayUse: @Sendable (Caller, ModelCatalog.Model) -> Bool
    let statePath: String?
    private let saving = Mutex<Double>(0)
    public static let saveInterval = 2.0
    /// Attempts one call makes at most (the first model and its fallbacks).
    public static let maxAttempts = 4

    /// Where the worker program is bound inside its sandbox.
    public static let workerPath = "/cordon/cordon-model-worker"

    /// `keys`: each provider's API key, read by the daemon from its `api_key_file`; a worker
    /// is given its own provider's only. `workerProgram`: the `cordon-model-worker` executable
    /// on the host (bound read-only into every worker's sandbox). `mayUse`: the daemon's
    /// authorization of a caller for a model (admins, the model's `access`). `onFailure`: told
    /// each failure of a worker or a local server (its pool key, the reason, and whether it
    /// marked it failed), for the daemon's log.
    public init(catalog: ModelCatalog, keys: [String: String], policies: PolicyStore, environment: SandboxEnvironment,
                workerProgram: String, cacheDir: String? = nil, statePath: String? = nil,
                onFailure: (@Sendable (ServicePool.Key, String, Bool) -> Void)? = nil,
                mayUse: @escaping @Sendable (Caller, ModelCatalog.Model) -> Bool) throws {
        self.catalog = catalog
        self.mayUse = mayUse
        self.statePath = statePath
        pool = try ServicePool(definitions: [:], maxTotalInstances: .max, onFailure: onFailure)
        servers = try ServicePool(definitions: [:], maxTotalInstances: catalog.maxLoaded, onFailure: onFailure)
        // Binds refuse a source path through a symlink (a build directory's `debug` is one).
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let workerProgram = realpath(workerProgram, &resolved) != nil
            ? String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : workerProgram
        var plans: [String: SpawnPlan] = [:], hashes: [String: String] = [:], rejected: [String: String] = [:]
        var serverPlans: [String: SpawnPlan] = [:], locals: [String: LocalServer] = [:], environments: [String: SandboxEnvironment] = [:]
        for (index, provider) in catalog.providers.enumerated() {
            environments[provider.name] = environment
            guard provider.kind == .local, let server = provider.server else { continue }
            do {
                serverPlans[provider.name] = try Self.serverPlan(server, policies: policies, cacheDir: cacheDir)
                let local = LocalServer(provider: provider, settings: server, model: catalog.models.first { $0.provider == provider.name })
                locals[provider.name] = local
                environments[provider.name]!.egress.upstreamNamespace = { [local] in local.namespace() }
            } catch {
                rejected[provider.name] = "\(catalog.source): provider[\(index)] \(provider.name): \(error)"
            }
        }
        for provider in catalog.providers where rejected[provider.name] == nil {
            do {
                var overrides = PolicyOverrides()
                overrides.binds = [try PolicyOverrides.bind("\(workerProgram):\(Self.workerPath)", writable: false)]
                overrides.networkAllow = [try PolicyOverrides.destination(Self.allowRule(provider.baseURL))]
                let policy = try overrides.apply(to: try policies.loadPolicy(provider.policy))
                plans[provider.name] = try policies.spawnPlan(for: policy, cacheDir: cacheDir, callerEnvironment: [:])
                hashes[provider.name] = policy.contentHash
            } catch {
                let line = catalog.keyLines["provider[\(catalog.providers.firstIndex(of: provider) ?? 0)].policy"].map { ":\($0)" } ?? ""
                rejected[provider.name] = "\(catalog.source)\(line): provider \(provider.name): policy \"\(provider.policy)\": \(error)"
            }
        }
        self.plans = plans
        self.environments = environments
        localServers = locals.filter { plans[$0.key] != nil }
        policyHashes = hashes
        self.rejected = rejected
        var breakers: [String: CircuitBreaker] = [:]
        for model in catalog.models { breakers[model.name] = CircuitBreaker((model.breaker ?? catalog.breaker).configuration) }
        breakerTable = breakers
        selection = try Selection(settings: catalog.selector, restoring: statePath.flatMap { SelectorFile.read($0) })
        for provider in catalog.providers {
            guard let plan = plans[provider.name] else { continue }
            let key = keys[provider.name]
            var settings = ServiceSettings()
            settings.minInstances = 0
            settings.maxInstances = 1
            settings.concurrency = provider.maxConcurrency
            settings.idleTimeoutSeconds = 600
            settings.startTimeoutSeconds = 20
            let workerEnvironment = environments[provider.name]!
            var definition = ServicePool.Definition(settings: settings, spec: { _ in
                SandboxedProcess.Spec(plan: plan, argv: [Self.workerPath], environment: workerEnvironment, maxLine: 24 << 20)
            }, connect: { process, _ in
                try ModelWorkerClient(process: process, provider: provider, apiKey: key)
            })
            definition.tag = provider.policy + "\n" + (hashes[provider.name] ?? "")
            pool.define(Self.service(provider.name), definition)
        }
        for (name, local) in localServers {
            let plan = serverPlans[name]!, pool = self.pool
            let workerKey = ServicePool.Key(service: Self.service(name), owner: nil)
            servers.define(Self.serverService(name), ServicePool.Definition(settings: local.settings.service, spec: { _ in
                // Its stdout is /dev/null: it speaks on its port, and nobody reads what it prints.
                var spec = SandboxedProcess.Spec(plan: plan, argv: local.argv, environment: environment, maxLine: 1 << 20)
                spec.discardStdout = true
                return spec
            }, connect: { process, _ in
                LocalServerClient(process: process, server: local) { deadline in pool.lease(workerKey, deadline: deadline) }
            }))
            // `preload`: started now and kept (its min_instances is 1); the lease is let go at once.
            if local.settings.preload {
                servers.lease(ServicePool.Key(service: Self.serverService(name), owner: nil),
                              deadline: MonotonicClock.now + local.settings.startTimeoutSeconds) { _ in }
            }
        }
    }

    static func service(_ provider: String) -> String { "model:" + provider }
    static func serverService(_ provider: String) -> String { "server:" + provider }

    /// A local server's sandbox: its policy (which must have no network), its model file bound
    /// read-only at the path `command` names, its memory limit if lower than the policy's.
    static func serverPlan(_ server: ModelCatalog.LocalServer, policies: PolicyStore, cacheDir: String?) throws -> SpawnPlan {
        let base: Policy
        do { base = try policies.loadPolicy(server.policy) } catch {
            throw ServicePool.ServiceError("server_policy \"\(server.policy)\": \(error)")
        }
        guard base.network.mode == .none else {
            throw ServicePool.ServiceError("server_policy \"\(server.policy)\": its network mode is \"\(base.network.mode.rawValue)\": a local model server's policy must have none (its worker reaches it inside its sandbox)")
        }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(server.modelFile, &resolved) != nil else {
            throw ServicePool.ServiceError("model_file \(server.modelFile): \(SystemError.text(errno))")
        }
        let source = String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard !source.contains(":"), !server.modelFile.contains(":") else {
            throw ServicePool.ServiceError("model_file \(server.modelFile): a path with \":\" cannot be bound")
        }
        // The server runs as an unprivileged user: it reads the model only if others may.
        var st = stat()
        guard stat(source, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw ServicePool.ServiceError("model_file \(server.modelFile): not a regular file")
        }
        guard st.st_mode & 0o004 != 0 else {
            throw ServicePool.ServiceError("model_file \(server.modelFile): mode \(String(st.st_mode & 0o777, radix: 8)): the server runs as an unprivileged user and could not read it (chmod o+r: it is bound read-only)")
        }
        var overrides = PolicyOverrides()
        overrides.binds = [try PolicyOverrides.bind("\(source):\(server.modelFile)", writable: false)]
        if let m = server.memoryBytes { overrides.memoryBytes = base.limits.memoryBytes.map { min($0, m) } ?? m }
        return try policies.spawnPlan(for: try overrides.apply(to: base), cacheDir: cacheDir, callerEnvironment: [:])
    }

    /// The sandbox a provider's worker starts in (nil: the provider is not served): what the
    /// pool starts, for tests and `cordon model check` to look at or start themselves.
    public func workerSpec(_ provider: String) -> SandboxedProcess.Spec? {
        guard let plan = plans[provider], let environment = environments[provider] else { return nil }
        return SandboxedProcess.Spec(plan: plan, argv: [Self.workerPath], environment: environment, maxLine: 24 << 20)
    }

    /// The allowlist entry of a provider: its name and port, or an address rule for an address
    /// (loopback and private addresses are refused behind a name, by design).
    static func allowRule(_ url: ModelCatalog.BaseURL) -> String {
        url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)"
    }

    public func stop(until deadline: Double) {
        servers.stopAll(until: deadline)
        pool.stopAll(until: deadline)
        save(force: true)
    }

    // MARK: What a caller sees

    /// The models `caller` may use, in the catalogue's order.
    public func models(for caller: Caller) -> [ModelCatalog.Model] {
        catalog.models.filter { mayUse(caller, $0) }
    }

    public func breakerState(_ model: String) -> CircuitBreaker.State? {
        breakerTable[model]?.state(at: MonotonicInstant(seconds: MonotonicClock.now))
    }

    public func workerStats(_ provider: String) -> ServicePool.Stats {
        pool.stats(ServicePool.Key(service: Self.service(provider), owner: nil))
    }

    /// Each local provider's server for the metrics: loaded (0 or 1), starts, failures.
    public func serverTotals() -> [String: (running: Int, starts: Int, failures: Int)] {
        var out: [String: (running: Int, starts: Int, failures: Int)] = [:]
        for name in localServers.keys {
            let t = servers.stats(ServicePool.Key(service: Self.serverService(name), owner: nil))
            out[name] = (t.instances, t.starts, t.failures)
        }
        return out
    }

    /// The breaker of every model (0 closed, 1 open, 2 half-open) for the metrics.
    public func breakerStates() -> [String: Int] {
        let now = MonotonicInstant(seconds: MonotonicClock.now)
        return breakerTable.mapValues { $0.state(at: now).rawValue }
    }

    // MARK: Eligibility

    /// Why `model` cannot serve `request` for `caller` now, or nil when it can.
    func ineligibility(_ model: ModelCatalog.Model, _ request: ChatRequest, _ caller: Caller, promptTokens: Int, ignoringBreaker: Bool = false) -> String? {
        if !mayUse(caller, model) { return "uid \(caller.uid) may not use it" }
        if rejected[model.provider] != nil || plans[model.provider] == nil { return "its provider \(model.provider) is not available (\(rejected[model.provider] ?? "not configured"))" }
        if !request.tools.isEmpty && !model.tools { return "it does not take tools" }
        let answer = OpenAIWire.cappedMaxTokens(request, maxOutputTokens: model.maxOutputTokens)
        if promptTokens + answer > model.contextLength {
            return "the request needs about \(promptTokens) + \(answer) tokens, more than its context of \(model.contextLength)"
        }
        if request.hasMedia, catalog.provider(named: model.provider)?.kind == .anthropic { return "its provider takes no media parts" }
        if !ignoringBreaker, case .open = breakerState(model.name) { return "its breaker is open" }
        return nil
    }

    /// A cautious estimate of the prompt's tokens: a token is rarely shorter than 3 bytes of
    /// UTF-8 in the tokenizers in use, and each message costs a few of its own.
    static func promptTokens(_ request: ChatRequest) -> Int {
        var bytes = 0
        for m in request.messages {
            bytes += 16
            switch m.content {
            case .text(let t)?: bytes += t.utf8.count
            case .parts(let parts)?:
                for p in parts {
                    switch p {
                    case .text(let t): bytes += t.utf8.count
                    case .media(_, let value): bytes += value.text.utf8.count
                    }
                }
            case nil: break
            }
            for call in m.toolCalls { bytes += call.name.utf8.count + call.arguments.utf8.count + 16 }
        }
        for tool in request.tools { bytes += tool.name.utf8.count + (tool.description?.utf8.count ?? 0) + (tool.parameters?.text.utf8.count ?? 0) }
        return (bytes + 2) / 3
    }

    // MARK: Persistence

    /// Writes the selector's state when it changed and the last write is `saveInterval` old.
    func save(force: Bool = false) {
        guard let statePath else { return }
        let now = MonotonicClock.now
        let due = saving.withLock { last -> Bool in
            guard force || now - last >= Self.saveInterval else { return false }
            last = now
            return true
        }
        guard due, let snapshot = selection.snapshotIfChanged(force: force) else { return }
        SelectorFile.write(snapshot, to: statePath)
    }
}

extension ModelGateway {
    /// A client's verdict on an answer of `model` (the daemon has checked the call was the
    /// caller's and not rated before): it reaches the learner of every task type the model serves.
    public func feedback(model: String, success: Bool?, score: Double?) {
        guard let m = catalog.model(named: model) else { return }
        selection.feedback(model, taskTypes: m.taskTypes, success: success, score: score)
        save()
    }
}

extension ModelGateway {
    /// What the selector would do for `request` now, and why (`model.explain`): the eligible
    /// models with what it believes of each (posterior means, P(best) over 2000 joint draws),
    /// the ineligible ones with the reason, and the choice one draw makes. Makes no call and
    /// changes nothing. Never holds a key: providers appear by name only.
    public func explain(_ request: ChatRequest, caller: Caller) -> Result<JSON, ModelCallFailure> {
        let prompt = Self.promptTokens(request)
        let type: String
        var considered: [ModelCatalog.Model]
        switch request.model {
        case .auto(let t):
            type = t
            considered = catalog.models.filter { $0.taskTypes.contains(t) }
            guard !considered.isEmpty else {
                return .failure(ModelCallFailure(.notFound, "no model serves task type \"\(String(t.prefix(64)))\" (served: \(catalog.taskTypes.joined(separator: ", ")))", field: "model"))
            }
        case .named(let name):
            guard let m = catalog.model(named: name), models(for: caller).contains(m) else {
                return .failure(ModelCallFailure(.notFound, "no model named \"\(String(name.prefix(128)))\" that uid \(caller.uid) may use", field: "model"))
            }
            type = m.taskTypes.first ?? "chat"
            considered = [m] + m.fallbacks.compactMap { catalog.model(named: $0) }
        }
        considered = considered.filter { mayUse(caller, $0) }
        var eligible: [ModelCatalog.Model] = [], ineligible: [JSON] = []
        for m in considered {
            if let why = ineligibility(m, request, caller, promptTokens: prompt) {
                ineligible.append(.object([("model", .string(m.name)), ("reason", .string(why))]))
            } else {
                eligible.append(m)
            }
        }
        var members: [(String, JSON)] = [("taskType", .string(type)), ("promptTokensEstimate", .int(Int64(prompt)))]
        let candidates = eligible.map { DiscountedThompson.Candidate($0.name, inputPricePer1k: $0.priceInput, outputPricePer1k: $0.priceOutput) }
        if let choice = selection.choose(taskType: type, among: candidates, explain: true) {
            let pick: String
            switch choice.pick {
            case .untried: pick = "untried"
            case .explore: pick = "explore"
            case .exploit: pick = "exploit"
            }
            members.append(("choice", .object([("model", .string(choice.arm)), ("pick", .string(pick))])))
            members.append(("weights", .object([("success", .double(choice.weights.success)), ("latency", .double(choice.weights.latency)),
                                                ("cost", .double(choice.weights.cost))])))
            members.append(("latencyReferenceSeconds", .double(selection.objective.latencyReferenceSeconds)))
            members.append(("costReference", .double(choice.costReference)))
            members.append(("exploration", .double(selection.objective.exploration)))
            members.append(("discount", .double(selection.configuration.discount)))
            members.append(("changeThreshold", .double(selection.configuration.changeThreshold)))
            members.append(("eligible", .array(zip(eligible, choice.candidates).map { m, e in
                let state = breakerState(m.name)
                return .object([
                    ("model", .string(m.name)), ("provider", .string(m.provider)),
                    ("breaker", .string(state == .open ? "open" : state == .halfOpen ? "half-open" : "closed")),
                    ("works", .double(e.works)), ("correct", .double(e.correct)), ("success", .double(e.success)),
                    ("latencyMedianSeconds", .double(e.latencyMedianSeconds)), ("latencyLowSeconds", .double(e.latencyLowSeconds)),
                    ("latencyHighSeconds", .double(e.latencyHighSeconds)), ("expectedCost", .double(e.expectedCost)),
                    ("calls", .double(e.callWeight)), ("feedback", .double(e.feedbackWeight)),
                    ("callsSinceRecorded", e.callsSinceRecorded.map { .int(Int64(clamping: $0)) } ?? .null),
                    ("changes", .int(Int64(clamping: e.changes))),
                    ("callsSinceChange", e.callsSinceChange.map { .int(Int64(clamping: $0)) } ?? .null),
                    ("meanUtility", .double(e.meanUtility)), ("draw", .double(e.draw.utility)),
                    ("probabilityBest", e.probabilityBest.map(JSON.double) ?? .null),
                ])
            })))
        } else {
            members.append(("choice", .null))
            members.append(("eligible", .array([])))
        }
        members.append(("ineligible", .array(ineligible)))
        return .success(.object(members))
    }

    /// Per model: what was counted (since the state file began), its breaker, its worker.
    public func stats(for caller: Caller) -> JSON {
        .object([("models", .array(models(for: caller).map { m in
            let s = selection.stats(m.name)
            let state = breakerState(m.name)
            let worker = workerStats(m.provider)
            var members: [(String, JSON)] = [
                ("model", .string(m.name)), ("provider", .string(m.provider)),
                ("breaker", .string(state == .open ? "open" : state == .halfOpen ? "half-open" : "closed")),
            ]
            if case .object(let counts) = s.json { members += counts }
            members.append(("meanLatencySeconds", s.calls > 0 ? .double(s.latencySeconds / Double(s.calls)) : .null))
            members.append(("worker", .object([("instances", .int(Int64(worker.instances))), ("inFlight", .int(Int64(worker.inFlight))),
                                               ("starts", .int(Int64(worker.starts))), ("failures", .int(Int64(worker.failures))),
                                               ("failed", worker.failed.map(JSON.string) ?? .null), ("lastFailure", worker.lastFailureJSON)])))
            if let local = localServers[m.provider] {
                let server = servers.stats(ServicePool.Key(service: Self.serverService(m.provider), owner: nil))
                members.append(("server", .object([("loaded", .bool(server.instances > 0)), ("starting", .bool(server.starting > 0)),
                                                   ("pid", local.pid.map { .int(Int64($0)) } ?? .null),
                                                   ("starts", .int(Int64(server.starts))), ("failures", .int(Int64(server.failures))),
                                                   ("failed", server.failed.map(JSON.string) ?? .null), ("lastFailure", server.lastFailureJSON)])))
            }
            if let why = rejected[m.provider] { members.append(("unavailable", .string(why))) }
            return .object(members)
        }))])
    }
}
