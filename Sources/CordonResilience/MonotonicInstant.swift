/// A reading of the monotonic clock, in whole nanoseconds: the one time type of this module.
///
/// The module never reads a clock. Every decision takes the instant as an argument (`at:`), so
/// a test drives time by hand and the daemon passes `MonotonicInstant(seconds:
/// MonotonicClock.now)` (CordonSystem's CLOCK_MONOTONIC in seconds). Spans are the standard
/// library's `Duration`, converted once to nanoseconds when a setting is made.
///
/// Integer nanoseconds rather than `Double` seconds, so that "a restart falls out of the window
/// exactly W after it happened" and "this event lands in bucket k" are exact, whatever the
/// uptime. Arithmetic saturates at the ends of `Int64` (±292 years) instead of trapping.
public struct MonotonicInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// An instant from `MonotonicClock.now`-style seconds, rounded to the nanosecond;
    /// saturates beyond the range of `Int64` nanoseconds. NaN is a caller's bug and traps.
    public init(seconds: Double) {
        precondition(!seconds.isNaN, "MonotonicInstant(seconds:) given NaN")
        let ns = (seconds * 1e9).rounded()
        if ns >= 9.223372036854775807e18 {
            nanoseconds = .max
        } else if ns <= -9.223372036854775808e18 {
            nanoseconds = .min
        } else {
            nanoseconds = Int64(ns)
        }
    }

    /// The instant in seconds, as `MonotonicClock` counts them (to schedule a timer on it).
    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public var description: String { "\(seconds) s" }

    public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (instant: Self, span: Duration) -> Self {
        Self(nanoseconds: instant.nanoseconds.saturatingAdd(span.saturatingNanoseconds))
    }

    /// The span from `b` to `a` (negative when `a` is earlier).
    public static func - (a: Self, b: Self) -> Duration {
        .nanoseconds(a.nanoseconds.saturatingSubtract(b.nanoseconds))
    }

    func adding(nanoseconds span: Int64) -> Self {
        Self(nanoseconds: nanoseconds.saturatingAdd(span))
    }
}

extension Duration {
    /// The span in whole nanoseconds (attoseconds truncated toward zero), saturated to `Int64`.
    var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return whole.saturatingAdd(attoseconds / 1_000_000_000)
    }
}

extension Int64 {
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other < 0 ? .min : .max) : sum
    }

    func saturatingSubtract(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : difference
    }
}
