import CLinux
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Small typed wrappers over the file calls Cordon makes from the parent.
public enum FileSystem {
    /// Numbers `writeAtomically`'s temporary files within this process.
    private static let temporaryNumber = Atomic<UInt64>(0)
    /// The largest first buffer `read` sizes from a file's claimed size.
    static let initialCapacity = 16 << 20

    /// Reads a whole file. The corresponding C functions are `open` and `read`.
    public static func read(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        let fd = try syscallRetrying("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        return try readAll(fd, path: path, limit: limit)
    }

    /// The working directory ("/" when it cannot be read).
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` made absolute against the working directory, lexically (`.` and `..` resolved,
    /// no symlink followed): the same path whichever directory it is given from.
    public static func absolute(_ path: String) -> String {
        lexicallyNormalized(path.hasPrefix("/") ? path : currentDirectory() + "/" + path)
    }

    /// "/a/./b//../c" → "/a/c", taken as rooted (a ".." after a symlink is taken literally).
    public static func lexicallyNormalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Reads a whole file, or standard input for "-" — read from descriptor 0 itself, never by
    /// opening /dev/stdin again: inside a sandbox Landlock refuses that reopen, and a worker's
    /// input is handed over as a descriptor.
    public static func readInput(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        path == "-" ? try readAll(0, path: "standard input", limit: limit) : try read(path, limit: limit)
    }

    /// Reads an open descriptor to its end (more than `limit` bytes is EFBIG); `shown` names it
    /// in errors.
    public static func read(descriptor fd: Int32, shown: String, limit: Int) throws(SystemError) -> [UInt8] {
        try readAll(fd, path: shown, limit: limit)
    }

    /// Reads `fd` to its end; more than `limit` bytes is EFBIG. Reads straight into the result,
    /// sized from fstat (a pseudo-file says 0 or 4096: it grows as needed), without a zeroed
    /// 64 KiB chunk per call: `cordon run` reads a dozen small files on every spawn. The size is
    /// a hint, never trusted: a tmpfs or FUSE file may claim anything up to Int64.max, so the
    /// first buffer is at most `initialCapacity` and the rest grows with what is actually read.
    private static func readAll(_ fd: Int32, path: String, limit: Int) throws(SystemError) -> [UInt8] {
        precondition(limit >= 0, "read limit \(limit)")
        // One byte more than the limit tells a file of exactly `limit` bytes from a longer one.
        let most = limit < Int.max ? limit + 1 : Int.max
        var st = stat()
        let claimed = fstat(fd, &st) == 0 && st.st_size > 0 ? Int(st.st_size) : 0
        let hint = claimed > 0 ? min(claimed, initialCapacity - 1) + 1 : 4096
        var out: [UInt8] = []
        var capacity = min(max(hint, 512), most)
        while true {
            if out.count == capacity { capacity = capacity > most / 2 ? most : capacity * 2 }
            let before = out.count
            var failure: Int32 = 0
            out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                if before > 0 { buffer.baseAddress!.update(from: out, count: before) }
                count = before
                while count < capacity {
                    let n = Glibc.read(fd, buffer.baseAddress! + count, capacity - count)
                    if n > 0 { count += n; continue }
                    if n < 0 && Glibc.errno == EINTR { continue }
                    if n < 0 { failure = Glibc.errno }
                    break
                }
            }
            if failure != 0 { throw SystemError("read", path: path, errno: failure) }
            if out.count > limit { throw SystemError("read (larger than \(limit) bytes)", path: path, errno: EFBIG) }
            if out.count < capacity { return out }  // end of file before the buffer filled
        }
    }

    /// Reads a whole regular file of at most `limit` bytes. Opened non-blocking, so a FIFO or a
    /// device named in its place is refused instead of blocking the reader; with `noFollow` a
    /// final symlink is refused too. `trusted`: the file must be owned by root (or the caller's
    /// effective uid) and not writable by group or others — checked on the opened descriptor, so
    /// nothing can be swapped in between the check and the read. The corresponding C functions
    /// are `open`, `fstat` and `read`.
    public static func readRegularFile(_ path: String, limit: Int, noFollow: Bool = false, trusted: Bool = false) throws(SystemError) -> [UInt8] {
        try readRegularFileIdentified(path, limit: limit, noFollow: noFollow, trusted: trusted).bytes
    }

    /// `readRegularFile`, with the identity of the file read, taken from the open descriptor
    /// before reading: a change while it is read gives the file another identity afterwards.
    public static func readRegularFileIdentified(_ path: String, limit: Int, noFollow: Bool = false,
                                                 trusted: Bool = false) throws(SystemError) -> (bytes: [UInt8], identity: FileIdentity) {
        let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (noFollow ? O_NOFOLLOW : 0)
        let fd = try syscallRetrying("open", path: path) { open(path, flags) }
        defer { close(fd) }
        var st = stat()
        _ = try syscallRetrying("fstat", path: path) { fstat(fd, &st) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw SystemError("read (not a regular file)", path: path, errno: EINVAL) }
        if trusted {
            guard st.st_uid == 0 || st.st_uid == geteuid() else {
                throw SystemError("read (owned by uid \(st.st_uid), not root)", path: path, errno: EPERM)
            }
            guard st.st_mode & 0o022 == 0 else {
                throw SystemError("read (mode \(String(st.st_mode & 0o777, radix: 8)) lets others than its owner write it: chmod go-w)", path: path, errno: EPERM)
            }
        }
        guard st.st_size <= limit else { throw SystemError("read (larger than \(limit) bytes)", path: path, errno: EFBIG) }
        return (try readAll(fd, path: path, limit: limit), FileIdentity(st))
    }

    /// The identity of what `path` names, following symlinks; nil when nothing is there. The
    /// corresponding C function is `stat`.
    public static func identity(_ path: String) -> FileIdentity? {
        var st = stat()
        return stat(path, &st) == 0 ? FileIdentity(st) : nil
    }

    /// The first `count` bytes of a file (fewer if it is shorter).
    public static func readPrefix(_ path: String, count: Int) throws(SystemError) -> [UInt8] {
        let fd = try syscallRetrying("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = try syscallRetrying("read", path: path) {
                out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, count - got) }
            }
            if n == 0 { break }
            got += n
        }
        return Array(out[0..<got])
    }

    public static func readString(_ path: String) throws(SystemError) -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    /// Writes `text` to an existing file (cgroup and /proc control files) in one write call.
    public static func writeControl(_ path: String, _ text: String) throws(SystemError) {
        let fd = try syscallRetrying("open", path: path) { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        let count = bytes.count
        let n = try syscallRetrying("write", path: path) {
            bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, count) }
        }
        if n != count { throw SystemError("write (short)", path: path, errno: EIO) }
    }

    /// Creates or replaces a file atomically (temporary file + rename in the same directory).
    /// `durable: false` skips the fsync, for a cache whose entries are checked when read (a crash
    /// may leave an empty or partial file, never a mix of two).
    /// The temporary file is this call's alone (numbered per process, created with O_EXCL):
    /// two threads writing the same path once shared `PATH.tmp.PID`, and one's bytes ran into
    /// the other's before the rename.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws(SystemError) {
        let tmp = "\(path).tmp.\(getpid()).\(temporaryNumber.wrappingAdd(1, ordering: .relaxed).newValue)"
        let create = { () throws(SystemError) -> Int32 in
            try syscallRetrying("open", path: tmp) { open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode) }
        }
        let fd: Int32
        do {
            fd = try create()
        } catch where error.errno == EEXIST {
            // Left by an earlier process that had this pid and died before its rename.
            unlink(tmp)
            fd = try create()
        }
        var written = 0
        do {
            while written < bytes.count {
                let n = try syscallRetrying("write", path: tmp) {
                    bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
                }
                written += n
            }
            if durable { try syscallRetrying("fsync", path: tmp) { fsync(fd) } }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        try syscallRetrying("rename", path: path) { rename(tmp, path) }
    }

    /// mkdir -p: the last component gets `mode` exactly (whatever the umask) when it is made.
    /// Missing parents get 0755 exactly when `mode` lets others search the directory (they
    /// must reach it: a runtime directory above a sandbox's root), else 0755 narrowed by the
    /// umask. Existing directories are left as they are.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        let parts = path.split(separator: "/")
        let reachable = mode & 0o001 != 0
        for (i, part) in parts.enumerated() {
            current += "/" + part
            let last = i == parts.count - 1
            if try !makeDirectory(current, mode: last ? mode : 0o755, exactly: last || reachable) && Glibc.errno != EEXIST {
                throw SystemError("mkdir", path: current, errno: Glibc.errno)
            }
        }
    }

    /// Like `makeDirectories`, but one mkdir when the directory already exists (the usual case
    /// on the spawn path).
    public static func ensureDirectory(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        if try makeDirectory(path, mode: mode, exactly: true) || Glibc.errno == EEXIST { return }
        try makeDirectories(path, mode: mode)
    }

    /// mkdir, then with `exactly` the mode not narrowed by the umask: a directory others must
    /// search is made so under a caller's umask of 077 too (a setgid bit inherited from the
    /// parent is kept). False (errno set) when mkdir failed; throws when the mode could not be
    /// set on the directory it made.
    private static func makeDirectory(_ path: String, mode: mode_t, exactly: Bool) throws(SystemError) -> Bool {
        guard mkdir(path, mode) == 0 else { return false }
        // Only group and other bits can have been taken; a private directory needs nothing.
        guard exactly, mode & 0o077 != 0 else { return true }
        // By descriptor, not following a symlink, and only our own new directory: in a parent
        // others may write, the name could have been swapped since the mkdir.
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: Glibc.errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("stat", path: path, errno: Glibc.errno) }
        guard st.st_uid == geteuid() else { throw SystemError("mkdir (replaced by another user's directory)", path: path, errno: EEXIST) }
        guard fchmod(fd, mode | (st.st_mode & S_ISGID)) == 0 else { throw SystemError("chmod", path: path, errno: Glibc.errno) }
        return true
    }

    public enum Kind: Sendable, Equatable { case missing, directory, file, device, symlink(String), other }

    /// What is at `path`, without following a final symlink. The corresponding C function is `lstat`.
    public static func kind(_ path: String) -> Kind {
        var st = stat()
        if lstat(path, &st) != 0 { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buf, Int(PATH_MAX))
            guard n >= 0 else { return .other }
            return .symlink(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case S_IFREG: return .file
        case S_IFCHR: return .device
        default: return .other
        }
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The size in bytes of what is at `path`, without following a final symlink. The
    /// corresponding C function is `lstat`.
    public static func size(_ path: String) throws(SystemError) -> Int64 {
        var st = stat()
        _ = try syscallRetrying("lstat", path: path) { lstat(path, &st) }
        return Int64(st.st_size)
    }

    /// Whether `path`, following symlinks, is a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    /// What the symlink at `path` points to; nil when `path` is not a symlink.
    public static func symlinkTarget(_ path: String) -> String? {
        if case .symlink(let target) = kind(path) { return target }
        return nil
    }

    /// The directory of the running executable (the binaries Cordon installs together live
    /// there: cordon-scan, cordon-init); nil when /proc/self/exe cannot be read.
    public static let executableDirectory: String? = {
        guard let exe = symlinkTarget("/proc/self/exe"), let slash = exe.lastIndex(of: "/") else { return nil }
        return String(exe[..<slash])
    }()

    /// Whether `path` (not following a final symlink) is owned by root and not writable by group
    /// or others: the condition for trusting what is in it (locks, cached filters, mount points).
    public static func isRootOwnedPrivate(_ path: String, directory: Bool) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_uid == 0, st.st_mode & 0o022 == 0 else { return false }
        return (st.st_mode & S_IFMT) == (directory ? S_IFDIR : S_IFREG)
    }

    /// Reads a file only if it and its directory are root's and private (see `isRootOwnedPrivate`).
    public static func readTrusted(_ path: String, limit: Int = 16 << 20) -> [UInt8]? {
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard isRootOwnedPrivate(dir.isEmpty ? "/" : dir, directory: true), isRootOwnedPrivate(path, directory: false) else { return nil }
        return try? read(path, limit: limit)
    }

    /// Regular files below `directory`, recursively, sorted; symlinks are not followed.
    public static func regularFiles(under directory: String) throws(SystemError) -> [String] {
        var out: [String] = []
        var pending = [directory]
        while let dir = pending.popLast() {
            for name in try entries(dir) {
                let path = dir.hasSuffix("/") ? dir + name : "\(dir)/\(name)"
                switch kind(path) {
                case .directory: pending.append(path)
                case .file: out.append(path)
                default: break
                }
            }
        }
        return out.sorted()
    }

    /// The names in `directory` (without "." and ".."), unsorted.
    /// The names in the open directory `dir` (without . and ..), as the kernel has them: bytes,
    /// in no particular encoding. `dir` itself is left open and where it was.
    public static func entryNames(_ dir: Int32) throws(SystemError) -> [[UInt8]] {
        let copy = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard copy >= 0, let stream = fdopendir(copy) else {
            let e = Glibc.errno
            if copy >= 0 { close(copy) }
            throw SystemError("opendir", path: nil, errno: e)
        }
        defer { closedir(stream) }
        var out: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name != [46] && name != [46, 46] { out.append(name) }
        }
        return out
    }

    static func entries(_ directory: String) throws(SystemError) -> [String] {
        guard let handle = opendir(directory) else { throw SystemError("opendir", path: directory, errno: Glibc.errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The names in `directory`, sorted; empty when it cannot be read.
    public static func listDirectory(_ directory: String) -> [String] {
        ((try? entries(directory)) ?? []).sorted()
    }

    /// Removes `path` and, if it is a directory, everything below it (`removeTree(in:name:)`;
    /// the directories on the way to it are followed as the path says, but with `noFollow` not
    /// its parent itself when that is a symlink: a store's own entries). A missing path is fine.
    public static func removeTree(_ path: String, noFollow: Bool = false) throws(SystemError) {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        let slash = trimmed.lastIndex(of: "/")
        let parentPath = slash.map { $0 == trimmed.startIndex ? "/" : String(trimmed[..<$0]) } ?? "."
        let name = slash.map { String(trimmed[trimmed.index(after: $0)...]) } ?? String(trimmed)
        guard !name.isEmpty, name != ".", name != ".." else { throw SystemError("remove", path: path, errno: EINVAL) }
        let parent = open(parentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (noFollow ? O_NOFOLLOW : 0))
        if parent < 0 {
            if Glibc.errno == ENOENT { return }
            throw SystemError("open", path: parentPath, errno: Glibc.errno)
        }
        defer { Glibc.close(parent) }
        try removeTree(in: parent, name: Array(name.utf8))
    }

    /// SHA-256 (hex) and size of everything `fd` holds, read from offset 0 with pread (the
    /// descriptor's own offset is left as it is).
    public static func sha256(of fd: Int32) throws(SystemError) -> (hex: String, size: Int64) {
        var hash = SHA256()
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(size)) }
            if n < 0 && Glibc.errno == EINTR { continue }
            guard n >= 0 else { throw SystemError("read", path: "descriptor \(fd)", errno: Glibc.errno) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            size += Int64(n)
        }
        return (hash.hexDigest(), size)
    }

    /// Removes `name` in the directory `parent` and, if it is a directory, everything below it,
    /// through descriptors and following nothing (a symlink is removed, not followed), however
    /// deep and whatever its names' bytes (a tree written by a sandbox or a subverted worker may
    /// nest directories past PATH_MAX or past the descriptor limit, and name files in no
    /// encoding): one directory open at a time, climbing back through ".." checked against the
    /// device and inode it came from, no recursion. A missing name is fine. For a tree nothing
    /// else changes meanwhile: a directory moved away during the removal is an error (ESTALE),
    /// never followed.
    public static func removeTree(in parent: Int32, name: [UInt8]) throws(SystemError) {
        func withName<T>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
            (name + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
        }
        func shown(_ name: [UInt8]) -> String { String(decoding: name, as: UTF8.self) }
        let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        var st = stat()
        guard withName(name, { fstatat(parent, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
            if Glibc.errno == ENOENT { return }
            throw SystemError("stat", path: shown(name), errno: Glibc.errno)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            guard withName(name, { unlinkat(parent, $0, 0) }) == 0 || Glibc.errno == ENOENT else {
                throw SystemError("unlink", path: shown(name), errno: Glibc.errno)
            }
            return
        }
        // The directories entered, by name in the one above and identity; only the deepest open.
        var levels: [(name: [UInt8], device: UInt64, inode: UInt64)] = [(name, UInt64(st.st_dev), UInt64(st.st_ino))]
        var current = withName(name) { openat(parent, $0, flags) }
        guard current >= 0 else { throw SystemError("open", path: shown(name), errno: Glibc.errno) }
        defer { if current >= 0 { Glibc.close(current) } }
        while true {
            // Files go at once; the first directory is entered. A directory whose listing is
            // read again on the way back up has lost every file and emptied directory.
            var entered = false
            for child in try entryNames(current) {
                var cst = stat()
                guard withName(child, { fstatat(current, $0, &cst, AT_SYMLINK_NOFOLLOW) }) == 0 else { continue }
                if (cst.st_mode & S_IFMT) == S_IFDIR {
                    let next = withName(child) { openat(current, $0, flags) }
                    guard next >= 0 else { throw SystemError("open", path: shown(child), errno: Glibc.errno) }
                    Glibc.close(current)
                    current = next
                    levels.append((child, UInt64(cst.st_dev), UInt64(cst.st_ino)))
                    entered = true
                    break
                }
                guard withName(child, { unlinkat(current, $0, 0) }) == 0 || Glibc.errno == ENOENT else {
                    throw SystemError("unlink", path: shown(child), errno: Glibc.errno)
                }
            }
            if entered { continue }
            // Empty: up one level and remove it there.
            let done = levels.removeLast()
            guard let above = levels.last else {
                Glibc.close(current)
                current = -1
                guard withName(done.name, { unlinkat(parent, $0, AT_REMOVEDIR) }) == 0 || Glibc.errno == ENOENT else {
                    throw SystemError("rmdir", path: shown(done.name), errno: Glibc.errno)
                }
                return
            }
            let up = openat(current, "..", flags)
            guard up >= 0 else { throw SystemError("open", path: "..", errno: Glibc.errno) }
            Glibc.close(current)
            current = up
            var ust = stat()
            guard fstat(up, &ust) == 0, UInt64(ust.st_dev) == above.device, UInt64(ust.st_ino) == above.inode else {
                throw SystemError("climb back to \(shown(above.name)) (a directory moved while it was removed)", path: shown(name), errno: ESTALE)
            }
            guard withName(done.name, { unlinkat(up, $0, AT_REMOVEDIR) }) == 0 || Glibc.errno == ENOENT else {
                throw SystemError("rmdir", path: shown(done.name), errno: Glibc.errno)
            }
        }
    }

    /// The path with every symlink resolved. The corresponding C function is `realpath`.
    public static func realPath(_ path: String) -> String? {
        // A lexically normal absolute path reached through no symlink is its own real path: one
        // openat2 instead of realpath's readlink of every component.
        if isNormalAbsolute(path) {
            if cl_exists_without_symlinks(path) == 0 { return path }
            if errno == ENOENT { return nil }
        }
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// "/" or "/a/b": absolute, no empty, "." or ".." component, no trailing slash, no NUL (C
    /// would see only what comes before it).
    static func isNormalAbsolute(_ path: String) -> Bool {
        guard path.utf8.first == UInt8(ascii: "/"), !path.utf8.contains(0) else { return false }
        if path == "/" { return true }
        for component in path.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if component.isEmpty || component.elementsEqual(".".utf8) || component.elementsEqual("..".utf8) { return false }
        }
        return true
    }
}

/// What tells one version of a file from another without reading it: device, inode, size,
/// mode, and modification and change times to the nanosecond. The change time cannot be set
/// from user space (utimensat sets it to now), so an edit that keeps the size and restores the
/// mtime still shows. Two writes within one tick of the file system's clock share a ctime:
/// `isRecent` tells the caller when it must not rely on the times alone.
public struct FileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var mode: UInt32
    public var modified: Timestamp
    public var changed: Timestamp

    public struct Timestamp: Sendable, Equatable, Comparable {
        public var seconds: Int64
        public var nanoseconds: Int64
        public init(seconds: Int64, nanoseconds: Int64) {
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }
        public static func < (a: Timestamp, b: Timestamp) -> Bool {
            (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
        }
        /// The wall clock now (CLOCK_REALTIME, the clock file times are taken from).
        public static func now() -> Timestamp {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
        }
    }

    public init(device: UInt64, inode: UInt64, size: Int64, mode: UInt32, modified: Timestamp, changed: Timestamp) {
        self.device = device
        self.inode = inode
        self.size = size
        self.mode = mode
        self.modified = modified
        self.changed = changed
    }

    init(_ st: stat) {
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size), mode: UInt32(st.st_mode),
                  modified: Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int64(st.st_mtim.tv_nsec)),
                  changed: Timestamp(seconds: Int64(st.st_ctim.tv_sec), nanoseconds: Int64(st.st_ctim.tv_nsec)))
    }

    /// Whether the file changed less than `seconds` before `now` (or claims a time after it):
    /// a write in the same clock tick could follow without changing any of the fields.
    public func isRecent(now: Timestamp, seconds: Int64 = 2) -> Bool {
        let limit = Timestamp(seconds: now.seconds - seconds, nanoseconds: now.nanoseconds)
        return !(changed < limit) || !(modified < limit)
    }
}
