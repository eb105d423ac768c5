import CSpawn

/// The step of a sandbox's setup that failed: one the supervisor takes around the clone, one the
/// child reports (one case per CSpawn `CS_STEP_*`), or cordond's own. Exit statuses and messages
/// are decided on the case; `name` ("execve", "mount", …) is only the step's name in records and
/// in `cordon run --json`, the same text those carried before there was an enum.
public enum SetupStep: Sendable, Hashable, CustomStringConvertible {
    // The supervisor's, in spawn order.
    case uidRange, cgroup, guardian, landlock, pipes, tty, initProgram, rootMountpoint, idmap, clone
    case idMap  // also the child's CS_STEP_ID_MAP
    case egress, release
    /// The output's destination could not be opened once the workload ran (`SandboxIO.openOutput`).
    case output
    /// cordond: the task's stdin or output files.
    case taskFiles
    // The child's (CSpawn), in the order it takes them.
    case waitParent, setsid, mountPrivate, rootTmpfs, mount, pivotRoot, rootReadonly, hostname, loopback, fork
    case stdio, chdir, rlimit, capabilityBoundingSet, securebits, setgroups, setgid, setuid, capset
    case ambientCapabilities, noNewPrivs, landlockRule, landlockRestrict, seccomp, seccompListener, execve
    case initSignals, cgroupJoin, cgroupNamespace, initExec
    /// A child step this build has no name for (named "step N").
    case unknownChildStep(Int32)
    /// A name this build does not know, read from another version's record.
    case other(String)

    /// Every step with a name of its own, and that name.
    static let named: [(SetupStep, String)] = [
        (.uidRange, "uid-range"), (.cgroup, "cgroup"), (.guardian, "guardian"), (.landlock, "landlock"),
        (.pipes, "pipes"), (.tty, "tty"), (.initProgram, "init-program"), (.rootMountpoint, "root-mountpoint"), (.idmap, "idmap"),
        (.clone, "clone"), (.idMap, "id-map"), (.egress, "egress"), (.release, "release"), (.output, "output"),
        (.taskFiles, "task-files"),
        (.waitParent, "wait-parent"), (.setsid, "setsid"), (.mountPrivate, "mount-private"), (.rootTmpfs, "root-tmpfs"),
        (.mount, "mount"), (.pivotRoot, "pivot-root"), (.rootReadonly, "root-readonly"), (.hostname, "hostname"),
        (.loopback, "loopback"), (.fork, "fork"), (.stdio, "stdio"), (.chdir, "chdir"), (.rlimit, "rlimit"),
        (.capabilityBoundingSet, "capability-bounding-set"), (.securebits, "securebits"), (.setgroups, "setgroups"),
        (.setgid, "setgid"), (.setuid, "setuid"), (.capset, "capset"), (.ambientCapabilities, "ambient-capabilities"),
        (.noNewPrivs, "no-new-privs"), (.landlockRule, "landlock-rule"), (.landlockRestrict, "landlock-restrict"),
        (.seccomp, "seccomp"), (.seccompListener, "seccomp-listener"), (.execve, "execve"),
        (.initSignals, "init-signals"), (.cgroupJoin, "cgroup-join"), (.cgroupNamespace, "cgroup-namespace"),
        (.initExec, "init-exec"),
    ]
    private static let byName: [String: SetupStep] = Dictionary(uniqueKeysWithValues: named.map { ($0.1, $0.0) })
    private static let nameOf: [SetupStep: String] = Dictionary(uniqueKeysWithValues: named)

    /// The step's name in records ("execve").
    public var name: String {
        switch self {
        case .unknownChildStep(let n): return "step \(n)"
        case .other(let name): return name
        default: return Self.nameOf[self]!
        }
    }

    public var description: String { name }

    /// The step a record names (the inverse of `name`).
    public init(name: String) {
        if let step = Self.byName[name] {
            self = step
        } else if name.hasPrefix("step "), let n = Int32(name.dropFirst(5)) {
            self = .unknownChildStep(n)
        } else {
            self = .other(name)
        }
    }

    /// The step a child report names (`cs_report.step`); nil for CS_STEP_NONE, which is no failure.
    init?(childStep raw: Int32) {
        guard raw != Int32(CS_STEP_NONE.rawValue) else { return nil }
        switch cs_step(rawValue: UInt32(bitPattern: raw)) {
        case CS_STEP_WAIT_PARENT: self = .waitParent
        case CS_STEP_ID_MAP: self = .idMap
        case CS_STEP_SETSID: self = .setsid
        case CS_STEP_MOUNT_PRIVATE: self = .mountPrivate
        case CS_STEP_ROOT_TMPFS: self = .rootTmpfs
        case CS_STEP_MOUNT: self = .mount
        case CS_STEP_PIVOT_ROOT: self = .pivotRoot
        case CS_STEP_ROOT_READONLY: self = .rootReadonly
        case CS_STEP_HOSTNAME: self = .hostname
        case CS_STEP_LOOPBACK: self = .loopback
        case CS_STEP_FORK: self = .fork
        case CS_STEP_STDIO: self = .stdio
        case CS_STEP_CHDIR: self = .chdir
        case CS_STEP_RLIMIT: self = .rlimit
        case CS_STEP_CAP_BOUNDING: self = .capabilityBoundingSet
        case CS_STEP_SECUREBITS: self = .securebits
        case CS_STEP_SETGROUPS: self = .setgroups
        case CS_STEP_SETGID: self = .setgid
        case CS_STEP_SETUID: self = .setuid
        case CS_STEP_CAPSET: self = .capset
        case CS_STEP_AMBIENT: self = .ambientCapabilities
        case CS_STEP_NO_NEW_PRIVS: self = .noNewPrivs
        case CS_STEP_LANDLOCK_RULE: self = .landlockRule
        case CS_STEP_LANDLOCK_RESTRICT: self = .landlockRestrict
        case CS_STEP_SECCOMP: self = .seccomp
        case CS_STEP_SEND_LISTENER: self = .seccompListener
        case CS_STEP_EXEC: self = .execve
        case CS_STEP_INIT_SIGNALS: self = .initSignals
        case CS_STEP_CGROUP: self = .cgroupJoin
        case CS_STEP_CGROUP_NS: self = .cgroupNamespace
        case CS_STEP_INIT_EXEC: self = .initExec
        default: self = .unknownChildStep(raw)
        }
    }
}

/// Records carry the step as its name.
extension SetupStep: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(name: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}
