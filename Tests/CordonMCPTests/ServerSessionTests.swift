import CordonJSON
@testable import CordonMCP
import Testing

/// `cordon mcp serve` toward agents' clients, fed what those clients write.
struct ServerSessionTests {
    static func session(toolsListChanged: Bool = true) -> MCPServerSession {
        MCPServerSession(.init(serverInfo: Wire.cordonServer, instructions: "Tools run in sandboxes.", toolsListChanged: toolsListChanged))
    }

    static func stateless(_ id: Int, _ method: String, _ params: String = "") -> String {
        Wire.request(id, method, "{" + Wire.pythonMeta + (params.isEmpty ? "" : "," + params) + "}")
    }

    static let tool = MCPTool(name: "get_current_time", description: "Now", inputSchema: Wire.json(#"{"type":"object","properties":{"timezone":{"type":"string"}}}"#))

    /// The Python client's probe settles the stateless era; its requests are forwarded with
    /// their envelope read, and the answers written as 2026-07-28 results.
    @Test func thePythonClientsProbeIsAnswered() throws {
        var server = Self.session()
        let step = server.receive(Wire.bytes(Wire.pythonDiscover))
        #expect(step.events.isEmpty)
        #expect(step.send.map(\.line) == [#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true}},"instructions":"Tools run in sandboxes.","ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"cordon","version":"0.4.0","title":"Cordon tool gateway"}}}}"#])

        let list = server.receive(Wire.bytes(Self.stateless(2, "tools/list")))
        let forwarded = MCPServerSession.ForwardedRequest(id: .int(2), revision: .v2026_07_28, call: .listTools(cursor: nil),
                                                         clientInfo: MCPImplementation(name: "mcp", version: "0.1.0"), progressToken: nil)
        #expect(list.send.isEmpty && list.events == [.forward(forwarded)])
        let answer = server.answer(.int(2), with: .tools(MCPListToolsResult(tools: [Self.tool], nextCursor: "n")))
        #expect(answer.map(\.line) == [#"{"jsonrpc":"2.0","id":2,"result":{"resultType":"complete","tools":[{"name":"get_current_time","description":"Now","inputSchema":{"type":"object","properties":{"timezone":{"type":"string"}}}}],"nextCursor":"n","ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"cordon","version":"0.4.0","title":"Cordon tool gateway"}}}}"#])
        #expect(server.answer(.int(2), with: .tools(MCPListToolsResult(tools: []))).isEmpty)

        let call = server.receive(Wire.bytes(Self.stateless(3, "tools/call", #""name":"get_current_time","arguments":{"timezone":"UTC"}"#)))
        guard case .forward(let request)? = call.events.first, case .callTool(let params) = request.call else { Issue.record("\(call.events)"); return }
        #expect(params == MCPCallToolParams(name: "get_current_time", arguments: Wire.json(#"{"timezone":"UTC"}"#)))
        #expect(server.pendingCount == 1)
    }

    /// The Python client's handshake (mode "legacy", and its 1.x releases) opens 2025-11-25.
    @Test func thePythonClientsHandshakeIsAnswered() throws {
        var server = Self.session()
        let opened = server.receive(Wire.bytes(Wire.pythonInitialize))
        #expect(opened.send.map(\.line) == [#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"cordon","version":"0.4.0","title":"Cordon tool gateway"},"instructions":"Tools run in sandboxes."}}"#])
        #expect(opened.events == [.initialized(clientInfo: MCPImplementation(name: "mcp", version: "0.1.0"), requestedVersion: "2025-11-25")])
        #expect(server.receive(Wire.bytes(Wire.pythonInitialized)).events == [.clientReady])
        #expect(server.receive(Wire.bytes(Wire.request(2, "ping"))).send.map(\.line) == [#"{"jsonrpc":"2.0","id":2,"result":{}}"#])

        let list = server.receive(Wire.bytes(Wire.request(3, "tools/list", #"{"cursor":"c1","_meta":{"progressToken":7}}"#)))
        #expect(list.events == [.forward(.init(id: .int(3), revision: .v2025_11_25, call: .listTools(cursor: "c1"),
                                               clientInfo: MCPImplementation(name: "mcp", version: "0.1.0"), progressToken: .int(7)))])
        let page = MCPListToolsResult(tools: [MCPTool(name: "rows", outputSchema: Wire.json(#"{"type":"array"}"#))], ttlMs: 5, cacheScope: .public)
        #expect(server.answer(.int(3), with: .tools(page)).map(\.line) == [#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"rows","inputSchema":{"type":"object"}}]}}"#])

        _ = server.receive(Wire.bytes(Wire.request(4, "tools/call", #"{"name":"rows"}"#)))
        let result = MCPCallToolResult(content: [.text("[1]", extra: nil)], structuredContent: .array([.int(1)]), isError: true)
        #expect(server.answer(.int(4), with: .toolResult(result)).map(\.line) == [#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"[1]"}],"isError":true}}"#])

        // A second initialize is refused; stateless requests are still served beside the session.
        #expect(server.receive(Wire.bytes(Wire.pythonInitialize)).send.first?.errorValue?.code == -32600)
        #expect(server.receive(Wire.bytes(Wire.pythonDiscover.replacingOccurrences(of: #""id":1"#, with: #""id":9"#))).send.first?.resultValue?["supportedVersions"] != nil)
    }

    /// initialize is answered with 2025-11-25 whatever was asked; the client decides.
    @Test(arguments: ["2025-11-25", "2025-06-18", "2024-11-05", "2026-07-28", "1.0.0"])
    func initializeCounterOffers(_ asked: String) {
        var server = Self.session()
        let line = Wire.pythonInitialize.replacingOccurrences(of: "2025-11-25", with: asked)
        #expect(server.receive(Wire.bytes(line)).send.first?.resultValue?["protocolVersion"] == .string("2025-11-25"))
    }

    @Test(arguments: [
        (#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, -32602,
         #"params._meta["io.modelcontextprotocol/protocolVersion"]: required: send initialize first (2025-11-25), or carry the 2026-07-28 request metadata"#),
        (#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#, -32602,
         #"params._meta["io.modelcontextprotocol/clientCapabilities"]: required"#),
        (#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}}"#, -32602,
         #"params._meta["io.modelcontextprotocol/protocolVersion"]: required"#),
        (#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#, -32602, "params.clientInfo: required"),
        (#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#, -32602, "params: required"),
        (ServerSessionTests.stateless(1, "tools/call"), -32602, "params.name: required"),
        (ServerSessionTests.stateless(1, "tools/call", #""name":"x","arguments":[]"#), -32602, "params.arguments: expected an object, got array"),
        (ServerSessionTests.stateless(1, "tools/call", #""name":"x","requestState":"s""#), -32602, "params.requestState: Cordon asked for no input"),
        (ServerSessionTests.stateless(1, "tools/list", #""cursor":5"#), -32602, "params.cursor: expected a string, got integer"),
        (ServerSessionTests.stateless(1, "ping"), -32601, "method not found: ping"),
        (ServerSessionTests.stateless(1, "resources/list"), -32601, "method not found: resources/list"),
        (ServerSessionTests.stateless(1, "subscriptions/listen"), -32602, "params.notifications: required"),
        (#"{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{"_meta":[]}}"#, -32602, "params._meta: expected an object, got array"),
        ("{\"jsonrpc\":\"2.0\",\"id\":4,", -32700, nil),
        (#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":[]}"#, -32600, nil),
    ] as [(String, Int64, String?)])
    func malformedRequestsGetTheirError(_ c: (String, Int64, String?)) throws {
        var server = Self.session()
        let step = server.receive(Wire.bytes(c.0))
        let error = try #require(step.send.first?.errorValue)
        #expect(error.code == c.1)
        if let message = c.2 { #expect(error.message == message) }
        #expect(step.events.count == 1)
        #expect(server.pendingCount == 0)
    }

    @Test func anUnservedVersionGetsTheSupportedList() throws {
        var server = Self.session()
        let step = server.receive(Wire.bytes(Wire.pythonDiscover.replacingOccurrences(of: "2026-07-28", with: "2027-01-01")))
        let error = try #require(step.send.first?.errorValue)
        #expect(error.code == -32022)
        #expect(error.data == Wire.json(#"{"supported":["2026-07-28","2025-11-25"],"requested":"2027-01-01"}"#))
        // A handshake version inside the stateless envelope is not served that way either.
        let old = server.receive(Wire.bytes(Self.stateless(2, "tools/list").replacingOccurrences(of: "2026-07-28", with: "2025-11-25")))
        #expect(old.send.first?.errorValue?.code == -32022)
    }

    @Test func cancellationStopsTheAnswer() {
        var server = Self.session()
        _ = server.receive(Wire.bytes(Self.stateless(5, "tools/call", #""name":"slow""#)))
        let cancelled = server.receive(Wire.bytes(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}"#))
        #expect(cancelled.send.isEmpty && cancelled.events == [.cancelled(.int(5), reason: "user")])
        #expect(server.answer(.int(5), with: .toolResult(MCPCallToolResult(content: []))).isEmpty)
        // Unknown, repeated and malformed cancellations are ignored without an answer.
        for line in [#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#,
                     #"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#,
                     #"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#] {
            let step = server.receive(Wire.bytes(line))
            #expect(step.send.isEmpty && step.events.isEmpty)
        }
    }

    @Test func idsInUseAndTheInFlightLimitAreRefused() {
        var limits = MCPLimits()
        limits.maxInFlight = 2
        var server = MCPServerSession(.init(serverInfo: Wire.cordonServer, limits: limits))
        _ = server.receive(Wire.bytes(Self.stateless(1, "tools/list")))
        #expect(server.receive(Wire.bytes(Self.stateless(1, "tools/list"))).send.first?.errorValue?.code == -32600)
        _ = server.receive(Wire.bytes(Self.stateless(2, "tools/list")))
        let third = server.receive(Wire.bytes(Self.stateless(3, "tools/list")))
        #expect(third.send.first?.errorValue == MCPErrorObject(code: -32602, message: "more than 2 requests in progress"))
        #expect(server.pendingCount == 2)
    }

    @Test func subscriptionsCarryListChangesUntilTheyEnd() throws {
        var server = Self.session()
        let listen = server.receive(Wire.bytes(Self.stateless(7, "subscriptions/listen", #""notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///x"]}"#)))
        #expect(listen.send.map(\.line) == [#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7},"notifications":{"toolsListChanged":true}}}"#])
        _ = server.receive(Wire.bytes(Self.stateless(8, "subscriptions/listen", #""notifications":{"promptsListChanged":true}"#)))
        #expect(server.toolsListChanged().map(\.line) == [#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}"#])
        _ = server.receive(Wire.bytes(Wire.pythonInitialize.replacingOccurrences(of: #""id":1"#, with: #""id":9"#)))
        #expect(server.toolsListChanged().count == 2)

        let ended = server.receive(Wire.bytes(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8}}"#))
        #expect(ended.events == [.unsubscribed(.int(8))])
        let close = server.endSubscriptions()
        #expect(close.map(\.line) == [#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","_meta":{"io.modelcontextprotocol/subscriptionId":7,"io.modelcontextprotocol/serverInfo":{"name":"cordon","version":"0.4.0","title":"Cordon tool gateway"}}}}"#])
        #expect(server.toolsListChanged().map(\.line) == [#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#])
        #expect(Self.session(toolsListChanged: false).toolsListChanged().isEmpty)
    }

    @Test func responsesAndStrayNotificationsFromTheClientAreDropped() {
        var server = Self.session()
        for line in [Wire.result(1, "{}"), Wire.error(1, -1, "x"), Wire.pythonInitialized,
                     #"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#] {
            #expect(server.receive(Wire.bytes(line)).send.isEmpty)
        }
    }
}

/// Cordon's two sessions against each other: the gateway's client toward `cordon mcp serve`.
struct SessionPairTests {
    /// Runs the client's messages through the server and back until neither has more to say;
    /// forwarded requests are answered by `tools`.
    static func exchange(_ client: inout MCPClientSession, _ server: inout MCPServerSession, _ first: [MCPMessage],
                         tools: [MCPTool]) -> [MCPClientSession.Event] {
        var toServer = first
        var events: [MCPClientSession.Event] = []
        while !toServer.isEmpty {
            var toClient: [MCPMessage] = []
            for message in toServer {
                let step = server.receive(Wire.bytes(message.line))
                toClient += step.send
                for case .forward(let request) in step.events {
                    switch request.call {
                    case .listTools: toClient += server.answer(request.id, with: .tools(MCPListToolsResult(tools: tools)))
                    case .callTool(let call):
                        toClient += server.answer(request.id, with: .toolResult(MCPCallToolResult(content: [.text("called \(call.name)", extra: nil)])))
                    }
                }
            }
            toServer = []
            for message in toClient {
                let step = client.receive(Wire.bytes(message.line))
                toServer += step.send
                events += step.events
            }
        }
        return events
    }

    @Test(arguments: [[MCPRevision.v2026_07_28, .v2025_11_25], [.v2025_11_25], [.v2026_07_28], [.v2025_11_25, .v2026_07_28]])
    func cordonTalksToCordon(_ revisions: [MCPRevision]) throws {
        var client = MCPClientSession(clientInfo: Wire.cordonClient, revisions: revisions)
        var server = ServerSessionTests.session()
        let tools = [ServerSessionTests.tool]
        _ = Self.exchange(&client, &server, client.start().send, tools: tools)
        #expect(client.phase == .ready(revisions[0]))
        let listed = Self.exchange(&client, &server, try client.listTools().send, tools: tools)
        #expect(listed.compactMap { if case .tools(let l) = $0 { l.tools } else { nil } } == [tools])
        let (id, step) = try client.callTool(MCPCallToolParams(name: "get_current_time"))
        let called = Self.exchange(&client, &server, step.send, tools: tools)
        #expect(called == [.toolResult(id: id, .complete(MCPCallToolResult(content: [.text("called get_current_time", extra: nil)])))])
    }
}
