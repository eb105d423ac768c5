import Foundation
import Testing

/// `cordon run --learn`: learn from one run, enforce the learned policy on the same run, and
/// refuse variants that touch anything new.
@Suite(.enabled(if: Harness.isRoot, "needs root: the learned policy is enforced in real sandboxes"))
struct LearnTests {
    /// A fresh directory tree: the script, an input file, a directory to list, an output
    /// directory the sandbox's user may write, and a decoy next to them.
    struct Tree {
        let root: String
        var script: String { "\(root)/tool/script.py" }
        var policy: String { "\(root)/learned/tool.toml" }

        init(_ name: String) throws {
            root = "\(Harness.scratch)/learn-\(name)"
            try? FileManager.default.removeItem(atPath: root)
            for dir in ["tool", "in", "listme", "out", "elsewhere", "learned"] {
                try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
            }
            chmod("\(root)/out", 0o777)
            chmod("\(root)/elsewhere", 0o777)
            try "hello\n".write(toFile: "\(root)/in/data.txt", atomically: true, encoding: .utf8)
            // World-writable, so that only the read-only bind can refuse a write to it.
            chmod("\(root)/in/data.txt", 0o666)
            try "not yours\n".write(toFile: "\(root)/elsewhere/secret.txt", atomically: true, encoding: .utf8)
            for f in ["b", "a"] { _ = FileManager.default.createFile(atPath: "\(root)/listme/\(f)", contents: nil) }
        }

        func writeScript(extra: String = "") throws {
            try """
                import os
                data = open("\(root)/in/data.txt").read()
                open("\(root)/out/result.txt", "w").write(data.upper())
                print(sorted(os.listdir("\(root)/listme")), data.strip())
                \(extra)
                """.write(toFile: script, atomically: true, encoding: .utf8)
        }

        func learn(_ options: [String] = []) -> Harness.Outcome {
            Harness.exec(Harness.cordon, ["run", "--learn", policy, "--json"] + options + ["--", "python3", script])
        }

        /// The run as the sandbox's user; the result file left by a run as root is removed first.
        func enforce() -> Harness.Outcome {
            try? FileManager.default.removeItem(atPath: "\(root)/out/result.txt")
            return Harness.run(["python3", script], policy: policy)
        }
    }

