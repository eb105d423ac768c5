import CordonArchive
@testable import CordonScanner
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `ImageUnpacker` against the OCI image spec's layer rules, on layers written by Python's
/// tarfile: a whiteout and an opaque marker remove only what the layers below put there, a
/// later entry replaces whatever kind was there, nothing is written through a symlink or keeps
/// a set-ID bit, and a hard link lands on the file its layer meant.
@Suite struct ImageUnpackTests {
    /// An OCI layout at `out` whose layers are the given lists of (kind, path, data-or-target, mode).
    static func layout(_ out: String, _ layers: [[(String, String, String, Int)]]) throws {
        let spec = layers.map { $0.map { [$0.0, $0.1, $0.2, String($0.3)] } }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        _ = try ScanFixture.python("""
            import hashlib
            out, spec = sys.argv[1], json.loads(sys.argv[2])
            os.makedirs(out + "/blobs/sha256")
            def blob(data):
                d = hashlib.sha256(data).hexdigest()
                open(out + "/blobs/sha256/" + d, "wb").write(data)
                return {"digest": "sha256:" + d, "size": len(data)}
            layers = []
            for entries in spec:
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
                    for kind, path, data, mode in entries:
                        i = tarfile.TarInfo(path); i.mode = int(mode)
                        if kind == "dir": i.type = tarfile.DIRTYPE; t.addfile(i)
                        elif kind == "link": i.type = tarfile.SYMTYPE; i.linkname = data; t.addfile(i)
                        elif kind == "hard": i.type = tarfile.LNKTYPE; i.linkname = data; t.addfile(i)
                        elif kind == "big": i.size = int(data); t.addfile(i, io.BytesIO(b"x" * int(data)))
                        else: b = data.encode(); i.size = len(b); t.addfile(i, io.BytesIO(b))
                d = blob(buf.getvalue()); d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"; layers.append(d)
            config = blob(b"{}"); config["mediaType"] = "application/vnd.oci.image.config.v1+json"
            m = blob(json.dumps({"schemaVersion": 2, "config": config, "layers": layers}).encode())
            m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
            open(out + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [m]}))
            open(out + "/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
            """, args: [out, json])
    }

    static func unpack(_ layers: [[(String, String, String, Int)]]) throws -> (root: String, result: Result<ImageUnpacker.Summary, Error>) {
        let dir = try ImageFixture.scratch()
        try layout("\(dir)/oci", layers)
        try FileManager.default.createDirectory(atPath: "\(dir)/root", withIntermediateDirectories: false)
        return ("\(dir)/root", Result { try ImageUnpacker.unpack("\(dir)/oci", ref: nil, platform: nil, into: "\(dir)/root") })
    }

    static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    @Test func whiteoutsAndOpaqueDirectoriesRemoveOnlyWhatIsBelow() throws {
        let (root, result) = try Self.unpack([
            [("dir", "d", "", 0o755), ("file", "d/old", "old", 0o644), ("dir", "d/sub", "", 0o755), ("file", "d/sub/deep", "deep", 0o644),
             ("file", "gone", "gone", 0o644), ("file", "kept", "kept", 0o644)],
            // Same layer: a file and its own whiteout (the whiteout is for the layers below: the
            // file stays); an opaque marker after a new file of its layer (which stays) and
            // before another (which stays too); the lower d/old and d/sub go.
            [("file", "fresh", "fresh", 0o644), ("file", ".wh.fresh", "", 0o644), ("file", ".wh.gone", "", 0o644),
             ("file", "d/new1", "1", 0o644), ("file", "d/.wh..wh..opq", "", 0o644), ("file", "d/new2", "2", 0o644)],
        ])
        _ = try result.get()
        #expect(Self.read("\(root)/fresh") == "fresh")
        #expect(Self.read("\(root)/gone") == nil && Self.read("\(root)/kept") == "kept")
        #expect(Self.read("\(root)/d/new1") == "1" && Self.read("\(root)/d/new2") == "2")
        #expect(Self.read("\(root)/d/old") == nil && !FileManager.default.fileExists(atPath: "\(root)/d/sub"))
    }

    @Test func laterEntriesReplaceAnyKindAndBitsAreDropped() throws {
        let (root, result) = try Self.unpack([
            [("dir", "x", "", 0o755), ("file", "x/inner", "i", 0o644), ("link", "y", "/etc", 0o777), ("file", "z", "z", 0o644),
             ("file", "suid", "s", 0o4755), ("dir", "sgid", "", 0o2775), ("dir", "tmp", "", 0o1777)],
            [("file", "x", "now a file", 0o600), ("dir", "y", "", 0o700), ("link", "z", "../../../etc/passwd", 0o777),
             ("hard", "suid2", "suid", 0o644)],
        ])
        _ = try result.get()
        var st = stat()
        #expect(Self.read("\(root)/x") == "now a file")
        #expect(lstat("\(root)/x", &st) == 0 && st.st_mode & 0o7777 == 0o600)
        #expect(lstat("\(root)/y", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR)
        // Kept as written; it would resolve inside the sandbox's root, and nothing followed it.
        #expect(FileManager.default.destinationOfSymbolicLinkOrNil("\(root)/z") == "../../../etc/passwd")
        #expect(lstat("\(root)/suid", &st) == 0 && st.st_mode & 0o7777 == 0o755 && st.st_nlink == 2)
        // No set-ID bit, no write bit for group or others (the root is read-only); the sticky bit stays.
        #expect(lstat("\(root)/sgid", &st) == 0 && st.st_mode & 0o7777 == 0o755)
        #expect(lstat("\(root)/tmp", &st) == 0 && st.st_mode & 0o7777 == 0o1755)
    }

