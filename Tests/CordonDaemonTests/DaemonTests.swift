import CLinux
import CordonJSON
import CordonRPC
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// End to end: a real cordond in a temp dir, real sandboxes, driven through the real socket.
@Suite(.serialized, .enabled(if: TestDaemon.isRoot, "cordond needs root"))
struct DaemonTests {
    static func output(_ daemon: TestDaemon, _ id: Int64, follow: Bool = false) throws -> (stdout: String, stderr: String, end: JSON) {
        var out = "", err = ""
        let end = try daemon.client().call("task.logs", .object([("id", .int(id)), ("follow", .bool(follow))])) { method, p in
            guard method == "task.output", let data = p["data"]?.stringValue, let bytes = Data(base64Encoded: data) else { return }
            if p["stream"]?.stringValue == "stderr" { err += String(decoding: bytes, as: UTF8.self) } else { out += String(decoding: bytes, as: UTF8.self) }
        }
        return (out, err, end)
    }

    @Test func submitWaitStatusLogsAndList() throws {
        let d = try TestDaemon()
        let task = try d.submit(["sh", "-c", "echo hello; echo oops >&2; exit 3"], wait: true, extra: [("label", .string("first"))])
        #expect(task["state"] == .string("finished"))
        #expect(task["reason"] == .string("exited"))
        #expect(task["exitCode"] == .int(3))
        #expect(task["label"] == .string("first"))
        #expect(task["submitter"]?["uid"] == .int(0))
        #expect(task["stdoutBytes"] == .int(6))
        #expect(task["result"]?["layers"]?["namespaces"]?.arrayValue?.count == 7)
        let id = try #require(task["id"]?.intValue)
        let logs = try Self.output(d, id)
        #expect(logs.stdout == "hello\n")
        #expect(logs.stderr == "oops\n")
        #expect(logs.end["stdoutBytes"] == .int(6))

        // Submit without waiting, then wait.
        let queued = try d.submit(["cat"], extra: [("stdin", .string("from stdin\n")), ("env", .object([("TERM", .string("xterm-test"))]))])
        let second = try #require(queued["id"]?.intValue)
        #expect(second > id)
        let waited = try d.call("task.wait", .object([("id", .int(second))]))
        #expect(waited["state"] == .string("finished"))
        #expect(try Self.output(d, second).stdout == "from stdin\n")
        // The policy decides which variables pass: TERM (pass_env) does; SECRET is refused,
        // naming the key that would pass it, and nothing runs (it was once dropped silently).
        let env = try d.submit(["sh", "-c", "echo ${TERM:-unset}"], wait: true, extra: [("env", .object([("TERM", .string("xterm-test"))]))])
        #expect(try Self.output(d, env["id"]!.intValue!).stdout == "xterm-test\n")
        let before = try d.call("task.list").arrayValue?.count ?? 0
        let secret = try d.callError("task.submit", .object([("argv", .array([.string("true")])),
                                                            ("env", .object([("TERM", .string("x")), ("SECRET", .string("x"))]))]))
        #expect(secret.code == RPCCode.invalidParams && secret.field == "params.env.SECRET", "\(secret)")
        #expect(secret.message.contains("policy default does not pass SECRET") && secret.message.contains("process.pass_env") && secret.message.contains("it passes: TERM"),
                "\(secret.message)")
        let path = try d.callError("task.submit", .object([("argv", .array([.string("true")])), ("env", .object([("PATH", .string("/evil"))]))]))
        #expect(path.field == "params.env.PATH" && path.message.contains("process.env"), "\(path.message)")
        #expect(try d.call("task.list").arrayValue?.count ?? 0 == before, "a refused submit records no task")

        let status = try d.call("task.status", .object([("id", .int(id))]))
        #expect(status["exitCode"] == .int(3))
        #expect(status["startedAt"] != nil && status["finishedAt"] != nil)
        let list = try d.call("task.list").arrayValue ?? []
        let ids = list.compactMap { $0["id"]?.intValue }
        #expect(ids.contains(id))
        #expect(list.first?["id"]?.intValue ?? 0 > id, "newest first")

