import CordonJSON
import CordonPolicy
import CordonTools
import Foundation
import Testing

/// Each broken manifest states on its first line the diagnostic it must produce
/// (`# expect line=N key=K message=M`; line `-` for none), as the policy corpus does.
struct BrokenManifestCorpusTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/broken").path
    static let files: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()

    @Test func corpusIsLarge() { #expect(Self.files.count >= 30) }

    @Test(arguments: files)
    func producesTheExpectedError(_ file: String) throws {
        let text = try String(contentsOfFile: "\(Self.directory)/\(file)", encoding: .utf8)
        let header = try #require(text.split(separator: "\n").first.map(String.init))
        let lineStart = try #require(header.range(of: "line=")).upperBound
        let keyStart = try #require(header.range(of: " key=")), messageStart = try #require(header.range(of: " message="))
        let line = Int(header[lineStart..<keyStart.lowerBound])
        let key = String(header[keyStart.upperBound..<messageStart.lowerBound])
        let message = String(header[messageStart.upperBound...])
        let name = String(file.dropLast(5))
        do {
            _ = try ToolManifestParser.parse(text: text, name: name, source: file)
            Issue.record("\(file) parsed without error")
        } catch {
            let match = error.diagnostics.contains { d in
                d.keyPath == key && d.message.contains(message) && (line == nil || d.line == line) && d.file == file
            }
            #expect(match, "\(file): expected line=\(line.map(String.init) ?? "-") key=\(key) message~\(message); got \(error.diagnostics)")
        }
    }
}

struct ToolManifestTests {
    static let time = """
        [tool]
        kind = "mcp"
        description = "Current time and time-zone conversion"
        command = ["/opt/venvs/mcp/bin/python3", "-m", "mcp_server_time"]
        policy = "python-tool"
        """

    @Test func theSmallestManifestGetsEveryDefault() throws {
        let m = try ToolManifestParser.parse(text: Self.time, name: "time", source: "tools/time.toml")
        #expect(m.name == "time" && m.kind == .mcp && m.policy == "python-tool")
        #expect(m.command == ["/opt/venvs/mcp/bin/python3", "-m", "mcp_server_time"])
        #expect(m.timeoutSeconds == 60 && !m.shared && !m.auditArguments && m.access == nil && m.fallbacks.isEmpty)
        #expect(m.service == ToolManifest.ServiceSettings() && m.breaker == ToolManifest.BreakerSettings())
        #expect(m.service.maxInstances == 4 && m.breaker.failures == 5)
    }

    @Test func everyKeyIsRead() throws {
        let text = """
            [tool]
            kind = "command"
            description = "Counts lines"
            policy = "default"
            argv = ["/usr/bin/wc", "-l", "{path}"]
            input_schema = { type = "object", properties = { path = { type = "string", maxLength = 200 } }, required = ["path"] }
            output = "json"
            timeout = "5s"
            fallbacks = ["time", "git.git_status"]
            shared = true
            audit_arguments = true
            env = { LC_ALL = "C", TZ = "UTC" }

            [access]
            users = ["alice", "1001"]
            groups = ["tools"]

            [breaker]
            failures = 3
            failure_ratio = 0.25
            min_calls = 4
            window = "2m"
            cooldown = "10s"
            max_cooldown = "5m"
            """
        let m = try ToolManifestParser.parse(text: text, name: "wc", source: "wc.toml")
        #expect(m.kind == .command && m.output == .json && m.timeoutSeconds == 5 && m.shared && m.auditArguments)
        #expect(m.argvPlaceholders == ["path"])
        #expect(m.fallbacks == ["time", "git.git_status"])
        #expect(m.environment.map(\.name) == ["LC_ALL", "TZ"] && m.environment.map(\.value) == ["C", "UTC"])
        #expect(m.access?.users == ["alice", "1001"] && m.access?.groups == ["tools"])
        #expect(m.breaker.failures == 3 && m.breaker.failureRatio == 0.25 && m.breaker.minCalls == 4)
        #expect(m.breaker.windowSeconds == 120 && m.breaker.cooldownSeconds == 10 && m.breaker.maxCooldownSeconds == 300)
        let schema = try #require(m.inputSchema)
        #expect(schema["required"] == .array([.string("path")]))
        #expect(schema["properties"]?["path"]?["maxLength"] == .int(200))
    }

