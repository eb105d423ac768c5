import CordonConfig
import CordonJSON
import CordonMCP
import CordonPolicy
import CordonResilience
import CordonSandbox
import CordonSchema
import CordonServices
import CLinux
import CordonSystem
import CordonTools
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The tool registry's calls: every tool call of an agent, authorized, validated, sent to a
/// sandboxed instance (an MCP server kept by the `ServicePool`, or one sandbox per call for a
/// command tool), guarded by a circuit breaker per tool, tried on the fallbacks in order, and
/// described by a `ToolCallRecord` for the audit store.
///
/// Names: a command tool is exposed as its manifest's name; each tool an MCP server lists is
/// exposed as `NAME.TOOL`. Instances belong to the calling uid unless the manifest says
/// `shared = true`: calls of different users never share a server process.
///
/// Nothing an MCP server declares is trusted for a decision: its annotations are passed on as
/// data, its schemas are compiled under `SchemaLimits` and only ever used to refuse.
public final class ToolGateway: @unchecked Sendable {
    /// Who is calling (from SO_PEERCRED, through the daemon).
    public struct Caller: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var pid: Int32
        /// Supplementary groups (for `[access] groups`).
        public var groups: [UInt32]
        public var exe: String?
        public init(uid: UInt32, gid: UInt32, pid: Int32, groups: [UInt32] = [], exe: String? = nil) {
            self.uid = uid
            self.gid = gid
            self.pid = pid
            self.groups = groups
            self.exe = exe
        }
    }

    /// One tool as an agent sees it.
    public struct ExposedTool: Sendable, Equatable {
        public var name: String
        public var description: String
        public var inputSchema: JSON
        /// As the server declared them: information, never trusted.
        public var annotations: JSON?
        public var manifest: String
        /// The sandbox policy it runs under, and that policy's exposure score (`cordon policy
        /// score`: 0 locked down, 10 no sandbox to speak of).
        public var policy: String = ""
        public var exposure: Double?
    }

    /// What one reading of the manifests gave. `update` swaps it whole; each step of a call
    /// (an attempt, a fallback) reads the one current then.
    struct Catalog: Sendable {
        var manifests: [String: ToolManifest] = [:]
        /// Manifests left out, and why (their policy does not load here).
        var rejected: [String: String] = [:]
        var plans: [String: SpawnPlan] = [:]
        var policyHashes: [String: String] = [:]
        var exposures: [String: Double] = [:]
        /// The manifests `update` was given (an install that ends reads them again).
        var given: [ToolManifest] = []
    }

    public var manifests: [String: ToolManifest] { catalog.withLock { $0.manifests } }
    /// Manifests left out, and why (their policy does not load here).
    public var rejected: [String: String] { catalog.withLock { $0.rejected } }
    /// Counts changes of what `list` may answer: manifests added, changed or removed
    /// (`update`), and a server saying its tool list changed. `cordon mcp serve` waits on it
    /// (the daemon's `tool.watch`) to tell its client `notifications/tools/list_changed`.
    public let changes = ChangeFeed(start: UInt64(max(1, UTCTime.epochSeconds() * 1000)))
    private let catalog = Mutex(Catalog())
    /// One `update` at a time.
    private let updating = Mutex(())
    private let pool: ServicePool
    private let policies: PolicyStore
    private let cacheDir: String?
    private let environment: SandboxEnvironment
    private let mayUse: @Sendable (Caller, ToolManifest) -> Bool
    private let writeOwnership: @Sendable (Caller) -> WriteOwnership
    /// The caller an owner's instances were last leased for: whose ids their writable binds
    /// write with (the uid keys the instances; the gid is the caller's).
    private let owners = Mutex<[UInt32: Caller]>([:])
    /// Command-tool calls in flight: each is a sandbox, a thread and its output in memory.
    private let commandSlots: Slots
    private let breakers = Mutex<[BreakerKey: CircuitBreaker]>([:])
    private let listings = Listings()
    private let clientInfo = MCPImplementation(name: "cordon", version: "1")
    private let installRequirements: RequirementsInstaller?
    private let requirements = ToolRequirements()
    /// Told when a tool's requirements are installed or refused (cordond logs it).
    private let onRequirements: (@Sendable (String, RequirementsPhase) -> Void)?

    /// Loads each manifest's policy and plans its sandbox now (a manifest whose policy does not
    /// load is left out, in `rejected` with the reason). `mayUse`: the daemon's authorization
    /// (admins, the manifest's `[access]`, or the policy's). `writeOwnership`: whose ids a
    /// caller's sandboxes write with through writable binds (cordond: the caller's own, unless
    /// an admin); a shared tool's instances write as the bind's owner. `commandCalls`: command
    /// calls in flight per caller and in all; `maxInstances`: MCP instances of every tool and
    /// user together (the least recently used idle one makes room). `onInstanceFailure`: told
    /// each failure of an MCP instance (its pool key, the reason, and whether it marked the
    /// tool failed), for the daemon's log.
    public init(manifests: [ToolManifest], policies: PolicyStore, environment: SandboxEnvironment, cacheDir: String? = nil,
                writeOwnership: @escaping @Sendable (Caller) -> WriteOwnership = { _ in .sourceOwner },
                commandCalls: (perUser: Int, total: Int) = (8, 64), maxInstances: Int = .max,
                installRequirements: RequirementsInstaller? = nil, onRequirements: (@Sendable (String, RequirementsPhase) -> Void)? = nil,
                onInstanceFailure: (@Sendable (ServicePool.Key, String, Bool) -> Void)? = nil,
                mayUse: @escaping @Sendable (Caller, ToolManifest) -> Bool) throws {
        self.installRequirements = installRequirements
        self.onRequirements = onRequirements
        commandSlots = Slots(perOwner: commandCalls.perUser, total: commandCalls.total)
        self.policies = policies
        self.cacheDir = cacheDir
        self.environment = environment
        self.mayUse = mayUse
        self.writeOwnership = writeOwnership
        pool = try ServicePool(definitions: [:], maxTotalInstances: maxInstances, onFailure: onInstanceFailure)
        // The first reading is not a change anyone saw.
        _ = apply(manifests)
    }

    /// Takes `manifests` as the registry from now on: tools added, changed (the manifest, or
    /// the content of its policy) or removed take effect at once, with their instances retired
    /// (busy ones after their calls), breakers and schemas forgotten; the others keep theirs.
    /// Returns the names that changed (empty: nothing did), and counts a change when any did.
    @discardableResult
    public func update(_ manifests: [ToolManifest]) -> [String] {
        let changed = apply(manifests)
        if !changed.isEmpty { changes.bump() }
        return changed
    }

    /// `manifests` nil: the ones the registry was last given, read under the same lock (an
    /// install that ends must not put back manifests an `update` has replaced meanwhile).
    private func apply(_ manifests: [ToolManifest]?, retryFailed: Bool = true) -> [String] {
        updating.withLock { _ in
            let old = catalog.withLock { $0 }
            let manifests = manifests ?? old.given
            var new = Catalog()
            new.given = manifests
            var installs: [(ToolManifest, Policy, String)] = []
            for m in manifests {
                var overrides = PolicyOverrides()
                overrides.env = m.environment.map { Policy.EnvVar($0.name, $0.value) }
                do {
                    let policy = try overrides.apply(to: try policies.loadPolicy(m.policy))
                    var planned = policy
                    if m.hasRequirements {
                        guard installRequirements != nil else {
                            new.rejected[m.name] = "\(m.source): requires or lock: this registry does not install requirements (cordond does)"
                            continue
                        }
                        let key = m.requirementsKey(under: policy)
                        switch requirements.phase(m.name, key: key) {
                        case .ready(let site)?:
                            planned = try Self.withRequirements(policy, site: site)
                        case .installing?:
                            new.manifests[m.name] = m
                            new.policyHashes[m.name] = policy.contentHash
                            continue
                        case .failed? where !retryFailed:
                            new.manifests[m.name] = m
                            new.policyHashes[m.name] = policy.contentHash
                            continue
                        case .failed?, nil:
                            // Installing from now, before the catalog without its plan is
                            // published: a call in between waits instead of finding no plan.
                            if requirements.begin(m.name, key: key, now: UTCTime.epochSeconds()) { installs.append((m, policy, key)) }
                            new.manifests[m.name] = m
                            new.policyHashes[m.name] = policy.contentHash
                            continue
                        }
                    }
                    new.plans[m.name] = try policies.spawnPlan(for: planned, cacheDir: cacheDir, callerEnvironment: [:])
                    new.policyHashes[m.name] = planned.contentHash
                    new.manifests[m.name] = m
                    if let (bytes, source) = try? policies.seccompProfile(policy.seccomp.profile),
                       let profile = try? SeccompProfile.parse(bytes, file: source) {
                        new.exposures[m.name] = PolicyScore.score(policy, seccomp: profile).score
                    }
                } catch {
                    new.rejected[m.name] = "\(m.source): policy \"\(m.policy)\": \(error)"
                }
            }
            requirements.keep(only: Set(new.manifests.keys))
            let changed = Set(old.manifests.keys).union(new.manifests.keys).sorted().filter { name in
                old.manifests[name] != new.manifests[name] || old.policyHashes[name] != new.policyHashes[name]
                    || (old.plans[name] == nil) != (new.plans[name] == nil)
            }
            catalog.withLock { $0 = new }
            for name in changed {
                if let m = new.manifests[name], m.kind == .mcp, let plan = new.plans[name] {
                    pool.define(name, definition(m, plan: plan, hash: new.policyHashes[name] ?? ""))
                } else if old.manifests[name]?.kind == .mcp {
                    pool.define(name, nil)
                }
                listings.forget(service: name)
                breakers.withLock { all in for key in all.keys where ToolName(key.tool)?.manifest == name { all[key] = nil } }
            }
            for (m, policy, key) in installs { startInstall(m, policy: policy, key: key) }
            return changed
        }
    }

    /// Installs `m`'s requirements on a thread of its own; when it ends, the registry is read
    /// again from the same manifests (the tool gets its plan, or keeps its failure) and watchers
    /// are told of the change.
    private func startInstall(_ m: ToolManifest, policy: Policy, key: String) {
        guard let installRequirements else { return }
        let name = m.name, requirements = self.requirements
        let body: @Sendable () -> Void = { [weak self] in
            let phase: RequirementsPhase
            // An install the tool has moved on from (another key, or gone) is not begun.
            switch installRequirements(m, policy, { requirements.isCurrent(name, key: key) }) {
            case .success(let site): phase = .ready(site: site)
            case .failure(let problem): phase = .failed(problem.description)
            }
            guard requirements.finish(name, key: key, phase), let self else { return }
            // The registry read again with the new phase (the tool's plan in the catalog) before
            // any call sees it.
            let changed = apply(nil, retryFailed: false)
            requirements.publish(name, key: key)
            if !changed.isEmpty { changes.bump() }
            // Installed, but its sandbox cannot be planned with the set (a policy that hides
            // /cordon, say): said, not left silent.
            if case .ready = phase, let why = rejected[name] { onRequirements?(name, .failed("the set is installed, but the tool has no sandbox: \(why)")) }
            else { onRequirements?(name, phase) }
        }
        do { try Threads.detach("tool-install", signals: .noSIGPIPE, body) } catch {
            if requirements.finish(name, key: key, .failed("cannot start the install: \(error)")) { requirements.publish(name, key: key) }
        }
    }

    /// `policy` with a tool's installed set bound read-only at `ToolManifest.sitePath` and put
    /// first on `PYTHONPATH` (after it, any the policy or the manifest's `env` gives).
    static func withRequirements(_ policy: Policy, site: String) throws(PolicyOverrides.Problem) -> Policy {
        var overrides = PolicyOverrides()
        overrides.binds = [try PolicyOverrides.bind("\(site):\(ToolManifest.sitePath)", writable: false)]
        let given = policy.process.env.last { $0.name == "PYTHONPATH" }?.value ?? ""
        overrides.env = [Policy.EnvVar("PYTHONPATH", given.isEmpty ? ToolManifest.sitePath : "\(ToolManifest.sitePath):\(given)")]
        return try overrides.apply(to: policy)
    }

    /// The tools `caller` may use whose requirements are not installed (yet), by name: being
    /// installed, or refused with the reason. (An MCP server among them lists no tools until
    /// they are.)
    public func requirements(for caller: Caller) -> [(tool: String, phase: RequirementsPhase)] {
        let phases = requirements.all
        return manifests.values.sorted(by: { $0.name < $1.name }).compactMap { m in
            guard let phase = phases[m.name], !isReady(phase), mayUse(caller, m) else { return nil }
            return (m.name, phase)
        }
    }

    func isReady(_ phase: RequirementsPhase?) -> Bool {
        if case .ready? = phase { return true }
        return false
    }

    /// How the pool starts and talks to an MCP tool's instances.
    private func definition(_ m: ToolManifest, plan: SpawnPlan, hash: String) -> ServicePool.Definition {
        let argv = m.command, info = clientInfo, listings = self.listings, changes = self.changes
        var d = ServicePool.Definition(settings: m.service, spec: { [weak self] key in
            guard let self else { throw ServicePool.ServiceError("the tool gateway is gone") }
            var env = environment
            if let uid = key.owner {
                guard let caller = owners.withLock({ $0[uid] }) else {
                    throw ServicePool.ServiceError("no caller known for uid \(uid)")
                }
                env.writeOwnership = writeOwnership(caller)
            }
            return SandboxedProcess.Spec(plan: plan, argv: argv, environment: env)
        }, connect: { process, key in
            try MCPServiceClient(process: process, clientInfo: info, onToolsChanged: {
                // This owner's next listing asks again; clients are told the list changed.
                listings.forget(key)
                changes.bump()
            })
        })
        d.tag = m.policy + "\n" + hash
        return d
    }

    public func stop(until deadline: Double) { pool.stopAll(until: deadline) }

    /// Each exposed tool's breaker state (0 closed, 1 open, 2 half-open): the worst of its
    /// callers' breakers (the metric has no uid label).
    public func breakerStates() -> [String: Int] {
        let now = MonotonicInstant(seconds: MonotonicClock.now)
        var out: [String: Int] = [:]
        // Worst first: open, then half-open, then closed.
        func rank(_ state: Int) -> Int { state == CircuitBreaker.State.open.rawValue ? 2 : state == CircuitBreaker.State.halfOpen.rawValue ? 1 : 0 }
        for (key, breaker) in breakers.withLock({ $0 }) {
            let state = breaker.state(at: now).rawValue
            if let seen = out[key.tool], rank(seen) >= rank(state) { continue }
            out[key.tool] = state
        }
        return out
    }

    /// Each MCP tool's instances, starts and failures, every user's together.
    public func instanceTotals() -> [String: (running: Int, starts: Int, failures: Int)] {
        var out: [String: (running: Int, starts: Int, failures: Int)] = [:]
        for m in manifests.values where m.kind == .mcp {
            let t = pool.totals(service: m.name)
            out[m.name] = (t.instances, t.starts, t.failures)
        }
        return out
    }

    /// The state of `caller`'s breaker of a tool (0 closed, 1 open, 2 half-open; nil: never
    /// called) and of their instances.
    public func stats(_ name: String, for caller: Caller) -> (breaker: Int?, pool: ServicePool.Stats?) {
        guard let parsed = ToolName(name), let m = manifests[parsed.manifest] else { return (nil, nil) }
        let breaker = breakers.withLock { $0[breakerKey(name, m, caller)] }?.state(at: MonotonicInstant(seconds: MonotonicClock.now)).rawValue
        guard m.kind == .mcp else { return (breaker, nil) }
        return (breaker, pool.stats(poolKey(m, caller)))
    }

    func poolKey(_ m: ToolManifest, _ caller: Caller) -> ServicePool.Key {
        ServicePool.Key(service: m.name, owner: m.shared ? nil : caller.uid)
    }

    /// Whose breaker a call reports to: a shared tool's is everyone's; otherwise each caller
    /// has their own (their instances, their calls), so one user's failures — or deadlines —
    /// never refuse another's calls.
    func breakerKey(_ name: String, _ m: ToolManifest, _ caller: Caller) -> BreakerKey {
        BreakerKey(tool: name, owner: m.kind == .mcp && m.shared ? nil : caller.uid)
    }

    struct BreakerKey: Hashable, Sendable {
        var tool: String
        var owner: UInt32?
    }

    /// Before a lease that may start an instance of `caller`'s: whose gid it writes with.
    private func remember(_ caller: Caller, for m: ToolManifest) {
        guard !m.shared else { return }
        owners.withLock { $0[caller.uid] = caller }
    }

    // MARK: Listing

    /// The tools `caller` may use, sorted by name, by `completion` (on another thread, or
    /// here). An MCP server's tools are those its instance for `caller` listed (a shared
    /// tool's: its one instance's), kept until it says its list changed: what one user's
    /// instance lists is never shown to, or checked against, another user. A server that cannot
    /// be listed by `deadline` is left out.
    public func list(for caller: Caller, deadline: Double, completion: @escaping @Sendable ([ExposedTool]) -> Void) {
        let usable = manifests.values.sorted(by: { $0.name < $1.name }).filter { mayUse(caller, $0) }
        let exposures = catalog.withLock { $0.exposures }
        let gathered = Gathered<[ExposedTool]>(count: usable.count) { parts in
            completion(parts.joined().map { t in
                var t = t
                t.policy = usable.first { $0.name == t.manifest }?.policy ?? ""
                t.exposure = exposures[t.manifest]
                return t
            })
        }
        for (i, m) in usable.enumerated() {
            switch m.kind {
            case .command:
                gathered.set(i, [ExposedTool(name: m.name, description: m.description, inputSchema: m.inputSchema ?? .object([("type", .string("object"))]),
                                             annotations: nil, manifest: m.name)])
            case .mcp:
                // No server to list until its requirements are installed (`requirements(for:)`).
                if m.hasRequirements, !isReady(requirements.phase(m.name)) {
                    gathered.set(i, [])
                    continue
                }
                tools(of: m, caller: caller, deadline: deadline) { listed in
                    let tools = ((try? listed.get())?.tools ?? []).sorted(by: { $0.name < $1.name }).map { tool in
                        ExposedTool(name: "\(m.name).\(tool.name)", description: tool.description ?? m.description,
                                    inputSchema: tool.inputSchema, annotations: tool.annotations?.json, manifest: m.name)
                    }
                    gathered.set(i, tools)
                }
            }
        }
    }

    /// The blocking form of `list` (the CLI's tests, `tool.stats`).
    public func list(for caller: Caller, deadline: Double) -> [ExposedTool] {
        let answer = Awaited<[ExposedTool]>()
        list(for: caller, deadline: deadline) { answer.set($0) }
        return answer.wait(until: deadline + 5) ?? []
    }

    /// `m`'s tools as `caller`'s instance lists them, by `completion` — never on an
    /// instance's reader thread (a continuation may start another server, or send).
    func tools(of m: ToolManifest, caller: Caller, deadline: Double,
               completion: @escaping @Sendable (Result<Listings.Listing, ToolCallFailure>) -> Void) {
        let key = poolKey(m, caller)
        if let cached = listings.get(key) { return completion(.success(cached)) }
        remember(caller, for: m)
        let listings = self.listings
        let generation = listings.generation(key)
        pool.lease(key, deadline: deadline) { leased in
            let lease: ServicePool.Lease
            switch leased {
            case .success(let l): lease = l
            case .failure(let e): return Continue.elsewhere { completion(.failure(ToolCallFailure(outcome: .unavailable, message: e.message))) }
            }
            guard let client = lease.client as? MCPServiceClient else {
                lease.release()
                return Continue.elsewhere { completion(.failure(ToolCallFailure(outcome: .protocolError, message: "not an MCP instance"))) }
            }
            // Readiness listed them: the same listing, unless the server changed it since.
            if let known = client.knownListing {
                lease.release()
                listings.set(key, known.tools, ifStill: generation)
                return Continue.elsewhere { completion(.success(Listings.Listing(tools: known.tools, generation: generation))) }
            }
            client.listTools(deadline: deadline) { result in
                lease.release()
                Continue.elsewhere {
                    switch result {
                    case .success(let listing):
                        listings.set(key, listing.tools, ifStill: generation)
                        completion(.success(Listings.Listing(tools: listing.tools, generation: generation)))
                    case .failure(let e):
                        completion(.failure(ToolCallFailure(outcome: .protocolError, message: "tools/list: \(e)")))
                    }
                }
            }
        }
    }

    // MARK: Calls

    /// Calls `name` with `arguments` for `caller`; `completion` gets the result and the record.
    public func call(_ name: String, arguments: JSON, caller: Caller, deadline: Double,
                     completion: @escaping @Sendable (ToolCallResult) -> Void) {
        let start = MonotonicClock.now
        var record = ToolCallRecord(caller: caller, tool: name, arguments: arguments)
        guard let manifest = resolve(name) else {
            record.finish(.refused, "no tool \"\(name)\"", start: start)
            return completion(ToolCallResult(outcome: nil, record: record))
        }
        guard mayUse(caller, manifest) else {
            record.finish(.refused, "uid \(caller.uid) may not use the tool \(manifest.name)", start: start)
            return completion(ToolCallResult(outcome: nil, record: record))
        }
        record.auditArguments = manifest.auditArguments
        attempt(name, manifest: manifest, arguments: arguments, caller: caller, deadline: deadline, fallbacks: manifest.fallbacks,
                record: record, start: start, completion: completion)
    }

    /// The label a call of `name` is counted under in metrics: the name when it is a tool
    /// (a command tool, or a tool an instance of the server listed), the manifest's name for
    /// any other `NAME.…`, and "(unknown)" for the rest — callers choose names, and each label
    /// is a series kept for the daemon's life.
    public func metricLabel(_ name: String) -> String {
        guard let m = resolve(name) else { return "(unknown)" }
        guard m.kind == .mcp, let tool = ToolName(name)?.tool else { return name }
        return listings.lists(service: m.name, tool: tool) ? name : m.name
    }

    /// The manifest an exposed name belongs to: a command tool's own name, or `NAME.TOOL` of an
    /// MCP server (both parts non-empty); nil for anything else.
    func resolve(_ name: String) -> ToolManifest? {
        guard let parsed = ToolName(name), let m = manifests[parsed.manifest], (m.kind == .mcp) == (parsed.tool != nil) else { return nil }
        return m
    }

    private func attempt(_ name: String, manifest: ToolManifest, arguments: JSON, caller: Caller, deadline: Double, fallbacks: [String],
                         record: ToolCallRecord, start: Double, completion: @escaping @Sendable (ToolCallResult) -> Void) {
        var record = record
        let timeout = min(deadline, MonotonicClock.now + manifest.timeoutSeconds)
        let key = poolKey(manifest, caller)
        let before = record
        let refuse: @Sendable (ToolCallFailure) -> Void = { problem in
            var record = before
            record.attempts.append(.init(tool: name, outcome: problem.outcome, message: problem.message))
            record.finish(problem.outcome, problem.message, start: start)
            completion(ToolCallResult(outcome: nil, record: record))
        }
        // One reading of the registry for this attempt: the plan (and for a command, the argv)
        // it runs with, whatever an update does meanwhile.
        let snapshot = catalog.withLock { CommandSnapshot(plan: $0.plans[manifest.name], hash: $0.policyHashes[manifest.name], manifest: $0.manifests[manifest.name]) }
        // The manifest changed since the call was authorized: authorized again against it.
        if let current = snapshot.manifest, current != manifest, !mayUse(caller, current) {
            return refuse(ToolCallFailure(outcome: .refused, message: "uid \(caller.uid) may not use the tool \(current.name)"))
        }
        // A tool whose requirements are being installed has no sandbox yet: the call waits for
        // them (off this thread, up to its timeout), then starts over as a new call would — the
        // tool looked up again and the caller's access checked again. One whose install failed
        // fails with the reason, which the fallbacks may answer for.
        if manifest.hasRequirements {
            let phase = requirements.phase(manifest.name)
            if case .failed(let why)? = phase {
                let message = "the tool's requirements were not installed: \(why)"
                record.attempts.append(.init(tool: name, outcome: .unavailable, message: message))
                return next(fallbacks, after: .unavailable, message: message, arguments: arguments, caller: caller, deadline: deadline,
                            record: record, start: start, completion: completion)
            }
            var installing: Double?
            if case .installing(let since)? = phase { installing = since }
            if installing != nil || snapshot.plan == nil {
                let requirements = self.requirements
                return Continue.elsewhere { [self] in
                    let now = requirements.wait(manifest.name, until: timeout)
                    func unavailable(_ message: String) {
                        var record = before
                        record.attempts.append(.init(tool: name, outcome: .unavailable, message: message))
                        next(fallbacks, after: .unavailable, message: message, arguments: arguments, caller: caller, deadline: deadline,
                             record: record, start: start, completion: completion)
                    }
                    if case .installing(let since)? = now {
                        return unavailable("the tool's requirements are still being installed through the install gate (for \(max(0, Int(UTCTime.epochSeconds() - since))) s): try again when they are")
                    }
                    guard let current = resolve(name) else { return refuse(ToolCallFailure(outcome: .refused, message: "no tool \"\(name)\" any more")) }
                    guard mayUse(caller, current) else { return refuse(ToolCallFailure(outcome: .refused, message: "uid \(caller.uid) may not use the tool \(current.name)")) }
                    guard catalog.withLock({ $0.plans[current.name] }) != nil else {
                        if case .failed? = now { return attempt(name, manifest: current, arguments: arguments, caller: caller, deadline: deadline, fallbacks: fallbacks,
                                                                record: before, start: start, completion: completion) }
                        return unavailable("the tool has no sandbox: \(rejected[current.name] ?? "its requirements are not installed")")
                    }
                    attempt(name, manifest: current, arguments: arguments, caller: caller, deadline: deadline, fallbacks: fallbacks,
                            record: before, start: start, completion: completion)
                }
            }
        }
        // Arguments first, as far as they can be checked without starting anything: a call
        // refused anyway touches no sandbox and no breaker.
        if let problem = validate(name, manifest: manifest, key: key, arguments: arguments, listing: listings.get(key)) {
            return refuse(problem)
        }
        let breaker = self.breaker(breakerKey(name, manifest, caller), manifest)
        let ticket: TicketHolder
        switch breaker.acquire(at: MonotonicInstant(seconds: MonotonicClock.now)) {
        case .allowed(let t): ticket = TicketHolder(t)
        case .refused:
            record.attempts.append(.init(tool: name, outcome: .breakerOpen, message: "the breaker of \(name) is open"))
            return next(fallbacks, after: .breakerOpen, message: "the breaker of \(name) is open", arguments: arguments, caller: caller,
                        deadline: deadline, record: record, start: start, completion: completion)
        }
        let attempted = record
        let finished: @Sendable (Result<MCPCallToolOutcome, ToolCallFailure>, Ran) -> Void = { [self] result, ran in
            var record = attempted
            record.instance = ran.instance
            record.policy = ran.policy ?? manifest.policy
            record.policyHash = ran.policyHash
            if manifest.kind == .mcp && manifest.shared {
                // A shared instance serves every user at once: what it was refused during this
                // call may be another caller's doing, so it is not put on this caller's row.
                for d in ran.denials where !record.sharedInstanceDenials.contains(d) { record.sharedInstanceDenials.append(d) }
            } else {
                for d in ran.denials where !record.denials.contains(d) { record.denials.append(d) }
                record.deniedOmitted += ran.deniedOmitted
            }
            let now = MonotonicInstant(seconds: MonotonicClock.now)
            switch result {
            case .success(.complete(let r)):
                if let t = ticket.take() { breaker.record(t, outcome: .success, at: now) }
                record.resultBytes = Self.size(of: .complete(r))
                record.isError = r.isError
                record.attempts.append(.init(tool: name, outcome: r.isError ? .toolError : .ok, message: nil))
                record.finish(record.attempts.count > 1 ? .fallback(name) : (r.isError ? .toolError : .ok), nil, start: start)
                completion(ToolCallResult(outcome: .complete(r), record: record))
            case .success(let other):
                // The server is well; the work was not done (Cordon does not relay input yet).
                if let t = ticket.take() { breaker.record(t, outcome: .success, at: now) }
                let message = "the tool asked for input (input_required), which Cordon does not relay yet"
                record.attempts.append(.init(tool: name, outcome: .inputRequired, message: message))
                record.finish(.inputRequired, message, start: start)
                completion(ToolCallResult(outcome: other, record: record))
            case .failure(let failure):
                // A timeout the caller's own deadline caused says nothing of the tool.
                let callersDeadline = failure.outcome == .timeout && timeout >= deadline
                if let t = ticket.take(), !callersDeadline { breaker.record(t, outcome: .failure, at: now) }
                record.attempts.append(.init(tool: name, outcome: failure.outcome, message: failure.message))
                // Off whatever thread this is (an instance's reader): a fallback may start a
                // server, list it, or send.
                let failed = record
                Continue.elsewhere { [self] in
                    next(fallbacks, after: failure.outcome, message: failure.message, arguments: arguments, caller: caller, deadline: deadline,
                         record: failed, start: start, completion: completion)
                }
            }
        }
        switch manifest.kind {
        case .command:
            runCommand(manifest, snapshot: snapshot, arguments: arguments, caller: caller, deadline: timeout, done: finished)
        case .mcp:
            // Only the manifest's own timeout says the instance hung: a caller's shorter deadline
            // says nothing about it (and must not let a caller churn a shared tool's instances).
            let ownTimeout = timeout < deadline
            let send: @Sendable () -> Void = { [self] in
                callServer(name, manifest: manifest, arguments: arguments, caller: caller, deadline: timeout, ownTimeout: ownTimeout, done: finished)
            }
            if listings.get(key) != nil { return send() }
            // The server's schemas come with its listing, which may start an instance: a
            // failure there is the server's, counted and answered for by the fallbacks.
            tools(of: manifest, caller: caller, deadline: timeout) { [self] listed in
                switch listed {
                case .failure(let failure):
                    finished(.failure(failure), Ran(policyHash: catalog.withLock { $0.policyHashes[manifest.name] }))
                case .success(let listing):
                    if let problem = validate(name, manifest: manifest, key: key, arguments: arguments, listing: listing) {
                        // The server answered its listing: it is well, the call was not.
                        if let t = ticket.take() { breaker.record(t, outcome: .success, at: MonotonicInstant(seconds: MonotonicClock.now)) }
                        return refuse(problem)
                    }
                    send()
                }
            }
        }
    }

    /// The next fallback, or the end of the call with the last failure.
    private func next(_ fallbacks: [String], after outcome: ToolCallOutcome, message: String, arguments: JSON, caller: Caller, deadline: Double,
                      record: ToolCallRecord, start: Double, completion: @escaping @Sendable (ToolCallResult) -> Void) {
        var record = record
        guard outcome.isRetryable, let fallback = fallbacks.first, MonotonicClock.now < deadline else {
            record.finish(outcome, message, start: start)
            return completion(ToolCallResult(outcome: nil, record: record))
        }
        guard let manifest = resolve(fallback), mayUse(caller, manifest) else {
            record.attempts.append(.init(tool: fallback, outcome: .refused, message: "fallback \(fallback) is not a tool uid \(caller.uid) may use"))
            return next(Array(fallbacks.dropFirst()), after: outcome, message: message, arguments: arguments, caller: caller, deadline: deadline,
                        record: record, start: start, completion: completion)
        }
        // One level: a fallback's own fallbacks are not tried.
        attempt(fallback, manifest: manifest, arguments: arguments, caller: caller, deadline: deadline,
                fallbacks: Array(fallbacks.dropFirst()), record: record, start: start, completion: completion)
    }

    private func breaker(_ key: BreakerKey, _ m: ToolManifest) -> CircuitBreaker {
        breakers.withLock { all in
            if let b = all[key] { return b }
            let b = CircuitBreaker(m.breaker.configuration)
            all[key] = b
            return b
        }
    }

    /// The schema's verdict on the arguments, or nil when they may go (or cannot be judged
    /// yet: an MCP tool whose server has not been listed for this caller). A command tool is
    /// judged by its manifest as the registry has it now; an MCP tool by `listing`.
    private func validate(_ name: String, manifest: ToolManifest, key: ServicePool.Key, arguments: JSON, listing: Listings.Listing?) -> ToolCallFailure? {
        guard case .object = arguments else {
            return ToolCallFailure(outcome: .invalidArguments, message: "arguments must be an object, not \(arguments.typeName)")
        }
        let compiled: Result<JSONSchema, SchemaError>
        switch manifest.kind {
        case .command:
            // The generation first, then the manifest: a schema compiled from a manifest an
            // update replaced meanwhile is not kept (`Listings.schema`).
            let generation = listings.generation(ServicePool.Key(service: manifest.name, owner: nil))
            let current = catalog.withLock { $0.manifests[manifest.name] } ?? manifest
            compiled = listings.schema(of: name, key: nil, generation: generation) {
                current.inputSchema ?? .object([("type", .string("object"))])
            }
        case .mcp:
            guard let listing else { return nil }
            guard let toolName = ToolName(name)?.tool, let tool = listing.tools.first(where: { $0.name == toolName }) else {
                return ToolCallFailure(outcome: .refused, message: "\(manifest.name) lists no tool \"\(ToolName(name)?.tool ?? name)\"")
            }
            compiled = listings.schema(of: name, key: key, generation: listing.generation) { tool.inputSchema }
        }
        switch compiled {
        case .failure(let e):
            return ToolCallFailure(outcome: .protocolError, message: "the input schema of \(name) cannot be used: \(e)")
        case .success(let schema):
            let verdict = schema.validate(arguments)
            if verdict.isValid { return nil }
            return ToolCallFailure(outcome: .invalidArguments, message: verdict.description)
        }
    }

    /// The denials an instance produced from `mark` to now: during the call (another call of
    /// the same owner's on the same instance at the same time shows in both records).
    private static func ran(_ lease: ServicePool.Lease, _ hash: String?, since mark: UInt64?) -> Ran {
        // What the instance was started from: a call that waited across a reload ran on the
        // new definition's instance, and says so.
        let tag = lease.tag.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        var ran = Ran(instance: lease.instance, policy: tag.count == 2 ? String(tag[0]) : nil, policyHash: tag.count == 2 ? String(tag[1]) : hash)
        if let mark, let process = (lease.client as? MCPServiceClient)?.connection.process {
            (ran.denials, ran.deniedOmitted) = process.denials(since: mark)
        }
        return ran
    }

    private func callServer(_ name: String, manifest: ToolManifest, arguments: JSON, caller: Caller, deadline: Double, ownTimeout: Bool,
                            done: @escaping @Sendable (Result<MCPCallToolOutcome, ToolCallFailure>, Ran) -> Void) {
        let hash = catalog.withLock { $0.policyHashes[manifest.name] }
        remember(caller, for: manifest)
        pool.lease(poolKey(manifest, caller), deadline: deadline) { leased in
            let lease: ServicePool.Lease
            switch leased {
            case .success(let l): lease = l
            case .failure(let e): return done(.failure(ToolCallFailure(outcome: .unavailable, message: e.message)), Ran(policyHash: hash))
            }
            guard let client = lease.client as? MCPServiceClient else {
                lease.release()
                return done(.failure(ToolCallFailure(outcome: .protocolError, message: "not an MCP instance")), Self.ran(lease, hash, since: nil))
            }
            guard let toolName = ToolName(name)?.tool else {
                lease.release()
                return done(.failure(ToolCallFailure(outcome: .refused, message: "no tool \"\(name)\"")), Self.ran(lease, hash, since: nil))
            }
            let mark = client.connection.process.denialMark
            client.callTool(toolName, arguments: arguments, deadline: deadline) { result in
                switch result {
                case .success(let outcome):
                    lease.release()
                    done(.success(outcome), Self.ran(lease, hash, since: mark))
                case .failure(let failure):
                    // No answer in time: the instance is not trusted with another call.
                    lease.release(unresponsive: failure == .timeout && ownTimeout)
                    let mapped: ToolCallFailure = switch failure {
                    case .timeout: ToolCallFailure(outcome: .timeout, message: "no answer from \(name) in time")
                    case .closed: ToolCallFailure(outcome: .unavailable, message: "the instance of \(manifest.name) ended during the call")
                    case .busy: ToolCallFailure(outcome: .unavailable, message: "the instance of \(manifest.name) is busy")
                    case .server(let e): ToolCallFailure(outcome: .protocolError, message: "\(e)")
                    }
                    done(.failure(mapped), Self.ran(lease, hash, since: mark))
                }
            }
        }
    }

    private func runCommand(_ manifest: ToolManifest, snapshot: CommandSnapshot, arguments: JSON, caller: Caller, deadline: Double,
                            done: @escaping @Sendable (Result<MCPCallToolOutcome, ToolCallFailure>, Ran) -> Void) {
        // The plan, its policy and the argv from the attempt's one reading of the registry.
        let (plan, hash, current) = (snapshot.plan, snapshot.hash, snapshot.manifest)
        guard let plan, let current else { return done(.failure(ToolCallFailure(outcome: .refused, message: "no tool \"\(manifest.name)\" any more")), Ran()) }
        var argv: [String] = []
        for element in current.argv {
            guard let name = ToolManifest.placeholderName(element) else { argv.append(element); continue }
            switch arguments[name] {
            case .string(let s)?: argv.append(s)
            case .int(let n)?: argv.append(String(n))
            case .uint(let n)?: argv.append(String(n))
            case .double(let d)?: argv.append(String(d))
            case .bool(let b)?: argv.append(b ? "true" : "false")
            default:
                return done(.failure(ToolCallFailure(outcome: .invalidArguments, message: "{\(name)} must be a string, number or boolean")), Ran(policy: current.policy, policyHash: hash))
            }
        }
        // One sandbox, one thread and up to the policy's output limit of memory each: bounded
        // per caller and in all, as the scheduler bounds tasks.
        guard commandSlots.take(caller.uid) else {
            return done(.failure(ToolCallFailure(outcome: .unavailable, message: "too many command-tool calls in flight (\(commandSlots.perOwner) per user, \(commandSlots.total) in all)")),
                        Ran(policy: current.policy, policyHash: hash))
        }
        let input = Array(arguments.text.utf8)
        var ownEnvironment = self.environment
        ownEnvironment.writeOwnership = writeOwnership(caller)
        let environment = ownEnvironment, command = argv, slots = commandSlots
        do {
            try Threads.detach("tool-command", signals: .noSIGPIPE) {
                // The manifest's timeout, never past the policy's own wall clock.
                let left = max(0.001, deadline - MonotonicClock.now)
                let run = CommandRun.execute(plan: plan, argv: command, stdin: input, environment: environment,
                                             wallTime: plan.policy.limits.wallTimeSeconds.map { min($0, left) } ?? left)
                slots.give(caller.uid)
                done(run.result.map { output in
                    let text = String(decoding: output.stdout, as: UTF8.self)
                    var result = MCPCallToolResult(content: [.text(text, extra: nil)], isError: output.exitStatus != 0)
                    // A failed call says why, as the command wrote it (the end of its stderr).
                    if output.exitStatus != 0, !output.stderrTail.isEmpty {
                        result.content.append(.text("stderr (exit status \(output.exitStatus)):\n" + String(decoding: output.stderrTail, as: UTF8.self), extra: nil))
                    }
                    if current.output == .json, output.exitStatus == 0 {
                        guard let value = try? JSON.parse(output.stdout) else {
                            result = MCPCallToolResult(content: [.text("the tool's output is not JSON", extra: nil)], isError: true)
                            return .complete(result)
                        }
                        result.structuredContent = value
                    }
                    return .complete(result)
                }, Ran(policy: current.policy, policyHash: hash, denials: run.denials, deniedOmitted: run.omitted))
            }
        } catch {
            slots.give(caller.uid)
            done(.failure(ToolCallFailure(outcome: .unavailable, message: "start a thread: \(error)")), Ran(policy: current.policy, policyHash: hash))
        }
    }

    static func size(of outcome: MCPCallToolOutcome) -> Int {
        if case .complete(let r) = outcome { return r.json(for: .v2025_11_25).text.utf8.count }
        return 0
    }
}

