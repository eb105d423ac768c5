import CordonJSON

/// Reads a request body's fields in order; every refusal is a `WireFault` with its path.
struct RequestReader {
    let limits: ChatLimits

    static let modelled: Set<String> = [
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "stream", "stream_options", "n", "seed", "user",
    ]
    static let passThroughTypes: [String: String] = Dictionary(uniqueKeysWithValues: ChatRequest.passThroughFields.map { ($0.name, $0.type) })

    func request(_ value: JSON) throws(WireFault) -> ChatRequest {
        let body = try WireObject(value, path: "")
        let model = try modelChoice(body)
        guard let rawMessages = try body.array("messages", maxCount: limits.maxMessages) else { throw .invalid("messages", "required") }
        guard !rawMessages.isEmpty else { throw .invalid("messages", "at least one message is required") }

        var request = ChatRequest(model: model, messages: [])
        request.tools = try tools(body)
        request.messages = try messages(rawMessages)
        request.toolChoice = try toolChoice(body, tools: request.tools)
        request.parallelToolCalls = try body.bool("parallel_tool_calls")

        let maxCompletion = try body.int("max_completion_tokens", min: 1, max: Int64(Int32.max))
        let maxTokens = try body.int("max_tokens", min: 1, max: Int64(Int32.max))
        request.maxTokens = (maxCompletion ?? maxTokens).map { Int($0) }
        request.temperature = try body.number("temperature", min: 0, max: 2)
        request.topP = try body.number("top_p", min: 0, max: 1)
        request.stop = try stop(body)
        request.stream = try body.bool("stream") ?? false
        // Read only when streaming: OpenAI refuses stream_options otherwise, Cordon ignores it.
        if request.stream, let options = try body.object("stream_options") {
            try options.refuseOthers(["include_usage", "include_obfuscation"])
            request.includeUsage = try options.bool("include_usage") ?? false
            _ = try options.bool("include_obfuscation")
        }
        if let n = try body.int("n", min: 1, max: Int64(Int32.max)), n != 1 {
            throw .invalid("n", "only one choice (n = 1) is served")
        }
        request.seed = try body.int("seed", min: Int64.min, max: Int64.max)
        request.user = try body.string("user", maxBytes: limits.maxNameBytes)
        request.passThrough = try passThrough(body)
        return request
    }

