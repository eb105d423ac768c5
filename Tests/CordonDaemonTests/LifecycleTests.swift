import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Crash safety, drain, restart, retention: the daemon's life, with real processes.
@Suite(.serialized, .enabled(if: TestDaemon.isRoot, "cordond needs root"))
struct LifecycleTests {
    /// Mount points in the host's mount table below `dir`.
    static func mounts(below dir: String) -> [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].hasPrefix(dir) ? String(fields[4]) : nil
        }
    }

    @Test func killNineWithFiftyRunningTasksLeavesNothingBehind() throws {
        let d = try TestDaemon(config: "[scheduler]\nmax_running = 64\n")
        var finished: [Int64] = []
        for i in 0..<3 { finished.append(try #require(try d.submit(["echo", "done-\(i)"], wait: true)["id"]?.intValue)) }
        var running: [Int64] = []
        for _ in 0..<50 { running.append(try #require(try d.submit(["sleep", "4246"])["id"]?.intValue)) }
        #expect(d.eventually(30) { TestDaemon.processes(["sleep", "4246"]).count == 50 }, "\(TestDaemon.processes(["sleep", "4246"]).count) running")
        let cgroups = try running.map { try d.call("task.status", .object([("id", .int($0))]))["state"]?.stringValue }
        #expect(cgroups.allSatisfy { $0 == "running" })

        d.signal(SIGKILL)
        #expect(d.waitExit(5) != nil)
        try d.start()

        // No process of those tasks remains (PDEATHSIG, the guardians, then the restart's sweep).
        #expect(d.eventually(5) { TestDaemon.processes(["sleep", "4246"]).isEmpty }, "\(TestDaemon.processes(["sleep", "4246"]))")
        #expect(Self.mounts(below: d.dir).isEmpty, "\(Self.mounts(below: d.dir))")
        let lost = try d.call("task.list", .object([("states", .array([.string("lost")])), ("limit", .int(1000))])).arrayValue ?? []
        #expect(Set(lost.compactMap { $0["id"]?.intValue }) == Set(running))
        for task in lost { #expect(task["reason"] == .string("lost") && task["finishedAt"] != nil) }
        let lostEvents = try d.call("audit.query", .object([("kinds", .array([.string("lost")])), ("limit", .int(1000))]))["events"]?.arrayValue ?? []
        #expect(lostEvents.count == 50)
        // What finished before the kill has its complete record.
        for id in finished {
            let t = try d.call("task.status", .object([("id", .int(id))]))
            #expect(t["state"] == .string("finished") && t["exitCode"] == .int(0) && t["stdoutBytes"] == .int(7), "\(t.text)")
            #expect(t["result"]?["layers"] != nil && t["finishedAt"] != nil && t["cpuUserSeconds"] != nil)
        }
        // The sandbox cgroups are gone.
        let cgroupRoot = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cordon") ? "/sys/fs/cgroup/pids/cordon" : "/sys/fs/cgroup/cordon"
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: cgroupRoot)) ?? []).filter { name in
            name.hasPrefix("s") && ((try? String(contentsOfFile: "\(cgroupRoot)/\(name)/cgroup.procs", encoding: .utf8)) ?? "")
                .split(separator: "\n").contains { pid in TestDaemon.processes(["sleep", "4246"]).contains(Int32(pid) ?? -1) }
        }
        #expect(leftovers.isEmpty)
        // And the restarted daemon works.
        #expect(try d.submit(["true"], wait: true)["exitCode"] == .int(0))
    }

    @Test func sigtermDrainsRecordsEverythingAndExitsZero() throws {
        let d = try TestDaemon(config: "[scheduler]\nmax_running = 3\n[tasks]\ndrain_timeout = \"2s\"\n")
        let quick = try #require(try d.submit(["sh", "-c", "sleep 0.5; echo drained"])["id"]?.intValue)
        let slow = try #require(try d.submit(["sleep", "4247"])["id"]?.intValue)
        let slow2 = try #require(try d.submit(["sleep", "4247"])["id"]?.intValue)
        let queued = try #require(try d.submit(["echo", "never"])["id"]?.intValue)
        #expect(d.eventually { TestDaemon.processes(["sleep", "4247"]).count == 2 })
        let waiter = try d.client()
        let started = Date()
        d.signal(SIGTERM)
        // A client waiting on a task gets its answer during the drain.
        let waited = try waiter.call("task.wait", .object([("id", .int(quick))]))
        #expect(waited["exitCode"] == .int(0))
        let status = d.waitExit(10)
        let elapsed = Date().timeIntervalSince(started)
        #expect(status == 0)
        #expect(elapsed >= 1.9 && elapsed < 5, "drained in \(elapsed) s with a 2 s deadline")
        #expect(TestDaemon.processes(["sleep", "4247"]).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: d.socket))

        try d.start()
        func state(_ id: Int64) throws -> JSON { try d.call("task.status", .object([("id", .int(id))])) }
        #expect(try state(quick)["reason"] == .string("exited"))
        #expect(try state(slow)["state"] == .string("cancelled"))
        #expect(try state(slow2)["state"] == .string("cancelled"))
        #expect(try state(queued)["state"] == .string("cancelled"))
        #expect(try state(queued)["startedAt"] == nil)
        let lost = try d.call("task.list", .object([("states", .array([.string("lost")]))])).arrayValue ?? []
        #expect(lost.isEmpty, "a drain loses nothing")
        let stops = try d.call("audit.query", .object([("kinds", .array([.string("daemon-stop"), .string("daemon-start")]))]))["events"]?.arrayValue ?? []
        #expect(stops.compactMap { $0["kind"]?.stringValue } == ["daemon-start", "daemon-stop", "daemon-start"])
    }

    /// Started with no signal blocked (a shell's or systemd's cordond), SIGTERM still drains:
    /// every thread cordond starts, the service pool's and the audit writer's among them,
    /// blocks it, so the signalfd gets it and no thread takes the default action (death).
    @Test func sigtermDrainsWhenCordondStartsWithNoSignalBlocked() throws {
        let d = try TestDaemon(config: "[tasks]\ndrain_timeout = \"1s\"\n", unblockedSignals: true)
        let pid = try #require(d.processID)
        // python3 has exec'd cordond by now (it answered on its socket).
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Name:\tcordond"), "\(status.prefix(200))")
        let sleeper = try #require(try d.submit(["sleep", "4248"])["id"]?.intValue)
        #expect(d.eventually { TestDaemon.processes(["sleep", "4248"]).count == 1 })
        d.signal(SIGTERM)
        #expect(d.waitExit(30) == 0, "\(d.log())")
        #expect(d.log().contains("drain"), "\(d.log())")
        try d.start()
        #expect(try d.call("task.status", .object([("id", .int(sleeper))]))["state"] == .string("cancelled"))
        let kinds = try d.call("audit.query", .object([("kinds", .array([.string("daemon-stop")]))]))["events"]?.arrayValue ?? []
        #expect(kinds.count == 1)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/systemd-socket-activate")))
    func socketActivationServesOnTheSocketSystemdPasses() throws {
        let d = try TestDaemon(socketActivated: true)
        #expect(try d.submit(["echo", "activated"], wait: true)["exitCode"] == .int(0))
        #expect(d.log().contains("socket activation"), "\(d.log())")
        d.signal(SIGTERM)
        #expect(d.waitExit(10) == 0)
        // The socket is systemd's: the daemon leaves it in place for the next start.
        #expect(FileManager.default.fileExists(atPath: d.socket))
    }

    /// The units as `make install` writes them, with PREFIX a scratch directory so that their
    /// ExecStart names a cordond that exists (verify checks it), as it would under /usr/local.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/systemd-analyze")))
    func theInstalledSystemdUnitsVerify() throws {
        let stage = try InstallTests.Stage("units")
        let r = InstallTests.make("install", ["PREFIX=\(stage.dir)"])
        try #require(r.status == 0, "make install: \(r.stderr)")
        let units = "\(stage.dir)/lib/systemd/system"
        let service = try String(contentsOfFile: "\(units)/cordond.service", encoding: .utf8)
        #expect(service.contains("\nExecStart=\(stage.dir)/bin/cordond\n"), "\(service)")
        // verify runs `man cordond(8)` for Documentation=: the installed page must be found.
        let verify = TestDaemon.exec("/usr/bin/env", ["MANPATH=\(stage.dir)/share/man", "/usr/bin/systemd-analyze", "verify",
                                                      "\(units)/cordond.socket", "\(units)/cordond.service"])
        #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stderr)")
    }

    @Test func aSecondDaemonDoesNotStealTheSocket() throws {
        let d = try TestDaemon()
        let second = TestDaemon.exec(TestDaemon.cordond, ["--config-dir", d.configDir, "--state-dir", "\(d.dir)/state2", "--runtime-dir", d.runtimeDir])
        #expect(second.status == 1)
        #expect(second.stderr.contains("another cordond"), "\(second.stderr)")
        #expect(try d.call("system.version")["protocol"] == .int(1))
    }

    @Test func badConfigurationNamesTheFileKeyAndValue() throws {
        let dir = "/tmp/cordond-badconfig-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (text, expected) in [
            ("[scheduler]\nmax_runing = 4\n", "scheduler.max_runing: unknown key"),
            ("[scheduler]\nmax_running = 0\n", "scheduler.max_running: expected an integer in 1…4096"),
            ("[socket]\nmode = \"0666\"\n", "socket.mode: 0666 lets every local user connect"),
            ("[metrics]\nlisten = \"0.0.0.0:9000\"\n", "metrics.listen"),
            ("[admins]\nusers = [\"no-such-user-here\"]\n", "no such user"),
            ("[audit]\nmax_size = \"lots\"\n", "audit.max_size"),
            ("[deamon]\n", "deamon: unknown section"),
        ] {
            try text.write(toFile: "\(dir)/cordond.toml", atomically: true, encoding: .utf8)
            let r = TestDaemon.exec(TestDaemon.cordond, ["--config-dir", dir, "--state-dir", "\(dir)/state", "--runtime-dir", "\(dir)/run"])
            #expect(r.status != 0, "\(text)")
            #expect(r.stderr.contains(expected), "\(text) → \(r.stderr)")
            if !text.contains("admins") { #expect(r.stderr.contains("\(dir)/cordond.toml:"), "\(r.stderr)") }
        }
    }

    @Test func retentionRemovesOldTasksAndTheirOutput() throws {
        let d = try TestDaemon()
        let id = try #require(try d.submit(["echo", "old"], wait: true)["id"]?.intValue)
        #expect(FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(id)/stdout"))
        d.signal(SIGTERM)
        #expect(d.waitExit(10) == 0)
        usleep(1_200_000)
        try "[audit]\nmax_age = \"1s\"\n".write(toFile: "\(d.configDir)/cordond.toml", atomically: true, encoding: .utf8)
        try d.start()
        // Retention runs on the maintenance thread right after start (never before the socket
        // answers: a long pass must not keep the admins out).
        #expect(d.eventually { (try? d.call("task.status", .object([("id", .int(id))]))) == nil })
        #expect(throws: RPCError.self) { try d.call("task.status", .object([("id", .int(id))])) }
        #expect(d.eventually { !FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(id)") })
        let next = try #require(try d.submit(["true"], wait: true)["id"]?.intValue)
        #expect(next > id, "ids are never reused")
    }
}
