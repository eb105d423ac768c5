import CordonScan
@testable import CordonVulnDB
import Foundation
import Testing

private func scratch(_ name: String) throws -> String {
    let dir = NSTemporaryDirectory() + "cordon-vulndb-\(name)-\(getpid())-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@discardableResult
private func python(_ script: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", script] + args
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw VulnDatabase.Failure(description: "python failed") }
    return String(decoding: data, as: UTF8.self)
}

/// Writes the PyPA snapshot as an OSV export (`all.zip`: one JSON record a member, as
/// osv-vulnerabilities.storage.googleapis.com publishes them), with `edit` applied:
/// "change" rewrites PYSEC-2023-117's fix, "drop" leaves PYSEC-2018-28 out, "add" adds a record.
private func osvExport(_ path: String, edits: [String] = []) throws {
    try python("""
        import json, os, sys, yaml, zipfile
        root, out, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
        class Loader(yaml.SafeLoader): pass
        # Keep scalars as text (2.10 stays "2.10"), as OSV's JSON does.
        Loader.add_constructor('tag:yaml.org,2002:float', lambda l, n: l.construct_scalar(n))
        Loader.add_constructor('tag:yaml.org,2002:int', lambda l, n: l.construct_scalar(n))
        Loader.add_constructor('tag:yaml.org,2002:timestamp', lambda l, n: l.construct_scalar(n))
        with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
            for d, _, files in sorted(os.walk(root)):
                for f in sorted(files):
                    if not f.endswith('.yaml'): continue
                    r = yaml.load(open(os.path.join(d, f)), Loader=Loader)
                    if r['id'] == 'PYSEC-2018-28' and 'drop' in edits: continue
                    if r['id'] == 'PYSEC-2023-117' and 'change' in edits:
                        r['modified'] = '2030-01-01T00:00:00Z'
                        r['affected'][0]['ranges'][0]['events'] = [{'introduced': '0'}, {'fixed': '2.16.0'}]
                        r['affected'][0]['versions'] += ['2.15.1']
                    z.writestr(r['id'] + '.json', json.dumps(r))
            if 'add' in edits:
                z.writestr('PYSEC-2099-1.json', json.dumps({'id': 'PYSEC-2099-1', 'modified': '2030-01-02T00:00:00Z',
                    'summary': 'new', 'affected': [{'package': {'ecosystem': 'PyPI', 'name': 'newpkg'},
                    'ranges': [{'type': 'ECOSYSTEM', 'events': [{'introduced': '0'}, {'fixed': '1.1'}]}]}]}))
        """, [pypaSnapshot + "/vulns", path] + edits)
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: pypaSnapshot), "needs ../shared/data/pypa-advisory-database"))
struct IncrementalImportTests {
    @Test func aSecondImportUpdatesOnlyWhatChanged() throws {
        let dir = try scratch("incremental")
        let db = try VulnDatabase(path: "\(dir)/vulndb.sqlite")
        let zip = "\(dir)/all.zip"
        try osvExport(zip)
        let first = try db.importRecords(from: [zip])
        #expect(first.records == 2661)
        #expect([first.added, first.changed, first.unchanged, first.removed] as [Int] == [2661, 0, 0, 0])
        #expect(try db.advisories(ecosystem: .pypi, name: "pygments", version: "2.15.1").isEmpty)

        let again = try db.importRecords(from: [zip])
        #expect([again.added, again.changed, again.unchanged, again.removed] as [Int] == [0, 0, 2661, 0])

        // The next export: one record changed, one gone, one new.
        try osvExport(zip, edits: ["change", "drop", "add"])
        let second = try db.importRecords(from: [zip])
        #expect([second.added, second.changed, second.unchanged, second.removed] as [Int] == [1, 1, 2659, 1], "\(second)")
        #expect(try db.advisories(ecosystem: .pypi, name: "pygments", version: "2.15.1") == ["PYSEC-2023-117"])
        #expect(try db.match(ecosystem: .pypi, name: "pygments", version: "2.14.0").first?.fixedIn == "2.16.0")
        #expect(try db.advisories(ecosystem: .pypi, name: "requests", version: "2.19.0").contains("PYSEC-2018-28") == false)
        #expect(try db.advisories(ecosystem: .pypi, name: "newpkg", version: "1.0") == ["PYSEC-2099-1"])
        #expect(try db.status().records == 2661)

        let status = try db.status()
        let source = try #require(status.sources.first)
        #expect(source.path == zip)
        #expect(source.records == 2661)
        #expect(source.byEcosystem == ["PyPI": 2661])
        #expect(source.newestModified == "2030-01-02T00:00:00Z")
        #expect(source.importedAgeDays == 0)
        #expect(source.lastImport == .init(added: 1, changed: 1, unchanged: 2659, removed: 1))
    }

