import Synchronization

/// Whether a call to one tool (or model) is let through, from the outcomes of the calls before
/// it: closed (calls pass), open (calls are refused until a cooldown ends), half-open (exactly
/// one probe call passes; everyone else is refused as if open).
///
/// The rules, in order:
/// - Closed: each call's outcome goes into a `SlidingWindow`. A failure trips the breaker
///   when the window holds `failureCount` failures, or when it holds at least
///   `failureRatio.minimumCalls` calls of which at least `failureRatio.ratio` failed (either
///   rule, whichever are configured). Tripping opens it for the current cooldown. A success
///   resets the current cooldown to the base.
/// - Open: refused, with the instant it ends (`reopensAt`). From then on it is half-open.
/// - Half-open: the first `acquire` gets the probe ticket; while the probe is out, everyone is
///   refused. Probe success: closed, window emptied (the current cooldown stays until a call
///   succeeds in the closed state, so a service that flaps keeps its longer cooldown). Probe
///   failure: open again for twice the cooldown, capped at `maxCooldown`. A probe not reported
///   within `probeTimeout` counts as failed at its deadline, so a caller that lost its ticket
///   cannot wedge the breaker half-open.
///
/// Tickets: every admitted call gets one and reports it once (`Ticket` is non-copyable and
/// `record` consumes it). A ticket is good only for the state it was issued in: every change
/// of state starts a new generation, and a ticket of an older one is `stale` and changes
/// nothing. So a slow call admitted before the breaker opened cannot reopen or close it later,
/// and a late probe cannot close a breaker that already gave up on it. A ticket of another
/// breaker is a caller's bug and traps.
///
/// A final class guarding its state with a `Mutex`, not a struct its caller owns: the breaker is
/// shared by every daemon thread calling the tool, and "exactly one probe" holds only if
/// checking for an outstanding probe and handing it out is one atomic step; leaving the lock to
/// each caller would leave that guarantee to each caller. Nobody sleeps on it (no condition
/// variable), and every operation is O(buckets) under the lock.
public final class CircuitBreaker: Sendable {
    public enum State: Int, Sendable {
        case closed = 0
        case open = 1
        case halfOpen = 2
    }

    /// The right to make one call and the duty to report how it ended, once.
    public struct Ticket: ~Copyable, Sendable {
        let breaker: UInt64
        let generation: UInt64
        /// Whether this is the half-open state's probe: its outcome closes or reopens the breaker.
        public let isProbe: Bool
    }

    public enum Admission: ~Copyable, Sendable {
        case allowed(Ticket)
        /// Not now; `reopensAt` is the earliest instant worth asking again (the end of the
        /// cooldown, or the probe's deadline). The call may be refused again then.
        case refused(reopensAt: MonotonicInstant)
    }

    public enum Recorded: Sendable, Equatable {
        /// The outcome was counted (and may have changed the state).
        case counted
        /// The ticket was from before a change of state: nothing changed.
        case stale
    }

    public let configuration: Configuration
    private let identity: UInt64
    private let core: Mutex<Core>