/// Why a call (or one attempt of it) failed.
public struct ToolCallFailure: Error, Sendable, Equatable {
    public var outcome: ToolCallOutcome
    public var message: String
}

/// What one attempt read of the registry: a command runs with it.
struct CommandSnapshot: Sendable {
    var plan: SpawnPlan?
    var hash: String?
    var manifest: ToolManifest?
}

/// The end of a call, as the audit store records it.
public enum ToolCallOutcome: Sendable, Equatable, CustomStringConvertible {
    case ok
    /// The tool ran and said it failed (`isError`).
    case toolError
    case invalidArguments
    case timeout
    /// The server broke the protocol, or answered with a JSON-RPC error.
    case protocolError
    case breakerOpen
    /// The tool asked for input (`input_required`), which Cordon does not relay yet: the work
    /// was not done.
    case inputRequired
    /// No instance: it would not start, or died.
    case unavailable
    /// Not allowed, or no such tool.
    case refused
    /// Answered by this fallback.
    case fallback(String)

    public var description: String {
        switch self {
        case .ok: "ok"
        case .toolError: "tool-error"
        case .invalidArguments: "invalid-arguments"
        case .timeout: "timeout"
        case .protocolError: "protocol-error"
        case .breakerOpen: "breaker-open"
        case .inputRequired: "input-required"
        case .unavailable: "unavailable"
        case .refused: "refused"
        case .fallback(let tool): "fallback:\(tool)"
        }
    }

