import CLinux
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Reviewing and applying a copy-on-write task's changes (`WorkspaceChanges`) against the host
/// directory. Both run on a `CallerFiles.perform` thread: every host file is read, written and
/// removed by the kernel's checks as the caller, beneath the workspace's descriptor only
/// (openat2 RESOLVE_BENEATH, no symlink followed, no other mount crossed). The captured blobs
/// are the caller's (`capture` gives them to the task's owner) in a directory only cordond can
/// name: reached through the descriptor cordond opens.
extension WorkspaceChanges {
    /// What an entry changes on the host, as of now.
    public enum Change: String, Sendable {
        /// Not on the host.
        case added
        /// A file's bytes or mode, a directory's mode, a symlink's target.
        case modified
        case deleted
        /// A directory deleted and made again, or one kind of file put in place of another:
        /// what was on the host there goes.
        case replaced
        /// Copied up without a difference (opened for writing and left, a parent directory).
        case unchanged
        /// A fifo, socket or device: never applied.
        case unsupported
    }

    public struct Reviewed: Sendable {
        public var entry: Entry
        public var change: Change
        /// The host's mode bits, when it has something there.
        public var hostMode: UInt32?
        /// The host has something there changed since the task started: applying it would lose
        /// that change, so `apply` refuses.
        public var conflict: Bool
        /// A unified diff of a text file's lines (both sides valid UTF-8 without NUL, each at
        /// most `maxDiffBytes`); nil otherwise.
        public var diff: String?
        /// A file whose difference is not shown as text (binary, or larger than the limit).
        public var binary: Bool
        /// A text file's diff left out: the review's budget of diff text was spent.
        public var diffOmitted = false
        /// Applying it removes a host directory and what is under it.
        public var removesHostDirectory = false
    }

    /// Each side of a text diff is read up to this many bytes; a larger file is listed only.
    public static let maxDiffBytes = 1 << 20

    /// The host file system's view of `path` beneath `root`: its parent's descriptor (O_PATH,
    /// owned by the caller of this) and the name in it, or an errno.
    static func parent(of path: String, in root: Int32) -> (fd: Int32, name: String)? {
        let (dir, name) = split(path)
        // Split at bytes, so the name never holds a "/" (one that did would be resolved by the
        // kernel outside openat2's checks).
        guard !name.isEmpty, !name.utf8.contains(slash) else { return nil }
        let fd = cl_openat_beneath(root, dir.isEmpty ? "." : dir, CL_O_PATH | O_DIRECTORY, 0)
        return fd >= 0 ? (fd, name) : nil
    }

    static func hostStat(_ parent: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Whether `st` changed (contents, mode, owner, or put there) after `since` (epoch seconds).
    static func changed(_ st: stat, since: Double) -> Bool {
        Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) / 1e9 > since
    }

    /// `entries` compared with the host directory `root`; `blobs` is the captured blobs'
    /// directory (a descriptor), `since` the task's start. Diffs are made while their text
    /// fits in `diffBytes` (0: none; the files are still compared). Call as the caller.
    public static func review(_ entries: [Entry], root: Int32, blobs: Int32, since: Double, diffBytes: Int) -> [Reviewed] {
        var budget = diffBytes
        // Host directories the apply removes (deleted, or replaced by the task's): what lies
        // under them is compared with nothing — it is all the task's — never with the host
        // files the apply is about to remove. (Parents sort before their children.)
        // Keyed by bytes: two spellings of one name that Swift calls equal are two names.
        var removed = Set<[UInt8]>()
        var out: [Reviewed] = []
        for entry in entries {
            let gone = !removed.isEmpty && ancestors(entry.path).contains { removed.contains(Array($0.utf8)) }
            let item = review(entry, root: gone ? -1 : root, blobs: blobs, since: since, budget: &budget)
            if !gone, item.removesHostDirectory { removed.insert(Array(entry.path.utf8)) }
            out.append(item)
        }
        return out
    }

