import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// cordond's OpenAI-compatible endpoint with the official `openai` client (tools/pydeps/openai),
/// on the Unix socket as an unprivileged user and on loopback TCP with a bearer token, against
/// two stand-ins of a hosted API (tools/model-standin.py: one that answers, calling tools when
/// given them; one that fails every call with 503).
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct EndpointTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let python = "\(repo)/.build/pydeps/openai/bin/python3"
    static let token = "tok-endpointtests-0123456789"

    final class StandIn: @unchecked Sendable {
        let process = Process()
        let port: Int
        init(_ arguments: [String]) throws {
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["\(EndpointTests.repo)/tools/model-standin.py"] + arguments
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            var line: [UInt8] = []
            while let b = output.fileHandleForReading.readData(ofLength: 1).first, b != 10 { line.append(b) }
            guard let port = Int(String(decoding: line, as: UTF8.self)) else { throw TestFailure("the stand-in printed no port") }
            self.port = port
        }
        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func daemon(good: StandIn, bad: StandIn, tcpPort: Int) throws -> TestDaemon {
        let tokens = "/tmp/cordon-endpoint-tokens-\(getpid())"
        try "# who may use the endpoint over TCP\n\(token) nobody\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        chmod(tokens, 0o600)
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n", files: ["models.toml": """
            [[provider]]
            name = "standin"
            kind = "openai"
            base_url = "http://127.0.0.1:\(good.port)/v1"

            [[provider]]
            name = "broken"
            kind = "openai"
            base_url = "http://127.0.0.1:\(bad.port)/v1"

            [[model]]
            name = "small"
            provider = "standin"

            [[model]]
            name = "tooled"
            provider = "standin"
            tools = true

            [[model]]
            name = "failing"
            provider = "broken"
            task_types = ["other"]

            [endpoint]
            listen = "127.0.0.1:\(tcpPort)"
            tokens = "\(tokens)"
            """])
        chmod(d.dir, 0o755)
        unlink(tokens)  // read at start only
        return d
    }

    static func steps(_ output: String) -> [String: JSON] {
        var out: [String: JSON] = [:]
        for line in output.split(separator: "\n") {
            if let j = try? JSON.parse(String(line)), let step = j["step"]?.stringValue { out[step] = j }
        }
        return out
    }

    static func check(_ s: [String: JSON], _ output: String) {
        #expect(s["models"]?["ids"]?.arrayValue?.compactMap(\.stringValue) == ["small", "tooled", "failing", "auto", "auto:other"], "\(output)")
        #expect(s["chat"]?["content"]?.stringValue == "The answer is 5.")
        #expect(s["chat"]?["model"]?.stringValue == "small")
        #expect(s["chat"]?["id"]?.stringValue?.hasPrefix("chatcmpl-") == true)
        #expect(s["stream"]?["text"]?.stringValue == "The answer is 42.")
        #expect(s["stream"]?["ids"]?.arrayValue?.count == 1)
        #expect((s["stream"]?["usage"]?.intValue ?? 0) > 0)
        #expect(s["tools"]?["finish"]?.stringValue == "tool_calls")
        #expect(s["tools"]?["name"]?.stringValue == "get_time")
        #expect(s["tools"]?["arguments"]?["zone"]?.stringValue == "UTC")
        #expect(s["tools-stream"]?["calls"]?.arrayValue?.first?["name"]?.stringValue == "get_time")
        #expect(s["tools-stream"]?["calls"]?.arrayValue?.first?["arguments"]?["zone"]?.stringValue == "UTC")
        #expect(s["feedback"]?["answer"]?["recorded"] == .bool(true))
        #expect(s["feedback-again"]?["status"]?.intValue == 409)
        #expect(s["unknown"]?["status"]?.intValue == 404)
        // The provider failed: 503, and the client told not to retry (Cordon tried within the deadline).
        #expect(s["failing"]?["status"]?.intValue == 503, "\(output)")
        #expect(s["failing"]?["retry"]?.stringValue == "false")
        #expect(s["refused-field"]?["status"]?.intValue == 400)
        #expect(s["refused-field"]?["message"]?.stringValue?.contains("functions") == true)
    }

    @Test func theOfficialClientOnTheSocketAsAnUnprivilegedUserAndOverTCPWithAToken() throws {
        try #require(FileManager.default.fileExists(atPath: Self.python), "no \(Self.python): run tools/pydeps.sh openai")
        let good = try StandIn(["--tool-arguments", "{\"zone\": \"UTC\"}"])
        let bad = try StandIn(["--error-rate", "1", "--error-status", "503"])
        let port = Self.freePort()
        let d = try Self.daemon(good: good, bad: bad, tcpPort: port)
        let socketPath = "\(d.runtimeDir)/openai.sock"
        let unix = TestDaemon.runAs(uid: 65534, gid: 65534, [Self.python, "\(Self.repo)/Tests/CordonDaemonTests/openai_endpoint.py", "unix", socketPath])
        #expect(unix.status == 0, "\(unix.stderr)")
        Self.check(Self.steps(unix.stdout), unix.stdout + unix.stderr)
        let tcp = TestDaemon.exec(Self.python, ["\(Self.repo)/Tests/CordonDaemonTests/openai_endpoint.py", "tcp", "http://127.0.0.1:\(port)/v1", Self.token])
        #expect(tcp.status == 0, "\(tcp.stderr)")
        Self.check(Self.steps(tcp.stdout), tcp.stdout + tcp.stderr)
        // Every call is a row under the caller: nobody on the socket and nobody by its token.
        let rows = TestDaemon.exec("/usr/bin/sqlite3", ["-readonly", "\(d.stateDir)/audit.db",
                                                        "SELECT uid, count(*) FROM model_calls GROUP BY uid"]).stdout
        #expect(rows == "65534|12\n", "\(rows)")  // 6 calls a run; a body refused before it names a model is no call
        // The client's retries were not multiplied: each failing call reached the broken stand-in once.
        let failing = TestDaemon.exec("/usr/bin/sqlite3", ["-readonly", "\(d.stateDir)/audit.db",
                                                           "SELECT count(*) FROM model_calls WHERE requested = 'failing'"]).stdout
        #expect(failing == "2\n")
    }

    @Test func tcpWithoutAValidTokenIs401AndChangesNothing() throws {
        let good = try StandIn([])
        let bad = try StandIn([])
        let port = Self.freePort()
        let d = try Self.daemon(good: good, bad: bad, tcpPort: port)
        let body = "{\"model\":\"small\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
        for auth in [[], ["-H", "Authorization: Bearer wrong-token-0123456789"], ["-H", "Authorization: Bearer \(Self.token)x"],
                     ["-H", "Authorization: Basic \(Self.token)"], ["-H", "Authorization: Bearer \(String(Self.token.dropLast()))"]] {
            let r = TestDaemon.exec("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", body] + auth
                                    + ["http://127.0.0.1:\(port)/v1/chat/completions"])
            #expect(r.stdout == "401", "\(auth): \(r.stdout)")
        }
        let ok = TestDaemon.exec("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", body, "-H", "Authorization: Bearer \(Self.token)",
                                                   "http://127.0.0.1:\(port)/v1/chat/completions"])
        #expect(ok.stdout == "200")
        let rows = TestDaemon.exec("/usr/bin/sqlite3", ["-readonly", "\(d.stateDir)/audit.db", "SELECT count(*) FROM model_calls"]).stdout
        #expect(rows == "1\n")
    }

    @Test func aTokensFileOthersCanReadStopsTheStart() throws {
        let good = try StandIn([])
        let tokens = "/tmp/cordon-endpoint-open-tokens-\(getpid())"
        try "\(Self.token) nobody\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        chmod(tokens, 0o644)
        defer { unlink(tokens) }
        let text = """
            [[provider]]
            name = "standin"
            kind = "openai"
            base_url = "http://127.0.0.1:\(good.port)/v1"
            [[model]]
            name = "small"
            provider = "standin"
            [endpoint]
            listen = "127.0.0.1:\(Self.freePort())"
            tokens = "\(tokens)"
            """
        #expect(throws: (any Error).self) { _ = try TestDaemon(files: ["models.toml": text]) }
    }
}
