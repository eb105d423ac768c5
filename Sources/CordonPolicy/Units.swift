/// Human units used in policies: sizes ("512M", "64k", "1.5G", or a number of bytes) and
/// durations ("30s", "500ms", "2m", "1h", or a number of seconds).
public enum Units {
    public static func parseSize(_ text: String) -> UInt64? {
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
        guard let number = Double(digits.trimmingWhitespace()), number >= 0, number.isFinite else { return nil }
        let bytes = number * multiplier
        guard bytes < 1.8e19 else { return nil }
        return UInt64(bytes.rounded())
    }

    /// The shortest exact spelling `parseSize` reads back: "1G", "512M", "64K" or bytes.
    public static func formatSize(_ bytes: UInt64) -> String {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where bytes >= UInt64(1) << shift && bytes % (UInt64(1) << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }

    /// A duration `parseDuration` reads back: "30s", "1.5s".
    public static func formatDuration(_ seconds: Double) -> String {
        seconds == seconds.rounded() && seconds < 1e15 ? "\(Int64(seconds))s" : "\(seconds)s"
    }

    public static func parseDuration(_ text: String) -> Double? {
        let t = text.trimmingWhitespace()
        let suffixes: [(String, Double)] = [("ms", 0.001), ("us", 0.000001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in suffixes where t.hasSuffix(suffix) {
            guard let n = Double(t.dropLast(suffix.count).trimmingWhitespace()), n >= 0, n.isFinite else { return nil }
            return n * scale
        }
        guard let n = Double(t), n >= 0, n.isFinite else { return nil }
        return n
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
