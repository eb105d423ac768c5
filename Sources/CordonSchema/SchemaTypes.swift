import CordonJSON

/// The caps a schema and one validation run under. Each fails closed: a schema past a compile
/// cap is refused (`SchemaError` with code `.limit`), a validation past a run cap ends invalid
/// with a violation that names the cap.
public struct SchemaLimits: Sendable, Equatable {
    /// JSON nesting of the schema document, every value counted (`const` and `enum` ones too).
    public var maxSchemaDepth = 64
    /// Subschemas: each object or boolean in a schema position.
    public var maxSchemaNodes = 10_000
    /// Scalars in one `pattern` or `patternProperties` key.
    public var maxPatternLength = 1_000
    /// Instructions one pattern compiles to (`{n,m}` is unrolled).
    public var maxPatternProgram = 10_000
    /// Instructions of all the schema's distinct patterns together: what the compiled schema holds.
    public var maxPatternProgramTotal = 100_000
    /// `$ref` and `$dynamicRef` followed inside one another.
    public var maxRefDepth = 64
    /// JSON nesting of the instance.
    public var maxInstanceDepth = 64
    /// Subschemas applied inside one another, for any reason: keeps the evaluator's recursion
    /// inside a thread's stack whatever the other caps allow. At 400, the deepest validation
    /// needs 256 KiB of stack in a release build (2 MiB in a debug build).
    public var maxEvaluationDepth = 400
    /// Work units of one validation: a subschema or keyword applied, a member or item visited,
    /// a value compared, a pattern step. 2,000,000 of the costliest kind (in-place `$ref`
    /// fan-out) took 0.1 s of one core in a release build; a typical tool call takes hundreds.
    public var maxSteps = 2_000_000
    /// Steps of one pattern match (one per instruction a thread of the matcher visits: 5 to 15
    /// per character for usual patterns, about 16 ns each in a release build).
    public var maxPatternSteps = 500_000
    /// Violations reported before validation stops.
    public var maxViolations = 20

    public init() {}
}

/// Why a schema was refused: the schema location as a JSON pointer and the problem.
public struct SchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// A keyword's value is not what the specification allows (`"minLength": -1`).
        case invalidKeyword
        /// A keyword, dialect or regular-expression feature this validator does not implement:
        /// refused, because ignoring it could let through what the schema forbids.
        case unsupported
        /// A `$ref` to another document: nothing is fetched.
        case remoteReference
        /// A `$ref` to a place or anchor the document does not have.
        case unresolvedReference
        /// `$ref`s that lead back to where they started without consuming any of the instance.
        case referenceCycle
        /// A `pattern` that is not ECMA-262 syntax, or not the supported subset.
        case invalidPattern
        /// One of `SchemaLimits`' compile caps.
        case limit
    }

    public var code: Code
    /// A JSON pointer into the schema document ("" is the root).
    public var location: String
    public var message: String

    public init(code: Code, location: String, message: String) {
        self.code = code
        self.location = location
        self.message = message
    }

    public var description: String { "schema \(SchemaError.display(schemaPointer: location)): \(message)" }

    /// "#" then the pointer: `#/properties/count/maximum`, or `#` for the root.
    static func display(schemaPointer: String) -> String { "#" + escapingControls(schemaPointer) }
}

/// One way the instance breaks the schema.
public struct SchemaViolation: Sendable, Equatable, CustomStringConvertible {
    /// A JSON pointer into the instance ("" is the whole instance, `/items/2/name` a member).
    public var instanceLocation: String
    /// The keyword that failed (`maximum`, `required`), or for a check of Cordon's own the name
    /// of the cap (`maxSteps`, `maxPatternSteps`, …) or rule (`duplicateKeys`).
    public var keyword: String
    /// A JSON pointer to the keyword in the schema document.
    public var schemaLocation: String
    /// The sentence a person acts on, without the location: "12 is greater than the maximum 10".
    public var message: String

    public init(instanceLocation: String, keyword: String, schemaLocation: String, message: String) {
        self.instanceLocation = instanceLocation
        self.keyword = keyword
        self.schemaLocation = schemaLocation
        self.message = message
    }

    /// "/count: 12 is greater than the maximum 10"; the whole instance is "(root)". Control
    /// characters in the pointer are written as \u escapes, so a key cannot forge a line.
    public var description: String {
        "\(instanceLocation.isEmpty ? "(root)" : escapingControls(instanceLocation)): \(message)"
    }
}

/// What `JSONSchema.validate` found.
public struct SchemaValidation: Sendable, Equatable, CustomStringConvertible {
    public var violations: [SchemaViolation]
    /// Validation stopped at `SchemaLimits.maxViolations`: there are more.
    public var truncated: Bool
    public var isValid: Bool { violations.isEmpty }

    public var description: String {
        if violations.isEmpty { return "valid" }
        var lines = violations.map(\.description)
        if truncated { lines.append("(stopped after \(violations.count) violations: limit maxViolations)") }
        return lines.joined(separator: "\n")
    }
}

/// A string compared and hashed by its Unicode scalars, as JSON compares member names and
/// strings. Swift's `String ==` applies canonical equivalence ("é" == "e\u{301}"), under which
/// `"properties": {"é": …}` would also govern a key the tool reads as a different one.
struct ExactKey: Hashable, Sendable {
    let string: String
    init(_ string: String) { self.string = string }

    static func == (a: ExactKey, b: ExactKey) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }

    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// JSON pointer text (RFC 6901) for a path.
func jsonPointer(_ path: some Sequence<JSON.PathComponent>) -> String {
    var out = ""
    for component in path {
        out += "/"
        switch component {
        case .key(let key): out += escapePointerToken(key)
        case .index(let i): out += String(i)
        }
    }
    return out
}

func escapePointerToken(_ token: String) -> String {
    guard token.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return token }
    return token.replacing("~", with: "~0").replacing("/", with: "~1")
}

/// The text with C0 controls, DEL, U+2028 and U+2029 written as \uXXXX.
func escapingControls(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isControl) else { return text }
    var out = ""
    for s in text.unicodeScalars {
        if isControl(s) {
            let hex = String(s.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        } else {
            out.unicodeScalars.append(s)
        }
    }
    return out
}

private func isControl(_ s: Unicode.Scalar) -> Bool { s.value < 0x20 || s.value == 0x7F || s.value == 0x2028 || s.value == 0x2029 }
