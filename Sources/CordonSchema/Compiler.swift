import CordonJSON

/// Schema document → nodes. Two passes: discovery walks every subschema the keywords reach
/// (registering `$id`, `$anchor` and `$dynamicAnchor`, checking the caps), then each subschema
/// is compiled, its references resolved against what discovery found. A `$ref` into a place
/// discovery did not walk (a draft-07 `definitions` in a 2020-12 document, say) compiles that
/// place when the reference is met; identifiers inside it are not registered (they are not
/// identifiers in that dialect).
///
/// The dialect (the root's `$schema`, or the default) decides which keywords hold subschemas
/// and what each means. Draft-07's keywords compile to the same nodes as 2020-12's: `items` as
/// an array is `prefixItems`, `additionalItems` beside it is `items`; `dependencies` is
/// `dependentRequired` (an array) or `dependentSchemas` (a schema) per property; `definitions`
/// holds subschemas; an object with `$ref` is that reference alone (its other members, `$id`
/// included, are ignored and not walked); a fragment in `$id` (`"#foo"`) is an anchor. The
/// keywords draft-07 does not have (`prefixItems`, `$defs`, `dependentRequired`,
/// `dependentSchemas`, `unevaluated*`, `$anchor`, `$dynamic*`, `minContains`, `maxContains`) are
/// unknown there, and ignored as draft-07 ignores unknown keywords.
struct SchemaCompiler {
    struct Site {
        var pointer: String
        var value: JSON
        var base: URIReference
        var resource: Int
    }

    /// The base URI of a document without a root `$id`: `$id`s and `$ref`s in it resolve
    /// against this, and only references to it or to the document's own `$id`s resolve.
    static let defaultBase = "cordon:/schema"

    /// The keywords whose value is a schema, an object of schemas, an array of schemas, in each
    /// dialect (`items` is both in draft-07; its array form is walked as an array).
    static let singleSchemaKeywords: [SchemaDialect: Set<String>] = [
        .draft2020_12: [
            "additionalProperties", "propertyNames", "items", "contains", "not", "if", "then", "else",
            "unevaluatedItems", "unevaluatedProperties",
        ],
        .draft07: ["additionalProperties", "propertyNames", "items", "additionalItems", "contains", "not", "if", "then", "else"],
    ]
    static let schemaMapKeywords: [SchemaDialect: Set<String>] = [
        .draft2020_12: ["properties", "patternProperties", "dependentSchemas", "$defs"],
        .draft07: ["properties", "patternProperties", "definitions"],
    ]
    static let schemaArrayKeywords: [SchemaDialect: Set<String>] = [
        .draft2020_12: ["prefixItems", "allOf", "anyOf", "oneOf"],
        .draft07: ["items", "allOf", "anyOf", "oneOf"],
    ]
    /// 2020-12's keywords that draft-07 does not have: unknown there, so ignored.
    static let notInDraft07: Set<String> = [
        "prefixItems", "$defs", "dependentRequired", "dependentSchemas", "unevaluatedItems", "unevaluatedProperties",
        "$anchor", "$dynamicRef", "$dynamicAnchor", "minContains", "maxContains",
    ]
    /// Keywords of other drafts whose meaning 2020-12 gives to others: ignoring them (as 2020-12
    /// says of unknown keywords) would drop a constraint the author meant.
    static let refused: [String: String] = [
        "$recursiveRef": "$recursiveRef is draft 2019-09's: draft 2020-12 has $dynamicRef",
        "$recursiveAnchor": "$recursiveAnchor is draft 2019-09's: draft 2020-12 has $dynamicAnchor",
        "dependencies": "dependencies is draft-07's: in draft 2020-12 write dependentRequired or dependentSchemas",
        "additionalItems": "additionalItems is draft 2019-09's and earlier: in draft 2020-12 write prefixItems and items",
    ]

    let document: JSON
    let limits: SchemaLimits
    /// The default until `compile` reads the root's `$schema`.
    var dialect: SchemaDialect
    var sites: [Site] = []
    var siteIndex: [String: Int] = [:]
    var resources: [Resource] = []
    var resourceIndex: [String: Int] = [:]
    var patternCache: [String: Pattern] = [:]
    var patternInstructions = 0

