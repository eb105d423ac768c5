import CordonJSON
import CordonModels
import Testing

func malformed(_ body: String, limits: ReplyLimits = .default) -> ProviderError? {
    do { _ = try OpenAIWire.parseResponse(utf8(body), limits: limits); return nil } catch { return error }
}

@Suite struct OpenAIRequestBodyTests {
    static let request = #"""
    {"model":"auto","messages":[
      {"role":"developer","content":"Be brief."},
      {"role":"user","content":[{"type":"text","text":"Look"},{"type":"image_url","image_url":{"url":"data:,","detail":"low"}}],"name":"ann"},
      {"role":"assistant","content":[{"type":"text","text":"Calling"},{"type":"text","text":" f."}],"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"ok"}]}],
     "tools":[{"type":"function","function":{"name":"f","description":"Does f.","parameters":{"type":"object","properties":{}}}}],
     "tool_choice":"auto","max_tokens":100000,"temperature":0.25,"stop":["\n\n"],"seed":3,"user":"u",
     "frequency_penalty":0.5,"response_format":{"type":"json_object"},"service_tier":"priority","stream":true}
    """#

    /// Memo §1.1 toward an OpenAI-compatible server: the upstream id, the cap within the
    /// model's, usage always asked for in a stream, developer as system, parts of non-user
    /// messages as one string, pass-through fields, nothing Cordon ignores.
    @Test func golden() throws {
        let r = try ChatRequest.parse(utf8(Self.request))
        let body = OpenAIWire.requestBody(r, model: "qwen2.5-0.5b", maxOutputTokens: 4096)
        #expect(body.text == #"{"model":"qwen2.5-0.5b","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Look"},{"type":"image_url","image_url":{"url":"data:,","detail":"low"}}],"name":"ann"},{"role":"assistant","content":"Calling f.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"ok","tool_call_id":"call_1"}],"tools":[{"type":"function","function":{"name":"f","description":"Does f.","parameters":{"type":"object","properties":{}}}}],"tool_choice":"auto","max_tokens":4096,"temperature":0.25,"stop":["\n\n"],"seed":3,"user":"u","frequency_penalty":0.5,"response_format":{"type":"json_object"},"stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test func theCapAndItsSpelling() throws {
        var r = try ChatRequest.parse(utf8(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":12}"#))
        #expect(OpenAIWire.requestBody(r, model: "o3", maxOutputTokens: 4096, maxTokensField: .maxCompletionTokens).text
            == #"{"model":"o3","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":12,"stream":false}"#)
        r.maxTokens = nil
        // No cap from the client: the model's, always sent.
        #expect(OpenAIWire.requestBody(r, model: "m", maxOutputTokens: 512)["max_tokens"] == .int(512))
        #expect(OpenAIWire.requestBody(r, model: "m", maxOutputTokens: 512)["stream_options"] == nil)
    }

    /// A named tool choice and parallel_tool_calls go as written.
    @Test func toolChoiceByName() throws {
        let r = try ChatRequest.parse(utf8(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false}"#))
        let body = OpenAIWire.requestBody(r, model: "m", maxOutputTokens: 8)
        #expect(body["tools"]?.text == #"[{"type":"function","function":{"name":"f"}}]"#)
        #expect(body["tool_choice"]?.text == #"{"type":"function","function":{"name":"f"}}"#)
        #expect(body["parallel_tool_calls"] == .bool(false))
    }
}

@Suite struct OpenAIReplyTests {
    /// Memo §1.2, with a tool call, cached tokens and fields Cordon does not read.
    static let reply = #"{"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"qwen2.5-0.5b","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_x","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":5},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_1","service_tier":"default"}"#

    static let expected = ChatResult(toolCalls: [ChatToolCall(id: "call_x", name: "get_weather", arguments: #"{"city":"Paris"}"#)],
                                     finishReason: .toolCalls, usage: ChatUsage(promptTokens: 20, completionTokens: 10, cachedPromptTokens: 5),
                                     upstreamID: "chatcmpl-abc", upstreamModel: "qwen2.5-0.5b")

    /// Upstream reply → ChatResult → Cordon's chat.completion (its own id, the client's model
    /// name) → read back: the same answer.
    @Test func goldenRoundTrip() throws {
        let result = try OpenAIWire.parseResponse(utf8(Self.reply))
        #expect(result == Self.expected)
        let body = OpenAIWire.completionBody(result, id: "chatcmpl-cordon-01", model: "small", created: 1700000001)
        #expect(body.text == #"{"id":"chatcmpl-cordon-01","object":"chat.completion","created":1700000001,"model":"small","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_x","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":5}}}"#)
        var again = try OpenAIWire.parseResponse(utf8(body.text))
        #expect(again.upstreamID == "chatcmpl-cordon-01" && again.upstreamModel == "small")
        again.upstreamID = result.upstreamID
        again.upstreamModel = result.upstreamModel
        #expect(again == result)
    }

    @Test func aPlainAnswer() throws {
        let result = try OpenAIWire.parseResponse(utf8(#"{"choices":[{"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}]}"#))
        #expect(result == ChatResult(content: "Hello!", finishReason: .stop))
        // No usage, no finish reason: none in the result; "stop" on Cordon's wire.
        let body = OpenAIWire.completionBody(ChatResult(content: "Hi"), id: "c", model: "m", created: 0)
        #expect(body.text == #"{"id":"c","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}]}"#)
    }

    /// Where real servers differ: content in parts, arguments as an object (Ollama's habit), a
    /// call without an id, usage Cordon cannot read, an invented finish reason.
    @Test func lenientWhereServersDiffer() throws {
        let result = try OpenAIWire.parseResponse(utf8(#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"tool_calls":[{"function":{"name":"f","arguments":{"x":1}}},{"id":"","function":{"name":"g"}}]},"finish_reason":"eos_token"}],"usage":{"prompt_tokens":"12"}}"#))
        #expect(result == ChatResult(content: "ab", toolCalls: [ChatToolCall(id: "call_0", name: "f", arguments: #"{"x":1}"#),
                                                                ChatToolCall(id: "call_1", name: "g", arguments: "")],
                                     finishReason: .other("eos_token")))
        #expect(try OpenAIWire.parseResponse(utf8(#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":3.0,"completion_tokens":4}}"#)).usage
            == ChatUsage(promptTokens: 3, completionTokens: 4))
    }

    /// Malformed replies are a ProviderError naming the field — never a crash.
    @Test(arguments: [
        ("Internal Server Error", nil),
        ("", nil),
        ("[]", nil),
        (#"{"choices":[{"message":{"content":"x"}}]"#, nil),
        ("{}", "choices"),
        (#"{"choices":null}"#, "choices"),
        (#"{"choices":[]}"#, "choices"),
        (#"{"choices":{}}"#, "choices"),
        (#"{"choices":[7]}"#, "choices[0]"),
        (#"{"choices":[{}]}"#, "choices[0].message"),
        (#"{"choices":[{"message":"hi"}]}"#, "choices[0].message"),
        (#"{"choices":[{"message":{"content":5}}]}"#, "choices[0].message.content"),
        (#"{"choices":[{"message":{"content":[{"type":"image_url"}]}}]}"#, "choices[0].message.content[0]"),
        (#"{"choices":[{"message":{"tool_calls":{}}}]}"#, "choices[0].message.tool_calls"),
        (#"{"choices":[{"message":{"tool_calls":[{"id":"a"}]}}]}"#, "choices[0].message.tool_calls[0].function"),
        (#"{"choices":[{"message":{"tool_calls":[{"id":"a","function":{"arguments":"{}"}}]}}]}"#, "choices[0].message.tool_calls[0].function.name"),
        (#"{"choices":[{"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":7}}]}}]}"#, "choices[0].message.tool_calls[0].function.arguments"),
        (#"{"choices":[{"message":{"content":"x"},"finish_reason":1}]}"#, "choices[0].finish_reason"),
        (#"{"choices":[{"message":{"content":"x","content":"y"}}]}"#, "choices[0].message.content"),
    ] as [(String, String?)])
    func malformedRepliesAreProviderErrors(_ body: String, _ field: String?) throws {
        let error = try #require(malformed(body))
        #expect(error.kind == .malformedReply && error.field == field)
        #expect(error.isRetryable && !error.blamesRequest && error.status == nil)
    }

    @Test func replyLimits() throws {
        var limits = ReplyLimits()
        limits.maxBodyBytes = 100
        #expect(malformed(#"{"choices":[{"message":{"content":""# + String(repeating: "a", count: 100) + #""}}]}"#, limits: limits)?.message == "the reply is longer than 100 bytes")
        limits = ReplyLimits()
        limits.maxContentBytes = 3
        #expect(malformed(#"{"choices":[{"message":{"content":"abcd"}}]}"#, limits: limits)?.field == "choices[0].message.content")
        limits.maxToolCalls = 1
        #expect(malformed(#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f"}},{"function":{"name":"g"}}]}}]}"#, limits: limits)?.field == "choices[0].message.tool_calls")
        limits.maxArgumentsBytes = 2
        #expect(malformed(#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#, limits: limits)?.field == "choices[0].message.tool_calls[0].function.arguments")
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let error = try #require(malformed(#"{"choices":[{"message":{"content":"x"}}],"x":"# + deep + "}"))
        #expect(error.kind == .malformedReply && error.message.contains("nested deeper than 64"))
    }

    /// Some servers answer a failure with 200 and an error body: it is that failure.
    @Test func anErrorBodyWithStatus200() throws {
        let error = try #require(malformed(#"{"error":{"message":"CUDA out of memory","type":"server_error","code":null}}"#))
        #expect(error.kind == .serverError && error.message == "CUDA out of memory" && error.isRetryable)
        #expect(malformed(#"{"error":"model 'x' not found"}"#)?.message == "model 'x' not found")
    }
}

@Suite struct OpenAIStreamTests {
    static func deltas(_ stream: String) throws -> [ChatDelta] {
        var out: [ChatDelta] = []
        for event in try decode(utf8(stream)) where !event.isDone {
            if let delta = try OpenAIWire.parseChunk(event.data) { out.append(delta) }
        }
        return out
    }

    /// Memo §1.3: each chunk of the recorded stream as a delta; the vLLM usage chunk (choices
    /// null) gives usage; the empty delta with a finish reason gives the finish.
    @Test func chunksBecomeDeltas() throws {
        let deltas = try Self.deltas(StreamFixtures.openAI)
        #expect(deltas == [
            ChatDelta(role: .assistant, content: ""),
            ChatDelta(content: "Let me check"),
            ChatDelta(content: " — in Paris ☀️."),
            ChatDelta(toolCalls: [ToolCallFragment(index: 0, id: "call_a1", name: "get_weather", arguments: "")]),
            ChatDelta(toolCalls: [ToolCallFragment(index: 0, arguments: #"{"city":"#)]),
            ChatDelta(toolCalls: [ToolCallFragment(index: 0, arguments: #" "Paris"}"#)]),
            ChatDelta(finishReason: .toolCalls),
            ChatDelta(usage: ChatUsage(promptTokens: 31, completionTokens: 12)),
        ])
        var whole = ChatAccumulator()
        for d in deltas { try whole.add(d) }
        #expect(whole.result == ChatResult(content: "Let me check — in Paris ☀️.",
                                           toolCalls: [ChatToolCall(id: "call_a1", name: "get_weather", arguments: #"{"city": "Paris"}"#)],
                                           finishReason: .toolCalls, usage: ChatUsage(promptTokens: 31, completionTokens: 12)))
    }

    /// The whole way through: upstream SSE → deltas → Cordon's chunks → SSE, with the usage
    /// chunk (OpenAI's shape: choices []) because the client asked for it.
    @Test func relayedStreamIsGolden() throws {
        var out: [UInt8] = []
        for delta in try Self.deltas(StreamFixtures.openAI) {
            for chunk in OpenAIWire.chunkBodies(delta, id: "chatcmpl-cordon-7", model: "small", created: 1700000002, includeUsage: true) {
                out += SSEEncoder.data(chunk)
            }
        }
        out += SSEEncoder.done
        let head = #"{"id":"chatcmpl-cordon-7","object":"chat.completion.chunk","created":1700000002,"model":"small","choices":"#
        func choice(_ delta: String, _ finish: String = "null") -> String {
            "data: " + head + #"[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(finish)}],"usage":null}"# + "\n\n"
        }
        let expected = choice(#"{"role":"assistant","content":""}"#)
            + choice(#"{"content":"Let me check"}"#)
            + choice(#"{"content":" — in Paris ☀️."}"#)
            + choice(#"{"tool_calls":[{"index":0,"id":"call_a1","type":"function","function":{"name":"get_weather","arguments":""}}]}"#)
            + choice(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#)
            + choice(#"{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]}"#)
            + choice("{}", #""tool_calls""#)
            + "data: " + head + #"[],"usage":{"prompt_tokens":31,"completion_tokens":12,"total_tokens":43}}"# + "\n\n"
            + "data: [DONE]\n\n"
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }

    /// Without include_usage: no usage chunk, no "usage": null.
    @Test func withoutUsage() throws {
        let usageOnly = ChatDelta(usage: ChatUsage(promptTokens: 1, completionTokens: 2))
        #expect(OpenAIWire.chunkBodies(usageOnly, id: "c", model: "m", created: 0, includeUsage: false).isEmpty)
        let both = ChatDelta(finishReason: .stop, usage: ChatUsage(promptTokens: 1, completionTokens: 2))
        #expect(OpenAIWire.chunkBodies(both, id: "c", model: "m", created: 0, includeUsage: false).map(\.text)
            == [#"{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#])
        #expect(OpenAIWire.chunkBodies(both, id: "c", model: "m", created: 0, includeUsage: true).count == 2)
    }

    @Test func chunksThatSayNothing() throws {
        #expect(try OpenAIWire.parseChunk(#"{"choices":[]}"#) == nil)
        #expect(try OpenAIWire.parseChunk(#"{"choices":[{"index":0,"delta":{},"finish_reason":null}]}"#) == nil)
        #expect(try OpenAIWire.parseChunk(#"{"id":"x","choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#) == nil)
        #expect(try OpenAIWire.parseChunk(#"{"choices":[],"usage":null}"#) == nil)
    }

    /// A chunk whose calls carry no index (some servers send whole calls per chunk): by place.
    @Test func toolCallsWithoutIndex() throws {
        let d = try OpenAIWire.parseChunk(#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}},{"id":"b","function":{"name":"g","arguments":{"k":true}}}]}}]}"#)
        #expect(d?.toolCalls == [ToolCallFragment(index: 0, id: "a", name: "f", arguments: "{}"),
                                 ToolCallFragment(index: 1, id: "b", name: "g", arguments: #"{"k":true}"#)])
    }

    @Test(arguments: [
        ("not json", nil),
        (#"{"choices":[{"delta":"x"}]}"#, "choices[0].delta"),
        (#"{"choices":[{"delta":{"content":7}}]}"#, "choices[0].delta.content"),
        (#"{"choices":[{"delta":{"tool_calls":[{"index":-1}]}}]}"#, "choices[0].delta.tool_calls[0].index"),
        (#"{"choices":[{"delta":{"tool_calls":[{"index":999}]}}]}"#, "choices[0].delta.tool_calls[0].index"),
        (#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":[]}}]}}]}"#, "choices[0].delta.tool_calls[0].function.arguments"),
        (#"{"choices":"all"}"#, "choices"),
    ] as [(String, String?)])
    func malformedChunks(_ data: String, _ field: String?) throws {
        let error = #expect(throws: ProviderError.self) { try OpenAIWire.parseChunk(data) }
        #expect(error?.kind == .malformedReply && error?.field == field)
    }

    /// A failure after the 200: the openai client raises APIError for such a chunk; Cordon reads
    /// it as the provider's error.
    @Test func anErrorInTheStream() throws {
        let error = #expect(throws: ProviderError.self) {
            try OpenAIWire.parseChunk(#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#)
        }
        #expect(error?.kind == .rateLimited && error?.isRetryable == true && error?.providerCode == "rate_limit_exceeded")
    }

    /// The accumulator bounds what a stream builds; calls get Cordon's indexes in the order they
    /// begin, whatever index the server gave them.
    @Test func accumulatorLimits() throws {
        var limits = ReplyLimits()
        limits.maxContentBytes = 10
        limits.maxArgumentsBytes = 4
        limits.maxToolCalls = 1
        var a = ChatAccumulator(limits: limits)
        try a.add(ChatDelta(content: "12345"))
        try a.add(ChatDelta(content: "67890"))
        #expect(throws: ProviderError.self) { try a.add(ChatDelta(content: "!")) }
        var b = ChatAccumulator(limits: limits)
        try b.add(ChatDelta(toolCalls: [ToolCallFragment(index: 5, name: "f", arguments: "{}")]))
        #expect(b.result.toolCalls == [ChatToolCall(id: "call_0", name: "f", arguments: "{}")])
        #expect(throws: ProviderError.self) { try b.add(ChatDelta(toolCalls: [ToolCallFragment(index: 5, arguments: "123")])) }
        #expect(throws: ProviderError.self) { try b.add(ChatDelta(toolCalls: [ToolCallFragment(index: 1, id: "y", name: "g")])) }
        // Text and arguments together are bounded by a whole reply's size.
        var all = ReplyLimits()
        all.maxBodyBytes = 8
        var c = ChatAccumulator(limits: all)
        try c.add(ChatDelta(content: "1234"))
        #expect(throws: ProviderError.self) { try c.add(ChatDelta(toolCalls: [ToolCallFragment(index: 0, id: "a", name: "f", arguments: "12345")])) }
    }
}

@Suite struct OpenAIBodiesTests {
    /// Memo §1.4.
    @Test func errorBody() {
        #expect(OpenAIWire.errorBody(message: "Unknown model \"big\"", type: "invalid_request_error", param: "model", code: "model_not_found").text
            == #"{"error":{"message":"Unknown model \"big\"","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#)
        #expect(OpenAIWire.errorBody(message: "m", type: "server_error").text == #"{"error":{"message":"m","type":"server_error","param":null,"code":null}}"#)
    }

    /// Memo §1.5.
    @Test func modelsBody() {
        let body = OpenAIWire.modelsBody([.init(id: "small", created: 1700000000), .init(id: "auto:code", created: 0, ownedBy: "cordon-selector")])
        #expect(body.text == #"{"object":"list","data":[{"id":"small","object":"model","created":1700000000,"owned_by":"cordon"},{"id":"auto:code","object":"model","created":0,"owned_by":"cordon-selector"}]}"#)
    }

    @Test(arguments: [
        (ProviderError.Kind.badRequest, 400), (.rateLimited, 429), (.overloaded, 503), (.timeout, 504),
        (.serverError, 502), (.malformedReply, 502), (.authentication, 502), (.connection, 502),
    ])
    func whatTheClientIsTold(_ kind: ProviderError.Kind, _ status: Int) {
        let (s, body) = OpenAIWire.errorResponse(for: ProviderError(kind, "detail"))
        #expect(s == status)
        #expect(body["error"]?["message"]?.stringValue?.isEmpty == false)
    }
}
