import CordonJSON
import CordonModels
import Testing

func anthropicBody(_ request: String, maxOutputTokens: Int = 8192) throws -> JSON {
    try AnthropicWire.requestBody(try ChatRequest.parse(utf8(request)), model: "claude-sonnet-4-5", maxOutputTokens: maxOutputTokens)
}

func anthropicRefusal(_ request: String) -> ChatRequestError? {
    do { _ = try anthropicBody(request); return nil } catch let error as ChatRequestError { return error } catch { return nil }
}

@Suite struct AnthropicRequestTests {
    /// Memo §2.5: system and developer to `system`, same-role merging, tool calls to tool_use
    /// blocks, tool messages to tool_result blocks heading the next user turn, tools to
    /// input_schema, `required` to `any` with parallel calls off, the cap, stop sequences,
    /// temperature clamped, top_k kept, sampling hints Anthropic lacks dropped.
    @Test func golden() throws {
        let body = try anthropicBody(#"""
        {"model":"auto","messages":[
          {"role":"system","content":"You are terse."},
          {"role":"developer","content":[{"type":"text","text":"Use tools."}]},
          {"role":"user","content":"Weather in Paris?"},
          {"role":"user","content":[{"type":"text","text":"And the time."}]},
          {"role":"assistant","content":"Checking.","tool_calls":[
            {"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"toolu_2","type":"function","function":{"name":"get_time","arguments":""}}]},
          {"role":"tool","tool_call_id":"toolu_1","content":"18 C"},
          {"role":"tool","tool_call_id":"toolu_2","content":[{"type":"text","text":"14:00"}]},
          {"role":"user","content":"Thanks. Summarize."}],
         "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
                  {"type":"function","function":{"name":"get_time"}}],
         "tool_choice":"required","parallel_tool_calls":false,"max_completion_tokens":9000,"temperature":1.5,"top_p":0.9,
         "stop":"END","stream":true,"user":"u-1","top_k":40,"frequency_penalty":0.3,"seed":1}
        """#)
        #expect(body.text == #"{"model":"claude-sonnet-4-5","max_tokens":8192,"system":"You are terse.\n\nUse tools.","messages":[{"role":"user","content":[{"type":"text","text":"Weather in Paris?"},{"type":"text","text":"And the time."}]},{"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"toolu_2","name":"get_time","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18 C"},{"type":"tool_result","tool_use_id":"toolu_2","content":"14:00"},{"type":"text","text":"Thanks. Summarize."}]}],"tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},{"name":"get_time","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true},"stop_sequences":["END"],"temperature":1,"top_p":0.9,"top_k":40,"stream":true,"metadata":{"user_id":"u-1"}}"#)
    }

    @Test func theSmallestBody() throws {
        #expect(try anthropicBody(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}"#).text
            == #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#)
        // max_tokens is required by Anthropic: the model's when the client gives none.
        #expect(try anthropicBody(#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#, maxOutputTokens: 4096)["max_tokens"] == .int(4096))
    }

    /// A user message between an assistant's calls and their results: the results still head
    /// the merged user turn; a schema without `type` gets one.
    @Test func toolResultsHeadTheirTurn() throws {
        let body = try anthropicBody(#"{"model":"m","messages":[{"role":"user","content":"go"},{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"user","content":"hurry"},{"role":"tool","tool_call_id":"t1","content":""}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{}}}}]}"#)
        #expect(body["messages"]?.text == #"[{"role":"user","content":[{"type":"text","text":"go"}]},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1"},{"type":"text","text":"hurry"}]}]"#)
        #expect(body["tools"]?.text == #"[{"name":"f","input_schema":{"type":"object","properties":{}}}]"#)
    }

    @Test(arguments: [
        (#""none""#, nil, #"{"type":"none"}"#),
        (#""auto""#, nil, #"{"type":"auto"}"#),
        (#""required""#, nil, #"{"type":"any"}"#),
        (#"{"type":"function","function":{"name":"f"}}"#, nil, #"{"type":"tool","name":"f"}"#),
        (#"{"type":"function","function":{"name":"f"}}"#, false, #"{"type":"tool","name":"f","disable_parallel_tool_use":true}"#),
        ("null", false, #"{"type":"auto","disable_parallel_tool_use":true}"#),
        ("null", true, nil),
        ("null", nil, nil),
    ] as [(String, Bool?, String?)])
    func toolChoiceMapping(_ choice: String, _ parallel: Bool?, _ expected: String?) throws {
        let p = parallel.map { ",\"parallel_tool_calls\":\($0)" } ?? ""
        let body = try anthropicBody(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":\#(choice)\#(p)}"#)
        #expect(body["tool_choice"]?.text == expected)
    }

    /// What the Messages API cannot carry is refused with its path, not dropped.
    @Test(arguments: [
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#,
         ChatRequestError.Code.unsupported, "messages[0].content[1]", "image_url parts are not supported by Anthropic models"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
         .unsupported, "response_format", "an Anthropic model cannot be held to a JSON response format"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}]}"#,
         .invalidField, "messages[1].tool_calls[0].function.arguments", "not a JSON object, which an Anthropic model needs"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}"#,
         .invalidField, "messages[1].tool_calls[0].function.arguments", "not a JSON object, which an Anthropic model needs"),
        (#"{"model":"m","messages":[{"role":"system","content":"only a system prompt"}]}"#,
         .invalidField, "messages", "no user or assistant message: an Anthropic model needs one"),
        (#"{"model":"m","messages":[{"role":"user","content":""}]}"#, .invalidField, "messages[0].content", "empty: Anthropic models take no empty message"),
    ] as [(String, ChatRequestError.Code, String, String)])
    func refusals(_ request: String, _ code: ChatRequestError.Code, _ field: String, _ message: String) throws {
        let error = try #require(anthropicRefusal(request))
        #expect(error.code == code && error.field == field && error.message == message && error.httpStatus == 400)
    }

    /// A response_format that asks for text asks for nothing.
    @Test func aTextResponseFormatIsFine() throws {
        #expect(anthropicRefusal(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"text"}}"#) == nil)
    }
}

@Suite struct AnthropicReplyTests {
    /// Memo §2.2: thinking left out, text joined, tool_use as a call with its input as JSON
    /// text, every input token counted (cache writes and reads too); then Cordon's body.
    @Test func golden() throws {
        let reply = #"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"Weather, then.","signature":"EqQB"},{"type":"text","text":"Checking "},{"type":"text","text":"the weather."},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Paris","days":[1,2]}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":20,"cache_read_input_tokens":100,"output_tokens":89,"service_tier":"standard"}}"#
        let result = try AnthropicWire.parseResponse(utf8(reply))
        #expect(result == ChatResult(content: "Checking the weather.",
                                     toolCalls: [ChatToolCall(id: "toolu_01A", name: "get_weather", arguments: #"{"city":"Paris","days":[1,2]}"#)],
                                     finishReason: .toolCalls,
                                     usage: ChatUsage(promptTokens: 592, completionTokens: 89, cachedPromptTokens: 100, cacheCreationTokens: 20),
                                     upstreamID: "msg_01", upstreamModel: "claude-sonnet-4-5"))
        #expect(OpenAIWire.completionBody(result, id: "chatcmpl-cordon-2", model: "claude", created: 5).text
            == #"{"id":"chatcmpl-cordon-2","object":"chat.completion","created":5,"model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":"Checking the weather.","refusal":null,"tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"days\":[1,2]}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":592,"completion_tokens":89,"total_tokens":681,"prompt_tokens_details":{"cached_tokens":100}}}"#)
    }

    @Test func onlyToolUseHasNoContent() throws {
        let result = try AnthropicWire.parseResponse(utf8(#"{"content":[{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#))
        #expect(result.content == nil && result.toolCalls == [ChatToolCall(id: "t", name: "f", arguments: "{}")])
        #expect(result.usage == ChatUsage(promptTokens: 3, completionTokens: 4))
    }

    @Test(arguments: [
        ("end_turn", FinishReason.stop), ("stop_sequence", .stop), ("pause_turn", .stop), ("max_tokens", .length),
        ("model_context_window_exceeded", .length), ("tool_use", .toolCalls), ("refusal", .contentFilter), ("something_new", .other("something_new")),
    ])
    func stopReasons(_ stop: String, _ finish: FinishReason) {
        #expect(AnthropicWire.finishReason(stopReason: stop) == finish)
    }

    @Test(arguments: [
        ("<html>502</html>", nil),
        ("{}", "content"),
        (#"{"content":"hi"}"#, "content"),
        (#"{"content":[{"text":"hi"}]}"#, "content[0].type"),
        (#"{"content":[{"type":"text","text":7}]}"#, "content[0].text"),
        (#"{"content":[{"type":"tool_use","id":"a","name":"f"}]}"#, "content[0].input"),
        (#"{"content":[{"type":"tool_use","id":"a","name":"f","input":"{}"}]}"#, "content[0].input"),
        (#"{"content":[{"type":"tool_use","name":"f","input":{}}]}"#, "content[0].id"),
        (#"{"content":[],"stop_reason":5}"#, "stop_reason"),
    ] as [(String, String?)])
    func malformedReplies(_ body: String, _ field: String?) throws {
        let error = #expect(throws: ProviderError.self) { try AnthropicWire.parseResponse(utf8(body)) }
        #expect(error?.kind == .malformedReply && error?.field == field && error?.isRetryable == true)
    }

    @Test func anErrorBodyIsItsError() throws {
        let error = #expect(throws: ProviderError.self) {
            try AnthropicWire.parseResponse(utf8(AnthropicWire.errorBody(type: "overloaded_error", message: "Overloaded").text))
        }
        #expect(error?.kind == .overloaded && error?.message == "Overloaded" && error?.providerType == "overloaded_error")
    }
}

@Suite struct AnthropicStreamTests {
    static func translate(_ stream: String) throws -> (deltas: [ChatDelta], finished: Bool) {
        var translator = AnthropicWire.StreamTranslator()
        var deltas: [ChatDelta] = []
        for event in try decode(utf8(stream)) {
            if let d = try translator.translate(event) { deltas.append(d) }
        }
        return (deltas, translator.isFinished)
    }

    /// Memo §2.5, streaming: thinking dropped, text as content, each tool_use indexed by
    /// Cordon's counter (0 and 1, where Anthropic's blocks are 2 and 3), the finish with usage
    /// counting message_start's input tokens, unknown events and pings ignored.
    @Test func textAndToolUseBecomeDeltas() throws {
        let (deltas, finished) = try Self.translate(StreamFixtures.anthropic)
        #expect(finished)
        #expect(deltas == [
            ChatDelta(role: .assistant, content: ""),
            ChatDelta(content: "Checking the weather"),
            ChatDelta(content: " in Paris."),
            ChatDelta(toolCalls: [ToolCallFragment(index: 0, id: "toolu_01A", name: "get_weather", arguments: "")]),
            ChatDelta(toolCalls: [ToolCallFragment(index: 0, arguments: #"{"city": "Pa"#)]),
            ChatDelta(toolCalls: [ToolCallFragment(index: 0, arguments: #"ris"}"#)]),
            ChatDelta(toolCalls: [ToolCallFragment(index: 1, id: "toolu_01B", name: "get_time", arguments: "")]),
            ChatDelta(toolCalls: [ToolCallFragment(index: 1, arguments: #"{"tz":"CET"}"#)]),
            ChatDelta(finishReason: .toolCalls, usage: ChatUsage(promptTokens: 572, completionTokens: 89, cachedPromptTokens: 100, cacheCreationTokens: 0)),
        ])
        var whole = ChatAccumulator()
        for d in deltas { try whole.add(d) }
        #expect(whole.result.content == "Checking the weather in Paris.")
        #expect(whole.result.toolCalls == [ChatToolCall(id: "toolu_01A", name: "get_weather", arguments: #"{"city": "Paris"}"#),
                                           ChatToolCall(id: "toolu_01B", name: "get_time", arguments: #"{"tz":"CET"}"#)])
    }

    /// …and the OpenAI chunk sequence Cordon's client reads (include_usage on).
    @Test func theOpenAIChunkSequence() throws {
        var out = ""
        for delta in try Self.translate(StreamFixtures.anthropic).deltas {
            for chunk in OpenAIWire.chunkBodies(delta, id: "chatcmpl-cordon-9", model: "claude", created: 1, includeUsage: true) {
                out += String(decoding: SSEEncoder.data(chunk), as: UTF8.self)
            }
        }
        out += String(decoding: SSEEncoder.done, as: UTF8.self)
        let head = #"data: {"id":"chatcmpl-cordon-9","object":"chat.completion.chunk","created":1,"model":"claude","choices":"#
        func choice(_ delta: String, _ finish: String = "null") -> String {
            head + #"[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(finish)}],"usage":null}"# + "\n\n"
        }
        #expect(out == choice(#"{"role":"assistant","content":""}"#)
            + choice(#"{"content":"Checking the weather"}"#)
            + choice(#"{"content":" in Paris."}"#)
            + choice(#"{"tool_calls":[{"index":0,"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":""}}]}"#)
            + choice(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Pa"}}]}"#)
            + choice(#"{"tool_calls":[{"index":0,"function":{"arguments":"ris\"}"}}]}"#)
            + choice(#"{"tool_calls":[{"index":1,"id":"toolu_01B","type":"function","function":{"name":"get_time","arguments":""}}]}"#)
            + choice(#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"CET\"}"}}]}"#)
            + choice("{}", #""tool_calls""#)
            + head + #"[],"usage":{"prompt_tokens":572,"completion_tokens":89,"total_tokens":661,"prompt_tokens_details":{"cached_tokens":100}}}"# + "\n\n"
            + "data: [DONE]\n\n")
    }

    /// Without `event:` lines the type comes from the data; after message_stop nothing counts.
    @Test func typeFromDataAndNothingAfterStop() throws {
        let stream = #"""
        data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":5,"output_tokens":1}}}

        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}}

        data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"output_tokens":2}}

