import CLinux
import CordonJSON
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// A copy-on-write workspace's changes (docs/daemon.md, "Copy-on-write workspaces"). The
/// sandbox sees its workspace through an overlay whose upper layer is a tmpfs of bounded size
/// (`layer`); the host directory is only read. After the run, `capture` reads the upper layer
/// into a directory of the daemon's (a manifest and one blob per file), counted as the task's
/// output; `entries` reads that back for review, and `apply` (as the caller) writes it into the
/// host directory.
///
/// The upper layer holds whole files only (no metacopy, no redirects): a file the task wrote or
/// whose mode it changed, a directory it made or entered to change something, a whiteout (a
/// character device 0:0) for what it deleted, an opaque directory (`trusted.overlay.opaque`) for
/// one it deleted and made again.
public enum WorkspaceChanges {
    /// The most files, directories and deletions a task may leave (the layer's inodes).
    public static let maxEntries = 100_000
    static let manifestName = "manifest.json"
    static let format: Int64 = 1

    public struct Entry: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case file, directory, symlink, deleted
            /// A fifo, socket or device the task made, a name that is not UTF-8, a sparse file
            /// longer than the layer, or a directory too deep to walk: listed, never applied.
            case other
        }
        /// Relative to the workspace, "/"-separated, no empty, `.` or `..` component.
        public var path: String
        public var kind: Kind
        /// Permission bits (setuid, setgid and sticky are never kept).
        public var mode: UInt32
        public var size: Int64
        /// directory: it replaces the host's (whatever was under it is gone).
        public var opaque: Bool
        /// symlink: its text.
        public var target: String?
        /// file: its bytes' blob in the captured directory.
        public var blob: Int?

        public init(path: String, kind: Kind, mode: UInt32 = 0, size: Int64 = 0, opaque: Bool = false, target: String? = nil, blob: Int? = nil) {
            (self.path, self.kind, self.mode, self.size, self.opaque, self.target, self.blob) = (path, kind, mode, size, opaque, target, blob)
        }
    }

    /// A new, empty copy-on-write layer: a detached tmpfs of at most `bytes` bytes (and
    /// `maxEntries` inodes), mounted nowhere; the sandbox's overlay takes it as its upper layer
    /// (`SandboxWorkspace.cow`). Its pages are charged to the sandbox's memory cgroup as it writes.
    public static func layer(bytes: UInt64) throws(SystemError) -> OwnedDescriptor {
        var why = [CChar](repeating: 0, count: 512)
        let fd = cl_cow_layer(bytes, UInt64(maxEntries), &why, why.count)
        guard fd >= 0 else {
            let e = errno
            let said = String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw SystemError("make the copy-on-write layer (tmpfs)\(said.isEmpty ? "" : ": \(said)")", path: nil, errno: e)
        }
        return OwnedDescriptor(fd)
    }

    /// Writes `files` (relative path, bytes, permission bits) into the upper directory of a new
    /// `layer`, with the directories on their way (the mode `lowerMode` gives for a directory
    /// the workspace has, else 0755): what the task finds at /workspace when it starts. Root's
    /// until `giveUpper` at spawn.
    public static func put(_ files: [(path: String, bytes: [UInt8], mode: UInt32)], into layer: Int32,
                           lowerMode: (String) -> UInt32? = { _ in nil }) throws(SystemError) {
        let upper = openat(layer, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard upper >= 0 else { throw SystemError("open", path: "the copy-on-write layer's upper directory", errno: errno) }
        defer { close(upper) }
        for file in files {
            guard validPath(file.path) else { throw SystemError("put a file", path: file.path, errno: EINVAL) }
            let parts = components(file.path)
            var dir = dup(upper)
            var walked = ""
            for part in parts.dropLast() {
                walked = walked.isEmpty ? part : "\(walked)/\(part)"
                // A directory the workspace has keeps its mode (else applying would change it).
                let mode = lowerMode(walked) ?? 0o755
                if mkdirat(dir, part, mode_t(mode)) != 0 && errno != EEXIST { let e = errno; close(dir); throw SystemError("mkdir", path: file.path, errno: e) }
                _ = fchmodat(dir, part, mode_t(mode), 0)
                let next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                close(dir)
                guard next >= 0 else { throw SystemError("open", path: file.path, errno: errno) }
                dir = next
            }
            defer { close(dir) }
            let fd = openat(dir, parts.last!, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError("create", path: file.path, errno: errno) }
            defer { close(fd) }
            let failed = file.bytes.withUnsafeBytes { FileDescriptorIO.writeFully(fd, $0.baseAddress, $0.count) }
            guard failed == 0 else { throw SystemError("write", path: file.path, errno: failed) }
            guard fchmod(fd, mode_t(file.mode & 0o777)) == 0 else { throw SystemError("chmod", path: file.path, errno: errno) }
        }
    }

    /// Gives everything under `layer`'s upper directory (what `put` wrote) to `uid`:`gid`, the
    /// sandbox user's ids on the host, before the overlay is made over it.
    static func giveUpper(layer: Int32, to uid: UInt32, _ gid: UInt32) throws(SystemError) {
        let upper = openat(layer, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard upper >= 0 else { throw SystemError("open", path: "the copy-on-write layer's upper directory", errno: errno) }
        defer { close(upper) }
        try giveTree(upper, uid, gid, depth: 0)
    }

    private static func giveTree(_ dir: Int32, _ uid: UInt32, _ gid: UInt32, depth: Int) throws(SystemError) {
        guard depth < 512 else { throw SystemError("chown the files put", path: nil, errno: ELOOP) }
        guard let names = listing(dir) else { throw SystemError("list", path: "the files put", errno: errno) }
        for name in names {
            guard fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else { throw SystemError("chown", path: "the files put", errno: errno) }
            let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if sub >= 0 {
                defer { close(sub) }
                try giveTree(sub, uid, gid, depth: depth + 1)
            }
        }
    }

    /// The empty lower layer of a scratch workspace (one with no host directory), in `layer`:
    /// an O_PATH descriptor to give as `SandboxWorkspace.descriptor`.
    public static func scratchLower(in layer: Int32) throws(SystemError) -> OwnedDescriptor {
        let fd = openat(layer, "lower", CL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: "the scratch workspace's lower layer", errno: errno) }
        return OwnedDescriptor(fd)
    }

    /// Reads the upper directory of `layer` into `directory` (made, 0700): the manifest and
    /// `blobs/N` for each file. The blobs and their directory are given to `owner` (the task's
    /// caller, who reviews and applies them as themselves; nobody reaches them by path, since
    /// `directory`'s parents are cordond's). At most `maxBytes` of file bytes are copied (the
    /// layer's size): a sparse file whose length passes what is left is listed as `.other`,
    /// never expanded onto cordond's disk. Returns the entries and the bytes written.
    public static func capture(layer: Int32, to directory: String, owner: (uid: UInt32, gid: UInt32),
                               maxBytes: Int64) throws(SystemError) -> (entries: [Entry], bytes: Int64) {
        let upper = openat(layer, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard upper >= 0 else { throw SystemError("open", path: "the copy-on-write layer's upper directory", errno: errno) }
        defer { close(upper) }
        try FileSystem.makeDirectories("\(directory)/blobs", mode: 0o700)
        var entries: [Entry] = []
        var bytes: Int64 = 0
        var budget = maxBytes
        var pathBytes = 0
        try walk(upper, prefix: "", depth: 0, into: &entries, bytes: &bytes, budget: &budget, pathBytes: &pathBytes, blobs: "\(directory)/blobs", owner: owner)
        guard chown("\(directory)/blobs", owner.uid, owner.gid) == 0 else { throw SystemError("chown", path: "\(directory)/blobs", errno: errno) }
        entries.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        let written = try writeManifest(entries, in: directory)
        return (entries, bytes + Int64(written))
    }

    /// The device and inode of the directory the changes were made over, kept beside them, so
    /// an apply can tell the directory at that path now from the one the task ran on.
    public static func writeOrigin(device: UInt64, inode: UInt64, in directory: String) throws(SystemError) {
        try FileSystem.writeAtomically("\(directory)/origin", Array("\(device) \(inode)\n".utf8), mode: 0o600)
    }

    public static func origin(in directory: String) -> (device: UInt64, inode: UInt64)? {
        guard let text = try? FileSystem.readString("\(directory)/origin") else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return nil }
        return (device, inode)
    }

    /// Writes (or rewrites: what is left after a partial apply) the manifest of `entries` in
    /// `directory`; its bytes.
    @discardableResult
    public static func writeManifest(_ entries: [Entry], in directory: String) throws(SystemError) -> Int {
        let manifest = JSON.object([("format", .int(format)), ("entries", .array(entries.map(\.json)))])
        let text = Array(manifest.text.utf8)
        try FileSystem.writeAtomically("\(directory)/\(manifestName)", text, mode: 0o600)
        return text.count
    }

    /// How deep `capture` walks, and the longest directory path it walks into (a name below it
    /// keeps the path under PATH_MAX): a task can make a tree deeper than any path can name.
    static let maxDepth = 256
    static let maxDirectoryPathBytes = 3800
    /// The most bytes of paths one capture keeps (the manifest stays far under what `entries`
    /// reads back): past it the capture fails rather than hold gigabytes of names.
    static let maxPathBytesTotal = 16 << 20
    /// What each entry and each file's last block cost on cordond's disk beyond their bytes,
    /// counted in what a capture reports (the output quota charges it).
    static let entryCost: Int64 = 512, blockSize: Int64 = 4096

    private static func walk(_ dir: Int32, prefix: String, depth: Int, into entries: inout [Entry], bytes: inout Int64, budget: inout Int64,
                             pathBytes: inout Int, blobs: String, owner: (uid: UInt32, gid: UInt32)) throws(SystemError) {
        guard let listed = listing(dir) else { throw SystemError("list", path: prefix.isEmpty ? "/workspace" : prefix, errno: errno) }
        var names: [String] = []
        var unnamed: [String] = []
        for raw in listed {
            let bytes = raw.dropLast().map { UInt8(bitPattern: $0) }
            // A name that is not UTF-8 cannot be named in the manifest as it is: listed (as
            // shown), never applied.
            guard let name = String(validating: bytes, as: UTF8.self) else {
                // Shown by a short stand-in: the decoded name could be three times as long and
                // push the path past what the manifest accepts.
                unnamed.append("\u{FFFD}(a name of \(bytes.count) bytes that is not UTF-8)")
                continue
            }
            names.append(name)
        }
        for (name, named) in unnamed.map({ ($0, false) }) + names.map({ ($0, true) }) {
            if entries.count >= maxEntries { throw SystemError("read the copy-on-write layer: more than \(maxEntries) entries", path: nil, errno: E2BIG) }
            let path = prefix.isEmpty ? name : "\(prefix)/\(name)"
            pathBytes += path.utf8.count
            guard pathBytes <= maxPathBytesTotal else {
                throw SystemError("read the copy-on-write layer: its names add up to more than \(maxPathBytesTotal >> 20) MiB of paths", path: nil, errno: E2BIG)
            }
            bytes += entryCost
            if !named {
                entries.append(Entry(path: path, kind: .other))
                continue
            }
            var st = stat()
            guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw SystemError("fstatat", path: path, errno: errno) }
            let mode = UInt32(st.st_mode) & 0o777
            switch UInt32(st.st_mode) & UInt32(S_IFMT) {
            case UInt32(S_IFDIR) where depth >= maxDepth || path.utf8.count >= maxDirectoryPathBytes:
                // Deeper or longer than a path can be named: listed, not walked (nor applied).
                entries.append(Entry(path: path, kind: .other, mode: mode))
            case UInt32(S_IFDIR):
                let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw SystemError("open", path: path, errno: errno) }
                defer { close(sub) }
                let opaque = cl_overlay_opaque(sub)
                guard opaque >= 0 else { throw SystemError("read the overlay's opaque mark", path: path, errno: errno) }
                entries.append(Entry(path: path, kind: .directory, mode: mode, opaque: opaque == 1))
                try walk(sub, prefix: path, depth: depth + 1, into: &entries, bytes: &bytes, budget: &budget, pathBytes: &pathBytes, blobs: blobs, owner: owner)
            case UInt32(S_IFREG) where Int64(st.st_size) > budget:
                entries.append(Entry(path: path, kind: .other, mode: mode, size: Int64(st.st_size)))
            case UInt32(S_IFREG):
                let index = entries.count
                let copied = try copy(dir, name, path: path, to: "\(blobs)/\(index)", owner: owner, limit: budget)
                bytes += (copied + blockSize - 1) / blockSize * blockSize
                budget -= copied
                entries.append(Entry(path: path, kind: .file, mode: mode, size: copied, blob: index))
            case UInt32(S_IFLNK):
                var buffer = [CChar](repeating: 0, count: 4097)
                let n = readlinkat(dir, name, &buffer, 4096)
                guard n >= 0 else { throw SystemError("readlinkat", path: path, errno: errno) }
                // A target that is not UTF-8 could not be written back as it is: listed only.
                guard let target = String(validating: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), !target.isEmpty else {
                    entries.append(Entry(path: path, kind: .other))
                    continue
                }
                entries.append(Entry(path: path, kind: .symlink, target: target))
            case UInt32(S_IFCHR) where st.st_rdev == 0:
                entries.append(Entry(path: path, kind: .deleted))
            default:
                entries.append(Entry(path: path, kind: .other, mode: mode))
            }
        }
    }

    private static func copy(_ dir: Int32, _ name: String, path: String, to blob: String, owner: (uid: UInt32, gid: UInt32),
                             limit: Int64) throws(SystemError) -> Int64 {
        let from = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard from >= 0 else { throw SystemError("open", path: path, errno: errno) }
        defer { close(from) }
        let to = open(blob, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard to >= 0 else { throw SystemError("open", path: blob, errno: errno) }
        defer { close(to) }
        guard fchown(to, owner.uid, owner.gid) == 0 else { throw SystemError("fchown", path: blob, errno: errno) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var total: Int64 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw SystemError("read", path: path, errno: errno) }
            if n == 0 { return total }
            guard total + Int64(n) <= limit else { throw SystemError("copy \(path): longer than the layer could hold", path: blob, errno: EFBIG) }
            let failed = buffer.withUnsafeBytes { FileDescriptorIO.writeFully(to, $0.baseAddress, n) }
            guard failed == 0 else { throw SystemError("write", path: blob, errno: failed) }
            total += Int64(n)
        }
    }

    /// The entries captured in `directory`, or an error naming what is wrong with it.
    public static func entries(in directory: String) throws(SystemError) -> [Entry] {
        let bytes = try FileSystem.read("\(directory)/\(manifestName)", limit: 64 << 20)
        guard let manifest = try? JSON.parse(bytes, options: JSON.ParseOptions(maxDepth: 8, maxValues: 16 * maxEntries, maxBytes: 64 << 20)),
              manifest["format"]?.intValue == format, let list = manifest["entries"]?.arrayValue else {
            throw SystemError("read the captured changes: not a format-\(format) manifest", path: "\(directory)/\(manifestName)", errno: EINVAL)
        }
        var out: [Entry] = []
        for item in list {
            guard let entry = Entry(json: item) else {
                throw SystemError("read the captured changes: a malformed entry", path: "\(directory)/\(manifestName)", errno: EINVAL)
            }
            out.append(entry)
        }
        return out
    }

    /// Whether `path` is a relative path this format writes: components neither empty, `.` nor
    /// `..`, no NUL, at most 4096 bytes.
    public static func validPath(_ path: String) -> Bool {
        guard !path.isEmpty, path.utf8.count <= 4096, !path.utf8.contains(0) else { return false }
        return path.utf8.split(separator: slash, omittingEmptySubsequences: false).allSatisfy { c in
            !c.isEmpty && c.count <= 255 && !c.elementsEqual([0x2E]) && !c.elementsEqual([0x2E, 0x2E])
        }
    }

    static let slash = UInt8(ascii: "/")

    /// A path's components, split at each "/" byte — never by characters: a "/" followed by a
    /// combining mark is one Character to Swift but a separator to the kernel.
    public static func components(_ path: String) -> [String] {
        path.utf8.split(separator: slash).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The directory part and the last component of `path`, split at its last "/" byte.
    public static func split(_ path: String) -> (directory: String, name: String) {
        let bytes = Array(path.utf8)
        guard let i = bytes.lastIndex(of: slash) else { return ("", path) }
        return (String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[(i + 1)...], as: UTF8.self))
    }

    /// The directories on the way to `path`, nearest first ("a/b/c": "a/b", "a").
    public static func ancestors(_ path: String) -> [String] {
        var out: [String] = []
        var bytes = Array(path.utf8)
        while let i = bytes.lastIndex(of: slash) {
            bytes = Array(bytes[..<i])
            out.append(String(decoding: bytes, as: UTF8.self))
        }
        return out
    }

    /// Whether `path` is `prefix` or under it, by bytes.
    public static func isWithin(_ path: String, _ prefix: String) -> Bool {
        let p = Array(path.utf8), q = Array(prefix.utf8)
        return p == q || (p.count > q.count && p.starts(with: q) && p[q.count] == slash)
    }
}