    /// Whether a fallback may answer instead.
    var isRetryable: Bool {
        switch self {
        case .timeout, .protocolError, .breakerOpen, .unavailable: true
        default: false
        }
    }
}

public struct ToolCallResult: Sendable {
    /// The tool's answer; nil when no tool answered.
    public var outcome: MCPCallToolOutcome?
    public var record: ToolCallRecord
}

/// What the audit store keeps of one call.
public struct ToolCallRecord: Sendable {
    public struct Attempt: Sendable, Equatable {
        public var tool: String
        public var outcome: ToolCallOutcome
        public var message: String?
    }
    public var caller: ToolGateway.Caller
    public var tool: String
    public var argumentBytes: Int
    public var argumentSHA256: String
    /// Kept only when the manifest says `audit_arguments = true`.
    public var arguments: JSON?
    var auditArguments = false {
        didSet { arguments = auditArguments ? rawArguments : nil }
    }
    private var rawArguments: JSON
    public var instance: Int?
    public var policy: String?
    public var policyHash: String?
    public var resultBytes = 0
    public var isError = false
    public var outcome: ToolCallOutcome = .ok
    public var message: String?
    public var latencySeconds: Double = 0
    public var attempts: [Attempt] = []
    /// What the sandbox(es) that ran the call were refused meanwhile (syscalls, egress), each
    /// distinct one once; `deniedOmitted`: repeats and those past what is kept.
    public var denials: [Denial] = []
    public var deniedOmitted = 0
    /// A shared tool's instance's refusals during the call: any of its callers' doing, so
    /// recorded by the daemon as an event of the instance, not on the caller's row.
    public var sharedInstanceDenials: [Denial] = []

