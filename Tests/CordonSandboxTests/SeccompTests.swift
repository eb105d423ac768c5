import CordonSandbox
import CSeccomp
import Foundation
import Testing

/// Every syscall the default profile must refuse, attempted from inside; each refusal must also
/// reach the result's denial log by name (which tells seccomp apart from a missing capability).
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct SeccompTests {
    static let probe = "/opt/cordon-test/cordon-probe"

    /// (probe operation and arguments, syscall name expected in the denial log)
    static let refused: [([String], String)] = [
        (["io_uring_setup"], "io_uring_setup"),
        (["clone-newuser"], "clone"), (["clone-newns"], "clone"), (["clone-newnet"], "clone"),
        (["unshare-user"], "unshare"), (["unshare-mount"], "unshare"), (["unshare-net"], "unshare"),
        (["setns"], "setns"),
        (["mount"], "mount"), (["umount"], "umount2"), (["pivot_root"], "pivot_root"), (["chroot"], "chroot"),
        (["fsopen"], "fsopen"), (["open_tree"], "open_tree"), (["move_mount"], "move_mount"),
        (["ptrace-traceme"], "ptrace"), (["ptrace-attach", "1"], "ptrace"), (["process_vm_readv"], "process_vm_readv"),
        (["bpf"], "bpf"), (["perf_event_open"], "perf_event_open"), (["userfaultfd"], "userfaultfd"),
        (["keyctl"], "keyctl"), (["add_key"], "add_key"), (["request_key"], "request_key"),
        (["kexec_load"], "kexec_load"), (["kexec_file_load"], "kexec_file_load"),
        (["init_module"], "init_module"), (["finit_module"], "finit_module"), (["delete_module"], "delete_module"),
        (["open_by_handle_at"], "open_by_handle_at"),
        (["tiocsti"], "ioctl"), (["tiocsti-high-bits"], "ioctl"), (["tioclinux"], "ioctl"),
        (["socket", "vsock", "stream"], "socket"), (["socket", "packet", "raw"], "socket"),
        (["socket", "inet", "raw"], "socket"), (["socket", "netlink", "dgram"], "socket"),
        (["socket", "inet6", "raw"], "socket"),
    ]

    @Test(arguments: refused)
    func refusedAndLogged(_ attempt: ([String], String)) {
        let (args, syscall) = attempt
        let r = Harness.run([Self.probe] + args)
        #expect(r.output == "\(args[0]): errno EPERM", "\(args): \(r.output) \(r.stderr)")
        #expect(r.denied.contains(syscall), "\(syscall) missing from denial log \(r.denied)")
    }

    /// The neighbours of refused calls still work: the filter is precise.
    @Test(arguments: [
        (["clone-plain"], "clone-plain: ok"), (["unshare-files"], "unshare-files: ok"),
        (["socket", "unix", "stream"], "socket: ok"), (["socket", "inet", "stream"], "socket: ok"),
        (["socket", "inet6", "dgram"], "socket: ok"), (["socket", "unix", "seqpacket"], "socket: ok"),
        (["ioctl-fionread"], "ioctl-fionread: ok"),
    ])
    func precise(_ attempt: ([String], String)) {
        let r = Harness.run([Self.probe] + attempt.0)
        #expect(r.output == attempt.1, "\(attempt.0): \(r.output) \(r.stderr)")
        #expect(r.denied.isEmpty, "\(r.denied)")
    }

    /// clone3 answers ENOSYS so that libc falls back to clone, whose flags the filter can see.
    @Test func clone3FallsBack() {
        let r = Harness.run([Self.probe, "clone3"])
        #expect(r.output == "clone3: errno ENOSYS")
        #expect(r.denied.isEmpty, "ENOSYS fallbacks are not violations: \(r.denied)")
    }

    /// Calls through the other syscall ABIs of x86-64 are killed by the architecture check.
    @Test(.enabled(if: isX86_64), arguments: ["i386-getpid", "x32-getpid"])
    func foreignABIsAreKilled(_ op: String) {
        let r = Harness.run([Self.probe, op])
        #expect(r.record["signalName"] as? String == "SIGSYS", "\(op): \(r.output) \(r.record)")
        #expect(r.status == 128 + 31)
    }

    static var isX86_64: Bool {
        #if arch(x86_64)
        return true
        #else
        return false
        #endif
    }
}

/// A workload sweeping syscall numbers cannot grow the supervisor or the record without bound.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct DenialFloodTests {
    @Test func denialRecordIsBounded() {
        let code = "import ctypes; libc = ctypes.CDLL(None); [libc.syscall(n) for n in range(1000, 1500)]; print('swept')"
        let r = Harness.run(["python3", "-c", code])
        #expect(r.output == "swept", "\(r.stderr)")
        #expect(r.denied.count == 64)
        // Python makes no refused call of its own at start-up, so the first 64 are nr 1000…1063.
        #expect(r.denied.first == "nr 1000")
        #expect(r.record["deniedOmitted"] as? Int == 500 - 64)
    }
}

