import CordonJSON

/// Why a message was refused or a negotiation failed, naming the field when there is one:
/// "result.tools[3].name: longer than 128 bytes". The module's one error type.
public struct MCPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The line is not JSON (or breaks the codec's caps on depth and values).
        case notJSON
        /// Valid JSON, but not a JSON-RPC 2.0 message MCP allows.
        case invalidMessage
        /// A member is missing, of the wrong type or out of its range.
        case invalidField
        /// A size or count passed one of `MCPLimits`.
        case limitExceeded
        /// A well-formed message the protocol does not allow here, or now.
        case protocolViolation
        /// The peer speaks no revision Cordon speaks.
        case unsupportedVersion
        /// The peer answered with a JSON-RPC error.
        case peerError(Int64)
        /// The caller's clock ran out for a request.
        case timedOut
    }

    public var code: Code
    /// Where in the message: `params.name`, `result.tools[2].inputSchema`.
    public var field: String?
    public var message: String
    /// The request the message was, when its id could be read: a server answers with it.
    public var requestID: MCPRequestID?

    public init(_ code: Code, _ message: String, field: String? = nil, requestID: MCPRequestID? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.requestID = requestID
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }

    static func invalid(_ field: String, _ message: String) -> MCPError { MCPError(.invalidField, message, field: field) }
    static func limit(_ field: String, _ message: String) -> MCPError { MCPError(.limitExceeded, message, field: field) }

    /// The JSON-RPC error a server answers this with: -32700 for text that is not JSON, -32600
    /// for a message that is not a request, -32602 for bad parameters (the field in `data`).
    public var errorObject: MCPErrorObject {
        let code: Int64
        switch self.code {
        case .notJSON: code = MCPErrorCode.parseError
        case .invalidMessage, .protocolViolation: code = MCPErrorCode.invalidRequest
        case .peerError(let c): code = c
        case .timedOut: code = MCPErrorCode.internalError
        case .invalidField, .limitExceeded, .unsupportedVersion: code = MCPErrorCode.invalidParams
        }
        return MCPErrorObject(code: code, message: description, data: field.map { .object([("field", .string($0))]) })
    }
}

/// The JSON-RPC error codes MCP uses (2026-07-28, Overview, Error Codes). -32000…-32019 are
/// legacy and carry no agreed meaning; -32020…-32099 belong to the specification, so Cordon
/// emits none of them but these three.
public enum MCPErrorCode {
    public static let parseError: Int64 = -32700
    public static let invalidRequest: Int64 = -32600
    public static let methodNotFound: Int64 = -32601
    public static let invalidParams: Int64 = -32602
    public static let internalError: Int64 = -32603
    /// HTTP only: a header disagrees with the body (2026-07-28).
    public static let headerMismatch: Int64 = -32020
    /// The request needs a client capability the client did not declare (2026-07-28).
    public static let missingRequiredClientCapability: Int64 = -32021
    /// The request's protocol version is not served; `data` lists `supported` (2026-07-28).
    public static let unsupportedProtocolVersion: Int64 = -32022
    /// Resource not found in 2025-11-25 and earlier; clients still accept it.
    public static let legacyResourceNotFound: Int64 = -32002
    /// URL elicitation required (2025-11-25 only).
    public static let urlElicitationRequired: Int64 = -32042
}

/// The `error` member of a JSON-RPC error response.
public struct MCPErrorObject: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int64
    public var message: String
    public var data: JSON?

    public init(code: Int64, message: String, data: JSON? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(message) (\(code))" }

    public var json: JSON {
        var members: [(String, JSON)] = [("code", .int(code)), ("message", .string(message))]
        if let data { members.append(("data", data)) }
        return .object(members)
    }

    static func parse(_ value: JSON, limits: MCPLimits) throws(MCPError) -> MCPErrorObject {
        let fields = try Fields(value, path: "error")
        guard let code = try fields.int("code", min: Int64(Int32.min), max: Int64(Int32.max)) else {
            throw .invalid("error.code", "required")
        }
        let message = try fields.string("message", maxBytes: limits.maxErrorMessageBytes) ?? ""
        let data = fields.raw("data")
        if let data, data.encodedSize > limits.maxErrorMessageBytes * 4 {
            throw .limit("error.data", "longer than \(limits.maxErrorMessageBytes * 4) bytes")
        }
        return MCPErrorObject(code: code, message: message, data: data?.uniquingKeys())
    }

    public static func methodNotFound(_ method: String) -> MCPErrorObject {
        MCPErrorObject(code: MCPErrorCode.methodNotFound, message: "method not found: \(method.prefix(128))")
    }
}
