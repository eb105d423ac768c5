import CordonJSON

/// cordond's wire protocol: JSON-RPC 2.0, one message per line, over a Unix stream socket.
///
/// Error codes are stable: clients may switch on them. The standard ones (-32700…-32603) keep
/// their JSON-RPC meaning; Cordon's own are in -32000…-32099. Every error's `data` names the
/// offending field (`{"field": "params.argv[2]"}`) when there is one.
public enum RPCCode {
    public static let parseError: Int64 = -32700
    public static let invalidRequest: Int64 = -32600
    public static let methodNotFound: Int64 = -32601
    public static let invalidParams: Int64 = -32602
    public static let internalError: Int64 = -32603
    /// The caller may not do this (SO_PEERCRED against `cordond.toml` admins and the policy's `[access]`).
    public static let unauthorized: Int64 = -32001
    /// The queue (or the caller's share of it) is full: retry later.
    public static let queueFull: Int64 = -32002
    /// No such task (or not one the caller may see).
    public static let notFound: Int64 = -32003
    /// The policy does not exist or does not load.
    public static let policyError: Int64 = -32004
    /// The daemon is draining and takes no new tasks.
    public static let shuttingDown: Int64 = -32005
    /// The message exceeds the size limit; the line was discarded.
    public static let messageTooLarge: Int64 = -32006
    /// task.wait's timeout passed before the task ended.
    public static let waitTimedOut: Int64 = -32007
    /// Too many connections.
    public static let busy: Int64 = -32008
    /// The caller's share of the daemon's storage (audit records, task output) is used up.
    public static let quotaExceeded: Int64 = -32009
    /// What was asked for is not available now: no models configured, every model tried failed.
    public static let unavailable: Int64 = -32010
    /// The request contradicts the state: a call rated twice, a call that never answered.
    public static let conflict: Int64 = -32011
}

/// The protocol revision `system.version` reports.
public let rpcProtocolVersion = 1

public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int64
    public var message: String
    public var field: String?

    public init(_ code: Int64, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { message }

    public var json: JSON {
        var members: [(String, JSON)] = [("code", .int(code)), ("message", .string(message))]
        if let field { members.append(("data", .object([("field", .string(field))]))) }
        return .object(members)
    }

    public static func invalid(_ field: String, _ message: String) -> RPCError {
        RPCError(RPCCode.invalidParams, "\(field): \(message)", field: field)
    }
}

public enum RPCMessage {
    public static func request(id: Int64, method: String, params: JSON) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("id", .int(id)), ("method", .string(method)), ("params", params)]).text
    }

    public static func result(id: JSON, _ result: JSON) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("id", id), ("result", result)]).text
    }

    public static func error(id: JSON, _ error: RPCError) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("id", id), ("error", error.json)]).text
    }

    public static func notification(method: String, params: JSON) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("method", .string(method)), ("params", params)]).text
    }
}

/// Typed access to a request's `params` object. Each accessor names the field in its error,
/// and `finish()` refuses members nobody asked for, so a misspelt option is an error rather
/// than silently ignored.
public struct Params {
    public let path: String
    private let members: [(String, JSON)]
    private var used: Set<String> = []

    /// `params` may be absent or null (no parameters) or an object.
    public init(_ value: JSON?, path: String = "params") throws(RPCError) {
        self.path = path
        switch value {
        case nil, .null?: members = []
        case .object(let m)?:
            var seen: Set<String> = []
            for (key, _) in m where !seen.insert(key).inserted {
                throw RPCError.invalid("\(path).\(key)", "given more than once")
            }
            members = m
        case let other?: throw RPCError.invalid(path, "expected an object, got \(other.typeName)")
        }
    }

    private mutating func take(_ key: String) -> JSON? {
        used.insert(key)
        guard let value = members.first(where: { $0.0 == key })?.1 else { return nil }
        if case .null = value { return nil }
        return value
    }

    public func field(_ key: String) -> String { "\(path).\(key)" }

    public mutating func string(_ key: String, maxBytes: Int = 4096) throws(RPCError) -> String? {
        guard let value = take(key) else { return nil }
        guard case .string(let s) = value else { throw RPCError.invalid(field(key), "expected a string, got \(value.typeName)") }
        guard s.utf8.count <= maxBytes else { throw RPCError.invalid(field(key), "longer than \(maxBytes) bytes") }
        guard !s.utf8.contains(0) else { throw RPCError.invalid(field(key), "contains a NUL byte") }
        return s
    }

