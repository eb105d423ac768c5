import CordonArchive
import FuzzSupport

/// `ArchiveReader` on an archive held in memory (any format and filter it accepts), reading
/// every member, and members named like archives as nested archives (as `cordon scan` does
/// with a wheel inside an sdist), down to the nesting limit. Whatever the bytes, every member
/// the reader hands out has a path inside the archive, and a symlink points inside it too.
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
            guard let reader = try? ArchiveReader.inMemory(name: "fuzz", bytes: Array(input), limits: limits, depth: 1) else { return }
            read(reader)
        }
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
