import Foundation
import Testing
@testable import CordonPolicy

/// The JSON Schema: generated from the parser's key lists, checked in unchanged, and in agreement
/// with the parser on every valid and invalid fixture (Python's jsonschema and tomllib judge the
/// schema side).
struct PolicySchemaTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let repo = URL(fileURLWithPath: here).deletingLastPathComponent().deletingLastPathComponent().path

    /// What no JSON Schema can say: these are valid to the schema, errors to the parser. (The
    /// schema holds numbers to their ranges, but not a size or duration spelled as a string.)
    static let parserOnly = ["22-hidden-and-mounted.toml", "23-mounted-twice.toml",
                             "37-network-none-with-allow.toml", "39-network-allowlist-empty.toml", "44-network-block-host-bits.toml",
                             "47-duration-string-out-of-range.toml", "48-duration-below-resolution.toml", "52-memory-below-minimum.toml"]

    @Test func checkedInCopyIsCurrent() throws {
        let checkedIn = try String(contentsOfFile: "\(Self.repo)/docs/policy.schema.json", encoding: .utf8)
        #expect(checkedIn == PolicySchema.document(), "run: cordon policy schema > docs/policy.schema.json")
    }

    @Test func coversExactlyTheParsersKeys() {
        let tables = PolicySchema.tables
        #expect(Set(tables.keys) == Set(PolicyParser.schema.keys))
        for (name, keys) in PolicyParser.schema {
            #expect(Set(tables[name]?.keys.map { $0 } ?? []) == Set(keys), "table \(name)")
        }
    }

    /// docs/policies.md documents every key, in its table's section.
    @Test func referenceDocumentsEveryKey() throws {
        let doc = try String(contentsOfFile: "\(Self.repo)/docs/policies.md", encoding: .utf8)
        for (table, keys) in PolicyParser.schema {
            let start = try #require(doc.range(of: "## `[\(table)]`"), "no section for [\(table)]")
            let rest = doc[start.upperBound...]
            let section = rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)]
            for key in keys {
                #expect(section.contains("| `\(key)` |"), "[\(table)] \(key) is not in docs/policies.md")
            }
        }
    }

    @Test func agreesWithTheParserOnEveryFixture() throws {
        let fm = FileManager.default
        var files: [String] = []
        for dir in ["\(Self.here)/Fixtures/broken", "\(Self.here)/Fixtures/valid", "\(Self.repo)/policies", "\(Self.repo)/profiles/runtime"] {
            files += try fm.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".toml") }.sorted().map { "\(dir)/\($0)" }
        }
        #expect(files.count >= 48)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["\(Self.here)/schema_verdicts.py", "\(Self.repo)/docs/policy.schema.json"] + files
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "python3 with jsonschema is needed (make deps)")
        var verdicts: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            verdicts[String(parts[0])] = String(parts[1])
        }
        #expect(verdicts.count == files.count)
        for file in files {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            // The schema judges one file; its parents (`extends`) are judged as files of their own.
            let parserValid = (try? PolicyParser.parse(text: text, source: file, defaultName: "t",
                                                       resolve: { name, _ in ("", "parent:\(name)") })) != nil
            let schema = verdicts[file] ?? "missing"
            let name = URL(fileURLWithPath: file).lastPathComponent
            if Self.parserOnly.contains(name) {
                #expect(schema == "valid" && !parserValid, "\(name): schema \(schema), parser valid \(parserValid)")
            } else if schema == "toml-error" {
                #expect(!parserValid, "\(name): tomllib refuses it but the parser accepts it")
            } else {
                #expect((schema == "valid") == parserValid, "\(name): schema \(schema), parser valid \(parserValid)")
            }
        }
    }
}

/// Numbers in sizes and durations are plain decimals, as the schema's patterns say.
struct UnitSyntaxTests {
    @Test(arguments: ["1e3M", "0x10", ".5G", "1.G", "inf", "nan", "-1", "+1", "1_000"])
    func exoticNumbersAreRefused(_ text: String) {
        #expect(Units.parseSize(text) == nil)
        #expect(Units.parseDuration(text + "s") == nil)
    }

    @Test func durationsFormatExactly() {
        #expect(Units.formatDuration(0.00001) == "10us")
        #expect(Units.formatDuration(1.5) == "1500ms")
        #expect(Units.formatDuration(300) == "300s")
        #expect(Units.parseDuration(Units.formatDuration(0.00001)) == 0.00001)
    }
}

/// network.allow entries: names (with an optional leading wildcard), addresses and address
/// blocks, each with a port or a port range.
struct DestinationTests {
    @Test(arguments: ["api.example.com:443", "localhost:1", "10.0.0.1:65535", "a-b.c:80",
                      "*.pypi.org:443", "API.Example.COM.:443", "xn--bcher-kva.example:443", "api.example.com:8000-8100",
                      "203.0.113.0/24:5432"])
    func valid(_ entry: String) { #expect(PolicyParser.destinationProblem(entry) == nil) }

    @Test(arguments: ["api.example.com", "api.example.com:0", "x:65536", "x:+80", ":80", "a..b:1", "-a:1", "a-:1",
                      "300.1.1.1:80", "1.2.3:80", "[::1:80", "[]:80", "::1:80", "exa mple.com:80", "host:80/path",
                      "\(String(repeating: "a", count: 64)).com:1", "*:443", "a.*.b:1", "*.*.b:1", "10.0.0.1/24:80",
                      "10.0.0.0/33:80", "x:90-80", "b\u{00FC}cher.example:443", "a\u{0000}b:1", "[fe80::1%eth0]:1"])
    func invalid(_ entry: String) { #expect(PolicyParser.destinationProblem(entry) != nil) }

    /// IPv6 egress is refused on every path, so an IPv6 rule would never match: refused, with
    /// the entry and the reason in the message (an IPv4-mapped address is told its IPv4 form).
    @Test(arguments: ["[::1]:8080", "[2001:db8::1]:443", "[2001:db8::/32]:443", "[::ffff:203.0.113.9]:443", "2001:db8::1:443"])
    func ipv6RulesAreRefused(_ entry: String) throws {
        let problem = try #require(PolicyParser.destinationProblem(entry))
        #expect(problem.hasPrefix("\"\(entry)\"") && problem.contains("IPv6 egress is refused on every path; see SECURITY.md"), "\(problem)")
        #expect(entry.contains("ffff") == problem.contains("write 203.0.113.9:443"), "\(problem)")
    }
}
