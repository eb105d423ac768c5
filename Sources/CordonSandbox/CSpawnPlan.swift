import CLinux
import CordonSystem
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// A `SpawnPlan` marshalled into the flat `cs_plan` CSpawn's one entry point takes, with the C
/// memory it points into. Pure apart from allocating: no system calls, so every field is
/// unit-tested without root. The descriptors in it are numbers borrowed from their owners, who
/// keep them open until `cs_spawn` has returned.
///
/// Lifetime: with `shareMemory` the child reads the plan from this process's memory until both it
/// and the workload have executed, so a `CSpawnPlan` must outlive the spawn's report channel (it
/// is released with everything else when the spawn returns).
final class CSpawnPlan {
    /// What a spawn adds to the policy's plan: this sandbox's descriptors, paths and choices.
    struct Spawn {
        var argv: [String]
        /// Host directory the new root's tmpfs is mounted on.
        var rootMountpoint: String
        /// cgroup v1: how many `tasks` files the parent will send the child.
        var cgroupTaskFiles = 0
        /// cgroup v2: the directory clone3 places the child in (-1: none).
        var cgroupFD: Int32 = -1
        /// The read end the child waits on until it is released.
        var syncFD: Int32
        /// The child's end of the report channel.
        var chanFD: Int32
        /// The write end init reports the workload's status on.
        var statusFD: Int32
        /// The workload's 0, 1 and 2.
        var stdio: (Int32, Int32, Int32)
        /// stdio[0] is a pseudo-terminal to make the controlling terminal.
        var tty = false
        /// The kernel's Landlock ABI in use (0: none) and the ruleset (-1: none).
        var landlockABI = 0
        var landlockFD: Int32 = -1
        /// cordon-init, executed by pid 1 once the workload runs.
        var initFD: Int32
        var shareMemory = true
        /// The highest capability number the kernel knows.
        var capLast: Int
        /// Mount step index → its detached, idmapped mount (`IdmappedMounts`).
        var attachFDs: [Int: Int32] = [:]
        /// The workload is cordon-init's session server, executed from `initFD`.
        var workloadIsInit = false
    }

    private let arena = CArena()
    private var plan = cs_plan()

    /// `body` reads the plan while everything it points to is alive (the pointers must not
    /// outlive this object: keep it for as long as the child may read them).
    func withPlan<R>(_ body: (UnsafePointer<cs_plan>) -> R) -> R {
        withExtendedLifetime(self) { withUnsafePointer(to: plan) { body($0) } }
    }

