#if canImport(Glibc)
import Glibc
#endif

/// CVSS v3.x base scores from a vector (`CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`), as the
/// FIRST specification computes them, and the qualitative rating of a score.
public enum CVSS {
    /// The base score (0.0–10.0) of a v3.0 or v3.1 vector; nil when it is not one or lacks a
    /// base metric. (Temporal and environmental metrics are ignored: OSV records carry base vectors.)
    public static func baseScore(_ vector: String) -> Double? {
        let parts = vector.split(separator: "/")
        guard let head = parts.first, head == "CVSS:3.0" || head == "CVSS:3.1" else { return nil }
        var m: [String: String] = [:]
        for part in parts.dropFirst() {
            let kv = part.split(separator: ":", maxSplits: 1)
            guard kv.count == 2 else { return nil }
            m[String(kv[0])] = String(kv[1])
        }
        let changed: Bool
        switch m["S"] {
        case "U"?: changed = false
        case "C"?: changed = true
        default: return nil
        }
        let avs: [String: Double] = ["N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2]
        let acs: [String: Double] = ["L": 0.77, "H": 0.44]
        let prs: [String: Double] = changed ? ["N": 0.85, "L": 0.68, "H": 0.5] : ["N": 0.85, "L": 0.62, "H": 0.27]
        let uis: [String: Double] = ["N": 0.85, "R": 0.62]
        guard let av = avs[m["AV"] ?? ""], let ac = acs[m["AC"] ?? ""], let pr = prs[m["PR"] ?? ""], let ui = uis[m["UI"] ?? ""] else { return nil }
        let cia: [String: Double] = ["H": 0.56, "L": 0.22, "N": 0.0]
        guard let c = cia[m["C"] ?? ""], let i = cia[m["I"] ?? ""], let a = cia[m["A"] ?? ""] else { return nil }
        let iss = 1 - (1 - c) * (1 - i) * (1 - a)
        let impact = changed ? 7.52 * (iss - 0.029) - 3.25 * pow(iss - 0.02, 15) : 6.42 * iss
        let exploitability = 8.22 * av * ac * pr * ui
        guard impact > 0 else { return 0 }
        return roundUp(min((changed ? 1.08 : 1) * (impact + exploitability), 10))
    }

    /// CVSS v3.1's Roundup: the smallest number with one decimal that is at least `x`
    /// (computed on integers so that 4.000000001 is 4.0 and not 4.1).
    static func roundUp(_ x: Double) -> Double {
        let n = Int((x * 100_000).rounded())
        return n % 10_000 == 0 ? Double(n) / 100_000 : Double(n / 10_000 + 1) / 10
    }

    /// none (0.0), low, medium, high, critical, per the CVSS v3 rating scale.
    public static func rating(_ score: Double) -> String {
        switch score {
        case ..<0.1: return "none"
        case ..<4.0: return "low"
        case ..<7.0: return "medium"
        case ..<9.0: return "high"
        default: return "critical"
        }
    }
}
