import Foundation
import Testing

/// Every shipped policy runs a real workload of its kind, by name (the embedded copy, through
/// `extends` to the default policy and a runtime profile), and keeps what it promises.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct ShippedPolicyTests {
    @Test func pythonToolRunsAScript() {
        let code = """
            import os, sys, json
            open("out.json", "w").write(json.dumps({"n": 42}))
            print(json.load(open("out.json"))["n"], sorted(os.listdir(".")), sys.flags.dont_write_bytecode, sys.flags.no_user_site)
            """
        let r = Harness.run(["python3", "-c", code], policy: "python-tool")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "42 ['out.json'] 1 1")
        #expect(r.record["policy"] as? String == "python-tool")
        #expect(r.denied.isEmpty, "denied: \(r.denied)")
        // Still no network and a read-only system.
        let escape = Harness.run(["python3", "-c", "import socket; socket.create_connection(('10.0.0.1', 80), timeout=1)"], policy: "python-tool")
        #expect(escape.status != 0)
        let write = Harness.run(["python3", "-c", "open('/usr/lib/x', 'w')"], policy: "python-tool")
        #expect(write.status != 0 && write.stderr.contains("Read-only file system"), "\(write.stderr)")
    }

    @Test func shellToolRunsAScript() {
        let r = Harness.run(["sh", "-c", "printf 'b\\na\\n' > in.txt && sort in.txt | tr '\\n' ' ' && echo \"$SHELL\""], policy: "shell-tool")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "a b /bin/sh")
        #expect(r.record["policy"] as? String == "shell-tool")
    }

    @Test func shellToolStopsAForkBomb() {
        // The shell profile's pids budget (128) is what stops it, not the default's 256.
        let r = Harness.run(["sh", "-c", "i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done; wait"],
                            policy: "shell-tool", options: ["--timeout", "20s"])
        // Either the shell reports the failed fork, or the supervisor sees the pids limit first
        // and stops the sandbox; under the default's 256 all 200 would start and exit 0.
        #expect(r.status != 0)
        #expect(r.stderr.contains("fork") || r.reason == "pids-limit", "\(r.reason): \(r.stderr)")
    }

    /// `seccomp.action`: under `kill` the first refused call ends the sandbox (and is named);
    /// under `log` it runs and is reported as logged, not denied.
    @Test func seccompActionKillAndLog() throws {
        let code = "import socket; s = socket.socket(); print('after', s.family.name)"
        var outcomes: [String: Harness.Outcome] = [:]
        for action in ["errno", "kill", "log"] {
            let policy = "\(Harness.scratch)/policies/strict-\(action).toml"
            try "[policy]\nextends = [\"default\"]\n[seccomp]\nprofile = \"strict\"\naction = \"\(action)\"\n".write(toFile: policy, atomically: true, encoding: .utf8)
            outcomes[action] = Harness.run(["python3", "-c", code], policy: policy)
        }
        let errno = try #require(outcomes["errno"]), kill = try #require(outcomes["kill"]), log = try #require(outcomes["log"])
        #expect(errno.status == 1 && errno.stderr.contains("PermissionError"), "\(errno.stderr)")
        #expect(errno.reason == "exited" && errno.denied.contains("socket"))
        #expect(kill.status == 137, "\(kill.stderr)")
        // Killed at the first refused call (python's TCGETS ioctl at start-up, which strict
        // refuses and errno mode shrugs off), which is the one call named.
        #expect(kill.reason == "seccomp-violation" && kill.denied == ["ioctl"], "\(kill.record)")
        #expect(errno.denied.contains("ioctl"))
        #expect(!kill.output.contains("after"))
        #expect(log.status == 0, "\(log.stderr)")
        #expect(log.output == "after AF_INET")
        #expect(log.denied.isEmpty)
        let logged = (log.record["logged"] as? [[String: Any]] ?? []).compactMap { $0["syscall"] as? String }
        #expect(logged.contains("socket"), "\(log.record)")
        #expect((log.record["layers"] as? [String: Any])?["seccomp"] as? String == "strict (refused calls: log, reported by user notification)")
    }

    /// The strict seccomp profile: pure computation runs; a second process, a socket or a thread
    /// is refused and named in the record.
    @Test func strictProfileAllowsComputationOnly() throws {
        let policy = "\(Harness.scratch)/policies/strict-test.toml"
        try "[policy]\nextends = [\"default\"]\n[seccomp]\nprofile = \"strict\"\n".write(toFile: policy, atomically: true, encoding: .utf8)
        let ok = Harness.run(["python3", "-c", "import hashlib; print(hashlib.sha256(b'x' * 1000).hexdigest()[:8], sum(range(10)))"], policy: policy)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.output == "44f83544 45", "\(ok.output)")
        let layers = ok.record["layers"] as? [String: Any]
        #expect((layers?["seccomp"] as? String)?.hasPrefix("strict") == true)
        for (code, syscall) in [("import os; os.fork()", "clone"),
                                ("import socket; socket.socket()", "socket"),
                                ("import threading; threading.Thread(target=print).start()", "clone3")] {
            let r = Harness.run(["python3", "-c", code], policy: policy)
            #expect(r.status != 0, "\(code)")
            #expect(r.denied.contains(syscall), "\(code): denied \(r.denied)")
        }
    }

    /// When the egress layer cannot be set up, the sandbox is refused, never run with another
    /// network.
    @Test func allowlistWithoutEgressIsRefusedNotWeakened() throws {
        let policy = "\(Harness.scratch)/policies/allowlist-test.toml"
        try "[policy]\nextends = [\"default\"]\n[network]\nmode = \"allowlist\"\nallow = [\"api.test:443\"]\n"
            .write(toFile: policy, atomically: true, encoding: .utf8)
        let r = Harness.run(["sh", "-c", "echo ran"], policy: policy, options: ["--dns-upstream", "not-an-address"])
        #expect(r.status == 125)
        #expect(!r.stdout.contains("ran"))
        #expect(r.stderr.contains("DNS upstream \"not-an-address\" is not IPv4:PORT"), "\(r.stderr)")
        #expect(r.reason == "setup-failed")
    }
}
