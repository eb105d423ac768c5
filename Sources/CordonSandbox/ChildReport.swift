import CordonSystem
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// One message of the child's report channel (CSpawn's `cs_report`), decoded: the step that failed
/// with its index and errno, or the seccomp listener riding along. Turning a failure into the
/// sentence a person reads needs only the plan, so it is unit-tested without a sandbox.
struct ChildReport: Equatable {
    /// The failed step; nil when the message reports none (it carries the listener).
    var step: SetupStep?
    /// Which mount, Landlock rule or rlimit of the plan (for those steps).
    var index: Int
    var errno: Int32
    /// The seccomp listener descriptor came with this message (SCM_RIGHTS).
    var carriesListener: Bool

    init(_ r: cs_report) {
        step = SetupStep(childStep: r.step)
        index = Int(r.index)
        errno = r.err
        carriesListener = r.has_fd != 0
    }

    /// A failure to report: a failed step not sent only to carry a descriptor.
    var isFailure: Bool { !carriesListener && step != nil }

    /// What the child's failure means, e.g. "mount: mount /usr (read-only bind of /usr) failed:
    /// Permission denied". `runtimeDir` is where the root mount point lives; `searchable` tells
    /// whether a host directory lets others through (for a root-tmpfs EACCES).
    func failure(plan: SpawnPlan, argv: [String], runtimeDir: String,
                 searchable: (String) -> Bool = ChildReport.searchableByOthers) -> SetupFailure {
        let step = self.step ?? .unknownChildStep(0)
        return SetupFailure(step: step, errno: errno,
                            message: message(step, plan: plan, argv: argv, runtimeDir: runtimeDir, searchable: searchable))
    }

    private func message(_ step: SetupStep, plan: SpawnPlan, argv: [String], runtimeDir: String,
                         searchable: (String) -> Bool) -> String {
        let text = SystemError.text(errno)
        switch step {
        case .mount where plan.mounts.indices.contains(index):
            return "\(step): \(plan.mounts[index]) failed: \(text)"
        case .landlockRule where plan.landlockRules.indices.contains(index):
            return "\(step): rule for \(plan.landlockRules[index].path) failed: \(text)"
        case .rlimit where plan.rlimits.indices.contains(index):
            return "\(step): setrlimit(\(plan.rlimits[index].resource)) failed: \(text)"
        case .execve:
            let program = argv.first ?? ""
            var hint = ""
            if errno == ENOENT && !program.contains("/") {
                hint = " (searched PATH=\(plan.searchPath) inside the sandbox)"
            } else if errno == ENOENT && plan.mounts.contains(where: { $0.kind == .bind && program.hasPrefix(String(decoding: $0.data, as: UTF8.self) + "/") }) {
                // The file is bound in, so what is missing is what execve needs next: the
                // script's interpreter or the ELF dynamic loader.
                hint = " (the file is bound into the sandbox: its interpreter or dynamic loader, e.g. /lib64/ld-linux-x86-64.so.2, is probably not)"
            }
            return "\(step): \(program): \(text)" + hint
        case .rootTmpfs where errno == EACCES:
            // The sandbox's root is an unprivileged host uid; it must be able to reach the mount point.
            var dir = runtimeDir
            var blocked = dir
            while !dir.isEmpty && dir != "/" {
                if !searchable(dir) { blocked = dir }
                dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
            }
            return "\(step): \(blocked) is not searchable by the sandbox's unprivileged uid: make every directory above the root mount point \(runtimeDir)/root world-searchable (chmod o+x) or use the default /run/cordon"
        case .chdir:
            return "\(step): \(plan.cwd): \(text)"
        default:
            return "\(step) failed: \(text)"
        }
    }

    /// Whether others may search `dir` (false only when it exists without o+x).
    static func searchableByOthers(_ dir: String) -> Bool {
        var st = stat()
        return !(stat(dir, &st) == 0 && st.st_mode & 0o001 == 0)
    }
}
