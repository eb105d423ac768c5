import CordonJSON

/// One subschema, compiled: its keywords in the order they are applied.
struct Node: Sendable {
    /// JSON pointer of the subschema in the document.
    var location: String
    /// The schema resource (`$id`) it belongs to: entering it extends the dynamic scope.
    var resource: Int
    /// A boolean schema's value.
    var constant: Bool?
    var keywords: [Keyword] = []
    /// Has `unevaluatedItems` or `unevaluatedProperties`, so its in-place subschemas must report
    /// what they evaluated.
    var hasUnevaluated = false
    /// Compiled from a draft-07 document: violations name draft-07's keywords (`items` and
    /// `additionalItems` for `prefixItems` and `items`, `dependencies`).
    var draft07 = false
}

/// The keywords as the evaluator applies them. Several spellings fold into one case where they
/// only mean something together (`properties`, `patternProperties` and `additionalProperties`
/// are one pass over the members; `contains` carries its `minContains` and `maxContains`).
enum Keyword: Sendable {
    case type(TypeSet)
    case constant(JSON)
    case enumeration([JSON])
    case minimum(Number)
    case maximum(Number)
    case exclusiveMinimum(Number)
    case exclusiveMaximum(Number)
    case multipleOf(Number)
    case minLength(Int)
    case maxLength(Int)
    case pattern(Pattern)
    case minItems(Int)
    case maxItems(Int)
    case uniqueItems
    case items(prefix: [Int], rest: Int?)
    case contains(Int, min: Int, max: Int?)
    case required([String])
    case minProperties(Int)
    case maxProperties(Int)
    case dependentRequired([(String, [String])])
    case members(properties: [ExactKey: Int], names: [String], patterns: [(Pattern, Int)], additional: Int?)
    case propertyNames(Int)
    case dependentSchemas([(String, Int)])
    case ref(Int)
    /// The statically resolved target, and the anchor name to look up in the dynamic scope
    /// when the target holds a `$dynamicAnchor` of that name (otherwise it is a `$ref`).
    case dynamicRef(Int, anchor: String?)
    case allOf([Int])
    case anyOf([Int])
    case oneOf([Int])
    case not(Int)
    case conditional(if: Int, then: Int?, else: Int?)
    case unevaluatedItems(Int)
    case unevaluatedProperties(Int)
}

/// The seven JSON Schema types, as a set.
struct TypeSet: OptionSet, Sendable {
    let rawValue: UInt8
    static let null = TypeSet(rawValue: 1)
    static let boolean = TypeSet(rawValue: 2)
    static let object = TypeSet(rawValue: 4)
    static let array = TypeSet(rawValue: 8)
    static let number = TypeSet(rawValue: 16)
    static let string = TypeSet(rawValue: 32)
    static let integer = TypeSet(rawValue: 64)

    static let names: [(String, TypeSet)] = [
        ("null", .null), ("boolean", .boolean), ("object", .object), ("array", .array),
        ("number", .number), ("string", .string), ("integer", .integer),
    ]

    func admits(_ value: JSON) -> Bool {
        switch value {
        case .null: return contains(TypeSet.null)
        case .bool: return contains(TypeSet.boolean)
        case .object: return contains(TypeSet.object)
        case .array: return contains(TypeSet.array)
        case .string: return contains(TypeSet.string)
        case .int, .uint, .double:
            if contains(TypeSet.number) { return true }
            return contains(TypeSet.integer) && Number(value)!.isInteger
        }
    }

    var text: String {
        let present = Self.names.filter { contains($0.1) }.map(\.0)
        if present.count <= 2 { return present.joined(separator: " or ") }
        return present.dropLast().joined(separator: ", ") + " or " + present.last!
    }
}

/// A schema resource: the subschema an `$id` names (or the document), and its anchors.
struct Resource: Sendable {
    var uri: String
    var rootPointer: String
    /// `$anchor` and `$dynamicAnchor` names → JSON pointers (compile time only).
    var anchors: [String: String] = [:]
    /// `$dynamicAnchor` names → node indexes, for `$dynamicRef` in the dynamic scope.
    var dynamicAnchors: [String: Int] = [:]
}

