import CordonJSON
import Foundation
import Testing

@testable import CordonSchema

/// JSON-Schema-Test-Suite, draft 2020-12, from ../shared/data beside the checkout (CI clones
/// the repository next to ../shared too). Every case of every claimed keyword's file must pass;
/// the only cases left out are listed below, each with its reason, and each must still be
/// refused for that reason (so the list cannot go stale).
enum OfficialSuite {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = repo.deletingLastPathComponent().appendingPathComponent("shared/data/json-schema-test-suite/draft2020-12").path

    /// The files of the keywords CordonSchema claims (format, content and default: that they
    /// assert nothing, as 2020-12 says).
    static let claimed = [
        "additionalProperties", "allOf", "anchor", "anyOf", "boolean_schema", "const", "contains", "content",
        "default", "defs", "dependentRequired", "dependentSchemas", "dynamicRef", "enum", "exclusiveMaximum",
        "exclusiveMinimum", "format", "if-then-else", "infinite-loop-detection", "items", "maxContains",
        "maxItems", "maxLength", "maxProperties", "maximum", "minContains", "minItems", "minLength",
        "minProperties", "minimum", "multipleOf", "not", "oneOf", "pattern", "patternProperties", "prefixItems",
        "properties", "propertyNames", "ref", "required", "type", "unevaluatedItems", "unevaluatedProperties",
        "uniqueItems",
    ]

    /// Files not run, and why.
    static let notClaimed = [
        "refRemote": "every case needs the suite's remote schemas (http://localhost:1234/…); remote $ref is refused",
        "vocabulary": "every case needs a custom metaschema fetched by URI; remote $ref and $vocabulary are not supported",
    ]

    /// Cases (file, case description) left out: each needs a document other than its own. The
    /// test checks that each is refused with "remote $ref not supported".
    static let skipped: [String: [String: String]] = [
        "defs": [
            "validate definition against metaschema": "needs the draft 2020-12 metaschema (remote $ref)",
        ],
        "dynamicRef": [
            "strict-tree schema, guards against misspelled properties": "needs the suite's remote tree.json (remote $ref)",
            "tests for implementation dynamic anchor and reference link": "needs the suite's remote extendible-dynamic-ref.json (remote $ref)",
            "$ref and $dynamicAnchor are independent of order - $defs first": "needs the suite's remote extendible-dynamic-ref.json (remote $ref)",
            "$ref and $dynamicAnchor are independent of order - $ref first": "needs the suite's remote extendible-dynamic-ref.json (remote $ref)",
            "$ref to $dynamicRef finds detached $dynamicAnchor": "needs the suite's remote detached-dynamicref.json (remote $ref)",
        ],
        "ref": [
            "remote ref, containing refs itself": "needs the draft 2020-12 metaschema (remote $ref)",
        ],
    ]

    struct SuiteFormatError: Error { var file: String }

    struct Case {
        var description: String
        var schema: JSON
        var tests: [(description: String, data: JSON, valid: Bool)]
    }

    static func load(_ name: String, from directory: String = directory) throws -> [Case] {
        let path = directory + "/" + name + ".json"
        let bytes = try #require(FileManager.default.contents(atPath: path), "cannot read \(path)")
        let document = try JSON.parse(Array(bytes))
        var cases: [Case] = []
        for group in try #require(document.arrayValue) {
            var tests: [(String, JSON, Bool)] = []
            for test in try #require(group["tests"]?.arrayValue) {
                guard case .bool(let valid)? = test["valid"] else { throw SuiteFormatError(file: name) }
                tests.append((try #require(test["description"]?.stringValue), try #require(test["data"]), valid))
            }
            cases.append(Case(description: try #require(group["description"]?.stringValue), schema: try #require(group["schema"]), tests: tests))
        }
        return cases
    }

    /// The value at a JSON pointer, or nil when the instance has no such place.
    static func value(at pointer: String, in instance: JSON) -> JSON? {
        guard let tokens = URIReference.pointerTokens(pointer) else { return nil }
        var value = instance
        for token in tokens {
            switch value {
            case .object(let members):
                guard let next = members.last(where: { $0.0.utf8.elementsEqual(token.utf8) })?.1 else { return nil }
                value = next
            case .array(let items):
                guard let i = Int(token), items.indices.contains(i) else { return nil }
                value = items[i]
            default: return nil
            }
        }
        return value
    }
}

@Suite struct OfficialSuiteTests {
    @Test func theSuiteIsThere() throws {
        let files = try #require(try? FileManager.default.contentsOfDirectory(atPath: OfficialSuite.directory),
                                 "the JSON-Schema-Test-Suite is missing: expected \(OfficialSuite.directory) (../shared/data beside the repository)")
        let names = Set(files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })
        // Every file is either claimed or listed with its reason: a new file in the suite is noticed.
        #expect(names == Set(OfficialSuite.claimed).union(OfficialSuite.notClaimed.keys))
    }

    @Test(arguments: OfficialSuite.claimed)
    func claimedKeyword(_ file: String) throws {
        let cases = try OfficialSuite.load(file)
        let skips = OfficialSuite.skipped[file] ?? [:]
        var passed = 0, skipped = 0
        for c in cases {
            if let reason = skips[c.description] {
                // Skipped only because it needs another document: it must be refused as such.
                do {
                    _ = try JSONSchema.compile(c.schema)
                    Issue.record("\(file): \(c.description) compiles, yet it is skipped (\(reason))")
                } catch {
                    #expect(error.code == .remoteReference, "\(file): \(c.description): \(error)")
                }
                skipped += c.tests.count
                continue
            }
            let schema: JSONSchema
            do {
                schema = try JSONSchema.compile(c.schema)
            } catch {
                Issue.record("\(file): \(c.description): the schema is refused: \(error)")
                continue
            }
            for test in c.tests {
                let result = schema.validate(test.data)
                if result.isValid == test.valid {
                    passed += 1
                } else {
                    Issue.record("\(file): \(c.description): \(test.description): expected \(test.valid ? "valid" : "invalid"), got \(result)")
                }
                for violation in result.violations {
                    // Each violation names a place the instance has, and its sentence starts with it.
                    #expect(OfficialSuite.value(at: violation.instanceLocation, in: test.data) != nil,
                            "\(file): \(c.description): \(test.description): \(violation.instanceLocation) is not in the instance")
                    #expect(violation.description.hasPrefix(violation.instanceLocation.isEmpty ? "(root): " : escapingControls(violation.instanceLocation) + ": "))
                    #expect(!violation.message.isEmpty && !violation.keyword.isEmpty)
                }
            }
        }
        #expect(Set(skips.keys).isSubset(of: cases.map(\.description)), "\(file): a skipped case is not in the file")
        let total = cases.reduce(0) { $0 + $1.tests.count }
        print("JSON-Schema-Test-Suite \(file).json: \(passed)/\(total) passed, \(skipped) skipped")
        #expect(passed + skipped == total)
    }
}
