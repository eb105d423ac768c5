import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The limits a sandbox's cgroup enforces.
public struct CgroupLimits: Sendable, Equatable {
    /// Memory including swap, in bytes.
    public var memoryBytes: UInt64?
    public var pids: Int?
    /// CPU quota in cores (1.5 = one and a half CPUs' worth of time per period).
    public var cpuCores: Double?

    public init(memoryBytes: UInt64? = nil, pids: Int? = nil, cpuCores: Double? = nil) {
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpuCores = cpuCores
    }
}

/// What a cgroup observed: read after (or while) the sandbox runs.
public struct CgroupUsage: Sendable, Equatable {
    public var peakMemoryBytes: UInt64?
    public var oomKills: Int = 0
    public var pidsLimitHits: Int = 0
    /// CPU time of everything that ran in the cgroup, killed processes included.
    public var cpuUserMicros: UInt64?
    public var cpuSystemMicros: UInt64?
}

/// Which cgroup layout the host has. v2 (unified) is what production hosts run; v1 is what this
/// build machine has (controllers in v1, an empty v2 hierarchy). Both sit behind `Cgroup`.
public enum CgroupVersion: String, Sendable { case v1, v2 }

public struct CgroupHierarchy: Sendable {
    public let version: CgroupVersion
    /// v2: one entry, the directory sandboxes are created under. v1: one entry per mounted
    /// hierarchy, with the controllers it carries (cpu and cpuacct are often mounted together).
    let parents: [(controllers: Set<String>, parent: String)]

    static let v1Controllers = ["memory", "pids", "cpu", "cpuacct"]
    static let cgroup2Magic: Int = 0x6367_7270

    /// Detects the layout under `mount` (normally /sys/fs/cgroup) and prepares Cordon's parent
    /// cgroup `group` (created if missing; controllers enabled on v2).
    public static func detect(mount: String = "/sys/fs/cgroup", group: String = "cordon") throws(SystemError) -> CgroupHierarchy {
        if try version(mount: mount) == .v2 {
            let parent = "\(mount)/\(group)"
            try FileSystem.ensureDirectory(parent)
            let available = (try? FileSystem.readString("\(mount)/cgroup.controllers")) ?? ""
            let wanted = ["memory", "pids", "cpu"].filter { available.split(separator: " ").contains(Substring($0)) }
            let enable = wanted.map { "+\($0)" }.joined(separator: " ")
            if !enable.isEmpty {
                try FileSystem.writeControl("\(mount)/cgroup.subtree_control", enable)
                try FileSystem.writeControl("\(parent)/cgroup.subtree_control", enable)
            }
            return CgroupHierarchy(version: .v2, parents: [(Set(wanted), parent)])
        }
        var byHierarchy: [String: Set<String>] = [:]
        var order: [String] = []
        for controller in v1Controllers where FileSystem.exists("\(mount)/\(controller)/tasks") {
            // Co-mounted controllers ("cpu,cpuacct") share one directory tree: create it once.
            let real = FileSystem.realPath("\(mount)/\(controller)") ?? "\(mount)/\(controller)"
            if byHierarchy[real] == nil { order.append(real) }
            byHierarchy[real, default: []].insert(controller)
        }
        var parents: [(controllers: Set<String>, parent: String)] = []
        for root in order {
            let parent = "\(root)/\(group)"
            try FileSystem.ensureDirectory(parent)
            parents.append((byHierarchy[root]!, parent))
        }
        let all = parents.reduce(into: Set<String>()) { $0.formUnion($1.controllers) }
        guard all.contains("memory"), all.contains("pids") else {
            throw SystemError("find cgroup controllers memory and pids", path: mount, errno: ENOENT)
        }
        return CgroupHierarchy(version: .v1, parents: parents)
    }

    /// The cgroup `name`: its directories, none of them created yet (`create`).
    public func cgroup(named name: String) -> Cgroup {
        var dirs: [String] = []
        var controllersByDir: [String: Set<String>] = [:]
        for (controllers, parent) in parents {
            dirs.append("\(parent)/\(name)")
            controllersByDir["\(parent)/\(name)"] = controllers
        }
        return Cgroup(version: version, directories: dirs, controllersByDirectory: controllersByDir)
    }

