import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Hard limits for reading an untrusted archive. Every one fails closed: reading stops with an
/// `ArchiveError` that names the limit.
public struct ArchiveLimits: Sendable, Equatable {
    public var totalBytes: Int64 = 1 << 30
    public var entryBytes: Int64 = 256 << 20
    /// Uncompressed bytes read, divided by the archive's own size (checked once past 1 MiB).
    public var compressionRatio: Int64 = 200
    public var entryCount: Int = 100_000
    /// Archives inside archives (a wheel in a tarball is depth 2).
    public var nestingDepth: Int = 3
    public var pathLength: Int = 1024
    /// The archive is a root file system (an image layer): its symlinks resolve against the root
    /// they are mounted as, so any target is accepted (`/etc/alternatives/awk`, `../../bin`).
    /// Off, a symlink must stay inside the archive (relative, never above its top).
    public var symlinksResolveInRoot = false

    public init() {}
}

public enum ArchiveError: Error, Equatable, CustomStringConvertible {
    case limit(name: String, limit: Int64, archive: String)
    case unsafePath(path: String, reason: String, archive: String)
    case unsupportedEntry(path: String, kind: String, archive: String)
    case malformed(message: String, archive: String)

    public var description: String {
        switch self {
        case .limit(let name, let limit, let archive): return "\(archive): exceeds the \(name) limit (\(limit))"
        case .unsafePath(let path, let reason, let archive): return "\(archive): unsafe entry \"\(path)\": \(reason)"
        case .unsupportedEntry(let path, let kind, let archive): return "\(archive): entry \"\(path)\" is a \(kind), which is refused"
        case .malformed(let message, let archive): return "\(archive): \(message)"
        }
    }
}

/// One archive member, its path normalised (no leading "./").
public struct ArchiveEntry: Sendable, Equatable {
    public enum Kind: String, Sendable { case file, directory, symlink, hardlink }
    public var path: String
    public var kind: Kind
    public var declaredSize: Int64
    public var linkTarget: String?
    public var mode: UInt32
}

/// Streams the members of an archive (tar in any compression libarchive knows, zip, and so
/// wheels, sdists, npm tarballs, OCI layers) without extracting anything. Nothing is written to
/// disk; contents are read into memory under the limits. The reader makes no privileged call,
/// so it can run inside a sandboxed worker.
public final class ArchiveReader {
    private let handle: OpaquePointer
    private let name: String
    private let limits: ArchiveLimits
    private let depth: Int
    private let archiveSize: Int64
    private var entries = 0
    private var totalRead: Int64 = 0
    private var backing: UnsafeMutableRawPointer?
    /// Where a streamed nested archive's bytes come from (see `nestedStream`).
    private var source: MemberStream?
    /// Whether the current member's data has been handed out (`read` or `nestedStream`).
    private var currentConsumed = false

    /// Opens the archive at `path`, at nesting `depth` (1 for a file named on the command line;
    /// an image layer stored as a file of an OCI layout directory is 2, as if inside its tar).
    public convenience init(path: String, limits: ArchiveLimits = ArchiveLimits(), depth: Int = 1) throws(ArchiveError) {
        guard depth <= limits.nestingDepth else {
            throw .limit(name: "nesting depth", limit: Int64(limits.nestingDepth), archive: path)
        }
        var st = stat()
        let size: Int64 = stat(path, &st) == 0 ? Int64(st.st_size) : 0
        try self.init(name: path, limits: limits, depth: depth, size: size) { archive_read_open_filename($0, path, 65536) }
    }

    /// Reads the archive open at `descriptor` (a regular file, from its current offset; the
    /// caller keeps the descriptor and closes it after the reader is gone). `name` is what
    /// messages call it. The compression-ratio check uses the file's size from `fstat`: an
    /// archive handed over as a descriptor (a sandboxed worker's stdin) is held to the same
    /// limits as one named by path.
    public convenience init(descriptor: Int32, name: String, limits: ArchiveLimits = ArchiveLimits(), depth: Int = 1) throws(ArchiveError) {
        guard depth <= limits.nestingDepth else {
            throw .limit(name: "nesting depth", limit: Int64(limits.nestingDepth), archive: name)
        }
        var st = stat()
        guard fstat(descriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw .malformed(message: "not a regular file (an archive is read from a file, not a pipe or socket)", archive: name)
        }
        try self.init(name: name, limits: limits, depth: depth, size: Int64(st.st_size)) { archive_read_open_fd($0, descriptor, 65536) }
    }

    /// Opens an archive held in memory (a member of another archive), one level deeper.
    public func nested(name: String, bytes: [UInt8]) throws(ArchiveError) -> ArchiveReader {
        try ArchiveReader.inMemory(name: "\(self.name)!\(name)", bytes: bytes, limits: limits, depth: depth + 1)
    }

