import CordonJSON

/// A JSON Schema (draft 2020-12, or draft-07 when its `$schema` says so), compiled once, that
/// validates MCP tool arguments before any sandbox is touched. Pure: no I/O, no Foundation; both inputs are untrusted (the schema comes
/// from an MCP server or a manifest, the instance from an agent), and it may run inside the
/// daemon, so every dimension is capped (`SchemaLimits`) and every cap fails closed and names
/// itself.
///
/// Implemented, each in full (the official suite's file for each passes, bar the cases that
/// need another document): boolean schemas; `type` (1.0 is an integer), `enum`, `const` (JSON
/// equality: 1 == 1.0, member order irrelevant); `properties`, `required`,
/// `additionalProperties`, `patternProperties`, `propertyNames`, `minProperties`,
/// `maxProperties`, `dependentRequired`, `dependentSchemas`; `items`, `prefixItems`, `contains`,
/// `minContains`, `maxContains`, `minItems`, `maxItems`, `uniqueItems`; `minLength`, `maxLength`
/// (in Unicode scalars), `pattern`; `minimum`, `maximum`, `exclusiveMinimum`,
/// `exclusiveMaximum`, `multipleOf` (exact, in decimal); `allOf`, `anyOf`, `oneOf`, `not`,
/// `if`/`then`/`else`; `$defs`, `$ref`, `$id`, `$anchor`, `$dynamicRef`, `$dynamicAnchor`
/// within the document; `unevaluatedProperties` and `unevaluatedItems` (annotations are
/// tracked). `format`, `content*`, `title`, `default` and the like are annotations: they assert
/// nothing, as draft 2020-12 says by default.
///
/// Draft-07 (`"$schema": "http://json-schema.org/draft-07/schema#"`, also without the `#` or
/// with https; what the MCP TypeScript SDK writes) is a second dialect of the same engine, its
/// keywords compiled to the same nodes with draft-07's meanings: `items` as an array (a tuple)
/// with `additionalItems`; `dependencies` (an array of names, or a schema); `definitions`;
/// `$ref` alone in its object (its siblings, `$id` too, ignored); an `$id` fragment (`#foo`) as
/// an anchor. The keywords draft-07 does not have (`prefixItems`, `$defs`, `dependentRequired`,
/// `dependentSchemas`, `unevaluated*`, `minContains`, `maxContains`, `$anchor`, `$dynamic*`)
/// are unknown there and ignored, as draft-07 ignores unknown keywords. The official suite's
/// draft7 files pass as the 2020-12 ones do (Draft07SuiteTests). Without `$schema`, a schema is
/// draft 2020-12 (MCP's default), unless the caller names another default. The caps are the
/// same in both dialects.
///
/// Refused when compiling, never ignored: a `$ref` to another document ("remote $ref not
/// supported"; nothing is fetched), a `$schema` other than draft 2020-12's and draft-07's
/// (draft-06, -04, 2019-09 and custom metaschemas are refused, not guessed), a `$schema` in a
/// subschema naming the other dialect, in a 2020-12 document the keywords of other drafts whose
/// meaning 2020-12 moved elsewhere (`dependencies`, `additionalItems`, `$recursiveRef`, an
/// array in `items`), a pattern outside the supported ECMA-262 subset (`PatternSyntax.swift`),
/// an object with a key twice, and a cycle of references that never consumes the instance.
///
/// Cordon's own rules beyond the specification, both failing closed: an instance object with a
/// member name twice is a violation (the tool's JSON reader might take the other value), and
/// names and strings compare by Unicode scalars, not by Swift's canonical equivalence.
public struct JSONSchema: Sendable {
    let nodes: [Node]
    let resources: [Resource]
    public let limits: SchemaLimits
    /// The dialect the document was compiled in: its root `$schema`'s, or the default.
    public let dialect: SchemaDialect

    /// Compiles `schema`; the error names the schema location (a JSON pointer) and the problem.
    /// The root's `$schema` chooses the dialect; without one, `defaultDialect` applies (MCP says
    /// a tool's schema without `$schema` is draft 2020-12).
    public static func compile(_ schema: JSON, limits: SchemaLimits = SchemaLimits(),
                               defaultDialect: SchemaDialect = .draft2020_12) throws(SchemaError) -> JSONSchema {
        var compiler = SchemaCompiler(document: schema, limits: limits, dialect: defaultDialect)
        let (nodes, resources) = try compiler.compile()
        return JSONSchema(nodes: nodes, resources: resources, limits: limits, dialect: compiler.dialect)
    }

    /// Every violation, up to `limits.maxViolations` (then `truncated`), each naming its
    /// instance location, keyword and schema location.
    public func validate(_ instance: JSON) -> SchemaValidation {
        var evaluation = Evaluation(nodes: nodes, resources: resources, limits: limits)
        return evaluation.run(instance)
    }
}

/// The JSON Schema dialects CordonSchema compiles, each with its own keywords' meanings and one
/// engine underneath (draft-07's keywords compile to the nodes 2020-12's do).
public enum SchemaDialect: String, Sendable, CaseIterable {
    /// Draft 2020-12: the default, and MCP's.
    case draft2020_12 = "https://json-schema.org/draft/2020-12/schema"
    /// Draft-07: what zod-to-json-schema (the MCP TypeScript SDK) writes on every tool.
    case draft07 = "http://json-schema.org/draft-07/schema#"

    /// The dialect a `$schema` value names: draft 2020-12's URI with or without an empty
    /// fragment; draft-07's with http or https, with or without the empty fragment. Nothing
    /// else (draft-06 and earlier, 2019-09, custom metaschemas) is accepted.
    public init?(uri: String) {
        switch uri {
        case "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#":
            self = .draft2020_12
        case "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema",
             "https://json-schema.org/draft-07/schema#", "https://json-schema.org/draft-07/schema":
            self = .draft07
        default:
            return nil
        }
    }

    public var name: String {
        switch self {
        case .draft2020_12: return "draft 2020-12"
        case .draft07: return "draft-07"
        }
    }
}
