import Testing

@testable import CordonPolicy

// MARK: - Helpers

extension TOMLValue {
    fileprivate var asString: String? { if case .string(let v) = kind { v } else { nil } }
    fileprivate var asInteger: Int64? { if case .integer(let v) = kind { v } else { nil } }
    fileprivate var asFloat: Double? { if case .float(let v) = kind { v } else { nil } }
    fileprivate var asBoolean: Bool? { if case .boolean(let v) = kind { v } else { nil } }
    fileprivate var asDateTime: String? { if case .dateTime(let v) = kind { v } else { nil } }
    fileprivate var asArray: [TOMLValue]? { if case .array(let v) = kind { v } else { nil } }
    fileprivate var asTable: TOMLTable? { if case .table(let v) = kind { v } else { nil } }
}

extension TOMLTable {
    /// Follows a path of keys through nested tables.
    fileprivate func lookup(_ path: String...) -> TOMLValue? {
        var table = self
        for (index, key) in path.enumerated() {
            guard let value = table[key] else { return nil }
            if index == path.count - 1 { return value }
            guard let next = value.asTable else { return nil }
            table = next
        }
        return nil
    }
}

@Suite struct TOMLTests {
    private func parse(_ text: String) throws -> TOMLTable {
        try TOML.parse(text)
    }

    /// The error a document produces, or nil when it parses.
    private func parseError(_ text: String) -> TOMLParseError? {
        do {
            _ = try TOML.parse(text)
            return nil
        } catch {
            return error
        }
    }

    private func loc(_ line: Int, _ column: Int) -> TOMLSourceLocation {
        TOMLSourceLocation(line: line, column: column)
    }

    // MARK: - Documents, comments, descriptions

    @Test func emptyDocumentIsEmptyRootTable() throws {
        let root = try parse("")
        #expect(root.isEmpty)
        #expect(root.keys.isEmpty)
        #expect(root.location == loc(1, 1))
        #expect(try parse("# just a comment\n\n   # indented comment\n\t\n").isEmpty)
    }

    @Test func commentsAfterValuesAndHeadersAreIgnored() throws {
        let root = try parse(
            """
            a = 1 # one
            [t] # header comment
            b = "x # not a comment" # comment
            """)
        #expect(root["a"]?.asInteger == 1)
        #expect(root.lookup("t", "b")?.asString == "x # not a comment")
    }

    @Test func descriptionsNameLineAndColumn() {
        #expect(loc(3, 7).description == "line 3, column 7")
        let error = TOMLParseError(location: loc(2, 5), message: "boom")
        #expect(error.description == "line 2, column 5: boom")
    }

    @Test func typeNames() throws {
        let root = try parse(
            """
            s = "x"
            i = 1
            f = 1.5
            b = true
            d = 1979-05-27
            a = []
            t = {}
            """)
        let names = root.keys.compactMap { root[$0]?.typeName }
        #expect(names == ["string", "integer", "float", "boolean", "datetime", "array", "table"])
    }

    // MARK: - Strings