    /// Creates `cgroup` (from `cgroup(named:)`) with `limits`. A stale cgroup of the same name
    /// (left by a supervisor that was killed) is emptied and reused. On failure nothing is left.
    public func create(_ cgroup: Cgroup, limits: CgroupLimits) throws(SystemError) {
        var made: [String] = []
        do {
            for dir in cgroup.directories {
                try Cgroup.makeFresh(dir)
                made.append(dir)
                try Self.writeLimits(limits, version: version, controllers: cgroup.controllersByDirectory[dir] ?? [], dir: dir)
            }
        } catch {
            for dir in made.reversed() { rmdir(dir) }
            throw error
        }
    }

    /// `cgroup(named:)` and `create` in one.
    public func create(name: String, limits: CgroupLimits) throws(SystemError) -> Cgroup {
        let cgroup = cgroup(named: name)
        try create(cgroup, limits: limits)
        return cgroup
    }

    /// The sandbox cgroups (`s<slot>`) that exist under Cordon's parent, by slot.
    public func sandboxSlots() -> [Int] {
        var slots = Set<Int>()
        for (_, parent) in parents {
            for name in FileSystem.listDirectory(parent) where name.hasPrefix("s") {
                if let n = Int(name.dropFirst()), "s\(n)" == name { slots.insert(n) }
            }
        }
        return slots.sorted()
    }

    /// The existing cgroup `name`, without creating or changing it.
    public func existing(name: String) -> Cgroup {
        var dirs: [String] = []
        var controllersByDir: [String: Set<String>] = [:]
        for (controllers, parent) in parents where FileSystem.exists("\(parent)/\(name)") {
            dirs.append("\(parent)/\(name)")
            controllersByDir["\(parent)/\(name)"] = controllers
        }
        return Cgroup(version: version, directories: dirs, controllersByDirectory: controllersByDir)
    }

    static func writeLimits(_ limits: CgroupLimits, version: CgroupVersion, controllers: Set<String>, dir: String) throws(SystemError) {
        switch version {
        case .v2:
            if let memory = limits.memoryBytes {
                try FileSystem.writeControl("\(dir)/memory.max", "\(memory)")
                try? FileSystem.writeControl("\(dir)/memory.swap.max", "0")
            }
            if let pids = limits.pids { try FileSystem.writeControl("\(dir)/pids.max", "\(pids)") }
            if let cores = limits.cpuCores { try FileSystem.writeControl("\(dir)/cpu.max", "\(Int(cores * 100_000)) 100000") }
        case .v1:
            if controllers.contains("memory"), let memory = limits.memoryBytes {
                try FileSystem.writeControl("\(dir)/memory.limit_in_bytes", "\(memory)")
                // memsw (memory + swap) exists only with swap accounting.
                if FileSystem.exists("\(dir)/memory.memsw.limit_in_bytes") {
                    try FileSystem.writeControl("\(dir)/memory.memsw.limit_in_bytes", "\(memory)")
                }
            }
            if controllers.contains("pids"), let pids = limits.pids { try FileSystem.writeControl("\(dir)/pids.max", "\(pids)") }
            if controllers.contains("cpu"), let cores = limits.cpuCores {
                try FileSystem.writeControl("\(dir)/cpu.cfs_period_us", "100000")
                try FileSystem.writeControl("\(dir)/cpu.cfs_quota_us", "\(Int(cores * 100_000))")
            }
        }
    }
}

/// A v1 cgroup's `tasks` files, open for writing; closed with their owner.
public struct CgroupTaskFiles: ~Copyable, Sendable {
    public let raw: [Int32]
    deinit { for fd in raw { Glibc.close(fd) } }
}

/// One sandbox's cgroup: a directory per v1 controller, or one v2 directory.
public struct Cgroup: Sendable {
    public let version: CgroupVersion
    public let directories: [String]
    var controllersByDirectory: [String: Set<String>] = [:]

    static func makeFresh(_ dir: String) throws(SystemError) {
        if mkdir(dir, 0o755) == 0 { return }
        let code = Glibc.errno
        guard code == EEXIST else { throw SystemError("mkdir", path: dir, errno: code) }
        // Left behind by a supervisor killed before its guardian could run: empty and reuse.
        let stale = Cgroup(version: .v1, directories: [dir], controllersByDirectory: [:])
        stale.killAll()
        try stale.remove()
        try syscallRetrying("mkdir", path: dir) { mkdir(dir, 0o755) }
    }

