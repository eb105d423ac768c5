import ArgumentParser
@testable import CordonCLI
import Testing

/// The fast `submit` parser and ArgumentParser agree on every invocation the fast one accepts,
/// and the fast one hands everything else over.
struct SubmitArgumentTests {
    static let accepted: [[String]] = [
        ["--", "true"],
        ["--wait", "--", "python3", "-c", "print(1)"],
        ["--socket", "/run/x.sock", "--json", "--wait", "--policy", "python-tool", "--", "sh", "-c", "echo --json"],
        ["--socket=/s", "--label=nightly", "--timeout=30s", "--memory", "256MiB", "--", "make", "--", "-j2"],
        ["--env", "A=1", "--env=B=two=2", "--stdin=-", "--wait", "--", "cat"],
        ["--workspace", "/srv/projects/app:ro", "--wait", "--", "make", "test"],
        ["--workspace=.", "--", "ls"],
        ["--workspace", ".", "--cow", "--put", "a.txt", "--put=b.sh=bin/b.sh", "--wait", "--", "./bin/b.sh"],
        ["--put", "data.csv=in/data.csv", "--", "wc", "-l", "in/data.csv"],
    ]

    @Test(arguments: accepted)
    func agreesWithArgumentParser(_ args: [String]) throws {
        let fast = try #require(SubmitFastPath.parse(args[...]))
        let full = try SubmitCommand.parse(args)
        #expect(fast == full.options)
    }

    @Test(arguments: [
        ["--help"], ["--wait"], ["--", ], ["--polcy", "x", "--", "true"], ["--policy", "--", "true"],
        ["true"], ["--wait=yes", "--", "true"], ["-h", "--", "true"], ["--stdin", "-", "--", "cat"],
    ])
    func leavesTheRestToArgumentParser(_ args: [String]) {
        #expect(SubmitFastPath.parse(args[...]) == nil)
    }

    @Test func validationIsShared() {
        var o = SubmitOptions()
        o.command = ["true"]
        o.memory = "lots"
        #expect(o.validationError() == "--memory: bad size \"lots\"")
        #expect(throws: (any Error).self) { try SubmitCommand.parse(["--memory", "lots", "--", "true"]) }
        o.memory = nil
        o.env = ["=x"]
        #expect(o.validationError() == "--env: expected NAME=VALUE, found \"=x\"")
        #expect(SubmitFastPath.execute(o) == 64)
        o.env = []
        o.workspace = ":ro"
        #expect(o.validationError() == "--workspace: expected DIR, DIR:rw or DIR:ro, found \":ro\"")
    }

    @Test func workspaceSuffixes() {
        var o = SubmitOptions()
        for (given, path, writable) in [("/a/b", "/a/b", true), ("/a/b:ro", "/a/b", false), ("/a/b:rw", "/a/b", true), ("rel:ro", "rel", false)] {
            o.workspace = given
            #expect(o.workspaceRequest?.path == path && o.workspaceRequest?.writable == writable, "\(given)")
        }
        o.workspace = nil
        #expect(o.workspaceRequest == nil)
    }
}

/// `cordon audit --since` takes what its help says: 30m, 1h, 7d (days were refused before
/// durations had them).
struct AuditArgumentTests {
    @Test(arguments: ["30m", "1h", "7d", "1.5d", "90"])
    func sinceTakesTheUnitsItsHelpNames(_ value: String) throws {
        _ = try AuditCommand.parse(["--since", value])
    }

    @Test func aBadSinceIsRefusedNamingTheFlag() {
        #expect(throws: (any Error).self) { try AuditCommand.parse(["--since", "a week"]) }
    }
}
