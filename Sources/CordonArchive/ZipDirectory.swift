#if canImport(Glibc)
import Glibc
#endif

/// A zip file's central directory, read the way Python's zipfile (and so pip) reads it, and
/// checked against every local header: what a wheel *is* to its installer. libarchive reads a
/// zip partly from its local headers (the compression method, and in its streaming reader
/// everything), so a crafted zip can show libarchive one set of members and pip another. The
/// install gate reads a wheel with libarchive only after this has found the two views cannot
/// differ: one end record at the very end (a comment of exactly its stated length, nothing
/// after it), the central directory right before it, every entry's local header at its offset
/// with the same name, method, flags, CRC and sizes, entries laid end to end from offset 0
/// (nothing before the first, nothing hidden between two), stored or deflated only, no
/// encryption, no data descriptor, no zip64. A directory is a name ending in '/', as zipfile has it.
public struct ZipDirectory: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var method: UInt16
        public var crc: UInt32
        public var compressedSize: UInt32
        public var size: UInt32
        public var offset: UInt32
        public var isDirectory: Bool { name.hasSuffix("/") }
    }

    public var entries: [Entry]

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    static let maxEntries = 100_000

    /// Reads the zip open at `fd` (a regular file; the offset is not used).
    public static func read(_ fd: Int32, name: String) throws(Problem) -> ZipDirectory {
        func fail(_ why: String) -> Problem { Problem("\(name): \(why)") }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw fail("not a regular file") }
        let size = Int64(st.st_size)
        guard size >= 22 else { throw fail("too short to be a zip") }
        func bytes(_ offset: Int64, _ count: Int) throws(Problem) -> [UInt8] {
            guard offset >= 0, count >= 0, offset + Int64(count) <= size else { throw fail("a record runs past the end of the file") }
            var out = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw fail("reading: \(n < 0 ? String(cString: strerror(errno)) : "unexpected end")") }
                done += n
            }
            return out
        }
        func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
        func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24 }

        // The end record: zipfile searches the last 64 KiB + 22 bytes; its comment must end the file.
        let tailLength = Int(min(size, 65_557))
        let tail = try bytes(size - Int64(tailLength), tailLength)
        var eocd: Int?
        var i = tailLength - 22
        while i >= 0 {
            if tail[i] == 0x50 && tail[i + 1] == 0x4b && tail[i + 2] == 5 && tail[i + 3] == 6 && i + 22 + Int(u16(tail, i + 20)) == tailLength {
                eocd = i
                break
            }
            i -= 1
        }
        guard let e = eocd else { throw fail("no end-of-central-directory record ending the file (a trailing comment of another length, or bytes after it)") }
        let end = Array(tail[e..<(e + 22)])
        guard u16(end, 4) == 0, u16(end, 6) == 0, u16(end, 8) == u16(end, 10) else { throw fail("a multi-disk zip") }
        let count = Int(u16(end, 10))
        let directorySize = Int64(u32(end, 12)), directoryOffset = Int64(u32(end, 16))
        guard count != 0xffff, directorySize != 0xffff_ffff, directoryOffset != 0xffff_ffff else { throw fail("a zip64 archive (not read)") }
        guard count <= maxEntries else { throw fail("more than \(maxEntries) entries") }
        let endOffset = size - Int64(tailLength) + Int64(e)
        guard directoryOffset + directorySize == endOffset else {
            throw fail("the central directory does not end where the end record begins (bytes hidden between them, or a zip64 locator)")
        }
        let directory = try bytes(directoryOffset, Int(directorySize))
        var entries: [Entry] = []
        var names = Set<String>()
        var p = 0
        for _ in 0..<count {
            guard p + 46 <= directory.count, u32(directory, p) == 0x0201_4b50 else { throw fail("a central directory entry is malformed") }
            let flags = u16(directory, p + 8), method = u16(directory, p + 10)
            let nameLength = Int(u16(directory, p + 28)), extraLength = Int(u16(directory, p + 30)), commentLength = Int(u16(directory, p + 32))
            guard p + 46 + nameLength + extraLength + commentLength <= directory.count else { throw fail("a central directory entry runs past the directory") }
            let rawName = Array(directory[(p + 46)..<(p + 46 + nameLength)])
            // zipfile decodes a name as UTF-8 with flag 0x800 and as cp437 without; only ASCII reads the same both ways, and in libarchive.
            guard flags & 0x800 != 0 || rawName.allSatisfy({ $0 < 0x80 }) else { throw fail("a non-ASCII member name without the UTF-8 flag (installers decode it as cp437)") }
            let name = String(decoding: rawName, as: UTF8.self)
            guard Array(name.utf8) == rawName else { throw fail("a member name that is not UTF-8") }
            guard flags & 0x1 == 0 else { throw fail("\(name) is encrypted") }
            guard flags & 0x8 == 0 else { throw fail("\(name) has a data descriptor (its sizes are after its data: not read)") }
            guard method == 0 || method == 8 else { throw fail("\(name) is compressed with method \(method) (stored or deflated only)") }
            guard names.insert(name).inserted else { throw fail("\(name) appears twice in the central directory") }
            entries.append(Entry(name: name, method: method, crc: u32(directory, p + 16), compressedSize: u32(directory, p + 20),
                                 size: u32(directory, p + 24), offset: u32(directory, p + 42)))
            p += 46 + nameLength + extraLength + commentLength
        }
        guard p == directory.count else { throw fail("bytes after the last central directory entry") }

        // Every local header where the directory says, agreeing with it, the entries end to end from 0.
        var expected: Int64 = 0
        for entry in entries.sorted(by: { $0.offset < $1.offset }) {
            guard Int64(entry.offset) == expected else {
                throw fail(expected == 0 ? "bytes before the first member" : "bytes between members (before \(entry.name))")
            }
            let header = try bytes(Int64(entry.offset), 30)
            guard u32(header, 0) == 0x0403_4b50 else { throw fail("\(entry.name): no local header at its offset") }
            let nameLength = Int(u16(header, 26)), extraLength = Int(u16(header, 28))
            let localName = try bytes(Int64(entry.offset) + 30, nameLength)
            guard localName == Array(entry.name.utf8) else { throw fail("\(entry.name): its local header names another member") }
            guard u16(header, 8) == entry.method, u16(header, 6) & 0x8 == 0, u32(header, 14) == entry.crc,
                  u32(header, 18) == entry.compressedSize, u32(header, 22) == entry.size else {
                throw fail("\(entry.name): its local header and the central directory disagree (method, CRC or sizes)")
            }
            if entry.method == 0 && entry.compressedSize != entry.size { throw fail("\(entry.name): stored, but its two sizes differ") }
            expected = Int64(entry.offset) + 30 + Int64(nameLength) + Int64(extraLength) + Int64(entry.compressedSize)
        }
        guard expected == directoryOffset else { throw fail("bytes between the last member and the central directory") }
        return ZipDirectory(entries: entries)
    }

    /// Whether what libarchive listed (`kind`, normalised path) is exactly the directory's
    /// members: the same files, and a directory only where a name ends in '/'. nil when it is.
    public func disagreement(with listed: [(path: String, isDirectory: Bool)]) -> String? {
        func normal(_ s: String) -> String { var t = s; while t.hasSuffix("/") { t.removeLast() }; return t.hasPrefix("./") ? String(t.dropFirst(2)) : t }
        var mine: [String: Bool] = [:]
        for e in entries { mine[normal(e.name)] = e.isDirectory }
        var theirs: [String: Bool] = [:]
        for l in listed {
            if theirs[normal(l.path)] != nil { return "\(l.path) is listed twice" }
            theirs[normal(l.path)] = l.isDirectory
        }
        for (path, isDirectory) in theirs.sorted(by: { $0.key < $1.key }) {
            guard let expected = mine[path] else { return "\(path) is read, but the central directory has no such member" }
            if expected != isDirectory { return "\(path) is read as a \(isDirectory ? "directory" : "file"), but installers take it for a \(expected ? "directory" : "file")" }
        }
        for path in mine.keys.sorted() where theirs[path] == nil { return "the central directory's \(path) is not read" }
        return nil
    }
}
