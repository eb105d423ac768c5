import CordonJSON

/// A request id: a string or an integer, never null (2025-11-25 and 2026-07-28, Overview,
/// Requests). Also the type of a progress token and a subscription id.
public enum MCPRequestID: Hashable, Sendable, CustomStringConvertible {
    case int(Int64)
    case string(String)

    public var json: JSON {
        switch self {
        case .int(let n): return .int(n)
        case .string(let s): return .string(s)
        }
    }

    public var description: String {
        switch self {
        case .int(let n): return String(n)
        case .string(let s): return "\"\(s)\""
        }
    }

    static func parse(_ value: JSON, field: String, maxBytes: Int) throws(MCPError) -> MCPRequestID {
        switch value {
        case .int(let n): return .int(n)
        case .string(let s):
            guard s.utf8.count <= maxBytes else { throw .limit(field, "longer than \(maxBytes) bytes") }
            return .string(s)
        case .null: throw .invalid(field, "must not be null")
        default: throw .invalid(field, "expected a string or an integer, got \(value.typeName)")
        }
    }
}

/// One JSON-RPC 2.0 message as MCP allows it: an object (batches were removed in 2025-06-18),
/// `params` an object when present, ids strings or integers.
public enum MCPMessage: Sendable, Equatable {
    case request(id: MCPRequestID, method: String, params: JSON?)
    case notification(method: String, params: JSON?)
    case result(id: MCPRequestID, result: JSON)
    case error(id: MCPRequestID?, MCPErrorObject)

    /// Parses one line. A failure carries the request's id when it could be read, so a server
    /// can answer the right request.
    public static func parse(_ line: some Collection<UInt8>, limits: MCPLimits = .default) throws(MCPError) -> MCPMessage {
        guard line.count <= limits.maxMessageBytes else {
            throw MCPError(.limitExceeded, "message longer than \(limits.maxMessageBytes) bytes")
        }
        let value: JSON
        do {
            value = try JSON.parse(line, options: limits.parseOptions)
        } catch {
            throw MCPError(error.exceedsLimit ? .limitExceeded : .notJSON, "not JSON: \(error.description)")
        }
        guard case .object = value else {
            if case .array = value { throw MCPError(.invalidMessage, "a batch (JSON array): MCP allows one message per line") }
            throw MCPError(.invalidMessage, "expected a JSON-RPC object, got \(value.typeName)")
        }
        var fields: Fields
        do { fields = try Fields(value, path: "message") } catch { throw MCPError(.invalidMessage, error.message, field: error.field) }
        // The id first, so every later refusal can name the request it answers.
        var id: MCPRequestID?
        if let raw = fields.raw("id") {
            do { id = try MCPRequestID.parse(raw, field: "id", maxBytes: limits.maxTokenBytes) } catch {
                throw MCPError(.invalidMessage, error.message, field: "id")
            }
        }
        func refuse(_ message: String, field: String? = nil) -> MCPError { MCPError(.invalidMessage, message, field: field, requestID: id) }
        guard fields.raw("jsonrpc") == .string("2.0") else { throw refuse("expected \"2.0\"", field: "jsonrpc") }

        if let rawMethod = fields.raw("method") {
            guard case .string(let method) = rawMethod, !method.isEmpty else { throw refuse("expected a method name", field: "method") }
            guard method.utf8.count <= limits.maxMethodBytes else {
                throw MCPError(.limitExceeded, "longer than \(limits.maxMethodBytes) bytes", field: "method", requestID: id)
            }
            let params = fields.raw("params")
            if let params, !params.isObject { throw refuse("expected an object, got \(params.typeName)", field: "params") }
            guard !fields.has("result") && !fields.has("error") else { throw refuse("a request or notification carries no result or error") }
            if let id { return .request(id: id, method: method, params: params) }
            if fields.keys.contains("id") {
                throw refuse("must not be null", field: "id")
            }
            return .notification(method: method, params: params)
        }
        if let result = fields.raw("result") {
            guard !fields.has("error") else { throw refuse("both result and error") }
            guard let id else { throw refuse("a response needs the id of its request", field: "id") }
            guard result.isObject else { throw refuse("expected an object, got \(result.typeName)", field: "result") }
            return .result(id: id, result: result)
        }
        if let error = fields.raw("error") {
            let object: MCPErrorObject
            do { object = try MCPErrorObject.parse(error, limits: limits) } catch {
                throw MCPError(.invalidMessage, error.message, field: error.field, requestID: id)
            }
            return .error(id: id, object)
        }
        throw refuse("neither a request, a notification nor a response")
    }

    public var json: JSON {
        var members: [(String, JSON)] = [("jsonrpc", .string("2.0"))]
        switch self {
        case .request(let id, let method, let params):
            members += [("id", id.json), ("method", .string(method))]
            if let params { members.append(("params", params)) }
        case .notification(let method, let params):
            members.append(("method", .string(method)))
            if let params { members.append(("params", params)) }
        case .result(let id, let result):
            members += [("id", id.json), ("result", result)]
        case .error(let id, let error):
            // The schemas allow no null id: an answer to an unreadable request has none.
            if let id { members.append(("id", id.json)) }
            members.append(("error", error.json))
        }
        return .object(members)
    }

    /// The message as one line of stdio framing, without its newline (the writer escapes
    /// every control character, so the text holds none).
    public var line: String { json.text }
}
