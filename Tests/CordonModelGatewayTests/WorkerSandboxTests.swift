import CordonConfig
import CordonJSON
import CordonModelGateway
import CordonModels
import CordonSandbox
import CordonServices
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The model workers' sandboxes, for real: two stand-in providers on the host's loopback
/// (Tests/CordonModelWorkerTests/provider_standin.py), a gateway with one worker per provider.
/// A worker reaches its own provider and nothing else, even when told to; each provider sees
/// only its own key; no key is in a worker's command line or environment.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct WorkerSandboxTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    /// Built beside this test bundle.
    static let worker: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent + "/cordon-model-worker"
    }()
    static let dir: String = {
        let d = "/tmp/cordon-model-gateway-tests-\(getpid())"
        mkdir(d, 0o755)
        chmod(d, 0o755)
        return d
    }()
    static var environment: SandboxEnvironment { SandboxEnvironment(runtimeDir: "\(dir)/run") }
    static let caller = ModelGateway.Caller(uid: 1001, gid: 1001, pid: 1)
    static let keys = ["a": "sk-keyofprovideraaaaaaaaaaaaaaaaaa", "b": "sk-keyofproviderbbbbbbbbbbbbbbbbbb"]

    /// A stand-in provider on an ephemeral loopback port. `last()` is the last request it saw.
    final class StandIn: @unchecked Sendable {
        let process = Process()
        let input = Foundation.Pipe()
        let output = Foundation.Pipe()
        let port: Int
        init() throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["\(WorkerSandboxTests.repo)/Tests/CordonModelWorkerTests/provider_standin.py"]
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            guard let port = Int(Self.readLine(output)) else { throw Failure("the stand-in printed no port") }
            self.port = port
        }
        static func readLine(_ pipe: Foundation.Pipe) -> String {
            var line: [UInt8] = []
            while let b = pipe.fileHandleForReading.readData(ofLength: 1).first, b != 10 { line.append(b) }
            return String(decoding: line, as: UTF8.self)
        }
        func stats() throws -> JSON {
            input.fileHandleForWriting.write(Data("stats\n".utf8))
            return try JSON.parse(Self.readLine(output))
        }
        deinit {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func gateway(_ a: StandIn, _ b: StandIn) throws -> ModelGateway {
        let text = """
            [[provider]]
            name = "a"
            kind = "openai"
            base_url = "http://127.0.0.1:\(a.port)/v1"

            [[provider]]
            name = "b"
            kind = "openai"
            base_url = "http://127.0.0.1:\(b.port)/v1"

            [[model]]
            name = "model-a"
            provider = "a"
            upstream = "plain"

            [[model]]
            name = "model-b"
            provider = "b"
            upstream = "plain"
            """
        let catalog = try ModelCatalogParser.parse(text: text, source: "models.toml")
        return try ModelGateway(catalog: catalog, keys: keys, policies: PolicyStore(configDir: nil), environment: environment,
                                workerProgram: worker) { _, _ in true }
    }

    static func ask(_ gateway: ModelGateway, _ model: String) -> Result<ChatResult, ModelCallFailure> {
        let request = try! ChatRequest.parse(JSON.object([("model", .string(model)),
                                                          ("messages", .array([.object([("role", .string("user")), ("content", .string("hi"))])]))]))
        let answer = Awaited<Result<ChatResult, ModelCallFailure>>()
        gateway.chat(request, id: "chatcmpl-test\(UInt32.random(in: 0...UInt32.max))", caller: caller, deadline: MonotonicClock.now + 30,
                     requestBytes: 100, onDelta: nil) { _, result in answer.set(result) }
        return answer.wait()!
    }

    @Test func eachProviderGetsItsOwnKeyAndNoOtherFromItsOwnWorker() throws {
        let a = try StandIn(), b = try StandIn()
        let gateway = try Self.gateway(a, b)
        defer { gateway.stop(until: MonotonicClock.now + 5) }
        for model in ["model-a", "model-b"] {
            let answer = Self.ask(gateway, model)
            guard case .success(let r) = answer else { Issue.record("\(model) failed: \(answer)"); continue }
            #expect(r.content == "Hello from the stand-in")
        }
        let sawA = try a.stats()["last"]?["headers"]?["authorization"]?.stringValue
        let sawB = try b.stats()["last"]?["headers"]?["authorization"]?.stringValue
        #expect(sawA == "Bearer \(Self.keys["a"]!)")
        #expect(sawB == "Bearer \(Self.keys["b"]!)")
        // Two workers, one per provider; neither holds a key where another process could read
        // it from outside its memory.
        let workers = Self.processes(argv0: WorkerSandboxTests.workerInside)
        #expect(workers.count == 2)
        for pid in workers {
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            for key in Self.keys.values {
                #expect(!String(decoding: environ + cmdline, as: UTF8.self).contains(key))
            }
        }
    }

    static let workerInside = "/cordon/cordon-model-worker"

    /// Workers this process started (their sandbox's init is its child; other suites' workers
    /// run under a cordond of their own).
    static func processes(argv0: String) -> [Int32] {
        func parent(_ pid: Int32) -> Int32? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 ? Int32(fields[1]) : nil
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let cmd = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
            return String(decoding: cmd, as: UTF8.self) == argv0 + "\u{0}" && parent(pid).flatMap(parent) == getpid()
        }
    }

    /// Provider a's worker sandbox, its worker told to call provider b (as a compromised worker
    /// might): the egress allowlist has a's address and port only, so b is never reached, and
    /// the refusal is a denial of the sandbox. Told to call a, the same sandbox answers.
    @Test func aWorkerReachesItsProviderAndNothingElse() throws {
        let a = try StandIn(), b = try StandIn()
        let gateway = try Self.gateway(a, b)
        defer { gateway.stop(until: MonotonicClock.now + 5) }
        let spec = try #require(gateway.workerSpec("a"))
        #expect(spec.plan.policy.network.allow == ["127.0.0.1:\(a.port)"])
        for (target, reachable) in [(b.port, false), (a.port, true)] {
            let process = try SandboxedProcess(spec)
            defer { process.stop() }
            let connection = try JSONRPCConnection(process: process)
            let initialize = JSON.object([
                ("protocol", .int(1)),
                ("provider", .object([("name", .string("a")), ("kind", .string("openai")), ("baseURL", .string("http://127.0.0.1:\(target)/v1")),
                                      ("timeout", .double(10)), ("idleTimeout", .double(10)), ("maxConcurrency", .int(2)),
                                      ("proxy", .string("http://127.0.0.1:3128"))])),
                ("apiKey", .string(Self.keys["a"]!)),
            ])
            guard case .success = connection.call("initialize", initialize, deadline: MonotonicClock.now + 20) else {
                Issue.record("the worker did not initialize: \(process.result.map { "\($0)" } ?? "")")
                continue
            }
            let body = JSON.object([("model", .string("plain")), ("max_tokens", .int(16)),
                                    ("messages", .array([.object([("role", .string("user")), ("content", .string("hi"))])]))])
            let mark = process.denialMark
            let before = try b.stats()["requests"]?.intValue ?? 0
            let answer = connection.call("chat", .object([("call", .string("c1")), ("body", body), ("stream", .bool(false)), ("timeout", .double(10))]),
                                         deadline: MonotonicClock.now + 15)
            switch answer {
            case .success(let r):
                #expect(reachable, "provider a's worker reached port \(target): \(r)")
            case .failure(let e):
                #expect(!reachable, "provider a's worker could not reach its own provider: \(e)")
            }
            if !reachable {
                #expect(try b.stats()["requests"]?.intValue == before)
                let denied = process.denials(since: mark).denials
                #expect(denied.contains { $0.kind == .connection && $0.what.contains("\(b.port)") }, "\(denied)")
            }
        }
    }
}
