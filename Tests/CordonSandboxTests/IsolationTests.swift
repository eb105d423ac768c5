import Foundation
import Testing
import CordonConfig
import CordonSandbox
#if canImport(Glibc)
import Glibc
#endif

/// Each isolation layer, attacked from inside (acceptance 1).
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct IsolationTests {
    static func field(_ status: String, _ name: String) -> String {
        status.split(separator: "\n").first { $0.hasPrefix(name + ":") }?
            .dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) ?? "<missing>"
    }

    // MARK: user namespace and identity

    @Test func workloadIsUnprivilegedWithEmptyCapabilities() {
        let r = Harness.run(["cat", "/proc/self/status"])
        #expect(r.status == 0, "\(r.stderr)")
        let s = r.output
        #expect(Self.field(s, "Uid").split(separator: "\t").allSatisfy { $0 == "1000" })
        #expect(Self.field(s, "Gid").split(separator: "\t").allSatisfy { $0 == "1000" })
        #expect(Self.field(s, "Groups") == "", "supplementary groups leaked from the host")
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(Self.field(s, cap) == "0000000000000000", "\(cap) not empty")
        }
        #expect(Self.field(s, "NoNewPrivs") == "1")
        #expect(Self.field(s, "Seccomp") == "2")
    }

    @Test func cannotRegainRoot() {
        #expect(Harness.run(["/opt/cordon-test/cordon-probe", "setuid", "0"]).output == "setuid: errno EPERM")
        #expect(Harness.run(["/opt/cordon-test/cordon-probe", "mknod"]).output == "mknod: errno EPERM")
    }

    @Test func uidMapIsAPrivateUnprivilegedHostRange() {
        let r = Harness.run(["cat", "/proc/self/uid_map"])
        let fields = r.output.split(separator: " ", omittingEmptySubsequences: true).compactMap { UInt32($0) }
        #expect(fields.count == 3)
        #expect(fields.first == 0)
        #expect((fields.dropFirst().first ?? 0) >= 0x4000_0000, "sandbox root must not be a real host user")
        #expect(r.hostUIDRange?.lowerBound == fields.dropFirst().first)
    }

    /// Two concurrent sandboxes get disjoint host uid ranges, so a process of one cannot signal
    /// the other even from outside both pid namespaces.
    @Test func concurrentSandboxesCannotSignalEachOther() throws {
        let first = try Harness.start(["sleep", "3.21"])
        defer { first.terminate(); first.waitUntilExit() }
        let victimPid = try #require(Harness.findSandboxed(["sleep", "3.21"]))
        let victimStatus = try String(contentsOfFile: "/proc/\(victimPid)/status", encoding: .utf8)
        let victimUID = UInt32(Self.field(victimStatus, "Uid").split(separator: "\t").first ?? "") ?? 0

        let other = Harness.run(["cat", "/proc/self/uid_map"])
        let otherRange = try #require(other.hostUIDRange)
        #expect(!otherRange.contains(victimUID), "ranges overlap")

        // A host process running as the second sandbox's workload uid tries to signal the first.
        let attackerUID = otherRange.lowerBound + 1000
        let attack = Harness.exec("/usr/bin/setpriv", ["--reuid=\(attackerUID)", "--regid=\(attackerUID)", "--clear-groups",
                                                      Harness.probe, "kill", "\(victimPid)"])
        #expect(attack.output == "kill: errno EPERM", "\(attack.stdout) \(attack.stderr)")
    }

    // MARK: pid namespace

    @Test func pidNamespaceShowsOnlyTheSandbox() {
        let r = Harness.run(["sh", "-c", "echo $$; ls /proc | grep -E '^[0-9]+$'"])
        let lines = r.output.split(separator: "\n").compactMap { Int($0) }
        #expect(lines.first == 2, "the workload is pid 2 under the sandbox's init: \(lines)")
        // Only the sandbox's own few processes (init, sh, ls, grep): no host pid is visible.
        #expect(lines.dropFirst().allSatisfy { $0 < 10 }, "host processes visible: \(lines)")
        #expect(lines.dropFirst().contains(1))
    }

    /// pid 1 is cordon-init, executed from a descriptor once the workload runs: nothing of the
    /// supervisor's command line or memory is in the sandbox, it holds CAP_KILL only with
    /// no_new_privs, and it cannot be read (its executable, its memory) from inside.
    @Test func initIsCordonInitHoldingNothingOfTheSupervisor() {
        let script = """
            tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/comm
            grep -E '^(CapPrm|CapEff|NoNewPrivs|VmRSS):' /proc/1/status | tr -s '\\t ' ' '
            readlink /proc/1/exe || echo exe-unreadable
            head -c1 /proc/1/mem || echo mem-unreadable
            """
        let r = Harness.run(["sh", "-c", script])
        let lines = r.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "cordon-init ", "\(r.output)")
        #expect(lines.contains("cordon-init"), "comm: \(r.output)")
        #expect(lines.contains("CapPrm: 0000000000000020") && lines.contains("CapEff: 0000000000000020"), "only CAP_KILL: \(r.output)")
        #expect(lines.contains("NoNewPrivs: 1"), "\(r.output)")
        #expect(lines.contains("exe-unreadable") && lines.contains("mem-unreadable"), "\(r.output)")
        // A copy of the supervisor would hold megabytes; the static init holds a few pages.
        let rss = lines.first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? Int.max
        #expect(rss < 1024, "init's resident memory: \(rss) kB")
        #expect(!r.output.contains(Harness.stateDir))
    }

    @Test func nothingOutlivesTheWorkload() throws {
        // The workload starts a daemonized grandchild and exits at once.
        let r = Harness.run(["sh", "-c", "setsid sleep 1000 > /dev/null 2>&1 & echo started"])
        #expect(r.output == "started")
        let range = try #require(r.hostUIDRange)
        #expect(Harness.processes(inUIDRange: range).isEmpty, "processes survived the sandbox")
    }

    @Test func signalsToCordonReachTheWorkload() throws {
        let out = Pipe()
        let process = try Harness.start(["sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"], stdout: out)
        let reader = out.fileHandleForReading
        var seen = ""
        while !seen.contains("ready") {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        kill(process.processIdentifier, SIGTERM)
        seen += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(seen == "ready\ngot-term\n")
        #expect(process.terminationStatus == 0)
    }

    // MARK: mount namespace

    @Test func rootAndSystemAreReadOnly() {
        let probe = "/opt/cordon-test/cordon-probe"
        #expect(Harness.run([probe, "write", "/new-file"]).output == "write: errno EROFS")
        #expect(Harness.run([probe, "write", "/usr/bin/evil"]).output == "write: errno EROFS")
        // Cordon's own /etc/passwd: the sandbox user may not write it (EACCES before EROFS).
        #expect(["write: errno EACCES", "write: errno EROFS"].contains(Harness.run([probe, "write", "/etc/passwd"]).output))
        #expect(Harness.run([probe, "write", "/tmp/ok"]).output == "write: ok")
        #expect(Harness.run([probe, "write", "/work/ok"]).output == "write: ok")
        #expect(Harness.run([probe, "write", "/opt/cordon-test/evil"]).output == "write: errno EROFS")
    }

    @Test func secretsOfTheHostAreAbsent() {
        let probe = "/opt/cordon-test/cordon-probe"
        #expect(Harness.run([probe, "read", "/etc/shadow"]).output == "read: errno ENOENT")
        #expect(Harness.run([probe, "read", "/etc/ssh/ssh_host_rsa_key"]).output == "read: errno ENOENT")
        #expect(Harness.run([probe, "read", "/root/.bash_history"]).output == "read: errno ENOENT")
        #expect(Harness.run([probe, "read", "/etc/ssl/private"]).output == "read: errno ENOENT")
        let passwd = Harness.run(["cat", "/etc/passwd"]).output
        #expect(!passwd.contains("root:x:0:0:root:/root:/bin/bash"), "host passwd visible")
        #expect(passwd.contains("sandbox:x:1000:1000"))
    }

    @Test func oldRootIsDetached() {
        let r = Harness.run(["cat", "/proc/self/mountinfo"])
        #expect(r.status == 0)
        #expect(!r.output.contains(Harness.runtimeDir), "host runtime dir visible in mountinfo")
        // Every mount point is inside the new root; none is the host's / left stacked below.
        let points = r.output.split(separator: "\n").compactMap { $0.split(separator: " ").dropFirst(4).first.map(String.init) }
        #expect(points.filter { $0 == "/" }.count == 1, "\(points)")
    }

    @Test func procIsMaskedAndReadOnly() {
        let probe = "/opt/cordon-test/cordon-probe"
        // Whatever of these the host kernel has is /dev/null inside: reads return nothing.
        let masked = ["/proc/kcore", "/proc/sysrq-trigger", "/proc/timer_list", "/proc/keys", "/proc/kallsyms"]
            .filter { FileManager.default.fileExists(atPath: $0) }
        #expect(!masked.isEmpty)
        let script = masked.map { "stat -c %t:%T \($0); wc -c < \($0)" }.joined(separator: "; ")
        let r = Harness.run(["sh", "-c", script])
        #expect(r.output == Array(repeating: "1:3\n0", count: masked.count).joined(separator: "\n"), "\(r.output) \(r.stderr)")
        #expect(["write: errno EACCES", "write: errno EROFS"].contains(Harness.run([probe, "write", "/proc/sys/kernel/hostname"]).output))
        // The mount itself is read-only (whoever the writer is).
        let mounts = Harness.run(["cat", "/proc/self/mountinfo"]).output.split(separator: "\n")
        let procSys = mounts.first { $0.split(separator: " ").dropFirst(4).first == "/proc/sys" }
        #expect(procSys?.split(separator: " ").dropFirst(5).first?.hasPrefix("ro,") == true, "\(String(describing: procSys))")
        #expect(Harness.run([probe, "write", "/proc/sysrq-trigger"]).output != "write: ok" || masked.contains("/proc/sysrq-trigger"))
        if FileManager.default.fileExists(atPath: "/proc/acpi") {
            #expect(Harness.run(["ls", "-A", "/proc/acpi"]).output.isEmpty)
        }
    }

    @Test func devIsMinimal() {
        let r = Harness.run(["ls", "/dev"])
        let entries = Set(r.output.split(separator: "\n").map(String.init))
        #expect(entries == ["null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout", "stderr", "ptmx", "pts", "shm"],
                "\(entries)")
        #expect(Harness.run(["sh", "-c", "head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok"]).output == "4\nnull-ok")
    }

    // MARK: ipc, uts, cgroup, network namespaces

    @Test func everyNamespaceIsNew() throws {
        let kinds = ["user", "pid", "mnt", "ipc", "uts", "net", "cgroup"]
        let r = Harness.run(["sh", "-c", kinds.map { "readlink /proc/self/ns/\($0)" }.joined(separator: "; ")])
        let inside = r.output.split(separator: "\n").map(String.init)
        try #require(inside.count == kinds.count, "\(r.output) \(r.stderr)")
        for (i, kind) in kinds.enumerated() {
            let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(kind)")
            #expect(inside[i] != host, "\(kind) namespace shared with the host")
        }
    }

    /// The sandbox lives in its own cgroup (so the limits apply), and its cgroup namespace is
    /// rooted there: it sees "/" and nothing of the host's cgroup paths.
    @Test func ownCgroupAndCgroupNamespace() throws {
        let sandbox = try Harness.start(["sleep", "2.345"])
        defer { sandbox.terminate(); sandbox.waitUntilExit() }
        let pid = try #require(Harness.findSandboxed(["sleep", "2.345"]))
        let hostView = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        for controller in ["memory", "pids"] {
            #expect(hostView.split(separator: "\n").contains { $0.contains(":\(controller):/cordon/s") }, "host view: \(hostView)")
        }
        let inside = Harness.run(["cat", "/proc/self/cgroup"]).output
        #expect(inside.split(separator: "\n").allSatisfy { $0.hasSuffix(":/") }, "\(inside)")
    }

    /// A System V shared-memory segment of the host is invisible inside (own ipc namespace).
    @Test func hostSysVIPCIsInvisible() throws {
        let made = Harness.exec("/usr/bin/ipcmk", ["-M", "4096"])
        let id = try #require(made.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        defer { _ = Harness.exec("/usr/bin/ipcrm", ["-m", id]) }
        #expect(Harness.exec("/usr/bin/ipcs", ["-m"]).stdout.contains(id), "the host does see it")
        let inside = Harness.run(["cat", "/proc/sysvipc/shm"])
        #expect(inside.status == 0)
        #expect(inside.output.split(separator: "\n").count == 1, "host segments visible: \(inside.output)")
    }

    @Test func hostnameIsOwn() {
        #expect(Harness.run(["cat", "/proc/sys/kernel/hostname"]).output == "cordon")
    }

    @Test func networkIsLoopbackOnly() throws {
        // A server on the host's loopback is out of reach: the sandbox's loopback is its own.
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, len) } }
        listen(server, 8)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &len) } }
        defer { close(server) }
        let port = UInt16(bigEndian: addr.sin_port)

        let probe = "/opt/cordon-test/cordon-probe"
        #expect(Harness.run([probe, "connect", "127.0.0.1", "\(port)"]).output == "connect: errno ECONNREFUSED")
        #expect(Harness.run([probe, "connect", "192.0.2.1", "80"]).output == "connect: errno ENETUNREACH")
        let devices = Harness.run(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"])
        #expect(devices.output == "lo")
        // Loopback inside works: a server and a client in the same sandbox.
        let local = Harness.run(["python3", "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname()); print('loopback ok')"])
        #expect(local.output == "loopback ok", "\(local.stderr)")
    }

    // MARK: session, descriptors, environment

    @Test func newSessionWithoutTerminalAndNoInheritedFDs() {
        let stat = Harness.run(["cat", "/proc/self/stat"]).output
        // After "(comm)": state ppid pgrp session tty_nr …
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        #expect(fields.count > 5)
        #expect(fields.dropFirst(3).first == "1", "session is not the sandbox's: \(fields.prefix(5))")
        #expect(fields.dropFirst(4).first == "0", "a controlling terminal leaked in")
        let fds = Harness.run(["/opt/cordon-test/cordon-probe", "fds"])
        #expect(fds.output == "fds: none")
    }

    @Test func environmentIsOnlyThePolicys() {
        let r = Harness.run(["env"], environment: ["CORDON_TEST_SECRET": "hunter2", "TERM": "xterm-test"])
        let vars = Set(r.output.split(separator: "\n").map(String.init))
        #expect(vars == ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "LANG=C.UTF-8", "TMPDIR=/tmp", "TERM=xterm-test"], "\(vars)")
    }

    // MARK: Landlock

    /// Landlock is enforced on its own, not only mirrored by mounts: with a directory mounted
    /// read-write but its Landlock rule withheld from the plan, writing there is refused.
    @Test func landlockRefusesWhatItsRulesDoNotGrant() throws {
        let dir = "\(Harness.scratch)/ll-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        let policyPath = Harness.policy("landlock-rw", edits: [("read_only = [\n", "read_write = [{ path = \"/data\", source = \"\(dir)\" }]\nread_only = [\n")])
        let store = PolicyStore(configDir: nil)
        let policy = try store.loadPolicy(policyPath)
        var plan = try store.spawnPlan(for: policy, cacheDir: nil, callerEnvironment: [:])

        func write(_ name: String) -> String {
            let outPath = "\(dir)-\(name).out"
            let fd = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            var io = SandboxIO()
            io.stdout = fd
            let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
            io.stdin = devnull
            _ = Sandbox.run(plan: plan, argv: ["/opt/cordon-test/cordon-probe", "write", "/data/\(name)"],
                            environment: SandboxEnvironment(runtimeDir: Harness.runtimeDir), io: io, wallTime: 30)
            close(fd)
            close(devnull)
            return ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
        }
        #expect(write("a") == "write: ok")
        plan.landlockRules.removeAll { $0.path == "/data" }
        #expect(write("b") == "write: errno EACCES")
    }
}

