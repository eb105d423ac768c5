/// Human units used in policies: sizes ("512M", "64k", "1.5G", or a number of bytes) and
/// durations ("30s", "500ms", "2m", "1h", "7d", or a number of seconds).
public enum Units {
    public static func parseSize(_ text: String) -> UInt64? {
        sizeValue(text).flatMap { UInt64(exactly: $0.rounded()) }
    }

    /// The number of bytes `text` spells, before rounding to a whole byte or any bound: what the
    /// parser compares with a key's range.
    static func sizeValue(_ text: String) -> Double? {
        let t = text.trimmingWhitespace()
        guard !t.isEmpty else { return nil }
        var digits = Substring(t)
        var multiplier: Double = 1
        let k = 1024.0, m = k * k, g = m * k, tb = g * k
        let suffixes: [(String, Double)] = [
            ("KiB", k), ("MiB", m), ("GiB", g), ("TiB", tb), ("KB", k), ("MB", m), ("GB", g), ("TB", tb),
            ("K", k), ("M", m), ("G", g), ("T", tb), ("k", k), ("m", m), ("g", g), ("t", tb), ("B", 1),
        ]
        for (suffix, value) in suffixes where t.hasSuffix(suffix) {
            digits = t.dropLast(suffix.count)
            multiplier = value
            break
        }
        guard let number = decimal(digits.trimmingWhitespace()) else { return nil }
        let bytes = number * multiplier
        return bytes.isFinite ? bytes : nil
    }

    /// The shortest exact spelling `parseSize` reads back: "1G", "512M", "64K" or bytes.
    public static func formatSize(_ bytes: UInt64) -> String {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where bytes >= UInt64(1) << shift && bytes % (UInt64(1) << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }

    /// A duration `parseDuration` reads back, to the microsecond: "7d" (whole days), "30s",
    /// "1500ms", "10us".
    /// Total: a value no unit spells (not finite, or beyond 2^63 microseconds) prints in Swift's
    /// notation ("inf", "1e+300s"), for a message; the parser never produces one.
    public static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "\(seconds)" }
        guard let micros = Int64(exactly: (seconds * 1e6).rounded()) else { return "\(seconds)s" }
        if micros != 0 && micros % 86_400_000_000 == 0 { return "\(micros / 86_400_000_000)d" }
        if micros % 1_000_000 == 0 { return "\(micros / 1_000_000)s" }
        if micros % 1000 == 0 { return "\(micros / 1000)ms" }
        return "\(micros)us"
    }

    /// A finite number of seconds, or nil.
    public static func parseDuration(_ text: String) -> Double? {
        let t = text.trimmingWhitespace()
        // (multiplier, divisor): dividing keeps "10us" exactly 10 / 1e6.
        let suffixes: [(String, Double, Double)] = [("ms", 1, 1e3), ("us", 1, 1e6), ("s", 1, 1), ("m", 60, 1), ("h", 3600, 1), ("d", 86400, 1)]
        for (suffix, multiplier, divisor) in suffixes where t.hasSuffix(suffix) {
            guard let n = decimal(t.dropLast(suffix.count).trimmingWhitespace()) else { return nil }
            let seconds = n * multiplier / divisor
            return seconds.isFinite ? seconds : nil
        }
        return decimal(t)
    }

    /// Plain decimal notation only ("12", "1.5"): no sign, exponent, hex, "inf" or "nan", which
    /// `Double(String)` would take and the JSON Schema's patterns do not.
    static func decimal(_ text: String) -> Double? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        }
        return Double(text).flatMap { $0.isFinite ? $0 : nil }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