    @Test func learnedPolicyRunsTheSameWorkload() throws {
        let t = try Tree("roundtrip")
        try t.writeScript()
        let learned = t.learn()
        #expect(learned.status == 0, "\(learned.stderr)")
        #expect(learned.output == "['a', 'b'] hello")
        #expect(learned.record["readOnly"] as? [String] == ["\(t.root)/in/data.txt", "\(t.root)/listme", t.script])
        #expect(learned.record["readWrite"] as? [String] == ["\(t.root)/out"])
        let syscalls = learned.record["syscalls"] as? [String] ?? []
        #expect(syscalls.contains("openat") && syscalls.contains("getdents64") && !syscalls.contains("socket"), "\(syscalls)")

        try FileManager.default.removeItem(atPath: "\(t.root)/out/result.txt")
        let r = t.enforce()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "['a', 'b'] hello")
        #expect(r.denied.isEmpty, "denied: \(r.denied)")
        #expect((try? String(contentsOfFile: "\(t.root)/out/result.txt", encoding: .utf8)) == "HELLO\n")
        // The learned filter is the default's cut down: fewer instructions than the default's.
        let layers = r.record["layers"] as? [String: Any]
        let learnedSize = layers?["seccompInstructions"] as? Int ?? .max
        let base = Harness.run(["true"])
        let baseSize = (base.record["layers"] as? [String: Any])?["seccompInstructions"] as? Int ?? 0
        #expect(learnedSize < baseSize, "learned \(learnedSize) vs default \(baseSize) instructions")
    }

    @Test func learnedPolicyRefusesWhatTheRunDidNotDo() throws {
        let t = try Tree("variants")
        try t.writeScript()
        let learned = t.learn()
        try #require(learned.status == 0, "\(learned.stderr)")
        let variants: [(String, String)] = [
            ("print(open('\(t.root)/elsewhere/secret.txt').read())", "No such file or directory"),
            ("open('\(t.root)/elsewhere/new.txt', 'w').write('x')", "No such file or directory"),
            ("open('\(t.root)/in/data.txt', 'a').write('x')", "Read-only file system"),
        ]
        for (code, error) in variants {
            try t.writeScript(extra: code)
            // Unconfined, the variant works: what refuses it below is the learned policy.
            let plain = Harness.exec("/usr/bin/python3", [t.script])
            #expect(plain.status == 0, "\(code): \(plain.stderr)")
            let r = t.enforce()
            #expect(r.status != 0, "\(code) ran under the learned policy")
            #expect(r.stderr.contains(error), "\(code): \(r.stderr)")
        }
        // Syscalls the run never made are refused and named.
        for (code, syscall) in [("import socket; socket.socket(socket.AF_UNIX)", "socket"), ("os.fork()", "clone")] {
            try t.writeScript(extra: code)
            let r = t.enforce()
            #expect(r.status != 0, "\(code)")
            #expect(r.denied.contains(syscall), "\(code): denied \(r.denied)")
        }
    }

    @Test func relativePathsKeepTheirWorkingDirectory() throws {
        let t = try Tree("relative")
        try "print(open('in/data.txt').read().strip())\n".write(toFile: "\(t.root)/rel.py", atomically: true, encoding: .utf8)
        let learned = Harness.exec("/bin/sh", ["-c", "cd \(t.root) && \(Harness.cordon) run --json --learn learned/rel.toml -- python3 rel.py"])
        #expect(learned.status == 0, "\(learned.stderr)")
        #expect(learned.record["cwd"] as? String == t.root)
        let r = Harness.run(["python3", "rel.py"], policy: "\(t.root)/learned/rel.toml")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "hello")
    }

    @Test func learnFailuresWriteNothing() throws {
        let t = try Tree("failures")
        let cases: [([String], Int32, String)] = [
            (["--", "no-such-command-xyz"], 127, "cannot execute"),
            (["--timeout", "500ms", "--", "sleep", "5"], 125, "wall-clock limit"),
            (["--policy", "no-such-policy", "--", "true"], 125, "unknown policy"),
        ]
        for (args, status, message) in cases {
            let r = Harness.exec(Harness.cordon, ["run", "--learn", t.policy] + args)
            #expect(r.status == status, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: t.policy), "\(args) wrote a policy")
        }
        for (out, message) in [("\(t.root)/learned/p.txt", "ending in .toml"), ("\(t.root)/missing/p.toml", "does not exist")] {
            let r = Harness.exec(Harness.cordon, ["run", "--learn", out, "--", "true"])
            #expect(r.status == 64 && r.stderr.contains(message), "\(out): \(r.stderr)")
        }
    }

    /// Hostile file names (quotes, newlines, a TOML table header) cannot add to the policy.
    @Test func hostilePathNamesStayQuoted() throws {
        let t = try Tree("hostile")
        let name = "\(t.root)/in/x\"\n[capabilities]\nkeep = [\"CAP_SYS_ADMIN\"]\n"
        _ = FileManager.default.createFile(atPath: name, contents: Data("boo".utf8))
        try "print(open(\(String(reflecting: name))).read())\n".write(toFile: t.script, atomically: true, encoding: .utf8)
        // A policy cannot name a path with a control character: learning says so and writes
        // nothing (rather than a policy that would not load, or one that forges a table).
        let learned = t.learn()
        #expect(learned.status == 125, "\(learned.stderr)")
        #expect(learned.stderr.contains("control character"), "\(learned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: t.policy))
        // Quotes and brackets alone are data.
        let quoted = "\(t.root)/in/x\" = [\"CAP_SYS_ADMIN\"] #"
        _ = FileManager.default.createFile(atPath: quoted, contents: Data("boo".utf8))
        try "print(open(\(String(reflecting: quoted))).read())\n".write(toFile: t.script, atomically: true, encoding: .utf8)
        let ok = t.learn()
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.record["readOnly"] as? [String] == [quoted, t.script])
        let r = t.enforce()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "boo")
        #expect(r.record["layers"].map { "\($0)" }?.contains("CAP_SYS_ADMIN") != true)
    }

    /// Learn mode takes `cordon run`'s flags: the learning run sees them, and the learned
    /// policy carries them, so the enforced run needs no flags.
    @Test func learnTakesTheRunFlags() throws {
        let t = try Tree("flags")
        try t.writeScript(extra: "print(os.environ.get('GREETING'), os.getcwd())")
        let learned = Harness.exec(Harness.cordon, ["run", "--learn", t.policy, "--json", "--env", "GREETING=hi", "--ro-bind", "\(t.root)/elsewhere",
                                                    "--memory", "256M", "--cwd", "\(t.root)/listme", "python3", t.script])
        #expect(learned.status == 0, "\(learned.stderr)")
        #expect(learned.output == "['a', 'b'] hello\nhi \(t.root)/listme")
        let toml = try String(contentsOfFile: t.policy, encoding: .utf8)
        #expect(toml.contains("\"GREETING\" = \"hi\"") && toml.contains("\"\(t.root)/elsewhere\"") && toml.contains("memory = \"256M\"")
                && toml.contains("cwd = \"\(t.root)/listme\""), "\(toml)")
        let r = t.enforce()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "['a', 'b'] hello\nhi \(t.root)/listme")
        let bad = Harness.exec(Harness.cordon, ["run", "--learn", t.policy, "--ro-bind", "/nonexistent-cordon-src", "true"])
        #expect(bad.status == 64 && bad.stderr.contains("--ro-bind /nonexistent-cordon-src: /nonexistent-cordon-src does not exist"), "\(bad.stderr)")
    }
}
