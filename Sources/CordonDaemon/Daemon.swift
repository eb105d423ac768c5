import CLinux
import CordonAudit
import CordonConfig
import CordonJSON
import CordonModelGateway
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonSystem
import CordonToolGateway
import CordonTools
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif


/// cordond: the supervisor as a service. Start-up recovers from a crash (tasks that were
/// running are marked `lost`, their cgroups killed and removed), then it serves the socket
/// until SIGTERM or SIGINT, which drain: no new tasks, queued ones cancelled, running ones
/// given `tasks.drain_timeout` and then cancelled, everything recorded, exit 0.
public final class Daemon: @unchecked Sendable {
    /// malloc arenas for the whole process (glibc's default: 8 per core). Two keep the request
    /// workers' freed buffers in reach of each other without making every thread share one lock.
    static let mallocArenas = 2
    public let config: DaemonConfig
    let log: Logger
    let store: AuditStore
    let metrics = Metrics()
    let authorizer: Authorizer
    let policies: PolicyStore
    let tasks: TaskManager
    let quotas: Quotas
    /// The tool registry: tools/*.toml in the config directory, read again when they (or the
    /// policies) change (`reloadTools`).
    let tools: ToolGateway
    /// Installs through the gate (`install.run`, tools' requirements), one at a time.
    let installs: ToolInstalls
    /// The model gateway: models.toml in the config directory, read at start (nil: none).
    let models: ModelGateway?
    /// Where a finished model call is recorded and answered: off the worker's reader thread,
    /// which every call to that provider shares (a store that is busy must not hold them).
    let modelRecorders: WorkerPool
    /// Model calls in flight per uid (`models.max_calls_per_user`).
    let modelCallsInFlight = Mutex<[UInt32: Int]>([:])
    /// The endpoint's bearer tokens (models.toml's `[endpoint] tokens`), read at start.
    let endpointTokens: [(token: [UInt8], uid: UInt32)]
    /// What the config files looked like when the tools were last read (`reloadTools`).
    private var toolFiles: [String] = []
    let startedAt = UTCTime.epochSeconds()
    /// The state directory's lock (`cordond.lock`), held for the daemon's lifetime.
    private let stateLock: Int32

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(config: DaemonConfig, log: Logger) throws(StartError) {
        // Before any thread starts (the audit writer, the service pool's): a thread with
        // SIGTERM unblocked would take the signal's default action — the process killed, not
        // drained. `run` reads them from a signalfd.
        Self.blockSignals()
        self.config = config
        self.log = log
        do { authorizer = try Authorizer(config: config) } catch { throw StartError(description: "\(error)") }
        do {
            try FileSystem.makeDirectories(config.stateDir, mode: 0o700)
            try Self.makePrivate(config.stateDir, log: log)
            stateLock = try Self.lockStateDir(config.stateDir)
            try FileSystem.makeDirectories(config.tasksDir, mode: 0o700)
            try FileSystem.makeDirectories(config.cacheDir, mode: 0o700)
            try FileSystem.makeDirectories(config.runtimeDir, mode: 0o755)
        } catch { throw StartError(description: "\(error)") }
        do { store = try AuditStore(path: config.auditPath) } catch { throw StartError(description: "\(error)") }
        // Names only, files inside the config dir, trusted files only (see PolicyStore).
        policies = PolicyStore(configDir: config.configDir, confined: true)
        quotas = Quotas(config: config)
        tasks = TaskManager(config: config, store: store, policies: policies, authorizer: authorizer, metrics: metrics, quotas: quotas, log: log)
        let tasks = self.tasks, authorizer = self.authorizer, policies = self.policies
        let installs = ToolInstalls(stateDir: config.stateDir, cacheDir: config.cacheDir, environment: tasks.environment, log: log)
        self.installs = installs
        do {
            toolFiles = Self.toolFingerprint(config)
            tools = try ToolGateway(manifests: Self.readManifests(config: config, policies: policies, log: log), policies: policies,
                                    environment: tasks.environment, cacheDir: "\(config.cacheDir)/seccomp",
                                    writeOwnership: { caller in
                                        tasks.writeOwnership(for: Peer(uid: caller.uid, gid: caller.gid, pid: caller.pid, groups: caller.groups, exe: caller.exe ?? ""))
                                    },
                                    commandCalls: (config.toolMaxCommandCallsPerUser, config.toolMaxCommandCalls),
                                    maxInstances: config.toolMaxInstances,
                                    installRequirements: { manifest, policy, isCurrent in installs.install(manifest, policy, isCurrent: isCurrent) },
                                    onRequirements: { name, phase in
                                        if case .failed(let why) = phase { log.error("tool requirements not installed", metadata: ["tool": "\(name)", "error": "\(why)"]) }
                                    },
                                    onInstanceFailure: Self.logServiceFailure(log, "tool instance failed")) { caller, manifest in
                let peer = Peer(uid: caller.uid, gid: caller.gid, pid: caller.pid, groups: caller.groups, exe: caller.exe ?? "")
                return authorizer.mayUse(peer, manifest: manifest, policies: policies)
            }
        } catch { throw StartError(description: "the tool registry: \(error)") }
        models = try Self.loadModels(config: config, policies: policies, environment: tasks.environment, authorizer: authorizer, log: log)
        do { modelRecorders = try WorkerPool(threads: 2, name: "model-record") } catch { throw StartError(description: "\(error)") }
        if let endpoint = models?.catalog.endpoint {
            do { endpointTokens = try ModelEndpoint.readTokens(endpoint.tokensFile) } catch { throw StartError(description: error.description) }
        } else {
            endpointTokens = []
        }
        logTools(changed: nil)
    }