    init(document: JSON, limits: SchemaLimits, dialect: SchemaDialect) {
        self.document = document
        self.limits = limits
        self.dialect = dialect
    }

    // MARK: - Errors

    func invalid(_ at: String, _ message: String) -> SchemaError { SchemaError(code: .invalidKeyword, location: at, message: message) }

    // MARK: - The whole document

    mutating func compile() throws(SchemaError) -> (nodes: [Node], resources: [Resource]) {
        var path: [JSON.PathComponent] = []
        try checkDocument(document, &path)
        if case .object(let members) = document, let value = member(members, "$schema") {
            dialect = try Self.dialect(value, at: "/$schema")
        }
        let base = URIReference(Self.defaultBase)
        resources.append(Resource(uri: Self.defaultBase, rootPointer: ""))
        resourceIndex[Self.defaultBase] = 0
        try discover(document, pointer: "", base: base, resource: 0, registers: true)
        for r in resources.indices {
            for (name, pointer) in resources[r].anchors where resources[r].dynamicAnchors[name] != nil {
                resources[r].dynamicAnchors[name] = siteIndex[pointer]
            }
        }
        var nodes: [Node] = []
        var k = 0
        // Compiling a node can discover more (a $ref into an undiscovered place): go on to the end.
        while k < sites.count {
            nodes.append(try compileNode(sites[k]))
            k += 1
        }
        try checkCycles(nodes)
        return (nodes, resources)
    }

    /// Every value, subschema or not: no deeper than the cap, and no object with a key twice (a
    /// reader that takes the first and one that takes the last would see different schemas).
    func checkDocument(_ value: JSON, _ path: inout [JSON.PathComponent]) throws(SchemaError) {
        guard path.count < limits.maxSchemaDepth else {
            throw SchemaError(code: .limit, location: jsonPointer(path), message: "nested deeper than \(limits.maxSchemaDepth) levels (limit maxSchemaDepth)")
        }
        switch value {
        case .array(let items):
            for (i, item) in items.enumerated() {
                path.append(.index(i))
                try checkDocument(item, &path)
                path.removeLast()
            }
        case .object(let members):
            var keys = Set<ExactKey>()
            for (key, member) in members {
                guard keys.insert(ExactKey(key)).inserted else {
                    throw invalid(jsonPointer(path), "the key \(quoted(key)) appears more than once")
                }
                path.append(.key(key))
                try checkDocument(member, &path)
                path.removeLast()
            }
        default: break
        }
    }

    /// The dialect a `$schema` value names; any other is refused, never guessed.
    static func dialect(_ value: JSON, at: String) throws(SchemaError) -> SchemaDialect {
        guard case .string(let uri) = value else { throw SchemaError(code: .invalidKeyword, location: at, message: "$schema must be a string") }
        guard let dialect = SchemaDialect(uri: uri) else {
            throw SchemaError(code: .unsupported, location: at, message: "dialect \(quoted(uri)) is not supported: only JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12/schema) and draft-07 (http://json-schema.org/draft-07/schema#)")
        }
        return dialect
    }

    /// Draft-07 ignores every member of an object that has `$ref` but the reference.
    func isReferenceOnly(_ members: [(String, JSON)]) -> Bool {
        dialect == .draft07 && member(members, "$ref") != nil
    }

    // MARK: - Discovery