    private static let identities = Atomic<UInt64>(0)

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        identity = Self.identities.add(1, ordering: .relaxed).newValue
        core = Mutex(Core(configuration))
    }

    /// Asks to make a call at `now`.
    public func acquire(at now: MonotonicInstant) -> Admission {
        let grant = core.withLock { $0.acquire(at: now) }
        switch grant {
        case .allowed(let generation, let isProbe):
            return .allowed(Ticket(breaker: identity, generation: generation, isProbe: isProbe))
        case .refused(let reopensAt):
            return .refused(reopensAt: reopensAt)
        }
    }

    /// Reports how the call of `ticket` ended, at `now`.
    @discardableResult
    public func record(_ ticket: consuming Ticket, outcome: CallOutcome, at now: MonotonicInstant) -> Recorded {
        precondition(ticket.breaker == identity, "CircuitBreaker: a ticket of another breaker was reported")
        let generation = ticket.generation
        return core.withLock { $0.record(generation: generation, outcome: outcome, at: now) }
    }

    /// The state at `now`, for metrics (`rawValue`: 0 closed, 1 open, 2 half-open). An open
    /// breaker whose cooldown has ended reads half-open even before anyone asks to call.
    public func state(at now: MonotonicInstant) -> State {
        core.withLock { core in
            core.advance(to: now)
            return core.state
        }
    }

    /// When to trip and how long to stay open. Validated when made, so a breaker cannot hold an
    /// invalid one.
    public struct Configuration: Sendable, Equatable {
        public struct FailureRatio: Sendable, Equatable {
            /// In (0, 1]: trip when at least this share of the window's calls failed...
            public let ratio: Double
            /// ...and the window holds at least this many calls (≥ 1), so that one failure out
            /// of one call does not trip a 50 % rule.
            public let minimumCalls: Int

            public init(_ ratio: Double, minimumCalls: Int) {
                self.ratio = ratio
                self.minimumCalls = minimumCalls
            }
        }

        /// Trip when the window holds this many failures (≥ 1); nil: no count rule.
        public let failureCount: Int?
        /// Trip on a share of failed calls; nil: no ratio rule. At least one rule is required.
        public let failureRatio: FailureRatio?
        /// The rolling window both rules count over, and its granularity (`SlidingWindow`).
        public let window: Duration
        public let buckets: Int
        /// How long the first trip stays open (> 0).
        public let cooldown: Duration
        /// The most a doubled cooldown reaches (≥ `cooldown`); default 32 × `cooldown`.
        public let maxCooldown: Duration
        /// How long a probe may stay out before it counts as failed (> 0): longer than the
        /// longest call the service allows. Default 60 s.
        public let probeTimeout: Duration

        let cooldownNanoseconds: Int64
        let maxCooldownNanoseconds: Int64

        public init(failureCount: Int? = nil, failureRatio: FailureRatio? = nil, window: Duration, buckets: Int = 10,
                    cooldown: Duration, maxCooldown: Duration? = nil,
                    probeTimeout: Duration = .seconds(60)) throws(ResilienceError) {
            guard failureCount != nil || failureRatio != nil else {
                throw .invalid("circuitBreaker.failureCount", "circuit breaker: neither a failure count nor a failure ratio is set")
            }
            if let failureCount, failureCount < 1 {
                throw .invalid("circuitBreaker.failureCount", "circuit breaker: failure count \(failureCount) is below 1")
            }
            if let failureRatio {
                guard failureRatio.ratio > 0, failureRatio.ratio <= 1 else {
                    throw .invalid("circuitBreaker.failureRatio", "circuit breaker: failure ratio \(failureRatio.ratio) is not in (0, 1]")
                }
                guard failureRatio.minimumCalls >= 1 else {
                    throw .invalid("circuitBreaker.minimumCalls", "circuit breaker: minimum calls \(failureRatio.minimumCalls) is below 1")
                }
            }
            _ = try SlidingWindow.bucketWidth(window: window, buckets: buckets, setting: "circuitBreaker", name: "circuit breaker")
            let maxCooldown = maxCooldown ?? cooldown * 32
            cooldownNanoseconds = cooldown.saturatingNanoseconds
            maxCooldownNanoseconds = maxCooldown.saturatingNanoseconds
            guard cooldownNanoseconds > 0 else {
                throw .invalid("circuitBreaker.cooldown", "circuit breaker: cooldown \(cooldown) is not positive (at least 1 ns)")
            }
            guard maxCooldownNanoseconds >= cooldownNanoseconds else {
                throw .invalid("circuitBreaker.maxCooldown", "circuit breaker: maximum cooldown \(maxCooldown) is below the cooldown \(cooldown)")
            }
            guard probeTimeout.saturatingNanoseconds > 0 else {
                throw .invalid("circuitBreaker.probeTimeout", "circuit breaker: probe timeout \(probeTimeout) is not positive (at least 1 ns)")
            }
            self.failureCount = failureCount
            self.failureRatio = failureRatio
            self.window = window
            self.buckets = buckets
            self.cooldown = cooldown
            self.maxCooldown = maxCooldown
            self.probeTimeout = probeTimeout
        }

        func trips(_ tally: SlidingWindow.Tally) -> Bool {
            if let failureCount, tally.failures >= failureCount { return true }
            if let failureRatio, tally.calls >= failureRatio.minimumCalls,
               Double(tally.failures) / Double(tally.calls) >= failureRatio.ratio {
                return true
            }
            return false
        }
    }
}

