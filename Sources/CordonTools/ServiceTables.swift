import CordonPolicy
import CordonResilience

/// The `[service]` and `[breaker]` tables, read the same way wherever a long-lived service is
/// configured: a tool manifest, the model catalogue (its local servers and its breakers).
extension ConfigReader {
    /// `[service]` (or the table at `path`) into `s`.
    public mutating func readService(_ t: TOMLTable, into s: inout ServiceSettings, at path: String = "service") {
        if let n = integer(t, path, "min_instances", range: 0...64) { s.minInstances = Int(n) }
        if let n = integer(t, path, "max_instances", range: 1...256) { s.maxInstances = Int(n) }
        if let n = integer(t, path, "concurrency", range: 1...256) { s.concurrency = Int(n) }
        if let n = integer(t, path, "max_restarts", range: 0...1000) { s.maxRestarts = Int(n) }
        if s.minInstances > s.maxInstances {
            error("\(path).min_instances", line(t, "min_instances"), "min_instances (\(s.minInstances)) is more than max_instances (\(s.maxInstances))")
        }
        positive(t, path, "idle_timeout", &s.idleTimeoutSeconds)
        positive(t, path, "health_interval", &s.healthIntervalSeconds)
        positive(t, path, "start_timeout", &s.startTimeoutSeconds)
        positive(t, path, "restart_window", &s.restartWindowSeconds)
        positive(t, path, "backoff", &s.backoffBaseSeconds)
        positive(t, path, "backoff_max", &s.backoffMaxSeconds)
        if s.backoffBaseSeconds > s.backoffMaxSeconds {
            error("\(path).backoff", line(t, "backoff"), "backoff (\(Units.formatDuration(s.backoffBaseSeconds))) is more than backoff_max (\(Units.formatDuration(s.backoffMaxSeconds)))")
        }
    }

    /// `[breaker]` (or the table at `path`) into `b`.
    public mutating func readBreaker(_ t: TOMLTable, into b: inout BreakerSettings, at path: String = "breaker") {
        if let n = integer(t, path, "failures", range: 1...10_000) { b.failures = Int(n) }
        if let n = integer(t, path, "min_calls", range: 1...10_000) { b.minCalls = Int(n) }
        if let v = t["failure_ratio"] {
            let ratio: Double?
            switch v.kind {
            case .float(let f): ratio = f
            case .integer(let n): ratio = Double(n)
            default: ratio = nil
            }
            if let ratio, ratio > 0, ratio <= 1 { b.failureRatio = ratio }
            else { error("\(path).failure_ratio", v.location.line, "expected a ratio above 0 and at most 1, found \(describe(v))") }
        }
        positive(t, path, "window", &b.windowSeconds)
        positive(t, path, "cooldown", &b.cooldownSeconds)
        positive(t, path, "max_cooldown", &b.maxCooldownSeconds)
        if b.cooldownSeconds > b.maxCooldownSeconds {
            error("\(path).cooldown", line(t, "cooldown"), "cooldown (\(Units.formatDuration(b.cooldownSeconds))) is more than max_cooldown (\(Units.formatDuration(b.maxCooldownSeconds)))")
        }
    }

    /// A duration key that must be more than zero, into `value` when present and valid.
    public mutating func positive(_ t: TOMLTable, _ table: String, _ key: String, _ value: inout Double) {
        guard let seconds = duration(t, table, key) else { return }
        if seconds <= 0 { error("\(table).\(key)", line(t, key), "must be more than 0") } else { value = seconds }
    }

    /// A boolean key, or nil (absent, or an error recorded).
    public mutating func boolean(_ t: TOMLTable, _ table: String, _ key: String) -> Bool? {
        guard let v = t[key] else { return nil }
        if case .boolean(let b) = v.kind { return b }
        error("\(table).\(key)", v.location.line, "expected true or false, found \(describe(v))")
        return nil
    }
}
