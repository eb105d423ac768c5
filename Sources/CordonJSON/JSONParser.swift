extension JSON {
    /// Where parsing stopped and why. `offset` counts bytes from the start of the input.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public init(offset: Int, message: String) {
            self.offset = offset
            self.message = message
        }
        public var description: String { "at byte \(offset): \(message)" }

        /// The input broke one of `ParseOptions`' caps (its size, its nesting, its number of
        /// values) rather than the grammar: text another reader may well accept, so a reader that
        /// must not pass over what it cannot read (a scanner) treats it as unread, not as invalid.
        public var exceedsLimit: Bool {
            message.hasPrefix(Self.longer) || message.hasPrefix(Self.deeper) || message.hasPrefix(Self.moreValues)
        }

        static let longer = "longer than ", deeper = "nested deeper than ", moreValues = "more than "
    }

    /// Nesting limit of `ParseOptions()`: the parser recurses once per level.
    public static let maxDepth = 64
    /// Value limit of `ParseOptions()`: a boxed value costs far more memory than its text, so a
    /// long array of `0,` must not be able to multiply a request's size.
    public static let maxValues = 100_000

    /// The grammar is always RFC 8259's (no comments, trailing commas, NaN, leading zeros or
    /// raw control characters); the options set the caps and what to do with text a JavaScript
    /// runtime would take but RFC 8259 does not.
    public struct ParseOptions: Sendable {
        /// What to do with ill-formed text: bytes of a string that are not UTF-8, and `\u`
        /// escapes of a lone UTF-16 surrogate. A valid surrogate pair is always one scalar.
        public enum IllFormedText: Sendable {
            /// A parse error (RFC 8259 §8.2: such text is not interoperable).
            case error
            /// Each ill-formed sequence becomes U+FFFD, as when JavaScript reads a file as
            /// UTF-8 and `JSON.parse` keeps a lone surrogate that printing then replaces.
            case replacementCharacter
        }

        /// What to do with a number too large in magnitude for a Double (`1e400`, or 400 digits).
        public enum NumbersOutOfRange: Sendable {
            /// A parse error: JSON has no infinity, and such a number is not interoperable.
            case error
            /// Plus or minus infinity, as JavaScript's `JSON.parse` (and CPython's `json`) read it:
            /// a file npm installs must not fail to parse here because of one.
            case infinity
        }

        public var maxDepth: Int
        public var maxValues: Int
        /// Longer input is refused before it is read.
        public var maxBytes: Int
        /// Skip one UTF-8 byte order mark at the start (RFC 8259 §8.1 lets a parser ignore it;
        /// npm strips it from package.json). Offsets still count it.
        public var skipsByteOrderMark: Bool
        public var illFormedText: IllFormedText
        public var numbersOutOfRange: NumbersOutOfRange

        public init(maxDepth: Int = JSON.maxDepth, maxValues: Int = JSON.maxValues, maxBytes: Int = .max,
                    skipsByteOrderMark: Bool = false, illFormedText: IllFormedText = .error,
                    numbersOutOfRange: NumbersOutOfRange = .error) {
            self.maxDepth = maxDepth
            self.maxValues = maxValues
            self.maxBytes = maxBytes
            self.skipsByteOrderMark = skipsByteOrderMark
            self.illFormedText = illFormedText
            self.numbersOutOfRange = numbersOutOfRange
        }

        /// RFC 8259 with the default caps: for anything Cordon does not trust.
        public static let strict = ParseOptions()
        /// What npm accepts in package.json: it strips a leading byte order mark, decodes the
        /// file as UTF-8 (an ill-formed byte becomes U+FFFD) and `JSON.parse` keeps a lone
        /// surrogate (U+FFFD here, where strings are Unicode), and it reads a number too large for
        /// a Double (`1e400`) as Infinity. A scanner must read such a file as npm will, or a hook
        /// npm runs could go unseen.
        public static let javaScript = ParseOptions(skipsByteOrderMark: true, illFormedText: .replacementCharacter,
                                                    numbersOutOfRange: .infinity)
    }

    public static func parse(_ bytes: some Collection<UInt8>, options: ParseOptions = .strict) throws(ParseError) -> JSON {
        var parser = Parser(Array(bytes), options)
        return try parser.document()
    }

    public static func parse(_ text: String, options: ParseOptions = .strict) throws(ParseError) -> JSON {
        try parse(Array(text.utf8), options: options)
    }

    /// Parses as `parse` does and also notes where each object member's key starts, so a
    /// finding can name its line.
    public static func parseWithKeyOffsets(_ bytes: some Collection<UInt8>, options: ParseOptions = .strict) throws(ParseError) -> (value: JSON, keyOffsets: KeyOffsets) {
        var parser = Parser(Array(bytes), options)
        parser.offsets = KeyOffsets()
        let value = try parser.document()
        return (value, parser.offsets!)
    }

    /// One step of a path into a document: an object member's key or an array index.
    public enum PathComponent: Hashable, Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
        case key(String)
        case index(Int)
        public init(stringLiteral key: String) { self = .key(key) }
        public init(integerLiteral index: Int) { self = .index(index) }
    }

    /// The byte offset of every object member's key (its opening quote) in a parsed document.
    public struct KeyOffsets: Sendable {
        /// A member of an object or an element of an array (the containers are numbered in
        /// document order, the root 0).
        struct Slot: Hashable, Sendable {
            var container: Int
            var component: PathComponent
        }
        struct Entry: Sendable {
            var offset: Int
            /// The container number of the member's value; -1 when it is not an array or object.
            var node: Int
        }
        var entries: [Slot: Entry] = [:]
        var rootIsContainer = false

        /// The offset of the key of the member `path` leads to, or nil when the document has
        /// no such member. A repeated key gives the offset of its last occurrence, so a path
        /// read through `JSON.subscript` (which takes the last repeat) names the member read.
        /// Array indexes may lead the way; the last component is a key.
        public func offset(ofKeyAt path: [PathComponent]) -> Int? {
            guard rootIsContainer, let last = path.last, case .key = last else { return nil }
            var node = 0
            for component in path.dropLast() {
                guard let entry = entries[Slot(container: node, component: component)], entry.node >= 0 else { return nil }
                node = entry.node
            }
            return entries[Slot(container: node, component: last)]?.offset
        }

        public subscript(_ path: PathComponent...) -> Int? { offset(ofKeyAt: path) }
    }

    private struct Parser {
        let b: [UInt8]
        let options: ParseOptions
        var i = 0
        var values = 0
        /// Set while recording key offsets.
        var offsets: KeyOffsets?
        var containers = 0
        /// The container number of the value `value(depth:)` last returned, or -1.
        var lastNode = -1

        init(_ bytes: [UInt8], _ options: ParseOptions) {
            b = bytes
            self.options = options
        }

        func fail(_ message: String) -> ParseError { ParseError(offset: i, message: message) }

        mutating func document() throws(ParseError) -> JSON {
            guard b.count <= options.maxBytes else {
                throw ParseError(offset: options.maxBytes, message: ParseError.longer + "\(options.maxBytes) bytes")
            }
            if options.skipsByteOrderMark, b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
            skipSpace()
            let value = try value(depth: 0)
            offsets?.rootIsContainer = lastNode == 0
            skipSpace()
            guard i == b.count else { throw fail("unexpected data after the value") }
            return value
        }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
        }

        mutating func literal(_ word: StaticString, _ value: JSON) throws(ParseError) -> JSON {
            let n = word.utf8CodeUnitCount
            let matches = word.withUTF8Buffer { w in i + n <= b.count && b[i..<i + n].elementsEqual(w) }
            guard matches else { throw fail("invalid literal") }
            i += n
            lastNode = -1
            return value
        }

        mutating func record(_ container: Int, _ component: PathComponent, at offset: Int) {
            offsets?.entries[KeyOffsets.Slot(container: container, component: component)] = KeyOffsets.Entry(offset: offset, node: lastNode)
        }

        mutating func value(depth: Int) throws(ParseError) -> JSON {
            guard depth < options.maxDepth else { throw fail(ParseError.deeper + "\(options.maxDepth) levels") }
            values += 1
            guard values <= options.maxValues else { throw fail(ParseError.moreValues + "\(options.maxValues) values") }
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                let node = containers
                containers += 1
                var members: [(String, JSON)] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; lastNode = node; return .object(members) }
                while true {
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    let keyOffset = i
                    let key = try string()
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipSpace()
                    members.append((key, try value(depth: depth + 1)))
                    if offsets != nil { record(node, .key(key), at: keyOffset) }
                    skipSpace()
                    guard i < b.count else { throw fail("unexpected end of input") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; lastNode = node; return .object(members) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                let node = containers
                containers += 1
                var items: [JSON] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; lastNode = node; return .array(items) }
                while true {
                    skipSpace()
                    let start = i
                    items.append(try value(depth: depth + 1))
                    // Only containers: a path goes on through them, and a scalar has no key.
                    if offsets != nil, lastNode >= 0 { record(node, .index(items.count - 1), at: start) }
                    skipSpace()
                    guard i < b.count else { throw fail("unexpected end of input") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; lastNode = node; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): let s = try string(); lastNode = -1; return .string(s)
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): lastNode = -1; return try number()
            default: throw fail("unexpected character")
            }
        }

        mutating func number() throws(ParseError) -> JSON {
            let start = i
            func digits() -> Int {
                let s = i
                while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
                return i - s
            }
            if b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, b[i] >= 0x30, b[i] <= 0x39 else { throw fail("invalid number") }
            if b[i] == 0x30 { i += 1 } else { _ = digits() }
            var integral = true
            if i < b.count, b[i] == UInt8(ascii: ".") {
                integral = false
                i += 1
                guard digits() > 0 else { throw fail("invalid number") }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                integral = false
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("invalid number") }
            }
            // An integer of up to 18 digits fits an Int64 whatever its digits: read it in place.
            let negative = b[start] == UInt8(ascii: "-")
            if integral, i - start - (negative ? 1 : 0) <= 18 {
                var n: Int64 = 0
                for k in (negative ? start + 1 : start)..<i { n = n * 10 + Int64(b[k] &- 0x30) }
                return .int(negative ? -n : n)
            }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if integral, let n = Int64(text) { return .int(n) }
            if integral, let n = UInt64(text) { return .uint(n) }
            guard let d = Double(text), d.isFinite || options.numbersOutOfRange == .infinity else { throw fail("number out of range") }
            return .double(d)
        }

        func hexDigit(_ c: UInt8) -> UInt32? {
            switch c {
            case 0x30...0x39: return UInt32(c - 0x30)
            case 0x41...0x46: return UInt32(c - 0x41 + 10)
            case 0x61...0x66: return UInt32(c - 0x61 + 10)
            default: return nil
            }
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let d = hexDigit(b[i]) else { throw fail("invalid \\u escape") }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        /// The low surrogate of a `\uDCxx` escape at `i`, without moving, or nil.
        func lowSurrogateAhead() -> UInt32? {
            guard i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { return nil }
            var v: UInt32 = 0
            for k in i + 2..<i + 6 {
                guard let d = hexDigit(b[k]) else { return nil }
                v = v << 4 | d
            }
            return (0xDC00..<0xE000).contains(v) ? v : nil
        }

        /// The text of `b[range]`: as it is when it is UTF-8, else repaired or refused. ASCII
        /// needs no validating (and `String(decoding:)` is the much cheaper call).
        func text(_ range: Range<Int>, ascii: Bool) throws(ParseError) -> String {
            let decoded = b.withUnsafeBufferPointer { all in
                let bytes = UnsafeBufferPointer(rebasing: all[range])
                return ascii || options.illFormedText == .replacementCharacter
                    ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
            }
            guard let decoded else { throw fail("string is not valid UTF-8") }
            return decoded
        }

        mutating func string() throws(ParseError) -> String {
            let repairs = options.illFormedText == .replacementCharacter
            i += 1  // the opening quote
            // Most strings have no escape: their text is the bytes between the quotes, taken as
            // they stand. At the first backslash, what came before is copied and decoding goes on
            // below.
            let start = i
            var high: UInt8 = 0
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; return try text(start..<i - 1, ascii: high < 0x80) }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw fail("control character in a string") }
                high |= c
                i += 1
            }
            var bytes = Array(b[start..<i])
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("control character in a string") }
                if c != UInt8(ascii: "\\") { bytes.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated string") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): bytes.append(0x22)
                case UInt8(ascii: "\\"): bytes.append(0x5C)
                case UInt8(ascii: "/"): bytes.append(0x2F)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        if repairs {
                            if let low = lowSurrogateAhead() {
                                i += 6
                                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                scalar = 0xFFFD
                            }
                        } else {
                            guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                                throw fail("lone surrogate in \\u escape")
                            }
                            i += 2
                            let low = try hex4()
                            guard low >= 0xDC00 && low < 0xE000 else { throw fail("lone surrogate in \\u escape") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        guard repairs else { throw fail("lone surrogate in \\u escape") }
                        scalar = 0xFFFD
                    }
                    // Not a surrogate here, so always a scalar.
                    appendUTF8(Unicode.Scalar(scalar)!, to: &bytes)
                default: throw fail("invalid escape")
                }
            }
            if repairs { return String(decoding: bytes, as: UTF8.self) }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }

        func appendUTF8(_ scalar: Unicode.Scalar, to bytes: inout [UInt8]) {
            UTF8.encode(scalar) { bytes.append($0) }
        }
    }
}
