import CordonJSON

/// What a subschema evaluated of the value it was applied to (draft 2020-12's annotations,
/// reduced to what `unevaluatedProperties` and `unevaluatedItems` read): member names, and
/// item indexes as a prefix, a set, or all.
struct Annotations {
    var properties = Set<ExactKey>()
    var itemPrefix = 0
    var allItems = false
    var items = Set<Int>()

    mutating func merge(_ other: Annotations) {
        properties.formUnion(other.properties)
        itemPrefix = max(itemPrefix, other.itemPrefix)
        allItems = allItems || other.allItems
        items.formUnion(other.items)
    }

    func evaluated(item i: Int) -> Bool { allItems || i < itemPrefix || items.contains(i) }
}

/// One validation: the compiled nodes applied to an instance, with every budget counted.
///
/// Two modes, chosen per application. Collecting (the root, and every subschema that must hold
/// for the whole to hold: `properties`, `items`, `allOf`, `$ref`, `then`, …) records violations
/// and goes on after a failure; deciding (inside `anyOf`, `oneOf`, `not`, `if`, `contains`,
/// `propertyNames`) stops at the first failure and records nothing, and the applicator reports
/// one violation of its own. A cap reached in either mode (`fatal`) ends the whole validation as
/// invalid: a budget that ran out inside `not` must not read as "did not match".
struct Evaluation {
    let nodes: [Node]
    let resources: [Resource]
    let limits: SchemaLimits
    var steps = 0
    var violations: [SchemaViolation] = []
    var cap: Int
    /// Stop as soon as `cap` violations are held (a detail run wants one), rather than at the
    /// first one past it (the main run, which then says it was truncated).
    var stopAtCap = false
    /// A violation arrived with `cap` already held.
    var full = false
    var fatal: SchemaViolation?
    /// The instance location being evaluated.
    var path: [JSON.PathComponent] = []
    /// Dynamic scope: the resources entered, outermost first.
    var scope: [Int] = []
    /// `$ref`s being followed: the target and the instance depth it was applied at.
    var refs: [(node: Int, depth: Int)] = []
    var depth = 0

    init(nodes: [Node], resources: [Resource], limits: SchemaLimits) {
        self.nodes = nodes
        self.resources = resources
        self.limits = limits
        cap = limits.maxViolations
    }

    /// `fatal` is set: a flag of its own, read at every step (testing the optional would copy it).
    var aborted = false

    var halted: Bool { aborted || full }

    // MARK: - Reporting

    mutating func report(_ keyword: String, _ node: Int, _ message: String, schemaLocation: String? = nil) {
        guard violations.count < cap else {
            full = true
            return
        }
        violations.append(SchemaViolation(instanceLocation: jsonPointer(path), keyword: keyword,
                                          schemaLocation: schemaLocation ?? nodes[node].location + "/" + keyword, message: message))
        if stopAtCap && violations.count >= cap { full = true }
    }

    /// Ends the validation: a cap was reached.
    mutating func abort(_ name: String, _ schemaLocation: String, _ message: String) {
        guard !aborted else { return }
        aborted = true
        fatal = SchemaViolation(instanceLocation: jsonPointer(path), keyword: name, schemaLocation: schemaLocation, message: message)
    }

    mutating func charge(_ n: Int, _ node: Int) -> Bool {
        steps += n
        guard steps <= limits.maxSteps else {
            abort("maxSteps", nodes[node].location, "validation stopped: it took more than \(limits.maxSteps) steps (limit maxSteps)")
            return false
        }
        return !aborted
    }

    /// The violations `body` records, at most `cap` of them, kept apart from the main list.
    mutating func capturing(cap: Int, _ body: (inout Evaluation) -> Void) -> [SchemaViolation] {
        let saved = (violations, self.cap, stopAtCap, full)
        violations = []
        self.cap = cap
        stopAtCap = true
        full = false
        body(&self)
        let captured = violations
        (violations, self.cap, stopAtCap, full) = saved
        return captured
    }

    // MARK: - The whole instance

    mutating func run(_ instance: JSON) -> SchemaValidation {
        checkInstance(instance)
        if !aborted {
            var none: Annotations? = nil
            let valid = evaluate(0, instance, collect: true, &none)
            if !valid && violations.isEmpty && !aborted {
                // Every failing path records a violation; this keeps "invalid" from ever reading as valid.
                violations.append(SchemaViolation(instanceLocation: "", keyword: "invalid", schemaLocation: "", message: "does not match the schema"))
            }
        }
        var all = violations
        if let fatal { all.append(fatal) }
        return SchemaValidation(violations: all, truncated: full)
    }

