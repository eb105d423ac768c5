@testable import CordonDaemon
import CordonJSON
import CordonPolicy
import CordonSystem
import CordonTestNetwork
import CordonToolGateway
import CordonTools
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Tools with requirements (`requires`, `lock`) through a real cordond: installed through the
/// install gate of the tool's policy before the tool first starts, bound read-only at
/// /cordon/site, imported by the call; a refused set fails the tool's calls with the gate's
/// reason. The index is a real HTTP server (index_standin.py over make_index.py's PEP 691 pages)
/// at 198.51.100.20:80 in a network namespace this suite makes, cordond running in the other.
@Suite(.enabled(if: TestDaemon.isRoot && FileManager.default.fileExists(atPath: SharedAdvisories.path), "needs root and ../shared/data"),
       .serialized)
final class ToolRequirementsTests {
    static let address = "198.51.100.20"
    static let fixtures = "\(TestDaemon.repoRoot)/Tests/CordonScannerTests"
    static let advisories = SharedAdvisories.path

    let network: EgressNetwork
    let dir: String
    var server: Process?

    init() throws {
        dir = "/tmp/cordon-reqs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let made = TestDaemon.exec("/usr/bin/python3", ["\(Self.fixtures)/make_packages.py", "\(dir)/packages"])
        try #require(made.status == 0, "\(made.stderr)")
        let index = TestDaemon.exec("/usr/bin/python3", ["\(Self.fixtures)/make_index.py", "\(dir)/packages", "\(dir)/index", "\(Date().timeIntervalSince1970)"])
        try #require(index.status == 0, "\(index.stderr)")
        try "\(Self.address) index.test\n".write(toFile: "\(dir)/hosts", atomically: true, encoding: .utf8)
        network = try EgressNetwork(serving: [Self.address])
        do { try startIndex() } catch {
            network.close()
            throw error
        }
    }

