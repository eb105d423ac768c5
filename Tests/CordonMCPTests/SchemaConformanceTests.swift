import CordonJSON
@testable import CordonMCP
import Foundation
import Testing

/// Every kind of message the two sessions write, checked against the official JSON Schema of
/// its revision (../shared/data/mcp, beside the checkout) by python3-jsonschema: one process
/// for all of them (validate_mcp.py beside this file).
struct SchemaConformanceTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let repo = URL(fileURLWithPath: here).deletingLastPathComponent().deletingLastPathComponent().path
    static let schemas = URL(fileURLWithPath: repo).deletingLastPathComponent().appendingPathComponent("shared/data/mcp").path

    struct Check {
        var label: String
        var message: MCPMessage
        var revision: MCPRevision
        var definitions: [(String, String)]
    }

    /// Collects what the sessions write, each with the definitions it must satisfy (a
    /// definition with a pointer checks that part of the message).
    struct Corpus {
        var checks: [Check] = []

        mutating func add(_ label: String, _ message: MCPMessage, _ revision: MCPRevision, _ definitions: (String, String)...) {
            checks.append(Check(label: label, message: message, revision: revision, definitions: [("JSONRPCMessage", "")] + definitions))
        }

        /// A result, checked as a response and, at /result, as `definition`.
        mutating func result(_ label: String, _ message: MCPMessage?, _ revision: MCPRevision, _ definition: String) {
            guard let message else { Issue.record("\(label): no message"); return }
            #expect(message.resultValue != nil, "\(label): \(message.line)")
            add(label, message, revision, ("JSONRPCResultResponse", ""), (definition, "/result"))
        }

        mutating func error(_ label: String, _ message: MCPMessage?, _ revision: MCPRevision, _ definitions: (String, String)...) {
            guard let message else { Issue.record("\(label): no message"); return }
            #expect(message.errorValue != nil, "\(label): \(message.line)")
            checks.append(Check(label: label, message: message, revision: revision,
                                definitions: [("JSONRPCMessage", ""), ("JSONRPCErrorResponse", "")] + definitions))
        }
    }

    static let tools = [
        MCPTool(name: "get_current_time", title: "Time", description: "Now",
                inputSchema: Wire.json(#"{"type":"object","properties":{"timezone":{"type":"string"}},"required":["timezone"],"additionalProperties":false}"#),
                outputSchema: Wire.json(#"{"type":"object","properties":{"time":{"type":"string"}}}"#),
                annotations: MCPToolAnnotations(title: "Time", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false)),
        MCPTool(name: "list_rows", outputSchema: Wire.json(#"{"type":"array","items":{"type":"integer"}}"#)),
        MCPTool(name: "no.params-v2", inputSchema: Wire.json(#"{"type":"object","additionalProperties":false}"#), outputSchema: Wire.json(#"{"$schema":"https://json-schema.org/draft/2020-12/schema"}"#)),
    ]

    static let result = MCPCallToolResult(content: [
        .text("12:00", extra: Wire.json(#"{"annotations":{"audience":["user","assistant"],"priority":0.5,"lastModified":"2025-05-03T14:30:00Z"}}"#)),
        .image(data: "iVBORw0KGgo=", mimeType: "image/png", extra: nil),
        .audio(data: "UklGRg==", mimeType: "audio/wav", extra: Wire.json(#"{"_meta":{"com.example/k":"v"}}"#)),
        .resourceLink(uri: "file:///a.rs", name: "a.rs", object: Wire.json(#"{"type":"resource_link","uri":"file:///a.rs","name":"a.rs","mimeType":"text/x-rust","size":12}"#)),
        .resource(uri: "file:///a.rs", object: Wire.json(#"{"type":"resource","resource":{"uri":"file:///a.rs","mimeType":"text/x-rust","text":"fn main(){}"}}"#)),
        .resource(uri: "file:///b.bin", object: Wire.json(#"{"type":"resource","resource":{"uri":"file:///b.bin","blob":"AAEC"}}"#)),
    ], structuredContent: Wire.json(#"{"time":"12:00"}"#), isError: false)

    static func clientMessages(_ corpus: inout Corpus) throws {
        // Stateless: probe, list with a cursor, call with a progress token, subscribe, cancel.
        var modern = MCPClientSession(clientInfo: MCPImplementation(name: "cordond", version: "0.4.0", title: "Cordon", description: "gateway"))
        corpus.add("client discover", try #require(modern.start().send.first), .v2026_07_28, ("DiscoverRequest", ""))
        _ = modern.receive(Wire.bytes(ClientNegotiationTests.discoverResult))
        corpus.add("client tools/list", try #require(try modern.listTools().send.first), .v2026_07_28, ("ListToolsRequest", ""))
        let next = modern.receive(Wire.bytes(Wire.toolsPage(2, names: ["a"], next: "c2", modern: true)))
        corpus.add("client tools/list with cursor", try #require(next.send.first), .v2026_07_28, ("ListToolsRequest", ""))
        let (id, call) = try modern.callTool(MCPCallToolParams(name: "get_current_time", arguments: Wire.json(#"{"timezone":"UTC"}"#)), progressToken: .int(9))
        corpus.add("client tools/call", try #require(call.send.first), .v2026_07_28, ("CallToolRequest", ""))
        corpus.add("client cancel", try #require(modern.cancel(id, reason: "timeout").send.first), .v2026_07_28, ("CancelledNotification", ""), ("ClientNotification", ""))
        corpus.add("client subscriptions/listen", try #require(try modern.subscribeToToolChanges().send.first), .v2026_07_28, ("SubscriptionsListenRequest", ""))

        // Handshake: initialize, initialized, list, call, cancel, the answers to server requests.
        var legacy = MCPClientSession(clientInfo: Wire.cordonClient, revisions: [.v2026_07_28, .v2025_11_25])
        _ = legacy.start()
        let fallback = legacy.receive(Wire.bytes(Wire.error(1, -32601, "Method not found")))
        corpus.add("client initialize", try #require(fallback.send.first), .v2025_11_25, ("InitializeRequest", ""))
        let ready = legacy.receive(Wire.bytes(ClientNegotiationTests.initializeResult(2)))
        corpus.add("client initialized", try #require(ready.send.first), .v2025_11_25, ("InitializedNotification", ""))
        corpus.add("client tools/list (2025)", try #require(try legacy.listTools().send.first), .v2025_11_25, ("ListToolsRequest", ""))
        let page = legacy.receive(Wire.bytes(Wire.toolsPage(3, names: ["a"], next: "c2")))
        corpus.add("client tools/list with cursor (2025)", try #require(page.send.first), .v2025_11_25, ("ListToolsRequest", ""))
        let (legacyID, legacyCall) = try legacy.callTool(MCPCallToolParams(name: "get_current_time"), progressToken: .string("t"))
        corpus.add("client tools/call (2025)", try #require(legacyCall.send.first), .v2025_11_25, ("CallToolRequest", ""))
        corpus.add("client cancel (2025)", try #require(legacy.cancel(legacyID).send.first), .v2025_11_25, ("CancelledNotification", ""))
        corpus.result("client ping answer", legacy.receive(Wire.bytes(Wire.request(77, "ping"))).send.first, .v2025_11_25, "EmptyResult")
        corpus.error("client method not found", legacy.receive(Wire.bytes(Wire.request(78, "roots/list"))).send.first, .v2025_11_25)
    }

    static func serverMessages(_ corpus: inout Corpus) throws {
        var server = ServerSessionTests.session()
        let info = ("JSONRPCResultResponse", "")
        // Stateless.
        corpus.add("server discover", try #require(server.receive(Wire.bytes(Wire.pythonDiscover)).send.first), .v2026_07_28,
                   ("DiscoverResultResponse", ""), info)
        _ = server.receive(Wire.bytes(ServerSessionTests.stateless(2, "tools/list")))
        corpus.add("server tools/list", try #require(server.answer(.int(2), with: .tools(MCPListToolsResult(tools: tools, nextCursor: "p2"))).first),
                   .v2026_07_28, ("ListToolsResultResponse", ""))
        _ = server.receive(Wire.bytes(ServerSessionTests.stateless(3, "tools/call", #""name":"get_current_time""#)))
        corpus.add("server tools/call", try #require(server.answer(.int(3), with: .toolResult(result)).first), .v2026_07_28, ("CallToolResultResponse", ""))
        _ = server.receive(Wire.bytes(ServerSessionTests.stateless(4, "tools/call", #""name":"list_rows""#)))
        let rows = MCPCallToolResult(content: [.text("[1,2]", extra: nil)], structuredContent: Wire.json("[1,2]"), isError: true)
        corpus.add("server tools/call, array structured content", try #require(server.answer(.int(4), with: .toolResult(rows)).first),
                   .v2026_07_28, ("CallToolResultResponse", ""))
        _ = server.receive(Wire.bytes(ServerSessionTests.stateless(5, "tools/call", #""name":"x""#)))
        corpus.error("server forwarded error", server.answer(.int(5), with: .error(MCPErrorObject(code: -32602, message: "Unknown tool: x"))).first,
                     .v2026_07_28, ("InvalidParamsError", "/error"))
        corpus.error("server -32022", server.receive(Wire.bytes(Wire.pythonDiscover.replacingOccurrences(of: "2026-07-28", with: "1999-01-01"))).send.first,
                     .v2026_07_28, ("UnsupportedProtocolVersionError", ""))
        corpus.error("server missing envelope", server.receive(Wire.bytes(Wire.request(6, "tools/list"))).send.first, .v2026_07_28, ("InvalidParamsError", "/error"))
        corpus.error("server ping removed", server.receive(Wire.bytes(ServerSessionTests.stateless(7, "ping"))).send.first, .v2026_07_28, ("MethodNotFoundError", "/error"))
        corpus.error("server not JSON", server.receive(Wire.bytes("{")).send.first, .v2026_07_28, ("ParseError", "/error"))
        corpus.error("server not a request", server.receive(Wire.bytes(#"{"jsonrpc":"2.0","id":8,"method":"tools/list","params":3}"#)).send.first,
                     .v2026_07_28, ("InvalidRequestError", "/error"))
        let listen = server.receive(Wire.bytes(ServerSessionTests.stateless(10, "subscriptions/listen", #""notifications":{"toolsListChanged":true}"#)))
        corpus.add("server subscription ack", try #require(listen.send.first), .v2026_07_28, ("SubscriptionsAcknowledgedNotification", ""), ("ServerNotification", ""))
        corpus.add("server list changed (subscription)", try #require(server.toolsListChanged().first), .v2026_07_28, ("ToolListChangedNotification", ""))
        corpus.add("server subscription closed", try #require(server.endSubscriptions().first), .v2026_07_28, ("SubscriptionsListenResultResponse", ""))

        // Handshake.
        var legacy = ServerSessionTests.session()
        corpus.result("server initialize", legacy.receive(Wire.bytes(Wire.pythonInitialize)).send.first, .v2025_11_25, "InitializeResult")
        corpus.result("server ping", legacy.receive(Wire.bytes(Wire.request(2, "ping"))).send.first, .v2025_11_25, "EmptyResult")
        _ = legacy.receive(Wire.bytes(Wire.request(3, "tools/list")))
        corpus.result("server tools/list (2025)", legacy.answer(.int(3), with: .tools(MCPListToolsResult(tools: tools, nextCursor: "p2", ttlMs: 5))).first,
                      .v2025_11_25, "ListToolsResult")
        _ = legacy.receive(Wire.bytes(Wire.request(4, "tools/call", #"{"name":"get_current_time"}"#)))
        corpus.result("server tools/call (2025)", legacy.answer(.int(4), with: .toolResult(result)).first, .v2025_11_25, "CallToolResult")
        _ = legacy.receive(Wire.bytes(Wire.request(5, "tools/call", #"{"name":"list_rows"}"#)))
        corpus.result("server tools/call, array structured content (2025)",
                      legacy.answer(.int(5), with: .toolResult(MCPCallToolResult(content: [], structuredContent: Wire.json("[1]")))).first,
                      .v2025_11_25, "CallToolResult")
        corpus.error("server second initialize", legacy.receive(Wire.bytes(Wire.pythonInitialize)).send.first, .v2025_11_25)
        corpus.error("server unknown method (2025)", legacy.receive(Wire.bytes(Wire.request(6, "prompts/list"))).send.first, .v2025_11_25)
        corpus.error("server not JSON (2025)", legacy.receive(Wire.bytes("nope")).send.first, .v2025_11_25)
        corpus.add("server list changed (2025)", try #require(legacy.toolsListChanged().first), .v2025_11_25, ("ToolListChangedNotification", ""), ("ServerNotification", ""))
    }

    /// The Python client's first lines, as Cordon's tests feed them: checked too, so the
    /// fixtures cannot drift from what the schemas allow.
    static func fixtures(_ corpus: inout Corpus) throws {
        corpus.add("fixture: python discover", try MCPMessage.parse(Wire.bytes(Wire.pythonDiscover)), .v2026_07_28, ("DiscoverRequest", ""))
        corpus.add("fixture: python initialize", try MCPMessage.parse(Wire.bytes(Wire.pythonInitialize)), .v2025_11_25, ("InitializeRequest", ""))
        corpus.add("fixture: python initialized", try MCPMessage.parse(Wire.bytes(Wire.pythonInitialized)), .v2025_11_25, ("InitializedNotification", ""))
        corpus.add("fixture: discover result", try MCPMessage.parse(Wire.bytes(ClientNegotiationTests.discoverResult)), .v2026_07_28, ("DiscoverResultResponse", ""))
        corpus.add("fixture: stateless tools/list", try MCPMessage.parse(Wire.bytes(ServerSessionTests.stateless(2, "tools/list"))), .v2026_07_28, ("ListToolsRequest", ""))
    }

    @Test func everyMessageCordonWritesIsValidForItsRevision() throws {
        let validator = "\(Self.here)/validate_mcp.py"
        try #require(FileManager.default.fileExists(atPath: "\(Self.schemas)/schema-2026-07-28.json"), "the MCP schemas are in ../shared/data/mcp")
        var corpus = Corpus()
        try Self.clientMessages(&corpus)
        try Self.serverMessages(&corpus)
        try Self.fixtures(&corpus)
        // The errors answered to damaged lines: the same envelope in both revisions.
        let damaged = RobustnessTests.serverErrors(3_000)
        #expect(damaged.count > 20)
        for (i, message) in damaged.prefix(400).enumerated() {
            corpus.error("damaged line \(i)", message, .v2025_11_25)
            corpus.error("damaged line \(i)", message, .v2026_07_28)
        }
        #expect(corpus.checks.count >= 40)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-mcp-schema-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var manifest: [JSON] = []
        for (i, check) in corpus.checks.enumerated() {
            let file = "\(dir)/\(i).json"
            try check.message.line.write(toFile: file, atomically: true, encoding: .utf8)
            for (definition, pointer) in check.definitions {
                manifest.append(.object([("file", .string(file)), ("revision", .string(check.revision.version)),
                                         ("def", .string(definition)), ("pointer", .string(pointer)), ("label", .string(check.label))]))
            }
        }
        try JSON.array(manifest).text.write(toFile: "\(dir)/manifest.json", atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [validator, Self.schemas, "\(dir)/manifest.json"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problems = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = output.split(separator: "\n")
        for line in lines where line.hasPrefix("FAIL") { Issue.record("\(line)") }
        #expect(process.terminationStatus == 0, "validate_mcp.py: \(problems)")
        #expect(lines.last == "\(manifest.count) valid, 0 invalid")
    }
}
