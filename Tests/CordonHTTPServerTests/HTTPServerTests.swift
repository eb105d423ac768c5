import CordonHTTP
@testable import CordonHTTPServer
import CordonJSON
import CordonSystem
import Foundation
import Synchronization
import Testing

/// The engine with real clients (curl, Python's http.client) and raw sockets, on a Unix socket
/// and on loopback TCP.
@Suite(.serialized) struct HTTPServerTests {
    static let json = [HTTPHeader(name: "Content-Type", value: "application/json")]

    /// Answers `<method> <path> <body bytes> <peer>` at once.
    static let echo: HTTPServer.Handler = { request, peer, responder in
        responder.respond(status: 200, headers: json, body: Array("\(request.method) \(request.target) \(request.body.count) \(peer)".utf8))
    }

    @Test func curlReusesOneUnixConnectionAndTheHandlerSeesTheUid() throws {
        let h = try ServerHarness(tcp: false, handler: Self.echo)
        defer { h.close() }
        let (args, base) = h.curlTarget
        let urls = (0..<10).map { "\(base)/v1/models?i=\($0)" }
        let r = run("/usr/bin/curl", ["-sS", "-w", "\n"] + args + urls)
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 10)
        #expect(lines.first?.hasPrefix("GET /v1/models?i=0 0 uid \(getuid()) gid \(getgid()) pid ") == true)
        #expect(h.acceptedCount == 1)
    }

    @Test func pythonKeepsOneTCPConnectionWithNoDelay() throws {
        let h = try ServerHarness(tcp: true, handler: Self.echo)
        defer { h.close() }
        let r = run("/usr/bin/env", ["python3", clientsScript, "keepalive", "\(h.port)", "10"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 10 && lines.allSatisfy { $0.hasPrefix("200 POST /v1/chat/completions ") })
        // The same client port every time: one connection.
        #expect(Set(lines.map { $0.split(separator: " ").last! }).count == 1)
        #expect(h.accepted.withLock { $0 } == [1])
    }

    @Test func pipelinedRequestsAreServedInOrderOneAtATime() throws {
        let busy = Atomic<Int>(0), most = Atomic<Int>(0)
        let h = try ServerHarness(tcp: false) { request, _, responder in
            let now = busy.add(1, ordering: .relaxed).newValue
            _ = most.max(now, ordering: .relaxed)
            // The first takes longest: answered out of order if they ran together.
            usleep(request.target == "/1" ? 100_000 : 1000)
            busy.subtract(1, ordering: .relaxed)
            responder.respond(status: 200, body: Array(request.target.utf8))
        }
        defer { h.close() }
        let c = try h.connect()
        c.send((1...3).map { "GET /\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined())
        var bodies: [String] = []
        var stream: [UInt8] = []
        _ = c.read { got in
            stream = got
            var rest = got[...]
            bodies = []
            while let r = Response(Array(rest)) { bodies.append(r.text); rest = rest.dropFirst(r.length) }
            return bodies.count == 3
        }
        #expect(bodies == ["/1", "/2", "/3"], "\(String(decoding: stream, as: UTF8.self))")
        let concurrent = most.load(ordering: .relaxed)
        #expect(concurrent == 1)
    }

    @Test func chunkedRequestBodiesFromCurlAndRaw() throws {
        let h = try ServerHarness(tcp: true) { request, _, responder in
            responder.respond(status: 200, body: request.body)
        }
        defer { h.close() }
        let (args, base) = h.curlTarget
        let file = h.directory + "/body"
        let payload = String(repeating: "0123456789", count: 10_000)
        try payload.write(toFile: file, atomically: false, encoding: .utf8)
        defer { unlink(file) }
        let r = run("/usr/bin/curl", ["-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file)"] + args + ["\(base)/v1/feedback"])
        #expect(r.status == 0 && r.out == payload, "\(r.err)")
        let c = try h.connect()
        c.send("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        let response = c.response()
        #expect(response?.status == 200 && response?.text == "abcde")
    }

    @Test func aBodyOverTheLimitIs413() throws {
        var configuration = HTTPServerConfiguration()
        configuration.limits.maxBody = 1 << 20
        let h = try ServerHarness(tcp: true, configuration, handler: Self.echo)
        defer { h.close() }
        let c = try h.connect()
        c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(2 << 20)\r\n\r\n")
        c.send([UInt8](repeating: 0x41, count: 100_000))
        let response = c.response()
        #expect(response?.status == 413)
        let error = response.flatMap { try? JSON.parse($0.body) }?["error"]
        #expect(error?["type"]?.stringValue == "invalid_request_error" && error?["message"]?.stringValue?.contains("limit") == true)
        #expect(response?.headers.first("connection") == "close")
        #expect(c.closedByServer())

        // And as curl sees it, body and all (it waits for 100 Continue before a large body).
        let file = h.directory + "/big"
        _ = FileManager.default.createFile(atPath: file, contents: Data(count: 2 << 20))
        defer { unlink(file) }
        let (args, base) = h.curlTarget
        let r = run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@\(file)"] + args + ["\(base)/v1/chat/completions"])
        #expect(r.out == "413", "\(r.err)")
    }

    @Test func malformedHeadsAreAnsweredAndClosed() throws {
        var configuration = HTTPServerConfiguration()
        configuration.limits.maxHead = 2048
        let h = try ServerHarness(tcp: false, configuration, handler: Self.echo)
        defer { h.close() }
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nX: \u{e9}\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "y", count: 3000) + "\r\n\r\n", 431),
            ("GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X: y\r\n", count: 101) + "\r\n", 431),
            ("GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
        ]
        for (request, status) in cases {
            let c = try h.connect()
            c.send(request)
            let response = c.response()
            #expect(response?.status == status, "\(request.prefix(60))")
            #expect(response?.headers.first("content-type") == "application/json")
            #expect(c.closedByServer(), "\(request.prefix(60))")
        }
    }

    @Test func expectContinueIsAnswered() throws {
        let h = try ServerHarness(tcp: false, handler: Self.echo)
        defer { h.close() }
        let c = try h.connect()
        c.send("POST /v1/feedback HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        #expect(c.response()?.status == 100)
        c.send("abcd")
        #expect(c.response()?.text.hasPrefix("POST /v1/feedback 4 ") == true)
    }

    @Test func aSlowRequestGets408AndAnIdleConnectionCloses() throws {
        var configuration = HTTPServerConfiguration()
        configuration.requestSeconds = 0.5
        configuration.idleSeconds = 0.5
        let h = try ServerHarness(tcp: true, configuration, handler: Self.echo)
        defer { h.close() }
        let slow = try h.connect()
        let start = MonotonicClock.now
        slow.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        usleep(200_000)
        slow.send("Content-Length: 10\r\n")  // a byte now and then does not extend the deadline
        let response = slow.response(timeout: 3)
        #expect(response?.status == 408)
        #expect(slow.closedByServer(timeout: 3))
        #expect(MonotonicClock.now - start < 2.5)

        let idle = try h.connect()
        idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(idle.response()?.status == 200)
        #expect(idle.closedByServer(timeout: 3))
    }

    @Test func overTheCapTheOldestIdleGoesElse503() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 2
        let gate = Gate()
        let waiting = Mutex(0)
        let h = try ServerHarness(tcp: true, configuration) { request, _, responder in
            if request.target == "/wait" {
                waiting.withLock { $0 += 1 }
                gate.wait()
            }
            responder.respond(status: 200, body: Array(request.target.utf8))
        }
        defer { h.close() }
        let first = try h.connect(), second = try h.connect()
        first.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(first.response()?.text == "/a")
        second.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(second.response()?.text == "/b")
        // Both idle: the third takes the slot of the first, which was idle longest.
        let third = try h.connect()
        #expect(first.closedByServer())
        third.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        second.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        let deadline = MonotonicClock.now + 5
        while waiting.withLock({ $0 }) < 2 && MonotonicClock.now < deadline { usleep(5000) }
        // Both busy: a fourth is refused.
        let fourth = try h.connect()
        let refused = fourth.response()
        #expect(refused?.status == 503)
        #expect(fourth.closedByServer())
        gate.open()
        #expect(third.response()?.text == "/wait" && second.response()?.text == "/wait")
    }

    /// A handler's thread writes a small response itself and the loop takes the connection back
    /// a step later: in between the client has the whole response and may have moved on, so
    /// the connection is idle then already. Here the loop is held between the two steps while a
    /// newcomer arrives over the cap (the other slot busy): it takes the answered connection's
    /// slot instead of being refused (in CI, a loaded machine once made that gap long enough).
    @Test func aConnectionWhoseResponseIsAllQueuedIsIdleBeforeTheLoopTakesItBack() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 2
        let holding = Gate(), hold = Gate(), stalled = Gate(), release = Gate()
        let loop = Mutex<EventLoop?>(nil)
        let h = try ServerHarness(tcp: true, configuration) { request, _, responder in
            switch request.target {
            case "/hold":
                holding.open()
                hold.wait(10)
            case "/stall":
                // The loop runs this job and waits in it; the loop's step of this response
                // queues behind it, for the loop's next round, after the next accept.
                loop.withLock { $0 }?.execute {
                    stalled.open()
                    release.wait(10)
                }
                stalled.wait(10)
            default:
                break
            }
            responder.respond(status: 200, body: Array(request.target.utf8))
        }
        loop.withLock { $0 = h.server.loop }
        defer {
            release.open()
            hold.open()
            h.close()
        }
        let busy = try h.connect()
        busy.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(holding.wait(10))
        let answered = try h.connect()
        answered.send("GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(answered.response()?.text == "/stall")
        // Queued for accept while the loop is held; accepted in the loop's next round.
        let newcomer = try h.connect()
        release.open()
        #expect(answered.closedByServer())
        newcomer.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(newcomer.response()?.text == "/c")
        hold.open()
        #expect(busy.response()?.text == "/hold")
    }

    /// Connections that trickle a request in cannot keep the slots from a client (on TCP any
    /// local user may connect, and no uid caps them): past a second unfinished, the oldest is
    /// closed for a newcomer.
    @Test func overTheCapATricklingRequestMakesRoom() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 2
        let h = try ServerHarness(tcp: true, configuration) { request, _, responder in
            responder.respond(status: 200, body: Array(request.target.utf8))
        }
        defer { h.close() }
        let slow = try h.connect(), slower = try h.connect()
        slower.send("GET /never HTTP/1.1\r\nHost: x\r\n")
        usleep(100_000)
        slow.send("GET /never HTTP/1.1\r\nHost: x\r\n")
        // Within the first second they are protected: a newcomer is refused.
        let early = try h.connect()
        #expect(early.response()?.status == 503)
        usleep(1_200_000)
        let client = try h.connect()
        client.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(client.response()?.text == "/ok")
        #expect(slower.closedByServer())
    }

    @Test func perUserCapOnTheUnixSocket() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnectionsPerUser = 1
        let gate = Gate()
        let h = try ServerHarness(tcp: false, configuration) { _, _, responder in
            gate.wait()
            responder.respond(status: 200)
        }
        defer { h.close() }
        let busy = try h.connect()
        busy.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(100_000)
        let second = try h.connect()
        let refused = second.response()
        #expect(refused?.status == 503 && refused?.text.contains("uid \(getuid())") == true)
        gate.open()
        #expect(busy.response()?.status == 200)
    }

    @Test func serverSentEventsArriveAsWritten() throws {
        let gate = Gate()
        let h = try ServerHarness(tcp: true) { _, _, responder in
            responder.start(status: 200, headers: [HTTPHeader(name: "Content-Type", value: "text/event-stream")])
            responder.write(Array("data: {\"n\":1}\n\n".utf8))
            // The second event only once the client has read the first.
            gate.wait()
            responder.write(Array("data: {\"n\":2}\n\n".utf8))
            responder.write(Array("data: [DONE]\n\n".utf8))
            responder.finish()
        }
        defer { h.close() }
        let c = try h.connect()
        c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        let first = c.read { String(decoding: $0, as: UTF8.self).contains("data: {\"n\":1}") }
        #expect(String(decoding: first.bytes, as: UTF8.self).contains("data: {\"n\":1}"))
        #expect(!String(decoding: first.bytes, as: UTF8.self).contains("n\":2"))
        gate.open()
        var all = first.bytes
        all += c.read { String(decoding: all + $0, as: UTF8.self).hasSuffix("0\r\n\r\n") }.bytes
        let response = Response(all)
        #expect(response?.headers.first("transfer-encoding") == "chunked")
        #expect(response?.text == "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: [DONE]\n\n")

        // Python's http.client reads it line by line as it comes.
        let python = try ServerHarness(tcp: true) { _, _, responder in
            responder.start(status: 200, headers: [HTTPHeader(name: "Content-Type", value: "text/event-stream")])
            for i in 0..<3 {
                responder.write(Array("data: \(i)\n\n".utf8))
                usleep(300_000)
            }
            responder.finish()
        }
        defer { python.close() }
        let r = run("/usr/bin/env", ["python3", clientsScript, "sse", "\(python.port)"])
        let events = r.out.split(separator: "\n").filter { $0.contains("data: ") }
        #expect(events.count == 3, "\(r.out) \(r.err)")
        // The first event came long before the handler finished (0.9 s).
        #expect((Double(events.first?.split(separator: " ").first ?? "9") ?? 9) < 0.5, "\(r.out)")
    }

    @Test func aClientLeavingMidStreamFailsWritesAndFiresOnClose() throws {
        let closed = Atomic<Bool>(false)
        let failedWrite = Atomic<Int>(-1)
        let done = Gate()
        let h = try ServerHarness(tcp: false) { _, _, responder in
            responder.onClose { closed.store(true, ordering: .releasing) }
            responder.start(status: 200, headers: [HTTPHeader(name: "Content-Type", value: "text/event-stream")])
            for i in 0..<500 {
                if !responder.write(Array("data: \(i)\n\n".utf8)) {
                    failedWrite.store(i, ordering: .releasing)
                    break
                }
                usleep(10_000)
            }
            done.open()
        }
        defer { h.close() }
        do {
            let c = try h.connect()
            c.send("GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = c.read { String(decoding: $0, as: UTF8.self).contains("data: 2\n") }
        }  // closed here
        #expect(done.wait(5))
        let fired = closed.load(ordering: .acquiring)
        #expect(fired)
        let at = failedWrite.load(ordering: .acquiring)
        #expect(at > 0 && at < 100, "write failed at \(at)")
    }

    @Test func aHandlerAnswersLaterFromAnotherThread() throws {
        let h = try ServerHarness(tcp: true) { request, _, responder in
            // The handler returns at once; the answer comes from a thread of its own.
            _ = try? Threads.detach("later", signals: .noSIGPIPE) {
                usleep(200_000)
                responder.respond(status: 200, headers: Self.json, body: Array("{\"late\":true}".utf8))
            }
        }
        defer { h.close() }
        let (args, base) = h.curlTarget
        let start = MonotonicClock.now
        let r = run("/usr/bin/curl", ["-sS"] + args + ["\(base)/v1/models"])
        #expect(r.out == "{\"late\":true}", "\(r.err)")
        #expect(MonotonicClock.now - start >= 0.2)
    }

    @Test func aWriterBlocksForAReaderThatDoesNotReadThenFails() throws {
        var configuration = HTTPServerConfiguration()
        configuration.highWater = 64 * 1024
        configuration.sendSeconds = 1
        let result = Mutex<(written: Int, ok: Bool, seconds: Double)?>(nil)
        let done = Gate()
        let h = try ServerHarness(tcp: false, configuration) { _, _, responder in
            responder.start(status: 200)
            let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
            var written = 0
            let start = MonotonicClock.now
            var ok = true
            while ok && written < 64 << 20 {
                ok = responder.write(chunk)
                if ok { written += chunk.count }
            }
            result.withLock { $0 = (written, ok, MonotonicClock.now - start) }
            done.open()
        }
        defer { h.close() }
        let c = try h.connect()
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(done.wait(10))
        let r = result.withLock { $0 }
        // Held to the socket buffers plus the high-water mark, then given up after sendSeconds.
        #expect(r?.ok == false)
        #expect((r?.written ?? .max) < 16 << 20)
        #expect((r?.seconds ?? 0) >= 1)
        #expect(c.closedByServer(timeout: 10))
    }

    @Test func stopLetsAResponseInFlightFinish() throws {
        let gate = Gate()
        let h = try ServerHarness(tcp: false) { _, _, responder in
            gate.wait()
            responder.respond(status: 200, body: Array("finished".utf8))
        }
        let c = try h.connect()
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(100_000)
        let idle = try h.connect()
        let stopper = try Threads.start("stopper", signals: .noSIGPIPE) { h.close() }
        usleep(200_000)
        #expect(idle.closedByServer())
        #expect((try? RawClient(unix: h.socketPath)) == nil)
        gate.open()
        let response = c.response()
        #expect(response?.text == "finished" && response?.headers.first("connection") == "close")
        stopper.join()
        #expect(h.server.connectionCount == 0)
    }

    /// Not a test of a bound: prints the median of 1000 sequential small requests on one
    /// keep-alive connection (Python's http.client on loopback TCP), for the record.
    @Test func sequentialRequestLatency() throws {
        let h = try ServerHarness(tcp: true) { _, _, responder in
            responder.respond(status: 200, headers: Self.json, body: Array("{\"object\":\"list\",\"data\":[]}".utf8))
        }
        defer { h.close() }
        let r = run("/usr/bin/env", ["python3", clientsScript, "bench", "\(h.port)", "1000"])
        #expect(r.status == 0, "\(r.err)")
        print("http_clients.py bench 1000: p50 p95 ms =", r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(h.acceptedCount == 1)
    }
}

/// Framing the engine chooses for a streamed response, by what the client speaks.
@Suite(.serialized) struct HTTPResponseFramingTests {
    static let stream: HTTPServer.Handler = { _, _, responder in
        responder.start(status: 200, headers: [HTTPHeader(name: "Content-Type", value: "text/event-stream")])
        responder.write(Array("data: a\n\n".utf8))
        responder.write(Array("data: b\n\n".utf8))
        responder.finish()
    }

    @Test func anHTTP10ClientGetsTheStreamUntilClose() throws {
        let h = try ServerHarness(tcp: false, handler: Self.stream)
        defer { h.close() }
        let c = try h.connect()
        c.send("GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        let (bytes, closed) = c.read { _ in false }
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(closed && text.hasSuffix("\r\n\r\ndata: a\n\ndata: b\n\n") && text.contains("Connection: close\r\n"), "\(text)")
        #expect(!text.lowercased().contains("transfer-encoding"))
    }

    @Test func aHeadRequestGetsNoBodyAndTheConnectionGoesOn() throws {
        let h = try ServerHarness(tcp: false) { _, _, responder in responder.respond(status: 200, body: Array("body".utf8)) }
        defer { h.close() }
        let c = try h.connect()
        c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let (bytes, _) = c.read { String(decoding: $0, as: UTF8.self).hasSuffix("body") }
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.components(separatedBy: "Content-Length: 4\r\n").count == 3 && text.components(separatedBy: "body").count == 2, "\(text)")
    }
}