    /// Before any schema runs: the instance is no deeper than the cap (so no recursion below
    /// goes deeper either), and no object names a member twice (the tool's reader might take
    /// the other one than the validator did).
    mutating func checkInstance(_ value: JSON) {
        guard !aborted else { return }
        guard path.count < limits.maxInstanceDepth else {
            abort("maxInstanceDepth", "", "the instance is nested deeper than \(limits.maxInstanceDepth) levels (limit maxInstanceDepth)")
            return
        }
        switch value {
        case .array(let items):
            for (i, item) in items.enumerated() {
                path.append(.index(i))
                checkInstance(item)
                path.removeLast()
            }
        case .object(let members):
            var keys = Set<ExactKey>()
            for (key, member) in members {
                if !keys.insert(ExactKey(key)).inserted {
                    report("duplicateKeys", 0, "the property \(quoted(key)) appears more than once: a reader may take either value", schemaLocation: "")
                }
                path.append(.key(key))
                checkInstance(member)
                path.removeLast()
            }
        default: break
        }
    }

    // MARK: - Subschemas

    /// Applies node `index` to `instance`. `annotations`, when not nil, receives what it evaluated.
    mutating func evaluate(_ index: Int, _ instance: JSON, collect: Bool, _ annotations: inout Annotations?) -> Bool {
        guard charge(1, index) else { return false }
        let node = nodes[index]
        if let constant = node.constant {
            if !constant && collect { report("false", index, "no value is allowed here (the schema is false)", schemaLocation: node.location) }
            return constant
        }
        depth += 1
        defer { depth -= 1 }
        guard depth <= limits.maxEvaluationDepth else {
            abort("maxEvaluationDepth", node.location, "validation stopped: subschemas applied inside one another more than \(limits.maxEvaluationDepth) deep (limit maxEvaluationDepth)")
            return false
        }
        let entered = scope.last != node.resource
        if entered { scope.append(node.resource) }
        defer { if entered { scope.removeLast() } }

        var local: Annotations? = annotations != nil || node.hasUnevaluated ? Annotations() : nil
        var valid = true
        for keyword in node.keywords {
            guard charge(1, index) else { return false }
            if !apply(keyword, index, instance, collect, &local) {
                valid = false
                if !collect { return false }
            }
            if halted { return false }
        }
        // A collecting run keeps what a failed subschema evaluated: the whole fails anyway, and
        // unevaluatedProperties then reports the members that really are unevaluated.
        if let local, annotations != nil { annotations!.merge(local) }
        return valid
    }

    /// A member's or item's subschema; a `false` one is reported with `falseMessage`.
    mutating func applyChild(_ child: Int, _ value: JSON, _ keyword: String, _ node: Int, _ collect: Bool, falseMessage: @autoclosure () -> String) -> Bool {
        if nodes[child].constant == false {
            guard charge(1, node) else { return false }
            if collect { report(keyword, node, falseMessage(), schemaLocation: nodes[child].location) }
            return false
        }
        var none: Annotations? = nil
        return evaluate(child, value, collect: collect, &none)
    }

    mutating func follow(_ target: Int, from node: Int, _ keyword: String, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard refs.count < limits.maxRefDepth else {
            abort("maxRefDepth", nodes[node].location + "/" + keyword, "validation stopped: more than \(limits.maxRefDepth) references followed inside one another (limit maxRefDepth)")
            return false
        }
        if refs.contains(where: { $0.node == target && $0.depth == path.count }) {
            abort(keyword, nodes[node].location + "/" + keyword, "\(keyword) cycle: \(SchemaError.display(schemaPointer: nodes[target].location)) is applied to this value again without consuming any of it")
            return false
        }
        refs.append((target, path.count))
        defer { refs.removeLast() }
        return evaluate(target, instance, collect: collect, &local)
    }

    // MARK: - Keywords

    /// One keyword. Each applicator is a function of its own: the frame of this one is on the
    /// path of every recursion, so it stays small (the sentences live in the leaves).
    mutating func apply(_ keyword: Keyword, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        switch keyword {
        case .uniqueItems: return uniqueItems(instance, node, collect)
        case .items(let prefix, let rest): return items(instance, prefix, rest, node, collect, &local)
        case .contains(let child, let min, let max): return contains(instance, child, min, max, node, collect, &local)
        case .members(let properties, let names, let patterns, let additional):
            return members(instance, properties, names, patterns, additional, node, collect, &local)
        case .propertyNames(let child): return propertyNames(child, node, instance, collect, &local)
        case .dependentSchemas(let dependencies): return dependentSchemas(dependencies, node, instance, collect, &local)
        case .ref(let target): return follow(target, from: node, "$ref", instance, collect, &local)
        case .dynamicRef(let target, let anchor): return dynamicRef(target, anchor, node, instance, collect, &local)
        case .allOf(let children): return allOf(children, node, instance, collect, &local)
        case .anyOf(let children): return anyOf(children, node, instance, collect, &local)
        case .oneOf(let children): return oneOf(children, node, instance, collect, &local)
        case .not(let child): return not(child, node, instance, collect, &local)
        case .conditional(let condition, let then, let otherwise):
            return conditional(condition, then, otherwise, node, instance, collect, &local)
        case .unevaluatedItems(let child): return unevaluatedItems(child, node, instance, collect, &local)
        case .unevaluatedProperties(let child): return unevaluatedProperties(child, node, instance, collect, &local)
        default: return assertion(keyword, node, instance, collect)
        }
    }
}
