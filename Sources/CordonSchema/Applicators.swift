import CordonJSON

/// The keywords that apply subschemas: to the same value (in place: `allOf`, `$ref`, `if`, …,
/// which also pass annotations up) or to its members and items.
extension Evaluation {
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
            let name = nodes[node].draft07 ? (i < prefix.count ? "items" : "additionalItems") : (i < prefix.count ? "prefixItems" : "items")
            let passed = applyChild(child, item, name, node, collect,
                                    falseMessage: i < prefix.count ? "no item is allowed at index \(i) (\(name)/\(i) is false)"
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
}
