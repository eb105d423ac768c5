import CordonJSON
import CordonModels
import Testing

/// Bytes of a body written in a test.
func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The refusal a body draws, or nil when it parses.
func refusal(_ body: String, limits: ChatLimits = .default) -> ChatRequestError? {
    do { _ = try ChatRequest.parse(utf8(body), limits: limits); return nil } catch { return error }
}

@Suite struct ChatRequestParsingTests {
    /// Every modelled field of memo §1.1, as the openai client writes them, read into the
    /// normalized request.
    @Test func aFullRequestIsReadFieldByField() throws {
        let body = #"""
        {"model":"small","messages":[
          {"role":"developer","content":"Be brief."},
          {"role":"system","content":[{"type":"text","text":"You are "},{"type":"text","text":"Cordon."}]},
          {"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}],"name":"ann"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}],"refusal":null},
          {"role":"tool","tool_call_id":"call_1","content":"18 C"}],
         "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}}],
         "tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,
         "max_tokens":50,"max_completion_tokens":40,"temperature":0.5,"top_p":0.9,"stop":"END","stream":true,
         "stream_options":{"include_usage":true},"n":1,"seed":7,"user":"u-1","frequency_penalty":0.25,"store":true,"logprobs":false}
        """#
        let r = try ChatRequest.parse(utf8(body))
        #expect(r.model == .named("small"))
        #expect(r.messages.count == 5)
        #expect(r.messages[0] == .text(.developer, "Be brief."))
        #expect(r.messages[1].content?.text == "You are Cordon.")
        #expect(r.messages[2].name == "ann" && r.hasMedia)
        guard case .parts(let parts)? = r.messages[2].content else { Issue.record("parts"); return }
        #expect(parts[0] == .text("What is in this image?"))
        #expect(parts[1] == .media(.imageURL, try JSON.parse(#"{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}"#)))
        #expect(r.messages[3].content == nil)
        #expect(r.messages[3].toolCalls == [ChatToolCall(id: "call_1", name: "get_weather", arguments: #"{"city":"Paris"}"#)])
        #expect(r.messages[4].toolCallID == "call_1" && r.messages[4].content == .text("18 C"))
        #expect(r.tools.count == 1 && r.tools[0].name == "get_weather" && r.tools[0].strict == true)
        #expect(r.tools[0].parameters?["required"] == .array([.string("city")]))
        #expect(r.toolChoice == .function("get_weather") && r.parallelToolCalls == false)
        // max_completion_tokens wins over the deprecated spelling.
        #expect(r.maxTokens == 40)
        #expect(r.temperature == 0.5 && r.topP == 0.9 && r.stop == ["END"])
        #expect(r.stream && r.includeUsage && r.seed == 7 && r.user == "u-1")
        // Pass-through kept; store (ignored) and logprobs:false (asks for nothing) are not.
        #expect(r.passThrough == [ChatRequest.PassThrough(name: "frequency_penalty", value: .double(0.25))])
    }

    @Test(arguments: [
        ("small", ChatRequest.ModelChoice.named("small")),
        ("auto", .auto(taskType: "chat")),
        ("auto:code", .auto(taskType: "code")),
        ("auto:summarize-v2.1", .auto(taskType: "summarize-v2.1")),
        ("gpt-4o-mini", .named("gpt-4o-mini")),
    ])
    func modelNamesAndAuto(_ name: String, _ expected: ChatRequest.ModelChoice) throws {
        let r = try ChatRequest.parse(utf8(#"{"model":"\#(name)","messages":[{"role":"user","content":"hi"}]}"#))
        #expect(r.model == expected)
    }

    /// The smallest request: defaults everywhere.
    @Test func theSmallestRequest() throws {
        let r = try ChatRequest.parse(utf8(#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#))
        #expect(r == ChatRequest(model: .auto(taskType: "chat"), messages: [.text(.user, "hi")]))
        #expect(!r.stream && !r.includeUsage && r.maxTokens == nil && r.tools.isEmpty && !r.hasMedia)
    }

    /// stream_options is read only with stream (OpenAI refuses it otherwise; Cordon ignores it).
    @Test func streamOptionsCountOnlyWhenStreaming() throws {
        let r = try ChatRequest.parse(utf8(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#))
        #expect(!r.includeUsage)
    }

    /// Null members ask for nothing, as clients that write every field send them.
    @Test func nullMembersAreAbsent() throws {
        let r = try ChatRequest.parse(utf8(#"{"model":"m","messages":[{"role":"user","content":"hi","name":null}],"tools":null,"tool_choice":null,"temperature":null,"functions":null,"audio":null,"stop":null}"#))
        #expect(r == ChatRequest(model: .named("m"), messages: [.text(.user, "hi")]))
    }

    /// A client replaying the assistant message it got back may leave output artifacts on it.
    @Test func replayedAssistantOutputFieldsAreDropped() throws {
        let r = try ChatRequest.parse(utf8(#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello","refusal":null,"annotations":[],"reasoning_content":"thinking…"},{"role":"user","content":"again"}]}"#))
        #expect(r.messages[1] == .text(.assistant, "Hello"))
    }

    /// Each refusal names the JSON path and says why (memo §1.1: what a gateway must look at).
    @Test(arguments: [
        (#"[1,2]"#, nil, "expected an object, got array"),
        (#"{"messages":[{"role":"user","content":"hi"}]}"#, "model", "required"),
        (#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#, "model", "empty"),
        (#"{"model":7,"messages":[{"role":"user","content":"hi"}]}"#, "model", "expected a string, got integer"),
        (#"{"model":"auto:","messages":[{"role":"user","content":"hi"}]}"#, "model", "a task type after auto: is 1 to 64 of A-Z a-z 0-9 _ - ."),
        (#"{"model":"auto:a b","messages":[{"role":"user","content":"hi"}]}"#, "model", "a task type after auto: is 1 to 64 of A-Z a-z 0-9 _ - ."),
        (#"{"model":"m"}"#, "messages", "required"),
        (#"{"model":"m","messages":[]}"#, "messages", "at least one message is required"),
        (#"{"model":"m","messages":{}}"#, "messages", "expected an array, got object"),
        (#"{"model":"m","model":"n","messages":[{"role":"user","content":"hi"}]}"#, "model", "given more than once"),
        (#"{"model":"m","messages":["hi"]}"#, "messages[0]", "expected an object, got string"),
        (#"{"model":"m","messages":[{"content":"hi"}]}"#, "messages[0].role", "required"),
        (#"{"model":"m","messages":[{"role":"bot","content":"hi"}]}"#, "messages[0].role", "expected system, developer, user, assistant or tool"),
        (#"{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}"#, "messages[0].role", "the legacy function role is not supported: use tool messages"),
        (#"{"model":"m","messages":[{"role":"user"}]}"#, "messages[0].content", "required"),
        (#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "messages[0].content", "expected a string or an array of parts, got integer"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}"#, "messages[0].content[0].type", "unknown part type (text, image_url, input_audio and file are known)"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#, "messages[0].content[0].text", "required"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}]}]}"#, "messages[0].content[0].cache_control", "unknown field"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, "messages[0].content[0].image_url", "required, an object"),
        (#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, "messages[0].content[0].type", "only text parts are allowed in this message"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi","tool_call_id":"x"}]}"#, "messages[0].tool_call_id", "unknown field"),
        (#"{"model":"m","messages":[{"role":"assistant"}]}"#, "messages[0].content", "required unless the message has tool_calls"),
        (#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#, "messages[0].tool_calls[0].id", "required"),
        (#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"custom","custom":{}}]}]}"#, "messages[0].tool_calls[0].type", "only function calls are supported"),
        (#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{}}}]}]}"#, "messages[0].tool_calls[0].function.arguments", "expected a string, got object"),
        (#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"c","type":"function","function":{"name":"g","arguments":"{}"}}]}]}"#, "messages[0].tool_calls[1].id", "repeats an earlier call's id"),
        (#"{"model":"m","messages":[{"role":"tool","content":"18 C"}]}"#, "messages[0].tool_call_id", "required"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_9","content":"18 C"}]}"#, "messages[1].tool_call_id", "no earlier assistant message made this call"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"x"}}]}"#, "tools[0].type", "only function tools are supported"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get weather"}}]}"#, "tools[0].function.name", "only A-Z a-z 0-9 _ - are allowed"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}"#, "tools[1].function.name", "repeats tools[0]"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"array"}}}]}"#, "tools[0].function.parameters.type", #"expected "object": a tool's arguments are an object"#),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":[]}}]}"#, "tools[0].function.parameters", "expected an object, got array"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"required"}"#, "tool_choice", "requires tools"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"any"}"#, "tool_choice", "expected none, auto, required or a function"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}"#, "tool_choice.function.name", "names no tool of tools"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools","allowed_tools":{}}}"#, "tool_choice.type", "only a function may be named (allowed_tools and custom tools are not supported)"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#, "max_tokens", "0 is out of range 1…2147483647"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":"10"}"#, "max_completion_tokens", "expected an integer, got string"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":2.5}"#, "temperature", "2.5 is out of range 0.0…2.0"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":true}"#, "top_p", "expected a number, got boolean"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a",1]}"#, "stop[1]", "expected a string, got integer"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":""}"#, "stop", "empty"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#, "stream", "expected true or false, got string"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true,"chunk_size":3}}"#, "stream_options.chunk_size", "unknown field"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}"#, "n", "only one choice (n = 1) is served"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1.5}"#, "seed", "expected an integer, got number"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"functions":[{"name":"f"}]}"#, "functions", "legacy function calling is not supported: use tools and tool_choice"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"logprobs":true}"#, "logprobs", "not supported by Cordon's endpoint"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"modalities":["text","audio"]}"#, "modalities", "not supported by Cordon's endpoint"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"frobnicate":1}"#, "frobnicate", "not supported by Cordon's endpoint"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"frequency_penalty":"high"}"#, "frequency_penalty", "expected a number, got string"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":0.5}"#, "top_k", "expected an integer, got number"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":"json"}"#, "response_format", "expected an object, got string"),
        (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x y":1}"#, #"["x y"]"#, "not supported by Cordon's endpoint"),
    ] as [(String, String?, String)])
    func refusalsNameTheirPath(_ body: String, _ field: String?, _ message: String) {
        let error = refusal(body)
        #expect(error?.field == field)
        #expect(error?.message == message)
        #expect(error?.code == .invalidField)
        #expect(error?.httpStatus == 400)
    }

    @Test func notJSON() {
        let error = refusal(#"{"model":"m","messages":[}"#)
        #expect(error?.code == .notJSON && error?.field == nil && error?.httpStatus == 400)
        #expect(error?.message.hasPrefix("the request body is not JSON: at byte 25") == true)
    }

    /// A refusal is the body OpenAI answers a bad request with: the client's SDK raises
    /// BadRequestError with it.
    @Test func aRefusalIsAnOpenAIErrorBody() throws {
        let error = try #require(refusal(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":3}"#))
        #expect(error.openAIBody.text == #"{"error":{"message":"n: only one choice (n = 1) is served","type":"invalid_request_error","param":"n","code":"invalid_value"}}"#)
    }
}

@Suite struct ChatRequestLimitTests {
    static func message(_ content: String) -> String { #"{"role":"user","content":"\#(content)"}"# }

    /// A body over the size limit is refused before it is parsed, as 413.
    @Test func aHugeBodyIsRefusedUnread() throws {
        let body = utf8(#"{"model":"m","messages":["# + String(repeating: Self.message("aaaaaaaa") + ",", count: 300_000) + Self.message("b") + "]}")
        #expect(body.count > ChatLimits.default.maxBodyBytes)
        let error = try #require(refusal(String(decoding: body, as: UTF8.self)))
        #expect(error.code == .tooLarge && error.httpStatus == 413 && error.field == nil)
        #expect(error.message == "the request body is longer than 8388608 bytes")
        #expect(error.openAIBody["error"]?["code"] == .string("request_too_large"))
    }

    /// Nesting past the codec's cap: a limit, not a crash of the recursive parser.
    @Test func deepNestingIsRefused() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = try #require(refusal(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":"# + deep + "}"))
        #expect(error.code == .limitExceeded && error.httpStatus == 400)
        #expect(error.message.contains("nested deeper than 64"))
        // Nesting inside a tool's schema counts the same.
        var limits = ChatLimits()
        limits.maxDepth = 8
        let schema = String(repeating: #"{"type":"object","properties":{"a":"#, count: 4) + #"{"type":"string"}"# + String(repeating: "}}", count: 4)
        let tools = #"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":"# + schema + "}}]}"
        #expect(refusal(tools) == nil)
        #expect(refusal(tools, limits: limits)?.code == .limitExceeded)
    }

    @Test func tooManyMessages() throws {
        var limits = ChatLimits()
        limits.maxMessages = 3
        let four = #"{"model":"m","messages":["# + Array(repeating: Self.message("x"), count: 4).joined(separator: ",") + "]}"
        let error = try #require(refusal(four, limits: limits))
        #expect(error.code == .limitExceeded && error.field == "messages" && error.message == "more than 3 items")
        #expect(refusal(#"{"model":"m","messages":["# + Array(repeating: Self.message("x"), count: 3).joined(separator: ",") + "]}", limits: limits) == nil)
        // The default: 2048.
        let many = #"{"model":"m","messages":["# + Array(repeating: Self.message("x"), count: 2049).joined(separator: ",") + "]}"
        #expect(refusal(many)?.field == "messages")
    }

    /// A 10 MB string: past the body limit by default; with room for the body, past the string
    /// limit, named by its path.
    @Test func aTenMegabyteString() throws {
        let big = String(repeating: "a", count: 10_000_000)
        let body = #"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"\#(big)"}]}"#
        #expect(refusal(body)?.code == .tooLarge)
        var limits = ChatLimits()
        limits.maxBodyBytes = 12 << 20
        let error = try #require(refusal(body, limits: limits))
        #expect(error.code == .limitExceeded && error.field == "messages[1].content" && error.message == "longer than 2097152 bytes")
        // In a text part, in tool arguments and in a stop sequence too.
        let part = #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"\#(big)"}]}]}"#
        #expect(refusal(part, limits: limits)?.field == "messages[0].content[0].text")
        let args = #"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"\#(big)"}}]}]}"#
        #expect(refusal(args, limits: limits)?.field == "messages[0].tool_calls[0].function.arguments")
    }

    @Test func otherCounts() throws {
        var limits = ChatLimits()
        limits.maxTools = 1
        limits.maxParts = 1
        limits.maxStops = 1
        limits.maxSchemaBytes = 32
        limits.maxMediaBytes = 64
        let hi = #"{"role":"user","content":"hi"}"#
        #expect(refusal(#"{"model":"m","messages":[\#(hi)],"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}]}"#, limits: limits)?.field == "tools")
        #expect(refusal(#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#, limits: limits)?.field == "messages[0].content")
        #expect(refusal(#"{"model":"m","messages":[\#(hi)],"stop":["a","b"]}"#, limits: limits)?.field == "stop")
        #expect(refusal(#"{"model":"m","messages":[\#(hi)],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"long":{"type":"string"}}}}}]}"#, limits: limits)?.field == "tools[0].function.parameters")
        let image = #"{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(String(repeating: "A", count: 100))"}}"#
        #expect(refusal(#"{"model":"m","messages":[{"role":"user","content":[\#(image)]}]}"#, limits: limits)?.field == "messages[0].content[0]")
    }
}
