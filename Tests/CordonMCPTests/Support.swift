import CordonJSON
@testable import CordonMCP
import Foundation
import Testing

/// Lines as a peer writes them, and the session steps' messages as text.
enum Wire {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func json(_ text: String) -> JSON {
        (try? JSON.parse(text)) ?? .null
    }

    static let cordonClient = MCPImplementation(name: "cordond", version: "0.4.0")
    static let cordonServer = MCPImplementation(name: "cordon", version: "0.4.0", title: "Cordon tool gateway")

    /// What the Python SDK's client (`mcp` 2.x, mode "auto", over stdio) writes first: the probe
    /// at the newest stateless version, id 1, its default client identity, no capabilities.
    static let pythonDiscover = #"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcp","version":"0.1.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#
    /// Its handshake (mode "legacy", or "auto" after a failed probe, then id 2): the dispatcher
    /// appends an empty `_meta` to every request's params.
    static let pythonInitialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcp","version":"0.1.0"},"_meta":{}}}"#
    static let pythonInitialized = #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#

    /// The stateless envelope the Python client stamps on every request after the probe.
    static let pythonMeta = #""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcp","version":"0.1.0"},"io.modelcontextprotocol/clientCapabilities":{}}"#

    static func request(_ id: Int, _ method: String, _ params: String? = nil) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)""# + (params.map { #","params":\#($0)"# } ?? "") + "}"
    }

    static func result(_ id: Int, _ result: String) -> String { #"{"jsonrpc":"2.0","id":\#(id),"result":\#(result)}"# }

    static func error(_ id: Int, _ code: Int, _ message: String, data: String? = nil) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"error":{"code":\#(code),"message":"\#(message)""# + (data.map { #","data":\#($0)"# } ?? "") + "}}"
    }

    /// A tools/list result of `count` tools named t0, t1, …
    static func toolsPage(_ id: Int, names: [String], next: String? = nil, modern: Bool = false) -> String {
        let tools = names.map { #"{"name":"\#($0)","description":"d","inputSchema":{"type":"object"}}"# }.joined(separator: ",")
        var result = #"{"tools":[\#(tools)]"#
        if let next { result += #","nextCursor":"\#(next)""# }
        if modern { result += #","resultType":"complete","ttlMs":1000,"cacheScope":"public""# }
        return self.result(id, result + "}")
    }
}

extension MCPMessage {
    var method: String? {
        switch self {
        case .request(_, let m, _), .notification(let m, _): return m
        default: return nil
        }
    }

    var params: JSON? {
        switch self {
        case .request(_, _, let p), .notification(_, let p): return p
        default: return nil
        }
    }

    var resultValue: JSON? { if case .result(_, let r) = self { return r }; return nil }

    var errorValue: MCPErrorObject? { if case .error(_, let e) = self { return e }; return nil }

    var id: MCPRequestID? {
        switch self {
        case .request(let id, _, _), .result(let id, _): return id
        case .error(let id, _): return id
        case .notification: return nil
        }
    }
}
