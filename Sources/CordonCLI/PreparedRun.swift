import CordonConfig
import CordonPolicy
import CordonSandbox
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// The policy one `cordon run` (or `--learn`) runs under: the named policy loaded, the flags
/// applied with the policy's semantics (`PolicyOverrides`), every bind source checked on the
/// host, and — for a confined run — the working directory chosen: `--cwd`, else the policy's
/// `process.cwd`, else the caller's cwd where a bind shows it, else the workdir (said on stderr
/// when the command then fails).
struct PreparedRun {
    var policy: Policy
    /// Policy keys a flag set ("limits.memory": "--memory"), for the end-of-run summary.
    var flagged: [String: String] = [:]
    /// Said on stderr before the run: the caller's cwd is not visible inside.
    var cwdNotice: String?

    struct Failure: Error {
        var message: String
        var step: SetupStep
        /// 64 for a flag the user can fix, 125 for a policy that does not load.
        var status: Int32
        var policyName: String?
        var policyHash: String?
    }

    init(_ options: RunOptions, store: PolicyStore, chooseCwd: Bool = true) throws(Failure) {
        let overrides = try Self.overrides(options)
        try self.init(shaped: try Self.shaped(options.policy, overrides: overrides, store: store), overrides: overrides, chooseCwd: chooseCwd)
    }

    static func overrides(_ options: RunOptions) throws(Failure) -> PolicyOverrides {
        do { return try options.overrides() } catch { throw Failure(message: error.description, step: .arguments, status: 64) }
    }

    /// The policy loaded, with the flags that shape the mount plan applied (`planShaping`):
    /// what `SpawnPlanCache` keeps. Its hash is still the loaded policy's.
    static func shaped(_ name: String, overrides: PolicyOverrides, store: PolicyStore) throws(Failure) -> Policy {
        let base: Policy
        do { base = try store.loadPolicy(name) } catch {
            throw Failure(message: error.description, step: .policy, status: 125)
        }
        func refuse(_ message: String) -> Failure {
            Failure(message: message, step: .arguments, status: 64, policyName: base.name, policyHash: base.contentHash)
        }
        // A bind's source must be there, and be what is bound (the planner recreates a symlink
        // bound at its own path instead of binding what it points to).
        for bind in overrides.binds {
            switch FileSystem.kind(bind.source) {
            case .missing:
                throw refuse("\(bind.flag) \(bind.text): \(bind.source) does not exist on this host")
            case .symlink:
                let real = FileSystem.realPath(bind.source).map { "\($0):\(bind.path)" } ?? "REALPATH:\(bind.path)"
                throw refuse("\(bind.flag) \(bind.text): \(bind.source) is a symlink: name the real path (\(bind.flag) \(real))")
            case .other:
                throw refuse("\(bind.flag) \(bind.text): \(bind.source) is not a file, directory or device")
            default: break
            }
        }
        do { return try overrides.planShaping.apply(to: base) } catch { throw refuse(error.description) }
    }

    /// The run's policy from the shaped one: the value-setting flags (`perRun`), the cwd, and
    /// the hash of what ran.
    init(shaped: Policy, overrides: PolicyOverrides, chooseCwd: Bool = true) throws(Failure) {
        var policy: Policy
        do { policy = try overrides.perRun.apply(to: shaped) } catch {
            throw Failure(message: error.description, step: .arguments, status: 64, policyName: shaped.name, policyHash: shaped.contentHash)
        }
        if overrides.memoryBytes != nil { flagged["limits.memory"] = "--memory" }
        if overrides.pids != nil { flagged["limits.pids"] = "--pids" }
        if overrides.wallTimeSeconds != nil { flagged["limits.wall_time"] = "--timeout" }

        var identity = overrides.canonicalText
        if chooseCwd && policy.process.cwd == nil {
            let here = FileSystem.currentDirectory()
            if let inside = PolicyOverrides.sandboxPath(ofHostDirectory: here, in: policy, realSource: { FileSystem.realPath($0) }) {
                policy.process.cwd = inside
                identity += "\ncwd \(inside) (the caller's)"
            } else if here != "/" {
                cwdNotice = "your cwd \(here) is not bound in the sandbox: the command ran in \(policy.filesystem.workdir); add --bind \(here) or --ro-bind \(here)"
            }
        }
        // The record's hash names what ran: the policy and what the flags changed in it.
        if !identity.isEmpty { policy.contentHash = SHA256.hex(Array("\(shaped.contentHash)\n\(identity)".utf8)) }
        self.policy = policy
    }
}
