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
        ["--bind", "/src", "--ro-bind=/data:/d", "--ro-bind", "/etc/x", "--env", "A=1", "--env=B=2", "--cwd", "/src",
         "--memory", "256M", "--pids=32", "--network-allow", "api.example.com:443", "--", "make"],
        // The command without `--`: option parsing stops at the first argument that is not one.
        ["true"],
        ["python3", "-V"],
        ["--policy", "python-tool", "--ro-bind", "/src", "python3", "/src/main.py", "--json", "--", "x"],
        ["--learn", "p.toml", "--env", "X=1", "sh", "-c", "echo $X"],
    ]

    @Test(arguments: accepted)
    func agreesWithArgumentParser(_ args: [String]) throws {
        let fast = try #require(RunFastPath.parse(args[...]))
        let full = try RunCommand.parse(RunFastPath.argumentsForParser(args))
        #expect(fast == full.options)
    }

    @Test func theCommandStartsAtTheFirstArgumentThatIsNotAnOption() throws {
        let o = try #require(RunFastPath.parse(["--json", "python3", "-V"][...]))
        #expect(o.command == ["python3", "-V"] && o.json)
        let passed = try #require(RunFastPath.parse(["--policy", "p", "sh", "-c", "x", "--", "--json"][...]))
        #expect(passed.command == ["sh", "-c", "x", "--", "--json"] && !passed.json)
        #expect(RunFastPath.argumentsForParser(["--policy", "p", "sh", "--json"]) == ["--policy", "p", "--", "sh", "--json"])
        #expect(RunFastPath.argumentsForParser(["--json", "--", "sh"]) == ["--json", "--", "sh"])
    }

    @Test(arguments: [
        ["--help"], ["-h", "--", "true"], ["--polcy", "x", "--", "true"], ["--policy"], ["--policy", "--", "true"],
        ["--"], ["--json=yes", "--", "true"], ["--polcy", "x", "true"], ["--json"],
    ])
    func leavesTheRestToArgumentParser(_ args: [String]) {
        #expect(RunFastPath.parse(args[...]) == nil)
    }

    /// A mistyped option before a command given without `--` still gets its suggestion, and
    /// `--env` is an option of its own (it once answered "Did you mean '--tty'?").
    @Test func aMistypedOptionGetsItsSuggestion() {
        for args in [["--polcy", "x", "true"], ["--polcy", "x", "--", "true"]] {
            do {
                _ = try RunCommand.parse(RunFastPath.argumentsForParser(args))
                Issue.record("\(args) parsed")
            } catch {
                #expect(RunCommand.message(for: error).contains("Did you mean '--policy'?"), "\(RunCommand.message(for: error))")
            }
        }
        #expect(RunFastPath.parse(["--env", "X=1", "true"][...])?.env == ["X=1"])
    }

    @Test func validationIsShared() {
        var o = RunOptions()
        o.command = ["true"]
        o.timeout = "soon"
        #expect(o.validationError() == "--timeout soon: bad duration (use e.g. 30s, 500ms, 2m)")
        #expect(throws: (any Error).self) { try RunCommand.parse(["--timeout", "soon", "--", "true"]) }
        o.timeout = nil
        o.learn = "policy.txt"
        #expect(o.validationError() == "--learn: expected a file name ending in .toml, found \"policy.txt\"")
        o.learn = "p.toml"
        o.tty = true
        #expect(o.validationError() == "--learn and --tty cannot be combined")
        o = RunOptions()
        o.command = ["true"]
        o.bind = ["src"]
        #expect(o.validationError() == "--bind src: \"src\" must be an absolute path (use \"$PWD/src\")")
        #expect(throws: (any Error).self) { try RunCommand.parse(["--bind", "src", "--", "true"]) }
        o.bind = []
        o.env = ["=1"]
        #expect(o.validationError() == "--env =1: expected NAME=VALUE")
        #expect(RunFastPath.execute(o) == 64, "refused before anything runs")
    }
}