    /// Opens an archive held in memory at nesting `depth` (1 for a top-level archive; an image
    /// layer read from a directory is 2, as if it were inside the image's tar).
    public static func inMemory(name: String, bytes: [UInt8], limits: ArchiveLimits, depth: Int) throws(ArchiveError) -> ArchiveReader {
        guard depth <= limits.nestingDepth else {
            throw .limit(name: "nesting depth", limit: Int64(limits.nestingDepth), archive: name)
        }
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: bytes.count) } }
        let reader: ArchiveReader
        do {
            reader = try ArchiveReader(name: name, limits: limits, depth: depth, size: Int64(bytes.count)) {
                archive_read_open_memory($0, copy, bytes.count)
            }
        } catch {
            copy.deallocate()
            throw error
        }
        reader.backing = copy
        return reader
    }

    /// Opens the member `forEach` is at as an archive one level deeper, streamed: the nested
    /// reader pulls the member's bytes from this archive as it needs them (64 KiB at a time,
    /// counted against this archive's limits exactly as `read` counts them), so a member of
    /// hundreds of MiB — an image layer — is never held whole. Only inside `forEach`'s body, for
    /// a member not read yet; once `forEach` moves on, the nested reader fails instead of reading
    /// the next member's bytes.
    public func nestedStream(_ entry: ArchiveEntry) throws(ArchiveError) -> ArchiveReader {
        let name = "\(self.name)!\(entry.path)"
        guard depth + 1 <= limits.nestingDepth else {
            throw .limit(name: "nesting depth", limit: Int64(limits.nestingDepth), archive: name)
        }
        guard !currentConsumed else { throw .malformed(message: "member \(entry.path) was already read", archive: self.name) }
        currentConsumed = true
        let stream = MemberStream(outer: self, member: entries, path: entry.path)
        let client = Unmanaged.passUnretained(stream).toOpaque()
        return try ArchiveReader(name: name, limits: limits, depth: depth + 1, size: entry.declaredSize, source: stream) {
            archive_read_open($0, client, nil, { _, client, buffer in
                guard let client, let buffer else { return -1 }
                return Unmanaged<MemberStream>.fromOpaque(client).takeUnretainedValue().next(buffer)
            }, nil)
        }
    }

    /// The bytes of one member of an outer archive, handed to a nested reader's read callback.
    private final class MemberStream {
        let outer: ArchiveReader
        let member: Int
        let path: String
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
        /// Why the stream stopped early: the nested reader reports this rather than libarchive's
        /// generic read error.
        var failure: ArchiveError?
        var bytes = 0

        init(outer: ArchiveReader, member: Int, path: String) {
            self.outer = outer
            self.member = member
            self.path = path
        }

        deinit { buffer.deallocate() }

        func next(_ out: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
            guard outer.entries == member else {
                failure = .malformed(message: "member \(path) read after its archive moved on", archive: outer.name)
                return -1
            }
            let n = archive_read_data(outer.handle, buffer, 65536)
            if n < 0 {
                failure = outer.malformed()
                return -1
            }
            bytes += n
            do throws(ArchiveError) { try outer.count(n, path: path, memberBytes: bytes) } catch {
                failure = error
                return -1
            }
            out.pointee = UnsafeRawPointer(buffer)
            return n
        }
    }

    private init(name: String, limits: ArchiveLimits, depth: Int, size: Int64, source: MemberStream? = nil,
                 open: (OpaquePointer) -> Int32) throws(ArchiveError) {
        guard let handle = archive_read_new() else { throw .malformed(message: "out of memory", archive: name) }
        // Only filters libarchive implements itself: "all" would also run external programs
        // (lrzip, lzop, grzip) on an attacker's input when they are installed.
        archive_read_support_filter_gzip(handle)
        archive_read_support_filter_bzip2(handle)
        archive_read_support_filter_xz(handle)
        archive_read_support_filter_zstd(handle)
        archive_read_support_format_tar(handle)
        archive_read_support_format_gnutar(handle)
        archive_read_support_format_zip(handle)
        self.handle = handle
        self.name = name
        self.limits = limits
        self.depth = depth
        self.archiveSize = max(size, 1)
        // Set before opening: libarchive reads ahead while it recognises the format.
        self.source = source
        if open(handle) != ARCHIVE_OK {
            // Every stored property is set, so deinit runs and frees the handle.
            throw source?.failure ?? .malformed(message: archive_error_string(handle).map { String(cString: $0) } ?? "cannot open", archive: name)
        }
    }

    deinit {
        archive_read_free(handle)
        backing?.deallocate()
    }

    /// Calls `body` for each member with a function that reads its content (at most once).
    public func forEach(_ body: (ArchiveEntry, () throws(ArchiveError) -> [UInt8]) throws -> Void) throws {
        while true {
            var header: OpaquePointer?
            let code = archive_read_next_header(handle, &header)
            if code == ARCHIVE_EOF { return }
            guard code == ARCHIVE_OK || code == ARCHIVE_WARN, let header else { throw malformed() }
            entries += 1
            if entries > limits.entryCount { throw ArchiveError.limit(name: "entry count", limit: Int64(limits.entryCount), archive: name) }
            let entry = try check(header)
            currentConsumed = false
            try body(entry) { () throws(ArchiveError) -> [UInt8] in
                guard !self.currentConsumed else { return [] }
                self.currentConsumed = true
                return try self.readData(path: entry.path)
            }
        }
    }

    private func malformed() -> ArchiveError {
        // A streamed nested archive fails with the reason its outer archive stopped (a limit, a
        // damaged outer archive), not libarchive's "read error" from the callback.
        if let failure = source?.failure { return failure }
        return .malformed(message: archive_error_string(handle).map { String(cString: $0) } ?? "unreadable archive", archive: name)
    }

    /// Validates one header: path, kind, links, declared size.
    private func check(_ header: OpaquePointer) throws(ArchiveError) -> ArchiveEntry {
        guard let raw = archive_entry_pathname_utf8(header) ?? archive_entry_pathname(header) else {
            throw .malformed(message: "entry without a path", archive: name)
        }
        let original = String(cString: raw)
        guard original.utf8.count <= limits.pathLength else { throw .limit(name: "path length", limit: Int64(limits.pathLength), archive: name) }
        let path = try Self.normalize(original, archive: name)
        let type = archive_entry_filetype(header)
        var kind: ArchiveEntry.Kind
        var target: String?
        if let hard = archive_entry_hardlink(header) {
            kind = .hardlink
            target = String(cString: hard)
            // A hard link names another member by its path from the archive's root.
            _ = try Self.normalize(target!, archive: name, entry: path)
        } else {
            // libarchive's AE_IF* macros carry casts Swift does not import; these are their values.
            switch UInt32(type) & 0o170000 {
            case 0o100000: kind = .file
            case 0o040000: kind = .directory
            case 0o120000:
                kind = .symlink
                target = archive_entry_symlink(header).map { String(cString: $0) } ?? ""
                if !limits.symlinksResolveInRoot { try Self.checkSymlink(target!, from: path, archive: name) }
            case 0o020000: throw .unsupportedEntry(path: path, kind: "character device", archive: name)
            case 0o060000: throw .unsupportedEntry(path: path, kind: "block device", archive: name)
            case 0o010000: throw .unsupportedEntry(path: path, kind: "FIFO", archive: name)
            case 0o140000: throw .unsupportedEntry(path: path, kind: "socket", archive: name)
            default: kind = .file
            }
        }
        let size = archive_entry_size_is_set(header) != 0 ? archive_entry_size(header) : 0
        if size > limits.entryBytes { throw .limit(name: "entry size", limit: limits.entryBytes, archive: "\(name)!\(path)") }
        return ArchiveEntry(path: path, kind: kind, declaredSize: size, linkTarget: target, mode: UInt32(archive_entry_perm(header)))
    }

    /// Counts every byte actually read, whatever the header claimed.
    private func readData(path: String) throws(ArchiveError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { archive_read_data(handle, $0.baseAddress, $0.count) }
            if n == 0 { return out }
            if n < 0 { throw malformed() }
            out.append(contentsOf: buffer[0..<n])
            try count(n, path: path, memberBytes: out.count)
        }
    }

    /// Counts `n` bytes just read from member `path` (`memberBytes` of it so far) against the
    /// limits.
    private func count(_ n: Int, path: String, memberBytes: Int) throws(ArchiveError) {
        totalRead += Int64(n)
        if Int64(memberBytes) > limits.entryBytes { throw .limit(name: "entry size", limit: limits.entryBytes, archive: "\(name)!\(path)") }
        if totalRead > limits.totalBytes { throw .limit(name: "total size", limit: limits.totalBytes, archive: name) }
        if totalRead > 1 << 20 && totalRead / archiveSize > limits.compressionRatio {
            throw .limit(name: "compression ratio", limit: limits.compressionRatio, archive: name)
        }
    }

    /// "./a//b" → "a/b". Absolute paths, ".." components and NUL-free but empty names are refused.
    static func normalize(_ path: String, archive: String, entry: String? = nil) throws(ArchiveError) -> String {
        let shown = entry ?? path
        if path.hasPrefix("/") { throw .unsafePath(path: shown, reason: "absolute path", archive: archive) }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw .unsafePath(path: shown, reason: "'..' component", archive: archive) }
            parts.append(part)
        }
        if parts.isEmpty { return "." }
        return parts.joined(separator: "/")
    }

    /// A symlink may point only inside the archive: relative, and never above its root.
    static func checkSymlink(_ target: String, from entry: String, archive: String) throws(ArchiveError) {
        if target.hasPrefix("/") { throw .unsafePath(path: entry, reason: "symlink to absolute path \(target)", archive: archive) }
        var depth = entry.split(separator: "/").count - 1  // the link's directory
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                depth -= 1
                if depth < 0 { throw .unsafePath(path: entry, reason: "symlink \(target) points outside the archive", archive: archive) }
            } else {
                depth += 1
            }
        }
    }
}
