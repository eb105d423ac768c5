/// At most `maxRestarts` restarts of one service within any `window`: past that the service is
/// crash-looping, and the supervisor marks it failed (with `exhaustion(at:)` as the reason)
/// instead of restarting it again.
///
/// The window slides and is half-open: a restart recorded at t counts at every instant in
/// `[t, t + window)` and no longer at `t + window`. Only the last `maxRestarts` restarts can
/// decide anything, so only they are kept: memory is bounded by the budget, not by the uptime.
///
/// The supervisor's loop, once a service has died:
///
///     if let reason = budget.exhaustion(at: now) {
///         markFailed(reason.description)
///     } else {
///         let delay = backoff.delay(attempt: budget.count(at: now), using: &random)
///         budget.record(at: now)
///         restart(after: delay)
///     }
///
/// A value the caller owns and guards: it lives in the state of the service it counts.
public struct RestartBudget: Sendable, Equatable {
    public let maxRestarts: Int
    public let window: Duration
    private let windowNanoseconds: Int64
    /// The last `maxRestarts` restarts, a ring: `newest` is the index written last.
    private(set) var restarts: [MonotonicInstant] = []
    private var newest = -1

    /// `maxRestarts` ≥ 0 (0: never restart), `window` > 0.
    public init(maxRestarts: Int, within window: Duration) throws(ResilienceError) {
        guard maxRestarts >= 0 else {
            throw .invalid("restartBudget.maxRestarts", "restart budget: \(maxRestarts) restarts is negative")
        }
        let windowNanoseconds = window.saturatingNanoseconds
        guard windowNanoseconds > 0 else {
            throw .invalid("restartBudget.window", "restart budget: window \(window) is not positive (at least 1 ns)")
        }
        self.maxRestarts = maxRestarts
        self.window = window
        self.windowNanoseconds = windowNanoseconds
    }

    /// Records a restart made at `now`. Instants are expected not to go backwards; one that
    /// does (two threads' clock readings) still counts, possibly for longer than its window.
    public mutating func record(at now: MonotonicInstant) {
        guard maxRestarts > 0 else { return }
        newest = (newest + 1) % maxRestarts
        if restarts.count < maxRestarts {
            restarts.append(now)
        } else {
            restarts[newest] = now
        }
    }

    /// Restarts within the window that ends at `now` (at most `maxRestarts`).
    public func count(at now: MonotonicInstant) -> Int {
        restarts.count { counts($0, at: now) }
    }

    /// Whether another restart at `now` would exceed the budget.
    public func exhausted(at now: MonotonicInstant) -> Bool {
        count(at: now) >= maxRestarts
    }

    /// Why another restart at `now` would exceed the budget; nil while it would not.
    public func exhaustion(at now: MonotonicInstant) -> Exhaustion? {
        let counted = restarts.filter { counts($0, at: now) }
        guard counted.count >= maxRestarts else { return nil }
        return Exhaustion(restarts: counted.count, window: window, oldest: counted.min())
    }

    private func counts(_ restart: MonotonicInstant, at now: MonotonicInstant) -> Bool {
        now.nanoseconds.saturatingSubtract(restart.nanoseconds) < windowNanoseconds
    }

    /// The reason a service is marked failed.
    public struct Exhaustion: Sendable, Equatable, CustomStringConvertible {
        /// Restarts within the window (the budget's `maxRestarts`).
        public var restarts: Int
        public var window: Duration
        /// The oldest of them: the budget frees a restart at `oldest + window`. Nil when the
        /// budget allows no restart at all.
        public var oldest: MonotonicInstant?

        public var description: String {
            restarts == 0
                ? "restarting is not allowed (a restart budget of 0)"
                : "restarted \(restarts) time\(restarts == 1 ? "" : "s") within \(window), the most its restart budget allows"
        }
    }
}