    static func review(_ entry: Entry, root: Int32, blobs: Int32, since: Double, budget: inout Int) -> Reviewed {
        var out = Reviewed(entry: entry, change: .unchanged, hostMode: nil, conflict: false, diff: nil, binary: false)
        if entry.kind == .other {
            out.change = .unsupported
            return out
        }
        let located = root < 0 ? nil : parent(of: entry.path, in: root)
        defer { if let located { close(located.fd) } }
        let st = located.flatMap { hostStat($0.fd, $0.name) }
        guard let st, let located else {
            out.change = entry.kind == .deleted ? .unchanged : .added
            if entry.kind == .file { fillDiff(&out, host: nil, blobs: blobs, budget: &budget) }
            return out
        }
        let hostKind = UInt32(st.st_mode) & UInt32(S_IFMT)
        out.hostMode = UInt32(st.st_mode) & 0o7777
        out.conflict = changed(st, since: since)
        // What goes with a host directory removed (deleted, or replaced by the task's) must not
        // have changed since the start either.
        let removesHostDirectory = hostKind == UInt32(S_IFDIR) && (entry.kind != .directory || entry.opaque)
        out.removesHostDirectory = removesHostDirectory
        if removesHostDirectory && !out.conflict {
            out.conflict = subtreeChanged(located.fd, located.name, since: since, depth: 0)
        }
        switch entry.kind {
        case .deleted:
            out.change = .deleted
        case .directory:
            if hostKind != UInt32(S_IFDIR) || entry.opaque { out.change = .replaced }
            else { out.change = out.hostMode! & 0o777 == entry.mode ? .unchanged : .modified }
        case .symlink:
            if hostKind != UInt32(S_IFLNK) { out.change = .replaced }
            else { out.change = readLink(located.fd, located.name) == entry.target ? .unchanged : .modified }
        case .file:
            if hostKind != UInt32(S_IFREG) {
                out.change = .replaced
                fillDiff(&out, host: nil, blobs: blobs, budget: &budget)
            } else {
                // Not blocking on a fifo swapped in since the stat: opened non-blocking, and
                // only a regular file is read.
                let fd = openRegular(located.fd, located.name)
                defer { if fd >= 0 { close(fd) } }
                let same = fd >= 0 && sameBytes(fd, blobs: blobs, blob: entry.blob!)
                out.change = same && out.hostMode! & 0o777 == entry.mode ? .unchanged : .modified
                if !same && fd >= 0 { fillDiff(&out, host: fd, blobs: blobs, budget: &budget) }
            }
        case .other:
            out.change = .unsupported
        }
        if out.change == .unchanged { out.conflict = false }
        return out
    }

    /// `name` in `dir` opened for reading if it is a regular file (O_NONBLOCK, so a fifo put
    /// in its place opens without waiting for a writer, and is then refused), or -1.
    static func openRegular(_ dir: Int32, _ name: String) -> Int32 {
        let fd = cl_openat_beneath(dir, name, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0)
        guard fd >= 0 else { return -1 }
        var st = stat()
        guard fstat(fd, &st) == 0, UInt32(st.st_mode) & UInt32(S_IFMT) == UInt32(S_IFREG) else {
            close(fd)
            return -1
        }
        return fd
    }

    /// Whether anything under directory `name` in `dir` changed after `since` (or cannot be
    /// looked at: counted as changed, so nothing unseen is removed).
    static func subtreeChanged(_ dir: Int32, _ name: String, since: Double, depth: Int) -> Bool {
        subtreeChanged(dir, Array(name.utf8CString), since: since, depth: depth)
    }

    static func subtreeChanged(_ dir: Int32, _ name: [CChar], since: Double, depth: Int) -> Bool {
        guard depth < 256 else { return true }
        guard let (handle, inner) = openListing(dir, name) else { return true }
        defer { closedir(handle) }
        for child in names(handle) {
            var st = stat()
            guard fstatat(inner, child, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return true }
            if changed(st, since: since) { return true }
            if UInt32(st.st_mode) & UInt32(S_IFMT) == UInt32(S_IFDIR), subtreeChanged(inner, child, since: since, depth: depth + 1) { return true }
        }
        return false
    }

