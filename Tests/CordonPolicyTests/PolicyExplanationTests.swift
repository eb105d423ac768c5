import Foundation
import Testing
@testable import CordonPolicy

/// `PolicyExplanation`: its TOML parses back to the same effective policy — for the shipped
/// policies and profiles, the valid fixtures, and both ends of every numeric range — and each
/// list entry names the file and line that put it there, however long the list.
struct PolicyExplanationTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let repo = URL(fileURLWithPath: here).deletingLastPathComponent().deletingLastPathComponent().path

    /// `extends` as the policy store resolves it, from the repository's files.
    static func resolve(_ name: String, _ from: String) throws(PolicyParser.ResolveError) -> (text: String, source: String) {
        let path: String
        if name.hasPrefix("runtime:") { path = "\(repo)/profiles/runtime/\(name.dropFirst("runtime:".count)).toml" }
        else if name.hasSuffix(".toml") { path = URL(fileURLWithPath: from).deletingLastPathComponent().appendingPathComponent(name).path }
        else { path = "\(repo)/policies/\(name).toml" }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw PolicyParser.ResolveError("no \(path)") }
        return (text, path)
    }

    /// Explains `text` and parses the explanation back: the same policy, but for what an
    /// explanation does not carry (name, description, extends, where it was read from).
    func roundTrip(_ text: String, source: String = "test.toml") throws {
        let (policy, layers) = try PolicyParser.parseLayers(text: text, source: source, defaultName: "t", resolve: Self.resolve)
        let explained = PolicyExplanation.explain(policy, layers: layers).toml()
        var back: Policy
        do { back = try PolicyParser.parse(text: explained, source: "explained", defaultName: "t") } catch {
            Issue.record("\(source): the explanation does not parse: \(error)\n\(explained)")
            return
        }
        back.name = policy.name
        back.description = policy.description
        back.extends = policy.extends
        back.source = policy.source
        #expect(back == policy, "\(source):\n\(explained)")
    }

    static var files: [String] {
        var out: [String] = []
        for dir in ["\(repo)/policies", "\(repo)/profiles/runtime", "\(here)/Fixtures/valid"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            out += names.filter { $0.hasSuffix(".toml") }.sorted().map { "\(dir)/\($0)" }
        }
        return out
    }

    @Test func shippedPoliciesAndFixturesAreThere() { #expect(Self.files.count >= 10) }

    @Test(arguments: files)
    func shippedPoliciesAndFixturesRoundTrip(_ path: String) throws {
        try roundTrip(try String(contentsOfFile: path, encoding: .utf8), source: path)
    }

    /// Each value at both ends of its range, in the spellings a file may use, and durations
    /// finer than a microsecond (kept to the microsecond, as `explain` prints them).
    @Test(arguments: [
        "memory = 1048576", "memory = \"1024TiB\"", "memory = \"1.3G\"", "memory = \"1048576.4\"",
        "output = 0", "output = \"1024T\"", "file_size = \"0.3K\"", "file_size = 1125899906842623",
        "wall_time = \"1ms\"", "wall_time = 0.001", "wall_time = \"8760h\"", "wall_time = 31536000",
        "wall_time = 31535999.999999", "wall_time = \"1.0000001s\"", "wall_time = \"0.0010004s\"",
        "cpu_time = \"0.0010006s\"", "cpu_time = 123456.789012345", "cpu_time = \"1000001us\"", "cpu_time = 0.1",
        "cpu_time = \"1.5m\"", "cpu = 0.01", "cpu = 4096", "cpu = 0.333333333333", "cpu = 1e-2",
        "pids = 1", "pids = 4194304", "open_files = 3", "open_files = 1048576",
    ])
    func limitsRoundTrip(_ line: String) throws {
        try roundTrip("[limits]\n\(line)\n")
    }

    @Test(arguments: [
        "[filesystem]\nworkdir_size = 4096\ntmpfs = [{ path = \"/t\", size = \"4K\", mode = \"0\" }]",
        "[filesystem]\nworkdir_size = \"1024T\"\ntmpfs = [{ path = \"/t\", size = 1125899906842624, mode = \"7777\" }, \"/u\"]",
        "[filesystem]\nworkdir_size = \"4.5K\"\ntmpfs = [{ path = \"/t\", size = \"1.0001G\" }]",
        "[process]\nuser = 0\ngroup = 65535", "[process]\nuser = 65535\ngroup = 0",
    ])
    func otherNumbersRoundTrip(_ text: String) throws {
        try roundTrip(text)
    }

    /// A long list across two files: every entry's origin is the last file that lists it, at
    /// its first mention there, as a search of each file per entry would find it.
    @Test func longListsNameEachEntrysOrigin() throws {
        let n = 1200
        func lines(_ items: [String]) -> String { items.map { "  \"\($0)\",\n" }.joined() }
        let parentPaths = (0..<n).map { "/p/\($0)" }
        // The child lists the second half of the parent's paths again, new ones, and a repeat.
        let childPaths = (n / 2..<n).map { "/p/\($0)" } + (0..<n).map { "/c/\($0)" } + ["/c/0"]
        let parent = "[filesystem]\nread_only = [\n\(lines(parentPaths))]\nhide = [\n\(lines(parentPaths.map { $0 + "/h" }))]\n"
        let child = "[policy]\nextends = [\"parent\"]\n[filesystem]\nhide = [\n\(lines(childPaths.map { $0 + "/h" }))]\n"
        let (policy, layers) = try PolicyParser.parseLayers(text: child, source: "child.toml", defaultName: "child",
                                                            resolve: { _, _ in (parent, "parent.toml") })
        let entries = PolicyExplanation.explain(policy, layers: layers).entries
        /// Line of each entry's first mention, per file and list, read off the text.
        func firstLines(_ text: String) -> [String: [String: Int]] {
            var out: [String: [String: Int]] = [:]
            var list: String? = nil
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if line.hasSuffix(" = [") { list = String(line.dropLast(4)) }
                else if line == "]" { list = nil }
                else if let list, line.hasPrefix("  \"") {
                    let value = String(line.dropFirst(3).dropLast(2))
                    if out[list, default: [:]][value] == nil { out[list, default: [:]][value] = index + 1 }
                }
            }
            return out
        }
        let files = [("child.toml", firstLines(child)), ("parent.toml", firstLines(parent))]
        func expected(_ key: String, _ value: String) -> (String, Int?) {
            for (source, lists) in files { if let line = lists[key]?[value] { return (source, line) } }
            return ("default", nil)
        }
        let hides = entries.filter { $0.key == "filesystem.hide" }
        #expect(hides.count == n + childPaths.count - n / 2)
        for entry in hides + entries.filter({ $0.key == "filesystem.read_only" }) {
            let value = String(entry.value.dropFirst().dropLast())
            let (source, line) = expected(String(entry.key.dropFirst("filesystem.".count)), value)
            #expect(entry.source == source && entry.line == line, "\(entry.key) \(value): \(entry.source):\(entry.line ?? 0), expected \(source):\(line ?? 0)")
        }
    }
}
