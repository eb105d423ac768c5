// TOML v1.0 parser for Cordon policy files.
//
// Policy files are written by hand, so every parsed value remembers where it
// came from (line and column, both 1-based, columns counted in Unicode scalars)
// and every error names the place that caused it.
//
// The parser works on the UTF-8 bytes of the input and decodes Unicode scalars
// only where it must (escapes and error messages). It never traps on input:
// integer arithmetic is overflow-checked, nothing input-derived is force
// unwrapped, and nesting of tables/arrays is capped at `TOML.maxNestingDepth`.
// No Foundation: the CLI's start-up time matters.

// MARK: - Public API

/// A position in a TOML document. Both fields are 1-based; `column` counts
/// Unicode scalars from the start of the line.
public struct TOMLSourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "line \(line), column \(column)" }
}

/// A syntax or structure error, with the place it was found.
public struct TOMLParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: TOMLSourceLocation
    public var message: String

    public init(location: TOMLSourceLocation, message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// One TOML value together with where it starts in the source.
public struct TOMLValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        /// Offset date-time, local date-time, local date or local time. The source
        /// text is kept verbatim after its shape and ranges have been validated.
        case dateTime(String)
        case array([TOMLValue])
        case table(TOMLTable)
    }

    public var kind: Kind
    /// Where the value starts. For tables: the `[header]` (or `[[header]]`) that
    /// created them, the first dotted-key part that created them, or the `{` of
    /// an inline table. For arrays of tables: the first `[[header]]`.
    public var location: TOMLSourceLocation

    init(kind: Kind, location: TOMLSourceLocation) {
        self.kind = kind
        self.location = location
    }

    /// "string", "integer", "float", "boolean", "datetime", "array" or "table".
    public var typeName: String {
        switch kind {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .dateTime: return "datetime"
        case .array: return "array"
        case .table: return "table"
        }
    }
}

/// A TOML table: keys in the order they were first written, their values and
/// where each key was written.
public struct TOMLTable: Sendable, Equatable {
    /// Keys in insertion order.
    public private(set) var keys: [String]
    private var values: [String: TOMLValue]
    private var keyLocations: [String: TOMLSourceLocation]
    /// Where the table starts (see `TOMLValue.location`). The root table is at line 1, column 1.
    public var location: TOMLSourceLocation

    init(
        keys: [String], values: [String: TOMLValue],
        keyLocations: [String: TOMLSourceLocation], location: TOMLSourceLocation
    ) {
        self.keys = keys
        self.values = values
        self.keyLocations = keyLocations
        self.location = location
    }

    public subscript(key: String) -> TOMLValue? { values[key] }

    /// Where `key` itself was written (useful for "unknown key" errors). For a
    /// dotted key `a.b.c`, the entry for `c` in table `a.b` points at `c`.
    public func keyLocation(_ key: String) -> TOMLSourceLocation? { keyLocations[key] }

    public var isEmpty: Bool { keys.isEmpty }

    /// An empty table (used when merging policies).
    init(location: TOMLSourceLocation) {
        self.init(keys: [], values: [:], keyLocations: [:], location: location)
    }

    /// Sets `key`, keeping its original position when it already exists.
    mutating func set(_ key: String, _ value: TOMLValue, keyLocation: TOMLSourceLocation?) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
        keyLocations[key] = keyLocation ?? value.location
    }

    mutating func remove(_ key: String) {
        guard values.removeValue(forKey: key) != nil else { return }
        keys.removeAll { $0 == key }
        keyLocations[key] = nil
    }
}

public enum TOML {
    /// Maximum nesting of tables, arrays and inline tables (counted together,
    /// the root table being level 0).
    static let maxNestingDepth = 128

    /// Parses a TOML v1.0 document. A leading byte-order mark is ignored.
    public static func parse(_ text: String) throws(TOMLParseError) -> TOMLTable {
        var parser = TOMLParser(text)
        return try parser.parseDocument()
    }
}

// MARK: - Build tree
//
// While parsing, tables are mutable reference nodes that remember how they were
// created (the rules of TOML about redefinition depend on it). Inline tables and
// static arrays are finished `TOMLValue`s from the moment they are parsed, which
// is what makes them immutable afterwards.

private final class TableNode {
    enum Origin {
        case root
        /// Created as an intermediate part of a `[a.b.c]` header (here: `a`, `a.b`).
        case implicit(line: Int)
        /// Defined by a `[header]`, or an element of an array of tables.
        case header(line: Int)
        /// Created by a dotted key `a.b = 1`.
        case dotted(line: Int)
        /// An inline table being parsed.
        case inline
    }

    var keys: [String] = []
    var entries: [String: Entry] = [:]
    let location: TOMLSourceLocation
    let depth: Int
    var origin: Origin

    init(location: TOMLSourceLocation, depth: Int, origin: Origin) {
        self.location = location
        self.depth = depth
        self.origin = origin
    }

    func insert(_ key: String, _ node: Node, keyLocation: TOMLSourceLocation) {
        keys.append(key)
        entries[key] = Entry(node: node, keyLocation: keyLocation)
    }
}

private final class TableArrayNode {
    var tables: [TableNode]
    let location: TOMLSourceLocation
    let depth: Int

    init(tables: [TableNode], location: TOMLSourceLocation, depth: Int) {
        self.tables = tables
        self.location = location
        self.depth = depth
    }
}

private enum Node {
    case value(TOMLValue)
    case table(TableNode)
    case tableArray(TableArrayNode)
}

private struct Entry {
    var node: Node
    var keyLocation: TOMLSourceLocation
}

private struct KeyPart {
    var name: String
    var position: Int
    var location: TOMLSourceLocation
}

private func freeze(_ node: TableNode) -> TOMLTable {
    var values: [String: TOMLValue] = .init(minimumCapacity: node.keys.count)
    var keyLocations: [String: TOMLSourceLocation] = .init(minimumCapacity: node.keys.count)
    for key in node.keys {
        guard let entry = node.entries[key] else { continue }
        keyLocations[key] = entry.keyLocation
        switch entry.node {
        case .value(let value):
            values[key] = value
        case .table(let table):
            values[key] = TOMLValue(kind: .table(freeze(table)), location: table.location)
        case .tableArray(let array):
            var elements: [TOMLValue] = []
            elements.reserveCapacity(array.tables.count)
            for table in array.tables {
                elements.append(TOMLValue(kind: .table(freeze(table)), location: table.location))
            }
            values[key] = TOMLValue(kind: .array(elements), location: array.location)
        }
    }
    return TOMLTable(keys: node.keys, values: values, keyLocations: keyLocations, location: node.location)
}

