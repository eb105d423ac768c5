import CordonJSON
import Testing

struct CompactWriterTests {
    /// The daemon protocol's bytes: one line, every control character escaped, and U+2028/2029
    /// too (JavaScript before ES2019 reads them as line ends); "/" and non-ASCII as they are.
    @Test func strings() {
        let s = "\"\\/\u{8}\u{C}\n\r\t\u{0}\u{1F}\u{7F}\u{2028}\u{2029}é😀"
        #expect(JSON.string(s).text == #""\"\\/\u0008\u000c\n\r\t\u0000\u001f\u007f\u2028\u2029é😀""#)
    }

    /// Escapes between runs of plain text, at either end, and a lone E2 lead byte of another
    /// character (U+2026) that is not U+2028/2029.
    @Test func escapesAmongPlainText() {
        #expect(JSON.string("ab\"cd\u{2028}").text == #""ab\"cd\u2028""#)
        #expect(JSON.string("\nabc…\u{2029}x").text == #""\nabc…\u2029x""#)
        #expect(JSON.object([("k\"", .string("plain"))]).text == #"{"k\"":"plain"}"#)
        #expect(JSON.string("…\u{2027}").text == "\"…\u{2027}\"")
    }

    @Test(arguments: [
        (JSON.int(.min), "-9223372036854775808"), (.int(.max), "9223372036854775807"), (.uint(.max), "18446744073709551615"),
        (.double(1), "1"), (.double(-0.0), "0"), (.double(0.5), "0.5"), (.double(100_000_000_000_000), "100000000000000"),
        (.double(1e15), "1000000000000000.0"), (.double(1e16), "1e+16"), (.double(1e-7), "1e-07"), (.double(123.456), "123.456"), (.double(.leastNonzeroMagnitude), "5e-324"),
        (.double(.nan), "null"), (.double(.infinity), "null"), (.double(-.infinity), "null"),
    ])
    func numbers(_ c: (JSON, String)) {
        #expect(c.0.text == c.1)
    }

    @Test func containersKeepOrderAndRepeats() {
        let value = JSON.object([("b", .array([.null, .bool(true), .bool(false)])), ("a", .object([])), ("b", .array([]))])
        #expect(value.text == #"{"b":[null,true,false],"a":{},"b":[]}"#)
        #expect(value.text(.compact) == value.text)
        #expect(value.text(JSON.Format(sortedKeys: true)) == #"{"a":{},"b":[null,true,false],"b":[]}"#)
    }
}

struct IndentedWriterTests {
    static let document = JSON.object([
        ("type", .string("object")),
        ("properties", .object([("b", .object([])), ("a", .array([.int(1), .string("x")]))])),
        ("required", .array([.string("a"), .array([])])),
        ("empty", .array([])),
        ("min", .double(0.001)),
    ])

    /// PolicySchema's layout (`cordon policy schema`): sorted keys, every array opened.
    @Test func schemaLayout() {
        #expect(Self.document.text(JSON.Format(indent: "  ", sortedKeys: true)) == """
        {
          "empty": [],
          "min": 0.001,
          "properties": {
            "a": [
              1,
              "x"
            ],
            "b": {}
          },
          "required": [
            "a",
            []
          ],
          "type": "object"
        }
        """)
    }

    /// SeccompProfile.restricted's layout (`cordon run --learn`): arrays of scalars on one line.
    @Test func seccompLayout() {
        #expect(Self.document.text(JSON.Format(indent: "  ", sortedKeys: true, scalarArraysOnOneLine: true)) == """
        {
          "empty": [],
          "min": 0.001,
          "properties": {
            "a": [1, "x"],
            "b": {}
          },
          "required": [
            "a",
            []
          ],
          "type": "object"
        }
        """)
    }

    @Test func storedOrderAndOtherIndents() throws {
        let text = Self.document.text(JSON.Format(indent: "\t"))
        #expect(text.hasPrefix("{\n\t\"type\": \"object\",\n\t\"properties\": {\n\t\t\"b\": {},"))
        #expect(try JSON.parse(text) == Self.document)
        #expect(JSON.string("x").text(JSON.Format(indent: "  ")) == #""x""#)
    }
}
