import CordonHeuristics
@testable import CordonScanner
import CordonVulnDB
import Foundation
import Testing

enum ScanFixture {
    static let dir: String = {
        let d = NSTemporaryDirectory() + "cordon-scan-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let shared = URL(fileURLWithPath: repo).deletingLastPathComponent().appendingPathComponent("shared/data").path

    @discardableResult
    static func python(_ script: String, args: [String] = []) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import io, os, sys, tarfile, zipfile, json\n" + script] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ScanFailure(description: "python fixture failed") }
        return String(decoding: data, as: UTF8.self)
    }

    static func wheel(name: String, version: String, files: [String: String] = [:]) throws -> String {
        // A directory of its own: parameterised tests run in parallel.
        let unique = "\(dir)/\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: unique, withIntermediateDirectories: true)
        let out = "\(unique)/\(name)-\(version)-py3-none-any.whl"
        let extra = files.map { "z.writestr(\(quote($0.key)), \(quote($0.value)))" }.joined(separator: "\n ")
        try python("""
            with zipfile.ZipFile(sys.argv[1], 'w') as z:
             z.writestr('\(name)-\(version).dist-info/METADATA', 'Metadata-Version: 2.1\\nName: \(name)\\nVersion: \(version)\\n\\nbody')
             z.writestr('\(name)-\(version).dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
             z.writestr('\(name)/__init__.py', 'x = 1\\n')
             \(extra.isEmpty ? "pass" : extra)
            """, args: [out])
        return out
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'").replacingOccurrences(of: "\n", with: "\\n") + "'" }
}

struct InventoryTests {
    @Test func wheelSdistNpmAndSitePackages() throws {
        let whl = try ScanFixture.wheel(name: "demo", version: "1.2.3")
        #expect(try Inventory.packages(at: whl).map { "\($0.ecosystem.rawValue) \($0.name) \($0.version) \($0.pureWheel)" } == ["PyPI demo 1.2.3 true"])

        let sdist = "\(ScanFixture.dir)/demo-2.0.tar.gz"
        try ScanFixture.python("""
            with tarfile.open(sys.argv[1], 'w:gz') as t:
             for name, data in [('demo-2.0/PKG-INFO', b'Metadata-Version: 1.1\\nName: Demo\\nVersion: 2.0\\n'), ('demo-2.0/setup.py', b'from setuptools import setup\\nsetup(name="Demo")\\n')]:
              i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [sdist])
        let s = try #require(try Inventory.packages(at: sdist).first)
        #expect("\(s.name) \(s.version)" == "Demo 2.0")
        #expect(s.files.map(\.path).sorted() == ["PKG-INFO", "setup.py"])

        let tgz = "\(ScanFixture.dir)/left-pad-1.3.0.tgz"
        try ScanFixture.python("""
            with tarfile.open(sys.argv[1], 'w:gz') as t:
             data = json.dumps({'name': 'left-pad', 'version': '1.3.0'}).encode()
             i = tarfile.TarInfo('package/package.json'); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [tgz])
        #expect(try Inventory.packages(at: tgz).map { "\($0.ecosystem.rawValue) \($0.name) \($0.version)" } == ["npm left-pad 1.3.0"])

        let site = "\(ScanFixture.dir)/site-packages"
        for (name, version) in [("requests", "2.19.0"), ("urllib3", "1.24.1")] {
            let meta = "\(site)/\(name)-\(version).dist-info"
            try FileManager.default.createDirectory(atPath: meta, withIntermediateDirectories: true)
            try "Metadata-Version: 2.1\nName: \(name)\nVersion: \(version)\n".write(toFile: "\(meta)/METADATA", atomically: true, encoding: .utf8)
        }
        #expect(Set(try Inventory.packages(at: site).map { "\($0.name) \($0.version)" }) == ["requests 2.19.0", "urllib3 1.24.1"])
    }

