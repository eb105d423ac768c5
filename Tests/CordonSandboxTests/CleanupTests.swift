import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// No cgroup, mount, scratch directory or process survives a sandbox: after success, failure,
/// timeout, or SIGKILL of `cordon` itself.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct CleanupTests {
    func expectClean(_ r: Harness.Outcome, _ label: String) throws {
        let range = try #require(r.hostUIDRange, "\(label): no uid range in \(r.record)")
        #expect(Harness.processes(inUIDRange: range).isEmpty, "\(label): processes left")
        #expect(Harness.cgroupDirs(forRange: range).isEmpty, "\(label): cgroups left")
        #expect(Harness.mountsMentioning("\(Harness.runtimeDir)/root").isEmpty, "\(label): mounts leaked to the host")
        let root = (try? FileManager.default.contentsOfDirectory(atPath: "\(Harness.runtimeDir)/root")) ?? []
        #expect(root.isEmpty, "\(label): files left in the root mount point: \(root)")
    }

    @Test func afterSuccess() throws { try expectClean(Harness.run(["true"]), "success") }
    @Test func afterFailure() throws { try expectClean(Harness.run(["sh", "-c", "exit 3"]), "failure") }
    @Test func afterTimeout() throws { try expectClean(Harness.run(["sleep", "100"], options: ["--timeout", "500ms"]), "timeout") }
    @Test func afterSetupFailure() {
        let r = Harness.run(["/no/such/command"])
        #expect(r.status == 127)
        #expect(r.reason == "setup-failed")
        #expect(Harness.mountsMentioning("\(Harness.runtimeDir)/root").isEmpty)
    }

    @Test func afterCordonIsKilled() async throws {
        let out = Pipe()
        let process = try Harness.start(["sh", "-c", "cat /proc/self/uid_map; sleep 1000 & exec sleep 1000"], stdout: out)
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        let base = try #require(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { UInt32($0) })
        let range = base...(base + 65535)
        #expect(!Harness.processes(inUIDRange: range).isEmpty)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // The sandbox dies with its supervisor; the guardian then removes the cgroups.
        var clean = false
        for _ in 0..<100 {
            if Harness.processes(inUIDRange: range).isEmpty && Harness.cgroupDirs(forRange: range).isEmpty { clean = true; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(clean, "left: processes \(Harness.processes(inUIDRange: range)), cgroups \(Harness.cgroupDirs(forRange: range))")
    }
}

/// Many sandboxes at once: each gets its own uid range, all succeed, none leaves anything behind.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct ConcurrencyTests {
    @Test func sixteenAtOnce() throws {
        let outs = (0..<16).map { _ in Pipe() }
        let processes = try outs.map { out in
            try Harness.start(["sh", "-c", "cat /proc/self/uid_map; sleep 0.3"], stdout: out)
        }
        var bases = Set<String>()
        for (process, out) in zip(processes, outs) {
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            if let base = text.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first { bases.insert(String(base)) }
        }
        #expect(bases.count == 16, "uid ranges shared: \(bases.sorted())")
        for base in bases {
            let lower = try #require(UInt32(base))
            let range = lower...(lower + 65535)
            #expect(Harness.processes(inUIDRange: range).isEmpty)
            #expect(Harness.cgroupDirs(forRange: range).isEmpty)
        }
    }
}
