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