    @Test func notAPackageIsAClearError() throws {
        let path = "\(ScanFixture.dir)/plain.zip"
        try ScanFixture.python("with zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('readme.txt', 'hi')", args: [path])
        #expect(throws: ScanFailure.self) { try Inventory.packages(at: path) }
    }
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: "\(ScanFixture.shared)/pypa-advisory-database"), "needs ../shared/data"))
struct ScanReportTests {
    static let database: VulnDatabase = {
        let path = "\(ScanFixture.dir)/vulndb.sqlite"
        let db = try! VulnDatabase(path: path)
        _ = try! db.importRecords(from: ["\(ScanFixture.shared)/pypa-advisory-database"])
        return db
    }()

    @Test func oldRequestsReportsItsAdvisories() throws {
        let whl = try ScanFixture.wheel(name: "requests", version: "2.19.0")
        let report = try Scanner.scan([whl], database: Self.database)
        let ids = report.packages.first?.vulnerabilities.map(\.id) ?? []
        #expect(ids.contains("PYSEC-2018-28"), "\(ids)")
        #expect(report.worstSeverity == .high)
    }

    @Test(arguments: [("sarif", "sarif-schema-2.1.0.json"), ("cyclonedx", "bom-1.5.schema.json")])
    func outputValidatesAgainstTheOfficialSchema(_ c: (String, String)) throws {
        let whl = try ScanFixture.wheel(name: "requests", version: "2.19.0",
                                        files: ["requests/evil.py": "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n"])
        let report = try Scanner.scan([whl], database: Self.database)
        #expect(!report.packages[0].findings.isEmpty, "the fixture should produce a finding for the SARIF result list")
        let text = try ReportFormat(rawValue: c.0)!.render(report, toolVersion: "0.1.0")
        let out = "\(ScanFixture.dir)/report-\(UUID().uuidString.prefix(8)).\(c.0).json"
        try text.write(toFile: out, atomically: true, encoding: .utf8)
        let verdict = try ScanFixture.python("import runpy\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')",
                                             args: ["\(ScanFixture.repo)/Tests/CordonScannerTests/validate_schema.py",
                                                    "\(ScanFixture.shared)/schemas", c.1, out])
        #expect(verdict.contains("valid"))
    }
}

/// Real packages from PyPI (downloaded once into .build/test-packages): none is flagged at high
/// or above, and the old requests reports its advisories. Needs PyPI, which CI reaches.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: "\(ScanFixture.shared)/pypa-advisory-database"), "needs ../shared/data"),
       .serialized)
struct RealPackageTests {
    static let packages = ["requests==2.19.0", "requests==2.31.0", "urllib3==2.2.1", "django==4.2.11", "flask==3.0.2",
                           "setuptools==69.2.0", "six==1.16.0", "werkzeug==3.0.1", "jinja2==3.1.3", "idna==3.6", "toml==0.10.2"]
    static let cache = "\(ScanFixture.repo)/.build/test-packages"

    static func download() throws -> [String] {
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        for spec in packages {
            let name = spec.replacingOccurrences(of: "==", with: "-").lowercased()
            let have = (try FileManager.default.contentsOfDirectory(atPath: cache)).contains { $0.lowercased().hasPrefix(name) }
            if have { continue }
            try ScanFixture.python("import subprocess\nsubprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '-d', sys.argv[1], sys.argv[2]], check=True)",
                                   args: [cache, spec])
        }
        return try FileManager.default.contentsOfDirectory(atPath: cache).sorted().map { "\(cache)/\($0)" }
    }

    @Test func noFalseAlarmAndOldRequestsIsReported() throws {
        let files = try Self.download()
        #expect(files.count >= Self.packages.count)
        let report = try Scanner.scan(files, database: ScanReportTests.database)
        let alarms = report.packages.flatMap { p in p.findings.filter { $0.severity >= .high }.map { "\(p.name): \($0.rule) \($0.file):\($0.startLine)" } }
        #expect(alarms.isEmpty, "\(alarms)")
        let old = report.packages.first { $0.name.lowercased() == "requests" && $0.version == "2.19.0" }
        #expect(old?.vulnerabilities.map(\.id).contains("PYSEC-2018-28") == true)
        let new = report.packages.first { $0.name.lowercased() == "requests" && $0.version == "2.31.0" }
        #expect(new?.vulnerabilities.isEmpty == true)
    }
}