    init(caller: ToolGateway.Caller, tool: String, arguments: JSON) {
        self.caller = caller
        self.tool = tool
        let bytes = Array(arguments.text.utf8)
        argumentBytes = bytes.count
        argumentSHA256 = SHA256.hex(bytes)
        rawArguments = arguments
    }

    mutating func finish(_ outcome: ToolCallOutcome, _ message: String?, start: Double) {
        self.outcome = outcome
        self.message = message
        latencySeconds = MonotonicClock.now - start
    }
}

/// One sandbox per call of a command tool: the arguments as JSON on stdin, stdout kept (in a
/// memory file the supervisor's relay fills, under the policy's output limit) and read back.
enum CommandRun {
    struct Output { var stdout: [UInt8]; var exitStatus: Int32; var stderrTail: [UInt8] = [] }
    /// The most of a command's stdout a result carries.
    static let maxResultBytes = 4 << 20
    /// The end of a failed command's stderr that its result carries.
    static let stderrTailBytes = 4096

    static func execute(plan: SpawnPlan, argv: [String], stdin: [UInt8], environment: SandboxEnvironment,
                        wallTime: Double) -> (result: Result<Output, ToolCallFailure>, denials: [Denial], omitted: Int) {
        func fail(_ what: String) -> (result: Result<Output, ToolCallFailure>, denials: [Denial], omitted: Int) {
            (.failure(ToolCallFailure(outcome: .unavailable, message: "\(what): \(SystemError.text(errno))")), [], 0)
        }
        let input = cl_memfd("cordon-tool-input")
        guard input >= 0 else { return fail("memfd") }
        defer { close(input) }
        let written = stdin.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        guard written == stdin.count else { return fail("write the arguments") }
        // Read-only, so the sandbox gets it straight (it cannot write back into our copy).
        let reader = open("/proc/self/fd/\(input)", O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return fail("reopen the arguments") }
        defer { close(reader) }
        let output = cl_memfd("cordon-tool-output")
        guard output >= 0 else { return fail("memfd") }
        defer { close(output) }
        let errors = cl_memfd("cordon-tool-stderr")
        guard errors >= 0 else { return fail("memfd") }
        defer { close(errors) }
        var io = SandboxIO()
        io.stdin = reader
        io.stdout = output
        io.stderr = errors
        io.relaySignals = false
        let result = Sandbox.run(plan: plan, argv: argv, environment: environment, io: io, wallTime: wallTime)
        // Everything the sandbox was refused: the whole sandbox was this call.
        let denials = result.denials
        let omitted = result.deniedOmitted + (result.egressOmitted ?? 0)
        if let failure = result.setupFailure {
            return (.failure(ToolCallFailure(outcome: .unavailable, message: failure.message)), denials, omitted)
        }
        if result.reason == .timeout { return (.failure(ToolCallFailure(outcome: .timeout, message: "the command ran out of time")), denials, omitted) }
        // Only what it wrote, up to the most a result carries.
        var st = stat()
        let size = fstat(output, &st) == 0 ? min(Int(st.st_size), maxResultBytes) : maxResultBytes
        var bytes = [UInt8](repeating: 0, count: max(0, size))
        let n = bytes.withUnsafeMutableBytes { pread(output, $0.baseAddress, $0.count, 0) }
        bytes = Array(bytes.prefix(max(0, n)))
        var tail: [UInt8] = []
        if result.exitStatus != 0, fstat(errors, &st) == 0, st.st_size > 0 {
            let from = max(0, Int(st.st_size) - stderrTailBytes)
            tail = [UInt8](repeating: 0, count: Int(st.st_size) - from)
            let got = tail.withUnsafeMutableBytes { pread(errors, $0.baseAddress, $0.count, off_t(from)) }
            tail = Array(tail.prefix(max(0, got)))
        }
        return (.success(Output(stdout: bytes, exitStatus: result.exitStatus, stderrTail: tail)), denials, omitted)
    }
}

