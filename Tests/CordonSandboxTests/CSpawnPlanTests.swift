import CLinux
@testable import CordonSandbox
import CordonSystem
import CSpawn
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The C plan CSpawn executes, checked field by field against the SpawnPlan it was marshalled
/// from — without root and without spawning anything.
struct CSpawnPlanTests {
    static let plan = try! PlanFixture.defaultPlan()

    static func spawn(abi: Int = 4, tty: Bool = false) -> CSpawnPlan.Spawn {
        CSpawnPlan.Spawn(argv: ["sh", "-c", "echo hi"], rootMountpoint: "/run/cordon/root",
                         cgroupTaskFiles: 2,
                         cgroupFD: 41, syncFD: 42, chanFD: 43, statusFD: 44, stdio: (45, 46, 47), tty: tty,
                         landlockABI: abi, landlockFD: abi > 0 ? 48 : -1, initFD: 49, shareMemory: true, capLast: 40)
    }

    /// The marshalled plan, read while its memory is alive.
    static func marshal(_ plan: SpawnPlan = plan, _ spawn: CSpawnPlan.Spawn = spawn(), _ body: (cs_plan) throws -> Void) rethrows {
        let marshalled = CSpawnPlan(plan, spawn)
        try withExtendedLifetime(marshalled) { try body(marshalled.withPlan { $0.pointee }) }
    }

    static func strings(_ array: UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
        guard let array else { return [] }
        var out: [String] = []
        var i = 0
        while let s = array[i] { out.append(String(cString: s)); i += 1 }
        return out
    }

    static func constStrings(_ array: UnsafePointer<UnsafePointer<CChar>?>?) -> [String] {
        guard let array else { return [] }
        var out: [String] = []
        var i = 0
        while let s = array[i] { out.append(String(cString: s)); i += 1 }
        return out
    }

    @Test func descriptorsAndChoices() throws {
        Self.marshal(Self.plan, Self.spawn()) { c in
            #expect(c.clone_flags == 0x1000_0000 | 0x2000_0000 | 0x0002_0000 | 0x0800_0000 | 0x0400_0000 | 0x4000_0000)
            #expect(c.sync_fd == 42 && c.chan_fd == 43 && c.status_fd == 44)
            #expect(c.stdio.0 == 45 && c.stdio.1 == 46 && c.stdio.2 == 47)
            #expect(c.set_ctty == 0)
            #expect(c.cgroup_fd == 41 && c.new_cgroup_ns == 1)
            #expect(c.cgroup_task_files == 2)
            #expect(c.landlock_fd == 48 && c.init_exec_fd == 49 && c.share_memory == 1 && c.cap_last == 40)
            #expect(c.loopback_up == 1 && c.root_readonly == 1)
            #expect(String(cString: c.root_mountpoint) == "/run/cordon/root")
            #expect(String(cString: c.root_options) == "size=1m,mode=0755")
            #expect(CSpawnPlan(Self.plan, Self.spawn(tty: true)).withPlan { $0.pointee.set_ctty } == 1)
        }
    }

    @Test func theWorkload() throws {
        Self.marshal(Self.plan, Self.spawn()) { c in
            #expect(Self.strings(c.argv) == ["sh", "-c", "echo hi"])
            #expect(Self.strings(c.envp) == Self.plan.env)
            #expect(Self.plan.env.contains("TERM=xterm"))
            #expect(String(cString: c.cwd) == Self.plan.cwd)
            #expect(String(cString: c.exec_path_search) == Self.plan.searchPath)
            #expect(String(cString: c.hostname) == "cordon")
            #expect(c.uid == 1000 && c.gid == 1000)
            #expect(c.keep_caps == Self.plan.keepCaps)
        }
    }

    @Test func everyMountStep() throws {
        try Self.marshal(Self.plan, Self.spawn()) { c in
            #expect(c.mount_count == Self.plan.mounts.count)
            #expect(!Self.plan.mounts.isEmpty)
            let mounts = try #require(c.mounts)
            for (i, step) in Self.plan.mounts.enumerated() {
                let op = mounts[i]
                #expect(op.kind == step.kind.rawValue && op.flags == step.flags.rawValue && op.mode == step.mode, "\(step)")
                #expect(String(cString: op.target) == step.target)
                #expect(op.data_len == step.data.count)
                let data = UnsafeRawBufferPointer(start: op.data, count: op.data_len)
                #expect(Array(data) == step.data, "\(step)")
                #expect(op.data[op.data_len] == 0)  // NUL-terminated for the C side
            }
        }
    }

    @Test func rlimitsAndSeccomp() throws {
        try Self.marshal(Self.plan, Self.spawn()) { c in
            #expect(c.rlimit_count == Self.plan.rlimits.count)
            let limits = try #require(c.rlimits)
            for (i, l) in Self.plan.rlimits.enumerated() {
                #expect(limits[i].resource == l.resource && limits[i].soft == l.soft && limits[i].hard == l.hard)
            }
            #expect(c.seccomp_len == Self.plan.seccomp.instructionCount && c.seccomp_len > 0)
            #expect(Array(UnsafeRawBufferPointer(start: c.seccomp_filter, count: c.seccomp_len * 8)) == Self.plan.seccomp.bpf)
            #expect(Int(bitPattern: c.seccomp_filter) % 8 == 0)
            #expect(c.seccomp_flags == UInt32(SECCOMP_FILTER_FLAG_NEW_LISTENER))
        }
    }

    /// Rules carry only the rights the kernel's ABI handles; without Landlock there are none.
    @Test(arguments: [1, 4, 6])
    func landlockRulesFollowTheABI(_ abi: Int) throws {
        try Self.marshal(Self.plan, Self.spawn(abi: abi)) { c in
            #expect(!Self.plan.landlockRules.isEmpty)
            #expect(c.landlock_rule_count == Self.plan.landlockRules.count)
            let rules = try #require(c.landlock_rules)
            for (i, rule) in Self.plan.landlockRules.enumerated() {
                #expect(String(cString: rules[i].path) == rule.path)
                #expect(rules[i].access == rule.access.intersection(Landlock.FS.handled(abi: abi)).rawValue)
            }
            if abi == 1 {
                // Not vacuous: the plan asks for rights ABI 1 does not know (truncate on the workdir).
                #expect(Self.plan.landlockRules.contains { !$0.access.isSubset(of: Landlock.FS.handled(abi: 1)) })
            }
        }
    }

    @Test func withoutLandlock() throws {
        Self.marshal(Self.plan, Self.spawn(abi: 0)) { c in
            #expect(c.landlock_rule_count == 0 && c.landlock_fd == -1)
        }
    }

    /// An empty plan still hands C valid (non-null) arrays.
    @Test func emptyListsAreValidPointers() throws {
        var empty = Self.plan
        empty.mounts = []
        empty.landlockRules = []
        empty.rlimits = []
        empty.env = []
        Self.marshal(empty, Self.spawn()) { c in
            #expect(c.mounts != nil && c.mount_count == 0)
            #expect(c.rlimits != nil && c.rlimit_count == 0)
            #expect(c.landlock_rules != nil && c.landlock_rule_count == 0)
            #expect(Self.strings(c.envp) == [])
        }
    }
}