/// How the sandbox's child is made: sharing the supervisor's memory until it executes (the
/// default), or with a copy of it; and the init program it executes, which must be root's.
@Suite(.enabled(if: Harness.isRoot, "needs root"))
struct SpawnModeTests {
    static func run(_ argv: [String], _ change: (inout SandboxEnvironment) -> Void) throws -> (SandboxResult, String) {
        let store = PolicyStore(configDir: nil)
        let plan = try store.spawnPlan(for: try store.loadPolicy(Harness.defaultPolicy), cacheDir: nil, callerEnvironment: [:])
        var out: [Int32] = [-1, -1]
        guard pipe(&out) == 0 else { throw POSIXError(.EMFILE) }
        var io = SandboxIO()
        io.stdout = out[1]
        io.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        var environment = SandboxEnvironment(runtimeDir: Harness.runtimeDir)
        change(&environment)
        let result = Sandbox.run(plan: plan, argv: argv, environment: environment, io: io, wallTime: 30)
        close(out[1])
        close(io.stdin)
        let text = String(decoding: FileHandle(fileDescriptor: out[0], closeOnDealloc: true).readDataToEndOfFile(), as: UTF8.self)
        return (result, text)
    }

    @Test func aCopyOfMemoryWorksTheSameWay() throws {
        let (r, out) = try Self.run(["sh", "-c", "cat /proc/1/comm; grep NoNewPrivs /proc/1/status; exit 7"]) { $0.shareMemoryUntilExec = false }
        #expect(r.exitCode == 7, "\(r.setupFailure?.message ?? "")")
        #expect(out == "cordon-init\nNoNewPrivs:\t1\n")
    }

