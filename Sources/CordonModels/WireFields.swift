import CordonJSON

/// A field of a body that could not be read, and why. Internal: at the boundary it becomes the
/// client's `ChatRequestError` or the provider's `ProviderError`, since whose bytes they were
/// decides what follows.
struct WireFault: Error, Sendable {
    var field: String?
    var message: String
    /// A size or count limit, rather than a wrong type or value.
    var isLimit = false
    /// A provider's reply that was an error object in place of an answer (a 200 with
    /// `{"error":…}`, an in-stream error): it becomes the error it describes.
    var providerBody: JSON? = nil

    static func invalid(_ field: String?, _ message: String) -> WireFault { WireFault(field: field, message: message) }
    static func limit(_ field: String?, _ message: String) -> WireFault { WireFault(field: field, message: message, isLimit: true) }
}

/// JSON paths as OpenAI's `param` and CordonMCP write them: `messages[3].content[0].type`; a
/// member of the root is its bare key.
enum WirePath {
    static func member(_ path: String, _ key: String) -> String {
        let plain = !key.isEmpty && key.utf8.allSatisfy {
            $0 == UInt8(ascii: "_") || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z"))
                || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
        }
        // A key that is not a plain name is quoted, cut short and cleaned of control
        // characters: it came from the peer, and paths end up in logs and records.
        let shown = plain ? key : "[\"\(ProviderError.clean(key, maxBytes: 64))\"]"
        if path.isEmpty { return shown }
        return plain ? "\(path).\(shown)" : "\(path)\(shown)"
    }

    static func index(_ path: String, _ i: Int) -> String { "\(path)[\(i)]" }
}

enum WireText {
    /// At most `maxBytes` of UTF-8, cut on a character boundary.
    static func prefix(_ text: String, maxBytes: Int) -> String {
        if text.utf8.count <= maxBytes { return text }
        var end = text.utf8.startIndex
        var used = 0
        for c in text.unicodeScalars {
            let n = UTF8.width(c)
            if used + n > maxBytes { break }
            used += n
            end = text.utf8.index(end, offsetBy: n)
        }
        return String(text[..<end]) + "…"
    }
}

/// Typed access to one object of a body, in the manner of CordonMCP's `Fields`: a repeated key is
/// refused (what Cordon reads is what every reader reads) and a `null` member counts as absent
/// (clients and servers write `"tool_calls": null`).
struct WireObject {
    let path: String
    let members: [(String, JSON)]

    init(_ value: JSON, path: String) throws(WireFault) {
        self.path = path
        guard case .object(let m) = value else { throw .invalid(path.isEmpty ? nil : path, "expected an object, got \(value.typeName)") }
        // Objects on this wire have a handful of members: comparing pairs costs less than hashing.
        if m.count > 1 {
            if m.count <= 16 {
                for i in 1..<m.count where m[..<i].contains(where: { $0.0 == m[i].0 }) {
                    throw .invalid(WirePath.member(path, m[i].0), "given more than once")
                }
            } else {
                var seen: Set<String> = []
                for (key, _) in m where !seen.insert(key).inserted { throw .invalid(WirePath.member(path, key), "given more than once") }
            }
        }
        members = m
    }

    /// An optional object member (absent or null → nil).
    init?(optional value: JSON?, path: String) throws(WireFault) {
        guard let value, value != .null else { return nil }
        try self.init(value, path: path)
    }

    func field(_ key: String) -> String { WirePath.member(path, key) }

    var keys: [String] { members.map(\.0) }

    func raw(_ key: String) -> JSON? {
        guard let value = members.first(where: { $0.0 == key })?.1, value != .null else { return nil }
        return value
    }

    func has(_ key: String) -> Bool { raw(key) != nil }

    func string(_ key: String, maxBytes: Int) throws(WireFault) -> String? {
        guard let value = raw(key) else { return nil }
        guard case .string(let s) = value else { throw .invalid(field(key), "expected a string, got \(value.typeName)") }
        guard s.utf8.count <= maxBytes else { throw .limit(field(key), "longer than \(maxBytes) bytes") }
        return s
    }

    func requiredString(_ key: String, maxBytes: Int) throws(WireFault) -> String {
        guard let s = try string(key, maxBytes: maxBytes) else { throw .invalid(field(key), "required") }
        return s
    }

    func bool(_ key: String) throws(WireFault) -> Bool? {
        guard let value = raw(key) else { return nil }
        guard case .bool(let b) = value else { throw .invalid(field(key), "expected true or false, got \(value.typeName)") }
        return b
    }

    func int(_ key: String, min: Int64, max: Int64) throws(WireFault) -> Int64? {
        guard let value = raw(key) else { return nil }
        let n: Int64
        switch value {
        case .int(let i): n = i
        // 1.0 is an integer to JavaScript and Python clients alike.
        case .double(let d) where d == d.rounded() && abs(d) < 9.0e15: n = Int64(d)
        case .uint: throw .invalid(field(key), "out of range \(min)…\(max)")
        default: throw .invalid(field(key), "expected an integer, got \(value.typeName)")
        }
        guard n >= min && n <= max else { throw .invalid(field(key), "\(n) is out of range \(min)…\(max)") }
        return n
    }

    func number(_ key: String, min: Double, max: Double) throws(WireFault) -> Double? {
        guard let value = raw(key) else { return nil }
        guard let d = value.doubleValue, d.isFinite else { throw .invalid(field(key), "expected a number, got \(value.typeName)") }
        guard d >= min && d <= max else { throw .invalid(field(key), "\(d) is out of range \(min)…\(max)") }
        return d
    }

    func object(_ key: String) throws(WireFault) -> WireObject? {
        try WireObject(optional: raw(key), path: field(key))
    }

    func array(_ key: String, maxCount: Int) throws(WireFault) -> [JSON]? {
        guard let value = raw(key) else { return nil }
        guard case .array(let items) = value else { throw .invalid(field(key), "expected an array, got \(value.typeName)") }
        guard items.count <= maxCount else { throw .limit(field(key), "more than \(maxCount) items") }
        return items
    }

    /// A member kept whole (a schema, an argument object), with repeats reduced as a
    /// dictionary-building reader would, and at most `maxBytes` of compact text.
    func rawValue(_ key: String, maxBytes: Int) throws(WireFault) -> JSON? {
        guard let value = raw(key) else { return nil }
        guard value.text.utf8.count <= maxBytes else { throw .limit(field(key), "longer than \(maxBytes) bytes") }
        return value.uniquingKeys()
    }

    /// Refuses every member but `known`, so a client learns a field was not honoured. A null
    /// member is let by: it asks for nothing.
    func refuseOthers(_ known: Set<String>, _ why: String = "unknown field") throws(WireFault) {
        for (key, value) in members where value != .null && !known.contains(key) { throw .invalid(field(key), why) }
    }
}

extension JSON {
    var isObject: Bool { if case .object = self { return true }; return false }

    /// A non-negative count from a usage object, leniently: servers write 12, 12.0 or omit it.
    var tokenCount: Int? {
        switch self {
        case .int(let n) where n >= 0 && n <= Int64(Int32.max): return Int(n)
        case .double(let d) where d >= 0 && d <= Double(Int32.max) && d == d.rounded(): return Int(d)
        default: return nil
        }
    }
}