/// `cs_filter_allows`, which decides whether the workload installs its filter before it waits on
/// the gate (while cordon-init executes) or after: it must read the compiled filter as the kernel
/// does for calls decided by number alone, and answer no for anything decided by an argument.
@Suite struct FilterCheckTests {
    /// The shipped profile `name` with `removed` taken out of every rule.
    static func profile(_ name: String, without removed: Set<String> = []) throws -> [UInt8] {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Harness.repo)/profiles/seccomp/\(name).json")))
        if removed.isEmpty { return bytes }
        var profile = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        var rules = try #require(profile["syscalls"] as? [[String: Any]])
        for i in rules.indices { rules[i]["names"] = (rules[i]["names"] as? [String])?.filter { !removed.contains($0) } }
        profile["syscalls"] = rules
        return try [UInt8](JSONSerialization.data(withJSONObject: profile))
    }

    static func filter(_ name: String, without removed: Set<String> = []) throws -> CompiledSeccomp {
        try SeccompCompiler.compile(profileBytes: profile(name, without: removed),
                                    file: "\(Harness.repo)/profiles/seccomp/\(name).json", cacheDir: nil)
    }

    /// Whether `f` allows the call `name` (or a number) whatever its arguments.
    static func allows(_ f: CompiledSeccomp, _ name: String) -> Bool {
        let nr = Int32(name) ?? seccomp_syscall_resolve_name(name)
        precondition(nr >= 0, "unknown syscall \(name)")
        return f.allowsUnconditionally(nr)
    }

    @Test func readsTheDefaultProfile() throws {
        let f = try Self.filter("default")
        for call in ["read", "close", "sendmsg", "rt_sigprocmask", "exit_group", "execve", "execveat", "getpid"] {
            #expect(Self.allows(f, call), "\(call)")
        }
        // Refused outright, or decided by an argument (clone's flags, socket's family, ioctl's
        // request, chmod's mode): no.
        for call in ["mount", "ptrace", "bpf", "clone", "socket", "ioctl", "chmod", "openat2", "9999"] {
            #expect(!Self.allows(f, call), "\(call)")
        }
    }

    /// A profile that refuses what the spawn needs under the filter is refused by name.
    @Test func aProfileWithoutSendmsgOrExecveIsRefused() throws {
        for (removed, named) in [(["sendmsg"], "sendmsg must"), (["execve"], "execve must"), (["sendmsg", "execve"], "sendmsg and execve must")] {
            do {
                _ = try Self.filter("default", without: Set(removed))
                Issue.record("\(removed): compiled")
            } catch {
                #expect("\(error)".contains("default.json: \(named) be allowed without conditions"), "\(error)")
            }
        }
    }

    @Test func aCallTheProfileLeavesOutIsNotAllowed() throws {
        let f = try Self.filter("default", without: ["close", "read"])
        #expect(!Self.allows(f, "close") && !Self.allows(f, "read"))
        #expect(Self.allows(f, "write"))
        let strict = try Self.filter("strict")
        #expect(Self.allows(strict, "execveat") && Self.allows(strict, "read"))
        #expect(!Self.allows(strict, "socket") && !Self.allows(strict, "clone"))
    }
}

/// The calls the spawn itself makes under the workload's filter: whatever the profile leaves
/// out, a sandbox starts or fails with its reason, and never waits on a supervisor that is not
/// yet answering the filter's notifications.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct SpawnUnderTheFilterTests {
    static func policy(_ name: String, profile: String) -> String {
        Harness.policy(name, edits: [("profile = \"default\"", "profile = \"\(profile)\"")])
    }

    static func run(_ argv: [String], policy: String) -> Harness.Outcome {
        Harness.exec("/usr/bin/timeout", ["30", Harness.cordon, "run", "--json", "--policy", policy, "--state-dir", Harness.stateDir,
                                          "--runtime-dir", Harness.runtimeDir, "--"] + argv)
    }

    /// strict refuses sendto: a failed execve's report used it and waited forever.
    @Test func aFailedExecveIsReportedUnderStrict() {
        let r = Self.run(["/nonexistent"], policy: Self.policy("filter-strict", profile: "strict"))
        #expect(r.status == 127, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("/nonexistent"), "\(r.stderr)")
    }

    /// The workload's spare copies of its streams are closed before the filter: with a low
    /// `limits.open_files` the listener needs a free slot (6 failed with EMFILE at the seccomp
    /// step while the copies stayed open).
    @Test func aLowOpenFilesLimitLeavesTheListenerASlot() throws {
        let text = try String(contentsOfFile: "\(Harness.repo)/policies/default.toml", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("open_files = ") })
        let policy = Harness.policy("filter-open-files", edits: [(String(line), "open_files = 6")])
        for _ in 0..<3 {
            let r = Self.run(["/bin/echo", "started"], policy: policy)
            #expect(r.status == 0 && r.output == "started", "\(r.status) \(r.stdout) \(r.stderr)")
        }
    }

    /// Profiles refusing close, or read: the filter goes on after the gate (whose read and close
    /// they would refuse), the listener is not closed under it (close-on-exec does that), and
    /// the program starts and meets the refusals itself (the loader gives up, reported), never
    /// waits.
    @Test(arguments: ["close", "read"])
    func aProfileRefusingTheGateCallsStillStarts(_ refused: String) throws {
        let path = "\(Harness.scratch)/filter-no-\(refused).json"
        try Data(FilterCheckTests.profile("default", without: [refused])).write(to: URL(fileURLWithPath: path))
        let policy = Self.policy("filter-no-\(refused)", profile: path)
        for _ in 0..<3 {
            let r = Self.run(["/bin/echo", "started"], policy: policy)
            #expect(r.status == 127 && r.stderr.contains("/bin/echo: error while loading shared libraries"), "\(r.status) \(r.stdout) \(r.stderr)")
            #expect(r.denied.contains(refused), "\(r.denied)")
        }
    }
}
