import CordonScan
@testable import CordonVulnDB
import Foundation
import Testing

private func scratchDatabase(_ name: String) throws -> (VulnDatabase, String) {
    let dir = NSTemporaryDirectory() + "cordon-vulndb-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return (try VulnDatabase(path: "\(dir)/vulndb.sqlite"), dir)
}

/// The shared PyPA snapshot (../shared/data beside the repository, as in CI).
let pypaSnapshot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/pypa-advisory-database").path

@Suite(.enabled(if: FileManager.default.fileExists(atPath: pypaSnapshot), "needs ../shared/data/pypa-advisory-database"))
struct PyPASnapshotTests {
    static let database: VulnDatabase = {
        let (db, _) = try! scratchDatabase("pypa")
        _ = try! db.importRecords(from: [pypaSnapshot])
        return db
    }()

    @Test func importsEveryRecord() throws {
        let status = try Self.database.status()
        #expect(status.records == 2661)
        #expect(status.withdrawn == 10)
        #expect(status.byEcosystem == ["PyPI": 2661])
        #expect(status.sources.map(\.path) == [pypaSnapshot])
    }

    /// Expected IDs come from an independent implementation (Python: PyYAML + packaging).
    @Test(arguments: pypaOracle.indices)
    func matchesTheOracle(_ i: Int) throws {
        let c = pypaOracle[i]
        #expect(try Self.database.advisories(ecosystem: .pypi, name: c.name, version: c.version) == c.ids, "\(c.name) \(c.version)")
    }
}

struct OSVImportTests {
    @Test func yamlScalarsKeepTheirText() throws {
        let node = try YAMLNode.parse(Array("versions:\n- 2.10\n- '1.0'\n- 1.0.0a1\nn: ~\n".utf8))
        #expect(node["versions"]?.items.compactMap { $0.string } == ["2.10", "1.0", "1.0.0a1"])
        #expect(node["n"]?.string == "~")
    }

    @Test func yamlErrorsAreReported() {
        #expect(throws: YAMLParseError.self) { try YAMLNode.parse(Array("a: [1, 2\n".utf8)) }
        #expect(throws: YAMLParseError.self) { try YAMLNode.parse(Array("a: &x 1\nb: *x\n".utf8)) }
        #expect(throws: YAMLParseError.self) { try YAMLNode.parse(Array(String(repeating: "[", count: 200).utf8)) }
    }

    @Test func jsonRecordsImport() throws {
        let (db, dir) = try scratchDatabase("json")
        let json = """
        {"id": "GHSA-test-0001", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-2024-0001"],
         "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                       "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}]}]}
        """
        try json.write(toFile: "\(dir)/GHSA-test-0001.json", atomically: true, encoding: .utf8)
        let summary = try db.importRecords(from: [dir])
        #expect(summary.records == 1)
        #expect(try db.advisories(ecosystem: .npm, name: "left-pad", version: "1.2.9") == ["GHSA-test-0001"])
        #expect(try db.advisories(ecosystem: .npm, name: "left-pad", version: "1.3.0").isEmpty)
    }

    /// One bad file aborts the import, names the file and field, and changes nothing.
    @Test func importIsAllOrNothing() throws {
        let (db, dir) = try scratchDatabase("bad")
        try "id: PYSEC-OK-1\naffected:\n- package: {ecosystem: PyPI, name: a}\n  versions: ['1.0']\n".write(toFile: "\(dir)/a.yaml", atomically: true, encoding: .utf8)
        try "id: PYSEC-BAD-1\naffected:\n- package: {ecosystem: PyPI, name: b}\n  ranges:\n  - type: ECOSYSTEM\n    events:\n    - broken: '1'\n".write(toFile: "\(dir)/b.yaml", atomically: true, encoding: .utf8)
        do {
            _ = try db.importRecords(from: [dir])
            Issue.record("a broken record was accepted")
        } catch {
            #expect(error.description.contains("b.yaml"), "\(error)")
            #expect(error.description.contains("affected[0].ranges[0].events[0]"), "\(error)")
        }
        #expect(try db.status().records == 0)
        #expect(try db.advisories(ecosystem: .pypi, name: "a", version: "1.0").isEmpty)
    }

    @Test func reimportReplacesRecords() throws {
        let (db, dir) = try scratchDatabase("again")
        let path = "\(dir)/r.yaml"
        try "id: PYSEC-R-1\naffected:\n- package: {ecosystem: PyPI, name: r}\n  versions: ['1.0']\n".write(toFile: path, atomically: true, encoding: .utf8)
        _ = try db.importRecords(from: [path])
        try "id: PYSEC-R-1\naffected:\n- package: {ecosystem: PyPI, name: r}\n  versions: ['2.0']\n".write(toFile: path, atomically: true, encoding: .utf8)
        _ = try db.importRecords(from: [path])
        #expect(try db.advisories(ecosystem: .pypi, name: "r", version: "1.0").isEmpty)
        #expect(try db.advisories(ecosystem: .pypi, name: "r", version: "2.0") == ["PYSEC-R-1"])
        #expect(try db.status().records == 1)
    }
}

extension OSVImportTests {
    /// OSV publishes its dumps as .zip files of JSON records.
    @Test func zipDumpImports() throws {
        let (db, dir) = try scratchDatabase("zip")
        let zip = "\(dir)/all.zip"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", """
            import json, sys, zipfile
            with zipfile.ZipFile(sys.argv[1], 'w') as z:
                for n in range(3):
                    z.writestr('GHSA-zip-%d.json' % n, json.dumps({'id': 'GHSA-zip-%d' % n, 'modified': '2020-01-01T00:00:00Z',
                        'affected': [{'package': {'ecosystem': 'npm', 'name': 'zipped'}, 'versions': ['1.0.%d' % n]}]}))
            """, zip]
        try p.run()
        p.waitUntilExit()
        let summary = try db.importRecords(from: [zip])
        #expect(summary.records == 3)
        #expect(try db.advisories(ecosystem: .npm, name: "zipped", version: "1.0.2") == ["GHSA-zip-2"])
        let status = try db.status()
        #expect(status.newestModified == "2020-01-01T00:00:00Z")
        #expect((status.newestAgeDays ?? 0) > 365 * 5)
    }
}

/// What the `osv` fuzz target found: a version with a control character read as one range
/// and was stored as another. Such records are refused, naming the field.
@Suite struct OSVControlCharacterTests {
    static let regressions = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/regressions/osv").path

    @Test(arguments: ["newline-in-event-version-hides-range.json", "tab-in-event-version-adds-range.json"])
    func theFuzzersRecordsAreRefused(_ name: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Self.regressions)/\(name)")))
        #expect(throws: (any Error).self) { try OSVDecoder.decode(bytes) }
        do { _ = try OSVDecoder.decode(bytes) } catch { #expect("\(error)".contains("control character"), "\(error)") }
    }

    @Test func aListedVersionWithANewlineIsRefused() throws {
        let record = #"{"id":"X-1","affected":[{"package":{"ecosystem":"PyPI","name":"p"},"versions":["1.0\n2.0"]}]}"#
        do {
            _ = try OSVDecoder.decode(Array(record.utf8))
            Issue.record("decoded")
        } catch { #expect("\(error)".contains("affected[0].versions[0]"), "\(error)") }
    }
}
