import CordonHTTP
@testable import CordonHTTPServer
import CordonJSON
import CordonSystem
import Foundation
import Synchronization
import Testing

/// The official OpenAI Python client (openai on httpx; `make pydeps` installs it in
/// .build/pydeps/openai) against the engine, over TCP and over the Unix socket. The handler
/// answers in OpenAI's wire format with fixed content: the engine is what is under test.
@Suite(.serialized) struct OpenAIClientTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let python = "\(repo)/.build/pydeps/openai/bin/python3"
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("openai_client.py").path

    /// What the handler saw: each request's Authorization header and peer.
    final class Seen: @unchecked Sendable {
        let calls = Mutex<[(authorization: String?, peer: HTTPPeer)]>([])
    }

    static func handler(_ seen: Seen) -> HTTPServer.Handler {
        { request, peer, responder in
            seen.calls.withLock { $0.append((request.header("authorization"), peer)) }
            let json = [HTTPHeader(name: "Content-Type", value: "application/json")]
            switch (request.method, request.path) {
            case ("GET", "/v1/models"):
                responder.respond(status: 200, headers: json, body: Array("""
                    {"object":"list","data":[{"id":"m","object":"model","created":0,"owned_by":"cordon"}]}
                    """.utf8))
            case ("POST", "/v1/chat/completions"):
                let body = try? JSON.parse(request.body)
                guard body?["stream"] == .bool(true) else {
                    responder.respond(status: 200, headers: json, body: Array("""
                        {"id":"c1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}
                        """.utf8))
                    return
                }
                responder.start(status: 200, headers: [HTTPHeader(name: "Content-Type", value: "text/event-stream")])
                for (i, piece) in ["hel", "lo", "!"].enumerated() {
                    if i > 0 { usleep(300_000) }
                    responder.write(Array("""
                        data: {"id":"c2","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"\(piece)"},"finish_reason":null}]}\n\n
                        """.utf8))
                }
                responder.write(Array("""
                    data: {"id":"c2","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n
                    """.utf8))
                responder.finish()
            default:
                responder.respond(status: 404, error: "no route \(request.method) \(request.path)")
            }
        }
    }

    func calls(tcp: Bool) throws {
        try #require(FileManager.default.fileExists(atPath: Self.python), "no \(Self.python): run make pydeps")
        let seen = Seen()
        let h = try ServerHarness(tcp: tcp, handler: Self.handler(seen))
        defer { h.close() }
        let r = run(Self.python, [Self.script] + (tcp ? ["tcp", "\(h.port)"] : ["unix", h.socketPath]) + ["calls"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.prefix(2) == ["models m", "reply hello 2"], "\(r.out)")
        let deltas = lines.filter { $0.hasPrefix("delta ") }.map { $0.split(separator: " ") }
        #expect(deltas.map { $0.last.map(String.init) ?? "" } == ["hel", "lo", "!"], "\(r.out)")
        // The first delta arrived before the handler wrote the second (0.3 s later).
        #expect((Double(deltas.first?[1] ?? "9") ?? 9) < 0.25, "\(r.out)")
        let all = seen.calls.withLock { $0 }
        #expect(all.count == 3 && all.allSatisfy { $0.authorization == "Bearer test-token" })
        if !tcp { #expect(all.allSatisfy { $0.peer.uid == getuid() }) }
        // One keep-alive connection for the three calls.
        #expect(h.acceptedCount == 1)
    }

    @Test func overTCP() throws { try calls(tcp: true) }

    @Test func overTheUnixSocket() throws { try calls(tcp: false) }

    /// Not a test of a bound: prints the median of 1000 sequential `models.list` calls, for the
    /// record.
    @Test func sequentialLatency() throws {
        try #require(FileManager.default.fileExists(atPath: Self.python), "no \(Self.python): run make pydeps")
        let h = try ServerHarness(tcp: true, handler: Self.handler(Seen()))
        defer { h.close() }
        let r = run(Self.python, [Self.script, "tcp", "\(h.port)", "bench", "1000"])
        #expect(r.status == 0, "\(r.err)")
        print("openai_client.py bench 1000 (models.list over TCP): p50 p95 ms =", r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(h.acceptedCount == 1)
    }
}
