import CordonConfig
import CordonJSON
import CordonMCP
import CordonSandbox
import CordonServices
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real `mcp-server-time` (PyPI, `make pydeps`) in a sandbox of the shipped `python-tool`
/// policy, driven through the pool by `MCPServiceClient`, in each protocol revision Cordon
/// offers it: negotiated, listed, called, pinged, refused for bad arguments.
@Suite(.enabled(if: geteuid() == 0, "needs root: real sandboxes"), .serialized)
struct MCPServiceClientTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let venv = "\(repo)/.build/pydeps/mcp"

    static func definition(revisions: [MCPRevision]) throws -> ServicePool.Definition {
        try #require(FileManager.default.fileExists(atPath: "\(venv)/bin/python3"), "no \(venv): run make pydeps")
        let dir = "/tmp/cordon-mcp-tests-\(getpid())"
        mkdir(dir, 0o755)
        let policy = "\(dir)/time-tool.toml"
        try """
            [policy]
            name = "time-tool"
            extends = ["python-tool"]
            [filesystem]
            read_only = ["\(venv)", { path = "/usr/share/zoneinfo", optional = true }]
            [limits]
            wall_time = "1h"
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy(policy), cacheDir: nil, callerEnvironment: [:])
        return ServicePool.Definition(settings: ServicePool.Settings(), spec: { _ in
            SandboxedProcess.Spec(plan: plan, argv: ["\(venv)/bin/python3", "-m", "mcp_server_time", "--local-timezone", "UTC"],
                                  environment: SandboxEnvironment(runtimeDir: JSONRPCConnectionTests.runtimeDir))
        }, connect: { process, _ in
            try MCPServiceClient(process: process, clientInfo: MCPImplementation(name: "cordon-test", version: "1"), revisions: revisions)
        })
    }

    static let key = ServicePool.Key(service: "time", owner: 1000)
    static func deadline(_ s: Double = 30) -> Double { MonotonicClock.now + s }

    final class Outcome: @unchecked Sendable {
        let box = NSCondition()
        var value: Result<MCPCallToolOutcome, MCPServiceClient.CallFailure>?
        func set(_ v: Result<MCPCallToolOutcome, MCPServiceClient.CallFailure>) { box.lock(); value = v; box.broadcast(); box.unlock() }
        func wait() -> Result<MCPCallToolOutcome, MCPServiceClient.CallFailure>? {
            box.lock(); defer { box.unlock() }
            let until = Date().addingTimeInterval(30)
            while value == nil && box.wait(until: until) {}
            return value
        }
    }

    static func call(_ client: MCPServiceClient, _ name: String, _ arguments: JSON) -> Result<MCPCallToolOutcome, MCPServiceClient.CallFailure>? {
        let outcome = Outcome()
        client.callTool(name, arguments: arguments, deadline: deadline()) { outcome.set($0) }
        return outcome.wait()
    }

    @Test(arguments: [[MCPRevision.v2026_07_28, .v2025_11_25], [.v2025_11_25]])
    func timeNegotiatesListsAndAnswers(revisions: [MCPRevision]) throws {
        let pool = try ServicePool(definitions: ["time": try Self.definition(revisions: revisions)])
        defer { pool.stopAll(until: Self.deadline()) }
        let lease = try pool.lease(Self.key, deadline: Self.deadline()).get()
        defer { lease.release() }
        let client = try #require(lease.client as? MCPServiceClient)
        let tools = lease.handshake["tools"]?.stringArrayValue ?? []
        #expect(tools.contains("get_current_time") && tools.contains("convert_time"), "\(lease.handshake)")
        // The servers of mcp 2.3 speak both: each offer is taken at its first choice.
        #expect(lease.handshake["revision"]?.stringValue == revisions[0].version, "\(lease.handshake)")
        guard case .success(.complete(let result))? = Self.call(client, "get_current_time", .object([("timezone", .string("UTC"))])) else {
            Issue.record("get_current_time failed"); return
        }
        #expect(!result.isError)
        let text = result.content.compactMap { block -> String? in if case .text(let t, _) = block { return t }; return nil }.joined()
        #expect(text.contains("UTC") && text.contains("datetime"), "\(text)")
        #expect(client.healthy(deadline: Self.deadline()))
    }

    @Test func badArgumentsAreAToolErrorAndTheInstanceGoesOn() throws {
        let pool = try ServicePool(definitions: ["time": try Self.definition(revisions: [.v2026_07_28, .v2025_11_25])])
        defer { pool.stopAll(until: Self.deadline()) }
        let lease = try pool.lease(Self.key, deadline: Self.deadline()).get()
        defer { lease.release() }
        let client = try #require(lease.client as? MCPServiceClient)
        let bad = Self.call(client, "get_current_time", .object([("timezone", .string("Not/AZone"))]))
        switch bad {
        case .success(.complete(let r))?: #expect(r.isError)
        case .failure(.server)?: break  // a JSON-RPC error is as good: the call failed, named
        default: Issue.record("unexpected: \(String(describing: bad))")
        }
        guard case .success(.complete(let ok))? = Self.call(client, "get_current_time", .object([("timezone", .string("Europe/Paris"))])) else {
            Issue.record("the next call failed"); return
        }
        #expect(!ok.isError)
    }
}
