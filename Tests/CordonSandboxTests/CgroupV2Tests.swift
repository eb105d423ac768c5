import CordonConfig
import CordonSandbox
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The cgroup v2 path (clone3 with CLONE_INTO_CGROUP, cgroup.kill) on the machine's v2 hierarchy.
/// The build machine's v2 hierarchy has no memory/pids/cpu controllers (they are bound to v1), so
/// this exercises placement, the cgroup namespace, killing and removal — not the limits.
@Suite(.enabled(if: Harness.isRoot && (try? CgroupHierarchy.version(mount: "/sys/fs/cgroup/unified")) == .v2,
                "needs root and a cgroup v2 hierarchy at /sys/fs/cgroup/unified"))
struct CgroupV2Tests {
    static func plan() throws -> SpawnPlan {
        let path = Harness.policy("v2-no-limits", edits: [("memory = \"512M\"\n", ""), ("pids = 256\n", ""), ("cpu = 1.0\n", "")])
        let store = PolicyStore(configDir: nil)
        return try store.spawnPlan(for: try store.loadPolicy(path), cacheDir: nil, callerEnvironment: [:])
    }

    static var environment: SandboxEnvironment {
        var e = SandboxEnvironment(runtimeDir: Harness.runtimeDir)
        e.cgroupMount = "/sys/fs/cgroup/unified"
        return e
    }

    final class Box: @unchecked Sendable { var result: SandboxResult? }

    @Test func bornInItsCgroupKilledAndRemoved() throws {
        let plan = try Self.plan()
        let box = Box()
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        var streams = SandboxIO()
        (streams.stdin, streams.stdout, streams.stderr) = (devnull, devnull, devnull)
        let io = streams
        let thread = Thread {
            box.result = Sandbox.run(plan: plan, argv: ["sh", "-c", "sleep 100 & exec sleep 99.5"],
                                     environment: Self.environment, io: io, wallTime: 1.5)
        }
        thread.start()
        let pid = try #require(Harness.findSandboxed(["sleep", "99.5"]))
        // Both sleeps, by identity: once this sandbox is gone its slot (and uid range) is free,
        // and another sandbox of this test process may take it at once.
        let started = Harness.processesInTheSandboxOf(pid)
        #expect(started.count >= 3, "init and two sleeps: \(started)")
        let hostView = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        #expect(hostView.contains("0::/cordon/s"), "not placed in the v2 cgroup: \(hostView)")
        while box.result == nil { usleep(20_000) }
        let result = try #require(box.result)
        #expect(result.reason == .timeout)
        #expect(result.layers?.cgroup.hasPrefix("v2 /sys/fs/cgroup/unified/cordon/s") == true)
        let dir = String(result.layers?.cgroup.dropFirst(3) ?? "")
        #expect(!FileManager.default.fileExists(atPath: dir), "cgroup \(dir) left behind")
        #expect(Harness.survivors(started).isEmpty, "survived the sandbox: \(Harness.survivors(started))")
    }
}