    /// A folder is a source as a zip is: the same records from both are unchanged, and each
    /// source's status says how old it is and what it holds.
    @Test func folderAndZipSourcesHaveTheirOwnStatus() throws {
        let dir = try scratch("sources")
        let db = try VulnDatabase(path: "\(dir)/vulndb.sqlite")
        let small = "\(dir)/npm"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try #"{"id": "GHSA-aaaa-bbbb-cccc", "modified": "2021-05-01T00:00:00Z", "summary": "prototype pollution", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}], "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}]}]}"#
            .write(toFile: "\(small)/GHSA-aaaa-bbbb-cccc.json", atomically: true, encoding: .utf8)
        _ = try db.importRecords(from: [pypaSnapshot, small])
        let status = try db.status()
        #expect(status.sources.map(\.path) == [small, pypaSnapshot].sorted())
        let npm = try #require(status.sources.first { $0.path == small })
        #expect(npm.byEcosystem == ["npm": 1])
        #expect(npm.newestModified == "2021-05-01T00:00:00Z")
        #expect((npm.newestAgeDays ?? 0) > 365)
        #expect(status.byEcosystem == ["PyPI": 2661, "npm": 1])
        let advisory = try #require(try db.match(ecosystem: .npm, name: "left-pad", version: "1.2.0").first)
        #expect(advisory.severity == "high")
        #expect(advisory.score == 7.5)
        #expect(advisory.summary == "prototype pollution")
        #expect(advisory.fixedIn == "1.3.0")
        #expect(db.notCheckedReason(ecosystem: .debian, version: "1.0-1") == "no advisories for Debian in the database")
        #expect(db.notCheckedReason(ecosystem: .npm, version: "1.2.0") == nil)
        // Removing a record from the folder removes it from the database on the next import.
        try FileManager.default.removeItem(atPath: "\(small)/GHSA-aaaa-bbbb-cccc.json")
        let summary = try db.importRecords(from: [small])
        #expect(summary.removed == 1)
        #expect(try db.match(ecosystem: .npm, name: "left-pad", version: "1.2.0").isEmpty)
        // The JSON `cordon db status --json` prints.
        let json = String(decoding: try JSONEncoder().encode(try db.status()), as: UTF8.self)
        for key in ["importedAt", "importedAgeDays", "newestModified", "byEcosystem", "lastImport"] { #expect(json.contains(key), "\(key)") }
    }
}

struct ReadOnlyDatabaseTests {
    @Test func readingCreatesNothing() throws {
        let dir = try scratch("readonly")
        let path = "\(dir)/vulndb.sqlite"
        do {
            let db = try VulnDatabase(path: path)
            try #"{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "p"}, "versions": ["1.0"]}]}"#
                .write(toFile: "\(dir)/x.json", atomically: true, encoding: .utf8)
            _ = try db.importRecords(from: ["\(dir)/x.json"])
        }
        try FileManager.default.removeItem(atPath: "\(dir)/x.json")
        chmod(path, 0o444)
        chmod(dir, 0o555)
        defer { chmod(dir, 0o755) }
        let reader = try VulnDatabase(readingAt: path)
        #expect(try reader.advisories(ecosystem: .pypi, name: "p", version: "1.0") == ["X-1"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["vulndb.sqlite"])
    }

    /// A schema 1 database (WAL, as the first release wrote it) is migrated by the next import and
    /// refused with a clear message by a reader.
    @Test func schemaOneIsMigratedByAnImport() throws {
        let dir = try scratch("v1")
        let path = "\(dir)/vulndb.sqlite"
        try python("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            c.executescript('''
              PRAGMA journal_mode = WAL;
              CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
              CREATE TABLE sources (path TEXT PRIMARY KEY, imported_at TEXT NOT NULL, records INTEGER NOT NULL);
              CREATE TABLE records (id TEXT PRIMARY KEY, modified TEXT, published TEXT, withdrawn TEXT, summary TEXT, aliases TEXT NOT NULL, source TEXT NOT NULL);
              CREATE TABLE affected (record_id TEXT NOT NULL, ecosystem TEXT NOT NULL, ecosystem_full TEXT NOT NULL, name TEXT NOT NULL, ranges TEXT NOT NULL, versions TEXT NOT NULL);
              INSERT INTO meta VALUES ('schema', '1');
              INSERT INTO sources VALUES ('/old', '2020-01-01T00:00:00Z', 1);
              INSERT INTO records VALUES ('OLD-1', '2020-01-01T00:00:00Z', NULL, NULL, 'old', '', '/old/OLD-1.json');
              INSERT INTO affected VALUES ('OLD-1', 'PyPI', 'PyPI', 'p', '', '1.0');
            ''')
            c.commit()
            """, [path])
        do { _ = try VulnDatabase(readingAt: path); Issue.record("opened") } catch {
            #expect(error.description.contains("older cordon (schema 1)"), "\(error)")
        }
        let db = try VulnDatabase(path: path)
        #expect(try db.advisories(ecosystem: .pypi, name: "p", version: "1.0") == ["OLD-1"])
        #expect(try db.status().sources.first?.byEcosystem == ["PyPI": 1])  // origin recovered from the file name
        #expect(try VulnDatabase(readingAt: path).advisories(ecosystem: .pypi, name: "p", version: "1.0") == ["OLD-1"])
    }
}
