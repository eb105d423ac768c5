#if canImport(Glibc)
import Glibc
#endif

public enum UTCTime {
    /// The current time as RFC 3339 in UTC, to the second ("2026-11-21T07:26:59Z").
    public static func now() -> String {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// Seconds since the epoch (wall clock), for records.
    public static func epochSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// RFC 3339 in UTC, to the millisecond, of `seconds` since the epoch.
    public static func format(_ seconds: Double) -> String {
        var t = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ n: Int32, _ width: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, width - s.count)) + s }
        let ms = Int32(((seconds - seconds.rounded(.down)) * 1000).rounded(.down))
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(ms, 3))Z"
    }

}

/// CLOCK_MONOTONIC in seconds: for durations, deadlines and timeouts (never for records, which
/// take `UTCTime`). The one monotonic clock of the project.
public enum MonotonicClock {
    public static var now: Double {
        var ts = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Seconds since `start` (a value of `now`).
    public static func since(_ start: Double) -> Double { now - start }

    /// The monotonic clock's reading `seconds` from now, as the timespec pthread_cond_timedwait
    /// and ppoll-style calls take.
    public static func deadline(adding seconds: Double) -> Glibc.timespec {
        var ts = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let whole = max(0, seconds).rounded(.down)
        var sec = ts.tv_sec + Int(whole)
        var nsec = ts.tv_nsec + Int((max(0, seconds) - whole) * 1e9)
        if nsec >= 1_000_000_000 { sec += 1; nsec -= 1_000_000_000 }
        ts.tv_sec = sec
        ts.tv_nsec = nsec
        return ts
    }
}
