import CLinux
import CordonSystem
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// What one path was used for during a learning run.
public struct PathUse: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Looked up (stat, access, readlink, chdir, O_PATH): it must exist.
    public static let lookup = PathUse(rawValue: 1 << 0)
    /// Opened for reading, or executed.
    public static let read = PathUse(rawValue: 1 << 1)
    /// A directory whose entries were listed.
    public static let list = PathUse(rawValue: 1 << 2)
    /// An existing file opened for writing or changed (truncate, chmod, utimes, …).
    public static let write = PathUse(rawValue: 1 << 3)
    /// A directory in which entries were created, removed or renamed.
    public static let modifyEntries = PathUse(rawValue: 1 << 4)
}

/// Everything a learning run saw, with paths absolute and lexically normalised as the workload
/// named them (the supervisor shares its mount namespace).
public struct LearnObservation: Sendable {
    public var syscalls = Set<String>()
    public var paths: [String: PathUse] = [:]
    /// Paths that did not exist when the workload created them.
    public var created = Set<String>()
    /// The workload named a path relative to its working directory.
    public var usedRelativePaths = false
    /// "ADDRESS:PORT" of every connect/sendto with an IPv4 or IPv6 address.
    public var destinations = Set<String>()
    /// Unix socket paths it connected to (not carried into a policy: reported).
    public var unixSockets = Set<String>()
    public var cwd: String
    public var notifications = 0
    public init(cwd: String) { self.cwd = cwd }

    mutating func use(_ path: String, _ kind: PathUse) { paths[path, default: []].formUnion(kind) }
}

/// `cordon run --learn`: runs a command under observation — a seccomp filter that turns every
/// system call into a user notification which the supervisor records and answers "continue" —
/// and collects the syscalls, paths and destinations it used. The workload runs with the
/// caller's namespaces, credentials and files (it is observed, not confined), so only learn
/// commands you would run anyway. CONTINUE means the recorded arguments are read while the call
/// waits but used after: fine for learning, which decides nothing, and the reason the kernel
/// documentation warns against using it for enforcement.
public enum Learner {
    public struct Outcome: Sendable {
        public var observation: LearnObservation
        /// The command's wait status (WIFEXITED etc.), or nil when it could not be started.
        public var waitStatus: Int32?
        public var timedOut = false
        public var failure: String?
        /// The command could not be executed (status 127 by convention, like a shell).
        public var commandNotRun = false
    }

