// The record of one sandbox run: why it ended, its exit status, what it used, what it was refused
// and which layers held — what `cordon run --json` prints and cordond stores (`StoredResult`).
// Termination.swift decides the verdict; this file only carries it.

import CordonSystem

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

public struct SetupFailure: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public var step: SetupStep
    public var errno: Int32
    public var message: String
    public var description: String { message }

    public init(step: SetupStep, errno: Int32, message: String) {
        self.step = step
        self.errno = errno
        self.message = message
    }
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

/// The record `cordon run --json` prints and cordond stores (there with `exitStatus`, see
/// `StoredResult`).
public struct SandboxResult: Codable, Sendable {
    public var reason: TerminationReason
    public var exitCode: Int32?
    public var signal: Int32?
    public var signalName: String?
    public var setupFailure: SetupFailure?
    /// The status a shell would see, decided with the reason (`Termination`): the command's exit
    /// code, 128+N for signal N, 125 for a failed setup (126/127 when the command cannot be
    /// executed or is not found). Not a member of `cordon run --json`'s record, which is unchanged.
    public internal(set) var exitStatus: Int32
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
    /// The last byte of output the caller's stdout received (nil: none): `cordon run --json`
    /// starts its record on a line of its own. Not a member of the record.
    public var stdoutLastByte: UInt8? = nil

    enum CodingKeys: String, CodingKey {
        case reason, exitCode, signal, signalName, setupFailure, wallTimeSeconds, cpuUserSeconds, cpuSystemSeconds
        case peakMemoryBytes, stdoutBytes, stderrBytes, denied, deniedOmitted, logged, egress, egressOmitted
        case policy, policyHash, layers
    }

    /// The record of a sandbox that could not be set up (the workload never ran).
    public static func setupFailed(step: SetupStep, errno: Int32, message: String, policy: String, policyHash: String) -> SandboxResult {
        SandboxResult(Termination.notStarted(SetupFailure(step: step, errno: errno, message: message)),
                      policy: policy, policyHash: policyHash)
    }
}

extension SandboxResult {
    /// A record of `outcome` with nothing measured yet.
    init(_ outcome: Termination.Outcome, policy: String, policyHash: String, wallTimeSeconds: Double = 0) {
        self.init(reason: outcome.reason, exitCode: outcome.exitCode, signal: outcome.signal,
                  signalName: outcome.signal.map(CordonSystem.signalName), setupFailure: outcome.setupFailure,
                  exitStatus: outcome.exitStatus, wallTimeSeconds: wallTimeSeconds, cpuUserSeconds: nil,
                  cpuSystemSeconds: nil, peakMemoryBytes: nil, stdoutBytes: 0, stderrBytes: 0, denied: [],
                  policy: policy, policyHash: policyHash, layers: nil)
    }

    /// Reads a record; one without `exitStatus` (`cordon run --json`'s, or cordond's before it
    /// stored the status) gets it derived from the other members, as it was before.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reason = try c.decode(TerminationReason.self, forKey: .reason)
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode)
        signal = try c.decodeIfPresent(Int32.self, forKey: .signal)
        signalName = try c.decodeIfPresent(String.self, forKey: .signalName)
        setupFailure = try c.decodeIfPresent(SetupFailure.self, forKey: .setupFailure)
        wallTimeSeconds = try c.decode(Double.self, forKey: .wallTimeSeconds)
        cpuUserSeconds = try c.decodeIfPresent(Double.self, forKey: .cpuUserSeconds)
        cpuSystemSeconds = try c.decodeIfPresent(Double.self, forKey: .cpuSystemSeconds)
        peakMemoryBytes = try c.decodeIfPresent(UInt64.self, forKey: .peakMemoryBytes)
        stdoutBytes = try c.decode(UInt64.self, forKey: .stdoutBytes)
        stderrBytes = try c.decode(UInt64.self, forKey: .stderrBytes)
        denied = try c.decode([DeniedOperation].self, forKey: .denied)
        deniedOmitted = try c.decode(Int.self, forKey: .deniedOmitted)
        logged = try c.decode([DeniedOperation].self, forKey: .logged)
        egress = try c.decodeIfPresent([EgressRecord].self, forKey: .egress)
        egressOmitted = try c.decodeIfPresent(Int.self, forKey: .egressOmitted)
        policy = try c.decode(String.self, forKey: .policy)
        policyHash = try c.decode(String.self, forKey: .policyHash)
        layers = try c.decodeIfPresent(AppliedLayers.self, forKey: .layers)
        let stored = try decoder.container(keyedBy: StoredResult.Key.self)
        exitStatus = try stored.decodeIfPresent(Int32.self, forKey: .exitStatus)
            ?? Termination.exitStatus(exitCode: exitCode, signal: signal, setupFailure: setupFailure)
    }

    /// The record as cordond stores and serves it.
    public var stored: StoredResult { StoredResult(result: self) }
}

/// A result as cordond stores it and a client reads it: the members of `cordon run --json`'s
/// record plus `exitStatus`, so a client reads the status instead of deriving it.
public struct StoredResult: Encodable, Sendable {
    public var result: SandboxResult
    /// The task ran in a warm sandbox (built before it was submitted).
    public var warm = false
    enum Key: String, CodingKey { case exitStatus, warm }

    public init(result: SandboxResult, warm: Bool = false) {
        self.result = result
        self.warm = warm
    }

    public func encode(to encoder: any Encoder) throws {
        try result.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(result.exitStatus, forKey: .exitStatus)
        if warm { try c.encode(true, forKey: .warm) }
    }
}

extension SandboxResult {
    /// This sandbox ran one command for a task through its session server (a warm sandbox,
    /// docs/daemon.md "Warm sandboxes"): the record takes that command's outcome — its reason,
    /// exit code or signal, or why it did not start — and output counts in place of the
    /// server's; usage, layers and refusals stay the sandbox's.
    public mutating func adoptCommand(reason: TerminationReason, exitCode: Int32?, signal: Int32?, notStarted: SetupFailure?,
                                      stdoutBytes: UInt64, stderrBytes: UInt64, wallTimeSeconds: Double) {
        self.reason = notStarted == nil ? reason : .setupFailed
        self.exitCode = notStarted == nil ? exitCode : nil
        self.signal = notStarted == nil ? signal : nil
        signalName = self.signal.map(CordonSystem.signalName)
        setupFailure = notStarted
        exitStatus = Termination.exitStatus(exitCode: self.exitCode, signal: self.signal, setupFailure: notStarted)
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.wallTimeSeconds = wallTimeSeconds
    }
}