// MARK: - Character classes

private let asciiTab: UInt8 = 0x09
private let asciiLF: UInt8 = 0x0A
private let asciiCR: UInt8 = 0x0D
private let asciiSpace: UInt8 = 0x20
private let asciiQuote: UInt8 = 0x22  // "
private let asciiHash: UInt8 = 0x23  // #
private let asciiApostrophe: UInt8 = 0x27  // '
private let asciiPlus: UInt8 = 0x2B
private let asciiComma: UInt8 = 0x2C
private let asciiMinus: UInt8 = 0x2D
private let asciiDot: UInt8 = 0x2E
private let asciiZero: UInt8 = 0x30
private let asciiNine: UInt8 = 0x39
private let asciiColon: UInt8 = 0x3A
private let asciiEquals: UInt8 = 0x3D
private let asciiLBracket: UInt8 = 0x5B
private let asciiBackslash: UInt8 = 0x5C
private let asciiRBracket: UInt8 = 0x5D
private let asciiUnderscore: UInt8 = 0x5F
private let asciiLBrace: UInt8 = 0x7B
private let asciiRBrace: UInt8 = 0x7D
private let asciiDEL: UInt8 = 0x7F

@inline(__always) private func isDigit(_ c: UInt8) -> Bool { c >= asciiZero && c <= asciiNine }

@inline(__always) private func isBareKeyByte(_ c: UInt8) -> Bool {
    switch c {
    case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, asciiUnderscore, asciiMinus: return true
    default: return false
    }
}

/// Control characters that may not appear literally in strings or comments (tab is allowed).
@inline(__always) private func isForbiddenControl(_ c: UInt8) -> Bool {
    (c < 0x20 && c != asciiTab) || c == asciiDEL
}

/// Bytes that may follow a scalar value.
@inline(__always) private func isValueTerminator(_ c: UInt8) -> Bool {
    switch c {
    case asciiSpace, asciiTab, asciiLF, asciiCR, asciiComma, asciiRBracket, asciiRBrace, asciiHash: return true
    default: return false
    }
}

private func hexValue(_ c: UInt8) -> UInt32? {
    switch c {
    case 0x30...0x39: return UInt32(c - 0x30)
    case 0x41...0x46: return UInt32(c - 0x41 + 10)
    case 0x61...0x66: return UInt32(c - 0x61 + 10)
    default: return nil
    }
}

private func hexString(_ value: UInt32, minDigits: Int = 4) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return digits.count >= minDigits ? digits : String(repeating: "0", count: minDigits - digits.count) + digits
}

/// Renders a key the way it would be written in TOML (bare when possible).
private func displayKey(_ name: String) -> String {
    !name.isEmpty && name.utf8.allSatisfy(isBareKeyByte) ? name : quote(name)
}

/// A TOML basic string (its escapes are also valid JSON).
public func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u" + hexString(scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

private func displayPath(_ parts: ArraySlice<KeyPart>) -> String {
    var out = ""
    for part in parts {
        if !out.isEmpty { out += "." }
        out += displayKey(part.name)
    }
    return out
}

private func article(_ typeName: String) -> String {
    typeName == "integer" || typeName == "array" ? "an \(typeName)" : "a \(typeName)"
}

// MARK: - Parser

private struct TOMLParser {
    let bytes: [UInt8]
    var pos: Int = 0
    var line: Int = 1
    /// Byte offset of the first byte of the current line.
    var lineStart: Int = 0
    /// Cache for incremental column computation on the current line.
    var columnCachePos: Int = 0
    var columnCacheValue: Int = 1

    init(_ text: String) {
        bytes = Array(text.utf8)
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF {
            pos = 3
        }
        lineStart = pos
        columnCachePos = pos
    }

    // MARK: Positions and errors

    @inline(__always) var atEnd: Bool { pos >= bytes.count }

    @inline(__always) func peek(_ offset: Int = 0) -> UInt8? {
        let p = pos + offset
        return p < bytes.count ? bytes[p] : nil
    }

    /// Location of byte offset `p`, which must lie on the current line (or be
    /// the end of input). Amortised O(1) for increasing offsets.
    mutating func location(_ p: Int) -> TOMLSourceLocation {
        guard p >= lineStart else { return slowLocation(p) }
        let target = min(p, bytes.count)
        if columnCachePos < lineStart || columnCachePos > target {
            columnCachePos = lineStart
            columnCacheValue = 1
        }
        var column = columnCacheValue
        var j = columnCachePos
        while j < target {
            if bytes[j] & 0xC0 != 0x80 { column += 1 }
            j += 1
        }
        columnCachePos = target
        columnCacheValue = column
        return TOMLSourceLocation(line: line, column: column)
    }

    mutating func here() -> TOMLSourceLocation { location(pos) }

    /// Location of an arbitrary offset, by scanning from the start (error paths only).
    func slowLocation(_ p: Int) -> TOMLSourceLocation {
        var l = 1
        var start = (bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) ? 3 : 0
        var j = start
        let target = min(max(p, 0), bytes.count)
        while j < target {
            if bytes[j] == asciiLF {
                l += 1
                start = j + 1
            }
            j += 1
        }
        var column = 1
        j = start
        while j < target {
            if bytes[j] & 0xC0 != 0x80 { column += 1 }
            j += 1
        }
        return TOMLSourceLocation(line: l, column: column)
    }

    mutating func error(_ message: String, at p: Int? = nil) -> TOMLParseError {
        TOMLParseError(location: location(p ?? pos), message: message)
    }