    /// A directory's mode is applied once every layer is in: a 0555 directory (Fedora's
    /// /usr/bin) still gets its files, from its own layer and later ones, unpacked by a user
    /// without capabilities (the worker's uid 1000; here run as whoever runs the tests).
    @Test func aReadOnlyDirectoryStillGetsItsFiles() throws {
        let dir = try ImageFixture.scratch()
        try Self.layout("\(dir)/oci", [
            [("dir", "usr", "", 0o555), ("dir", "usr/bin", "", 0o555), ("file", "usr/bin/ls", "ls", 0o755)],
            [("file", "usr/bin/cat", "cat", 0o755), ("file", "usr/bin/.wh.ls", "", 0o644)],
        ])
        // As cordond's worker does: `cordon-scan unpack`, as a user without capabilities (root
        // would write into a 0555 directory anyway).
        let out = "\(dir)/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        var argv = [ImageFixture.cordonScan, "unpack", "--into", out, "--db", "\(dir)/none.db", "\(dir)/oci"]
        if geteuid() == 0 {
            chown(out, 65534, 65534)
            chmod(dir, 0o755)
            argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(said)")
        let root = "\(out)/rootfs"
        var st = stat()
        #expect(Self.read("\(root)/usr/bin/cat") == "cat" && Self.read("\(root)/usr/bin/ls") == nil)
        #expect(lstat("\(root)/usr/bin", &st) == 0 && st.st_mode & 0o7777 == 0o555)
        #expect(lstat("\(root)/usr", &st) == 0 && st.st_mode & 0o7777 == 0o555)
    }

    /// A whiteout of a directory its own layer declared (or wrote into, without declaring it)
    /// hides what the layers below put there and keeps what the layer itself wrote.
    @Test func aWhiteoutInTheSameLayerHidesOnlyTheLowerContents() throws {
        let (root, result) = try Self.unpack([
            [("dir", "var", "", 0o755), ("dir", "var/lib", "", 0o755), ("dir", "var/lib/dpkg", "", 0o755), ("file", "var/lib/dpkg/status", "old", 0o644),
             ("dir", "a", "", 0o755), ("file", "a/lower", "l", 0o644)],
            [("dir", "var/lib/dpkg", "", 0o755), ("file", "var/lib/dpkg/new", "n", 0o644), ("file", "var/lib/.wh.dpkg", "", 0o644),
             ("file", "a/x", "x", 0o644), ("file", ".wh.a", "", 0o644)],
        ])
        _ = try result.get()
        #expect(Self.read("\(root)/var/lib/dpkg/status") == nil && Self.read("\(root)/var/lib/dpkg/new") == "n")
        #expect(Self.read("\(root)/a/x") == "x" && Self.read("\(root)/a/lower") == nil)
    }

    /// One budget for the image: files of every layer together, not each layer's alone.
    @Test func theByteBudgetIsTheImagesNotALayers() throws {
        let dir = try ImageFixture.scratch()
        try Self.layout("\(dir)/oci", [[("big", "a", "600000", 0o644)], [("big", "b", "600000", 0o644)]])
        try FileManager.default.createDirectory(atPath: "\(dir)/root", withIntermediateDirectories: false)
        var limits = ArchiveLimits()
        limits.totalBytes = 1_000_000
        #expect { try ImageUnpacker.unpack("\(dir)/oci", ref: nil, platform: nil, into: "\(dir)/root", limits: limits) } throws: {
            "\($0)".contains("more than 1000000 bytes, the unpacker's budget for all its layers together")
        }
    }

    /// An entry under a symlink (to /etc, or to a directory of the image) is never written
    /// through it; the error names the layer and the entry.
    @Test(arguments: ["/tmp", "real"])
    func nothingIsWrittenThroughASymlink(_ target: String) throws {
        let marker = "cordon-unpack-\(getpid())-\(UUID().uuidString.prefix(6))"
        let (root, result) = try Self.unpack([
            [("dir", "real", "", 0o755), ("link", "via", target, 0o777)],
            [("file", "via/\(marker)", "escaped", 0o644)],
        ])
        #expect(throws: (any Error).self) { try result.get() }
        let said = "\(result)"
        #expect(said.contains("layer 2") && said.contains("via/\(marker)") && said.contains("via is a symlink or a file in the image"), "\(said)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(marker)") && !FileManager.default.fileExists(atPath: "\(root)/real/\(marker)"))
    }

    /// The archive reader refuses device nodes before the unpacker sees them; a hard link to
    /// something no layer wrote is an error, not a dangling name.
    @Test func aHardLinkToNothingIsRefused() throws {
        let (_, result) = try Self.unpack([[("hard", "a", "missing/file", 0o644)]])
        #expect("\(result)".contains("a hard link to missing/file, which is not in the image"), "\(result)")
    }
}

extension FileManager {
    func destinationOfSymbolicLinkOrNil(_ path: String) -> String? { try? destinationOfSymbolicLink(atPath: path) }
}
