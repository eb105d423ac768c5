import CordonCommandLine
import CordonConfig
import CordonPolicy
import CordonSandbox
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `cordon run --learn OUT.toml [--policy BASE] -- COMMAND`: observe one run of COMMAND and
/// write OUT.toml (extends BASE) and OUT.seccomp.json next to it. See `LearnedPolicy` for what
/// is learned and `Learner` for how.
enum LearnRun {
    struct Summary: Encodable {
        var policy: String
        var seccompProfile: String
        var exitStatus: Int32
        var readOnly: [String]
        var readWrite: [String]
        var syscalls: [String]
        var destinations: [String]
        var cwd: String?
        var warnings: [String]
        var notifications: Int
    }

    static func execute(_ options: RunOptions) -> Int32 {
        guard let out = options.learn else { return 64 }
        let store = Locations(configDir: options.configDir).policyStore()
        let outDir = out.contains("/") ? String(out[..<out.lastIndex(of: "/")!]) : "."
        guard FileSystem.kind(outDir.isEmpty ? "/" : outDir) == .directory else {
            printError("cordon run: --learn: directory \(outDir) does not exist")
            return 64
        }
        var stem = String(out.split(separator: "/").last ?? "learned")
        stem.removeLast(".toml".count)
        let profileName = "\(stem).seccomp.json"
        let profilePath = outDir == "." && !out.hasPrefix("./") ? profileName : "\(outDir)/\(profileName)"

        // The flags shape the learning run and are carried into the learned policy.
        let base: Policy
        let flags: PolicyOverrides
        let baseProfile: (bytes: [UInt8], source: String)
        do {
            base = try PreparedRun(options, store: store, chooseCwd: false).policy
            flags = try options.overrides()
        } catch let error as PreparedRun.Failure {
            printError("cordon run: \(error.message)")
            return error.status
        } catch {
            printError("cordon run: \(error)")
            return 64
        }
        do { baseProfile = try store.seccompProfile(base.seccomp.profile) } catch {
            printError("cordon run: \(error.description)")
            return 125
        }
        // Learning runs unconfined, in host paths: --cwd is entered on the host.
        if let cwd = flags.cwd, chdir(cwd) != 0 {
            printError("cordon run: --cwd \(cwd): cannot enter it on this host (\(SystemError.text(errno))): --learn runs the command unconfined, in host paths")
            return 64
        }
        // A path is carried as an absolute one, so the learned policy works wherever it is moved.
        var baseReference = options.policy
        if options.policy.contains("/") || options.policy.hasSuffix(".toml") {
            guard let real = FileSystem.realPath(options.policy) else {
                printError("cordon run: --policy \(options.policy): cannot resolve its path")
                return 125
            }
            baseReference = real
        }

        let (env, searchPath) = PolicyStore.environment(for: base, callerEnvironment: ProcessInfo.processInfo.environment)
        let wallTime = base.limits.wallTimeSeconds
        printError("cordon: learning: running \(options.command.joined(separator: " ")) unconfined under observation")
        let outcome = Learner.run(argv: options.command, env: env, searchPath: searchPath, wallTime: wallTime)
        if let failure = outcome.failure {
            printError("cordon run: --learn: \(failure); nothing written")
            return outcome.commandNotRun ? 127 : 125
        }
        if outcome.timedOut {
            printError("cordon run: --learn: the command ran past its wall-clock limit (\(Units.formatDuration(wallTime ?? 0))) and was killed; nothing written")
            return 125
        }
        let ws = outcome.waitStatus ?? 0
        let status: Int32 = ws & 0x7f == 0 ? (ws >> 8) & 0xff : 128 + (ws & 0x7f)

        let learned: LearnedPolicy.Result
        do {
            learned = try LearnedPolicy.make(outcome.observation, base: base, baseReference: baseReference, baseProfile: baseProfile,
                                             name: stem, profileFileName: profileName, command: options.command, flags: flags)
        } catch {
            printError("cordon run: --learn: \(error.description); nothing written")
            return 125
        }
        // What is written must load (the checks `cordon run --policy OUT` makes) before it
        // replaces anything.
        do { _ = try store.parsePolicy(text: learned.toml, source: out) } catch {
            printError("cordon run: --learn: the learned policy does not load (a bug, please report it): \(error.description); nothing written")
            return 125
        }
        do {
            try FileSystem.writeAtomically(profilePath, Array(learned.seccompJSON.utf8), mode: 0o644)
            try FileSystem.writeAtomically(out, Array(learned.toml.utf8), mode: 0o644)
        } catch {
            printError("cordon run: --learn: writing \(error.path ?? out): \(SystemError.text(error.errno))")
            return 125
        }

        var warnings = learned.warnings
        if status != 0 { warnings.insert("the command exited with status \(status): the policy reproduces a run that failed", at: 0) }
        if options.json {
            let summary = Summary(policy: out, seccompProfile: profilePath, exitStatus: status, readOnly: learned.readOnly,
                                  readWrite: learned.readWrite, syscalls: learned.syscalls, destinations: learned.destinations,
                                  cwd: learned.cwd, warnings: warnings, notifications: outcome.observation.notifications)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(summary) { FileDescriptorIO.writeAll(1, String(decoding: data, as: UTF8.self) + "\n") }
        }
        printError("cordon: learned \(out) (+ \(profilePath)): \(learned.readOnly.count) read-only and \(learned.readWrite.count) writable paths, "
                   + "\(learned.syscalls.count) syscalls, \(learned.destinations.count) network destinations, from \(outcome.observation.notifications) observed calls")
        for warning in warnings { printError("cordon: warning: \(warning)") }
        return status
    }
}
