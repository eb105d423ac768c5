import CordonJSON
import Testing

/// RFC 8259 accept/reject cases, written for Cordon in the spirit of JSONTestSuite: `y_` must
/// parse (to the value given), `n_` must be refused (with the message and offset given: the
/// daemon sends them to clients), `i_` is what RFC 8259 leaves to the implementation, as
/// decided here.
struct JSONCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var testDescription: String { name }
    init(_ name: String, _ text: String) { self.name = name; bytes = Array(text.utf8) }
    init(_ name: String, bytes: [UInt8]) { self.name = name; self.bytes = bytes }
}

func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }

struct AcceptedTests {
    static let cases: [(JSONCase, JSON)] = [
        (JSONCase("y_empty_object", "{}"), .object([])),
        (JSONCase("y_empty_array_in_space", " \t\r\n[ ]\n"), .array([])),
        (JSONCase("y_top_level_string", #""x""#), .string("x")),
        (JSONCase("y_top_level_zero", "0"), .int(0)),
        (JSONCase("y_minus_zero_integer", "-0"), .int(0)),
        (JSONCase("y_literals", "[null,true,false]"), .array([.null, .bool(true), .bool(false)])),
        (JSONCase("y_18_digits", "[999999999999999999,-999999999999999999]"),
         .array([.int(999_999_999_999_999_999), .int(-999_999_999_999_999_999)])),
        (JSONCase("y_19_digits", "[1000000000000000000,-1000000000000000000]"),
         .array([.int(1_000_000_000_000_000_000), .int(-1_000_000_000_000_000_000)])),
        (JSONCase("y_int64_min", "-9223372036854775808"), .int(.min)),
        (JSONCase("y_int64_max", "9223372036854775807"), .int(.max)),
        (JSONCase("y_above_int64_is_uint", "9223372036854775808"), .uint(9_223_372_036_854_775_808)),
        (JSONCase("y_uint64_max", "18446744073709551615"), .uint(.max)),
        (JSONCase("y_integer_beyond_64_bits_is_nearest_double", "18446744073709551616"), .double(18_446_744_073_709_551_616)),
        (JSONCase("y_negative_beyond_int64_is_nearest_double", "-9223372036854775809"), .double(-0x1p63)),
        (JSONCase("y_exponent", "1e2"), .double(100)),
        (JSONCase("y_exponent_capital_plus", "1E+2"), .double(100)),
        (JSONCase("y_exponent_minus", "25e-2"), .double(0.25)),
        (JSONCase("y_fraction", "-123.456"), .double(-123.456)),
        (JSONCase("y_fraction_and_exponent", "1.5e3"), .double(1500)),
        (JSONCase("y_minus_zero_double", "-0.0"), .double(-0.0)),
        (JSONCase("y_underflow_is_zero", "1e-400"), .double(0)),
        (JSONCase("y_long_fraction_rounds", "0.1000000000000000000000000000001"), .double(0.1)),
        (JSONCase("y_short_escapes", #""\"\\\/\b\f\n\r\t""#), .string("\"\\/\u{8}\u{c}\n\r\t")),
        (JSONCase("y_unicode_escapes_any_case", #""\u00e9\u4E2D""#), .string("é中")),
        (JSONCase("y_escaped_nul", #""\u0000""#), .string("\u{0}")),
        (JSONCase("y_surrogate_pair_is_one_scalar", #""\ud83d\ude00""#), .string("\u{1F600}")),
        (JSONCase("y_surrogate_pair_upper_case", #""\uD834\uDD1E""#), .string("\u{1D11E}")),
        (JSONCase("y_last_scalar", #""\uDBFF\uDFFF""#), .string("\u{10FFFF}")),
        (JSONCase("y_noncharacter_escape", #""\uFFFF""#), .string("\u{FFFF}")),
        (JSONCase("y_raw_utf8", "\"é中😀\""), .string("é中😀")),
        (JSONCase("y_escape_after_raw_utf8", "\"é\\n中\\u00e9\""), .string("é\n中é")),
        (JSONCase("y_escaped_key_then_plain", #"{"a\tb":"c","d":"e"}"#), .object([("a\tb", .string("c")), ("d", .string("e"))])),
        (JSONCase("y_raw_delete", "\"\u{7F}\""), .string("\u{7F}")),
        (JSONCase("y_raw_line_separator", "\"\u{2028}\""), .string("\u{2028}")),
        (JSONCase("y_member_order_kept", #"{"b":1,"a":2}"#), .object([("b", .int(1)), ("a", .int(2))])),
        (JSONCase("y_duplicate_keys_kept", #"{"a":1,"a":2}"#), .object([("a", .int(1)), ("a", .int(2))])),
        (JSONCase("y_empty_key", #"{"":{}}"#), .object([("", .object([]))])),
        (JSONCase("y_nested_mixed", #"[[[]],{"k":[{"x":null}]}]"#),
         .array([.array([.array([])]), .object([("k", .array([.object([("x", .null)])]))])])),
        (JSONCase("y_64_levels", nested(64)), (0..<63).reduce(JSON.array([])) { inner, _ in .array([inner]) }),
    ]

    @Test(arguments: cases)
    func parses(_ c: (JSONCase, JSON)) throws {
        let value = try JSON.parse(c.0.bytes)
        #expect(value == c.1)
        if case .string(let s) = value, case .string(let t) = c.1 {
            #expect(Array(s.unicodeScalars) == Array(t.unicodeScalars), "scalar for scalar")
        }
    }

    @Test func duplicateKeysReadTheLast() throws {
        let value = try JSON.parse(#"{"a":1,"b":0,"a":2}"#)
        #expect(value["a"] == .int(2))
        #expect(value.uniquingKeys() == .object([("b", .int(0)), ("a", .int(2))]))
        #expect(try JSON.parse(#"[{"x":[{"y":1,"y":2}],"x":3}]"#).uniquingKeys() == .array([.object([("x", .int(3))])]))
    }
}

struct RefusedTests {
    static let cases: [(JSONCase, Int, String)] = [
        (JSONCase("n_empty", ""), 0, "unexpected end of input"),
        (JSONCase("n_only_space", " \n"), 2, "unexpected end of input"),
        (JSONCase("n_trailing_comma_in_array", "[1,]"), 3, "unexpected character"),
        (JSONCase("n_trailing_comma_in_object", #"{"a":1,}"#), 7, "expected a string key"),
        (JSONCase("n_leading_zero", "01"), 1, "unexpected data after the value"),
        (JSONCase("n_leading_plus", "+1"), 0, "unexpected character"),
        (JSONCase("n_leading_dot", ".5"), 0, "unexpected character"),
        (JSONCase("n_trailing_dot", "1."), 2, "invalid number"),
        (JSONCase("n_empty_exponent", "1e"), 2, "invalid number"),
        (JSONCase("n_exponent_sign_only", "1e+"), 3, "invalid number"),
        (JSONCase("n_minus_alone", "-"), 1, "invalid number"),
        (JSONCase("n_minus_space", "- 1"), 1, "invalid number"),
        (JSONCase("n_nan", "NaN"), 0, "unexpected character"),
        (JSONCase("n_minus_infinity", "-Infinity"), 1, "invalid number"),
        (JSONCase("n_huge_exponent", "1e400"), 5, "number out of range"),
        (JSONCase("n_huge_negative", "-1e400"), 6, "number out of range"),
        (JSONCase("n_hex_number", "0x10"), 1, "unexpected data after the value"),
        (JSONCase("n_single_quotes", "['a']"), 1, "unexpected character"),
        (JSONCase("n_unquoted_key", "{a:1}"), 1, "expected a string key"),
        (JSONCase("n_number_key", "{1:1}"), 1, "expected a string key"),
        (JSONCase("n_missing_colon", #"{"a" 1}"#), 5, "expected ':'"),
        (JSONCase("n_missing_value", #"{"a":}"#), 5, "unexpected character"),
        (JSONCase("n_missing_comma", "[1 2]"), 3, "expected ',' or ']'"),
        (JSONCase("n_missing_comma_in_object", #"{"a":1 "b":2}"#), 7, "expected ',' or '}'"),
        (JSONCase("n_unclosed_array", "[1"), 2, "unexpected end of input"),
        (JSONCase("n_unclosed_object", #"{"a":1"#), 6, "unexpected end of input"),
        (JSONCase("n_line_comment", "[1]//x"), 3, "unexpected data after the value"),
        (JSONCase("n_block_comment", "/*x*/[1]"), 0, "unexpected character"),
        (JSONCase("n_trailing_garbage", "{}x"), 2, "unexpected data after the value"),
        (JSONCase("n_two_documents", "[1] [2]"), 4, "unexpected data after the value"),
        (JSONCase("n_trailing_nul", "[1]\u{0}"), 3, "unexpected data after the value"),
        (JSONCase("n_truncated_literal", "tru"), 0, "invalid literal"),
        (JSONCase("n_capital_literal", "True"), 0, "unexpected character"),
        (JSONCase("n_literal_with_tail", "falsey"), 5, "unexpected data after the value"),
        (JSONCase("n_unterminated_string", #""abc"#), 4, "unterminated string"),
        (JSONCase("n_unterminated_escape", #""\"#), 2, "unterminated string"),
        (JSONCase("n_raw_control_character", "\"a\u{1}b\""), 2, "control character in a string"),
        (JSONCase("n_raw_newline", "\"a\nb\""), 2, "control character in a string"),
        (JSONCase("n_raw_tab", "\"\t\""), 1, "control character in a string"),
        (JSONCase("n_unknown_escape", #""\x""#), 3, "invalid escape"),
        (JSONCase("n_capital_u_escape", #""\U0041""#), 3, "invalid escape"),
        (JSONCase("n_short_unicode_escape", #""\u12""#), 3, "truncated \\u escape"),
        (JSONCase("n_bad_hex_digit", #""\u00g0""#), 5, "invalid \\u escape"),
        (JSONCase("n_lone_high_surrogate", #""\ud800""#), 7, "lone surrogate in \\u escape"),
        (JSONCase("n_high_surrogate_then_text", #""\ud800abcdef""#), 7, "lone surrogate in \\u escape"),
        (JSONCase("n_two_high_surrogates", #""\ud800\ud800""#), 13, "lone surrogate in \\u escape"),
        (JSONCase("n_lone_low_surrogate", #""\udc00""#), 7, "lone surrogate in \\u escape"),
        (JSONCase("n_reversed_pair", #""\ude00\ud83d""#), 7, "lone surrogate in \\u escape"),
        (JSONCase("n_invalid_utf8_byte", bytes: [0x22, 0xFF, 0x22]), 3, "string is not valid UTF-8"),
        (JSONCase("n_lone_continuation_byte", bytes: [0x22, 0x80, 0x22]), 3, "string is not valid UTF-8"),
        (JSONCase("n_overlong_slash", bytes: [0x22, 0xC0, 0xAF, 0x22]), 4, "string is not valid UTF-8"),
        (JSONCase("n_overlong_three_bytes", bytes: [0x22, 0xE0, 0x80, 0xAF, 0x22]), 5, "string is not valid UTF-8"),
        (JSONCase("n_utf8_encoded_surrogate", bytes: [0x22, 0xED, 0xA0, 0x80, 0x22]), 5, "string is not valid UTF-8"),
        (JSONCase("n_truncated_utf8", bytes: [0x22, 0xE2, 0x82, 0x22]), 4, "string is not valid UTF-8"),
        (JSONCase("n_utf8_above_10FFFF", bytes: [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22]), 6, "string is not valid UTF-8"),
        (JSONCase("n_invalid_utf8_in_key", bytes: Array(#"{""#.utf8) + [0xC3] + Array(#"":1}"#.utf8)), 4, "string is not valid UTF-8"),
        (JSONCase("n_invalid_utf8_before_an_escape", bytes: [0x22, 0xFF, 0x5C, 0x6E, 0x22]), 5, "string is not valid UTF-8"),
        (JSONCase("n_invalid_utf8_after_an_escape", bytes: [0x22, 0x5C, 0x6E, 0xFF, 0x22]), 5, "string is not valid UTF-8"),
        (JSONCase("n_control_character_after_utf8", bytes: [0x22, 0xC3, 0xA9, 0x0A, 0x22]), 3, "control character in a string"),
        (JSONCase("n_byte_order_mark", bytes: [0xEF, 0xBB, 0xBF] + Array("{}".utf8)), 0, "unexpected character"),
        (JSONCase("n_raw_utf8_outside_string", "é"), 0, "unexpected character"),
        (JSONCase("n_65_levels", nested(65)), 64, "nested deeper than 64 levels"),
        (JSONCase("n_65_levels_of_objects", String(repeating: #"{"a":"#, count: 64) + "1" + String(repeating: "}", count: 64)), 320,
         "nested deeper than 64 levels"),
    ]

    @Test(arguments: cases)
    func refuses(_ c: (JSONCase, Int, String)) {
        #expect(throws: JSON.ParseError(offset: c.1, message: c.2)) { try JSON.parse(c.0.bytes) }
    }

    /// The daemon's answer to a malformed request carries this text.
    @Test func errorDescription() {
        #expect(JSON.ParseError(offset: 7, message: "expected a string key").description == "at byte 7: expected a string key")
    }
}

struct ImplementationDefinedTests {
    static let replacing = JSON.ParseOptions(illFormedText: .replacementCharacter)

    @Test func byteOrderMarkIsSkippedOnlyWhenAsked() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array(#"{"a":1}"#.utf8)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(bytes) }
        #expect(try JSON.parse(bytes, options: .javaScript) == .object([("a", .int(1))]))
        // Offsets count the mark.
        #expect(try JSON.parseWithKeyOffsets(bytes, options: .javaScript).keyOffsets["a"] == 4)
        // One mark, and only at the start.
        #expect(throws: JSON.ParseError(offset: 3, message: "unexpected character")) {
            try JSON.parse([0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF] + Array("1".utf8), options: .javaScript)
        }
        #expect(throws: JSON.ParseError(offset: 1, message: "unexpected character")) {
            try JSON.parse(Array(" ".utf8) + [0xEF, 0xBB, 0xBF] + Array("1".utf8), options: .javaScript)
        }
    }

    static let repairedSurrogates: [(JSONCase, String)] = [
        (JSONCase("i_lone_high", #""\ud800""#), "\u{FFFD}"),
        (JSONCase("i_lone_high_then_text", #""\ud800ab""#), "\u{FFFD}ab"),
        (JSONCase("i_lone_high_then_escape", #""\ud800\u0041""#), "\u{FFFD}A"),
        (JSONCase("i_high_then_pair", #""\ud800\ud83d\ude00""#), "\u{FFFD}\u{1F600}"),
        (JSONCase("i_lone_low_then_pair", #""\udc00\ud83d\ude00""#), "\u{FFFD}\u{1F600}"),
        (JSONCase("i_reversed_pair", #""\ude00\ud83d""#), "\u{FFFD}\u{FFFD}"),
        (JSONCase("i_pair_still_one_scalar", #""\ud83d\ude00""#), "\u{1F600}"),
    ]

    @Test(arguments: repairedSurrogates)
    func loneSurrogatesBecomeReplacementCharacters(_ c: (JSONCase, String)) throws {
        let value = try JSON.parse(c.0.bytes, options: Self.replacing)
        #expect(value.stringValue.map { Array($0.unicodeScalars) } == Array(c.1.unicodeScalars))
    }

    /// Each maximal ill-formed subsequence becomes one U+FFFD (Unicode's recommended practice,
    /// which WHATWG's UTF-8 decoder, and so Node reading a file, follows).
    static let repairedBytes: [(JSONCase, String)] = [
        (JSONCase("i_invalid_byte", bytes: [0x22, 0x61, 0xFF, 0x62, 0x22]), "a\u{FFFD}b"),
        (JSONCase("i_overlong", bytes: [0x22, 0xC0, 0xAF, 0x22]), "\u{FFFD}\u{FFFD}"),
        (JSONCase("i_encoded_surrogate", bytes: [0x22, 0xED, 0xA0, 0x80, 0x22]), "\u{FFFD}\u{FFFD}\u{FFFD}"),
        (JSONCase("i_truncated_sequence", bytes: [0x22, 0xE2, 0x82, 0x22]), "\u{FFFD}"),
    ]

    @Test(arguments: repairedBytes)
    func invalidUTF8BecomesReplacementCharacters(_ c: (JSONCase, String)) throws {
        let value = try JSON.parse(c.0.bytes, options: Self.replacing)
        #expect(value.stringValue.map { Array($0.unicodeScalars) } == Array(c.1.unicodeScalars))
    }

    /// Repair is about text only: the grammar stays RFC 8259's.
    @Test func repairingDoesNotLoosenTheGrammar() {
        for text in ["[1,]", #"{"a":1,}"#, "[01]", #""\x""#, "\"\u{1}\"", "NaN", "[1] x"] {
            #expect(throws: JSON.ParseError.self, "\(text)") { try JSON.parse(text, options: .javaScript) }
        }
    }

    /// Strict parsing refuses a number a Double cannot hold; `.javaScript` reads it as JSON.parse
    /// does, as an infinity (package.json must parse wherever npm's does).
    @Test func numbersOutOfRangeAreInfinityOnlyWhenAsked() throws {
        #expect(throws: JSON.ParseError(offset: 5, message: "number out of range")) { try JSON.parse("1e400") }
        #expect(try JSON.parse("1e400", options: .javaScript) == .double(.infinity))
        #expect(try JSON.parse("[-1e400]", options: .javaScript) == .array([.double(-.infinity)]))
        #expect(try JSON.parse(String(repeating: "9", count: 400), options: .javaScript) == .double(.infinity))
        #expect(try JSON.parse(#"{"a":1E+999}"#, options: .init(numbersOutOfRange: .infinity)) == .object([("a", .double(.infinity))]))
        // Underflow was never an error: it rounds to zero.
        #expect(try JSON.parse("1e-400") == .double(0))
        // Only the range is looser: the grammar is not.
        for text in ["Infinity", "-Infinity", "1e", "+1"] {
            #expect(throws: JSON.ParseError.self, "\(text)") { try JSON.parse(text, options: .javaScript) }
        }
    }

    @Test func valueCap() throws {
        let three = JSON.ParseOptions(maxValues: 3)
        #expect(try JSON.parse("[1,2]", options: three) == .array([.int(1), .int(2)]))
        #expect(throws: JSON.ParseError(offset: 5, message: "more than 3 values")) { try JSON.parse("[1,2,3]", options: three) }
        let many = "[" + Array(repeating: "0", count: JSON.maxValues).joined(separator: ",") + "]"
        #expect(throws: JSON.ParseError(offset: many.utf8.count - 2, message: "more than 100000 values")) { try JSON.parse(many) }
        #expect(try JSON.parse(many, options: .init(maxValues: .max)).arrayValue?.count == JSON.maxValues)
    }

    /// A cap is not a grammar error: a reader that must not skip a file tells them apart.
    @Test func capsAreToldFromGrammarErrors() {
        func error(_ text: String, _ options: JSON.ParseOptions = .strict) -> JSON.ParseError? {
            do { _ = try JSON.parse(text, options: options); return nil } catch { return error }
        }
        #expect(error("[1,2,3]", .init(maxValues: 3))?.exceedsLimit == true)
        #expect(error("[[1]]", .init(maxDepth: 2))?.exceedsLimit == true)
        #expect(error("[1, 2]", .init(maxBytes: 5))?.exceedsLimit == true)
        for text in ["[1,]", "01", "1e400", #""\x""#, "[1] x", ""] { #expect(error(text)?.exceedsLimit == false, "\(text)") }
    }

    @Test func sizeCap() throws {
        let five = JSON.ParseOptions(maxBytes: 5)
        #expect(try JSON.parse("[1,2]", options: five) == .array([.int(1), .int(2)]))
        #expect(throws: JSON.ParseError(offset: 5, message: "longer than 5 bytes")) { try JSON.parse("[1, 2]", options: five) }
    }

    @Test func depthCap() throws {
        let deep = JSON.ParseOptions(maxDepth: 256)
        #expect(throws: Never.self) { try JSON.parse(nested(256), options: deep) }
        #expect(throws: JSON.ParseError(offset: 256, message: "nested deeper than 256 levels")) { try JSON.parse(nested(257), options: deep) }
        // A scalar counts as a level: 63 arrays hold it at the 64th.
        #expect(throws: Never.self) { try JSON.parse(String(repeating: "[", count: 63) + "1" + String(repeating: "]", count: 63)) }
        #expect(throws: JSON.ParseError.self) { try JSON.parse(String(repeating: "[", count: 64) + "1" + String(repeating: "]", count: 64)) }
    }
}
