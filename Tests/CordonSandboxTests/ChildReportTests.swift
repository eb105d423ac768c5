import CordonConfig
@testable import CordonSandbox
import CordonPolicy
import CSpawn
import Foundation
import Testing

/// Decoding the child's report (every CS_STEP_* value, and values this build does not know) and
/// the sentence a failure reads, without a sandbox.
struct ChildReportTests {
    /// Every step CSpawn reports, with the name records have always carried for it.
    static let childSteps: [(cs_step, String, SetupStep)] = [
        (CS_STEP_WAIT_PARENT, "wait-parent", .waitParent), (CS_STEP_ID_MAP, "id-map", .idMap),
        (CS_STEP_SETSID, "setsid", .setsid), (CS_STEP_MOUNT_PRIVATE, "mount-private", .mountPrivate),
        (CS_STEP_ROOT_TMPFS, "root-tmpfs", .rootTmpfs), (CS_STEP_MOUNT, "mount", .mount),
        (CS_STEP_PIVOT_ROOT, "pivot-root", .pivotRoot), (CS_STEP_ROOT_READONLY, "root-readonly", .rootReadonly),
        (CS_STEP_HOSTNAME, "hostname", .hostname), (CS_STEP_LOOPBACK, "loopback", .loopback),
        (CS_STEP_FORK, "fork", .fork), (CS_STEP_STDIO, "stdio", .stdio), (CS_STEP_CHDIR, "chdir", .chdir),
        (CS_STEP_RLIMIT, "rlimit", .rlimit), (CS_STEP_CAP_BOUNDING, "capability-bounding-set", .capabilityBoundingSet),
        (CS_STEP_SECUREBITS, "securebits", .securebits), (CS_STEP_SETGROUPS, "setgroups", .setgroups),
        (CS_STEP_SETGID, "setgid", .setgid), (CS_STEP_SETUID, "setuid", .setuid), (CS_STEP_CAPSET, "capset", .capset),
        (CS_STEP_AMBIENT, "ambient-capabilities", .ambientCapabilities), (CS_STEP_NO_NEW_PRIVS, "no-new-privs", .noNewPrivs),
        (CS_STEP_LANDLOCK_RULE, "landlock-rule", .landlockRule), (CS_STEP_LANDLOCK_RESTRICT, "landlock-restrict", .landlockRestrict),
        (CS_STEP_SECCOMP, "seccomp", .seccomp), (CS_STEP_SEND_LISTENER, "seccomp-listener", .seccompListener),
        (CS_STEP_EXEC, "execve", .execve), (CS_STEP_INIT_SIGNALS, "init-signals", .initSignals),
        (CS_STEP_CGROUP, "cgroup-join", .cgroupJoin), (CS_STEP_CGROUP_NS, "cgroup-namespace", .cgroupNamespace),
        (CS_STEP_INIT_EXEC, "init-exec", .initExec),
    ]

    static func raw(_ step: cs_step) -> Int32 { Int32(step.rawValue) }

    @Test func everyChildStepDecodesToItsCase() {
        for (c, name, step) in Self.childSteps {
            let decoded = SetupStep(childStep: Self.raw(c))
            #expect(decoded == step, "CS_STEP \(c.rawValue)")
            #expect(decoded?.name == name)
        }
        // The table covers every value from the first step to the last.
        #expect(Set(Self.childSteps.map(\.0.rawValue)) == Set(CS_STEP_WAIT_PARENT.rawValue...CS_STEP_INIT_EXEC.rawValue))
    }

    @Test func noStepIsNoFailure() {
        #expect(SetupStep(childStep: Self.raw(CS_STEP_NONE)) == nil)
        #expect(!ChildReport(cs_report(step: 0, index: 0, err: 0, has_fd: 1)).isFailure)
    }

    @Test(arguments: [Self.raw(CS_STEP_INIT_EXEC) + 1, 1000, -1])
    func anUnknownChildStepKeepsItsNumber(_ raw: Int32) {
        let step = SetupStep(childStep: raw)
        #expect(step == .unknownChildStep(raw))
        #expect(step?.name == "step \(raw)")
        #expect(SetupStep(name: "step \(raw)") == .unknownChildStep(raw))
    }