/// The breaker's rules as a value; `CircuitBreaker` holds it under its lock.
private struct Core: Sendable {
    enum Phase: Sendable, Equatable {
        case closed
        case open(until: MonotonicInstant)
        /// `probeDeadline`: nil until the probe is handed out.
        case halfOpen(probeDeadline: MonotonicInstant?)
    }

    enum Grant {
        case allowed(generation: UInt64, isProbe: Bool)
        case refused(reopensAt: MonotonicInstant)
    }

    let configuration: CircuitBreaker.Configuration
    var phase = Phase.closed
    /// Advances on every change of phase; tickets of older generations are stale.
    var generation: UInt64 = 0
    var window: SlidingWindow
    /// The cooldown of the next opening: the base, doubled by each failed probe.
    var cooldown: Int64

    init(_ configuration: CircuitBreaker.Configuration) {
        self.configuration = configuration
        // Validated by the configuration's initializer.
        window = try! SlidingWindow(window: configuration.window, buckets: configuration.buckets)
        cooldown = configuration.cooldownNanoseconds
    }

    var state: CircuitBreaker.State {
        switch phase {
        case .closed: .closed
        case .open: .open
        case .halfOpen: .halfOpen
        }
    }

    /// The changes time alone makes: a cooldown ends, a probe's deadline passes.
    mutating func advance(to now: MonotonicInstant) {
        while true {
            switch phase {
            case .open(let until) where now >= until:
                enter(.halfOpen(probeDeadline: nil))
            case .halfOpen(let deadline?) where now >= deadline:
                probeFailed(at: deadline)
            default:
                return
            }
        }
    }

    mutating func acquire(at now: MonotonicInstant) -> Grant {
        advance(to: now)
        switch phase {
        case .closed:
            return .allowed(generation: generation, isProbe: false)
        case .open(let until):
            return .refused(reopensAt: until)
        case .halfOpen(let deadline?):
            return .refused(reopensAt: deadline)
        case .halfOpen(nil):
            // Same generation: the probe's outcome is what ends this half-open state.
            phase = .halfOpen(probeDeadline: now + configuration.probeTimeout)
            return .allowed(generation: generation, isProbe: true)
        }
    }

    mutating func record(generation ticket: UInt64, outcome: CallOutcome, at now: MonotonicInstant) -> CircuitBreaker.Recorded {
        advance(to: now)
        guard ticket == generation else { return .stale }
        switch (phase, outcome) {
        case (.closed, .success):
            window.record(.success, at: now)
            cooldown = configuration.cooldownNanoseconds
        case (.closed, .failure):
            window.record(.failure, at: now)
            if configuration.trips(window.tally(at: now)) {
                enter(.open(until: now.adding(nanoseconds: cooldown)))
            }
        case (.halfOpen, .success):
            window.removeAll()
            enter(.closed)
        case (.halfOpen, .failure):
            probeFailed(at: now)
        case (.open, _):
            // An open generation issues no tickets.
            preconditionFailure("CircuitBreaker: a ticket of an open generation")
        }
        return .counted
    }

    private mutating func probeFailed(at instant: MonotonicInstant) {
        cooldown = min(cooldown.saturatingAdd(cooldown), configuration.maxCooldownNanoseconds)
        enter(.open(until: instant.adding(nanoseconds: cooldown)))
    }

    private mutating func enter(_ next: Phase) {
        phase = next
        generation &+= 1
    }
}