    /// Directory `name` in `dir` (beneath it, no symlink) opened for listing: the handle and
    /// its descriptor (closed with the handle).
    static func openListing(_ dir: Int32, _ name: [CChar]) -> (OpaquePointer, Int32)? {
        let fd = cl_openat_beneath(dir, name, O_RDONLY | O_DIRECTORY, 0)
        guard fd >= 0 else { return nil }
        guard let handle = fdopendir(fd) else { close(fd); return nil }
        return (handle, dirfd(handle))
    }

    /// The names in directory `dir` (NUL-terminated bytes, without "." and ".."), or nil.
    static func listing(_ dir: Int32) -> [[CChar]]? {
        guard let (handle, _) = openListing(dir, Array(".".utf8CString)) else { return nil }
        defer { closedir(handle) }
        return names(handle)
    }

    /// The names in a listing, as the bytes they are (NUL-terminated), without "." and "..".
    static func names(_ handle: OpaquePointer) -> [[CChar]] {
        var out: [[CChar]] = []
        while let item = readdir(handle) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }).map { CChar(bitPattern: $0) } }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            out.append(name + [0])
        }
        return out
    }

    static func readLink(_ dir: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlinkat(dir, name, &buffer, 4096)
        return n < 0 ? nil : String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Up to `limit` bytes of `fd` from its start, and whether that was all of it.
    static func readPrefix(_ fd: Int32, limit: Int) -> (bytes: [UInt8], whole: Bool)? {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while out.count <= limit {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return (out, true) }
            out += buffer[..<n]
            offset += off_t(n)
        }
        return (Array(out.prefix(limit)), false)
    }

    static func sameBytes(_ host: Int32, blobs: Int32, blob: Int) -> Bool {
        let mine = cl_openat_beneath(blobs, "\(blob)", O_RDONLY, 0)
        guard mine >= 0 else { return false }
        defer { close(mine) }
        var a = stat(), b = stat()
        guard fstat(host, &a) == 0, fstat(mine, &b) == 0, a.st_size == b.st_size else { return false }
        var x = [UInt8](repeating: 0, count: 1 << 16), y = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = x.withUnsafeMutableBytes { pread(host, $0.baseAddress, $0.count, offset) }
            let m = y.withUnsafeMutableBytes { pread(mine, $0.baseAddress, $0.count, offset) }
            guard n >= 0, n == m else { return false }
            if n == 0 { return true }
            if x[..<n] != y[..<n] { return false }
            offset += off_t(n)
        }
    }

    /// The entry's unified diff against `host` (nil: nothing there), when both are text and
    /// the budget has room; marks a binary file. Nothing is read once the budget is spent.
    static func fillDiff(_ out: inout Reviewed, host: Int32?, blobs: Int32, budget: inout Int) {
        guard budget > 0 else { out.diffOmitted = true; return }
        let mine = cl_openat_beneath(blobs, "\(out.entry.blob!)", O_RDONLY, 0)
        guard mine >= 0 else { out.binary = true; return }
        defer { close(mine) }
        guard let new = readPrefix(mine, limit: maxDiffBytes), new.whole, isText(new.bytes) else { out.binary = true; return }
        var old: [UInt8] = []
        if let host {
            guard let read = readPrefix(host, limit: maxDiffBytes), read.whole, isText(read.bytes) else { out.binary = true; return }
            old = read.bytes
        }
        let diff = LineDiff.unified(old: old, new: new.bytes, oldName: host == nil ? "/dev/null" : LineDiff.quoted("a/\(out.entry.path)"),
                                    newName: LineDiff.quoted("b/\(out.entry.path)"))
        guard diff.utf8.count <= budget else {
            budget = 0
            out.diffOmitted = true
            return
        }
        budget -= diff.utf8.count
        out.diff = diff
    }

    /// UTF-8 without NUL: what is shown as text.
    static func isText(_ bytes: [UInt8]) -> Bool {
        !bytes.contains(0) && String(validating: bytes, as: UTF8.self) != nil
    }

    // MARK: apply

    public struct Applied: Sendable {
        /// Paths written or removed on the host.
        public var applied: [String] = []
        /// Paths left: unsupported entries, and those already as the task left them.
        public var skipped: [String] = []
        /// Paths refused because the host changed them after the task started (nothing is
        /// written when there is one).
        public var conflicts: [String] = []
        /// The first path that failed, and why: what came before it was applied.
        public var failure: (path: String, message: String)?
    }

    /// Writes `entries` (those of one task, in path order) into the host directory `root`, as
    /// the caller: nothing at all when any has a conflict. Files are written beside their
    /// place and renamed over it; a directory that replaces the host's, or a deletion of one,
    /// removes what was under it.
    public static func apply(_ entries: [Entry], root: Int32, blobs: Int32, since: Double) -> Applied {
        var result = Applied()
        let reviewed = review(entries, root: root, blobs: blobs, since: since, diffBytes: 0)
        result.conflicts = reviewed.filter { $0.conflict }.map { $0.entry.path }
        guard result.conflicts.isEmpty else { return result }
        // Directories are written open (0700) and given their modes at the end, deepest first,
        // so a read-only one still takes what goes into it.
        var modes: [(path: String, mode: UInt32)] = []
        var openedUp = Set<[UInt8]>()
        defer { setModes(modes.reversed(), root: root) }
        for item in reviewed {
            switch item.change {
            case .unchanged, .unsupported:
                // An unchanged directory may still take new files (made writable by the task
                // and set back): open it for them, and set its mode back at the end.
                if item.change == .unchanged, item.entry.kind == .directory, let host = item.hostMode,
                   openUp(item.entry.path, root: root) {
                    modes.append((item.entry.path, host))
                }
                result.skipped.append(item.entry.path)
                continue
            default: break
            }
            // The directory it goes into must take it: one left read-only (by a partial apply
            // before, or the host) is opened for its owner and set back at the end.
            let (directory, _) = split(item.entry.path)
            if !directory.isEmpty, openedUp.insert(Array(directory.utf8)).inserted, let host = directoryMode(directory, root: root),
               host & 0o700 != 0o700, openUp(directory, root: root) {
                modes.append((directory, host))
            }
            if let problem = write(item, root: root, blobs: blobs) {
                result.failure = (item.entry.path, problem)
                return result
            }
            if item.entry.kind == .directory {
                // The host's setgid and sticky bits stay (the task's mode has none).
                let kept = item.change == .modified ? (item.hostMode ?? 0) & UInt32(S_ISGID | S_ISVTX) : 0
                modes.append((item.entry.path, item.entry.mode | kept))
            }
            result.applied.append(item.entry.path)
        }
        return result
    }

    /// The permission bits of directory `path` on the host, or nil.
    public static func directoryMode(_ path: String, root: Int32) -> UInt32? {
        let fd = cl_openat_beneath(root, path, O_RDONLY | O_DIRECTORY, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        return fstat(fd, &st) == 0 ? UInt32(st.st_mode) & 0o7777 : nil
    }

    /// Gives the owner write and search on directory `path` for the apply; whether it did.
    static func openUp(_ path: String, root: Int32) -> Bool {
        let fd = cl_openat_beneath(root, path, O_RDONLY | O_DIRECTORY, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return st.st_mode & 0o700 == 0o700 || fchmod(fd, st.st_mode & 0o7777 | 0o700) == 0
    }

    static func setModes(_ modes: [(path: String, mode: UInt32)], root: Int32) {
        for (path, mode) in modes {
            let fd = cl_openat_beneath(root, path, O_RDONLY | O_DIRECTORY, 0)
            guard fd >= 0 else { continue }
            fchmod(fd, mode_t(mode))
            close(fd)
        }
    }

    /// Puts one reviewed entry in place; nil, or what went wrong.
    static func write(_ item: Reviewed, root: Int32, blobs: Int32) -> String? {
        let entry = item.entry
        guard let located = parent(of: entry.path, in: root) else {
            return "its directory cannot be reached (\(SystemError.text(errno)))"
        }
        defer { close(located.fd) }
        let (dir, name) = located
        let present = hostStat(dir, name) != nil
        switch entry.kind {
        case .deleted:
            return present ? remove(dir, name, depth: 0) : nil
        case .directory:
            if present && item.change == .replaced, let problem = remove(dir, name, depth: 0) { return problem }
            if !present || item.change == .replaced {
                guard mkdirat(dir, name, 0o700) == 0 else { return "mkdir: \(SystemError.text(errno))" }
            }
            let fd = cl_openat_beneath(dir, name, O_RDONLY | O_DIRECTORY, 0)
            guard fd >= 0 else { return "open: \(SystemError.text(errno))" }
            defer { close(fd) }
            // Open for what goes in; its mode is set at the end (`setModes`).
            var st = stat()
            guard fstat(fd, &st) == 0 else { return "stat: \(SystemError.text(errno))" }
            return fchmod(fd, st.st_mode & 0o7777 | 0o700) == 0 ? nil : "chmod: \(SystemError.text(errno))"
        case .file:
            let from = cl_openat_beneath(blobs, "\(entry.blob!)", O_RDONLY, 0)
            guard from >= 0 else { return "the captured file: \(SystemError.text(errno))" }
            defer { close(from) }
            let temporary = ".cordon-apply-\(getpid())-\(name.utf8.count)-\(UInt32.random(in: 0 ... .max))"
            let to = cl_openat_beneath(dir, temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard to >= 0 else { return "create beside it: \(SystemError.text(errno))" }
            var problem = copyAll(from, to)
            if problem == nil && fchmod(to, mode_t(entry.mode)) != 0 { problem = "chmod: \(SystemError.text(errno))" }
            close(to)
            if problem == nil, item.change == .replaced, present, let removed = remove(dir, name, depth: 0) { problem = removed }
            if problem == nil && renameat(dir, temporary, dir, name) != 0 { problem = "rename into place: \(SystemError.text(errno))" }
            if problem != nil { unlinkat(dir, temporary, 0) }
            return problem
        case .symlink:
            let temporary = ".cordon-apply-\(getpid())-\(UInt32.random(in: 0 ... .max))"
            guard symlinkat(entry.target!, dir, temporary) == 0 else { return "symlink: \(SystemError.text(errno))" }
            var problem: String?
            if item.change == .replaced, present, let removed = remove(dir, name, depth: 0) { problem = removed }
            if problem == nil && renameat(dir, temporary, dir, name) != 0 { problem = "rename into place: \(SystemError.text(errno))" }
            if problem != nil { unlinkat(dir, temporary, 0) }
            return problem
        case .other:
            return nil
        }
    }

    static func copyAll(_ from: Int32, _ to: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return "read the captured file: \(SystemError.text(errno))" }
            if n == 0 { return nil }
            let failed = buffer.withUnsafeBytes { FileDescriptorIO.writeFully(to, $0.baseAddress, n) }
            if failed != 0 { return "write: \(SystemError.text(failed))" }
        }
    }

    /// Removes `name` in `dir` and, when it is a directory, everything below it, following no
    /// symlink and crossing no mount (at most 256 levels down); nil, or why not. Names are
    /// handled as the bytes they are (one that is not UTF-8 is removed too).
    static func remove(_ dir: Int32, _ name: String, depth: Int) -> String? {
        remove(dir, Array(name.utf8CString), depth: depth)
    }

    static func remove(_ dir: Int32, _ name: [CChar], depth: Int) -> String? {
        let shown = PrintableText.of(String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
        if unlinkat(dir, name, 0) == 0 { return nil }
        guard errno == EISDIR else { return "remove \(shown): \(SystemError.text(errno))" }
        guard depth < 256 else { return "remove \(shown): more than 256 directories deep" }
        guard let (handle, inner) = openListing(dir, name) else { return "open \(shown): \(SystemError.text(errno))" }
        defer { closedir(handle) }
        for child in names(handle) {
            if let problem = remove(inner, child, depth: depth + 1) { return "\(shown)/\(problem)" }
        }
        return unlinkat(dir, name, AT_REMOVEDIR) == 0 ? nil : "remove \(shown): \(SystemError.text(errno))"
    }
}