    mutating func discover(_ value: JSON, pointer: String, base: URIReference, resource: Int, registers: Bool) throws(SchemaError) {
        guard siteIndex[pointer] == nil else { return }
        guard sites.count < limits.maxSchemaNodes else {
            throw SchemaError(code: .limit, location: pointer, message: "more than \(limits.maxSchemaNodes) subschemas (limit maxSchemaNodes)")
        }
        guard case .object(let members) = value else {
            guard case .bool = value else {
                throw invalid(pointer, "a schema must be an object or a boolean, not \(describe(value))")
            }
            siteIndex[pointer] = sites.count
            sites.append(Site(pointer: pointer, value: value, base: base, resource: resource))
            return
        }
        var base = base
        var resource = resource
        let referenceOnly = isReferenceOnly(members)
        if !referenceOnly, let id = member(members, "$id") {
            guard case .string(let text) = id else { throw invalid(pointer + "/$id", "$id must be a string") }
            var reference = URIReference(text)
            // Draft-07's $id may be, or end in, a plain-name fragment: an anchor.
            var anchor: String? = nil
            if let fragment = reference.fragment, !fragment.isEmpty {
                guard dialect == .draft07 else {
                    throw invalid(pointer + "/$id", "$id \(quoted(text)) has a fragment: name a place with $anchor instead")
                }
                guard Self.isPlainName(fragment) else {
                    throw invalid(pointer + "/$id", "$id \(quoted(text)): a fragment in $id must be a plain name (a letter first, then letters, digits, -, _, : or .)")
                }
                anchor = fragment
            }
            reference.fragment = nil
            let fragmentOnly = anchor != nil && reference.scheme == nil && reference.authority == nil && reference.path.isEmpty && reference.query == nil
            if !fragmentOnly {
                try identify(&reference, text: text, pointer: pointer, base: &base, resource: &resource, registers: registers)
            }
            if let anchor, registers {
                if let existing = resources[resource].anchors[anchor], existing != pointer {
                    throw invalid(pointer + "/$id", "the anchor \(quoted(anchor)) is already defined in this resource, at \(SchemaError.display(schemaPointer: existing))")
                }
                resources[resource].anchors[anchor] = pointer
            }
        }
        if !referenceOnly {
            try checkMembers(members, pointer: pointer, resource: resource, registers: registers)
        }
        siteIndex[pointer] = sites.count
        sites.append(Site(pointer: pointer, value: value, base: base, resource: resource))
        guard !referenceOnly else { return }
        let single = Self.singleSchemaKeywords[dialect]!, maps = Self.schemaMapKeywords[dialect]!, arrays = Self.schemaArrayKeywords[dialect]!
        for (key, value) in members {
            let at = pointer + "/" + escapePointerToken(key)
            if dialect == .draft2020_12, key == "items", case .array = value { continue }  // refused when compiled
            if arrays.contains(key), case .array(let children) = value {
                for (i, child) in children.enumerated() {
                    try discover(child, pointer: at + "/\(i)", base: base, resource: resource, registers: registers)
                }
            } else if single.contains(key) {
                try discover(value, pointer: at, base: base, resource: resource, registers: registers)
            } else if maps.contains(key), case .object(let children) = value {
                for (name, child) in children {
                    try discover(child, pointer: at + "/" + escapePointerToken(name), base: base, resource: resource, registers: registers)
                }
            } else if dialect == .draft07 && key == "dependencies", case .object(let children) = value {
                // Each member is an array of names or a schema; only schemas are walked.
                for (name, child) in children {
                    if case .array = child { continue }
                    try discover(child, pointer: at + "/" + escapePointerToken(name), base: base, resource: resource, registers: registers)
                }
            }
        }
    }

    /// An `$id` (its fragment removed) resolved against `base`: the new base, and when
    /// registering, a new resource.
    mutating func identify(_ reference: inout URIReference, text: String, pointer: String, base: inout URIReference, resource: inout Int, registers: Bool) throws(SchemaError) {
        reference = reference.resolved(against: base)
        reference.fragment = nil
        if registers {
            let uri = reference.withoutFragment
            if resourceIndex[uri] != nil && !(pointer.isEmpty && uri == Self.defaultBase) {
                throw invalid(pointer + "/$id", "$id \(quoted(text)) names a resource already named in this document")
            }
            resourceIndex[uri] = resources.count
            resource = resources.count
            resources.append(Resource(uri: uri, rootPointer: pointer))
        }
        base = reference
    }