    public static func run(argv: [String], env: [String], searchPath: String, wallTime: Double?) -> Outcome {
        let cwd = FileSystem.symlinkTarget("/proc/self/cwd") ?? "/"
        var outcome = Outcome(observation: LearnObservation(cwd: cwd))
        guard cl_seccomp_notif_sizes_ok() != 0 else {
            outcome.failure = "seccomp user notification is not available with the expected structure sizes"
            return outcome
        }
        let filter: [UInt8]
        do { filter = try SeccompCompiler.learningFilter() } catch {
            outcome.failure = error.description
            return outcome
        }
        let channel: SocketPair
        do { channel = try Descriptor.socketPair(type: Int32(SOCK_SEQPACKET.rawValue)) } catch {
            outcome.failure = "socketpair: \(SystemError.text(error.errno))"
            return outcome
        }
        // Ours: `chan`; the child's end goes when the clone has its copy.
        let chan = channel.first
        let childEnd = channel.second
        let arena = CArena()
        var plan = cs_plan()
        plan.chan_fd = childEnd.raw
        plan.argv = arena.stringArray(argv)
        plan.envp = arena.stringArray(env)
        plan.exec_path_search = arena.string(searchPath)
        var pidfd: Int32 = -1
        let pid: pid_t = filter.withUnsafeBytes { bpf in
            plan.seccomp_filter = bpf.baseAddress
            plan.seccomp_len = filter.count / 8
            return cs_learn_spawn(&plan, &pidfd)
        }
        let cloneErrno = errno
        childEnd.close()
        guard pid > 0 else {
            outcome.failure = "clone: \(SystemError.text(cloneErrno))"
            return outcome
        }
        let process = Descriptor(adopting: pidfd)  // closed when this function returns

        // The first record carries the listener (or the step that failed before it existed).
        var report = cs_report()
        var listenerFD: Int32 = -1
        let n = withUnsafeMutableBytes(of: &report) { cl_recv_with_fd(chan.raw, $0.baseAddress, $0.count, &listenerFD) }
        guard n > 0, listenerFD >= 0 else {
            var ws: Int32 = 0
            _ = cl_pidfd_send_signal(process.raw, SIGKILL)
            _ = cl_pidfd_wait(process.raw, &ws, 0)
            outcome.failure = n > 0 ? "learning child: step \(report.step) failed: \(SystemError.text(report.err))"
                : "learning child ended before handing over its seccomp listener"
            return outcome
        }
        let listenerOwner = Descriptor(adopting: listenerFD)  // closed when this function returns
        let listener = listenerOwner.raw

        var recorder = Recorder(listener: listener, observation: outcome.observation)
        let deadline = wallTime.map { MonotonicClock.now + $0 }
        var exited = false
        // Until the command has exited and no process holds the filter any more (its children
        // may outlive it): the listener reports POLLHUP once the last user is gone.
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: exited ? -1 : process.raw, events: Int16(POLLIN), revents: 0)]
            var timeout: Int32 = -1
            if let deadline { timeout = Int32(max(0, min(Double(Int32.max) / 1000, (deadline - MonotonicClock.now) * 1000)).rounded(.up)) }
            let r = poll(&fds, 2, timeout)
            if r < 0 { if errno == EINTR { continue }; break }
            if r == 0 {
                outcome.timedOut = true
                _ = cl_pidfd_send_signal(process.raw, SIGKILL)
                // Descendants hold the filter too; they die with their process group only if the
                // command made none of its own, so they are reported rather than chased.
                break
            }
            if fds[0].revents & Int16(POLLIN) != 0 { recorder.answer() }
            if fds[1].revents & Int16(POLLIN) != 0, !exited {
                var ws: Int32 = 0
                if cl_pidfd_wait(process.raw, &ws, WNOHANG) == 0 { outcome.waitStatus = ws; exited = true }
            }
            if exited && fds[0].revents & Int16(POLLHUP | POLLERR) != 0 && fds[0].revents & Int16(POLLIN) == 0 { break }
        }
        if outcome.waitStatus == nil {
            var ws: Int32 = 0
            if cl_pidfd_wait(process.raw, &ws, 0) == 0 { outcome.waitStatus = ws }
        }
        // A step that failed after the hand-off (execve: not found, not executable) is reported
        // on the channel; the command never ran, so there is nothing to learn from.
        var late = cs_report()
        var extra: Int32 = -1
        if withUnsafeMutableBytes(of: &late, { cl_recv_with_fd(chan.raw, $0.baseAddress, $0.count, &extra) }) > 0, late.step != 0 {
            if extra >= 0 { Descriptor(adopting: extra).close() }
            outcome.failure = late.step == Int32(CS_STEP_EXEC.rawValue)
                ? "\(argv[0]): cannot execute: \(SystemError.text(late.err))"
                : "learning child: step \(late.step) failed: \(SystemError.text(late.err))"
            outcome.commandNotRun = true
        }
        outcome.observation = recorder.observation
        return outcome
    }
}

/// Reads each notification's arguments from the caller's memory and files the use.
struct Recorder {
    let listener: Int32
    var observation: LearnObservation
    static let atFDCWD: Int32 = -100
    /// O_PATH (not exported by the Glibc module).
    static let oPath: UInt64 = 0o10000000