    init(_ spawnPlan: SpawnPlan, _ spawn: Spawn) {
        var p = cs_plan()
        p.clone_flags = namespaceFlags.reduce(0) { $0 | $1.0 }
        p.cgroup_task_files = spawn.cgroupTaskFiles
        p.cgroup_fd = spawn.cgroupFD
        p.new_cgroup_ns = 1
        p.sync_fd = spawn.syncFD
        p.chan_fd = spawn.chanFD
        p.status_fd = spawn.statusFD
        p.stdio = spawn.stdio
        p.set_ctty = spawn.tty ? 1 : 0

        p.root_mountpoint = arena.string(spawn.rootMountpoint)
        p.root_options = arena.string("size=1m,mode=0755")
        p.mounts = arena.array(spawnPlan.mounts.indices) { [arena] index in
            let step = spawnPlan.mounts[index]
            return cs_mount_op(kind: step.kind.rawValue, flags: step.flags.rawValue, mode: step.mode,
                        target: arena.string(step.target), data: arena.bytes(step.data), data_len: step.data.count,
                        fd: spawn.attachFDs.isEmpty ? -1 : spawn.attachFDs[index] ?? -1)
        }
        p.mount_count = spawnPlan.mounts.count
        p.root_readonly = 1
        p.hostname = arena.string(spawnPlan.policy.process.hostname)
        p.loopback_up = 1
        p.rlimits = arena.array(spawnPlan.rlimits) { cs_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }
        p.rlimit_count = spawnPlan.rlimits.count

        p.uid = spawnPlan.policy.process.uid
        p.gid = spawnPlan.policy.process.gid
        p.cap_last = Int32(spawn.capLast)
        p.keep_caps = spawnPlan.keepCaps
        p.landlock_fd = spawn.landlockFD
        // Only the rights this kernel's ABI handles: the others would make the rule fail.
        let handled = Landlock.FS.handled(abi: spawn.landlockABI)
        p.landlock_rules = arena.array(spawnPlan.landlockRules) { [arena] rule in
            cs_landlock_rule(path: arena.string(rule.path), access: rule.access.intersection(handled).rawValue)
        }
        p.landlock_rule_count = spawn.landlockABI > 0 ? spawnPlan.landlockRules.count : 0
        p.init_exec_fd = spawn.initFD
        p.workload_is_init = spawn.workloadIsInit ? 1 : 0
        p.share_memory = spawn.shareMemory ? 1 : 0

        p.cwd = arena.string(spawnPlan.cwd)
        p.exec_path_search = arena.string(spawnPlan.searchPath)
        p.argv = arena.stringArray(spawn.argv)
        p.envp = arena.stringArray(spawnPlan.env)
        p.seccomp_filter = arena.raw(spawnPlan.seccomp.bpf, alignment: 8)
        p.seccomp_len = spawnPlan.seccomp.instructionCount
        p.seccomp_flags = UInt32(SECCOMP_FILTER_FLAG_NEW_LISTENER)
        plan = p
    }
}

/// C strings and arrays that must outlive a cs_spawn call; freed with the arena.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    /// `b` with a NUL after it.
    func bytes(_ b: [UInt8]) -> UnsafePointer<CChar> { b.withUnsafeBytes { cString($0) } }

    /// `s` as a C string, copied straight from its UTF-8 (no intermediate array).
    func string(_ s: String) -> UnsafePointer<CChar> {
        var s = s
        return s.withUTF8 { cString(UnsafeRawBufferPointer($0)) }
    }

    private func cString(_ b: UnsafeRawBufferPointer) -> UnsafePointer<CChar> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: b.count + 1, alignment: 1)
        if let base = b.baseAddress { p.copyMemory(from: base, byteCount: b.count) }
        p.storeBytes(of: 0, toByteOffset: b.count, as: UInt8.self)
        blocks.append(p)
        return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
    }

    /// `b` copied to memory aligned for `alignment` (never a null pointer, even when empty).
    func raw(_ b: [UInt8], alignment: Int) -> UnsafeRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(b.count, 1), alignment: alignment)
        b.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: b.count) } }
        blocks.append(p)
        return UnsafeRawPointer(p)
    }

    /// A C array of `items` converted by `element` (never a null pointer, even when empty).
    func array<Items: Collection, Element>(_ items: Items, _ element: (Items.Element) -> Element) -> UnsafePointer<Element> {
        let array = UnsafeMutablePointer<Element>.allocate(capacity: max(items.count, 1))
        for (i, item) in items.enumerated() { (array + i).initialize(to: element(item)) }
        blocks.append(UnsafeMutableRawPointer(array))
        return UnsafePointer(array)
    }

    /// A NULL-terminated array of C strings, typed as execve's argv and envp (`char *const *`):
    /// the same memory as `constStringArray`.
    func stringArray(_ items: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        UnsafeRawPointer(constStringArray(items)).assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self)
    }

    /// A NULL-terminated array of C strings (`const char *const *`).
    func constStringArray(_ items: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: items.count + 1)
        for (i, s) in items.enumerated() { array[i] = string(s) }
        array[items.count] = nil
        blocks.append(UnsafeMutableRawPointer(array))
        return UnsafePointer(array)
    }

    deinit { for b in blocks { b.deallocate() } }
}

func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let arena = CArena()
    return withExtendedLifetime(arena) { body(arena.constStringArray(strings)) }
}
