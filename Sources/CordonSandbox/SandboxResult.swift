/// Why a sandbox ended. Always reported.
public enum TerminationReason: String, Codable, Sendable {
    case exited
    case signaled
    case timeout
    case memoryLimit = "memory-limit"
    case pidsLimit = "pids-limit"
    case outputLimit = "output-limit"
    case cpuLimit = "cpu-limit"
    case cancelled
    /// A call the seccomp profile refuses, under `seccomp.action = "kill"`.
    case seccompViolation = "seccomp-violation"
    case setupFailed = "setup-failed"
}

/// A syscall the sandbox's seccomp filter refused (reported through user notification), or —
/// under `seccomp.action = "log"` — would have refused and let run (`errno` 0).
public struct DeniedOperation: Codable, Sendable, Equatable {
    public var kind: String = "syscall"
    public var syscall: String
    public var number: Int32
    public var count: Int
    /// Arguments of the first refused call, in hex.
    public var firstArgs: [String]
    public var errno: Int32
}

public struct SetupFailure: Codable, Sendable, Equatable, CustomStringConvertible {
    public var step: String
    public var errno: Int32
    public var message: String
    public var description: String { message }
}

/// The layers a sandbox actually ran with (so a report says what held, not what was asked).
public struct AppliedLayers: Codable, Sendable, Equatable {
    public var namespaces: [String]
    public var hostUIDRange: String
    public var uid: UInt32
    public var seccomp: String
    public var seccompInstructions: Int
    public var landlockABI: Int
    public var cgroup: String
    public var capabilitiesKept: [String]
}

/// The record `cordon run --json` prints and the daemon will store.
public struct SandboxResult: Codable, Sendable {
    public var reason: TerminationReason
    public var exitCode: Int32?
    public var signal: Int32?
    public var signalName: String?
    public var setupFailure: SetupFailure?
    public var wallTimeSeconds: Double
    public var cpuUserSeconds: Double?
    public var cpuSystemSeconds: Double?
    public var peakMemoryBytes: UInt64?
    public var stdoutBytes: UInt64
    public var stderrBytes: UInt64
    public var denied: [DeniedOperation]
    /// Refused calls not itemised in `denied` (past its first 64 distinct syscalls).
    public var deniedOmitted: Int = 0
    /// Under `seccomp.action = "log"`: the calls the profile refuses, which ran.
    public var logged: [DeniedOperation] = []
    /// Under `network.mode = "allowlist"`: every DNS answer and connection decision (at most
    /// 512; the rest counted in `egressOmitted`).
    public var egress: [EgressRecord]?
    public var egressOmitted: Int?
    public var policy: String
    public var policyHash: String
    public var layers: AppliedLayers?

    /// The record of a sandbox that could not be set up (the workload never ran).
    public static func setupFailed(step: String, errno: Int32, message: String, policy: String, policyHash: String) -> SandboxResult {
        SandboxResult(reason: .setupFailed, exitCode: nil, signal: nil, signalName: nil,
                      setupFailure: SetupFailure(step: step, errno: errno, message: message), wallTimeSeconds: 0,
                      cpuUserSeconds: nil, cpuSystemSeconds: nil, peakMemoryBytes: nil, stdoutBytes: 0, stderrBytes: 0,
                      denied: [], policy: policy, policyHash: policyHash, layers: nil)
    }

    /// The status a shell would see: the command's exit code, 128+N for signal N, 125 for a
    /// failed setup (126/127 when the command cannot be executed or found).
    public var exitStatus: Int32 {
        if let setupFailure {
            if setupFailure.step == "execve" { return setupFailure.errno == 2 ? 127 : 126 }
            return 125
        }
        if let signal { return 128 + signal }
        return exitCode ?? 125
    }
}