    @Test func serviceSettingsAreRead() throws {
        let m = try ToolManifestParser.parse(text: Self.time + """

            [service]
            min_instances = 1
            max_instances = 2
            concurrency = 3
            idle_timeout = "90s"
            health_interval = "5s"
            start_timeout = "8s"
            max_restarts = 7
            restart_window = "3m"
            backoff = "50ms"
            backoff_max = "2s"
            """, name: "time", source: "t.toml")
        let s = m.service
        #expect(s.minInstances == 1 && s.maxInstances == 2 && s.concurrency == 3 && s.maxRestarts == 7)
        #expect(s.idleTimeoutSeconds == 90 && s.healthIntervalSeconds == 5 && s.startTimeoutSeconds == 8)
        #expect(s.restartWindowSeconds == 180 && s.backoffBaseSeconds == 0.05 && s.backoffMaxSeconds == 2)
    }

    /// A schema TOML cannot write (null) comes as a string of JSON, members in order.
    @Test func aSchemaMayBeJSONText() throws {
        let text = """
            [tool]
            kind = "command"
            description = "x"
            policy = "default"
            argv = ["/bin/cat"]
            input_schema = '{"type": "object", "properties": {"v": {"type": ["string", "null"]}}, "additionalProperties": false}'
            """
        let m = try ToolManifestParser.parse(text: text, name: "cat", source: "cat.toml")
        #expect(m.inputSchema?["additionalProperties"] == .bool(false))
        #expect(m.inputSchema?["properties"]?["v"]?["type"] == .array([.string("string"), .string("null")]))
    }

    /// `requires`: requirement lines as `cordon install` takes them, kept as written; the tool
    /// then has requirements, bound at /cordon/site.
    @Test func requirementsAreReadAsWritten() throws {
        let text = """
            [tool]
            kind = "command"
            description = "Fetches"
            argv = ["/usr/bin/python3", "-c", "import requests"]
            input_schema = { type = "object" }
            policy = "python-tool"
            requires = ["requests>=2.32", "idna==3.10 --hash=sha256:\(String(repeating: "a", count: 64))"]
            """
        let m = try ToolManifestParser.parse(text: text, name: "web", source: "tools/web.toml")
        #expect(m.requires == ["requests>=2.32", "idna==3.10 --hash=sha256:\(String(repeating: "a", count: 64))"])
        #expect(m.hasRequirements && m.lock == nil && ToolManifest.sitePath == "/cordon/site")
        let plain = try ToolManifestParser.parse(text: text.replacingOccurrences(of: "requires", with: "# requires"), name: "web", source: "tools/web.toml")
        #expect(!plain.hasRequirements && plain != m)
    }

    /// Every problem is reported at once, not the first only.
    @Test func everyProblemIsReported() {
        let text = """
            [tool]
            kind = "mcp"
            command = ["python3"]
            timeout = "soon"
            shared = 1
            """
        do {
            _ = try ToolManifestParser.parse(text: text, name: "t", source: "t.toml")
            Issue.record("parsed")
        } catch {
            let keys = Set(error.diagnostics.map(\.keyPath))
            #expect(keys == ["tool.description", "tool.policy", "tool.command[0]", "tool.timeout", "tool.shared"], "\(error.diagnostics)")
        }
    }

    @Test(arguments: ["", "a.b", "has space", String(repeating: "x", count: 65), "ünï"])
    func aFileStemThatCannotNameAToolIsRefused(_ stem: String) {
        #expect(ToolManifestParser.nameProblem(stem) != nil)
        #expect(throws: PolicyError.self) { try ToolManifestParser.parse(text: Self.time, name: stem, source: "x.toml") }
    }

    @Test(arguments: ["time", "git", "my-tool_2", String(repeating: "x", count: 64)])
    func aToolNameIsLettersDigitsDashAndUnderscore(_ stem: String) {
        #expect(ToolManifestParser.nameProblem(stem) == nil)
    }

    @Test func tomlBecomesJSONInOrder() throws {
        let table = try TOML.parse("b = 1\na = [true, 2.5, \"s\"]\n[c]\nd = 1979-05-27T07:32:00Z\n")
        #expect(ToolManifestParser.json(table) == .object([
            ("b", .int(1)), ("a", .array([.bool(true), .double(2.5), .string("s")])), ("c", .object([("d", .string("1979-05-27T07:32:00Z"))])),
        ]))
    }
}
