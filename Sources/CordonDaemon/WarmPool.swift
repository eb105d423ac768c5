import CordonPolicy
import CordonSandbox
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Warm sandboxes (docs/daemon.md, "Warm sandboxes"): for a policy with `daemon.warm = N`,
/// cordond keeps up to N sandboxes of it fully built — namespaces, mounts, cgroup, Landlock and
/// seccomp in place — whose workload is a session's server parked before its one command's
/// execve. A task of that policy (and the same limits, with no workspace, files or caller
/// variables: what the sandbox was built for) takes one, has its command run there, and the
/// sandbox then ends: each is used for exactly one task and never reused. Taken ones are
/// replaced in the background; a policy's pool that no task has drawn on for `idleSeconds`
/// shrinks to nothing until a task of it comes again.
final class WarmPool: @unchecked Sendable {
    /// A parked sandbox: its channel, its control, and its result once it has ended.
    final class Parked: @unchecked Sendable {
        let channel: SessionChannel
        let control: SandboxControl
        let key: String
        let madeAt = MonotonicClock.now
        let monitor = Monitor()
        // Guarded by `monitor`:
        var cgroup: [String] = []
        var result: SandboxResult?

        init(channel: SessionChannel, control: SandboxControl, key: String) {
            self.channel = channel
            self.control = control
            self.key = key
        }

        /// The sandbox's record, once it has ended (at most `seconds` from now).
        func ended(within seconds: Double) -> SandboxResult? {
            monitor.locked {
                _ = monitor.wait(until: MonotonicClock.now + seconds) { result != nil }
                return result
            }
        }
    }

    /// What a pool is filled with: the plan (the policy with the task's limits) and how many.
    private struct Want {
        var plan: SpawnPlan
        var count: Int
        var lastTaken: Double
    }

    /// A pool not drawn on for this long is let go (and filled again by the next task of it).
    static let idleSeconds = 600.0
    /// Sandboxes parked for every policy together.
    let maxParked: Int
    private let environment: SandboxEnvironment
    private let log: Logger
    private let monitor = Monitor()
    // Guarded by `monitor`:
    private var ready: [String: [Parked]] = [:]
    private var starting: [String: Int] = [:]
    private var wants: [String: Want] = [:]
    private var total = 0
    private var stopped = false

    init(environment: SandboxEnvironment, maxParked: Int, log: Logger) {
        self.environment = environment
        self.maxParked = maxParked
        self.log = log
    }

    /// The pool's key for a plan: what makes two sandboxes interchangeable.
    static func key(_ plan: SpawnPlan, limits: LimitRequest) -> String { "\(plan.policy.contentHash)|\(limits.key)" }

    /// Whether a task's sandbox may come from a pool: nothing of the caller's in it (no
    /// workspace, files or variables), no writable bind whose owner depends on the caller.
    /// Only the policy's own limits are pooled (a client's limits would make a pool per value),
    /// only a command the server's request holds, and only a wall time a parked sandbox outlasts.
    static func eligible(_ request: TaskRequest, plan: SpawnPlan) -> Bool {
        guard plan.policy.daemon.warm > 0, request.workspace == nil, request.files.isEmpty, request.env.isEmpty,
              request.limits == LimitRequest(), let wall = plan.policy.limits.wallTimeSeconds, wall <= maxTaskWall,
              !plan.mounts.contains(where: { $0.kind == .attach }) else { return false }
        let bytes = request.argv.reduce(0) { $0 + $1.utf8.count + 1 } + plan.env.reduce(0) { $0 + $1.utf8.count + 1 }
            + plan.cwd.utf8.count + plan.searchPath.utf8.count + 2
        return bytes + SessionChannel.Wire.requestHeader <= SessionChannel.Wire.maxRequest
    }

    /// A parked sandbox lives this long (its wall time); one is handed out only while it has
    /// the task's wall time and a minute left.
    static let parkedSeconds = 4 * idleSeconds
    static let maxTaskWall = parkedSeconds / 2

    /// Fills `key`'s pool to `plan.policy.daemon.warm` (at start, for each policy that asks).
    func want(_ key: String, plan: SpawnPlan) {
        monitor.locked {
            if wants[key] == nil { wants[key] = Want(plan: plan, count: plan.policy.daemon.warm, lastTaken: MonotonicClock.now) }
        }
        refill()
    }

    /// A parked sandbox for `key` if one is ready (nil: the task goes cold). Either way the pool
    /// is asked to hold `plan.policy.daemon.warm` of them from now on.
    func take(_ key: String, plan: SpawnPlan) -> Parked? {
        let (taken, stale): (Parked?, [Parked]) = monitor.locked {
            if stopped { return (nil, []) }
            wants[key] = Want(plan: plan, count: plan.policy.daemon.warm, lastTaken: MonotonicClock.now)
            // The youngest first; any too old for this task's wall time, or no longer ready,
            // is let go.
            let wall = plan.policy.limits.wallTimeSeconds ?? Self.maxTaskWall
            var found: Parked?
            var stale: [Parked] = []
            while found == nil, let p = ready[key]?.popLast() {
                total -= 1
                let usable = p.channel.monitor.locked { p.channel.state == .ready }
                if usable && MonotonicClock.now - p.madeAt + wall + 60 < Self.parkedSeconds { found = p } else { stale.append(p) }
            }
            if ready[key]?.isEmpty == true { ready[key] = nil }
            return (found, stale)
        }
        for p in stale { p.channel.close(reason: "pool-stale", by: nil) }
        // The sandbox taken is replaced once its task has been answered (the caller's
        // `refill()`): built now, on a machine of few cores, it would slow the very task it
        // replaces. An empty pool starts filling at once (the task runs cold meanwhile).
        if taken == nil { refill() }
        return taken
    }