    private func modelChoice(_ body: WireObject) throws(WireFault) -> ChatRequest.ModelChoice {
        let name = try body.requiredString("model", maxBytes: limits.maxNameBytes)
        if name.isEmpty { throw .invalid("model", "empty") }
        if name == "auto" { return .auto(taskType: "chat") }
        if name.hasPrefix("auto:") {
            let task = String(name.dropFirst(5))
            guard !task.isEmpty, task.utf8.count <= 64, task.utf8.allSatisfy({ b in
                (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                    || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
            }) else {
                throw .invalid("model", "a task type after auto: is 1 to 64 of A-Z a-z 0-9 _ - .")
            }
            return .auto(taskType: task)
        }
        return .named(name)
    }

    // MARK: Messages

    private func messages(_ items: [JSON]) throws(WireFault) -> [ChatMessage] {
        var out: [ChatMessage] = []
        out.reserveCapacity(items.count)
        // The calls of the latest assistant message that made some: a tool message answers one.
        var openCalls: [String] = []
        for (i, item) in items.enumerated() {
            let message = try self.message(item, path: WirePath.index("messages", i))
            switch message.role {
            case .assistant where !message.toolCalls.isEmpty: openCalls = message.toolCalls.map(\.id)
            case .tool:
                guard let id = message.toolCallID, openCalls.contains(id) else {
                    throw .invalid(WirePath.member(WirePath.index("messages", i), "tool_call_id"),
                                   "no earlier assistant message made this call")
                }
            default: break
            }
            out.append(message)
        }
        return out
    }

    /// What a client replaying an answer it got may leave on an assistant message: output
    /// artifacts no provider reads back. Dropped.
    static let assistantOutputFields: Set<String> = ["refusal", "annotations", "audio", "reasoning_content", "reasoning"]

    private func message(_ value: JSON, path: String) throws(WireFault) -> ChatMessage {
        let m = try WireObject(value, path: path)
        let roleName = try m.requiredString("role", maxBytes: 32)
        guard let role = ChatMessage.Role(rawValue: roleName) else {
            if roleName == "function" { throw .invalid(m.field("role"), "the legacy function role is not supported: use tool messages") }
            throw .invalid(m.field("role"), "expected system, developer, user, assistant or tool")
        }
        var message = ChatMessage(role: role, content: nil)
        switch role {
        case .system, .developer:
            try m.refuseOthers(["role", "content", "name"])
            message.content = try content(m, allowsMedia: false, required: true)
        case .user:
            try m.refuseOthers(["role", "content", "name"])
            message.content = try content(m, allowsMedia: true, required: true)
        case .assistant:
            try m.refuseOthers(Self.assistantOutputFields.union(["role", "content", "name", "tool_calls"]))
            message.content = try content(m, allowsMedia: false, required: false)
            message.toolCalls = try toolCalls(m)
            if message.content == nil && message.toolCalls.isEmpty {
                throw .invalid(m.field("content"), "required unless the message has tool_calls")
            }
        case .tool:
            try m.refuseOthers(["role", "content", "tool_call_id"])
            message.toolCallID = try m.string("tool_call_id", maxBytes: limits.maxNameBytes)
            if message.toolCallID == nil { throw .invalid(m.field("tool_call_id"), "required") }
            message.content = try content(m, allowsMedia: false, required: true)
        }
        if role != .tool { message.name = try m.string("name", maxBytes: limits.maxNameBytes) }
        return message
    }

    private func content(_ m: WireObject, allowsMedia: Bool, required: Bool) throws(WireFault) -> ChatContent? {
        guard let value = m.raw("content") else {
            if required { throw .invalid(m.field("content"), "required") }
            return nil
        }
        let path = m.field("content")
        switch value {
        case .string(let s):
            guard s.utf8.count <= limits.maxStringBytes else { throw .limit(path, "longer than \(limits.maxStringBytes) bytes") }
            return .text(s)
        case .array(let items):
            guard items.count <= limits.maxParts else { throw .limit(path, "more than \(limits.maxParts) parts") }
            var parts: [ChatContentPart] = []
            parts.reserveCapacity(items.count)
            for (j, item) in items.enumerated() {
                parts.append(try part(item, path: WirePath.index(path, j), allowsMedia: allowsMedia))
            }
            return .parts(parts)
        default:
            throw .invalid(path, "expected a string or an array of parts, got \(value.typeName)")
        }
    }

    private func part(_ value: JSON, path: String, allowsMedia: Bool) throws(WireFault) -> ChatContentPart {
        let p = try WireObject(value, path: path)
        let type = try p.requiredString("type", maxBytes: 64)
        if type == "text" {
            try p.refuseOthers(["type", "text"])
            let text = try p.string("text", maxBytes: limits.maxStringBytes)
            guard let text else { throw .invalid(p.field("text"), "required") }
            return .text(text)
        }
        guard let kind = ChatContentPart.MediaKind(rawValue: type) else {
            throw .invalid(p.field("type"), "unknown part type (text, image_url, input_audio and file are known)")
        }
        guard allowsMedia else { throw .invalid(p.field("type"), "only text parts are allowed in this message") }
        guard let inner = p.raw(type), inner.isObject else { throw .invalid(p.field(type), "required, an object") }
        guard value.text.utf8.count <= limits.maxMediaBytes else { throw .limit(path, "longer than \(limits.maxMediaBytes) bytes") }
        return .media(kind, value.uniquingKeys())
    }

    private func toolCalls(_ m: WireObject) throws(WireFault) -> [ChatToolCall] {
        guard let items = try m.array("tool_calls", maxCount: limits.maxToolCalls) else { return [] }
        var out: [ChatToolCall] = []
        for (j, item) in items.enumerated() {
            let c = try WireObject(item, path: WirePath.index(m.field("tool_calls"), j))
            if let type = try c.string("type", maxBytes: 64), type != "function" {
                throw .invalid(c.field("type"), "only function calls are supported")
            }
            try c.refuseOthers(["id", "type", "function"])
            let id = try c.requiredString("id", maxBytes: limits.maxNameBytes)
            if id.isEmpty { throw .invalid(c.field("id"), "empty") }
            guard let f = try c.object("function") else { throw .invalid(c.field("function"), "required") }
            try f.refuseOthers(["name", "arguments"])
            let name = try f.requiredString("name", maxBytes: limits.maxNameBytes)
            let arguments = try f.requiredString("arguments", maxBytes: limits.maxStringBytes)
            if out.contains(where: { $0.id == id }) { throw .invalid(c.field("id"), "repeats an earlier call's id") }
            out.append(ChatToolCall(id: id, name: name, arguments: arguments))
        }
        return out
    }

    // MARK: Tools

    private func tools(_ body: WireObject) throws(WireFault) -> [ChatTool] {
        guard let items = try body.array("tools", maxCount: limits.maxTools) else { return [] }
        var out: [ChatTool] = []
        for (i, item) in items.enumerated() {
            let t = try WireObject(item, path: WirePath.index("tools", i))
            let type = try t.requiredString("type", maxBytes: 64)
            guard type == "function" else { throw .invalid(t.field("type"), "only function tools are supported") }
            try t.refuseOthers(["type", "function"])
            guard let f = try t.object("function") else { throw .invalid(t.field("function"), "required") }
            try f.refuseOthers(["name", "description", "parameters", "strict"])
            let name = try f.requiredString("name", maxBytes: 256)
            if let problem = ChatTool.nameProblem(name) { throw .invalid(f.field("name"), problem) }
            if let j = out.firstIndex(where: { $0.name == name }) { throw .invalid(f.field("name"), "repeats tools[\(j)]") }
            let parameters = try f.rawValue("parameters", maxBytes: limits.maxSchemaBytes)
            if let parameters {
                guard parameters.isObject else { throw .invalid(f.field("parameters"), "expected an object, got \(parameters.typeName)") }
                if let type = parameters["type"], type != .string("object") {
                    throw .invalid(WirePath.member(f.field("parameters"), "type"), "expected \"object\": a tool's arguments are an object")
                }
            }
            out.append(ChatTool(name: name, description: try f.string("description", maxBytes: limits.maxStringBytes),
                                parameters: parameters, strict: try f.bool("strict")))
        }
        return out
    }

    private func toolChoice(_ body: WireObject, tools: [ChatTool]) throws(WireFault) -> ChatToolChoice? {
        guard let value = body.raw("tool_choice") else { return nil }
        let choice: ChatToolChoice
        switch value {
        case .string("none"): choice = .none
        case .string("auto"): choice = .auto
        case .string("required"): choice = .required
        case .string: throw .invalid("tool_choice", "expected none, auto, required or a function")
        case .object:
            let o = try WireObject(value, path: "tool_choice")
            let type = try o.requiredString("type", maxBytes: 64)
            guard type == "function" else { throw .invalid(o.field("type"), "only a function may be named (allowed_tools and custom tools are not supported)") }
            try o.refuseOthers(["type", "function"])
            guard let f = try o.object("function") else { throw .invalid(o.field("function"), "required") }
            try f.refuseOthers(["name"])
            let name = try f.requiredString("name", maxBytes: 256)
            guard tools.contains(where: { $0.name == name }) else { throw .invalid(f.field("name"), "names no tool of tools") }
            choice = .function(name)
        default:
            throw .invalid("tool_choice", "expected a string or an object, got \(value.typeName)")
        }
        if tools.isEmpty, choice != .none, choice != .auto { throw .invalid("tool_choice", "requires tools") }
        return choice
    }

    private func stop(_ body: WireObject) throws(WireFault) -> [String] {
        guard let value = body.raw("stop") else { return [] }
        let items: [JSON]
        switch value {
        case .string: items = [value]
        case .array(let a): items = a
        default: throw .invalid("stop", "expected a string or an array of strings, got \(value.typeName)")
        }
        guard items.count <= limits.maxStops else { throw .limit("stop", "more than \(limits.maxStops) sequences") }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            let path = value.arrayValue == nil ? "stop" : WirePath.index("stop", i)
            guard case .string(let s) = item else { throw .invalid(path, "expected a string, got \(item.typeName)") }
            guard !s.isEmpty else { throw .invalid(path, "empty") }
            guard s.utf8.count <= limits.maxStopBytes else { throw .limit(path, "longer than \(limits.maxStopBytes) bytes") }
            out.append(s)
        }
        return out
    }

