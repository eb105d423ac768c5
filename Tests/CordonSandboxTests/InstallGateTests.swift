import CordonTestNetwork
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon install` end to end, as root, against a real HTTP package index (index_standin.py
/// over make_index.py's PEP 691 pages) that this suite serves at 198.51.100.20:80 inside a
/// network namespace it makes; `index.test` resolves to it from a hosts file. Each crafted
/// package is fetched in the fetch worker's sandbox, checked in the check worker's, decided on
/// by the policy's [install] table and, when it passes, unpacked into the store — then imported
/// by a sandboxed command.
@Suite(.enabled(if: Harness.isRoot && FileManager.default.fileExists(atPath: SharedData.advisories), "needs root and ../shared/data"),
       .serialized)
final class InstallGateTests {
    static let address = "198.51.100.20"
    static let fixtures = "\(Harness.repo)/Tests/CordonScannerTests"
    static let uv = "\(Harness.repo)/.build/pydeps/uv/bin/uv"
    /// The host Python's minor version (3.MINOR), as the gate's messages name it.
    static let pythonMinor = Harness.exec("/usr/bin/python3", ["-c", "import sys; print(sys.version_info[1], end='')"]).stdout

    let network: EgressNetwork
    let dir: String
    let server: Process
    let config: String
    let state: String

    init() throws {
        dir = "\(Harness.scratch)/install-\(UInt32.random(in: 0...UInt32.max))"
        // Root-owned 0755 directories, as an admin's would be.
        try FileManager.default.createDirectory(atPath: "\(dir)/config/policies", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        config = "\(dir)/config"
        state = "\(dir)/state"
        let made = Harness.exec("/usr/bin/python3", ["\(Self.fixtures)/make_packages.py", "\(dir)/packages"])
        try #require(made.status == 0, "\(made.stderr)")
        let index = Harness.exec("/usr/bin/python3", ["\(Self.fixtures)/make_index.py", "\(dir)/packages", "\(dir)/index", "\(Date().timeIntervalSince1970)"])
        try #require(index.status == 0, "\(index.stderr)")
        try "\(Self.address) index.test\n".write(toFile: "\(dir)/hosts", atomically: true, encoding: .utf8)
        try """
            [policy]
            name = "gate"
            extends = ["default"]

            [install]
            index = "http://index.test/simple"
            min_release_age = "7d"
            deny_vulnerability_severity = "medium"
            """.write(toFile: "\(config)/policies/gate.toml", atomically: true, encoding: .utf8)
        try """
            [policy]
            name = "strict"
            extends = ["gate"]

            [install]
            require_hashes = true
            """.write(toFile: "\(config)/policies/strict.toml", atomically: true, encoding: .utf8)
        try """
            [policy]
            name = "builds"
            extends = ["gate"]

            [install]
            deny_finding_severity = "critical"
            yanked = "allow-pinned"
            """.write(toFile: "\(config)/policies/builds.toml", atomically: true, encoding: .utf8)
        let imported = Harness.exec("\(Harness.productsDir)/cordon-scan", ["db", "import", "--state-dir", state, SharedData.advisories])
        try #require(imported.status == 0, "\(imported.stderr)")

        network = try EgressNetwork(serving: [Self.address])
        server = Process()
        let (path, arguments) = network.inServers(["/usr/bin/python3", "\(Self.fixtures)/index_standin.py", "\(dir)/index", "--host", Self.address,
                                                   "--port", "80", "--log", "\(dir)/requests.log"])
        server.executableURL = URL(fileURLWithPath: path)
        server.arguments = arguments
        let out = Pipe()
        server.standardOutput = out
        do {
            try server.run()
            // Its first line (its port) says it listens; read with poll, so a server that never
            // answers cannot hang the suite.
            let fd = out.fileHandleForReading.fileDescriptor
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            try #require(poll(&p, 1, 20_000) == 1, "the index server did not start")
        } catch {
            network.close()
            throw error
        }
    }

    deinit {
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        network.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func sha256(_ file: String) -> String {
        Harness.exec("/usr/bin/sha256sum", ["\(dir)/packages/\(file)"]).stdout.split(separator: " ").first.map(String.init) ?? ""
    }

    /// A pinned, hashed line for a crafted file (the hash of its bytes, or `hash`).
    func pin(_ file: String, hash: String? = nil) -> String {
        let parts = file.replacingOccurrences(of: ".whl", with: "").replacingOccurrences(of: ".tar.gz", with: "").split(separator: "-")
        return "\(parts[0].replacingOccurrences(of: "_", with: "-"))==\(parts[1]) --hash=sha256:\(hash ?? sha256(file))"
    }

    struct Install {
        var status: Int32
        var record: [String: Any]
        var stderr: String
        var verdicts: [[String: Any]] { record["verdicts"] as? [[String: Any]] ?? [] }
        func refusals(_ rule: String) -> [String] {
            verdicts.filter { $0["rule"] as? String == rule && $0["refuses"] as? Bool == true }.compactMap { $0["evidence"] as? String }
        }
    }

    func install(_ lines: [String], policy: String = "gate", json: Bool = true, options: [String] = ["--uv", "none"]) -> Install {
        let file = "\(dir)/req-\(UInt32.random(in: 0...UInt32.max)).txt"
        try? lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let (path, args) = network.inSupervisor([Harness.cordon, "install", "--config-dir", config, "--state-dir", state, "--runtime-dir", Harness.runtimeDir,
                                                 "--dns-hosts", "\(dir)/hosts", "--policy", policy] + options + (json ? ["--json"] : []) + ["-r", file])
        let r = Harness.exec(path, args)
        let record = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return Install(status: r.status, record: record, stderr: r.stderr)
    }

    var sets: [String] { (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/store/sets")) ?? [] }

    @Test func aCleanWheelIsInstalledAndImportedInASandbox() throws {
        let first = install([pin("cordon_clean-1.0-py3-none-any.whl")])
        #expect(first.status == 0, "\(first.stderr) \(first.record)")
        #expect(first.record["outcome"] as? String == "installed")
        let site = try #require(first.record["path"] as? String)
        #expect(FileManager.default.fileExists(atPath: "\(site)/cordon_clean/__init__.py"))
        // Read-only in the store: directories 0555, files 0444, root's.
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(site)/cordon_clean/__init__.py")
        #expect((attributes[.posixPermissions] as? Int) == 0o444)
        // The same set again: already in the store, nothing installed twice.
        let again = install([pin("cordon_clean-1.0-py3-none-any.whl")])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.record["outcome"] as? String == "reused")
        #expect(again.record["path"] as? String == site)
        #expect(sets.count == 1)
        // Imported by a sandboxed command that has the set bound read-only on its PYTHONPATH,
        // though the state directory is private to root (0700: cordon run's parent clones it).
        chmod(state, 0o700)
        let run = Harness.exec(Harness.cordon, ["run", "--runtime-dir", Harness.runtimeDir, "--state-dir", state, "--policy", "python-tool",
                                                "--ro-bind", "\(site):/cordon/site", "--env", "PYTHONPATH=/cordon/site", "--",
                                                "/usr/bin/python3", "-c", "import cordon_clean; print(cordon_clean.__file__)"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("/cordon/site/cordon_clean/__init__.py"), "\(run.stdout)")
        // The set, cloned in read-only by cordon run's parent, cannot be written from inside:
        // not a file added, not a module changed, not its mode.
        let attack = Harness.exec(Harness.cordon, ["run", "--runtime-dir", Harness.runtimeDir, "--state-dir", state, "--policy", "python-tool",
                                                   "--ro-bind", "\(site):/cordon/site", "--", "/usr/bin/python3", "-c", """
            import os
            for what, act in [("add", lambda: open("/cordon/site/evil.py", "w")), ("change", lambda: open("/cordon/site/cordon_clean/__init__.py", "a")),
                              ("chmod", lambda: os.chmod("/cordon/site/cordon_clean/__init__.py", 0o777))]:
                try:
                    act(); print(what, "succeeded")
                except OSError as e:
                    print(what, "refused", e.errno)
            """])
        #expect(attack.stdout.contains("add refused") && attack.stdout.contains("change refused") && attack.stdout.contains("chmod refused"), "\(attack.stdout) \(attack.stderr)")
        #expect(!attack.stdout.contains("succeeded"))
        #expect(!FileManager.default.fileExists(atPath: "\(site)/evil.py"))
        // Every run left a record.
        let records = (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/store/records")) ?? []
        #expect(records.count == 2)
    }

    @Test func eachCraftedPackageIsRefusedByItsRule() throws {
        let cases: [(file: String, rule: String, evidence: String)] = [
            ("requests-2.30.0-py3-none-any.whl", "install.deny_vulnerability_severity", "PYSEC-2023-74"),
            ("reqeusts-1.0-py3-none-any.whl", "install.typosquats", "one edit from the popular requests"),
            ("cordon_fresh-1.0-py3-none-any.whl", "install.min_release_age", "younger than install.min_release_age 7d"),
            ("cordon_yanked-1.0-py3-none-any.whl", "install.yanked", "broken build"),
            ("cordon_pth-1.0-py3-none-any.whl", "install.deny_finding_severity", ".pth"),
            ("cordon_tampered-1.0-py3-none-any.whl", "hash check", "the index says sha256:"),
        ]
        for c in cases {
            let r = install([pin(c.file)])
            #expect(r.status == 1, "\(c.file): \(r.stderr)")
            #expect(r.record["outcome"] as? String == "refused", "\(c.file)")
            let found = r.verdicts.filter { ($0["refuses"] as? Bool) == true }
            #expect(found.contains { ($0["rule"] as? String) == c.rule && (($0["evidence"] as? String)?.contains(c.evidence) ?? false) },
                    "\(c.file): \(found)")
            #expect(r.record["path"] is NSNull, "\(c.file)")
        }
        #expect(sets.isEmpty, "a refused set installs nothing")
    }

    /// One file whose bytes do not match the request's hash refuses the whole set, and a
    /// person reading the terminal sees the package, the rule and the evidence.
    @Test func aHashMismatchRefusesTheWholeSet() throws {
        let wrong = String(repeating: "0", count: 64)
        let lines = [pin("cordon_clean-1.0-py3-none-any.whl"), pin("cordon_extra-1.0-py3-none-any.whl", hash: wrong)]
        let r = install(lines)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.refusals("hash check").contains { $0.contains("not among the request's 1 hash") }, "\(r.verdicts)")
        #expect(r.refusals("whole set").contains { $0.contains("cordon_extra-1.0-py3-none-any.whl did not match its hash") }, "\(r.verdicts)")
        let shown = install(lines, json: false)
        #expect(shown.status == 1)
        #expect(shown.stderr.contains("refused: cordon-extra 1.0 cordon_extra-1.0-py3-none-any.whl: the bytes hash to sha256:"), "\(shown.stderr)")
        #expect(shown.stderr.contains("refused: cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: refused with its set"), "\(shown.stderr)")
        #expect(shown.stderr.contains("nothing was installed"), "\(shown.stderr)")
        #expect(sets.isEmpty)
    }

    @Test func brokenInputIsRefusedBeforeAnythingIsFetched() throws {
        let before = (try? String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)) ?? ""
        let twice = install([pin("cordon_clean-1.0-py3-none-any.whl"), pin("cordon_clean-1.0-py3-none-any.whl")], json: false)
        #expect(twice.status == 2)
        #expect(twice.stderr.contains("required twice (line 1 too)"), "\(twice.stderr)")
        let nosuch = install([pin("cordon_clean-1.0-py3-none-any.whl")], policy: "nosuch", json: false)
        #expect(nosuch.status == 2)
        #expect(nosuch.stderr.contains("nosuch"), "\(nosuch.stderr)")
        let garbled = install(["cordon-clean==1.0 --hash=md5:abc"], json: false)
        #expect(garbled.status == 2)
        #expect(garbled.stderr.contains(":1:"), "\(garbled.stderr)")
        let after = (try? String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)) ?? ""
        #expect(before == after, "nothing was fetched")
        #expect(sets.isEmpty)
    }

    /// A loose request is resolved by pip in its sandbox (the index's hosts only, wheels only):
    /// cordon-app brings cordon-clean, both are checked and installed, and the app imports.
    @Test func aLooseRequestIsResolvedByPipInItsSandbox() throws {
        let r = install(["cordon-app"])
        #expect(r.status == 0, "\(r.stderr) \(r.record)")
        #expect(r.record["resolution"] as? String == "resolved by pip")
        let names = (r.record["files"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted()
        #expect(names == ["cordon-app", "cordon-clean"])
        let site = try #require(r.record["path"] as? String)
        let run = Harness.exec(Harness.cordon, ["run", "--runtime-dir", Harness.runtimeDir, "--state-dir", state, "--policy", "python-tool",
                                                "--ro-bind", "\(site):/cordon/site", "--env", "PYTHONPATH=/cordon/site", "--",
                                                "/usr/bin/python3", "-c", "import cordon_app; print(cordon_app.answer())"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "42\n")
        // The resolver's choice still passes the gate: a loose request for a typosquat is refused.
        let squat = install(["reqeusts"])
        #expect(squat.status == 1, "\(squat.stderr)")
        #expect(!squat.refusals("install.typosquats").isEmpty, "\(squat.verdicts)")
    }

    /// uv resolves instead of pip when there is one (`--uv`), in the same sandbox: the same set.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: InstallGateTests.uv), "needs .build/pydeps/uv (tools/pydeps.sh uv)"))
    func uvResolvesInTheSameSandbox() throws {
        let r = install(["cordon-app"], options: ["--uv", Self.uv])
        #expect(r.status == 0, "\(r.stderr) \(r.record)")
        #expect(r.record["resolution"] as? String == "resolved by uv")
        let names = (r.record["files"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted()
        #expect(names == ["cordon-app", "cordon-clean"])
        let missing = install(["cordon-nosuch"], json: false, options: ["--uv", Self.uv])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("resolving with uv failed"), "\(missing.stderr)")
    }

    /// With install.require_hashes, what pip resolved is not what was pinned: every file without
    /// a hash of the request's is refused.
    @Test func requireHashesRefusesWhatOnlyTheResolverPinned() throws {
        let r = install(["cordon-app", pin("cordon_clean-1.0-py3-none-any.whl")], policy: "strict")
        #expect(r.status == 1, "\(r.stderr)")
        let refused = r.refusals("install.require_hashes")
        #expect(refused.count == 1 && refused.first?.contains("the request gives no hash") == true, "\(r.verdicts)")
        #expect(r.verdicts.contains { $0["package"] as? String == "cordon-app" && $0["rule"] as? String == "install.require_hashes" })
        #expect(sets.isEmpty)
    }

    /// A lock whose lines carry environment markers: pip evaluates them (with --no-deps, the
    /// hashes kept), and only the lines for this Python are installed.
    @Test func aLockWithMarkersInstallsWhatAppliesHere() throws {
        let r = install(["cordon-clean==1.0 ; python_version >= \"3\" --hash=sha256:\(sha256("cordon_clean-1.0-py3-none-any.whl"))",
                         "cordon-pth==1.0 ; python_version < \"3\" --hash=sha256:\(sha256("cordon_pth-1.0-py3-none-any.whl"))"])
        #expect(r.status == 0, "\(r.stderr) \(r.record)")
        #expect(r.record["resolution"] as? String == "lock, markers evaluated by pip")
        let names = (r.record["files"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names == ["cordon-clean"])
    }
}

extension InstallGateTests {
    /// An sdist is built in the build sandbox (no network, its in-tree backend run by pip), its
    /// wheel checked again and installed; the record says what was built from what.
    @Test func anSdistIsBuiltInTheBuildSandbox() throws {
        let r = install([pin("cordon_built-1.0.tar.gz")])
        #expect(r.status == 0, "\(r.stderr) \(r.record)")
        let builds = r.record["builds"] as? [[String: Any]] ?? []
        #expect(builds.count == 1 && builds.first?["wheel"] as? String == "cordon_built-1.0-py3-none-any.whl", "\(builds)")
        let files = r.record["files"] as? [[String: Any]] ?? []
        #expect((files.first?["built"] as? [String: Any])?["filename"] as? String == "cordon_built-1.0-py3-none-any.whl")
        let site = try #require(r.record["path"] as? String)
        #expect(FileManager.default.fileExists(atPath: "\(site)/cordon_built/__init__.py"))
    }

    /// The build sandbox attacked from inside: the build script tries to read /root, reach the
    /// index by name and by address, write the store and /usr. Each attempt is refused inside,
    /// the build fails, the sdist is refused with the build's own account on the record, and
    /// nothing outside changed.
    @Test func aBuildScriptsAttacksAreRefusedAndRecorded() throws {
        let before = (try? String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)) ?? ""
        let r = install([pin("cordon_evil-1.0.tar.gz")], policy: "builds")
        #expect(r.status == 1, "\(r.stderr) \(r.record)")
        #expect(r.refusals("sdist build").contains { $0.contains("its build failed in the build sandbox") }, "\(r.verdicts)")
        let log = ((r.record["builds"] as? [[String: Any]])?.first?["log"] as? [String] ?? []).joined(separator: "\n")
        for attempt in ["read /root", "reach http://index.test/", "reach 198.51.100.20:80", "write the store", "write /usr"] {
            #expect(log.contains("attack: \(attempt): refused"), "\(attempt): \(log)")
        }
        #expect(!log.contains("succeeded"), "\(log)")
        #expect(!FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/cordon_evil_was_here.py"))
        #expect(!FileManager.default.fileExists(atPath: "/var/lib/cordon/store/blobs/cordon-evil"))
        let after = (try? String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)) ?? ""
        #expect(!after.dropFirst(before.count).contains("/simple/ "), "the build reached the index: \(after.dropFirst(before.count))")
        #expect(sets.isEmpty)
    }

    /// A set kept with a built wheel is not handed to a stricter policy on its lock's word: the
    /// lock names the sdist, so the wheel built from it is checked and decided on again.
    @Test func aKeptSetsBuiltWheelsAreDecidedAgainOnReuse() throws {
        let lenient = install([pin("cordon_pthbuild-1.0.tar.gz")], policy: "builds")
        #expect(lenient.status == 0, "\(lenient.stderr) \(lenient.record)")
        #expect(sets.count == 1)
        let strict = install([pin("cordon_pthbuild-1.0.tar.gz")])
        #expect(strict.status == 1, "\(strict.stderr) \(strict.record)")
        #expect(strict.refusals("install.deny_finding_severity").contains { $0.contains("pth-code") }, "\(strict.verdicts)")
        #expect(strict.record["path"] is NSNull)
        let again = install([pin("cordon_pthbuild-1.0.tar.gz")], policy: "builds")
        #expect(again.status == 0 && again.record["outcome"] as? String == "reused", "\(again.stderr)")
    }

    /// install.yanked = "allow-pinned" takes a yanked file only when the request itself pins it:
    /// not when only the resolver did (cordon-dep needs cordon-yanked==1.0).
    @Test func allowPinnedTakesOnlyWhatTheRequestPinned() throws {
        let loose = install(["cordon-dep"], policy: "builds")
        #expect(loose.status == 1, "\(loose.stderr)")
        #expect(loose.refusals("install.yanked").contains { $0.contains("only when the request pins 1.0 exactly") }, "\(loose.verdicts)")
        let pinned = install([pin("cordon_yanked-1.0-py3-none-any.whl")], policy: "builds")
        #expect(pinned.status == 0, "\(pinned.stderr)")
        #expect(pinned.verdicts.contains { $0["rule"] as? String == "install.yanked" && $0["refuses"] as? Bool == false })
    }

    /// The set is imported from PYTHONPATH, ahead of the standard library: a wheel that provides
    /// a module of the standard library's name (here a `json` package the scanner finds nothing
    /// wrong with) is refused, and nothing is kept.
    @Test func aWheelThatWouldShadowTheStandardLibraryIsRefused() throws {
        let before = sets
        let r = install([pin("cordon_shadow-1.0-py3-none-any.whl")])
        #expect(r.status == 1 && r.record["outcome"] as? String == "refused", "\(r.stderr) \(r.record)")
        let evidence = r.refusals("standard library check")
        #expect(evidence == ["provides _sysconfigdata__x86_64-linux-gnu, json, which Python 3.\(Self.pythonMinor) has as its own: on PYTHONPATH it would be imported in its place"],
                "\(r.verdicts)")
        #expect(sets == before)
        // Read from the installed tree, not from the worker's word (which names at most 1,000).
        let many = install([pin("cordon_many-1.0-py3-none-any.whl")])
        #expect(many.status == 1 && many.refusals("standard library check").first?.hasPrefix("provides json, which Python") == true, "\(many.verdicts)")
        // A clean wheel beside it installs (the check names what it provides, nothing else).
        #expect(install([pin("cordon_clean-1.0-py3-none-any.whl")]).status == 0)
    }
}

enum SharedData {
    /// ../shared/data's PyPA advisory database, beside the repository.
    static let advisories = URL(fileURLWithPath: Harness.repo).deletingLastPathComponent().appendingPathComponent("shared/data/pypa-advisory-database").path
}
