import CordonArchive
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// `ArchiveReader` on an archive held in memory (any format and filter it accepts), reading
/// every member, and members named like archives as nested archives (as `cordon scan` does
/// with a wheel inside an sdist), down to the nesting limit. Whatever the bytes, every member
/// the reader hands out has a path inside the archive, and a symlink points inside it too.
/// `ZipDirectory` reads the same bytes as a wheel's central directory.
@main enum FuzzArchive {
    static let limits: ArchiveLimits = {
        var l = ArchiveLimits()
        // Small enough for thousands of runs a second; the compression-ratio limit still applies.
        l.totalBytes = 16 << 20
        l.entryBytes = 4 << 20
        l.entryCount = 10_000
        return l
    }()

    static func main() {
        Fuzzer.run { input in
            zipDirectory(Array(input))
            guard let reader = try? ArchiveReader.inMemory(name: "fuzz", bytes: Array(input), limits: limits, depth: 1) else { return }
            read(reader)
        }
    }

    /// One unlinked file for every input (`ZipDirectory` reads a descriptor of a regular file).
    nonisolated(unsafe) static var scratch: Int32 = {
        let path = "/tmp/fuzz-zip-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        unlink(path)
        return fd
    }()

    /// `ZipDirectory` on the same bytes. Whatever it accepts has members laid end to end from
    /// offset 0, names once each, stored or deflated.
    static func zipDirectory(_ bytes: [UInt8]) {
        let fd = scratch
        guard fd >= 0, ftruncate(fd, 0) == 0, bytes.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { return }
        guard let zip = try? ZipDirectory.read(fd, name: "fuzz") else { return }
        require(Set(zip.entries.map { (e: ZipDirectory.Entry) in e.name }).count == zip.entries.count, "a name twice")
        require(zip.entries.allSatisfy { $0.method == 0 || $0.method == 8 }, "a method other than stored or deflated")
        let offsets = zip.entries.map { (e: ZipDirectory.Entry) in e.offset }.sorted()
        require(zip.entries.isEmpty || offsets[0] == 0, "the first member is not at 0")
        require(zip.entries.allSatisfy { $0.method != 0 || $0.compressedSize == $0.size }, "a stored member with two sizes")
    }

    static func read(_ reader: ArchiveReader) {
        try? reader.forEach { entry, content in
            require(!entry.path.hasPrefix("/") && !entry.path.split(separator: "/").contains(".."),
                         "member path \(entry.path) leaves the archive")
            if entry.kind == .symlink, let target = entry.linkTarget {
                require(!target.hasPrefix("/"), "symlink \(entry.path) → \(target) is absolute")
                var depth = entry.path.split(separator: "/").count - 1
                for part in target.split(separator: "/") where part != "." {
                    depth += part == ".." ? -1 : 1
                    require(depth >= 0, "symlink \(entry.path) → \(target) leaves the archive")
                }
            }
            let bytes = try content()
            require(Int64(bytes.count) <= limits.entryBytes, "member \(entry.path) read past the entry limit")
            if [".zip", ".whl", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst"].contains(where: entry.path.hasSuffix),
               let inner = try? reader.nested(name: entry.path, bytes: bytes) {
                read(inner)
            }
        }
    }
}
