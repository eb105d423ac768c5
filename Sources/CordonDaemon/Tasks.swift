import CLinux
import CordonAudit
import CordonConfig
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What `task.submit` asked for, validated.
struct TaskRequest: Sendable {
    var policyName: String
    var argv: [String]
    var stdin: [UInt8]
    var env: [String: String]
    var limits: LimitRequest
    var label: String?
    /// A directory of the caller's to bind at /workspace (docs/daemon.md, "Workspaces").
    var workspace: WorkspaceRequest?
    /// Files put into the task's copy-on-write (or scratch) workspace before it starts.
    var files: [InputFile] = []

    /// What a queued request holds in memory (argv, environment, label) or in its stdin file:
    /// counted against `scheduler.max_queued_bytes[_per_user]`.
    var queuedBytes: Int64 {
        Int64(argv.reduce(0) { $0 + $1.utf8.count + 1 } + env.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 }
              + stdin.count + (label?.utf8.count ?? 0) + policyName.utf8.count
              + files.reduce(0) { $0 + $1.bytes.count + $1.path.utf8.count + 16 })
    }
}

/// A file for the task's workspace: its path there, bytes and permission bits.
struct InputFile: Sendable, Equatable {
    var path: String
    var bytes: [UInt8]
    var mode: UInt32
}

/// A caller's workspace as asked: the host directory, whether the sandbox may write it, and
/// whether it writes a copy-on-write layer instead (the directory is then only read).
struct WorkspaceRequest: Sendable, Equatable {
    var path: String
    var writable: Bool
    var cow = false
}

/// Limits a client may ask for: each may only tighten the policy's.
struct LimitRequest: Sendable, Equatable {
    var wallTimeSeconds: Double?
    var cpuTimeSeconds: Double?
    var memoryBytes: UInt64?
    var pids: Int?
    var outputBytes: UInt64?

    /// The limits as text, for the keys of plan caches and warm pools (a struct interpolated
    /// into a string is described by reflection: tens of microseconds on every task).
    var key: String {
        [wallTimeSeconds.map { "\($0)" }, cpuTimeSeconds.map { "\($0)" }, memoryBytes.map { "\($0)" }, pids.map { "\($0)" },
         outputBytes.map { "\($0)" }].map { $0 ?? "-" }.joined(separator: ",")
    }

    /// The policy with these limits applied; an error names the field that would loosen it.
    func apply(to policy: Policy) throws(RPCError) -> Policy {
        var p = policy
        func tighten<T: Comparable>(_ key: String, _ asked: T?, _ current: T?, _ show: (T) -> String) throws(RPCError) -> T? {
            guard let asked else { return current }
            if let current, asked > current {
                throw RPCError.invalid("params.limits.\(key)", "\(show(asked)) is looser than policy \(policy.name)'s \(show(current)): limits may only tighten the policy")
            }
            return asked
        }
        p.limits.wallTimeSeconds = try tighten("wallTime", wallTimeSeconds, policy.limits.wallTimeSeconds) { Units.formatDuration($0) }
        p.limits.cpuTimeSeconds = try tighten("cpuTime", cpuTimeSeconds, policy.limits.cpuTimeSeconds) { Units.formatDuration($0) }
        p.limits.memoryBytes = try tighten("memory", memoryBytes, policy.limits.memoryBytes) { Units.formatSize($0) }
        p.limits.pids = try tighten("pids", pids, policy.limits.pids) { "\($0)" }
        p.limits.outputBytes = try tighten("output", outputBytes, policy.limits.outputBytes) { Units.formatSize($0) }
        return p
    }
}

/// A task the daemon holds in memory: queued, or running on its own thread.
final class LiveTask: @unchecked Sendable {
    let id: Int64
    let owner: Peer
    /// The request without its stdin bytes: those wait in `stdin`, a file of their own, so a
    /// queue of large requests does not sit in the daemon's heap.
    let request: TaskRequest
    let stdin: OwnedDescriptor
    /// Counted against the queued-bytes quotas until the task leaves the queue.
    let queuedBytes: Int64
    let plan: SpawnPlan
    /// The workspace's directory, opened with the caller's rights at submit and held until the
    /// task's sandbox has mounted it (nil: no workspace).
    let workspace: OwnedDescriptor?
    // Guarded by the manager's monitor:
    var state: TaskState = .queued
    /// Created when the task leaves the queue (a queued task holds only its stdin's and its
    /// workspace's descriptors).
    var control: SandboxControl?
    /// Who asked for the cancel (recorded with the task's end, in the same transaction).
    var cancelledBy: Peer?
    /// The sandbox has ended and its record is being written: too late to cancel.
    var ending = false
    var dequeuedAt = 0.0
    /// A session's channel to its server: the task is a session (never queued; its workload is
    /// the server, its commands come through `session.exec`).
    let session: SessionChannel?
    /// The warm pool this task may take its sandbox from (nil: a cold start).
    var warmKey: String?

    init(id: Int64, owner: Peer, request: TaskRequest, stdin: OwnedDescriptor, queuedBytes: Int64, plan: SpawnPlan,
         workspace: OwnedDescriptor?, session: SessionChannel? = nil) {
        self.session = session
        self.workspace = workspace
        self.queuedBytes = queuedBytes
        self.id = id
        self.owner = owner
        self.request = request
        self.stdin = stdin
        self.plan = plan
    }
}

/// The scheduler and the task runner: a bounded queue per user served round-robin, a global
/// and a per-user concurrency limit, one thread per running sandbox, and the audit store as
/// the record of truth — a task's final record is durable before anyone is told it ended.
final class TaskManager: @unchecked Sendable {
    let config: DaemonConfig
    let store: AuditStore
    let policies: PolicyStore
    let authorizer: Authorizer
    let metrics: Metrics
    let quotas: Quotas
    let log: Logger
    let environment: SandboxEnvironment
    /// Policies' images, unpacked and scanned (`filesystem.image`).
    let images: ImageRoots
    let warm: WarmPool
    /// Threads for running tasks and sessions' commands, reused: starting one per task cost
    /// ~60 µs of a warm task's 3 ms. Each still gets a thread of its own for as long as it runs.
    let threads = ElasticThreads(name: "cordond-task", maxIdle: 8)
    let execThreads = ElasticThreads(name: "cordond-exec", maxIdle: 8)

    private let monitor = Monitor()
    // Everything below is guarded by `monitor`.
    private var live: [Int64: LiveTask] = [:]
    /// What to run when a live task ends (parked task.wait and friends), by task and waiter;
    /// taken with `live[id]`, or forgotten when the connection that parked it closes.
    private var endWaiters: [Int64: [UInt64: @Sendable () -> Void]] = [:]
    private var endWaiterCount = 0
    /// Ended tasks whose waiters are being answered (see `takeEndWaiters`).
    private var answering = 0
    private var nextEndWaiter: UInt64 = 0
    private var queues: [UInt32: [LiveTask]] = [:]
    /// Users with queued tasks, in round-robin order; `cursor` is the next to serve.
    private var rotation: [UInt32] = []
    private var cursor = 0
    private var reservedQueued = 0
    private var reservedByUser: [UInt32: Int] = [:]
    private var running = 0
    private var runningByUser: [UInt32: Int] = [:]
    private var draining = false
    /// Open sessions, in all and by uid (they take no task slot: `sessions.max`).
    private var sessionsOpen = 0
    private var sessionsByUser: [UInt32: Int] = [:]
    /// Compiled spawn plans by policy hash and limits (the seccomp filter and mount plan are
    /// the same for every task of a policy); at most `planCacheLimit` entries.
    private var planCache: [String: SpawnPlan] = [:]
    private static let planCacheLimit = 64

    init(config: DaemonConfig, store: AuditStore, policies: PolicyStore, authorizer: Authorizer, metrics: Metrics, quotas: Quotas, log: Logger) {
        self.config = config
        self.quotas = quotas
        self.store = store
        self.policies = policies
        self.authorizer = authorizer
        self.metrics = metrics
        self.log = log
        var env = SandboxEnvironment(runtimeDir: config.runtimeDir)
        env.egress.hostsFile = config.dnsHostsFile
        env.egress.upstream = config.dnsUpstream
        env.cleanupGuardian = false  // Recovery sweeps orphaned cgroups at the next start
        environment = env
        warm = WarmPool(environment: env, maxParked: config.warmMax, log: log)
        images = ImageRoots(cacheDir: config.cacheDir, stateDir: config.stateDir, environment: env, log: log)
    }

    var counts: (queued: Int, running: Int) { monitor.locked { (reservedQueued, running) } }

    // MARK: Submit