    /// A human-readable description of the character at `p`.
    func describe(at p: Int) -> String {
        guard p < bytes.count else { return "end of input" }
        let c = bytes[p]
        switch c {
        case asciiLF, asciiCR: return "end of line"
        case asciiSpace: return "' ' (space)"
        case asciiTab: return "tab"
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(c)))'"
        case 0x00..<0x80: return "control character U+\(hexString(UInt32(c)))"
        default:
            let end = min(p + 4, bytes.count)
            let decoded = String(decoding: bytes[p..<end], as: UTF8.self)
            if let scalar = decoded.unicodeScalars.first {
                return "'\(scalar)' (U+\(hexString(scalar.value)))"
            }
            return "byte 0x\(hexString(UInt32(c), minDigits: 2))"
        }
    }

    /// "invalid character 'x'" or "invalid control character U+0001".
    func invalidCharacter(at p: Int) -> String {
        if p < bytes.count, bytes[p] < 0x80, isForbiddenControl(bytes[p]) || bytes[p] == asciiTab {
            return "invalid \(describe(at: p))"
        }
        return "invalid character \(describe(at: p))"
    }

    /// The run of bytes starting at `p` up to the next delimiter, for messages.
    func word(at p: Int) -> String {
        var end = p
        while end < bytes.count, !isValueTerminator(bytes[end]), end - p < 64 { end += 1 }
        return String(decoding: bytes[p..<end], as: UTF8.self)
    }

    // MARK: Whitespace, comments, newlines

    @inline(__always) mutating func skipWhitespace() {
        while pos < bytes.count, bytes[pos] == asciiSpace || bytes[pos] == asciiTab { pos += 1 }
    }

    /// Consumes LF or CRLF at `pos`; rejects a bare CR.
    mutating func consumeNewline() throws(TOMLParseError) {
        if pos < bytes.count && bytes[pos] == asciiCR {
            guard pos + 1 < bytes.count, bytes[pos + 1] == asciiLF else {
                throw error("bare carriage return (CR) must be followed by a line feed (LF)")
            }
            pos += 1
        }
        pos += 1
        line += 1
        lineStart = pos
    }

    /// Skips a comment starting at `#`, up to (not including) the line end.
    mutating func skipComment() throws(TOMLParseError) {
        pos += 1
        while pos < bytes.count {
            let c = bytes[pos]
            if c == asciiLF || c == asciiCR { return }
            if isForbiddenControl(c) {
                throw error("\(describe(at: pos)) is not allowed in a comment")
            }
            pos += 1
        }
    }

    /// Whitespace, newlines and comments (inside arrays).
    mutating func skipTrivia() throws(TOMLParseError) {
        while pos < bytes.count {
            switch bytes[pos] {
            case asciiSpace, asciiTab: pos += 1
            case asciiLF, asciiCR: try consumeNewline()
            case asciiHash: try skipComment()
            default: return
            }
        }
    }

    /// After a key/value pair or a header: optional whitespace and comment, then a newline or the end.
    mutating func expectLineEnd(after what: String) throws(TOMLParseError) {
        skipWhitespace()
        guard pos < bytes.count else { return }
        if bytes[pos] == asciiHash { try skipComment() }
        guard pos < bytes.count else { return }
        let c = bytes[pos]
        guard c == asciiLF || c == asciiCR else {
            throw error("unexpected \(describe(at: pos)) after \(what); expected a newline or a comment")
        }
        try consumeNewline()
    }

    // MARK: Document

    mutating func parseDocument() throws(TOMLParseError) -> TOMLTable {
        let root = TableNode(location: TOMLSourceLocation(line: 1, column: 1), depth: 0, origin: .root)
        var current = root
        while true {
            skipWhitespace()
            guard pos < bytes.count else { break }
            switch bytes[pos] {
            case asciiHash:
                try skipComment()
            case asciiLF, asciiCR:
                try consumeNewline()
            case asciiLBracket:
                current = try parseHeader(root: root)
                try expectLineEnd(after: "table header")
            default:
                try parseKeyValue(into: current)
                try expectLineEnd(after: "value")
            }
        }
        return freeze(root)
    }

    // MARK: Keys

    /// Parses a (possibly dotted) key. Leaves `pos` after trailing whitespace.
    mutating func parseKey() throws(TOMLParseError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            guard pos < bytes.count else { throw error("expected a key, found end of input") }
            let start = pos
            let loc = here()
            let c = bytes[pos]
            let name: String
            if isBareKeyByte(c) {
                while pos < bytes.count, isBareKeyByte(bytes[pos]) { pos += 1 }
                name = String(decoding: bytes[start..<pos], as: UTF8.self)
            } else if c == asciiQuote {
                if peek(1) == asciiQuote && peek(2) == asciiQuote {
                    throw error("a multi-line string cannot be used as a key")
                }
                name = try parseBasicString()
            } else if c == asciiApostrophe {
                if peek(1) == asciiApostrophe && peek(2) == asciiApostrophe {
                    throw error("a multi-line string cannot be used as a key")
                }
                name = try parseLiteralString()
            } else {
                if c == asciiLF || c == asciiCR {
                    throw error("expected a key, found end of line")
                }
                throw error(
                    "\(invalidCharacter(at: pos)): expected a key "
                        + "(bare keys may contain only A-Z a-z 0-9 _ -; quote other keys)")
            }
            parts.append(KeyPart(name: name, position: start, location: loc))
            if parts.count > TOML.maxNestingDepth {
                throw error("dotted key has more than \(TOML.maxNestingDepth) parts", at: start)
            }
            skipWhitespace()
            if pos < bytes.count && bytes[pos] == asciiDot {
                pos += 1
                skipWhitespace()
                continue
            }
            return parts
        }
    }

    // MARK: Key/value pairs

    /// `key = value` into `table` (a section table or an inline table under construction).
    mutating func parseKeyValue(into table: TableNode) throws(TOMLParseError) {
        let parts = try parseKey()
        guard let last = parts.last else { throw error("expected a key") }
        guard pos < bytes.count, bytes[pos] == asciiEquals else {
            let key = displayPath(parts[...])
            if pos < bytes.count && !(bytes[pos] == asciiLF || bytes[pos] == asciiCR || bytes[pos] == asciiHash) {
                throw error("expected '=' after key '\(key)', found \(describe(at: pos))")
            }
            throw error("expected '=' after key '\(key)'")
        }
        pos += 1
        skipWhitespace()

        var target = table
        for index in 0..<(parts.count - 1) {
            target = try descendForDottedKey(target, parts: parts, index: index)
        }
        if let existing = target.entries[last.name] {
            throw error(
                "duplicate key '\(displayPath(parts[...]))' (first defined at line \(existing.keyLocation.line))",
                at: last.position)
        }
        let value = try parseValue(depth: target.depth + 1)
        target.insert(last.name, .value(value), keyLocation: last.location)
    }

    mutating func descendForDottedKey(_ table: TableNode, parts: [KeyPart], index: Int) throws(TOMLParseError) -> TableNode {
        let part = parts[index]
        guard let entry = table.entries[part.name] else {
            let depth = table.depth + 1
            if depth > TOML.maxNestingDepth {
                throw error("tables nested more than \(TOML.maxNestingDepth) levels deep", at: part.position)
            }
            let child = TableNode(location: part.location, depth: depth, origin: .dotted(line: part.location.line))
            table.insert(part.name, .table(child), keyLocation: part.location)
            return child
        }
        let path = displayPath(parts[...index])
        switch entry.node {
        case .table(let child):
            switch child.origin {
            case .dotted:
                return child
            case .header(let line):
                throw error(
                    "cannot add to table '\(path)' with a dotted key: it was defined by the table header at line \(line)",
                    at: part.position)
            case .implicit(let line):
                throw error(
                    "cannot add to table '\(path)' with a dotted key: it was created by the table header at line \(line)",
                    at: part.position)
            case .root, .inline:
                throw error("cannot add to table '\(path)' with a dotted key", at: part.position)
            }
        case .tableArray(let array):
            throw error(
                "cannot use dotted key '\(path)': it is an array of tables (defined at line \(array.location.line))",
                at: part.position)
        case .value(let value):
            throw conflictWithValue(value, path: path, keyLine: entry.keyLocation.line, at: part.position)
        }
    }

    /// The error for using an existing non-table value (or an inline table) as a table.
    mutating func conflictWithValue(_ value: TOMLValue, path: String, keyLine: Int, at p: Int) -> TOMLParseError {
        if case .table = value.kind {
            return error(
                "cannot extend inline table '\(path)' (defined at line \(keyLine)); inline tables are complete once written",
                at: p)
        }
        return error(
            "key '\(path)' is already defined as \(article(value.typeName)) at line \(keyLine); it cannot also be a table",
            at: p)
    }

    // MARK: Table headers

    /// `[a.b]` or `[[a.b]]`; returns the table that following key/values go into.
    mutating func parseHeader(root: TableNode) throws(TOMLParseError) -> TableNode {
        let headerLoc = here()
        let isArray = peek(1) == asciiLBracket
        pos += isArray ? 2 : 1
        skipWhitespace()
        let parts = try parseKey()
        guard let last = parts.last else { throw error("expected a key") }
        let shown = isArray ? "[[\(displayPath(parts[...]))]]" : "[\(displayPath(parts[...]))]"
        if isArray {
            guard peek() == asciiRBracket, peek(1) == asciiRBracket else {
                throw error("expected ']]' to close the array-of-tables header, found \(describe(at: pos))")
            }
            pos += 2
        } else {
            guard peek() == asciiRBracket else {
                throw error("expected ']' to close the table header, found \(describe(at: pos))")
            }
            pos += 1
        }

        var table = root
        for index in 0..<(parts.count - 1) {
            table = try descendForHeader(table, parts: parts, index: index, headerLoc: headerLoc)
        }
        let path = displayPath(parts[...])

        if isArray {
            if let entry = table.entries[last.name] {
                switch entry.node {
                case .tableArray(let array):
                    let element = TableNode(location: headerLoc, depth: array.depth + 1, origin: .header(line: headerLoc.line))
                    array.tables.append(element)
                    return element
                case .table(let existing):
                    throw error(
                        "cannot define array of tables \(shown): '\(path)' is already a table (defined at line \(existing.location.line))",
                        at: last.position)
                case .value(let value):
                    if case .array = value.kind {
                        throw error(
                            "cannot append to static array '\(path)' with \(shown) (array defined at line \(entry.keyLocation.line))",
                            at: last.position)
                    }
                    throw conflictWithValue(value, path: path, keyLine: entry.keyLocation.line, at: last.position)
                }
            }
            let depth = table.depth + 2
            if depth > TOML.maxNestingDepth {
                throw error("tables nested more than \(TOML.maxNestingDepth) levels deep", at: last.position)
            }
            let element = TableNode(location: headerLoc, depth: depth, origin: .header(line: headerLoc.line))
            let array = TableArrayNode(tables: [element], location: headerLoc, depth: table.depth + 1)
            table.insert(last.name, .tableArray(array), keyLocation: last.location)
            return element
        }

        if let entry = table.entries[last.name] {
            switch entry.node {
            case .table(let existing):
                switch existing.origin {
                case .implicit:
                    existing.origin = .header(line: headerLoc.line)
                    return existing
                case .header(let line):
                    throw error("table \(shown) is defined more than once (first defined at line \(line))", at: last.position)
                case .dotted(let line):
                    throw error(
                        "table \(shown) was already defined by dotted keys at line \(line); a [header] cannot reopen it",
                        at: last.position)
                case .root, .inline:
                    throw error("table \(shown) is defined more than once", at: last.position)
                }
            case .tableArray(let array):
                throw error(
                    "cannot define table \(shown): '\(path)' is an array of tables (defined at line \(array.location.line))",
                    at: last.position)
            case .value(let value):
                throw conflictWithValue(value, path: path, keyLine: entry.keyLocation.line, at: last.position)
            }
        }
        let depth = table.depth + 1
        if depth > TOML.maxNestingDepth {
            throw error("tables nested more than \(TOML.maxNestingDepth) levels deep", at: last.position)
        }
        let created = TableNode(location: headerLoc, depth: depth, origin: .header(line: headerLoc.line))
        table.insert(last.name, .table(created), keyLocation: last.location)
        return created
    }

    mutating func descendForHeader(
        _ table: TableNode, parts: [KeyPart], index: Int, headerLoc: TOMLSourceLocation
    ) throws(TOMLParseError) -> TableNode {
        let part = parts[index]
        guard let entry = table.entries[part.name] else {
            let depth = table.depth + 1
            if depth > TOML.maxNestingDepth {
                throw error("tables nested more than \(TOML.maxNestingDepth) levels deep", at: part.position)
            }
            let child = TableNode(location: headerLoc, depth: depth, origin: .implicit(line: headerLoc.line))
            table.insert(part.name, .table(child), keyLocation: part.location)
            return child
        }
        switch entry.node {
        case .table(let child):
            return child
        case .tableArray(let array):
            guard let lastElement = array.tables.last else {
                throw error("array of tables '\(displayPath(parts[...index]))' is empty", at: part.position)
            }
            return lastElement
        case .value(let value):
            throw conflictWithValue(
                value, path: displayPath(parts[...index]), keyLine: entry.keyLocation.line, at: part.position)
        }
    }

    // MARK: Values

    mutating func parseValue(depth: Int) throws(TOMLParseError) -> TOMLValue {
        guard pos < bytes.count else { throw error("missing value: expected a value after '=', found end of input") }
        let start = pos
        let loc = here()
        let c = bytes[pos]
        let kind: TOMLValue.Kind
        switch c {
        case asciiQuote:
            if peek(1) == asciiQuote && peek(2) == asciiQuote {
                kind = .string(try parseMultilineBasicString())
            } else {
                kind = .string(try parseBasicString())
            }
        case asciiApostrophe:
            if peek(1) == asciiApostrophe && peek(2) == asciiApostrophe {
                kind = .string(try parseMultilineLiteralString())
            } else {
                kind = .string(try parseLiteralString())
            }
        case asciiLBracket:
            return try parseArray(depth: depth, location: loc)
        case asciiLBrace:
            return try parseInlineTable(depth: depth, location: loc)
        case 0x74:  // t
            guard matchKeyword("true") else { throw error("invalid value '\(word(at: start))'") }
            kind = .boolean(true)
        case 0x66:  // f
            guard matchKeyword("false") else { throw error("invalid value '\(word(at: start))'") }
            kind = .boolean(false)
        case asciiZero...asciiNine, asciiPlus, asciiMinus, 0x69, 0x6E:  // digits, + - i n
            kind = try parseNumberOrDateTime()
        case asciiLF, asciiCR, asciiHash:
            throw error("missing value: expected a value, found \(describe(at: pos))")
        case asciiComma, asciiRBracket, asciiRBrace:
            throw error("missing value: expected a value, found \(describe(at: pos))")
        default:
            if c == asciiDot {
                throw error("invalid value '\(word(at: start))': a number must start with a digit")
            }
            if isBareKeyByte(c) {
                throw error("invalid value '\(word(at: start))' (strings must be quoted)")
            }
            throw error("\(invalidCharacter(at: pos)): expected a value")
        }
        if pos < bytes.count && !isValueTerminator(bytes[pos]) {
            throw error("unexpected \(describe(at: pos)) after value")
        }
        return TOMLValue(kind: kind, location: loc)
    }

    mutating func matchKeyword(_ keyword: StaticString) -> Bool {
        let count = keyword.utf8CodeUnitCount
        guard pos + count <= bytes.count else { return false }
        let matches = keyword.withUTF8Buffer { buffer -> Bool in
            for k in 0..<count where bytes[pos + k] != buffer[k] { return false }
            return true
        }
        guard matches else { return false }
        if pos + count < bytes.count && isBareKeyByte(bytes[pos + count]) { return false }
        pos += count
        return true
    }

    mutating func parseArray(depth: Int, location: TOMLSourceLocation) throws(TOMLParseError) -> TOMLValue {
        if depth > TOML.maxNestingDepth {
            throw error("arrays and tables nested more than \(TOML.maxNestingDepth) levels deep")
        }
        pos += 1
        var elements: [TOMLValue] = []
        while true {
            try skipTrivia()
            guard pos < bytes.count else {
                throw error("unterminated array (opened at \(location)); expected ']'")
            }
            if bytes[pos] == asciiRBracket {
                pos += 1
                break
            }
            elements.append(try parseValue(depth: depth + 1))
            try skipTrivia()
            guard pos < bytes.count else {
                throw error("unterminated array (opened at \(location)); expected ']'")
            }
            if bytes[pos] == asciiComma {
                pos += 1
            } else if bytes[pos] == asciiRBracket {
                pos += 1
                break
            } else {
                throw error("expected ',' or ']' in array, found \(describe(at: pos))")
            }
        }
        return TOMLValue(kind: .array(elements), location: location)
    }

    mutating func parseInlineTable(depth: Int, location: TOMLSourceLocation) throws(TOMLParseError) -> TOMLValue {
        if depth > TOML.maxNestingDepth {
            throw error("arrays and tables nested more than \(TOML.maxNestingDepth) levels deep")
        }
        pos += 1
        let node = TableNode(location: location, depth: depth, origin: .inline)
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == asciiRBrace {
            pos += 1
            return TOMLValue(kind: .table(freeze(node)), location: location)
        }
        while true {
            skipWhitespace()
            try checkInlineTableContinues(location)
            if bytes[pos] == asciiRBrace {
                throw error("trailing comma is not allowed in an inline table")
            }
            try parseKeyValue(into: node)
            skipWhitespace()
            try checkInlineTableContinues(location)
            if bytes[pos] == asciiComma {
                pos += 1
            } else if bytes[pos] == asciiRBrace {
                pos += 1
                break
            } else {
                throw error("expected ',' or '}' in inline table, found \(describe(at: pos))")
            }
        }
        return TOMLValue(kind: .table(freeze(node)), location: location)
    }

    /// Inside an inline table: not at the end of input or of the line.
    mutating func checkInlineTableContinues(_ location: TOMLSourceLocation) throws(TOMLParseError) {
        guard pos < bytes.count else {
            throw error("unterminated inline table (opened at \(location)); expected '}'")
        }
        let c = bytes[pos]
        if c == asciiLF || c == asciiCR || c == asciiHash {
            throw error(
                "inline table (opened at \(location)) must be on a single line; expected '}' before \(describe(at: pos))")
        }
    }

    // MARK: Strings

    /// `"..."`; `pos` is at the opening quote.
    mutating func parseBasicString() throws(TOMLParseError) -> String {
        let start = pos
        pos += 1
        var buffer: [UInt8] = []
        while true {
            let runStart = pos
            while pos < bytes.count {
                let c = bytes[pos]
                if c == asciiQuote || c == asciiBackslash || c < 0x20 || c == asciiDEL { break }
                pos += 1
            }
            guard pos < bytes.count else {
                throw error("unterminated string: missing closing '\"'", at: start)
            }
            let c = bytes[pos]
            if c == asciiQuote {
                pos += 1
                if buffer.isEmpty { return String(decoding: bytes[runStart..<(pos - 1)], as: UTF8.self) }
                buffer.append(contentsOf: bytes[runStart..<(pos - 1)])
                return String(decoding: buffer, as: UTF8.self)
            }
            buffer.append(contentsOf: bytes[runStart..<pos])
            if c == asciiBackslash {
                try parseEscape(into: &buffer)
            } else if c == asciiTab {
                buffer.append(c)
                pos += 1
            } else if c == asciiLF || c == asciiCR {
                throw error("newline in a single-line string (close it with '\"' on the same line, or use \"\"\" for a multi-line string)")
            } else {
                throw error("\(describe(at: pos)) is not allowed in a string; write it as an escape such as \\u\(hexString(UInt32(c)))")
            }
        }
    }

    /// `'...'`; `pos` is at the opening apostrophe.
    mutating func parseLiteralString() throws(TOMLParseError) -> String {
        let start = pos
        pos += 1
        let contentStart = pos
        while pos < bytes.count {
            let c = bytes[pos]
            if c == asciiApostrophe {
                pos += 1
                return String(decoding: bytes[contentStart..<(pos - 1)], as: UTF8.self)
            }
            if c == asciiLF || c == asciiCR {
                throw error("newline in a single-line literal string (close it with ' on the same line, or use ''' for a multi-line string)")
            }
            if isForbiddenControl(c) {
                throw error("\(describe(at: pos)) is not allowed in a literal string; use a basic string with an escape")
            }
            pos += 1
        }
        throw error("unterminated literal string: missing closing \"'\"", at: start)
    }

    /// `"""..."""`; `pos` is at the first of the opening quotes.
    mutating func parseMultilineBasicString() throws(TOMLParseError) -> String {
        let startLoc = here()
        pos += 3
        if pos < bytes.count && (bytes[pos] == asciiLF || bytes[pos] == asciiCR) { try consumeNewline() }
        var buffer: [UInt8] = []
        while true {
            let runStart = pos
            while pos < bytes.count {
                let c = bytes[pos]
                if c == asciiQuote || c == asciiBackslash || c < 0x20 || c == asciiDEL { break }
                pos += 1
            }
            buffer.append(contentsOf: bytes[runStart..<pos])
            guard pos < bytes.count else {
                throw TOMLParseError(location: startLoc, message: "unterminated multi-line string: missing closing '\"\"\"'")
            }
            let c = bytes[pos]
            switch c {
            case asciiQuote:
                var run = 0
                while pos + run < bytes.count && bytes[pos + run] == asciiQuote { run += 1 }
                if run < 3 {
                    buffer.append(contentsOf: bytes[pos..<(pos + run)])
                    pos += run
                } else if run <= 5 {
                    buffer.append(contentsOf: bytes[pos..<(pos + run - 3)])
                    pos += run
                    return String(decoding: buffer, as: UTF8.self)
                } else {
                    throw error("too many quotation marks: at most two '\"' may directly precede the closing '\"\"\"'")
                }
            case asciiBackslash:
                // Line-ending backslash: `\`, optional whitespace, newline.
                var j = pos + 1
                while j < bytes.count && (bytes[j] == asciiSpace || bytes[j] == asciiTab) { j += 1 }
                if j < bytes.count && (bytes[j] == asciiLF || bytes[j] == asciiCR) {
                    pos = j
                    while pos < bytes.count {
                        let d = bytes[pos]
                        if d == asciiSpace || d == asciiTab {
                            pos += 1
                        } else if d == asciiLF || d == asciiCR {
                            try consumeNewline()
                        } else {
                            break
                        }
                    }
                } else {
                    try parseEscape(into: &buffer)
                }
            case asciiLF, asciiCR:
                try consumeNewline()
                buffer.append(asciiLF)
            case asciiTab:
                buffer.append(c)
                pos += 1
            default:
                throw error("\(describe(at: pos)) is not allowed in a string; write it as an escape such as \\u\(hexString(UInt32(c)))")
            }
        }
    }

    /// `'''...'''`; `pos` is at the first of the opening apostrophes.
    mutating func parseMultilineLiteralString() throws(TOMLParseError) -> String {
        let startLoc = here()
        pos += 3
        if pos < bytes.count && (bytes[pos] == asciiLF || bytes[pos] == asciiCR) { try consumeNewline() }
        var buffer: [UInt8] = []
        while true {
            let runStart = pos
            while pos < bytes.count {
                let c = bytes[pos]
                if c == asciiApostrophe || c < 0x20 || c == asciiDEL { break }
                pos += 1
            }
            buffer.append(contentsOf: bytes[runStart..<pos])
            guard pos < bytes.count else {
                throw TOMLParseError(location: startLoc, message: "unterminated multi-line literal string: missing closing \"'''\"")
            }
            let c = bytes[pos]
            switch c {
            case asciiApostrophe:
                var run = 0
                while pos + run < bytes.count && bytes[pos + run] == asciiApostrophe { run += 1 }
                if run < 3 {
                    buffer.append(contentsOf: bytes[pos..<(pos + run)])
                    pos += run
                } else if run <= 5 {
                    buffer.append(contentsOf: bytes[pos..<(pos + run - 3)])
                    pos += run
                    return String(decoding: buffer, as: UTF8.self)
                } else {
                    throw error("too many apostrophes: at most two \"'\" may directly precede the closing \"'''\"")
                }
            case asciiLF, asciiCR:
                try consumeNewline()
                buffer.append(asciiLF)
            case asciiTab:
                buffer.append(c)
                pos += 1
            default:
                throw error("\(describe(at: pos)) is not allowed in a literal string; use a basic string with an escape")
            }
        }
    }

    /// An escape sequence; `pos` is at the backslash.
    mutating func parseEscape(into buffer: inout [UInt8]) throws(TOMLParseError) {
        let escapeStart = pos
        guard pos + 1 < bytes.count else {
            throw error("unterminated string: input ends inside an escape sequence")
        }
        let c = bytes[pos + 1]
        switch c {
        case 0x62: buffer.append(0x08)  // \b
        case 0x74: buffer.append(0x09)  // \t
        case 0x6E: buffer.append(0x0A)  // \n
        case 0x66: buffer.append(0x0C)  // \f
        case 0x72: buffer.append(0x0D)  // \r
        case asciiQuote: buffer.append(asciiQuote)
        case asciiBackslash: buffer.append(asciiBackslash)
        case 0x75, 0x55:  // \u, \U
            let digits = c == 0x75 ? 4 : 8
            var value: UInt32 = 0
            for k in 0..<digits {
                let p = pos + 2 + k
                guard p < bytes.count, let h = hexValue(bytes[p]) else {
                    throw error(
                        "invalid escape: \\\(c == 0x75 ? "u" : "U") must be followed by exactly \(digits) hex digits",
                        at: escapeStart)
                }
                value = value << 4 | h
            }
            guard let scalar = Unicode.Scalar(value) else {
                throw error(
                    "invalid escape: U+\(hexString(value)) is not a Unicode scalar value (surrogates and values above U+10FFFF are not allowed)",
                    at: escapeStart)
            }
            UTF8.encode(scalar) { buffer.append($0) }
            pos += 2 + digits
            return
        default:
            let shown: String
            if c == asciiLF || c == asciiCR || c == asciiSpace || c == asciiTab {
                shown = "(a backslash followed by \(describe(at: pos + 1)))"
            } else {
                let end = min(pos + 5, bytes.count)
                let decoded = String(decoding: bytes[(pos + 1)..<end], as: UTF8.self)
                let scalar = decoded.unicodeScalars.first.map { String($0) } ?? "?"
                shown = "'\\\(scalar)'"
            }
            throw error(
                "invalid escape sequence \(shown); valid escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX",
                at: escapeStart)
        }
        pos += 2
    }

    // MARK: Numbers and date-times

    mutating func parseNumberOrDateTime() throws(TOMLParseError) -> TOMLValue.Kind {
        // Dates start with four digits and '-'; times with two digits and ':'.
        if pos + 4 < bytes.count, isDigit(bytes[pos]), isDigit(bytes[pos + 1]), isDigit(bytes[pos + 2]),
            isDigit(bytes[pos + 3]), bytes[pos + 4] == asciiMinus
        {
            return try parseDateTime()
        }
        if pos + 2 < bytes.count, isDigit(bytes[pos]), isDigit(bytes[pos + 1]), bytes[pos + 2] == asciiColon {
            return try parseDateTime()
        }
        return try parseNumber()
    }

    mutating func parseNumber() throws(TOMLParseError) -> TOMLValue.Kind {
        let start = pos
        while pos < bytes.count {
            let c = bytes[pos]
            if isBareKeyByte(c) || c == asciiDot || c == asciiPlus { pos += 1 } else { break }
        }
        let token = bytes[start..<pos]
        let text = String(decoding: token, as: UTF8.self)
        var body = token
        var negative = false
        if let first = body.first, first == asciiPlus || first == asciiMinus {
            negative = first == asciiMinus
            body = body.dropFirst()
        }

        // inf / nan
        if body.elementsEqual("inf".utf8) { return .float(negative ? -Double.infinity : Double.infinity) }
        if body.elementsEqual("nan".utf8) { return .float(negative ? -Double.nan : Double.nan) }

        guard let firstDigit = body.first, isDigit(firstDigit) else {
            if body.first.map(isBareKeyByte) == true {
                throw error("invalid value '\(text)' (strings must be quoted)", at: start)
            }
            throw error("invalid number '\(text)': a number must start with a digit", at: start)
        }

        // 0x / 0o / 0b
        if body.count >= 2, body.first == asciiZero {
            let prefix = body[body.startIndex + 1]
            let radix: UInt64
            switch prefix {
            case 0x78: radix = 16
            case 0x6F: radix = 8
            case 0x62: radix = 2
            default: radix = 0
            }
            if radix != 0 {
                if body.count != token.count {
                    throw error("invalid number '\(text)': hexadecimal, octal and binary integers cannot have a sign", at: start)
                }
                return .integer(try parseRadixInteger(body.dropFirst(2), radix: radix, text: text, start: start))
            }
        }

        if body.contains(where: { $0 == asciiDot || $0 == 0x65 || $0 == 0x45 }) {
            return .float(try parseFloat(body, negative: negative, text: text, start: start))
        }
        return .integer(try parseDecimalInteger(body, negative: negative, text: text, start: start))
    }

    /// Checks digits-with-underscores: non-empty, digits only, every '_' between two digits.
    mutating func checkDigits(
        _ digits: ArraySlice<UInt8>, isValid: (UInt8) -> Bool, what: String, text: String, start: Int
    ) throws(TOMLParseError) {
        guard !digits.isEmpty else {
            throw error("invalid number '\(text)': \(what) has no digits", at: start)
        }
        var previousWasDigit = false
        for c in digits {
            if c == asciiUnderscore {
                guard previousWasDigit else {
                    throw error("invalid number '\(text)': underscores must be placed between digits", at: start)
                }
                previousWasDigit = false
            } else if isValid(c) {
                previousWasDigit = true
            } else {
                throw error(
                    "invalid number '\(text)': unexpected '\(Character(Unicode.Scalar(c)))' in \(what)", at: start)
            }
        }
        guard previousWasDigit else {
            throw error("invalid number '\(text)': underscores must be placed between digits", at: start)
        }
    }

    mutating func parseRadixInteger(
        _ digits: ArraySlice<UInt8>, radix: UInt64, text: String, start: Int
    ) throws(TOMLParseError) -> Int64 {
        let what = radix == 16 ? "hexadecimal integer" : radix == 8 ? "octal integer" : "binary integer"
        try checkDigits(
            digits,
            isValid: { c in
                guard let v = hexValue(c) else { return false }
                return UInt64(v) < radix
            }, what: what, text: text, start: start)
        var value: UInt64 = 0
        for c in digits where c != asciiUnderscore {
            guard let d = hexValue(c) else { continue }
            let (shifted, o1) = value.multipliedReportingOverflow(by: radix)
            let (sum, o2) = shifted.addingReportingOverflow(UInt64(d))
            if o1 || o2 || sum > UInt64(Int64.max) {
                throw error("integer '\(text)' is out of range for a 64-bit signed integer", at: start)
            }
            value = sum
        }
        return Int64(value)
    }

    mutating func parseDecimalInteger(
        _ digits: ArraySlice<UInt8>, negative: Bool, text: String, start: Int
    ) throws(TOMLParseError) -> Int64 {
        try checkDigits(digits, isValid: isDigit, what: "integer", text: text, start: start)
        if digits.count > 1, digits.first == asciiZero {
            throw error("invalid number '\(text)': leading zeros are not allowed", at: start)
        }
        // Accumulate negatively so that Int64.min is representable.
        var value: Int64 = 0
        for c in digits where c != asciiUnderscore {
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = shifted.subtractingReportingOverflow(Int64(c - asciiZero))
            if o1 || o2 {
                throw error("integer '\(text)' is out of range for a 64-bit signed integer", at: start)
            }
            value = sum
        }
        if negative { return value }
        guard value != Int64.min else {
            throw error("integer '\(text)' is out of range for a 64-bit signed integer", at: start)
        }
        return -value
    }

    mutating func parseFloat(
        _ body: ArraySlice<UInt8>, negative: Bool, text: String, start: Int
    ) throws(TOMLParseError) -> Double {
        // float = dec-int ( exp / frac [ exp ] )
        var intEnd = body.startIndex
        while intEnd < body.endIndex, body[intEnd] != asciiDot, body[intEnd] != 0x65, body[intEnd] != 0x45 {
            intEnd += 1
        }
        let intPart = body[body.startIndex..<intEnd]
        try checkDigits(intPart, isValid: isDigit, what: "the integer part of a float", text: text, start: start)
        if intPart.count > 1, intPart.first == asciiZero {
            throw error("invalid number '\(text)': leading zeros are not allowed", at: start)
        }
        var rest = body[intEnd...]
        if rest.first == asciiDot {
            rest = rest.dropFirst()
            var fracEnd = rest.startIndex
            while fracEnd < rest.endIndex, rest[fracEnd] != 0x65, rest[fracEnd] != 0x45 { fracEnd += 1 }
            let fracPart = rest[rest.startIndex..<fracEnd]
            if fracPart.isEmpty {
                throw error("invalid number '\(text)': a decimal point must be followed by digits", at: start)
            }
            try checkDigits(fracPart, isValid: isDigit, what: "the fractional part of a float", text: text, start: start)
            rest = rest[fracEnd...]
        }
        if let e = rest.first, e == 0x65 || e == 0x45 {
            rest = rest.dropFirst()
            if let sign = rest.first, sign == asciiPlus || sign == asciiMinus { rest = rest.dropFirst() }
            try checkDigits(rest, isValid: isDigit, what: "the exponent of a float", text: text, start: start)
        } else if !rest.isEmpty {
            throw error("invalid number '\(text)'", at: start)
        }
        var cleaned = ""
        cleaned.reserveCapacity(body.count + 1)
        if negative { cleaned.append("-") }
        for c in body where c != asciiUnderscore { cleaned.unicodeScalars.append(Unicode.Scalar(c)) }
        guard let value = Double(cleaned) else {
            throw error("invalid number '\(text)'", at: start)
        }
        return value
    }

    /// Offset date-time, local date-time, local date or local time. Keeps the source text.
    mutating func parseDateTime() throws(TOMLParseError) -> TOMLValue.Kind {
        let start = pos
        func fail(_ parser: inout TOMLParser, _ reason: String) -> TOMLParseError {
            parser.error("invalid date-time '\(parser.word(at: start))': \(reason)", at: start)
        }
        func digits(_ parser: inout TOMLParser, _ count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                guard parser.pos < parser.bytes.count, isDigit(parser.bytes[parser.pos]) else { return nil }
                value = value * 10 + Int(parser.bytes[parser.pos] - asciiZero)
                parser.pos += 1
            }
            return value
        }
        func expect(_ parser: inout TOMLParser, _ byte: UInt8) -> Bool {
            guard parser.pos < parser.bytes.count, parser.bytes[parser.pos] == byte else { return false }
            parser.pos += 1
            return true
        }
        func parseTime(_ parser: inout TOMLParser) throws(TOMLParseError) {
            guard let hour = digits(&parser, 2), expect(&parser, asciiColon),
                let minute = digits(&parser, 2), expect(&parser, asciiColon),
                let second = digits(&parser, 2)
            else { throw fail(&parser, "expected a time as HH:MM:SS") }
            guard hour <= 23 else { throw fail(&parser, "hour must be 00-23") }
            guard minute <= 59 else { throw fail(&parser, "minute must be 00-59") }
            guard second <= 60 else { throw fail(&parser, "second must be 00-60") }
            if expect(&parser, asciiDot) {
                guard parser.pos < parser.bytes.count, isDigit(parser.bytes[parser.pos]) else {
                    throw fail(&parser, "a decimal point in the seconds must be followed by digits")
                }
                while parser.pos < parser.bytes.count, isDigit(parser.bytes[parser.pos]) { parser.pos += 1 }
            }
        }

        if pos + 2 < bytes.count, bytes[pos + 2] == asciiColon {
            // Local time.
            try parseTime(&self)
        } else {
            guard let year = digits(&self, 4), expect(&self, asciiMinus),
                let month = digits(&self, 2), expect(&self, asciiMinus),
                let day = digits(&self, 2)
            else { throw fail(&self, "expected a date as YYYY-MM-DD") }
            guard (1...12).contains(month) else { throw fail(&self, "month must be 01-12") }
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            let daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            guard day >= 1 && day <= daysInMonth else {
                throw fail(&self, "day must be 01-\(daysInMonth) for that month")
            }
            // Time part: 'T', 't', or a space followed by a time.
            var hasTime = false
            if let c = peek(), c == 0x54 || c == 0x74 {
                hasTime = true
            } else if peek() == asciiSpace, let h1 = peek(1), let h2 = peek(2), let colon = peek(3),
                isDigit(h1), isDigit(h2), colon == asciiColon
            {
                hasTime = true
            }
            if hasTime {
                pos += 1
                try parseTime(&self)
                if let c = peek(), c == 0x5A || c == 0x7A {  // Z, z
                    pos += 1
                } else if let c = peek(), c == asciiPlus || c == asciiMinus {
                    pos += 1
                    guard let offsetHour = digits(&self, 2), expect(&self, asciiColon),
                        let offsetMinute = digits(&self, 2)
                    else { throw fail(&self, "expected a time offset as +HH:MM or -HH:MM") }
                    guard offsetHour <= 23, offsetMinute <= 59 else {
                        throw fail(&self, "time offset out of range")
                    }
                }
            }
        }
        if pos < bytes.count && !isValueTerminator(bytes[pos]) {
            throw fail(&self, "unexpected \(describe(at: pos))")
        }
        return .dateTime(String(decoding: bytes[start..<pos], as: UTF8.self))
    }
}
