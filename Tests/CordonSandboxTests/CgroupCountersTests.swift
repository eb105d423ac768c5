import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `CgroupCounters`: a cgroup's counter files held open read what is there at each read (a
/// `pread` at offset 0), the same as reading them by path; and the process count (by path:
/// v1 reuses an open `cgroup.procs`'s old list) follows processes in and out.
@Suite(.enabled(if: Harness.isRoot)) struct CgroupCountersTests {
    @Test func heldFilesReadTheCgroupAsItIsNow() throws {
        let hierarchy = try CgroupHierarchy.detect()
        let cgroup = try hierarchy.create(name: "counters-test-\(getpid())", limits: CgroupLimits(memoryBytes: 64 << 20, pids: 16))
        defer {
            cgroup.killAll()
            try? cgroup.remove()
        }
        func held() -> Int {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return fds.filter { fd in
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? ""
                return cgroup.directories.contains { target.hasPrefix($0 + "/") }
            }.count
        }
        var counters: CgroupCounters? = cgroup.openCounters()
        defer { counters = nil }
        #expect(held() == cgroup.usageFiles.count && held() >= 3, "the counter files are not all held open: \(held()) of \(cgroup.usageFiles.count)")
        #expect(cgroup.processCount() == 0)
        #expect(counters!.usage() == cgroup.usage())

        // A process joins and burns some CPU: the same descriptors now read it.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", "read go; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done; read end"]
        let input = Pipe(), output = Pipe()
        child.standardInput = input
        child.standardOutput = output
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) }; child.waitUntilExit() }
        for dir in cgroup.directories { try FileSystem.writeControl("\(dir)/cgroup.procs", "\(child.processIdentifier)") }
        #expect(cgroup.processCount() == 1)
        try input.fileHandleForWriting.write(contentsOf: Data("go\n".utf8))
        let line = output.fileHandleForReading.availableData
        #expect(String(decoding: line, as: UTF8.self) == "done\n")
        let heldUsage = counters!.usage(), byPath = cgroup.usage()
        #expect((heldUsage.cpuUserMicros ?? 0) + (heldUsage.cpuSystemMicros ?? 0) > 10_000, "\(heldUsage)")
        #expect(heldUsage.cpuUserMicros == byPath.cpuUserMicros && heldUsage.peakMemoryBytes == byPath.peakMemoryBytes, "\(heldUsage) \(byPath)")
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        for _ in 0..<100 where cgroup.processCount() != 0 { usleep(10_000) }
        #expect(cgroup.processCount() == 0)
        counters = nil
        #expect(held() == 0, "the counter files outlived their holder")
    }
}