    deinit {
        stopIndex()
        network.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func startIndex() throws {
        let p = Process()
        let (path, arguments) = network.inServers(["/usr/bin/python3", "\(Self.fixtures)/index_standin.py", "\(dir)/index", "--host", Self.address,
                                                   "--port", "80", "--log", "\(dir)/requests.log"])
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        server = p
        var poll1 = pollfd(fd: out.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)
        try #require(poll(&poll1, 1, 20_000) == 1, "the index server did not start")
    }

    func stopIndex() {
        guard let server else { return }
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        self.server = nil
    }

    func sha256(_ file: String) -> String {
        TestDaemon.exec("/usr/bin/sha256sum", ["\(dir)/packages/\(file)"]).stdout.split(separator: " ").first.map(String.init) ?? ""
    }

    static let gate = """
        [policy]
        name = "gate"
        extends = ["python-tool"]

        [install]
        index = "http://index.test/simple"
        min_release_age = "7d"
        deny_vulnerability_severity = "medium"

        [access]
        users = ["nobody"]
        """

    /// A command tool that imports `module` and prints where it came from.
    static func tool(_ module: String, _ requirements: String) -> String {
        """
        [tool]
        kind = "command"
        description = "imports \(module)"
        policy = "gate"
        argv = ["/usr/bin/python3", "-c", "import \(module), os; print(\(module).__file__, os.environ['PYTHONPATH'])"]
        input_schema = { type = "object" }
        timeout = "3m"
        \(requirements)

        [access]
        users = ["nobody"]
        """
    }

    func daemon() throws -> TestDaemon {
        let clean = "cordon-clean==1.0 --hash=sha256:\(sha256("cordon_clean-1.0-py3-none-any.whl"))"
        return try TestDaemon(config: "[socket]\ngroup = \"65534\"\n\n[egress]\ndns_hosts = \"\(dir)/hosts\"\n", policies: ["gate": Self.gate],
                              files: ["tools/clean.toml": Self.tool("cordon_clean", "lock = \"clean.lock\""),
                                      "tools/clean.lock": "# the pinned set\n\(clean)\n",
                                      "tools/squat.toml": Self.tool("reqeusts", "requires = [\"reqeusts==1.0\"]")],
                              netns: network.supervisor) { d in
            let imported = TestDaemon.exec("\(TestDaemon.productsDir)/cordon-scan", ["db", "import", "--state-dir", d.stateDir, Self.advisories])
            try #require(imported.status == 0, "\(imported.stderr)")
        }
    }

    func call(_ d: TestDaemon, _ name: String) throws -> JSON {
        try d.call("tool.call", .object([("name", .string(name)), ("arguments", .object([])), ("timeout", .int(240))]))
    }

    func text(_ answer: JSON) -> String { answer["result"]?["content"]?.arrayValue?.first?["text"]?.stringValue ?? "" }

    @Test func aLockedSetIsInstalledBeforeTheToolStartsAndAnotherUserImportsIt() throws {
        let d = try daemon()
        let first = try call(d, "clean")
        #expect(first["outcome"] == .string("ok"), "\(first) \(d.log())")
        #expect(text(first) == "/cordon/site/cordon_clean/__init__.py /cordon/site\n", "\(first)")
        // Nine more in a row: the same set, no second install.
        for i in 2...10 {
            let again = try call(d, "clean")
            #expect(again["outcome"] == .string("ok") && text(again) == text(first), "call \(i): \(again)")
        }
        // One set in the store, read-only, root's; the call ran against that tree.
        let sets = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/sets").filter { $0.count == 64 }
        #expect(sets.count == 1, "\(sets)")
        var st = stat()
        #expect(stat("\(d.stateDir)/store/sets/\(sets.first ?? "")/site/cordon_clean/__init__.py", &st) == 0 && st.st_mode & 0o777 == 0o444)
        // The unprivileged user the manifest names calls it through the daemon too.
        let asNobody = d.asUser(65534, [#"{"jsonrpc":"2.0","id":1,"method":"tool.call","params":{"name":"clean","arguments":{},"timeout":60}}"#])
        #expect(asNobody.first?["result"]?["outcome"] == .string("ok"), "\(asNobody)")
        let nobodysText = text(asNobody.first?["result"] ?? .null)
        #expect(nobodysText.hasPrefix("/cordon/site/cordon_clean/"), "\(asNobody)")
        let log = d.log()
        #expect(log.contains("tool requirements") && log.components(separatedBy: "outcome=installed").count == 2, "\(log)")
    }

    @Test func aRefusedSetFailsTheToolsCallsWithTheGatesReasonAndInstallsNothing() throws {
        let d = try daemon()
        let answer = try call(d, "squat")
        #expect(answer["outcome"] == .string("unavailable"), "\(answer)")
        let message = answer["message"]?.stringValue ?? ""
        #expect(message.contains("requirements were not installed") && message.contains("reqeusts") && message.contains("install.typosquats")
                && message.contains("policy gate"), "\(message)")
        #expect(answer["result"] == .null)
        // The other tool is unaffected (its install may have run after this one's), and
        // tool.list says why squat is not there.
        #expect(try call(d, "clean")["outcome"] == .string("ok"))
        let list = try d.call("tool.list")
        let pending = list["requirements"]?.arrayValue ?? []
        #expect(pending.count == 1 && pending.first?["tool"] == .string("squat") && pending.first?["state"] == .string("failed"), "\(list)")
        #expect(pending.first?["reason"]?.stringValue?.contains("install.typosquats") == true, "\(list)")
        // The refused set is nowhere in the store; the refusal has its record.
        let sets = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/sets").filter { $0.count == 64 }
        #expect(sets.count == 1, "only clean's: \(sets)")
        let records = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/records")
        #expect(records.count == 2, "\(records)")
    }

    @Test func aRestartedDaemonBindsThePinnedSetWithoutTheIndex() throws {
        let d = try daemon()
        #expect(try call(d, "clean")["outcome"] == .string("ok"))
        let before = (try? String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)) ?? ""
        #expect(!before.isEmpty)
        // The index goes away; cordond restarts.
        stopIndex()
        d.signal(SIGTERM)
        #expect(d.waitExit(30) == 0)
        try d.start()
        let again = try call(d, "clean")
        #expect(again["outcome"] == .string("ok"), "\(again) \(d.log())")
        #expect(d.log().contains("outcome=pinned"))
        let after = (try? String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)) ?? ""
        #expect(after == before, "nothing asked of the index")
    }

