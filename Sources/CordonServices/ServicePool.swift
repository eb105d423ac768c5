import CordonJSON
import CordonResilience
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The instances of long-lived sandboxed services, kept per service and per owner: started on
/// demand, admitted once ready (the service's own handshake, not "the process runs"), checked
/// every `healthInterval`, restarted with backoff when they die or stop answering, stopped when
/// idle, never more than `maxInstances` per owner, each taking at most `concurrency` calls at
/// once. Instances of different owners are never shared (the key carries the owner; only a
/// service declared shared uses one key for all).
///
/// A service that keeps dying — more than `maxRestarts` starts that failed or instances that
/// died within `restartWindow` — is marked failed with the reason (its exit and the tail of its
/// stderr) until the window has passed; leases are refused with that reason meanwhile.
///
/// Under `maxTotalInstances` the services take turns: a start that needs room stops the least
/// recently used idle instance of another, or — once its oldest waiter has waited
/// `fairnessSeconds` and none is idle — retires the least recently used busy one after its
/// current calls; room that frees goes to the service whose waiter has waited longest; and an
/// instance kept only for `min_instances` never takes room from one that callers wait for.
///
/// Nothing here blocks a caller: `lease` answers through its completion, from the pool's
/// threads. One maintenance thread keeps time (health, idle stop, restarts due, expired waits).
public final class ServicePool: @unchecked Sendable {
    /// Whose instances: a service's name and the owner's uid (nil for a shared service).
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        public var service: String
        public var owner: UInt32?
        public init(service: String, owner: UInt32?) { self.service = service; self.owner = owner }
        public var description: String { owner.map { "\(service) (uid \($0))" } ?? "\(service) (shared)" }
    }

    public typealias Settings = ServiceSettings

    /// How to start, connect to and check one service's instances.
    public struct Definition: Sendable {
        public var settings: Settings
        /// What its owner says these instances are (a tool's policy and its hash), given back
        /// on each lease: a call that waited across `define` learns what it actually ran on.
        public var tag: String = ""
        /// The sandbox of a new instance for `key`'s owner.
        public var spec: @Sendable (Key) throws -> SandboxedProcess.Spec
        /// The protocol's client on a fresh instance (its `ready` is the readiness check).
        public var connect: @Sendable (SandboxedProcess, Key) throws -> any ServiceClient

        public init(settings: Settings, spec: @escaping @Sendable (Key) throws -> SandboxedProcess.Spec,
                    connect: @escaping @Sendable (SandboxedProcess, Key) throws -> any ServiceClient) {
            self.settings = settings
            self.spec = spec
            self.connect = connect
        }
    }

    public struct ServiceError: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// One call's hold on an instance: release it when the call has its answer (or gave up;
    /// `unresponsive` restarts the instance).
    public final class Lease: @unchecked Sendable {
        /// The instance's client (the definition's `connect` made it: cast to its type).
        public let client: any ServiceClient
        /// What its `ready` returned.
        public let handshake: JSON
        public let instance: Int
        /// The definition's `tag` the instance was started from.
        public let tag: String
        fileprivate weak var pool: ServicePool?
        fileprivate let key: Key
        private let released = Atomic<Bool>(false)

        fileprivate init(_ instance: Instance, key: Key, pool: ServicePool) {
            client = instance.client!
            handshake = instance.handshake
            self.instance = instance.id
            tag = instance.tag
            self.key = key
            self.pool = pool
        }

        /// Gives the slot back. `unresponsive`: the call got no answer in time; the instance is
        /// stopped (and replaced when needed) rather than trusted with the next call, and that
        /// counts against the service's restart budget.
        public func release(unresponsive: Bool = false) {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            pool?.release(key: key, instance: instance, unresponsive: unresponsive, replace: false)
        }

        /// Gives the slot back and has the instance stopped (and replaced when needed) without
        /// charging the restart budget: for a fault a caller may have caused (a call that kept a
        /// shared server busy past its limits), which must not let one caller mark the service
        /// failed for everyone. Counted in `Stats.failures`.
        public func releaseReplacing() {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            pool?.release(key: key, instance: instance, unresponsive: false, replace: true)
        }

        deinit { release() }
    }

    public struct Stats: Sendable {
        public var instances = 0
        public var starting = 0
        public var inFlight = 0
        public var waiting = 0
        public var starts = 0
        /// Instances that died, failed to start or to answer a health check, or hung a call.
        public var failures = 0
        public var failed: String?
        /// Why the last failure happened, and when (`MonotonicClock` seconds).
        public var lastFailure: (reason: String, at: Double)?

        /// `lastFailure` for a status reply: its reason and how long ago, or null.
        public var lastFailureJSON: JSON {
            guard let last = lastFailure else { return .null }
            return .object([("reason", .string(last.reason)), ("secondsAgo", .double(((MonotonicClock.now - last.at) * 10).rounded() / 10))])
        }
    }

    fileprivate final class Instance: @unchecked Sendable {
        let id: Int
        var tag = ""
        var process: SandboxedProcess?
        var client: (any ServiceClient)?
        var handshake: JSON = .null
        var ready = false
        var stopping = false
        var inFlight = 0
        var lastUsed: Double
        var lastHealth: Double
        var checking = false
        let created: Double
        /// When it was admitted (ready): a busy instance has a turn of its own before another
        /// service's waiter may retire it.
        var readyAt: Double = .infinity
        /// The group a busy instance was retired for (`roomForOneMore`); it is let back into
        /// service if that group's waiters are gone before its calls end.
        var retiredFor: Key?
        init(id: Int, now: Double) { self.id = id; lastUsed = now; lastHealth = now; created = now }
    }

    private struct Waiter {
        var deadline: Double
        /// When it began to wait: room under `maxTotalInstances` goes to the oldest.
        var since: Double
        var completion: @Sendable (Result<Lease, ServiceError>) -> Void
    }

    private struct Group {
        var instances: [Int: Instance] = [:]
        var waiters: [Waiter] = []
        /// Failures (each followed by a restart when one is needed) within the restart window.
        var budget: RestartBudget
        var consecutiveFailures = 0
        var failedUntil: Double?
        var failedReason: String?
        var nextStartAt: Double = 0
        var starts = 0
        var failureCount = 0
        var lastFailure: (reason: String, at: Double)?
        /// Seconds the last start took, from spawn to ready.
        var lastStartSeconds: Double?
        init(_ settings: Settings) {
            // Settings come checked from the manifest parser; a budget of 0 restarts is allowed.
            budget = (try? RestartBudget(maxRestarts: settings.maxRestarts, within: .seconds(settings.restartWindowSeconds)))
                ?? (try! RestartBudget(maxRestarts: 0, within: .seconds(1)))
        }
    }

    private var definitions: [String: Definition]
    private let monitor = Monitor()
    private var groups: [Key: Group] = [:]
    private var nextInstance = 1
    private var stopped = false
    private var random: SplitMix64
    private var backoffs: [String: Backoff]
    /// Completions left by the section holding the lock, run once it is released (`locked`).
    private var deferred: [@Sendable () -> Void] = []
    /// Told each failure: the instance's key, the reason, and whether it marked the service
    /// failed (its restart budget spent). Called without the pool's lock.
    private let onFailure: (@Sendable (Key, String, Bool) -> Void)?

    /// `seed` for the backoff's jitter (nil: from the system's generator).
    /// Instances of every service and owner together, at most (each costs threads and
    /// descriptors in this process): at the limit, the least recently used idle instance of
    /// another owner or service is stopped to make room; with none idle, a start waits.
    public let maxTotalInstances: Int
    /// How long a waiter waits for an idle instance to stop before a busy instance of another
    /// service is retired for it (after its current calls), under `maxTotalInstances`.
    public let fairnessSeconds: Double

    public init(definitions: [String: Definition], seed: UInt64? = nil, maxTotalInstances: Int = .max,
                fairnessSeconds: Double = 1, onFailure: (@Sendable (Key, String, Bool) -> Void)? = nil) throws(SystemError) {
        self.definitions = definitions
        self.onFailure = onFailure
        self.maxTotalInstances = maxTotalInstances
        self.fairnessSeconds = fairnessSeconds
        var system = SystemRandomNumberGenerator()
        random = SplitMix64(seed: seed ?? system.next())
        backoffs = definitions.mapValues { Self.backoff($0.settings) }
        try Threads.detach("service-pool", signals: .noSIGPIPE) { [self] in maintain() }
    }

    static func backoff(_ s: Settings) -> Backoff {
        (try? Backoff(base: .seconds(s.backoffBaseSeconds), cap: .seconds(max(s.backoffBaseSeconds, s.backoffMaxSeconds))))
            ?? (try! Backoff(base: .milliseconds(200), cap: .seconds(30)))
    }

    /// Replaces `service`'s definition (nil: removes the service). Its instances are retired:
    /// idle ones are stopped now, busy ones when their last call ends; none takes another call.
    /// Leases waiting, and those to come, get instances of the new definition (of a removed
    /// service: refused). Its restart budget and backoff start afresh: what failed before was
    /// the old definition.
    public func define(_ service: String, _ definition: Definition?) {
        let processes: [SandboxedProcess] = locked {
            definitions[service] = definition
            backoffs[service] = definition.map { Self.backoff($0.settings) }
            let now = MonotonicClock.now
            var stop: [SandboxedProcess] = []
            for key in groups.keys where key.service == service {
                var g = groups[key]!
                for i in g.instances.values where !i.stopping || i.retiredFor != nil {
                    i.stopping = true
                    i.retiredFor = nil
                    if i.inFlight == 0, let p = i.process { stop.append(p) }
                }
                if let definition {
                    let fresh = Group(definition.settings)
                    g.budget = fresh.budget
                    g.consecutiveFailures = 0
                    g.failedUntil = nil
                    g.failedReason = nil
                    g.nextStartAt = 0
                    serveWaiters(&g, key: key, definition: definition, now: now)
                } else {
                    let waiters = g.waiters
                    g.waiters = []
                    later { for w in waiters { w.completion(.failure(ServiceError("no service \"\(service)\" (it was removed)"))) } }
                }
                groups[key] = g
            }
            monitor.broadcast()
            return stop
        }
        for p in processes { p.stop() }
    }

    /// An instance of `key`'s service with a free slot, started if need be, by `deadline`.
    public func lease(_ key: Key, deadline: Double, completion: @escaping @Sendable (Result<Lease, ServiceError>) -> Void) {
        let now = MonotonicClock.now
        let outcome: Result<Lease, ServiceError>? = locked {
            guard let definition = definitions[key.service] else { return .failure(ServiceError("no service \"\(key.service)\"")) }
            var g = groups[key] ?? Group(definition.settings)
            defer { groups[key] = g }
            if stopped { return .failure(ServiceError("the service pool is stopping")) }
            if let until = g.failedUntil, until > now {
                return .failure(ServiceError("\(key.service) is failing: \(g.failedReason ?? "it keeps dying") (retried after \(Int((until - now).rounded(.up))) s)"))
            }
            if let instance = Self.pick(g, concurrency: definition.settings.concurrency) {
                instance.inFlight += 1
                instance.lastUsed = now
                return .success(Lease(instance, key: key, pool: self))
            }
            g.waiters.append(Waiter(deadline: deadline, since: now, completion: completion))
            scheduleStartIfNeeded(&g, key: key, definition: definition, now: now)
            return nil
        }
        if let outcome { completion(outcome) }
    }

    /// The blocking form of `lease`.
    public func lease(_ key: Key, deadline: Double) -> Result<Lease, ServiceError> {
        let answer = Awaited<Result<Lease, ServiceError>>()
        lease(key, deadline: deadline) { answer.set($0) }
        // Every lease is answered: granted, refused, or expired by the maintenance thread.
        return answer.wait()!
    }

    public func stats(_ key: Key) -> Stats {
        monitor.locked {
            guard let g = groups[key] else { return Stats() }
            let now = MonotonicClock.now
            return Stats(instances: g.instances.values.filter(\.ready).count, starting: g.instances.values.filter { !$0.ready }.count,
                         inFlight: g.instances.values.reduce(0) { $0 + $1.inFlight }, waiting: g.waiters.count,
                         starts: g.starts, failures: g.failureCount,
                         failed: (g.failedUntil.map { $0 > now } ?? false) ? g.failedReason : nil, lastFailure: g.lastFailure)
        }
    }

    /// `service`'s stats summed over every owner.
    public func totals(service: String) -> Stats {
        monitor.locked {
            var total = Stats()
            for (key, g) in groups where key.service == service {
                total.instances += g.instances.values.filter(\.ready).count
                total.starting += g.instances.values.filter { !$0.ready }.count
                total.inFlight += g.instances.values.reduce(0) { $0 + $1.inFlight }
                total.waiting += g.waiters.count
                total.starts += g.starts
                total.failures += g.failureCount
                if let last = g.lastFailure, last.at > total.lastFailure?.at ?? -.infinity { total.lastFailure = last }
            }
            return total
        }
    }

    /// The pids (init's, on the host) of `key`'s running instances.
    public func pids(_ key: Key) -> [Int32] {
        monitor.locked { groups[key]?.instances.values.compactMap { $0.process?.started?.pid } ?? [] }
    }

    /// Stops every instance and refuses new leases; waits up to `deadline` for them to end.
    public func stopAll(until deadline: Double) {
        let processes: [SandboxedProcess] = locked {
            stopped = true
            var all: [SandboxedProcess] = []
            for (key, var g) in groups {
                for w in g.waiters { let c = w.completion; later { c(.failure(ServiceError("the service pool is stopping"))) } }
                g.waiters = []
                for i in g.instances.values { i.stopping = true; if let p = i.process { all.append(p) } }
                groups[key] = g
            }
            monitor.broadcast()
            return all
        }
        for p in processes { p.stop() }
        for p in processes { p.wait(until: deadline) }
    }

    // MARK: inside (the monitor held unless said otherwise)

    /// Runs `body` with the pool's lock held, then — the lock released — what it left to run
    /// (`later`), each batch on a thread of its own. Completions may call back into the pool,
    /// and the last reference to a lease may go with them: its deinit releases it, which takes
    /// the lock. So no completion, and no lease handed to one, may end while the lock is held.
    private func locked<T>(_ body: () -> T) -> T {
        let (result, jobs) = monitor.locked { () -> (T, [@Sendable () -> Void]) in
            let result = body()
            defer { deferred = [] }
            return (result, deferred)
        }
        for job in jobs { DispatchLater.run(job) }
        return result
    }

    /// Queues `job` to run once the lock is released (the lock held).
    private func later(_ job: @escaping @Sendable () -> Void) { deferred.append(job) }

    private static func pick(_ g: Group, concurrency: Int) -> Instance? {
        // Not one whose stream has ended: its sandbox may not have finished ending yet.
        g.instances.values.filter { $0.ready && !$0.stopping && $0.inFlight < concurrency && $0.client?.isOpen == true }
            .min { $0.inFlight < $1.inFlight }
    }

    /// Starts an instance when waiters outnumber the free slots of those starting, within the
    /// limit, unless a restart is not due yet (the maintenance thread starts it then).
    private func scheduleStartIfNeeded(_ g: inout Group, key: Key, definition: Definition, now: Double) {
        guard !stopped else { return }
        let s = definition.settings
        let live = g.instances.values.filter { !$0.stopping }
        let startingSlots = live.filter { !$0.ready }.count * s.concurrency
        let forWaiters = g.waiters.count > startingSlots
        guard forWaiters || live.count < s.minInstances, live.count < s.maxInstances, now >= g.nextStartAt else { return }
        guard roomForOneMore(besides: key, g, forWaiters: forWaiters, now: now) else { return }
        let instance = Instance(id: nextInstance, now: now)
        instance.tag = definition.tag
        nextInstance += 1
        g.instances[instance.id] = instance
        g.starts += 1
        let deadline = now + s.startTimeoutSeconds
        do { try Threads.detach("service-start", signals: .noSIGPIPE) { [self] in start(instance, key: key, definition: definition, deadline: deadline) } }
        catch {
            g.instances[instance.id] = nil
            noteFailure(&g, key: key, definition: definition, reason: "start a thread: \(error)", now: now)
        }
    }

    /// Whether one more instance of `key` may start under `maxTotalInstances` (those stopping
    /// count until they have ended). `g` is `key`'s group, held by the caller.
    ///
    /// Room that is free goes first to the groups whose waiters have waited longer (this start
    /// yields when they would take all of it). With no room, and none coming (no instance
    /// anywhere already stopping), a start for waiters (not one for `min_instances` alone, which
    /// never takes an instance from anyone), if its waiters still have time for a start (as
    /// long as the last one took), stops the least recently used idle instance of another group,
    /// or retires the least recently used busy one after its current calls — once its oldest
    /// waiter has waited `fairnessSeconds` and the busy instance has had a turn of its own (as
    /// long as its own start took, and `fairnessSeconds`): a reload is never spent on a caller
    /// who cannot use it, nor more often than one per start. Either way it says no; the start
    /// comes on a later pass, once that one has ended.
    private func roomForOneMore(besides key: Key, _ g: Group, forWaiters: Bool, now: Double) -> Bool {
        guard maxTotalInstances != .max else { return true }
        var total = g.instances.count
        var idlest: Instance?, busiest: Instance?
        let oldest = forWaiters ? (g.waiters.first?.since ?? now) : now
        var olderElsewhere = 0
        var roomComing = g.instances.values.contains { $0.stopping }
        for (other, group) in groups where other != key {
            total += group.instances.count
            let turn = max(fairnessSeconds, group.lastStartSeconds ?? 0)
            for i in group.instances.values {
                if i.stopping { roomComing = true }
                guard i.ready && !i.stopping && !i.checking else { continue }
                if i.inFlight == 0 {
                    if idlest.map({ i.lastUsed < $0.lastUsed }) ?? true { idlest = i }
                } else if now - i.readyAt >= turn, busiest.map({ i.lastUsed < $0.lastUsed }) ?? true {
                    busiest = i
                }
            }
            // Another group whose callers wait longer and that would start an instance for them
            // given room (none starting, under its own limit, no restart pending).
            if let since = group.waiters.first?.since, since < oldest || !forWaiters, let d = definitions[other.service],
               !group.instances.values.contains(where: { !$0.stopping && !$0.ready }),
               group.instances.values.filter({ !$0.stopping }).count < d.settings.maxInstances, now >= group.nextStartAt,
               Self.pick(group, concurrency: d.settings.concurrency) == nil {
                olderElsewhere += 1
            }
        }
        if total + olderElsewhere < maxTotalInstances { return true }
        if total < maxTotalInstances || !forWaiters || roomComing { return false }
        // Nothing is stopped for waiters that could not use the room: too little of their
        // deadline left for a start as long as the last one took.
        let timeLeft = (g.waiters.map(\.deadline).max() ?? now) - now
        guard timeLeft > (g.lastStartSeconds ?? fairnessSeconds) else { return false }
        if let victim = idlest ?? (now - oldest >= fairnessSeconds ? busiest : nil), let process = victim.process {
            victim.stopping = true
            if victim.inFlight == 0 { later { process.stop() } } else { victim.retiredFor = key }
        }
        return false
    }

    /// On its own thread: spawn, connect, handshake; then admit or fail.
    private func start(_ instance: Instance, key: Key, definition: Definition, deadline: Double) {
        var failure: String?
        var process: SandboxedProcess?
        var client: (any ServiceClient)?
        var handshake: JSON = .null
        do {
            let p = try SandboxedProcess(try definition.spec(key)) { [weak self] result in
                self?.instanceEnded(key: key, id: instance.id, why: "exited: \(result.reason.rawValue)\(result.exitCode.map { " \($0)" } ?? "")")
            }
            process = p
            monitor.locked { instance.process = p }
            let c = try definition.connect(p, key)
            client = c
            handshake = try c.ready(deadline: deadline)
        } catch let error as ServiceError {
            failure = error.message
        } catch {
            failure = "\(error)"
        }
        var tail = ""
        if failure != nil, let p = process {
            p.stop()
            p.wait(until: MonotonicClock.now + 5)
            tail = Self.lastLines(of: p)
        }
        let discard: SandboxedProcess? = locked {
            let now = MonotonicClock.now
            guard var g = groups[key], g.instances[instance.id] != nil else { return nil }
            defer { groups[key] = g; monitor.broadcast() }
            if stopped || instance.stopping {
                // stopAll came while it started (it may not have known the process yet).
                g.instances[instance.id] = nil
                return failure == nil ? process : nil
            }
            // Ended after its handshake but before this: `instanceEnded` skipped it then (not
            // ready), so its end is counted here, or it would hold a slot it never serves.
            if failure == nil, let ended = process?.result {
                failure = "exited: \(ended.reason.rawValue)\(ended.exitCode.map { " \($0)" } ?? "")"
            }
            if let failure {
                g.instances[instance.id] = nil
                noteFailure(&g, key: key, definition: definition, reason: "start failed: \(failure)", stderr: tail, now: now)
                // A second start in a row that failed, and nothing else coming up: those waiting
                // learn why now rather than at their deadline (a fallback may answer them); the
                // next lease starts it again. (After one failure they wait for the restart.)
                if g.consecutiveFailures >= 2 && !g.instances.values.contains(where: { !$0.stopping }) && !g.waiters.isEmpty {
                    let waiters = g.waiters
                    g.waiters = []
                    let message = "\(key.service) did not start: \(PrintableText.of(failure))\(tail.isEmpty ? "" : "; stderr: \(tail)")"
                    later { for w in waiters { w.completion(.failure(ServiceError(message))) } }
                }
                return nil
            }
            instance.client = client
            instance.handshake = handshake
            instance.ready = true
            instance.readyAt = now
            instance.lastHealth = now
            g.lastStartSeconds = now - instance.created
            g.consecutiveFailures = 0
            serveWaiters(&g, key: key, definition: definition, now: now)
            return nil
        }
        discard?.stop()
    }

    /// The last lines the process wrote to stderr, for a failure's reason: one line, with every
    /// control character (escape sequences, carriage returns, a bidi override) shown as `?` —
    /// the text is the server's, and the reason reaches callers and logs.
    static func lastLines(of process: SandboxedProcess) -> String {
        PrintableText.of(process.stderrTail.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).suffix(3).joined(separator: " / "))
    }

    /// `stderr`: the tail of what the instance wrote there, for the log and the reason callers
    /// are refused with while the service is failed, not for `lastFailure`: a shared server's
    /// stderr may carry other users' calls, and `lastFailure` is shown to every user of it.
    private func noteFailure(_ g: inout Group, key: Key, definition: Definition, reason: String, stderr: String = "", now: Double) {
        let at = MonotonicInstant(seconds: now)
        g.consecutiveFailures += 1
        let exhaustion = g.budget.exhaustion(at: at)
        let reason = PrintableText.of(reason)
        let full = stderr.isEmpty ? reason : "\(reason); stderr: \(PrintableText.of(stderr))"
        countFailure(&g, key: key, reason: reason, logged: full, now: now, exhausted: exhaustion != nil)
        if let exhausted = exhaustion {
            let window = definition.settings.restartWindowSeconds
            g.failedUntil = (exhausted.oldest.map { $0.seconds } ?? now) + window
            g.failedReason = "\(exhausted.restarts + 1) failures within \(Int(window.rounded())) s, the last: \(full)"
            let waiters = g.waiters
            g.waiters = []
            let message = "\(key.service) is failing: \(g.failedReason!)"
            later { for w in waiters { w.completion(.failure(ServiceError(message))) } }
            return
        }
        let delay = backoffs[key.service]?.delay(attempt: g.consecutiveFailures - 1, using: &random) ?? .zero
        g.budget.record(at: at)
        g.nextStartAt = now + Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
    }

    /// Counts a failure, keeps its reason and tells `onFailure` the `logged` text. Both are
    /// already printable (`noteFailure` made them so; the other caller passes a literal): the
    /// reason reaches status replies and the log.
    private func countFailure(_ g: inout Group, key: Key, reason: String, logged: String? = nil, now: Double, exhausted: Bool) {
        g.failureCount += 1
        g.lastFailure = (reason, now)
        let told = logged ?? reason
        if let onFailure { later { onFailure(key, told, exhausted) } }
    }

    /// Hands free slots to waiters in order.
    private func serveWaiters(_ g: inout Group, key: Key, definition: Definition, now: Double) {
        var ready: [(Waiter, Lease)] = []
        while let first = g.waiters.first, let instance = Self.pick(g, concurrency: definition.settings.concurrency) {
            g.waiters.removeFirst()
            instance.inFlight += 1
            instance.lastUsed = now
            ready.append((first, Lease(instance, key: key, pool: self)))
        }
        if !ready.isEmpty {
            let handed = ready
            later { for (w, lease) in handed { w.completion(.success(lease)) } }
        }
        scheduleStartIfNeeded(&g, key: key, definition: definition, now: now)
    }

    fileprivate func release(key: Key, instance id: Int, unresponsive: Bool, replace: Bool) {
        let toStop: SandboxedProcess? = locked {
            guard var g = groups[key], let instance = g.instances[id] else { return nil }
            // No broadcast: the maintenance thread waits only for `stopped` (a wake-up per call
            // costs more than the call's own work in the pool).
            defer { groups[key] = g }
            instance.inFlight = max(0, instance.inFlight - 1)
            instance.lastUsed = MonotonicClock.now
            // The service was removed (`define`): nothing to serve, nothing to count.
            guard let definition = definitions[key.service] else { return instance.inFlight == 0 && instance.ready ? instance.process : nil }
            if unresponsive && !instance.stopping {
                instance.stopping = true
                noteFailure(&g, key: key, definition: definition, reason: "a call got no answer in time", now: MonotonicClock.now)
                return instance.process
            }
            if replace && !instance.stopping {
                // Stopped once its last call is done; waiters get another.
                instance.stopping = true
                countFailure(&g, key: key, reason: "replaced: a call kept it busy past its limits", now: MonotonicClock.now, exhausted: false)
                serveWaiters(&g, key: key, definition: definition, now: MonotonicClock.now)
                return instance.inFlight == 0 ? instance.process : nil
            }
            // Retired (`define`) while it served: its last call has ended.
            let retired = instance.stopping && instance.inFlight == 0 && instance.ready ? instance.process : nil
            serveWaiters(&g, key: key, definition: definition, now: MonotonicClock.now)
            return retired
        }
        toStop?.stop()
    }

    /// An instance's sandbox ended (on its thread).
    private func instanceEnded(key: Key, id: Int, why: String) {
        locked {
            guard var g = groups[key], let instance = g.instances[id] else { return }
            defer { groups[key] = g; monitor.broadcast() }
            // One that never became ready is the start's to count and remove.
            guard instance.ready else { return }
            g.instances[id] = nil
            guard let definition = definitions[key.service] else { return }
            let now = MonotonicClock.now
            if !instance.stopping {
                let tail = instance.process.map(Self.lastLines(of:)) ?? ""
                noteFailure(&g, key: key, definition: definition, reason: why, stderr: tail, now: now)
            }
            serveWaiters(&g, key: key, definition: definition, now: now)
        }
    }

    /// The maintenance thread: restarts that came due, waits that expired, health checks, idle
    /// instances stopped, min_instances kept.
    private func maintain() {
        while true {
            var stop: [SandboxedProcess] = []
            var checks: [(Key, Instance, Definition)] = []
            let quit: Bool = locked {
                // A turn every 50 ms: deadlines, idle instances, health checks and starts are
                // seen then; only `stopped` wakes it sooner.
                _ = monitor.wait(until: MonotonicClock.now + 0.05) { stopped }
                if stopped { return true }
                let now = MonotonicClock.now
                // The groups whose callers have waited longest first: room goes to them.
                for key in groups.keys.sorted(by: { (groups[$0]?.waiters.first?.since ?? .infinity) < (groups[$1]?.waiters.first?.since ?? .infinity) }) {
                    guard var g = groups[key], let definition = definitions[key.service] else { continue }
                    let s = definition.settings
                    let expired = g.waiters.filter { $0.deadline <= now }
                    if !expired.isEmpty {
                        g.waiters.removeAll { $0.deadline <= now }
                        let reason = g.failedReason.map { "no instance of \(key.service) became ready in time (\($0))" }
                            ?? "no instance of \(key.service) was free in time"
                        later { for w in expired { w.completion(.failure(ServiceError(reason))) } }
                    }
                    // A busy instance retired for another group whose waiters have all gone (served
                    // elsewhere, expired, left) is let back into service.
                    for i in g.instances.values where i.stopping && i.inFlight > 0 {
                        if let other = i.retiredFor, groups[other]?.waiters.isEmpty ?? true {
                            i.stopping = false
                            i.retiredFor = nil
                        }
                    }
                    for i in g.instances.values where i.ready && !i.stopping {
                        if i.inFlight == 0 && now - i.lastUsed >= s.idleTimeoutSeconds && g.instances.values.filter({ !$0.stopping }).count > s.minInstances {
                            i.stopping = true
                            if let p = i.process { stop.append(p) }
                        } else if !i.checking && now - i.lastHealth >= s.healthIntervalSeconds {
                            i.checking = true
                            checks.append((key, i, definition))
                        }
                    }
                    scheduleStartIfNeeded(&g, key: key, definition: definition, now: now)
                    groups[key] = g
                }
                return false
            }
            if quit { return }
            for p in stop { p.stop() }
            for (key, instance, definition) in checks {
                try? Threads.detach("service-health", signals: .noSIGPIPE) { [self] in
                    let healthy = instance.client?.healthy(deadline: MonotonicClock.now + min(10, definition.settings.healthIntervalSeconds)) ?? false
                    let p: SandboxedProcess? = locked {
                        instance.checking = false
                        instance.lastHealth = MonotonicClock.now
                        // Not one that ended meanwhile: its end was counted (with its reason).
                        guard !healthy, !instance.stopping, groups[key]?.instances[instance.id] === instance else { return nil }
                        instance.stopping = true
                        // Counted as a failure: an instance that stops answering is replaced.
                        if var g = groups[key] {
                            noteFailure(&g, key: key, definition: definition, reason: "failed its health check", now: MonotonicClock.now)
                            groups[key] = g
                        }
                        return instance.process
                    }
                    p?.stop()
                }
            }
        }
    }
}

/// Runs completions on a thread of their own (they may block, or call back into the pool). A
/// short-lived thread per batch: batches are rare (a start, an expiry). Called without the
/// pool's lock (`ServicePool.locked`), so running one here when no thread can be made is safe.
enum DispatchLater {
    static func run(_ body: @escaping @Sendable () -> Void) {
        if (try? Threads.detach("service-complete", signals: .noSIGPIPE, body)) == nil { body() }
    }
}

/// A protocol's client on one instance (MCP over stdio, a local model server's API): the pool
/// asks it whether the instance is ready and whether it still answers.
public protocol ServiceClient: AnyObject, Sendable {
    /// Whether the instance's stream is still open.
    var isOpen: Bool { get }
    /// The protocol's handshake, by `deadline`; what it returns is kept with the instance
    /// (the negotiated revision, the server's name). Throws the reason it is not ready.
    func ready(deadline: Double) throws(ServicePool.ServiceError) -> JSON
    /// A cheap call proving the instance still answers.
    func healthy(deadline: Double) -> Bool
}