    /// Policy names are names, never paths: a client must not make the daemon read a file of
    /// its choosing as a policy.
    static func validPolicyName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 64, first != UInt8(ascii: "."), first != UInt8(ascii: "-") else { return false }
        return name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
            && !name.hasSuffix(".toml") && !name.hasSuffix(".json")
    }

    /// Loads a policy by name for `peer`, refusing (and recording) one the peer may not use.
    func policy(named name: String, for peer: Peer, method: String) throws(RPCError) -> Policy {
        guard Self.validPolicyName(name) else {
            throw RPCError.invalid("params.policy", "\"\(name)\" is not a policy name (lower-case letters, digits, '.', '_', '-'; no paths)")
        }
        let policy: Policy
        do { policy = try loadPolicy(name) } catch {
            throw RPCError(RPCCode.policyError, "policy \(name): \(error.description)", field: "params.policy")
        }
        guard authorizer.mayUse(peer, policy) else {
            refuse(peer, method: method, what: "policy \(name)")
            throw RPCError(RPCCode.unauthorized, "uid \(peer.uid) may not use policy \(name): it is not listed in the policy's [access] and is not a cordond admin",
                           field: "params.policy")
        }
        return policy
    }

    /// Policies as loaded, by name, with every file the load read (its identity and bytes) and
    /// every config-dir path it found absent: a task or a session's command of a policy whose
    /// files are all as they were takes it from here instead of parsing it again (about 0.3 ms
    /// of each). A file changed, added or removed since is a miss, and the policy is loaded anew.
    private let loaded = Mutex<[String: (policy: Policy, inputs: [PolicyInputs.Input])]>([:])
    static let loadedLimit = 256

    /// `policies.loadPolicy(name)`, through `loaded`.
    func loadPolicy(_ name: String) throws(PolicyStore.LoadError) -> Policy {
        if let hit = loaded.withLock({ $0[name] }), Self.unchanged(hit.inputs) { return hit.policy }
        var store = policies
        let inputs = PolicyInputs()
        store.inputs = inputs
        let policy = try store.loadPolicy(name)
        if inputs.incomplete { return policy }
        loaded.withLock {
            if $0.count >= Self.loadedLimit { $0.removeAll() }
            $0[name] = (policy, inputs.all)
        }
        return policy
    }

    /// Whether every input of a load is as it was: each file's identity and bytes (a change
    /// within the clock's granularity keeps the identity, not the bytes), each absent path still
    /// absent, each resolved path still resolving the same.
    static func unchanged(_ inputs: [PolicyInputs.Input]) -> Bool {
        for input in inputs {
            switch input {
            case .file(let path, let identity, let bytes):
                guard FileSystem.identity(path) == identity,
                      let now = try? FileSystem.readRegularFile(path, limit: bytes.count + 1, noFollow: true), now == bytes else { return false }
            case .absent(let path):
                if FileSystem.kind(path) != .missing { return false }
            case .resolved(let path, let real):
                if (FileSystem.realPath(path) ?? path) != real { return false }
            }
        }
        return true
    }

    /// Refusals recorded one by one per uid and minute; beyond that they are counted and the
    /// count is recorded with the next one that gets through, so a client hammering the socket
    /// with forbidden requests cannot grow the audit store (or push real records out of it).
    static let refusalsPerMinute = 20, refusalsPerHour = 120
    private let refusalWindows = Mutex<[UInt32: (start: Double, recorded: Int, suppressed: Int, hourStart: Double, hourRecorded: Int)]>([:])

    /// Records an authorization refusal (audit event, metric, log line).
    func refuse(_ peer: Peer, method: String, what: String) {
        metrics.refused(method: method)
        guard let suppressed = admitRefusal(peer) else { return }
        log.notice("refused", metadata: ["uid": "\(peer.uid)", "pid": "\(peer.pid)", "method": "\(method)", "what": "\(what)"])
        // Refusals are kept for audit.keep_denials whatever the quota: each is bounded in size
        // (the executable is clipped in Peer.of).
        var detail: [(String, JSON)] = [("method", .string(method)), ("what", .string(Self.clip(what))), ("pid", .int(Int64(peer.pid))),
                                        ("gid", .int(Int64(peer.gid))), ("exe", .string(peer.exe))]
        if suppressed > 0 { detail.append(("suppressedBefore", .int(Int64(suppressed)))) }
        _ = try? store.record(NewEvent(kind: "auth-refused", taskID: nil, uid: peer.uid, time: UTCTime.epochSeconds(), detail: JSON.object(detail).text))
    }

    /// Whether `peer`'s refusal may be recorded now (its uid's share of `refusalsPerMinute` and
    /// `refusalsPerHour`): the number of refusals not recorded since the last one that was, or
    /// nil when this one is only counted. Refused tool calls share the windows.
    func admitRefusal(_ peer: Peer) -> Int? {
        let now = MonotonicClock.now
        let suppressed: Int? = refusalWindows.withLock { windows in
            var w = windows[peer.uid] ?? (now, 0, 0, now, 0)
            var carried = 0
            if now - w.start >= 60 {
                carried = w.suppressed
                (w.start, w.recorded, w.suppressed) = (now, 0, 0)
            }
            if now - w.hourStart >= 3600 { (w.hourStart, w.hourRecorded) = (now, 0) }
            defer { windows[peer.uid] = w }
            if w.recorded >= Self.refusalsPerMinute || w.hourRecorded >= Self.refusalsPerHour {
                w.suppressed += 1
                return nil
            }
            w.recorded += 1
            w.hourRecorded += 1
            return carried
        }
        return suppressed
    }

    /// At most 256 bytes of `text` (whole characters), marked when cut.
    static func clip(_ text: String) -> String {
        guard text.utf8.count > 256 else { return text }
        var out = ""
        for c in text {
            if out.utf8.count + c.utf8.count > 250 { break }
            out.append(c)
        }
        return out + "…"
    }

    /// Whose ids a sandbox of `peer`'s writes with: a bind's owner for an admin, the peer
    /// itself (uid and primary gid) for everyone else.
    func writeOwnership(for peer: Peer) -> WriteOwnership {
        authorizer.isAdmin(peer) ? .sourceOwner : .only(Policy.Owner(uid: peer.uid, gid: peer.gid))
    }

    /// The caller's workspace directory, opened as the caller (`CallerFiles`: their uid, gid
    /// and groups decide, on a thread of its own, without following a symlink) and checked
    /// against the policy's `workspace.allow`, as named (before anything is opened) and on the
    /// path the kernel gives the opened directory; a writable one must be the caller's own (its
    /// owner: only the caller's ids are mapped into the sandbox, and its group), an admin's too.
    func openWorkspace(_ asked: WorkspaceRequest, policy: Policy, for peer: Peer) throws(RPCError) -> (descriptor: OwnedDescriptor, path: String) {
        guard !policy.workspace.allow.isEmpty else {
            throw RPCError(RPCCode.policyError, "policy \(policy.name) takes no workspace: its [workspace] allow is empty (docs/policies.md)", field: "params.workspace")
        }
        if let problem = CallerFiles.lexicalProblem(asked.path) {
            throw RPCError.invalid("params.workspace.path", "workspace \(PrintableText.of(asked.path)): \(problem)")
        }
        // Nothing outside the policy's places is opened at all (a slow or hostile file system
        // elsewhere never gets a call from cordond).
        guard policy.workspace.allows(asked.path) else {
            throw RPCError(RPCCode.unauthorized, "workspace \(PrintableText.of(asked.path)) is not at or under a place policy \(policy.name) allows workspaces (workspace.allow: \(policy.workspace.allow.joined(separator: ", ")))",
                           field: "params.workspace.path")
        }
        let caller = CallerFiles.Caller(uid: peer.uid, gid: peer.gid, groups: peer.groups)
        let opened: Descriptor
        do { opened = try CallerFiles.openDirectory(asked.path, as: caller, writable: asked.writable) } catch {
            let denied = error.errno == EACCES || error.errno == EPERM
            throw RPCError(denied ? RPCCode.unauthorized : RPCCode.invalidParams, "workspace \(error.message)", field: "params.workspace.path")
        }
        let descriptor = OwnedDescriptor(opened)
        guard let real = FileSystem.symlinkTarget("/proc/self/fd/\(descriptor.fd)"), real.hasPrefix("/") else {
            throw RPCError(RPCCode.internalError, "workspace \(PrintableText.of(asked.path)): cannot tell where the opened directory is", field: "params.workspace.path")
        }
        guard policy.workspace.allows(real) else {
            throw RPCError(RPCCode.unauthorized, "workspace \(PrintableText.of(real)) is not at or under a place policy \(policy.name) allows workspaces (workspace.allow: \(policy.workspace.allow.joined(separator: ", ")))",
                           field: "params.workspace.path")
        }
        if asked.writable {
            var st = stat()
            guard fstat(descriptor.fd, &st) == 0 else {
                throw RPCError(RPCCode.internalError, "workspace \(PrintableText.of(real)): fstat: \(SystemError.text(errno))", field: "params.workspace.path")
            }
            // The owner, and a group of the caller's (a shared project group's, a setgid
            // directory's: IdmappedMounts maps it too, and checks both again at spawn).
            switch SandboxWorkspace.writeRefusal(uid: st.st_uid, gid: st.st_gid, caller: Policy.Owner(uid: peer.uid, gid: peer.gid), groups: peer.groups) {
            case .owner?:
                throw RPCError(RPCCode.unauthorized, "workspace \(PrintableText.of(real)) belongs to uid \(st.st_uid), not to you (\(peer.uid)): a writable workspace is a directory of your own (only your ids are mapped into the sandbox); ask for it read-only otherwise",
                               field: "params.workspace.path")
            case .group?:
                throw RPCError(RPCCode.unauthorized, "workspace \(PrintableText.of(real)) belongs to group \(st.st_gid), which is not one of yours: a writable workspace is in one of your groups; ask for it read-only, or change its group",
                               field: "params.workspace.path")
            case nil: break
            }
        }
        return (descriptor, real)
    }

    /// A request's policy (its limits applied), spawn plan and workspace, checked for `peer`
    /// (the policy's use, the caller's variables, the workspace opened as the caller, the
    /// owners of writable binds, the record and output quotas).
    struct Prepared {
        var policy: Policy
        var plan: SpawnPlan
        var workspace: OwnedDescriptor?
        var workspacePath: (path: String, writable: Bool, cow: Bool)?
    }

    func prepare(_ request: TaskRequest, from peer: Peer, method: String) throws(RPCError) -> Prepared {
        let base = try policy(named: request.policyName, for: peer, method: method)
        let policy = try request.limits.apply(to: base)
        try Self.checkPassed(request.env, policy: policy)
        var plan = try spawnPlan(policy, limits: request.limits, env: request.env)
        var workspace: OwnedDescriptor?
        var workspacePath: (path: String, writable: Bool, cow: Bool)?
        if let asked = request.workspace {
            let opened = try openWorkspace(asked, policy: policy, for: peer)
            do { plan = try plan.withWorkspace(source: opened.path, writable: asked.writable, cow: asked.cow) } catch {
                throw RPCError(RPCCode.policyError, "policy \(policy.name): \(error.description)", field: "params.workspace")
            }
            workspace = opened.descriptor
            workspacePath = (opened.path, asked.writable, asked.cow)
        } else if !request.files.isEmpty {
            // Files and no directory: a scratch workspace, a copy-on-write layer over nothing
            // (recorded with an empty path).
            do { plan = try plan.withWorkspace(source: "(scratch)", writable: false, cow: true) } catch {
                throw RPCError(RPCCode.policyError, "policy \(policy.name): \(error.description)", field: "params.files")
            }
            workspacePath = ("", false, true)
        }
        // What a non-admin's sandbox writes through a writable bind is theirs on the host: a
        // policy naming another owner is theirs to use only through an admin.
        let ownership = writeOwnership(for: peer)
        if let me = ownership.caller {
            for step in plan.mounts where step.kind == .attach && ownership.owner(named: step.owner, source: me) == nil {
                throw RPCError(RPCCode.unauthorized, "policy \(policy.name): filesystem.read_write \(step.target): owner \"\(step.owner!)\" is not you (\(me)); only cordond admins may name another owner",
                               field: "params.policy")
            }
        }
        do {
            try quotas.checkRecords(peer.uid)
            try quotas.checkOutput()
        } catch {
            quotaRefused(peer, error)
            throw error
        }
        return Prepared(policy: policy, plan: plan, workspace: workspace, workspacePath: workspacePath)
    }

    /// Whether what a task does can outlast a power loss that its submission's record did not:
    /// writes to the host's files (a writable bind or workspace) or traffic through egress.
    static func hasLastingEffects(_ request: TaskRequest, plan: SpawnPlan) -> Bool {
        plan.policy.network.mode != .none || !plan.policy.filesystem.readWrite.isEmpty
            || request.workspace.map { $0.writable && !$0.cow } == true
    }

    /// `answeredAtEnd`: the submitter is told of the task only once it has ended (task.submit
    /// with wait). Then, for a task whose effects are the sandbox's own (no writable host file,
    /// no network), the submission need not reach the disk on its own: the end's durable commit
    /// takes it along, and the store syncs it within 50 ms if the task runs longer. Any other
    /// task's submission is on disk before it can start.
    func submit(_ request: TaskRequest, from peer: Peer, answeredAtEnd: Bool = false) throws(RPCError) -> Int64 {
        let prepared = try prepare(request, from: peer, method: "task.submit")
        let (policy, plan, workspace, workspacePath) = (prepared.policy, prepared.plan, prepared.workspace, prepared.workspacePath)
        let bytes = request.queuedBytes
        try quotas.reserveQueued(peer.uid, bytes)
        var reserved = true
        defer { if reserved { quotas.releaseQueued(peer.uid, bytes) } }
        let stdin: OwnedDescriptor
        do { stdin = OwnedDescriptor(try Self.stdinDescriptor(request.stdin)) } catch {
            throw RPCError(RPCCode.internalError, "cannot keep the task's stdin: \(error)")
        }
        var stored = request
        stored.stdin = []

        // Reserve a place in the queue before the durable insert, so a full queue costs nothing.
        try monitor.locked { () throws(RPCError) in
            if draining { throw RPCError(RPCCode.shuttingDown, "cordond is shutting down and accepts no new tasks") }
            if reservedQueued >= config.maxQueued {
                throw RPCError(RPCCode.queueFull, "the queue is full (\(config.maxQueued) tasks waiting): retry later")
            }
            if reservedByUser[peer.uid, default: 0] >= config.maxQueuedPerUser {
                throw RPCError(RPCCode.queueFull, "uid \(peer.uid) already has \(config.maxQueuedPerUser) tasks waiting (scheduler.max_queued_per_user): retry later")
            }
            reservedQueued += 1
            reservedByUser[peer.uid, default: 0] += 1
        }
        let id: Int64
        do {
            id = try store.createTask(NewTask(submitter: Submitter(uid: peer.uid, gid: peer.gid, pid: peer.pid, exe: peer.exe),
                                              label: request.label, policy: policy.name, policyHash: policy.contentHash,
                                              argv: request.argv, submittedAt: UTCTime.epochSeconds(), workspace: workspacePath),
                                      durable: !answeredAtEnd || Self.hasLastingEffects(request, plan: plan))
        } catch {
            monitor.locked { unreserve(peer.uid) }
            log.error("audit store refused a task", metadata: ["error": "\(error)"])
            throw RPCError(RPCCode.internalError, "the audit store could not record the task: \(error)")
        }
        quotas.addRecords(peer.uid, Quotas.recordBytes(argv: request.argv, exe: peer.exe, label: request.label, policy: policy.name,
                                                       workspace: workspacePath?.path))
        let task = LiveTask(id: id, owner: peer, request: stored, stdin: stdin, queuedBytes: bytes, plan: plan, workspace: workspace)
        if WarmPool.eligible(request, plan: plan) { task.warmKey = WarmPool.key(plan, limits: request.limits) }
        reserved = false  // the task holds it now: released when it leaves the queue
        monitor.locked {
            live[id] = task
            if queues[peer.uid] == nil { rotation.append(peer.uid) }
            queues[peer.uid, default: []].append(task)
            dispatch()
        }
        return id
    }

    /// Fills the warm pools of the policies among `names` that ask for them (`daemon.warm`),
    /// for tasks without limits of their own.
    func prewarm(_ names: [String]) {
        for name in names {
            // An image's policy is never warm (its plan has idmapped mounts): not prepared here.
            guard let policy = try? policies.loadPolicy(name), policy.daemon.warm > 0, policy.filesystem.image == nil,
                  let plan = try? spawnPlan(policy, limits: LimitRequest(), env: [:]),
                  !plan.mounts.contains(where: { $0.kind == .attach }) else { continue }
            warm.want(WarmPool.key(plan, limits: LimitRequest()), plan: plan)
        }
    }

    // MARK: Sessions

    /// Starts a session (docs/daemon.md, "Sessions"): checked as a task is, recorded as a task
    /// of kind "session", started at once on a thread of its own (never queued: it takes a
    /// place of `sessions.max`, not a task slot). The session is usable once `whenReady` says so.
    func createSession(_ request: SessionRequest, from peer: Peer) throws(RPCError) -> (id: Int64, channel: SessionChannel) {
        let prepared = try prepare(request.task, from: peer, method: "session.create")
        // A session is a sandbox: it lives at most its policy's wall_time, as any does.
        let wall = prepared.policy.limits.wallTimeSeconds
        if let asked = request.ttlSeconds, let wall, asked > wall {
            throw RPCError.invalid("params.ttl", "\(Units.formatDuration(asked)) is longer than policy \(prepared.policy.name)'s wall_time \(Units.formatDuration(wall)): a session lives at most its policy's wall_time (use a policy with a longer one)")
        }
        let ttl = request.ttlSeconds ?? min(Self.defaultSessionTTL, wall ?? .infinity, config.sessionsMaxTTL)
        let idle = min(request.idleSeconds ?? Self.defaultSessionIdle, ttl)
        try monitor.locked { () throws(RPCError) in
            if draining { throw RPCError(RPCCode.shuttingDown, "cordond is shutting down and starts no session") }
            if sessionsOpen >= config.sessionsMax {
                throw RPCError(RPCCode.busy, "cordond already holds \(config.sessionsMax) sessions (sessions.max): close one, or retry later")
            }
            if sessionsByUser[peer.uid, default: 0] >= config.sessionsMaxPerUser {
                throw RPCError(RPCCode.busy, "uid \(peer.uid) already has \(config.sessionsMaxPerUser) sessions open (sessions.max_per_user): close one first")
            }
            sessionsOpen += 1
            sessionsByUser[peer.uid, default: 0] += 1
        }
        var placed = true
        defer {
            if placed { monitor.locked { releaseSessionPlace(peer.uid) } }
        }
        let channel: SessionChannel
        let control: SandboxControl
        do {
            channel = try SessionChannel(ttlSeconds: ttl, idleSeconds: idle)
            control = try SandboxControl()
        } catch {
            throw RPCError(RPCCode.internalError, "cannot make the session's channel: \(error)")
        }
        let id: Int64
        do {
            id = try store.createTask(NewTask(submitter: Submitter(uid: peer.uid, gid: peer.gid, pid: peer.pid, exe: peer.exe),
                                              label: request.task.label, policy: prepared.policy.name, policyHash: prepared.policy.contentHash,
                                              argv: ["cordon-session"], submittedAt: UTCTime.epochSeconds(), workspace: prepared.workspacePath,
                                              kind: "session"))
        } catch {
            log.error("audit store refused a session", metadata: ["error": "\(error)"])
            throw RPCError(RPCCode.internalError, "the audit store could not record the session: \(error)")
        }
        quotas.addRecords(peer.uid, Quotas.recordBytes(argv: ["cordon-session"], exe: peer.exe, label: request.task.label, policy: prepared.policy.name,
                                                       workspace: prepared.workspacePath?.path))
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard devNull >= 0 else { throw RPCError(RPCCode.internalError, "open /dev/null: \(SystemError.text(errno))") }
        var stored = request.task
        stored.stdin = []
        let task = LiveTask(id: id, owner: peer, request: stored, stdin: OwnedDescriptor(devNull), queuedBytes: 0, plan: prepared.plan,
                            workspace: prepared.workspace, session: channel)
        task.state = .running
        task.control = control
        task.dequeuedAt = MonotonicClock.now
        monitor.locked { live[id] = task }
        do {
            try Threads.detach("cordond-session", signals: .noSIGPIPE) { [self] in run(task) }
        } catch {
            // Never started: recorded as ended, nothing left behind.
            let result = SandboxResult.setupFailed(step: .taskFiles, errno: error.errno, message: "start the session's thread: \(error)",
                                                   policy: prepared.policy.name, policyHash: prepared.policy.contentHash)
            record(task, result, cancelledBy: nil)
            let waiters = monitor.locked {
                live[id] = nil
                monitor.broadcast()
                return takeEndWaiters(id)
            }
            runEndWaiters(waiters)
            throw RPCError(RPCCode.internalError, "cannot start the session: \(error)")
        }
        placed = false  // the session's run gives its place back when it ends
        return (id, channel)
    }

    /// The live session `id`, if `peer` may use it (its owner; an admin too when `admin`).
    func liveSession(_ id: Int64, for peer: Peer, adminToo: Bool) -> LiveTask? {
        monitor.locked {
            guard let task = live[id], task.session != nil else { return nil }
            guard task.owner.uid == peer.uid || (adminToo && authorizer.isAdmin(peer)) else { return nil }
            return task
        }
    }

    /// Open sessions: `peer`'s own, or everyone's.
    func liveSessions(of uid: UInt32?) -> [LiveTask] {
        monitor.locked { live.values.filter { $0.session != nil && (uid == nil || $0.owner.uid == uid) }.sorted { $0.id < $1.id } }
    }

    /// Records one command of a session (an "exec" event of the session's task).
    func recordExec(_ task: LiveTask, _ request: ExecRequest, _ outcome: ExecOutcome, by peer: Peer) {
        var argv: [JSON] = []
        var bytes = 0
        for a in request.argv {
            let clipped = Self.clip(a)
            bytes += clipped.utf8.count
            if bytes > 4096 { argv.append(.string("…")); break }
            argv.append(.string(clipped))
        }
        var detail: [(String, JSON)] = [("exec", .int(Int64(outcome.exec))), ("argv", .array(argv)), ("reason", .string(outcome.reason)),
                                        ("seconds", .double(outcome.seconds)), ("stdoutBytes", .int(outcome.stdoutBytes)),
                                        ("stderrBytes", .int(outcome.stderrBytes)), ("cpuUserSeconds", .double(outcome.cpuUserSeconds)),
                                        ("cpuSystemSeconds", .double(outcome.cpuSystemSeconds)), ("pid", .int(Int64(peer.pid)))]
        if let cwd = request.cwd { detail.append(("cwd", .string(Self.clip(cwd)))) }
        if let code = outcome.exitCode { detail.append(("exitCode", .int(Int64(code)))) }
        if let signal = outcome.signal { detail.append(("signal", .int(Int64(signal)))) }
        if let error = outcome.error { detail.append(("error", .string(error))) }
        let event = NewEvent(kind: "exec", taskID: task.id, uid: task.owner.uid, time: UTCTime.epochSeconds(), detail: JSON.object(detail).text)
        quotas.addRecords(task.owner.uid, Int64(event.detail.utf8.count + AuditStore.eventOverhead))
        do { try store.record(event) } catch {
            log.error("audit store: cannot record a session's command", metadata: ["task": "\(task.id)", "error": "\(error)"])
        }
    }

    /// Gives back a place of `sessions.max` (with `monitor` held).
    private func releaseSessionPlace(_ uid: UInt32) {
        sessionsOpen -= 1
        sessionsByUser[uid, default: 1] -= 1
        if sessionsByUser[uid] == 0 { sessionsByUser[uid] = nil }
    }

    private func unreserve(_ uid: UInt32) {
        reservedQueued -= 1
        reservedByUser[uid, default: 1] -= 1
        if reservedByUser[uid] == 0 { reservedByUser[uid] = nil }
    }

    /// A caller's variable reaches the sandbox only through `process.pass_env`: one the policy
    /// does not pass (or sets itself) is refused, never dropped without a word.
    static func checkPassed(_ env: [String: String], policy: Policy) throws(RPCError) {
        for name in env.keys.sorted() {
            if policy.process.env.contains(where: { $0.name == name }) {
                throw RPCError.invalid("params.env.\(name)", "policy \(policy.name) sets \(name) itself (process.env): a caller cannot replace it")
            }
            if !policy.process.passEnv.contains(name) {
                let passes = policy.process.passEnv.isEmpty ? "none" : policy.process.passEnv.joined(separator: ", ")
                throw RPCError.invalid("params.env.\(name)", "policy \(policy.name) does not pass \(name): a caller's variable reaches the sandbox only when the policy's process.pass_env lists it (it passes: \(passes))")
            }
        }
    }

    private func spawnPlan(_ policy: Policy, limits: LimitRequest, env: [String: String]) throws(RPCError) -> SpawnPlan {
        // Prepared on first use, checked against the policy's gate every time (outside the
        // monitor: a first preparation takes a while).
        let imageRoot = try images.root(for: policy)
        // The environment is part of the plan; only plans without caller variables are shared.
        let key = "\(policy.contentHash)|\(limits.key)|\(imageRoot ?? "")"
        if env.isEmpty, let cached = monitor.locked({ planCache[key] }) { return cached }
        let plan: SpawnPlan
        do { plan = try policies.spawnPlan(for: policy, cacheDir: config.cacheDir, callerEnvironment: env, imageRoot: imageRoot) } catch {
            throw RPCError(RPCCode.policyError, "policy \(policy.name): \(error.description)", field: "params.policy")
        }
        if env.isEmpty {
            monitor.locked {
                if planCache.count >= Self.planCacheLimit { planCache.removeAll() }
                planCache[key] = plan
            }
        }
        return plan
    }

    /// Starts queued tasks while there is room: users take turns, one task each.
    private func dispatch() {
        // Draining: what is queued is being cancelled, nothing new starts.
        if draining { return }
        let perUser = config.maxRunningPerUser ?? config.maxRunning
        while running < config.maxRunning, !rotation.isEmpty {
            var chosen: Int?
            for step in 0..<rotation.count {
                let index = (cursor + step) % rotation.count
                if runningByUser[rotation[index], default: 0] < perUser { chosen = index; break }
            }
            guard let index = chosen else { return }
            let uid = rotation[index]
            let task = queues[uid]!.removeFirst()
            if queues[uid]!.isEmpty {
                queues[uid] = nil
                rotation.remove(at: index)
                cursor = rotation.isEmpty ? 0 : index % rotation.count
            } else {
                cursor = (index + 1) % rotation.count
            }
            unreserve(uid)
            running += 1
            runningByUser[uid, default: 0] += 1
            task.state = .running
            task.dequeuedAt = MonotonicClock.now
            task.control = try? SandboxControl()
            if (try? threads.run { [self] in run(task) }) == nil {
                log.error("cannot start a thread for a task", metadata: ["task": "\(task.id)"])
                task.control = nil
                running -= 1
                runningByUser[uid, default: 1] -= 1
                task.state = .queued
                // Put it back at the head; the next task end retries.
                if queues[uid] == nil { rotation.append(uid) }
                queues[uid, default: []].insert(task, at: 0)
                reservedQueued += 1
                reservedByUser[uid, default: 0] += 1
                return
            }
            quotas.releaseQueued(uid, task.queuedBytes)
        }
    }

    // MARK: Run

    private func run(_ task: LiveTask) {
        let id = task.id
        let dir = "\(config.tasksDir)/\(id)"
        var io = SandboxIO()
        io.relaySignals = false
        var result: SandboxResult
        let control = monitor.locked { task.control }
        let uid = task.owner.uid
        let output = reserveOutput(task)
        var plan = task.plan
        let session = task.session
        var argv = task.request.argv
        if let session {
            // The server is the workload; the session's TTL is the sandbox's wall time.
            io.sessionChannel = session.serverFD
            argv = ["cordon-session"]
            plan.policy.limits.wallTimeSeconds = session.ttlSeconds
        }
        // A copy-on-write (or scratch) workspace's layer shares the task's output cap: half for
        // it, the rest for stdout and stderr, so together they stay within what was reserved.
        let needsLayer = task.request.workspace?.cow == true || !task.request.files.isEmpty
        let layerBytes = needsLayer ? max(4096, min(output.cap == Int64.max ? Self.cowLayerMaxBytes : output.cap / 2, Self.cowLayerMaxBytes)) : 0
        if output.cap < Int64.max { plan.policy.limits.outputBytes = UInt64(max(0, output.cap - layerBytes)) }
        var layer: (descriptor: OwnedDescriptor, bytes: Int64)?
        var warmRan = false
        // What a warm task answered before its sandbox's teardown checks once it is answered.
        var afterAnswer: (() -> Void)?
        // A warm task's start, when its command ended before any sign of it: recorded with its end.
        var startAtEnd: TaskStart?
        // Warm: only for a task not cancelled already; a command the warm sandbox could not
        // take (nothing was run) goes cold.
        if let key = task.warmKey, let control, !control.isCancelled, let parked = warm.take(key, plan: task.plan),
           let warmResult = runWarm(task, parked, dir: dir, outputCap: output.cap, control: control, afterAnswer: &afterAnswer,
                                    startAtEnd: &startAtEnd) {
            result = warmResult
            warmRan = true
        } else {
        do throws(SystemError) {
            guard let control else { throw SystemError("create the task's control pipe", path: "sandbox control", errno: EMFILE) }
            io.stdin = task.stdin.fd
            // The task's directory and its log files appear with its first byte of output: a
            // task that prints nothing costs no inode (file creation was ~14% of the daemon's
            // cpu under load). task.logs treats a missing file as empty.
            io.openOutput = { isStdout throws(SystemError) in
                try FileSystem.makeDirectories(dir, mode: 0o700)
                return try Self.openLog("\(dir)/\(isStdout ? "stdout" : "stderr")")
            }
            let start = task.dequeuedAt
            control.onStart { [self] _, cgroup in
                // The sandbox holds the server's end now: ours goes, so its end reads as EOF here.
                session?.releaseServerEnd()
                session?.started(cgroup: cgroup)
                metrics.spawned(seconds: MonotonicClock.now - start)
                do { try store.markStarted(id: id, at: UTCTime.epochSeconds(), cgroup: cgroup.joined(separator: ","), scratch: dir) }
                catch { log.error("audit store: mark started", metadata: ["task": "\(id)", "error": "\(error)"]) }
            }
            var environment = environment
            environment.writeOwnership = writeOwnership(for: task.owner)
            // A copy-on-write workspace's layer: a tmpfs as large as the task's output may be
            // (its changes are kept as output), at most `cowLayerMaxBytes`.
            // Files put in go into the layer before the sandbox is made; a scratch workspace's
            // lower layer is the layer's own empty directory.
            var scratch: OwnedDescriptor?
            if needsLayer {
                let made = try WorkspaceChanges.layer(bytes: UInt64(layerBytes))
                layer = (made, layerBytes)
                // A directory on a file's way that the workspace has keeps its mode, looked up
                // as the caller (nothing they could not see is learned).
                let modes = try lowerDirectoryModes(task)
                try WorkspaceChanges.put(task.request.files.map { ($0.path, $0.bytes, $0.mode) }, into: made.fd, lowerMode: { modes[Array($0.utf8)] })
                if task.workspace == nil { scratch = try WorkspaceChanges.scratchLower(in: made.fd) }
            }
            let lower = task.workspace ?? scratch
            if let session {
                // The server's replies, read on a thread of their own for the session's life.
                do {
                    try Threads.detach("cordond-session", signals: .noSIGPIPE) { session.readReplies(kill: { control.cancel() }) }
                } catch {
                    throw SystemError("start the session's reader", path: nil, errno: error.errno)
                }
            }
            result = Sandbox.run(plan: plan, argv: argv, environment: environment, io: io, wallTime: nil, control: control,
                                 workspace: lower.map {
                                     SandboxWorkspace(descriptor: $0.fd, caller: Policy.Owner(uid: task.owner.uid, gid: task.owner.gid),
                                                      callerGroups: [task.owner.gid] + task.owner.groups, cow: layer?.descriptor.fd)
                                 })
        } catch {
            result = .setupFailed(step: .taskFiles, errno: error.errno, message: "\(error)",
                                  policy: task.plan.policy.name, policyHash: task.plan.policy.contentHash)
        }
        }
        if let session {
            // Why it ended, before the reader can see the end of file and say less.
            session.ended(message: result.setupFailure.map { "\($0.step.name): \($0.message)" } ?? "the sandbox ended (\(result.reason.rawValue))")
            session.releaseServerEnd()
            // Its commands' records first (each is written as it ends), then the session's.
            session.waitForCommands(seconds: 10)
        }
        let canceller: Peer? = monitor.locked {
            task.ending = true
            return task.cancelledBy
        }
        // What the task changed in its copy-on-write workspace, kept for review (task.diff) —
        // whatever its end, since a task stopped halfway may have left what its caller wants.
        var changes: ChangesCapture?
        // A sandbox that never started (setup failed) changed nothing: what the layer holds is
        // only the files put in, and the task has no directory to hold them.
        if let layer, result.setupFailure == nil {
            changes = captureChanges(layer.descriptor, layerBytes: layer.bytes, dir: dir, task: id, owner: task.owner, workspace: task.workspace)
        }
        quotas.outputEnded(uid, reserved: output.reserved,
                           written: Int64(clamping: result.stdoutBytes) + Int64(clamping: result.stderrBytes) + (changes?.bytes ?? 0))
        record(task, result, cancelledBy: result.reason == .cancelled ? canceller : nil,
               quota: result.reason == .outputLimit ? output.limitedBy.map { ($0, output.cap) } : nil, changes: changes, warm: warmRan,
               started: startAtEnd)
        // Past its quota, the user's oldest outputs go (this one is the newest and at most the
        // quota itself, so it stays). Off the spawn path, and only as much as needed.
        let perUser = Int64(clamping: config.outputBytesPerUser)
        if quotas.outputHeld(uid) > perUser { evictOutputs(of: uid, downTo: perUser, except: id) }
        let waiters = monitor.locked {
            live[id] = nil
            if session != nil {
                releaseSessionPlace(task.owner.uid)
            } else {
                running -= 1
                runningByUser[task.owner.uid, default: 1] -= 1
                if runningByUser[task.owner.uid] == 0 { runningByUser[task.owner.uid] = nil }
            }
            dispatch()
            monitor.broadcast()
            return takeEndWaiters(id)
        }
        runEndWaiters(waiters)
        // The warm sandbox this task took is replaced now that it has been answered.
        if task.warmKey != nil { warm.refill() }
        afterAnswer?()
    }

    /// A refused (or, under `seccomp.action = "log"`, logged) call as its event records it;
    /// a refused one is counted in the metrics.
    private func refusal(_ d: DeniedOperation, logged: Bool) -> [(String, JSON)] {
        let call: [(String, JSON)] = [("syscall", .string(d.syscall)), ("number", .int(Int64(d.number))), ("count", .int(Int64(d.count)))]
        if logged { return call }
        metrics.denial(kind: "syscall", count: d.count)
        return [("kind", .string("syscall"))] + call + [("errno", .int(Int64(d.errno)))]
    }

    /// The refused (or, under `seccomp.action = "log"`, logged) calls in `final` beyond those in
    /// `early`: by syscall number, the count over the early one.
    static func refusalsBeyond(_ early: [DeniedOperation], _ final: [DeniedOperation]) -> [DeniedOperation] {
        var before: [Int32: Int] = [:]
        for d in early { before[d.number, default: 0] += d.count }
        return final.compactMap { d in
            let extra = d.count - before[d.number, default: 0]
            guard extra > 0 else { return nil }
            var more = d
            more.count = extra
            return more
        }
    }

    /// Runs `task`'s command in a warm sandbox (its server's one command) and returns the
    /// sandbox's record with the command's outcome: its output goes to the task's log files
    /// (made on its first byte), its stdin is the task's, its limits the task's plan's; the
    /// sandbox ends with the command, never reused.
    /// `startAtEnd`: the task's start (when its command was handed over), for its end's commit:
    /// recorded there when nothing recorded it before (a command that ended before any output,
    /// answered at once: one commit where it took two; or a start whose own commit failed).
    private func runWarm(_ task: LiveTask, _ parked: WarmPool.Parked, dir: String, outputCap: Int64, control: SandboxControl,
                         afterAnswer: inout (() -> Void)?, startAtEnd: inout TaskStart?) -> SandboxResult? {
        let cgroup = parked.monitor.locked { parked.cgroup }
        var plan = task.plan
        if outputCap < Int64.max { plan.policy.limits.outputBytes = UInt64(max(0, outputCap)) }
        var files: [Int32] = [-1, -1]
        defer { for fd in files where fd >= 0 { close(fd) } }
        let request = ExecRequest(argv: task.request.argv, stdin: [], stdinFD: task.stdin.fd, env: [:], cwd: nil, timeoutSeconds: nil, stream: true)
        let policy = task.plan.policy
        var outcome: ExecOutcome?
        var failure: String?
        // Why the task's output could not be kept: the task fails and says so, as a cold one does.
        var outputFailure: SystemError?
        // The task's log files, made on the first byte of each stream (as a cold task's).
        func write(_ isStdout: Bool, _ bytes: ArraySlice<UInt8>) -> Bool {
            let i = isStdout ? 0 : 1
            let path = "\(dir)/\(isStdout ? "stdout" : "stderr")"
            if files[i] < 0 {
                do throws(SystemError) {
                    try FileSystem.makeDirectories(dir, mode: 0o700)
                    files[i] = try Self.openLog(path)
                } catch {
                    if outputFailure == nil { outputFailure = error }
                    return false
                }
            }
            let fd = files[i]
            let e = bytes.withUnsafeBytes { FileDescriptorIO.writeFully(fd, $0.baseAddress, $0.count) }
            if e != 0 && outputFailure == nil { outputFailure = SystemError("write", path: path, errno: e) }
            return e == 0
        }
        // The start is when the command is handed to the sandbox; it is recorded with the
        // command's first sign (nothing is recorded for a command the server did not take).
        let start = TaskStart(time: UTCTime.epochSeconds(), cgroup: cgroup.joined(separator: ","), scratch: dir)
        func markWarmStarted() {
            metrics.spawned(seconds: MonotonicClock.now - task.dequeuedAt)
            do { try store.markStarted(id: task.id, at: start.time, cgroup: start.cgroup, scratch: start.scratch) }
            catch { log.error("audit store: mark started", metadata: ["task": "\(task.id)", "error": "\(error)"]) }
        }
        var marked = false
        do throws(RPCError) {
            outcome = try parked.channel.run(request, plan: plan, baseEnv: [:], output: { _, isStdout, bytes in
                if !marked {
                    // Started: recorded with the first sign of the command, as a cold task's
                    // start is (before its first output reaches the logs).
                    marked = true
                    markWarmStarted()
                }
                return write(isStdout, bytes)
            }, cancelled: { control.isCancelled }, cancelFD: control.wakeFD,
               // Any kill of the command (timeout, output cap, cancel) kills the sandbox's cgroup
               // at once: it serves no other command, and nothing of it may outrun the kill.
               onKill: { parked.control.cancel() }, record: { _ in })
        } catch {
            failure = error.message
        }
        let reasons: [String: TerminationReason] = ["exited": .exited, "signaled": .signaled, "timeout": .timeout, "output-limit": .outputLimit,
                                                    "cancelled": .cancelled, "cpu-limit": .cpuLimit, "memory-limit": .memoryLimit]
        // The command has ended and been reaped. When nothing but what was parked (the sandbox's
        // init and the server) is left in it, its record is complete now (SandboxControl.
        // recordSoFar): the task is answered without waiting for the sandbox's teardown, which
        // goes on behind it.
        let early = outcome.map { reasons[$0.reason] != nil } == true ? parked.control.recordSoFar() : nil
        parked.channel.close(reason: "task-done", by: nil)
        guard outcome != nil else {
            // Nothing was run: the task goes cold (the sandbox ends unused).
            log.warning("warm sandbox refused a task's command; running it cold", metadata: ["task": "\(task.id)", "error": "\(failure ?? "")"])
            _ = parked.ended(within: 10)
            return nil
        }
        if !marked {
            // Answered now (`early`): its start goes with its end, in one commit. Else the
            // sandbox's end is waited for first (up to 40 s), and the start is recorded now.
            if early != nil { metrics.spawned(seconds: MonotonicClock.now - task.dequeuedAt) } else { markWarmStarted() }
        }
        // Always with the end too: a start whose own commit failed is recorded there (one that
        // was recorded is kept as it is).
        startAtEnd = start
        if let early {
            // Nothing can be missing from it (SandboxControl.recordSoFar); should the sandbox's
            // final record say otherwise, what it adds is recorded and the flaw logged, not lost.
            afterAnswer = { [self] in
                guard let final = parked.ended(within: 30) else { return }
                let missed = Self.refusalsBeyond(early.denied, final.denied).map { ("denied", $0) }
                    + Self.refusalsBeyond(early.logged, final.logged).map { ("logged", $0) }
                guard !missed.isEmpty else { return }
                log.error("warm task: its sandbox's final record has refusals its answer did not", metadata: ["task": "\(task.id)", "calls": "\(missed.map(\.1.syscall))"])
                for (kind, d) in missed {
                    let event = NewEvent(kind: kind, taskID: task.id, uid: task.owner.uid, time: UTCTime.epochSeconds(),
                                         detail: JSON.object(refusal(d, logged: kind == "logged") + [("afterAnswer", .bool(true))]).text)
                    quotas.addRecords(task.owner.uid, Int64(event.detail.utf8.count + AuditStore.eventOverhead))
                    do { try store.record(event) } catch {
                        log.error("audit store: cannot record a refusal found after a warm task's answer", metadata: ["task": "\(task.id)", "error": "\(error)"])
                    }
                }
            }
        }
        var ended = early ?? parked.ended(within: 10)
        if ended == nil {
            parked.control.cancel()
            ended = parked.ended(within: 30)
        }
        guard var result = ended else {
            return .setupFailed(step: .taskFiles, errno: ETIMEDOUT, message: "the warm sandbox did not end", policy: policy.name, policyHash: policy.contentHash)
        }
        let ran = outcome!
        var reason = reasons[ran.reason] ?? result.reason
        var signal = ran.signal
        if reasons[ran.reason] == nil && (result.reason == .exited || result.reason == .signaled) {
            // The command's sandbox ended under it (its server went): it was killed with the
            // rest of the sandbox, by SIGKILL.
            reason = .signaled
            signal = SIGKILL
        }
        if control.isCancelled && reason != .exited { reason = .cancelled }
        var notStarted = ran.reason == "not-started"
            ? SetupFailure(step: ran.failedStep == 1 ? .chdir : .execve, errno: ran.failedErrno, message: ran.error ?? "not started") : nil
        // Its output could not be written: stopped (read as cancelled by the channel), and
        // recorded as a cold task's is, a failed setup of its output.
        if notStarted == nil, let outputFailure {
            notStarted = SetupFailure(step: .output, errno: outputFailure.errno, message: "output: \(outputFailure)")
        }
        result.adoptCommand(reason: reason, exitCode: reason == .signaled && signal == SIGKILL && ran.signal == nil ? nil : ran.exitCode,
                            signal: signal, notStarted: notStarted,
                            stdoutBytes: UInt64(ran.stdoutBytes), stderrBytes: UInt64(ran.stderrBytes), wallTimeSeconds: ran.seconds)
        return result
    }

    /// The modes of the directories on the way to the task's files that its workspace already
    /// has, read beneath the workspace's descriptor as the caller; keyed by the path's bytes.
    private func lowerDirectoryModes(_ task: LiveTask) throws(SystemError) -> [[UInt8]: UInt32] {
        guard let workspace = task.workspace, !task.request.files.isEmpty else { return [:] }
        var paths = Set<[UInt8]>()
        for file in task.request.files { for a in WorkspaceChanges.ancestors(file.path) { paths.insert(Array(a.utf8)) } }
        guard !paths.isEmpty else { return [:] }
        let root = workspace.fd
        let wanted = Array(paths)
        let caller = CallerFiles.Caller(uid: task.owner.uid, gid: task.owner.gid, groups: task.owner.groups)
        do {
            return try CallerFiles.perform(as: caller) { () -> [[UInt8]: UInt32] in
                var modes: [[UInt8]: UInt32] = [:]
                for path in wanted {
                    if let mode = WorkspaceChanges.directoryMode(String(decoding: path, as: UTF8.self), root: root) { modes[path] = mode }
                }
                return modes
            }
        } catch {
            throw SystemError("look up the workspace's directories as the caller: \(error.message)", path: nil, errno: error.errno)
        }
    }

    /// The largest copy-on-write layer a task gets (the output quota may give it less).
    static let cowLayerMaxBytes: Int64 = 1 << 30

    /// A copy-on-write task's changes as captured: how many and their bytes on disk, or why
    /// they could not be kept.
    struct ChangesCapture {
        var entries = 0
        var bytes: Int64 = 0
        var failure: String?
    }

    /// Reads `layer`'s upper directory into `dir`/changes (nothing kept when the task changed
    /// nothing). The layer goes when the caller lets go of it.
    private func captureChanges(_ layer: OwnedDescriptor, layerBytes: Int64, dir: String, task id: Int64, owner: Peer,
                                workspace: OwnedDescriptor?) -> ChangesCapture {
        let target = "\(dir)/changes"
        do {
            let captured = try WorkspaceChanges.capture(layer: layer.fd, to: target, owner: (owner.uid, owner.gid), maxBytes: layerBytes)
            if captured.entries.isEmpty {
                try? FileSystem.removeTree(target)
                rmdir(dir)  // when the task left no output either
                return ChangesCapture()
            }
            if let workspace {
                var st = stat()
                if fstat(workspace.fd, &st) == 0 { try WorkspaceChanges.writeOrigin(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), in: target) }
            }
            return ChangesCapture(entries: captured.entries.count, bytes: captured.bytes)
        } catch {
            log.error("cannot keep a copy-on-write task's changes", metadata: ["task": "\(id)", "error": "\(error)"])
            try? FileSystem.removeTree(target)
            return ChangesCapture(failure: "\(error)")
        }
    }

    private static func openLog(_ path: String) throws(SystemError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        return fd
    }

    // MARK: Quotas

    /// The output cap of a starting task (see `Quotas`).
    private func reserveOutput(_ task: LiveTask) -> (cap: Int64, reserved: Int64, limitedBy: String?) {
        var fs = statvfs()
        let free: Int64? = statvfs(config.stateDir, &fs) == 0 ? Int64(clamping: UInt64(fs.f_bavail) &* UInt64(fs.f_frsize)) : nil
        let room = quotas.reserveOutput(task.owner.uid, wanted: task.plan.policy.limits.outputBytes, freeDisk: free)
        return (room.cap, free == nil ? 0 : room.cap, room.limitedBy)
    }

    /// Held while output is removed for a quota and while retention runs and re-reads the
    /// counts: both remove task output and move the counts, so one must not see half the other.
    private let outputAccounting = Mutex(())

    func withOutputAccounting(_ body: () -> Void) { outputAccounting.withLock { _ in body() } }

    /// Removes the output of `uid`'s oldest ended tasks until what it holds is at most `target`
    /// bytes; their records stay, with an "output-removed" event each.
    /// `except`: the task that just ended, whose output (and held changes) its user has not
    /// seen yet: never the one removed.
    private func evictOutputs(of uid: UInt32, downTo target: Int64, except: Int64) {
        outputAccounting.withLock { _ in
            var held = quotas.outputHeld(uid)
            while held > target {
                let batch: [(id: Int64, scratch: String, bytes: Int64)]
                do { batch = try store.outputs(of: uid, limit: 65).filter { $0.id != except } } catch {
                    log.error("audit store: list outputs", metadata: ["uid": "\(uid)", "error": "\(error)"])
                    return
                }
                guard !batch.isEmpty else { return }
                var ids: [Int64] = []
                for output in batch where held > target {
                    do { try FileSystem.removeTree("\(config.tasksDir)/\(output.id)") } catch {
                        log.error("cannot remove a task's output", metadata: ["task": "\(output.id)", "error": "\(error)"])
                        return
                    }
                    ids.append(output.id)
                    held -= output.bytes
                    quotas.outputRemoved(uid, output.bytes)
                }
                do { try store.forgetOutput(ids: ids, at: UTCTime.epochSeconds(), reason: "tasks.max_output_per_user") } catch {
                    log.error("audit store: forget output", metadata: ["uid": "\(uid)", "error": "\(error)"])
                    return
                }
                log.info("removed old task output for the quota", metadata: ["uid": "\(uid)", "tasks": "\(ids.count)"])
            }
        }
    }

    private let quotaEvents = Mutex<[UInt32: Double]>([:])

    /// Records a submit refused by a quota: an audit event per uid and minute at most.
    func quotaRefused(_ peer: Peer, _ error: RPCError) {
        metrics.requestError(code: error.code)
        let now = MonotonicClock.now
        let due = quotaEvents.withLock { last in
            guard now - last[peer.uid, default: -60] >= 60 else { return false }
            last[peer.uid] = now
            return true
        }
        guard due else { return }
        log.warning("quota", metadata: ["uid": "\(peer.uid)", "message": "\(error.message)"])
        _ = try? store.record(NewEvent(kind: "quota", taskID: nil, uid: peer.uid, time: UTCTime.epochSeconds(),
                                       detail: JSON.object([("what", .string("task.submit refused")), ("message", .string(error.message))]).text))
    }

    /// The workload's stdin: the submitted bytes in a sealed-off memory file, read-only.
    private static func stdinDescriptor(_ bytes: [UInt8]) throws(SystemError) -> Int32 {
        if bytes.isEmpty {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open", path: "/dev/null", errno: errno) }
            return fd
        }
        let mem = cl_memfd("cordon-stdin")
        guard mem >= 0 else { throw SystemError("memfd_create", path: "stdin", errno: errno) }
        defer { close(mem) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(mem, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SystemError("write", path: "stdin", errno: errno) }
            offset += n
        }
        // A read-only description of its own (offset 0): the workload cannot write it back.
        let fd = open("/proc/self/fd/\(mem)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: "/proc/self/fd/\(mem)", errno: errno) }
        return fd
    }

    /// The task's final record and its events, durable before anyone learns the task ended.
    private func record(_ task: LiveTask, _ result: SandboxResult, cancelledBy: Peer?, quota: (key: String, bytes: Int64)? = nil,
                        changes: ChangesCapture? = nil, warm: Bool = false, started: TaskStart? = nil) {
        let now = UTCTime.epochSeconds()
        var events: [NewEvent] = []
        let uid = task.owner.uid
        func event(_ kind: String, _ detail: JSON) { events.append(NewEvent(kind: kind, taskID: task.id, uid: uid, time: now, detail: detail.text)) }
        if let by = cancelledBy { event("cancel", Self.cancelDetail(by)) }
        if let session = task.session {
            let (reason, by, execs) = session.monitor.locked { (session.closeReason, session.closedBy, session.execCount) }
            var detail: [(String, JSON)] = [("reason", .string(reason ?? (result.reason == .timeout ? "ttl" : result.reason.rawValue))), ("execs", .int(Int64(execs)))]
            if let by { detail.append(("by", .int(Int64(by.uid)))) }
            event("session-closed", .object(detail))
        }
        for d in result.denied { event("denied", .object(refusal(d, logged: false))) }
        for d in result.logged { event("logged", .object(refusal(d, logged: true))) }
        for e in (result.egress ?? []).prefix(256) {
            var detail: [(String, JSON)] = [("kind", .string(e.kind.rawValue)), ("verdict", .string(e.verdict.rawValue)), ("reason", .string(e.reason))]
            if let name = e.name { detail.append(("name", .string(name))) }
            if let destination = e.destination { detail.append(("destination", .string(destination))) }
            event(e.verdict == .denied ? "denied" : "egress", .object(detail))
            if e.verdict == .denied { metrics.denial(kind: "egress") }
        }
        let limitReasons: [TerminationReason] = [.timeout, .memoryLimit, .pidsLimit, .outputLimit, .cpuLimit, .seccompViolation]
        if limitReasons.contains(result.reason) { event("limit", .object([("limit", .string(result.reason.rawValue))])) }
        if let quota {
            event("quota", .object([("quota", .string(quota.key)), ("bytes", .int(quota.bytes)), ("what", .string("output cap of this task"))]))
        }
        if let failure = result.setupFailure {
            event("setup-failed", .object([("step", .string(failure.step.name)), ("errno", .int(Int64(failure.errno))), ("message", .string(failure.message))]))
        }
        if let changes {
            if let failure = changes.failure {
                event("changes", .object([("kept", .bool(false)), ("error", .string(failure))]))
            } else {
                event("changes", .object([("kept", .bool(changes.entries > 0)), ("entries", .int(Int64(changes.entries))), ("bytes", .int(changes.bytes))]))
            }
        }
        let json = (try? JSON(encoding: StoredResult(result: result, warm: warm)))?.text
        var outcome = TaskOutcome(state: result.reason == .cancelled ? .cancelled : .finished, reason: result.reason.rawValue,
                                  exitCode: result.exitCode, signal: result.signal, finishedAt: now,
                                  cpuUserSeconds: result.cpuUserSeconds, cpuSystemSeconds: result.cpuSystemSeconds,
                                  peakMemoryBytes: result.peakMemoryBytes, stdoutBytes: result.stdoutBytes, stderrBytes: result.stderrBytes,
                                  result: json)
        outcome.changesBytes = changes?.bytes ?? 0
        quotas.addRecords(uid, Int64((json?.utf8.count ?? 0) + events.reduce(0) { $0 + $1.detail.utf8.count + AuditStore.eventOverhead }))
        do { try store.finish(id: task.id, outcome: outcome, events: events, started: started) } catch {
            log.critical("audit store: cannot record the end of a task", metadata: ["task": "\(task.id)", "error": "\(error)"])
        }
        metrics.taskEnded(result: result.reason.rawValue)
        log.info("task ended", metadata: ["task": "\(task.id)", "uid": "\(uid)", "policy": "\(task.plan.policy.name)",
                                          "reason": "\(result.reason.rawValue)", "exit": "\(result.exitStatus)"])
    }

    // MARK: Cancel, wait, drain

    static func cancelDetail(_ by: Peer) -> JSON {
        .object([("by", .int(Int64(by.uid))), ("pid", .int(Int64(by.pid))), ("exe", .string(by.exe))])
    }

    /// Cancels a queued or running task on behalf of `by` and returns once its record is
    /// final (the caller reads the record to learn whether it ended cancelled or had already
    /// ended otherwise). A running task whose sandbox does not go away within `deadline`
    /// seconds is left to end on its own.
    func cancel(_ id: Int64, by: Peer, deadline: Double = 30) {
        startCancel(id, by: by)
        _ = wait(id, timeout: deadline)
    }

    /// The part of `cancel` that does not wait: a queued task is ended and recorded here, a
    /// running one is told to stop (its record follows when its sandbox is gone).
    func startCancel(_ id: Int64, by: Peer) {
        let queued: LiveTask? = monitor.locked {
            guard let task = live[id], !task.ending else { return nil }
            if task.cancelledBy == nil { task.cancelledBy = by }
            if task.state == .queued, let index = queues[task.owner.uid]?.firstIndex(where: { $0 === task }) {
                queues[task.owner.uid]!.remove(at: index)
                if queues[task.owner.uid]!.isEmpty {
                    queues[task.owner.uid] = nil
                    if let r = rotation.firstIndex(of: task.owner.uid) {
                        rotation.remove(at: r)
                        if cursor > r { cursor -= 1 }
                        if cursor >= rotation.count { cursor = 0 }
                    }
                }
                unreserve(task.owner.uid)
                quotas.releaseQueued(task.owner.uid, task.queuedBytes)
                task.state = .cancelled
                task.ending = true
                return task
            }
            task.control?.cancel()
            return nil
        }
        if let task = queued {
            let now = UTCTime.epochSeconds()
            let outcome = TaskOutcome(state: .cancelled, reason: "cancelled", exitCode: nil, signal: nil, finishedAt: now,
                                      cpuUserSeconds: nil, cpuSystemSeconds: nil, peakMemoryBytes: nil, stdoutBytes: 0, stderrBytes: 0, result: nil)
            let event = NewEvent(kind: "cancel", taskID: id, uid: task.owner.uid, time: now, detail: Self.cancelDetail(by).text)
            quotas.addRecords(task.owner.uid, Int64(event.detail.utf8.count + 2 * AuditStore.eventOverhead))
            do { try store.finish(id: id, outcome: outcome, events: [event]) } catch {
                log.critical("audit store: cannot record a cancel", metadata: ["task": "\(id)", "error": "\(error)"])
            }
            metrics.taskEnded(result: "cancelled")
            let waiters = monitor.locked {
                live[id] = nil
                monitor.broadcast()
                return takeEndWaiters(id)
            }
            runEndWaiters(waiters)
        }
    }

    func isLive(_ id: Int64) -> Bool { monitor.locked { live[id] != nil } }

    /// A parked request's hold on a task's end, for `forget`.
    struct EndWaiter: Sendable, Hashable {
        let task: Int64
        let id: UInt64
    }

    /// Runs `body` once task `id` is no longer queued or running, on the thread that ends it; nil
    /// (and `body` not kept) when it already is not. Whoever parks must `forget` the waiter when
    /// it stops caring (its connection closed), or the table holds `body` until the task ends.
    func whenEnded(_ id: Int64, _ body: @escaping @Sendable () -> Void) -> EndWaiter? {
        monitor.locked {
            guard live[id] != nil else { return nil }
            nextEndWaiter += 1
            endWaiters[id, default: [:]][nextEndWaiter] = body
            endWaiterCount += 1
            return EndWaiter(task: id, id: nextEndWaiter)
        }
    }

    /// Drops a waiter `whenEnded` kept (nothing if it already ran).
    func forget(_ waiter: EndWaiter) {
        monitor.locked {
            guard endWaiters[waiter.task]?.removeValue(forKey: waiter.id) != nil else { return }
            endWaiterCount -= 1
            if endWaiters[waiter.task]?.isEmpty == true { endWaiters[waiter.task] = nil }
        }
    }

    /// Requests parked on a task's end (for metrics and the tests).
    var parkedCount: Int { monitor.locked { endWaiterCount } }

    /// Takes task `id`'s waiters (with `monitor` held); they count as being answered until
    /// `runEndWaiters` has run them, so a drain does not end the process under an answer.
    private func takeEndWaiters(_ id: Int64) -> [@Sendable () -> Void] {
        guard let waiters = endWaiters.removeValue(forKey: id), !waiters.isEmpty else { return [] }
        endWaiterCount -= waiters.count
        answering += 1
        return Array(waiters.values)
    }

    /// Runs waiters `takeEndWaiters` took (without `monitor` held).
    private func runEndWaiters(_ waiters: [@Sendable () -> Void]) {
        guard !waiters.isEmpty else { return }
        for waiter in waiters { waiter() }
        monitor.locked {
            answering -= 1
            monitor.broadcast()
        }
    }

    /// Waits until the task is no longer queued or running; false on timeout.
    func wait(_ id: Int64, timeout: Double?) -> Bool {
        let deadline = timeout.map { MonotonicClock.now + $0 }
        return monitor.locked { monitor.wait(until: deadline) { live[id] == nil } }
    }

    /// SIGTERM: take no new tasks, cancel the queued ones, let running ones finish until the
    /// deadline, then cancel them all at once and wait (bounded) for their records.
    func drain(seconds: Double, by daemon: Peer) {
        let (queued, sessions): ([Int64], [SessionChannel]) = monitor.locked {
            draining = true
            return (live.values.filter { $0.state == .queued }.map(\.id), live.values.compactMap(\.session))
        }
        // Sessions end now (their changes captured): nothing of theirs would end on its own.
        // So do parked warm sandboxes.
        for session in sessions { session.close(reason: "cordond-stopping", by: daemon) }
        warm.stop()
        for id in queued { cancel(id, by: daemon) }
        let finished = monitor.locked { monitor.wait(until: MonotonicClock.now + seconds) { live.isEmpty && answering == 0 } }
        if !finished {
            let count: Int = monitor.locked {
                for task in live.values where !task.ending {
                    if task.cancelledBy == nil { task.cancelledBy = daemon }
                    task.control?.cancel()
                }
                return live.count
            }
            log.warning("drain deadline passed: cancelled running tasks", metadata: ["tasks": "\(count)"])
            if !monitor.locked({ monitor.wait(until: MonotonicClock.now + 10) { live.isEmpty && answering == 0 } }) {
                log.error("tasks still running 10 s after their cancel", metadata: ["tasks": "\(monitor.locked { live.count })"])
            }
        }
    }
}
