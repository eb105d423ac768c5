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
    }

    /// Each side of a text diff is read up to this many bytes; a larger file is listed only.
    public static let maxDiffBytes = 1 << 20

    /// The host file system's view of `path` beneath `root`: its parent's descriptor (O_PATH,
    /// owned by the caller of this) and the name in it, or an errno.
    static func parent(of path: String, in root: Int32) -> (fd: Int32, name: String)? {
        let parts = path.split(separator: "/").map(String.init)
        guard let name = parts.last else { return nil }
        let dir = parts.dropLast().joined(separator: "/")
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
    /// directory (a descriptor), `since` the task's start. Call as the caller.
    public static func review(_ entries: [Entry], root: Int32, blobs: Int32, since: Double) -> [Reviewed] {
        entries.map { review($0, root: root, blobs: blobs, since: since) }
    }

    static func review(_ entry: Entry, root: Int32, blobs: Int32, since: Double) -> Reviewed {
        var out = Reviewed(entry: entry, change: .unchanged, hostMode: nil, conflict: false, diff: nil, binary: false)
        if entry.kind == .other {
            out.change = .unsupported
            return out
        }
        let located = parent(of: entry.path, in: root)
        defer { if let located { close(located.fd) } }
        let st = located.flatMap { hostStat($0.fd, $0.name) }
        guard let st, let located else {
            out.change = entry.kind == .deleted ? .unchanged : .added
            if entry.kind == .file { fillDiff(&out, host: nil, blobs: blobs) }
            return out
        }
        let hostKind = UInt32(st.st_mode) & UInt32(S_IFMT)
        out.hostMode = UInt32(st.st_mode) & 0o7777
        out.conflict = changed(st, since: since)
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
                fillDiff(&out, host: nil, blobs: blobs)
            } else {
                let fd = cl_openat_beneath(located.fd, located.name, O_RDONLY, 0)
                defer { if fd >= 0 { close(fd) } }
                let same = fd >= 0 && sameBytes(fd, blobs: blobs, blob: entry.blob!)
                out.change = same && out.hostMode! & 0o777 == entry.mode ? .unchanged : .modified
                if !same && fd >= 0 { fillDiff(&out, host: fd, blobs: blobs) }
            }
        case .other:
            out.change = .unsupported
        }
        if out.change == .unchanged { out.conflict = false }
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

    static func fillDiff(_ out: inout Reviewed, host: Int32?, blobs: Int32) {
        let mine = cl_openat_beneath(blobs, "\(out.entry.blob!)", O_RDONLY, 0)
        guard mine >= 0 else { out.binary = true; return }
        defer { close(mine) }
        guard let new = readPrefix(mine, limit: maxDiffBytes), new.whole, let newText = text(new.bytes) else { out.binary = true; return }
        var oldText = ""
        if let host {
            guard let old = readPrefix(host, limit: maxDiffBytes), old.whole, let t = text(old.bytes) else { out.binary = true; return }
            oldText = t
        }
        out.diff = LineDiff.unified(old: oldText, new: newText, oldName: host == nil ? "/dev/null" : "a/\(out.entry.path)",
                                    newName: "b/\(out.entry.path)")
    }

    static func text(_ bytes: [UInt8]) -> String? {
        guard !bytes.contains(0) else { return nil }
        return String(validating: bytes, as: UTF8.self)
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
        let reviewed = review(entries, root: root, blobs: blobs, since: since)
        result.conflicts = reviewed.filter(\.conflict).map(\.entry.path)
        guard result.conflicts.isEmpty else { return result }
        for item in reviewed {
            switch item.change {
            case .unchanged, .unsupported:
                result.skipped.append(item.entry.path)
                continue
            default: break
            }
            if let problem = write(item, root: root, blobs: blobs) {
                result.failure = (item.entry.path, problem)
                return result
            }
            result.applied.append(item.entry.path)
        }
        return result
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
                guard mkdirat(dir, name, mode_t(entry.mode)) == 0 else { return "mkdir: \(SystemError.text(errno))" }
            }
            let fd = cl_openat_beneath(dir, name, O_RDONLY | O_DIRECTORY, 0)
            guard fd >= 0 else { return "open: \(SystemError.text(errno))" }
            defer { close(fd) }
            return fchmod(fd, mode_t(entry.mode)) == 0 ? nil : "chmod: \(SystemError.text(errno))"
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
    /// symlink and crossing no mount (at most 256 levels down); nil, or why not.
    static func remove(_ dir: Int32, _ name: String, depth: Int) -> String? {
        if unlinkat(dir, name, 0) == 0 { return nil }
        guard errno == EISDIR else { return "remove \(name): \(SystemError.text(errno))" }
        guard depth < 256 else { return "remove \(name): more than 256 directories deep" }
        let fd = cl_openat_beneath(dir, name, O_RDONLY | O_DIRECTORY, 0)
        guard fd >= 0 else { return "open \(name): \(SystemError.text(errno))" }
        let listing = dup(fd)
        close(fd)
        guard listing >= 0, let handle = fdopendir(listing) else { return "list \(name): \(SystemError.text(errno))" }
        defer { closedir(handle) }
        var names: [String] = []
        while let item = readdir(handle) {
            let child = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if child != "." && child != ".." { names.append(child) }
        }
        let inner = dirfd(handle)
        for child in names {
            if let problem = remove(inner, child, depth: depth + 1) { return "\(name)/\(problem)" }
        }
        return unlinkat(dir, name, AT_REMOVEDIR) == 0 ? nil : "remove \(name): \(SystemError.text(errno))"
    }
}
