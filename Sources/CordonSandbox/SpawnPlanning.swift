import CordonConfig
import CordonPolicy
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// From a policy the store found to the plan of one spawn: the part of policy lookup that needs
/// the sandbox (the seccomp compiler, the mount planner). Finding and parsing policies and
/// profiles is CordonConfig's; workers that only read policies never link this.
extension PolicyStore {
    /// The workload's environment ("NAME=value", the policy's variables then the passed-through
    /// ones) and the PATH used to find the command.
    public static func environment(for policy: Policy, callerEnvironment: [String: String]) -> (env: [String], searchPath: String) {
        var env: [String] = []
        var names = Set<String>()
        for v in policy.process.env where names.insert(v.name).inserted { env.append("\(v.name)=\(v.value)") }
        for name in policy.process.passEnv where !names.contains(name) {
            if let value = callerEnvironment[name] { env.append("\(name)=\(value)"); names.insert(name) }
        }
        return (env, policy.process.env.first { $0.name == "PATH" }?.value ?? "/usr/local/bin:/usr/bin:/bin")
    }

    /// Resolves everything a spawn of `policy` needs. The seccomp filter is cached in `cacheDir`
    /// by the profile's content hash, so only the first spawn pays for compiling it.
    /// `imageRoot`: the unpacked root of the policy's `filesystem.image` (cordond's store).
    public func spawnPlan(for policy: Policy, cacheDir: String?, callerEnvironment: [String: String],
                          imageRoot: String? = nil) throws(LoadError) -> SpawnPlan {
        SpawnPlan(policy: policy, confinement: try confinement(for: policy, cacheDir: cacheDir, imageRoot: imageRoot), callerEnvironment: callerEnvironment)
    }

    /// The part of a spawn plan built from profiles and the host: the seccomp filter, the mounts
    /// and the Landlock rules. The host is consulted only through `inspect` (see `MountPlanner`).
    public func confinement(for policy: Policy, cacheDir: String?,
                            inspect: @escaping @Sendable (String) -> FileSystem.Kind = { FileSystem.kind($0) },
                            imageRoot: String? = nil) throws(LoadError) -> Confinement {
        let (profileBytes, profileSource) = try seccompProfile(policy.seccomp.profile)
        let seccomp: CompiledSeccomp
        do { seccomp = try SeccompCompiler.compile(profileBytes: profileBytes, file: profileSource, cacheDir: cacheDir) }
        catch { throw LoadError(description: "seccomp.profile: \(error.description)") }
        var planner = MountPlanner()
        planner.inspect = inspect
        planner.imageRoot = imageRoot
        let planned: (mounts: [MountStep], landlock: [LandlockRule])
        do { planned = try planner.plan(policy) }
        catch { throw LoadError(description: "\(policy.source): \(error.description)") }
        return Confinement(mounts: planned.mounts, landlockRules: planned.landlock, seccomp: seccomp)
    }
}

/// What of a spawn plan the profiles and the host decide: the seccomp filter and the mount plan
/// with its Landlock rules. Everything else in a plan is copied from the policy (see
/// `SpawnPlan.init(policy:confinement:callerEnvironment:)`), cheaply, at every spawn.
public struct Confinement: Sendable, Equatable {
    public var mounts: [MountStep]
    public var landlockRules: [LandlockRule]
    public var seccomp: CompiledSeccomp

    public init(mounts: [MountStep], landlockRules: [LandlockRule], seccomp: CompiledSeccomp) {
        self.mounts = mounts
        self.landlockRules = landlockRules
        self.seccomp = seccomp
    }
}

extension SpawnPlan {
    /// The plan of `policy` around its confinement: the environment (with the caller's
    /// variables the policy passes through), cwd, rlimits, capabilities and cgroup limits.
    public init(policy: Policy, confinement: Confinement, callerEnvironment: [String: String]) {
        let (env, searchPath) = PolicyStore.environment(for: policy, callerEnvironment: callerEnvironment)
        let l = policy.limits
        var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)] = [(Int32(RLIMIT_CORE.rawValue), 0, 0)]
        if let n = l.openFiles { rlimits.append((Int32(RLIMIT_NOFILE.rawValue), n, n)) }
        if let n = l.fileSizeBytes { rlimits.append((Int32(RLIMIT_FSIZE.rawValue), n, n)) }
        if let t = l.cpuTimeSeconds {
            // SIGXCPU at the soft limit, SIGKILL a second later.
            let soft = UInt64(t.rounded(.up))
            rlimits.append((Int32(RLIMIT_CPU.rawValue), soft, soft + 1))
        }
        var keep: UInt64 = 0
        for name in policy.capabilities.keep { if let n = Capability.number(name) { keep |= 1 << UInt64(n) } }

        self.init(policy: policy, mounts: confinement.mounts, landlockRules: confinement.landlockRules, rlimits: rlimits,
                  keepCaps: keep, seccomp: confinement.seccomp, env: env, searchPath: searchPath,
                  cwd: policy.process.cwd ?? policy.filesystem.workdir,
                  cgroupLimits: CgroupLimits(memoryBytes: l.memoryBytes, pids: l.pids, cpuCores: l.cpuCores))
    }
}
