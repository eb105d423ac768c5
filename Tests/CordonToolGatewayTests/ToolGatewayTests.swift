import CordonConfig
import CordonJSON
import CordonMCP
import CordonPolicy
import CordonSandbox
import CordonSystem
import CordonToolGateway
import CordonTools
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The gateway with real sandboxes: a command tool that runs Python code (`python`), the real
/// `mcp-server-time` exposed as `time.*`, arguments refused before anything starts, a caller
/// refused, a server that dies at start answered for by its fallback until its breaker opens.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ToolGatewayTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let venv = "\(repo)/.build/pydeps/mcp"
    static let dir: String = {
        let d = "/tmp/cordon-gateway-tests-\(getpid())"
        mkdir(d, 0o755)
        chmod(d, 0o755)
        return d
    }()
    static var environment: SandboxEnvironment { SandboxEnvironment(runtimeDir: "\(dir)/run") }
    static let alice = ToolGateway.Caller(uid: 1001, gid: 1001, pid: 1)
    static let mallory = ToolGateway.Caller(uid: 6666, gid: 6666, pid: 2)

    static func manifest(_ name: String, _ text: String) throws -> ToolManifest {
        try ToolManifestParser.parse(text: text, name: name, source: "\(name).toml")
    }

    static let python = """
        [tool]
        kind = "command"
        description = "Runs Python code"
        policy = "python-tool"
        argv = ["/usr/bin/python3", "-I", "-c", "import json, sys; exec(json.load(sys.stdin)['code'])"]
        input_schema = '{"type": "object", "properties": {"code": {"type": "string", "maxLength": 10000}}, "required": ["code"], "additionalProperties": false}'
        timeout = "20s"
        """

    static func timePolicy() throws -> String {
        let path = "\(dir)/time-tool.toml"
        try """
            [policy]
            name = "time-tool"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(venv)", { path = "/usr/share/zoneinfo", optional = true }]
            [limits]
            wall_time = "1h"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// An MCP server that exits at start, restarted quickly and often, answered for by `fallback`.
    static func broken(fallback: String, breaker: String = "") throws -> ToolManifest {
        try manifest("broken", """
            [tool]
            kind = "mcp"
            description = "Dies at start"
            command = ["/usr/bin/python3", "-c", "import sys; sys.exit(1)"]
            policy = "python-tool"
            fallbacks = ["\(fallback)"]
            [service]
            max_restarts = 100
            backoff = "10ms"
            backoff_max = "20ms"
            start_timeout = "5s"
            \(breaker)
            """)
    }

    static func gateway(_ manifests: [ToolManifest]) throws -> ToolGateway {
        try ToolGateway(manifests: manifests, policies: PolicyStore(configDir: nil), environment: environment) { caller, _ in caller.uid != 6666 }
    }

    final class Wait: @unchecked Sendable {
        let c = NSCondition()
        var result: ToolCallResult?
        func set(_ r: ToolCallResult) { c.lock(); result = r; c.broadcast(); c.unlock() }
        func get() -> ToolCallResult? {
            c.lock(); defer { c.unlock() }
            let until = Date().addingTimeInterval(60)
            while result == nil && c.wait(until: until) {}
            return result
        }
    }

    static func call(_ g: ToolGateway, _ name: String, _ args: JSON, as caller: ToolGateway.Caller = alice, within seconds: Double = 60) throws -> ToolCallResult {
        let w = Wait()
        g.call(name, arguments: args, caller: caller, deadline: MonotonicClock.now + seconds) { w.set($0) }
        return try #require(w.get())
    }

    static func text(_ r: ToolCallResult) -> String {
        guard case .complete(let result)? = r.outcome else { return "" }
        return result.content.compactMap { if case .text(let t, _) = $0 { return t }; return nil }.joined()
    }

    @Test func thePythonToolRunsCodeInASandbox() throws {
        let g = try Self.gateway([try Self.manifest("python", Self.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let r = try Self.call(g, "python", .object([("code", .string("import os; print(6 * 7, os.getuid(), os.path.exists('/home'))"))]))
        #expect(r.record.outcome == .ok, "\(r.record)")
        #expect(Self.text(r) == "42 1000 False\n")
        #expect(r.record.policy == "python-tool" && r.record.policyHash?.count == 64)
        #expect(r.record.argumentBytes > 0 && r.record.argumentSHA256.count == 64 && r.record.arguments == nil)
        let failing = try Self.call(g, "python", .object([("code", .string("raise SystemExit(3)"))]))
        #expect(failing.record.outcome == .toolError && failing.record.isError)
        // A failure says why: the end of the command's stderr is in the result.
        let raising = try Self.call(g, "python", .object([("code", .string("print('before'); raise ValueError('boom')"))]))
        #expect(raising.record.outcome == .toolError, "\(raising.record)")
        #expect(Self.text(raising).hasPrefix("before\n") && Self.text(raising).contains("ValueError: boom"), "\(Self.text(raising))")
    }

    /// A command tool's call never runs past its policy's wall clock, whatever the manifest's
    /// timeout says.
    @Test func aCommandRunsNoLongerThanItsPolicyAllows() throws {
        let policy = "\(Self.dir)/quick.toml"
        try """
            [policy]
            name = "quick"
            extends = ["python-tool"]
            [limits]
            wall_time = "1s"
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let m = try Self.manifest("slow", Self.python.replacingOccurrences(of: "policy = \"python-tool\"", with: "policy = \"\(policy)\""))
        let g = try Self.gateway([m])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let r = try Self.call(g, "slow", .object([("code", .string("import time; time.sleep(5); print('late')"))]))
        #expect(r.record.outcome == .timeout && r.record.latencySeconds < 4, "\(r.record)")
    }

    @Test func badArgumentsAreRefusedBeforeAnySandbox() throws {
        let g = try Self.gateway([try Self.manifest("python", Self.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let r = try Self.call(g, "python", .object([("script", .string("print(1)"))]))
        #expect(r.record.outcome == .invalidArguments)
        #expect(r.record.message?.contains("code") == true, "\(r.record.message ?? "")")
        #expect(r.outcome == nil && r.record.instance == nil)
        let notObject = try Self.call(g, "python", .array([]))
        #expect(notObject.record.outcome == .invalidArguments)
    }

    @Test func aCallerWithoutAccessIsRefused() throws {
        let g = try Self.gateway([try Self.manifest("python", Self.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let r = try Self.call(g, "python", .object([("code", .string("print(1)"))]), as: Self.mallory)
        #expect(r.record.outcome == .refused && r.outcome == nil)
        #expect(g.list(for: Self.mallory, deadline: MonotonicClock.now + 10).isEmpty)
        let unknown = try Self.call(g, "nosuch", .object([]))
        #expect(unknown.record.outcome == .refused)
    }

    @Test func theTimeServersToolsAreListedAndCalled() throws {
        try #require(FileManager.default.fileExists(atPath: "\(Self.venv)/bin/python3"), "no \(Self.venv): run make pydeps")
        let time = try Self.manifest("time", """
            [tool]
            kind = "mcp"
            description = "Current time"
            command = ["\(Self.venv)/bin/python3", "-m", "mcp_server_time", "--local-timezone", "UTC"]
            policy = "\(try Self.timePolicy())"
            """)
        let g = try Self.gateway([time, try Self.manifest("python", Self.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let names = g.list(for: Self.alice, deadline: MonotonicClock.now + 30).map(\.name)
        #expect(names == ["python", "time.convert_time", "time.get_current_time"], "\(names)")
        let r = try Self.call(g, "time.get_current_time", .object([("timezone", .string("UTC"))]))
        #expect(r.record.outcome == .ok, "\(r.record)")
        #expect(Self.text(r).contains("UTC"))
        #expect(r.record.instance != nil)
        // Validated against the server's own schema: timezone is required.
        let bad = try Self.call(g, "time.get_current_time", .object([]))
        #expect(bad.record.outcome == .invalidArguments, "\(bad.record)")
    }

    /// `update`: a tool added is listed, an unchanged one keeps its instance, a changed one
    /// gets a new instance, a removed one is refused; every change is counted once.
    @Test func manifestsReadAgainTakeEffectAndKeepWhatDidNotChange() throws {
        try #require(FileManager.default.fileExists(atPath: "\(Self.venv)/bin/python3"), "no \(Self.venv): run make pydeps")
        func time(_ description: String) throws -> ToolManifest {
            try Self.manifest("time", """
                [tool]
                kind = "mcp"
                description = "\(description)"
                command = ["\(Self.venv)/bin/python3", "-m", "mcp_server_time", "--local-timezone", "UTC"]
                policy = "\(try Self.timePolicy())"
                """)
        }
        let g = try Self.gateway([try time("Current time")])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let utc = JSON.object([("timezone", .string("UTC"))])
        let first = try Self.call(g, "time.get_current_time", utc)
        #expect(first.record.outcome == .ok, "\(first.record)")
        let generation = g.changes.generation

        #expect(g.update([try time("Current time")]) == [])
        #expect(g.changes.generation == generation)
        #expect(g.update([try time("Current time"), try Self.manifest("python", Self.python)]) == ["python"])
        #expect(g.changes.generation == generation + 1)
        #expect(g.list(for: Self.alice, deadline: MonotonicClock.now + 30).map(\.name).contains("python"))
        let kept = try Self.call(g, "time.get_current_time", utc)
        #expect(kept.record.instance == first.record.instance, "an unchanged tool lost its instance")

        #expect(g.update([try time("What time it is"), try Self.manifest("python", Self.python)]) == ["time"])
        let renewed = try Self.call(g, "time.get_current_time", utc)
        #expect(renewed.record.outcome == .ok && renewed.record.instance != first.record.instance, "\(renewed.record)")

        #expect(g.update([try Self.manifest("python", Self.python)]) == ["time"])
        let gone = try Self.call(g, "time.get_current_time", utc)
        #expect(gone.record.outcome == .refused, "\(gone.record)")
        #expect(g.changes.generation == generation + 3)
    }

    @Test func aServerThatDiesIsAnsweredForByItsFallbackUntilItsBreakerOpens() throws {
        let broken = try Self.broken(fallback: "python", breaker: "[breaker]\nfailures = 2\ncooldown = \"1m\"")
        let g = try Self.gateway([broken, try Self.manifest("python", Self.python)])
        defer { g.stop(until: MonotonicClock.now + 10) }
        // A listing of the broken server fails, so its tools are unknown: calls name the tool and
        // are refused as unavailable, then answered by the fallback.
        let args = JSON.object([("code", .string("print('from the fallback')"))])
        var outcomes: [[String]] = []
        for _ in 0..<3 {
            let r = try Self.call(g, "broken.anything", args)
            outcomes.append(r.record.attempts.map { "\($0.tool) \($0.outcome)" })
            #expect(r.record.outcome == .fallback("python"), "\(r.record.attempts)")
            #expect(Self.text(r) == "from the fallback\n")
        }
        #expect(outcomes[0] == ["broken.anything unavailable", "python ok"], "\(outcomes)")
        #expect(outcomes[2] == ["broken.anything breaker-open", "python ok"], "\(outcomes)")
    }
}

/// Faults of a real MCP server (the official SDK's MCPServer) through the gateway: a call that
/// hangs times out and its instance is replaced; one that kills the server fails cleanly and
/// the next call gets a new instance; garbage in the stream is survived; a server over its
/// memory limit is killed by the sandbox and replaced. Each leaves its outcome on the record.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ToolGatewayFaultTests {
    static func gateway() throws -> ToolGateway {
        try #require(FileManager.default.fileExists(atPath: "\(ToolGatewayTests.venv)/bin/python3"), "no \(ToolGatewayTests.venv): run make pydeps")
        let policy = "\(ToolGatewayTests.dir)/faulty-tool.toml"
        try """
            [policy]
            name = "faulty-tool"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(ToolGatewayTests.venv)", "\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests"]
            [limits]
            memory = "256M"
            wall_time = "1h"
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let faulty = try ToolGatewayTests.manifest("faulty", """
            [tool]
            kind = "mcp"
            description = "Misbehaves"
            command = ["\(ToolGatewayTests.venv)/bin/python3", "\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests/faulty_server.py"]
            policy = "\(policy)"
            timeout = "8s"
            [service]
            backoff = "10ms"
            backoff_max = "50ms"
            max_restarts = 20
            """)
        return try ToolGatewayTests.gateway([faulty])
    }

    static let ok = JSON.object([("text", .string("hi"))])

    @Test func aHangTimesOutAndTheInstanceIsReplaced() throws {
        let g = try Self.gateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let first = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        #expect(first.record.outcome == .ok, "\(first.record)")
        let hung = try ToolGatewayTests.call(g, "faulty.hang", .object([]))
        // 8 s: the call's timeout covers starting a replacement too, which a loaded machine
        // can take seconds over (Python imports the SDK).
        #expect(hung.record.outcome == .timeout && hung.record.latencySeconds < 12, "\(hung.record)")
        let next = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        #expect(next.record.outcome == .ok && next.record.instance != first.record.instance, "\(next.record)")
    }

    /// A caller's own short deadline ends its call, not the instance: only the manifest's
    /// timeout says a server hung (a caller must not churn instances, a shared tool's least).
    @Test func aCallersShortDeadlineDoesNotReplaceTheInstance() throws {
        let g = try Self.gateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let first = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        let short = try ToolGatewayTests.call(g, "faulty.hang", .object([]), within: 0.5)
        #expect(short.record.outcome == .timeout, "\(short.record)")
        let next = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        #expect(next.record.outcome == .ok && next.record.instance == first.record.instance, "\(next.record)")
        #expect(g.stats("faulty.ok", for: ToolGatewayTests.alice).pool?.failures == 0)
    }

    @Test func aServerThatDiesMidCallFailsThatCallOnly() throws {
        let g = try Self.gateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let first = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        let died = try ToolGatewayTests.call(g, "faulty.die", .object([]))
        #expect(died.record.outcome == .unavailable, "\(died.record)")
        let next = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        #expect(next.record.outcome == .ok && next.record.instance != first.record.instance, "\(next.record)")
        #expect(ToolGatewayTests.text(next) == "ok: hi")
    }

    @Test func garbageInTheStreamIsSurvived() throws {
        let g = try Self.gateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let r = try ToolGatewayTests.call(g, "faulty.garbage", .object([]))
        #expect(r.record.outcome == .ok && ToolGatewayTests.text(r) == "after garbage", "\(r.record)")
        #expect(try ToolGatewayTests.call(g, "faulty.ok", Self.ok).record.outcome == .ok)
    }

    @Test func aServerOverItsMemoryLimitIsKilledAndReplaced() throws {
        let g = try Self.gateway()
        defer { g.stop(until: MonotonicClock.now + 10) }
        let first = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        let hog = try ToolGatewayTests.call(g, "faulty.hog", .object([]))
        #expect(hog.record.outcome == .unavailable || hog.record.outcome == .timeout, "\(hog.record)")
        let next = try ToolGatewayTests.call(g, "faulty.ok", Self.ok)
        #expect(next.record.outcome == .ok && next.record.instance != first.record.instance, "\(next.record)")
    }
}

/// The whole cycle: a server that dies at start is answered for by its fallback; its breaker
/// opens; once the server is fixed, the one half-open probe closes the breaker and the server
/// answers again.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ToolGatewayRecoveryTests {
    @Test func theHalfOpenProbeClosesTheBreakerOnceTheServerIsFixed() throws {
        try #require(FileManager.default.fileExists(atPath: "\(ToolGatewayTests.venv)/bin/python3"), "no \(ToolGatewayTests.venv): run make pydeps")
        let flags = "\(ToolGatewayTests.dir)/flags-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(flags, 0o755)
        defer { unlink("\(flags)/fixed"); rmdir(flags) }
        let policy = "\(ToolGatewayTests.dir)/recovering-tool.toml"
        try """
            [policy]
            name = "recovering-tool"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(ToolGatewayTests.venv)", "\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests", "\(flags)"]
            [limits]
            wall_time = "1h"
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let server = "\(ToolGatewayTests.repo)/Tests/CordonToolGatewayTests/faulty_server.py"
        let flaky = try ToolGatewayTests.manifest("flaky", """
            [tool]
            kind = "mcp"
            description = "Broken until fixed"
            command = ["\(ToolGatewayTests.venv)/bin/python3", "-c", "import os, runpy, sys; os.path.exists('\(flags)/fixed') or sys.exit('not fixed yet'); runpy.run_path('\(server)', run_name='__main__')"]
            policy = "\(policy)"
            fallbacks = ["backup"]
            [service]
            backoff = "10ms"
            backoff_max = "20ms"
            max_restarts = 100
            [breaker]
            failures = 2
            cooldown = "500ms"
            """)
        let backup = try ToolGatewayTests.manifest("backup", """
            [tool]
            kind = "command"
            description = "Answers for flaky"
            policy = "python-tool"
            argv = ["/usr/bin/python3", "-I", "-c", "print('fallback')"]
            input_schema = { type = "object", properties = { text = { type = "string" } } }
            """)
        let g = try ToolGatewayTests.gateway([flaky, backup])
        defer { g.stop(until: MonotonicClock.now + 10) }
        let args = JSON.object([("text", .string("x"))])
        var attempts: [[String]] = []
        for _ in 0..<3 {
            let r = try ToolGatewayTests.call(g, "flaky.ok", args)
            attempts.append(r.record.attempts.map { "\($0.tool) \($0.outcome)" })
            #expect(r.record.outcome == .fallback("backup") && ToolGatewayTests.text(r) == "fallback\n", "\(r.record)")
        }
        #expect(attempts.first == ["flaky.ok unavailable", "backup ok"] && attempts.last == ["flaky.ok breaker-open", "backup ok"], "\(attempts)")
        #expect(g.stats("flaky.ok", for: ToolGatewayTests.alice).breaker == 1)
        // Fixed; the cooldown passes; the probe goes to the server, and closes the breaker.
        #expect(FileManager.default.createFile(atPath: "\(flags)/fixed", contents: Data()))
        Thread.sleep(forTimeInterval: 0.6)
        let probe = try ToolGatewayTests.call(g, "flaky.ok", args)
        #expect(probe.record.outcome == .ok && ToolGatewayTests.text(probe) == "ok: x", "\(probe.record)")
        #expect(g.stats("flaky.ok", for: ToolGatewayTests.alice).breaker == 0)
    }
}

/// Command-tool calls in flight are capped per caller and in all: past a caller's share its
/// next call is unavailable at once, while another caller's still runs.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct CommandCallCapTests {
    @Test func aCallerPastItsShareIsRefusedAndAnotherIsNot() throws {
        let g = try ToolGateway(manifests: [try ToolGatewayTests.manifest("python", ToolGatewayTests.python)], policies: PolicyStore(configDir: nil),
                                environment: ToolGatewayTests.environment, commandCalls: (1, 8)) { _, _ in true }
        defer { g.stop(until: MonotonicClock.now + 10) }
        let slow = ToolGatewayTests.Wait()
        g.call("python", arguments: .object([("code", .string("import time; time.sleep(2)"))]), caller: ToolGatewayTests.alice,
               deadline: MonotonicClock.now + 20) { slow.set($0) }
        Thread.sleep(forTimeInterval: 0.3)
        let second = try ToolGatewayTests.call(g, "python", .object([("code", .string("print(1)"))]))
        #expect(second.record.outcome == .unavailable && second.record.message?.contains("too many command-tool calls") == true, "\(second.record)")
        let bob = try ToolGatewayTests.call(g, "python", .object([("code", .string("print(2)"))]), as: GatewayAttackTests.bob)
        #expect(bob.record.outcome == .ok && ToolGatewayTests.text(bob) == "2\n", "\(bob.record)")
        #expect(slow.get()?.record.outcome == .ok)
        // Its share back: the next call runs.
        #expect(try ToolGatewayTests.call(g, "python", .object([("code", .string("print(3)"))])).record.outcome == .ok)
    }
}

/// A tool with requirements, through the gateway: calls wait while the install runs (off the
/// caller's thread, up to their deadline), see the tool only once its plan binds the set, fail
/// with the installer's reason when it failed, and a reading of the manifests tries a failed
/// install again. The installer here is a closure the test releases (the real one, cordond's,
/// is ToolRequirementsTests'); the sandboxes are real.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct ToolRequirementsGatewayTests {
    /// What the installer answers, once the test lets it.
    final class Installer: @unchecked Sendable {
        let c = NSCondition()
        var answers: [Result<String, RequirementsProblem>] = []
        var calls = 0
        func answer(_ r: Result<String, RequirementsProblem>) { c.lock(); answers.append(r); c.broadcast(); c.unlock() }
        func install(_ m: ToolManifest, _ p: Policy) -> Result<String, RequirementsProblem> {
            c.lock(); defer { c.unlock() }
            calls += 1
            let until = Date().addingTimeInterval(60)
            while answers.isEmpty && c.wait(until: until) {}
            return answers.isEmpty ? .failure(RequirementsProblem("the test never answered")) : answers.removeFirst()
        }
        var count: Int { c.lock(); defer { c.unlock() }; return calls }
    }

    static let tool = """
        [tool]
        kind = "command"
        description = "Imports its requirement"
        policy = "python-tool"
        argv = ["/usr/bin/python3", "-c", "import needed; print(needed.__file__)"]
        input_schema = { type = "object" }
        requires = ["needed==1.0"]
        """

    /// A site directory with the module `needed`, root's and readable by all, as the store's is.
    static func site() throws -> String {
        let site = "\(ToolGatewayTests.dir)/site-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: "\(site)/needed", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try "".write(toFile: "\(site)/needed/__init__.py", atomically: true, encoding: .utf8)
        chmod("\(site)/needed/__init__.py", 0o644)
        return site
    }

    static func gateway(_ installer: Installer) throws -> ToolGateway {
        try ToolGateway(manifests: [try ToolGatewayTests.manifest("needs", tool)], policies: PolicyStore(configDir: nil), environment: ToolGatewayTests.environment,
                        installRequirements: { m, p, _ in installer.install(m, p) }) { _, _ in true }
    }

    @Test func callsWaitForTheInstallAndRunAgainstTheSet() throws {
        let installer = Installer()
        let g = try Self.gateway(installer)
        let generation = g.changes.generation
        // A call whose deadline passes while the install runs: unavailable, saying so.
        let early = try ToolGatewayTests.call(g, "needs", .object([]), within: 1)
        #expect(early.record.outcome == .unavailable && early.record.message?.contains("still being installed") == true, "\(early.record)")
        #expect(g.requirements(for: ToolGatewayTests.alice).first?.tool == "needs")
        // A call made now waits; the install ends; the call runs with the set at /cordon/site.
        let site = try Self.site()
        defer { try? FileManager.default.removeItem(atPath: site) }
        let waiting = ToolGatewayTests.Wait()
        g.call("needs", arguments: .object([]), caller: ToolGatewayTests.alice, deadline: MonotonicClock.now + 60) { waiting.set($0) }
        usleep(200_000)
        installer.answer(.success(site))
        let answer = try #require(waiting.get())
        #expect(answer.record.outcome == .ok, "\(answer.record)")
        #expect(ToolGatewayTests.text(answer) == "/cordon/site/needed/__init__.py\n")
        #expect(g.changes.generation > generation, "watchers are told the tool changed")
        #expect(g.requirements(for: ToolGatewayTests.alice).isEmpty)
        #expect(installer.count == 1, "one install for any number of calls")
    }

    @Test func aFailedInstallFailsCallsWithItsReasonAndIsTriedAgainOnTheNextReading() throws {
        let installer = Installer()
        installer.answer(.failure(RequirementsProblem("refused by policy python-tool's [install] gate: needed 1.0 needed-1.0.whl: typosquat (install.typosquats)")))
        let g = try Self.gateway(installer)
        let failed = try ToolGatewayTests.call(g, "needs", .object([]), within: 30)
        #expect(failed.record.outcome == .unavailable, "\(failed.record)")
        #expect(failed.record.message == "the tool's requirements were not installed: refused by policy python-tool's [install] gate: needed 1.0 needed-1.0.whl: typosquat (install.typosquats)")
        guard case .failed(let why)? = g.requirements(for: ToolGatewayTests.alice).first?.phase else { Issue.record("not failed"); return }
        #expect(why.contains("install.typosquats"))
        // Calls do not retry it; a reading of the manifests (a reload) does.
        _ = try ToolGatewayTests.call(g, "needs", .object([]), within: 5)
        #expect(installer.count == 1)
        let site = try Self.site()
        defer { try? FileManager.default.removeItem(atPath: site) }
        installer.answer(.success(site))
        g.update([try ToolGatewayTests.manifest("needs", Self.tool)])
        let ok = try ToolGatewayTests.call(g, "needs", .object([]), within: 30)
        #expect(ok.record.outcome == .ok, "\(ok.record)")
        #expect(installer.count == 2)
    }

    /// The end of an install reads the manifests again under the registry's lock: it never puts
    /// back a tool an update removed meanwhile (attacker review: an install ending during a slow
    /// update undid it).
    @Test func anInstallEndingDuringAnUpdateDoesNotUndoIt() throws {
        let site = try Self.site()
        defer { try? FileManager.default.removeItem(atPath: site) }
        let many = try (0..<200).map { try ToolGatewayTests.manifest("t\($0)", ToolGatewayTests.python) }
        for _ in 0..<5 {
            let installer = Installer()
            let g = try Self.gateway(installer)
            let updater = Thread { g.update(many) }
            updater.start()
            // The install ends while the update is planning its 200 tools.
            usleep(30_000)
            installer.answer(.success(site))
            for _ in 0..<600 where !updater.isFinished { usleep(50_000) }
            usleep(100_000)
            #expect(g.manifests.count == 200 && g.manifests["needs"] == nil, "\(g.manifests.count) tools, needs: \(g.manifests["needs"] != nil)")
        }
    }

    /// A call that waited for the install is authorized again against the manifest as it is
    /// when it runs (attacker review: a waiting call ran a manifest its caller may not use).
    @Test func aWaitingCallIsAuthorizedAgainstTheManifestItRuns() throws {
        let installer = Installer()
        let g = try ToolGateway(manifests: [try ToolGatewayTests.manifest("needs", Self.tool)], policies: PolicyStore(configDir: nil),
                                environment: ToolGatewayTests.environment, installRequirements: { m, p, _ in installer.install(m, p) }) { _, m in
            !m.description.contains("admins only")
        }
        let site = try Self.site()
        defer { try? FileManager.default.removeItem(atPath: site) }
        let waiting = ToolGatewayTests.Wait()
        g.call("needs", arguments: .object([]), caller: ToolGatewayTests.alice, deadline: MonotonicClock.now + 60) { waiting.set($0) }
        usleep(200_000)
        // The same requirements (no new install), but no longer alice's to call.
        g.update([try ToolGatewayTests.manifest("needs", Self.tool.replacingOccurrences(of: "Imports its requirement", with: "Imports its requirement (admins only)"))])
        installer.answer(.success(site))
        let answer = try #require(waiting.get())
        #expect(answer.record.outcome == .refused && answer.record.message?.contains("may not use the tool needs") == true, "\(answer.record)")
        #expect(installer.count == 1)
    }

    /// Updates that change the requirements again and again while calls come in: a call runs
    /// with the set it waited for, or waits for the next, or says the install is still running
    /// — never "no tool" for a tool that is there (attacker review: 336 such refusals, and the
    /// breaker opened on them).
    @Test func callsDuringRepeatedReinstallsNeverFindNoTool() throws {
        let site = try Self.site()
        defer { try? FileManager.default.removeItem(atPath: site) }
        let g = try ToolGateway(manifests: [try ToolGatewayTests.manifest("needs", Self.tool)], policies: PolicyStore(configDir: nil),
                                environment: ToolGatewayTests.environment, installRequirements: { _, _, _ in .success(site) }) { _, _ in true }
        let stop = Mutex(false)
        let updater = Thread {
            var n = 0
            while !stop.withLock({ $0 }) && n < 400 {
                n += 1
                g.update([try! ToolGatewayTests.manifest("needs", Self.tool.replacingOccurrences(of: "needed==1.0", with: "needed==1.\(n % 2)"))])
                usleep(2_000)
            }
        }
        updater.start()
        var outcomes: [String] = []
        for _ in 0..<20 {
            let r = try ToolGatewayTests.call(g, "needs", .object([]), within: 20)
            outcomes.append("\(r.record.outcome)")
            #expect(r.record.message?.contains("any more") != true, "\(r.record)")
        }
        stop.withLock { $0 = true }
        #expect(!outcomes.contains("refused") && !outcomes.contains("breaker-open"), "\(outcomes)")
        #expect(outcomes.contains("ok"), "\(outcomes)")
    }

    @Test func aRegistryWithoutAnInstallerRefusesTheToolSayingWhy() throws {
        let g = try ToolGateway(manifests: [try ToolGatewayTests.manifest("needs", Self.tool)], policies: PolicyStore(configDir: nil),
                                environment: ToolGatewayTests.environment) { _, _ in true }
        #expect(g.manifests["needs"] == nil)
        #expect(g.rejected["needs"]?.contains("does not install requirements") == true)
    }
}
