import CordonPolicy
import CordonSystem

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
        case .attach: return "mount \(target) (read-write bind of \(text), idmapped)"
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
