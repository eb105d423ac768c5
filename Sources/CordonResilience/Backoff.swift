/// How long to wait before restarting a service: exponential growth with full jitter.
///
/// Attempt n (0 for the first restart) waits a uniform draw from `0...ceiling(n)`, where
/// `ceiling(n) = min(cap, base · factorⁿ)`. Full jitter rather than a fixed delay, so that
/// services that crashed together (a shared dependency went away) do not restart in lockstep
/// and crash it again together. Attempts whose ceiling would overflow saturate at `cap`, up to
/// `Int.max`.
///
/// A value type with no state: the caller keeps the attempt count (`RestartBudget.count(at:)`
/// is one) and the random source.
public struct Backoff: Sendable, Equatable {
    public let base: Duration
    public let factor: Double
    public let cap: Duration
    private let baseNanoseconds: Int64
    private let capNanoseconds: Int64

    /// `base` > 0, `cap` ≥ `base`, `factor` finite and ≥ 1 (1: a constant ceiling of `base`).
    public init(base: Duration, factor: Double = 2, cap: Duration) throws(ResilienceError) {
        let baseNanoseconds = base.saturatingNanoseconds
        let capNanoseconds = cap.saturatingNanoseconds
        guard baseNanoseconds > 0 else {
            throw .invalid("backoff.base", "backoff: base \(base) is not positive (at least 1 ns)")
        }
        guard capNanoseconds >= baseNanoseconds else {
            throw .invalid("backoff.cap", "backoff: cap \(cap) is below the base \(base)")
        }
        guard factor.isFinite, factor >= 1 else {
            throw .invalid("backoff.factor", "backoff: factor \(factor) is not a finite number of at least 1")
        }
        self.base = base
        self.factor = factor
        self.cap = cap
        self.baseNanoseconds = baseNanoseconds
        self.capNanoseconds = capNanoseconds
    }

    /// The delay before restart `attempt` (0 for the first): uniform in `0...ceiling(attempt:)`,
    /// to the nanosecond. A negative attempt is a caller's bug and traps.
    public func delay<R: RandomNumberGenerator>(attempt: Int, using random: inout R) -> Duration {
        .nanoseconds(Int64(uniform(through: UInt64(ceilingNanoseconds(attempt: attempt)), using: &random)))
    }

    /// The largest delay `attempt` can draw: `min(cap, base · factor^attempt)`.
    public func ceiling(attempt: Int) -> Duration {
        .nanoseconds(ceilingNanoseconds(attempt: attempt))
    }

    private func ceilingNanoseconds(attempt: Int) -> Int64 {
        precondition(attempt >= 0, "Backoff: attempt \(attempt) is negative")
        // factor^attempt by squaring, stopping as soon as base · growth reaches the cap: every
        // later factor is ≥ 1, so it can only grow. Growth stays ≥ 1 and finite or +∞, never
        // NaN, so the comparison below is meaningful at any attempt.
        let limit = Double(capNanoseconds) / Double(baseNanoseconds)
        var growth = 1.0
        var square = factor
        var exponent = attempt
        while exponent > 0, growth < limit {
            if exponent & 1 == 1 { growth *= square }
            square *= square
            exponent >>= 1
        }
        if growth >= limit { return capNanoseconds }
        let raw = Double(baseNanoseconds) * growth
        // Compared as Double: Double(capNanoseconds) may round up past Int64.max, and every
        // value below it converts without trapping.
        guard raw < Double(capNanoseconds) else { return capNanoseconds }
        return min(capNanoseconds, Int64(raw))
    }
}
