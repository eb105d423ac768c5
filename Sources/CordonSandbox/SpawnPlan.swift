import CordonPolicy
import CordonSystem
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// One step of the mount plan (executed in order by the child, see CSpawn's cs_mount_kind).
public struct MountStep: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Int32, Sendable { case dir = 1, bind, tmpfs, symlink, file, proc, mask, readonly, devpts, attach }
    public struct Flags: OptionSet, Sendable, Equatable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let readOnly = Flags(rawValue: 1 << 0)
        public static let noExec = Flags(rawValue: 1 << 1)
        public static let isDirectory = Flags(rawValue: 1 << 2)
        public static let chown = Flags(rawValue: 1 << 3)
        public static let optional = Flags(rawValue: 1 << 4)
        public static let device = Flags(rawValue: 1 << 5)
        /// attach: the source is the run's workspace descriptor (opened with its caller's
        /// rights), not the path in `data`, which only names it in messages.
        public static let workspace = Flags(rawValue: 1 << 6)
        /// attach, with `.workspace`: the workspace seen through a copy-on-write overlay (its
        /// directory the read-only lower layer, the run's `SandboxWorkspace.cow` the upper).
        public static let cow = Flags(rawValue: 1 << 7)
        /// attach: a root-owned source cloned by the parent and mounted read-only — a top-level
        /// entry of the policy's image (`filesystem.image`) in cordond's store, or a read-only
        /// bind behind a directory private to root (the state dir, the package store) — which
        /// the child's own path walk may not reach; its files are the host's root's, unmapped
        /// inside.
        public static let image = Flags(rawValue: 1 << 8)
    }

    public var kind: Kind
    public var target: String
    /// bind: host source path; tmpfs: options; symlink: link text; file: content.
    public var data: [UInt8]
    public var mode: UInt32
    public var flags: Flags
    /// attach: the host owner the policy names for what the sandbox writes (nil: the source's).
    public var owner: Policy.Owner?

    public init(_ kind: Kind, _ target: String, data: [UInt8] = [], mode: UInt32 = 0o755, flags: Flags = [], owner: Policy.Owner? = nil) {
        self.kind = kind
        self.target = target
        self.data = data
        self.mode = mode
        self.flags = flags
        self.owner = owner
    }

    /// "mount /usr (read-only bind of /usr)": how a failed step is named to a person.
    public var description: String {
        let text = String(decoding: data, as: UTF8.self)
        switch kind {
        case .dir: return "mkdir \(target)"
        case .bind:
            let how = flags.contains(.readOnly) ? "read-only bind" : "read-write bind"
            return "mount \(target) (\(how) of \(text))"
        case .tmpfs: return "mount \(target) (tmpfs \(text))"
        case .symlink: return "symlink \(target) -> \(text)"
        case .file: return "create \(target)"
        case .proc: return "mount \(target) (proc)"
        case .mask: return "mask \(target)"
        case .readonly: return "remount \(target) read-only"
        case .devpts: return "mount \(target) (devpts)"
        case .attach:
            if flags.contains(.workspace) {
                let how = flags.contains(.cow) ? "copy-on-write" : flags.contains(.readOnly) ? "read-only" : "read-write"
                return "mount \(target) (the workspace \(text), \(how), idmapped)"
            }
            if flags.contains(.image) { return "mount \(target) (the image's \(target), read-only)" }
            return "mount \(target) (read-write bind of \(text), idmapped)"
        }
    }
}

public struct LandlockRule: Sendable, Equatable {
    public var path: String
    public var access: Landlock.FS
}

/// Everything a spawn needs, resolved from a policy: a pure value, built once per policy content
/// and reused.
public struct SpawnPlan: Sendable {
    public var policy: Policy
    public var mounts: [MountStep]
    public var landlockRules: [LandlockRule]
    public var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)]
    public var keepCaps: UInt64
    public var seccomp: CompiledSeccomp
    public var env: [String]
    public var searchPath: String
    public var cwd: String
    public var cgroupLimits: CgroupLimits
}

extension SpawnPlan {
    /// Where a task's workspace appears in its sandbox; also its working directory, unless the
    /// policy names one (`process.cwd`).
    public static let workspacePath = "/workspace"

