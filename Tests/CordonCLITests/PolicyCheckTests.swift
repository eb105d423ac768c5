import CordonConfig
import CordonSandbox
@testable import CordonCLI
import Foundation
import Testing

/// `cordon policy check`: the shipped files pass; a broken policy lists every error with its line
/// and key; a missing host path is a warning (the policy may be meant for another host).
struct PolicyCheckTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let checker = PolicyChecker(store: PolicyStore(configDir: nil))

    @Test(arguments: ["policies/default.toml", "policies/python-tool.toml", "policies/shell-tool.toml",
                      "policies/mcp-time.toml", "policies/mcp-git.toml", "policies/mcp-fetch.toml", "profiles/seccomp/default.json", "profiles/seccomp/strict.json",
                      "profiles/runtime/python.toml", "profiles/runtime/node.toml", "profiles/runtime/shell.toml", "profiles/runtime/compiled.toml"])
    func shippedFilesPass(_ file: String) {
        let report = checker.check("\(Self.repo)/\(file)")
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.kind != "skipped")
    }

    @Test func documentationIsSkipped() {
        #expect(checker.check("\(Self.repo)/profiles/seccomp/default.md").kind == "skipped")
    }

    @Test func everyErrorIsListed() throws {
        let path = NSTemporaryDirectory() + "cordon-check-\(getpid()).toml"
        try "[limits]\npid = 3\nmemory = \"lots\"\n[network]\nmode = \"open\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let report = checker.check(path)
        #expect(report.errors.map { "\($0.line ?? 0) \($0.key)" } == ["2 limits.pid", "3 limits.memory", "5 network.mode"])
    }

    @Test func unknownProfileIsAnError() throws {
        let path = NSTemporaryDirectory() + "cordon-check-profile-\(getpid()).toml"
        try "[seccomp]\nprofile = \"no-such-profile\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let report = checker.check(path)
        #expect(report.errors.first?.key == "seccomp.profile")
        #expect(report.errors.first?.message.contains("unknown seccomp profile \"no-such-profile\"") == true, "\(report.errors)")
    }

    @Test func missingHostPathIsAWarning() throws {
        let path = NSTemporaryDirectory() + "cordon-check-path-\(getpid()).toml"
        try "[filesystem]\nread_only = [\"/no/such/dir\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let report = checker.check(path)
        #expect(report.errors.isEmpty)
        #expect(report.warnings.first?.key == "filesystem.read_only")
    }
}