/// The keywords of one schema object, gathered, then put in the order they are applied.
struct KeywordSet {
    var type: TypeSet?
    var constant: JSON?
    var enumeration: [JSON]?
    var minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf: Number?
    var minLength, maxLength: Int?
    var pattern: Pattern?
    var minItems, maxItems: Int?
    var uniqueItems = false
    var prefixItems: [Int]?
    var items: Int?
    var contains: Int?
    var minContains, maxContains: Int?
    var required: [String]?
    var minProperties, maxProperties: Int?
    var dependentRequired: [(String, [String])]?
    var properties: [(String, Int)]?
    var patternProperties: [(Pattern, Int)]?
    var additionalProperties: Int?
    var propertyNames: Int?
    var dependentSchemas: [(String, Int)]?
    var ref: Int?
    var dynamicRef: (Int, String?)?
    var allOf, anyOf, oneOf: [Int]?
    var not: Int?
    var `if`, then, `else`: Int?
    var unevaluatedItems, unevaluatedProperties: Int?

    /// Cheap checks first (so a wrong type fails before any subschema runs); the unevaluated
    /// keywords last, because they read what every other keyword evaluated.
    func ordered() -> [Keyword] {
        var out: [Keyword] = []
        if let type { out.append(.type(type)) }
        if let constant { out.append(.constant(constant)) }
        if let enumeration { out.append(.enumeration(enumeration)) }
        if let minimum { out.append(.minimum(minimum)) }
        if let maximum { out.append(.maximum(maximum)) }
        if let exclusiveMinimum { out.append(.exclusiveMinimum(exclusiveMinimum)) }
        if let exclusiveMaximum { out.append(.exclusiveMaximum(exclusiveMaximum)) }
        if let multipleOf { out.append(.multipleOf(multipleOf)) }
        if let minLength { out.append(.minLength(minLength)) }
        if let maxLength { out.append(.maxLength(maxLength)) }
        if let pattern { out.append(.pattern(pattern)) }
        if let minItems { out.append(.minItems(minItems)) }
        if let maxItems { out.append(.maxItems(maxItems)) }
        if uniqueItems { out.append(.uniqueItems) }
        if let required { out.append(.required(required)) }
        if let minProperties { out.append(.minProperties(minProperties)) }
        if let maxProperties { out.append(.maxProperties(maxProperties)) }
        if let dependentRequired { out.append(.dependentRequired(dependentRequired)) }
        if prefixItems != nil || items != nil { out.append(.items(prefix: prefixItems ?? [], rest: items)) }
        if let contains { out.append(.contains(contains, min: minContains ?? 1, max: maxContains)) }
        if properties != nil || patternProperties != nil || additionalProperties != nil {
            var map: [ExactKey: Int] = [:]
            for (name, node) in properties ?? [] { map[ExactKey(name)] = node }
            out.append(.members(properties: map, names: (properties ?? []).map(\.0), patterns: patternProperties ?? [], additional: additionalProperties))
        }
        if let propertyNames { out.append(.propertyNames(propertyNames)) }
        if let dependentSchemas { out.append(.dependentSchemas(dependentSchemas)) }
        if let ref { out.append(.ref(ref)) }
        if let dynamicRef { out.append(.dynamicRef(dynamicRef.0, anchor: dynamicRef.1)) }
        if let allOf { out.append(.allOf(allOf)) }
        if let anyOf { out.append(.anyOf(anyOf)) }
        if let oneOf { out.append(.oneOf(oneOf)) }
        if let not { out.append(.not(not)) }
        if let condition = self.if { out.append(.conditional(if: condition, then: then, else: self.else)) }
        if let unevaluatedItems { out.append(.unevaluatedItems(unevaluatedItems)) }
        if let unevaluatedProperties { out.append(.unevaluatedProperties(unevaluatedProperties)) }
        return out
    }
}
