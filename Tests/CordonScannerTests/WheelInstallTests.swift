import CordonJSON
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan install-wheels`, as cordond will run it, on make_packages.py's wheels: a set
/// installs into one site directory Python imports from, with nothing of it run; a wheel whose
/// members RECORD does not vouch for, or two wheels that would write one file, stop the set.
final class WheelInstallTests {
    let dir: String

    init() throws {
        dir = "\(ScanFixture.dir)/install-\(UInt32.random(in: 0...UInt32.max))"
        let made = try UnprivilegedScanTests.run(["/usr/bin/python3", "\(FetchTests.here)/make_packages.py", "\(dir)/packages"])
        try #require(made.status == 0, "\(made.err)")
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func install(_ wheels: [String], into name: String) throws -> (status: Int32, lines: [JSON], err: String, site: String) {
        let into = "\(dir)/\(name)"
        try FileManager.default.createDirectory(atPath: into, withIntermediateDirectories: true)
        let manifest = "\(into).jsonl"
        try wheels.map { JSON.object([("file", .string("\(dir)/packages/\($0)")), ("filename", .string($0))]).text }.joined(separator: "\n")
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let r = try UnprivilegedScanTests.run([PackageCheckTests.scanner, "install-wheels", "--into", into, manifest])
        return (r.status, r.out.split(separator: "\n").compactMap { try? JSON.parse(Array($0.utf8)) }, r.err, "\(into)/site")
    }

    @Test func aSetInstallsAndImportsWithNothingRun() throws {
        let r = try install(["cordon_clean-1.0-py3-none-any.whl", "cordon_data-1.0-py3-none-any.whl", "cordon_pth-1.0-py3-none-any.whl"], into: "good")
        #expect(r.status == 0 && r.lines.count == 3, "\(r.err) \(r.lines)")
        #expect(r.lines[1]["skipped"] == .array([.string("cordon_data-1.0.data/scripts/cordon-data")]), "\(r.lines[1])")
        // What each makes importable at the top (the install gate checks it against the standard library).
        #expect(r.lines[0]["top"] == .array([.string("cordon_clean")]), "\(r.lines[0])")
        let fm = FileManager.default
        #expect(fm.fileExists(atPath: "\(r.site)/cordon_data_extra.py") && fm.fileExists(atPath: "\(r.site)/cordon_clean-1.0.dist-info/METADATA"))
        #expect(!fm.fileExists(atPath: "\(r.site)/bin") && !fm.fileExists(atPath: "\(r.site)/cordon_data-1.0.data"), "no scripts, no .data left")
        // The .pth is a file in the tree, never run: Python reads .pth files only in site dirs, not from PYTHONPATH.
        let py = try UnprivilegedScanTests.run(["/usr/bin/env", "PYTHONPATH=\(r.site)", "/usr/bin/python3", "-c",
                                                "import cordon_clean, cordon_data_extra; print(cordon_clean.answer(), cordon_data_extra.EXTRA)"])
        #expect(py.status == 0 && py.out == "42 1\n", "\(py.err)")
        #expect(fm.fileExists(atPath: "\(r.site)/cordon_pth.pth"))
    }

    @Test(arguments: [
        ("cordon_tampered-1.0-py3-none-any.whl", "cordon_tampered/__init__.py does not match its RECORD entry"),
        ("cordon_extra-1.0-py3-none-any.whl", "cordon_extra/hidden.py is not in RECORD"),
        ("cordon_twice-1.0-py3-none-any.whl", "cordon_twice/__init__.py appears twice"),
        ("cordon_escape-1.0-py3-none-any.whl", "unsafe entry \"../../escape.py\""),
    ])
    func aWheelRecordDoesNotVouchForStopsTheSet(_ wheel: String, _ says: String) throws {
        let r = try install(["cordon_clean-1.0-py3-none-any.whl", wheel], into: "bad")
        #expect(r.status == 1 && r.lines.count == 2 && r.lines[0]["error"] == nil, "\(r.err) \(r.lines)")
        #expect(r.lines[1]["error"]?.stringValue?.contains(says) == true, "\(r.lines)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/escape.py") && !FileManager.default.fileExists(atPath: "\(dir)/bad/escape.py"))
    }

    @Test func twoWheelsThatWouldWriteOneFileStopTheSet() throws {
        let r = try install(["cordon_fresh-0.9-py3-none-any.whl", "cordon_fresh-1.0-py3-none-any.whl"], into: "clash")
        // The wheels are unpacked in parallel: whichever claims the path first writes it, the
        // other's line fails, naming both in the set's order.
        #expect(r.status == 1 && r.lines.count == 2 && r.lines.compactMap { $0["error"]?.stringValue }
                == ["cordon_fresh/__init__.py would be written by both cordon_fresh-0.9-py3-none-any.whl and cordon_fresh-1.0-py3-none-any.whl"],
                "\(r.lines)")
        #expect(r.err.contains("would be written by both"), "said on stderr too, for the install's record: \(r.err)")
        let again = try install(["cordon_clean-1.0-py3-none-any.whl"], into: "clash")
        #expect(again.status == 2 && again.err.contains("site: File exists"), "an existing site is never written into: \(again.err)")
    }
}