    /// The members of one schema object that discovery checks: keywords refused in this
    /// dialect, `$schema` (the document's dialect, or refused: one document, one dialect), and
    /// 2020-12's anchors, registered.
    mutating func checkMembers(_ members: [(String, JSON)], pointer: String, resource: Int, registers: Bool) throws(SchemaError) {
        for (key, value) in members {
            let at = pointer + "/" + escapePointerToken(key)
            if dialect == .draft2020_12, let reason = Self.refused[key] {
                throw SchemaError(code: .unsupported, location: at, message: reason)
            }
            switch key {
            case "$schema":
                let named = try Self.dialect(value, at: at)
                guard named == dialect else {
                    throw SchemaError(code: .unsupported, location: at, message: "$schema names \(named.name) inside a \(dialect.name) document: one document, one dialect")
                }
            case "$anchor", "$dynamicAnchor":
                guard dialect == .draft2020_12 else { break }  // not identifiers in draft-07
                guard case .string(let name) = value, Self.isAnchorName(name) else {
                    throw invalid(at, "\(key) must be a name: a letter or _ first, then letters, digits, -, _ or .")
                }
                guard registers else { break }
                if let existing = resources[resource].anchors[name], existing != pointer {
                    throw invalid(at, "the anchor \(quoted(name)) is already defined in this resource, at \(SchemaError.display(schemaPointer: existing))")
                }
                resources[resource].anchors[name] = pointer
                if key == "$dynamicAnchor" { resources[resource].dynamicAnchors[name] = -1 }
            default: break
            }
        }
    }

