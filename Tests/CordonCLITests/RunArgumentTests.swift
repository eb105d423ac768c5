import ArgumentParser
@testable import CordonCLI
import Testing

/// The fast `run` parser and ArgumentParser agree on every invocation the fast one accepts, and
/// the fast one hands everything else over.
struct RunArgumentTests {
    static let accepted: [[String]] = [
        ["--", "true"],
        ["--json", "--", "python3", "-c", "print(1)"],
        ["--policy", "shell", "--timeout", "30s", "--", "sh", "-c", "echo --json"],
        ["--policy=/etc/p.toml", "--timeout=500ms", "--tty", "--", "bash"],
        ["--state-dir", "/s", "--runtime-dir", "/r", "--config-dir", "/c", "--json", "--", "ls", "--", "-l"],
        ["--learn", "out/p.toml", "--policy", "python-tool", "--", "python3", "x.py"],
        ["--learn=p.toml", "--json", "--", "true"],
        ["--policy", "model-http", "--dns-hosts", "/etc/cordon/hosts", "--dns-upstream=127.0.0.1:5353", "--", "curl", "https://api.test"],
    ]

    @Test(arguments: accepted)
    func agreesWithArgumentParser(_ args: [String]) throws {
        let fast = try #require(RunFastPath.parse(args[...]))
        let full = try RunCommand.parse(args)
        #expect(fast == full.options)
    }

    @Test(arguments: [
        ["--help"], ["-h", "--", "true"], ["--polcy", "x", "--", "true"], ["--policy"], ["--policy", "--", "true"],
        ["true"], ["--"], ["--json=yes", "--", "true"],
    ])
    func leavesTheRestToArgumentParser(_ args: [String]) {
        #expect(RunFastPath.parse(args[...]) == nil)
    }

    @Test func validationIsShared() {
        var o = RunOptions()
        o.command = ["true"]
        o.timeout = "soon"
        #expect(o.validationError() == "--timeout: bad duration \"soon\" (use e.g. 30s, 500ms, 2m)")
        #expect(throws: (any Error).self) { try RunCommand.parse(["--timeout", "soon", "--", "true"]) }
        o.timeout = nil
        o.learn = "policy.txt"
        #expect(o.validationError() == "--learn: expected a file name ending in .toml, found \"policy.txt\"")
        o.learn = "p.toml"
        o.tty = true
        #expect(o.validationError() == "--learn and --tty cannot be combined")
    }
}
