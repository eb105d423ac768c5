import CLinux
import CordonSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `FileSystem.read` sizes its buffer from fstat and grows it: every length around the
/// boundaries comes back whole, the limit holds exactly, and pseudo-files (which say 0 or 4096)
/// are read to their end.
struct FileReadTests {
    static func scratchFile(_ bytes: [UInt8]) throws -> String {
        var template = Array("/tmp/cordon-read-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        try #require(written == bytes.count)
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test(arguments: [0, 1, 511, 512, 513, 4095, 4096, 4097, 65_536, 200_001])
    func everyLengthComesBackWhole(length: Int) throws {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let path = try Self.scratchFile(bytes)
        defer { unlink(path) }
        #expect(try FileSystem.read(path) == bytes)
    }

    @Test func theLimitIsExact() throws {
        let path = try Self.scratchFile([UInt8](repeating: 0x41, count: 10_000))
        defer { unlink(path) }
        #expect(try FileSystem.read(path, limit: 10_000).count == 10_000)
        #expect(throws: SystemError.self) { try FileSystem.read(path, limit: 9_999) }
    }

    /// A file that grows after fstat (the hint is short) is still read to its end.
    @Test func aFileLongerThanItsSizeSaidIsReadWhole() throws {
        // /proc/self/maps reports size 0 and is far longer than one page for a test binary.
        let maps = try FileSystem.read("/proc/self/maps")
        #expect(maps.count > 4096)
        #expect(maps.last == UInt8(ascii: "\n"))
    }
}

/// What a file's size claims is a hint, never trusted: a tmpfs file (or a FUSE one) may say
/// anything up to Int64.max, and the read must end in EFBIG at the limit, not trap.
struct FileSizeClaimTests {
    static func sparse(size: Int64) throws -> (fd: Int32, path: String) {
        let fd = cl_memfd("cordon-read-claim")
        try #require(fd >= 0)
        try #require(ftruncate(fd, off_t(size)) == 0)
        return (fd, "/proc/self/fd/\(fd)")
    }

    @Test(arguments: [Int64.max, Int64.max - 1, 1 << 40])
    func aHugeClaimedSizeIsRefusedAtTheLimit(size: Int64) throws {
        let (fd, path) = try Self.sparse(size: size)
        defer { close(fd) }
        #expect(throws: SystemError.self) { try FileSystem.read(path, limit: 1 << 20) }
        do { _ = try FileSystem.read(path, limit: 1 << 20) } catch { #expect(error.errno == EFBIG) }
    }

    /// No limit at all (Int.max) reads a short file whole.
    @Test func anUnlimitedReadWorks() throws {
        let path = try FileReadTests.scratchFile([1, 2, 3])
        defer { unlink(path) }
        #expect(try FileSystem.read(path, limit: .max) == [1, 2, 3])
    }
}
