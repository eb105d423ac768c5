/// An exposure score for a policy: 0 is locked down, 10 is no sandbox to speak of. Every point
/// comes from an itemized finding with a documented weight (`Weights`, and docs in the README), in
/// the spirit of `systemd-analyze security`. Pure: the caller hands in the parsed seccomp profile.
public struct PolicyScore: Sendable, Equatable {
    public struct Item: Sendable, Equatable, Codable {
        /// Stable identifier (`limits.memory`, `capabilities.keep`, …): the key it is about.
        public var key: String
        public var finding: String
        public var points: Double
    }

    public var policy: String
    /// The sum of the items, capped at 10, rounded to one decimal.
    public var score: Double
    public var items: [Item]

    /// The weights. Changing one changes every score: the tests pin the shipped policies' order.
    public enum Weights {
        public static let noMemoryLimit = 1.0
        public static let noPidsLimit = 0.7
        public static let noCPULimit = 0.3
        public static let noWallTime = 0.3
        public static let noCPUTime = 0.2
        public static let noOpenFilesLimit = 0.1
        public static let noFileSizeLimit = 0.1
        public static let noOutputLimit = 0.1
        /// Per kept capability; the ones that widen the kernel's attack surface weigh more.
        public static let capability = 0.5
        public static let dangerousCapability = 2.0
        public static let dangerousCapabilities: Set<String> = [
            "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_SYS_MODULE", "CAP_BPF",
            "CAP_SYS_RAWIO", "CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SETGID",
            "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_PERFMON", "CAP_NET_RAW",
        ]
        /// Per writable host path; a sensitive one (the root, system or credential directories).
        public static let writableHostPath = 1.0
        public static let writableSensitivePath = 3.0
        /// A read-only bind that exposes credentials or host state (/home, /root, /etc whole, …).
        public static let readableSensitivePath = 1.0
        public static let landlockOff = 1.0
        /// best-effort runs without Landlock on kernels that lack it.
        public static let landlockBestEffort = 0.2
        /// The profile's default action lets unlisted syscalls through (a denylist, or log-only).
        public static let seccompPermissiveDefault = 3.0
        /// `seccomp.action = "log"`: refused calls run (and are only reported).
        public static let seccompLogOnly = 3.0
        /// Per unconditionally allowed syscall from `dangerousSyscalls`, up to `dangerousSyscallCap`.
        public static let dangerousSyscall = 0.5
        public static let dangerousSyscallCap = 2.5
        public static let dangerousSyscalls: [String] = [
            "bpf", "clone3", "add_key", "keyctl", "request_key", "mount", "umount2", "move_mount",
            "open_tree", "fsopen", "fsmount", "pivot_root", "unshare", "setns", "ptrace",
            "process_vm_readv", "process_vm_writev", "perf_event_open", "userfaultfd", "kexec_load",
            "init_module", "finit_module", "delete_module", "io_uring_setup", "open_by_handle_at",
            "name_to_handle_at", "iopl", "ioperm", "swapon", "reboot",
        ]
        /// Per network destination the policy allows (one name or address, one port), up to
        /// `networkDestinationCap`; a broad one (a wildcard, an address block, a port range)
        /// counts `networkBroadDestination`.
        public static let networkDestination = 0.5
        public static let networkBroadDestination = 1.0
        public static let networkDestinationCap = 2.0
        /// The workload runs as uid 0 inside its user namespace.
        public static let rootUser = 0.5
    }