    /// Draft-07's plain-name fragment in `$id` (HTML's name grammar): `^[A-Za-z][-A-Za-z0-9_:.]*$`.
    static func isPlainName(_ name: String) -> Bool {
        var first = true
        for c in name.utf8 {
            let letter = (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            let other = (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F || c == 0x3A || c == 0x2E
            guard letter || (!first && other) else { return false }
            first = false
        }
        return !first
    }

    /// `$anchor`'s grammar: `^[A-Za-z_][-A-Za-z0-9._]*$`.
    static func isAnchorName(_ name: String) -> Bool {
        var first = true
        for c in name.utf8 {
            let letter = (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
            let other = (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x2E
            guard letter || (!first && other) else { return false }
            first = false
        }
        return !first
    }

    func member(_ members: [(String, JSON)], _ key: String) -> JSON? {
        members.first { $0.0.utf8.elementsEqual(key.utf8) }?.1
    }

    // MARK: - References

    /// The node a `$ref` (or `$dynamicRef`) names, and the `$dynamicAnchor` name it is
    /// "bookended" by, if any.
    mutating func resolve(_ text: String, from site: Site, at: String) throws(SchemaError) -> (node: Int, dynamicAnchor: String?) {
        let target = URIReference(text).resolved(against: site.base)
        let uri = target.withoutFragment
        guard let r = resourceIndex[uri] else {
            throw SchemaError(code: .remoteReference, location: at, message: "remote $ref not supported: \(quoted(text)) names \(quoted(uri)), which is not in this document")
        }
        guard let fragment = URIReference.percentDecoded(target.fragment ?? "") else {
            throw invalid(at, "\(quoted(text)) has a malformed %-escape or one that is not UTF-8")
        }
        let root = resources[r].rootPointer
        if fragment.isEmpty || fragment.hasPrefix("/") {
            guard let tokens = URIReference.pointerTokens(fragment) else {
                throw invalid(at, "\(quoted(text)) is not a valid JSON pointer (~ must be followed by 0 or 1)")
            }
            let pointer = root + tokens.map { "/" + escapePointerToken($0) }.joined()
            if let index = siteIndex[pointer] { return (index, nil) }
            return (try discoverTarget(pointer, tokens: tokens, resource: r, text: text, at: at), nil)
        }
        guard let pointer = resources[r].anchors[fragment], let index = siteIndex[pointer] else {
            throw SchemaError(code: .unresolvedReference, location: at, message: "\(quoted(text)): there is no $anchor or $dynamicAnchor \(quoted(fragment)) in \(quoted(uri))")
        }
        return (index, resources[r].dynamicAnchors[fragment] != nil ? fragment : nil)
    }

    /// A pointer to a place discovery did not walk: compiled as a schema if it holds one.
    mutating func discoverTarget(_ pointer: String, tokens: [String], resource r: Int, text: String, at: String) throws(SchemaError) -> Int {
        var value = sites[siteIndex[resources[r].rootPointer]!].value
        for token in tokens {
            guard let next = child(of: value, token) else {
                throw SchemaError(code: .unresolvedReference, location: at, message: "\(quoted(text)): the document has nothing at \(SchemaError.display(schemaPointer: pointer))")
            }
            value = next
        }
        switch value {
        case .object, .bool:
            try discover(value, pointer: pointer, base: URIReference(resources[r].uri), resource: r, registers: false)
            return siteIndex[pointer]!
        default:
            throw SchemaError(code: .unresolvedReference, location: at, message: "\(quoted(text)) points at \(describe(value)), not a schema")
        }
    }

    func child(of value: JSON, _ token: String) -> JSON? {
        switch value {
        case .object(let members): return member(members, token)
        case .array(let items):
            guard let i = Int(token), String(i) == token, items.indices.contains(i) else { return nil }
            return items[i]
        default: return nil
        }
    }

    // MARK: - One subschema

    mutating func compileNode(_ site: Site) throws(SchemaError) -> Node {
        guard case .object(let members) = site.value else {
            guard case .bool(let b) = site.value else { preconditionFailure("discovery admits objects and booleans") }
            return Node(location: site.pointer, resource: site.resource, constant: b)
        }
        func child(_ pointer: String) -> Int { siteIndex[pointer]! }
        var k = KeywordSet()
        let referenceOnly = isReferenceOnly(members)
        var additionalItems: String? = nil
        for (key, value) in members {
            let at = site.pointer + "/" + escapePointerToken(key)
            if dialect == .draft07 {
                if referenceOnly && key != "$ref" { continue }
                if Self.notInDraft07.contains(key) { continue }  // unknown keywords in draft-07
                switch key {
                case "items":
                    if case .array = value { k.prefixItems = try schemaArray(value, at, key).map(child) } else { k.items = child(at) }
                    continue
                case "additionalItems":
                    additionalItems = at
                    continue
                case "dependencies":
                    try dependencies(value, at, child, &k)
                    continue
                case "definitions":
                    _ = try schemaMap(value, at, key)
                    continue
                default: break  // the same meaning in both dialects
                }
            }
            switch key {
            case "type": k.type = try typeSet(value, at)
            case "const": k.constant = value
            case "enum":
                guard case .array(let values) = value else { throw invalid(at, "enum must be an array") }
                k.enumeration = values
            case "minimum": k.minimum = try number(value, at, key)
            case "maximum": k.maximum = try number(value, at, key)
            case "exclusiveMinimum": k.exclusiveMinimum = try number(value, at, key)
            case "exclusiveMaximum": k.exclusiveMaximum = try number(value, at, key)
            case "multipleOf":
                let n = try number(value, at, key)
                guard Number.compare(n, .int(0)) > 0, n.decimal != nil else { throw invalid(at, "multipleOf must be greater than 0") }
                k.multipleOf = n
            case "minLength": k.minLength = try count(value, at, key)
            case "maxLength": k.maxLength = try count(value, at, key)
            case "pattern":
                guard case .string(let source) = value else { throw invalid(at, "pattern must be a string") }
                k.pattern = try pattern(source, at)
            case "minItems": k.minItems = try count(value, at, key)
            case "maxItems": k.maxItems = try count(value, at, key)
            case "uniqueItems":
                guard case .bool(let b) = value else { throw invalid(at, "uniqueItems must be true or false") }
                k.uniqueItems = b
            case "prefixItems": k.prefixItems = try schemaArray(value, at, key).map(child)
            case "items":
                guard case .array = value else { k.items = child(at); break }
                throw invalid(at, "items must be a schema in draft 2020-12: an array of schemas is prefixItems")
            case "contains": k.contains = child(at)
            case "minContains": k.minContains = try count(value, at, key)
            case "maxContains": k.maxContains = try count(value, at, key)
            case "required": k.required = try stringArray(value, at, key)
            case "minProperties": k.minProperties = try count(value, at, key)
            case "maxProperties": k.maxProperties = try count(value, at, key)
            case "dependentRequired":
                guard case .object(let entries) = value else { throw invalid(at, "dependentRequired must be an object") }
                k.dependentRequired = []
                for (name, list) in entries {
                    k.dependentRequired!.append((name, try stringArray(list, at + "/" + escapePointerToken(name), key)))
                }
            case "properties":
                k.properties = try schemaMap(value, at, key).map { ($0, child($1)) }
            case "patternProperties":
                k.patternProperties = []
                for (source, pointer) in try schemaMap(value, at, key) {
                    k.patternProperties!.append((try pattern(source, pointer), child(pointer)))
                }
            case "additionalProperties": k.additionalProperties = child(at)
            case "propertyNames": k.propertyNames = child(at)
            case "dependentSchemas": k.dependentSchemas = try schemaMap(value, at, key).map { ($0, child($1)) }
            case "$defs": _ = try schemaMap(value, at, key)
            case "$ref", "$dynamicRef":
                guard case .string(let text) = value else { throw invalid(at, "\(key) must be a string") }
                let (target, anchor) = try resolve(text, from: site, at: at)
                if key == "$ref" { k.ref = target } else { k.dynamicRef = (target, anchor) }
            case "allOf": k.allOf = try schemaArray(value, at, key).map(child)
            case "anyOf": k.anyOf = try schemaArray(value, at, key).map(child)
            case "oneOf": k.oneOf = try schemaArray(value, at, key).map(child)
            case "not": k.not = child(at)
            case "if": k.if = child(at)
            case "then": k.then = child(at)
            case "else": k.else = child(at)
            case "unevaluatedItems": k.unevaluatedItems = child(at)
            case "unevaluatedProperties": k.unevaluatedProperties = child(at)
            default: break  // annotations (title, format, default, …) and unknown keywords
            }
        }
        // additionalItems means something only beside an array of items (draft-07).
        if let additionalItems, k.prefixItems != nil { k.items = child(additionalItems) }
        var node = Node(location: site.pointer, resource: site.resource, constant: nil)
        node.draft07 = dialect == .draft07
        node.keywords = k.ordered()
        node.hasUnevaluated = k.unevaluatedItems != nil || k.unevaluatedProperties != nil
        return node
    }

    /// Draft-07's `dependencies`: per property, an array of names (2020-12's `dependentRequired`)
    /// or a schema (`dependentSchemas`).
    func dependencies(_ value: JSON, _ at: String, _ child: (String) -> Int, _ k: inout KeywordSet) throws(SchemaError) {
        guard case .object(let entries) = value else { throw invalid(at, "dependencies must be an object") }
        for (name, entry) in entries {
            let pointer = at + "/" + escapePointerToken(name)
            switch entry {
            case .array:
                k.dependentRequired = (k.dependentRequired ?? []) + [(name, try stringArray(entry, pointer, "dependencies"))]
            case .object, .bool:
                k.dependentSchemas = (k.dependentSchemas ?? []) + [(name, child(pointer))]
            default:
                throw invalid(pointer, "each member of dependencies must be an array of property names or a schema")
            }
        }
    }

    func typeSet(_ value: JSON, _ at: String) throws(SchemaError) -> TypeSet {
        func one(_ name: String) throws(SchemaError) -> TypeSet {
            guard let t = TypeSet.names.first(where: { $0.0 == name })?.1 else {
                throw invalid(at, "\(quoted(name)) is not a type: use null, boolean, object, array, number, string or integer")
            }
            return t
        }
        switch value {
        case .string(let name): return try one(name)
        case .array(let names) where !names.isEmpty:
            var set: TypeSet = []
            for name in names {
                guard case .string(let n) = name else { throw invalid(at, "type must be a string or an array of strings") }
                let t = try one(n)
                guard !set.contains(t) else { throw invalid(at, "type names \(quoted(n)) twice") }
                set.insert(t)
            }
            return set
        default: throw invalid(at, "type must be a string or a non-empty array of strings")
        }
    }

    func number(_ value: JSON, _ at: String, _ key: String) throws(SchemaError) -> Number {
        guard let n = Number(value), n.decimal != nil else { throw invalid(at, "\(key) must be a finite number") }
        return n
    }

    /// A non-negative integer (2.0 counts); a huge one is clamped to Int.max, which no
    /// instance reaches anyway.
    func count(_ value: JSON, _ at: String, _ key: String) throws(SchemaError) -> Int {
        switch value {
        case .int(let n) where n >= 0: return Int(n)
        case .uint: return Int.max
        case .double(let d) where d >= 0 && Number.isIntegral(d):
            return d < 9.2e18 ? Int(d) : Int.max
        default: throw invalid(at, "\(key) must be a non-negative integer")
        }
    }

    func stringArray(_ value: JSON, _ at: String, _ key: String) throws(SchemaError) -> [String] {
        guard case .array(let items) = value else { throw invalid(at, "\(key) must be an array of strings") }
        var seen = Set<ExactKey>()
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else { throw invalid(at, "\(key) must be an array of strings") }
            guard seen.insert(ExactKey(s)).inserted else { throw invalid(at, "\(key) lists \(quoted(s)) twice") }
            out.append(s)
        }
        return out
    }

    /// The pointers of the subschemas of a keyword whose value is an array of schemas.
    func schemaArray(_ value: JSON, _ at: String, _ key: String) throws(SchemaError) -> [String] {
        guard case .array(let items) = value, !items.isEmpty else { throw invalid(at, "\(key) must be a non-empty array of schemas") }
        return items.indices.map { at + "/\($0)" }
    }

    /// (name, pointer) of each member of a keyword whose value is an object of schemas.
    func schemaMap(_ value: JSON, _ at: String, _ key: String) throws(SchemaError) -> [(String, String)] {
        guard case .object(let members) = value else { throw invalid(at, "\(key) must be an object of schemas") }
        return members.map { ($0.0, at + "/" + escapePointerToken($0.0)) }
    }

    mutating func pattern(_ source: String, _ at: String) throws(SchemaError) -> Pattern {
        if let cached = patternCache[source] { return cached }
        let compiled: Pattern
        do {
            compiled = try Pattern(source, maxLength: limits.maxPatternLength, maxProgram: limits.maxPatternProgram)
        } catch {
            let shown = source.unicodeScalars.count > 80 ? String(String.UnicodeScalarView(source.unicodeScalars.prefix(80))) + "…" : source
            let place = error.offset.map { " (at character \($0))" } ?? ""
            let code: SchemaError.Code = error.message.contains("(limit ") ? .limit : .invalidPattern
            throw SchemaError(code: code, location: at, message: "pattern \(quoted(shown)): \(error.message)\(place)")
        }
        patternInstructions += compiled.program.count
        guard patternInstructions <= limits.maxPatternProgramTotal else {
            throw SchemaError(code: .limit, location: at, message: "the patterns compile to more than \(limits.maxPatternProgramTotal) instructions together (limit maxPatternProgramTotal)")
        }
        patternCache[source] = compiled
        return compiled
    }

    // MARK: - Cycles

    /// A cycle of in-place applicators (`$ref`, `allOf`, `not`, …) applies a schema to the same
    /// value forever: refused. A `$dynamicRef` that is really dynamic is checked while
    /// validating instead.
    func checkCycles(_ nodes: [Node]) throws(SchemaError) {
        func inPlace(_ node: Node) -> [Int] {
            var out: [Int] = []
            for keyword in node.keywords {
                switch keyword {
                case .ref(let t): out.append(t)
                case .dynamicRef(let t, nil): out.append(t)
                case .allOf(let c), .anyOf(let c), .oneOf(let c): out += c
                case .not(let c): out.append(c)
                case .conditional(let i, let t, let e): out.append(i); if let t { out.append(t) }; if let e { out.append(e) }
                case .dependentSchemas(let d): out += d.map(\.1)
                default: break
                }
            }
            return out
        }
        // Iterative depth-first search: 0 unvisited, 1 on the path, 2 done.
        var state = [UInt8](repeating: 0, count: nodes.count)
        for start in nodes.indices where state[start] == 0 {
            var stack: [(node: Int, next: [Int])] = [(start, inPlace(nodes[start]))]
            state[start] = 1
            while !stack.isEmpty {
                guard let next = stack[stack.count - 1].next.popLast() else {
                    state[stack.removeLast().node] = 2
                    continue
                }
                if state[next] == 1 {
                    let from = stack.firstIndex { $0.node == next }!
                    let cycle = stack[from...].map { SchemaError.display(schemaPointer: nodes[$0.node].location) } + [SchemaError.display(schemaPointer: nodes[next].location)]
                    throw SchemaError(code: .referenceCycle, location: nodes[next].location,
                                      message: "$ref cycle \(cycle.joined(separator: " → ")): it applies a schema to the same value again without consuming any of it")
                }
                if state[next] == 0 {
                    state[next] = 1
                    stack.append((next, inPlace(nodes[next])))
                }
            }
        }
    }
}
