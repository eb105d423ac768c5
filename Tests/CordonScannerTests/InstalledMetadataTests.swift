import CordonHeuristics
@testable import CordonScanner
import CordonVulnDB
import Foundation
import Testing

/// Issue 16, items 11–13: every installed-metadata form is read, a package of an ecosystem the
/// database has no advisories for is "not checked" (never clean), advisories carry what a user
/// acts on, and scanning works read-only as an unprivileged user.
enum InstalledFixture {
    static func write(_ root: String, _ files: [String: String]) throws {
        for (path, text) in files {
            let full = "\(root)/\(path)"
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
    }

    static func fresh(_ name: String) throws -> String {
        let root = "\(ScanFixture.dir)/\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return root
    }

    static func pkgInfo(_ name: String, _ version: String?) -> String {
        "Metadata-Version: 1.2\nName: \(name)\n" + (version.map { "Version: \($0)\n" } ?? "") + "\nlong description\n"
    }

    /// A dist-packages tree as Debian ships one: egg-info directories and files, an unzipped and
    /// a zipped egg, a dist-info, and metadata without a version.
    static func distPackages() throws -> String {
        let root = try fresh("dist-packages")
        try write(root, [
            "Pygments-2.14.0.egg-info/PKG-INFO": pkgInfo("Pygments", "2.14.0"),
            "Pygments-2.14.0.egg-info/top_level.txt": "pygments\n",
            "six-1.16.0.egg-info": pkgInfo("six", "1.16.0"),  // the file form
            "cryptography.egg-info/PKG-INFO": pkgInfo("cryptography", "38.0.4"),
            "demo-1.0-py3.11.egg/EGG-INFO/PKG-INFO": pkgInfo("demo", "1.0"),
            "pip-23.0.1.dist-info/METADATA": pkgInfo("pip", "23.0.1"),
            "mystery.egg-info/PKG-INFO": pkgInfo("mystery", nil),
        ])
        try ScanFixture.python("""
            with zipfile.ZipFile(sys.argv[1], 'w') as z:
             z.writestr('EGG-INFO/PKG-INFO', 'Metadata-Version: 1.1\\nName: zipped\\nVersion: 2.0\\n')
             z.writestr('zipped/__init__.py', '')
            """, args: ["\(root)/zipped-2.0-py3.11.egg"])
        return root
    }

    /// A root file system: dpkg (and a distroless status.d file), apk, npm and Python packages.
    static func rootfs() throws -> String {
        let root = try fresh("rootfs")
        try write(root, [
            "var/lib/dpkg/status": """
                Package: libssl3
                Status: install ok installed
                Source: openssl (3.0.11-1~deb12u2)
                Version: 3.0.11-1~deb12u2

                Package: bash
                Status: install ok installed
                Version: 5.2.15-2+b2
                Description: GNU Bourne Again SHell
                 continued line

                Package: removed-one
                Status: deinstall ok config-files
                Version: 1.0


                """,
            "var/lib/dpkg/status.d/tzdata": "Package: tzdata\nVersion: 2024a-0+deb12u1\n",
            "var/lib/dpkg/status.d/tzdata.md5sums": "abc  usr/share/zoneinfo/UTC\n",
            "lib/apk/db/installed": "P:musl\nV:1.2.4-r2\no:musl\n\nP:libcrypto3\nV:3.1.4-r5\no:openssl\n",
            "usr/lib/node_modules/@scope/tool/package.json": #"{"name": "@scope/tool", "version": "1.0.0"}"#,
            "usr/lib/node_modules/@scope/tool/test/fixture/package.json": #"{"name": "not-installed", "version": "9.9.9"}"#,
            "usr/lib/python3/dist-packages/Pygments-2.14.0.egg-info/PKG-INFO": pkgInfo("Pygments", "2.14.0"),
        ])
        return root
    }
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: "\(ScanFixture.shared)/pypa-advisory-database"), "needs ../shared/data"))
struct InstalledMetadataTests {
    @Test func eggInfoInEveryFormIsInventoried() throws {
        let root = try InstalledFixture.distPackages()
        let found = try Inventory.packages(at: root)
        #expect(Set(found.map { "\($0.name) \($0.version)" }) == [
            "Pygments 2.14.0", "six 1.16.0", "cryptography 38.0.4", "demo 1.0", "pip 23.0.1", "zipped 2.0", "mystery ",
        ])
        #expect(found.first { $0.name == "mystery" }?.problem == "no Version in the metadata")
    }

    @Test func pygmentsFromItsEggInfoHasItsAdvisory() throws {
        let report = try Scanner.scan([try InstalledFixture.distPackages()], database: ScanReportTests.database)
        let pygments = try #require(report.packages.first { $0.name == "Pygments" })
        #expect(pygments.checked == true)
        let advisory = try #require(pygments.vulnerabilities.first { $0.id == "PYSEC-2023-117" })
        #expect(advisory.aliases == ["CVE-2022-40896"])
        #expect(advisory.summary?.contains("ReDoS") == true)
        #expect(advisory.affected.first == "< 2.15.1")
        #expect(advisory.fixed == ["2.15.1"])
        #expect(advisory.fixedIn == "2.15.1")
        #expect(advisory.severity == nil)  // the record grades it nowhere
        #expect(pygments.upgradeTo == "2.15.1")
        // A version without metadata is reported, not checked, never left out.
        let mystery = try #require(report.packages.first { $0.name == "mystery" })
        #expect(mystery.checked == false)
        #expect(mystery.notChecked == "no Version in the metadata")
    }

    /// An sdist unpacked carries NAME.egg-info/ too: it stays one package whose files are read.
    @Test func anUnpackedSdistIsStillOnePackage() throws {
        let root = try InstalledFixture.fresh("sdist")
        try InstalledFixture.write(root, [
            "PKG-INFO": InstalledFixture.pkgInfo("demo", "3.0"),
            "demo.egg-info/PKG-INFO": InstalledFixture.pkgInfo("demo", "3.0"),
            "setup.py": "from setuptools import setup\nsetup()\n",
        ])
        let found = try Inventory.packages(at: root)
        #expect(found.map { "\($0.name) \($0.version)" } == ["demo 3.0"])
        #expect(found.first?.files.contains { $0.path == "setup.py" } == true)
    }

    @Test func rootFileSystemPackagesAndDebianNotChecked() throws {
        let report = try Scanner.scan([try InstalledFixture.rootfs()], database: ScanReportTests.database)
        let names = Set(report.packages.map { "\($0.ecosystem) \($0.name) \($0.version)" })
        #expect(names == ["Debian libssl3 3.0.11-1~deb12u2", "Debian bash 5.2.15-2+b2", "Debian tzdata 2024a-0+deb12u1",
                          "Alpine musl 1.2.4-r2", "Alpine libcrypto3 3.1.4-r5", "npm @scope/tool 1.0.0", "PyPI Pygments 2.14.0"])
        for p in report.packages where p.ecosystem != "PyPI" {
            #expect(p.checked == false, "\(p.name)")
            #expect(p.notChecked == "no advisories for \(p.ecosystem) in the database", "\(p.name)")
        }
        #expect(report.packages.first { $0.name == "libssl3" }?.advisoryPackage == "openssl")
        #expect(report.packages.first { $0.name == "libcrypto3" }?.advisoryPackage == "openssl")
        #expect(report.packages.first { $0.name == "Pygments" }?.vulnerabilities.map(\.id).contains("PYSEC-2023-117") == true)

        let text = try ReportFormat.text.render(report, toolVersion: "0")
        let bash = try #require(text.split(separator: "\n").first { $0.hasPrefix("Debian bash") })
        #expect(bash.hasSuffix("not checked: no advisories for Debian in the database"), "\(bash)")
        #expect(!bash.contains("clean"))
        #expect(text.contains("3 not checked: no advisories for Debian in the database"), "\(text)")

        let json = try ReportFormat.json.render(report, toolVersion: "0")
        #expect(json.contains(#""notChecked" : "no advisories for Debian in the database""#), "\(json.prefix(2000))")
        let sarif = try ReportFormat.sarif.render(report, toolVersion: "0")
        #expect(sarif.contains("3 packages not checked against advisories: no advisories for Debian in the database"))
        let bom = try ReportFormat.cyclonedx.render(report, toolVersion: "0")
        #expect(bom.contains("not checked: no advisories for Debian in the database"))
    }

    @Test func withoutADatabaseNothingIsClean() throws {
        let report = try Scanner.scan([try InstalledFixture.rootfs()], database: nil)
        #expect(report.packages.allSatisfy { $0.notChecked == "no vulnerability database" })
        #expect(!(try ReportFormat.text.render(report, toolVersion: "0")).contains("clean"))
    }

    @Test func advisoryDetailsInEveryFormat() throws {
        let report = try Scanner.scan([try InstalledFixture.distPackages()], database: ScanReportTests.database)
        // A record with a CVSS v3 vector is graded by its base score.
        let pip = try #require(report.packages.first { $0.name == "pip" }?.vulnerabilities.first { $0.id == "PYSEC-2023-228" })
        #expect(pip.severity == "low")
        #expect(pip.score == 3.3)
        #expect(pip.cvss.first?.hasPrefix("CVSS_V3 CVSS:3.1/") == true)

        let text = try ReportFormat.text.render(report, toolVersion: "0")
        #expect(text.contains("advisory  PYSEC-2023-117 (CVE-2022-40896)  severity unknown"), "\(text)")
        #expect(text.contains("affected: < 2.15.1"))
        #expect(text.contains("fixed in: 2.15.1"))
        #expect(text.contains("upgrade to 2.15.1 or later"))
        #expect(text.contains("PYSEC-2023-228 (CVE-2023-5752)  low 3.3"))

        let json = try ReportFormat.json.render(report, toolVersion: "0")
        for fragment in [#""fixedIn" : "2.15.1""#, #""upgradeTo" : "2.15.1""#, #""severity" : "low""#, #""score" : 3.3"#, "ReDoS"] {
            #expect(json.contains(fragment), "\(fragment)")
        }
        let sarif = try ReportFormat.sarif.render(report, toolVersion: "0")
        #expect(sarif.contains("Fixed in 2.15.1: upgrade to it or later."))
        #expect(sarif.contains(#""security-severity" : "3.3""#))
        let bom = try ReportFormat.cyclonedx.render(report, toolVersion: "0")
        #expect(bom.contains("Upgrade Pygments to 2.15.1 or later."))
        #expect(bom.contains(#""method" : "CVSSv31""#))
    }

    /// The new fields (ratings, notifications, properties) keep both documents valid.
    @Test(arguments: [("sarif", "sarif-schema-2.1.0.json"), ("cyclonedx", "bom-1.5.schema.json")])
    func detailedOutputValidates(_ c: (String, String)) throws {
        let report = try Scanner.scan([try InstalledFixture.rootfs(), try InstalledFixture.distPackages()], database: ScanReportTests.database)
        let out = "\(ScanFixture.dir)/detailed-\(UUID().uuidString.prefix(8)).\(c.0).json"
        try (try ReportFormat(rawValue: c.0)!.render(report, toolVersion: "0.1.0")).write(toFile: out, atomically: true, encoding: .utf8)
        let verdict = try ScanFixture.python("import runpy\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')",
                                             args: ["\(ScanFixture.repo)/Tests/CordonScannerTests/validate_schema.py",
                                                    "\(ScanFixture.shared)/schemas", c.1, out])
        #expect(verdict.contains("valid"))
    }
}