    public static func score(_ policy: Policy, seccomp profile: SeccompProfile) -> PolicyScore {
        typealias W = Weights
        var items: [Item] = []
        func add(_ key: String, _ finding: String, _ points: Double) {
            items.append(Item(key: key, finding: finding, points: points))
        }

        let l = policy.limits
        if l.memoryBytes == nil { add("limits.memory", "no memory limit", W.noMemoryLimit) }
        if l.pids == nil { add("limits.pids", "no process-count limit (fork bombs)", W.noPidsLimit) }
        if l.cpuCores == nil { add("limits.cpu", "no CPU bandwidth limit", W.noCPULimit) }
        if l.wallTimeSeconds == nil { add("limits.wall_time", "no wall-clock limit", W.noWallTime) }
        if l.cpuTimeSeconds == nil { add("limits.cpu_time", "no CPU-time limit", W.noCPUTime) }
        if l.openFiles == nil { add("limits.open_files", "no open-file limit", W.noOpenFilesLimit) }
        if l.fileSizeBytes == nil { add("limits.file_size", "no file-size limit", W.noFileSizeLimit) }
        if l.outputBytes == nil { add("limits.output", "no output limit", W.noOutputLimit) }

        for cap in policy.capabilities.keep {
            let dangerous = W.dangerousCapabilities.contains(cap)
            add("capabilities.keep", "keeps \(cap)\(dangerous ? " (widens kernel attack surface)" : "")",
                dangerous ? W.dangerousCapability : W.capability)
        }

        for bind in policy.filesystem.readWrite {
            let sensitive = isSensitive(bind.source)
            add("filesystem.read_write", "host path \(bind.source) is writable\(sensitive ? " (system or credential directory)" : "")",
                sensitive ? W.writableSensitivePath : W.writableHostPath)
        }
        // A workspace is written with the caller's own ids, but it is a host path the sandbox
        // writes all the same, and one under /home can be a home directory itself.
        for place in policy.workspace.allow {
            let sensitive = isSensitive(place)
            add("workspace.allow", "a caller's directory under \(place) may be bound writable as the workspace\(sensitive ? " (it may be a home directory or a system one)" : "")",
                sensitive ? W.writableSensitivePath : W.writableHostPath)
        }
        // `[install]` carries no weight: it shapes no sandbox of this policy's own (it gates what
        // is installed for others to use), so a looser gate is for `policy diff` to show.
        for bind in policy.filesystem.readOnly where exposesHostState(bind.source) {
            add("filesystem.read_only", "host path \(bind.source) is readable (credentials or host state)", W.readableSensitivePath)
        }

        switch policy.landlock.mode {
        case .off: add("landlock.mode", "Landlock is off", W.landlockOff)
        case .bestEffort: add("landlock.mode", "Landlock is best-effort (runs without it on kernels that lack it)", W.landlockBestEffort)
        case .required: break
        }

        if policy.seccomp.action == .log {
            add("seccomp.action", "calls the profile refuses run anyway and are only reported (action = \"log\")", W.seccompLogOnly)
        }
        if profile.letsUnlistedThrough {
            add("seccomp.profile", "profile \(policy.seccomp.profile) lets unlisted syscalls through (default action \(profile.defaultAction))",
                W.seccompPermissiveDefault)
        } else {
            var points = 0.0
            for name in W.dangerousSyscalls where profile.verdict(name) == .allowed && points < W.dangerousSyscallCap {
                let p = min(W.dangerousSyscall, W.dangerousSyscallCap - points)
                points += p
                add("seccomp.profile", "profile \(policy.seccomp.profile) allows \(name)", p)
            }
        }

        if policy.network.mode == .allowlist {
            var points = 0.0
            for destination in policy.network.allow where points < W.networkDestinationCap {
                let broad = (try? EgressRule.parse(destination).get()).map(\.isBroad) ?? true
                let p = min(broad ? W.networkBroadDestination : W.networkDestination, W.networkDestinationCap - points)
                points += p
                add("network.allow", broad ? "reaches \(destination) (broad: a wildcard, address block or port range)" : "reaches \(destination)", p)
            }
        }

        if policy.process.uid == 0 { add("process.user", "runs as root inside its user namespace", W.rootUser) }

        let total = items.reduce(0) { $0 + $1.points }
        return PolicyScore(policy: policy.name, score: (min(total, 10) * 10).rounded() / 10, items: items)
    }

    /// Writing here changes the host system or someone's credentials: the path is, contains, or
    /// lies under a system or credential directory. (A project directory under /home is not.)
    static func isSensitive(_ path: String) -> Bool {
        if covers(path, ["/", "/etc", "/home", "/root", "/var", "/run", "/proc", "/sys", "/dev", "/boot", "/usr"],
                  under: ["/etc/", "/usr/", "/boot/", "/proc/", "/sys/", "/dev/", "/root/", "/run/", "/var/lib/", "/var/run/"]) {
            return true
        }
        // A home directory itself, or a dot-directory in one (~/.ssh, ~/.config): writing there
        // plants code the user runs next (shell rc files, ssh keys, git hooks).
        let parts = normalize(path).split(separator: "/")
        return parts.first == "home" && (parts.count == 2 || parts.dropFirst(2).contains { $0.hasPrefix(".") })
    }

    /// Reading here exposes credentials or host state. System directories (/usr, /lib, single
    /// /etc files) are what workloads need and do not count.
    static func exposesHostState(_ path: String) -> Bool {
        covers(path, ["/", "/etc", "/home", "/root", "/var", "/run", "/proc", "/sys", "/dev", "/boot"],
               under: ["/home/", "/root/", "/run/", "/var/lib/", "/var/run/", "/proc/", "/sys/"])
    }

    /// `path` is one of `exact`, an ancestor of one of them, or lies under one of `under`.
    static func covers(_ path: String, _ exact: [String], under: [String]) -> Bool {
        let p = normalize(path)
        if exact.contains(p) || under.contains(where: { p.hasPrefix($0) }) { return true }
        return p != "/" && exact.contains { $0.hasPrefix(p + "/") }
    }

    static func normalize(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }
}
