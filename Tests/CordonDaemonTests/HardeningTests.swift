import CLinux
import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The attacker's review of cordond (issue 14), finding by finding, through a real daemon and
/// a second, unprivileged user (nobody, 65534, in the socket's group). Each test fails on the
/// daemon as it was before the fix.
@Suite(.serialized, .enabled(if: TestDaemon.isRoot, "cordond runs as root"))
struct HardeningTests {
    static let nobody: UInt32 = 65534
    /// A policy nobody (and uid 4321) may use: the default one with an [access] table.
    static var shared: String {
        (try! String(contentsOfFile: "\(TestDaemon.repoRoot)/policies/default.toml", encoding: .utf8))
            .replacingOccurrences(of: "name = \"default\"", with: "name = \"shared\"") + "\n[access]\nusers = [\"65534\", \"4321\"]\n"
    }
    static let socketGroup = "[socket]\ngroup = \"65534\"\n"

    static func submit(_ argv: [String], policy: String = "shared", id: Int = 1, wait: Bool = false, extra: String = "") -> String {
        let args = JSON.array(argv.map { .string($0) }).text
        return #"{"jsonrpc":"2.0","id":\#(id),"method":"task.submit","params":{"policy":"\#(policy)","argv":\#(args)\#(wait ? #","wait":true"# : "")\#(extra)}}"#
    }

    // MARK: 1 (High): a policy name is never a path

