/// The ECMA-262 regular expressions that `pattern` and `patternProperties` hold, parsed into a
/// tree for `Pattern` to compile. The subset is what schemas use: literals, `.`, classes with
/// ranges and negation, `\d \w \s \D \W \S`, `\p{…}`/`\P{…}` for general categories and a few
/// binary properties, escapes, `^ $ \b \B`, groups (capturing, named, non-capturing),
/// alternation and every quantifier, lazy ones included. Matching is on Unicode scalars, as with
/// JavaScript's `u` flag. What the subset leaves out (lookaround, backreferences, scripts in
/// `\p{…}`, inline flags) is a syntax error here, never a silent change of meaning; so is an
/// escape of a letter ECMA-262 does not define (`\A`, `\z`: another dialect's anchors).
///
/// Lenient where JavaScript without `u` is (Annex B): a `{` or `}` that does not make a
/// quantifier, and a `]` outside a class, are literals, and any other punctuation may be escaped.
indirect enum PatternNode: Equatable {
    case empty
    /// One scalar from the set.
    case scalars(ScalarSet)
    case sequence([PatternNode])
    case alternation([PatternNode])
    /// Greedy or lazy makes no difference to whether a match exists, which is all a schema asks.
    case repetition(PatternNode, min: Int, max: Int?)
    case inputStart
    case inputEnd
    case wordBoundary
    case notWordBoundary
}

/// Why a pattern was refused, and where (a scalar offset into the pattern).
struct PatternSyntaxError: Error, Equatable {
    var offset: Int
    var message: String
}

/// A recursive-descent parser of the grammar in ECMA-262 §22.2.1, for the subset above.
struct PatternParser {
    let s: [Unicode.Scalar]
    var i = 0
    /// Groups nest no deeper than this, so the parser's recursion stays small.
    static let maxNesting = 100
    var nesting = 0

    init(_ pattern: String) { s = Array(pattern.unicodeScalars) }

    static func parse(_ pattern: String) throws(PatternSyntaxError) -> PatternNode {
        var parser = PatternParser(pattern)
        let node = try parser.disjunction()
        if parser.i < parser.s.count {
            // Only an unmatched ')' stops a top-level disjunction early.
            throw parser.fail("unmatched )")
        }
        return node
    }

    func fail(_ message: String, at offset: Int? = nil) -> PatternSyntaxError {
        PatternSyntaxError(offset: offset ?? i, message: message)
    }

    var atEnd: Bool { i >= s.count }
    func peek(_ k: Int = 0) -> Unicode.Scalar? { i + k < s.count ? s[i + k] : nil }
    func peekIs(_ c: Character, _ k: Int = 0) -> Bool { peek(k).map { Character($0) == c } ?? false }

    mutating func disjunction() throws(PatternSyntaxError) -> PatternNode {
        var alternatives = [try alternative()]
        while peekIs("|") {
            i += 1
            alternatives.append(try alternative())
        }
        return alternatives.count == 1 ? alternatives[0] : .alternation(alternatives)
    }

    mutating func alternative() throws(PatternSyntaxError) -> PatternNode {
        var terms: [PatternNode] = []
        while let c = peek(), c != "|", c != ")" {
            terms.append(try term())
        }
        switch terms.count {
        case 0: return .empty
        case 1: return terms[0]
        default: return .sequence(terms)
        }
    }

    mutating func term() throws(PatternSyntaxError) -> PatternNode {
        let start = i
        switch peek()! {
        case "^": i += 1; return try noQuantifier(.inputStart)
        case "$": i += 1; return try noQuantifier(.inputEnd)
        case "\\" where peekIs("b", 1): i += 2; return try noQuantifier(.wordBoundary)
        case "\\" where peekIs("B", 1): i += 2; return try noQuantifier(.notWordBoundary)
        case "*", "+", "?": throw fail("nothing to repeat before \(s[i])")
        case "{" where quantifierAhead():
            throw fail("nothing to repeat before {")
        default: break
        }
        let atom = try atom()
        return try quantified(atom, start: start)
    }

    /// An assertion takes no quantifier.
    mutating func noQuantifier(_ node: PatternNode) throws(PatternSyntaxError) -> PatternNode {
        if let c = peek(), c == "*" || c == "+" || c == "?" || (c == "{" && quantifierAhead()) {
            throw fail("nothing to repeat before \(c): an assertion cannot be quantified")
        }
        return node
    }

    mutating func quantified(_ atom: PatternNode, start: Int) throws(PatternSyntaxError) -> PatternNode {
        guard let c = peek() else { return atom }
        var min = 0, max: Int? = nil
        switch c {
        case "*": i += 1
        case "+": i += 1; min = 1
        case "?": i += 1; max = 1
        case "{" where quantifierAhead():
            i += 1
            min = try repetitionCount()
            if peekIs(",") {
                i += 1
                if !peekIs("}") { max = try repetitionCount() }
            } else {
                max = min
            }
            i += 1  // "}"
            if let m = max, m < min { throw fail("numbers out of order in {\(min),\(m)} quantifier", at: start) }
        default: return atom
        }
        if peekIs("?") { i += 1 }  // lazy: the same language
        return .repetition(atom, min: min, max: max)
    }