    /// pid 1 runs a stand-in for cordon-init that sleeps 300 ms before it executes the real
    /// one, so the window between the workload's start and cordon-init's is wide open: the
    /// workload must still find cordon-init as pid 1, in both modes, because it waits on the gate
    /// cordon-init opens. (Without the gate it reads the stand-in's name, every time.)
    @Test(arguments: [true, false]) func theWorkloadNeverRunsBeforeCordonInitIsPidOne(shareMemory: Bool) throws {
        let built = try #require(InitProgramPath.built)
        // Both cases run at once and may both build these: each writes a file of its own and
        // renames it into place, so neither executes a file the other is still writing (ETXTBSY,
        // or a half-copied cordon-init).
        let mine = "\(getpid()).\(shareMemory)"
        let initCopy = "\(Harness.probeDir)/cordon-init"
        if !FileManager.default.fileExists(atPath: initCopy) {
            let partial = "\(initCopy).\(mine).tmp"
            try? FileManager.default.removeItem(atPath: partial)
            try FileManager.default.copyItem(atPath: built, toPath: partial)
            rename(partial, initCopy)
        }
        let slowInit = "\(Harness.probeDir)/slow-init"
        if !FileManager.default.fileExists(atPath: slowInit) {
            let source = "\(Harness.scratch)/slow-init-\(mine).c"
            try """
            #include <time.h>
            #include <unistd.h>
            int main(int argc, char **argv, char **envp) {
                (void)argc;
                struct timespec t = { 0, 300000000 };
                nanosleep(&t, 0);
                execve("/opt/cordon-test/cordon-init", argv, envp);
                return 125;
            }
            """.write(toFile: source, atomically: true, encoding: .utf8)
            let r = Harness.exec("/usr/bin/cc", ["-static", "-O2", "-o", "\(slowInit).\(mine).tmp", source])
            #expect(r.status == 0, "\(r.stderr)")
            rename("\(slowInit).\(mine).tmp", slowInit)
        }
        for _ in 0..<3 {
            let (r, out) = try Self.run(["cat", "/proc/1/comm"]) { $0.initProgram = slowInit; $0.shareMemoryUntilExec = shareMemory }
            #expect(r.exitCode == 0, "\(r.setupFailure?.message ?? "")")
            #expect(out == "cordon-init\n")
        }
    }

