import CordonJSON
import Foundation
import Testing

@testable import CordonSchema

/// JSON-Schema-Test-Suite, draft-07, as the jsonschema sdist on PyPI carries it: `make pydeps`
/// (tools/pydeps/json-schema-test-suite.sdist) unpacks it under .build/pydeps. Every case of
/// every claimed file must pass; the cases left out are listed with their reason, and each must
/// still be refused for that reason.
enum Draft07Suite {
    static let directory = OfficialSuite.repo.appendingPathComponent(".build/pydeps/json-schema-test-suite/json/tests/draft7").path

    /// Every required file but refRemote (format and default: that they assert nothing, as
    /// CordonSchema's format is an annotation in both dialects).
    static let claimed = [
        "additionalItems", "additionalProperties", "allOf", "anyOf", "boolean_schema", "const", "contains", "default",
        "definitions", "dependencies", "enum", "exclusiveMaximum", "exclusiveMinimum", "format", "if-then-else",
        "infinite-loop-detection", "items", "maxItems", "maxLength", "maxProperties", "maximum", "minItems",
        "minLength", "minProperties", "minimum", "multipleOf", "not", "oneOf", "pattern", "patternProperties",
        "properties", "propertyNames", "ref", "required", "type", "uniqueItems",
    ]

    static let notClaimed = [
        "refRemote": "every case needs the suite's remote schemas (http://localhost:1234/…); remote $ref is refused",
    ]

    /// Cases (file, case description) left out: each needs the draft-07 metaschema, another
    /// document. The test checks that each is refused with "remote $ref not supported".
    static let skipped: [String: [String: String]] = [
        "definitions": [
            "validate definition against metaschema": "needs the draft-07 metaschema (remote $ref)",
        ],
        "ref": [
            "remote ref, containing refs itself": "needs the draft-07 metaschema (remote $ref)",
        ],
    ]

    static func present() throws {
        _ = try #require(try? FileManager.default.contentsOfDirectory(atPath: directory),
                         "the JSON-Schema-Test-Suite's draft7 files are missing: expected \(directory); run `make pydeps` (tools/pydeps.sh unpacks the pinned jsonschema sdist from PyPI there)")
    }

    /// `schema` with draft-07's `$schema` at its root, when the root is an object without one.
    static func declared(_ schema: JSON) -> JSON? {
        guard case .object(let members) = schema, !members.contains(where: { $0.0 == "$schema" }) else { return nil }
        return .object([("$schema", .string("http://json-schema.org/draft-07/schema#"))] + members)
    }
}

@Suite struct Draft07SuiteTests {
    @Test func theSuiteIsThere() throws {
        try Draft07Suite.present()
        let files = try FileManager.default.contentsOfDirectory(atPath: Draft07Suite.directory)
        let names = Set(files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })
        // Every file is either claimed or listed with its reason: a new file in the suite is noticed.
        #expect(names == Set(Draft07Suite.claimed).union(Draft07Suite.notClaimed.keys))
    }

    /// Each case twice: compiled with draft-07 as the default dialect (the suite's files have no
    /// `$schema`), and, when its root is an object, with draft-07's `$schema` written into it and
    /// 2020-12 the default, as an MCP server's schema arrives. Both must give the suite's verdicts.
    @Test(arguments: Draft07Suite.claimed)
    func claimedKeyword(_ file: String) throws {
        try Draft07Suite.present()
        let cases = try OfficialSuite.load(file, from: Draft07Suite.directory)
        let skips = Draft07Suite.skipped[file] ?? [:]
        var passed = 0, skipped = 0
        for c in cases {
            if let reason = skips[c.description] {
                do {
                    _ = try JSONSchema.compile(c.schema, defaultDialect: .draft07)
                    Issue.record("\(file): \(c.description) compiles, yet it is skipped (\(reason))")
                } catch {
                    #expect(error.code == .remoteReference, "\(file): \(c.description): \(error)")
                }
                skipped += c.tests.count
                continue
            }
            var schemas: [(String, JSONSchema)] = []
            do {
                let compiled = try JSONSchema.compile(c.schema, defaultDialect: .draft07)
                #expect(compiled.dialect == .draft07)
                schemas.append(("default draft-07", compiled))
                if let declared = Draft07Suite.declared(c.schema) {
                    let viaSchema = try JSONSchema.compile(declared)
                    #expect(viaSchema.dialect == .draft07)
                    schemas.append(("$schema draft-07", viaSchema))
                }
            } catch {
                Issue.record("\(file): \(c.description): the schema is refused: \(error)")
                continue
            }
            for test in c.tests {
                var right = true
                for (how, schema) in schemas {
                    let result = schema.validate(test.data)
                    if result.isValid != test.valid {
                        right = false
                        Issue.record("\(file): \(c.description): \(test.description) (\(how)): expected \(test.valid ? "valid" : "invalid"), got \(result)")
                    }
                    for violation in result.violations {
                        #expect(OfficialSuite.value(at: violation.instanceLocation, in: test.data) != nil,
                                "\(file): \(c.description): \(test.description): \(violation.instanceLocation) is not in the instance")
                        #expect(!violation.message.isEmpty && !violation.keyword.isEmpty)
                    }
                }
                if right { passed += 1 }
            }
        }
        #expect(Set(skips.keys).isSubset(of: cases.map(\.description)), "\(file): a skipped case is not in the file")
        let total = cases.reduce(0) { $0 + $1.tests.count }
        print("JSON-Schema-Test-Suite draft7 \(file).json: \(passed)/\(total) passed, \(skipped) skipped")
        #expect(passed + skipped == total)
    }
}
