import CordonJSON
import CordonModels
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The built `cordon-model-worker` against `provider_standin.py` (a real HTTP/1.1 server
/// speaking OpenAI's and Anthropic's wire formats on 127.0.0.1), driven over its stdio as
/// cordond drives it. No sandbox here: that is the daemon's part.
@Suite(.serialized) struct ModelWorkerTests {
    /// The error a failed chat answers with, read back as cordond reads it.
    func providerError(_ answer: JSON) throws -> ProviderError {
        #expect(answer["error"]?["code"] == .int(-32000), "\(answer.text)")
        let error = try ProviderError(json: try #require(answer["error"]?["data"]))
        #expect(answer["error"]?["message"] == .string(error.description))
        return error
    }

    /// Accumulates a call's chunks as cordond does: each re-parsed with `OpenAIWire.parseChunk`.
    func accumulate(_ chunks: [JSON], call: String) throws -> ChatResult {
        var accumulator = ChatAccumulator()
        for chunk in chunks {
            #expect(chunk["id"] == .string(call) && chunk["object"] == .string("chat.completion.chunk"))
            if let delta = try OpenAIWire.parseChunk(chunk.text) { try accumulator.add(delta) }
        }
        return accumulator.result
    }

    @Test func openAIAnswerAndStream() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)

        let plain = try worker.chat("cmpl-1", model: "plain")
        let result = try #require(plain["result"], "\(plain.text)")
        #expect(result["status"] == .int(200) && result["upstreamID"] == .string("chatcmpl-plain"))
        #expect((result["firstByte"]?.doubleValue ?? -1) >= 0 && (result["total"]?.doubleValue ?? -1) >= (result["firstByte"]?.doubleValue ?? 0))
        let completion = try #require(result["completion"])
        #expect(completion["id"] == .string("cmpl-1"))
        let parsed = try OpenAIWire.parseResponse(Array(completion.text.utf8))
        #expect(parsed.content == "Hello from the stand-in" && parsed.finishReason == .stop)
        #expect(parsed.usage == ChatUsage(promptTokens: 9, completionTokens: 5))
        var seen = try standin.stats()["last"]
        #expect(seen?["path"] == .string("/v1/chat/completions"))
        #expect(seen?["headers"]?["authorization"] == .string("Bearer \(WorkerProcess.key)"))
        let sentBody = try JSON.parse(try #require(seen?["body"]?.stringValue))
        #expect(sentBody["stream"] == .bool(false) && sentBody["stream_options"] == nil && sentBody["max_tokens"] == .int(64))

        let streamed = try worker.chat("cmpl-2", model: "tools-stream", stream: true)
        let end = try #require(streamed["result"], "\(streamed.text)")
        #expect(end["completion"] == nil && end["finishReason"] == .string("tool_calls") && end["upstreamID"] == .string("chatcmpl-standin"))
        #expect(end["usage"] == .object([("prompt_tokens", .int(21)), ("completion_tokens", .int(13))]))
        let answer = try accumulate(worker.chunks(of: "cmpl-2"), call: "cmpl-2")
        #expect(answer.content == "Let me look." && answer.finishReason == .toolCalls)
        #expect(answer.toolCalls == [ChatToolCall(id: "call_a", name: "get_weather", arguments: #"{"city":"Paris"}"#),
                                     ChatToolCall(id: "call_b", name: "get_time", arguments: #"{"tz":"CET"}"#)])
        #expect(answer.usage?.totalTokens == 34)
        seen = try standin.stats()["last"]
        let streamBody = try JSON.parse(try #require(seen?["body"]?.stringValue))
        #expect(streamBody["stream"] == .bool(true) && streamBody["stream_options"]?["include_usage"] == .bool(true))
        #expect(seen?["headers"]?["accept"] == .string("text/event-stream"))
    }

    @Test func anthropicAnswerAndStream() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "anthropic", baseURL: standin.baseURL)

        let plain = try worker.chat("cmpl-a1", model: "plain", extra: [("temperature", .double(0.5))])
        let completion = try #require(plain["result"]?["completion"], "\(plain.text)")
        let parsed = try OpenAIWire.parseResponse(Array(completion.text.utf8))
        #expect(parsed.content == "Hello from the stand-in" && parsed.finishReason == .stop && parsed.usage?.totalTokens == 14)
        #expect(plain["result"]?["upstreamID"] == .string("msg_plain"))
        let seen = try standin.stats()["last"]
        #expect(seen?["path"] == .string("/v1/messages"))
        #expect(seen?["headers"]?["x-api-key"] == .string(WorkerProcess.key) && seen?["headers"]?["authorization"] == nil)
        #expect(seen?["headers"]?["anthropic-version"] == .string(AnthropicWire.version))
        let sent = try JSON.parse(try #require(seen?["body"]?.stringValue))
        #expect(sent["max_tokens"] == .int(64) && sent["messages"]?.arrayValue?.count == 1 && sent["stream"] == nil)

        let streamed = try worker.chat("cmpl-a2", model: "tools-stream", stream: true)
        let end = try #require(streamed["result"], "\(streamed.text)")
        #expect(end["finishReason"] == .string("tool_calls") && end["upstreamID"] == .string("msg_standin"))
        #expect(end["usage"] == .object([("prompt_tokens", .int(30)), ("completion_tokens", .int(17))]))
        let answer = try accumulate(worker.chunks(of: "cmpl-a2"), call: "cmpl-a2")
        #expect(answer.content == "Checking now." && answer.finishReason == .toolCalls)
        #expect(answer.toolCalls == [ChatToolCall(id: "toolu_1", name: "get_weather", arguments: #"{"city": "Oslo"}"#)])

        // A body the Messages API cannot carry is the daemon's mistake: invalid params.
        let refused = try worker.call("chat", WorkerProcess.chatParams(call: "cmpl-a3", model: "plain", stream: false,
                                                                        extra: [("response_format", .object([("type", .string("json_object"))]))]))
        #expect(refused["error"]?["code"] == .int(-32602), "\(refused.text)")
    }

    /// Each failure a provider can send becomes the ProviderError the gateway acts on.
    @Test func failuresAreProviderErrors() throws {
        let standin = try StandIn()
        let openai = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        let limited = try providerError(openai.chat("f1", model: "rate-limited"))
        #expect(limited.kind == .rateLimited && limited.status == 429 && limited.retryAfter == .seconds(7) && limited.providerCode == "rate_limit_exceeded")
        let crashed = try providerError(openai.chat("f2", model: "server-error"))
        #expect(crashed.kind == .serverError && crashed.status == 500 && crashed.isRetryable)
        let overloaded = try providerError(openai.chat("f3", model: "overloaded", stream: true))
        #expect(overloaded.kind == .overloaded && overloaded.status == 529)
        let malformed = try providerError(openai.chat("f4", model: "malformed"))
        #expect(malformed.kind == .malformedReply && malformed.status == nil)
        let missing = try providerError(openai.chat("f5", model: "no-such-model"))
        #expect(missing.kind == .notFound && missing.providerCode == "model_not_found")
        // A stream cut in the middle of a chunk, and one that ends cleanly before its answer does.
        let cut = try providerError(openai.chat("f6", model: "truncated", stream: true))
        #expect(cut.kind == .connection, "\(cut)")
        let unfinished = try providerError(openai.chat("f7", model: "no-end", stream: true))
        #expect(unfinished.kind == .connection && unfinished.message.contains("ended before"), "\(unfinished)")
        // The deltas that came before the cut were forwarded; the error ends the call.
        #expect(!openai.chunks(of: "f7").isEmpty)

        let anthropic = try WorkerProcess(kind: "anthropic", baseURL: standin.baseURL)
        let aLimited = try providerError(anthropic.chat("f8", model: "rate-limited", stream: true))
        #expect(aLimited.kind == .rateLimited && aLimited.providerType == "rate_limit_error" && aLimited.retryAfter == .seconds(7))
        let aOverloaded = try providerError(anthropic.chat("f9", model: "overloaded"))
        #expect(aOverloaded.kind == .overloaded && aOverloaded.providerType == "overloaded_error" && aOverloaded.message == "Overloaded")

        // Nothing listens: a connection failure, not a crash.
        let nowhere = try WorkerProcess(kind: "openai", baseURL: "http://127.0.0.1:9/v1")
        let refused = try providerError(nowhere.chat("f10", model: "plain"))
        #expect(refused.kind == .connection && refused.isRetryable)
        #expect(try openai.call("health")["result"] == .object([("inFlight", .int(0))]))
    }

    /// A stream that goes quiet ends after the idle limit (1 s here), not at the deadline.
    @Test func stalledStreamTimesOut() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL, idleTimeout: 1)
        let start = Date()
        let error = try providerError(worker.chat("s1", model: "stall", stream: true, timeout: 30))
        let took = Date().timeIntervalSince(start)
        #expect(error.kind == .timeout && error.message.contains("sent nothing"), "\(error)")
        #expect(took >= 0.9 && took < 3, "took \(took) s")
    }

    /// 50 MB, announced or streamed: refused at the cap (16 MiB), the worker still serving.
    @Test func replyOverTheCap() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        let start = Date()
        let announced = try providerError(worker.chat("big1", model: "huge"))
        #expect(announced.kind == .malformedReply && announced.message.contains("longer than"), "\(announced)")
        #expect(Date().timeIntervalSince(start) < 2)
        let streamed = try providerError(worker.chat("big2", model: "huge-stream", stream: true, timeout: 30))
        #expect(streamed.kind == .malformedReply && streamed.message.contains("longer than"), "\(streamed)")
        let forwarded = worker.chunks(of: "big2").reduce(0) { $0 + ($1["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue?.utf8.count ?? 0) }
        #expect(forwarded <= ReplyLimits.default.maxBodyBytes)
        #expect(try worker.chat("big3", model: "plain")["result"] != nil)
    }

    /// A valid reply too long to parse on the HTTP client's thread is parsed on one of its own
    /// and answered whole, while short calls around it are answered as usual — whole, and as a
    /// stream (a whole reply given to a stream goes out as its steps).
    @Test func aLargeReplyIsAnsweredWhole() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        let large = try worker.start("chat", WorkerProcess.chatParams(call: "l1", model: "large", stream: false))
        let streamed = try worker.start("chat", WorkerProcess.chatParams(call: "l2", model: "large", stream: true))
        #expect(try worker.chat("l3", model: "plain")["result"] != nil)
        let whole = try #require(try worker.answer(.int(large))["result"])
        let parsed = try OpenAIWire.parseResponse(Array(try #require(whole["completion"]).text.utf8))
        #expect(parsed.content == String(repeating: "y", count: 300_000) && parsed.finishReason == .stop)
        #expect(parsed.usage == ChatUsage(promptTokens: 9, completionTokens: 75_000))
        let end = try #require(try worker.answer(.int(streamed))["result"])
        #expect(end["finishReason"] == .string("stop"))
        #expect(try accumulate(worker.chunks(of: "l2"), call: "l2").content == String(repeating: "y", count: 300_000))
        #expect(try worker.call("health")["result"]?["inFlight"] == .int(0))
    }

    /// A provider that echoes the key in its error: the key appears nowhere the worker writes.
    @Test func echoedKeyIsRedacted() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        let answer = try worker.chat("k1", model: "echo-key")
        let error = try providerError(answer)
        #expect(error.kind == .badRequest && error.message.contains("Incorrect API key provided: [redacted]."), "\(error)")
        #expect(!answer.text.contains(WorkerProcess.key))
        // The stand-in did receive it.
        #expect(try standin.stats()["last"]?["headers"]?["authorization"] == .string("Bearer \(WorkerProcess.key)"))
        try worker.closeInput()
        #expect(worker.exitStatus(within: 5) == 0)
        #expect(worker.stderr.waitForEnd(timeout: 5))
        #expect(worker.stderr.all.contains("[redacted]") && !worker.stderr.all.contains(WorkerProcess.key), "\(worker.stderr.all)")
    }

    /// stdin ends as the last answer is read: the worker exits 0, whichever of its threads lets
    /// go of the session last (the HTTP client's did, once in a few hundred runs, and the
    /// worker died of a trap) — 200 workers, 8 at a time.
    @Test func stdinsEndAfterTheLastAnswerEndsTheWorkerCleanly() throws {
        let standin = try StandIn()
        let base = standin.baseURL
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { lane in
            for round in 0..<25 {
                do {
                    let worker = try WorkerProcess(kind: "openai", baseURL: base)
                    _ = try worker.chat("c\(lane)-\(round)", model: "echo-key")
                    try worker.closeInput()
                    let status = worker.exitStatus(within: 10)
                    _ = worker.stderr.waitForEnd(timeout: 5)
                    if status != 0 { failures.withLock { $0.append("status \(String(describing: status)): \(worker.stderr.all.suffix(400))") } }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        let seen = failures.withLock { $0 }
        #expect(seen.isEmpty, "\(seen.count) of 200: \(seen.first ?? "")")
    }

    /// Ten calls one after another go over one connection (the stand-in counts them).
    @Test func connectionIsKeptAlive() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        for i in 0..<10 {
            #expect(try worker.chat("ka\(i)", model: i % 2 == 0 ? "plain" : "stream", stream: i % 2 == 1)["result"] != nil)
        }
        let stats = try standin.stats()
        #expect(stats["requests"] == .int(10) && stats["connections"] == .int(1), "\(stats.text)")
    }

    /// `cancel` ends a call in flight at once; its chat answers with a timeout ("cancelled").
    @Test func cancelEndsTheCall() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        let id = try worker.start("chat", WorkerProcess.chatParams(call: "c1", model: "slow", stream: false,
                                                                    extra: [("temperature", .double(5))]))
        usleep(300_000)
        #expect(try worker.call("health")["result"]?["inFlight"] == .int(1))
        let start = Date()
        try worker.notify("cancel", .object([("call", .string("c1"))]))
        let error = try providerError(worker.answer(.int(id), timeout: 3))
        #expect(error.kind == .timeout && error.message == "cancelled")
        #expect(Date().timeIntervalSince(start) < 0.5)
        #expect(try worker.call("health")["result"]?["inFlight"] == .int(0))
        // A cancel for no call in flight is ignored.
        try worker.notify("cancel", .object([("call", .string("nobody"))]))
        #expect(try worker.chat("c2", model: "plain")["result"] != nil)
    }

    /// A request over 64 KiB is parsed off the HTTP client's thread, and what follows it waits
    /// its turn: a `cancel` sent right behind a large `chat` still finds the call (were it
    /// handled first, it would find nothing, and the call would run its 5 s).
    @Test func aCancelRightBehindALargeRequestIsHandledAfterIt() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        let large = String(repeating: "a", count: 300 << 10)
        for round in 0..<3 {
            let call = "big\(round)"
            var params = WorkerProcess.chatParams(call: call, model: "slow", stream: false, extra: [("temperature", .double(5))])
            if case .object(var members) = params, let i = members.firstIndex(where: { $0.0 == "body" }), case .object(var body) = members[i].1 {
                body.append(("user", .string(large)))
                members[i].1 = .object(body)
                params = .object(members)
            }
            let start = Date()
            let id = try worker.start("chat", params)
            try worker.notify("cancel", .object([("call", .string(call))]))
            let error = try providerError(worker.answer(.int(id), timeout: 10))
            #expect(error.kind == .timeout && error.message == "cancelled", "\(error)")
            #expect(Date().timeIntervalSince(start) < 2)
        }
        // Small requests are handled again as they come.
        #expect(try worker.chat("after", model: "plain")["result"] != nil)
    }

    /// cordond may be writing a request to a worker whose answers it has not read yet (its
    /// reader sends a fallback's request): the worker keeps reading stdin while its stdout is
    /// full, so neither side waits on the other. Here 4000 requests go in (about 400 KB,
    /// several pipes' worth) before a byte of the answers (about 250 KB) is read.
    @Test func stdinIsReadWhileStdoutIsFull() throws {
        let process = Process()
        let input = Pipe(), output = Pipe()
        process.executableURL = URL(fileURLWithPath: Paths.worker)
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() }; process.waitUntilExit() }
        let inFd = input.fileHandleForWriting.fileDescriptor
        _ = fcntl(inFd, F_SETFL, fcntl(inFd, F_GETFL) | O_NONBLOCK)
        var text = ""
        for i in 0..<4000 { text += "{\"jsonrpc\":\"2.0\",\"id\":\(i),\"method\":\"health\",\"params\":{\"pad\":\"\(String(repeating: "x", count: 40))\"}}\n" }
        let bytes = Array(text.utf8)
        var offset = 0
        let deadline = Date().addingTimeInterval(10)
        while offset < bytes.count && Date() < deadline {
            let n = bytes.withUnsafeBytes { write(inFd, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n; continue }
            var p = pollfd(fd: inFd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 100)
        }
        #expect(offset == bytes.count, "the worker stopped reading stdin after \(offset) of \(bytes.count) bytes")
        try input.fileHandleForWriting.close()
        let answers = output.fileHandleForReading.readDataToEndOfFile()
        let lines = answers.split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == 4000)
        // Each is answered, in order ("initialize first": no setup here).
        let ids = lines.compactMap { try? JSON.parse(Array($0))["id"]?.intValue }
        #expect(ids == (0..<4000).map(Int64.init))
    }

    /// Calls past maxConcurrency are refused at once with -32001; the others complete.
    @Test func concurrencyPastTheMaximum() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL, maxConcurrency: 2)
        let slow: [(String, JSON)] = [("temperature", .double(1))]
        let a = try worker.start("chat", WorkerProcess.chatParams(call: "p1", model: "slow", stream: false, extra: slow))
        let b = try worker.start("chat", WorkerProcess.chatParams(call: "p2", model: "slow", stream: false, extra: slow))
        let busy = try worker.call("chat", WorkerProcess.chatParams(call: "p3", model: "plain", stream: false), timeout: 0.9)
        #expect(busy["error"]?["code"] == .int(-32001), "\(busy.text)")
        let again = try worker.call("chat", WorkerProcess.chatParams(call: "p1", model: "plain", stream: false), timeout: 0.9)
        #expect(again["error"] != nil)
        #expect(try worker.answer(.int(a))["result"] != nil)
        #expect(try worker.answer(.int(b))["result"] != nil)
        #expect(try worker.chat("p4", model: "plain")["result"] != nil)
    }

    /// stdin's end aborts the calls in flight and ends the worker with status 0.
    @Test func endOfInputExits() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess(kind: "openai", baseURL: standin.baseURL)
        try worker.start("chat", WorkerProcess.chatParams(call: "e1", model: "slow", stream: false, extra: [("temperature", .double(5))]))
        usleep(200_000)
        try worker.closeInput()
        #expect(worker.exitStatus(within: 2) == 0)
    }

    /// What is not a well-formed request is answered (id null where it has none) and the
    /// worker goes on.
    @Test func protocolErrors() throws {
        let standin = try StandIn()
        let worker = try WorkerProcess()
        #expect(try worker.call("health")["error"]?["code"] == .int(-32002))
        #expect(try worker.call("initialize", worker.initializeParams(kind: "openai", baseURL: standin.baseURL, key: "short"))["error"]?["code"]
                == .int(-32602))
        #expect(try worker.call("initialize", .object([("protocol", .int(2))]))["error"]?["code"] == .int(-32602))
        #expect(try worker.call("initialize", worker.initializeParams(kind: "gemini", baseURL: standin.baseURL, key: nil))["error"]?["code"]
                == .int(-32602))
        let ok = try worker.call("initialize", worker.initializeParams(kind: "openai", baseURL: standin.baseURL, key: WorkerProcess.key))
        #expect(ok["result"]?["worker"] == .string("cordon-model-worker") && ok["result"]?["protocol"] == .int(1))
        #expect(ok["result"]?["curl"]?.stringValue?.hasPrefix("libcurl/") == true)
        #expect(try worker.call("initialize", worker.initializeParams(kind: "openai", baseURL: standin.baseURL, key: nil))["error"] != nil)

        try worker.sendLine("{not json")
        #expect(try worker.answer(.null)["error"]?["code"] == .int(-32700))
        try worker.sendLine(#"{"jsonrpc":"1.0","id":1,"method":"health"}"#)
        #expect(try worker.answer(.null)["error"]?["code"] == .int(-32600))
        try worker.sendLine(#"{"jsonrpc":"2.0","id":"x","method":"chat","params":{"call":"bad\nid","body":{}}}"#)
        #expect(try worker.answer(.string("x"))["error"]?["code"] == .int(-32602))
        try worker.sendLine(String(repeating: "x", count: (8 << 20) + 10))
        #expect(try worker.answer(.null)["error"]?["code"] == .int(-32006))
        #expect(try worker.call("no.such.method")["error"]?["code"] == .int(-32601))
        #expect(try worker.call("health")["result"] == .object([("inFlight", .int(0))]))
    }

    /// Linked with the Swift runtime inside: in a sandbox it needs only /usr's C libraries.
    @Test func needsNoSwiftLibraries() throws {
        let ldd = Process()
        let out = Pipe()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [Paths.worker]
        ldd.standardOutput = out
        try ldd.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        #expect(ldd.terminationStatus == 0 && text.contains("libcurl"))
        #expect(!text.contains("swift") && !text.contains("/opt/"), "\(text)")
    }
}
