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
    }

    /// What one reading of the manifests gave. `update` swaps it whole; each step of a call
    /// (an attempt, a fallback) reads the one current then.
    struct Catalog: Sendable {
        var manifests: [String: ToolManifest] = [:]
        /// Manifests left out, and why (their policy does not load here).
        var rejected: [String: String] = [:]
        var plans: [String: SpawnPlan] = [:]
        var policyHashes: [String: String] = [:]
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
    private let breakers = Mutex<[String: CircuitBreaker]>([:])
    private let listings = Listings()
    private let schemas = Mutex<[String: Result<JSONSchema, SchemaError>]>([:])
    private let clientInfo = MCPImplementation(name: "cordon", version: "1")

    /// Loads each manifest's policy and plans its sandbox now (a manifest whose policy does not
    /// load is left out, in `rejected` with the reason). `mayUse`: the daemon's authorization
    /// (admins, the manifest's `[access]`, or the policy's). `writeOwnership`: whose ids a
    /// caller's sandboxes write with through writable binds (cordond: the caller's own, unless
    /// an admin); a shared tool's instances write as the bind's owner.
    public init(manifests: [ToolManifest], policies: PolicyStore, environment: SandboxEnvironment, cacheDir: String? = nil,
                writeOwnership: @escaping @Sendable (Caller) -> WriteOwnership = { _ in .sourceOwner },
                mayUse: @escaping @Sendable (Caller, ToolManifest) -> Bool) throws {
        self.policies = policies
        self.cacheDir = cacheDir
        self.environment = environment
        self.mayUse = mayUse
        self.writeOwnership = writeOwnership
        pool = try ServicePool(definitions: [:])
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

    private func apply(_ manifests: [ToolManifest]) -> [String] {
        updating.withLock { _ in
            let old = catalog.withLock { $0 }
            var new = Catalog()
            for m in manifests {
                var overrides = PolicyOverrides()
                overrides.env = m.environment.map { Policy.EnvVar($0.name, $0.value) }
                do {
                    let policy = try overrides.apply(to: try policies.loadPolicy(m.policy))
                    new.plans[m.name] = try policies.spawnPlan(for: policy, cacheDir: cacheDir, callerEnvironment: [:])
                    new.policyHashes[m.name] = policy.contentHash
                    new.manifests[m.name] = m
                } catch {
                    new.rejected[m.name] = "\(m.source): policy \"\(m.policy)\": \(error)"
                }
            }
            let changed = Set(old.manifests.keys).union(new.manifests.keys).sorted().filter { name in
                old.manifests[name] != new.manifests[name] || old.policyHashes[name] != new.policyHashes[name]
            }
            catalog.withLock { $0 = new }
            for name in changed {
                if let m = new.manifests[name], m.kind == .mcp, let plan = new.plans[name] {
                    pool.define(name, definition(m, plan: plan))
                } else if old.manifests[name]?.kind == .mcp {
                    pool.define(name, nil)
                }
                listings.forget(name)
                let mine: (String) -> Bool = { $0 == name || $0.hasPrefix(name + ".") }
                breakers.withLock { all in for key in all.keys where mine(key) { all[key] = nil } }
                schemas.withLock { all in for key in all.keys where mine(key) { all[key] = nil } }
            }
            return changed
        }
    }

    /// How the pool starts and talks to an MCP tool's instances.
    private func definition(_ m: ToolManifest, plan: SpawnPlan) -> ServicePool.Definition {
        let name = m.name, argv = m.command, info = clientInfo, listings = self.listings, changes = self.changes
        return ServicePool.Definition(settings: m.service, spec: { [weak self] key in
            guard let self else { throw ServicePool.ServiceError("the tool gateway is gone") }
            var env = environment
            if let uid = key.owner {
                guard let caller = owners.withLock({ $0[uid] }) else {
                    throw ServicePool.ServiceError("no caller known for uid \(uid)")
                }
                env.writeOwnership = writeOwnership(caller)
            }
            return SandboxedProcess.Spec(plan: plan, argv: argv, environment: env)
        }, connect: { process, _ in
            try MCPServiceClient(process: process, clientInfo: info, onToolsChanged: {
                // The next listing asks again; clients are told the list changed.
                listings.forget(name)
                changes.bump()
            })
        })
    }

    public func stop(until deadline: Double) { pool.stopAll(until: deadline) }

    /// Every breaker's state (0 closed, 1 open, 2 half-open), by exposed tool.
    public func breakerStates() -> [String: Int] {
        let now = MonotonicInstant(seconds: MonotonicClock.now)
        return breakers.withLock { $0 }.mapValues { $0.state(at: now).rawValue }
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

    /// The state of a tool's breaker (0 closed, 1 open, 2 half-open; nil: never called) and
    /// of its instances for `caller`.
    public func stats(_ name: String, for caller: Caller) -> (breaker: Int?, pool: ServicePool.Stats?) {
        let breaker = breakers.withLock { $0[name] }?.state(at: MonotonicInstant(seconds: MonotonicClock.now)).rawValue
        let manifestName = String(name.split(separator: ".", maxSplits: 1).first ?? "")
        guard let m = manifests[manifestName], m.kind == .mcp else { return (breaker, nil) }
        return (breaker, pool.stats(poolKey(m, caller)))
    }

    func poolKey(_ m: ToolManifest, _ caller: Caller) -> ServicePool.Key {
        ServicePool.Key(service: m.name, owner: m.shared ? nil : caller.uid)
    }

    /// Before a lease that may start an instance of `caller`'s: whose gid it writes with.
    private func remember(_ caller: Caller, for m: ToolManifest) {
        guard !m.shared else { return }
        owners.withLock { $0[caller.uid] = caller }
    }

    // MARK: Listing

    /// The tools `caller` may use, sorted by name. An MCP server's tools are listed once (its
    /// first instance's listing, kept until the server says its list changed).
    public func list(for caller: Caller, deadline: Double) -> [ExposedTool] {
        var out: [ExposedTool] = []
        for m in manifests.values.sorted(by: { $0.name < $1.name }) where mayUse(caller, m) {
            switch m.kind {
            case .command:
                out.append(ExposedTool(name: m.name, description: m.description, inputSchema: m.inputSchema ?? .object([("type", .string("object"))]),
                                       annotations: nil, manifest: m.name))
            case .mcp:
                for tool in ((try? tools(of: m, caller: caller, deadline: deadline)) ?? []).sorted(by: { $0.name < $1.name }) {
                    out.append(ExposedTool(name: "\(m.name).\(tool.name)", description: tool.description ?? m.description,
                                           inputSchema: tool.inputSchema, annotations: tool.annotations?.json, manifest: m.name))
                }
            }
        }
        return out
    }

    func tools(of m: ToolManifest, caller: Caller, deadline: Double) throws(ToolCallFailure) -> [MCPTool] {
        if let cached = listings.get(m.name) { return cached }
        remember(caller, for: m)
        let lease: ServicePool.Lease
        switch pool.lease(poolKey(m, caller), deadline: deadline) {
        case .success(let l): lease = l
        case .failure(let e): throw ToolCallFailure(outcome: .unavailable, message: e.message)
        }
        defer { lease.release() }
        guard let client = lease.client as? MCPServiceClient else { throw ToolCallFailure(outcome: .protocolError, message: "not an MCP instance") }
        do {
            let listing = try client.listTools(deadline: deadline)
            listings.set(m.name, listing.tools)
            return listing.tools
        } catch { throw ToolCallFailure(outcome: .protocolError, message: "tools/list: \(error)") }
    }

    // MARK: Calls

    /// Calls `name` with `arguments` for `caller`; `completion` gets the result and the record.
    public func call(_ name: String, arguments: JSON, caller: Caller, deadline: Double,
                     completion: @escaping @Sendable (ToolCallResult) -> Void) {
        let start = MonotonicClock.now
        var record = ToolCallRecord(caller: caller, tool: name, arguments: arguments)
        let manifestName = String(name.split(separator: ".", maxSplits: 1).first ?? "")
        guard let manifest = manifests[manifestName], (manifest.kind == .command) == !name.contains(".") else {
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

    private func attempt(_ name: String, manifest: ToolManifest, arguments: JSON, caller: Caller, deadline: Double, fallbacks: [String],
                         record: ToolCallRecord, start: Double, completion: @escaping @Sendable (ToolCallResult) -> Void) {
        var record = record
        let timeout = min(deadline, MonotonicClock.now + manifest.timeoutSeconds)
        func refuse(_ problem: ToolCallFailure) {
            record.attempts.append(.init(tool: name, outcome: problem.outcome, message: problem.message))
            record.finish(problem.outcome, problem.message, start: start)
            completion(ToolCallResult(outcome: nil, record: record))
        }
        // Arguments first, as far as they can be checked without starting anything: a call
        // refused anyway touches no sandbox and no breaker.
        if let problem = validate(name, manifest: manifest, arguments: arguments, listing: listings.get(manifest.name)) {
            return refuse(problem)
        }
        let breaker = self.breaker(name, manifest)
        let ticket: TicketHolder
        switch breaker.acquire(at: MonotonicInstant(seconds: MonotonicClock.now)) {
        case .allowed(let t): ticket = TicketHolder(t)
        case .refused:
            record.attempts.append(.init(tool: name, outcome: .breakerOpen, message: "the breaker of \(name) is open"))
            return next(fallbacks, after: .breakerOpen, message: "the breaker of \(name) is open", arguments: arguments, caller: caller,
                        deadline: deadline, record: record, start: start, completion: completion)
        }
        // An MCP server's schemas come with its first listing, which starts an instance: a
        // failure there is the server's, counted and answered for by the fallbacks.
        if manifest.kind == .mcp && listings.get(manifest.name) == nil {
            let listing: [MCPTool]
            do { listing = try tools(of: manifest, caller: caller, deadline: timeout) } catch {
                if let t = ticket.take() { breaker.record(t, outcome: .failure, at: MonotonicInstant(seconds: MonotonicClock.now)) }
                record.attempts.append(.init(tool: name, outcome: error.outcome, message: error.message))
                return next(fallbacks, after: error.outcome, message: error.message, arguments: arguments, caller: caller, deadline: deadline,
                            record: record, start: start, completion: completion)
            }
            if let problem = validate(name, manifest: manifest, arguments: arguments, listing: listing) {
                // The server answered its listing: it is well, the call was not.
                if let t = ticket.take() { breaker.record(t, outcome: .success, at: MonotonicInstant(seconds: MonotonicClock.now)) }
                return refuse(problem)
            }
        }
        let attempted = record
        let finished: @Sendable (Result<MCPCallToolOutcome, ToolCallFailure>, Int?, String?) -> Void = { [self] result, instance, policyHash in
            var record = attempted
            record.instance = instance
            record.policy = manifest.policy
            record.policyHash = policyHash
            switch result {
            case .success(let outcome):
                if let t = ticket.take() { breaker.record(t, outcome: .success, at: MonotonicInstant(seconds: MonotonicClock.now)) }
                let isError: Bool
                if case .complete(let r) = outcome { isError = r.isError } else { isError = false }
                record.resultBytes = Self.size(of: outcome)
                record.isError = isError
                record.attempts.append(.init(tool: name, outcome: isError ? .toolError : .ok, message: nil))
                record.finish(record.attempts.count > 1 ? .fallback(name) : (isError ? .toolError : .ok), nil, start: start)
                completion(ToolCallResult(outcome: outcome, record: record))
            case .failure(let failure):
                if let t = ticket.take() { breaker.record(t, outcome: .failure, at: MonotonicInstant(seconds: MonotonicClock.now)) }
                record.attempts.append(.init(tool: name, outcome: failure.outcome, message: failure.message))
                next(fallbacks, after: failure.outcome, message: failure.message, arguments: arguments, caller: caller, deadline: deadline,
                     record: record, start: start, completion: completion)
            }
        }
        switch manifest.kind {
        case .mcp:
            // Only the manifest's own timeout says the instance hung: a caller's shorter deadline
            // says nothing about it (and must not let a caller churn a shared tool's instances).
            let ownTimeout = timeout < deadline
            callServer(name, manifest: manifest, arguments: arguments, caller: caller, deadline: timeout, ownTimeout: ownTimeout, done: finished)
        case .command: runCommand(manifest, arguments: arguments, caller: caller, deadline: timeout, done: finished)
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
        let manifestName = String(fallback.split(separator: ".", maxSplits: 1)[0])
        guard let manifest = manifests[manifestName], mayUse(caller, manifest) else {
            record.attempts.append(.init(tool: fallback, outcome: .refused, message: "fallback \(fallback) is not available to uid \(caller.uid)"))
            return next(Array(fallbacks.dropFirst()), after: outcome, message: message, arguments: arguments, caller: caller, deadline: deadline,
                        record: record, start: start, completion: completion)
        }
        // One level: a fallback's own fallbacks are not tried.
        attempt(fallback, manifest: manifest, arguments: arguments, caller: caller, deadline: deadline,
                fallbacks: Array(fallbacks.dropFirst()), record: record, start: start, completion: completion)
    }

    private func breaker(_ name: String, _ m: ToolManifest) -> CircuitBreaker {
        breakers.withLock { all in
            if let b = all[name] { return b }
            let b = CircuitBreaker(Self.breakerConfiguration(m.breaker))
            all[name] = b
            return b
        }
    }

    static func breakerConfiguration(_ s: ToolManifest.BreakerSettings) -> CircuitBreaker.Configuration {
        let ratio = CircuitBreaker.Configuration.FailureRatio(s.failureRatio, minimumCalls: s.minCalls)
        return (try? CircuitBreaker.Configuration(failureCount: s.failures, failureRatio: ratio, window: .milliseconds(Int64(s.windowSeconds * 1000)),
                                                   cooldown: .milliseconds(Int64(s.cooldownSeconds * 1000)),
                                                   maxCooldown: .milliseconds(Int64(s.maxCooldownSeconds * 1000))))
            ?? (try! CircuitBreaker.Configuration(failureCount: 5, window: .seconds(60), cooldown: .seconds(30)))
    }

    /// The schema's verdict on the arguments, or nil when they may go (or cannot be judged
    /// yet: an MCP tool whose server has not been listed).
    private func validate(_ name: String, manifest: ToolManifest, arguments: JSON, listing: [MCPTool]?) -> ToolCallFailure? {
        guard case .object = arguments else {
            return ToolCallFailure(outcome: .invalidArguments, message: "arguments must be an object, not \(arguments.typeName)")
        }
        let schemaJSON: JSON
        switch manifest.kind {
        case .command: schemaJSON = manifest.inputSchema ?? .object([("type", .string("object"))])
        case .mcp:
            guard let listing else { return nil }
            let toolName = String(name.split(separator: ".", maxSplits: 1)[1])
            guard let tool = listing.first(where: { $0.name == toolName }) else {
                return ToolCallFailure(outcome: .refused, message: "\(manifest.name) lists no tool \"\(toolName)\"")
            }
            schemaJSON = tool.inputSchema
        }
        let compiled = schemas.withLock { cache -> Result<JSONSchema, SchemaError> in
            if let c = cache[name] { return c }
            let c = Result<JSONSchema, SchemaError> { () throws(SchemaError) in try JSONSchema.compile(schemaJSON) }
            cache[name] = c
            return c
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

    private func callServer(_ name: String, manifest: ToolManifest, arguments: JSON, caller: Caller, deadline: Double, ownTimeout: Bool,
                            done: @escaping @Sendable (Result<MCPCallToolOutcome, ToolCallFailure>, Int?, String?) -> Void) {
        let hash = catalog.withLock { $0.policyHashes[manifest.name] }
        remember(caller, for: manifest)
        pool.lease(poolKey(manifest, caller), deadline: deadline) { leased in
            let lease: ServicePool.Lease
            switch leased {
            case .success(let l): lease = l
            case .failure(let e): return done(.failure(ToolCallFailure(outcome: .unavailable, message: e.message)), nil, hash)
            }
            guard let client = lease.client as? MCPServiceClient else {
                lease.release()
                return done(.failure(ToolCallFailure(outcome: .protocolError, message: "not an MCP instance")), lease.instance, hash)
            }
            let toolName = String(name.split(separator: ".", maxSplits: 1)[1])
            client.callTool(toolName, arguments: arguments, deadline: deadline) { result in
                switch result {
                case .success(let outcome):
                    lease.release()
                    done(.success(outcome), lease.instance, hash)
                case .failure(let failure):
                    // No answer in time: the instance is not trusted with another call.
                    lease.release(unresponsive: failure == .timeout && ownTimeout)
                    let mapped: ToolCallFailure = switch failure {
                    case .timeout: ToolCallFailure(outcome: .timeout, message: "no answer from \(name) in time")
                    case .closed: ToolCallFailure(outcome: .unavailable, message: "the instance of \(manifest.name) ended during the call")
                    case .busy: ToolCallFailure(outcome: .unavailable, message: "the instance of \(manifest.name) is busy")
                    case .server(let e): ToolCallFailure(outcome: .protocolError, message: "\(e)")
                    }
                    done(.failure(mapped), lease.instance, hash)
                }
            }
        }
    }

    private func runCommand(_ manifest: ToolManifest, arguments: JSON, caller: Caller, deadline: Double,
                            done: @escaping @Sendable (Result<MCPCallToolOutcome, ToolCallFailure>, Int?, String?) -> Void) {
        let (plan, hash) = catalog.withLock { ($0.plans[manifest.name], $0.policyHashes[manifest.name]) }
        guard let plan else { return done(.failure(ToolCallFailure(outcome: .refused, message: "no tool \"\(manifest.name)\" any more")), nil, nil) }
        var argv: [String] = []
        for element in manifest.argv {
            guard let name = ToolManifest.placeholderName(element) else { argv.append(element); continue }
            switch arguments[name] {
            case .string(let s)?: argv.append(s)
            case .int(let n)?: argv.append(String(n))
            case .uint(let n)?: argv.append(String(n))
            case .double(let d)?: argv.append(String(d))
            case .bool(let b)?: argv.append(b ? "true" : "false")
            default:
                return done(.failure(ToolCallFailure(outcome: .invalidArguments, message: "{\(name)} must be a string, number or boolean")), nil, hash)
            }
        }
        let input = Array(arguments.text.utf8)
        var ownEnvironment = self.environment
        ownEnvironment.writeOwnership = writeOwnership(caller)
        let environment = ownEnvironment, command = argv
        do {
            try Threads.detach("tool-command", signals: .noSIGPIPE) {
                let run = CommandRun.execute(plan: plan, argv: command, stdin: input, environment: environment,
                                             wallTime: max(0.001, deadline - MonotonicClock.now))
                done(run.map { output in
                    let text = String(decoding: output.stdout, as: UTF8.self)
                    var result = MCPCallToolResult(content: [.text(text, extra: nil)], isError: output.exitStatus != 0)
                    if manifest.output == .json, output.exitStatus == 0 {
                        guard let value = try? JSON.parse(output.stdout) else {
                            result = MCPCallToolResult(content: [.text("the tool's output is not JSON", extra: nil)], isError: true)
                            return .complete(result)
                        }
                        result.structuredContent = value
                    }
                    return .complete(result)
                }, nil, hash)
            }
        } catch {
            done(.failure(ToolCallFailure(outcome: .unavailable, message: "start a thread: \(error)")), nil, hash)
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
    struct Output { var stdout: [UInt8]; var exitStatus: Int32 }
    /// The most of a command's stdout a result carries.
    static let maxResultBytes = 4 << 20

    static func execute(plan: SpawnPlan, argv: [String], stdin: [UInt8], environment: SandboxEnvironment,
                        wallTime: Double) -> Result<Output, ToolCallFailure> {
        func fail(_ what: String) -> Result<Output, ToolCallFailure> {
            .failure(ToolCallFailure(outcome: .unavailable, message: "\(what): \(SystemError.text(errno))"))
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
        let devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        var io = SandboxIO()
        io.stdin = reader
        io.stdout = output
        io.stderr = devnull
        io.relaySignals = false
        let result = Sandbox.run(plan: plan, argv: argv, environment: environment, io: io, wallTime: wallTime)
        if let failure = result.setupFailure {
            return .failure(ToolCallFailure(outcome: .unavailable, message: failure.message))
        }
        if result.reason == .timeout { return .failure(ToolCallFailure(outcome: .timeout, message: "the command ran out of time")) }
        var bytes = [UInt8](repeating: 0, count: maxResultBytes)
        let n = bytes.withUnsafeMutableBytes { pread(output, $0.baseAddress, $0.count, 0) }
        bytes = Array(bytes.prefix(max(0, n)))
        return .success(Output(stdout: bytes, exitStatus: result.exitStatus))
    }
}

/// A breaker's ticket, held until the call it admitted ends (tickets cannot be copied).
final class TicketHolder: @unchecked Sendable {
    private let lock = Mutex(())
    private var ticket: CircuitBreaker.Ticket?
    init(_ t: consuming CircuitBreaker.Ticket) { ticket = .some(t) }
    func take() -> CircuitBreaker.Ticket? { lock.withLock { _ in ticket.take() } }
}

/// Each MCP server's tool list, kept from its first listing until it says the list changed.
final class Listings: Sendable {
    private let byTool = Mutex<[String: [MCPTool]]>([:])
    func get(_ name: String) -> [MCPTool]? { byTool.withLock { $0[name] } }
    func set(_ name: String, _ tools: [MCPTool]) { byTool.withLock { $0[name] = tools } }
    func forget(_ name: String) { _ = byTool.withLock { $0.removeValue(forKey: name) } }
}
