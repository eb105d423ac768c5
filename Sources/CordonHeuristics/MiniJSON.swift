// A minimal JSON reader: enough to find package.json "scripts" entries and the
// byte offset of each object key (for line numbers).

indirect enum JSONValue {
    case object([(key: String, offset: Int, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case scalar

    subscript(key: String) -> (offset: Int, value: JSONValue)? {
        guard case .object(let members) = self else { return nil }
        // Last duplicate wins, as in JSON.parse.
        for m in members.reversed() where m.key == key { return (m.offset, m.value) }
        return nil
    }
}

struct MiniJSONParser {
    private let b: [UInt8]
    private var i = 0
    private var depth = 0

    init(_ bytes: [UInt8]) {
        b = bytes
        // Skip a UTF-8 BOM.
        if b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { i = 3 }
    }

    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        var p = MiniJSONParser(bytes)
        guard let v = p.value() else { return nil }
        p.skipWS()
        return p.i == p.b.count ? v : nil
    }

    private mutating func skipWS() {
        while i < b.count, b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13 { i += 1 }
    }

    private mutating func value() -> JSONValue? {
        skipWS()
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map { .string($0) }
        default: return scalar()
        }
    }

    private mutating func object() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth < 256 else { return nil }
        i += 1
        var members: [(key: String, offset: Int, value: JSONValue)] = []
        skipWS()
        if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
            let offset = i
            guard let key = string() else { return nil }
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            guard let v = value() else { return nil }
            members.append((key, offset, v))
            skipWS()
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            return nil
        }
    }

    private mutating func array() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth < 256 else { return nil }
        i += 1
        var items: [JSONValue] = []
        skipWS()
        if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            guard let v = value() else { return nil }
            items.append(v)
            skipWS()
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            return nil
        }
    }

    private mutating func string() -> String? {
        i += 1  // opening quote
        var out: [UInt8] = []
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard i + 1 < b.count else { return nil }
                let e = b[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "u"):
                    guard i + 4 <= b.count, let code = UInt32(String(decoding: b[i..<i + 4], as: UTF8.self), radix: 16) else { return nil }
                    i += 4
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: out.append(e)
                }
                continue
            }
            out.append(c)
            i += 1
        }
        return nil
    }

    private mutating func scalar() -> JSONValue? {
        let start = i
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || c == UInt8(ascii: "]") || c == 32 || c == 9 || c == 10 || c == 13 { break }
            i += 1
        }
        return i > start ? .scalar : nil
    }
}

func lineNumber(ofOffset offset: Int, in bytes: [UInt8]) -> Int {
    var line = 1
    var k = 0
    let end = min(offset, bytes.count)
    while k < end {
        if bytes[k] == 10 { line += 1 }
        k += 1
    }
    return line
}