    public mutating func int(_ key: String, min: Int64 = 0, max: Int64 = Int64.max) throws(RPCError) -> Int64? {
        guard let value = take(key) else { return nil }
        if case .uint(let n) = value { throw RPCError.invalid(field(key), "\(n) is out of range \(min)…\(max)") }
        guard case .int(let n) = value else { throw RPCError.invalid(field(key), "expected an integer, got \(value.typeName)") }
        guard n >= min && n <= max else { throw RPCError.invalid(field(key), "\(n) is out of range \(min)…\(max)") }
        return n
    }

    public mutating func requiredInt(_ key: String, min: Int64 = 0, max: Int64 = Int64.max) throws(RPCError) -> Int64 {
        guard let n = try int(key, min: min, max: max) else { throw RPCError.invalid(field(key), "required") }
        return n
    }

    /// A non-negative finite number (an integer is fine).
    public mutating func number(_ key: String, min: Double = 0, max: Double = 1e12) throws(RPCError) -> Double? {
        guard let value = take(key) else { return nil }
        guard let d = value.doubleValue else { throw RPCError.invalid(field(key), "expected a number, got \(value.typeName)") }
        guard d >= min && d <= max else { throw RPCError.invalid(field(key), "\(d) is out of range \(min)…\(max)") }
        return d
    }

    public mutating func bool(_ key: String) throws(RPCError) -> Bool? {
        guard let value = take(key) else { return nil }
        guard case .bool(let b) = value else { throw RPCError.invalid(field(key), "expected true or false, got \(value.typeName)") }
        return b
    }

    public mutating func stringArray(_ key: String, maxCount: Int = 4096, maxBytes: Int = 1 << 20) throws(RPCError) -> [String]? {
        guard let value = take(key) else { return nil }
        guard case .array(let items) = value else { throw RPCError.invalid(field(key), "expected an array of strings, got \(value.typeName)") }
        guard items.count <= maxCount else { throw RPCError.invalid(field(key), "more than \(maxCount) items") }
        var out: [String] = []
        var total = 0
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw RPCError.invalid("\(field(key))[\(i)]", "expected a string, got \(item.typeName)") }
            guard !s.utf8.contains(0) else { throw RPCError.invalid("\(field(key))[\(i)]", "contains a NUL byte") }
            total += s.utf8.count
            guard total <= maxBytes else { throw RPCError.invalid(field(key), "longer than \(maxBytes) bytes in all") }
            out.append(s)
        }
        return out
    }

    /// An object of strings to strings.
    public mutating func stringMap(_ key: String, maxCount: Int = 1024) throws(RPCError) -> [(String, String)]? {
        guard let value = take(key) else { return nil }
        guard case .object(let members) = value else { throw RPCError.invalid(field(key), "expected an object of strings, got \(value.typeName)") }
        guard members.count <= maxCount else { throw RPCError.invalid(field(key), "more than \(maxCount) members") }
        var out: [(String, String)] = []
        for (name, item) in members {
            guard case .string(let s) = item else { throw RPCError.invalid("\(field(key)).\(name)", "expected a string, got \(item.typeName)") }
            guard !s.utf8.contains(0), !name.utf8.contains(0) else { throw RPCError.invalid("\(field(key)).\(name)", "contains a NUL byte") }
            out.append((name, s))
        }
        return out
    }

    /// A member as it came (any JSON), for a payload passed on whole (a tool call's arguments).
    public mutating func raw(_ key: String) -> JSON? { take(key) }

    /// A nested object, as its own `Params`.
    public mutating func object(_ key: String) throws(RPCError) -> Params? {
        guard let value = take(key) else { return nil }
        guard case .object = value else { throw RPCError.invalid(field(key), "expected an object, got \(value.typeName)") }
        return try Params(value, path: field(key))
    }

    /// Refuses members that no accessor asked for.
    public func finish() throws(RPCError) {
        for (key, _) in members where !used.contains(key) {
            throw RPCError.invalid(field(key), "unknown parameter")
        }
    }
}

/// The version of cordon, cordon-scan and cordond (one release).
public let cordonVersion = "0.4.0"