    /// v1: each hierarchy's `tasks` file, opened for writing (by root: the kernel checks the
    /// opener's credentials, so a task holding one may write "0" to move itself in whatever its
    /// own credentials are by then; see CSpawn). None on v2.
    public func openTaskFiles() throws(SystemError) -> CgroupTaskFiles {
        guard version == .v1 else { return CgroupTaskFiles(raw: []) }
        var fds: [Int32] = []
        for dir in directories {
            let path = "\(dir)/tasks"
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let code = Glibc.errno
                for fd in fds { Glibc.close(fd) }
                throw SystemError("open", path: path, errno: code)
            }
            fds.append(fd)
        }
        return CgroupTaskFiles(raw: fds)
    }

    /// v2: a descriptor of the directory, for clone3's CLONE_INTO_CGROUP.
    public func openDirectory() throws(SystemError) -> Descriptor {
        let dir = directories[0]
        return Descriptor(adopting: try syscallRetrying("open", path: dir) { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) })
    }

    public func usage() -> CgroupUsage {
        usage { dir, file in try? FileSystem.readString("\(dir)/\(file)") }
    }

    /// The files `usage` reads, by directory.
    public var usageFiles: [(dir: String, file: String)] {
        directories.flatMap { dir -> [(dir: String, file: String)] in
            let controllers = controllersByDirectory[dir] ?? []
            var files: [String] = []
            switch version {
            case .v2: files = ["memory.peak", "memory.events", "pids.events", "cpu.stat"]
            case .v1:
                if controllers.contains("memory") { files += ["memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes", "memory.oom_control"] }
                if controllers.contains("pids") { files.append("pids.events") }
                if controllers.contains("cpuacct") { files += ["cpuacct.usage_user", "cpuacct.usage_sys"] }
            }
            return files.map { (dir, $0) }
        }
    }

    /// The counters, each file's text as `read` gives it (nil: unreadable).
    func usage(_ read: (_ dir: String, _ file: String) -> String?) -> CgroupUsage {
        func number(_ dir: String, _ file: String) -> UInt64? { read(dir, file).flatMap { UInt64($0.split(separator: "\n").first ?? "") } }
        func keyed(_ dir: String, _ file: String, _ key: String) -> UInt64? { read(dir, file).flatMap { Self.value(of: key, in: $0) } }
        var usage = CgroupUsage()
        for dir in directories {
            let controllers = controllersByDirectory[dir] ?? []
            switch version {
            case .v2:
                usage.peakMemoryBytes = number(dir, "memory.peak")
                usage.oomKills = Int(keyed(dir, "memory.events", "oom_kill") ?? 0)
                usage.pidsLimitHits = Int(keyed(dir, "pids.events", "max") ?? 0)
                usage.cpuUserMicros = keyed(dir, "cpu.stat", "user_usec")
                usage.cpuSystemMicros = keyed(dir, "cpu.stat", "system_usec")
            case .v1:
                if controllers.contains("memory") {
                    let peak = number(dir, "memory.max_usage_in_bytes")
                    let swapPeak = number(dir, "memory.memsw.max_usage_in_bytes")
                    usage.peakMemoryBytes = [peak, swapPeak].compactMap { $0 }.max()
                    usage.oomKills = Int(keyed(dir, "memory.oom_control", "oom_kill") ?? 0)
                }
                if controllers.contains("pids") { usage.pidsLimitHits = Int(keyed(dir, "pids.events", "max") ?? 0) }
                if controllers.contains("cpuacct") {
                    usage.cpuUserMicros = number(dir, "cpuacct.usage_user").map { $0 / 1000 }
                    usage.cpuSystemMicros = number(dir, "cpuacct.usage_sys").map { $0 / 1000 }
                }
            }
        }
        return usage
    }

    /// How many processes are in the cgroup now (its `cgroup.procs`; one that has exited is
    /// not, even before it is reaped), nil when that cannot be read.
    public func processCount() -> Int? { processIDs()?.count }

    /// The processes in the cgroup now (host pids, sorted), nil when they cannot be read.
    public func processIDs() -> [pid_t]? {
        guard let dir = directories.first, let text = try? FileSystem.readString("\(dir)/cgroup.procs") else { return nil }
        return text.split(separator: "\n").compactMap { pid_t($0) }.sorted()
    }

    /// The files `usage` reads, opened once: read again and again without a path lookup each time.
    public func openCounters() -> CgroupCounters { CgroupCounters(self) }

    /// Only the limit events, which the supervisor polls while the sandbox runs.
    public func limitEvents() -> (oomKills: Int, pidsLimitHits: Int) {
        var oom = 0, pids = 0
        for dir in directories {
            let controllers = controllersByDirectory[dir] ?? []
            if version == .v2 || controllers.contains("memory") {
                oom = Int(Self.keyed(dir, version == .v2 ? "memory.events" : "memory.oom_control", "oom_kill") ?? 0)
            }
            if version == .v2 || controllers.contains("pids") { pids = Int(Self.keyed(dir, "pids.events", "max") ?? 0) }
        }
        return (oom, pids)
    }

    /// SIGKILLs every process in the cgroup (cgroup.kill on v2).
    public func killAll() {
        for dir in directories {
            if FileSystem.exists("\(dir)/cgroup.kill") {
                if (try? FileSystem.writeControl("\(dir)/cgroup.kill", "1")) != nil { continue }
            }
            guard let text = try? FileSystem.readString("\(dir)/cgroup.procs") else { continue }
            // Pin each pid with a pidfd, then check it is still ours: a pid reused by an
            // unrelated process between the read and the kill must never be signalled.
            let suffix = "/" + dir.split(separator: "/").suffix(2).joined(separator: "/")
            for line in text.split(separator: "\n") {
                guard let pid = pid_t(line), pid > 1 else { continue }
                let pidfd = cl_pidfd_open(pid)
                guard pidfd >= 0 else { continue }
                defer { close(pidfd) }
                let cgroups = (try? FileSystem.readString("/proc/\(pid)/cgroup")) ?? ""
                if cgroups.split(separator: "\n").contains(where: { $0.hasSuffix(suffix) }) {
                    _ = cl_pidfd_send_signal(pidfd, SIGKILL)
                }
            }
        }
    }

    /// Removes the directories; retries for up to 2 s while dying processes leave.
    public func remove() throws(SystemError) {
        for dir in directories {
            var attempts = 0
            while rmdir(dir) != 0 {
                let code = Glibc.errno
                if code == ENOENT { break }
                attempts += 1
                guard code == EBUSY, attempts < 400 else { throw SystemError("rmdir", path: dir, errno: code) }
                if attempts % 50 == 0 { killAll() }
                usleep(5000)
            }
        }
    }

    static func keyed(_ dir: String, _ file: String, _ key: String) -> UInt64? {
        guard let text = try? FileSystem.readString("\(dir)/\(file)") else { return nil }
        return value(of: key, in: text)
    }

    /// The number after `key` in a "key value" per line file (memory.events, cpu.stat, ...).
    static func value(of key: String, in text: String) -> UInt64? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return UInt64(parts[1]) }
        }
        return nil
    }
}

