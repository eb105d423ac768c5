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
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The document in `format`, without a final newline.
    public func text(_ format: Format) -> String {
        var out: [UInt8] = []
        write(to: &out, format, level: "")
        return String(decoding: out, as: UTF8.self)
    }

    // The writers append UTF-8 to a byte array and the text is made once at the end: appending
    // piece by piece to a String costs several times more (its bookkeeping runs per append).

    private func write(to out: inout [UInt8]) {
        switch self {
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        default: writeScalar(to: &out)
        }
    }

    private func write(to out: inout [UInt8], _ format: Format, level: String) {
        guard let indent = format.indent else {
            if format.sortedKeys { sortingKeys().write(to: &out) } else { write(to: &out) }
            return
        }
        let inner = level + indent
        switch self {
        case .array(let items):
            if items.isEmpty { out.append("[]"); return }
            if format.scalarArraysOnOneLine, !items.contains(where: \.isContainer) {
                out.append(UInt8(ascii: "["))
                for (i, item) in items.enumerated() {
                    if i > 0 { out.append(", ") }
                    item.writeScalar(to: &out)
                }
                out.append(UInt8(ascii: "]"))
                return
            }
            out.append("[\n")
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(",\n") }
                out.append(inner)
                item.write(to: &out, format, level: inner)
            }
            out.append("\n")
            out.append(level)
            out.append(UInt8(ascii: "]"))
        case .object(var members):
            if members.isEmpty { out.append("{}"); return }
            if format.sortedKeys { members.sort { $0.0 < $1.0 } }
            out.append("{\n")
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out.append(",\n") }
                out.append(inner)
                JSON.writeString(key, to: &out)
                out.append(": ")
                value.write(to: &out, format, level: inner)
            }
            out.append("\n")
            out.append(level)
            out.append(UInt8(ascii: "}"))
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

    private func writeScalar(to out: inout [UInt8]) {
        switch self {
        case .null: out.append("null")
        case .bool(let b): out.append(b ? "true" : "false")
        case .int(let n): out.append(String(n))
        case .uint(let n): out.append(String(n))
        case .double(let d):
            // JSON has no NaN or infinity.
            if d.isFinite { out.append(d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)") } else { out.append("null") }
        case .string(let s): JSON.writeString(s, to: &out)
        case .array, .object: write(to: &out)
        }
    }

    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            // Runs of bytes that need no escape are copied whole; most strings are one run.
            var run = 0
            var k = 0
            while k < u.count {
                let c = u[k]
                let escape: String
                var length = 1
                switch c {
                case 0x22: escape = "\\\""
                case 0x5C: escape = "\\\\"
                case 0x0A: escape = "\\n"
                case 0x0D: escape = "\\r"
                case 0x09: escape = "\\t"
                case 0x00..<0x20, 0x7F:
                    let hex = String(c, radix: 16)
                    escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                case 0xE2 where k + 2 < u.count && u[k + 1] == 0x80 && (u[k + 2] == 0xA8 || u[k + 2] == 0xA9):
                    // U+2028 and U+2029: JSON allows them raw, JavaScript before ES2019 did not.
                    escape = u[k + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                    length = 3
                default:
                    k += 1
                    continue
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<k]))
                out.append(escape)
                k += length
                run = k
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<u.count]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

private extension Array where Element == UInt8 {
    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(contentsOf: $0) }
    }
}