    @Test func anInitProgramOthersCanWriteIsRefused() throws {
        let path = "\(Harness.scratch)/writable-init-\(getpid())"
        let built = try #require(InitProgramPath.built)
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: built, toPath: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        chmod(path, 0o757)
        let (r, _) = try Self.run(["true"]) { $0.initProgram = path }
        #expect(r.reason == .setupFailed)
        #expect(r.setupFailure?.step.name == "init-program")
        #expect(r.setupFailure?.message.contains("writable by root only") == true, "\(r.setupFailure?.message ?? "")")
        #expect(r.setupFailure?.message.contains(path) == true)
        chmod(path, 0o755)
        let (ok, out) = try Self.run(["echo", "fine"]) { $0.initProgram = path }
        #expect(ok.exitCode == 0 && out == "fine\n", "\(ok.setupFailure?.message ?? "")")
    }

    @Test func aMissingInitProgramIsAClearError() throws {
        let (r, _) = try Self.run(["true"]) { $0.initProgram = "/nonexistent/cordon-init" }
        #expect(r.reason == .setupFailed)
        #expect(r.setupFailure?.step.name == "init-program")
        #expect(r.setupFailure?.message.contains("/nonexistent/cordon-init") == true, "\(r.setupFailure?.message ?? "")")
    }