    /// Whether `{` at `i` opens `{n}`, `{n,}` or `{n,m}` (otherwise it is a literal, Annex B).
    func quantifierAhead() -> Bool {
        var k = i + 1
        func digits() -> Bool {
            let start = k
            while k < s.count, ScalarSet.isDigit(s[k].value) { k += 1 }
            return k > start
        }
        guard digits() else { return false }
        if k < s.count, s[k] == "," {
            k += 1
            _ = digits()
        }
        return k < s.count && s[k] == "}"
    }

    /// Repetition counts above this are refused: the compiled program would not fit its cap anyway.
    static let maxCount = 100_000

    mutating func repetitionCount() throws(PatternSyntaxError) -> Int {
        var n = 0
        while let c = peek(), ScalarSet.isDigit(c.value) {
            n = n * 10 + Int(c.value - 0x30)
            if n > Self.maxCount { throw fail("repetition count above \(Self.maxCount)") }
            i += 1
        }
        return n
    }

    mutating func atom() throws(PatternSyntaxError) -> PatternNode {
        let c = peek()!
        switch c {
        case ".": i += 1; return .scalars(.dot)
        case "(": return try group()
        case "[": return .scalars(try characterClass())
        case "\\": return .scalars(try atomEscape())
        default:
            i += 1
            return .scalars(.scalar(c.value))
        }
    }

    mutating func group() throws(PatternSyntaxError) -> PatternNode {
        let start = i
        i += 1
        if peekIs("?") {
            switch peek(1) ?? "\0" {
            case ":": i += 2
            case "=", "!": throw fail("lookahead (?\(peek(1)!) is not supported", at: start)
            case "<" where peekIs("=", 2) || peekIs("!", 2): throw fail("lookbehind (?<\(peek(2)!) is not supported", at: start)
            case "<":
                i += 2
                let nameStart = i
                while let c = peek(), c == "_" || c == "$" || c.properties.isAlphabetic || (i > nameStart && ScalarSet.isDigit(c.value)) { i += 1 }
                guard i > nameStart, peekIs(">") else { throw fail("invalid group name", at: start) }
                i += 1
            default:
                throw fail("(?\(peek(1).map { String($0) } ?? "") is not ECMA-262 group syntax (no inline flags, atomic groups or Python's (?P…))", at: start)
            }
        }
        nesting += 1
        guard nesting <= Self.maxNesting else { throw fail("groups nested deeper than \(Self.maxNesting)") }
        let inner = try disjunction()
        nesting -= 1
        guard peekIs(")") else { throw fail("unterminated group", at: start) }
        i += 1
        return inner
    }

    /// After a backslash outside a class.
    mutating func atomEscape() throws(PatternSyntaxError) -> ScalarSet {
        let start = i
        i += 1
        guard let c = peek() else { throw fail("\\ at the end of the pattern", at: start) }
        if let set = try classEscape(c, start: start) { return set }
        return .scalar(try characterEscape(c, start: start, inClass: false))
    }

    /// `\d \D \w \W \s \S \p{…} \P{…}`, with `i` at the letter; nil for any other escape.
    mutating func classEscape(_ c: Unicode.Scalar, start: Int) throws(PatternSyntaxError) -> ScalarSet? {
        let item: ScalarSet.Item
        switch c {
        case "d": item = .digit
        case "D": item = .notDigit
        case "w": item = .word
        case "W": item = .notWord
        case "s": item = .space
        case "S": item = .notSpace
        case "p", "P":
            i += 1
            guard peekIs("{") else { throw fail("\\\(c) needs a property in braces", at: start) }
            i += 1
            var name = ""
            while let n = peek(), n != "}" {
                name.unicodeScalars.append(n)
                i += 1
            }
            guard peekIs("}") else { throw fail("unterminated \\\(c){", at: start) }
            i += 1
            return ScalarSet(items: [try property(name, negated: c == "P", start: start)])
        default: return nil
        }
        i += 1
        return ScalarSet(items: [item])
    }

    func property(_ name: String, negated: Bool, start: Int) throws(PatternSyntaxError) -> ScalarSet.Item {
        var value = name
        if let eq = name.firstIndex(of: "=") {
            let key = name[..<eq]
            guard key == "General_Category" || key == "gc" else {
                throw fail("\\p{\(name)}: only general categories and a few binary properties are supported (not \(key))", at: start)
            }
            value = String(name[name.index(after: eq)...])
        } else if let property = ScalarSet.binaryPropertyNames[name] {
            return .binaryProperty(property, negated: negated)
        }
        guard let mask = ScalarSet.categoryNames[value] else {
            throw fail("\\p{\(name)} is not a supported Unicode property", at: start)
        }
        return .categories(mask: mask, negated: negated)
    }