    /// This plan with a caller's workspace at `/workspace`: an idmapped bind made from the
    /// descriptor the run is given (`Sandbox.run`'s `workspace`), read-write or read-only, with
    /// the Landlock rule to match. `source` names the directory in messages only. Refused when
    /// the policy already puts something at or under `/workspace`, or binds a host directory at
    /// `/` (the mount point would have to be made in the host's root). `cow`: the sandbox
    /// writes to a copy-on-write layer over the directory (read-only to it on the host), never
    /// to the directory itself.
    public func withWorkspace(source: String, writable: Bool, cow: Bool = false) throws(MountPlanner.PlanError) -> SpawnPlan {
        let target = Self.workspacePath
        if let clash = mounts.first(where: { $0.target == target || $0.target.hasPrefix(target + "/") }) {
            throw MountPlanner.PlanError(key: "workspace", message: "policy \(policy.name) has its own \(clash.description) at the workspace's place: a policy that takes workspaces leaves \(target) to them")
        }
        // What MountPlanner refuses beside writable binds, for the same reasons: a file
        // capability or a kept setgid bit written through an idmapped mount lands on the host.
        for cap in MountPlanner.unsafeWithWritableMounts where writable && !cow && policy.capabilities.keep.contains(cap) {
            throw MountPlanner.PlanError(key: "workspace", message: "policy \(policy.name) keeps \(cap): through a writable workspace the sandbox could leave a file on the host with capabilities or a setgid bit; ask for the workspace read-only, or use a policy without \(cap)")
        }
        if mounts.filter({ $0.kind == .attach }).count >= Int(CS_MAX_ATTACH) {
            throw MountPlanner.PlanError(key: "workspace", message: "policy \(policy.name) has \(CS_MAX_ATTACH) writable binds already, the most a sandbox may have")
        }
        if mounts.contains(where: { ($0.kind == .bind || $0.kind == .attach) && $0.flags.contains(.isDirectory) && $0.target == "/" }) {
            throw MountPlanner.PlanError(key: "workspace", message: "policy \(policy.name) binds a host directory at /, so the workspace's mount point would have to be made in the host's own directory: a policy that takes workspaces has the sandbox's root")
        }
        var plan = self
        var flags: MountStep.Flags = [.isDirectory, .workspace]
        if cow { flags.insert(.cow) } else if !writable { flags.insert(.readOnly) }
        plan.mounts.append(MountStep(.attach, target, data: Array(source.utf8), flags: flags))
        plan.landlockRules.append(LandlockRule(path: target, access: writable || cow ? Landlock.FS(rawValue: ~0) : .readOnly))
        if policy.process.cwd == nil { plan.cwd = target }
        return plan
    }
}

extension SpawnPlan {
    /// This plan with each read-only bind whose source is root's and behind a directory others
    /// may not pass (the state dir, the package store: 0700) made a read-only clone the parent
    /// makes, as an image's entries are: the child, root of its own user namespace and nobody to
    /// the host's files, could not walk to it. Decided at each spawn, on the host as it is then
    /// (a cached plan keeps no such decision); binds anyone may reach are left to the child.
    public func withPrivateBindsCloned() -> SpawnPlan {
        var plan = self
        plan.mounts = mounts.map { step in
            guard step.kind == .bind, step.flags.contains(.readOnly), !step.flags.contains(.device),
                  Self.isRootsBehindPrivateDirectory(String(decoding: step.data, as: UTF8.self)) else { return step }
            return MountStep(.attach, step.target, data: step.data, flags: step.flags.intersection([.readOnly, .isDirectory, .noExec, .optional]).union(.image))
        }
        return plan
    }

    /// Whether `path` is root's and some directory above it is closed to others (no o+x).
    public static func isRootsBehindPrivateDirectory(_ path: String) -> Bool {
        var st = stat()
        guard path.hasPrefix("/"), lstat(path, &st) == 0, st.st_uid == 0, st.st_gid == 0 else { return false }
        var dir = path
        while let slash = dir.lastIndex(of: "/"), slash != dir.startIndex {
            dir = String(dir[..<slash])
            guard stat(dir, &st) == 0 else { return false }
            if st.st_mode & 0o001 == 0 { return true }
        }
        return false
    }
}