    // MARK: The rest

    private func passThrough(_ body: WireObject) throws(WireFault) -> [ChatRequest.PassThrough] {
        var out: [ChatRequest.PassThrough] = []
        for (key, value) in body.members where !Self.modelled.contains(key) && value != .null {
            if let type = Self.passThroughTypes[key] {
                let matches = type == "number" ? value.doubleValue?.isFinite == true : value.typeName == type
                guard matches else { throw .invalid(body.field(key), "expected \(type == "number" || type == "string" ? "a" : "an") \(type), got \(value.typeName)") }
                guard value.text.utf8.count <= limits.maxPassThroughBytes else { throw .limit(body.field(key), "longer than \(limits.maxPassThroughBytes) bytes") }
                out.append(.init(name: key, value: value.uniquingKeys()))
                continue
            }
            if ChatRequest.ignoredFields.contains(key) { continue }
            // Fields that ask for nothing, as some clients send them.
            switch (key, value) {
            case ("logprobs", .bool(false)), ("modalities", .array([.string("text")])): continue
            case ("functions", _), ("function_call", _):
                throw .invalid(body.field(key), "legacy function calling is not supported: use tools and tool_choice")
            default:
                throw .invalid(body.field(key), "not supported by Cordon's endpoint")
            }
        }
        return out
    }
}