    /// A single-scalar escape, with `i` at the character after the backslash.
    mutating func characterEscape(_ c: Unicode.Scalar, start: Int, inClass: Bool) throws(PatternSyntaxError) -> UInt32 {
        i += 1
        switch c {
        case "t": return 0x09
        case "n": return 0x0A
        case "v": return 0x0B
        case "f": return 0x0C
        case "r": return 0x0D
        case "b" where inClass: return 0x08
        case "-" where inClass: return 0x2D
        case "0" where !(peek().map { ScalarSet.isDigit($0.value) } ?? false): return 0
        case "0"..."9": throw fail("backreferences (\\\(c)) are not supported", at: start)
        case "k": throw fail("named backreferences (\\k) are not supported", at: start)
        case "c":
            guard let l = peek(), (l >= "a" && l <= "z") || (l >= "A" && l <= "Z") else { throw fail("\\c needs a letter", at: start) }
            i += 1
            return l.value % 32
        case "x":
            guard let h = hexDigits(2) else { throw fail("\\x needs two hex digits", at: start) }
            return h
        case "u":
            if peekIs("{") {
                i += 1
                var v: UInt32 = 0
                var n = 0
                while let d = peek().flatMap({ Self.hexValue($0) }) {
                    v = v &* 16 &+ d
                    n += 1
                    i += 1
                    if n > 6 { break }
                }
                guard n > 0, n <= 6, peekIs("}"), v <= 0x10FFFF else { throw fail("invalid \\u{…} escape", at: start) }
                i += 1
                guard !(0xD800...0xDFFF).contains(v) else { throw fail("\\u{…} names a surrogate", at: start) }
                return v
            }
            guard let high = hexDigits(4) else { throw fail("\\u needs four hex digits", at: start) }
            if (0xD800..<0xDC00).contains(high), peekIs("\\"), peekIs("u", 1) {
                let save = i
                i += 2
                if let low = hexDigits(4), (0xDC00..<0xE000).contains(low) {
                    return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                }
                i = save
            }
            guard !(0xD800...0xDFFF).contains(high) else { throw fail("\\u escape of a lone surrogate", at: start) }
            return high
        default:
            // Identity escapes: syntax characters and other punctuation (Annex B) stand for
            // themselves; an undefined letter or digit escape is refused.
            let v = c.value
            let isAlphanumeric = (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A)
            if isAlphanumeric || v == 0x5F {
                throw fail("\\\(c) is not an escape ECMA-262 defines", at: start)
            }
            return v
        }
    }

    static func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: return c.value - 0x30
        case 0x41...0x46: return c.value - 0x41 + 10
        case 0x61...0x66: return c.value - 0x61 + 10
        default: return nil
        }
    }

    mutating func hexDigits(_ n: Int) -> UInt32? {
        guard i + n <= s.count else { return nil }
        var v: UInt32 = 0
        for k in 0..<n {
            guard let d = Self.hexValue(s[i + k]) else { return nil }
            v = v << 4 | d
        }
        i += n
        return v
    }

    mutating func characterClass() throws(PatternSyntaxError) -> ScalarSet {
        let start = i
        i += 1
        var set = ScalarSet(items: [])
        if peekIs("^") {
            set.negated = true
            i += 1
        }
        while true {
            guard let c = peek() else { throw fail("unterminated character class", at: start) }
            if c == "]" { i += 1; return set }
            let atomStart = i
            let first = try classAtom()
            // A range needs a scalar on both sides of the '-'; a '-' first or last is itself.
            if peekIs("-"), let next = peek(1), next != "]" {
                i += 1
                let second = try classAtom()
                guard case .range(let lo, _) = first, case .range(let hi, _) = second else {
                    throw fail("a class escape cannot bound a range", at: atomStart)
                }
                guard lo <= hi else { throw fail("range out of order in character class", at: atomStart) }
                set.items.append(.range(lo, hi))
            } else {
                set.items.append(first)
            }
        }
    }

    /// One scalar (as a one-scalar range) or a class escape.
    mutating func classAtom() throws(PatternSyntaxError) -> ScalarSet.Item {
        let c = peek()!
        guard c == "\\" else {
            i += 1
            return .range(c.value, c.value)
        }
        let start = i
        i += 1
        guard let e = peek() else { throw fail("\\ at the end of the pattern", at: start) }
        if let set = try classEscape(e, start: start) { return set.items[0] }
        if e == "B" { throw fail("\\B is not allowed in a character class", at: start) }
        let v = try characterEscape(e, start: start, inClass: true)
        return .range(v, v)
    }
}