    @Test func namesAreDistinctAndReadBack() throws {
        let names = SetupStep.named.map(\.1)
        #expect(Set(names).count == names.count)
        for step in SetupStep.named.map(\.0) + [.unknownChildStep(77), .other("from-the-future")] {
            #expect(SetupStep(name: step.name) == step)
            let json = String(decoding: try JSONEncoder().encode([step]), as: UTF8.self)
            #expect(json == "[\"\(step.name)\"]")
            #expect(try JSONDecoder().decode([SetupStep].self, from: Data(json.utf8)) == [step])
        }
        // The supervisor's own steps keep their record names too.
        #expect([SetupStep.uidRange, .initProgram, .rootMountpoint, .taskFiles, .output].map(\.name)
                == ["uid-range", "init-program", "root-mountpoint", "task-files", "output"])
    }

    @Test func aReportCarryingTheListenerIsNoFailure() {
        let r = ChildReport(cs_report(step: Self.raw(CS_STEP_SEND_LISTENER), index: 0, err: 0, has_fd: 1))
        #expect(r.carriesListener && !r.isFailure)
    }

    // MARK: The sentence a failure reads

    static let plan = try! PlanFixture.defaultPlan()

    func failure(_ step: cs_step, index: Int32 = 0, errno: Int32, argv: [String] = ["true"],
                 searchable: (String) -> Bool = { _ in true }) -> SetupFailure {
        let report = ChildReport(cs_report(step: Self.raw(step), index: index, err: errno, has_fd: 0))
        #expect(report.isFailure)
        return report.failure(plan: Self.plan, argv: argv, runtimeDir: "/run/cordon", searchable: searchable)
    }

    @Test func aMountNamesTheMount() throws {
        let index = try #require(Self.plan.mounts.firstIndex { $0.kind == .bind })
        let f = failure(CS_STEP_MOUNT, index: Int32(index), errno: EPERM)
        #expect(f.step == .mount && f.errno == EPERM)
        #expect(f.message == "mount: \(Self.plan.mounts[index]) failed: Operation not permitted")
        #expect(f.message.hasPrefix("mount: mount /usr (read-only bind of /usr) failed"), "\(f.message)")
    }

    @Test func anIndexOutsideThePlanIsNotTrusted() {
        #expect(failure(CS_STEP_MOUNT, index: 100_000, errno: EPERM).message == "mount failed: Operation not permitted")
        #expect(failure(CS_STEP_RLIMIT, index: -1, errno: EPERM).message == "rlimit failed: Operation not permitted")
    }

    @Test func aLandlockRuleAndAnRlimitAreNamed() throws {
        let rule = try #require(Self.plan.landlockRules.first)
        #expect(failure(CS_STEP_LANDLOCK_RULE, errno: EBADF).message == "landlock-rule: rule for \(rule.path) failed: Bad file descriptor")
        let limit = Self.plan.rlimits[0]
        #expect(failure(CS_STEP_RLIMIT, errno: EINVAL).message == "rlimit: setrlimit(\(limit.resource)) failed: Invalid argument")
    }

    @Test func execveExplainsWhatIsMissing() {
        #expect(failure(CS_STEP_EXEC, errno: ENOENT, argv: ["no-such-program"]).message
                == "execve: no-such-program: No such file or directory (searched PATH=\(Self.plan.searchPath) inside the sandbox)")
        #expect(failure(CS_STEP_EXEC, errno: ENOENT, argv: ["/usr/bin/no-such-program"]).message
                == "execve: /usr/bin/no-such-program: No such file or directory (the file is bound into the sandbox: its interpreter or dynamic loader, e.g. /lib64/ld-linux-x86-64.so.2, is probably not)")
        #expect(failure(CS_STEP_EXEC, errno: ENOENT, argv: ["/opt/elsewhere/tool"]).message
                == "execve: /opt/elsewhere/tool: No such file or directory")
        #expect(failure(CS_STEP_EXEC, errno: EACCES, argv: ["/etc/ld.so.cache"]).message == "execve: /etc/ld.so.cache: Permission denied")
    }

    @Test func chdirNamesTheDirectory() {
        #expect(failure(CS_STEP_CHDIR, errno: ENOENT).message == "chdir: \(Self.plan.cwd): No such file or directory")
    }

    @Test func anUnreachableRootMountPointNamesTheDirectoryInTheWay() {
        let f = failure(CS_STEP_ROOT_TMPFS, errno: EACCES, searchable: { $0 != "/run" })
        #expect(f.message.hasPrefix("root-tmpfs: /run is not searchable by the sandbox's unprivileged uid"), "\(f.message)")
        #expect(failure(CS_STEP_ROOT_TMPFS, errno: EPERM).message == "root-tmpfs failed: Operation not permitted")
    }

    @Test func otherStepsSayWhatFailed() {
        #expect(failure(CS_STEP_SECCOMP, errno: EINVAL).message == "seccomp failed: Invalid argument")
        let unknown = ChildReport(cs_report(step: 4242, index: 0, err: EIO, has_fd: 0))
            .failure(plan: Self.plan, argv: ["true"], runtimeDir: "/run/cordon")
        #expect(unknown.step == .unknownChildStep(4242) && unknown.message == "step 4242 failed: Input/output error")
    }
}

/// The shipped default policy's spawn plan: built unprivileged (the seccomp filter compiles with
/// libseccomp, the mount plan is pure).
enum PlanFixture {
    static func defaultPlan() throws -> SpawnPlan {
        let store = PolicyStore(configDir: nil)
        return try store.spawnPlan(for: try store.loadPolicy("default"), cacheDir: nil, callerEnvironment: ["TERM": "xterm"])
    }
}
