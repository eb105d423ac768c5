import CordonPolicy

/// What `cordon run` says on stderr after the workload when Cordon refused something or a limit
/// ended the run, one line each: the layer, what, and the policy key that governs it. Without
/// it, a refusal reaches the user only as the program's "Operation not permitted".
///
///     refused: syscall ptrace ×3 (seccomp.profile)
///     refused: connect to evil.example:443 (network.allow: not on the allowlist)
///     ended: memory limit 256 MiB (limits.memory)
///
/// Pure: built from the record and the policy that ran. Landlock refusals are not in the record
/// (the kernel reports them to nobody), so they are not here either.
public enum RunSummary {
    /// - Parameter flagged: policy keys a flag set for this run, and the flag ("limits.memory":
    ///   "--memory"), so a line names what the user typed.
    public static func lines(_ result: SandboxResult, policy: Policy, flagged: [String: String] = [:]) -> [String] {
        func key(_ k: String) -> String { flagged[k] ?? k }
        var out: [String] = []
        let profile = "seccomp.profile"
        for d in result.denied {
            out.append("refused: syscall \(d.syscall)\(times(d.count)) (\(profile))")
        }
        if result.deniedOmitted > 0 { out.append("refused: \(result.deniedOmitted) more syscalls (\(profile))") }
        for d in result.logged {
            out.append("allowed only by seccomp.action = \"log\": syscall \(d.syscall)\(times(d.count)) (\(profile))")
        }
        // Egress refusals, each distinct one once with its count, in order of first appearance.
        var order: [String] = []
        var counts: [String: Int] = [:]
        for record in result.egress ?? [] where record.verdict == .denied {
            let d = Denial(record)
            let what = d.kind == .lookup ? "lookup of \(d.what)" : "connect to \(d.what)"
            let line = "\(what)\u{0}(\(key("network.allow")): \(record.reason))"
            if counts[line] == nil { order.append(line) }
            counts[line, default: 0] += 1
        }
        for line in order {
            let parts = line.split(separator: "\u{0}", maxSplits: 1)
            out.append("refused: \(parts[0])\(times(counts[line] ?? 1)) \(parts[1])")
        }
        if let omitted = result.egressOmitted, omitted > 0 { out.append("egress: \(omitted) more decisions not recorded (network.allow)") }

        let l = policy.limits
        switch result.reason {
        case .timeout:
            out.append("ended: wall-clock limit \(l.wallTimeSeconds.map(Units.formatDuration) ?? "?") (\(key("limits.wall_time")))")
        case .memoryLimit:
            out.append("ended: memory limit \(l.memoryBytes.map(size) ?? "?") (\(key("limits.memory")))")
        case .pidsLimit:
            out.append("ended: process limit \(l.pids.map { "\($0)" } ?? "?") (\(key("limits.pids")))")
        case .outputLimit:
            out.append("ended: output limit \(l.outputBytes.map(size) ?? "?") (\(key("limits.output")))")
        case .cpuLimit:
            out.append("ended: CPU time limit \(l.cpuTimeSeconds.map(Units.formatDuration) ?? "?") (\(key("limits.cpu_time")))")
        case .seccompViolation:
            let first = result.denied.first.map { " \($0.syscall)" } ?? ""
            out.append("ended: killed at the refused syscall\(first) (seccomp.action = \"kill\")")
        case .cancelled:
            out.append("ended: cancelled")
        case .exited, .signaled, .setupFailed:
            break
        }
        return out
    }

    static func times(_ n: Int) -> String { n > 1 ? " ×\(n)" : "" }

    /// "256 MiB", "1.5 GiB", "4096 bytes": a size as a person reads it.
    static func size(_ bytes: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (unit, name) in units where bytes >= unit {
            let value = Double(bytes) / Double(unit)
            let text = value == value.rounded() ? "\(Int(value))" : String(format1(value))
            return "\(text) \(name)"
        }
        return "\(bytes) bytes"
    }

    /// One decimal, without Foundation.
    static func format1(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
