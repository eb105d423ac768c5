import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An unprivileged local user against cordond's tool methods (each test failed before its fix):
/// a name that could crash the daemon, a listing that held a request worker, names that became
/// metric series, refusals that grew the store without bound.
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct ToolAttackTests {
    static let venv = ToolMethodsTests.venv
    static let getTime = JSON.object([("timezone", .string("UTC"))])

    /// A user allowed to call an MCP tool (nobody may call time.*) asks for "time." — a trailing
    /// dot — and is refused; cordond lives on. (Before the fix the name indexed past its parts
    /// and cordond — root, every user's tasks and tools — died. Any MCP client, an agent steered
    /// by a prompt injection say, may name any tool through `cordon mcp serve`.)
    @Test func aToolNameWithATrailingDotDoesNotKillCordond() throws {
        let d = try ToolMethodsTests.daemon()
        // Listed once, as a daemon that has served anything has.
        #expect(try d.call("tool.call", .object([("name", .string("time.get_current_time")), ("arguments", Self.getTime)]))["outcome"] == .string("ok"))
        let answers = d.asUser(65534, [ToolMethodsTests.request(1, "tool.call", .object([("name", .string("time.")), ("arguments", .object([]))]))], timeout: 10)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(d.process?.isRunning == true, "cordond died: \(answers)\n\(d.log().suffix(2000))")
        #expect(answers.first?["result"]?["outcome"] == .string("refused"), "\(answers)")
    }

    /// What a call's sandbox was refused is on its row, in `tool.call`'s answer and in
    /// `cordon audit --calls --denials` (which lists only such calls).
    @Test func aCallsDenialsAreRecordedAndListed() throws {
        let d = try ToolMethodsTests.daemon()
        let code = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); print(libc.syscall(272 if os.uname().machine == 'x86_64' else 97, 0x10000000))"
        let answer = try d.call("tool.call", .object([("name", .string("python")), ("arguments", .object([("code", .string(code))]))]))
        #expect(answer["outcome"] == .string("ok"), "\(answer)")
        #expect(answer["denials"]?.arrayValue?.first?["text"] == .string("syscall unshare (seccomp.profile)"), "\(answer)")
        _ = try d.call("tool.call", .object([("name", .string("python")), ("arguments", .object([("code", .string("print(1)"))]))]))
        #expect(ToolMethodsTests.rows(d, "SELECT denials FROM tool_calls ORDER BY id") == [[#"[{"kind":"syscall","what":"unshare"}]"#], ["[]"]])
        let cli = TestDaemon.exec(TestDaemon.cordon, ["audit", "--socket", d.socket, "--calls", "--denials"])
        let lines = cli.stdout.split(separator: "\n")
        #expect(cli.status == 0 && lines.count == 2 && lines[1].contains("syscall unshare"), "\(cli)")
    }

    /// tool.call holds no request worker while a server starts and lists its tools: 2 workers,
    /// a server that takes 6 s to start, two calls by nobody, and root's system.version is
    /// answered at once. (Before the fix the first call's listing blocked a worker each, and a
    /// user with as many connections as cordond has workers stalled every user's requests.)
    @Test func aToolCallDoesNotHoldARequestWorkerWhileTheServerStarts() throws {
        try #require(FileManager.default.fileExists(atPath: "\(Self.venv)/bin/python3"), "no \(Self.venv): run make pydeps")
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n[server]\nworkers = 2\n", policies: [
            "time-tool": ToolMethodsTests.timeToolPolicy,
        ], files: [
            "tools/slow.toml": """
                [tool]
                kind = "mcp"
                description = "Takes a while to start"
                command = ["\(Self.venv)/bin/python3", "-c", "import runpy, sys, time; time.sleep(6); sys.argv = ['mcp_server_time', '--local-timezone', 'UTC']; runpy.run_module('mcp_server_time', run_name='__main__')"]
                policy = "time-tool"
                """,
        ])
        chmod(d.dir, 0o755)
        let call = ToolMethodsTests.request(1, "tool.call", .object([("name", .string("slow.get_current_time")), ("arguments", Self.getTime)]))
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread.detachNewThread { _ = d.asUser(65534, [call], timeout: 30); group.leave() }
        }
        Thread.sleep(forTimeInterval: 1.5)
        let start = Date()
        _ = try d.call("system.version")
        let waited = Date().timeIntervalSince(start)
        _ = group.wait(timeout: .now() + 40)
        #expect(waited < 1.5, "root's system.version waited \(waited) s for nobody's tool calls to free a worker")
    }

    /// Any local user — here uid 4242, who may call no tool at all — names tools that do not
    /// exist; no name becomes a metric series of its own (each would be kept for the daemon's
    /// life, memory and a scrape growing with every new name).
    @Test func namesOfNoToolDoNotBecomeMetricSeries() throws {
        let d = try ToolMethodsTests.daemon()
        let requests = (0..<50).map { i in ToolMethodsTests.request(i, "tool.call", .object([("name", .string("junk-\(i)-" + String(repeating: "x", count: 200))), ("arguments", .object([]))])) }
        let answers = d.asUser(4242, requests)
        #expect(answers.count == 50 && answers.allSatisfy { $0["result"]?["outcome"] == .string("refused") }, "\(answers.prefix(2))")
        let metrics = try d.call("system.metrics")["text"]?.stringValue ?? ""
        let series = metrics.split(separator: "\n").filter { $0.contains("tool=\"junk-") }.count
        #expect(series == 0, "\(series) metric lines for names that are no tool, chosen by uid 4242")
    }

    /// SECURITY.md bounds what a user can put in the audit store: at most 20 refusals per uid and
    /// minute reach it. 300 tool calls refused to uid 4242 (who may call no tool) leave at most
    /// 20 rows. (Before the fix each was a row, and tool_calls was in no quota or retention.)
    @Test func refusedToolCallsOfAnOutsiderAreBoundedInTheStore() throws {
        let d = try ToolMethodsTests.daemon()
        let requests = (0..<300).map { i in ToolMethodsTests.request(i, "tool.call", .object([("name", .string("time.get_current_time")), ("arguments", .object([]))])) }
        let answers = d.asUser(4242, requests)
        #expect(answers.count == 300 && answers.allSatisfy { $0["result"]?["outcome"] == .string("refused") }, "\(answers.prefix(2))")
        let rows = ToolMethodsTests.rows(d, "SELECT count(*) FROM tool_calls WHERE uid = 4242")
        #expect((Int(rows.first?.first ?? "0") ?? 0) <= 20, "uid 4242's refused calls in the store: \(rows)")
    }
}