    /// A program that is not an executable image: init cannot execute it, the sandbox is refused
    /// with the step named, and nothing of it keeps running.
    @Test func anInitThatCannotExecuteRefusesTheSandbox() throws {
        let path = "\(Harness.scratch)/not-an-init-\(getpid())"
        try "#!/bin/nothing\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        chmod(path, 0o755)
        let (r, _) = try Self.run(["sleep", "4247"]) { $0.initProgram = path }
        #expect(r.reason == .setupFailed)
        #expect(r.setupFailure?.step.name == "init-exec", "\(r.setupFailure?.message ?? "")")
        #expect(Harness.processes(inUIDRange: 0x4000_0000...0xFFFF_FFF0).allSatisfy {
            !(((try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) ?? "").hasPrefix("sleep\u{0}4247"))
        })
    }
}

/// Where SwiftPM put cordon-init: next to the test bundle.
enum InitProgramPath {
    static var built: String? {
        let dir = (Harness.cordon as NSString).deletingLastPathComponent
        let path = "\(dir)/cordon-init"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// --tty gives the workload a pseudo-terminal of its own; TIOCSTI into it is still refused.
@Suite(.enabled(if: Harness.isRoot && FileManager.default.fileExists(atPath: "/usr/bin/script"), "needs root and script(1)"))
struct TTYTests {
    @Test func workloadGetsATerminalButCannotInjectInput() {
        let inner = "test -t 0 && test -t 1 && echo isatty; /opt/cordon-test/cordon-probe tiocsti"
        let command = "\(Harness.cordon) run --tty --policy \(Harness.defaultPolicy) --state-dir \(Harness.stateDir) --runtime-dir \(Harness.runtimeDir) -- sh -c '\(inner)'"
        let r = Harness.exec("/usr/bin/script", ["-qec", command, "/dev/null"])
        #expect(r.stdout.contains("isatty"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("tiocsti: errno EPERM"), "\(r.stdout)")
    }

    @Test func ttyNeedsATerminal() {
        let r = Harness.run(["true"], options: ["--tty"], json: false)
        #expect(r.status == 125)
        #expect(r.stderr.contains("--tty needs a terminal on standard input"), "\(r.stderr)")
    }
}

/// A policy may keep named capabilities; nothing else comes with them.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct KeptCapabilityTests {
    static let bind80 = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 80)); print('bound')"

    @Test func keptCapabilityWorksAndIsTheOnlyOne() {
        let policy = Harness.policy("keep-bind", edits: [("keep = []", "keep = [\"CAP_NET_BIND_SERVICE\"]")])
        let r = Harness.run(["python3", "-c", Self.bind80], policy: policy)
        #expect(r.output == "bound", "\(r.stderr)")
        let status = Harness.run(["cat", "/proc/self/status"], policy: policy).output
        // Bit 10 only, in every set that matters, and the bounding set holds nothing else.
        for set in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
            #expect(IsolationTests.field(status, set) == "0000000000000400", "\(set)")
        }
    }

    @Test func withoutItThePrivilegedPortIsRefused() {
        let r = Harness.run(["python3", "-c", Self.bind80])
        #expect(r.status != 0)
        #expect(r.stderr.contains("Permission denied"), "\(r.stderr)")
    }
}
