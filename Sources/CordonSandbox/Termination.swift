import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// How a sandbox ended, decided once from what the supervisor observed: the termination reason,
/// the exit code or signal, and the status a shell sees. Pure (no I/O), so every case is
/// unit-tested without root; `Sandbox` gathers the observation and the record carries the answer.
public enum Termination {
    /// What the supervisor saw by the time init was gone.
    struct Observation: Equatable {
        /// The workload's wait status as init reported it; nil when init was killed before it
        /// could report, and everything in its pid namespace with it.
        var waitStatus: Int32?
        /// Why the supervisor killed the sandbox, if it did (the first reason it had).
        var killedFor: TerminationReason?
        /// The output's destination could not be opened (`SandboxIO.openOutput`).
        var outputFailure: SystemError?
        /// OOM kills the cgroup counted.
        var oomKills: Int = 0
        /// CPU time the workload used, user plus system, in seconds.
        var cpuSeconds: Double = 0
        /// The policy's CPU-time limit (RLIMIT_CPU: SIGXCPU, then SIGKILL a second later).
        var cpuLimitSeconds: Double?
    }

    /// The verdict a record carries.
    struct Outcome: Equatable {
        var reason: TerminationReason
        var exitCode: Int32?
        var signal: Int32?
        var setupFailure: SetupFailure?
        var exitStatus: Int32
    }

    /// The end of a workload that ran.
    static func classify(_ o: Observation) -> Outcome {
        // Init reports nothing when it was killed: so was everything in its pid namespace.
        let status = o.waitStatus ?? SIGKILL
        var exitCode: Int32?
        var signal: Int32?
        if status & 0x7f == 0 { exitCode = (status >> 8) & 0xff } else { signal = status & 0x7f }
        let setupFailure = o.outputFailure.map { SetupFailure(step: .output, errno: $0.errno, message: "output: \($0)") }

        var reason = TerminationReason.exited
        if let killedFor = o.killedFor {
            reason = killedFor
        } else if o.oomKills > 0 {
            reason = .memoryLimit
        } else if let signal, isCPULimit(signal: signal, cpuSeconds: o.cpuSeconds, limit: o.cpuLimitSeconds) {
            reason = .cpuLimit
        } else if signal != nil {
            reason = .signaled
        }
        return Outcome(reason: reason, exitCode: exitCode, signal: signal, setupFailure: setupFailure,
                       exitStatus: exitStatus(exitCode: exitCode, signal: signal, setupFailure: setupFailure))
    }

    /// Whether a process that ended by `signal` after `cpuSeconds` of CPU was stopped by a
    /// CPU-time limit of `limit` seconds: RLIMIT_CPU's SIGXCPU, then SIGKILL a second later. A
    /// SIGXCPU sent well before the CPU time was used is only a signal. (A session's command and
    /// a warm task's are judged by this too, from the rusage its server reaped, which reads up to
    /// several percent under the time the kernel's limit counted on a loaded machine — 0.9987 s
    /// for a 1 s limit was seen — hence 80%, not the limit itself.)
    public static func isCPULimit(signal: Int32, cpuSeconds: Double, limit: Double?) -> Bool {
        guard signal == SIGXCPU || signal == SIGKILL, let limit else { return false }
        return cpuSeconds >= limit.rounded(.up) * 0.8
    }

    /// A sandbox whose workload never ran: its setup failed.
    static func notStarted(_ failure: SetupFailure) -> Outcome {
        Outcome(reason: .setupFailed, exitCode: nil, signal: nil, setupFailure: failure,
                exitStatus: exitStatus(exitCode: nil, signal: nil, setupFailure: failure))
    }

    /// A sandbox cancelled before anything was set up.
    static let cancelledBeforeStart = Outcome(reason: .cancelled, exitCode: nil, signal: nil, setupFailure: nil,
                                              exitStatus: exitStatus(exitCode: nil, signal: nil, setupFailure: nil))

    /// The status a shell would see: the command's exit code, 128+N for signal N, 125 when the
    /// sandbox failed around it or it never ran to an exit, 126/127 when the command cannot be
    /// executed or is not found. (Also how a record written before the status was carried is read.)
    public static func exitStatus(exitCode: Int32?, signal: Int32?, setupFailure: SetupFailure?) -> Int32 {
        if let setupFailure {
            if setupFailure.step == .execve { return setupFailure.errno == ENOENT ? 127 : 126 }
            return 125
        }
        if let signal { return 128 + signal }
        return exitCode ?? 125
    }
}
