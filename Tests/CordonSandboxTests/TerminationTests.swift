@testable import CordonSandbox
import CordonSystem
import Foundation
import Testing

/// `Termination.classify` over every way a sandbox ends, without root: the reason, the exit code
/// or signal, and the status a shell sees (`cordon run`'s exit status, `cordon submit --wait`'s).
struct TerminationTests {
    typealias Observation = Termination.Observation

    static func exited(_ code: Int32) -> Int32 { code << 8 }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var observation: Observation
        var reason: TerminationReason
        var exitCode: Int32?
        var signal: Int32?
        var status: Int32
        var testDescription: String { name }
    }

    static let outputError = SystemError("open", path: "/var/lib/cordon/tasks/7/stdout", errno: ENOSPC)

    static let cases: [Case] = [
        Case(name: "exit 0", observation: Observation(waitStatus: exited(0)), reason: .exited, exitCode: 0, status: 0),
        Case(name: "exit 3", observation: Observation(waitStatus: exited(3)), reason: .exited, exitCode: 3, status: 3),
        Case(name: "exit 255", observation: Observation(waitStatus: exited(255)), reason: .exited, exitCode: 255, status: 255),
        Case(name: "SIGKILL", observation: Observation(waitStatus: SIGKILL), reason: .signaled, signal: SIGKILL, status: 137),
        Case(name: "SIGTERM", observation: Observation(waitStatus: SIGTERM), reason: .signaled, signal: SIGTERM, status: 143),
        Case(name: "SIGSEGV with a core flag", observation: Observation(waitStatus: SIGSEGV | 0x80), reason: .signaled,
             signal: SIGSEGV, status: 139),
        Case(name: "init killed before reporting", observation: Observation(waitStatus: nil), reason: .signaled,
             signal: SIGKILL, status: 137),
        Case(name: "timeout", observation: Observation(waitStatus: SIGKILL, killedFor: .timeout), reason: .timeout,
             signal: SIGKILL, status: 137),
        Case(name: "cancelled", observation: Observation(waitStatus: nil, killedFor: .cancelled), reason: .cancelled,
             signal: SIGKILL, status: 137),
        Case(name: "output cap", observation: Observation(waitStatus: SIGKILL, killedFor: .outputLimit), reason: .outputLimit,
             signal: SIGKILL, status: 137),
        Case(name: "pids limit", observation: Observation(waitStatus: SIGKILL, killedFor: .pidsLimit), reason: .pidsLimit,
             signal: SIGKILL, status: 137),
        Case(name: "memory event seen while running", observation: Observation(waitStatus: SIGKILL, killedFor: .memoryLimit),
             reason: .memoryLimit, signal: SIGKILL, status: 137),
        Case(name: "seccomp kill", observation: Observation(waitStatus: SIGKILL, killedFor: .seccompViolation),
             reason: .seccompViolation, signal: SIGKILL, status: 137),
        Case(name: "killed, but the workload had exited first", observation: Observation(waitStatus: exited(0), killedFor: .timeout),
             reason: .timeout, exitCode: 0, status: 0),
        Case(name: "the supervisor's reason wins over the OOM count",
             observation: Observation(waitStatus: SIGKILL, killedFor: .timeout, oomKills: 1), reason: .timeout, signal: SIGKILL, status: 137),
        Case(name: "OOM kill counted after the end", observation: Observation(waitStatus: SIGKILL, oomKills: 2), reason: .memoryLimit,
             signal: SIGKILL, status: 137),
        Case(name: "OOM wins over the CPU limit",
             observation: Observation(waitStatus: SIGKILL, oomKills: 1, cpuSeconds: 5, cpuLimitSeconds: 1), reason: .memoryLimit,
             signal: SIGKILL, status: 137),
        Case(name: "SIGXCPU at the CPU limit", observation: Observation(waitStatus: SIGXCPU, cpuSeconds: 1.0, cpuLimitSeconds: 1),
             reason: .cpuLimit, signal: SIGXCPU, status: 152),
        Case(name: "SIGKILL a second past the CPU limit", observation: Observation(waitStatus: SIGKILL, cpuSeconds: 2.01, cpuLimitSeconds: 1),
             reason: .cpuLimit, signal: SIGKILL, status: 137),
        Case(name: "CPU limit rounds up (1.5 s: RLIMIT_CPU 2 s)",
             observation: Observation(waitStatus: SIGXCPU, cpuSeconds: 1.96, cpuLimitSeconds: 1.5), reason: .cpuLimit, signal: SIGXCPU, status: 152),
        Case(name: "well below the rounded-up CPU limit it is only a signal",
             observation: Observation(waitStatus: SIGXCPU, cpuSeconds: 1.5, cpuLimitSeconds: 1.5), reason: .signaled, signal: SIGXCPU, status: 152),
        Case(name: "a reaped process's rusage a little under the limit the kernel counted",
             observation: Observation(waitStatus: SIGXCPU, cpuSeconds: 0.93, cpuLimitSeconds: 1), reason: .cpuLimit, signal: SIGXCPU, status: 152),
        Case(name: "SIGXCPU sent early is only a signal", observation: Observation(waitStatus: SIGXCPU, cpuSeconds: 0.2, cpuLimitSeconds: 1),
             reason: .signaled, signal: SIGXCPU, status: 152),
        Case(name: "SIGXCPU without a CPU limit", observation: Observation(waitStatus: SIGXCPU, cpuSeconds: 9), reason: .signaled,
             signal: SIGXCPU, status: 152),
        Case(name: "other signals past the CPU limit are signals", observation: Observation(waitStatus: SIGTERM, cpuSeconds: 9, cpuLimitSeconds: 1),
             reason: .signaled, signal: SIGTERM, status: 143),
        Case(name: "an exit past the CPU limit is an exit", observation: Observation(waitStatus: exited(1), cpuSeconds: 9, cpuLimitSeconds: 1),
             reason: .exited, exitCode: 1, status: 1),
        Case(name: "output destination failed", observation: Observation(waitStatus: SIGKILL, killedFor: .setupFailed, outputFailure: outputError),
             reason: .setupFailed, signal: SIGKILL, status: 125),
    ]

    @Test(arguments: cases)
    func classify(_ c: Case) {
        let o = Termination.classify(c.observation)
        #expect(o.reason == c.reason)
        #expect(o.exitCode == c.exitCode)
        #expect(o.signal == c.signal)
        #expect(o.exitStatus == c.status)
        #expect((o.setupFailure != nil) == (c.observation.outputFailure != nil))
    }

    @Test func anOutputFailureIsNamed() throws {
        let o = Termination.classify(Observation(waitStatus: SIGKILL, killedFor: .setupFailed, outputFailure: Self.outputError))
        let failure = try #require(o.setupFailure)
        #expect(failure.step == .output && failure.errno == ENOSPC)
        #expect(failure.message == "output: open /var/lib/cordon/tasks/7/stdout: No space left on device")
    }

    @Test(arguments: [
        (SetupStep.execve, ENOENT, Int32(127)), (.execve, EACCES, 126), (.execve, ENOEXEC, 126), (.execve, ENOTDIR, 126),
        (.mount, ENOENT, 125), (.chdir, ENOENT, 125), (.uidRange, EAGAIN, 125), (.egress, EINVAL, 125), (.taskFiles, EIO, 125),
        (.initExec, ENOENT, 125), (.unknownChildStep(99), ENOENT, 125), (.other("execve-ish"), ENOENT, 125),
    ])
    func aWorkloadThatNeverRan(_ c: (SetupStep, Int32, Int32)) {
        let o = Termination.notStarted(SetupFailure(step: c.0, errno: c.1, message: "m"))
        #expect(o.reason == .setupFailed && o.exitCode == nil && o.signal == nil)
        #expect(o.exitStatus == c.2)
    }

    @Test func cancelledBeforeItStarted() {
        let o = Termination.cancelledBeforeStart
        #expect(o.reason == .cancelled && o.exitCode == nil && o.signal == nil && o.setupFailure == nil)
        #expect(o.exitStatus == 125)
    }

    /// The record carries the status; `cordon run --json` prints the same members as before it
    /// did, and cordond's stored record adds `exitStatus`.
    @Test func theStatusTravelsOnlyInTheStoredRecord() throws {
        var result = SandboxResult(Termination.classify(Observation(waitStatus: SIGTERM)), policy: "p", policyHash: "h")
        result.wallTimeSeconds = 0.5
        #expect(result.exitStatus == 143 && result.signalName == "SIGTERM")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let plain = String(decoding: try encoder.encode(result), as: UTF8.self)
        #expect(plain == #"{"denied":[],"deniedOmitted":0,"logged":[],"policy":"p","policyHash":"h","reason":"signaled","signal":15,"signalName":"SIGTERM","stderrBytes":0,"stdoutBytes":0,"wallTimeSeconds":0.5}"#)
        let stored = String(decoding: try encoder.encode(result.stored), as: UTF8.self)
        #expect(stored == #"{"denied":[],"deniedOmitted":0,"exitStatus":143,"logged":[],"policy":"p","policyHash":"h","reason":"signaled","signal":15,"signalName":"SIGTERM","stderrBytes":0,"stdoutBytes":0,"wallTimeSeconds":0.5}"#)
    }

    /// A record read back: the stored status when there is one, else derived as before.
    @Test func recordsReadBack() throws {
        let failed = SandboxResult.setupFailed(step: .execve, errno: ENOENT, message: "execve: x: No such file or directory",
                                               policy: "p", policyHash: "h")
        #expect(failed.exitStatus == 127)
        let plain = try JSONEncoder().encode(failed)
        #expect(String(decoding: plain, as: UTF8.self).contains(#""step":"execve""#))
        #expect(try JSONDecoder().decode(SandboxResult.self, from: plain).exitStatus == 127)
        var text = String(decoding: try JSONEncoder().encode(failed.stored), as: UTF8.self)
        text = text.replacingOccurrences(of: #""exitStatus":127"#, with: #""exitStatus":42"#)
        let decoded = try JSONDecoder().decode(SandboxResult.self, from: Data(text.utf8))
        #expect(decoded.exitStatus == 42 && decoded.setupFailure?.step == .execve)
    }
}