    /// The manifests of the config directory; one that does not load is logged and left out.
    static func readManifests(config: DaemonConfig, policies: PolicyStore, log: Logger) -> [ToolManifest] {
        let store = ToolStore(configDir: config.configDir, policies: policies)
        var manifests: [ToolManifest] = []
        for path in store.manifestPaths() {
            switch store.load(path: path) {
            case .success(let m): manifests.append(m)
            case .failure(let e): log.error("tool manifest refused", metadata: ["file": "\(path)", "error": "\(e)"])
            }
        }
        return manifests
    }

    private func logTools(changed: [String]?) {
        for (name, why) in tools.rejected.sorted(by: { $0.key < $1.key }) where changed?.contains(name) ?? true {
            log.error("tool refused", metadata: ["tool": "\(name)", "error": "\(why)"])
        }
        var metadata: Logger.Metadata = ["count": "\(tools.manifests.count)"]
        if let changed { metadata["changed"] = "\(changed.joined(separator: ","))" }
        log.info(changed == nil ? "tools" : "tools reloaded", metadata: metadata)
    }

    /// Each file a tool's sandbox depends on in the config directory (tools/, policies/,
    /// profiles/), with its identity, size and times: a file added, removed, replaced or
    /// rewritten changes it. Nothing is read but metadata.
    static func toolFingerprint(_ config: DaemonConfig) -> [String] {
        guard let dir = config.configDir else { return [] }
        var out: [String] = []
        for sub in ["tools", "policies", "profiles"] {
            for path in (try? FileSystem.regularFiles(under: "\(dir)/\(sub)")) ?? [] {
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                out.append("\(path) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec) \(st.st_mode) \(st.st_uid)")
            }
        }
        return out.sorted()
    }

    /// Reads the manifests again when the config files changed (or `force`: SIGHUP). Tools
    /// whose manifest and policy are unchanged keep their instances; clients waiting on
    /// `tool.watch` are told when anything changed. Called on the main thread only.
    func reloadTools(force: Bool) {
        let now = Self.toolFingerprint(config)
        guard force || now != toolFiles else { return }
        toolFiles = now
        let changed = tools.update(Self.readManifests(config: config, policies: policies, log: log))
        if !changed.isEmpty || force { logTools(changed: changed) }
    }

