extension JSON {
    /// How `text(_:)` lays a document out. Strings and numbers are written the same way in
    /// every format.
    public struct Format: Sendable {
        /// nil: one line, no spaces (the daemon protocol's framing needs one line per message).
        /// Otherwise every member and element on a line of its own, indented by this string once
        /// per level, with ": " after each key.
        public var indent: String?
        /// Members in ascending key order rather than stored order (repeats stay: see
        /// `uniquingKeys()`).
        public var sortedKeys: Bool
        /// Indented formats: an array holding no array or object stays on one line, its items
        /// separated by ", ".
        public var scalarArraysOnOneLine: Bool

        public init(indent: String? = nil, sortedKeys: Bool = false, scalarArraysOnOneLine: Bool = false) {
            self.indent = indent
            self.sortedKeys = sortedKeys
            self.scalarArraysOnOneLine = scalarArraysOnOneLine
        }

        public static let compact = Format()
    }

    /// Compact, one line: every control character, U+2028 and U+2029 in a string escaped.
    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// The document in `format`, without a final newline.
    public func text(_ format: Format) -> String {
        var out = ""
        write(to: &out, format, level: "")
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += "," }
                JSON.writeString(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        default: writeScalar(to: &out)
        }
    }

    private func write(to out: inout String, _ format: Format, level: String) {
        guard let indent = format.indent else {
            if format.sortedKeys { sortingKeys().write(to: &out) } else { write(to: &out) }
            return
        }
        let inner = level + indent
        switch self {
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            if format.scalarArraysOnOneLine, !items.contains(where: \.isContainer) {
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += ", " }
                    item.writeScalar(to: &out)
                }
                out += "]"
                return
            }
            out += "[\n"
            for (i, item) in items.enumerated() {
                if i > 0 { out += ",\n" }
                out += inner
                item.write(to: &out, format, level: inner)
            }
            out += "\n" + level + "]"
        case .object(var members):
            if members.isEmpty { out += "{}"; return }
            if format.sortedKeys { members.sort { $0.0 < $1.0 } }
            out += "{\n"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += ",\n" }
                out += inner
                JSON.writeString(key, to: &out)
                out += ": "
                value.write(to: &out, format, level: inner)
            }
            out += "\n" + level + "}"
        default: writeScalar(to: &out)
        }
    }

    private var isContainer: Bool {
        switch self {
        case .array, .object: return true
        default: return false
        }
    }

    private func sortingKeys() -> JSON {
        switch self {
        case .array(let items): return .array(items.map { $0.sortingKeys() })
        case .object(let members): return .object(members.map { ($0.0, $0.1.sortingKeys()) }.sorted { $0.0 < $1.0 })
        default: return self
        }
    }

    private func writeScalar(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let n): out += String(n)
        case .uint(let n): out += String(n)
        case .double(let d):
            // JSON has no NaN or infinity.
            if d.isFinite { out += d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)" } else { out += "null" }
        case .string(let s): JSON.writeString(s, to: &out)
        case .array, .object: write(to: &out)
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
