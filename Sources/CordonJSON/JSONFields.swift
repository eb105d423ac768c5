/// How a module's own error type says a member of a peer's JSON is wrong (`invalid`) or too
/// large (`limit`); `field` is the member's path, nil at the root.
public protocol JSONFieldFailure: Error {
    static func jsonFieldInvalid(_ field: String?, _ message: String) -> Self
    static func jsonFieldLimit(_ field: String?, _ message: String) -> Self
}

/// Typed access to one object of a peer's JSON (an MCP message, a provider's reply, a client's
/// request), failing with the reader's own error type. A repeated key is refused, so what Cordon
/// reads is what every reader reads; a `null` member counts as absent (peers write
/// `"nextCursor": null`, `"tool_calls": null`); members nobody asks for are let by.
public struct JSONFields<Failure: JSONFieldFailure> {
    public let path: String
    public let members: [(String, JSON)]

    public init(_ value: JSON, path: String) throws(Failure) {
        self.path = path
        guard case .object(let m) = value else { throw .jsonFieldInvalid(path.isEmpty ? nil : path, "expected an object, got \(value.typeName)") }
        // Most objects have a handful of members: comparing pairs costs less than hashing.
        if m.count > 1 {
            if m.count <= 16 {
                for i in 1..<m.count where m[..<i].contains(where: { $0.0 == m[i].0 }) {
                    throw .jsonFieldInvalid(Self.member(path, m[i].0), "given more than once")
                }
            } else {
                var seen: Set<String> = []
                for (key, _) in m where !seen.insert(key).inserted { throw .jsonFieldInvalid(Self.member(path, key), "given more than once") }
            }
        }
        members = m
    }

    /// An optional object member (absent or null → nil).
    public init?(optional value: JSON?, path: String) throws(Failure) {
        guard let value, value != .null else { return nil }
        try self.init(value, path: path)
    }

    /// The path of member `key` of the object at `path`: `messages[3].content`; a member of the
    /// root is its bare key. A key that is not a plain name is quoted, cut to 64 bytes and
    /// cleaned of control characters: it came from the peer, and paths reach logs and records.
    public static func member(_ path: String, _ key: String) -> String {
        let plain = !key.isEmpty && key.utf8.allSatisfy {
            $0 == UInt8(ascii: "_") || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z"))
                || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
        }
        let shown = plain ? key : "[\"\(quoted(key))\"]"
        if path.isEmpty { return shown }
        return plain ? "\(path).\(shown)" : "\(path)\(shown)"
    }

    /// A peer's key as a path shows it: control characters (and U+2028/2029) as spaces, at most
    /// 64 bytes of UTF-8, cut on a character boundary with "…".
    static func quoted(_ key: String) -> String {
        var out = String.UnicodeScalarView()
        var used = 0
        for c in key.unicodeScalars {
            let n = UTF8.width(c)
            if used + n > 64 {
                out.append("…")
                break
            }
            used += n
            out.append(c.value < 0x20 || c.value == 0x7F || c == "\u{2028}" || c == "\u{2029}" ? " " : c)
        }
        return String(out)
    }

    public func field(_ key: String) -> String { Self.member(path, key) }

    public var keys: [String] { members.map(\.0) }
    public var count: Int { members.count }

    public func raw(_ key: String) -> JSON? {
        guard let value = members.first(where: { $0.0 == key })?.1, value != .null else { return nil }
        return value
    }

    public func has(_ key: String) -> Bool { raw(key) != nil }

    public func string(_ key: String, maxBytes: Int) throws(Failure) -> String? {
        guard let value = raw(key) else { return nil }
        guard case .string(let s) = value else { throw .jsonFieldInvalid(field(key), "expected a string, got \(value.typeName)") }
        guard s.utf8.count <= maxBytes else { throw .jsonFieldLimit(field(key), "longer than \(maxBytes) bytes") }
        return s
    }

    public func requiredString(_ key: String, maxBytes: Int) throws(Failure) -> String {
        guard let s = try string(key, maxBytes: maxBytes) else { throw .jsonFieldInvalid(field(key), "required") }
        return s
    }

    public func bool(_ key: String) throws(Failure) -> Bool? {
        guard let value = raw(key) else { return nil }
        guard case .bool(let b) = value else { throw .jsonFieldInvalid(field(key), "expected true or false, got \(value.typeName)") }
        return b
    }

    public func int(_ key: String, min: Int64, max: Int64) throws(Failure) -> Int64? {
        guard let value = raw(key) else { return nil }
        let n: Int64
        switch value {
        case .int(let i): n = i
        // 1.0 is an integer to JavaScript and Python peers alike.
        case .double(let d) where d == d.rounded() && abs(d) < 9.0e15: n = Int64(d)
        case .uint: throw .jsonFieldInvalid(field(key), "out of range \(min)…\(max)")
        default: throw .jsonFieldInvalid(field(key), "expected an integer, got \(value.typeName)")
        }
        guard n >= min && n <= max else { throw .jsonFieldInvalid(field(key), "\(n) is out of range \(min)…\(max)") }
        return n
    }

    /// A finite number, within `min`…`max` when given.
    public func number(_ key: String, min: Double = -.greatestFiniteMagnitude, max: Double = .greatestFiniteMagnitude) throws(Failure) -> Double? {
        guard let value = raw(key) else { return nil }
        guard let d = value.doubleValue, d.isFinite else { throw .jsonFieldInvalid(field(key), "expected a number, got \(value.typeName)") }
        guard d >= min && d <= max else { throw .jsonFieldInvalid(field(key), "\(d) is out of range \(min)…\(max)") }
        return d
    }

    public func object(_ key: String) throws(Failure) -> JSONFields? {
        try JSONFields(optional: raw(key), path: field(key))
    }

    public func array(_ key: String, maxCount: Int) throws(Failure) -> [JSON]? {
        guard let value = raw(key) else { return nil }
        guard case .array(let items) = value else { throw .jsonFieldInvalid(field(key), "expected an array, got \(value.typeName)") }
        guard items.count <= maxCount else { throw .jsonFieldLimit(field(key), "more than \(maxCount) items") }
        return items
    }

    public func strings(_ key: String, maxCount: Int, maxBytes: Int) throws(Failure) -> [String]? {
        guard let items = try array(key, maxCount: maxCount) else { return nil }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw .jsonFieldInvalid("\(field(key))[\(i)]", "expected a string, got \(item.typeName)") }
            guard s.utf8.count <= maxBytes else { throw .jsonFieldLimit("\(field(key))[\(i)]", "longer than \(maxBytes) bytes") }
            out.append(s)
        }
        return out
    }
}