    mutating func answer() {
        var request = seccomp_notif()
        guard cl_seccomp_notif_recv(listener, &request) == 0 else { return }
        record(request)
        // Answered after recording: the call waits while its arguments are read.
        _ = cl_seccomp_notif_respond_errno(listener, request.id, 0)
    }

    mutating func record(_ n: seccomp_notif) {
        observation.notifications += 1
        let name = SeccompCompiler.syscallName(n.data.nr)
        observation.syscalls.insert(name)
        let a = n.data.args
        let pid = n.pid
        let id = n.id
        func path(_ dirfd: UInt64?, _ address: UInt64) -> String? {
            guard address != 0, let raw = readString(pid: pid, address: address), !raw.isEmpty else { return nil }
            // The task may have died and its pid been reused while we read: drop the reading.
            guard cl_seccomp_notif_id_valid(listener, id) == 0 else { return nil }
            if raw.hasPrefix("/") { return normalize(raw) }
            let fd = dirfd.map { Int32(truncatingIfNeeded: $0) } ?? Self.atFDCWD
            let base: String?
            if fd == Self.atFDCWD {
                base = FileSystem.symlinkTarget("/proc/\(pid)/cwd")
                if base != nil { observation.usedRelativePaths = true }
            } else {
                base = FileSystem.symlinkTarget("/proc/\(pid)/fd/\(fd)")
            }
            guard let base, base.hasPrefix("/") else { return nil }
            return normalize(base + "/" + raw)
        }
        func fdPath(_ fd: UInt64) -> String? {
            guard let target = FileSystem.symlinkTarget("/proc/\(pid)/fd/\(Int32(truncatingIfNeeded: fd))"), target.hasPrefix("/") else { return nil }
            return target
        }
        func open(_ p: String?, flags: UInt64) {
            guard let p else { return }
            let accessMode = Int32(truncatingIfNeeded: flags) & O_ACCMODE
            let writes = accessMode != O_RDONLY || flags & UInt64(O_CREAT | O_TRUNC) != 0
            if flags & Self.oPath != 0 { observation.use(p, .lookup) }
            else if writes { change(p) }
            else { observation.use(p, FileSystem.isDirectory(p) ? .lookup : .read) }
        }
        /// An existing file is written; a missing one is created in its directory.
        func change(_ p: String?) {
            guard let p else { return }
            if FileSystem.kind(p) != .missing { observation.use(p, .write) } else { entries(p) }
        }
        /// An entry of p's directory is created, removed or renamed.
        func entries(_ p: String?) {
            guard let p else { return }
            if FileSystem.kind(p) == .missing { observation.created.insert(p) }
            observation.use(parent(p), .modifyEntries)
        }
        switch name {
        case "open": open(path(nil, a.0), flags: a.1)
        case "openat": open(path(a.0, a.1), flags: a.2)
        case "openat2":
            var how: UInt64 = 0
            if readMemory(pid: pid, address: a.2, into: &how) { open(path(a.0, a.1), flags: how) }
        case "creat": change(path(nil, a.0))
        case "execve": if let p = path(nil, a.0) { observation.use(p, .read) }
        case "execveat": if let p = path(a.0, a.1) { observation.use(p, .read) }
        case "stat", "lstat", "access", "readlink", "chdir", "statfs", "getxattr", "lgetxattr", "listxattr", "llistxattr":
            if let p = path(nil, a.0) { observation.use(p, .lookup) }
        case "newfstatat", "faccessat", "faccessat2", "readlinkat", "statx":
            if let p = path(a.0, a.1) { observation.use(p, .lookup) }
        case "getdents64", "getdents": if let p = fdPath(a.0) { observation.use(p, .list) }
        case "mkdir", "rmdir", "unlink", "mknod": entries(path(nil, a.0))
        case "mkdirat", "unlinkat", "mknodat": entries(path(a.0, a.1))
        case "rename": entries(path(nil, a.0)); entries(path(nil, a.1))
        case "renameat", "renameat2": entries(path(a.0, a.1)); entries(path(a.2, a.3))
        case "link": if let p = path(nil, a.0) { observation.use(p, .read) }; entries(path(nil, a.1))
        case "linkat": if let p = path(a.0, a.1) { observation.use(p, .read) }; entries(path(a.2, a.3))
        case "symlink": entries(path(nil, a.1))
        case "symlinkat": entries(path(a.1, a.2))
        case "truncate", "chmod", "chown", "lchown", "utime", "utimes", "setxattr", "lsetxattr", "removexattr", "lremovexattr":
            change(path(nil, a.0))
        case "fchmodat", "fchownat", "utimensat", "futimesat": if a.1 != 0 { change(path(a.0, a.1)) }
        case "connect": destination(pid: pid, address: a.1, length: a.2)
        case "sendto": if a.4 != 0 { destination(pid: pid, address: a.4, length: a.5) }
        default: break
        }
    }