    @Test func aChangedLockInstallsAgainAndTheToolRunsTheNewSet() throws {
        let d = try daemon()
        #expect(try call(d, "clean")["outcome"] == .string("ok"))
        // The lock now names a file whose bytes do not match: the reload installs again, and the
        // refusal replaces the set the tool had (it never runs with a set its manifest no longer names).
        try "cordon-clean==1.0 --hash=sha256:\(String(repeating: "0", count: 64))\n".write(toFile: "\(d.configDir)/tools/clean.lock", atomically: true, encoding: .utf8)
        d.signal(SIGHUP)
        var answer = JSON.null
        #expect(d.eventually(60) {
            answer = (try? call(d, "clean")) ?? .null
            return answer["outcome"] == .string("unavailable")
        }, "\(answer)")
        #expect(answer["message"]?.stringValue?.contains("cordon_clean-1.0-py3-none-any.whl") == true, "\(answer)")
    }
}

/// ../shared/data's PyPA advisory database, beside the repository.
enum SharedAdvisories {
    static let path = URL(fileURLWithPath: TestDaemon.repoRoot).deletingLastPathComponent().appendingPathComponent("shared/data/pypa-advisory-database").path
}

extension ToolRequirementsTests {
    /// `cordon install` by a user who is not root: through cordond (`install.run`), the
    /// requirements read by the CLI as that user, the gate that of a policy the user may use.
    @Test func anUnprivilegedUserInstallsThroughCordond() throws {
        let d = try daemon()
        let cordon = TestDaemon.cordon
        let line = "cordon-clean==1.0 --hash=sha256:\(sha256("cordon_clean-1.0-py3-none-any.whl"))"
        let ok = TestDaemon.runAs(uid: 65534, gid: 65534, [cordon, "install", "--socket", d.socket, "--policy", "gate", line])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.hasPrefix("installed 1 file: set ") || ok.stdout.hasPrefix("already in the store 1 file: set "), "\(ok.stdout)")
        // On a terminal, the steps as one bar redrawn in place (script(1) gives it a terminal).
        let tty = TestDaemon.exec("/usr/bin/script", ["-qec", "/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups -- \(cordon) install --socket \(d.socket) --policy gate 'cordon-app' 'cordon-clean'", "/dev/null"])
        #expect(tty.status == 0 && tty.stdout.contains("\r\u{1B}[Kcordon install [") && tty.stdout.contains("] resolving 2 requirements")
                && tty.stdout.contains("] unpacking 2 wheels") && tty.stdout.contains("installed 2 files: set "), "\(tty.stdout.debugDescription)")
        // A typosquat: refused, exit 1, the rule named; nothing kept of it.
        let squat = TestDaemon.runAs(uid: 65534, gid: 65534, [cordon, "install", "--socket", d.socket, "--policy", "gate", "reqeusts==1.0"])
        #expect(squat.status == 1 && squat.stderr.contains("install.typosquats") && squat.stderr.contains("nothing was installed"), "\(squat)")
        // A policy the user may not use, and a flag cordond does not take: errors, exit 2, nothing run.
        let records = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/records").count
        let denied = TestDaemon.runAs(uid: 65534, gid: 65534, [cordon, "install", "--socket", d.socket, "--policy", "default", line])
        #expect(denied.status == 2 && denied.stderr.contains("may not use policy default"), "\(denied)")
        let index = TestDaemon.runAs(uid: 65534, gid: 65534, [cordon, "install", "--socket", d.socket, "--policy", "gate", "--index", "http://evil.test/simple", line])
        #expect(index.status == 2 && index.stderr.contains("--index: not taken through cordond"), "\(index)")
        let bad = TestDaemon.runAs(uid: 65534, gid: 65534, [cordon, "install", "--socket", d.socket, "--policy", "gate", "cordon-clean==1.0 --hash=md5:00"])
        #expect(bad.status == 2, "\(bad)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/records").count == records)
        // The record says who asked.
        let newest = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/records").sorted().last ?? ""
        let record = try JSON.parse(Array(try String(contentsOfFile: "\(d.stateDir)/store/records/\(newest)", encoding: .utf8).utf8))
        #expect(record["uid"] == .int(65534), "\(record)")
    }

    /// `cordon store gc`: a set no tool pins goes (moved aside, removed when cordond next
    /// starts); the set a tool's requirements are pinned to stays, and the tool still runs.
    @Test func storeGCKeepsWhatToolsPinAndCollectsTheRest() throws {
        let d = try daemon()
        #expect(try call(d, "clean")["outcome"] == .string("ok"))
        let extra = try d.call("install.run", .object([("requirements", .array([.string("cordon-app"), .string("cordon-clean")])), ("policy", .string("gate"))]))
        let loose = try #require(extra["set"]?.stringValue)
        let sets = { try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/sets").filter { $0.count == 64 }.sorted() }
        #expect(try sets().count == 2)
        // Both sets are young: the default --min-age (1h) keeps them.
        let young = TestDaemon.exec(TestDaemon.cordon, ["store", "gc", "--state-dir", d.stateDir, "--dry-run", "--json"])
        #expect(try JSON.parse(Array(young.stdout.utf8))["sets"] == .array([]), "\(young)")
        let gc = { (args: [String]) in TestDaemon.exec(TestDaemon.cordon, ["store", "gc", "--state-dir", d.stateDir, "--min-age", "0s"] + args) }
        let dry = gc(["--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let said = try JSON.parse(Array(dry.stdout.utf8))
        #expect(said["sets"] == .array([.string(loose)]) && said["dryRun"] == .bool(true), "\(said)")
        #expect(try sets().count == 2, "a dry run changes nothing")
        let bad = gc(["--keep", String(repeating: "f", count: 64)])
        #expect(bad.status == 2 && bad.stderr.contains("no such set"), "\(bad)")
        let real = gc([])
        #expect(real.status == 0 && real.stdout.hasPrefix("removed 1 set and 0 files"), "\(real)")
        #expect(try sets().count == 1 && !(try sets()).contains(loose))
        let aside = { try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store").filter { $0.hasPrefix(".stale-") } }
        #expect(try aside().count == 1)
        // cordond's next start removes what was moved aside; the pinned tool runs as before.
        d.signal(SIGTERM)
        #expect(d.waitExit(30) == 0)
        try d.start()
        #expect(try call(d, "clean")["outcome"] == .string("ok"))
        #expect(try aside().isEmpty)
    }

    /// install.run is bounded for a user who is not an admin: one queued or running at a time,
    /// and no sdist builds (a build runs the package's code in the one slot everyone shares).
    @Test func anUnprivilegedUsersInstallRunIsBounded() throws {
        let d = try daemon()
        let client = """
            import json, socket, sys, time
            def conn():
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(120)
                s.connect(sys.argv[1])
                return s
            def ask(s, i, reqs):
                s.sendall((json.dumps({"jsonrpc": "2.0", "id": i, "method": "install.run", "params": {"requirements": reqs, "policy": "gate"}}) + "\\n").encode())
            a, b = conn(), conn()
            ask(a, 1, ["cordon-app", "cordon-clean"])
            time.sleep(0.3)
            ask(b, 2, ["cordon-clean"])
            print(b.makefile().readline().strip())
            print(a.makefile().readline().strip())
            """
        let r = TestDaemon.runAs(uid: 65534, gid: 65534, ["/usr/bin/python3", "-c", client, d.socket])
        let lines = r.stdout.split(separator: "\n").compactMap { try? JSON.parse(Array($0.utf8)) }
        #expect(lines.count == 2, "\(r)")
        #expect(lines.first?["error"]?["code"] == .int(-32008), "the second at once is busy: \(lines)")
        #expect(lines.last?["result"]?["outcome"] == .string("installed"), "the first runs: \(lines)")
        // An sdist: refused for this user whatever the policy says (gate builds them).
        let sdist = "cordon-built==1.0 --hash=sha256:\(sha256("cordon_built-1.0.tar.gz"))"
        let asked = TestDaemon.runAs(uid: 65534, gid: 65534, [TestDaemon.cordon, "install", "--socket", d.socket, "--policy", "gate", "--json", sdist])
        #expect(asked.status == 1, "\(asked)")
        let answer = try JSON.parse(Array(asked.stdout.utf8))
        #expect(answer["verdicts"]?.arrayValue?.contains { $0["rule"] == .string("install.sdists") && $0["refuses"] == .bool(true) } == true, "\(answer)")
    }

    /// `install.run` with `progress`: the steps arrive as notifications before the answer.
    @Test func installRunSaysItsStepsAsItGoes() throws {
        let d = try daemon()
        var steps: [String] = []
        let answer = try d.client().call("install.run", .object([
            ("requirements", .array([.string("cordon-app"), .string("cordon-clean")])), ("policy", .string("gate")), ("progress", .bool(true)),
        ])) { method, note in
            if method == "install.progress", let step = note["step"]?.stringValue { steps.append(step) }
        }
        #expect(answer["outcome"] == .string("installed"), "\(answer)")
        #expect(answer["files"]?.arrayValue?.count == 2 && answer["set"]?.stringValue?.count == 64, "\(answer)")
        #expect(Array(steps.prefix(2)) == ["describing", "resolving"] && steps.contains("downloading") && steps.last == "installing", "\(steps)")
        // Bad params change nothing: both kinds of request at once, or neither.
        let both = try d.callError("install.run", .object([("requirements", .array([.string("x")])), ("lock", .string("x\n")), ("policy", .string("gate"))]))
        #expect(both.code == -32602 && both.message.contains("one of them"), "\(both)")
        let twice = try d.callError("install.run", .object([("requirements", .array([.string("x"), .string("X")])), ("policy", .string("gate"))]))
        #expect(twice.code == -32602 && twice.message.contains("write it once"), "\(twice)")
    }
}

/// The same against the real PyPI (reachable here and in CI): a command tool that requires
/// `requests` gets it and its dependencies resolved, fetched, checked and installed through the
/// gate of the shipped python-tool policy before its first call, and imports it from the set
/// (not from the host's Python) — for root and for the unprivileged user its manifest names.
@Suite(.enabled(if: TestDaemon.isRoot && FileManager.default.fileExists(atPath: SharedAdvisories.path), "needs root and ../shared/data"))
struct RealPyPIToolTests {
    @Test func aToolThatRequiresRequestsImportsItFromItsSet() throws {
        let manifest = """
            [tool]
            kind = "command"
            description = "Which requests"
            policy = "python-tool"
            argv = ["/usr/bin/python3", "-c", "import requests, urllib3, idna, certifi, charset_normalizer as c; print(requests.__version__, requests.__file__, urllib3.__file__, c.__file__)"]
            input_schema = { type = "object" }
            timeout = "5m"
            requires = ["requests"]

            [access]
            users = ["nobody"]
            """
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n", files: ["tools/web.toml": manifest]) { d in
            let imported = TestDaemon.exec("\(TestDaemon.productsDir)/cordon-scan", ["db", "import", "--state-dir", d.stateDir, SharedAdvisories.path])
            try #require(imported.status == 0, "\(imported.stderr)")
        }
        let answer = try d.call("tool.call", .object([("name", .string("web")), ("arguments", .object([])), ("timeout", .int(300))]))
        #expect(answer["outcome"] == .string("ok"), "\(answer) \(d.log())")
        let words = (answer["result"]?["content"]?.arrayValue?.first?["text"]?.stringValue ?? "").split(separator: " ")
        #expect(words.count == 4 && words.dropFirst().allSatisfy { $0.hasPrefix("/cordon/site/") }, "\(answer)")
        // The record of the install: every file with its hash, the set it became.
        let records = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/records")
        #expect(records.count == 1, "\(records)")
        let record = try JSON.parse(Array(try String(contentsOfFile: "\(d.stateDir)/store/records/\(records[0])", encoding: .utf8).utf8))
        let files = record["files"]?.arrayValue ?? []
        #expect(files.count >= 5 && record["tool"] == .string("web") && record["outcome"] == .string("installed"), "\(record)")
        #expect(files.allSatisfy { $0["sha256"]?.stringValue?.count == 64 }, "\(files)")
        // The unprivileged user the manifest names.
        let asNobody = d.asUser(65534, [#"{"jsonrpc":"2.0","id":1,"method":"tool.call","params":{"name":"web","arguments":{},"timeout":120}}"#], timeout: 130)
        #expect(asNobody.first?["result"]?["outcome"] == .string("ok"), "\(asNobody)")
    }

    /// An MCP server from its requirements: mcp-server-time and the official SDK it needs,
    /// locked, fetched from PyPI and let through the gate only by the policy's `install.accept`
    /// entries (without them, httpx2 and httpcore2 are refused as likely typosquats and
    /// httpx2's auth module for reading ~/.netrc). Its tools are listed once the set is in,
    /// and a call answers ten times in a row from the one install, for root and for nobody.
    @Test func anMCPServerFromItsRequirementsAnswersThroughTheAcceptedGate() throws {
        let policy = """
            [policy]
            name = "mcp-gate"
            extends = ["python-tool"]

            [install]
            accept = [
              { rule = "install.typosquats", package = "httpx2", reason = "the HTTPX project's 2.x line, a dependency of mcp" },
              { rule = "install.typosquats", package = "httpcore2", reason = "the HTTPX project's 2.x line, a dependency of mcp" },
              { rule = "install.deny_finding_severity", package = "httpx2", version = "2.17.0", finding = "credential-access", file = "httpx2/_auth.py", reason = "NetRCAuth reads ~/.netrc for the requests it authenticates" },
            ]

            [access]
            users = ["nobody"]
            """
        let manifest = """
            [tool]
            kind = "mcp"
            description = "mcp-server-time, installed through the gate"
            command = ["/usr/bin/python3", "-m", "mcp_server_time", "--local-timezone", "UTC"]
            policy = "mcp-gate"
            lock = "time.lock"
            timeout = "5m"

            [access]
            users = ["nobody"]
            """
        // The set locked (hashes for every file), as a reviewed acceptance should be: another
        // upload of httpx2 2.17.0 would not be the file whose finding was looked at.
        let lock = try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("mcp-server-time.lock").path, encoding: .utf8)
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n", policies: ["mcp-gate": policy], files: ["tools/time.toml": manifest, "tools/time.lock": lock]) { d in
            let imported = TestDaemon.exec("\(TestDaemon.productsDir)/cordon-scan", ["db", "import", "--state-dir", d.stateDir, SharedAdvisories.path])
            try #require(imported.status == 0, "\(imported.stderr)")
        }
        let call = JSON.object([("name", .string("time.get_current_time")), ("arguments", .object([("timezone", .string("UTC"))])), ("timeout", .int(300))])
        for i in 0..<10 {
            let answer: JSON
            do { answer = try d.call("tool.call", call) } catch { Issue.record("call \(i + 1): \(error)\n\(d.log())"); return }
            let text = answer["result"]?["content"]?.arrayValue?.first?["text"]?.stringValue ?? ""
            #expect(answer["outcome"] == .string("ok") && text.contains("\"timezone\": \"UTC\""), "call \(i + 1): \(answer) \(i == 0 ? d.log() : "")")
        }
        let listed = try d.call("tool.list", .object([]))
        let names = (listed["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(names.contains("time.get_current_time") && names.contains("time.convert_time"), "\(listed)")
        // One install, whose record keeps the accepted refusals as warnings with their reasons.
        let records = try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/store/records")
        #expect(records.count == 1, "\(records)")
        let record = try JSON.parse(Array(try String(contentsOfFile: "\(d.stateDir)/store/records/\(records.first ?? "")", encoding: .utf8).utf8))
        let accepted = (record["verdicts"]?.arrayValue ?? []).filter { $0["refuses"] == .bool(false) && ($0["evidence"]?.stringValue ?? "").contains("accepted by install.accept") }
        #expect(record["outcome"] == .string("installed") && accepted.count == 3, "\(record["verdicts"] ?? .null)")
        let asNobody = d.asUser(65534, [#"{"jsonrpc":"2.0","id":1,"method":"tool.call","params":{"name":"time.get_current_time","arguments":{"timezone":"UTC"},"timeout":120}}"#], timeout: 130)
        #expect(asNobody.first?["result"]?["outcome"] == .string("ok"), "\(asNobody)")
    }
}

/// A pin's name is a hash cordond writes to disk and reads after a restart (or an upgrade):
/// its bytes are a format. Spelled out here, so that a change to what feeds it is a visible
/// format change, not a silent re-resolution of every tool's set.
struct ToolPinFormatTests {
    @Test func aPinsKeyIsFormatTwo() throws {
        var policy = Policy(name: "gate", source: "gate.toml")
        policy.contentHash = "c0ffee"
        let manifest = try ToolManifestParser.parse(text: """
            [tool]
            kind = "command"
            description = "d"
            policy = "gate"
            argv = ["/usr/bin/true"]
            input_schema = { type = "object" }
            requires = ["requests==2.32.3", "idna"]
            """, name: "t", source: "t.toml")
        var h = SHA256()
        h.update(Array("cordon tool requirements 2\n\(FileSystem.realPath("/usr/bin/python3") ?? "/usr/bin/python3")\nc0ffee\nrequires requests==2.32.3\nrequires idna\n".utf8))
        #expect(ToolInstalls.request(manifest, policy) == h.hexDigest())
        // The gateway's key is made of the same inputs: a change to either shows in both.
        #expect(manifest.requirementsKey(under: policy) == #"{"policy":"c0ffee","requires":["requests==2.32.3","idna"],"lock":null,"lockText":null}"#)
    }
}
