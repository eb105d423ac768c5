import CordonJSON
import CordonRPC
import CordonTestNetwork
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hosted providers as they are reached in production — by name, through the worker's sandbox's
/// DNS and egress, dialled from cordond's network namespace — with the hosted API played by the
/// scripted stand-in (tools/model-standin.py, a real HTTP server of OpenAI's and Anthropic's
/// wires) on a TEST-NET-2 address inside a network namespace this suite makes: cordond runs in
/// one namespace, the stand-ins in another joined to it by a veth pair (`EgressNetwork`).
/// Nothing leaves the two namespaces; the names resolve from cordond's `[egress] dns_hosts`.
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: network namespaces, cordond"), .serialized)
struct HostedProviderTests {
    static let api = "198.51.100.7"
    static let other = "198.51.100.8"
    static let key = ModelMethodsTests.key

    /// The two namespaces, a stand-in on each address (port 8000), cordond in the supervisor's
    /// namespace; everything stopped (by pid) and removed at the end.
    final class World: @unchecked Sendable {
        let network: EgressNetwork
        var standIns: [Process] = []
        let dir: String
        var daemon: TestDaemon!

        init() throws {
            network = try EgressNetwork(serving: [HostedProviderTests.api, HostedProviderTests.other])
            dir = "/tmp/cordon-hosted-tests-\(getpid())"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            do {
                for address in [HostedProviderTests.api, HostedProviderTests.other] {
                    try startStandIn(address)
                }
                let hosts = "\(dir)/hosts"
                try "\(HostedProviderTests.api) api.standin.test\n\(HostedProviderTests.other) other.standin.test\n"
                    .write(toFile: hosts, atomically: true, encoding: .utf8)
                let keyFile = "\(dir)/keys/standin.key"
                try FileManager.default.createDirectory(atPath: "\(dir)/keys", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try (HostedProviderTests.key + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
                chmod(keyFile, 0o600)
                let catalog = """
                    [[provider]]
                    name = "hosted"
                    kind = "openai"
                    base_url = "http://api.standin.test:8000/v1"
                    api_key_file = "\(keyFile)"

                    [[provider]]
                    name = "claude"
                    kind = "anthropic"
                    base_url = "http://api.standin.test:8000/v1"
                    api_key_file = "\(keyFile)"

                    [[model]]
                    name = "gpt"
                    provider = "hosted"
                    upstream = "standin-gpt"
                    fallbacks = ["claude"]

                    [[model]]
                    name = "gpt-alone"
                    provider = "hosted"
                    upstream = "standin-gpt"

                    [[model]]
                    name = "claude"
                    provider = "claude"
                    upstream = "standin-claude"
                    max_output_tokens = 64
                    """
                daemon = try TestDaemon(config: "[egress]\ndns_hosts = \"\(hosts)\"\n", files: ["models.toml": catalog], netns: network.supervisor)
                try? FileManager.default.removeItem(atPath: "\(dir)/keys")
            } catch {
                stop()
                throw error
            }
        }

        private func startStandIn(_ address: String) throws {
            let (path, arguments) = network.inServers(["/usr/bin/python3", "\(ModelMethodsTests.repo)/tools/model-standin.py", "--host", address,
                                                       "--port", "8000", "--name", address, "--api-key", HostedProviderTests.key])
            let p = Process()
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = arguments
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run()
            standIns.append(p)
            let line = String(decoding: out.fileHandleForReading.availableData.prefix { $0 != 10 }, as: UTF8.self)
            guard line.trimmingCharacters(in: .whitespaces) == "8000" else {
                throw EgressNetwork.Failure(description: "the stand-in on \(address) did not start: \(line)")
            }
        }

        /// GET or POST (with `body`) on a stand-in, from inside the servers' namespace.
        func standIn(_ address: String, _ path: String, body: String? = nil) -> JSON? {
            var argv = ["/usr/bin/curl", "-s", "--max-time", "5"]
            if let body { argv += ["-X", "POST", "-H", "Content-Type: application/json", "-d", body] }
            let (exe, args) = network.inServers(argv + ["http://\(address):8000\(path)"])
            return try? JSON.parse(Array(TestDaemon.exec(exe, args).stdout.utf8))
        }

        func stop() {
            daemon = nil
            for p in standIns where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            network.close()
            try? FileManager.default.removeItem(atPath: dir)
        }

        deinit { stop() }
    }

    static func chat(_ model: String, _ text: String = "what is 2+3") -> JSON {
        .object([("request", .object([("model", .string(model)), ("max_tokens", .int(32)),
                                      ("messages", .array([.object([("role", .string("user")), ("content", .string(text))])]))]))])
    }

    @Test func bothWiresAnswerByNameThroughTheTestNetworkAndNoOtherHostIsReached() throws {
        let world = try World()
        defer { world.stop() }
        let d = world.daemon!
        for _ in 0..<5 {
            let r = try d.call("model.chat", Self.chat("gpt"))
            #expect(r["completion"]?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "The answer is 5.", "\(r)")
            #expect(r["model"]?.stringValue == "gpt")
        }
        let c = try d.call("model.chat", Self.chat("claude"))
        #expect(c["completion"]?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "The answer is 5.", "\(c)")
        #expect(c["completion"]?["object"]?.stringValue == "chat.completion")
        // The stand-in saw both wires, with the key each expects; the other host saw nothing.
        let stats = try #require(world.standIn(Self.api, "/stats"))
        #expect(stats["by_path"]?["/v1/chat/completions"]?.intValue == 5, "\(stats)")
        #expect(stats["by_path"]?["/v1/messages"]?.intValue == 1, "\(stats)")
        #expect(stats["credentials"]?.arrayValue?.count == 1, "\(stats)")
        let untouched = try #require(world.standIn(Self.other, "/stats"))
        #expect(untouched["by_path"]?["/v1/chat/completions"] == nil && untouched["by_path"]?["/v1/messages"] == nil, "\(untouched)")
        #expect(ModelMethodsTests.sql(d, "SELECT count(*), min(outcome), max(outcome) FROM model_calls") == "6|ok|ok\n")
    }

    @Test func scriptedLatencyRateLimitsErrorsAndMalformedBodies() throws {
        let world = try World()
        defer { world.stop() }
        let d = world.daemon!
        // A 429 with retry-after: the call falls back to claude; both attempts are recorded.
        _ = world.standIn(Self.api, "/control", body: #"{"next": [{"error_rate": 1, "error_status": 429, "retry_after": 7}]}"#)
        let fell = try d.call("model.chat", Self.chat("gpt"))
        #expect(fell["model"]?.stringValue == "claude", "\(fell)")
        let id = try #require(fell["id"]?.stringValue)
        let attempts = ModelMethodsTests.sql(d, "SELECT attempts FROM model_calls WHERE completion_id = '\(id)'")
        #expect(attempts.contains("rate limited") && attempts.contains("\"ok\""), "\(attempts)")
        // A 500 with no fallback: the call fails, and says why.
        _ = world.standIn(Self.api, "/control", body: #"{"next": [{"error_rate": 1, "error_status": 500}]}"#)
        let failed = try d.callError("model.chat", Self.chat("gpt-alone"))
        #expect(failed.message.contains("500") || failed.message.contains("server error"), "\(failed.message)")
        // A 200 whose body is not JSON: a failed call, not a failed daemon.
        _ = world.standIn(Self.api, "/control", body: #"{"next": [{"malformed_rate": 1}]}"#)
        let malformed = try d.callError("model.chat", Self.chat("gpt-alone"))
        #expect(malformed.message.contains("malformed"), "\(malformed.message)")
        // Scripted latency is the call's.
        _ = world.standIn(Self.api, "/control", body: #"{"next": [{"latency_ms": 400}]}"#)
        let slow = try d.call("model.chat", Self.chat("gpt-alone"))
        let slowID = try #require(slow["id"]?.stringValue)
        let latency = Double(ModelMethodsTests.sql(d, "SELECT latency_seconds FROM model_calls WHERE completion_id = '\(slowID)'")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(latency >= 0.4 && latency < 5, "\(latency)")
        // And the daemon still answers.
        #expect(try d.call("model.chat", Self.chat("gpt-alone"))["completion"] != nil)
    }
}
