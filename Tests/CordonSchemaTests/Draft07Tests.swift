import CordonJSON
import Foundation
import Testing

@testable import CordonSchema

let draft07 = "http://json-schema.org/draft-07/schema#"

/// Draft-07 as a dialect of its own: chosen by `$schema`, its keywords' meanings, 2020-12's
/// keywords unknown in it, and the same caps as 2020-12.
@Suite struct Draft07Tests {
    // MARK: A tool's schema as the MCP TypeScript SDK writes it

    /// zod-to-json-schema's shape for `z.object({ path: z.string().min(1), depth: z.number().int()
    /// .max(10).optional(), mode: z.enum(["read", "list"]) })`: draft-07, closed, `required`.
    static let zodTool = ##"""
    {"type": "object",
     "properties": {
       "path": {"type": "string", "minLength": 1},
       "depth": {"type": "integer", "maximum": 10},
       "mode": {"type": "string", "enum": ["read", "list"]}},
     "required": ["path", "mode"],
     "additionalProperties": false,
     "$schema": "http://json-schema.org/draft-07/schema#"}
    """##

    @Test func aZodToolSchemaIsHonoured() throws {
        let s = try schema(Self.zodTool)
        #expect(s.dialect == .draft07)
        #expect(s.validate(try json(##"{"path": "/tmp/x", "mode": "read"}"##)).isValid)
        #expect(s.validate(try json(##"{"path": "a", "mode": "list", "depth": 3}"##)).isValid)

        let missing = s.validate(try json(##"{"path": "/tmp/x"}"##)).violations
        #expect(missing.map(\.keyword) == ["required"])
        #expect(missing.first?.message.contains("\"mode\"") == true, "\(missing)")

        let extra = s.validate(try json(##"{"path": "/tmp/x", "mode": "read", "recursive": true}"##)).violations
        #expect(extra.map(\.keyword) == ["additionalProperties"])
        #expect(extra.first?.instanceLocation == "/recursive")
        #expect(extra.first?.message.contains("\"recursive\"") == true, "\(extra)")

        let wrong = s.validate(try json(##"{"path": "", "mode": "write", "depth": 2.5}"##)).violations
        #expect(Set(wrong.map(\.instanceLocation)) == ["/path", "/mode", "/depth"], "\(wrong)")
        #expect(Set(wrong.map(\.keyword)) == ["minLength", "enum", "type"], "\(wrong)")
    }

    @Test func zodsReferenceAndDefinitionsFormIsHonoured() throws {
        // zod-to-json-schema with a name: the root is a $ref into definitions, beside them.
        let s = try schema(##"""
        {"$ref": "#/definitions/Args",
         "definitions": {"Args": {"type": "object", "properties": {"n": {"type": "number", "minimum": 0}},
                                  "required": ["n"], "additionalProperties": false}},
         "$schema": "http://json-schema.org/draft-07/schema#"}
        """##)
        #expect(s.validate(try json(##"{"n": 1}"##)).isValid)
        let v = s.validate(try json(##"{"n": -1, "m": 0}"##)).violations
        #expect(Set(v.map(\.instanceLocation)) == ["/n", "/m"], "\(v)")
        #expect(v.allSatisfy { $0.schemaLocation.hasPrefix("/definitions/Args/") }, "\(v)")
    }

    // MARK: Choosing the dialect

    @Test func draft07IsChosenByEachOfItsSpellings() throws {
        for uri in ["http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema",
                    "https://json-schema.org/draft-07/schema#", "https://json-schema.org/draft-07/schema"] {
            let s = try JSONSchema.compile(.object([("$schema", .string(uri)), ("items", try json(##"[{"type": "string"}]"##))]))
            #expect(s.dialect == .draft07, "\(uri)")
            #expect(!s.validate(try json("[1]")).isValid, "\(uri)")
        }
        for uri in ["https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"] {
            #expect(try JSONSchema.compile(.object([("$schema", .string(uri))])).dialect == .draft2020_12)
        }
    }

    @Test func withoutSchemaTheDefaultIs2020_12() throws {
        let s = try schema(##"{"prefixItems": [{"type": "string"}]}"##)
        #expect(s.dialect == .draft2020_12)
        #expect(!s.validate(try json("[1]")).isValid)
        // And draft-07's meanings are not taken: an array in items is refused, as before.
        let error = try #require(try compileError(##"{"items": [{"type": "string"}]}"##))
        #expect(error.message.contains("prefixItems"))
        #expect(try compileError(##"{"dependencies": {"a": ["b"]}}"##)?.code == .unsupported)
        // A boolean root has no $schema: the default applies.
        #expect(try JSONSchema.compile(.bool(false), defaultDialect: .draft07).dialect == .draft07)
    }

    @Test func otherDialectsAreRefusedNotGuessed() throws {
        for uri in ["http://json-schema.org/draft-06/schema#", "http://json-schema.org/draft-04/schema#",
                    "https://json-schema.org/draft/2019-09/schema", "http://json-schema.org/schema#",
                    "http://json-schema.org/draft-07/schema#/", "https://example.com/my-metaschema"] {
            let error = try #require(compileError(.object([("$schema", .string(uri)), ("type", .string("object"))])), "\(uri)")
            #expect(error.code == .unsupported, "\(uri)")
            #expect(error.location == "/$schema")
            #expect(error.message.contains("draft 2020-12") && error.message.contains("draft-07"), "\(error)")
        }
        #expect(compileError(.object([("$schema", .int(7))]))?.code == .invalidKeyword)
    }

    @Test func oneDocumentHasOneDialect() throws {
        let mixed = try #require(try compileError(##"""
        {"$schema": "http://json-schema.org/draft-07/schema#",
         "properties": {"a": {"$id": "https://example.com/a", "$schema": "https://json-schema.org/draft/2020-12/schema"}}}
        """##))
        #expect(mixed.code == .unsupported)
        #expect(mixed.location == "/properties/a/$schema")
        #expect(try compileError(##"{"$schema": "\##(draft07)", "properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema"}}}"##) == nil)
    }

    // MARK: Draft-07's keywords

    @Test func tupleItemsAndAdditionalItemsNameDraft07Keywords() throws {
        let s = try schema(##"{"$schema": "\##(draft07)", "items": [{"type": "string"}, false], "additionalItems": {"type": "integer"}}"##)
        #expect(s.validate(try json(##"["a"]"##)).isValid)
        let v = s.validate(try json(##"[1, 2, 3.5]"##)).violations
        #expect(v.map(\.keyword) == ["type", "items", "type"], "\(v)")
        #expect(v.map(\.schemaLocation) == ["/items/0/type", "/items/1", "/additionalItems/type"], "\(v)")
        #expect(v[1].message.contains("items/1 is false"), "\(v)")
        // additionalItems without an array of items means nothing.
        #expect(try schema(##"{"$schema": "\##(draft07)", "items": {}, "additionalItems": false}"##).validate(try json("[1, 2]")).isValid)
        #expect(try schema(##"{"$schema": "\##(draft07)", "additionalItems": false}"##).validate(try json("[1, 2]")).isValid)
        let closed = try schema(##"{"$schema": "\##(draft07)", "items": [{}], "additionalItems": false}"##).validate(try json("[1, 2]")).violations
        #expect(closed.map(\.keyword) == ["additionalItems"])
        #expect(closed.first?.instanceLocation == "/1")
    }

    @Test func dependenciesAreRequiredNamesOrASchema() throws {
        let s = try schema(##"{"$schema": "\##(draft07)", "dependencies": {"card": ["billing"], "tier": {"required": ["plan"]}}}"##)
        #expect(s.validate(try json(##"{"card": 1, "billing": 2, "tier": 3, "plan": 4}"##)).isValid)
        #expect(s.validate(try json(##"{"billing": 2, "plan": 4}"##)).isValid)
        let v = s.validate(try json(##"{"card": 1, "tier": 3}"##)).violations
        #expect(v.map(\.keyword) == ["dependencies", "required"], "\(v)")
        #expect(v.first?.message.contains("\"billing\" is required when \"card\" is present") == true, "\(v)")
        #expect(v.last?.schemaLocation == "/dependencies/tier/required")
        #expect(try compileError(##"{"$schema": "\##(draft07)", "dependencies": {"a": 1}}"##)?.location == "/dependencies/a")
        #expect(try compileError(##"{"$schema": "\##(draft07)", "dependencies": {"a": [1]}}"##)?.code == .invalidKeyword)
    }

    @Test func referenceSiblingsAreIgnoredInDraft07Only() throws {
        let text = ##"{"definitions": {"n": {"type": "number"}}, "properties": {"a": {"$ref": "#/definitions/n", "maximum": 1}}}"##
        let seven = try JSONSchema.compile(try json(text), defaultDialect: .draft07)
        #expect(seven.validate(try json(##"{"a": 5}"##)).isValid)
        #expect(!seven.validate(try json(##"{"a": "x"}"##)).isValid)
        // In 2020-12, the sibling applies (and definitions is reached through the $ref alone).
        #expect(!(try schema(text)).validate(try json(##"{"a": 5}"##)).isValid)
        // A sibling $id does not move the base either: "#/definitions/n" still names the root's.
        let based = try JSONSchema.compile(try json(##"{"$id": "https://example.com/root", "definitions": {"n": {"type": "number"}}, "allOf": [{"$id": "https://example.com/other", "$ref": "#/definitions/n"}]}"##), defaultDialect: .draft07)
        #expect(!based.validate(.string("x")).isValid)
        #expect(based.validate(.int(1)).isValid)
    }

    @Test func anIdWithAFragmentIsAnAnchor() throws {
        let s = try schema(##"{"$schema": "\##(draft07)", "definitions": {"pos": {"$id": "#positive", "minimum": 0}}, "items": {"$ref": "#positive"}}"##)
        #expect(s.validate(try json("[1, 2]")).isValid)
        #expect(s.validate(try json("[1, -2]")).violations.first?.instanceLocation == "/1")
        // Not a plain name: refused, as is a fragment in 2020-12's $id.
        #expect(try compileError(##"{"$schema": "\##(draft07)", "definitions": {"a": {"$id": "#/x"}}}"##)?.code == .invalidKeyword)
        #expect(try compileError(##"{"definitions": {"a": {"$id": "#positive"}}, "$defs": {"b": {"$id": "#b"}}}"##)?.code == .invalidKeyword)
        // The same anchor twice in one resource is refused.
        #expect(try compileError(##"{"$schema": "\##(draft07)", "definitions": {"a": {"$id": "#x"}, "b": {"$id": "#x"}}}"##)?.message.contains("already defined") == true)
    }

    @Test func keywordsDraft07DoesNotHaveAreUnknownThere() throws {
        // Each would refuse [1, "x"] or {"a": 1} in 2020-12; draft-07 ignores them.
        let s = try schema(##"""
        {"$schema": "http://json-schema.org/draft-07/schema#",
         "prefixItems": [{"type": "string"}], "unevaluatedItems": false, "unevaluatedProperties": false,
         "dependentRequired": {"a": ["b"]}, "dependentSchemas": {"a": false}, "minContains": 5,
         "contains": {"type": "string"}, "$defs": {"x": {"$anchor": "x", "type": "string"}},
         "$dynamicRef": "#x", "$recursiveRef": "#"}
        """##)
        #expect(s.validate(try json(##"[1, "x"]"##)).isValid)
        #expect(s.validate(try json(##"{"a": 1}"##)).isValid)
        // $defs is no keyword there, but a JSON pointer still reaches it (as 2020-12 reaches definitions).
        let pointer = try schema(##"{"$schema": "\##(draft07)", "$defs": {"s": {"type": "string"}}, "items": {"$ref": "#/$defs/s"}}"##)
        #expect(!pointer.validate(try json("[1]")).isValid)
        // An $anchor is not an identifier there: a reference to it finds nothing.
        #expect(try compileError(##"{"$schema": "\##(draft07)", "definitions": {"s": {"$anchor": "s"}}, "items": {"$ref": "#s"}}"##)?.code == .unresolvedReference)
    }

    // MARK: The same caps

    @Test func draft07SchemasRunUnderTheSameCaps() throws {
        // Depth.
        var deep: JSON = .object([("type", .string("string"))])
        for _ in 0..<40 { deep = .object([("definitions", .object([("a", deep)]))]) }
        guard case .object(let deepMembers) = deep else { return }
        #expect(compileError(.object([("$schema", .string(draft07))] + deepMembers))?.message == "nested deeper than 64 levels (limit maxSchemaDepth)")
        // Subschemas: definitions and tuple items count.
        let many = (0..<10_001).map { ("d\($0)", JSON.object([])) }
        #expect(compileError(.object([("$schema", .string(draft07)), ("definitions", .object(many))]))?.message == "more than 10000 subschemas (limit maxSchemaNodes)")
        let tuple = JSON.array(Array(repeating: .object([]), count: 10_001))
        #expect(compileError(.object([("$schema", .string(draft07)), ("items", tuple)]))?.code == .limit)
        // Patterns, in patternProperties, dependencies' schemas and additionalItems alike.
        var limits = SchemaLimits()
        limits.maxPatternProgramTotal = 50
        let patterns = try json(##"{"$schema": "\##(draft07)", "items": [{}], "additionalItems": {"pattern": "a{40}"}, "dependencies": {"x": {"pattern": "b{40}"}}}"##)
        #expect(compileError(patterns, limits: limits)?.message.contains("limit maxPatternProgramTotal") == true)
        // A cycle through definitions that consumes nothing.
        let cycle = try #require(try compileError(##"{"$schema": "\##(draft07)", "definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"allOf": [{"$ref": "#/definitions/a"}]}}, "allOf": [{"$ref": "#/definitions/a"}]}"##))
        #expect(cycle.code == .referenceCycle)
        // Steps: in-place fan-out through definitions stops at the budget.
        var members: [(String, JSON)] = [("l30", .bool(true))]
        for level in (0..<30).reversed() {
            let next = JSON.string("#/definitions/l\(level + 1)")
            members.append(("l\(level)", .object([("allOf", .array([.object([("$ref", next)]), .object([("$ref", next)])]))])))
        }
        var steps = SchemaLimits()
        steps.maxSteps = 100_000
        let fanOut = try JSONSchema.compile(.object([("$schema", .string(draft07)), ("definitions", .object(members)), ("$ref", .string("#/definitions/l0"))]), limits: steps)
        #expect(fanOut.validate(.int(1)).violations.map(\.keyword) == ["maxSteps"])
        // References followed inside one another.
        var refs = SchemaLimits()
        refs.maxRefDepth = 10
        let list = try JSONSchema.compile(try json(##"{"$schema": "\##(draft07)", "definitions": {"list": {"items": {"$ref": "#/definitions/list"}}}, "$ref": "#/definitions/list"}"##), limits: refs)
        #expect(list.validate(nestedArrays(8)).isValid)
        #expect(list.validate(nestedArrays(20)).violations.map(\.keyword) == ["maxRefDepth"])
    }
}
