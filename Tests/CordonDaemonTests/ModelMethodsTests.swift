import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// model.* through a real cordond: each provider's calls made by cordon-model-worker in its
/// sandbox (egress allowlist: the provider's address and port only) against a stand-in of a
/// hosted API — a real HTTP/1.1 server on the host's loopback speaking OpenAI's wire
/// (Tests/CordonModelWorkerTests/provider_standin.py; the upstream model id picks its answer).
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct ModelMethodsTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let key = "sk-cordontestkey0123456789abcdefXYZ"

    /// The stand-in, on an ephemeral loopback port; ends with its stdin.
    final class StandIn: @unchecked Sendable {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        let port: Int
        init() throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["\(ModelMethodsTests.repo)/Tests/CordonModelWorkerTests/provider_standin.py"]
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line: [UInt8] = []
            while true {
                let byte = output.fileHandleForReading.readData(ofLength: 1)
                guard let b = byte.first else { break }
                if b == 10 { break }
                line.append(b)
            }
            guard let port = Int(String(decoding: line, as: UTF8.self)) else { throw TestFailure("the stand-in printed no port") }
            self.port = port
        }
        deinit {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }

        /// Its counters: {"connections", "requests", "last"}.
        func stats() throws -> JSON {
            input.fileHandleForWriting.write(Data("stats\n".utf8))
            var line: [UInt8] = []
            while true {
                guard let b = output.fileHandleForReading.readData(ofLength: 1).first, b != 10 else { break }
                line.append(b)
            }
            return try JSON.parse(line)
        }
    }

    static func catalog(port: Int, keyFile: String?) -> String {
        """
        [[provider]]
        name = "standin"
        kind = "openai"
        base_url = "http://127.0.0.1:\(port)/v1"
        \(keyFile.map { "api_key_file = \"\($0)\"" } ?? "")

        [[model]]
        name = "small"
        provider = "standin"
        upstream = "plain"

        [[model]]
        name = "streamer"
        provider = "standin"
        upstream = "stream"

        [[model]]
        name = "broken"
        provider = "standin"
        upstream = "server-error"
        fallbacks = ["small"]
        task_types = ["other"]

        [[model]]
        name = "echo"
        provider = "standin"
        upstream = "echo-key"
        task_types = ["other"]

        [[model]]
        name = "garbage"
        provider = "standin"
        upstream = "malformed"
        task_types = ["other"]

        [[model]]
        name = "huge"
        provider = "standin"
        upstream = "huge"
        task_types = ["other"]

        [[model]]
        name = "slow"
        provider = "standin"
        upstream = "slow"
        task_types = ["other"]

        [[model]]
        name = "flood"
        provider = "standin"
        upstream = "huge-stream"
        task_types = ["other"]

        [[model]]
        name = "down"
        provider = "standin"
        upstream = "server-error"
        task_types = ["other"]

        [[model]]
        name = "private"
        provider = "standin"
        upstream = "plain"
        task_types = ["other"]
        access = { users = ["1001"] }
        """
    }

    /// `withKey`: give the provider a key file (read at start, then removed: a test that restarts
    /// cordond goes without).
    static func daemon(_ standIn: StandIn, config: String = "", withKey: Bool = true) throws -> TestDaemon {
        let keyDir = "/tmp/cordon-model-key-\(getpid())"
        try? FileManager.default.removeItem(atPath: keyDir)
        try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let keyFile = "\(keyDir)/standin.key"
        try (key + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        chmod(keyFile, 0o600)
        defer { try? FileManager.default.removeItem(atPath: keyDir) }
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n" + config, files: ["models.toml": catalog(port: standIn.port, keyFile: withKey ? keyFile : nil)])
        chmod(d.dir, 0o755)
        return d
    }

    static func chat(_ model: String, stream: Bool = false, _ text: String = "hi", seconds: Double? = nil, timeout: Double? = nil) -> JSON {
        var request: [(String, JSON)] = [("model", .string(model)), ("stream", .bool(stream)),
                                         ("messages", .array([.object([("role", .string("user")), ("content", .string(text))])]))]
        // The stand-in's "slow" answer sleeps this long (it reads it from temperature: 2 at most).
        if let seconds { request.append(("temperature", .double(seconds))) }
        var params: [(String, JSON)] = [("request", .object(request))]
        if let timeout { params.append(("timeout", .double(timeout))) }
        return .object(params)
    }

    static func line(_ method: String, _ params: JSON) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("id", .int(1)), ("method", .string(method)), ("params", params)]).text
    }

    static func sql(_ d: TestDaemon, _ query: String) -> String {
        TestDaemon.exec("/usr/bin/sqlite3", ["-readonly", "\(d.stateDir)/audit.db", query]).stdout
    }

    @Test func aNamedCallAnswersThroughTheSandboxedWorkerAndIsRecorded() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        let listed = try d.call("model.list")
        #expect(listed["models"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["small", "streamer", "broken", "echo", "garbage", "huge", "slow", "flood", "down", "private"])
        for _ in 0..<10 {
            let r = try d.call("model.chat", Self.chat("small"))
            #expect(r["completion"]?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "Hello from the stand-in")
            #expect(r["model"]?.stringValue == "small")
            let id = try #require(r["id"]?.stringValue)
            #expect(r["completion"]?["id"]?.stringValue == id)
            #expect(Self.sql(d, "SELECT outcome, model, input_tokens, output_tokens FROM model_calls WHERE completion_id = '\(id)'") == "ok|small|9|5\n")
        }
        // The key went to the provider, from the worker: the stand-in saw it as the bearer token.
        #expect(Self.sql(d, "SELECT count(*) FROM model_calls WHERE policy = 'model-worker'") == "10\n")
        // Ten calls, one connection: kept alive through the sandbox's egress proxy (a tunnel).
        let seen = try standIn.stats()
        #expect(seen["requests"]?.intValue == 10 && seen["connections"]?.intValue == 1, "\(seen)")
        // One worker, started once, in the model-worker policy's sandbox.
        let stats = try d.call("model.stats")
        let small = try #require(stats["models"]?.arrayValue?.first { $0["model"]?.stringValue == "small" })
        #expect(small["calls"]?.intValue == 10)
        #expect(small["worker"]?["starts"]?.intValue == 1)
    }

    @Test func aStreamComesAsDeltasAndItsWholeIsRecorded() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        let fd = try d.connect()
        defer { close(fd) }
        let request = JSON.object([("jsonrpc", .string("2.0")), ("id", .int(7)), ("method", .string("model.chat")), ("params", Self.chat("streamer", stream: true))])
        let bytes = Array((request.text + "\n").utf8)
        #expect(write(fd, bytes, bytes.count) == bytes.count)
        var text = "", deltas = 0, final: JSON?
        for _ in 0..<50 {
            let m = try d.readResponse(fd)
            if m["method"]?.stringValue == "model.delta" {
                deltas += 1
                text += m["params"]?["chunk"]?["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
            } else {
                final = m
                break
            }
        }
        #expect(text == "Hello world")
        #expect(deltas >= 3)
        let result = try #require(final?["result"])
        #expect(result["finishReason"]?.stringValue == "stop")
        let id = try #require(result["id"]?.stringValue)
        #expect(Self.sql(d, "SELECT stream, outcome, answer_bytes FROM model_calls WHERE completion_id = '\(id)'") == "1|ok|11\n")
    }

    @Test func aFailingModelFallsBackAndBothAttemptsAreRecorded() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        let r = try d.call("model.chat", Self.chat("broken"))
        #expect(r["model"]?.stringValue == "small")
        #expect(r["attempts"]?.arrayValue?.map { $0["outcome"]?.stringValue ?? "" } == ["server error", "ok"])
        let id = try #require(r["id"]?.stringValue)
        let attempts = Self.sql(d, "SELECT attempts FROM model_calls WHERE completion_id = '\(id)'")
        #expect(attempts.contains("\"broken\"") && attempts.contains("\"small\""))
    }

    /// The ratio rule opens a failing model's breaker (half of at least 10 calls); its calls
    /// then go to its fallback without trying it. A model with no fallback is still tried
    /// (panic: refusing every call would be the outage the breaker guards against).
    @Test func anOpenBreakerSkipsToTheFallbackAndPanicStillTries() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        for _ in 0..<10 { _ = try? d.call("model.chat", Self.chat("broken")) }
        let skipped = try d.call("model.chat", Self.chat("broken"))
        #expect(skipped["model"]?.stringValue == "small")
        #expect(skipped["attempts"]?.arrayValue?.map { $0["model"]?.stringValue ?? "" } == ["small"], "\(skipped)")
        #expect(skipped["reason"]?.stringValue == "named; skipped broken: its breaker is open")
        for _ in 0..<10 { _ = try? d.callError("model.chat", Self.chat("down")) }
        let panicked = try d.callError("model.chat", Self.chat("down"))
        #expect(panicked.message.contains("server error"), "\(panicked)")
        let reason = Self.sql(d, "SELECT reason, attempts FROM model_calls WHERE requested = 'down' ORDER BY id DESC LIMIT 1")
        #expect(reason.hasPrefix("panic: every eligible model's breaker is open"), "\(reason)")
        #expect(reason.contains("\"server error\""))
    }

    /// A client that asks for a stream and stops reading must not hold the provider's worker:
    /// its deltas are refused once 256 KiB wait for it (its stream is cut, the call cancelled),
    /// and another caller's call to the same provider is answered meanwhile — on the endpoint
    /// and on the socket. (Without this, the worker's reader waited up to a minute on the
    /// stalled client, and every call to the provider with it.)
    @Test func aStalledStreamingClientDoesNotHoldOtherCallsToItsProvider() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        _ = try d.call("model.chat", Self.chat("small"))  // the worker is up
        func stalled(_ path: String, _ request: [UInt8]) throws -> Int32 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b } }
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard ok == 0, write(fd, request, request.count) == request.count else { throw TestFailure("cannot reach \(path)") }
            return fd
        }
        let body = "{\"model\":\"flood\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
        let http = Array("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        let a = try stalled("\(d.runtimeDir)/openai.sock", http)
        defer { close(a) }
        let rpc = Array((Self.line("model.chat", Self.chat("flood", stream: true)) + "\n").utf8)
        let b = try stalled(d.socket, rpc)
        defer { close(b) }
        usleep(300_000)
        // Ten calls of another caller while both sit unread: each answered (the endpoint's
        // and the socket's stall would each hold the reader for sendSeconds, 60 s).
        for _ in 0..<10 {
            let r = TestDaemon.exec("/usr/bin/curl", ["-s", "--max-time", "20", "--unix-socket", "\(d.runtimeDir)/openai.sock", "-o", "/dev/null",
                                                      "-w", "%{http_code}", "-d", "{\"model\":\"small\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                                                      "http://localhost/v1/chat/completions"])
            #expect(r.stdout == "200")
        }
        // Both stalled calls ended (cancelled, or failed at the 16 MiB cap), and were recorded.
        #expect(d.eventually(30) { Self.sql(d, "SELECT count(*) FROM model_calls WHERE requested = 'flood'") == "2\n" })
    }

    /// An Anthropic-kind provider through cordond: the OpenAI request goes out as a Messages
    /// API call with the key in x-api-key, and comes back as OpenAI's answer — whole, streamed,
    /// and with a tool call streamed as input_json deltas.
    @Test func anAnthropicProviderAnswersInOpenAIsShape() throws {
        let standIn = try StandIn()
        let keyDir = "/tmp/cordon-model-key-\(getpid())-a"
        try? FileManager.default.removeItem(atPath: keyDir)
        try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: keyDir) }
        try (Self.key + "\n").write(toFile: "\(keyDir)/key", atomically: true, encoding: .utf8)
        chmod("\(keyDir)/key", 0o600)
        let d = try TestDaemon(files: ["models.toml": """
            [[provider]]
            name = "claude"
            kind = "anthropic"
            base_url = "http://127.0.0.1:\(standIn.port)/v1"
            api_key_file = "\(keyDir)/key"

            [[model]]
            name = "claude-plain"
            provider = "claude"
            upstream = "plain"

            [[model]]
            name = "claude-tools"
            provider = "claude"
            upstream = "tools-stream"
            tools = true
            """])
        let r = try d.call("model.chat", Self.chat("claude-plain"))
        #expect(r["completion"]?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "Hello from the stand-in")
        #expect(r["completion"]?["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue == "stop")
        #expect(r["completion"]?["usage"]?["prompt_tokens"]?.intValue == 9)
        let fd = try d.connect()
        defer { close(fd) }
        let tools = JSON.array([.object([("type", .string("function")), ("function", .object([("name", .string("get_weather")),
                                         ("parameters", .object([("type", .string("object"))]))]))])])
        var params = Self.chat("claude-tools", stream: true)
        if case .object(var members) = params, case .object(var request)? = params["request"] {
            request.append(("tools", tools))
            members = members.map { $0.0 == "request" ? ("request", .object(request)) : $0 }
            params = .object(members)
        }
        let line = Array((Self.line("model.chat", params) + "\n").utf8)
        #expect(write(fd, line, line.count) == line.count)
        var name = "", arguments = "", final: JSON?
        for _ in 0..<100 {
            let m = try d.readResponse(fd)
            guard m["method"]?.stringValue == "model.delta" else { final = m; break }
            for call in m["params"]?["chunk"]?["choices"]?.arrayValue?.first?["delta"]?["tool_calls"]?.arrayValue ?? [] {
                name += call["function"]?["name"]?.stringValue ?? ""
                arguments += call["function"]?["arguments"]?.stringValue ?? ""
            }
        }
        #expect(final?["result"]?["finishReason"]?.stringValue == "tool_calls", "\(String(describing: final))")
        #expect(name == "get_weather")
        #expect((try? JSON.parse(arguments))?["city"]?.stringValue == "Oslo", "\(arguments)")
    }

    /// A client that leaves abandons its call: on the socket and on the endpoint, a call whose
    /// connection closes ends as cancelled at once (not when the model would have answered),
    /// blaming no model.
    @Test func aCallWhoseClientLeavesIsCancelledNotRunToTheEnd() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        _ = try d.call("model.chat", Self.chat("small"))
        let fd = try d.connect()
        let line = Array((Self.line("model.chat", Self.chat("slow", seconds: 2)) + "\n").utf8)
        #expect(write(fd, line, line.count) == line.count)
        usleep(300_000)
        close(fd)
        let curl = TestDaemon.exec("/usr/bin/curl", ["-s", "--max-time", "0.5", "--unix-socket", "\(d.runtimeDir)/openai.sock", "-d",
                                                     "{\"model\":\"slow\",\"temperature\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                                                     "http://localhost/v1/chat/completions"])
        #expect(curl.status == 28)  // curl gave up: the connection closed under the call
        #expect(d.eventually(5) { Self.sql(d, "SELECT outcome FROM model_calls WHERE requested = 'slow'") == "cancelled\ncancelled\n" })
        let latencies = Self.sql(d, "SELECT latency_seconds FROM model_calls WHERE requested = 'slow'").split(separator: "\n").compactMap { Double($0) }
        #expect(latencies.count == 2 && latencies.allSatisfy { $0 < 1.5 }, "\(latencies)")
        let stats = try d.call("model.stats")
        #expect(stats["models"]?.arrayValue?.first { $0["model"]?.stringValue == "slow" }?["failures"]?.intValue == 0)
    }

    /// Model calls in flight per uid are capped (`models.max_calls_per_user`): past it a call is
    /// refused at once, and the others' go on.
    @Test func aUsersCallsInFlightAreCapped() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn, config: "[models]\nmax_calls_per_user = 2\n")
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<2 {
            let fd = try d.connect()
            let line = Array((Self.line("model.chat", Self.chat("slow", seconds: 2)) + "\n").utf8)
            #expect(write(fd, line, line.count) == line.count)
            held.append(fd)
        }
        usleep(300_000)
        let refused = try d.callError("model.chat", Self.chat("small"))
        #expect(refused.code == RPCCode.busy, "\(refused)")
        let other = d.asUser(65534, [Self.line("model.chat", Self.chat("small"))])
        #expect(other.first?["result"]?["model"]?.stringValue == "small", "\(other)")
        for fd in held { _ = try d.readResponse(fd) }
        #expect(try d.call("model.chat", Self.chat("small"))["model"]?.stringValue == "small")
    }

    /// A deadline the caller sets shorter than the provider's timeout is not the model's
    /// failure: many such calls leave its breaker closed and its record clean.
    @Test func theCallersShortDeadlineIsNotHeldAgainstTheModel() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        for _ in 0..<12 {
            let e = try d.callError("model.chat", Self.chat("slow", seconds: 1.5, timeout: 1))
            #expect(e.message.contains("timed out") || e.message.contains("deadline"), "\(e)")
        }
        let stats = try d.call("model.stats")
        let slow = stats["models"]?.arrayValue?.first { $0["model"]?.stringValue == "slow" }
        #expect(slow?["breaker"]?.stringValue == "closed")
        #expect(slow?["failures"]?.intValue == 0)
        #expect(try d.callError("model.chat", Self.chat("slow", seconds: 1, timeout: 0.5)).code == RPCCode.invalidParams)
    }

    /// `cordon model` as a user types it, as nobody: the answer on stdout ending its line (the
    /// stand-in's has no newline), the id on stderr, the rating accepted once, and a call no
    /// model answered exiting 2.
    @Test func theCommandLineAsAnUnprivilegedUser() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        let cordon = [TestDaemon.cordon, "model"]
        for stream in [true, false] {
            let ask = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["ask", "--socket", d.socket, "--model", "small"] + (stream ? [] : ["--no-stream"]) + ["hi"])
            #expect(ask.status == 0, "\(ask.stderr)")
            #expect(ask.stdout == "Hello from the stand-in\n")
            let id = String(ask.stderr.split(separator: " ").first ?? "")
            #expect(id.hasPrefix("chatcmpl-"), "\(ask.stderr)")
            let rated = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["feedback", "--socket", d.socket, id, "--good"])
            #expect(rated.status == 0 && rated.stdout.contains("recorded for small"), "\(rated)")
            let again = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["feedback", "--socket", d.socket, id, "--bad"])
            #expect(again.status == 1 && again.stderr.contains("rated already"), "\(again)")
        }
        let streamed = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["ask", "--socket", d.socket, "--model", "streamer", "hi"])
        #expect(streamed.stdout == "Hello world\n")
        let failed = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["ask", "--socket", d.socket, "--model", "down", "hi"])
        #expect(failed.status == 2 && failed.stderr.contains("server error"), "\(failed)")
        let listed = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["list", "--socket", d.socket, "--json"])
        #expect((try? JSON.parse(listed.stdout))?["models"]?.arrayValue?.contains { $0["name"]?.stringValue == "private" } == false)
        let explained = TestDaemon.runAs(uid: 65534, gid: 65534, cordon + ["explain", "--socket", d.socket])
        #expect(explained.status == 0 && explained.stdout.contains("one draw now chooses"), "\(explained)")
    }

    @Test func feedbackIsTheCallersOnceAndNobodyElses() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        // nobody (65534) makes a call; root cannot rate it as its own, nobody can, once.
        let made = d.asUser(65534, [Self.line("model.chat", Self.chat("small"))])
        let id = try #require(made.first?["result"]?["id"]?.stringValue, "\(made)")
        let asRoot = try d.callError("model.feedback", .object([("id", .string(id)), ("success", .bool(true))]))
        #expect(asRoot.code == RPCCode.notFound)
        let feedback = Self.line("model.feedback", .object([("id", .string(id)), ("score", .double(0.25))]))
        let answers = d.asUser(65534, [feedback, feedback,
                                       Self.line("model.feedback", .object([("id", .string("chatcmpl-000")), ("success", .bool(true))]))])
        #expect(answers.count == 3)
        #expect(answers.first?["result"]?["recorded"] == .bool(true))
        #expect(answers.dropFirst().first?["error"]?["code"]?.intValue == RPCCode.conflict)
        #expect(answers.last?["error"]?["code"]?.intValue == RPCCode.notFound)
        #expect(Self.sql(d, "SELECT feedback FROM model_calls WHERE completion_id = '\(id)'") == "0.25\n")
        // A model nobody may use is not listed for them, and not callable.
        let listed = d.asUser(65534, [Self.line("model.list", .object([])), Self.line("model.chat", Self.chat("private"))])
        #expect(listed.first?["result"]?["models"]?.arrayValue?.contains { $0["name"]?.stringValue == "private" } == false)
        #expect(listed.last?["error"]?["code"]?.intValue == RPCCode.unauthorized)
    }

    @Test func theKeyIsInNoRecordLogOrExplanation() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        // The stand-in echoes the key in its error, as OpenAI's 401 does part of it.
        let refused = try d.callError("model.chat", Self.chat("echo"))
        #expect(!refused.message.contains(Self.key))
        _ = try d.call("model.chat", Self.chat("small"))
        let explained = try d.call("model.explain", .object([("model", .string("auto"))]))
        #expect(explained["choice"]?["model"]?.stringValue != nil)
        #expect(!explained.text.contains(Self.key))
        #expect(!(try d.call("model.stats")).text.contains(Self.key))
        d.signal(SIGTERM)
        _ = d.waitExit(20)
        let dump = TestDaemon.exec("/usr/bin/sqlite3", ["-readonly", "\(d.stateDir)/audit.db", ".dump"]).stdout
        #expect(dump.contains("echo"))
        #expect(!dump.contains(Self.key))
        #expect(!d.log().contains(Self.key))
        let state = (try? String(contentsOfFile: "\(d.stateDir)/models-selector.json", encoding: .utf8)) ?? ""
        #expect(state.contains("\"small\""))
        #expect(!state.contains(Self.key))
    }

    @Test func aMalformedOrHugeReplyFailsTheCallNotTheDaemon() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn)
        let garbage = try d.callError("model.chat", Self.chat("garbage"))
        #expect(garbage.message.contains("malformed"))
        let huge = try d.callError("model.chat", Self.chat("huge"))
        #expect(huge.message.contains("malformed") || huge.message.contains("longer"))
        // Still serving, the same worker or a new one.
        let r = try d.call("model.chat", Self.chat("small"))
        #expect(r["completion"]?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "Hello from the stand-in")
        #expect(Self.sql(d, "SELECT outcome FROM model_calls ORDER BY id") == "unavailable\nunavailable\nok\n")
    }

    @Test func whatTheSelectorLearntSurvivesARestart() throws {
        let standIn = try StandIn()
        let d = try Self.daemon(standIn, withKey: false)
        for _ in 0..<5 { _ = try d.call("model.chat", Self.chat("auto")) }
        let before = try d.call("model.stats")
        d.signal(SIGTERM)
        #expect(d.waitExit(20) == 0)
        try d.start()
        let explained = try d.call("model.explain", .object([]))
        let calls = explained["eligible"]?.arrayValue?.reduce(0.0) { $0 + ($1["calls"]?.doubleValue ?? 0) } ?? 0
        #expect(calls > 3, "\(explained)")
        // The change detector's setting and each model's count of changes are in the answer, and
        // its evidence is in the state file that carried the learning over.
        #expect(explained["changeThreshold"]?.doubleValue == 7)
        #expect(explained["eligible"]?.arrayValue?.allSatisfy { e in
            guard let changes = e["changes"]?.intValue, changes >= 0 else { return false }
            return (changes == 0) == (e["callsSinceChange"] == .null)
        } == true, "\(explained)")
        let saved = (try? String(contentsOfFile: "\(d.stateDir)/models-selector.json", encoding: .utf8)) ?? ""
        #expect(saved.contains("\"evidence\"") && saved.contains("\"changedAt\""))
        // Per model: the attempts (a stream-only stand-in model asked without streaming fails,
        // and its call falls back), the same after the restart.
        func counts(_ stats: JSON) -> [String] {
            stats["models"]?.arrayValue?.map { "\($0["model"]?.stringValue ?? "") \($0["calls"]?.intValue ?? -1) \($0["failures"]?.intValue ?? -1)" } ?? []
        }
        let after = try d.call("model.stats")
        #expect(counts(after) == counts(before))
        #expect((after["models"]?.arrayValue?.reduce(0) { $0 + Int($1["calls"]?.intValue ?? 0) } ?? 0) >= 5)
    }

    @Test func aKeyFileOthersCanReadStopsTheStart() throws {
        let standIn = try StandIn()
        let keyFile = "/tmp/cordon-model-openkey-\(getpid())"
        try (Self.key + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        chmod(keyFile, 0o644)
        defer { unlink(keyFile) }
        #expect(throws: (any Error).self) {
            _ = try TestDaemon(files: ["models.toml": Self.catalog(port: standIn.port, keyFile: keyFile)])
        }
    }
}
