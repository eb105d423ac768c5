import CordonJSON
import Testing

@testable import CordonSchema

/// What the official suite does not pin down: the sentences, the exact numbers, Unicode, and
/// the refusals.
@Suite struct KeywordTests {
    static let tool = ##"""
    {"type": "object",
     "properties": {
       "path": {"type": "string", "minLength": 1},
       "count": {"type": "integer", "minimum": 0, "maximum": 10},
       "mode": {"enum": ["read", "write"]},
       "items": {"type": "array", "maxItems": 3, "items": {
         "type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
         "required": ["name"], "additionalProperties": false}}},
     "required": ["path"],
     "additionalProperties": false}
    """##

    /// A property whose name starts with a combining mark: its place is a pointer the instance
    /// has, and a $ref through such a name resolves (found by the schema fuzz target: "/" and
    /// the mark made one character, and the pointer read as malformed).
    @Test func placesAndReferencesThroughNamesStartingWithACombiningMark() throws {
        #expect(URIReference.pointerTokens("/\u{20E9}roperties/~1x") == ["\u{20E9}roperties", "/x"])
        let s = try schema(##"""
            {"patternProperties": {"^\u00e1": {}}, "additionalProperties": false,
             "properties": {"r": {"$ref": "#/$defs/\u20e9n"}}, "$defs": {"\u20e9n": {"type": "integer"}}}
            """##)
        let result = s.validate(try json(##"{"\u20e9roperties": 1, "r": "x"}"##))
        #expect(result.violations.map(\.instanceLocation) == ["/\u{20E9}roperties", "/r"], "\(result.description)")
        #expect(result.violations.map(\.keyword) == ["additionalProperties", "type"])
    }

    @Test func everyViolationNamesItsPlaceKeywordAndWhatIsWrong() throws {
        let s = try schema(Self.tool)
        let result = s.validate(try json(##"""
            {"count": 12, "mode": "delete", "items": [{"name": "ok"}, {"name": "Bad1"}, {"nom": "x"}, {}], "extra": true}
            """##))
        #expect(result.description == ##"""
            (root): the required property "path" is missing
            /count: 12 is greater than the maximum 10
            /mode: the string "delete" is not one of the allowed values: "read", "write"
            /items: the array has 4 items, more than the maximum 3
            /items/1/name: "Bad1" does not match the pattern ^[a-z]+$
            /items/2: the required property "name" is missing
            /items/2/nom: the property "nom" is not allowed; allowed: "name"
            /items/3: the required property "name" is missing
            /extra: the property "extra" is not allowed; allowed: "path", "count", "mode", "items"
            """##)
        #expect(result.violations.map(\.keyword) == ["required", "maximum", "enum", "maxItems", "pattern", "required",
                                                     "additionalProperties", "required", "additionalProperties"])
        #expect(result.violations[1].schemaLocation == "/properties/count/maximum")
        #expect(result.violations[4].schemaLocation == "/properties/items/items/properties/name/pattern")
        #expect(result.violations[6].schemaLocation == "/properties/items/items/additionalProperties")
        #expect(!result.truncated)
        #expect(s.validate(try json(##"{"path": "/tmp/a", "count": 10, "items": [{"name": "x"}]}"##)).isValid)
    }

    @Test func pointersEscapeTildeAndSlash() throws {
        let s = try schema(##"{"additionalProperties": {"type": "integer"}}"##)
        let v = try #require(s.validate(try json(##"{"a/b~c": "x"}"##)).violations.first)
        #expect(v.instanceLocation == "/a~1b~0c")
        #expect(v.description == ##"/a~1b~0c: expected integer, got the string "x""##)
        // A key cannot forge a second line in a message.
        let forged = try #require(s.validate(.object([("x\nERROR: all good", .string("x"))])).violations.first)
        #expect(!forged.description.contains("\n"))
        #expect(forged.description.hasPrefix("/x\\u000aERROR: all good: "))
    }

    @Test func combinatorsExplainTheirAlternatives() throws {
        let s = try schema(##"{"properties": {"id": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]}, "kind": {"oneOf": [{"type": "number"}, {"type": "integer"}]}}}"##)
        let result = s.validate(try json(##"{"id": 0, "kind": 3}"##))
        #expect(result.description == """
            /id: matches none of the 2 schemas in anyOf — (0) /id: expected string, got 0; (1) /id: 0 is less than the minimum 1
            /kind: matches more than one schema in oneOf (numbers 0 and 1, counting from 0); it must match exactly one
            """)
        let not = try schema(##"{"not": {"type": "null"}}"##)
        #expect(not.validate(.null).description == "(root): matches the schema in not, which it must not")
        let names = try schema(##"{"propertyNames": {"pattern": "^[a-z_]+$", "maxLength": 8}}"##)
        #expect(names.validate(try json(##"{"ok": 1, "Not-OK": 2}"##)).description
                == ##"(root): the property name "Not-OK" is not allowed: "Not-OK" does not match the pattern ^[a-z_]+$"##)
    }

    // MARK: Numbers

    @Test func integersAreNumbersWithoutAFraction() throws {
        let s = try schema(##"{"type": "integer"}"##)
        for valid in ["1", "1.0", "-0.0", "1e2", "12345678901234567890", "1.5e300"] {
            #expect(s.validate(try json(valid)).isValid, "\(valid)")
        }
        for invalid in ["1.5", "-0.1", "1e-2", "\"1\"", "true"] {
            #expect(!s.validate(try json(invalid)).isValid, "\(invalid)")
        }
    }

    @Test func numbersCompareExactlyAcrossRepresentations() throws {
        // 2^53 + 1 has no Double: converting it would make it equal the bound.
        let max = try schema(##"{"maximum": 9007199254740992}"##)
        #expect(max.validate(try json("9007199254740992.0")).isValid)
        #expect(max.validate(try json("9007199254740993")).description == "(root): 9007199254740993 is greater than the maximum 9007199254740992")
        let exclusive = try schema(##"{"exclusiveMinimum": 9223372036854775807}"##)
        #expect(exclusive.validate(try json("9223372036854775808")).isValid)  // a UInt64
        #expect(!exclusive.validate(try json("9223372036854775807")).isValid)
        #expect(exclusive.validate(try json("9.3e18")).isValid)
        #expect(!exclusive.validate(try json("9.2e18")).isValid)
        let fraction = try schema(##"{"minimum": 0.5, "maximum": 18446744073709551615}"##)
        #expect(!fraction.validate(.int(0)).isValid)
        #expect(fraction.validate(.uint(18_446_744_073_709_551_615)).isValid)
        #expect(!fraction.validate(.double(18_446_744_073_709_551_616)).isValid)
        #expect(!fraction.validate(.double(-1e300)).isValid)
    }

    @Test func multipleOfIsExactInDecimal() throws {
        let cases: [(String, String, Bool)] = [
            ("0.0001", "0.0075", true), ("0.0001", "0.00751", false), ("0.1", "0.3", true), ("0.01", "19.99", true),
            ("1.5", "4.5", true), ("1.5", "35", false), ("0.123456789", "1e308", false), ("1e-8", "12391239123", true),
            ("2", "18446744073709551614", true), ("2", "18446744073709551615", false), ("3", "-9", true),
            ("1e300", "1e308", true), ("7", "1e308", false), ("2", "1e308", true), ("0.5", "1e-5", false),
        ]
        for (divisor, value, expected) in cases {
            let s = try schema(##"{"multipleOf": \##(divisor)}"##)
            #expect(s.validate(try json(value)).isValid == expected, "\(value) multipleOf \(divisor)")
        }
        #expect(try schema(##"{"multipleOf": 0.1}"##).validate(try json("0.35")).description == "(root): 0.35 is not a multiple of 0.1")
        #expect(try compileError(##"{"multipleOf": 0}"##)?.message == "multipleOf must be greater than 0")
    }

    @Test func constAndEnumUseJSONEquality() throws {
        let s = try schema(##"{"const": {"a": [1, 2.0, {"b": null}], "c": "x"}}"##)
        #expect(s.validate(try json(##"{"c": "x", "a": [1.0, 2, {"b": null}]}"##)).isValid)
        #expect(!s.validate(try json(##"{"c": "x", "a": [1, 2, {"b": false}]}"##)).isValid)
        #expect(!s.validate(try json(##"{"c": "x", "a": [1, 2, {"b": null}], "d": 1}"##)).isValid)
        let e = try schema(##"{"enum": [0, "0", false, null, [0]]}"##)
        #expect(e.validate(try json("0.0")).isValid)
        #expect(!e.validate(try json("[false]")).isValid)
        #expect(!e.validate(try json("\"\"")).isValid)
    }

    // MARK: Strings and names

    @Test func lengthsCountUnicodeScalars() throws {
        let s = try schema(##"{"minLength": 2, "maxLength": 2}"##)
        #expect(s.validate(.string("🐉🐲")).isValid)  // 4 UTF-16 units, 8 bytes, 2 scalars
        #expect(s.validate(.string("e\u{301}")).isValid)  // one character, two scalars
        #expect(s.validate(.string("🐉")).description == "(root): the string has 1 character, fewer than the minimum length 2")
        #expect(!s.validate(.string("🐉🐲🐉")).isValid)
    }

    @Test func namesCompareByScalarsNotCanonicalEquivalence() throws {
        // Swift's == says "é" == "e\u{301}"; a tool's JSON reader says they are two keys.
        let s = try schema(##"{"properties": {"é": {"type": "integer"}}, "required": ["é"], "additionalProperties": false}"##)
        #expect(s.validate(.object([("\u{E9}", .int(1))])).isValid)
        let decomposed = s.validate(.object([("e\u{301}", .int(1))]))
        #expect(decomposed.violations.map(\.keyword) == ["required", "additionalProperties"])
        let c = try schema(##"{"const": "é"}"##)
        #expect(!c.validate(.string("e\u{301}")).isValid)
        let unique = try schema(##"{"uniqueItems": true}"##)
        #expect(unique.validate(.array([.string("\u{E9}"), .string("e\u{301}")])).isValid)
    }

    @Test func aMemberNamedTwiceIsAViolation() throws {
        let s = try schema(##"{"properties": {"cmd": {"enum": ["ls"]}}}"##)
        // This validator would read the last "cmd"; a reader that takes the first runs "rm".
        let result = s.validate(try json(##"{"cmd": "rm -rf /", "cmd": "ls"}"##))
        // Every occurrence is validated as well.
        #expect(result.description == ##"""
            (root): the property "cmd" appears more than once: a reader may take either value
            /cmd: the string "rm -rf /" is not one of the allowed values: "ls"
            """##)
        #expect(result.violations.first?.keyword == "duplicateKeys")
        let nested = s.validate(try json(##"{"a": [{"x": 1, "x": 2}]}"##))
        #expect(nested.violations.map(\.instanceLocation) == ["/a/0"])
    }

    @Test func formatIsAnAnnotation() throws {
        let s = try schema(##"{"format": "email", "contentMediaType": "application/json", "title": "t", "x-unknown": {"minimum": 5}}"##)
        #expect(s.validate(.string("not an email")).isValid)
        #expect(s.validate(.int(1)).isValid)
    }

    // MARK: Closed objects

    @Test func unevaluatedPropertiesClosesAComposedObject() throws {
        // The usual way to say "no other properties" across allOf: additionalProperties cannot.
        let s = try schema(##"""
            {"allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "integer"}}}],
             "unevaluatedProperties": false}
            """##)
        #expect(s.validate(try json(##"{"a": "x", "b": 1}"##)).isValid)
        #expect(s.validate(try json(##"{"a": "x", "b": 1, "c": true}"##)).description
                == ##"/c: the property "c" is not allowed: no properties, patternProperties or additionalProperties here evaluates it (unevaluatedProperties is false)"##)
        // A failing branch of anyOf evaluates nothing.
        let any = try schema(##"{"anyOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"properties": {"b": true}, "required": ["b"]}], "unevaluatedProperties": false}"##)
        #expect(any.validate(try json(##"{"b": 1}"##)).isValid)
        #expect(!any.validate(try json(##"{"a": 1, "b": 1}"##)).isValid)
        let items = try schema(##"{"prefixItems": [{"type": "string"}], "contains": {"type": "integer"}, "unevaluatedItems": false}"##)
        #expect(items.validate(try json(##"["a", 1, 2]"##)).isValid)
        #expect(items.validate(try json(##"["a", 1, null]"##)).violations.map(\.instanceLocation) == ["/2"])
    }

    @Test func itemsFalseNamesTheExtraItem() throws {
        let s = try schema(##"{"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}"##)
        #expect(s.validate(try json(##"["a", 1, true]"##)).description == "/2: no item is allowed at index 2: the array may have at most 2 items")
    }

    // MARK: References

    @Test func referencesResolveWithinTheDocument() throws {
        let s = try schema(##"""
            {"$id": "https://example.com/tool.json",
             "$defs": {"name": {"$anchor": "name", "type": "string"},
                       "a/b": {"type": "integer"}, "pct%": {"type": "boolean"},
                       "nested": {"$id": "nested.json", "$defs": {"x": {"const": 1}}}},
             "definitions": {"legacy": {"type": "null"}},
             "properties": {
               "byAnchor": {"$ref": "#name"},
               "escaped": {"$ref": "#/$defs/a~1b"},
               "percent": {"$ref": "#/$defs/pct%25"},
               "absolute": {"$ref": "https://example.com/tool.json#/$defs/name"},
               "relative": {"$ref": "nested.json#/$defs/x"},
               "draft7": {"$ref": "#/definitions/legacy"}}}
            """##)
        #expect(s.validate(try json(##"{"byAnchor": "x", "escaped": 1, "percent": true, "absolute": "y", "relative": 1, "draft7": null}"##)).isValid)
        let result = s.validate(try json(##"{"byAnchor": 1, "escaped": "1", "percent": 1, "absolute": 2, "relative": 2, "draft7": 0}"##))
        #expect(result.violations.map(\.instanceLocation) == ["/byAnchor", "/escaped", "/percent", "/absolute", "/relative", "/draft7"])
        #expect(result.violations.map(\.schemaLocation) == ["/$defs/name/type", "/$defs/a~1b/type", "/$defs/pct%/type", "/$defs/name/type",
                                                            "/$defs/nested/$defs/x/const", "/definitions/legacy/type"])
    }

    @Test func referencesOutsideTheDocumentAreRefused() throws {
        let remote = try #require(try compileError(##"{"properties": {"a": {"$ref": "https://example.com/other.json#/x"}}}"##))
        #expect(remote.code == .remoteReference)
        #expect(remote.location == "/properties/a/$ref")
        #expect(remote.message.hasPrefix("remote $ref not supported"))
        let meta = try #require(try compileError(##"{"$ref": "https://json-schema.org/draft/2020-12/schema"}"##))
        #expect(meta.code == .remoteReference)
        let missing = try #require(try compileError(##"{"$ref": "#/$defs/nope"}"##))
        #expect(missing.code == .unresolvedReference)
        #expect(missing.description == ##"schema #/$ref: "#/$defs/nope": the document has nothing at #/$defs/nope"##)
        let anchor = try #require(try compileError(##"{"$ref": "#nope"}"##))
        #expect(anchor.code == .unresolvedReference)
        let notSchema = try #require(try compileError(##"{"$defs": {"n": {"const": 5}}, "$ref": "#/$defs/n/const"}"##))
        #expect(notSchema.message == ##""#/$defs/n/const" points at 5, not a schema"##)
    }

    // MARK: Refusals

    @Test func whatIsNotImplementedIsRefusedNotIgnored() throws {
        let cases: [(String, SchemaError.Code, String, String)] = [
            (##"{"dependencies": {"a": ["b"]}}"##, .unsupported, "/dependencies", "dependencies is draft-07's"),
            (##"{"items": [{"type": "string"}]}"##, .invalidKeyword, "/items", "an array of schemas is prefixItems"),
            (##"{"additionalItems": false}"##, .unsupported, "/additionalItems", "draft 2020-12 write prefixItems and items"),
            (##"{"$recursiveRef": "#"}"##, .unsupported, "/$recursiveRef", "draft 2020-12 has $dynamicRef"),
            (##"{"$schema": "http://json-schema.org/draft-04/schema#"}"##, .unsupported, "/$schema", "only JSON Schema draft 2020-12"),
            (##"{"properties": {"a": {"minLength": -1}}}"##, .invalidKeyword, "/properties/a/minLength", "minLength must be a non-negative integer"),
            (##"{"type": "int"}"##, .invalidKeyword, "/type", ##""int" is not a type"##),
            (##"{"required": ["a", "a"]}"##, .invalidKeyword, "/required", ##"required lists "a" twice"##),
            (##"{"allOf": []}"##, .invalidKeyword, "/allOf", "allOf must be a non-empty array of schemas"),
            (##"{"properties": {"a": 5}}"##, .invalidKeyword, "/properties/a", "a schema must be an object or a boolean, not 5"),
            (##"{"type": "string", "type": "integer"}"##, .invalidKeyword, "", ##"the key "type" appears more than once"##),
            (##"{"$id": "https://example.com/a#frag"}"##, .invalidKeyword, "/$id", "name a place with $anchor instead"),
            (##"{"$defs": {"a": {"$anchor": "x"}, "b": {"$anchor": "x"}}}"##, .invalidKeyword, "/$defs/b/$anchor", "already defined"),
            (##"{"$anchor": "1x"}"##, .invalidKeyword, "/$anchor", "$anchor must be a name"),
        ]
        for (text, code, location, reason) in cases {
            let error = try #require(try compileError(text), "\(text) compiled")
            #expect(error.code == code, "\(text): \(error)")
            #expect(error.location == location, "\(text): \(error)")
            #expect(error.message.contains(reason), "\(text): \(error)")
        }
        #expect(try compileError(##"{"$schema": "https://json-schema.org/draft/2020-12/schema"}"##) == nil)
    }
}
