@testable import CordonDaemon
import CordonJSON
@testable import CordonSandbox
import CordonRPC
import Foundation
import Testing

/// Warm sandboxes through a real cordond: a policy's `daemon.warm` sandboxes are built before
/// any task asks, each serves exactly one task, its task is as confined as a cold one, its
/// limits and cancel hold, and the record says it was warm.
@Suite(.serialized) struct WarmPoolTests {
    typealias W = WorkspaceTests
    static let users = "[access]\nusers = [\"\(W.alice)\", \"\(W.bob)\"]\n"
    static let policies = [
        "hot": "[policy]\nname = \"hot\"\nextends = [\"default\"]\n[daemon]\nwarm = 2\n" + users,
        "cold": "[policy]\nname = \"cold\"\nextends = [\"default\"]\n" + users,
        "hotlimits": "[policy]\nname = \"hotlimits\"\nextends = [\"default\"]\n[daemon]\nwarm = 1\n[limits]\nwall_time = \"1s\"\noutput = \"1000\"\n" + users,
        "hotcpu": "[policy]\nname = \"hotcpu\"\nextends = [\"default\"]\n[daemon]\nwarm = 1\n[limits]\ncpu_time = \"1s\"\n" + users,
    ]

    static func daemon() throws -> TestDaemon {
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(W.socketGroup)\"\n", policies: policies)
        chmod(d.dir, 0o755)
        return d
    }

    static func submit(_ script: String, policy: String, id: Int = 1, extra: [(String, JSON)] = []) -> JSON {
        CowWorkspaceTests.request("task.submit", [("argv", .array([.string("/bin/sh"), .string("-c"), .string(script)])), ("policy", .string(policy)),
                                                  ("wait", .bool(true))] + extra, id: id)
    }

    static func logs(_ d: TestDaemon, _ id: Int64) -> String {
        (try? String(contentsOfFile: "\(d.stateDir)/tasks/\(id)/stdout", encoding: .utf8)) ?? ""
    }

    /// Waits (bounded) until the pool has built its sandboxes: a task is then served warm.
    static func warmedUp(_ d: TestDaemon, policy: String) -> Bool {
        for _ in 0..<100 {
            let cgroups = try? d.call("system.metrics")["text"]?.stringValue
            if cgroups?.contains("cordon_warm_parked{policy=\"\(policy)\"} ") == true,
               cgroups?.contains("cordon_warm_parked{policy=\"\(policy)\"} 0") == false { return true }
            usleep(100_000)
        }
        return false
    }

    /// A task of a warm policy runs in a sandbox built before it came, alone: ten in a row, each
    /// warm, none seeing what the one before left in its /tmp; its status, output and stdin are
    /// a cold task's.
    @Test func eachWarmSandboxServesOneTask() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hot"))
        for i in 1...10 {
            // The pool refills in the background (a task finding it empty goes cold).
            #expect(Self.warmedUp(d, policy: "hot"))
            let answer = W.asCaller(W.alice, d, [Self.submit("test -e /tmp/mark && echo reused; touch /tmp/mark; echo run \(i); exit \(i)", policy: "hot")]).first?["result"]
            let id = try #require(answer?["id"]?.intValue, "\(String(describing: answer))")
            #expect(answer?["exitCode"] == .int(Int64(i)) && answer?["result"]?["exitStatus"] == .int(Int64(i)), "\(String(describing: answer?.text))")
            #expect(Self.logs(d, id) == "run \(i)\n", "never reused: \(Self.logs(d, id))")
            #expect(answer?["result"]?["warm"] == .bool(true), "\(String(describing: answer?.text))")
        }
        let stdin = W.asCaller(W.alice, d, [CowWorkspaceTests.request("task.submit", [("argv", .array([.string("cat")])), ("policy", .string("hot")),
                                                                                     ("stdin", .string("in\n")), ("wait", .bool(true))])]).first?["result"]
        #expect(Self.logs(d, stdin?["id"]?.intValue ?? 0) == "in\n", "\(String(describing: stdin?.text))")
        let missing = W.asCaller(W.alice, d, [CowWorkspaceTests.request("task.submit", [("argv", .array([.string("no-such-program")])), ("policy", .string("hot")),
                                                                                      ("wait", .bool(true))])]).first?["result"]
        #expect(missing?["result"]?["exitStatus"] == .int(127) && missing?["reason"] == .string("setup-failed"), "\(String(describing: missing?.text))")
    }

    /// Limits that differ in any one field key different plans and pools; equal ones the same.
    @Test func limitKeysTellEveryFieldApart() {
        let none = LimitRequest()
        let each = [LimitRequest(wallTimeSeconds: 1), LimitRequest(cpuTimeSeconds: 1), LimitRequest(memoryBytes: 1), LimitRequest(pids: 1),
                    LimitRequest(outputBytes: 1), LimitRequest(wallTimeSeconds: 1.5), LimitRequest(wallTimeSeconds: 1, cpuTimeSeconds: 1)]
        let keys = [none.key] + each.map(\.key)
        #expect(Set(keys).count == keys.count, "\(keys)")
        #expect(LimitRequest(memoryBytes: 7, pids: 3).key == LimitRequest(memoryBytes: 7, pids: 3).key)
        // A field added to LimitRequest must be added to its key (this count with it).
        #expect(Mirror(reflecting: none).children.count == 5)
    }

    /// A warm task whose command ends before it prints anything has its start recorded with its
    /// end (one commit): its record and events are a started task's, in order, ten times over.
    @Test func aSilentWarmTaskIsRecordedStarted() throws {
        let d = try Self.daemon()
        for i in 1...10 {
            #expect(Self.warmedUp(d, policy: "hot"))
            let answer = W.asCaller(W.alice, d, [CowWorkspaceTests.request("task.submit", [("argv", .array([.string("/bin/true")])), ("policy", .string("hot")),
                                                                                         ("wait", .bool(true))], id: i)]).first?["result"]
            let id = try #require(answer?["id"]?.intValue, "\(String(describing: answer))")
            #expect(answer?["result"]?["warm"] == .bool(true) && answer?["exitCode"] == .int(0), "\(String(describing: answer?.text))")
            #expect(answer?["startedAt"]?.stringValue != nil && answer?["state"] == .string("finished"), "\(String(describing: answer?.text))")
            let kinds = (try d.call("audit.query", .object([("task", .int(id))]))["events"]?.arrayValue ?? []).compactMap { $0["kind"]?.stringValue }
            #expect(kinds == ["submitted", "started", "finished"], "\(kinds)")
        }
    }

    /// A warm task has what a cold task of the same policy has: seccomp, capabilities,
    /// no_new_privs, ids; and a task with anything of its caller's in it (variables, a
    /// workspace, its own limits on another key) is served cold or from its own pool.
    @Test func aWarmTaskIsAsConfinedAsAColdOne() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hot"))
        let probe = "for k in Seccomp Seccomp_filters NoNewPrivs CapInh CapPrm CapEff CapBnd CapAmb Uid Gid; do grep \"^$k:\" /proc/self/status; done; cat /proc/self/attr/current 2>/dev/null; ls / | tr '\\n' ' '"
        let answers = W.asCaller(W.alice, d, [Self.submit(probe, policy: "hot", id: 1), Self.submit(probe, policy: "cold", id: 2)])
        let hot = answers.first?["result"], cold = answers.last?["result"]
        #expect(hot?["result"]?["warm"] == .bool(true) && cold?["result"]?["warm"] == nil, "\(answers)")
        let hotOut = Self.logs(d, hot?["id"]?.intValue ?? 0), coldOut = Self.logs(d, cold?["id"]?.intValue ?? 0)
        #expect(!hotOut.isEmpty && hotOut == coldOut, "warm:\n\(hotOut)\ncold:\n\(coldOut)")
        #expect(hot?["result"]?["layers"]?["landlockABI"] == cold?["result"]?["layers"]?["landlockABI"])
        #expect(hot?["result"]?["layers"]?["seccompInstructions"] == cold?["result"]?["layers"]?["seccompInstructions"])
    }

    /// A warm task is answered once its command has ended, without waiting for its sandbox's
    /// teardown, and its record still holds everything: each refused call as often as a cold
    /// task of the same command is refused it, its cgroup's cpu and memory, its layers. A
    /// command that leaves a process behind is answered once that process is gone with the
    /// sandbox (not after the 30 s it would run).
    @Test func aWarmTaskRecordHoldsWhatItWasRefused() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hot"))
        let refused = "for i in 1 2 3; do unshare --user true 2>/dev/null; done; echo done"
        let answers = W.asCaller(W.alice, d, [Self.submit(refused, policy: "hot", id: 1), Self.submit(refused, policy: "cold", id: 2)])
        let hot = answers.first?["result"]?["result"], cold = answers.last?["result"]?["result"]
        #expect(hot?["warm"] == .bool(true) && cold?["warm"] == nil, "\(answers)")
        func calls(_ r: JSON?) -> [String] {
            (r?["denied"]?.arrayValue ?? []).map { "\($0["syscall"]?.stringValue ?? "?") x\($0["count"]?.intValue ?? 0)" }
        }
        #expect(!calls(hot).isEmpty && calls(hot) == calls(cold), "warm \(calls(hot)), cold \(calls(cold))")
        #expect(calls(hot).contains { $0.hasPrefix("unshare x") }, "\(calls(hot))")
        #expect((hot?["cpuUserSeconds"]?.doubleValue ?? -1) >= 0 && (hot?["peakMemoryBytes"]?.intValue ?? 0) > 0, "\(String(describing: hot?.text))")
        #expect(hot?["layers"]?["hostUIDRange"] != nil, "\(String(describing: hot?.text))")

        #expect(Self.warmedUp(d, policy: "hot"))
        let started = Date()
        let left = W.asCaller(W.alice, d, [Self.submit("sleep 30 & echo started", policy: "hot", id: 3)]).first?["result"]
        #expect(left?["exitCode"] == .int(0) && left?["result"]?["warm"] == .bool(true), "\(String(describing: left?.text))")
        #expect(Date().timeIntervalSince(started) < 10, "the task waited for what it left behind")
    }

    /// What the check after a warm task's answer would record: the calls, and the counts, the
    /// sandbox's final record has beyond the answer's.
    @Test func refusalsBeyondTheAnswerAreCountedBySyscall() {
        func call(_ name: String, _ number: Int32, _ count: Int) -> DeniedOperation {
            DeniedOperation(syscall: name, number: number, count: count, firstArgs: [], errno: 1)
        }
        let early = [call("unshare", 272, 3)]
        #expect(TaskManager.refusalsBeyond(early, [call("unshare", 272, 3)]).isEmpty)
        let beyond = TaskManager.refusalsBeyond(early, [call("unshare", 272, 5), call("ptrace", 101, 1)])
        #expect(beyond.map(\.syscall) == ["unshare", "ptrace"] && beyond.map(\.count) == [2, 1])
    }

    /// What a pool was not built for runs cold, and runs: a task with limits of its own (no pool
    /// per value), one whose command is larger than the server's request.
    @Test func whatThePoolWasNotBuiltForRunsCold() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hot"))
        let big = [String](repeating: String(repeating: "a", count: 50_000), count: 4)  // 200 KB (one argument may be 128 KiB)
        let answers = W.asCaller(W.alice, d, [
            Self.submit("echo limited", policy: "hot", id: 1, extra: [("limits", .object([("pids", .int(50))]))]),
            Self.submit("", policy: "hot", id: 2).replacingArgv(["/bin/sh", "-c", "echo $#", "x"] + big),
        ])
        #expect(answers.count == 2, "\(answers)")
        for a in answers {
            #expect(a["result"]?["exitCode"] == .int(0) && a["result"]?["result"]?["warm"] == nil, "\(a.text.prefix(400))")
        }
        #expect(Self.logs(d, answers[1]["result"]?["id"]?.intValue ?? 0) == "4\n")
        let metrics = try d.call("system.metrics")["text"]?.stringValue ?? ""
        #expect(metrics.components(separatedBy: "\n").filter { $0.hasPrefix("cordon_warm_parked{") }.count == 3, "one pool per policy (hot, hotlimits, hotcpu), none for limits: \(metrics)")
    }

    /// The task's limits hold in a warm sandbox: its policy's wall time, output cap; a cancel
    /// ends it at once.
    @Test func limitsAndCancelHoldInAWarmSandbox() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hotlimits"))
        let slow = W.asCaller(W.alice, d, [Self.submit("sleep 10", policy: "hotlimits")]).first?["result"]
        #expect(slow?["reason"] == .string("timeout") && slow?["result"]?["warm"] == .bool(true), "\(String(describing: slow?.text))")
        #expect(Self.warmedUp(d, policy: "hotlimits"))
        let loud = W.asCaller(W.alice, d, [Self.submit("head -c 5000 /dev/zero", policy: "hotlimits")]).first?["result"]
        #expect(loud?["reason"] == .string("output-limit") && loud?["stdoutBytes"] == .int(1000), "\(String(describing: loud?.text))")
        let logged = (try? Data(contentsOf: URL(fileURLWithPath: "\(d.stateDir)/tasks/\(loud?["id"]?.intValue ?? 0)/stdout")))?.count
        #expect(logged == 1000, "the log holds exactly the cap")

        #expect(Self.warmedUp(d, policy: "hot"))
        let queued = W.asCaller(W.alice, d, [CowWorkspaceTests.request("task.submit", [("argv", .array([.string("sleep"), .string("30")])), ("policy", .string("hot"))])])
        let id = try #require(queued.first?["result"]?["id"]?.intValue, "\(queued)")
        usleep(300_000)
        let started = Date()
        let cancelled = W.asCaller(W.alice, d, [CowWorkspaceTests.request("task.cancel", [("id", .int(id))])]).first?["result"]
        #expect(cancelled?["cancelled"] == .bool(true) && cancelled?["state"] == .string("cancelled"), "\(String(describing: cancelled?.text))")
        #expect(Date().timeIntervalSince(started) < 5)
        let record = try d.call("task.status", .object([("id", .int(id))]))
        #expect(record["result"]?["warm"] == .bool(true), "\(record.text)")
    }

    /// A warm task whose output cannot be kept (a file where its directory goes) fails and
    /// says why, as a cold task does: not "cancelled".
    @Test func aWarmTaskWhoseOutputCannotBeKeptSaysSo() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hot"))
        let first = W.asCaller(W.alice, d, [Self.submit("true", policy: "hot")]).first?["result"]
        let next = try #require(first?["id"]?.intValue) + 1
        try "in the way".write(toFile: "\(d.stateDir)/tasks/\(next)", atomically: false, encoding: .utf8)
        #expect(Self.warmedUp(d, policy: "hot"))
        let blocked = W.asCaller(W.alice, d, [Self.submit("echo hello; sleep 30", policy: "hot", id: 2)]).first?["result"]
        #expect(blocked?["id"] == .int(next) && blocked?["result"]?["warm"] == .bool(true), "\(String(describing: blocked?.text))")
        #expect(blocked?["reason"] == .string("setup-failed") && blocked?["result"]?["setupFailure"]?["step"] == .string("output"), "\(String(describing: blocked?.text))")
        #expect(blocked?["result"]?["exitStatus"] == .int(125), "\(String(describing: blocked?.text))")
    }

    /// RLIMIT_CPU (the policy's cpu_time) stopping a command reads as cpu-limit, as it does for
    /// a cold task: served warm, and as a session's command.
    @Test func aCPULimitReadsAsOneWarmAndInASession() throws {
        let d = try Self.daemon()
        #expect(Self.warmedUp(d, policy: "hotcpu"))
        let warm = W.asCaller(W.alice, d, [Self.submit("while :; do :; done", policy: "hotcpu")]).first?["result"]
        #expect(warm?["reason"] == .string("cpu-limit") && warm?["result"]?["warm"] == .bool(true), "\(String(describing: warm?.text))")
        let cold = W.asCaller(W.alice, d, [Self.submit("while :; do :; done", policy: "hotcpu", extra: [("env", .object([("TERM", .string("x"))]))])]).first?["result"]
        #expect(cold?["reason"] == .string("cpu-limit") && cold?["result"]?["warm"] == nil, "\(String(describing: cold?.text))")
        let created = W.asCaller(W.alice, d, [CowWorkspaceTests.request("session.create", [("policy", .string("hotcpu"))])]).first?["result"]
        let session = try #require(created?["id"]?.intValue, "\(String(describing: created?.text))")
        let spun = W.asCaller(W.alice, d, [CowWorkspaceTests.request("session.exec", [("id", .int(session)),
                                                                                     ("argv", .array([.string("/bin/sh"), .string("-c"), .string("while :; do :; done")]))])]).first?["result"]
        #expect(spun?["reason"] == .string("cpu-limit"), "\(String(describing: spun?.text)) \(d.log().suffix(1500))")
        _ = W.asCaller(W.alice, d, [CowWorkspaceTests.request("session.close", [("id", .int(session))])])
    }
}

extension JSON {
    /// A task.submit request with `argv` in place of its own.
    func replacingArgv(_ argv: [String]) -> JSON {
        guard case .object(var members) = self, let i = members.firstIndex(where: { $0.0 == "params" }), case .object(var params) = members[i].1,
              let a = params.firstIndex(where: { $0.0 == "argv" }) else { return self }
        params[a].1 = .array(argv.map(JSON.string))
        members[i].1 = .object(params)
        return .object(members)
    }
}