/// What an attempt ran on, and what its sandbox was refused meanwhile.
struct Ran: Sendable {
    var instance: Int?
    /// The policy it ran under, when it is not the manifest's the call began with.
    var policy: String?
    var policyHash: String?
    var denials: [Denial] = []
    var deniedOmitted = 0
}

/// Command-tool calls in flight, per caller and in all.
final class Slots: Sendable {
    let perOwner: Int, total: Int
    private let state = Mutex<(byOwner: [UInt32: Int], all: Int)>(([:], 0))
    init(perOwner: Int, total: Int) { self.perOwner = perOwner; self.total = total }
    func take(_ owner: UInt32) -> Bool {
        state.withLock { s in
            guard s.all < total, s.byOwner[owner, default: 0] < perOwner else { return false }
            s.all += 1
            s.byOwner[owner, default: 0] += 1
            return true
        }
    }
    func give(_ owner: UInt32) {
        state.withLock { s in
            s.all -= 1
            s.byOwner[owner, default: 0] -= 1
            if s.byOwner[owner] == 0 { s.byOwner[owner] = nil }
        }
    }
}

/// A breaker's ticket, held until the call it admitted ends (tickets cannot be copied).
final class TicketHolder: @unchecked Sendable {
    private let lock = Mutex(())
    private var ticket: CircuitBreaker.Ticket?
    init(_ t: consuming CircuitBreaker.Ticket) { ticket = .some(t) }
    func take() -> CircuitBreaker.Ticket? { lock.withLock { _ in ticket.take() } }
}