    /// Starts sandboxes until every wanted pool is full (or `maxParked` are parked or starting).
    func refill() {
        let toStart: [(String, SpawnPlan)] = monitor.locked {
            if stopped { return [] }
            var out: [(String, SpawnPlan)] = []
            for (key, want) in wants {
                var have = (ready[key]?.count ?? 0) + (starting[key] ?? 0)
                while have < want.count && total < maxParked {
                    have += 1
                    total += 1
                    starting[key, default: 0] += 1
                    out.append((key, want.plan))
                }
            }
            return out
        }
        for (key, plan) in toStart {
            if (try? Threads.detach("cordond-warm", signals: .noSIGPIPE, { [self] in park(key, plan) })) == nil {
                monitor.locked {
                    starting[key, default: 1] -= 1
                    total -= 1
                }
            }
        }
    }

    /// One sandbox, from its start (it joins the pool once its server is ready) to its end.
    private func park(_ key: String, _ plan: SpawnPlan) {
        var plan = plan
        // Parked for as long as the pool keeps it; the command has its policy's wall_time. The
        // server takes one process of the cgroup's: the command gets as many as a cold one.
        plan.policy.limits.wallTimeSeconds = Self.parkedSeconds
        plan.cgroupLimits.pids = plan.cgroupLimits.pids.map { $0 + 1 }
        let channel: SessionChannel, control: SandboxControl
        do {
            channel = try SessionChannel(ttlSeconds: Self.parkedSeconds, idleSeconds: Self.parkedSeconds)
            control = try SandboxControl()
        } catch {
            log.error("warm sandbox: cannot make its channel", metadata: ["error": "\(error)"])
            monitor.locked { starting[key, default: 1] -= 1; total -= 1 }
            return
        }
        let parked = Parked(channel: channel, control: control, key: key)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        var io = SandboxIO()
        io.relaySignals = false
        io.sessionChannel = channel.serverFD
        io.stdout = devNull
        io.stderr = devNull
        // A limit hit ends the sandbox and so the task, as a cold one's would.
        io.limitsEndSession = true
        control.onStart { _, cgroup in
            channel.releaseServerEnd()
            parked.monitor.locked { parked.cgroup = cgroup }
        }
        channel.whenReady { [self] outcome in
            // What is in it now (its init and the server) is all a task's record may find left
            // when its command has ended, for the task to be answered before the teardown.
            if case .success = outcome { _ = control.noteResidents() }
            let joined: Bool = monitor.locked {
                starting[key, default: 1] -= 1
                if starting[key] == 0 { starting[key] = nil }
                guard case .success = outcome, !stopped, wants[key] != nil else { return false }
                ready[key, default: []].append(parked)
                return true
            }
            if !joined {
                channel.close(reason: "not-wanted", by: nil)
                monitor.locked { total -= 1 }
            }
        }
        if (try? Threads.detach("cordond-warm-reader", signals: .noSIGPIPE, { channel.readReplies(kill: { control.cancel() }) })) == nil {
            channel.close(reason: "no-reader", by: nil)
        }
        var environment = environment
        environment.writeOwnership = .sourceOwner
        let result = Sandbox.run(plan: plan, argv: ["cordon-session"], environment: environment, io: io, wallTime: nil, control: control)
        channel.ended(message: result.setupFailure.map { "\($0.step.name): \($0.message)" } ?? "the sandbox ended (\(result.reason.rawValue))")
        channel.releaseServerEnd()
        if let failure = result.setupFailure {
            log.error("warm sandbox failed to start", metadata: ["policy": "\(plan.policy.name)", "error": "\(failure.message)"])
        }
        // Still parked (not taken) when it ended: out of the pool.
        monitor.locked {
            if let i = ready[key]?.firstIndex(where: { $0 === parked }) {
                ready[key]!.remove(at: i)
                total -= 1
            }
        }
        parked.monitor.locked {
            parked.result = result
            parked.monitor.broadcast()
        }
    }

    /// Lets go of pools no task has drawn on for `idleSeconds` (called now and then).
    func shrink() {
        let now = MonotonicClock.now
        let idle: [Parked] = monitor.locked {
            var out: [Parked] = []
            for (key, want) in wants where now - want.lastTaken >= Self.idleSeconds {
                wants[key] = nil
                out += ready[key] ?? []
                total -= ready[key]?.count ?? 0
                ready[key] = nil
            }
            return out
        }
        for p in idle { p.channel.close(reason: "pool-idle", by: nil) }
    }

    /// Closes every parked sandbox and starts no more (cordond is stopping).
    func stop() {
        let all: [Parked] = monitor.locked {
            stopped = true
            let out = ready.values.flatMap { $0 }
            ready = [:]
            total = 0
            return out
        }
        for p in all { p.channel.close(reason: "cordond-stopping", by: nil) }
    }

    /// Parked sandboxes by policy name, for every policy whose pool is wanted (metrics).
    var parkedByPolicy: [(String, Int)] {
        monitor.locked {
            var counts: [String: Int] = [:]
            for (key, want) in wants { counts[want.plan.policy.name, default: 0] += ready[key]?.count ?? 0 }
            return counts.sorted { $0.key < $1.key }
        }
    }
}