/// A cgroup's counters, their files open: each read is one `pread` at offset 0 (which counter
/// files answer afresh every time) instead of an open, a path lookup, reads and a close — a
/// warm sandbox's record is read as its command ends, on its answer's path, where seven files
/// cost ~0.15 ms by path. Not the process list: v1 keeps an open `cgroup.procs`'s list of
/// pids for reuse (up to a second) instead of reading it again, so it is opened anew each
/// time. A file that could not be opened is read by path. Closed when released; safe to read
/// from several threads.
public final class CgroupCounters: @unchecked Sendable {
    private let cgroup: Cgroup
    /// "dir/file" → descriptor; fixed once made.
    private let files: [String: Int32]

    init(_ cgroup: Cgroup) {
        self.cgroup = cgroup
        var files: [String: Int32] = [:]
        for (dir, file) in cgroup.usageFiles {
            let path = "\(dir)/\(file)"
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { files[path] = fd }
        }
        self.files = files
    }

    deinit { for fd in files.values { close(fd) } }

    /// The file's whole text, from its start (nil: unreadable).
    func text(_ dir: String, _ file: String) -> String? {
        let path = "\(dir)/\(file)"
        guard let fd = files[path] else { return try? FileSystem.readString(path) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < 16 << 20 {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(out.count)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func usage() -> CgroupUsage { cgroup.usage { text($0, $1) } }
}

extension CgroupHierarchy {
    /// The layout at `mount` without creating anything.
    public static func version(mount: String) throws(SystemError) -> CgroupVersion {
        let type = try syscallRetrying("statfs", path: mount) { cl_fs_type(mount) }
        return type == cgroup2Magic ? .v2 : .v1
    }
}