/// What each instance owner's server listed (`ServicePool.Key`: the service and the owner), and
/// the schemas compiled from it, kept until the server says its list changed or the manifest
/// changes. Never shared between owners: a user's instance runs that user's calls, so what it
/// lists is that user's to see and to be checked against. A command tool's schema is its
/// manifest's (key nil).
final class Listings: Sendable {
    /// One owner's listing and the generation it was asked for in.
    struct Listing: Sendable {
        var tools: [MCPTool]
        var generation: UInt64
    }
    private struct State {
        var tools: [ServicePool.Key: [MCPTool]] = [:]
        var schemas: [SchemaKey: Result<JSONSchema, SchemaError>] = [:]
        /// Bumped by each `forget`: a listing asked for, or a schema compiled, before it is
        /// not kept after it. A command tool's generation is its service's key with no owner.
        var generations: [ServicePool.Key: UInt64] = [:]
    }
    private struct SchemaKey: Hashable { var tool: String; var key: ServicePool.Key? }
    private let state = Mutex(State())

    func get(_ key: ServicePool.Key) -> Listing? {
        state.withLock { s in s.tools[key].map { Listing(tools: $0, generation: s.generations[key] ?? 0) } }
    }
    func generation(_ key: ServicePool.Key) -> UInt64 { state.withLock { $0.generations[key] ?? 0 } }