    @Test func aPolicyNameIsNeverAPathWhateverTheDaemonsDirectoryHolds() throws {
        // The directory cordond is started from holds policies nobody wrote: a kept
        // capability, seccomp off, and nobody in [access].
        let start = "/tmp/cordond-cwd-\(getpid())"
        try? FileManager.default.removeItem(atPath: start)
        try FileManager.default.createDirectory(atPath: start, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: start) }
        let evil = "[policy]\nname = \"default\"\nextends = [\"default\"]\n[capabilities]\nkeep = [\"SYS_ADMIN\"]\n[access]\nusers = [\"65534\"]\n"
        for name in ["evil.json", "evil.toml", "evil"] { try evil.write(toFile: "\(start)/\(name)", atomically: true, encoding: .utf8) }
        let d = try TestDaemon(config: Self.socketGroup, policies: ["shared": Self.shared], startDirectory: start)
        let names = ["evil.json", "evil.toml", "./evil", "../\(start.split(separator: "/").last!)/evil.json", "\(start)/evil.json", "evil.JSON", ".hidden"]
        let answers = d.asUser(Self.nobody, names.enumerated().map { Self.submit(["true"], policy: $1, id: $0 + 1) })
        try #require(answers.count == names.count, "\(answers)")
        for (name, answer) in zip(names, answers) {
            #expect(answer["error"]?["code"] == .int(RPCCode.invalidParams), "\(name): \(answer.text)")
            #expect(answer["error"]?["data"]?["field"] == .string("params.policy"))
        }
        #expect(try d.call("task.list", .object([("all", .bool(true))])).arrayValue?.isEmpty == true, "no task was created")
    }

    @Test func extendsAndProfilesOutsideTheConfigDirAreRefusedWithoutReadingThem() throws {
        let outside = "/tmp/cordond-outside-\(getpid()).toml"
        try "this line is a secret = and does not parse\n".write(toFile: outside, atomically: true, encoding: .utf8)
        defer { unlink(outside) }
        let d = try TestDaemon(config: Self.socketGroup, policies: [
            "shared": Self.shared,
            "shadow": "[policy]\nextends = [\"/etc/shadow\"]\n",
            "outside": "[policy]\nextends = [\"\(outside)\"]\n",
            "updir": "[policy]\nextends = [\"../../../../..\(outside)\"]\n",
            "profile": "[policy]\nextends = [\"default\"]\n[seccomp]\nprofile = \"/etc/passwd\"\n[access]\nusers = [\"65534\"]\n",
        ])
        for name in ["shadow", "outside", "updir", "profile"] {
            let error = try d.callError("task.submit", .object([("policy", .string(name)), ("argv", .array([.string("true")]))]))
            #expect(error.code == RPCCode.policyError, "\(name): \(error)")
            #expect(error.message.contains("outside cordond's config directory"), "\(name): \(error.message)")
            #expect(!error.message.contains("secret") && !error.message.contains("root:") && !error.message.contains("expected"), "\(name) echoed content: \(error.message)")
        }
        // policy.list says the same and the daemon lives on.
        let list = try d.call("policy.list").arrayValue ?? []
        #expect(list.first { $0["name"] == .string("shadow") }?["error"]?.stringValue?.contains("outside") == true, "\(list.map(\.text))")
        #expect(try d.call("system.version")["protocol"] == .int(1))
    }

    // MARK: 7e, 9: untrusted and special files in the config dir

    @Test func writablePolicyFilesAndFIFOsAreRefusedAndNothingBlocks() throws {
        let d = try TestDaemon(config: Self.socketGroup, policies: [
            "shared": Self.shared,
            "loose": Self.shared.replacingOccurrences(of: "name = \"shared\"", with: "name = \"loose\""),
            "viafifo": "[policy]\nextends = [\"pipe.toml\"]\n[access]\nusers = [\"65534\"]\n",
        ])
        chmod("\(d.configDir)/policies/loose.toml", 0o666)
        #expect(mkfifo("\(d.configDir)/policies/pipe.toml", 0o644) == 0)
        let answers = d.asUser(Self.nobody, [Self.submit(["true"], policy: "loose"), Self.submit(["true"], policy: "viafifo", id: 2),
                                             Self.submit(["true"], policy: "pipe", id: 3)], timeout: 10)
        try #require(answers.count == 3, "\(answers)")
        #expect(answers.allSatisfy { $0["timeout"] == nil }, "a FIFO blocked the daemon: \(answers.map(\.text))")
        #expect(answers[0]["error"]?["code"] == .int(RPCCode.policyError))
        #expect(answers[0]["error"]?["message"]?.stringValue?.contains("chmod go-w") == true, "\(answers[0].text)")
        #expect(answers[1]["error"]?["message"]?.stringValue?.contains("not a regular file") == true, "\(answers[1].text)")
        #expect(answers[2]["error"]?["message"]?.stringValue?.contains("not a regular file") == true, "\(answers[2].text)")
        // A policies/ directory others may write is refused as a whole.
        chmod("\(d.configDir)/policies", 0o777)
        defer { chmod("\(d.configDir)/policies", 0o755) }
        let error = try d.callError("task.submit", .object([("policy", .string("shared")), ("argv", .array([.string("true")]))]))
        #expect(error.message.contains("may be written by others"), "\(error.message)")
    }

    // MARK: 8: no policy value crashes the daemon

    @Test func aHugeDurationInAConfigPolicyCannotKillTheDaemon() throws {
        let d = try TestDaemon(config: Self.socketGroup, policies: [
            "shared": Self.shared,
            "huge": "[policy]\nextends = [\"default\"]\n[limits]\nwall_time = 9223372036854775807\n[access]\nusers = [\"65534\"]\n",
            "hugestring": "[policy]\nextends = [\"default\"]\n[limits]\ncpu_time = \"3000000000000000s\"\n[access]\nusers = [\"65534\"]\n",
        ])
        let answers = d.asUser(Self.nobody, [#"{"jsonrpc":"2.0","id":1,"method":"policy.list"}"#, Self.submit(["true"], policy: "huge", id: 2),
                                             Self.submit(["true"], policy: "hugestring", id: 3)])
        try #require(answers.count == 3, "the daemon died: \(answers.map(\.text)) \(d.log())")
        #expect(answers[1]["error"]?["code"] == .int(RPCCode.policyError), "\(answers[1].text)")
        #expect(answers[2]["error"]?["code"] == .int(RPCCode.policyError), "\(answers[2].text)")
        _ = try d.call("policy.list")
        #expect(try d.call("system.version")["protocol"] == .int(1))
    }

    // MARK: 4: the hash and the caches cover the seccomp profile

    @Test func editingAProfileChangesTheHashAndTheFilterOfTheNextTask() throws {
        let profile = try String(contentsOfFile: "\(TestDaemon.repoRoot)/profiles/seccomp/default.json", encoding: .utf8)
        let d = try TestDaemon(policies: ["custom": "[policy]\nextends = [\"default\"]\n[seccomp]\nprofile = \"custom\"\n"],
                               files: ["profiles/seccomp/custom.json": profile])
        let first = try d.submit(["uname"], policy: "custom", wait: true)
        #expect(first["exitCode"] == .int(0), "\(first.text)")
        // The admin takes uname out of the allowed calls.
        let tightened = profile.replacingOccurrences(of: "\"times\", \"uname\"", with: "\"times\"")
        #expect(tightened != profile)
        try tightened.write(toFile: "\(d.configDir)/profiles/seccomp/custom.json", atomically: true, encoding: .utf8)
        let second = try d.submit(["uname"], policy: "custom", wait: true)
        #expect(second["exitCode"] != .int(0), "the next task still ran the old filter: \(second.text)")
        #expect(second["policyHash"] != first["policyHash"], "the recorded hash must cover the profile")
    }

    // MARK: 2: a connect flood by one user does not lock root out

    @Test func rootGetsInDuringAConnectFloodByOneUser() throws {
        let d = try TestDaemon(config: Self.socketGroup)
        // Four flooders as nobody: connect and close as fast as they can, for at most 20 s or
        // 200,000 connections each, until the stop file appears.
        let stop = "\(d.dir)/stop-flood"
        let flood = """
            import os, socket, sys, time
            n, end = 0, time.time() + 20
            while n < 200000 and time.time() < end and not os.path.exists(sys.argv[2]):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(sys.argv[1]); n += 1
                except OSError:
                    pass
                s.close()
            print(n, flush=True)
            """
        var flooders: [(Process, Pipe)] = []
        for _ in 0..<4 {
            let p = Process(), out = Pipe()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/python3", "-c", flood, d.socket, stop]
            p.standardOutput = out
            try p.run()
            flooders.append((p, out))
        }
        usleep(300_000)
        var ok = 0
        var failures: [String] = []
        for _ in 0..<50 {
            let r = TestDaemon.exec(TestDaemon.cordon, ["status", "--socket", d.socket])
            if r.status == 0 { ok += 1 } else { failures.append(r.stderr) }
        }
        try #require(FileManager.default.createFile(atPath: stop, contents: nil))
        var connections = 0
        for (p, out) in flooders {
            p.waitUntilExit()
            connections += Int(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        #expect(connections > 2000, "the flood did not happen: \(connections) connections")
        #expect(ok == 50, "\(ok) of 50 root status calls succeeded during \(connections) flood connections: \(failures.prefix(3))")
        print("connect flood: \(connections) connections by nobody; root: \(ok)/50 status calls")
    }

    // MARK: 3: an audit flood erases only the flooder's own bulk

    @Test func anAuditFloodShedsOnlyTheFloodersRecordsAndKeepsDenials() throws {
        let d = try TestDaemon(config: Self.socketGroup + "[audit]\nmax_size_per_user = \"2MiB\"\nmax_size = \"6MiB\"\n",
                               policies: ["shared": Self.shared])
        let rootTask = try #require(try d.submit(["echo", "root"], wait: true)["id"]?.intValue)
        let victim = d.asUser(4321, [Self.submit(["echo", "victim"], wait: true)])
        let victimTask = try #require(victim.first?["result"]?["id"]?.intValue, "\(victim.map(\.text))")
        // The flooder's own denial, then 40 tasks with a 256 KiB argv each (10 MiB).
        let denial = d.asUser(Self.nobody, [Self.submit(["unshare", "--user", "true"], wait: true)])
        let denialTask = try #require(denial.first?["result"]?["id"]?.intValue, "\(denial.map(\.text))")
        let big = String(repeating: "A", count: 256 << 10 - 100)
        let floodAnswers = d.asUser(Self.nobody, (0..<40).map { Self.submit(["echo", big], id: $0 + 10, wait: true) })
        #expect(floodAnswers.count == 40)
        let refused = floodAnswers.filter { $0["error"]?["code"] == .int(RPCCode.quotaExceeded) }
        // Retention catches up within seconds (it is woken by the quota, not the 10-minute timer).
        #expect(try d.eventually(20) {
            let events = try d.call("audit.query", .object([("kinds", .array([.string("quota")])), ("limit", .int(100))]))["events"]?.arrayValue ?? []
            return events.contains { $0["uid"] == .int(Int64(Self.nobody)) && $0["detail"]?["quota"] == .string("audit.max_size_per_user") }
        }, "no quota event: \(d.log())")
        #expect(try d.eventually(20) {
            let flooder = try d.call("audit.query", .object([("user", .string("65534")), ("limit", .int(1000))]))["tasks"]?.arrayValue ?? []
            return flooder.reduce(0) { $0 + ($1["argv"]?.text.utf8.count ?? 0) } < 3 << 20
        })
        // Nobody else paid: root's and the victim's records, and the flooder's denial.
        #expect(try d.call("task.status", .object([("id", .int(rootTask))]))["argv"] == .array([.string("echo"), .string("root")]))
        #expect(try d.call("task.status", .object([("id", .int(victimTask))]))["argv"] == .array([.string("echo"), .string("victim")]))
        let denials = try d.call("audit.query", .object([("task", .int(denialTask)), ("denials", .bool(true))]))["events"]?.arrayValue ?? []
        #expect(denials.contains { $0["detail"]?["syscall"] == .string("unshare") }, "\(denials.map(\.text))")
        let health = try d.call("system.health")
        #expect(health["checks"]?["audit-quota"]?["ok"] == .bool(true), "\(health.text)")
        print("audit flood: \(refused.count) of 40 flood submits refused for the quota")
    }

    // MARK: 5: output counts against quotas, and health degrades before the disk is full

    @Test func outputQuotasMakeRoomFromTheUsersOwnOldestOutput() throws {
        let d = try TestDaemon(config: Self.socketGroup + "[tasks]\nmax_output_per_user = \"3MiB\"\n", policies: ["shared": Self.shared])
        let rootTask = try #require(try d.submit(["head", "-c", "1048576", "/dev/zero"], wait: true)["id"]?.intValue)
        let answers = d.asUser(Self.nobody, (0..<6).map { Self.submit(["head", "-c", "1048576", "/dev/zero"], id: $0 + 1, wait: true) })
        let ids = answers.compactMap { $0["result"]?["id"]?.intValue }
        try #require(ids.count == 6, "\(answers.map(\.text))")
        #expect(answers.allSatisfy { $0["result"]?["reason"] == .string("exited") })
        func onDisk(_ id: Int64) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: "\(d.stateDir)/tasks/\(id)/stdout"))?[.size] as? Int) ?? 0
        }
        let held = ids.reduce(0) { $0 + onDisk($1) }
        #expect(held <= 3 << 20, "nobody holds \(held) bytes of output")
        #expect(onDisk(ids.last!) == 1 << 20 && onDisk(ids.first!) == 0, "the oldest went first")
        #expect(onDisk(rootTask) == 1 << 20, "root's output is not nobody's to evict")
        let logs = try d.call("task.logs", .object([("id", .int(ids.first!))]))
        #expect(logs["outputRemoved"] == .bool(true) && logs["stdoutBytes"] == .int(1 << 20), "\(logs.text)")
        let removed = try d.call("audit.query", .object([("task", .int(ids.first!)), ("kinds", .array([.string("output-removed")]))]))["events"]?.arrayValue ?? []
        #expect(removed.first?["detail"]?["reason"] == .string("tasks.max_output_per_user"))
    }

    @Test func outputStopsAboveTheMinimumFreeDiskAndHealthDegrades() throws {
        var fs = statvfs()
        try #require(statvfs("/tmp", &fs) == 0)
        let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
        // Leave 16 MiB of room above the floor; a task that writes 256 MiB is cut there.
        let floor = free - (16 << 20)
        let d = try TestDaemon(config: "[tasks]\nmin_free_disk = \(floor)\n",
                               policies: ["big": "[policy]\nextends = [\"default\"]\n[limits]\noutput = \"1G\"\n"])
        let t = try d.submit(["head", "-c", "268435456", "/dev/zero"], policy: "big", wait: true)
        #expect(t["reason"] == .string("output-limit"), "\(t.text)")
        let written = (t["stdoutBytes"]?.intValue ?? 0)
        #expect(written < 64 << 20, "\(written) bytes written past the floor")
        let id = try #require(t["id"]?.intValue)
        let quota = try d.call("audit.query", .object([("task", .int(id)), ("kinds", .array([.string("quota")]))]))["events"]?.arrayValue ?? []
        #expect(quota.first?["detail"]?["quota"] == .string("tasks.min_free_disk"), "\(quota.map(\.text))")
        let health = try d.call("system.health")
        #expect(health["status"] == .string("degraded") && health["checks"]?["disk"]?["ok"] == .bool(false), "\(health.text)")
    }

    @Test func silentTasksOfOneUserCannotPromiseAllTheDiskAway() throws {
        var fs = statvfs()
        try #require(statvfs("/tmp", &fs) == 0)
        let floor = UInt64(fs.f_bavail) * UInt64(fs.f_frsize) - (300 << 20)
        let d = try TestDaemon(config: Self.socketGroup + "[scheduler]\nmax_running = 16\n[tasks]\nmin_free_disk = \(floor)\n",
                               policies: ["shared": Self.shared])
        // nobody: eight tasks that print nothing, each promised its policy's 64 MiB.
        let sleepers = d.asUser(Self.nobody, (0..<8).map { Self.submit(["sleep", "4249"], id: $0 + 1) })
        #expect(sleepers.compactMap { $0["result"]?["id"]?.intValue }.count == 8, "\(sleepers.map(\.text))")
        #expect(d.eventually { TestDaemon.processes(["sleep", "4249"]).count == 8 })
        let t = try d.submit(["sh", "-c", "echo hello"], wait: true)
        #expect(t["reason"] == .string("exited") && t["stdoutBytes"] == .int(6), "root's output was starved: \(t.text)")
        for s in sleepers { if let id = s["result"]?["id"]?.intValue { _ = try d.call("task.cancel", .object([("id", .int(id))])) } }
    }

    @Test func refusalRecordsAreSmallWhateverTheClientsPath() throws {
        let d = try TestDaemon(config: Self.socketGroup)
        let rootTask = try #require(try d.submit(["true"], wait: true)["id"]?.intValue)
        // nobody runs python from a directory path of about 3,000 bytes.
        var deep = "/tmp/cordond-deep-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: "/tmp/cordond-deep-\(getpid())") }
        for i in 0..<12 { deep += "/" + String(repeating: Character(String(i % 10)), count: 250) }
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        var p = "/tmp"
        for c in deep.dropFirst(5).split(separator: "/") { p += "/\(c)"; chmod(p, 0o755) }
        try #require(link("/usr/bin/python3.11", "\(deep)/python3") == 0 || (try? FileManager.default.copyItem(atPath: "/usr/bin/python3.11", toPath: "\(deep)/python3")) != nil)
        let request = #"{"jsonrpc":"2.0","id":1,"method":"task.status","params":{"id":\#(rootTask)}}"#
        let client = "import socket,sys\ns=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.sendall(sys.argv[2].encode()+b'\\n');print(s.recv(4096).decode())"
        let r = TestDaemon.runAs(uid: Self.nobody, gid: Self.nobody, ["\(deep)/python3", "-c", client, d.socket, request])
        #expect(r.stdout.contains("-32003"), "\(r.stdout) \(r.stderr)")
        let events = try d.call("audit.query", .object([("kinds", .array([.string("auth-refused")]))]))["events"]?.arrayValue ?? []
        let event = try #require(events.first, "no refusal recorded")
        #expect(event["detail"]?.text.utf8.count ?? 0 < 600, "a refusal record of \(event["detail"]?.text.utf8.count ?? 0) bytes")
        #expect(event["detail"]?["exe"]?.stringValue?.hasSuffix("…") == true)
    }

    // MARK: 6: queued requests do not pin memory

    static func rss(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) << 10
    }

    @Test func queuedBytesAreBoundedPerUserAndGiveTheirMemoryBack() throws {
        // 32 MiB of requests against the heap's own noise of a few MiB (arenas of the threads
        // that parsed them): held on the heap, they would show.
        let d = try TestDaemon(config: Self.socketGroup + "[scheduler]\nmax_running = 1\nmax_queued_bytes_per_user = \"32MiB\"\n",
                               policies: ["shared": Self.shared])
        let blocker = try #require(try d.submit(["sleep", "4247"])["id"]?.intValue)
        #expect(d.eventually { TestDaemon.processes(["sleep", "4247"]).count == 1 })
        let pid = try #require(d.processID)
        let before = Self.rss(pid)
        let stdin = String(repeating: "x", count: 900 << 10)
        let answers = d.asUser(Self.nobody, (0..<38).map { Self.submit(["cat"], id: $0 + 1, extra: #","stdin":"\#(stdin)""#) })
        try #require(answers.count == 38)
        let queued = answers.compactMap { $0["result"]?["id"]?.intValue }
        #expect(queued.count == 36, "32 MiB holds 36 requests of 900 KiB: \(answers.map { $0["error"]?.text ?? "ok" })")
        let refusal = try #require(answers.last?["error"])
        #expect(refusal["code"] == .int(RPCCode.queueFull) && refusal["message"]?.stringValue?.contains("scheduler.max_queued_bytes_per_user") == true, "\(refusal.text)")
        let whileQueued = Self.rss(pid)
        for id in queued { _ = try d.call("task.cancel", .object([("id", .int(id))])) }
        _ = try d.call("task.cancel", .object([("id", .int(blocker))]))
        usleep(2_500_000)  // the maintenance thread trims the heap once a second
        let after = Self.rss(pid)
        print("queued memory: RssAnon \(before >> 10) KiB before, \(whileQueued >> 10) KiB with \(queued.count) × 900 KiB queued, \(after >> 10) KiB after cancelling")
        #expect(whileQueued - before < 12 << 20, "RssAnon grew by \((whileQueued - before) >> 10) KiB with 32 MiB queued")
        #expect(after - before < 12 << 20, "RssAnon grew by \((after - before) >> 10) KiB and stayed")
    }

    // MARK: 7: per-request idle timeout, metrics, state-dir lock and mode, escaped output

    @Test func aTrickleOfBytesDoesNotKeepAConnection() throws {
        let d = try TestDaemon(config: Self.socketGroup + "[server]\nidle_timeout = \"1s\"\n")
        let fd = try d.connect()
        defer { close(fd) }
        var closedAfter: Int?
        for i in 0..<20 {
            var byte = UInt8(ascii: "{")
            if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) != 1 { closedAfter = i; break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 300) == 1 {
                var buffer = [UInt8](repeating: 0, count: 64)
                if read(fd, &buffer, buffer.count) <= 0 { closedAfter = i; break }
            }
        }
        let after = try #require(closedAfter, "a byte every 0.3 s kept the connection open for 6 s with a 1 s idle timeout")
        #expect(after <= 6)
    }

    @Test func idleMetricsClientsCannotStarveAScrape() throws {
        let port = 40000 + Int(getpid() % 20000)
        let daemon = try TestDaemon(config: "[metrics]\nlisten = \"127.0.0.1:\(port)\"\n")
        defer { withExtendedLifetime(daemon) {} }  // serving until the scrape: its deinit stops it
        // Twenty connections that send nothing.
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<20 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            #expect(rc == 0)
            idle.append(fd)
        }
        usleep(100_000)
        let scrape = TestDaemon.exec("/usr/bin/curl", ["-s", "-m", "3", "http://127.0.0.1:\(port)/metrics"])
        #expect(scrape.status == 0 && scrape.stdout.contains("cordon_"), "scrape failed (\(scrape.status)): \(scrape.stdout.prefix(200))")
    }

    @Test func aSecondDaemonOnTheSameStateIsRefusedAndTheFirstsTasksLive() throws {
        let d = try TestDaemon()
        let id = try #require(try d.submit(["sleep", "4248"])["id"]?.intValue)
        #expect(d.eventually { TestDaemon.processes(["sleep", "4248"]).count == 1 })
        let second = TestDaemon.exec(TestDaemon.cordond, ["--config-dir", d.configDir, "--state-dir", d.stateDir,
                                                          "--runtime-dir", d.runtimeDir, "--socket", "\(d.dir)/second.sock"])
        #expect(second.status != 0 && second.stderr.contains("another cordond"), "\(second.status) \(second.stderr)")
        #expect(try d.call("task.status", .object([("id", .int(id))]))["state"] == .string("running"), "the second daemon marked it lost")
        _ = try d.call("task.cancel", .object([("id", .int(id))]))
    }

    @Test func theStateDirIsMadePrivateAndCreatedPrivate() throws {
        let base = "/tmp/cordond-state-\(getpid())"
        try? FileManager.default.removeItem(atPath: base)
        defer { try? FileManager.default.removeItem(atPath: base) }
        // As an older `cordon db` left it: 0755.
        try FileManager.default.createDirectory(atPath: "\(base)/loose", withIntermediateDirectories: true)
        chmod("\(base)/loose", 0o755)
        let d = try TestDaemon()
        func mode(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1 }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestDaemon.cordond)
        p.arguments = ["--config-dir", d.configDir, "--state-dir", "\(base)/loose", "--runtime-dir", "\(base)/run"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        #expect(d.eventually { FileManager.default.fileExists(atPath: "\(base)/run/cordon.sock") }, "the daemon did not start")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(mode("\(base)/loose") == 0o700, "\(String(mode("\(base)/loose"), radix: 8))")
        // Owned by someone else: refused.
        try FileManager.default.createDirectory(atPath: "\(base)/theirs", withIntermediateDirectories: true)
        chown("\(base)/theirs", 4321, 4321)
        let theirs = TestDaemon.exec(TestDaemon.cordond, ["--config-dir", d.configDir, "--state-dir", "\(base)/theirs", "--runtime-dir", "\(base)/run2"])
        #expect(theirs.status != 0 && theirs.stderr.contains("owned by uid 4321"), "\(theirs.stderr)")
        // The CLI creates a new state dir 0700.
        _ = TestDaemon.exec(TestDaemon.cordon, ["run", "--state-dir", "\(base)/fresh", "--", "true"])
        #expect(mode("\(base)/fresh") == 0o700, "\(String(mode("\(base)/fresh"), radix: 8))")
    }

    @Test func listingsEscapeControlCharactersFromOtherUsers() throws {
        let d = try TestDaemon(config: Self.socketGroup, policies: ["shared": Self.shared])
        let forged = "x\u{1b}[2J\u{1b}[H\n99  finished  exited  0  default  0  2026  rm -rf /\r\u{202e}gpj.exe"
        // Padding that would wrap a forged row to the start of a terminal line.
        let wrapped = String(repeating: " ", count: 3000) + "98  finished  exited  0  default  0"
        let answers = d.asUser(Self.nobody, [Self.submit(["echo", forged, wrapped], wait: true)])
        #expect(answers.first?["result"]?["state"] == .string("finished"), "\(answers.map(\.text))")
        for command in [["tasks", "--all"], ["audit"]] {
            let r = TestDaemon.exec(TestDaemon.cordon, command + ["--socket", d.socket])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stdout.contains("\u{1b}") && !r.stdout.contains("\r") && !r.stdout.contains("\u{202e}"), "\(command): raw control characters printed")
            #expect(r.stdout.contains("\\u{1b}[2J"), "\(r.stdout)")
            #expect(!r.stdout.split(separator: "\n").contains { $0.hasPrefix("99 ") }, "a forged row: \(r.stdout)")
            #expect(r.stdout.split(separator: "\n").allSatisfy { $0.count < 600 }, "a cell long enough to wrap")
        }
    }
}