/// `cordon scan` as an unprivileged user, against a root-owned 0644 database in a root-owned
/// 0755 directory: read-only, nothing created. (Runs the built cordon-scan under setpriv.)
@Suite(.enabled(if: geteuid() == 0 && FileManager.default.fileExists(atPath: "/usr/bin/setpriv")
                && FileManager.default.fileExists(atPath: "\(ScanFixture.shared)/pypa-advisory-database"), "needs root, setpriv, ../shared/data"))
struct UnprivilegedScanTests {
    static let productsDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    static func run(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: arguments[0])
        p.arguments = Array(arguments.dropFirst())
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test func nobodyScansWithARootOwnedDatabase() throws {
        let scanner = "\(Self.productsDir)/cordon-scan"
        try #require(FileManager.default.isExecutableFile(atPath: scanner), "build cordon-scan first")
        // Everything nobody needs to reach: world-traversable, root-owned.
        let state = "/tmp/cordon-ro-state-\(getpid())"
        try? FileManager.default.removeItem(atPath: state)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: state) }
        let imported = try Self.run([scanner, "db", "import", "--state-dir", state, "\(ScanFixture.shared)/pypa-advisory-database/vulns/pygments"])
        #expect(imported.status == 0, "\(imported.err)")
        chmod("\(state)/vulndb.sqlite", 0o644)
        let before = try FileManager.default.contentsOfDirectory(atPath: state).sorted()
        #expect(before == ["vulndb.sqlite"])

        let target = try InstalledFixture.distPackages()
        var dir = target
        while dir != "/" && !dir.isEmpty { chmod(dir, 0o755); dir = (dir as NSString).deletingLastPathComponent }
        let nobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        let scan = try Self.run(nobody + [scanner, "scan", "--state-dir", state, "--format", "json", target])
        #expect(scan.status == 0, "\(scan.err)")
        #expect(!scan.err.contains("readonly database"), "\(scan.err)")
        #expect(scan.out.contains("PYSEC-2023-117"), "\(scan.err)")
        let status = try Self.run(nobody + [scanner, "db", "status", "--json", "--state-dir", state])
        #expect(status.status == 0, "\(status.err)")
        #expect(status.out.contains(#""PyPI" : "#), "\(status.out)")
        let match = try Self.run(nobody + [scanner, "db", "match", "--state-dir", state, "pygments", "2.14.0"])
        #expect(match.out.contains("PYSEC-2023-117"), "\(match.err)")
        // Nothing written: no journal, -wal or -shm left beside the database.
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).sorted() == before)
    }
}