    /// Whether any owner's listing of `service` has `tool`.
    func lists(service: String, tool: String) -> Bool {
        state.withLock { s in s.tools.contains { $0.key.service == service && $0.value.contains { $0.name == tool } } }
    }

    /// Keeps `tools` unless the listing was forgotten since `generation` was read.
    func set(_ key: ServicePool.Key, _ tools: [MCPTool], ifStill generation: UInt64) {
        state.withLock { s in if (s.generations[key] ?? 0) == generation { s.tools[key] = tools } }
    }

    /// Forgets one owner's listing (its server said the list changed) and its schemas.
    func forget(_ key: ServicePool.Key) {
        state.withLock { s in
            s.tools[key] = nil
            s.generations[key, default: 0] += 1
            s.schemas = s.schemas.filter { $0.key.key != key }
        }
    }

    /// Forgets every listing and schema of a tool (its manifest changed).
    func forget(service: String) {
        state.withLock { s in
            for key in s.tools.keys where key.service == service { s.tools[key] = nil }
            for key in s.generations.keys where key.service == service { s.generations[key, default: 0] += 1 }
            s.generations[ServicePool.Key(service: service, owner: nil), default: 0] += 1
            s.schemas = s.schemas.filter { entry in
                entry.key.key.map { $0.service != service } ?? (ToolName(entry.key.tool)?.manifest != service)
            }
        }
    }