    mutating func destination(pid: UInt32, address: UInt64, length: UInt64) {
        guard address != 0, length >= 2, length <= 128 else { return }
        var bytes = [UInt8](repeating: 0, count: Int(length))
        guard bytes.withUnsafeMutableBytes({ readMemory(pid: pid, address: address, into: $0) }) else { return }
        let family = Int32(bytes[0]) | Int32(bytes[1]) << 8
        let port = Int(bytes.count >= 4 ? UInt16(bytes[2]) << 8 | UInt16(bytes[3]) : 0)
        switch family {
        case AF_INET where bytes.count >= 8:
            observation.destinations.insert("\(bytes[4]).\(bytes[5]).\(bytes[6]).\(bytes[7]):\(port)")
        case AF_INET6 where bytes.count >= 24:
            let groups = stride(from: 8, to: 24, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            observation.destinations.insert("[\(groups.joined(separator: ":"))]:\(port)")
        case AF_UNIX where bytes.count > 2 && bytes[2] != 0:
            let path = bytes[2...].prefix { $0 != 0 }
            observation.unixSockets.insert(String(decoding: path, as: UTF8.self))
        default: break
        }
    }

    /// A NUL-terminated string in the task's memory (at most PATH_MAX bytes), read page by page
    /// so a string ending just before an unmapped page is still read.
    func readString(pid: UInt32, address: UInt64) -> String? {
        let raw = Glibc.open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard raw >= 0 else { return nil }
        let memory = Descriptor(adopting: raw)  // closed when this function returns
        let fd = memory.raw
        var result: [UInt8] = []
        var at = address
        let page: UInt64 = 4096
        while result.count < Int(PATH_MAX) {
            let chunk = Int(page - at % page)
            var buffer = [UInt8](repeating: 0, count: chunk)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, chunk, Int(bitPattern: UInt(at))) }
            guard n > 0 else { return nil }
            if let nul = buffer[..<n].firstIndex(of: 0) {
                result += buffer[..<nul]
                return String(decoding: result, as: UTF8.self)
            }
            result += buffer[..<n]
            at += UInt64(n)
        }
        return nil
    }

    func readMemory<T>(pid: UInt32, address: UInt64, into value: inout T) -> Bool {
        withUnsafeMutableBytes(of: &value) { readMemory(pid: pid, address: address, into: $0) }
    }

    func readMemory(pid: UInt32, address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        let raw = Glibc.open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard raw >= 0 else { return false }
        let memory = Descriptor(adopting: raw)
        return pread(memory.raw, buffer.baseAddress, buffer.count, Int(bitPattern: UInt(address))) == buffer.count
    }
}

/// "/a/./b//../c" → "/a/c" (lexically: a ".." after a symlink is taken literally).
func normalize(_ path: String) -> String { FileSystem.lexicallyNormalized(path) }

/// `path` is `directory` or lies below it.
func isWithin(_ path: String, _ directory: String) -> Bool {
    path == directory || path.hasPrefix(directory == "/" ? "/" : directory + "/")
}

func parent(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
    return String(path[..<slash])
}
