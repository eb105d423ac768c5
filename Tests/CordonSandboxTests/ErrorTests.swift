import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Bad input gets a clear error naming the problem, and nothing runs.
@Suite(.enabled(if: Harness.isRoot, "needs root: runs cordon"))
struct ErrorTests {
    @Test func missingCommandInsideTheSandbox() {
        let r = Harness.run(["no-such-command-xyz"], json: false)
        #expect(r.status == 127)
        #expect(r.stderr.contains("execve: no-such-command-xyz: No such file or directory"), "\(r.stderr)")
    }

    @Test func noCommandAtAll() {
        let r = Harness.exec(Harness.cordon, ["run"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("missing COMMAND"), "\(r.stderr)")
    }

    @Test func unknownKeyIsNamedWithASuggestion() {
        let policy = Harness.policy("typo", edits: [("pids = 256", "pid = 256")])
        let r = Harness.run(["true"], policy: policy, json: false)
        #expect(r.status == 125)
        #expect(r.stderr.contains("limits.pid: unknown key (did you mean 'pids'?)"), "\(r.stderr)")
        #expect(r.stderr.contains("typo.toml:"), "the file is named: \(r.stderr)")
    }

    @Test func badUnitIsNamed() {
        let policy = Harness.policy("bad-unit", edits: [("memory = \"512M\"", "memory = \"lots\"")])
        let r = Harness.run(["true"], policy: policy, json: false)
        #expect(r.status == 125)
        #expect(r.stderr.contains("limits.memory: bad size \"lots\""), "\(r.stderr)")
    }

    @Test func missingBindSourceIsNamed() {
        let policy = Harness.policy("missing-bind", edits: [("read_only = [\n", "read_only = [\n  \"/does/not/exist\",\n")])
        let r = Harness.run(["true"], policy: policy, json: false)
        #expect(r.status == 125)
        #expect(r.stderr.contains("filesystem.read_only: /does/not/exist does not exist"), "\(r.stderr)")
    }

    /// A step that fails inside the child is reported as "step: what: errno text", exit 125,
    /// and the command does not run.
    @Test func childSideSetupFailure() {
        let policy = Harness.policy("bad-cwd", edits: [("pass_env = [\"TERM\"]", "pass_env = [\"TERM\"]\ncwd = \"/nonexistent\"")])
        let r = Harness.run(["sh", "-c", "echo ran"], policy: policy)
        #expect(r.status == 125)
        #expect(r.output.isEmpty, "the command ran")
        #expect(r.reason == "setup-failed")
        #expect(r.stderr.contains("chdir: /nonexistent: No such file or directory"), "\(r.stderr)")
    }

    @Test func unknownPolicyName() {
        let r = Harness.run(["true"], policy: "nonexistent-policy", json: false)
        #expect(r.status == 125)
        #expect(r.stderr.contains("unknown policy \"nonexistent-policy\""), "\(r.stderr)")
    }

    @Test func withoutRootItRefusesClearly() {
        let r = Harness.exec("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Harness.cordon, "run", "--", "true"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("needs root"), "\(r.stderr)")
    }

    @Test func builtInDefaultPolicyWorksWithoutConfigDir() {
        let r = Harness.exec(Harness.cordon, ["run", "--json", "--state-dir", Harness.stateDir, "--runtime-dir", Harness.runtimeDir, "--", "true"],
                             environment: ["CORDON_CONFIG": "/nonexistent-config"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.record["policy"] as? String == "default")
    }
}

extension ErrorTests {
    @Test func unreachableRuntimeDirIsExplained() throws {
        let dir = "\(Harness.scratch)/private-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o700)
        let r = Harness.exec(Harness.cordon, ["run", "--policy", Harness.defaultPolicy, "--state-dir", Harness.stateDir,
                                              "--runtime-dir", "\(dir)/run", "--", "true"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("\(dir) is not searchable by the sandbox's unprivileged uid"), "\(r.stderr)")
    }
}

/// What Cordon keeps on disk is trusted only when it is root's and private.
@Suite(.enabled(if: Harness.isRoot, "needs root: runs cordon"), .serialized)
struct StateTrustTests {
    @Test func plantedSymlinkAsRootMountPointIsRefused() throws {
        let dir = "\(Harness.scratch)/planted-\(getpid())"
        try FileManager.default.createDirectory(atPath: "\(dir)/run", withIntermediateDirectories: true)
        let target = "\(dir)/secret"
        try #require(FileManager.default.createFile(atPath: target, contents: Data("x".utf8), attributes: [.posixPermissions: 0o600]))
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/run/root", withDestinationPath: target)
        let r = Harness.exec(Harness.cordon, ["run", "--policy", Harness.defaultPolicy, "--state-dir", Harness.stateDir,
                                              "--runtime-dir", "\(dir)/run", "--", "true"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("must be a directory owned by root (not a symlink)"), "\(r.stderr)")
        let mode = try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int
        #expect(mode == 0o600, "the symlink's target was chmod'ed")
    }

    /// A cached filter someone else could have written is ignored: the filter is compiled anew.
    @Test func untrustedSeccompCacheIsIgnored() throws {
        let state = "\(Harness.scratch)/state-trust-\(getpid())"
        let probe = ["/opt/cordon-test/cordon-probe", "ptrace-traceme"]
        func run() -> String {
            // The plan cache above it keeps the filter of a planned policy: without its entry,
            // the run reads the filter cache (the plan cache's own trust: PlanCacheTests).
            try? FileManager.default.removeItem(atPath: "\(state)/cache/plans")
            return Harness.exec(Harness.cordon, ["run", "--policy", Harness.defaultPolicy, "--state-dir", state,
                                          "--runtime-dir", Harness.runtimeDir, "--"] + probe).output
        }
        #expect(run() == "ptrace-traceme: errno EPERM")
        let cacheDir = "\(state)/cache/seccomp"
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: cacheDir).first)
        // A filter that allows everything: one BPF instruction, RET SECCOMP_RET_ALLOW.
        let allowAll: [UInt8] = [0x06, 0, 0, 0, 0x00, 0x00, 0xff, 0x7f]
        let forged = Array("cordon-seccomp 1\ndefault 1\nbpf 8\n".utf8) + allowAll
        try #require(FileManager.default.createFile(atPath: "\(cacheDir)/\(file)", contents: Data(forged)))
        chmod("\(cacheDir)/\(file)", 0o600)
        // Owned by root: trusted (root can change anything), so the forged filter is used. This
        // shows the test reaches the cache at all.
        #expect(run() == "ptrace-traceme: ok")
        // Owned by someone else: ignored.
        chown("\(cacheDir)/\(file)", 65534, 65534)
        #expect(run() == "ptrace-traceme: errno EPERM")
    }
}

extension ErrorTests {
    /// ENOENT from execve of a file that is there means its loader is not: the error says so.
    @Test func missingDynamicLoaderIsExplained() throws {
        let path = "\(Harness.scratch)/policies/usr-only.toml"
        try "[filesystem]\nread_only = [\"/usr\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = Harness.run(["/usr/bin/true"], policy: path, json: false)
        #expect(r.status == 127)
        #expect(r.stderr.contains("its interpreter or dynamic loader"), "\(r.stderr)")
    }
}
