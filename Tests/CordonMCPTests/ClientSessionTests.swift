import CordonJSON
@testable import CordonMCP
import Testing

/// The gateway's side toward a sandboxed server, fed the lines such servers write.
struct ClientNegotiationTests {
    static func session(_ revisions: [MCPRevision] = [.v2026_07_28, .v2025_11_25]) -> MCPClientSession {
        MCPClientSession(clientInfo: Wire.cordonClient, revisions: revisions)
    }

    static let discoverResult = Wire.result(1, #"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"time","version":"2.0.0"}},"instructions":"Ask for the time.","ttlMs":3600000,"cacheScope":"public"}"#)

    static func initializeResult(_ id: Int, version: String = "2025-11-25") -> String {
        Wire.result(id, #"{"protocolVersion":"\#(version)","capabilities":{"tools":{"listChanged":false},"logging":{}},"serverInfo":{"name":"mcp-time","version":"1.26.0"}}"#)
    }

    @Test func aStatelessServerIsSettledByItsDiscoverResult() throws {
        var client = Self.session()
        let open = client.start()
        #expect(open.send.count == 1 && client.phase == .discovering)
        #expect(open.send[0].line == #"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"cordond","version":"0.4.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#)
        #expect(client.start().send.isEmpty)

        let step = client.receive(Wire.bytes(Self.discoverResult))
        #expect(step.send.isEmpty)
        #expect(client.phase == .ready(.v2026_07_28))
        let negotiated = try #require(client.negotiated)
        #expect(negotiated.serverInfo == MCPImplementation(name: "time", version: "2.0.0"))
        #expect(negotiated.capabilities.tools && negotiated.capabilities.toolsListChanged)
        #expect(negotiated.instructions == "Ask for the time." && negotiated.supportedVersions == ["2026-07-28"])
        #expect(step.events == [.negotiated(negotiated)])
    }

    /// What a handshake-era server says to an unknown method before initialize varies: each
    /// answer, and silence, leads to initialize.
    @Test(arguments: [
        Wire.error(1, -32601, "Method not found"),
        Wire.error(1, -32602, "Invalid request parameters"),
        Wire.error(1, -32600, "Received request before initialization was complete"),
        Wire.error(1, -32000, "whatever"),
        Wire.error(1, -32022, "Unsupported", data: #"{"nothing":"readable"}"#),
        #"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"}}"#,
        Wire.result(1, #"{"supportedVersions":"2026-07-28","capabilities":{}}"#),
        Wire.result(1, #"{"supportedVersions":["2025-11-25","2025-06-18"],"capabilities":{},"resultType":"complete","ttlMs":0,"cacheScope":"private"}"#),
        "timeout",
    ])
    func aHandshakeEraServerGetsInitialize(_ answer: String) throws {
        var client = Self.session()
        _ = client.start()
        let step = answer == "timeout" ? client.negotiationTimedOut() : client.receive(Wire.bytes(answer))
        #expect(client.phase == .initializing)
        #expect(step.send.map(\.line) == [#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cordond","version":"0.4.0"}}}"#])
        guard case .fellBack(.v2026_07_28, .v2025_11_25, _)? = step.events.first else { Issue.record("\(step.events)"); return }

        // A late answer to the probe changes nothing.
        #expect(client.receive(Wire.bytes(Self.discoverResult)).events.first.map { if case .ignored = $0 { true } else { false } } == true)
        let ready = client.receive(Wire.bytes(Self.initializeResult(2)))
        #expect(client.phase == .ready(.v2025_11_25))
        #expect(ready.send.map(\.line) == [#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#])
        #expect(client.negotiated?.serverInfo.map(\.name) == "mcp-time" && client.negotiated?.capabilities.tools == true)
    }

    /// A -32022 is a stateless-era server: its list decides, never a blind fallback.
    @Test func unsupportedVersionErrorsAreFollowedByTheirList() {
        var client = Self.session()
        _ = client.start()
        let toHandshake = client.receive(Wire.bytes(Wire.error(1, -32022, "Unsupported protocol version", data: #"{"supported":["2025-11-25"],"requested":"2026-07-28"}"#)))
        #expect(client.phase == .initializing && toHandshake.send.first?.method == "initialize")

        var other = Self.session()
        _ = other.start()
        let step = other.receive(Wire.bytes(Wire.error(1, -32022, "Unsupported protocol version", data: #"{"supported":["2027-01-01"],"requested":"2026-07-28"}"#)))
        #expect(step.send.isEmpty)
        guard case .failed(let error) = other.phase else { Issue.record("\(other.phase)"); return }
        #expect(error.code == .unsupportedVersion && error.message.contains("2027-01-01"))

        var modernOnly = Self.session([.v2026_07_28])
        _ = modernOnly.start()
        _ = modernOnly.receive(Wire.bytes(Wire.error(1, -32022, "Unsupported", data: #"{"supported":["2025-11-25"],"requested":"2026-07-28"}"#)))
        #expect(modernOnly.phase == .failed(MCPError(.unsupportedVersion, "the server refused 2026-07-28 and supports 2025-11-25, none of which Cordon speaks")))
    }

    @Test func aMissingCapabilityErrorFailsWithoutFallback() {
        var client = Self.session()
        _ = client.start()
        _ = client.receive(Wire.bytes(Wire.error(1, -32021, "Missing capability", data: #"{"requiredCapabilities":{"elicitation":{}}}"#)))
        guard case .failed(let error) = client.phase else { Issue.record("\(client.phase)"); return }
        #expect(error.code == .peerError(-32021))
    }

    @Test func aModernOnlySessionFailsOnAHandshakeServer() {
        var client = Self.session([.v2026_07_28])
        _ = client.start()
        let step = client.receive(Wire.bytes(Wire.error(1, -32601, "Method not found")))
        #expect(step.send.isEmpty)
        guard case .failed(let error) = client.phase else { Issue.record("\(client.phase)"); return }
        #expect(error.code == .unsupportedVersion)
        #expect(client.receive(Wire.bytes(Self.discoverResult)).events == [.ignored("the session has failed")])
    }

    @Test func aHandshakeFirstSessionOpensWithInitializeAndKeepsItsVersion() {
        var client = Self.session([.v2025_11_25, .v2026_07_28])
        #expect(client.start().send.first?.method == "initialize")
        _ = client.receive(Wire.bytes(Self.initializeResult(1, version: "2025-06-18")))
        #expect(client.phase == .failed(MCPError(.unsupportedVersion, "the server answered initialize with 2025-06-18; Cordon speaks 2025-11-25 in the handshake era", field: "result.protocolVersion")))

        var silent = Self.session([.v2025_11_25])
        _ = silent.start()
        _ = silent.negotiationTimedOut()
        #expect(silent.phase == .failed(MCPError(.timedOut, "no answer to initialize")))
    }

    /// A stateless-era server that refuses initialize, naming 2026-07-28, is probed once.
    @Test func aRefusedInitializeNamingTheNewRevisionLeadsToOneProbe() {
        var client = Self.session([.v2025_11_25, .v2026_07_28])
        _ = client.start()
        let unsupported = #"{"supported":["2026-07-28"],"requested":"2025-11-25"}"#
        let step = client.receive(Wire.bytes(Wire.error(1, -32022, "initialize is not accepted", data: unsupported)))
        #expect(step.send.first?.method == "server/discover" && client.phase == .discovering)
        _ = client.receive(Wire.bytes(Self.discoverResult.replacingOccurrences(of: #""id":1"#, with: #""id":2"#)))
        #expect(client.phase == .ready(.v2026_07_28))

        var refused = Self.session([.v2025_11_25])
        _ = refused.start()
        _ = refused.receive(Wire.bytes(Wire.error(1, -32022, "initialize is not accepted", data: unsupported)))
        #expect(refused.phase == .failed(MCPError(.peerError(-32022), "the server refused initialize: initialize is not accepted")))
    }

    /// The negotiation fails with a reason on an unreadable initialize result, and garbage
    /// lines never move it.
    @Test func malformedAnswersDuringNegotiation() {
        var client = Self.session([.v2025_11_25])
        _ = client.start()
        #expect(client.receive(Wire.bytes("not json")).events.count == 1 && client.phase == .initializing)
        #expect(client.receive(Wire.bytes(Wire.result(99, "{}"))).events.count == 1 && client.phase == .initializing)
        _ = client.receive(Wire.bytes(Wire.result(1, #"{"protocolVersion":"2025-11-25","capabilities":{}}"#)))
        #expect(client.phase == .failed(.invalid("result.serverInfo", "required")))
    }

    /// Before and during the handshake era a server may ping its client; nothing else is served.
    @Test func serverRequestsAreAnsweredOnlyInTheHandshakeEra() {
        var client = Self.session([.v2025_11_25])
        _ = client.start()
        _ = client.receive(Wire.bytes(Self.initializeResult(1)))
        #expect(client.receive(Wire.bytes(Wire.request(5, "ping"))).send.map(\.line) == [#"{"jsonrpc":"2.0","id":5,"result":{}}"#])
        let sampling = client.receive(Wire.bytes(Wire.request(6, "sampling/createMessage", "{}")))
        #expect(sampling.send.first?.errorValue?.code == -32601)

        var modern = Self.session()
        _ = modern.start()
        _ = modern.receive(Wire.bytes(Self.discoverResult))
        let step = modern.receive(Wire.bytes(Wire.request(5, "ping")))
        #expect(step.send.isEmpty && step.events.count == 1)
    }
}

struct ClientOperationTests {
    static func ready(_ revision: MCPRevision) -> MCPClientSession {
        var client = MCPClientSession(clientInfo: Wire.cordonClient, revisions: [revision])
        _ = client.start()
        _ = client.receive(Wire.bytes(revision == .v2026_07_28 ? ClientNegotiationTests.discoverResult : ClientNegotiationTests.initializeResult(1)))
        return client
    }

    @Test func requestsBeforeNegotiationAreRefused() {
        var client = MCPClientSession(clientInfo: Wire.cordonClient)
        #expect(throws: MCPError.self) { try client.listTools() }
        #expect(throws: MCPError.self) { try client.callTool(MCPCallToolParams(name: "x")) }
    }

    /// Pages are followed until there is no cursor; tools repeated across pages are rejected.
    @Test(arguments: MCPRevision.allCases)
    func listingFollowsEveryPage(_ revision: MCPRevision) throws {
        var client = Self.ready(revision)
        let modern = revision == .v2026_07_28
        let first = try client.listTools()
        let request = try #require(first.send.first)
        #expect(request.method == "tools/list")
        #expect(request.params?["_meta"]?[MCPMetaKey.protocolVersion] == (modern ? .string("2026-07-28") : nil))
        #expect(request.params?["cursor"] == nil)
        #expect(throws: MCPError(.protocolViolation, "a tool listing is already under way")) { try client.listTools() }

        let id = 2
        let second = client.receive(Wire.bytes(Wire.toolsPage(id, names: ["a", "b"], next: "", modern: modern)))
        #expect(second.events.isEmpty)
        #expect(second.send.first?.params?["cursor"] == .string(""))
        let third = client.receive(Wire.bytes(Wire.toolsPage(id + 1, names: ["b", "c"], next: "p3", modern: modern)))
        let done = client.receive(Wire.bytes(Wire.toolsPage(id + 2, names: ["d"], modern: modern)))
        #expect(third.send.first?.params?["cursor"] == .string("p3"))
        guard case .tools(let listing)? = done.events.first else { Issue.record("\(done.events)"); return }
        #expect(listing.tools.map(\.name) == ["a", "b", "c", "d"] && listing.pages == 3)
        #expect(listing.rejected.map(\.description) == [#"tool "b": result.tools: "b" is listed on two pages"#])
        #expect(listing.ttlMs == (modern ? 1000 : nil) && listing.cacheScope == (modern ? .public : nil))
        // The next listing starts afresh.
        #expect(try client.listTools().send.count == 1)
    }

    @Test func aServerThatPagesForeverIsCutOff() throws {
        var limits = MCPLimits()
        limits.maxPages = 3
        var client = MCPClientSession(clientInfo: Wire.cordonClient, revisions: [.v2025_11_25], limits: limits)
        _ = client.start()
        _ = client.receive(Wire.bytes(ClientNegotiationTests.initializeResult(1)))
        _ = try client.listTools()
        _ = client.receive(Wire.bytes(Wire.toolsPage(2, names: ["a"], next: "x")))
        let loop = client.receive(Wire.bytes(Wire.toolsPage(3, names: ["b"], next: "x")))
        #expect(loop.events == [.toolsFailed(.invalid("result.nextCursor", "a cursor seen before: the server pages in a loop"))])

        _ = try client.listTools()
        _ = client.receive(Wire.bytes(Wire.toolsPage(4, names: ["a"], next: "1")))
        _ = client.receive(Wire.bytes(Wire.toolsPage(5, names: ["b"], next: "2")))
        let many = client.receive(Wire.bytes(Wire.toolsPage(6, names: ["c"], next: "3")))
        #expect(many.events == [.toolsFailed(.limit("result.nextCursor", "more than 3 pages"))])

        limits.maxTools = 2
        var small = MCPClientSession(clientInfo: Wire.cordonClient, revisions: [.v2025_11_25], limits: limits)
        _ = small.start()
        _ = small.receive(Wire.bytes(ClientNegotiationTests.initializeResult(1)))
        _ = try small.listTools()
        #expect(small.receive(Wire.bytes(Wire.toolsPage(2, names: ["a", "b", "c"]))).events == [.toolsFailed(.limit("result.tools", "more than 2 tools in all"))])
        _ = try small.listTools()
        #expect(small.receive(Wire.bytes(Wire.error(3, -32602, "bad cursor"))).events == [.toolsFailed(MCPError(.peerError(-32602), "bad cursor"))])
    }

    @Test(arguments: MCPRevision.allCases)
    func callsCarryTheEnvelopeAndResultsAreParsed(_ revision: MCPRevision) throws {
        var client = Self.ready(revision)
        let (id, step) = try client.callTool(MCPCallToolParams(name: "get_current_time", arguments: Wire.json(#"{"timezone":"UTC"}"#)),
                                             progressToken: .string("p"))
        let params = try #require(step.send.first?.params)
        #expect(params["name"] == .string("get_current_time") && params["arguments"] == Wire.json(#"{"timezone":"UTC"}"#))
        #expect(params["_meta"]?["progressToken"] == .string("p"))
        #expect((params["_meta"]?[MCPMetaKey.clientCapabilities] != nil) == (revision == .v2026_07_28))

        let n = Int(id.description)!
        let progress = client.receive(Wire.bytes(#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":0.5,"total":1}}"#))
        #expect(progress.events == [.progress(token: .string("p"), progress: 0.5, total: 1, message: nil)])
        let done = client.receive(Wire.bytes(Wire.result(n, #"{"content":[{"type":"text","text":"12:00"}],"isError":false}"#)))
        #expect(done.events == [.toolResult(id: id, .complete(MCPCallToolResult(content: [.text("12:00", extra: nil)])))])

        let (bad, _) = try client.callTool(MCPCallToolParams(name: "x"))
        let unreadable = client.receive(Wire.bytes(Wire.result(Int(bad.description)!, #"{"content":[{"type":"image"}]}"#)))
        #expect(unreadable.events == [.requestFailed(id: bad, .invalid("result.content[0].data", "required"))])
        let (refused, _) = try client.callTool(MCPCallToolParams(name: "x"))
        let error = client.receive(Wire.bytes(Wire.error(Int(refused.description)!, -32602, "Unknown tool: x")))
        #expect(error.events == [.requestFailed(id: refused, MCPError(.peerError(-32602), "Unknown tool: x"))])

        #expect(throws: MCPError.invalid("params.name", "contains ' ': only A-Z a-z 0-9 _ - . are allowed")) {
            try client.callTool(MCPCallToolParams(name: "bad name"))
        }
        #expect(throws: MCPError.invalid("params.arguments", "expected an object, got array")) {
            try client.callTool(MCPCallToolParams(name: "x", arguments: .array([])))
        }
    }

    @Test func aCancelledCallsLateAnswerIsIgnored() throws {
        var client = Self.ready(.v2026_07_28)
        let (id, _) = try client.callTool(MCPCallToolParams(name: "slow"))
        let cancel = client.cancel(id, reason: "timed out")
        #expect(cancel.send.map(\.line) == [#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"timed out"}}"#])
        #expect(client.cancel(id).send.isEmpty)
        let late = client.receive(Wire.bytes(Wire.result(2, #"{"content":[]}"#)))
        guard case .ignored? = late.events.first else { Issue.record("\(late.events)"); return }

        var probing = MCPClientSession(clientInfo: Wire.cordonClient)
        _ = probing.start()
        #expect(probing.cancel(.int(1)).send.isEmpty)
    }

    /// 2026-07-28 sends list changes only on a subscription, tagged with its id; 2025-11-25
    /// sends them unasked.
    @Test func listChangesPerRevision() throws {
        var modern = Self.ready(.v2026_07_28)
        let listen = try modern.subscribeToToolChanges()
        let request = try #require(listen.send.first)
        #expect(request.method == "subscriptions/listen" && request.params?["notifications"] == Wire.json(#"{"toolsListChanged":true}"#))
        #expect(try modern.subscribeToToolChanges().send.isEmpty)
        let untagged = #"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
        let tagged = #"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":2}}}"#
        let ack = #"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":2},"notifications":{"toolsListChanged":true}}}"#
        #expect(modern.receive(Wire.bytes(ack)).events == [.subscribed(toolsListChanged: true)])
        #expect(modern.receive(Wire.bytes(tagged)).events == [.toolsListChanged])
        #expect(modern.receive(Wire.bytes(untagged)).events == [.ignored("a tool list change outside the subscription")])
        let end = #"{"jsonrpc":"2.0","id":2,"result":{"resultType":"complete","_meta":{"io.modelcontextprotocol/subscriptionId":2}}}"#
        #expect(modern.receive(Wire.bytes(end)).events == [.subscriptionEnded])
        #expect(modern.receive(Wire.bytes(tagged)).events == [.ignored("a tool list change outside the subscription")])

        var legacy = Self.ready(.v2025_11_25)
        #expect(try legacy.subscribeToToolChanges().send.isEmpty)
        #expect(legacy.receive(Wire.bytes(untagged)).events == [.toolsListChanged])
    }
}