    @Test func basicAndLiteralStrings() throws {
        let root = try parse(
            #"""
            basic = "I'm a string. \"You can quote me\"."
            literal = 'C:\Users\nodejs\templates'
            regex = '<\i\c*\s*>'
            quoted = 'Tom "Dubs" Preston-Werner'
            empty = ""
            unicode = "Jos\u00E9 ✓ 😀"
            tab = "a	b"
            """#)
        #expect(root["basic"]?.asString == #"I'm a string. "You can quote me"."#)
        #expect(root["literal"]?.asString == #"C:\Users\nodejs\templates"#)
        #expect(root["regex"]?.asString == #"<\i\c*\s*>"#)
        #expect(root["quoted"]?.asString == #"Tom "Dubs" Preston-Werner"#)
        #expect(root["empty"]?.asString == "")
        #expect(root["unicode"]?.asString == "José ✓ 😀")
        #expect(root["tab"]?.asString == "a\tb")
    }

    @Test(arguments: [
        (#"\b"#, "\u{08}"), (#"\t"#, "\t"), (#"\n"#, "\n"), (#"\f"#, "\u{0C}"), (#"\r"#, "\r"),
        (#"\""#, "\""), (#"\\"#, "\\"), (#"\u00e9"#, "é"), (#"\u0000"#, "\u{0}"), (#"\U0001F600"#, "😀"),
        (#"\uFFFF"#, "\u{FFFF}"), (#"\U0010FFFF"#, "\u{10FFFF}"),
    ])
    func everyEscape(escape: String, expected: String) throws {
        let root = try parse("s = \"<\(escape)>\"\nm = \"\"\"<\(escape)>\"\"\"")
        #expect(root["s"]?.asString == "<\(expected)>")
        #expect(root["m"]?.asString == "<\(expected)>")
    }

    @Test(arguments: [#"\x41"#, #"\e"#, #"\q"#, #"\ "#, #"\'"#, #"\u12"#, #"\U1234"#, #"\uZZZZ"#])
    func invalidEscapesAreRejected(escape: String) throws {
        let error = try #require(parseError("\n  key = \"ab\(escape)zz\""))
        #expect(error.location == loc(2, 12), "\(error)")
        #expect(error.message.contains("escape"))
    }

    @Test(arguments: [#"\uD800"#, #"\uDFFF"#, #"\U0000DBFF"#, #"\U00110000"#, #"\UFFFFFFFF"#])
    func surrogatesAndOutOfRangeScalarsAreRejected(escape: String) throws {
        let error = try #require(parseError("s = \"\(escape)\""))
        #expect(error.location == loc(1, 6))
        #expect(error.message.contains("not a Unicode scalar value"), "\(error)")
    }

    @Test func multiLineBasicStringTrimsFirstNewline() throws {
        let root = try parse(
            "a = \"\"\"\nRoses are red\n  Violets are blue\"\"\"\nb = \"\"\"one line\"\"\"\nc = \"\"\"\n\"\"\"")
        #expect(root["a"]?.asString == "Roses are red\n  Violets are blue")
        #expect(root["b"]?.asString == "one line")
        #expect(root["c"]?.asString == "")
    }

    @Test func multiLineBasicStringLineEndingBackslash() throws {
        let root = try parse(
            "a = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\   \n    the lazy dog.\"\"\"\nnext = 1")
        #expect(root["a"]?.asString == "The quick brown fox jumps over the lazy dog.")
        #expect(root["next"]?.asInteger == 1)
        #expect(root["next"]?.location == loc(7, 8))
    }

    @Test func multiLineStringsAllowUpToTwoAdjacentQuotes() throws {
        let root = try parse(
            #"""
            a = """Here are two quotation marks: "". Simple enough."""
            b = """Here are three quotation marks: ""\"."""
            c = """"This," she said, "is just a pointless statement.""""
            d = ''''That,' she said, 'is still pointless.''''
            e = '''Here are fifteen quotation marks: """""""""""""""'''
            """# + "\nf = '''\(String(repeating: "\"", count: 15))'''")
        #expect(root["a"]?.asString == #"Here are two quotation marks: "". Simple enough."#)
        #expect(root["b"]?.asString == #"Here are three quotation marks: """."#)
        #expect(root["c"]?.asString == #""This," she said, "is just a pointless statement.""#)
        #expect(root["d"]?.asString == #"'That,' she said, 'is still pointless.'"#)
        #expect(root["e"]?.asString == "Here are fifteen quotation marks: " + String(repeating: "\"", count: 15))
        #expect(root["f"]?.asString == String(repeating: "\"", count: 15))
        #expect(parseError(#"a = """x""""""""#)?.location.line == 1)
    }

    @Test func multiLineLiteralStringKeepsBackslashesAndTrimsFirstNewline() throws {
        let root = try parse("re = '''\nI [dw]on't need \\d{2} apples\n  second line\\\n'''")
        #expect(root["re"]?.asString == "I [dw]on't need \\d{2} apples\n  second line\\\n")
    }

    @Test func crlfInsideMultiLineStringsBecomesLF() throws {
        let root = try parse("a = \"\"\"\r\none\r\ntwo\"\"\"\r\nb = '''\r\nx\r\ny'''\r\n")
        #expect(root["a"]?.asString == "one\ntwo")
        #expect(root["b"]?.asString == "x\ny")
    }

    // MARK: - Integers

    @Test func decimalIntegers() throws {
        let root = try parse(
            """
            a = +99
            b = 42
            c = 0
            d = -17
            e = 1_000
            f = 5_349_221
            g = 1_2_3_4_5
            h = -0
            i = +0
            """)
        let values = root.keys.compactMap { root[$0]?.asInteger }
        #expect(values == [99, 42, 0, -17, 1000, 5_349_221, 12345, 0, 0])
    }

    @Test func hexOctalBinaryIntegers() throws {
        let root = try parse(
            """
            hex1 = 0xDEADBEEF
            hex2 = 0xdeadbeef
            hex3 = 0xdead_beef
            oct1 = 0o01234567
            oct2 = 0o755
            bin1 = 0b11010110
            max = 0x7FFFFFFFFFFFFFFF
            zero = 0x0
            """)
        #expect(root["hex1"]?.asInteger == 0xDEAD_BEEF)
        #expect(root["hex2"]?.asInteger == 0xDEAD_BEEF)
        #expect(root["hex3"]?.asInteger == 0xDEAD_BEEF)
        #expect(root["oct1"]?.asInteger == 0o01234567)
        #expect(root["oct2"]?.asInteger == 0o755)
        #expect(root["bin1"]?.asInteger == 0b11010110)
        #expect(root["max"]?.asInteger == Int64.max)
        #expect(root["zero"]?.asInteger == 0)
    }

    @Test func integerBoundsAndOverflow() throws {
        let root = try parse("max = 9223372036854775807\nmin = -9223372036854775808")
        #expect(root["max"]?.asInteger == Int64.max)
        #expect(root["min"]?.asInteger == Int64.min)
        for text in [
            "9223372036854775808", "-9223372036854775809", "99999999999999999999999", "0x8000000000000000",
            "0o1000000000000000000000", "0b1" + String(repeating: "0", count: 63),
        ] {
            let error = try #require(parseError("\n\nn = \(text)"), "\(text)")
            #expect(error.location == loc(3, 5))
            #expect(error.message.contains("out of range"), "\(error)")
        }
    }

    @Test(arguments: ["01", "00", "-01", "+007", "01.5", "00e1", "0_1"])
    func leadingZerosAreRejected(text: String) throws {
        let error = try #require(parseError("x = 1\ny = \(text)"))
        #expect(error.location == loc(2, 5))
        #expect(error.message.contains("leading zeros"), "\(error)")
    }

    @Test(arguments: ["1__000", "_1", "1_", "0x_1", "0b1_", "0o1__7", "1_.5", "1._5", "1.5_", "1e_5", "1e5_", "1__2.0"])
    func misplacedUnderscoresAreRejected(text: String) throws {
        let error = try #require(parseError("v = \(text)"))
        #expect(error.location.line == 1)
        #expect(error.location.column == 5)
    }

    @Test(arguments: ["+0x1", "-0o7", "0x", "0o8", "0b2", "0X1F", "12abc", "--1", "+", "1.2.3", "1.", ".5", "1e", "1.e5", "+.5"])
    func malformedNumbersAreRejected(text: String) throws {
        let error = try #require(parseError("a = 1\nv = \(text)"))
        #expect(error.location.line == 2)
        #expect(error.location.column == 5)
    }

    // MARK: - Floats, booleans, date-times

    @Test func floats() throws {
        let root = try parse(
            """
            a = +1.0
            b = 3.1415
            c = -0.01
            d = 5e+22
            e = 1e06
            f = -2E-2
            g = 6.626e-34
            h = 224_617.445_991_228
            i = 0.0
            j = -0.0
            k = 1e1_0
            """)
        #expect(root["a"]?.asFloat == 1.0)
        #expect(root["b"]?.asFloat == 3.1415)
        #expect(root["c"]?.asFloat == -0.01)
        #expect(root["d"]?.asFloat == 5e22)
        #expect(root["e"]?.asFloat == 1e6)
        #expect(root["f"]?.asFloat == -2e-2)
        #expect(root["g"]?.asFloat == 6.626e-34)
        #expect(root["h"]?.asFloat == 224_617.445_991_228)
        #expect(root["i"]?.asFloat == 0)
        #expect(root["j"]?.asFloat?.sign == .minus)
        #expect(root["k"]?.asFloat == 1e10)
    }

    @Test func infinityAndNaN() throws {
        let root = try parse("a = inf\nb = +inf\nc = -inf\nd = nan\ne = +nan\nf = -nan")
        #expect(root["a"]?.asFloat == .infinity)
        #expect(root["b"]?.asFloat == .infinity)
        #expect(root["c"]?.asFloat == -.infinity)
        for key in ["d", "e", "f"] { #expect(root[key]?.asFloat?.isNaN == true) }
        #expect(parseError("a = Inf") != nil)
        #expect(parseError("a = NaN") != nil)
        #expect(parseError("a = infinity") != nil)
    }

    @Test func booleans() throws {
        let root = try parse("t = true\nf = false\narr = [true,false]")
        #expect(root["t"]?.asBoolean == true)
        #expect(root["f"]?.asBoolean == false)
        #expect(root["arr"]?.asArray?.compactMap(\.asBoolean) == [true, false])
        for bad in ["True", "FALSE", "tru", "truex", "yes"] {
            let error = try #require(parseError("b = \(bad)"))
            #expect(error.location == loc(1, 5))
            #expect(error.message.contains(bad), "\(error)")
        }
    }

    @Test func dateTimesKeepSourceText() throws {
        let texts = [
            "1979-05-27T07:32:00Z", "1979-05-27T00:32:00-07:00", "1979-05-27T00:32:00.999999+05:30",
            "1979-05-27 07:32:00Z", "1979-05-27t07:32:00z", "1979-05-27T07:32:00", "1979-05-27T00:32:00.999999",
            "1979-05-27", "07:32:00", "00:32:00.999999", "2000-02-29", "1990-12-31T23:59:60Z",
        ]
        let document = texts.enumerated().map { "d\($0.offset) = \($0.element) # comment" }.joined(separator: "\n")
        let root = try parse(document)
        for (index, text) in texts.enumerated() {
            #expect(root["d\(index)"]?.asDateTime == text)
            #expect(root["d\(index)"]?.location == loc(index + 1, 5 + String(index).count))
        }
        let inArray = try parse("a = [1979-05-27 07:32:00Z, 07:32:00]")
        #expect(inArray["a"]?.asArray?.compactMap(\.asDateTime) == ["1979-05-27 07:32:00Z", "07:32:00"])
    }

    @Test(arguments: [
        "1979-13-01", "1979-00-10", "1979-02-29", "1900-02-29", "1979-04-31", "1979-05-27T24:00:00",
        "1979-05-27T23:60:00", "1979-05-27T23:59:61", "07:32", "1979-05-27T07:32", "1979-5-27",
        "1979-05-27T07:32:00+7:00", "1979-05-27T07:32:00+24:00", "1979-05-27T07:32:00.Z", "07:32:00Z",
        "1979-05-27T07:32:00Zx", "1979-05-27T",
    ])
    func invalidDateTimesAreRejected(text: String) throws {
        let error = try #require(parseError("\nd = \(text)"))
        #expect(error.location == loc(2, 5), "\(error)")
        #expect(error.message.contains("date-time"), "\(error)")
    }

    // MARK: - Arrays

    @Test func arraysOfMixedTypesAndNesting() throws {
        let root = try parse(
            """
            integers = [ 1, 2, 3 ]
            nested = [ [ 1, 2 ], ["a", 'b', "c"] ]
            mixed = [ 0.1, 0.2, 1, "x", { k = 1 } ]
            empty = []
            """)
        #expect(root["integers"]?.asArray?.compactMap(\.asInteger) == [1, 2, 3])
        let nested = try #require(root["nested"]?.asArray)
        #expect(nested.count == 2)
        #expect(nested[1].asArray?.compactMap(\.asString) == ["a", "b", "c"])
        let mixed = try #require(root["mixed"]?.asArray)
        #expect(mixed.map(\.typeName) == ["float", "float", "integer", "string", "table"])
        #expect(mixed[4].asTable?["k"]?.asInteger == 1)
        #expect(root["empty"]?.asArray?.isEmpty == true)
    }

    @Test func multiLineArraysWithCommentsAndTrailingComma() throws {
        let root = try parse(
            """
            a = [ # opening comment
              1,
              # a whole-line comment

              2, # trailing comment
              3,
            ]
            after = true
            """)
        let items = try #require(root["a"]?.asArray)
        #expect(items.compactMap(\.asInteger) == [1, 2, 3])
        #expect(items.map(\.location) == [loc(2, 3), loc(5, 3), loc(6, 3)])
        #expect(root["after"]?.location == loc(8, 9))
    }

    @Test func arraySyntaxErrors() throws {
        let missingComma = try #require(parseError("a = [1 2]"))
        #expect(missingComma.location == loc(1, 8))
        #expect(missingComma.message.contains("expected ',' or ']'"))

        let doubleComma = try #require(parseError("a = [1,,2]"))
        #expect(doubleComma.location == loc(1, 8))
        #expect(doubleComma.message.contains("missing value"))

        let unterminated = try #require(parseError("a = [\n  1,\n  2,\n"))
        #expect(unterminated.location.line == 4)
        #expect(unterminated.message.contains("unterminated array (opened at line 1, column 5)"))
    }

    // MARK: - Inline tables

    @Test func inlineTables() throws {
        let root = try parse(
            #"""
            name = { first = "Tom", last = "Preston-Werner" }
            point = {x=1,y=2}
            animal = { type.name = "pug", type.size = "small" }
            nested = { a = { b = { c = [1] } } }
            empty = {}
            """#)
        #expect(root.lookup("name", "first")?.asString == "Tom")
        #expect(root.lookup("name")?.asTable?.keys == ["first", "last"])
        #expect(root.lookup("point", "y")?.asInteger == 2)
        #expect(root.lookup("animal", "type", "name")?.asString == "pug")
        #expect(root.lookup("animal", "type")?.asTable?.keys == ["name", "size"])
        #expect(root.lookup("nested", "a", "b", "c")?.asArray?.first?.asInteger == 1)
        #expect(root.lookup("empty")?.asTable?.isEmpty == true)
        #expect(root["point"]?.location == loc(2, 9))
    }

    @Test func inlineTableSyntaxErrors() throws {
        let trailingComma = try #require(parseError("t = { a = 1, }"))
        #expect(trailingComma.location == loc(1, 14))
        #expect(trailingComma.message.contains("trailing comma"))

        let newline = try #require(parseError("t = { a = 1,\n b = 2 }"))
        #expect(newline.location == loc(1, 13))
        #expect(newline.message.contains("single line"))

        let duplicate = try #require(parseError("t = { a = 1, a = 2 }"))
        #expect(duplicate.location == loc(1, 14))
        #expect(duplicate.message == "duplicate key 'a' (first defined at line 1)")

        let missingComma = try #require(parseError("t = { a = 1 b = 2 }"))
        #expect(missingComma.location == loc(1, 13))
    }

    @Test func inlineTablesCannotBeExtended() throws {
        let byDottedKey = try #require(parseError("[product]\ntype = { name = \"Nail\" }\ntype.edible = false"))
        #expect(byDottedKey.location == loc(3, 1))
        #expect(byDottedKey.message.contains("cannot extend inline table 'type'"), "\(byDottedKey)")

        let byHeader = try #require(parseError("[product]\ntype.name = \"Nail\"\n\n[product.type.x]\ny = 1\n[a]\nb = {}\n[a.b]"))
        #expect(byHeader.location == loc(8, 4))  // [product.type.x] is fine: product.type came from dotted keys
        #expect(byHeader.message.contains("cannot extend inline table 'a.b'"), "\(byHeader)")

        let byHeaderInline = try #require(parseError("a = { x = 1 }\n[a]"))
        #expect(byHeaderInline.location == loc(2, 2))
        #expect(byHeaderInline.message.contains("cannot extend inline table 'a'"))

        let bySubHeader = try #require(parseError("a = { x = 1 }\n[a.b]"))
        #expect(bySubHeader.location == loc(2, 2))
        #expect(bySubHeader.message.contains("inline table"))

        let withinInline = try #require(parseError("t = { x = { y = 1 }, x.z = 2 }"))
        #expect(withinInline.location == loc(1, 22))
    }

    // MARK: - Keys and tables

    @Test func bareQuotedAndDottedKeys() throws {
        let root = try parse(
            #"""
            key = 1
            bare_key = 2
            bare-key = 3
            1234 = 4
            "127.0.0.1" = 5
            "character encoding" = 6
            'quoted "value"' = 7
            "" = 8
            physical.color = "orange"
            site."google.com" = true
            fruit . flavor = "banana"
            3.14159 = "pi"
            "a\tb" = 9
            """#)
        #expect(root.keys == [
            "key", "bare_key", "bare-key", "1234", "127.0.0.1", "character encoding", "quoted \"value\"", "",
            "physical", "site", "fruit", "3", "a\tb",
        ])
        #expect(root[""]?.asInteger == 8)
        #expect(root.lookup("physical", "color")?.asString == "orange")
        #expect(root.lookup("site", "google.com")?.asBoolean == true)
        #expect(root.lookup("fruit", "flavor")?.asString == "banana")
        #expect(root.lookup("3", "14159")?.asString == "pi")
        #expect(root["a\tb"]?.asInteger == 9)
    }

    @Test func tableHeadersBuildNestedTables() throws {
        let root = try parse(
            """
            top = 0
            [a.b."c d"]
            x = 1
            [ d . 'e' ]
            y = 2
            [a]
            z = 3
            [a.b]
            w = 4
            """)
        #expect(root.keys == ["top", "a", "d"])
        #expect(root.lookup("a", "b", "c d", "x")?.asInteger == 1)
        #expect(root.lookup("d", "e", "y")?.asInteger == 2)
        #expect(root.lookup("a")?.asTable?.keys == ["b", "z"])
        #expect(root.lookup("a", "b")?.asTable?.keys == ["c d", "w"])
        #expect(root.lookup("a", "b", "w")?.asInteger == 4)
    }

    @Test func dottedKeysInsideSectionsAndSubTablesOfDottedTables() throws {
        let root = try parse(
            """
            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]
            smooth = true
            """)
        #expect(root.lookup("fruit", "apple", "color")?.asString == "red")
        #expect(root.lookup("fruit", "apple", "taste", "sweet")?.asBoolean == true)
        #expect(root.lookup("fruit", "apple", "texture", "smooth")?.asBoolean == true)
        #expect(root.lookup("fruit", "apple")?.asTable?.keys == ["color", "taste", "texture"])
    }

    @Test func arraysOfTables() throws {
        let root = try parse(
            """
            [[fruits]]
            name = "apple"

            [fruits.physical]
            color = "red"

            [[fruits.varieties]]
            name = "red delicious"

            [[fruits.varieties]]
            name = "granny smith"

            [[fruits]]
            name = "banana"

            [[fruits.varieties]]
            name = "plantain"

            [[empty]]
            [[empty]]
            """)
        let fruits = try #require(root["fruits"]?.asArray)
        #expect(fruits.count == 2)
        #expect(root["fruits"]?.location == loc(1, 1))
        #expect(fruits.map(\.location) == [loc(1, 1), loc(13, 1)])
        let apple = try #require(fruits[0].asTable)
        #expect(apple.keys == ["name", "physical", "varieties"])
        #expect(apple.lookup("physical", "color")?.asString == "red")
        #expect(apple["varieties"]?.asArray?.compactMap { $0.asTable?["name"]?.asString } == ["red delicious", "granny smith"])
        let banana = try #require(fruits[1].asTable)
        #expect(banana["varieties"]?.asArray?.compactMap { $0.asTable?["name"]?.asString } == ["plantain"])
        #expect(root["empty"]?.asArray?.map { $0.asTable?.isEmpty } == [true, true])
    }

    @Test func implicitSuperTableMayBeDefinedLater() throws {
        let root = try parse("[x.y.z.w]\na = 1\n[x]\nb = 2\n[[p.q]]\nc = 3\n[p]\nd = 4")
        #expect(root.lookup("x")?.asTable?.keys == ["y", "b"])
        #expect(root.lookup("x", "y", "z", "w", "a")?.asInteger == 1)
        #expect(root.lookup("p", "d")?.asInteger == 4)
        #expect(root.lookup("p", "q")?.asArray?.count == 1)
    }

    @Test func keyOrderIsInsertionOrder() throws {
        let root = try parse(
            """
            zebra = 1
            apple = 2
            mango.b = 3
            mango.a = 4
            [middle]
            [aardvark]
            z = 1
            y = 2
            x = 3
            """)
        #expect(root.keys == ["zebra", "apple", "mango", "middle", "aardvark"])
        #expect(root.lookup("mango")?.asTable?.keys == ["b", "a"])
        #expect(root.lookup("aardvark")?.asTable?.keys == ["z", "y", "x"])
    }

    // MARK: - Locations

    @Test func valueLocations() throws {
        let root = try parse(
            """
            # comment
            name   = "cordon"
              [limits]
              pids = 128
            paths = [
                "/usr",   "/lib"
            ]
            t = { k = 'v' }
            """)
        #expect(root["name"]?.location == loc(2, 10))
        #expect(root.lookup("limits", "pids")?.location == loc(4, 10))
        #expect(root.lookup("limits", "paths")?.location == loc(5, 9))
        let paths = try #require(root.lookup("limits", "paths")?.asArray)
        #expect(paths.map(\.location) == [loc(6, 5), loc(6, 15)])
        #expect(root.lookup("limits", "t")?.location == loc(8, 5))
        #expect(root.lookup("limits", "t", "k")?.location == loc(8, 11))
    }

    @Test func keyLocations() throws {
        let root = try parse(
            """
            alpha = 1
               "quoted key" = 2
            [server.http]
            port = 8080
            [[jobs]]
            a.b.c = 1
            """)
        #expect(root.keyLocation("alpha") == loc(1, 1))
        #expect(root.keyLocation("quoted key") == loc(2, 4))
        #expect(root.keyLocation("server") == loc(3, 2))
        #expect(root.lookup("server")?.asTable?.keyLocation("http") == loc(3, 9))
        #expect(root.lookup("server", "http")?.asTable?.keyLocation("port") == loc(4, 1))
        #expect(root.keyLocation("jobs") == loc(5, 3))
        let job = try #require(root["jobs"]?.asArray?.first?.asTable)
        #expect(job.keyLocation("a") == loc(6, 1))
        #expect(job.lookup("a")?.asTable?.keyLocation("b") == loc(6, 3))
        #expect(job.lookup("a", "b")?.asTable?.keyLocation("c") == loc(6, 5))
        #expect(root.keyLocation("missing") == nil)
    }

    @Test func tableLocations() throws {
        let root = try parse("x = 1\n  [a.b]\n[c]\nd.e = 1\n")
        #expect(root.location == loc(1, 1))
        #expect(root["a"]?.location == loc(2, 3))
        #expect(root.lookup("a", "b")?.location == loc(2, 3))
        #expect(root.lookup("a", "b")?.asTable?.location == loc(2, 3))
        #expect(root["c"]?.location == loc(3, 1))
        #expect(root.lookup("c", "d")?.location == loc(4, 1))
    }

    @Test func columnsCountUnicodeScalarsNotBytes() throws {
        let root = try parse("\"ключ\" = \"значение\" \nemoji = [\"😀😀\", 1]")
        #expect(root["ключ"]?.location == loc(1, 10))
        #expect(root["emoji"]?.asArray?.last?.location == loc(2, 16))
        let error = try #require(parseError("s = \"é😀\u{01}\""))
        #expect(error.location == loc(1, 8))
    }

    // MARK: - Structural errors

    @Test func duplicateKeys() throws {
        let plain = try #require(parseError("name = \"Tom\"\n\nname = \"Pradyun\""))
        #expect(plain.location == loc(3, 1))
        #expect(plain.message == "duplicate key 'name' (first defined at line 1)")

        let quoted = try #require(parseError("spelling = \"favorite\"\n\"spelling\" = \"favourite\""))
        #expect(quoted.location == loc(2, 1))
        #expect(quoted.message == "duplicate key 'spelling' (first defined at line 1)")

        let dotted = try #require(parseError("[t]\na.b = 1\na.c = 2\n a.b = 3"))
        #expect(dotted.location == loc(4, 4))
        #expect(dotted.message == "duplicate key 'a.b' (first defined at line 2)")

        let tableThenValue = try #require(parseError("a.b = 1\na = 2"))
        #expect(tableThenValue.location == loc(2, 1))
        #expect(tableThenValue.message == "duplicate key 'a' (first defined at line 1)")

        let valueThenTable = try #require(parseError("fruit.apple = 1\nfruit.apple.smooth = true"))
        #expect(valueThenTable.location == loc(2, 7))
        #expect(valueThenTable.message.contains("already defined as an integer at line 1"))
    }

    @Test func redefiningTables() throws {
        let twice = try #require(parseError("[fruit]\napple = \"red\"\n\n[fruit]\norange = \"orange\""))
        #expect(twice.location == loc(4, 2))
        #expect(twice.message == "table [fruit] is defined more than once (first defined at line 1)")

        let valueAsTable = try #require(parseError("[fruit]\napple = \"red\"\n[fruit.apple]"))
        #expect(valueAsTable.location == loc(3, 8))
        #expect(valueAsTable.message.contains("'fruit.apple' is already defined as a string at line 2"))

        let superTwice = try #require(parseError("[a.b]\n[a]\n[a]"))
        #expect(superTwice.location == loc(3, 2))
        #expect(superTwice.message.contains("first defined at line 2"))
    }

    @Test func tablesDefinedByDottedKeysCannotBeReopenedByHeaders() throws {
        let error = try #require(parseError("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n\n[fruit.apple]"))
        #expect(error.location == loc(5, 8))
        #expect(error.message.contains("already defined by dotted keys at line 2"), "\(error)")

        let deeper = try #require(parseError("[fruit]\napple.taste.sweet = true\n[fruit.apple.taste]"))
        #expect(deeper.location == loc(3, 14))

        // A sub-table of a dotted-key table may be opened by a header.
        #expect(parseError("[fruit]\napple.color = \"red\"\n[fruit.apple.texture]\nsmooth = true") == nil)
    }

    @Test func dottedKeysCannotAddToHeaderTables() throws {
        let explicit = try #require(parseError("[a.b]\nz = 1\n[a]\nb.c = 2"))
        #expect(explicit.location == loc(4, 1))
        #expect(explicit.message.contains("defined by the table header at line 1"), "\(explicit)")

        let throughImplicit = try #require(parseError("[a.b.c]\nz = 9\n[a]\nb.c.t = 1"))
        #expect(throughImplicit.location == loc(4, 1))
    }

    @Test func arraysOfTablesConflicts() throws {
        let staticArray = try #require(parseError("fruits = []\n\n[[fruits]]"))
        #expect(staticArray.location == loc(3, 3))
        #expect(staticArray.message == "cannot append to static array 'fruits' with [[fruits]] (array defined at line 1)")

        let staticArrayOfInline = try #require(parseError("a = [{ b = 1 }]\n[[a]]"))
        #expect(staticArrayOfInline.location == loc(2, 3))
        #expect(staticArrayOfInline.message.contains("static array"))

        let tableThenArray = try #require(parseError("[fruit.physical]\ncolor = \"red\"\n[[fruit]]"))
        #expect(tableThenArray.location == loc(3, 3))
        #expect(tableThenArray.message.contains("already a table"))

        let arrayThenTable = try #require(parseError("[[fruits]]\nname = \"apple\"\n[[fruits.varieties]]\n[fruits.varieties]"))
        #expect(arrayThenTable.location == loc(4, 9))
        #expect(arrayThenTable.message.contains("is an array of tables (defined at line 3)"))

        let dottedIntoArray = try #require(parseError("[[a.b]]\n[a]\nb.y = 2"))
        #expect(dottedIntoArray.location == loc(3, 1))
    }

    // MARK: - Lexical errors

    @Test func invalidCharacters() throws {
        let atKey = try #require(parseError("a = 1\n  @user = 2"))
        #expect(atKey.location == loc(2, 3))
        #expect(atKey.message.contains("invalid character '@'"))

        let nonASCIIKey = try #require(parseError("é = 1"))
        #expect(nonASCIIKey.location == loc(1, 1))
        #expect(nonASCIIKey.message.contains("U+00E9"))

        let unquotedValue = try #require(parseError("mode = none"))
        #expect(unquotedValue.location == loc(1, 8))
        #expect(unquotedValue.message.contains("strings must be quoted"))

        let nul = try #require(parseError("a = 1\n\u{0}"))
        #expect(nul.location == loc(2, 1))
        #expect(nul.message.contains("control character U+0000"))

        let afterValue = try #require(parseError("a = 1 b = 2"))
        #expect(afterValue.location == loc(1, 7))

        let afterHeader = try #require(parseError("[a] b = 2"))
        #expect(afterHeader.location == loc(1, 5))

        let badHeaders: [(String, TOMLSourceLocation)] = [
            ("[]", loc(1, 2)), ("[a.]", loc(1, 4)), ("[a..b]", loc(1, 4)), ("[a", loc(1, 3)), ("[[a]", loc(1, 4)),
            ("[[a] ]", loc(1, 4)), ("[\"\"\"a\"\"\"]", loc(1, 2)),
        ]
        for (text, location) in badHeaders {
            #expect(parseError(text)?.location == location, "\(text)")
        }
    }

    @Test func unterminatedStrings() throws {
        let basic = try #require(parseError("a = 1\nb = \"open"))
        #expect(basic.location == loc(2, 5))
        #expect(basic.message.contains("unterminated string"))

        let literal = try #require(parseError("b = 'open"))
        #expect(literal.location == loc(1, 5))
        #expect(literal.message.contains("unterminated literal string"))

        let multiLine = try #require(parseError("x = 1\nb = \"\"\"\nline\nline\n"))
        #expect(multiLine.location == loc(2, 5))
        #expect(multiLine.message.contains("unterminated multi-line string"))

        let multiLineLiteral = try #require(parseError("b = '''\nline"))
        #expect(multiLineLiteral.location == loc(1, 5))

        let inEscape = try #require(parseError("b = \"abc\\"))
        #expect(inEscape.location.line == 1)
    }

    @Test func newlineInSingleLineString() throws {
        let basic = try #require(parseError("a = \"first\nsecond\""))
        #expect(basic.location == loc(1, 11))
        #expect(basic.message.contains("newline in a single-line string"))

        let literal = try #require(parseError("a = 'first\r\nsecond'"))
        #expect(literal.location == loc(1, 11))
        #expect(literal.message.contains("newline"))

        let key = try #require(parseError("\"a\nb\" = 1"))
        #expect(key.location == loc(1, 3))
    }

    @Test func missingEquals() throws {
        let eol = try #require(parseError("[t]\nkey\n"))
        #expect(eol.location == loc(2, 4))
        #expect(eol.message == "expected '=' after key 'key'")

        let other = try #require(parseError("key : 1"))
        #expect(other.location == loc(1, 5))
        #expect(other.message.contains("expected '=' after key 'key'"))

        let spacedKey = try #require(parseError("first name = 1"))
        #expect(spacedKey.location == loc(1, 7))
    }

    @Test func missingValue() throws {
        for (text, location) in [
            ("a =", loc(1, 4)), ("a =   \nb = 1", loc(1, 7)), ("a = # nothing", loc(1, 5)), ("\n\na = ,", loc(3, 5)),
        ] {
            let error = try #require(parseError(text), "\(text)")
            #expect(error.location == location, "\(text)")
            #expect(error.message.contains("missing value"), "\(error)")
        }
    }

    @Test func controlCharactersInStringsAndComments() throws {
        let cases: [(String, TOMLSourceLocation)] = [
            ("a = \"x\u{01}y\"", loc(1, 7)),
            ("a = 'x\u{7F}y'", loc(1, 7)),
            ("a = \"\"\"\nx\u{1B}\"\"\"", loc(2, 2)),
            ("a = '''\u{08}'''", loc(1, 8)),
            ("a = 1 # bell \u{07}", loc(1, 14)),
        ]
        for (text, location) in cases {
            let error = try #require(parseError(text), "\(text)")
            #expect(error.location == location, "\(text)")
            #expect(error.message.contains("control character"), "\(error)")
        }
    }

    @Test func bareCarriageReturnIsRejected() throws {
        let cases: [(String, TOMLSourceLocation)] = [
            ("a = 1\rb = 2", loc(1, 6)),
            ("a = 1\n# comment\r", loc(2, 10)),
            ("a = \"\"\"x\ry\"\"\"", loc(1, 9)),
            ("a = [1,\r2]", loc(1, 8)),
        ]
        for (text, location) in cases {
            let error = try #require(parseError(text), "\(text)")
            #expect(error.location == location, "\(text)")
            #expect(error.message.contains("bare carriage return"), "\(error)")
        }
    }

    @Test func crlfLineEndingsCountLines() throws {
        let root = try parse("a = 1\r\n\r\n[t]\r\nb = [\r\n  2,\r\n]\r\n")
        #expect(root["a"]?.asInteger == 1)
        #expect(root.lookup("t", "b")?.asArray?.first?.location == loc(5, 3))
        let error = try #require(parseError("a = 1\r\nb = 2\r\nb = 3\r\n"))
        #expect(error.location == loc(3, 1))
    }

    @Test func leadingByteOrderMarkIsAllowed() throws {
        let root = try parse("\u{FEFF}a = 1\nb = 2")
        #expect(root["a"]?.asInteger == 1)
        #expect(root.keyLocation("a") == loc(1, 1))
        #expect(root["a"]?.location == loc(1, 5))
        let error = try #require(parseError("\u{FEFF}a = 01"))
        #expect(error.location == loc(1, 5))
        // Only a leading BOM is allowed.
        #expect(parseError("a = 1\n\u{FEFF}b = 2")?.location == loc(2, 1))
    }

    // MARK: - Limits and robustness

    @Test func nestingDepthIsCapped() throws {
        let ok = "a = " + String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(parseError(ok) == nil)

        let tooDeep = "a = " + String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        let error = try #require(parseError(tooDeep))
        #expect(error.location == loc(1, 133))
        #expect(error.message.contains("nested more than 128 levels"))

        let inline = "a = " + String(repeating: "{b=", count: 200) + "1" + String(repeating: "}", count: 200)
        #expect(parseError(inline)?.message.contains("nested more than 128 levels") == true)

        // Unbalanced, very deep input must fail quickly, not exhaust the stack.
        #expect(parseError("a = " + String(repeating: "[", count: 100_000)) != nil)
        #expect(parseError("a = " + String(repeating: "[{x=", count: 50_000)) != nil)
    }

    @Test func keyAndHeaderDepthIsCapped() throws {
        let longHeader = "[" + Array(repeating: "a", count: 500).joined(separator: ".") + "]"
        #expect(parseError(longHeader)?.message.contains("more than 128") == true)
        let longKey = Array(repeating: "k", count: 500).joined(separator: ".") + " = 1"
        #expect(parseError(longKey)?.message.contains("more than 128") == true)
        let headerThenDotted = "[" + Array(repeating: "a", count: 100).joined(separator: ".") + "]\n"
            + Array(repeating: "b", count: 100).joined(separator: ".") + " = 1"
        #expect(parseError(headerThenDotted)?.location.line == 2)
    }

    @Test func arbitraryInputNeverCrashes() {
        // Truncations of a document that exercises most of the grammar: each
        // prefix either parses or throws, and never traps.
        let document = #"""
            a = "x\u00e9\n" # c
            b = [1, 2.5e3, 'l', """m
            l""", 1979-05-27T07:32:00Z, { k = 0x1F, j.k = -inf }]
            [[t."q k"]]
            c = '''r'''
            """#
        let bytes = Array(document.utf8)
        for end in 0...bytes.count {
            _ = parseError(String(decoding: bytes[0..<end], as: UTF8.self))
        }
        for junk in ["\u{0}", "[[[", "]]]", "{{{", "\"\"\"\"\"\"\"", "\\u", "===", "...", "\u{FEFF}\u{FEFF}", "\r\r\n"] {
            _ = parseError(junk)
        }
    }

    @Test func parsingIsDeterministicAndEquatable() throws {
        let text = "a = 1\n[b]\nc = [1, { d = 'e' }]\n[[f]]\ng = 1979-05-27"
        #expect(try parse(text) == parse(text))
        #expect(try parse("a = 1") != parse("a =  1"))  // locations differ
    }

    // MARK: - Realistic policy

    @Test func realisticPolicyDocument() throws {
        let root = try parse(
            """
            [policy]
            name = "default"
            description = "Deny-all network"
            [filesystem]
            read_only = ["/usr", "/lib"]
            tmpfs = [{ path = "/tmp", size = "64M" }]
            [limits]
            memory = "512M"
            pids = 128
            """)
        #expect(root.keys == ["policy", "filesystem", "limits"])
        #expect(root.lookup("policy", "name")?.asString == "default")
        #expect(root.lookup("policy", "description")?.asString == "Deny-all network")
        #expect(root.lookup("filesystem", "read_only")?.asArray?.compactMap(\.asString) == ["/usr", "/lib"])
        let tmpfs = try #require(root.lookup("filesystem", "tmpfs")?.asArray)
        #expect(tmpfs.count == 1)
        let mount = try #require(tmpfs.first?.asTable)
        #expect(mount.keys == ["path", "size"])
        #expect(mount["path"]?.asString == "/tmp")
        #expect(mount["size"]?.asString == "64M")
        #expect(mount.location == loc(6, 10))
        #expect(mount.keyLocation("size") == loc(6, 27))
        #expect(root.lookup("limits", "memory")?.asString == "512M")
        #expect(root.lookup("limits", "pids")?.asInteger == 128)
        #expect(root.lookup("limits", "pids")?.location == loc(9, 8))
        #expect(root.lookup("limits")?.asTable?.keyLocation("pids") == loc(9, 1))
        #expect(root["limits"]?.location == loc(7, 1))
        #expect(root.lookup("filesystem", "read_only")?.asArray?.last?.location == loc(5, 22))
    }

    @Test func hundredLinePolicyParsesQuickly() throws {
        var lines = ["[policy]", "name = \"build\"", "description = \"Deny-all network\""]
        for index in 0..<16 {
            lines += [
                "[[mount]]", "source = \"/data/src\(index)\"", "target = '/mnt/t\(index)'",
                "options = [\"nosuid\", \"nodev\"] # opts", "read_only = true",
            ]
        }
        lines += ["[limits]", "memory = \"512M\"", "pids = 128", "cpu = 1.5"]
        while lines.count < 100 { lines.append("# padding \(lines.count)") }
        let text = lines.joined(separator: "\n")
        let root = try parse(text)
        #expect(root["mount"]?.asArray?.count == 16)

        let clock = ContinuousClock()
        let iterations = 50
        let elapsed = try clock.measure {
            for _ in 0..<iterations { _ = try TOML.parse(text) }
        }
        // Release builds take tens of microseconds; this bound is loose enough for debug builds on a busy machine.
        #expect(elapsed / iterations < .milliseconds(20), "average \(elapsed / iterations) per parse")
    }
}