    /// The compiled schema of `tool` for `key` (nil: a command tool's), compiling `schema()`
    /// the first time. Kept only while `generation` — read before the schema's source was —
    /// is still current: one compiled from a manifest or listing that changed meanwhile serves
    /// the call that asked and no other.
    func schema(of tool: String, key: ServicePool.Key?, generation: UInt64, _ schema: () -> JSON) -> Result<JSONSchema, SchemaError> {
        let id = SchemaKey(tool: tool, key: key)
        let owner = key ?? ServicePool.Key(service: ToolName(tool)?.manifest ?? tool, owner: nil)
        if let known = state.withLock({ s in (s.generations[owner] ?? 0) == generation ? s.schemas[id] : nil }) { return known }
        let compiled = Result<JSONSchema, SchemaError> { () throws(SchemaError) in try JSONSchema.compile(schema()) }
        state.withLock { s in if (s.generations[owner] ?? 0) == generation { s.schemas[id] = compiled } }
        return compiled
    }
}

/// An exposed tool's name: `NAME` (a command tool) or `NAME.TOOL` (a tool of the MCP server
/// NAME), both parts non-empty; split once, here, so no name can index past its parts.
struct ToolName: Equatable {
    var manifest: String
    var tool: String?
    init?(_ name: String) {
        guard let dot = name.firstIndex(of: ".") else {
            guard !name.isEmpty else { return nil }
            manifest = name
            tool = nil
            return
        }
        let m = String(name[..<dot]), t = String(name[name.index(after: dot)...])
        guard !m.isEmpty, !t.isEmpty else { return nil }
        manifest = m
        tool = t
    }
}

/// Continuations moved off the thread that completed a step (an instance's reader, which
/// must not wait on another server's start or a send): a short-lived thread each. Only the
/// rare paths take it (a listing, a failure going on to its fallbacks); a successful call's
/// answer is passed on where it arrived.
enum Continue {
    static func elsewhere(_ body: @escaping @Sendable () -> Void) {
        if (try? Threads.detach("tool-continue", signals: .noSIGPIPE, body)) == nil { body() }
    }
}

/// Gathers `count` parts answered in any order on any threads; `done` runs once, with them in
/// order, when the last one arrives (at once for none).
final class Gathered<Part: Sendable>: Sendable {
    private let parts: Mutex<(values: [Part?], left: Int)>
    private let done: @Sendable ([Part]) -> Void
    init(count: Int, done: @escaping @Sendable ([Part]) -> Void) {
        parts = Mutex((Array(repeating: nil, count: count), count))
        self.done = done
        if count == 0 { done([]) }
    }
    func set(_ i: Int, _ part: Part) {
        let all: [Part]? = parts.withLock { p in
            guard p.values[i] == nil else { return nil }
            p.values[i] = part
            p.left -= 1
            return p.left == 0 ? p.values.compactMap { $0 } : nil
        }
        if let all { done(all) }
    }
}
