import CordonJSON
import CordonRPC
import Foundation
import Synchronization
import Testing

/// Sessions through a real cordond, used by the unprivileged users of `WorkspaceTests`: a
/// persistent sandbox whose commands keep state, are exactly as confined as the session, share
/// its limits, are audited one by one, and end with it (closed, idle, or at its TTL).
@Suite(.serialized) struct SessionTests {
    typealias W = WorkspaceTests
    typealias Cow = CowWorkspaceTests
    static let alice = W.alice, bob = W.bob

    static func request(_ method: String, _ params: [(String, JSON)], id: Int = 1) -> JSON { Cow.request(method, params, id: id) }

    static func exec(_ session: Int64, _ script: String, id: Int = 1, extra: [(String, JSON)] = []) -> JSON {
        request("session.exec", [("id", .int(session)), ("argv", .array([.string("/bin/sh"), .string("-c"), .string(script)]))] + extra, id: id)
    }

    static func decoded(_ answer: JSON?, _ stream: String) -> String {
        String(decoding: Data(base64Encoded: answer?[stream]?.stringValue ?? "") ?? Data(), as: UTF8.self)
    }

    /// A session on alice's directory through a copy-on-write layer: 100 commands, each adding a
    /// line to a file of the workspace and one in the session's own /tmp, each seeing what the
    /// ones before it left; the host directory stays as it was until alice applies.
    @Test func aSessionKeepsStateAcrossAHundredCommands() throws {
        let layout = try W.Layout()
        try Cow.write("start\n", "\(layout.alices)/log.txt")
        let before = Cow.snapshot(layout.alices)
        let d = try W.daemon(layout)
        let created = W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws")), ("label", .string("agent")),
                                                                                ("workspace", .object([("path", .string(layout.alices)), ("cow", .bool(true))]))])])
        let session = try #require(created.first?["result"], "\(created)")
        let id = try #require(session["id"]?.intValue)
        #expect(session["state"] == .string("ready") && session["label"] == .string("agent"), "\(session.text)")

        let step = "echo $(( $(wc -l < /tmp/n 2>/dev/null || echo 0) + 1 )) >> /tmp/n && echo line >> log.txt && wc -l < log.txt && wc -l < /tmp/n"
        let answers = W.asCaller(Self.alice, d, (1...100).map { Self.exec(id, step, id: $0) })
        #expect(answers.count == 100, "\(answers.suffix(2))")
        for (i, answer) in answers.enumerated() {
            let r = answer["result"]
            #expect(r?["exitCode"] == .int(0) && r?["reason"] == .string("exited"), "\(answer.text)")
            #expect(Self.decoded(r, "stdout") == "\(i + 2)\n\(i + 1)\n", "command \(i + 1) sees what the ones before it left: \(answer.text)")
            #expect(r?["exec"] == .int(Int64(i + 1)))
        }
        #expect(Cow.snapshot(layout.alices) == before, "the host directory is untouched while the session runs")

        // Each command is in the session's record.
        let events = try d.call("audit.query", .object([("task", .int(id)), ("limit", .int(1000))]))["events"]?.arrayValue ?? []
        let execs = events.filter { $0["kind"] == .string("exec") }
        #expect(execs.count == 100, "\(events.count) events")
        #expect(execs.first?["detail"]?["argv"]?.arrayValue?.first == .string("/bin/sh"), "\(String(describing: execs.first?.text))")

        // The agent's loop: close, review, apply.
        let closed = Cow.cordon(d, in: layout.alices, "session close", "\(id)")
        #expect(closed.status == 0 && closed.stdout.contains("cordon diff \(id)"), "\(closed)")
        let diff = Cow.cordon(d, in: layout.alices, "diff", "--stat \(id)")
        #expect(diff.status == 0 && diff.stdout == "modified log.txt\n", "\(diff)")
        let applied = Cow.cordon(d, in: layout.alices, "apply", "\(id)")
        #expect(applied.status == 0, "\(applied)")
        let log = try String(contentsOfFile: "\(layout.alices)/log.txt", encoding: .utf8)
        #expect(log == "start\n" + String(repeating: "line\n", count: 100))
        #expect(W.owner("\(layout.alices)/log.txt").map { $0 == (Self.alice, Self.alice) } == true)

        let record = try d.call("task.status", .object([("id", .int(id))]))
        #expect(record["kind"] == .string("session") && record["state"] == .string("finished"), "\(record.text)")
        let closedEvent = try d.call("audit.query", .object([("task", .int(id)), ("kinds", .array([.string("session-closed")]))]))["events"]?.arrayValue?.first
        #expect(closedEvent?["detail"]?["reason"] == .string("closed") && closedEvent?["detail"]?["execs"] == .int(100), "\(String(describing: closedEvent?.text))")
    }

    /// What a command has is what the session's server has: the same seccomp filters, no
    /// capabilities (none in any set), no_new_privs, the same cgroup and user; it cannot read or
    /// trace the server (not dumpable) nor reach the host; the session's memory limit covers
    /// its commands together.
    @Test func aCommandHasNoMoreThanItsSession() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let created = W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws")), ("limits", .object([("memory", .int(96 << 20))]))])])
        let id = try #require(created.first?["result"]?["id"]?.intValue, "\(created)")
        let probe = """
            server=$(grep -l '^cordon-session$' /proc/[0-9]*/comm | head -1 | cut -d/ -f3)
            for k in Seccomp Seccomp_filters NoNewPrivs CapInh CapPrm CapEff CapBnd CapAmb Uid Gid; do
              a=$(grep "^$k:" /proc/self/status); b=$(grep "^$k:" /proc/$server/status)
              [ "$a" = "$b" ] && echo "same $a" || echo "DIFFERENT $a / $b"
            done
            [ "$(cat /proc/self/cgroup)" = "$(cat /proc/$server/cgroup)" ] && echo same-cgroup
            cat /proc/$server/environ >/dev/null 2>&1 && echo READ-ENVIRON || echo no-environ
            ls /proc/$server/fd >/dev/null 2>&1 && echo READ-FDS || echo no-fds
            python3 -c "import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); r=l.ptrace(16,$server,0,0); print('ptrace', r, ctypes.get_errno())"
            unshare -U true 2>/dev/null && echo UNSHARED || echo no-unshare
            touch /usr/x 2>/dev/null && echo WROTE-USR || echo no-usr
            echo server=$server
            """
        let answer = W.asCaller(Self.alice, d, [Self.exec(id, probe)]).first?["result"]
        let out = Self.decoded(answer, "stdout")
        #expect(answer?["exitCode"] == .int(0), "\(String(describing: answer?.text))")
        #expect(out.components(separatedBy: "\n").filter { $0.hasPrefix("same ") }.count == 10, "\(out)")
        #expect(!out.contains("DIFFERENT") && out.contains("same Seccomp:\t2") && out.contains("same NoNewPrivs:\t1") && out.contains("same CapEff:\t0000000000000000"), "\(out)")
        #expect(out.contains("same-cgroup\nno-environ\nno-fds\nptrace -1 1\nno-unshare\nno-usr\n"), "\(out)")

        // 96 MiB for the session: with one command holding 56 MiB, another taking 56 MiB more
        // cannot have it (the kernel kills one of them); each alone fits.
        // (Each python3 is the command itself, so the one the kernel kills is its first process.)
        let python: @Sendable (String) -> JSON = { code in
            Self.request("session.exec", [("id", .int(id)), ("argv", .array(["python3", "-c", code].map(JSON.string)))])
        }
        let hold = "import time; b=b'x'*(56<<20); open('/tmp/held','w').close(); time.sleep(4); print('held')"
        let holderAnswer = Mutex<JSON?>(nil)
        let holder = Thread { holderAnswer.withLock { $0 = W.asCaller(Self.alice, d, [python(hold)]).first?["result"] } }
        holder.start()
        var held = false
        for _ in 0..<100 where !held {
            held = Self.decoded(W.asCaller(Self.alice, d, [Self.exec(id, "test -e /tmp/held && echo yes")]).first?["result"], "stdout") == "yes\n"
            if !held { usleep(50_000) }
        }
        #expect(held)
        let second = W.asCaller(Self.alice, d, [python("b=b'x'*(56<<20); print('fits')")]).first?["result"]
        var first: JSON?
        for _ in 0..<200 where first == nil {
            usleep(50_000)
            first = holderAnswer.withLock { $0 }
        }
        let bothRan = Self.decoded(first, "stdout") == "held\n" && Self.decoded(second, "stdout") == "fits\n"
        // The one killed is recorded as over the session's memory, not as a bare SIGKILL.
        let killed = [first, second].contains { $0?["signal"] == .int(9) && $0?["reason"] == .string("memory-limit") }
        #expect(!bothRan && killed,
                "the session's memory covers both: \(String(describing: first?.text)) / \(String(describing: second?.text))")
        let alone = W.asCaller(Self.alice, d, [python("b=b'x'*(56<<20); print('fits')")]).first?["result"]
        #expect(Self.decoded(alone, "stdout") == "fits\n", "alone it fits, and the session outlived the kill: \(String(describing: alone?.text))")
        _ = W.asCaller(Self.alice, d, [Self.request("session.close", [("id", .int(id))])])
    }

    /// Idle: a session no command has used for its idle time ends, recorded as such, and its
    /// cgroup is gone. TTL: a session ends at its TTL whatever runs in it; the running command
    /// ends with it.
    @Test func theClocksEndSessions() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let idle = W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws")), ("idle", .int(1))])])
        let idleID = try #require(idle.first?["result"]?["id"]?.intValue, "\(idle)")
        let ttl = W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws")), ("ttl", .int(3))])])
        let ttlID = try #require(ttl.first?["result"]?["id"]?.intValue, "\(ttl)")
        let started = Date()
        let long = W.asCaller(Self.alice, d, [Self.exec(ttlID, "echo before; sleep 30")]).first?["result"]
        #expect(Date().timeIntervalSince(started) < 15, "the TTL ended the command")
        #expect(long?["reason"] == .string("session-ended") && Self.decoded(long, "stdout") == "before\n", "\(String(describing: long?.text))")

        for (id, reason) in [(idleID, "idle"), (ttlID, "ttl")] {
            var record = try d.call("task.status", .object([("id", .int(id))]))
            for _ in 0..<100 where record["state"] == .string("running") {
                usleep(100_000)
                record = try d.call("task.status", .object([("id", .int(id))]))
            }
            #expect(record["state"] == .string("finished"), "\(record.text)")
            let event = try d.call("audit.query", .object([("task", .int(id)), ("kinds", .array([.string("session-closed")]))]))["events"]?.arrayValue?.first
            #expect(event?["detail"]?["reason"] == .string(reason), "\(String(describing: event?.text))")
            let full = try d.call("task.status", .object([("id", .int(id))]))
            for dir in (full["result"]?["layers"]?["cgroup"]?.stringValue ?? "").split(separator: " ").last?.split(separator: ",") ?? [] {
                #expect(!FileManager.default.fileExists(atPath: String(dir)), "\(dir) is gone")
            }
        }
        let gone = W.asCaller(Self.alice, d, [Self.exec(idleID, "true")]).first
        #expect(gone?["error"]?["code"] == .int(RPCCode.notFound) && gone?["error"]?["message"]?.stringValue?.contains("has ended") == true, "\(String(describing: gone?.text))")
        #expect(try d.call("session.list", .object([("all", .bool(true))])).arrayValue?.isEmpty == true)
    }

    /// Another user's session is not there for bob: not to run in, close or list.
    @Test func anotherUsersSessionIsNotThere() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let created = W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws"))])])
        let id = try #require(created.first?["result"]?["id"]?.intValue, "\(created)")
        let bobs = W.asCaller(Self.bob, d, [Self.exec(id, "echo in"), Self.request("session.close", [("id", .int(id))], id: 2),
                                            Self.request("session.list", [], id: 3), Self.request("session.list", [("all", .bool(true))], id: 4)])
        #expect(bobs.count == 4, "\(bobs)")
        #expect(bobs[0]["error"]?["code"] == .int(RPCCode.notFound) && bobs[1]["error"]?["code"] == .int(RPCCode.notFound), "\(bobs)")
        #expect(bobs[2]["result"] == .array([]), "\(bobs[2].text)")
        #expect(bobs[3]["error"]?["code"] == .int(RPCCode.unauthorized), "\(bobs[3].text)")
        let mine = W.asCaller(Self.alice, d, [Self.request("session.list", [])]).first?["result"]?.arrayValue
        #expect(mine?.count == 1 && mine?.first?["execs"] == .int(0), "bob's attempts ran nothing: \(String(describing: mine))")
        let refusals = try d.call("audit.query", .object([("kinds", .array([.string("auth-refused")]))]))["events"]?.arrayValue ?? []
        #expect(refusals.contains { $0["uid"] == .int(Int64(Self.bob)) && $0["detail"]?["what"] == .string("session \(id)") }, "\(refusals)")
    }

    /// Bad requests change nothing and say what is wrong; a command's own timeout, output limit
    /// and a missing program end only that command.
    @Test func badRequestsAndCommandLimits() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let created = W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws")), ("limits", .object([("output", .int(100_000))]))])])
        let id = try #require(created.first?["result"]?["id"]?.intValue, "\(created)")
        let answers = W.asCaller(Self.alice, d, [
            Self.exec(id, "true", id: 1, extra: [("cwd", .string("relative"))]),
            Self.exec(id, "true", id: 2, extra: [("env", .object([("SECRET", .string("x"))]))]),
            Self.exec(id, "true", id: 3, extra: [("timeout", .int(86400))]),
            Self.request("session.exec", [("id", .int(id)), ("argv", .array([]))], id: 4),
            Self.request("session.create", [("policy", .string("ws")), ("ttl", .int(600))], id: 5),
            Self.request("session.create", [("policy", .string("nosuch"))], id: 6),
            Self.exec(id, "sleep 20", id: 7, extra: [("timeout", .double(0.5))]),
            Self.exec(id, "head -c 300000 /dev/zero", id: 8),
            Self.request("session.exec", [("id", .int(id)), ("argv", .array([.string("no-such-program")]))], id: 9),
            Self.exec(id, "cd /nowhere", id: 10, extra: [("cwd", .string("/nowhere"))]),
            Self.exec(id, "printf abc; printf err >&2", id: 11),
        ])
        #expect(answers.count == 11, "\(answers)")
        for i in 0..<6 { #expect(answers[i]["error"] != nil, "\(answers[i].text)") }
        #expect(answers[0]["error"]?["data"]?["field"] == .string("params.cwd"), "\(answers[0].text)")
        #expect(answers[1]["error"]?["message"]?.stringValue?.contains("does not pass SECRET") == true, "\(answers[1].text)")
        #expect(answers[2]["error"]?["data"]?["field"] == .string("params.timeout"), "\(answers[2].text)")
        #expect(answers[4]["error"]?["data"]?["field"] == .string("params.ttl")
                && answers[4]["error"]?["message"]?.stringValue?.contains("wall_time") == true, "a session lives at most its policy's wall_time (5m): \(answers[4].text)")
        #expect(answers[5]["error"]?["code"] == .int(RPCCode.policyError), "\(answers[5].text)")
        #expect(answers[6]["result"]?["reason"] == .string("timeout"), "\(answers[6].text)")
        #expect(answers[7]["result"]?["reason"] == .string("output-limit"), "\(answers[7].text)")
        #expect(answers[8]["result"]?["reason"] == .string("not-started") && answers[8]["result"]?["exitCode"] == .int(127)
                && answers[8]["result"]?["error"]?.stringValue?.hasPrefix("no-such-program: cannot execute") == true, "\(answers[8].text)")
        #expect(answers[9]["result"]?["reason"] == .string("not-started")
                && answers[9]["result"]?["error"]?.stringValue?.contains("working directory") == true, "\(answers[9].text)")
        #expect(Self.decoded(answers[10]["result"], "stdout") == "abc" && Self.decoded(answers[10]["result"], "stderr") == "err", "\(answers[10].text)")
        // Nothing but the one session was made, and it still works.
        #expect(try d.call("session.list", .object([("all", .bool(true))])).arrayValue?.count == 1)
        let after = W.asCaller(Self.alice, d, [Self.exec(id, "echo still")]).first?["result"]
        #expect(Self.decoded(after, "stdout") == "still\n", "\(String(describing: after?.text))")
    }

    /// A command's stdin: fed through a pipe as it reads (half a megabyte comes through whole), and
    /// a command that never reads it costs cordond nothing once it has ended.
    @Test func stdinIsFedAsTheCommandReads() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let id = try #require(W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws"))])]).first?["result"]?["id"]?.intValue)
        let big = Data((0..<(1 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let answers = W.asCaller(Self.alice, d, [
            Self.exec(id, "wc -c; cksum", id: 1, extra: [("stdinBase64", .string(big.base64EncodedString()))]),
            Self.exec(id, "head -c 3; echo", id: 2, extra: [("stdin", .string("abcdef"))]),
            Self.exec(id, "exit 0", id: 3, extra: [("stdinBase64", .string(big.base64EncodedString()))]),
        ])
        #expect(answers.count == 3, "\(answers)")
        // wc reads it all; cksum then reads nothing more (the pipe is at its end).
        #expect(Self.decoded(answers[0]["result"], "stdout") == "524288\n4294967295 0\n", "\(answers[0].text)")
        #expect(Self.decoded(answers[1]["result"], "stdout") == "abc\n", "\(answers[1].text)")
        #expect(answers[2]["result"]?["exitCode"] == .int(0), "a command that does not read its stdin ends: \(answers[2].text)")
    }

    /// A command is killed however it hides: one that joins another command's process group is
    /// still killed at its timeout. One that stops the session's server does not freeze the
    /// session (pid 1 resumes it); one that kills the server ends only its own session, and
    /// cordond says so.
    @Test func aCommandCannotOutliveItsKillNorWedgeTheSession() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let id = try #require(W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws"))])]).first?["result"]?["id"]?.intValue)
        let other = Thread { _ = W.asCaller(Self.alice, d, [Self.exec(id, "echo $$ > /tmp/other.pid; exec sleep 20")]) }
        other.start()
        var ready = false
        for _ in 0..<100 where !ready {
            ready = Self.decoded(W.asCaller(Self.alice, d, [Self.exec(id, "test -s /tmp/other.pid && echo yes")]).first?["result"], "stdout") == "yes\n"
            if !ready { usleep(50_000) }
        }
        let started = Date()
        let escaped = W.asCaller(Self.alice, d, [Self.request("session.exec", [
            ("id", .int(id)), ("timeout", .double(1)),
            ("argv", .array(["python3", "-c", "import os,time; os.setpgid(0, int(open('/tmp/other.pid').read())); print('left', flush=True); time.sleep(30)"].map(JSON.string))),
        ])]).first?["result"]
        #expect(escaped?["reason"] == .string("timeout") && Self.decoded(escaped, "stdout") == "left\n", "\(String(describing: escaped?.text))")
        #expect(Date().timeIntervalSince(started) < 10)

        let stopped = W.asCaller(Self.alice, d, [Self.exec(id, "kill -STOP $PPID; echo stopped", id: 1), Self.exec(id, "echo after", id: 2)])
        #expect(Self.decoded(stopped.first?["result"], "stdout") == "stopped\n" && Self.decoded(stopped.last?["result"], "stdout") == "after\n", "\(stopped)")
        #expect(Date().timeIntervalSince(started) < 20, "the session went on at once")

        let killed = W.asCaller(Self.alice, d, [Self.exec(id, "kill -KILL $PPID; sleep 5", id: 1), Self.exec(id, "echo after", id: 2)])
        #expect(killed.first?["result"]?["reason"] == .string("session-ended"), "\(killed)")
        #expect(killed.last?["error"]?["code"] == .int(RPCCode.notFound) || killed.last?["error"]?["code"] == .int(RPCCode.conflict), "\(killed)")
        #expect(Date().timeIntervalSince(started) < 30)
    }

    /// A user's records have their quota in sessions too: past `audit.max_size_per_user` a
    /// command is refused before it runs (its event would be another record), and a program
    /// name is clipped in the record.
    @Test func commandsCountAgainstTheRecordQuota() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout, config: "[audit]\nmax_size_per_user = \"64KiB\"\n")
        let id = try #require(W.asCaller(Self.alice, d, [Self.request("session.create", [("policy", .string("ws"))])]).first?["result"]?["id"]?.intValue)
        let long = String(repeating: "x", count: 20000)
        let answers = W.asCaller(Self.alice, d, (1...200).map { i in
            Self.request("session.exec", [("id", .int(id)), ("argv", .array([.string(long)]))], id: i)
        })
        #expect(answers.count == 200)
        let refused = answers.firstIndex { $0["error"]?["code"] == .int(RPCCode.quotaExceeded) }
        #expect(refused != nil && refused! < 150, "\(String(describing: answers.last?.text))")
        let first = answers.first?["result"]
        #expect(first?["reason"] == .string("not-started") && (first?["error"]?.stringValue?.utf8.count ?? .max) < 400, "\(String(describing: first?.text))")
    }

    /// The command line, as a user runs it ten times in a row: output streamed as it comes
    /// (no trailing newline added), the command's status as `cordon session exec`'s own.
    @Test func theCommandLineRunsCommandsInASession() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let created = Cow.cordon(d, in: layout.alices, "session create", "--policy ws --workspace . --cow --idle 5m")
        #expect(created.status == 0, "\(created)")
        let id = try #require(Int64(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(created)")
        for i in 1...10 {
            let r = Cow.cordon(d, in: layout.alices, "session exec", "\(id) -- sh -c 'printf \(i) >> counter; cat counter; printf e >&2; exit \(i)'")
            #expect(r.status == Int32(i) && r.stdout == (1...i).map(String.init).joined() && r.stderr == "e", "\(i): \(r)")
        }
        let missing = Cow.cordon(d, in: layout.alices, "session exec", "\(id) -- no-such-program")
        #expect(missing.status == 127 && missing.stderr.contains("no-such-program"), "\(missing)")
        let listed = Cow.cordon(d, in: layout.alices, "session ls", "")
        #expect(listed.status == 0 && listed.stdout.contains("ready") && listed.stdout.contains("(cow)"), "\(listed)")
        let closed = Cow.cordon(d, in: layout.alices, "session close", "\(id)")
        #expect(closed.status == 0, "\(closed)")
        let after = Cow.cordon(d, in: layout.alices, "session exec", "\(id) -- true")
        #expect(after.status != 0 && after.stderr.contains("has ended"), "\(after)")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/counter"), "the layer holds it until applied")
    }
}
