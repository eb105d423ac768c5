/// Cordon's one JSON codec: a value type, a strict RFC 8259 parser with caps for untrusted
/// input, and a writer (one compact line for the wire, or indented for files people read).
/// Pure: no Foundation, no I/O.
///
/// Objects keep their members in document order, repeats included: `subscript(key)` returns
/// the last one, as JavaScript's `JSON.parse`, Go's `encoding/json` and Python's `json` do,
/// and a caller that must refuse repeats (the RPC `Params`) can see them. Integers stay exact:
/// `int` for every integer an `Int64` holds, `uint` above that up to `UInt64.max` (64-bit masks
/// in seccomp profiles), `double` for the rest.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// An integer above `Int64.max`; the parser never produces it for one that fits `int`.
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.uint(let x), .uint(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member `key` of an object (the last one when a key repeats, as JavaScript does).
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int64? { if case .int(let n) = self { return n }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    /// An array whose items are all strings.
    public var stringArrayValue: [String]? {
        guard case .array(let items) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items { guard case .string(let s) = item else { return nil }; out.append(s) }
        return out
    }
    public var doubleValue: Double? {
        switch self {
        case .double(let d): return d
        case .int(let n): return Double(n)
        case .uint(let n): return Double(n)
        default: return nil
        }
    }

    /// "null", "boolean", "integer", "number", "string", "array" or "object".
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .uint: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// The same document with each object's repeated keys reduced to one member, holding the
    /// last value (what `subscript(key)` reads) at the place of the last occurrence: what a
    /// reader that builds a dictionary sees, before writing it back with sorted keys.
    public func uniquingKeys() -> JSON {
        switch self {
        case .array(let items): return .array(items.map { $0.uniquingKeys() })
        case .object(let members):
            var last: [String: Int] = [:]
            for (i, (key, _)) in members.enumerated() { last[key] = i }
            return .object(members.enumerated().compactMap { i, member in
                last[member.0] == i ? (member.0, member.1.uniquingKeys()) : nil
            })
        default: return self
        }
    }
}
