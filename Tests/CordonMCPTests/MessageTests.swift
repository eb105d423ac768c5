import CordonJSON
@testable import CordonMCP
import Testing

struct EnvelopeTests {
    @Test func requestsNotificationsAndResponsesRoundTrip() throws {
        let lines = [
            Wire.pythonDiscover,
            Wire.pythonInitialize,
            Wire.pythonInitialized,
            #"{"jsonrpc":"2.0","id":"a-1","method":"tools/list"}"#,
            #"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#,
            #"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"nope","data":{"x":[1,2]}}}"#,
            #"{"jsonrpc":"2.0","error":{"code":-32700,"message":"bad"}}"#,
        ]
        for line in lines {
            let message = try MCPMessage.parse(Wire.bytes(line))
            #expect(message.line == line)
            #expect(try MCPMessage.parse(Wire.bytes(message.line)) == message)
        }
        #expect(try MCPMessage.parse(Wire.bytes(lines[3])) == .request(id: .string("a-1"), method: "tools/list", params: nil))
        #expect(try MCPMessage.parse(Wire.bytes(lines[6])) == .error(id: nil, MCPErrorObject(code: -32700, message: "bad")))
    }

    @Test func theWriterKeepsEveryMessageOnOneLine() {
        let message = MCPMessage.result(id: .int(1), result: .object([("text", .string("a\nb\r\u{2028}c"))]))
        #expect(!message.line.contains("\n") && !message.line.contains("\r"))
        #expect(message.line.contains(#"a\nb\r\u2028c"#))
    }

