import CordonJSON
import Testing

@testable import CordonSchema

/// The ECMA-262 subset, against what JavaScript answers: `new RegExp(p, "u").test(s)`, or
/// without the u flag for the Annex B lines, which u refuses (each answer checked once with
/// node; node is not needed to run these).
@Suite struct PatternTests {
    static func matches(_ pattern: String, _ text: String) throws -> Bool {
        let p = try Pattern(pattern, maxLength: 1_000, maxProgram: 10_000)
        var steps = 0
        switch p.firstMatch(in: Array(text.unicodeScalars), budget: 1_000_000, steps: &steps) {
        case .match: return true
        case .noMatch: return false
        case .tooExpensive: throw Pattern.CompileError(offset: nil, message: "too expensive")
        }
    }

    /// (pattern, text, JavaScript's answer with the u flag)
    static let cases: [(String, String, Bool)] = [
        // Search anywhere unless anchored.
        ("abc", "xxabcxx", true), ("^abc", "xxabc", false), ("abc$", "abcx", false), ("^$", "", true),
        ("", "anything", true), ("^abc$", "abc", true),
        // $ is the end of input only (no multiline): not before a final newline, as in Python.
        ("^a$", "a\n", false), ("^a\\n$", "a\n", true),
        // . is any scalar but a line terminator; a scalar, not a UTF-16 unit.
        ("^.$", "\n", false), ("^.$", "\r", false), ("^.$", "\u{2028}", false), ("^.$", "\t", true),
        ("^.$", "🐲", true), ("^..$", "🐲", false), ("^[^]$", "\n", true), ("^[]$", "", false), ("[]", "a", false),
        // Classes, ranges, negation, escapes in classes.
        ("^[a-c]+$", "abcab", true), ("^[a-c]+$", "abd", false), ("^[^a-c]+$", "xyz", true), ("^[^a-c]+$", "xaz", false),
        ("^[-a]$", "-", true), ("^[a-]$", "-", true), ("^[a\\-z]$", "-", true), ("^[a\\-z]$", "b", false),
        ("^[\\]]$", "]", true), ("^[\\\\]$", "\\", true), ("^[\\b]$", "\u{8}", true), ("^[.]$", "x", false),
        ("^[\\d\\s]+$", "1 2\t3", true), ("^[^\\d]+$", "ab1", false), ("^[\\w-]+$", "a-b_c", true),
        // \d \w \s are ASCII (\d) and ECMA's sets; their negations.
        ("^\\d+$", "0123456789", true), ("^\\d$", "٣", false), ("^\\w+$", "abc_XYZ_09", true), ("^\\w$", "é", false),
        ("^\\s+$", " \t\n\u{B}\u{C}\r\u{A0}\u{FEFF}\u{2003}\u{3000}", true), ("^\\s$", "\u{200B}", false),
        ("^\\D\\W\\S$", "a b", true), ("^\\D\\W\\S$", "1 b", false), ("^\\D\\W\\S$", "a_b", false),
        // \b \B.
        ("\\bfoo\\b", "a foo b", true), ("\\bfoo\\b", "afoo", false), ("\\Bfoo", "afoo", true), ("\\Bfoo", "foo", false),
        // Groups, alternation, quantifiers (greedy and lazy match the same strings).
        ("^(ab|cd)+$", "abcdab", true), ("^(ab|cd)+$", "abc", false), ("^(?:a|b)*c$", "ababc", true),
        ("^(?<word>[a-z]+)-\\d+$", "abc-12", true), ("^a{3}$", "aaa", true), ("^a{3}$", "aaaa", false),
        ("^a{2,}$", "a", false), ("^a{2,}$", "aaaaa", true), ("^a{1,2}$", "aaa", false), ("^a{0}$", "", true),
        ("^a+?$", "aaa", true), ("^a*?b$", "aab", true), ("^a??b$", "b", true), ("^a{2,3}?$", "aaa", true),
        ("^(a|ab)(c|bcd)(d*)$", "abcd", true), ("^(a*)*$", "aaaa", true), ("^(a*)*b$", "aaaa", false),
        ("^(a|)+$", "aaa", true), ("x*", "", true),
        // Annex B: braces and ] that make no quantifier or class are literals.
        ("^a{$", "a{", true), ("^a{1$", "a{1", true), ("^a{,2}$", "a{,2}", true), ("^}$", "}", true), ("^]$", "]", true),
        // Escapes.
        ("^\\x41\\u0042\\u{43}$", "ABC", true), ("^\\u{1F409}$", "🐉", true), ("^\\uD83D\\uDC09$", "🐉", true),
        ("^\\t\\n\\v\\f\\r\\0$", "\t\n\u{B}\u{C}\r\u{0}", true), ("^\\cJ$", "\n", true),
        ("^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/\\^\\$\\\\$", ".*+?()[]{}|/^$\\", true), ("^\\-\\@\\#$", "-@#", true),
        // Unicode properties: general categories and a few binary ones.
        ("^\\p{L}+$", "Héllo", true), ("^\\p{Letter}+$", "π", true), ("^\\p{Lu}$", "a", false), ("^\\p{Lu}$", "Ä", true),
        ("^\\P{L}+$", "123", true), ("^\\p{Nd}+$", "٣3", true), ("^\\p{gc=Sc}$", "€", true), ("^[\\p{L}\\d]+$", "a1b2", true),
        ("^\\p{ASCII}+$", "abc", true), ("^\\p{ASCII}+$", "é", false), ("^\\p{Any}$", "\n", true),
        // Astral scalars in classes and ranges.
        ("^[🐉-🐲]$", "🐋", true), ("^[^🐉]$", "🐉", false),
    ]

