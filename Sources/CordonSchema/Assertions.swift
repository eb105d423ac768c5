import CordonJSON

/// The keywords that look at the value itself, and what they need: pattern matching under the
/// budget, JSON equality, and a hash that agrees with it.
extension Evaluation {
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
                    report(nodes[node].draft07 ? "dependencies" : "dependentRequired", node, "the property \(quoted(other)) is required when \(quoted(name)) is present")
                    if halted { return false }
                }
            }
            return ok
        default: preconditionFailure("not a value assertion")
        }
    }


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