    /// Each malformed envelope is refused with the code and field a server reports, and with
    /// the request's id whenever it could be read.
    @Test(arguments: [
        ("{", MCPError.Code.notJSON, nil as String?, nil as MCPRequestID?),
        ("[]", .invalidMessage, nil, nil),
        (#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, .invalidMessage, nil, nil),
        (#""ping""#, .invalidMessage, nil, nil),
        (#"{"id":1,"method":"ping"}"#, .invalidMessage, "jsonrpc", .int(1)),
        (#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, .invalidMessage, "jsonrpc", .int(1)),
        (#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, .invalidMessage, "id", nil),
        (#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, .invalidMessage, "id", nil),
        (#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#, .invalidMessage, "id", nil),
        (#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#, .invalidMessage, "id", nil),
        (#"{"jsonrpc":"2.0","id":3,"method":7}"#, .invalidMessage, "method", .int(3)),
        (#"{"jsonrpc":"2.0","id":3,"method":""}"#, .invalidMessage, "method", .int(3)),
        (#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[1]}"#, .invalidMessage, "params", .int(3)),
        (#"{"jsonrpc":"2.0","id":3,"method":"tools/list","method":"tools/call"}"#, .invalidMessage, "message.method", nil),
        (#"{"jsonrpc":"2.0","id":3,"result":{},"error":{"code":1,"message":""}}"#, .invalidMessage, nil, .int(3)),
        (#"{"jsonrpc":"2.0","result":{}}"#, .invalidMessage, "id", nil),
        (#"{"jsonrpc":"2.0","id":3,"result":[]}"#, .invalidMessage, "result", .int(3)),
        (#"{"jsonrpc":"2.0","id":3,"error":{"message":"x"}}"#, .invalidMessage, "error.code", .int(3)),
        (#"{"jsonrpc":"2.0","id":3}"#, .invalidMessage, nil, .int(3)),
    ])
    func malformedEnvelopes(_ c: (String, MCPError.Code, String?, MCPRequestID?)) {
        #expect {
            try MCPMessage.parse(Wire.bytes(c.0))
        } throws: { error in
            guard let error = error as? MCPError else { return false }
            return error.code == c.1 && error.field == c.2 && error.requestID == c.3
        }
    }

    @Test func sizeDepthAndValueLimitsHold() {
        var limits = MCPLimits()
        limits.maxMessageBytes = 64
        let long = Wire.request(1, "tools/call", #"{"name":"\#(String(repeating: "x", count: 80))"}"#)
        #expect(throws: MCPError(.limitExceeded, "message longer than 64 bytes")) { try MCPMessage.parse(Wire.bytes(long), limits: limits) }

        limits = MCPLimits()
        limits.maxDepth = 8
        let deep = Wire.request(1, "tools/call", String(repeating: #"{"a":"#, count: 10) + "1" + String(repeating: "}", count: 10))
        #expect { try MCPMessage.parse(Wire.bytes(deep), limits: limits) } throws: { ($0 as? MCPError)?.code == .limitExceeded }

        limits = MCPLimits()
        limits.maxValues = 100
        let wide = Wire.request(1, "tools/call", #"{"a":[\#(Array(repeating: "0", count: 200).joined(separator: ","))]}"#)
        #expect { try MCPMessage.parse(Wire.bytes(wide), limits: limits) } throws: { ($0 as? MCPError)?.code == .limitExceeded }

        limits = MCPLimits()
        limits.maxMethodBytes = 8
        #expect { try MCPMessage.parse(Wire.bytes(Wire.request(9, "tools/list/long")), limits: limits) } throws: {
            ($0 as? MCPError).map { $0.code == .limitExceeded && $0.field == "method" && $0.requestID == .int(9) } ?? false
        }
        limits = MCPLimits()
        limits.maxTokenBytes = 4
        #expect { try MCPMessage.parse(Wire.bytes(#"{"jsonrpc":"2.0","id":"12345","method":"x"}"#), limits: limits) } throws: {
            ($0 as? MCPError)?.field == "id"
        }
    }

    @Test func errorsMapToTheJSONRPCCodesAServerAnswersWith() {
        #expect(MCPError(.notJSON, "x").errorObject.code == -32700)
        #expect(MCPError(.invalidMessage, "x").errorObject.code == -32600)
        #expect(MCPError(.protocolViolation, "x").errorObject.code == -32600)
        let field = MCPError.invalid("params.name", "required")
        #expect(field.errorObject == MCPErrorObject(code: -32602, message: "params.name: required", data: .object([("field", .string("params.name"))])))
        #expect(field.description == "params.name: required")
    }
}

struct ToolNameTests {
    @Test(arguments: ["getUser", "DATA_EXPORT_v2", "admin.tools.list", "a", "get-time", String(repeating: "x", count: 128)])
    func validNames(_ name: String) {
        #expect(MCPToolName.problem(name) == nil)
    }

    @Test(arguments: [
        ("", "empty"),
        (String(repeating: "x", count: 129), "longer than 128 characters"),
        ("get user", "contains ' ': only A-Z a-z 0-9 _ - . are allowed"),
        ("a,b", "contains ',': only A-Z a-z 0-9 _ - . are allowed"),
        ("a/b", "contains '/': only A-Z a-z 0-9 _ - . are allowed"),
        ("tool\u{0}", "contains byte 0x00: only A-Z a-z 0-9 _ - . are allowed"),
        ("naïve", "contains byte 0xC3: only A-Z a-z 0-9 _ - . are allowed"),
        ("x\u{202E}y", "contains byte 0xE2: only A-Z a-z 0-9 _ - . are allowed"),
    ])
    func invalidNames(_ c: (String, String)) {
        #expect(MCPToolName.problem(c.0) == c.1)
    }
}

struct ToolListTests {
    static func page(_ tools: String, extra: String = "") throws -> MCPListToolsResult {
        try MCPListToolsResult.parse(Wire.json(#"{"tools":[\#(tools)]\#(extra)}"#), limits: .default)
    }

    @Test func aToolKeepsWhatTheGatewayNeeds() throws {
        let page = try Self.page(#"""
            {"name":"get_current_time","title":"Time","description":"Now","inputSchema":{"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"]},
             "outputSchema":{"type":"object"},"annotations":{"title":"T","readOnlyHint":true,"openWorldHint":false},
             "icons":[{"src":"https://example.com/i.png"}],"execution":{"taskSupport":"optional"},"_meta":{"x":1},"future":"kept out"}
            """#, extra: #","nextCursor":"","ttlMs":-5,"cacheScope":"public""#)
        #expect(page.rejected.isEmpty)
        let tool = try #require(page.tools.first)
        #expect(tool.name == "get_current_time" && tool.title == "Time" && tool.description == "Now")
        #expect(tool.inputSchema["required"] == .array([.string("tz")]))
        #expect(tool.annotations == MCPToolAnnotations(title: "T", readOnlyHint: true, openWorldHint: false))
        // An empty cursor is a cursor (2026-07-28, Pagination, 3); a negative ttl is stale.
        #expect(page.nextCursor == "" && page.ttlMs == 0 && page.cacheScope == .public)
        #expect(try MCPListToolsResult.parse(page.json(for: .v2026_07_28), limits: .default).tools == page.tools)
    }

    /// One bad tool is left out with its reason; the others stay.
    @Test func badToolsAreRejectedOneByOne() throws {
        let page = try Self.page(#"""
            {"name":"ok","inputSchema":{"type":"object"}},
            {"name":"has space","inputSchema":{"type":"object"}},
            {"name":"noschema"},
            {"name":"arrayschema","inputSchema":{"type":"array"}},
            {"name":"ok","inputSchema":{"type":"object"}},
            {"name":42,"inputSchema":{"type":"object"}},
            "not a tool",
            {"name":"dup","name":"dup2","inputSchema":{"type":"object"}},
            {"name":"longdesc","description":"\#(String(repeating: "d", count: 40_000))","inputSchema":{"type":"object"}},
            {"name":"ann","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":"yes"}},
            {"name":"boolout","inputSchema":{"type":"object"},"outputSchema":true}
            """#)
        #expect(page.tools.map(\.name) == ["ok"])
        #expect(page.rejected.map(\.description) == [
            #"tool "has space": result.tools[1].name: contains ' ': only A-Z a-z 0-9 _ - . are allowed"#,
            #"tool "noschema": result.tools[2].inputSchema: required"#,
            #"tool "arrayschema": result.tools[3].inputSchema.type: expected "object""#,
            #"tool "ok": result.tools[4].name: "ok" is listed twice"#,
            "tool #5: result.tools[5].name: expected a string, got integer",
            "tool #6: result.tools[6]: expected an object, got string",
            "tool \"dup2\": result.tools[7].name: given more than once",
            "tool \"longdesc\": result.tools[8].description: longer than 32768 bytes",
            "tool \"ann\": result.tools[9].annotations.readOnlyHint: expected true or false, got string",
            "tool \"boolout\": result.tools[10].outputSchema: expected an object, got boolean",
        ])
    }

    @Test func pageLevelProblemsFailTheWholePage() {
        var limits = MCPLimits()
        limits.maxToolsPerPage = 2
        let three = Wire.json(#"{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b","inputSchema":{"type":"object"}},{"name":"c","inputSchema":{"type":"object"}}]}"#)
        #expect(throws: MCPError.limit("result.tools", "more than 2 items")) { try MCPListToolsResult.parse(three, limits: limits) }
        #expect(throws: MCPError.invalid("result.tools", "required")) { try MCPListToolsResult.parse(Wire.json("{}"), limits: .default) }
        #expect(throws: MCPError.invalid("result.tools", "expected an array, got object")) {
            try MCPListToolsResult.parse(Wire.json(#"{"tools":{}}"#), limits: .default)
        }
        #expect(throws: MCPError.invalid("result.resultType", "unknown result type \"partial\"")) {
            try MCPListToolsResult.parse(Wire.json(#"{"tools":[],"resultType":"partial"}"#), limits: .default)
        }
        #expect(throws: MCPError.invalid("result.cacheScope", "expected \"public\" or \"private\"")) {
            try MCPListToolsResult.parse(Wire.json(#"{"tools":[],"cacheScope":"shared"}"#), limits: .default)
        }
        #expect(throws: MCPError.invalid("result.nextCursor", "expected a string, got integer")) {
            try MCPListToolsResult.parse(Wire.json(#"{"tools":[],"nextCursor":3}"#), limits: .default)
        }
        // null means absent: the end of the list.
        #expect((try? MCPListToolsResult.parse(Wire.json(#"{"tools":[],"nextCursor":null}"#), limits: .default))?.nextCursor == nil)
        var small = MCPLimits()
        small.maxSchemaBytes = 40
        let big = Wire.json(#"{"tools":[{"name":"a","inputSchema":{"type":"object","properties":{"p":{"type":"string"}}}}]}"#)
        #expect((try? MCPListToolsResult.parse(big, limits: small))?.rejected.first?.error == .limit("result.tools[0].inputSchema", "longer than 40 bytes"))
    }

    /// 2025-11-25 allows only object output schemas: another is left out for such a client.
    @Test func outputSchemasAreWrittenForTheRevision() {
        let array = MCPTool(name: "list_users", outputSchema: .object([("type", .string("array"))]))
        let object = MCPTool(name: "get", outputSchema: .object([("type", .string("object"))]))
        #expect(array.json(for: .v2026_07_28)["outputSchema"] != nil)
        #expect(array.json(for: .v2025_11_25)["outputSchema"] == nil)
        #expect(object.json(for: .v2025_11_25)["outputSchema"] != nil)
    }
}

struct CallToolResultTests {
    static func outcome(_ result: String, limits: MCPLimits = .default) throws -> MCPCallToolOutcome {
        try MCPCallToolOutcome.parse(Wire.json(result), limits: limits)
    }

    @Test func everyBlockKindRoundTripsAndUnknownOnesAreKept() throws {
        let blocks = #"""
            [{"type":"text","text":"hi","annotations":{"audience":["user"],"priority":0.5}},
             {"type":"image","data":"iVBORw0KGgo=","mimeType":"image/png"},
             {"type":"audio","data":"UklGRg==","mimeType":"audio/wav","_meta":{"k":"v"}},
             {"type":"resource_link","uri":"file:///a.rs","name":"a.rs","mimeType":"text/x-rust","size":12},
             {"type":"resource","resource":{"uri":"file:///a.rs","text":"fn main(){}"}},
             {"type":"resource","resource":{"uri":"file:///b.bin","blob":"AAEC"}},
             {"type":"hologram","frames":3}]
            """#
        guard case .complete(let result) = try Self.outcome(#"{"content":\#(blocks),"structuredContent":[1,2],"isError":true}"#) else {
            Issue.record("not complete"); return
        }
        #expect(result.content.count == 7 && result.isError && result.structuredContent == .array([.int(1), .int(2)]))
        #expect(result.content[0].text == "hi")
        #expect(result.content[6] == .unknown(Wire.json(#"{"type":"hologram","frames":3}"#)))
        #expect(JSON.array(result.content.map(\.json)) == Wire.json(blocks))
        // Written back for each revision: array structuredContent only where it is allowed.
        #expect(result.json(for: .v2026_07_28)["structuredContent"] != nil)
        #expect(result.json(for: .v2025_11_25)["structuredContent"] == nil)
        #expect(result.json(for: .v2026_07_28)["resultType"] == .string("complete"))
        #expect(result.json(for: .v2025_11_25)["resultType"] == nil)
    }

    @Test func inputRequiredIsItsOwnOutcome() throws {
        #expect(try Self.outcome(#"{"resultType":"input_required","requestState":"s"}"#) == .inputRequired(requestState: "s", inputRequests: nil))
        #expect(throws: MCPError.invalid("result", "input_required with neither inputRequests nor requestState")) {
            try Self.outcome(#"{"resultType":"input_required"}"#)
        }
    }

    @Test(arguments: [
        (#"{}"#, "result.content: required"),
        (#"{"content":"x"}"#, "result.content: expected an array, got string"),
        (#"{"content":[{"text":"x"}]}"#, "result.content[0].type: required"),
        (#"{"content":[{"type":"text"}]}"#, "result.content[0].text: required"),
        (#"{"content":[{"type":"image","data":"abc","mimeType":"image/png"}]}"#, "result.content[0].data: not base64: length 3 is not a multiple of 4"),
        (#"{"content":[{"type":"image","data":"ab=c","mimeType":"image/png"}]}"#, "result.content[0].data: not base64: data after padding at byte 3"),
        (#"{"content":[{"type":"audio","data":"a b=","mimeType":"audio/wav"}]}"#, "result.content[0].data: not base64: byte 1 is outside the alphabet"),
        (#"{"content":[{"type":"image","data":"AAAA"}]}"#, "result.content[0].mimeType: required"),
        (#"{"content":[{"type":"resource_link","uri":"file:///x"}]}"#, "result.content[0].name: required"),
        (#"{"content":[{"type":"resource_link","uri":"file:///x","name":"x","size":-1}]}"#, "result.content[0].size: -1 is out of range 0…9223372036854775807"),
        (#"{"content":[{"type":"resource","resource":{"uri":"u"}}]}"#, "result.content[0].resource: expected one of text and blob"),
        (#"{"content":[{"type":"resource","resource":{"uri":"u","text":"a","blob":"AAAA"}}]}"#, "result.content[0].resource: expected one of text and blob"),
        (#"{"content":[{"type":"text","text":"x","annotations":[]}]}"#, "result.content[0].annotations: expected an object, got array"),
        (#"{"content":[],"isError":"no"}"#, "result.isError: expected true or false, got string"),
        (#"{"content":[],"resultType":"done"}"#, "result.resultType: unknown result type \"done\""),
    ])
    func malformedResultsNameTheirField(_ c: (String, String)) {
        #expect { try Self.outcome(c.0) } throws: { ($0 as? MCPError)?.description == c.1 }
    }

    @Test func blockCountIsBounded() {
        var limits = MCPLimits()
        limits.maxContentBlocks = 3
        let four = #"{"content":[\#(Array(repeating: #"{"type":"text","text":"x"}"#, count: 4).joined(separator: ","))]}"#
        #expect(throws: MCPError.limit("result.content", "more than 3 items")) { try Self.outcome(four, limits: limits) }
    }
}

struct MetaTests {
    @Test func theEnvelopeIsReadWhenClaimedAndRefusedWhenPartial() throws {
        let full = Wire.json(#"{\#(Wire.pythonMeta.replacingOccurrences(of: "{}}", with: #"{"roots":{}},"progressToken":"p1","traceparent":"00-x"}"#))}"#)
        let meta = try #require(try MCPRequestMeta.parse(params: full, limits: .default))
        #expect(meta.protocolVersion == "2026-07-28" && meta.clientInfo?.name == "mcp" && meta.progressToken == .string("p1"))
        #expect(meta.clientCapabilities == Wire.json(#"{"roots":{}}"#))
        #expect(try MCPRequestMeta.parse(params: Wire.json(#"{"_meta":{}}"#), limits: .default) == nil)
        #expect(try MCPRequestMeta.parse(params: Wire.json(#"{"_meta":{"progressToken":1}}"#), limits: .default) == nil)
        #expect(throws: MCPError.invalid(#"params._meta["io.modelcontextprotocol/clientCapabilities"]"#, "required")) {
            try MCPRequestMeta.parse(params: Wire.json(#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#), limits: .default)
        }
        #expect(throws: MCPError.invalid(#"params._meta["io.modelcontextprotocol/protocolVersion"]"#, "required")) {
            try MCPRequestMeta.parse(params: Wire.json(#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}"#), limits: .default)
        }
        #expect(throws: MCPError.invalid(#"params._meta["io.modelcontextprotocol/clientCapabilities"]"#, "expected an object, got array")) {
            try MCPRequestMeta.parse(params: Wire.json(#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}}"#), limits: .default)
        }
        #expect(throws: MCPError.invalid(#"params._meta["io.modelcontextprotocol/clientInfo"].name"#, "required")) {
            try MCPRequestMeta.parse(params: Wire.json(#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{}}}"#), limits: .default)
        }
    }

    @Test func revisionsSayWhatEachSupports() {
        #expect(MCPRevision.allCases.map(\.version) == ["2025-11-25", "2026-07-28"])
        #expect(MCPRevision.v2025_11_25 < .v2026_07_28 && MCPRevision.newest == .v2026_07_28)
        #expect(MCPRevision.v2025_11_25.opensWithInitialize && MCPRevision.v2025_11_25.hasPing && !MCPRevision.v2025_11_25.hasDiscover)
        #expect(MCPRevision.v2026_07_28.requestsCarryMeta && MCPRevision.v2026_07_28.resultsCarryResultType && !MCPRevision.v2026_07_28.hasPing)
        #expect(MCPRevision.v2026_07_28.listChangedNeedsSubscription && !MCPRevision.v2026_07_28.serverSendsRequests)
        #expect(MCPRevision("2025-06-18") == nil && MCPRevision("2026-07-28") == .v2026_07_28)
    }
}
