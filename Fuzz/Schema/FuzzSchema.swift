@testable import CordonSchema
import CordonJSON
import FuzzSupport

/// CordonSchema on any bytes. A JSON array of two is [schema, instance]; any other JSON is a
/// schema, validated against a few fixed instances and against itself; bytes that are not JSON
/// are a pattern, matched against a few strings. Checked: validation ends and says the same
/// twice; valid means no violation; violations stay within the cap plus one for a limit; every
/// violation names a place the instance has, and its sentence starts with it; a pattern's
/// answer does not depend on the budget it was given, once it had enough.
@main enum FuzzSchema {
    /// Smaller than the defaults, so an input that runs a budget out costs milliseconds.
    static let limits: SchemaLimits = {
        var l = SchemaLimits()
        l.maxSteps = 100_000
        l.maxPatternSteps = 50_000
        return l
    }()

    static func main() {
        Fuzzer.run { input in
            let bytes = Array(input)
            guard let document = try? JSON.parse(bytes) else {
                pattern(String(decoding: bytes, as: UTF8.self))
                return
            }
            if case .array(let pair) = document, pair.count == 2 {
                validate(pair[0], [pair[1]])
            } else {
                validate(document, [.null, .int(0), .double(1.5), .string(""), .array([]), .object([]), document])
            }
        }
    }

    static func validate(_ schemaDocument: JSON, _ instances: [JSON]) {
        guard let schema = try? JSONSchema.compile(schemaDocument, limits: limits) else { return }
        for instance in instances {
            let result = schema.validate(instance)
            require(result == schema.validate(instance), "two validations of one instance differ")
            require(result.violations.count <= limits.maxViolations + 1, "\(result.violations.count) violations")
            require(!result.truncated || result.violations.count >= limits.maxViolations, "truncated below the cap")
            for v in result.violations {
                require(value(at: v.instanceLocation, in: instance), "\(v.instanceLocation) is not in the instance")
                require(v.description.hasPrefix(v.instanceLocation.isEmpty ? "(root): " : escapingControls(v.instanceLocation) + ": "),
                        "the sentence does not start with its place: \(v.description)")
                require(!v.keyword.isEmpty && !v.message.isEmpty, "a violation without keyword or message")
            }
        }
    }

    static func value(at pointer: String, in instance: JSON) -> Bool {
        guard let tokens = URIReference.pointerTokens(pointer) else { return false }
        var value = instance
        for token in tokens {
            switch value {
            case .object(let members):
                guard let next = members.last(where: { $0.0.utf8.elementsEqual(token.utf8) })?.1 else { return false }
                value = next
            case .array(let items):
                guard let i = Int(token), items.indices.contains(i) else { return false }
                value = items[i]
            default: return false
            }
        }
        return true
    }

    static let texts = ["", "a", "abc", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", "Hello, wörld 🐉\n", "0123-456_789", "  \t x "]

    static func pattern(_ source: String) {
        guard let p = try? Pattern(source, maxLength: limits.maxPatternLength, maxProgram: limits.maxPatternProgram) else { return }
        for text in texts {
            let scalars = Array(text.unicodeScalars)
            var small = 0, large = 0
            let bounded = p.firstMatch(in: scalars, budget: limits.maxPatternSteps, steps: &small)
            let unbounded = p.firstMatch(in: scalars, budget: .max, steps: &large)
            require(unbounded != .tooExpensive, "an unlimited budget ran out")
            require(bounded == .tooExpensive || bounded == unbounded, "the budget changed the answer for \(source)")
        }
    }
}
