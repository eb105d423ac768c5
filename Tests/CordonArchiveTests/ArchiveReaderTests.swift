@testable import CordonArchive
import Foundation
import Testing

/// Fixtures are built by Python's zipfile/tarfile (an independent writer), each with one trick.
enum Fixture {
    static let dir: String = {
        let d = NSTemporaryDirectory() + "cordon-archive-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    /// Runs a Python snippet with `out` bound to the fixture's path; returns the path.
    static func make(_ name: String, _ python: String) throws -> String {
        let out = "\(dir)/\(name)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", "import io, os, tarfile, zipfile\nout = \(quoted(out))\n" + python]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        return out
    }

    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }

    static func entries(_ path: String, limits: ArchiveLimits = ArchiveLimits()) throws -> [(ArchiveEntry, [UInt8])] {
        var out: [(ArchiveEntry, [UInt8])] = []
        try ArchiveReader(path: path, limits: limits).forEach { entry, read in out.append((entry, try read())) }
        return out
    }

    static func failure(_ path: String, limits: ArchiveLimits = ArchiveLimits()) -> ArchiveError? {
        do { _ = try entries(path, limits: limits); return nil } catch let error as ArchiveError { return error } catch { return nil }
    }
}

struct ArchiveReaderTests {
    @Test func readsZipAndTarGzWithoutExtracting() throws {
        let zip = try Fixture.make("ok.zip", "with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n z.writestr('pkg/__init__.py', 'x = 1\\n')\n z.writestr('./pkg//data.txt', 'hello')")
        let z = try Fixture.entries(zip)
        #expect(z.map { $0.0.path } == ["pkg/__init__.py", "pkg/data.txt"])
        #expect(String(decoding: z[1].1, as: UTF8.self) == "hello")
        let tgz = try Fixture.make("ok.tar.gz", "with tarfile.open(out, 'w:gz') as t:\n data = b'print(1)'\n i = tarfile.TarInfo('pkg-1.0/setup.py'); i.size = len(data); t.addfile(i, io.BytesIO(data))\n d = tarfile.TarInfo('pkg-1.0/lib'); d.type = tarfile.DIRTYPE; t.addfile(d)\n l = tarfile.TarInfo('pkg-1.0/link'); l.type = tarfile.SYMTYPE; l.linkname = 'lib/../setup.py'; t.addfile(l)")
        let t = try Fixture.entries(tgz)
        #expect(t.map { $0.0.kind } == [.file, .directory, .symlink])
        #expect(t[0].1 == Array("print(1)".utf8))
    }

    @Test(arguments: [
        ("dotdot.tar", "i = tarfile.TarInfo('../evil'); i.size = 0", "'..' component"),
        ("nested-dotdot.tar", "i = tarfile.TarInfo('a/b/../../../evil'); i.size = 0", "'..' component"),
        ("absolute.tar", "i = tarfile.TarInfo('/etc/cron.d/evil'); i.size = 0", "absolute path"),
        ("symlink-abs.tar", "i = tarfile.TarInfo('a/link'); i.type = tarfile.SYMTYPE; i.linkname = '/etc/passwd'", "symlink to absolute path"),
        ("symlink-out.tar", "i = tarfile.TarInfo('a/link'); i.type = tarfile.SYMTYPE; i.linkname = '../../etc/passwd'", "points outside the archive"),
        ("hardlink-out.tar", "i = tarfile.TarInfo('a/hard'); i.type = tarfile.LNKTYPE; i.linkname = '../outside'", "'..' component"),
    ])
    func traversalIsRefused(_ c: (String, String, String)) throws {
        let path = try Fixture.make(c.0, "with tarfile.open(out, 'w', format=tarfile.GNU_FORMAT) as t:\n \(c.1); t.addfile(i)")
        let error = try #require(Fixture.failure(path))
        guard case .unsafePath(_, let reason, _) = error else { Issue.record("\(error)"); return }
        #expect(reason.contains(c.2), "\(error)")
    }

    @Test(arguments: [("chr.tar", tarfile: "CHRTYPE", "character device"), ("blk.tar", tarfile: "BLKTYPE", "block device"), ("fifo.tar", tarfile: "FIFOTYPE", "FIFO")])
    func deviceNodesAreRefused(_ c: (String, tarfile: String, String)) throws {
        let path = try Fixture.make(c.0, "with tarfile.open(out, 'w') as t:\n i = tarfile.TarInfo('dev/x'); i.type = tarfile.\(c.tarfile); t.addfile(i)")
        #expect(Fixture.failure(path) == .unsupportedEntry(path: "dev/x", kind: c.2, archive: path))
    }

    @Test func zipBombHitsTheRatioLimit() throws {
        let path = try Fixture.make("bomb.zip", "with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n z.writestr('zeros', b'\\0' * (20 << 20))")
        let error = try #require(Fixture.failure(path))
        #expect(error == .limit(name: "compression ratio", limit: 200, archive: path), "\(error)")
    }

    @Test func entrySizeIsCountedAsRead() throws {
        let path = try Fixture.make("big.tar", "with tarfile.open(out, 'w') as t:\n data = os.urandom(3 << 20)\n i = tarfile.TarInfo('big'); i.size = len(data); t.addfile(i, io.BytesIO(data))")
        var limits = ArchiveLimits()
        limits.entryBytes = 1 << 20
        let error = try #require(Fixture.failure(path, limits: limits))
        #expect(error == .limit(name: "entry size", limit: 1 << 20, archive: "\(path)!big"))
    }

    @Test func entryCountAndPathLengthAreLimited() throws {
        let many = try Fixture.make("many.tar", "with tarfile.open(out, 'w') as t:\n for n in range(50):\n  i = tarfile.TarInfo('f%d' % n); t.addfile(i, io.BytesIO(b''))")
        var limits = ArchiveLimits()
        limits.entryCount = 10
        #expect(Fixture.failure(many, limits: limits) == .limit(name: "entry count", limit: 10, archive: many))
        let long = try Fixture.make("long.tar", "with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:\n i = tarfile.TarInfo('d/' * 700 + 'f'); t.addfile(i, io.BytesIO(b''))")
        #expect(Fixture.failure(long) == .limit(name: "path length", limit: 1024, archive: long))
    }

    @Test func nestingIsLimited() throws {
        let path = try Fixture.make("nested.zip", """
            def wrap(data, name):
             buf = io.BytesIO()
             with zipfile.ZipFile(buf, 'w') as z: z.writestr(name, data)
             return buf.getvalue()
            inner = wrap(b'core', 'core.txt')
            for level in range(3): inner = wrap(inner, 'level%d.zip' % level)
            open(out, 'wb').write(inner)
            """)
        var limits = ArchiveLimits()
        limits.nestingDepth = 3
        func descend(_ reader: ArchiveReader) throws {
            try reader.forEach { entry, read in
                let bytes = try read()
                if entry.path.hasSuffix(".zip") { try descend(try reader.nested(name: entry.path, bytes: bytes)) }
            }
        }
        #expect(throws: ArchiveError.limit(name: "nesting depth", limit: 3, archive: "\(path)!level2.zip!level1.zip!level0.zip")) {
            try descend(try ArchiveReader(path: path, limits: limits))
        }
        limits.nestingDepth = 4
        try descend(try ArchiveReader(path: path, limits: limits))
    }

    @Test func garbageIsMalformedNotACrash() throws {
        let path = "\(Fixture.dir)/garbage.zip"
        try #require(FileManager.default.createFile(atPath: path, contents: Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) })))
        guard case .malformed? = Fixture.failure(path) else { Issue.record("garbage accepted"); return }
    }
}
