/// An Alpine (apk) package version: `digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}`,
/// tokenised and ordered as apk-tools' `version.c` does.
///
/// Suffixes `_alpha < _beta < _pre < _rc` sort before the bare version; `_cvs < _svn < _git <
/// _hg < _p` after it. Non-initial numeric components with a leading zero compare as strings
/// (apk's Gentoo-derived rule), everything else numeric compares numerically.
public struct AlpineVersion: Comparable, Sendable, CustomStringConvertible {
    enum TokenKind: Int, Comparable {
        case initialDigit = 0, digit, letter, suffix, suffixNumber, commitHash, revision, end
        static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    /// apk's suffix enumeration; the order is the ordering.
    enum Suffix: Int, Comparable {
        case alpha = 1, beta, pre, rc, none, cvs, svn, git, hg, p
        static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

        init?(_ bytes: ArraySlice<UInt8>) {
            switch String(decoding: bytes, as: UTF8.self) {
            case "alpha": self = .alpha
            case "beta": self = .beta
            case "pre": self = .pre
            case "rc": self = .rc
            case "cvs": self = .cvs
            case "svn": self = .svn
            case "git": self = .git
            case "hg": self = .hg
            case "p": self = .p
            default: return nil
            }
        }
    }

    struct Token {
        var kind: TokenKind
        var value: ArraySlice<UInt8> = []
        var number: Natural = .zero
        var suffix: Suffix = .none
    }

    public let text: String
    private let tokens: [Token]  // always terminated by an `.end` token

    public init?(_ text: String) {
        guard let tokens = Self.tokenize(Array(text.utf8)) else { return nil }
        self.text = text
        self.tokens = tokens
    }

    public var description: String { text }

    private static func tokenize(_ bytes: [UInt8]) -> [Token]? {
        var pos = 0
        func digits() -> (ArraySlice<UInt8>, Natural)? {
            let start = pos
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
            guard pos > start, let n = Natural(ascii: bytes[start..<pos]) else { return nil }
            return (bytes[start..<pos], n)
        }

        guard let (v, n) = digits() else { return nil }
        var tokens = [Token(kind: .initialDigit, value: v, number: n)]
        while true {
            let previous = tokens[tokens.count - 1].kind
            guard pos < bytes.count else {
                tokens.append(Token(kind: .end))
                return tokens
            }
            let c = bytes[pos]
            if isLower(c) {
                guard previous <= .digit else { return nil }
                tokens.append(Token(kind: .letter, value: bytes[pos...pos]))
                pos += 1
            } else if c == UInt8(ascii: ".") || isDigit(c) {
                if c == UInt8(ascii: ".") {
                    guard previous <= .digit else { return nil }
                    pos += 1
                }
                let kind: TokenKind
                switch previous {
                case .initialDigit, .digit: kind = .digit
                case .suffix: kind = .suffixNumber
                default: return nil
                }
                guard let (v, n) = digits() else { return nil }
                tokens.append(Token(kind: kind, value: v, number: n))
            } else if c == UInt8(ascii: "_") {
                guard previous <= .suffixNumber else { return nil }
                pos += 1
                let start = pos
                while pos < bytes.count, isLower(bytes[pos]) { pos += 1 }
                guard let suffix = Suffix(bytes[start..<pos]) else { return nil }
                tokens.append(Token(kind: .suffix, value: bytes[start..<pos], suffix: suffix))
            } else if c == UInt8(ascii: "~") {
                guard previous < .commitHash else { return nil }
                pos += 1
                let start = pos
                while pos < bytes.count, isDigit(bytes[pos]) || (bytes[pos] >= 0x61 && bytes[pos] <= 0x66) { pos += 1 }
                guard pos > start else { return nil }
                tokens.append(Token(kind: .commitHash, value: bytes[start..<pos]))
            } else if c == UInt8(ascii: "-") {
                guard previous < .revision, pos + 1 < bytes.count, bytes[pos + 1] == UInt8(ascii: "r") else { return nil }
                pos += 2
                guard let (v, n) = digits() else { return nil }
                tokens.append(Token(kind: .revision, value: v, number: n))
            } else {
                return nil
            }
        }
    }

    private static func compareTokens(_ a: Token, _ b: Token) -> ComparisonResult {
        switch a.kind {
        case .digit where a.value.first == UInt8(ascii: "0") || b.value.first == UInt8(ascii: "0"):
            return compareBytes(a.value, b.value)
        case .initialDigit, .digit, .suffixNumber, .revision:
            return compare3(a.number, b.number)
        case .letter:
            return compare3(a.value.first!, b.value.first!)
        case .suffix:
            return compare3(a.suffix, b.suffix)
        case .commitHash, .end:
            return compareBytes(a.value, b.value)
        }
    }

    public static func == (a: AlpineVersion, b: AlpineVersion) -> Bool { a.compare(to: b) == .orderedSame }
    public static func < (a: AlpineVersion, b: AlpineVersion) -> Bool { a.compare(to: b) == .orderedAscending }

    /// apk-tools' `apk_version_compare` (non-fuzzy).
    public func compare(to other: AlpineVersion) -> ComparisonResult {
        var i = 0
        while tokens[i].kind == other.tokens[i].kind && tokens[i].kind < .end {
            let r = Self.compareTokens(tokens[i], other.tokens[i])
            if r != .orderedSame { return r }
            i += 1
        }
        let ta = tokens[i]
        let tb = other.tokens[i]
        if ta.kind == tb.kind { return .orderedSame }
        // The longer version is greater, unless what follows is a pre-release suffix.
        if ta.kind == .suffix && ta.suffix < .none { return .orderedAscending }
        if tb.kind == .suffix && tb.suffix < .none { return .orderedDescending }
        if ta.kind > tb.kind { return .orderedAscending }
        if tb.kind > ta.kind { return .orderedDescending }
        return .orderedSame
    }
}
