import CordonJSON
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan check`, the install gate's scan, run as cordond runs it (the binary, a manifest,
/// one JSON line per archive) on the crafted packages of make_packages.py: each spoiled package
/// comes back with what spoils it, the clean ones with nothing.
struct PackageCheckTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let scanner = "\(UnprivilegedScanTests.productsDir)/cordon-scan"

    /// The crafted packages, written once per test process, and a database holding requests'
    /// advisories.
    static let packages: (dir: String, state: String) = {
        let dir = "\(ScanFixture.dir)/packages"
        let state = "\(ScanFixture.dir)/check-state"
        try? FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let made = try? UnprivilegedScanTests.run(["/usr/bin/python3", "\(here)/make_packages.py", dir])
        precondition(made?.status == 0, "make_packages.py: \(made?.err ?? "did not run")")
        let imported = try? UnprivilegedScanTests.run([scanner, "db", "import", "--state-dir", state, "\(ScanFixture.shared)/pypa-advisory-database/vulns/requests"])
        precondition(imported?.status == 0, "db import: \(imported?.err ?? "did not run")")
        return (dir, state)
    }()

    static func expected(_ file: String) -> (name: String, version: String) {
        let stem = file.hasSuffix(".whl") ? String(file.dropLast(4)) : String(file.dropLast(7))
        let parts = stem.split(separator: "-")
        return (parts[0].replacingOccurrences(of: "_", with: "-"), String(parts[1]))
    }

    /// Every crafted file through one manifest, by file name.
    static let results: [String: JSON] = {
        let (dir, state) = packages
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".whl") || $0.hasSuffix(".tar.gz") }.sorted()
        let manifest = files.map { f -> String in
            let (name, version) = expected(f)
            return JSON.object([("file", .string("\(dir)/\(f)")), ("name", .string(name)), ("version", .string(version)), ("filename", .string(f))]).text
        }.joined(separator: "\n")
        let path = "\(dir)/manifest.jsonl"
        try? manifest.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try? UnprivilegedScanTests.run([scanner, "check", "--state-dir", state, path])
        precondition(r?.status == 0, "cordon-scan check: \(r?.err ?? "did not run")")
        var out: [String: JSON] = [:]
        for line in (r?.out ?? "").split(separator: "\n") {
            if let j = try? JSON.parse(Array(line.utf8)), let f = j["filename"]?.stringValue { out[f] = j }
        }
        precondition(out.count == files.count, "\(out.count) results for \(files.count) files")
        return out
    }()

    static func problems(_ file: String) -> [String] { results[file]?["problems"]?.stringArrayValue ?? ["(none)"] }

    @Test func cleanPackagesComeBackClean() throws {
        for file in ["cordon_clean-1.0-py3-none-any.whl", "cordon_sdist-1.0.tar.gz"] {
            let r = try #require(Self.results[file])
            #expect(r["error"] == nil && Self.problems(file).isEmpty, "\(r.text)")
            #expect(r["findings"]?.arrayValue?.isEmpty == true && r["advisories"]?.arrayValue?.isEmpty == true && r["typosquatOf"] == .null)
            #expect(r["metadata"]?["name"]?.stringValue?.hasPrefix("cordon-") == true && r["metadata"]?["version"] == .string("1.0"))
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(Self.packages.dir)/\(file)"))
            #expect(r["size"]?.intValue == Int64(bytes.count))
        }
        #expect(Self.results["cordon_clean-1.0-py3-none-any.whl"]?["kind"] == .string("wheel"))
        #expect(Self.results["cordon_sdist-1.0.tar.gz"]?["kind"] == .string("sdist"))
    }

    @Test func eachSpoiledPackageSaysWhatSpoilsIt() throws {
        let r = Self.results
        let startup = try #require(r["cordon_startup-1.0-py3-none-any.whl"]?["findings"]?.arrayValue)
        #expect(startup.contains { $0["rule"] == .string("startup-code") && $0["severity"] == .string("high") && $0["file"] == .string("sitecustomize.py") }, "\(startup)")
        #expect(r["cordon_clean-1.0-py3-none-any.whl"]?["findings"]?.arrayValue?.isEmpty == true)
        let pth = try #require(r["cordon_pth-1.0-py3-none-any.whl"]?["findings"]?.arrayValue)
        #expect(pth.contains { $0["rule"] == .string("pth-code") && $0["severity"] == .string("high") && $0["file"] == .string("cordon_pth.pth") }, "\(pth)")
        #expect(r["cordon_liar-1.0-py3-none-any.whl"]?["metadata"]?["name"] == .string("requests"))
        #expect(r["cordon_liar-1.0-py3-none-any.whl"]?["metadata"]?["version"] == .string("2.32.3"))
        #expect(Self.problems("cordon_tampered-1.0-py3-none-any.whl").contains("cordon_tampered/__init__.py: its sha256 differs from RECORD's"))
        #expect(Self.problems("cordon_extra-1.0-py3-none-any.whl") == ["cordon_extra/hidden.py is not in RECORD"])
        #expect(r["cordon_twice-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("cordon_twice/__init__.py appears twice in the central directory") == true)
        #expect(r["cordon_bomb-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("exceeds the entry size limit") == true)
        #expect(r["cordon_escape-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("unsafe entry \"../../escape.py\"") == true)
        #expect(r["cordon_link-1.0.tar.gz"]?["error"]?.stringValue?.contains("symlink to absolute path /etc/passwd") == true)
        #expect(r["reqeusts-1.0-py3-none-any.whl"]?["typosquatOf"] == .string("requests"))
        // Matched by the resolved name and version: the body is clean, the release is not.
        let advisories = try #require(r["requests-2.30.0-py3-none-any.whl"]?["advisories"]?.arrayValue)
        #expect(advisories.contains { $0["id"] == .string("PYSEC-2023-74") && $0["fixed"] == .string("2.31.0") }, "\(advisories)")
        #expect(r["requests-2.30.0-py3-none-any.whl"]?["notChecked"] == .null)
    }

    /// A wheel is what its central directory says, as pip reads it: where libarchive could be
    /// shown something else, the wheel is refused; code the rules cannot read is a finding.
    @Test func aZipReadOtherwiseByInstallersIsRefused() throws {
        let r = Self.results
        #expect(r["cordon_dirmode-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("cordon_dirmode/evil.py is read as a directory, but installers take it for a file") == true,
                "\(r["cordon_dirmode-1.0-py3-none-any.whl"]?.text ?? "")")
        #expect(r["cordon_prefixed-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("the central directory does not end where the end record begins") == true, "zipfile would read the zip behind the prefix")
        #expect(r["cordon_method-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("its local header and the central directory disagree") == true)
        func rules(_ file: String) -> [String] { r[file]?["findings"]?.arrayValue?.compactMap { $0["rule"]?.stringValue } ?? [] }
        #expect(rules("cordon_pyc-1.0-py3-none-any.whl") == ["sourceless-module"])
        #expect(rules("cordon_binpth-1.0-py3-none-any.whl").contains("pth-unreadable"))
        let utf8 = try #require(r["cordon_utf8-1.0-py3-none-any.whl"])
        #expect(utf8["error"] == nil && Self.problems("cordon_utf8-1.0-py3-none-any.whl").isEmpty, "\(utf8.text)")
    }

    /// The liar is checked against what it was resolved as: its METADATA's claim to be
    /// requests 2.32.3 does not pull that version's advisories in, nor keep 2.30.0's out.
    @Test func advisoriesFollowTheResolvedNameNotTheFilesClaim() throws {
        let (dir, state) = Self.packages
        let manifest = "\(dir)/liar.jsonl"
        try JSON.object([("file", .string("\(dir)/cordon_liar-1.0-py3-none-any.whl")), ("name", .string("requests")), ("version", .string("2.30.0")),
                         ("filename", .string("requests-2.30.0-py3-none-any.whl"))]).text.write(toFile: manifest, atomically: true, encoding: .utf8)
        let r = try UnprivilegedScanTests.run([Self.scanner, "check", "--state-dir", state, manifest])
        let line = try JSON.parse(Array(r.out.utf8))
        #expect(line["advisories"]?.arrayValue?.contains { $0["id"] == .string("PYSEC-2023-74") } == true, "\(r.out)")
    }

    /// `--archive -`: the archive as standard input, a descriptor (what a sandbox hands over);
    /// a pipe is refused, since the size the ratio limit needs comes from fstat.
    @Test func anArchiveAsADescriptor() throws {
        let (dir, state) = Self.packages
        let file = "\(dir)/cordon_pth-1.0-py3-none-any.whl"
        let args = [Self.scanner, "check", "--state-dir", state, "--archive", "-", "--name", "cordon-pth", "--version", "1.0", "--filename", "cordon_pth-1.0-py3-none-any.whl"]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: args[0])
        p.arguments = Array(args.dropFirst())
        p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let line = try JSON.parse(Array(text.utf8))
        #expect(p.terminationStatus == 0 && line["findings"]?.arrayValue?.contains { $0["rule"] == .string("pth-code") } == true, "\(text)")
        #expect(line["sha256"] == Self.results["cordon_pth-1.0-py3-none-any.whl"]?["sha256"])

        let piped = Process()
        piped.executableURL = URL(fileURLWithPath: args[0])
        piped.arguments = Array(args.dropFirst())
        let input = Pipe()
        piped.standardInput = input
        let pipedOut = Pipe()
        piped.standardOutput = pipedOut
        try piped.run()
        input.fileHandleForWriting.write(try Data(contentsOf: URL(fileURLWithPath: file)))
        try input.fileHandleForWriting.close()
        let refused = String(decoding: pipedOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        piped.waitUntilExit()
        #expect(refused.contains("not a regular file"), "\(refused)")
    }

    @Test func aBadManifestChangesNothingAndSaysWhichLine() throws {
        let (dir, state) = Self.packages
        let manifest = "\(dir)/bad.jsonl"
        try "{\"file\": \"\(dir)/cordon_clean-1.0-py3-none-any.whl\", \"name\": \"cordon-clean\", \"version\": \"1.0\", \"filename\": \"cordon_clean-1.0-py3-none-any.whl\"}\n{\"file\": 3}"
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let r = try UnprivilegedScanTests.run([Self.scanner, "check", "--state-dir", state, manifest])
        #expect(r.status == 2 && r.out.isEmpty && r.err.contains("the manifest's line 2"), "\(r.err)")
        let missing = "\(dir)/missing.jsonl"
        try "{\"file\": \"\(dir)/nope.whl\", \"name\": \"nope\", \"version\": \"1\", \"filename\": \"nope-1-py3-none-any.whl\"}".write(toFile: missing, atomically: true, encoding: .utf8)
        let m = try UnprivilegedScanTests.run([Self.scanner, "check", "--state-dir", state, missing])
        #expect(m.status == 0 && m.out.contains("No such file or directory"), "\(m.out)")
    }
}
