import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// tool.list, tool.call and tool.stats through a real cordond whose config directory holds two
/// manifests: a command tool that runs Python code and the real mcp-server-time. Each call is a
/// row of the audit store; a second user gets instances of their own; a user the manifest's
/// [access] leaves out is refused, and that is recorded too.
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct ToolMethodsTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let venv = "\(repo)/.build/pydeps/mcp"

    /// The time server's policy: python-tool, the venv and the zone files read-only, nobody and
    /// uid 1001 allowed.
    static let timeToolPolicy = """
        [policy]
        name = "time-tool"
        extends = ["python-tool"]
        [filesystem]
        read_only = ["\(venv)", { path = "/usr/share/zoneinfo", optional = true }]
        [limits]
        wall_time = "1h"
        [access]
        users = ["nobody", "1001"]
        """

    static func daemon() throws -> TestDaemon {
        try #require(FileManager.default.fileExists(atPath: "\(venv)/bin/python3"), "no \(venv): run make pydeps")
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n", policies: [
            "time-tool": timeToolPolicy,
            "code": """
                [policy]
                name = "code"
                extends = ["python-tool"]
                [access]
                users = ["nobody"]
                """,
        ], files: [
            "tools/python.toml": """
                [tool]
                kind = "command"
                description = "Runs Python code"
                policy = "code"
                argv = ["/usr/bin/python3", "-I", "-c", "import json, sys; exec(json.load(sys.stdin)['code'])"]
                input_schema = '{"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}'
                """,
            "tools/time.toml": """
                [tool]
                kind = "mcp"
                description = "Current time"
                command = ["\(venv)/bin/python3", "-m", "mcp_server_time", "--local-timezone", "Etc/UTC"]
                policy = "time-tool"
                """,
        ])
        chmod(d.dir, 0o755)  // the socket's directory, for the other users
        return d
    }

    /// The audit store's rows, read (read-only) by Python's sqlite3 while cordond runs.
    static func rows(_ d: TestDaemon, _ sql: String) -> [[String]] {
        let script = "import sqlite3, sys, json; c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); print(json.dumps([[str(v) for v in r] for r in c.execute(sys.argv[2])]))"
        let r = TestDaemon.exec("/usr/bin/python3", ["-c", script, "\(d.stateDir)/audit.db", sql])
        return (try? JSON.parse(r.stdout))?.arrayValue?.map { $0.stringArrayValue ?? [] } ?? []
    }

    static func request(_ id: Int, _ method: String, _ params: JSON) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("id", .int(Int64(id))), ("method", .string(method)), ("params", params)]).text
    }

    @Test func listCallStatsAndTheRecords() throws {
        let d = try Self.daemon()
        let list = try d.call("tool.list")
        let names = list["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names == ["python", "time.convert_time", "time.get_current_time"], "\(list)")
        // Each with its policy and that policy's exposure score (cordon policy score's).
        let python = list["tools"]?.arrayValue?.first
        #expect(python?["policy"] == .string("code") && (python?["exposure"]?.doubleValue ?? -1) >= 0, "\(list)")
        let time = try d.call("tool.call", .object([("name", .string("time.get_current_time")), ("arguments", .object([("timezone", .string("UTC"))]))]))
        #expect(time["outcome"] == .string("ok"), "\(time)")
        #expect(time["result"]?["content"]?.arrayValue?.first?["text"]?.stringValue?.contains("UTC") == true, "\(time)")
        let code = try d.call("tool.call", .object([("name", .string("python")), ("arguments", .object([("code", .string("print(40 + 2)"))]))]))
        #expect(code["outcome"] == .string("ok") && code["result"]?["content"]?.arrayValue?.first?["text"] == .string("42\n"), "\(code)")
        let bad = try d.call("tool.call", .object([("name", .string("python")), ("arguments", .object([("script", .int(1))]))]))
        #expect(bad["outcome"] == .string("invalid-arguments") && bad["result"] == .null, "\(bad)")
        // The CLI says the same: text to stdout, the exit status from the answer.
        let cli = TestDaemon.exec(TestDaemon.cordon, ["tool", "call", "--socket", d.socket, "python", "--args", #"{"code": "print('hi')"}"#])
        #expect(cli.status == 0 && cli.stdout == "hi\n", "\(cli)")
        // The same command ten times in a row: each a fresh sandbox, each answered the same.
        for i in 0..<10 {
            let again = TestDaemon.exec(TestDaemon.cordon, ["tool", "call", "--socket", d.socket, "python", "--args", #"{"code": "print('hi')"}"#])
            #expect(again.status == 0 && again.stdout == "hi\n", "run \(i): \(again)")
        }
        // Output without a final newline (mcp-server-time's JSON has none) ends on a line of its own.
        let bare = TestDaemon.exec(TestDaemon.cordon, ["tool", "call", "--socket", d.socket, "python", "--args", #"{"code": "print('no newline', end='')"}"#])
        #expect(bare.status == 0 && bare.stdout == "no newline\n", "\(bare)")
        let refused = TestDaemon.exec(TestDaemon.cordon, ["tool", "call", "--socket", d.socket, "python", "--args", "{}"])
        #expect(refused.status == 2 && refused.stderr.contains("invalid-arguments"), "\(refused)")
        let listed = TestDaemon.exec(TestDaemon.cordon, ["tool", "list", "--socket", d.socket])
        #expect(listed.status == 0 && listed.stdout.contains("time.get_current_time") && listed.stdout.hasPrefix("TOOL"), "\(listed)")
        #expect(listed.stdout.split(separator: "\n").contains { $0.hasPrefix("time.get_current_time") && $0.contains("time-tool") }, "\(listed)")
        let stats = try d.call("tool.stats")
        let timeStats = stats["tools"]?.arrayValue?.first { $0["name"] == .string("time.get_current_time") }
        #expect(timeStats?["instances"] == .int(1) && timeStats?["breaker"] == .string("closed"), "\(stats)")
        // And a metric: counts by outcome, a latency histogram, the breaker, the instances.
        let metrics = try d.call("system.metrics")["text"]?.stringValue ?? ""
        for line in ["cordon_tool_calls_total{tool=\"time.get_current_time\",outcome=\"ok\"} 1", "cordon_tool_calls_total{tool=\"python\",outcome=\"invalid-arguments\"} 2",
                     "cordon_tool_call_seconds_count{tool=\"python\"} 15", "cordon_tool_breaker_state{tool=\"time.get_current_time\"} 0",
                     "cordon_tool_instances{tool=\"time\"} 1", "cordon_tool_instance_starts_total{tool=\"time\"} 1"] {
            #expect(metrics.contains(line + "\n"), "\(line) missing from\n\(metrics)")
        }
        // Every call is a row, arguments kept as a size and a hash only.
        let rows = Self.rows(d, "SELECT outcome, length(argument_sha256), uid, tool, policy, length(policy_hash), arguments IS NULL FROM tool_calls ORDER BY id LIMIT 3")
        #expect(rows == [["ok", "64", "0", "time.get_current_time", "time-tool", "64", "1"],
                         ["ok", "64", "0", "python", "code", "64", "1"],
                         ["invalid-arguments", "64", "0", "python", "None", "None", "1"]], "\(rows)")
    }

    @Test func anotherUserGetsInstancesOfTheirOwnAndAnOutsiderIsRefused() throws {
        let d = try Self.daemon()
        let call = Self.request(1, "tool.call", .object([("name", .string("time.get_current_time")), ("arguments", .object([("timezone", .string("UTC"))]))]))
        #expect(try d.call("tool.call", .object([("name", .string("time.get_current_time")), ("arguments", .object([("timezone", .string("UTC"))]))]))["outcome"] == .string("ok"))
        let asNobody = d.asUser(65534, [call])
        #expect(asNobody.first?["result"]?["outcome"] == .string("ok"), "\(asNobody)")
        let stats = try d.call("tool.stats")
        #expect(stats["tools"]?.arrayValue?.first { $0["name"] == .string("time.get_current_time") }?["instances"] == .int(1), "root's own")
        // Two instances in all: root's and nobody's.
        // (Etc/UTC: an argv no other suite's server has, as they run at the same time.)
        let pids = TestDaemon.processes(["\(Self.venv)/bin/python3", "-m", "mcp_server_time", "--local-timezone", "Etc/UTC"])
        #expect(pids.count == 2, "\(pids)")
        // uid 4242 is in no [access]: refused, recorded.
        let outsider = d.asUser(4242, [call, Self.request(2, "tool.list", .object([]))])
        #expect(outsider.first?["result"]?["outcome"] == .string("refused"), "\(outsider)")
        #expect(outsider.last?["result"]?["tools"] == .array([]), "\(outsider)")
        #expect(Self.rows(d, "SELECT outcome FROM tool_calls WHERE uid = 4242") == [["refused"]])
        // audit.query {calls}: a user sees their own calls only; an admin everyone's.
        let mine = d.asUser(4242, [Self.request(3, "audit.query", .object([("calls", .bool(true))]))])
        #expect(mine.first?["result"]?["calls"]?.arrayValue?.map { $0["outcome"] } == [.string("refused")], "\(mine)")
        let all = try d.call("audit.query", .object([("calls", .bool(true))]))
        #expect(Set(all["calls"]?.arrayValue?.compactMap { $0["uid"]?.intValue } ?? []) == [0, 65534, 4242], "\(all)")
        let cli = TestDaemon.exec(TestDaemon.cordon, ["audit", "--calls", "--socket", d.socket])
        #expect(cli.status == 0 && cli.stdout.contains("time.get_current_time") && cli.stdout.contains("refused"), "\(cli)")
    }

    /// The official Python client (mcp 2.3.0) launches `cordon mcp serve` in each revision:
    /// lists the tools, calls time and python, gets a tool error for bad arguments; then, told
    /// (2025-11-25: a notification; 2026-07-28: its `subscriptions/listen` stream) that the list
    /// changed once a manifest is added to cordond's tools/, lists and calls the new tool.
    @Test(arguments: ["legacy", "2026-07-28", "auto"])
    func theOfficialClientUsesTheToolsThroughMCPServe(mode: String) throws {
        let d = try Self.daemon()
        let script = "\(Self.repo)/Tests/CordonDaemonTests/mcp_client.py"
        let r = TestDaemon.exec("\(Self.venv)/bin/python3", [script, mode, TestDaemon.cordon, d.socket, "\(d.configDir)/tools/echo.toml"])
        let seen = try #require(try? JSON.parse(r.stdout), "\(r)")
        #expect(seen["tools"] == .array([.string("python"), .string("time.convert_time"), .string("time.get_current_time")]), "\(r)")
        #expect(seen["time"]?["isError"] == .bool(false) && seen["time"]?["text"]?.stringValue?.contains("UTC") == true, "\(r)")
        #expect(seen["python"]?["isError"] == .bool(false) && seen["python"]?["text"] == .string("42\n"), "\(r)")
        #expect(seen["invalid"]?["isError"] == .bool(true), "\(r)")
        #expect(seen["invalid"]?["text"]?.stringValue?.contains("invalid-arguments") == true, "\(r)")
        #expect(seen["listen"] == .bool(mode != "legacy"), "\(r)")
        #expect(seen["after"] == .array([.string("echo"), .string("python"), .string("time.convert_time"), .string("time.get_current_time")]), "\(r)")
        #expect(seen["echo"]?["isError"] == .bool(false) && seen["echo"]?["text"] == .string(#"{"said":"hi"}"#), "\(r)")
        #expect(Self.rows(d, "SELECT count(*) FROM tool_calls") == [["4"]])
    }

    /// `cordon mcp serve` ends at stdin's end even when the first request it forwarded is
    /// still running in cordond (its main thread only waits for that end); and when cordond
    /// stops reading, a large request's send does not stop stdin being read: a ping is answered
    /// at once and the end of stdin still ends it.
    @Test func mcpServeEndsWithStdinWhateverCordondDoes() throws {
        let d = try Self.daemon()
        let script = "\(Self.repo)/Tests/CordonDaemonTests/mcp_stalls.py"
        let eof = TestDaemon.exec("/usr/bin/python3", [script, TestDaemon.cordon, d.socket, "eof"])
        let a = try #require(try? JSON.parse(eof.stdout), "\(eof)")
        #expect(a["initialized"] == .bool(true), "\(eof)")
        #expect((a["exit"]?.doubleValue ?? 99) < 3, "mcp serve outlived stdin: \(eof)")
        let stall = TestDaemon.exec("/usr/bin/python3", [script, TestDaemon.cordon, "none", "stall"])
        let b = try #require(try? JSON.parse(stall.stdout), "\(stall)")
        #expect((b["ping"]?.doubleValue ?? 99) < 3, "a ping waited on a send to a wedged cordond: \(stall)")
        #expect((b["exit"]?.doubleValue ?? 99) < 3, "mcp serve outlived stdin: \(stall)")
    }

    /// `cordon mcp serve` reads on while a call runs (the thread that read a request forwards
    /// it and hands reading on): quick calls sent during a 3-second one are answered long
    /// before it ends, and ten calls in a row after it all answer.
    @Test(arguments: ["legacy", "2026-07-28"])
    func aSlowCallThroughMCPServeDoesNotHoldTheCallsAfterIt(mode: String) throws {
        let d = try Self.daemon()
        let r = TestDaemon.exec("\(Self.venv)/bin/python3", ["\(Self.repo)/Tests/CordonDaemonTests/mcp_concurrent.py", TestDaemon.cordon, d.socket, mode])
        let seen = try #require(try? JSON.parse(r.stdout), "\(r)")
        let slow = try #require(seen["slow"], "\(r)")
        #expect(slow["isError"] == .bool(false) && slow["text"] == .string("slept\n"), "\(r)")
        let slowEnded = try #require(slow["ended"]?.doubleValue, "\(r)")
        #expect(slowEnded >= 3, "\(r)")
        let quick = try #require(seen["quick"]?.arrayValue, "\(r)")
        #expect(quick.count == 3, "\(r)")
        for q in quick {
            #expect(q["isError"] == .bool(false), "\(r)")
            #expect((q["ended"]?.doubleValue ?? 99) < slowEnded - 1, "a quick call waited for the slow one: \(r)")
        }
        #expect(seen["row"] == .array(Array(repeating: .bool(true), count: 10)), "\(r)")
    }
}

/// The fault cases through a real cordond, each leaving its row in the audit store: a server
/// killed mid-call (that call unavailable, the next one ok on a new instance), one that hangs
/// (timeout; the next one ok on a new instance), garbage in its stream (survived), one over its
/// memory limit (ended by the sandbox, replaced), and one that dies at start (its fallback
/// answers: fallback:python, both attempts on the row).
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct ToolFaultRecordTests {
    @Test func eachFaultLeavesItsRowInTheAuditStore() throws {
        let venv = ToolMethodsTests.venv, repo = ToolMethodsTests.repo
        try #require(FileManager.default.fileExists(atPath: "\(venv)/bin/python3"), "no \(venv): run make pydeps")
        let d = try TestDaemon(config: "", policies: [
            "faulty-tool": """
                [policy]
                name = "faulty-tool"
                extends = ["python-tool"]
                [filesystem]
                read_only = ["\(venv)", "\(repo)/Tests/CordonToolGatewayTests"]
                [limits]
                memory = "256M"
                wall_time = "1h"
                """,
        ], files: [
            "tools/faulty.toml": """
                [tool]
                kind = "mcp"
                description = "Misbehaves"
                command = ["\(venv)/bin/python3", "\(repo)/Tests/CordonToolGatewayTests/faulty_server.py"]
                policy = "faulty-tool"
                timeout = "8s"
                [service]
                backoff = "10ms"
                backoff_max = "50ms"
                max_restarts = 20
                """,
            "tools/broken.toml": """
                [tool]
                kind = "mcp"
                description = "Dies at start"
                command = ["/usr/bin/python3", "-c", "import sys; sys.exit('no model file')"]
                policy = "python-tool"
                fallbacks = ["python"]
                [service]
                backoff = "10ms"
                backoff_max = "20ms"
                """,
            "tools/python.toml": """
                [tool]
                kind = "command"
                description = "Runs Python code"
                policy = "python-tool"
                argv = ["/usr/bin/python3", "-I", "-c", "import json, sys; exec(json.load(sys.stdin)['code'])"]
                input_schema = '{"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}'
                """,
        ])
        func call(_ name: String, _ arguments: JSON) throws -> JSON {
            try d.call("tool.call", .object([("name", .string(name)), ("arguments", arguments)]))
        }
        let ok = JSON.object([("text", .string("hi"))])
        var expected: [[String]] = []
        for (name, arguments, outcomes) in [("faulty.ok", ok, ["ok"]), ("faulty.die", JSON.object([]), ["unavailable"]), ("faulty.ok", ok, ["ok"]),
                                            ("faulty.hang", JSON.object([]), ["timeout"]), ("faulty.ok", ok, ["ok"]),
                                            ("faulty.garbage", JSON.object([]), ["ok"]), ("faulty.hog", JSON.object([]), ["unavailable", "timeout"]),
                                            ("faulty.ok", ok, ["ok"])] {
            let answer = try call(name, arguments)
            let outcome = answer["outcome"]?.stringValue ?? "?"
            #expect(outcomes.contains(outcome), "\(name): \(answer)")
            expected.append([name, outcome])
        }
        let rows = ToolMethodsTests.rows(d, "SELECT tool, outcome FROM tool_calls ORDER BY id")
        #expect(rows == expected, "\(rows)")
        // Each failure replaced the instance: the ok calls after them ran on new ones.
        let instances = ToolMethodsTests.rows(d, "SELECT instance FROM tool_calls WHERE tool = 'faulty.ok' ORDER BY id").map { $0.first ?? "" }
        #expect(Set(instances).count == 4, "\(instances)")
        let fallback = try call("broken.anything", .object([("code", .string("print('from the fallback')"))]))
        #expect(fallback["outcome"] == .string("fallback:python"), "\(fallback)")
        let attempts = ToolMethodsTests.rows(d, "SELECT outcome, attempts FROM tool_calls WHERE tool = 'broken.anything'")
        #expect(attempts.first?.first == "fallback:python" && attempts.first?.last?.contains("no model file") == true, "\(attempts)")
    }
}
