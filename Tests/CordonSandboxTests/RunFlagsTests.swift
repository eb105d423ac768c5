import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon run` as people type it (issue 16, items 6–9): flags that extend or tighten the policy
/// for one run, the working directory, a two-file Python tool, the summary of what Cordon
/// refused, and the `--json` record on a line of its own — through the real binary.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct RunFlagsTests {
    /// A fresh directory under the scratch dir (itself under /tmp, a tmpfs in the default
    /// policy, so nothing of it is visible inside unless bound).
    static func directory(_ name: String, files: [String: String] = [:]) throws -> String {
        let dir = "\(Harness.scratch)/flags-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        for (file, text) in files { try text.write(toFile: "\(dir)/\(file)", atomically: true, encoding: .utf8) }
        return dir
    }

    // MARK: item 6: --bind, --ro-bind, --env, --cwd

    @Test func bindEnvAndTheCallersCwd() throws {
        let dir = try Self.directory("bind", files: ["in.txt": "from the host\n"])
        let r = Harness.run(["sh", "-c", "cat in.txt; echo \"$GREETING\"; pwd; echo made > out.txt"],
                            options: ["--bind", dir, "--env", "GREETING=hi"], cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "from the host\nhi\n\(dir)")
        #expect(!r.stderr.contains("not bound"), "\(r.stderr)")
        #expect((try? String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8)) == "made\n")
        // Through the same idmapped path as a policy's read_write entry: the host owner owns it.
        var st = stat(), dirStat = stat()
        #expect(stat("\(dir)/out.txt", &st) == 0 && stat(dir, &dirStat) == 0 && st.st_uid == dirStat.st_uid, "uid \(st.st_uid)")

        let ro = Harness.run(["sh", "-c", "cat in.txt && echo no > other.txt"], options: ["--ro-bind", dir], cwd: dir)
        #expect(ro.status != 0 && ro.stderr.contains("Read-only file system"), "\(ro.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/other.txt"))
        // SRC:DST, and --cwd.
        let moved = Harness.run(["sh", "-c", "pwd; cat in.txt"], options: ["--ro-bind", "\(dir):/src", "--cwd", "/src"])
        #expect(moved.status == 0 && moved.output == "/src\nfrom the host", "\(moved.stderr)")
    }

    /// A caller whose umask is 077 (a hardened login's) gets the sandbox its policy describes:
    /// the root's directories and files have the modes the plan names (narrowed by that umask,
    /// /etc was unreadable to the workload), and the workload keeps the caller's umask for what
    /// it creates. cordond met the same through another thread's umask at a clone.
    @Test func aCallersTightUmaskNarrowsOnlyWhatTheWorkloadCreates() throws {
        let dir = try Self.directory("umask", files: ["in.txt": "bound\n"])
        let runtime = "\(Harness.scratch)/umask-runtime"  // made under that umask too
        try? FileManager.default.removeItem(atPath: runtime)
        let script = "head -c 5 /etc/passwd; echo; cat \(dir)/in.txt; umask; stat -c %a /etc \(dir); touch \(dir)/new; stat -c %a \(dir)/new"
        let args = ["run", "--policy", Harness.defaultPolicy, "--state-dir", Harness.stateDir, "--runtime-dir", runtime,
                    "--bind", dir, "--", "sh", "-c", script]
        for _ in 0..<2 {  // the runtime directory made by the first, then there
            try? FileManager.default.removeItem(atPath: "\(dir)/new")
            let r = Harness.exec("/bin/sh", ["-c", "umask 077; exec \"$0\" \"$@\"", Harness.cordon] + args)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "root:\nbound\n0077\n755\n755\n600\n", "\(r.stdout)\n\(r.stderr)")
        }
    }

    @Test func anUnboundCwdIsSaid() throws {
        let dir = try Self.directory("unbound", files: ["tool.py": "print('hi')\n"])
        let r = Harness.run(["sh", "-c", "pwd; ls tool.py"], cwd: dir)
        #expect(r.stderr.contains("cordon: your cwd \(dir) is not bound in the sandbox: the command ran in /work; add --bind \(dir) or --ro-bind \(dir)"),
                "\(r.stderr)")
        #expect(r.output.hasPrefix("/work"))
        // A command that succeeds leaves stderr to itself.
        let fine = Harness.run(["true"], cwd: dir)
        #expect(fine.status == 0 && !fine.stderr.contains("not bound"), "\(fine.stderr)")
        let explicit = Harness.run(["pwd"], options: ["--cwd", "/tmp"], cwd: dir)
        #expect(explicit.output == "/tmp" && !explicit.stderr.contains("not bound"), "\(explicit.stderr)")
    }

    @Test func badFlagsChangeNothingAndNameTheFlagAndKey() throws {
        let missing = Harness.run(["true"], options: ["--ro-bind", "/nonexistent-cordon-src"])
        #expect(missing.status == 64)
        #expect(missing.stderr.contains("--ro-bind /nonexistent-cordon-src: /nonexistent-cordon-src does not exist on this host"), "\(missing.stderr)")
        #expect(missing.reason == "setup-failed" && (missing.record["setupFailure"] as? [String: Any])?["step"] as? String == "arguments")
        let relative = Harness.run(["true"], options: ["--bind", "src"])
        #expect(relative.status == 64 && relative.stderr.contains("--bind src: \"src\" must be an absolute path"), "\(relative.stderr)")
        let memory = Harness.run(["true"], options: ["--memory", "1G"])
        #expect(memory.status == 64 && memory.stderr.contains("--memory 1G: looser than policy default's limits.memory = 512M"), "\(memory.stderr)")
        let hidden = try Self.directory("hidden")
        let hide = Harness.policy("flags-hide", edits: [("workdir = \"/work\"", "workdir = \"/work\"\nhide = [\"\(hidden)\"]")])
        let shown = Harness.run(["true"], policy: hide, options: ["--ro-bind", hidden])
        #expect(shown.status == 64 && shown.stderr.contains("(filesystem.hide)"), "\(shown.stderr)")
    }

    // MARK: item 7: --timeout only tightens

    @Test func timeoutOnlyTightens() {
        // python-tool's wall clock is 2m: 90m is refused, naming the key and both values.
        let loose = Harness.run(["true"], policy: "python-tool", options: ["--timeout", "90m"])
        #expect(loose.status == 64, "\(loose.stderr)")
        #expect(loose.stderr.contains("--timeout 5400s: looser than policy python-tool's limits.wall_time = 120s"), "\(loose.stderr)")
        let tight = Harness.run(["sleep", "5"], options: ["--timeout", "300ms"], json: false)
        #expect(tight.status != 0 && tight.stderr.contains("cordon: ended: wall-clock limit 300ms (--timeout)"), "\(tight.stderr)")
    }

    // MARK: item 8: a two-file Python tool under python-tool

    @Test func pythonToolImportsTheModuleNextToItsScript() throws {
        let dir = try Self.directory("pytool", files: [
            "main.py": "import helper\nprint(helper.greet())\n",
            "helper.py": "def greet():\n    return 'hello from helper'\n",
        ])
        let r = Harness.run(["python3", "main.py"], policy: "python-tool", options: ["--ro-bind", dir], cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "hello from helper")
        // From elsewhere, by path: the script's directory, not the cwd, is what makes it work.
        let byPath = Harness.run(["python3", "\(dir)/main.py"], policy: "python-tool", options: ["--ro-bind", dir, "--cwd", "/tmp"])
        #expect(byPath.status == 0 && byPath.output == "hello from helper", "\(byPath.stderr)")
    }

    // MARK: item 9: refusals and limits said; the record on a line of its own

    @Test func aSeccompRefusalIsSummarised() {
        let probe = "/opt/cordon-test/cordon-probe"
        let r = Harness.run(["sh", "-c", "\(probe) ptrace-traceme; \(probe) ptrace-traceme; \(probe) ptrace-traceme"], json: false)
        #expect(r.stderr.contains("cordon: refused: syscall ptrace ×3 (seccomp.profile)\n"), "\(r.stderr)")
        // With --json the record says it; stderr does not repeat it.
        let json = Harness.run(["\(probe)", "ptrace-traceme"])
        #expect(json.denied == ["ptrace"] && !json.stderr.contains("refused:"), "\(json.stderr)")
    }

    @Test func aMemoryLimitIsSummarisedWithItsValue() {
        let hog = ["python3", "-c", "b = []\nwhile True: b.append(bytearray(16 << 20))"]
        let policy = Harness.policy("flags-memory", edits: [("memory = \"512M\"", "memory = \"96M\"")])
        let r = Harness.run(hog, policy: policy, json: false)
        #expect(r.stderr.contains("cordon: ended: memory limit 96 MiB (limits.memory)\n"), "\(r.stderr)")
        let flagged = Harness.run(hog, options: ["--memory", "64M"], json: false)
        #expect(flagged.stderr.contains("cordon: ended: memory limit 64 MiB (--memory)\n"), "\(flagged.stderr)")
    }

    @Test func theRecordIsOnALineOfItsOwn() {
        let r = Harness.run(["printf", "x"])
        #expect(r.stdout.hasPrefix("x\n{\""), "\(r.stdout)")
        #expect(r.output == "x" && r.reason == "exited")
        let line = Harness.run(["printf", "x\\n"])
        #expect(line.stdout.hasPrefix("x\n{\""), "\(line.stdout)")
        let none = Harness.run(["true"])
        #expect(none.stdout.hasPrefix("{\""), "\(none.stdout)")
    }

    @Test func aPolicyThatDoesNotLoadStillGetsARecord() throws {
        let path = "\(Harness.scratch)/policies/flags-broken.toml"
        try "[policy]\nextends = [\"default\"]\n[limits]\nmemroy = \"1G\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = Harness.run(["true"], policy: path)
        #expect(r.status == 125)
        #expect(r.reason == "setup-failed", "\(r.stdout)")
        let failure = r.record["setupFailure"] as? [String: Any]
        #expect(failure?["step"] as? String == "policy")
        let message = failure?["message"] as? String ?? ""
        #expect(message.contains(path) && message.contains("limits.memroy") && message.contains("did you mean 'memory'"), "\(message)")
    }

    @Test func theCommandNeedsNoTerminator() {
        let base = ["run", "--policy", Harness.defaultPolicy, "--state-dir", Harness.stateDir, "--runtime-dir", Harness.runtimeDir]
        let r = Harness.exec(Harness.cordon, base + ["sh", "-c", "echo ran $0", "--json"])
        #expect(r.status == 0 && r.stdout == "ran --json\n", "\(r.stdout) \(r.stderr)")
        let typo = Harness.exec(Harness.cordon, base + ["--polcy", "x", "true"])
        #expect(typo.status == 64 && typo.stderr.contains("Did you mean '--policy'?"), "\(typo.stderr)")
    }
}
