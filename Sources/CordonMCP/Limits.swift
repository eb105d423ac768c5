import CordonJSON

/// Every size and count a peer's message may reach. Each refusal names its limit and field.
/// The defaults fit real servers (a few dozen tools, schemas of a few KiB) with wide margins
/// and keep one peer's worst case to a few MiB of memory.
public struct MCPLimits: Sendable, Equatable {
    /// One line; the framer (`LineFramer`) should be given the same number.
    public var maxMessageBytes = 4 << 20
    /// Nesting of one message (CordonJSON recurses once per level).
    public var maxDepth = 64
    /// Values of one message: a boxed value costs far more than its text.
    public var maxValues = 250_000
    /// Tools in one `tools/list` page.
    public var maxToolsPerPage = 1_024
    /// Tools across all pages of one listing.
    public var maxTools = 4_096
    /// Pages of one listing (a server that pages forever is cut off).
    public var maxPages = 64
    /// A tool's name: the specification's 128 characters (2025-11-25 and 2026-07-28, Tool Names).
    public var maxToolNameBytes = 128
    /// Titles, and the name, version and title of an `Implementation`.
    public var maxTitleBytes = 512
    public var maxDescriptionBytes = 32 << 10
    /// `inputSchema` or `outputSchema` of one tool, as written compactly.
    public var maxSchemaBytes = 256 << 10
    /// `instructions` of an initialize or discover result.
    public var maxInstructionsBytes = 32 << 10
    /// Content blocks in one tool result.
    public var maxContentBlocks = 1_024
    /// A cursor, a request id or a progress token that is a string.
    public var maxTokenBytes = 1_024
    /// A method name.
    public var maxMethodBytes = 256
    /// An error's message (its `data`, four times this).
    public var maxErrorMessageBytes = 8 << 10
    /// Versions listed by `supportedVersions` or an error's `supported`.
    public var maxVersions = 64
    /// Members of a `_meta` object.
    public var maxMetaMembers = 64
    /// Requests a server session has forwarded and not yet answered.
    public var maxInFlight = 256
    /// Open `subscriptions/listen` streams of one server session.
    public var maxSubscriptions = 16

    public init() {}

    public static let `default` = MCPLimits()

    var parseOptions: JSON.ParseOptions {
        JSON.ParseOptions(maxDepth: maxDepth, maxValues: maxValues, maxBytes: maxMessageBytes)
    }
}

extension JSON {
    /// Bytes of the compact text: what a nested value costs on the wire.
    var encodedSize: Int { text.utf8.count }

    var isObject: Bool { if case .object = self { return true }; return false }
}

/// Typed access to one object of a message. Unlike the daemon's `Params` it tolerates members
/// nobody asks for (MCP lets every object grow), but it refuses a repeated key, so what Cordon
/// reads is what every peer reads. A `null` member counts as absent (some peers write
/// `"nextCursor": null`).
struct Fields {
    let path: String
    private let members: [(String, JSON)]

    init(_ value: JSON, path: String) throws(MCPError) {
        self.path = path
        guard case .object(let m) = value else { throw .invalid(path, "expected an object, got \(value.typeName)") }
        if m.count > 1 {
            var seen: Set<String> = []
            for (key, _) in m where !seen.insert(key).inserted { throw .invalid("\(path).\(key)", "given more than once") }
        }
        members = m
    }

    /// An optional object member (absent or null → nil).
    init?(optional value: JSON?, path: String) throws(MCPError) {
        guard let value, value != .null else { return nil }
        try self.init(value, path: path)
    }

    func field(_ key: String) -> String {
        let plain = key.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }
        return plain ? "\(path).\(key)" : "\(path)[\"\(key)\"]"
    }

    var keys: [String] { members.map(\.0) }
    var count: Int { members.count }

    func raw(_ key: String) -> JSON? {
        guard let value = members.first(where: { $0.0 == key })?.1, value != .null else { return nil }
        return value
    }

    func has(_ key: String) -> Bool { raw(key) != nil }

    func string(_ key: String, maxBytes: Int) throws(MCPError) -> String? {
        guard let value = raw(key) else { return nil }
        guard case .string(let s) = value else { throw .invalid(field(key), "expected a string, got \(value.typeName)") }
        guard s.utf8.count <= maxBytes else { throw .limit(field(key), "longer than \(maxBytes) bytes") }
        return s
    }

    func requiredString(_ key: String, maxBytes: Int) throws(MCPError) -> String {
        guard let s = try string(key, maxBytes: maxBytes) else { throw .invalid(field(key), "required") }
        return s
    }

    func bool(_ key: String) throws(MCPError) -> Bool? {
        guard let value = raw(key) else { return nil }
        guard case .bool(let b) = value else { throw .invalid(field(key), "expected true or false, got \(value.typeName)") }
        return b
    }

    func int(_ key: String, min: Int64, max: Int64) throws(MCPError) -> Int64? {
        guard let value = raw(key) else { return nil }
        let n: Int64
        switch value {
        case .int(let i): n = i
        case .double(let d) where d == d.rounded() && abs(d) < 9.0e15: n = Int64(d)
        case .uint: throw .invalid(field(key), "out of range \(min)…\(max)")
        default: throw .invalid(field(key), "expected an integer, got \(value.typeName)")
        }
        guard n >= min && n <= max else { throw .invalid(field(key), "\(n) is out of range \(min)…\(max)") }
        return n
    }

    func number(_ key: String) throws(MCPError) -> Double? {
        guard let value = raw(key) else { return nil }
        guard let d = value.doubleValue, d.isFinite else { throw .invalid(field(key), "expected a number, got \(value.typeName)") }
        return d
    }

    func object(_ key: String) throws(MCPError) -> Fields? {
        try Fields(optional: raw(key), path: field(key))
    }

    /// An object member kept whole (schemas, capabilities, arguments), with repeated keys
    /// refused at its top level and reduced below it, and at most `maxBytes` of text.
    func rawObject(_ key: String, maxBytes: Int) throws(MCPError) -> JSON? {
        guard let value = raw(key) else { return nil }
        _ = try Fields(value, path: field(key))
        guard value.encodedSize <= maxBytes else { throw .limit(field(key), "longer than \(maxBytes) bytes") }
        return value.uniquingKeys()
    }

    func array(_ key: String, maxCount: Int) throws(MCPError) -> [JSON]? {
        guard let value = raw(key) else { return nil }
        guard case .array(let items) = value else { throw .invalid(field(key), "expected an array, got \(value.typeName)") }
        guard items.count <= maxCount else { throw .limit(field(key), "more than \(maxCount) items") }
        return items
    }

    func strings(_ key: String, maxCount: Int, maxBytes: Int) throws(MCPError) -> [String]? {
        guard let items = try array(key, maxCount: maxCount) else { return nil }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw .invalid("\(field(key))[\(i)]", "expected a string, got \(item.typeName)") }
            guard s.utf8.count <= maxBytes else { throw .limit("\(field(key))[\(i)]", "longer than \(maxBytes) bytes") }
            out.append(s)
        }
        return out
    }
}
