@testable import CordonArchive
import Foundation
import Testing

/// `nestedStream`: a member read as an archive straight from its outer archive, never whole.
struct NestedStreamTests {
    /// An outer tar holding inner.tar.gz (two files) and a plain file after it.
    /// With `random`, the inner files are incompressible (so the compressed member is as large).
    static func outer(_ name: String, innerFiles: Int = 2, innerBytes: Int = 5, random: Bool = false) throws -> String {
        try Fixture.make(name, """
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode='w:gz') as t:
                for k in range(\(innerFiles)):
                    data = os.urandom(\(innerBytes)) if \(random ? "True" : "False") else bytes([65 + k % 26]) * \(innerBytes)
                    i = tarfile.TarInfo(f'dir/f{k}'); i.size = len(data); t.addfile(i, io.BytesIO(data))
            with tarfile.open(out, 'w') as t:
                for n, data in [('inner.tar.gz', inner.getvalue()), ('after.txt', b'after')]:
                    i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """)
    }

    @Test func readsAMemberAsAnArchiveAndGoesOn() throws {
        let path = try Self.outer("nested-ok.tar")
        var inner: [String: [UInt8]] = [:]
        var outer: [String] = []
        let reader = try ArchiveReader(path: path)
        try reader.forEach { entry, read in
            outer.append(entry.path)
            if entry.path == "inner.tar.gz" {
                try reader.nestedStream(entry).forEach { e, r in inner[e.path] = try r() }
                // Handed out once: the member's bytes went to the nested reader.
                #expect(try read() == [])
            } else {
                #expect(try read() == Array("after".utf8))
            }
        }
        #expect(outer == ["inner.tar.gz", "after.txt"])
        #expect(inner == ["dir/f0": Array("AAAAA".utf8), "dir/f1": Array("BBBBB".utf8)])
    }

    /// Kept past its member, a nested reader fails rather than reading the next member's bytes
    /// (once it has used what libarchive read ahead while opening it: a member larger than that).
    @Test func aNestedReaderKeptPastItsMemberFails() throws {
        let path = try Self.outer("nested-late.tar", innerFiles: 4, innerBytes: 300_000, random: true)
        let reader = try ArchiveReader(path: path)
        var kept: ArchiveReader?
        try reader.forEach { entry, _ in
            if entry.path == "inner.tar.gz" { kept = try reader.nestedStream(entry) }
        }
        let late = try #require(kept)
        let error = #expect(throws: ArchiveError.self) { try late.forEach { _, read in _ = try read() } }
        #expect(error?.description.contains("read after its archive moved on") == true, "\(String(describing: error))")
    }

    /// What the nested reader pulls counts against the outer archive's limits (here its total),
    /// and the error says which limit, not libarchive's "read error" from the callback.
    @Test func bytesPulledCountAgainstTheOuterLimits() throws {
        let path = try Self.outer("nested-limit.tar", innerFiles: 4, innerBytes: 300_000, random: true)
        var limits = ArchiveLimits()
        limits.totalBytes = 4096
        let reader = try ArchiveReader(path: path, limits: limits)
        let error = #expect(throws: ArchiveError.self) {
            try reader.forEach { entry, _ in
                if entry.path == "inner.tar.gz" { try reader.nestedStream(entry).forEach { _, r in _ = try r() } }
            }
        }
        #expect(error == .limit(name: "total size", limit: 4096, archive: path), "\(String(describing: error))")
    }

    @Test func nestingDepthHolds() throws {
        let path = try Self.outer("nested-depth.tar")
        var limits = ArchiveLimits()
        limits.nestingDepth = 1
        let reader = try ArchiveReader(path: path, limits: limits)
        #expect(throws: ArchiveError.limit(name: "nesting depth", limit: 1, archive: "\(path)!inner.tar.gz")) {
            try reader.forEach { entry, _ in if entry.path == "inner.tar.gz" { _ = try reader.nestedStream(entry) } }
        }
    }
}
