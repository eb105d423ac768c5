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
/// member of the root is its bare key (CordonJSON's `JSONFields.member`).
enum WirePath {
    static func member(_ path: String, _ key: String) -> String { WireObject.member(path, key) }

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

/// Typed access to one object of a body: CordonJSON's `JSONFields`, failing with `WireFault`.
typealias WireObject = JSONFields<WireFault>

extension WireFault: JSONFieldFailure {
    static func jsonFieldInvalid(_ field: String?, _ message: String) -> WireFault { .invalid(field, message) }
    static func jsonFieldLimit(_ field: String?, _ message: String) -> WireFault { .limit(field, message) }
}

extension JSONFields where Failure == WireFault {
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
