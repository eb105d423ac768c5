import CordonJSON
import Foundation
import Testing

@testable import CordonSchema

func schema(_ text: String, limits: SchemaLimits = SchemaLimits()) throws -> JSONSchema {
    try JSONSchema.compile(try JSON.parse(text), limits: limits)
}

func json(_ text: String) throws -> JSON { try JSON.parse(text) }

/// The compile error for `text`, or nil when it compiles.
func compileError(_ text: String, limits: SchemaLimits = SchemaLimits()) throws -> SchemaError? {
    let document = try JSON.parse(text)
    do {
        _ = try JSONSchema.compile(document, limits: limits)
        return nil
    } catch {
        return error
    }
}

func compileError(_ document: JSON, limits: SchemaLimits = SchemaLimits()) -> SchemaError? {
    do {
        _ = try JSONSchema.compile(document, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// `levels` arrays, one inside the other, around `inner`.
func nestedArrays(_ levels: Int, around inner: JSON = .int(1)) -> JSON {
    var value = inner
    for _ in 0..<levels { value = .array([value]) }
    return value
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Each cap: reached, it ends in a refusal or a violation that names it, quickly, and never
/// in a crash, a hang or a "valid".
@Suite struct BoundsTests {
    // MARK: Patterns

    @Test func nestedQuantifiersDoNotBacktrack() throws {
        // (a+)+$ against "aaaa…b" takes 2^n steps in a backtracking engine. Here it is an NFA
        // simulation, so the answer (no match) comes back in a few steps per character.
        let s = try schema(##"{"pattern": "(a+)+$"}"##)
        for n in [30, 1_000, 20_000] {
            let text = String(repeating: "a", count: n) + "b"
            let clock = ContinuousClock()
            var result: SchemaValidation?
            let elapsed = clock.measure { result = s.validate(.string(text)) }
            let violations = try #require(result?.violations)
            #expect(violations.count == 1)
            #expect(violations.first?.keyword == "pattern")
            #expect(violations.first?.message.hasSuffix("does not match the pattern (a+)+$") == true)
            #expect(seconds(elapsed) < 0.5, "n = \(n): \(elapsed)")
        }
        #expect(s.validate(.string("baaa")).isValid)
    }

    @Test func aPatternPastItsStepBudgetIsTooExpensiveNotAHang() throws {
        // Linear, but long: a 100,000-character string against a pattern of a dozen instructions
        // takes more than the 500,000 steps one match may take.
        let s = try schema(##"{"pattern": "^(\\w+\\s?)*$"}"##)
        let text = String(repeating: "ab ", count: 33_334)
        let clock = ContinuousClock()
        var result: SchemaValidation?
        let elapsed = clock.measure { result = s.validate(.string(text)) }
        let violation = try #require(result?.violations.last)
        #expect(violation.keyword == "maxPatternSteps")
        #expect(violation.message.hasPrefix("pattern too expensive: matching ^(\\w+\\s?)*$ against a string of 100002 characters took more than 500000 steps"))
        #expect(violation.message.contains("(limit maxPatternSteps)"))
        #expect(violation.schemaLocation == "/pattern")
        #expect(seconds(elapsed) < 2, "\(elapsed)")
        // The same string, short enough, matches: the budget is what refused it.
        #expect(s.validate(.string("ab ab ab")).isValid)
    }

    @Test func anExhaustedBudgetInsideNotIsInvalidNotAMatchFailure() throws {
        // If "too expensive" read as "does not match", not would turn it into "valid".
        let s = try schema(##"{"not": {"pattern": "^(\\w+\\s?)*$"}}"##)
        let result = s.validate(.string(String(repeating: "ab ", count: 33_334)))
        #expect(!result.isValid)
        #expect(result.violations.map(\.keyword) == ["maxPatternSteps"])
        let inAnyOf = try schema(##"{"anyOf": [{"pattern": "^(\\w+\\s?)*$"}, {"not": {"pattern": "^(\\w+\\s?)*$"}}]}"##)
        #expect(!inAnyOf.validate(.string(String(repeating: "ab ", count: 33_334))).isValid)
        #expect(inAnyOf.validate(.string("ab")).isValid)
    }

    @Test func patternsPastTheirLengthOrProgramCapAreRefused() throws {
        let long = String(repeating: "a", count: 1_001)
        let tooLong = try #require(compileError(JSON.object([("pattern", .string(long))])))
        #expect(tooLong.code == .limit)
        #expect(tooLong.location == "/pattern")
        #expect(tooLong.message.contains("limit maxPatternLength"))

        let unrolled = try #require(try compileError(##"{"patternProperties": {"^((ab){1000}){1000}$": true}}"##))
        #expect(unrolled.code == .limit)
        #expect(unrolled.location == "/patternProperties/^((ab){1000}){1000}$")
        #expect(unrolled.message.contains("limit maxPatternProgram"))
        // Just under the cap compiles.
        #expect(try compileError(##"{"pattern": "^a{1,4000}$"}"##) == nil)

        // Each under its cap, together past theirs: eleven patterns of about 9,500 instructions.
        let many = (0..<11).map { ("^a{9500}b\($0)$", JSON.bool(true)) }
        let together = try #require(compileError(.object([("patternProperties", .object(many))])))
        #expect(together.code == .limit)
        #expect(together.location == "/patternProperties/^a{9500}b10$")
        #expect(together.message == "the patterns compile to more than 100000 instructions together (limit maxPatternProgramTotal)")
        #expect(compileError(.object([("patternProperties", .object(Array(many.prefix(10))))])) == nil)
    }

    @Test func aLargeClassCostsStepsForItsSize() throws {
        // Testing a scalar against a class of 300 ranges is 300 comparisons, not one step.
        let ranges = (0..<300).map { i -> String in
            let lo = Unicode.Scalar(0x4E00 + i * 4)!, hi = Unicode.Scalar(0x4E00 + i * 4 + 1)!
            return "\(lo)-\(hi)"
        }.joined()
        let large = try Pattern("^[a\(ranges)]*$", maxLength: 1_000, maxProgram: 10_000)
        let small = try Pattern("^[ab]*$", maxLength: 1_000, maxProgram: 10_000)
        let text = Array(String(repeating: "a", count: 1_000).unicodeScalars)
        var largeSteps = 0, smallSteps = 0
        #expect(large.firstMatch(in: text, budget: .max, steps: &largeSteps) == .match)
        #expect(small.firstMatch(in: text, budget: .max, steps: &smallSteps) == .match)
        #expect(largeSteps > smallSteps * 10, "\(largeSteps) against \(smallSteps)")
    }

    // MARK: Depth

    @Test func aSchemaNestedPastTheCapIsRefused() throws {
        // 40 levels of properties are 80 levels of JSON: past 64.
        var deep: JSON = .object([("type", .string("string"))])
        for _ in 0..<40 { deep = .object([("properties", .object([("a", deep)]))]) }
        let error = try #require(compileError(deep))
        #expect(error.code == .limit)
        #expect(error.message == "nested deeper than 64 levels (limit maxSchemaDepth)")
        #expect(error.location.hasPrefix("/properties/a/properties/a/"))
        // The depth counts every value, a const's included.
        let deepConst = JSON.object([("const", nestedArrays(70))])
        #expect(compileError(deepConst)?.message.contains("maxSchemaDepth") == true)
        // Thirty levels (60 of JSON) compile.
        var fine: JSON = .object([("type", .string("string"))])
        for _ in 0..<30 { fine = .object([("properties", .object([("a", fine)]))]) }
        #expect(compileError(fine) == nil)
    }

    @Test func anInstanceNestedPastTheCapIsAViolation() throws {
        // CordonJSON's parser stops at 64 levels; a value built in code need not have been parsed.
        let s = try schema(##"{"type": "array"}"##)
        // (Far deeper, and releasing the value itself would recurse past the stack.)
        let result = s.validate(nestedArrays(1_000))
        #expect(result.violations.map(\.keyword) == ["maxInstanceDepth"])
        #expect(result.violations.first?.message == "the instance is nested deeper than 64 levels (limit maxInstanceDepth)")
        #expect(result.violations.first?.instanceLocation == "/" + Array(repeating: "0", count: 64).joined(separator: "/"))
        #expect(s.validate(nestedArrays(63)).isValid)
    }

    @Test func referencesFollowedPastTheCapAreAViolation() throws {
        let recursive = ##"{"$defs": {"list": {"items": {"$ref": "#/$defs/list"}}}, "$ref": "#/$defs/list"}"##
        var limits = SchemaLimits()
        limits.maxRefDepth = 10
        let s = try schema(recursive, limits: limits)
        #expect(s.validate(nestedArrays(8)).isValid)
        let result = s.validate(nestedArrays(20))
        #expect(result.violations.map(\.keyword) == ["maxRefDepth"])
        #expect(result.violations.first?.message.contains("more than 10 references followed inside one another (limit maxRefDepth)") == true)
        // With the defaults, the deepest instance the parser admits is fine.
        #expect(try schema(recursive).validate(nestedArrays(63)).isValid)
    }

    @Test func evaluationDepthIsCappedWhateverElseAllows() throws {
        var limits = SchemaLimits()
        limits.maxEvaluationDepth = 20
        let s = try schema(##"{"$defs": {"list": {"type": "array", "items": {"$ref": "#/$defs/list"}}}, "$ref": "#/$defs/list"}"##, limits: limits)
        let result = s.validate(nestedArrays(30))
        #expect(result.violations.map(\.keyword) == ["maxEvaluationDepth"])
        #expect(!result.isValid)
    }

    // MARK: Cycles

    @Test func aReferenceCycleThatConsumesNothingIsRefused() throws {
        let twoStep = try #require(try compileError(##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}"##))
        #expect(twoStep.code == .referenceCycle)
        #expect(twoStep.message.hasPrefix("$ref cycle #/$defs/a → #/$defs/b → #/$defs/b/allOf/0 → #/$defs/a"))
        let toRoot = try #require(try compileError(##"{"anyOf": [{"type": "string"}, {"$ref": "#"}]}"##))
        #expect(toRoot.code == .referenceCycle)
        #expect(toRoot.description.contains("#/anyOf/1"))
        // Recursion through a member or an item consumes input: fine.
        #expect(try compileError(##"{"properties": {"next": {"$ref": "#"}}}"##) == nil)
    }

    @Test func aDynamicReferenceCycleIsCaughtWhileValidating() throws {
        // $dynamicRef's target depends on the dynamic scope, so this cycle is only known at run time.
        let s = try schema(##"{"$id": "https://example.com/root", "$dynamicAnchor": "node", "allOf": [{"$dynamicRef": "#node"}]}"##)
        let result = s.validate(.int(1))
        #expect(result.violations.map(\.keyword) == ["$dynamicRef"])
        #expect(result.violations.first?.message == "$dynamicRef cycle: #/allOf/0 is applied to this value again without consuming any of it"
                || result.violations.first?.message.contains("cycle") == true)
        #expect(result.violations.first?.schemaLocation == "/allOf/0/$dynamicRef")
    }

    // MARK: Work

    @Test func exponentialFanOutStopsAtTheStepBudget() throws {
        // Each level applies the next one twice, in place: 2^40 applications without the budget.
        var members: [(String, JSON)] = [("l40", .bool(true))]
        for level in (0..<40).reversed() {
            let next = JSON.string("#/$defs/l\(level + 1)")
            members.append(("l\(level)", .object([("allOf", .array([.object([("$ref", next)]), .object([("$ref", next), ("type", .string("integer"))])]))])))
        }
        let document = JSON.object([("$defs", .object(members)), ("$ref", .string("#/$defs/l0"))])
        var limits = SchemaLimits()
        limits.maxSteps = 200_000  // a tenth of the default: the test runs in a debug build
        let s = try JSONSchema.compile(document, limits: limits)
        let clock = ContinuousClock()
        var result: SchemaValidation?
        let elapsed = clock.measure { result = s.validate(.int(1)) }
        #expect(result?.violations.map(\.keyword) == ["maxSteps"])
        #expect(result?.violations.first?.message == "validation stopped: it took more than 200000 steps (limit maxSteps)")
        #expect(seconds(elapsed) < 5, "\(elapsed)")
        // Without the fan-out, the same schema is cheap: the budget is what stopped it.
        #expect(try JSONSchema.compile(.object([("$defs", .object(members)), ("$ref", .string("#/$defs/l39"))]), limits: limits).validate(.int(1)).isValid)
    }

    @Test func tooManySubschemasAreRefused() throws {
        let properties = (0..<10_001).map { ("p\($0)", JSON.object([])) }
        let error = try #require(compileError(.object([("properties", .object(properties))])))
        #expect(error.code == .limit)
        #expect(error.message == "more than 10000 subschemas (limit maxSchemaNodes)")
    }

    @Test func violationsStopAtTheCapAndSaySo() throws {
        let s = try schema(##"{"items": {"type": "string"}}"##)
        let result = s.validate(.array((0..<50).map { .int(Int64($0)) }))
        #expect(result.violations.count == 20)
        #expect(result.truncated)
        #expect(result.violations.map(\.instanceLocation) == (0..<20).map { "/\($0)" })
        #expect(result.description.hasSuffix("(stopped after 20 violations: limit maxViolations)"))
        // Exactly as many as the cap is not truncated.
        let twenty = s.validate(.array((0..<20).map { .int(Int64($0)) }))
        #expect(twenty.violations.count == 20 && !twenty.truncated)
    }

    @Test func uniqueItemsOnALongArrayIsNotQuadratic() throws {
        let s = try schema(##"{"uniqueItems": true}"##)
        let items = (0..<50_000).map { JSON.object([("id", .int(Int64($0))), ("tag", .string("x"))]) }
        let clock = ContinuousClock()
        var result: SchemaValidation?
        let elapsed = clock.measure { result = s.validate(.array(items + [.object([("tag", .string("x")), ("id", .double(7))])])) }
        #expect(result?.violations.map(\.message) == ["the items at indexes 7 and 50000 are equal; uniqueItems requires every item to differ"])
        #expect(seconds(elapsed) < 5, "\(elapsed)")
    }
}

/// The caps keep recursion inside a small thread stack, not only inside the main thread's.
@Suite struct StackTests {
    /// Runs `body` on a thread of `stackSize` bytes and waits for it.
    static func onThread(stackSize: Int, _ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            body()
            done.signal()
        }
        thread.stackSize = stackSize
        thread.start()
        done.wait()
    }

    /// 64 definitions, each 28 allOfs deep and ending in a $ref to the next: evaluation
    /// nests until maxEvaluationDepth (400) stops it.
    static func deepestSchema() -> JSON {
        var defs: [(String, JSON)] = [("d64", .bool(true))]
        for d in (0..<64).reversed() {
            var inner: JSON = .object([("$ref", .string("#/$defs/d\(d + 1)"))])
            for _ in 0..<28 { inner = .object([("allOf", .array([inner]))]) }
            defs.append(("d\(d)", inner))
        }
        return .object([("$defs", .object(defs)), ("$ref", .string("#/$defs/d0"))])
    }

    /// A release build needs 256 KiB for the deepest validation the caps allow (measured: 128
    /// is not enough); a debug build's frames are several times larger.
    #if DEBUG
    static let smallStack = 2 << 20
    #else
    static let smallStack = 256 << 10
    #endif

    @Test func theDeepestValidationFitsASmallStack() throws {
        let schema = try JSONSchema.compile(Self.deepestSchema())
        let box = Box()
        Self.onThread(stackSize: Self.smallStack) {
            box.set(schema.validate(.int(1)))
        }
        let result = try #require(box.get())
        #expect(result.violations.map(\.keyword) == ["maxEvaluationDepth"])
    }

    @Test func theDeepestPatternFitsASmallStack() throws {
        let nested = String(repeating: "(", count: 100) + "a" + String(repeating: ")*", count: 100)
        let box = Box()
        Self.onThread(stackSize: Self.smallStack) {
            box.set(try? JSONSchema.compile(.object([("pattern", .string(nested))])).validate(.string("aaa")))
        }
        #expect(box.get()?.isValid == true)
        let tooDeep = String(repeating: "(", count: 101) + "a" + String(repeating: ")", count: 101)
        #expect(compileError(.object([("pattern", .string(tooDeep))]))?.message.contains("groups nested deeper than 100") == true)
    }

    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var value: SchemaValidation?
        func set(_ v: SchemaValidation?) { lock.withLock { value = v } }
        func get() -> SchemaValidation? { lock.withLock { value } }
    }
}