        let policies = try d.call("policy.list").arrayValue ?? []
        #expect(policies.contains { $0["name"] == .string("default") && $0["allowed"] == .bool(true) })
        let health = try d.call("system.health")
        #expect(health["checks"]?["cgroups"]?["ok"] == .bool(true))
        #expect(health["checks"]?["landlock"]?["ok"] == .bool(true))
        let version = try d.call("system.version")
        #expect(version["protocol"] == .int(1))
    }

    @Test func cancelKillsTheWholeCgroupAndCancelsQueuedTasks() throws {
        let d = try TestDaemon(config: "[scheduler]\nmax_running = 1\n")
        let running = try #require(try d.submit(["sh", "-c", "sleep 4242 & sleep 4242; wait"])["id"]?.intValue)
        let queued = try #require(try d.submit(["sleep", "4243"])["id"]?.intValue)
        #expect(d.eventually { TestDaemon.processes(["sleep", "4242"]).count == 2 })
        #expect(try d.call("task.status", .object([("id", .int(queued))]))["state"] == .string("queued"))

        let q = try d.call("task.cancel", .object([("id", .int(queued))]))
        #expect(q["state"] == .string("cancelled"))
        #expect(q["cancelled"] == .bool(true))
        #expect(q["startedAt"] == nil, "a queued task that is cancelled never starts")

        let r = try d.call("task.cancel", .object([("id", .int(running))]))
        #expect(r["state"] == .string("cancelled"))
        #expect(r["reason"] == .string("cancelled"))
        // Both sleeps (the background one too) are gone: the cgroup was killed, not just init.
        #expect(d.eventually(2) { TestDaemon.processes(["sleep", "4242"]).isEmpty })
        #expect(TestDaemon.processes(["sleep", "4243"]).isEmpty)
        let again = try d.call("task.cancel", .object([("id", .int(running))]))
        #expect(again["cancelled"] == .bool(false))

        let events = try d.call("audit.query", .object([("task", .int(running))]))["events"]?.arrayValue ?? []
        let kinds = events.compactMap { $0["kind"]?.stringValue }
        #expect(kinds.contains("submitted") && kinds.contains("started") && kinds.contains("cancel") && kinds.contains("cancelled"), "\(kinds)")
    }

    @Test func logsFollowStreamsUntilTheTaskEnds() throws {
        let d = try TestDaemon()
        let id = try #require(try d.submit(["sh", "-c", "echo one; sleep 0.4; echo two; sleep 0.4; echo three >&2"])["id"]?.intValue)
        var chunks: [String] = []
        let end = try d.client().call("task.logs", .object([("id", .int(id)), ("follow", .bool(true))])) { _, p in
            if let data = p["data"]?.stringValue, let bytes = Data(base64Encoded: data) {
                chunks.append((p["stream"]?.stringValue ?? "") + ":" + String(decoding: bytes, as: UTF8.self))
            }
        }
        #expect(chunks.joined() == "stdout:one\nstdout:two\nstderr:three\n" || chunks.sorted() == ["stderr:three\n", "stdout:one\n", "stdout:two\n"], "\(chunks)")
        #expect(chunks.count >= 3, "output arrives as it is written, not at the end")
        #expect(end["state"] == .string("finished"))
    }

    @Test func outputFilesAppearWithTheFirstByteAndFailingToOpenThemFailsTheTask() throws {
        let d = try TestDaemon()
        // Nothing printed: no directory, and the logs are simply empty.
        let quiet = try #require(try d.submit(["true"], wait: true)["id"]?.intValue)
        #expect(!FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(quiet)"))
        let none = try Self.output(d, quiet)
        #expect(none.stdout == "" && none.stderr == "" && none.end["stdoutBytes"] == .int(0))
        // stderr only: one file.
        let loud = try #require(try d.submit(["sh", "-c", "echo late >&2"], wait: true)["id"]?.intValue)
        #expect(FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(loud)/stderr"))
        #expect(!FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(loud)/stdout"))
        #expect(try Self.output(d, loud).stderr == "late\n")
        // The next task's directory cannot be made (a file is in the way): its output is not
        // lost quietly, the task fails and says why.
        let next = loud + 1
        try "in the way".write(toFile: "\(d.stateDir)/tasks/\(next)", atomically: false, encoding: .utf8)
        let blocked = try d.submit(["sh", "-c", "echo hello; sleep 30"], wait: true)
        #expect(blocked["id"] == .int(next))
        #expect(blocked["reason"] == .string("setup-failed"), "\(blocked.text)")
        #expect(blocked["result"]?["setupFailure"]?["step"] == .string("output"), "\(blocked.text)")
        // The record carries the exit status the sandbox decided (a failed setup: 125, though the
        // workload was killed by a signal), so a client does not derive it.
        #expect(blocked["result"]?["exitStatus"] == .int(125), "\(blocked.text)")
        #expect(blocked["result"]?["setupFailure"]?["message"]?.stringValue?.contains("tasks/\(next)") == true, "\(blocked.text)")
    }

    @Test func everyClientMistakeGetsAStableErrorAndTheDaemonSurvives() throws {
        let d = try TestDaemon(config: "[server]\nmax_message_bytes = 65536\n")
        let fd = try d.connect()
        defer { close(fd) }
        func send(_ line: String) throws -> JSON { try d.raw(Array((line + "\n").utf8), connection: fd) }
        func expectError(_ line: String, _ code: Int64, field: String? = nil, mentions: String? = nil) throws {
            let r = try send(line)
            #expect(r["error"]?["code"] == .int(code), "\(line) → \(r.text)")
            if let field { #expect(r["error"]?["data"]?["field"] == .string(field), "\(line) → \(r.text)") }
            if let mentions { #expect(r["error"]?["message"]?.stringValue?.contains(mentions) == true, "\(line) → \(r.text)") }
        }
        // All on one connection: each mistake is answered and the connection stays usable.
        try expectError("{not json", RPCCode.parseError)
        try expectError("[1,2]", RPCCode.invalidRequest, mentions: "batch")
        try expectError("\"hello\"", RPCCode.invalidRequest)
        try expectError(#"{"id":1,"method":"system.version"}"#, RPCCode.invalidRequest, field: "jsonrpc")
        try expectError(#"{"jsonrpc":"2.0","id":{"a":1},"method":"system.version"}"#, RPCCode.invalidRequest, field: "id")
        try expectError(#"{"jsonrpc":"2.0","id":2}"#, RPCCode.invalidRequest, field: "method")
        try expectError(#"{"jsonrpc":"2.0","id":3,"method":"task.explode"}"#, RPCCode.methodNotFound, field: "method", mentions: "task.explode")
        try expectError(#"{"jsonrpc":"2.0","id":4,"method":"task.submit","params":{}}"#, RPCCode.invalidParams, field: "params.argv")
        try expectError(#"{"jsonrpc":"2.0","id":5,"method":"task.submit","params":{"argv":"echo hi"}}"#, RPCCode.invalidParams, field: "params.argv")
        try expectError(#"{"jsonrpc":"2.0","id":6,"method":"task.submit","params":{"argv":["echo",7]}}"#, RPCCode.invalidParams, field: "params.argv[1]")
        try expectError(#"{"jsonrpc":"2.0","id":7,"method":"task.submit","params":{"argv":["true"],"limits":{"memory":"big"}}}"#, RPCCode.invalidParams, field: "params.limits.memory")
        try expectError(#"{"jsonrpc":"2.0","id":8,"method":"task.submit","params":{"argv":["true"],"limits":{"wallTime":3600}}}"#, RPCCode.invalidParams, field: "params.limits.wallTime", mentions: "only tighten")
        try expectError(#"{"jsonrpc":"2.0","id":9,"method":"task.submit","params":{"argv":["true"],"polcy":"default"}}"#, RPCCode.invalidParams, field: "params.polcy", mentions: "unknown parameter")
        try expectError(#"{"jsonrpc":"2.0","id":10,"method":"task.submit","params":{"argv":["true"],"policy":"../../etc/passwd"}}"#, RPCCode.invalidParams, field: "params.policy")
        try expectError(#"{"jsonrpc":"2.0","id":11,"method":"task.submit","params":{"argv":["true"],"policy":"/tmp/evil.toml"}}"#, RPCCode.invalidParams, field: "params.policy")
        try expectError(#"{"jsonrpc":"2.0","id":12,"method":"task.submit","params":{"argv":["true"],"policy":"no-such-policy"}}"#, RPCCode.policyError, field: "params.policy")
        try expectError(#"{"jsonrpc":"2.0","id":13,"method":"task.status"}"#, RPCCode.invalidParams, field: "params.id")
        try expectError(#"{"jsonrpc":"2.0","id":14,"method":"task.status","params":{"id":"7"}}"#, RPCCode.invalidParams, field: "params.id")
        try expectError(#"{"jsonrpc":"2.0","id":15,"method":"task.status","params":{"id":999999}}"#, RPCCode.notFound)
        try expectError(#"{"jsonrpc":"2.0","id":16,"method":"task.logs","params":{"id":1,"stream":"video"}}"#, RPCCode.notFound)
        try expectError(#"{"jsonrpc":"2.0","id":17,"method":"task.list","params":{"states":["sleeping"]}}"#, RPCCode.invalidParams, field: "params.states[0]")
        try expectError(#"{"jsonrpc":"2.0","id":18,"method":"task.list","params":[1]}"#, RPCCode.invalidParams, field: "params")
        try expectError(#"{"jsonrpc":"2.0","id":19,"method":"task.submit","params":{"argv":["true"],"argv":["false"]}}"#, RPCCode.invalidParams, field: "params.argv")
        try expectError(#"{"jsonrpc":"2.0","id":20,"method":"system.version","extra":1}"#, RPCCode.invalidRequest, field: "extra")
        let deep = String(repeating: "[", count: 100_00) + String(repeating: "]", count: 100_00)
        try expectError(deep, RPCCode.parseError, mentions: "deeper")
        // Over the size limit: answered at once, the rest of the line discarded, the next line served.
        try expectError(#"{"jsonrpc":"2.0","id":21,"method":"task.submit","params":{"argv":[""# + String(repeating: "\"x\",", count: 40_000) + "\"y\"]}}",
                        RPCCode.messageTooLarge)
        let ok = try send(#"{"jsonrpc":"2.0","id":"after","method":"system.version"}"#)
        #expect(ok["id"] == .string("after"))
        #expect(ok["result"]?["protocol"] == .int(1))
        // A notification (no id) gets no answer; the next request is answered.
        let afterNote = try send(#"{"jsonrpc":"2.0","method":"system.version"}"# + "\n" + #"{"jsonrpc":"2.0","id":22,"method":"system.health"}"#)
        #expect(afterNote["id"] == .int(22))
        // Binary garbage, then a client that vanishes mid-message.
        _ = try? d.raw([0xff, 0xfe, 0x00, 0x01, 0x0a])
        let half = try d.connect()
        _ = Array(#"{"jsonrpc":"2.0","id":1,"met"#.utf8).withUnsafeBytes { Glibc.send(half, $0.baseAddress, $0.count, 0x4000) }
        close(half)
        #expect(try d.call("system.health")["status"] != nil)
        #expect(d.process?.isRunning == true)
    }

    /// A request within the size limit whose values would cost far more memory than its text is
    /// refused at parse time (SECURITY.md: at most 100,000 values).
    @Test func aRequestOfTooManyValuesIsRefused() throws {
        let d = try TestDaemon()
        let many = #"{"jsonrpc":"2.0","id":1,"method":"task.submit","params":{"argv":["true"],"env":{},"x":["# +
            String(repeating: "0,", count: 100_001) + "0]}}"
        let r = try d.raw(Array((many + "\n").utf8))
        #expect(r["error"]?["code"] == .int(RPCCode.parseError), "\(r.text)")
        #expect(r["error"]?["message"]?.stringValue?.contains("more than 100000 values") == true, "\(r.text)")
        #expect(try d.call("system.version")["protocol"] == .int(1))
    }

    @Test func anotherUserIsRefusedUnlessThePolicyListsThem() throws {
        // nobody (65534) may connect (socket group nogroup) and may use only `shared`.
        let shared = (try String(contentsOfFile: "\(TestDaemon.repoRoot)/policies/default.toml", encoding: .utf8))
            .replacingOccurrences(of: "name = \"default\"", with: "name = \"shared\"") + "\n[access]\nusers = [\"65534\"]\n"
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n", policies: ["shared": shared])
        chmod(d.dir, 0o755)
        let rootTask = try #require(try d.submit(["true"], wait: true)["id"]?.intValue)
        func asNobody(_ requests: [String]) -> [JSON] {
            let r = TestDaemon.runAs(uid: 65534, gid: 65534, ["/usr/bin/python3", "-c", TestDaemon.pythonClient, d.socket],
                                     stdin: requests.joined(separator: "\n") + "\n")
            return r.stdout.split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
        }
        let answers = asNobody([
            #"{"jsonrpc":"2.0","id":1,"method":"task.submit","params":{"argv":["true"]}}"#,
            #"{"jsonrpc":"2.0","id":2,"method":"task.submit","params":{"argv":["id","-u"],"policy":"shared","wait":true}}"#,
            #"{"jsonrpc":"2.0","id":3,"method":"task.status","params":{"id":\#(rootTask)}}"#,
            #"{"jsonrpc":"2.0","id":4,"method":"task.cancel","params":{"id":\#(rootTask)}}"#,
            #"{"jsonrpc":"2.0","id":5,"method":"task.list","params":{"all":true}}"#,
            #"{"jsonrpc":"2.0","id":6,"method":"audit.query","params":{"user":"root"}}"#,
            #"{"jsonrpc":"2.0","id":7,"method":"system.metrics"}"#,
            #"{"jsonrpc":"2.0","id":8,"method":"task.list"}"#,
        ])
        try #require(answers.count == 8, "\(answers)")
        #expect(answers[0]["error"]?["code"] == .int(RPCCode.unauthorized), "the default policy has no [access]: admins only")
        #expect(answers[0]["error"]?["message"]?.stringValue?.contains("65534") == true)
        #expect(answers[1]["result"]?["state"] == .string("finished"), "\(answers[1].text)")
        #expect(answers[1]["result"]?["submitter"]?["uid"] == .int(65534))
        // Someone else's task looks like no task at all (ids and owners are not for enumerating).
        #expect(answers[2]["error"]?["code"] == .int(RPCCode.notFound))
        #expect(answers[3]["error"]?["code"] == .int(RPCCode.notFound))
        #expect(answers[4]["error"]?["code"] == .int(RPCCode.unauthorized))
        let visible = answers[7]["result"]?.arrayValue ?? []
        #expect(!visible.isEmpty && visible.allSatisfy { $0["submitter"]?["uid"] == .int(65534) }, "a non-admin sees only its own tasks")
        #expect(answers[5]["error"]?["code"] == .int(RPCCode.unauthorized))
        #expect(answers[6]["error"]?["code"] == .int(RPCCode.unauthorized))
        // The root task was not cancelled by the refused request.
        #expect(try d.call("task.status", .object([("id", .int(rootTask))]))["reason"] == .string("exited"))

        let policies = asNobody([#"{"jsonrpc":"2.0","id":1,"method":"policy.list"}"#])
        #expect(policies.first?["result"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["shared"], "non-admins see the policies they may use")
        let refusals = try d.call("audit.query", .object([("denials", .bool(true))]))["events"]?.arrayValue ?? []
        let byNobody = refusals.filter { $0["kind"] == .string("auth-refused") && $0["uid"] == .int(65534) }
        #expect(byNobody.count == 6, "\(refusals.map(\.text))")

        // A user outside the socket's group cannot even connect (0660).
        let stranger = TestDaemon.runAs(uid: 4321, gid: 4321, ["/usr/bin/python3", "-c", TestDaemon.pythonClient, d.socket], stdin: "\n")
        #expect(stranger.status != 0 && stranger.stderr.contains("PermissionError"), "\(stranger.stderr)")
    }

    /// A non-admin's sandbox writes through a writable bind as them on the host, only into a
    /// directory of theirs; an admin's writes as the directory's owner; a policy naming another
    /// owner is refused to a non-admin before anything runs.
    @Test func aNonAdminWritesAsThemselvesAndMayNotNameAnotherOwner() throws {
        let base = "/tmp/cordond-owner-\(getpid())"
        try? FileManager.default.removeItem(atPath: base)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let shared = "\(base)/shared", own = "\(base)/nobodys"
        for dir in [shared, own] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        chmod(base, 0o755)
        chmod(shared, 0o1777)  // root's, writable by all (like /tmp)
        chown(own, 65534, 65534)
        func policy(_ name: String, _ binds: String) -> String {
            "[policy]\nname = \"\(name)\"\nextends = [\"default\"]\n[filesystem]\nread_write = [\(binds)]\n[access]\nusers = [\"65534\"]\n"
        }
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n", policies: [
            "mine": policy("mine", "\"\(shared)\", \"\(own)\""),
            "theirs": policy("theirs", "{ path = \"\(own)\", owner = \"0:0\" }"),
            "nobodys": policy("nobodys", "\"\(own)\""),
        ])
        chmod(d.dir, 0o755)
        let answers = d.asUser(65534, [
            #"{"jsonrpc":"2.0","id":1,"method":"task.submit","params":{"argv":["/bin/sh","-c","echo n > \#(own)/by-nobody"],"policy":"mine","wait":true}}"#,
            #"{"jsonrpc":"2.0","id":2,"method":"task.submit","params":{"argv":["/bin/sh","-c","echo n > \#(own)/as-root"],"policy":"theirs","wait":true}}"#,
        ])
        try #require(answers.count == 2, "\(answers)")
        // `mine` binds root's shared directory too: nothing could be written there as nobody.
        #expect(answers[0]["result"]?["reason"] == .string("setup-failed"), "\(answers[0].text)")
        #expect(answers[0]["result"]?["result"]?["setupFailure"]?["message"]?.stringValue?.contains("\(shared) belongs to 0:0, but this sandbox writes as 65534:65534 (the caller)") == true,
                "\(answers[0].text)")
        #expect(answers[1]["error"]?["code"] == .int(RPCCode.unauthorized), "\(answers[1].text)")
        #expect(answers[1]["error"]?["message"]?.stringValue?.contains("owner \"0:0\" is not you (65534:65534)") == true, "\(answers[1].text)")
        #expect(!FileManager.default.fileExists(atPath: "\(own)/as-root"))

        let onlyOwn = d.asUser(65534, [
            #"{"jsonrpc":"2.0","id":1,"method":"task.submit","params":{"argv":["/bin/sh","-c","echo n > \#(own)/by-nobody"],"policy":"nobodys","wait":true}}"#,
        ])
        #expect(onlyOwn.first?["result"]?["exitCode"] == .int(0), "\(onlyOwn)")
        var st = stat()
        #expect(stat("\(own)/by-nobody", &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534, "uid \(st.st_uid)")
        // An admin's task writes as each directory's owner.
        let admin = try d.submit(["/bin/sh", "-c", "echo r > \(shared)/by-admin && echo r > \(own)/by-admin"], policy: "mine", wait: true)
        #expect(admin["exitCode"] == .int(0), "\(admin.text)")
        #expect(stat("\(shared)/by-admin", &st) == 0 && st.st_uid == 0, "uid \(st.st_uid)")
        #expect(stat("\(own)/by-admin", &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534, "uid \(st.st_uid)")
    }

    /// More supplementary groups than a small buffer holds must not read as "member of gid 0".
    @Test func manyGroupsNeverReadAsRoot() throws {
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n[admins]\ngroups = [\"root\"]\n")
        let request = #"{"jsonrpc":"2.0","id":1,"method":"system.metrics"}"# + "\n"
        let groups = "65534," + (20000..<20300).map(String.init).joined(separator: ",")
        let r = TestDaemon.exec("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--groups=\(groups)", "--",
                                                     "/usr/bin/python3", "-c", TestDaemon.pythonClient, d.socket], stdin: request)
        let answer = try JSON.parse(r.stdout.split(separator: "\n").first.map(String.init) ?? "")
        #expect(answer["error"]?["code"] == .int(RPCCode.unauthorized), "\(r.stdout) \(r.stderr)")
    }

    /// A cancel that arrives as the task ends on its own says so, and the record agrees.
    @Test func cancelNeverClaimsATaskThatEndedOnItsOwn() throws {
        let d = try TestDaemon(config: "[scheduler]\nmax_running = 4\n")
        var cancelled = 0, ended = 0
        for _ in 0..<60 {
            let id = try #require(try d.submit(["sleep", "0.02"])["id"]?.intValue)
            usleep(UInt32.random(in: 5_000...40_000))
            let r = try d.call("task.cancel", .object([("id", .int(id))]))
            let events = (try d.call("audit.query", .object([("task", .int(id))]))["events"]?.arrayValue ?? []).compactMap { $0["kind"]?.stringValue }
            if r["cancelled"] == .bool(true) {
                cancelled += 1
                #expect(r["state"] == .string("cancelled") && events.contains("cancel"), "\(r.text) \(events)")
            } else {
                ended += 1
                #expect(r["state"] == .string("finished") && r["reason"] == .string("exited") && !events.contains("cancel"), "\(r.text) \(events)")
            }
        }
        #expect(cancelled + ended == 60)
    }

    @Test func connectionsAreCappedPerUserIdleOnesClosedAndAdminsKeepAWayIn() throws {
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n[server]\nmax_connections = 4\nmax_connections_per_user = 2\nidle_timeout = \"1s\"\n")
        // nobody holds connections open without sending anything.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        holder.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/python3", "-c", """
            import socket, sys, time
            held = []
            for i in range(3):
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(3); held.append(s)
            # Which one is refused depends on which the daemon's threads admit first.
            out = []
            for s in held:
                data = s.recv(4096)
                out.append(data.decode().strip() if data else "closed")
            for line in sorted(out): print(line, flush=True)
            """, d.socket]
        let out = Pipe(), err = Pipe()
        holder.standardOutput = out
        holder.standardError = err
        try holder.run()
        usleep(150_000)
        // Root is not locked out while nobody holds its share.
        #expect(try d.call("system.version")["protocol"] == .int(1))
        holder.waitUntilExit()
        let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        try #require(lines.count == 3, "\(lines) \(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        // Two admitted and closed when idle past server.idle_timeout; the third refused.
        #expect(lines[0] == "closed" && lines[1] == "closed", "\(lines)")
        let third = try JSON.parse(String(lines[2]))
        #expect(third["error"]?["code"] == .int(RPCCode.busy))
        #expect(third["error"]?["message"]?.stringValue?.contains("max_connections_per_user") == true)
    }

    @Test func aFloodOfRefusedRequestsCannotFloodTheAuditLog() throws {
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n")
        let requests = (1...200).map { #"{"jsonrpc":"2.0","id":\#($0),"method":"system.metrics"}"# }
        let r = TestDaemon.runAs(uid: 65534, gid: 65534, ["/usr/bin/python3", "-c", TestDaemon.pythonClient, d.socket],
                                 stdin: requests.joined(separator: "\n") + "\n")
        #expect(r.stdout.split(separator: "\n").count == 200, "every request is still answered")
        let events = try d.call("audit.query", .object([("denials", .bool(true)), ("limit", .int(1000))]))["events"]?.arrayValue ?? []
        #expect(events.count == 20, "\(events.count) refusal events for 200 refusals")
        let metrics = try d.call("system.metrics")["text"]?.stringValue ?? ""
        #expect(metrics.contains("cordon_auth_refusals_total{method=\"system.metrics\"} 200"))
    }

    @Test func aFullQueueIsAClearErrorAndUsersTakeTurns() throws {
        let everyone = (try String(contentsOfFile: "\(TestDaemon.repoRoot)/policies/default.toml", encoding: .utf8))
            .replacingOccurrences(of: "name = \"default\"", with: "name = \"shared\"") + "\n[access]\nusers = [\"65534\"]\n"
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n[scheduler]\nmax_running = 1\nmax_queued = 5\nmax_queued_per_user = 4\n",
                               policies: ["shared": everyone])
        let blocker = try #require(try d.submit(["sleep", "4244"], policy: "shared")["id"]?.intValue)
        #expect(d.eventually { TestDaemon.processes(["sleep", "4244"]).count == 1 })
        var rootQueued: [Int64] = []
        for i in 0..<4 { rootQueued.append(try #require(try d.submit(["echo", "root-\(i)"], policy: "shared")["id"]?.intValue)) }
        let perUser = try d.callError("task.submit", .object([("argv", .array([.string("true")])), ("policy", .string("shared"))]))
        #expect(perUser.code == RPCCode.queueFull)
        #expect(perUser.message.contains("max_queued_per_user"))
        // nobody's one task is served before root's second queued one: users take turns.
        let r = TestDaemon.runAs(uid: 65534, gid: 65534, ["/usr/bin/python3", "-c", TestDaemon.pythonClient, d.socket], stdin: [
            #"{"jsonrpc":"2.0","id":1,"method":"task.submit","params":{"argv":["echo","nobody"],"policy":"shared"}}"#,
            #"{"jsonrpc":"2.0","id":2,"method":"task.submit","params":{"argv":["true"],"policy":"shared"}}"#,
        ].joined(separator: "\n") + "\n")
        let answers = r.stdout.split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
        try #require(answers.count == 2, "\(r.stderr)")
        let nobodyTask = try #require(answers[0]["result"]?["id"]?.intValue)
        #expect(answers[1]["error"]?["code"] == .int(RPCCode.queueFull), "the global queue (5) is full: \(answers[1].text)")
        #expect(answers[1]["error"]?["message"]?.stringValue?.contains("queue is full") == true)

        _ = try d.call("task.cancel", .object([("id", .int(blocker))]))
        for id in rootQueued + [nobodyTask] { _ = try d.call("task.wait", .object([("id", .int(id))])) }
        func started(_ id: Int64) throws -> String { try d.call("task.status", .object([("id", .int(id))]))["startedAt"]?.stringValue ?? "" }
        let order = try (rootQueued + [nobodyTask]).sorted { try started($0) < started($1) }
        #expect(order.firstIndex(of: nobodyTask)! <= 1, "nobody's task ran \(order.firstIndex(of: nobodyTask)!)th: \(order)")
    }

    @Test func metricsAreServedOverTheSocketAndOnLoopbackHTTP() throws {
        let port = 20000 + Int(getpid() % 20000)
        let d = try TestDaemon(config: "[metrics]\nlisten = \"127.0.0.1:\(port)\"\n")
        _ = try d.submit(["true"], wait: true)
        _ = try d.submit(["unshare", "--user", "true"], wait: true)
        let text = try #require(try d.call("system.metrics")["text"]?.stringValue)
        #expect(text.contains("cordon_tasks_total{result=\"exited\"} 2"), "\(text)")
        #expect(text.contains("cordon_denials_total{kind=\"syscall\"}"), "\(text)")
        #expect(text.contains("cordon_spawn_seconds_count 2"), "\(text)")
        #expect(text.contains("cordon_queue_depth 0"))
        let http = TestDaemon.exec("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"])
        #expect(http.status == 0 && http.stdout.contains("# TYPE cordon_spawn_seconds histogram"), "\(http.stderr)")
        let cli = TestDaemon.exec(TestDaemon.cordon, ["metrics", "--socket", d.socket])
        #expect(cli.status == 0 && cli.stdout.contains("cordon_tasks_total"))
    }

    /// A task whose submitter waits for its end costs one durable audit commit (its end, which
    /// takes the submission along); one answered at once costs two (its submission is on disk
    /// before its id is given out). A long task's submission is synced within 50 ms anyway.
    @Test func aWaitedTaskIsSyncedOnceAndALongOneWithinFiftyMilliseconds() throws {
        let shared = "/tmp/cordon-rw-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let d = try TestDaemon(policies: ["rw": "[policy]\nname = \"rw\"\nextends = [\"default\"]\n[filesystem]\nread_write = [\"\(shared)\"]\n"])
        func metric(_ name: String) throws -> Int {
            let text = try #require(try d.call("system.metrics")["text"]?.stringValue)
            let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") }, "\(name) missing: \(text)")
            return try #require(Int(line.split(separator: " ").last ?? ""))
        }
        let durable = "cordon_audit_commits_total{durable=\"true\"}"
        _ = try d.submit(["true"], wait: true)  // whatever the start commits is behind us
        var before = try metric(durable)
        let waited = try d.submit(["true"], wait: true)
        #expect(waited["exitCode"] == .int(0), "\(waited.text)")
        #expect(try metric(durable) - before == 1, "a waited task's submission was synced on its own")

        before = try metric(durable)
        let id = try #require(try d.submit(["true"])["id"]?.intValue)
        _ = try d.call("task.wait", .object([("id", .int(id))]))
        #expect(try metric(durable) - before == 2, "a task answered at once must have its submission on disk first")

        // One that can write the host's files has its submission on disk before it starts, waited or not.
        before = try metric(durable)
        let writer = try d.submit(["sh", "-c", "echo x > \(shared)/f"], policy: "rw", wait: true)
        #expect(writer["exitCode"] == .int(0), "\(writer.text)")
        #expect(try metric(durable) - before == 2, "a task with lasting effects started before its submission was on disk")

        // Running for a second: its submission and start are synced by the writer meanwhile.
        let syncs = try metric("cordon_audit_log_syncs_total")
        let conn = try d.client()
        let started = MonotonicClock.now
        let slow = try conn.call("task.submit", .object([("argv", .array(["sleep", "1"].map(JSON.string))), ("wait", .bool(true))]))
        #expect(slow["exitCode"] == .int(0), "\(slow.text)")
        #expect(MonotonicClock.now - started >= 1)
        #expect(try metric("cordon_audit_log_syncs_total") >= syncs + 1, "a second-long task's submission was never synced")
        #expect(try metric("cordon_audit_sync_failures_total") == 0)
    }

    @Test func theCLIDrivesTheDaemon() throws {
        let d = try TestDaemon()
        let s = ["--socket", d.socket]
        let run = TestDaemon.exec(TestDaemon.cordon, ["submit", "--wait"] + s + ["--", "sh", "-c", "echo out; echo err >&2; exit 4"])
        #expect(run.status == 4)
        #expect(run.stdout == "out\n")
        #expect(run.stderr == "err\n")
        let bg = TestDaemon.exec(TestDaemon.cordon, ["submit"] + s + ["--label", "bg", "--", "sleep", "4245"])
        let id = try #require(Int64(bg.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(bg.stderr)")
        let tasks = TestDaemon.exec(TestDaemon.cordon, ["tasks"] + s)
        #expect(tasks.stdout.contains("sleep 4245"), "\(tasks.stdout)")
        let cancel = TestDaemon.exec(TestDaemon.cordon, ["cancel"] + s + ["\(id)"])
        #expect(cancel.status == 0 && cancel.stdout.contains("cancelled"), "\(cancel.stderr)")
        let logs = TestDaemon.exec(TestDaemon.cordon, ["logs"] + s + ["1"])
        #expect(logs.stdout == "out\n" && logs.stderr == "err\n")
        let denied = TestDaemon.exec(TestDaemon.cordon, ["submit", "--wait", "--json"] + s + ["--", "unshare", "--user", "true"])
        #expect(denied.status != 0)
        let audit = TestDaemon.exec(TestDaemon.cordon, ["audit", "--denials", "--json"] + s)
        let events = (try JSON.parse(audit.stdout))["events"]?.arrayValue ?? []
        #expect(events.contains { $0["kind"] == .string("denied") && $0["detail"]?["syscall"] == .string("unshare") }, "\(audit.stdout)")
        let status = TestDaemon.exec(TestDaemon.cordon, ["status"] + s)
        #expect(status.status == 0 && status.stdout.contains("health: ok"), "\(status.stdout)\(status.stderr)")
        let bad = TestDaemon.exec(TestDaemon.cordon, ["status", "--socket", "\(d.dir)/nope.sock"])
        #expect(bad.status == 1 && bad.stderr.contains("is cordond running?"), "\(bad.stderr)")
    }

    /// Requests sent together are answered one by one in order, and a client that shut down its
    /// sending side (a half-close) still gets every answer before the daemon closes.
    @Test func pipelinedRequestsAndAHalfCloseAreAnswered() throws {
        let d = try TestDaemon()
        let fd = try d.connect()
        defer { close(fd) }
        let lines = (1...3).map { #"{"jsonrpc":"2.0","id":\#($0),"method":"system.version"}"# }.joined(separator: "\n") + "\n"
        let bytes = Array(lines.utf8)
        #expect(send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count)
        shutdown(fd, Int32(SHUT_WR))
        for id in 1...3 {
            let answer = try d.readResponse(fd)
            #expect(answer["id"] == .int(Int64(id)), "\(answer.text)")
            #expect(answer["result"]?["pid"] != nil)
        }
        var byte: UInt8 = 0
        #expect(read(fd, &byte, 1) == 0)  // then closed
    }

    /// A task.wait holds no thread (it is parked until the task ends), and a client that goes
    /// away takes its parked wait with it: connect, wait, disconnect in a loop leaves nothing.
    @Test func aWaitWhoseClientLeftIsForgotten() throws {
        let d = try TestDaemon()
        let task = try d.submit(["sleep", "60"])
        let id = try #require(task["id"]?.intValue)
        // nil while the daemon is busy (the closed connections not yet taken off its count).
        func parked() -> Int? {
            guard let text = (try? d.call("system.metrics"))?["text"]?.stringValue else { return nil }
            let line = text.split(separator: "\n").first { $0.hasPrefix("cordon_parked_requests ") }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") }
        }
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"task.wait","params":{"id":\#(id)}}"#.utf8) + [0x0A]
        // A few held: they are counted while their clients stay.
        var held: [Int32] = []
        for _ in 0..<5 {
            let fd = try d.connect()
            #expect(send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
            held.append(fd)
        }
        #expect(d.eventually(5) { parked() == 5 })
        // In rounds below the connection cap (a loaded machine may take a while to see closes).
        for _ in 0..<6 {
            for _ in 0..<50 {
                let fd = try d.connect()
                #expect(send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
                close(fd)
            }
            #expect(d.eventually(10) { parked() == 5 }, "\(String(describing: parked())) waits parked, 5 expected")
        }
        for fd in held { close(fd) }
        #expect(d.eventually(10) { parked() == 0 }, "\(String(describing: parked())) waits still parked")
        // The task is still running; a wait on an open connection is still answered when it ends.
        let waiter = try d.connect()
        defer { close(waiter) }
        #expect(send(waiter, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
        _ = try d.call("task.cancel", .object([("id", .int(id))]))
        let answer = try d.readResponse(waiter)
        #expect(answer["result"]?["state"] == .string("cancelled"), "\(answer.text)")
        #expect(parked() == 0)
    }

    /// A task.wait that timed out leaves no waiter behind: one connection sending many short
    /// waits on a task that runs on must not grow the table of waiters until the task ends.
    @Test func aWaitThatTimedOutLeavesNoWaiter() throws {
        let d = try TestDaemon()
        let task = try d.submit(["sleep", "60"])
        let id = try #require(task["id"]?.intValue)
        let fd = try d.connect()
        defer { close(fd) }
        _ = cl_socket_timeouts(fd, 20_000, 20_000)
        for n in 1...20 {
            let request = Array(#"{"jsonrpc":"2.0","id":\#(n),"method":"task.wait","params":{"id":\#(id),"timeout":0.01}}"#.utf8) + [0x0A]
            #expect(send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
            let answer = try d.readResponse(fd)
            #expect(answer["id"] == .int(Int64(n)) && answer["error"]?["code"] == .int(RPCCode.waitTimedOut), "\(answer.text)")
        }
        #expect(d.eventually(5) { d.parkedRequests() == 0 }, "\(String(describing: d.parkedRequests())) waits still parked")
        _ = try d.call("task.cancel", .object([("id", .int(id))]))
    }

    /// A task.logs follower whose client went away stops while its task runs on: the
    /// connection's slot is given back at once, so a follower outliving it would let a client
    /// start threads without bound (connect, follow, close, again).
    @Test func aLogsFollowerWhoseClientLeftStops() throws {
        let d = try TestDaemon()
        let task = try d.submit(["sleep", "60"])
        let id = try #require(task["id"]?.intValue)
        let pid = try #require(d.processID)
        func followers() -> Int {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            return tasks.filter { (try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8)) == "cordond-logs\n" }.count
        }
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"task.logs","params":{"id":\#(id),"follow":true}}"#.utf8) + [0x0A]
        var held: [Int32] = []
        for _ in 0..<5 {
            let fd = try d.connect()
            #expect(send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
            held.append(fd)
        }
        #expect(d.eventually(10) { followers() == 5 }, "\(followers()) followers, 5 expected")
        for fd in held { close(fd) }
        #expect(d.eventually(10) { followers() == 0 }, "\(followers()) followers left after their clients")
        _ = try d.call("task.cancel", .object([("id", .int(id))]))
    }

    /// A client that pipelines requests and never reads the answers holds no worker: the
    /// daemon stops taking its requests while its answers wait to be sent, so the only worker
    /// (server.workers = 1) still answers others at once rather than after the 60 s send limit.
    @Test func aClientThatDoesNotReadHoldsNoWorker() throws {
        let d = try TestDaemon(config: "[server]\nworkers = 1\n")
        let hog = try d.connect()
        defer { close(hog) }
        _ = fcntl(hog, F_SETFL, fcntl(hog, F_GETFL) | O_NONBLOCK)
        // system.metrics answers are a few KiB: 3000 of them are far more than the socket
        // buffer and the daemon's output bound together.
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"system.metrics"}"#.utf8) + [0x0A]
        var sentRequests = 0
        let until = MonotonicClock.now + 5
        while sentRequests < 3000 && MonotonicClock.now < until {
            let n = send(hog, request, request.count, Int32(MSG_NOSIGNAL))
            if n == request.count { sentRequests += 1; continue }
            #expect(n < 0 && errno == EAGAIN, "a partial send (\(n)) or an error (\(errno))")
            if n > 0 { break }
            usleep(10_000)
        }
        let other = try d.connect()
        defer { close(other) }
        _ = cl_socket_timeouts(other, 15_000, 15_000)
        let version = Array(#"{"jsonrpc":"2.0","id":2,"method":"system.version"}"#.utf8) + [0x0A]
        #expect(send(other, version, version.count, Int32(MSG_NOSIGNAL)) == version.count)
        let answer = try d.readResponse(other)
        #expect(answer["result"]?["pid"] != nil, "\(answer.text)")
    }
}

extension TestDaemon {
    /// cordond's cordon_parked_requests gauge (nil when the call fails).
    func parkedRequests() -> Int? {
        guard let text = (try? call("system.metrics"))?["text"]?.stringValue else { return nil }
        let line = text.split(separator: "\n").first { $0.hasPrefix("cordon_parked_requests ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}