        data: {"type":"message_stop"}

        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}


        """#
        let (deltas, finished) = try Self.translate(stream)
        #expect(finished)
        #expect(deltas == [ChatDelta(role: .assistant, content: ""), ChatDelta(content: "Hi"),
                           ChatDelta(finishReason: .stop, usage: ChatUsage(promptTokens: 5, completionTokens: 2))])
    }

    /// An error event after the 200 (memo §2.3): overloaded is retryable, as a 529 is.
    @Test func anErrorEvent() throws {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        let error = #expect(throws: ProviderError.self) { _ = try Self.translate(stream) }
        #expect(error?.kind == .overloaded && error?.isRetryable == true && error?.status == nil && error?.message == "Overloaded")
    }

    @Test(arguments: [
        (#"{"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{"}}"#, "index"),
        (#"{"type":"content_block_delta","index":0}"#, "delta"),
        (#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#, "delta.text"),
        (#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"f"}}"#, "content_block.id"),
        (#"{"type":"content_block_start","content_block":{"type":"text"}}"#, "index"),
        (#"{"type":"message_start"}"#, "message"),
        (#"{"type":"message_start","message":[]}"#, "message"),
        ("{not json", nil),
    ] as [(String, String?)])
    func malformedEvents(_ data: String, _ field: String?) throws {
        var translator = AnthropicWire.StreamTranslator()
        let error = #expect(throws: ProviderError.self) { try translator.translate(SSEEvent(data: data)) }
        #expect(error?.kind == .malformedReply && error?.field == field)
    }

    @Test func tooManyToolCalls() throws {
        var limits = ReplyLimits()
        limits.maxToolCalls = 1
        var translator = AnthropicWire.StreamTranslator(limits: limits)
        _ = try translator.translate(SSEEvent(data: #"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"a","name":"f","input":{}}}"#))
        #expect(throws: ProviderError.self) {
            try translator.translate(SSEEvent(data: #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"b","name":"g","input":{}}}"#))
        }
    }
}