    @Test func matchesWhatJavaScriptMatches() throws {
        for (pattern, text, expected) in Self.cases {
            #expect(try Self.matches(pattern, text) == expected, "/\(pattern)/u.test(\(JSON.string(text).text))")
        }
    }

    /// Syntax outside the subset is refused, each with the reason; none is read as a literal.
    static let refused: [(String, String)] = [
        ("(?<=a)b", "lookbehind (?<= is not supported"), ("(?<!a)b", "lookbehind (?<! is not supported"),
        ("a(?=b)", "lookahead (?= is not supported"), ("a(?!b)", "lookahead (?! is not supported"),
        ("(a)\\1", "backreferences (\\1) are not supported"), ("(?<x>a)\\k<x>", "named backreferences (\\k) are not supported"),
        ("\\p{Script=Greek}", "only general categories and a few binary properties are supported (not Script)"),
        ("\\p{Greek}", "\\p{Greek} is not a supported Unicode property"),
        ("(?i)abc", "is not ECMA-262 group syntax"), ("(?P<x>a)", "is not ECMA-262 group syntax"), ("(?>a)", "is not ECMA-262 group syntax"),
        ("\\Aabc\\z", "\\A is not an escape ECMA-262 defines"), ("a\\Z", "\\Z is not an escape ECMA-262 defines"),
        ("*a", "nothing to repeat"), ("a**", "nothing to repeat"), ("a{2}{3}", "nothing to repeat"), ("^*", "an assertion cannot be quantified"),
        ("(ab", "unterminated group"), ("ab)", "unmatched )"), ("[abc", "unterminated character class"),
        ("[z-a]", "range out of order"), ("[\\d-z]", "a class escape cannot bound a range"), ("a{3,2}", "numbers out of order"),
        ("\\", "\\ at the end of the pattern"), ("\\u{110000}", "invalid \\u{…} escape"), ("\\uD800", "lone surrogate"),
        ("\\x4", "\\x needs two hex digits"), ("[\\B]", "\\B is not allowed in a character class"),
    ]

    @Test func refusesWhatItDoesNotImplement() throws {
        for (pattern, reason) in Self.refused {
            let error = try #require(compileError(JSON.object([("properties", .object([("p", .object([("pattern", .string(pattern))]))]))])),
                                     "\(pattern) compiled")
            #expect(error.code == .invalidPattern, "\(pattern): \(error)")
            #expect(error.location == "/properties/p/pattern")
            #expect(error.message.hasPrefix("pattern \(JSON.string(pattern).text): "), "\(error)")
            #expect(error.message.contains(reason), "\(pattern): \(error.message)")
        }
    }

    @Test func patternPropertiesKeysAreCheckedToo() throws {
        let error = try #require(try compileError(##"{"patternProperties": {"(?<=x)": true}}"##))
        #expect(error.description == ##"schema #/patternProperties/(?<=x): pattern "(?<=x)": lookbehind (?<= is not supported (at character 0)"##)
    }

    @Test func stepsGrowLinearlyWithTheText() throws {
        // The property that makes the budget fair: twice the text, about twice the steps.
        let p = try Pattern("^(a|aa)+$", maxLength: 1_000, maxProgram: 10_000)
        func steps(_ n: Int) -> Int {
            var used = 0
            _ = p.firstMatch(in: Array((String(repeating: "a", count: n) + "b").unicodeScalars), budget: .max, steps: &used)
            return used
        }
        let small = steps(1_000), large = steps(2_000)
        #expect(large < small * 2 + 100, "\(small) steps for 1000, \(large) for 2000")
        #expect(small > 1_000)
    }
}