    /// The state directory holds every user's records and output: it must be a directory of
    /// the daemon's own, readable by nobody else. A looser one (as an older `cordon run` or
    /// `cordon db` created it) is tightened and said so; one owned by someone else is refused.
    static func makePrivate(_ dir: String, log: Logger) throws(SystemError) {
        var st = stat()
        guard lstat(dir, &st) == 0 else { throw SystemError("lstat", path: dir, errno: errno) }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw SystemError("state dir (not a directory, or a symlink)", path: dir, errno: ENOTDIR) }
        guard st.st_uid == geteuid() else {
            throw SystemError("state dir (owned by uid \(st.st_uid), not cordond's uid \(geteuid()): chown it or choose another)", path: dir, errno: EPERM)
        }
        if st.st_mode & 0o077 != 0 {
            guard chmod(dir, 0o700) == 0 else { throw SystemError("chmod 0700", path: dir, errno: errno) }
            log.warning("the state dir was readable by others: made it 0700",
                        metadata: ["dir": "\(dir)", "was": "\(String(st.st_mode & 0o777, radix: 8))"])
        }
    }

    /// Takes `cordond.lock` in the state dir (flock, released when the process ends): a second
    /// daemon on the same state would mark the first one's running tasks lost.
    static func lockStateDir(_ dir: String) throws(SystemError) -> Int32 {
        let path = "\(dir)/cordond.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            let holder = n > 0 ? String(decoding: buffer[0..<n].filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self) : "?"
            close(fd)
            if code == EWOULDBLOCK {
                throw SystemError("lock (another cordond, pid \(holder), uses this state dir)", path: path, errno: code)
            }
            throw SystemError("lock", path: path, errno: code)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    // MARK: Lifecycle

    /// Blocks the signals `run` reads from its signalfd (and SIGPIPE) in this thread, and so in
    /// every thread it starts after.
    static func blockSignals() {
        var mask = sigset_t()
        sigemptyset(&mask)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&mask, sig) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
    }

    /// Serves until SIGTERM/SIGINT; returns the exit status.
    public func run() -> Int32 {
        // Signals are read from a signalfd here; blocked since init, in every thread.
        Self.blockSignals()
        var old = sigset_t()
        let signals = [SIGTERM, SIGINT, SIGHUP].withUnsafeBufferPointer { cl_signalfd_for($0.baseAddress, Int32($0.count), &old) }
        guard signals >= 0 else {
            log.critical("signalfd failed", metadata: ["errno": "\(errno)"])
            return 1
        }

        event("daemon-start", .object([("pid", .int(Int64(getpid()))), ("version", .string(cordonVersion))]))
        recover()

        let listener: Int32
        var ownsSocket = false
        if let inherited = systemdSocket() {
            listener = inherited
            log.info("using the socket systemd passed (socket activation)")
        } else {
            do { listener = try bindSocket(config.socket) } catch {
                log.critical("cannot listen", metadata: ["socket": "\(config.socket)", "error": "\(error)"])
                event("daemon-stop", .object([("reason", .string("listen failed: \(error)"))]))
                store.close()
                return 1
            }
            ownsSocket = true
        }
        // Before the workers start: they take turns with 1 MiB requests, and with an arena each
        // the memory one freed would stay in its own (docs/concurrency.md measured 49 MiB held
        // for 32 queued requests against 25 MiB with one arena).
        MallocArenas.limit(Self.mallocArenas)
        let server: Server
        do {
            server = try Server(daemon: self, listener: Descriptor(adopting: listener), maxMessage: config.maxMessageBytes,
                                workers: config.workers)
        } catch {
            log.critical("cannot start the socket server", metadata: ["error": "\(error)"])
            return 1
        }
        guard (try? Threads.detach("cordond-loop", signals: .noSIGPIPE, { server.run() })) != nil else {
            log.critical("cannot start the event loop's thread")
            return 1
        }
        var endpoint: ModelEndpoint?
        if let models {
            let e = ModelEndpoint(daemon: self, tokens: endpointTokens)
            do { try e.start(catalog: models.catalog) } catch {
                log.critical("cannot serve the OpenAI-compatible endpoint", metadata: ["error": "\(error)"])
                server.stopAccepting()
                if ownsSocket { unlink(config.socket) }
                store.close()
                return 1
            }
            endpoint = e
            log.info("OpenAI-compatible endpoint", metadata: ["socket": "\(config.endpointSocket)",
                                                             "tcp": "\(models.catalog.endpoint.map { "\($0.host):\($0.port)" } ?? "-")"])
        }
        var metricsFD: Int32 = -1
        if let port = config.metricsPort {
            var bound: Int32 = 0
            metricsFD = cl_tcp_listen_loopback(Int32(port), &bound)
            if metricsFD >= 0 {
                let listener = MetricsListener(daemon: self, fd: metricsFD)
                _ = try? Threads.detach("cordond-metrics", signals: .noSIGPIPE, { listener.acceptLoop() })
                log.info("metrics on http://127.0.0.1:\(bound)/metrics")
            } else {
                log.error("cannot listen for metrics", metadata: ["port": "\(port)", "errno": "\(errno)"])
            }
        }
        _ = try? Threads.detach("cordond-maint", signals: .noSIGPIPE, { [self] in maintenance() })
        // Warm sandboxes build in the background; tasks are served (cold) meanwhile.
        let names = policyNames()
        _ = try? Threads.detach("cordond-prewarm", signals: .noSIGPIPE, { [self] in tasks.prewarm(names) })
        log.info("cordond ready", metadata: ["socket": "\(config.socket)", "state": "\(config.stateDir)", "version": "\(cordonVersion)",
                                             "max_running": "\(config.maxRunning)"])
        if let notify = getenv("NOTIFY_SOCKET"), notify.pointee != 0 { sdNotify(String(cString: notify), "READY=1") }

        // The main thread waits for signals and, every second, looks for changed tool
        // manifests and answers `tool.watch` waits that have run out.
        var stopSignal: Int32 = 0
        while stopSignal == 0 {
            var pfd = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 1000)
            while true {
                let sig = cl_signalfd_next(signals)
                if sig <= 0 { break }
                if sig == SIGHUP {
                    log.info("SIGHUP: tool manifests read again; policies are read at each submit; cordond.toml changes need a restart")
                    reloadTools(force: true)
                } else {
                    stopSignal = sig
                }
            }
            if stopSignal == 0 { reloadTools(force: false) }
            tools.changes.expire()
        }

        // Drain.
        log.info("draining", metadata: ["signal": "\(stopSignal == SIGTERM ? "SIGTERM" : "SIGINT")", "deadline_seconds": "\(config.drainSeconds)"])
        if let notify = getenv("NOTIFY_SOCKET"), notify.pointee != 0 { sdNotify(String(cString: notify), "STOPPING=1") }
        server.stopAccepting()
        if ownsSocket { unlink(config.socket) }
        if metricsFD >= 0 { shutdown(metricsFD, Int32(SHUT_RDWR)); close(metricsFD) }
        endpoint?.stop(graceSeconds: min(10, config.drainSeconds))
        tasks.drain(seconds: config.drainSeconds, by: Peer(uid: 0, gid: 0, pid: getpid(), groups: [0], exe: "cordond (drain)"))
        tools.stop(until: MonotonicClock.now + 10)
        models?.stop(until: MonotonicClock.now + 10)
        event("daemon-stop", .object([("signal", .int(Int64(stopSignal)))]))
        store.close()
        log.info("stopped")
        return 0
    }

    func event(_ kind: String, _ detail: JSON, uid: UInt32? = nil, task: Int64? = nil) {
        do { try store.record(NewEvent(kind: kind, taskID: task, uid: uid, time: UTCTime.epochSeconds(), detail: detail.text)) }
        catch { log.error("audit store: cannot record an event", metadata: ["kind": "\(kind)", "error": "\(error)"]) }
    }

    /// After a crash: every task the store says was queued or running is `lost`; sandbox
    /// cgroups nobody holds any more are killed and removed.
    func recover() {
        do {
            let unfinished = try store.unfinished()
            if !unfinished.isEmpty {
                try store.markLost(ids: unfinished.map(\.id), at: UTCTime.epochSeconds())
                for _ in unfinished { metrics.taskEnded(result: "lost") }
                log.warning("marked tasks of a previous run lost", metadata: ["tasks": "\(unfinished.count)"])
            }
        } catch {
            log.error("audit store: recovery", metadata: ["error": "\(error)"])
        }
        let removed = Recovery.removeOrphanCgroups(environment: tasks.environment, log: log)
        if removed > 0 { log.warning("removed orphaned sandbox cgroups", metadata: ["count": "\(removed)"]) }
        // No sandbox runs yet: unpacked images whose archive changed or is gone can go.
        tasks.images.removeStale()
        // And sets `cordon store gc` moved aside (a tool's sandbox binds only pinned sets, which gc keeps).
        installs.removeStale()
    }

    /// Applies the retention rules (see `RetentionRules`: age, per-user quota, store size,
    /// heaviest user first, young denials kept), removes the output of the tasks they dropped,
    /// records who paid, and re-reads every user's usage for the quotas.
    func prune() {
        let now = UTCTime.epochSeconds()
        var rules = RetentionRules(olderThan: config.retentionSeconds.map { now - $0 },
                                   maxBytes: config.retentionBytes.map { Int64(clamping: $0) },
                                   maxBytesPerUser: Int64(clamping: config.recordBytesPerUser),
                                   keepDenialsSince: now - config.keepDenialsSeconds)
        rules.batch = 256
        // Not while a task's end removes its user's old outputs: both move the output counts.
        tasks.withOutputAccounting { prune(rules) }
    }

    private func prune(_ rules: RetentionRules) {
        do {
            let report = try store.prune(rules)
            for task in report.removed { try? FileSystem.removeTree("\(config.tasksDir)/\(task.id)") }
            if !report.removed.isEmpty || report.stripped > 0 || report.incomplete {
                log.info("retention", metadata: ["removed": "\(report.removed.count)", "stripped": "\(report.stripped)",
                                                 "incomplete": "\(report.incomplete)"])
            }
            if report.incomplete { quotas.wantPrune() }
            for (uid, held) in report.overQuota.sorted(by: { $0.key < $1.key }) {
                event("quota", .object([("quota", .string("audit.max_size_per_user")), ("held", .int(held)),
                                        ("limit", .int(Int64(clamping: config.recordBytesPerUser))),
                                        ("what", .string(report.stillOverQuota.contains(uid) ? "only protected records left" : "oldest records shed"))]), uid: uid)
            }
            for uid in report.shedForSize {
                event("quota", .object([("quota", .string("audit.max_size")), ("what", .string("records shed, heaviest user first"))]), uid: uid)
            }
            quotas.sync(try store.usage(), report: report)
        } catch {
            log.error("audit store: retention", metadata: ["error": "\(error)"])
        }
    }

    /// Retention right after start (the socket already answers: a long pass must not keep
    /// anyone out), then every 10 minutes, and when a user goes over its record quota — at most
    /// every 10 s, so a user at its quota cannot keep passes running; memory freed by large
    /// requests is given back to the system.
    private func maintenance() {
        prune()
        var last = MonotonicClock.now
        var syncFailures = 0
        while true {
            sleep(1)
            let audit = store.writerStatistics
            if audit.syncFailures > syncFailures {
                log.error("audit store: the log could not be synced to disk; retried every 50 ms, and every durable commit tries again",
                          metadata: ["failures": "\(audit.syncFailures - syncFailures)", "error": "\(audit.lastSyncError ?? "")"])
                syncFailures = audit.syncFailures
            }
            let since = MonotonicClock.now - last
            if since >= 600 || (since >= 10 && quotas.takePruneWanted()) {
                prune()
                last = MonotonicClock.now
            }
            if quotas.takeTrimWanted() { _ = cl_malloc_trim() }
            tasks.warm.shrink()
        }
    }

    /// The listening socket systemd passed (LISTEN_FDS, LISTEN_PID), if any.
    private func systemdSocket() -> Int32? {
        guard let pidText = getenv("LISTEN_PID"), let fdsText = getenv("LISTEN_FDS"),
              Int32(String(cString: pidText)) == getpid(), let count = Int(String(cString: fdsText)), count >= 1 else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        _ = fcntl(3, F_SETFD, FD_CLOEXEC)
        return 3
    }

    /// Binds the socket: created 0600 (never through the umask, which every thread shares: a
    /// sandbox cloned while it was narrowed built its root with it, and a local server started
    /// at boot could not read its own bound directories), then given its group and mode. A socket file
    /// left by a crashed daemon is replaced; one a live daemon answers on is not.
    func bindSocket(_ path: String) throws(SystemError) -> Int32 {
        if case .other = FileSystem.kind(path) {
            let probe = cl_unix_connect(path)
            if probe >= 0 {
                close(probe)
                throw SystemError("listen (another cordond is answering on this socket)", path: path, errno: EADDRINUSE)
            }
            unlink(path)
        }
        let fd = cl_unix_listen(path, 512, 0o600)
        let code = errno
        guard fd >= 0 else { throw SystemError("bind", path: path, errno: code) }
        var gid: gid_t = 0
        if let group = config.socketGroup {
            guard let g = Accounts.gid(group) else {
                close(fd)
                unlink(path)
                throw SystemError("socket.group: no such group \"\(group)\"", path: path, errno: EINVAL)
            }
            gid = g
        } else if let g = Accounts.gid("cordon") {
            gid = g
        }
        guard chown(path, 0, gid) == 0, chmod(path, config.socketMode) == 0 else {
            let code = errno
            close(fd)
            unlink(path)
            throw SystemError("chown/chmod", path: path, errno: code)
        }
        return fd
    }

    private func sdNotify(_ socketPath: String, _ message: String) {
        // Abstract sockets start with '@'; only filesystem paths are supported here.
        guard socketPath.hasPrefix("/") else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        var payload = Array(message.utf8)
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                sendto(fd, &payload, payload.count, Int32(MSG_NOSIGNAL), sa, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    func metricsText() -> String {
        let (queued, running) = tasks.counts
        var text = metrics.render(queued: queued, running: running, parked: tasks.parkedCount, healthy: Health.check(self).ok,
                                  breakers: tools.breakerStates(), instances: tools.instanceTotals(), modelBreakers: models?.breakerStates() ?? [:],
                                  modelServers: models?.serverTotals() ?? [:])
        text += "# HELP cordon_sessions_open Sessions open.\n# TYPE cordon_sessions_open gauge\ncordon_sessions_open \(tasks.liveSessions(of: nil).count)\n"
        text += "# HELP cordon_warm_parked Warm sandboxes built and parked, by policy.\n# TYPE cordon_warm_parked gauge\n"
        for (policy, count) in tasks.warm.parkedByPolicy { text += "cordon_warm_parked{policy=\"\(policy)\"} \(count)\n" }
        let audit = store.writerStatistics
        text += "# HELP cordon_audit_commits_total Audit store transactions that stored their writes, by whether each was synced to disk before it returned.\n# TYPE cordon_audit_commits_total counter\n"
        text += "cordon_audit_commits_total{durable=\"true\"} \(audit.durableCommits)\ncordon_audit_commits_total{durable=\"false\"} \(audit.nonDurableCommits)\n"
        text += "# HELP cordon_audit_commit_failures_total Audit store transactions that failed (their writes were refused with an error).\n# TYPE cordon_audit_commit_failures_total counter\ncordon_audit_commit_failures_total \(audit.failedCommits)\n"
        text += "# HELP cordon_audit_log_syncs_total Syncs of the audit log for commits no durable commit covered within 50 ms.\n# TYPE cordon_audit_log_syncs_total counter\ncordon_audit_log_syncs_total \(audit.syncs)\n"
        text += "# HELP cordon_audit_sync_failures_total Failed syncs of the audit log (retried; commits since the last sync are not yet safe from a power loss).\n# TYPE cordon_audit_sync_failures_total counter\ncordon_audit_sync_failures_total \(audit.syncFailures)\n"
        return text
    }
}

/// Cleaning up after a supervisor that died.
enum Recovery {
    /// Kills and removes every sandbox cgroup whose uid slot nobody holds (not a live
    /// supervisor, not a cleanup guardian). Holding the slot while cleaning keeps a new sandbox
    /// from starting in it meanwhile. Returns how many were removed.
    static func removeOrphanCgroups(environment: SandboxEnvironment, log: Logger) -> Int {
        guard let hierarchy = try? CgroupHierarchy.detect(mount: environment.cgroupMount, group: environment.cgroupGroup) else { return 0 }
        var removed = 0
        for slot in hierarchy.sandboxSlots() {
            guard let claim = UIDRange.tryClaim(slot: slot) else { continue }
            withExtendedLifetime(claim) {
                let cgroup = hierarchy.existing(name: "s\(slot)")
                cgroup.killAll()
                do {
                    try cgroup.remove()
                    removed += 1
                } catch {
                    log.error("cannot remove an orphaned cgroup", metadata: ["cgroup": "\(cgroup.directories)", "error": "\(error)"])
                }
            }
        }
        return removed
    }
}