/// A shared tool's instance serves every user at once: what it is refused during a call goes to
/// cordond's `tool-denied` event (an admin's to read), never onto the calling user's row.
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct SharedInstanceDenialTests {
    @Test func aSharedInstancesRefusalsAreAnEventNotARow() throws {
        let dir = "\(ToolMethodsTests.repo)/Tests/CordonToolGatewayTests"
        let d = try TestDaemon(config: "", policies: [
            "hostile-tool": """
                [policy]
                name = "hostile-tool"
                extends = ["python-tool"]
                [filesystem]
                read_only = ["\(dir)"]
                [network]
                mode = "allowlist"
                allow = ["allowed.example:443"]
                [limits]
                wall_time = "1h"
                """,
        ], files: [
            "tools/shared.toml": """
                [tool]
                kind = "mcp"
                description = "A shared server that tries to escape"
                command = ["/usr/bin/python3", "-I", "\(dir)/hostile_server.py"]
                policy = "hostile-tool"
                shared = true
                """,
        ])
        let answer = try d.call("tool.call", .object([("name", .string("shared.escape")), ("arguments", .object([("secret", .string("/etc/shadow"))]))]))
        #expect(answer["outcome"] == .string("ok") && answer["denials"] == .array([]), "\(answer)")
        #expect(ToolMethodsTests.rows(d, "SELECT denials FROM tool_calls") == [["[]"]])
        let events = try d.call("audit.query", .object([("kinds", .array([.string("tool-denied")]))]))["events"]?.arrayValue ?? []
        #expect(events.count == 1 && events.first?["detail"]?.text.contains("open_by_handle_at") == true, "\(events)")
        #expect(events.first?["detail"]?.text.contains("exfil.example") == true, "\(events)")
    }
}