extension WorkspaceChanges.Entry {
    var json: JSON {
        var members: [(String, JSON)] = [("path", .string(path)), ("kind", .string(kind.rawValue))]
        if kind == .file || kind == .directory || kind == .other { members.append(("mode", .int(Int64(mode)))) }
        if kind == .file { members.append(("size", .int(size))) }
        if opaque { members.append(("opaque", .bool(true))) }
        if let target { members.append(("target", .string(target))) }
        if let blob { members.append(("blob", .int(Int64(blob)))) }
        return .object(members)
    }

    init?(json: JSON) {
        guard let path = json["path"]?.stringValue, WorkspaceChanges.validPath(path),
              let kind = json["kind"]?.stringValue.flatMap(Kind.init(rawValue:)) else { return nil }
        let mode = json["mode"]?.intValue ?? 0
        guard mode >= 0 && mode <= 0o777 else { return nil }
        self.init(path: path, kind: kind, mode: UInt32(mode), size: json["size"]?.intValue ?? 0, opaque: json["opaque"]?.boolValue ?? false,
                  target: json["target"]?.stringValue, blob: json["blob"]?.intValue.map { Int($0) })
        if kind == .file && (blob == nil || blob! < 0) { return nil }
        if kind == .symlink && target == nil { return nil }
    }
}
