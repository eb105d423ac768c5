@testable import CordonDaemon
import Foundation
import Testing

/// packaging/cordond.toml, the example `make install` ships: every key the parser knows, each on
/// a commented line `# key = value` showing its default. Read with the daemon's own parser, so a
/// key added to `DaemonConfig.keys`, or a default changed in the code, fails here until the
/// example says so.
struct ExampleConfigTests {
    static let path = "\(TestDaemon.repoRoot)/packaging/cordond.toml"
    /// Keys whose default is "unset" or computed from the host: the example shows a value instead.
    static let withoutDefault: Set<String> = ["socket.group", "metrics.listen", "egress.dns_hosts", "egress.dns_upstream"]

    /// The example's settings: (section.key, the file with only that line uncommented).
    static func settings() throws -> [(key: String, text: String)] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var section = ""
        var out: [(String, String)] = []
        for (i, line) in lines.enumerated() {
            if line.hasPrefix("[") { section = String(line.dropFirst().prefix { $0 != "]" }) }
            guard line.hasPrefix("# "), let eq = line.range(of: " = ") else { continue }
            let key = line[line.index(line.startIndex, offsetBy: 2)..<eq.lowerBound]
            guard !key.isEmpty, key.allSatisfy({ $0.isLowercase || $0 == "_" }) else { continue }
            var uncommented = lines
            uncommented[i] = line.dropFirst(2)
            out.append(("\(section).\(key)", uncommented.joined(separator: "\n")))
        }
        return out
    }

    /// What a config is once defaults that are computed are spelled out (the socket's path, the
    /// per-user running cap), so "the default, written down" compares equal to "not given".
    static func effective(_ config: DaemonConfig) -> DaemonConfig {
        var c = config
        if c.socketPath == "\(c.runtimeDir)/cordon.sock" { c.socketPath = nil }
        if c.maxRunningPerUser == c.maxRunning { c.maxRunningPerUser = nil }
        return c
    }

    @Test func theExampleAsShippedIsTheDefaults() throws {
        var config = DaemonConfig()
        try config.apply(text: try String(contentsOfFile: Self.path, encoding: .utf8), source: Self.path)
        #expect(config == DaemonConfig())
    }

    @Test func everyKeyTheParserKnowsIsShownOnce() throws {
        let shown = try Self.settings().map(\.key)
        let known = DaemonConfig.keys.flatMap { section, keys in keys.map { "\(section).\($0)" } }
        #expect(Set(shown) == Set(known), "shown but unknown: \(Set(shown).subtracting(known).sorted()); known but not shown: \(Set(known).subtracting(shown).sorted())")
        #expect(shown.count == Set(shown).count, "a key shown twice: \(shown.sorted())")
        #expect(Self.withoutDefault.isSubset(of: Set(known)))
    }

    @Test func eachUncommentedLineParsesAndShowsTheDefault() throws {
        for (key, text) in try Self.settings() {
            var config = DaemonConfig()
            do { try config.apply(text: text, source: "example:\(key)") } catch {
                Issue.record("\(key): \(error)")
                continue
            }
            if Self.withoutDefault.contains(key) {
                #expect(Self.effective(config) != DaemonConfig(), "\(key): the example value changes nothing")
            } else {
                #expect(Self.effective(config) == DaemonConfig(), "\(key): the value shown is not the default")
            }
        }
    }

    @Test func daysAreADuration() throws {
        var config = DaemonConfig()
        try config.apply(text: "[audit]\nmax_age = \"7d\"\nkeep_denials = \"1.5d\"\n", source: "t")
        #expect(config.retentionSeconds == 7.0 * 86400)
        #expect(config.keepDenialsSeconds == 1.5 * 86400)
        for bad in ["\"d\"", "\"-1d\"", "\"5md\"", "\"1e3d\""] {
            #expect(throws: DaemonConfig.Error.self) { try config.apply(text: "[audit]\nmax_age = \(bad)\n", source: "t") }
        }
    }
}
