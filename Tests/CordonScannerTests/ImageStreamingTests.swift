import CordonArchive
@testable import CordonScanner
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Images built by bench/make-image.py (the generator bench/scan.sh uses), in a scratch
/// directory removed at the end of each test.
enum ImageFixture {
    static let generator = "\(ScanFixture.repo)/bench/make-image.py"

    /// A fresh directory for one test's images.
    static func scratch() throws -> String {
        let dir = "\(ScanFixture.dir)/images-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func make(_ out: String, _ arguments: [String]) throws {
        try ScanFixture.python("import runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                               args: [generator, out] + arguments)
    }

    /// .build/<triple>/debug, where SwiftPM put this test bundle and `cordon-scan`; or
    /// $CORDON_SCAN_UNDER_TEST, to run these tests against another build (an older one, to see
    /// them fail).
    static let cordonScan: String = {
        if let other = ProcessInfo.processInfo.environment["CORDON_SCAN_UNDER_TEST"] { return other }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("cordon-scan").path
    }()

    /// A small parent for the scan: a child's ru_maxrss starts at its parent's peak RSS when it
    /// shares (vfork, posix_spawn) or copies the parent's memory before it executes, and this
    /// test process's peak is whatever the other suites running beside it made it. Python's is
    /// about 10 MiB. It writes the child's peak (KiB) to argv[1] and exits with its status.
    static let measure = """
        import os, sys
        pid = os.fork()
        if pid == 0:
            os.execv(sys.argv[2], sys.argv[2:])
        _, status, usage = os.wait4(pid, 0)
        open(sys.argv[1], "w").write(str(usage.ru_maxrss))
        sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
        """

    /// Runs `cordon-scan` and returns its exit status, output, error output and peak RSS in
    /// bytes (from wait4's rusage of that one child, through `measure`: not a clock, and no
    /// other process's).
    static func scan(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String, peakRSS: Int) {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = "\(dir)/out", err = "\(dir)/err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let peakFile = "\(dir)/peak"
        let python = "/usr/bin/python3"
        let argv = ([python, "-c", measure, peakFile, cordonScan, "scan", "--state-dir", dir] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, python, &actions, nil, argv, environ)
        guard spawned == 0 else { throw ScanFailure(description: "posix_spawn \(python): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw ScanFailure(description: "waitpid: \(String(cString: strerror(errno)))") }
        }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard let peak = (try? String(contentsOfFile: peakFile, encoding: .utf8)).flatMap({ Int($0) }) else {
            throw ScanFailure(description: "the scan's peak RSS was not reported (status \(exit))")
        }
        return (exit, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? "",
                peak * 1024)
    }
}

/// Item 14 of issue 16: images are streamed layer by layer, with limits applied before reading.
struct ImageStreamingTests {
    /// 3 × 100 MiB layers (half random, half text, the inventory files at both ends of each
    /// layer): the whole image was held in memory before, so its peak RSS passed 300 MiB; now
    /// only metadata and the few kept files are. Everything is still found, including the
    /// package.json written after a layer's filler.
    @Test(arguments: ["docker", "oci-dir"])
    func aLargeImageIsScannedInBoundedMemory(_ format: String) throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = "\(dir)/image"
        try ImageFixture.make(image, ["--format", format, "--layers", "3", "--layer-mib", "100"])
        let run = try ImageFixture.scan([image])
        #expect(run.status == 0, "\(run.stderr)")
        for line in ["Debian bash 5.2.15-2", "npm left-pad 1.3.0", "PyPI requests 2.19.0", "Alpine musl 1.2.4-r0", "cloud-token  layer0:etc/app.env"] {
            #expect(run.stdout.contains(line), "\(line) missing from:\n\(run.stdout)")
        }
        #expect(run.peakRSS < 150 << 20, "peak RSS \(run.peakRSS >> 20) MiB scanning a 300 MiB \(format) image")
    }

    /// An OCI directory whose blobs are past the entry-size limit is refused before they are
    /// read, as the same layout in a tar is (sparse files: 1.2 GB that take no disk).
    @Test func anOCIDirectoryIsRefusedBeforeItsBlobsAreRead() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/blobs/sha256", withIntermediateDirectories: true)
        try #"{"imageLayoutVersion": "1.0.0"}"#.write(toFile: "\(dir)/oci-layout", atomically: true, encoding: .utf8)
        try #"{"manifests": []}"#.write(toFile: "\(dir)/index.json", atomically: true, encoding: .utf8)
        for name in ["aa", "bb"] {
            let fd = open("\(dir)/blobs/sha256/\(name)", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            #expect(fd >= 0 && ftruncate(fd, 600 << 20) == 0)
            close(fd)
        }
        let run = try ImageFixture.scan([dir])
        #expect(run.status == 2)
        #expect(run.stderr.contains("\(dir)!blobs/sha256/aa: exceeds the entry size limit (\(ArchiveLimits().entryBytes))"), "\(run.stderr)")
        #expect(run.peakRSS < 100 << 20, "peak RSS \(run.peakRSS >> 20) MiB refusing two 600 MiB blobs")
    }

    /// A package database of 32 MiB of blank lines (they are kept up to 64 MiB) is read a line
    /// at a time: split into an array of line slices first, it took 32 bytes a line, 1 GiB.
    @Test func aDatabaseOfBlankLinesIsReadInBoundedMemory() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = "\(dir)/blank.tar"
        try ScanFixture.python("""
            head = b'Package: bash\\nStatus: install ok installed\\nVersion: 5.2.15-2\\n'
            status = head + b'\\n' * ((32 << 20) - len(head))
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode='w') as t:
                i = tarfile.TarInfo('var/lib/dpkg/status'); i.size = len(status); t.addfile(i, io.BytesIO(status))
            with tarfile.open(sys.argv[1], 'w') as t:
                for name, data in [('l0/layer.tar', layer.getvalue()), ('manifest.json', json.dumps([{'Layers': ['l0/layer.tar']}]).encode())]:
                    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [image])
        let run = try ImageFixture.scan([image])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("Debian bash 5.2.15-2"), "\(run.stdout)")
        #expect(run.peakRSS < 200 << 20, "peak RSS \(run.peakRSS >> 20) MiB for a 32 MiB database")
    }

    /// Every layer an image lists must be within the total budget, checked on the sizes the
    /// layout states before any layer is read; a layer missing from the archive is named.
    @Test func budgetsAndMissingLayersAreCheckedBeforeReading() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = "\(dir)/image"
        try ImageFixture.make(image, ["--format", "oci-dir", "--layers", "2", "--layer-mib", "1"])
        var limits = ArchiveLimits()
        limits.totalBytes = 1 << 20
        #expect(throws: ArchiveError.limit(name: "total size", limit: 1 << 20, archive: image)) { try ContainerImage.open(image, limits: limits) }
        let index = try FileSystemFixture.read("\(image)/index.json")
        let manifestDigest = try #require(index.split(separator: "\"").first { $0.hasPrefix("sha256:") })
        let manifest = try FileSystemFixture.read("\(image)/blobs/sha256/\(manifestDigest.dropFirst(7))")
        let layer = try #require(manifest.split(separator: "\"").last { $0.hasPrefix("sha256:") })
        try FileManager.default.removeItem(atPath: "\(image)/blobs/sha256/\(layer.dropFirst(7))")
        let error = #expect(throws: ScanFailure.self) { try ContainerImage.open(image, limits: ArchiveLimits()) }
        #expect(error?.description == "\(image): layer blobs/sha256/\(layer.dropFirst(7)) is missing", "\(String(describing: error))")
    }
}

enum FileSystemFixture {
    static func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }
}

/// Item 13 (OCI part) of issue 16: every image of an OCI index, or the one chosen.
struct OCIIndexChoiceTests {
    /// Two platforms behind a nested index with ref name "v1" and a BuildKit attestation
    /// manifest beside them, as `docker buildx` writes a multi-platform image.
    static func multiPlatform(_ dir: String, format: String = "oci-tar", nested: Bool = true) throws -> String {
        let image = "\(dir)/multi"
        try ImageFixture.make(image, ["--format", format, "--layers", "1", "--platforms", "linux/amd64,linux/arm64/v8"] + (nested ? ["--nested-index", "v1"] : []))
        return image
    }

    static func images(_ report: ScanReport) -> [String] { report.packages.filter { $0.ecosystem == "image" }.map(\.name) }
    static func only(_ report: ScanReport) -> [String] { report.packages.filter { $0.name.hasPrefix("only-") }.map { "\($0.name) \($0.source)" } }

    @Test func everyImageIsScannedAndNamedByPlatform() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (format, nested) in [("oci-tar", true), ("oci-dir", false)] {
            let image = try Self.multiPlatform("\(dir)/\(format)", format: format, nested: nested)
            let report = try Scanner.scan([image], database: nil)
            let ref = nested ? "ref v1 " : ""
            #expect(Self.images(report) == ["\(image)[\(ref)linux/amd64]", "\(image)[\(ref)linux/arm64/v8]"])
            #expect(Self.only(report) == ["only-amd64 \(image)[\(ref)linux/amd64]!layer0:var/lib/dpkg/status",
                                          "only-arm64 \(image)[\(ref)linux/arm64/v8]!layer0:var/lib/dpkg/status"])
            // Each image has its own findings.
            #expect(report.packages.filter { $0.ecosystem == "image" }.allSatisfy { $0.findings.contains { $0.rule == "cloud-token" } })
        }
    }

    @Test func platformAndRefChooseOne() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = try Self.multiPlatform(dir)
        // No variant given: any variant of that os/arch.
        for selection in [ImageSelection(platform: .init(parsing: "linux/arm64")), ImageSelection(platform: .init(parsing: "linux/arm64/v8"), ref: "v1")] {
            let report = try Scanner.scan([image], database: nil, images: selection)
            #expect(Self.images(report) == ["\(image)[ref v1 linux/arm64/v8]"], "\(selection)")
            #expect(Self.only(report) == ["only-arm64 \(image)[ref v1 linux/arm64/v8]!layer0:var/lib/dpkg/status"])
        }
        let both = try Scanner.scan([image], database: nil, images: ImageSelection(ref: "v1"))
        #expect(Self.images(both).count == 2)
    }

    @Test(arguments: [
        (ImageSelection(platform: .init(parsing: "linux/s390x")), "--platform linux/s390x"),
        (ImageSelection(platform: .init(parsing: "linux/arm64/v7")), "--platform linux/arm64/v7"),
        (ImageSelection(ref: "v2"), "--ref v2"),
        (ImageSelection(platform: .init(parsing: "linux/amd64"), ref: "v2"), "--platform linux/amd64 --ref v2"),
    ])
    func aChoiceThatMatchesNothingNamesTheChoices(_ c: (ImageSelection, String)) throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = try Self.multiPlatform(dir)
        let error = #expect(throws: ScanFailure.self) { try Scanner.scan([image], database: nil, images: c.0) }
        #expect(error?.description == "\(image): no image in the OCI index matches \(c.1); the index has: ref v1 linux/amd64, ref v1 linux/arm64/v8 (choose with --platform os/arch[/variant] or --ref NAME)",
                "\(String(describing: error))")
    }

    /// `docker load` reads every image a docker save archive lists: a choice flag is refused
    /// rather than silently ignored.
    @Test func aDockerSaveArchiveRefusesAChoice() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = "\(dir)/docker.tar"
        try ImageFixture.make(image, ["--format", "docker", "--layers", "1"])
        let error = #expect(throws: ScanFailure.self) { try Scanner.scan([image], database: nil, images: ImageSelection(ref: "v1")) }
        #expect(error?.description.contains("--ref v1 choose among the manifests of an OCI index, and this is a docker save archive") == true, "\(String(describing: error))")
    }

    /// An index of more images than one scan reads is refused, naming the way to choose some.
    @Test func tooManyImagesAreRefusedUnlessChosen() throws {
        let dir = try ImageFixture.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = "\(dir)/many.tar"
        let platforms = (0...ContainerImage.maxImages).map { "linux/arch\($0)" }
        try ImageFixture.make(image, ["--format", "oci-tar", "--layers", "1", "--platforms", platforms.joined(separator: ",")])
        let error = #expect(throws: ScanFailure.self) { try Scanner.scan([image], database: nil) }
        #expect(error?.description == "\(image): 65 images, more than the 64 one scan reads (choose some with --platform or --ref)")
        let one = try Scanner.scan([image], database: nil, images: ImageSelection(platform: .init(parsing: "linux/arch7")))
        #expect(Self.only(one) == ["only-arch7 \(image)[linux/arch7]!layer0:var/lib/dpkg/status"])
    }

    @Test func platformSyntax() {
        #expect(ImageSelection.Platform(parsing: "linux/arm64/v8") == .init(os: "linux", architecture: "arm64", variant: "v8"))
        #expect(ImageSelection.Platform(parsing: "linux/amd64") == .init(os: "linux", architecture: "amd64"))
        for bad in ["linux", "linux/", "/amd64", "linux//v8", "linux/arm64/v8/x", ""] {
            #expect(ImageSelection.Platform(parsing: bad) == nil, "\(bad)")
        }
    }
}

/// Item 14's parsers: the secret scan over image files is linear in its input whatever the
/// shape of the lines, checked by counting the bytes it looks at (no clock).
struct ImageSecretScanScalingTests {
    static let shapes: [(String, @Sendable (Int) -> [UInt8])] = [
        ("blank lines", { Array(repeating: 10, count: $0) }),
        ("one long line", { Array(repeating: UInt8(ascii: "x"), count: $0) }),
        ("key markers without keys", { n in Array(String(repeating: "-----BEGIN CERTIFICATE-----\n", count: n / 28 + 1).utf8.prefix(n)) }),
        ("token prefixes", { n in Array(String(repeating: "AKIAghp_xoxb-AIza", count: n / 17 + 1).utf8.prefix(n)) }),
    ]

    @Test(arguments: 0..<4)
    func workGrowsLinearly(_ shape: Int) {
        let (name, make) = Self.shapes[shape]
        var small = 0, large = 0
        _ = ContainerImage.secrets(in: make(1 << 20), work: &small)
        _ = ContainerImage.secrets(in: make(4 << 20), work: &large)
        #expect(Double(large) / Double(small) < 4.1, "\(name): \(small) for 1 MiB, \(large) for 4 MiB")
        #expect(large < 64 * (4 << 20), "\(name): \(large) steps for 4 MiB")
    }

    /// The scan still finds what it is for, at the right line, past 4 million blank lines.
    @Test func findsAKeyAfterManyBlankLines() {
        let bytes = Array(repeating: UInt8(10), count: 4_000_000) + Array("-----BEGIN RSA PRIVATE KEY-----\r\nAKIAABCDEFGHIJKLMNOP\n".utf8)
        var work = 0
        let found = ContainerImage.secrets(in: bytes, work: &work)
        #expect(found.map(\.line) == [4_000_001, 4_000_002])
        #expect(found.map(\.secret) == [.privateKey, .token("an AWS access key id")])
    }
}
