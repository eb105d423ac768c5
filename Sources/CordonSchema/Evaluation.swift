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

    /// The keywords that only look at the value: none applies a subschema.
    mutating func assertion(_ keyword: Keyword, _ node: Int, _ instance: JSON, _ collect: Bool) -> Bool {
        switch keyword {
        case .type(let types):
            if types.admits(instance) { return true }
            if collect { report("type", node, "expected \(types.text), got \(describe(instance))") }
            return false

        case .constant(let value):
            if equal(instance, value, node) { return true }
            if collect && !aborted { report("const", node, "must be \(shortText(value)), got \(describe(instance))") }
            return false

        case .enumeration(let values):
            for value in values {
                if equal(instance, value, node) { return true }
            }
            if collect && !aborted {
                let shown = values.prefix(10).map { shortText($0, limit: 40) }.joined(separator: ", ")
                let more = values.count > 10 ? ", … (\(values.count) in all)" : ""
                report("enum", node, values.isEmpty ? "no value is allowed: enum is empty" : "\(describe(instance)) is not one of the allowed values: \(shown)\(more)")
            }
            return false

        case .minimum(let m), .maximum(let m), .exclusiveMinimum(let m), .exclusiveMaximum(let m):
            guard let n = Number(instance) else { return true }
            let c = Number.compare(n, m)
            let check: (name: String, ok: Bool, sentence: String)
            switch keyword {
            case .minimum: check = ("minimum", c >= 0, "is less than the minimum")
            case .maximum: check = ("maximum", c <= 0, "is greater than the maximum")
            case .exclusiveMinimum: check = ("exclusiveMinimum", c > 0, "is not greater than the exclusive minimum")
            default: check = ("exclusiveMaximum", c < 0, "is not less than the exclusive maximum")
            }
            if !check.ok && collect { report(check.name, node, "\(instance.text) \(check.sentence) \(m.json.text)") }
            return check.ok

        case .multipleOf(let divisor):
            guard let n = Number(instance) else { return true }
            if n.isMultiple(of: divisor) { return true }
            if collect { report("multipleOf", node, "\(instance.text) is not a multiple of \(divisor.json.text)") }
            return false

        case .minLength(let limit), .maxLength(let limit):
            guard case .string(let s) = instance else { return true }
            let length = s.unicodeScalars.count
            guard charge(length / 64, node) else { return false }
            if case .minLength = keyword, length < limit {
                if collect { report("minLength", node, "the string has \(plural(length, "character")), fewer than the minimum length \(limit)") }
                return false
            }
            if case .maxLength = keyword, length > limit {
                if collect { report("maxLength", node, "the string has \(plural(length, "character")), more than the maximum length \(limit)") }
                return false
            }
            return true

        case .pattern(let pattern):
            guard case .string(let s) = instance else { return true }
            let scalars = Array(s.unicodeScalars)
            guard charge(scalars.count / 64, node), let matched = matches(pattern, scalars, node, "pattern") else { return false }
            if !matched && collect { report("pattern", node, "\(quoted(s)) does not match the pattern \(pattern.shown)") }
            return matched

        case .minItems(let limit), .maxItems(let limit):
            guard case .array(let items) = instance else { return true }
            if case .minItems = keyword, items.count < limit {
                if collect { report("minItems", node, "the array has \(plural(items.count, "item")), fewer than the minimum \(limit)") }
                return false
            }
            if case .maxItems = keyword, items.count > limit {
                if collect { report("maxItems", node, "the array has \(plural(items.count, "item")), more than the maximum \(limit)") }
                return false
            }
            return true

        case .required(let names):
            guard case .object(let members) = instance else { return true }
            guard let keys = keySet(members, node), charge(names.count / 4, node) else { return false }
            var ok = true
            for name in names where !keys.contains(ExactKey(name)) {
                ok = false
                guard collect else { return false }
                report("required", node, "the required property \(quoted(name)) is missing")
                if halted { return false }
            }
            return ok

        case .minProperties(let limit), .maxProperties(let limit):
            guard case .object(let members) = instance else { return true }
            if case .minProperties = keyword, members.count < limit {
                if collect { report("minProperties", node, "the object has \(plural(members.count, "property", "properties")), fewer than the minimum \(limit)") }
                return false
            }
            if case .maxProperties = keyword, members.count > limit {
                if collect { report("maxProperties", node, "the object has \(plural(members.count, "property", "properties")), more than the maximum \(limit)") }
                return false
            }
            return true

        case .dependentRequired(let dependencies):
            guard case .object(let members) = instance else { return true }
            guard let keys = keySet(members, node), charge(dependencies.count / 4, node) else { return false }
            var ok = true
            for (name, needed) in dependencies where keys.contains(ExactKey(name)) {
                guard charge(needed.count / 4, node) else { return false }
                for other in needed where !keys.contains(ExactKey(other)) {
                    ok = false
                    guard collect else { return false }
                    report("dependentRequired", node, "the property \(quoted(other)) is required when \(quoted(name)) is present")
                    if halted { return false }
                }
            }
            return ok
        default: preconditionFailure("not a value assertion")
        }
    }

    mutating func propertyNames(_ child: Int, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .object(let members) = instance else { return true }
        var ok = true
        for (key, _) in members {
            var none: Annotations? = nil
            if evaluate(child, .string(key), collect: false, &none) { continue }
            ok = false
            guard collect, !aborted else { return false }
            let detail = capturing(cap: 1) { e in
                var ignored: Annotations? = nil
                _ = e.evaluate(child, .string(key), collect: true, &ignored)
            }
            let why = detail.first.map { ": " + $0.message } ?? ""
            report("propertyNames", node, "the property name \(quoted(key)) is not allowed\(why)")
            if halted { return false }
        }
        return ok
    }

    mutating func dependentSchemas(_ dependencies: [(String, Int)], _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .object(let members) = instance else { return true }
        guard let keys = keySet(members, node), charge(dependencies.count / 4, node) else { return false }
        var ok = true
        for (name, child) in dependencies where keys.contains(ExactKey(name)) {
            if !evaluate(child, instance, collect: collect, &local) {
                ok = false
                if !collect || halted { return false }
            }
        }
        return ok
    }

    mutating func dynamicRef(_ target: Int, _ anchor: String?, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        var resolved = target
        if let anchor {
            // The outermost resource in the dynamic scope that has this $dynamicAnchor.
            for r in scope {
                if let n = resources[r].dynamicAnchors[anchor] {
                    resolved = n
                    break
                }
            }
        }
        return follow(resolved, from: node, "$dynamicRef", instance, collect, &local)
    }

    mutating func allOf(_ children: [Int], _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        var ok = true
        for child in children {
            if !evaluate(child, instance, collect: collect, &local) {
                ok = false
                if !collect || halted { return false }
            }
        }
        return ok
    }

    mutating func anyOf(_ children: [Int], _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        var passed = false
        for child in children {
            var branch: Annotations? = local == nil ? nil : Annotations()
            if evaluate(child, instance, collect: false, &branch) {
                passed = true
                // Every passing branch's annotations count; without them the first will do.
                guard let branch else { break }
                local!.merge(branch)
            }
            if aborted { return false }
        }
        if !passed && collect { report("anyOf", node, "matches none of the \(children.count) schemas in anyOf" + details(children, instance)) }
        return passed
    }

    mutating func oneOf(_ children: [Int], _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        var matching: [Int] = []
        var kept: Annotations? = nil
        for (k, child) in children.enumerated() {
            var branch: Annotations? = local == nil ? nil : Annotations()
            if evaluate(child, instance, collect: false, &branch) {
                matching.append(k)
                if matching.count > 1 { break }
                kept = branch
            }
            if aborted { return false }
        }
        if matching.count == 1 {
            if let kept { local!.merge(kept) }
            return true
        }
        if collect {
            if matching.isEmpty {
                report("oneOf", node, "matches none of the \(children.count) schemas in oneOf" + details(children, instance))
            } else {
                report("oneOf", node, "matches more than one schema in oneOf (numbers \(matching[0]) and \(matching[1]), counting from 0); it must match exactly one")
            }
        }
        return false
    }

    mutating func not(_ child: Int, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        var none: Annotations? = nil
        let matched = evaluate(child, instance, collect: false, &none)
        if aborted { return false }
        if matched && collect { report("not", node, "matches the schema in not, which it must not") }
        return !matched
    }

    mutating func conditional(_ condition: Int, _ then: Int?, _ otherwise: Int?, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        if then == nil && otherwise == nil && local == nil { return true }
        var seen: Annotations? = local == nil ? nil : Annotations()
        let holds = evaluate(condition, instance, collect: false, &seen)
        if aborted { return false }
        if holds {
            if let seen { local!.merge(seen) }
            if let then { return evaluate(then, instance, collect: collect, &local) }
        } else if let otherwise {
            return evaluate(otherwise, instance, collect: collect, &local)
        }
        return true
    }

    mutating func unevaluatedItems(_ child: Int, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .array(let items) = instance else { return true }
        let seen = local ?? Annotations()
        var ok = true
        guard charge(items.count / 4, node) else { return false }
        for (i, item) in items.enumerated() where !seen.evaluated(item: i) {
            path.append(.index(i))
            let passed = applyChild(child, item, "unevaluatedItems", node, collect,
                                    falseMessage: "no item is allowed at index \(i): no prefixItems, items or contains here evaluates it (unevaluatedItems is false)")
            path.removeLast()
            if !passed {
                ok = false
                if !collect || halted { return false }
            }
        }
        local?.allItems = true
        return ok
    }

    mutating func unevaluatedProperties(_ child: Int, _ node: Int, _ instance: JSON, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .object(let members) = instance else { return true }
        let seen = local ?? Annotations()
        var ok = true
        guard charge(members.count / 4, node) else { return false }
        for (key, value) in members where !seen.properties.contains(ExactKey(key)) {
            path.append(.key(key))
            let passed = applyChild(child, value, "unevaluatedProperties", node, collect,
                                    falseMessage: "the property \(quoted(key)) is not allowed: no properties, patternProperties or additionalProperties here evaluates it (unevaluatedProperties is false)")
            path.removeLast()
            local?.properties.insert(ExactKey(key))
            if !passed {
                ok = false
                if !collect || halted { return false }
            }
        }
        return ok
    }

    mutating func items(_ instance: JSON, _ prefix: [Int], _ rest: Int?, _ node: Int, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .array(let items) = instance else { return true }
        var ok = true
        for (i, item) in items.enumerated() {
            let child: Int
            if i < prefix.count {
                child = prefix[i]
            } else if let rest {
                child = rest
            } else {
                break
            }
            path.append(.index(i))
            let passed = applyChild(child, item, i < prefix.count ? "prefixItems" : "items", node, collect,
                                    falseMessage: i < prefix.count ? "no item is allowed at index \(i) (prefixItems/\(i) is false)"
                                        : "no item is allowed at index \(i): the array may have at most \(plural(prefix.count, "item"))")
            path.removeLast()
            if !passed {
                ok = false
                if !collect || halted { return false }
            }
        }
        if local != nil {
            local!.itemPrefix = max(local!.itemPrefix, min(items.count, prefix.count))
            if rest != nil && items.count > prefix.count { local!.allItems = true }
        }
        return ok
    }

    mutating func contains(_ instance: JSON, _ child: Int, _ min: Int, _ max: Int?, _ node: Int, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .array(let items) = instance else { return true }
        if min == 0 && max == nil && local == nil { return true }
        var count = 0
        for (i, item) in items.enumerated() {
            path.append(.index(i))
            var none: Annotations? = nil
            let matched = evaluate(child, item, collect: false, &none)
            path.removeLast()
            if aborted { return false }
            if matched {
                count += 1
                local?.items.insert(i)
            }
            // Without annotations to gather, stop once the answer is known.
            if local == nil, let max, count > max { break }
            if local == nil, max == nil, count >= min { break }
        }
        if count < min {
            if collect {
                report(min == 1 ? "contains" : "minContains", node, count == 0
                    ? "no item matches the schema in contains"
                    : "only \(plural(count, "item")) match the schema in contains, fewer than minContains \(min)")
            }
            return false
        }
        if let max, count > max {
            if collect { report("maxContains", node, "\(plural(count, "item")) match the schema in contains, more than maxContains \(max)") }
            return false
        }
        return true
    }

    mutating func members(_ instance: JSON, _ properties: [ExactKey: Int], _ names: [String], _ patterns: [(Pattern, Int)],
                          _ additional: Int?, _ node: Int, _ collect: Bool, _ local: inout Annotations?) -> Bool {
        guard case .object(let members) = instance else { return true }
        var ok = true
        for (key, value) in members {
            guard charge(1, node) else { return false }
            let exact = ExactKey(key)
            var matched = false
            path.append(.key(key))
            defer { path.removeLast() }
            if let child = properties[exact] {
                matched = true
                if !applyChild(child, value, "properties", node, collect, falseMessage: "the property \(quoted(key)) is not allowed") {
                    ok = false
                }
            }
            if !patterns.isEmpty && !halted {
                let scalars = Array(key.unicodeScalars)
                guard charge(scalars.count / 64, node) else { return false }
                for (pattern, child) in patterns {
                    guard let m = matches(pattern, scalars, node, "patternProperties") else { return false }
                    guard m else { continue }
                    matched = true
                    if !applyChild(child, value, "patternProperties", node, collect,
                                   falseMessage: "the property \(quoted(key)) is not allowed: names matching \(pattern.shown) are refused") {
                        ok = false
                        if !collect || halted { break }
                    }
                }
            }
            if !matched, let additional, !halted {
                if !applyChild(additional, value, "additionalProperties", node, collect, falseMessage: Self.notAllowed(key, names, patterns)) {
                    ok = false
                }
            }
            if matched || additional != nil { local?.properties.insert(exact) }
            if !ok && (!collect || halted) { return false }
        }
        return ok
    }

    static func notAllowed(_ key: String, _ names: [String], _ patterns: [(Pattern, Int)]) -> String {
        var allowed: [String] = names.prefix(12).map { quoted($0) }
        if names.count > 12 { allowed.append("… (\(names.count) in all)") }
        allowed += patterns.prefix(3).map { "names matching \($0.0.shown)" }
        if allowed.isEmpty { return "the property \(quoted(key)) is not allowed: this object takes no properties" }
        return "the property \(quoted(key)) is not allowed; allowed: \(allowed.joined(separator: ", "))"
    }

    /// " — (0) /x: …; (1) …": the first violation of each of the first three alternatives.
    mutating func details(_ children: [Int], _ instance: JSON) -> String {
        guard !aborted else { return "" }
        var parts: [String] = []
        for (k, child) in children.prefix(3).enumerated() {
            let first = capturing(cap: 1) { e in
                var ignored: Annotations? = nil
                _ = e.evaluate(child, instance, collect: true, &ignored)
            }
            if let v = first.first { parts.append("(\(k)) \(v.description)") }
            if aborted { return "" }
        }
        guard !parts.isEmpty else { return "" }
        return " — " + parts.joined(separator: "; ") + (children.count > 3 ? "; …" : "")
    }

    // MARK: - Helpers

    mutating func keySet(_ members: [(String, JSON)], _ node: Int) -> Set<ExactKey>? {
        guard charge(members.count / 8, node) else { return nil }
        return Set(members.map { ExactKey($0.0) })
    }

    /// Whether `pattern` matches in `text`; nil when a budget ran out (the validation is over).
    mutating func matches(_ pattern: Pattern, _ text: [Unicode.Scalar], _ node: Int, _ keyword: String) -> Bool? {
        let remaining = Swift.max(0, limits.maxSteps - steps)
        let budget = Swift.min(limits.maxPatternSteps, remaining)
        var used = 0
        let outcome = pattern.firstMatch(in: text, budget: budget, steps: &used)
        steps += used
        switch outcome {
        case .match: return true
        case .noMatch: return false
        case .tooExpensive:
            if budget < limits.maxPatternSteps {
                abort("maxSteps", nodes[node].location + "/" + keyword, "validation stopped: it took more than \(limits.maxSteps) steps (limit maxSteps)")
            } else {
                abort("maxPatternSteps", nodes[node].location + "/" + keyword,
                      "pattern too expensive: matching \(pattern.shown) against a string of \(plural(text.count, "character")) took more than \(limits.maxPatternSteps) steps (limit maxPatternSteps)")
            }
            return nil
        }
    }

    /// JSON equality: numbers by value (1 == 1.0), strings by scalars, objects whatever their
    /// member order.
    mutating func equal(_ a: JSON, _ b: JSON, _ node: Int) -> Bool {
        guard charge(1, node) else { return false }
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let x), .string(let y)): return x.utf8.elementsEqual(y.utf8)
        case (.array(let x), .array(let y)):
            guard x.count == y.count else { return false }
            for (p, q) in zip(x, y) {
                if !equal(p, q, node) { return false }
            }
            return true
        case (.object(let x), .object(let y)):
            let mx = lastWins(x), my = lastWins(y)
            guard mx.count == my.count else { return false }
            for (key, value) in mx {
                guard let other = my[key], equal(value, other, node) else { return false }
            }
            return true
        default:
            guard let p = Number(a), let q = Number(b) else { return false }
            return Number.compare(p, q) == 0
        }
    }

    func lastWins(_ members: [(String, JSON)]) -> [ExactKey: JSON] {
        var map: [ExactKey: JSON] = [:]
        for (key, value) in members { map[ExactKey(key)] = value }
        return map
    }

    /// A hash under which equal values (as `equal` says) hash alike: numbers by value, objects
    /// regardless of member order.
    mutating func hash(_ value: JSON, into hasher: inout Hasher, _ node: Int) {
        steps += 1
        switch value {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(1); hasher.combine(b)
        case .string(let s): hasher.combine(2); hasher.combine(ExactKey(s))
        case .int(let n): hasher.combine(3); hasher.combine(n)
        case .uint(let n): hasher.combine(3); hasher.combine(n)
        case .double(let d):
            hasher.combine(3)
            // As the integer it equals, when it is one an Int64 or UInt64 holds (how .int and .uint hash).
            if Number.isIntegral(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0 {
                hasher.combine(Int64(d))
            } else if Number.isIntegral(d) && d >= 0 && d < 18446744073709551616.0 {
                hasher.combine(UInt64(d))
            } else {
                hasher.combine(d)
            }
        case .array(let items):
            hasher.combine(4)
            hasher.combine(items.count)
            for item in items { hash(item, into: &hasher, node) }
        case .object(let members):
            hasher.combine(5)
            let map = lastWins(members)
            hasher.combine(map.count)
            var sum = 0
            for (key, member) in map {
                var h = Hasher()
                h.combine(key)
                hash(member, into: &h, node)
                sum = sum &+ h.finalize()
            }
            hasher.combine(sum)
        }
    }

    mutating func uniqueItems(_ instance: JSON, _ node: Int, _ collect: Bool) -> Bool {
        guard case .array(let items) = instance, items.count > 1 else { return true }
        var buckets: [Int: [Int]] = [:]
        for (i, item) in items.enumerated() {
            var hasher = Hasher()
            hash(item, into: &hasher, node)
            guard charge(1, node) else { return false }
            let key = hasher.finalize()
            for j in buckets[key] ?? [] {
                guard equal(items[j], item, node) else { continue }
                if collect { report("uniqueItems", node, "the items at indexes \(j) and \(i) are equal; uniqueItems requires every item to differ") }
                return false
            }
            if aborted { return false }
            buckets[key, default: []].append(i)
        }
        return true
    }
}

func plural(_ n: Int, _ one: String, _ many: String? = nil) -> String {
    "\(n) \(n == 1 ? one : many ?? one + "s")"
}
