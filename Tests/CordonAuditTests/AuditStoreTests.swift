import Foundation
@testable import CordonAudit
import CordonSQLite
import CordonSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct RoundTripTests {
    /// argv is stored as CordonJSON's compact text. Rows written before it (by Foundation's
    /// encoder, which wrote "/" as "\/" and \b, \f as short escapes) and argv rewritten by
    /// retention (SQLite's json_array) read the same.
    @Test func argvTextOfEveryWriterReads() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let argv = ["/usr/bin/env", "\u{8}\u{C}\u{7F}\u{2028}", "é 😀"]
        var store = try AuditStore(path: dir.database)
        let id = try store.createTask(newTask(argv: argv))
        store.close()
        let db = try SQLiteDatabase(path: dir.database)
        let stored = try db.prepare("SELECT argv FROM tasks WHERE id = ?1").rows(binding: [.integer(id)])
        #expect(stored == [[.text(#"["/usr/bin/env","\u0008\u000c\u007f\u2028","é 😀"]"#)]])
        let foundation = #"["\/usr\/bin\/env","\b\f\#u{7F}\#u{2028}","é 😀"]"#
        let sqlite = #"["/usr/bin/env","\b\f\#u{7F}\#u{2028}","\u00e9 \ud83d\ude00"]"#
        for text in [foundation, sqlite] {
            _ = try db.prepare("UPDATE tasks SET argv = ?1 WHERE id = ?2").rows(binding: [.text(text), .integer(id)])
            store = try AuditStore(path: dir.database)
            #expect(try store.task(id: id)?.argv == argv, "\(text)")
            store.close()
        }
    }

    @Test func everyTaskFieldRoundTrips() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let argv = ["/usr/bin/env", "", "é (precomposed)", "e\u{301} (decomposed)", "line1\nline2\r\n", "tab\there",
                    "quotes \" ' `", "back\\slash", "nul\u{0}inside", "emoji 🧪👩‍👩‍👧", "日本語", "$(rm -rf /); echo ${HOME}",
                    "{\"json\": [1, 2]}", "--flag=\u{7f}\u{1b}[31m"]
        let submitter = Submitter(uid: UInt32.max - 1, gid: 0, pid: Int32.max, exe: "/opt/weird path/ü\nexe")
        let full = NewTask(submitter: submitter, label: "label with \u{0} and\nnewline", policy: "python-tool",
                           policyHash: "sha256:abc", argv: argv, submittedAt: 1_700_000_000.125)
        let id = try store.createTask(full)
        try store.markStarted(id: id, at: 1_700_000_001.5, cgroup: "/sys/fs/cgroup/cordon/task-1", scratch: "/var/lib/cordon/tasks/1")
        let outcome = TaskOutcome(state: .finished, reason: "memory-limit", exitCode: Int32.min, signal: 9,
                                  finishedAt: 1_700_000_002.75, cpuUserSeconds: 0.001, cpuSystemSeconds: 1e-9,
                                  peakMemoryBytes: UInt64.max, stdoutBytes: UInt64(Int64.max) + 1, stderrBytes: UInt64.max - 7,
                                  result: "{\"stdout\":\"a\\u0000b\",\"x\":\"\u{0}\"}")
        try store.finish(id: id, outcome: outcome, events: [])

        let expected = TaskRecord(
            id: id, submitter: submitter, label: full.label, policy: "python-tool", policyHash: "sha256:abc", argv: argv,
            state: .finished, reason: "memory-limit", exitCode: Int32.min, signal: 9, submittedAt: 1_700_000_000.125,
            startedAt: 1_700_000_001.5, finishedAt: 1_700_000_002.75, cpuUserSeconds: 0.001, cpuSystemSeconds: 1e-9,
            peakMemoryBytes: UInt64.max, stdoutBytes: UInt64(Int64.max) + 1, stderrBytes: UInt64.max - 7,
            cgroup: "/sys/fs/cgroup/cordon/task-1", scratch: "/var/lib/cordon/tasks/1", result: outcome.result)
        let read = try #require(try store.task(id: id))
        #expect(read == expected)
        // String == is canonical equivalence; the bytes must survive too (no normalisation, no NUL cut).
        #expect(read.argv.map { Array($0.utf8) } == argv.map { Array($0.utf8) })
        #expect(read.label.map { Array($0.utf8) } == full.label.map { Array($0.utf8) })
        #expect(read.result.map { Array($0.utf8) } == outcome.result.map { Array($0.utf8) })

        // Nil stays nil: a task finished without any of the optional values, and one never started.
        let bare = try store.createTask(newTask(argv: []))
        try store.finish(id: bare, outcome: TaskOutcome(state: .cancelled, reason: "cancelled", finishedAt: 5), events: [])
        let bareRead = try #require(try store.task(id: bare))
        #expect(bareRead.label == nil && bareRead.exitCode == nil && bareRead.signal == nil && bareRead.startedAt == nil)
        #expect(bareRead.cpuUserSeconds == nil && bareRead.cpuSystemSeconds == nil && bareRead.peakMemoryBytes == nil)
        #expect(bareRead.cgroup == nil && bareRead.scratch == nil && bareRead.result == nil && bareRead.argv == [])
        #expect(bareRead.state == .cancelled && bareRead.finishedAt == 5 && bareRead.stdoutBytes == 0)
        let queued = try store.createTask(newTask(label: ""))
        let queuedRead = try #require(try store.task(id: queued))
        #expect(queuedRead.state == .queued && queuedRead.label == "" && queuedRead.reason == nil && queuedRead.finishedAt == nil)
        #expect(try store.task(id: 999_999) == nil)

        // Survives reopening (nothing was only in memory).
        store.close()
        let again = try AuditStore(path: dir.database)
        #expect(try again.task(id: id) == expected)
    }

    @Test func eventsRoundTripWithDetail() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let task = try store.createTask(newTask(bob, policy: "shell-tool"))
        let detail = "{\"syscall\":\"unshare\",\"count\":2,\"note\":\"ünïcode \\\"quoted\\\"\\n\",\"raw\":\"\u{0}\"}"
        let denied = try store.record(NewEvent(kind: "denied", taskID: task, uid: nil, time: 10.5, detail: detail))
        let start = try store.record(NewEvent(kind: "daemon-start", time: 11, detail: "{}"))
        let refused = try store.record(NewEvent(kind: "auth-refused", uid: 4321, time: 12, detail: "{\"peer\":\"x\"}"))
        #expect(denied < start && start < refused)
        let events = try store.events(EventQuery(kinds: ["denied", "daemon-start", "auth-refused"]))
        #expect(events == [
            AuditEvent(id: denied, time: 10.5, kind: "denied", taskID: task, uid: nil, policy: "shell-tool", detail: detail),
            AuditEvent(id: start, time: 11, kind: "daemon-start", taskID: nil, uid: nil, policy: nil, detail: "{}"),
            AuditEvent(id: refused, time: 12, kind: "auth-refused", taskID: nil, uid: 4321, policy: nil, detail: "{\"peer\":\"x\"}"),
        ])
        #expect(Array(events[0].detail.utf8) == Array(detail.utf8))
    }
}

@Suite struct LifecycleTests {
    @Test func createStartFinishRecordsStateAndEventsInOrder() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let id = try store.createTask(newTask(bob, policy: "installer", at: 100))
        #expect(try store.task(id: id)?.state == .queued)
        try store.markStarted(id: id, at: 101, cgroup: "/cg/1", scratch: "/s/1")
        #expect(try store.task(id: id)?.state == .running)
        try store.finish(id: id, outcome: TaskOutcome(state: .finished, reason: "timeout", signal: 9, finishedAt: 160), events: [
            NewEvent(kind: "denied", time: 120, detail: "{\"syscall\":\"mount\"}"),
            NewEvent(kind: "limit", taskID: id, uid: 5, time: 159, detail: "{\"limit\":\"time\"}"),
        ])
        let record = try #require(try store.task(id: id))
        #expect(record.state == .finished && record.reason == "timeout" && record.signal == 9 && record.exitCode == nil)
        #expect(record.startedAt == 101 && record.finishedAt == 160)

        let events = try store.events(EventQuery(taskID: id))
        #expect(events.map(\.kind) == ["submitted", "started", "denied", "limit", "finished"])
        #expect(events.map(\.time) == [100, 101, 120, 159, 160])
        #expect(events.allSatisfy { $0.taskID == id && $0.policy == "installer" })
        // Events the store writes carry the submitter's uid; given ones keep theirs.
        #expect(events.map(\.uid) == [1001, 1001, nil, 5, 1001])
        #expect(events.last?.detail == "{\"reason\":\"timeout\",\"signal\":9}")
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.id < $1.id })

        // Cancelled before start and lost: the end event is named after the state.
        let cancelled = try store.createTask(newTask(at: 200))
        try store.finish(id: cancelled, outcome: TaskOutcome(state: .cancelled, reason: "cancelled", finishedAt: 201), events: [])
        #expect(try store.events(EventQuery(taskID: cancelled)).map(\.kind) == ["submitted", "cancelled"])
    }

    /// A task that ended before its start was recorded (a warm task whose command printed
    /// nothing) has its start recorded with its end, in one commit: the same row and events,
    /// in the same order, as markStarted then finish; one started already keeps its start.
    @Test func aStartRecordedWithTheEndIsTheSameAsOneBeforeIt() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let apart = try store.createTask(newTask(bob, at: 100))
        try store.markStarted(id: apart, at: 101, cgroup: "/cg/1", scratch: "/s/1")
        try store.finish(id: apart, outcome: exited(at: 102), events: [NewEvent(kind: "denied", time: 101.5, detail: "{}")])
        let together = try store.createTask(newTask(bob, at: 100))
        let commits = store.writerStatistics.commits
        try store.finish(id: together, outcome: exited(at: 102), events: [NewEvent(kind: "denied", time: 101.5, detail: "{}")],
                         started: TaskStart(time: 101, cgroup: "/cg/1", scratch: "/s/1"))
        #expect(store.writerStatistics.commits == commits + 1, "one commit for the start and the end")
        var a = try #require(try store.task(id: apart)), b = try #require(try store.task(id: together))
        #expect(b.state == .finished && b.startedAt == 101 && b.cgroup == "/cg/1" && b.scratch == "/s/1")
        a.id = 0
        b.id = 0
        #expect(a == b)
        let kinds = { (id: Int64) in try store.events(EventQuery(taskID: id)).map { "\($0.kind)@\($0.time)/\($0.uid.map(String.init) ?? "-")" } }
        #expect(try kinds(together) == kinds(apart))
        #expect(try kinds(together) == ["submitted@100.0/1001", "started@101.0/1001", "denied@101.5/-", "finished@102.0/1001"])

        // Started already: the end is recorded, the start as it was (not a second one).
        let running = try store.createTask(newTask(at: 200))
        try store.markStarted(id: running, at: 201, cgroup: "/cg/r", scratch: nil)
        try store.finish(id: running, outcome: exited(at: 203), events: [], started: TaskStart(time: 202, cgroup: nil, scratch: nil))
        #expect(try store.task(id: running)?.state == .finished && store.task(id: running)?.startedAt == 201 && store.task(id: running)?.cgroup == "/cg/r")
        #expect(try store.events(EventQuery(taskID: running)).map(\.kind) == ["submitted", "started", "finished"])
        // Ended already: refused as any second end is.
        #expect(auditError {
            try store.finish(id: running, outcome: exited(at: 204), events: [], started: TaskStart(time: 202, cgroup: nil, scratch: nil))
        }?.code == .conflict)
        #expect(auditError {
            try store.finish(id: running, outcome: exited(at: 203), events: [], started: TaskStart(time: .nan, cgroup: nil, scratch: nil))
        }?.code == .invalid)
    }

    @Test func refusedWritesLeaveTheStoreAsItWas() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let id = try store.createTask(newTask(at: 1))
        try store.finish(id: id, outcome: exited(at: 2), events: [])
        let before = try store.events(EventQuery())

        #expect(auditError { try store.finish(id: id, outcome: exited(1, at: 3), events: [NewEvent(kind: "x", time: 3)]) }?.code == .conflict)
        #expect(auditError { try store.markStarted(id: id, at: 3, cgroup: nil, scratch: nil) }?.code == .conflict)
        #expect(auditError { try store.markStarted(id: 12345, at: 3, cgroup: nil, scratch: nil) }?.code == .notFound)
        #expect(auditError { try store.finish(id: 12345, outcome: exited(at: 3), events: []) }?.code == .notFound)
        #expect(auditError { try store.record(NewEvent(kind: "denied", taskID: 12345, time: 3)) }?.code == .notFound)
        let running = TaskOutcome(state: .running, reason: "x", finishedAt: 3)
        #expect(auditError { try store.finish(id: id, outcome: running, events: []) }?.code == .invalid)
        #expect(auditError { _ = try store.createTask(newTask(at: .nan)) }?.code == .invalid)
        #expect(auditError { try store.record(NewEvent(kind: "", time: 1)) }?.code == .invalid)
        #expect(auditError { try store.record(NewEvent(kind: "x", time: .infinity)) }?.code == .invalid)
        let conflict = auditError { try store.finish(id: id, outcome: exited(at: 3), events: []) }
        #expect(conflict?.description == "audit database \(dir.database): finish task \(id): task \(id) is finished, not queued or running")

        // An event naming a missing task fails the whole finish, after its UPDATE already ran:
        // the task must still be running, with no event of that finish stored.
        let started = try store.createTask(newTask(at: 5))
        try store.markStarted(id: started, at: 6, cgroup: nil, scratch: nil)
        let partial = auditError {
            try store.finish(id: started, outcome: exited(at: 7), events: [NewEvent(kind: "denied", time: 6.5),
                                                                           NewEvent(kind: "limit", taskID: 777, time: 6.6)])
        }
        #expect(partial?.code == .notFound)
        #expect(try store.task(id: started)?.state == .running)
        #expect(try store.events(EventQuery(taskID: started)).map(\.kind) == ["submitted", "started"])
        try store.finish(id: started, outcome: exited(at: 8), events: [])

        // A refused finish with events stored none of them, and the task kept its outcome.
        #expect(try store.events(EventQuery(taskID: id)) == before.filter { $0.taskID == id })
        #expect(try store.task(id: id)?.exitCode == 0)
        // The store still works.
        let next = try store.createTask(newTask(at: 4))
        #expect(next > id)
    }

    @Test func idsAreUniqueIncreasingAndNotReusedAfterPrune() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        var ids: [Int64] = []
        for i in 0..<5 {
            let id = try store.createTask(newTask(at: Double(i)))
            try store.finish(id: id, outcome: exited(at: Double(i) + 0.5), events: [])
            ids.append(id)
        }
        #expect(ids == ids.sorted() && Set(ids).count == ids.count)
        let lastEvent = try #require(try store.events(EventQuery()).last?.id)
        let pruned = try store.prune(RetentionRules(olderThan: 1000)).removed
        #expect(pruned.map(\.id) == ids)
        #expect(try store.tasks(TaskQuery()).isEmpty && store.events(EventQuery()).isEmpty)
        // AUTOINCREMENT: the largest id was deleted, yet it is not handed out again, even after reopening.
        store.close()
        let reopened = try AuditStore(path: dir.database)
        let next = try reopened.createTask(newTask(at: 10))
        #expect(next > ids.last!)
        #expect(try reopened.events(EventQuery()).allSatisfy { $0.id > lastEvent })
    }
}

@Suite(.serialized) struct GroupCommitTests {
    /// create + start + finish for `perThread` tasks on each of `threads` threads; returns tasks/s.
    private func run(threads: Int, perThread: Int, store: AuditStore) -> (ids: [Int64], rate: Double, failures: [String]) {
        let ids = Mutex<[Int64]>([])
        let failures = Mutex<[String]>([])
        let clock = ContinuousClock()
        let started = clock.now
        onThreads(threads) { t in
            var mine: [Int64] = []
            do {
                for i in 0..<perThread {
                    let time = Double(t * 100_000 + i)
                    let id = try store.createTask(newTask(Submitter(uid: UInt32(t), gid: 0, pid: Int32(i), exe: "/t"), at: time))
                    try store.markStarted(id: id, at: time + 0.1, cgroup: "/cg/\(id)", scratch: "/s/\(id)")
                    try store.finish(id: id, outcome: exited(at: time + 0.2), events: [])
                    mine.append(id)
                }
            } catch { failures.withLock { $0.append("\(error)") } }
            ids.withLock { $0 += mine }
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (ids.withLock { $0 }, Double(threads * perThread) / seconds, failures.withLock { $0 })
    }

    /// A write submitted while the connection is free is committed by its own thread (no
    /// hand-off to the writer thread and back); one submitted while that commit runs waits for
    /// it, and is committed after it, by the writer thread.
    @Test func aLoneWriteIsCommittedOnItsOwnThreadAndOneDuringItQueuesBehindIt() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        defer { store.close() }
        // Who ran each body, and in what order.
        let log = Mutex<[(name: String, thread: pthread_t)]>([])
        let firstRunning = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        let callers = Mutex<[String: pthread_t]>([:])
        onThreads(3) { t in
            if t == 2 {
                // Lets the first go once the second is queued behind it.
                for _ in 0..<400 where !firstRunning.load(ordering: .acquiring) { usleep(5_000) }
                for _ in 0..<2000 where store.queuedWrites == 0 { usleep(1_000) }
                release.store(true, ordering: .releasing)
            } else if t == 0 {
                callers.withLock { $0["first"] = pthread_self() }
                _ = try? store.write("first") { _ throws(AuditError) in
                    log.withLock { $0.append(("first", pthread_self())) }
                    firstRunning.store(true, ordering: .releasing)
                    // Held until the second write has been submitted.
                    for _ in 0..<400 where !release.load(ordering: .acquiring) { usleep(5_000) }
                    return .none
                }
            } else {
                for _ in 0..<400 where !firstRunning.load(ordering: .acquiring) { usleep(5_000) }
                callers.withLock { $0["second"] = pthread_self() }
                _ = try? store.write("second") { _ throws(AuditError) in
                    log.withLock { $0.append(("second", pthread_self())) }
                    return .none
                }
            }
        }
        let runs = log.withLock { $0 }
        let who = callers.withLock { $0 }
        try #require(runs.count == 2, "\(runs.map(\.name))")
        #expect(runs.map(\.name) == ["first", "second"])
        #expect(pthread_equal(runs[0].thread, try #require(who["first"])) != 0, "the lone write went to another thread")
        #expect(pthread_equal(runs[1].thread, try #require(who["second"])) == 0, "the queued write ran on its caller's thread")
        #expect(pthread_equal(runs[1].thread, runs[0].thread) == 0)
        #expect(store.writerStatistics.operations == 2)
    }

    /// A write that must not wait (a model worker's reader records a finished call) is committed
    /// on its caller's thread when the store is free, and not at all — nil at once, its body not
    /// run — while another write holds the connection; the caller then hands it to a thread
    /// that may wait.
    @Test func aWriteThatMustNotWaitIsCommittedHereWhenFreeElseNotAtAll() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        defer { store.close() }
        let ranOn = Mutex<pthread_t?>(nil)
        let free = try store.writeIfFree("free", durable: false) { _ throws(AuditError) in
            ranOn.withLock { $0 = pthread_self() }
            return .count(7)
        }
        guard case .count(7)? = free else { Issue.record("a free store did not commit: \(String(describing: free))"); return }
        #expect(pthread_equal(try #require(ranOn.withLock { $0 }), pthread_self()) != 0, "committed on another thread")

        let holding = Atomic<Bool>(false), release = Atomic<Bool>(false)
        let busyAnswer = Mutex<(WriteOutput?, Double, Bool)?>(nil)
        onThreads(2) { t in
            if t == 0 {
                _ = try? store.write("holder") { _ throws(AuditError) in
                    holding.store(true, ordering: .releasing)
                    for _ in 0..<400 where !release.load(ordering: .acquiring) { usleep(5_000) }
                    return .none
                }
            } else {
                for _ in 0..<400 where !holding.load(ordering: .acquiring) { usleep(5_000) }
                let ran = Atomic<Bool>(false)
                let start = MonotonicClock.now
                let answer = try? store.writeIfFree("must not wait", durable: false) { _ throws(AuditError) in
                    ran.store(true, ordering: .releasing)
                    return .none
                }
                busyAnswer.withLock { $0 = (answer ?? nil, MonotonicClock.now - start, ran.load(ordering: .acquiring)) }
                release.store(true, ordering: .releasing)
            }
        }
        let (answer, waited, ran) = try #require(busyAnswer.withLock { $0 })
        #expect(answer == nil && !ran, "a busy store committed the write: \(String(describing: answer))")
        #expect(waited < 0.5, "waited \(waited) s for a busy store")
        #expect(store.queuedWrites == 0, "the refused write was queued")
    }

    /// The log is checkpointed by the writer thread once it passes 1000 pages, never by the
    /// thread whose commit took it there (SQLite's automatic checkpoint would: page copies and
    /// syncs on a model worker's reader, which records calls when the store is free), and the
    /// log stays bounded.
    @Test func theWriterThreadCheckpointsTheLog() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        defer { store.close() }
        let automatic = try store.write("read wal_autocheckpoint", durable: false) { w throws(AuditError) in
            .count(Int(try w.integer("PRAGMA wal_autocheckpoint")))
        }
        guard case .count(0) = automatic else { Issue.record("SQLite still checkpoints on its own: \(automatic)"); return }
        let padding = String(repeating: "p", count: 3000)
        for i in 0..<1500 {
            _ = try store.write("pad \(i)", durable: false) { w throws(AuditError) in
                try w.rows(AuditStore.insertEvent, [.real(Double(i)), .text("pad"), .null, .integer(0), .text(padding)])
                return .none
            }
        }
        for _ in 0..<200 where store.writerStatistics.checkpoints == 0 { usleep(10_000) }
        #expect(store.writerStatistics.checkpoints >= 1)
        var st = stat()
        #expect(stat(dir.database + "-wal", &st) == 0)
        // 1500 commits of a page or two each, checkpointed past 1000 pages: the log is reused.
        #expect(st.st_size < 8 << 20, "the log grew to \(st.st_size) bytes")
    }

    /// close() closes the database: the writer's connection goes with its thread, so SQLite
    /// checkpoints and removes the write-ahead log and no descriptor stays open on it.
    @Test func closeClosesTheDatabaseAndRemovesItsLog() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        _ = try store.createTask(newTask())
        #expect(access(dir.database + "-wal", F_OK) == 0)
        store.close()
        #expect(access(dir.database + "-wal", F_OK) != 0, "the write-ahead log outlived close()")
        #expect(access(dir.database + "-shm", F_OK) != 0)
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let onIt = open.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.hasPrefix(dir.database) == true }
        #expect(onIt.isEmpty, "descriptors still open on the store: \(onIt)")
    }

    /// A non-durable commit is synced by the writer within `flushAfter` when no durable one
    /// comes first, once; a durable commit syncs what came before it, so nothing follows.
    @Test func aNonDurableCommitReachesTheDiskWithinFiftyMilliseconds() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let before = store.writerStatistics
        let id = try store.createTask(newTask(), durable: false)
        #expect(store.writerStatistics.durableCommits == before.durableCommits, "a non-durable submission was synced on its own")
        for _ in 0..<200 where store.writerStatistics.syncs == before.syncs { usleep(10_000) }
        #expect(store.writerStatistics.syncs == before.syncs + 1, "the writer never synced the log")
        usleep(200_000)
        #expect(store.writerStatistics.syncs == before.syncs + 1, "synced again with nothing new")
        #expect(store.writerStatistics.syncFailures == 0)

        // Covered by a durable commit right after it: no sync of the writer's.
        let afterFirst = store.writerStatistics
        try store.markStarted(id: id, at: 1_700_000_001, cgroup: nil, scratch: nil)
        try store.finish(id: id, outcome: TaskOutcome(state: .finished, reason: "exited", exitCode: 0, finishedAt: 1_700_000_002), events: [])
        usleep(200_000)
        let end = store.writerStatistics
        #expect(end.syncs == afterFirst.syncs, "a sync followed a durable commit that had covered everything")
        #expect(end.durableCommits == afterFirst.durableCommits + 1)
        #expect(try store.task(id: id)?.state == .finished)
    }

    /// Non-durable writes one after another, each finding the connection free, do not put the
    /// sync off: half a second of them is synced about every 50 ms.
    @Test func aStreamOfNonDurableWritesIsSyncedEveryFiftyMilliseconds() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let end = MonotonicClock.now + 0.5
        var writes = 0
        while MonotonicClock.now < end {
            _ = try store.createTask(newTask(), durable: false)
            writes += 1
        }
        let stats = store.writerStatistics
        // Writes that came while the writer checkpointed the log (every 1000 pages) were
        // committed together by it, and a sync that was due then rode on that commit (counted
        // durable): the log is synced by one or the other about every 50 ms.
        #expect(stats.operations == writes && stats.nonDurableCommits + stats.durableCommits == stats.commits, "\(stats)")
        let synced = stats.syncs + stats.durableCommits
        #expect(synced >= 5 && synced <= 12, "\(synced) syncs in 0.5 s of \(writes) writes: \(stats)")
        #expect(stats.syncFailures == 0 && stats.failedCommits == 0)
    }

    /// Four threads writing without a pause, so that the writer thread always finds writes
    /// queued: the sync still comes about every 50 ms (a due sync rides on the next commit).
    @Test func queuedNonDurableWritesDoNotPutTheSyncOff() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let end = MonotonicClock.now + 0.5
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            while MonotonicClock.now < end { _ = try? store.createTask(newTask(), durable: false) }
        }
        let stats = store.writerStatistics
        #expect(stats.syncs + stats.durableCommits >= 5, "\(stats.syncs) syncs and \(stats.durableCommits) synced commits in 0.5 s: \(stats)")
        #expect(stats.failedCommits == 0 && stats.syncFailures == 0)
    }

    /// Closing with a non-durable commit not yet synced syncs it first.
    @Test func closeSyncsWhatIsNotYetOnDisk() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        _ = try store.createTask(newTask(), durable: false)
        store.close()
        #expect(store.writerStatistics.syncs == 1)
        let again = try AuditStore(path: dir.database)
        #expect(try again.task(id: 1) != nil)
    }

    @Test func concurrentWritersAreGroupCommitted() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let single = run(threads: 1, perThread: 200, store: store)
        #expect(single.failures.isEmpty)
        let soloStats = store.writerStatistics
        let (ids, rate, failures) = run(threads: 16, perThread: 200, store: store)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let stats = store.writerStatistics
        let commits = stats.commits - soloStats.commits, operations = stats.operations - soloStats.operations
        print("audit group commit: 1 thread \(Int(single.rate)) tasks/s; 16 threads \(Int(rate)) tasks/s "
              + "(create+start+finish each, synchronous=FULL); \(operations) writes in \(commits) commits "
              + "(\(String(Double(operations) / Double(max(1, commits))).prefix(5)) per commit)")

        #expect(ids.count == 16 * 200)
        #expect(Set(ids + single.ids).count == 17 * 200)
        #expect(operations == 16 * 200 * 3)
        // Sixteen threads blocked in fsync leave a queue behind them: fewer commits than writes.
        #expect(commits < operations)
        #expect(try store.countsByState()[.finished] == 17 * 200)
        #expect(try store.events(EventQuery(kinds: ["finished"], limit: 10_000)).count == 17 * 200)
        for t in [0, 7, 15] {
            let tasks = try store.tasks(TaskQuery(uid: UInt32(t), limit: 1000))
            #expect(tasks.count == 200 + (t == 0 ? 200 : 0))
            #expect(tasks.allSatisfy { $0.state == .finished && $0.cgroup == "/cg/\($0.id)" })
        }
    }

    @Test func aRefusedWriteDoesNotFailTheOthersInItsBatch() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let created = Mutex<[Int64]>([])
        let wrong = Mutex<[String]>([])
        onThreads(8) { t in
            for i in 0..<50 {
                do {
                    let id = try store.createTask(newTask(at: Double(t * 1000 + i)))
                    created.withLock { $0.append(id) }
                } catch { wrong.withLock { $0.append("create: \(error)") } }
                let refused = auditError { try store.markStarted(id: 1_000_000 + Int64(i), at: 1, cgroup: nil, scratch: nil) }
                if refused?.code != .notFound { wrong.withLock { $0.append("markStarted: \(String(describing: refused))") } }
            }
        }
        #expect(wrong.withLock { $0 }.isEmpty)
        #expect(created.withLock { $0.count } == 400)
        let stats = store.writerStatistics
        #expect(stats.operations == 800 && stats.commits < stats.operations)
        #expect(try store.countsByState()[.queued] == 400)
        #expect(try store.events(EventQuery(limit: 10_000)).count == 400)
    }

    @Test func readsRunWhileWritesGoOn() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let writersDone = Atomic<Int>(0)
        let problems = Mutex<[String]>([])
        let reads = Atomic<Int>(0)
        onThreads(6) { t in
            if t < 4 {
                for i in 0..<100 {
                    do {
                        let id = try store.createTask(newTask(at: Double(i)))
                        try store.finish(id: id, outcome: exited(at: Double(i)), events: [])
                    } catch { problems.withLock { $0.append("\(error)") } }
                }
                writersDone.add(1, ordering: .sequentiallyConsistent)
                return
            }
            // Readers: counts never go down, and a task is never seen half-finished.
            var last = 0
            while writersDone.load(ordering: .sequentiallyConsistent) < 4 {
                do {
                    let finished = try store.countsByState()[.finished] ?? 0
                    if finished < last { problems.withLock { $0.append("count went down") } }
                    last = finished
                    for task in try store.tasks(TaskQuery(states: [.finished], limit: 5)) where task.finishedAt == nil {
                        problems.withLock { $0.append("task \(task.id) finished without finishedAt") }
                    }
                    reads.add(1, ordering: .relaxed)
                } catch { problems.withLock { $0.append("\(error)") } }
            }
        }
        #expect(problems.withLock { $0 }.isEmpty)
        #expect(reads.load(ordering: .relaxed) > 0)
        #expect(try store.countsByState()[.finished] == 400)
    }

    /// What a write returned is what the next read sees, even while other threads keep the
    /// read connection busy (cordond answers `task.submit` with `wait` from a fresh read right
    /// after the task's final record is committed).
    @Test func aReadAfterAWriteSeesItWhileOtherReadsOverlap() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        for i in 0..<50 { _ = try store.createTask(newTask(at: Double(i))) }
        let done = Atomic<Int>(0)
        let stale = Mutex<[String]>([])
        onThreads(5) { t in
            if t > 0 {
                // Busy readers: long scans, back to back.
                while done.load(ordering: .sequentiallyConsistent) == 0 { _ = try? store.tasks(TaskQuery(limit: 1000)) }
                return
            }
            for i in 0..<300 {
                do {
                    let id = try store.createTask(newTask(at: Double(i)))
                    try store.markStarted(id: id, at: Double(i), cgroup: nil, scratch: nil)
                    try store.finish(id: id, outcome: exited(at: Double(i) + 1), events: [])
                    let seen = try store.task(id: id)?.state
                    if seen != .finished { stale.withLock { $0.append("task \(id) read back as \(seen.map(\.rawValue) ?? "missing")") } }
                } catch { stale.withLock { $0.append("\(error)") } }
            }
            done.store(1, ordering: .sequentiallyConsistent)
        }
        let problems = stale.withLock { $0 }
        #expect(problems.count == 0, "\(problems.prefix(5))")
    }

    @Test func closeCommitsQueuedWritesAndLaterWritesFail() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let accepted = Mutex<[Int64]>([])
        let unexpected = Mutex<[String]>([])
        let closer = Mutex(false)
        onThreads(9) { t in
            if t == 8 {
                usleep(50_000)
                store.close()
                closer.withLock { $0 = true }
                return
            }
            while true {
                do {
                    let id = try store.createTask(newTask(at: Double(t)))
                    accepted.withLock { $0.append(id) }
                } catch {
                    if (error as? AuditError)?.code != .closed { unexpected.withLock { $0.append("\(error)") } }
                    return
                }
            }
        }
        #expect(closer.withLock { $0 })
        #expect(unexpected.withLock { $0 }.isEmpty)
        let ids = accepted.withLock { $0 }
        #expect(!ids.isEmpty)
        let reopened = try AuditStore(path: dir.database)
        // Every write that returned an id is on disk; nothing else is.
        #expect(Set(try reopened.tasks(TaskQuery(limit: 1_000_000)).map(\.id)) == Set(ids))
    }
}

@Suite struct RecoveryTests {
    /// Queued 1, running 2 and 3, finished 4, cancelled 5: what a daemon leaves behind when it dies.
    private func populate(_ store: AuditStore) throws -> (unfinished: [Int64], finished: Int64, cancelled: Int64) {
        let q = try store.createTask(newTask(at: 1))
        let r1 = try store.createTask(newTask(bob, at: 2))
        let r2 = try store.createTask(newTask(at: 3))
        let f = try store.createTask(newTask(at: 4))
        let c = try store.createTask(newTask(at: 5))
        try store.markStarted(id: r1, at: 10, cgroup: "/cg/r1", scratch: "/s/r1")
        try store.markStarted(id: r2, at: 11, cgroup: "/cg/r2", scratch: "/s/r2")
        try store.markStarted(id: f, at: 12, cgroup: "/cg/f", scratch: "/s/f")
        try store.finish(id: f, outcome: exited(at: 13), events: [])
        try store.finish(id: c, outcome: TaskOutcome(state: .cancelled, reason: "cancelled", finishedAt: 14), events: [])
        return ([q, r1, r2], f, c)
    }

    private func checkRecovery(_ store: AuditStore, _ known: (unfinished: [Int64], finished: Int64, cancelled: Int64)) throws {
        let unfinished = try store.unfinished()
        #expect(unfinished.map(\.id) == known.unfinished)
        #expect(unfinished.map(\.state) == [.queued, .running, .running])
        #expect(unfinished.map(\.cgroup) == [nil, "/cg/r1", "/cg/r2"])
        #expect(unfinished.map(\.scratch) == [nil, "/s/r1", "/s/r2"])
        let finishedBefore = try store.task(id: known.finished)

        let changed = try store.markLost(ids: known.unfinished + [known.finished, known.cancelled, 99_999], at: 500)
        #expect(changed == known.unfinished)
        #expect(try store.unfinished().isEmpty)
        for id in known.unfinished {
            let task = try #require(try store.task(id: id))
            #expect(task.state == .lost && task.reason == "lost" && task.finishedAt == 500)
        }
        #expect(try store.task(id: known.finished) == finishedBefore)
        #expect(try store.task(id: known.cancelled)?.state == .cancelled)
        let lost = try store.events(EventQuery(kinds: ["lost"]))
        #expect(lost.map(\.taskID) == known.unfinished.map(Optional.some))
        #expect(lost.allSatisfy { $0.time == 500 && $0.detail == "{\"reason\":\"lost\"}" })
        #expect(lost.map(\.uid) == [1000, 1001, 1000])
        // Marking them lost again changes nothing and adds no event.
        #expect(try store.markLost(ids: known.unfinished, at: 600).isEmpty)
        #expect(try store.events(EventQuery(kinds: ["lost"])).count == 3)
        #expect(try store.countsByState() == [.queued: 0, .running: 0, .finished: 1, .cancelled: 1, .lost: 3])
    }

    @Test func unfinishedTasksSurviveCloseAndAreMarkedLost() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let known = try populate(store)
        store.close()
        try checkRecovery(try AuditStore(path: dir.database), known)
    }

    @Test func committedWritesAreVisibleWithoutAClose() throws {
        // The first store is never closed (as if the daemon died): no checkpoint, the data is
        // only in the WAL, and a new store on the same file must find it there.
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let crashed = try AuditStore(path: dir.database)
        let known = try populate(crashed)
        _ = Unmanaged.passRetained(crashed)
        #expect(readFile(dir.database + "-wal").count > 0)
        try checkRecovery(try AuditStore(path: dir.database), known)
    }
}

@Suite struct QueryTests {
    /// t1 alice/default@100 finished, t2 bob/shell@200 running, t3 alice/shell@300 queued, t4 bob/default@400 cancelled.
    private func populate(_ dir: TempDirectory) throws -> (AuditStore, [Int64]) {
        let store = try AuditStore(path: dir.database)
        let t1 = try store.createTask(newTask(alice, policy: "default", at: 100))
        let t2 = try store.createTask(newTask(bob, policy: "shell", at: 200))
        let t3 = try store.createTask(newTask(alice, policy: "shell", at: 300))
        let t4 = try store.createTask(newTask(bob, policy: "default", at: 400))
        try store.markStarted(id: t1, at: 101, cgroup: nil, scratch: nil)
        try store.finish(id: t1, outcome: exited(at: 102), events: [NewEvent(kind: "denied", time: 101.5)])
        try store.markStarted(id: t2, at: 201, cgroup: nil, scratch: nil)
        try store.record(NewEvent(kind: "egress", taskID: t2, time: 202, detail: "{\"host\":\"pypi.org\"}"))
        try store.finish(id: t4, outcome: TaskOutcome(state: .cancelled, reason: "cancelled", finishedAt: 401), events: [])
        try store.record(NewEvent(kind: "daemon-start", time: 50))
        try store.record(NewEvent(kind: "auth-refused", uid: 1002, time: 450))
        return (store, [t1, t2, t3, t4])
    }

    @Test func taskFilters() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let (store, t) = try populate(dir)
        let ids = { (query: TaskQuery) throws in try store.tasks(query).map(\.id) }
        #expect(try ids(TaskQuery()) == [t[3], t[2], t[1], t[0]])  // newest first
        #expect(try ids(TaskQuery(since: 200)) == [t[3], t[2], t[1]])
        #expect(try ids(TaskQuery(since: 400.5)) == [])
        #expect(try ids(TaskQuery(uid: 1000)) == [t[2], t[0]])
        #expect(try ids(TaskQuery(uid: 1001)) == [t[3], t[1]])
        #expect(try ids(TaskQuery(uid: 4242)) == [])
        #expect(try ids(TaskQuery(policy: "shell")) == [t[2], t[1]])
        #expect(try ids(TaskQuery(policy: "she")) == [])
        #expect(try ids(TaskQuery(id: t[1])) == [t[1]])
        #expect(try ids(TaskQuery(id: 999)) == [])
        #expect(try ids(TaskQuery(states: [.running, .queued])) == [t[2], t[1]])
        #expect(try ids(TaskQuery(states: [.finished])) == [t[0]])
        #expect(try ids(TaskQuery(states: [.lost])) == [])
        #expect(try ids(TaskQuery(states: [])) == [])
        #expect(try ids(TaskQuery(limit: 2)) == [t[3], t[2]])
        #expect(try ids(TaskQuery(limit: 0)) == [])
        #expect(try ids(TaskQuery(limit: -1)) == [])
        #expect(try ids(TaskQuery(since: 150, uid: 1001, policy: "default", states: [.cancelled])) == [t[3]])
        #expect(try ids(TaskQuery(since: 150, uid: 1000, policy: "default")) == [])
        // A policy name that looks like SQL is just a value.
        #expect(try ids(TaskQuery(policy: "x' OR '1'='1")) == [])
        #expect(try store.unfinished().map(\.id) == [t[1], t[2]])
        #expect(try store.countsByState() == [.queued: 1, .running: 1, .finished: 1, .cancelled: 1, .lost: 0])
    }

    @Test func eventFilters() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let (store, t) = try populate(dir)
        let kinds = { (query: EventQuery) throws in try store.events(query).map(\.kind) }
        let all = try store.events(EventQuery())
        #expect(all.map(\.kind) == ["submitted", "submitted", "submitted", "submitted", "started", "denied", "finished",
                                    "started", "egress", "cancelled", "daemon-start", "auth-refused"])  // recorded order
        #expect(try kinds(EventQuery(since: 400)) == ["submitted", "cancelled", "auth-refused"])
        #expect(try kinds(EventQuery(since: 1000)) == [])
        #expect(try kinds(EventQuery(taskID: t[0])) == ["submitted", "started", "denied", "finished"])
        #expect(try kinds(EventQuery(taskID: 999)) == [])
        #expect(try kinds(EventQuery(kinds: ["egress", "auth-refused"])) == ["egress", "auth-refused"])
        #expect(try kinds(EventQuery(kinds: ["nothing"])) == [])
        #expect(try kinds(EventQuery(kinds: [])) == [])
        // uid: the event's own, or through its task's submitter (denied and egress carry no uid).
        #expect(try store.events(EventQuery(uid: 1000)).allSatisfy { [t[0], t[2]].contains($0.taskID ?? -1) })
        #expect(try kinds(EventQuery(uid: 1000, kinds: ["denied"])) == ["denied"])
        #expect(try kinds(EventQuery(uid: 1001, kinds: ["denied"])) == [])
        #expect(try kinds(EventQuery(uid: 1001, kinds: ["egress"])) == ["egress"])
        #expect(try kinds(EventQuery(uid: 1002)) == ["auth-refused"])
        #expect(try kinds(EventQuery(uid: 7)) == [])
        // policy: through the task only.
        #expect(try kinds(EventQuery(policy: "shell")) == ["submitted", "submitted", "started", "egress"])
        #expect(try store.events(EventQuery(policy: "shell")).allSatisfy { $0.policy == "shell" })
        #expect(try kinds(EventQuery(policy: "nope")) == [])
        #expect(try kinds(EventQuery(limit: 2)) == ["submitted", "submitted"])
        #expect(try kinds(EventQuery(limit: 0)) == [])
        #expect(try kinds(EventQuery(afterID: all[9].id)) == ["daemon-start", "auth-refused"])
        #expect(try kinds(EventQuery(afterID: all.last!.id)) == [])
        #expect(try kinds(EventQuery(since: 100, uid: 1000, policy: "default", taskID: t[0], kinds: ["finished", "egress"])) == ["finished"])
    }
}

@Suite struct RetentionTests {
    @Test func pruneByAgeKeepsUnfinishedTasksAndRecentEvents() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let old = try store.createTask(newTask(at: 10))
        try store.markStarted(id: old, at: 11, cgroup: "/cg/old", scratch: "/scratch/old")
        try store.finish(id: old, outcome: exited(at: 100), events: [NewEvent(kind: "denied", time: 50)])
        let oldLost = try store.createTask(newTask(at: 12))
        try store.markLost(ids: [oldLost], at: 90)
        let recent = try store.createTask(newTask(at: 20))
        try store.markStarted(id: recent, at: 21, cgroup: nil, scratch: "/scratch/recent")
        try store.finish(id: recent, outcome: exited(at: 300), events: [])
        let running = try store.createTask(newTask(at: 1))
        try store.markStarted(id: running, at: 2, cgroup: nil, scratch: "/scratch/running")
        let queued = try store.createTask(newTask(at: 0))
        try store.record(NewEvent(kind: "daemon-start", time: 5))
        try store.record(NewEvent(kind: "daemon-stop", time: 500))

        let pruned = try store.prune(RetentionRules(olderThan: 200)).removed
        #expect(pruned.map(\.id).sorted() == [old, oldLost])
        #expect(pruned.sorted { $0.id < $1.id }.map(\.scratch) == ["/scratch/old", nil])
        #expect(try store.tasks(TaskQuery()).map(\.id).sorted() == [recent, running, queued])
        #expect(try store.events(EventQuery(taskID: old)).isEmpty)
        #expect(try store.events(EventQuery(kinds: ["daemon-start", "daemon-stop"])).map(\.kind) == ["daemon-stop"])
        // Nothing more is old enough; a prune with neither limit deletes nothing.
        #expect(try store.prune(RetentionRules(olderThan: 200)).removed.isEmpty)
        #expect(try store.prune(RetentionRules()).removed.isEmpty)
        #expect(try store.unfinished().map(\.id) == [running, queued])
    }

    @Test func pruneBySizeShrinksTheFileOldestFirst() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let blob = "{\"stdout\":\"" + String(repeating: "x", count: 4000) + "\"}"
        let running = try store.createTask(newTask(at: 0, argv: [blob]))
        try store.markStarted(id: running, at: 0, cgroup: nil, scratch: "/scratch/running")
        let queued = try store.createTask(newTask(at: 0, argv: [blob]))
        var finished: [Int64] = []
        for i in 0..<400 {
            let id = try store.createTask(newTask(at: Double(i)))
            try store.markStarted(id: id, at: Double(i), cgroup: nil, scratch: "/scratch/\(id)")
            // Finish order differs from id order: size pruning goes by finishedAt.
            try store.finish(id: id, outcome: exited(at: Double(1000 - i), result: blob), events: [])
            finished.append(id)
        }
        let before = store.fileBytes
        #expect(before > 1_600_000)
        let maxBytes: Int64 = 400_000
        let pruned = try store.prune(RetentionRules(maxBytes: maxBytes)).removed
        let after = store.fileBytes
        print("audit prune by size: \(before) → \(after) bytes (limit \(maxBytes)), \(pruned.count) tasks removed")
        #expect(after <= maxBytes)
        #expect(after < before / 3)
        // The ones that finished first (the last created) went; the survivors are the newest finishers.
        let kept = Set(try store.tasks(TaskQuery(states: [.finished], limit: 1000)).map(\.id))
        #expect(!kept.isEmpty && kept.count + pruned.count == finished.count)
        #expect(pruned.map(\.id) == Array(finished.reversed().prefix(pruned.count)))
        #expect(pruned.allSatisfy { $0.scratch == "/scratch/\($0.id)" })
        #expect(try store.unfinished().map(\.id) == [running, queued])

        // A limit below the unfinished tasks alone deletes every ended task and stops.
        let rest = try store.prune(RetentionRules(maxBytes: 1)).removed
        #expect(rest.count == kept.count)
        #expect(try store.tasks(TaskQuery()).map(\.id) == [queued, running])
    }
}

/// Retention under a shared store: one user's volume must not cost another user's records.
@Suite struct FairRetentionTests {
    /// A task of `who` with a large argv that ended at `time`, with the given events.
    func heavy(_ store: AuditStore, _ who: Submitter, at time: Double, argvBytes: Int = 64 << 10, events: [NewEvent] = []) throws -> Int64 {
        let id = try store.createTask(newTask(who, at: time, argv: ["/bin/echo", String(repeating: "A", count: argvBytes)]))
        try store.markStarted(id: id, at: time, cgroup: nil, scratch: "/scratch/\(id)")
        try store.finish(id: id, outcome: exited(at: time + 1, result: "{\"exitCode\":0}"), events: events)
        return id
    }

    @Test func theHeaviestUserShedsFirstAndBulkGoesBeforeRecords() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let root = Submitter(uid: 0, gid: 0, pid: 1, exe: "/usr/bin/cordon")
        // Root's and bob's small, older records, then alice's flood of 64 KiB argvs.
        let rootTask = try store.createTask(newTask(root, at: 1))
        try store.finish(id: rootTask, outcome: exited(at: 2), events: [])
        let bobTask = try store.createTask(newTask(bob, at: 3))
        try store.finish(id: bobTask, outcome: exited(at: 4), events: [NewEvent(kind: "denied", time: 4, detail: "{\"syscall\":\"ptrace\"}")])
        var flood: [Int64] = []
        for i in 0..<200 { flood.append(try heavy(store, alice, at: Double(10 + i))) }
        let aliceDenial = try heavy(store, alice, at: 5, events: [NewEvent(kind: "denied", time: 6, detail: "{}")])
        let before = try store.usage()
        #expect(before[1000]!.recordBytes > 200 * (64 << 10) && before[0]!.recordBytes < 4096)

        let report = try store.prune(RetentionRules(maxBytes: 2 << 20, keepDenialsSince: 0))
        #expect(report.shedForSize == [1000], "only the heaviest user paid: \(report.shedForSize)")
        #expect(report.stripped > 0 && !report.overMaxBytes)
        #expect(try store.task(id: rootTask) != nil && store.task(id: bobTask) != nil, "the others' records are all there")
        #expect(try store.events(EventQuery(taskID: bobTask)).map(\.kind).contains("denied"))
        // Bulk went first: alice's tasks are all still recorded, their argv cut to a note.
        let kept = try #require(try store.task(id: flood[0]))
        #expect(kept.argv.count == 2 && kept.argv[0] == "/bin/echo" && kept.argv[1].contains("removed by audit retention"), "\(kept.argv)")
        #expect(kept.result == nil && kept.exitCode == 0)
        #expect(try store.task(id: aliceDenial) != nil)
        #expect(try store.events(EventQuery(taskID: aliceDenial)).map(\.kind).contains("denied"))
    }

    @Test func aUserOverItsQuotaShedsOnlyItsOwnOldestRecordsAndNeverYoungDenials() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let bobTask = try store.createTask(newTask(bob, at: 1, argv: ["/bin/echo", String(repeating: "B", count: 8000)]))
        try store.finish(id: bobTask, outcome: exited(at: 2), events: [])
        // Alice: old denial (before keepDenialsSince), young denial, and many plain tasks.
        let oldDenial = try heavy(store, alice, at: 3, argvBytes: 10, events: [NewEvent(kind: "denied", time: 4, detail: "{}")])
        let youngDenial = try heavy(store, alice, at: 500, argvBytes: 10, events: [NewEvent(kind: "denied", time: 501, detail: "{}")])
        var plain: [Int64] = []
        for i in 0..<300 { plain.append(try heavy(store, alice, at: Double(10 + i), argvBytes: 10)) }
        try store.record(NewEvent(kind: "auth-refused", taskID: nil, uid: 1000, time: 502, detail: "{}"))
        let quota: Int64 = 20_000
        let report = try store.prune(RetentionRules(maxBytesPerUser: quota, keepDenialsSince: 400))
        #expect(report.overQuota.keys.sorted() == [1000] && report.stillOverQuota.isEmpty)
        #expect(try store.usage()[1000]!.recordBytes <= quota)
        #expect(try store.task(id: bobTask)?.argv.last?.count == 8000, "bob's bulk is untouched: he is under his quota")
        #expect(try store.task(id: youngDenial) != nil, "a task with a denial younger than keepDenialsSince stays")
        #expect(try store.task(id: oldDenial) == nil, "an older denial is not protected")
        #expect(try store.task(id: plain[0]) == nil && store.task(id: plain.last!) != nil, "oldest first")
        #expect(try store.events(EventQuery(kinds: ["auth-refused"])).count == 1)
        #expect(report.removed.contains { $0.id == plain[0] && $0.scratch == "/scratch/\(plain[0])" })

        // Only protected records left above a tiny quota: said, not looped on.
        let tight = try store.prune(RetentionRules(maxBytesPerUser: 10, keepDenialsSince: 400))
        #expect(tight.stillOverQuota == [1000])
        #expect(try store.task(id: youngDenial) != nil && store.events(EventQuery(kinds: ["auth-refused"])).count == 1)
    }

    /// Tool calls are records like the others: counted in their user's usage, shed (after the
    /// user's tasks and events) when over quota, dropped by age; a young refusal is kept.
    @Test func toolCallsAreCountedShedAndAgedLikeOtherRecords() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        func call(_ who: Submitter, at time: Double, outcome: String = "ok", arguments: String? = nil) throws -> Int64 {
            try store.recordToolCall(NewToolCall(time: time, caller: who, tool: "time.get_current_time", outcome: outcome, message: nil, instance: 1,
                                                 policy: "time-tool", policyHash: String(repeating: "a", count: 64), argumentBytes: 20,
                                                 argumentSHA256: String(repeating: "b", count: 64), arguments: arguments, resultBytes: 100,
                                                 isError: false, latencySeconds: 0.001, attempts: []))
        }
        for i in 0..<200 { _ = try call(alice, at: Double(10 + i), arguments: String(repeating: "x", count: 400)) }
        _ = try call(alice, at: 600, outcome: "refused")
        _ = try call(bob, at: 5)
        let held = try #require(try store.usage()[1000]?.recordBytes)
        #expect(held > 200 * 400, "tool calls are not counted: \(held)")
        let report = try store.prune(RetentionRules(maxBytesPerUser: 20_000, keepDenialsSince: 400))
        #expect(report.overQuota.keys.sorted() == [1000])
        #expect(try store.usage()[1000]!.recordBytes <= 20_000)
        let left = try store.toolCalls(uid: 1000, limit: 1000)
        #expect(left.contains { $0.outcome == "refused" } && left.count < 200, "\(left.count)")
        #expect(try store.toolCalls(uid: 1001).count == 1, "bob's call is untouched: he is under his quota")
        _ = try store.prune(RetentionRules(olderThan: 1000, keepDenialsSince: 400))
        #expect(try store.toolCalls(limit: 1000).map(\.outcome) == ["refused"], "only the young refusal outlives the age rule")
    }

    /// A huge argv[0] is cut too: a stripped task is never bulky again, so shedding ends.
    @Test func strippingEndsEvenWhenTheCommandItselfIsHuge() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        var ids: [Int64] = []
        for i in 0..<8 {
            let id = try store.createTask(newTask(at: Double(i), argv: [String(repeating: "x", count: 200_000)]))
            try store.finish(id: id, outcome: exited(at: Double(i)), events: [NewEvent(kind: "denied", time: Double(i), detail: "{}")])
            ids.append(id)
        }
        var rules = RetentionRules(maxBytesPerUser: 100_000, keepDenialsSince: 0)
        rules.maxSteps = 1000
        let report = try store.prune(rules)
        #expect(!report.incomplete && report.stripped == 8 && report.stillOverQuota.isEmpty, "\(report)")
        #expect(try store.task(id: ids[0])?.argv.first?.count == AuditStore.keptCommandCharacters)
        let again = try store.prune(rules)
        #expect(again.stripped == 0 && !again.incomplete)
    }

    /// Quotas count bytes: SQLite's length() of text counts characters.
    @Test func usageCountsBytesNotCharacters() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let id = try store.createTask(newTask(argv: ["true", String(repeating: "😀", count: 10_000)]))
        try store.finish(id: id, outcome: exited(at: 1), events: [])
        #expect(try store.usage()[1000]!.recordBytes > 40_000)
    }

    /// A pass is many short transactions, not one long one: other writes commit in between.
    @Test func retentionRunsInBoundedBatches() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        for i in 0..<1000 {
            let id = try store.createTask(newTask(at: Double(i)))
            try store.finish(id: id, outcome: exited(at: Double(i)), events: [])
        }
        let before = store.writerStatistics.commits
        var rules = RetentionRules(olderThan: 2000)
        rules.batch = 100
        #expect(try store.prune(rules).removed.count == 1000)
        #expect(store.writerStatistics.commits - before >= 10, "\(store.writerStatistics.commits - before) commits for 1000 tasks in batches of 100")
    }

    @Test func ageRetentionKeepsYoungDenialsAndStripsTheirTasks() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let kept = try heavy(store, alice, at: 10, events: [NewEvent(kind: "denied", time: 11, detail: "{}")])
        let gone = try heavy(store, alice, at: 12)
        try store.record(NewEvent(kind: "auth-refused", taskID: nil, uid: 1000, time: 13, detail: "{}"))
        try store.record(NewEvent(kind: "daemon-start", time: 13))
        let report = try store.prune(RetentionRules(olderThan: 100, keepDenialsSince: 5))
        #expect(report.removed.map(\.id) == [gone])
        #expect(try store.task(id: kept)?.argv.count == 2, "kept for its denial, without its bulk")
        #expect(try store.events(EventQuery()).map(\.kind).sorted() == ["denied", "finished", "started", "submitted", "auth-refused"].sorted())
    }
}

@Suite struct ErrorTests {
    @Test func missingOrUnusableDirectory() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let missing = dir.path + "/no/such/dir/audit.db"
        let error = auditError { _ = try AuditStore(path: missing) }
        #expect(error?.code == .storage)
        #expect(error?.description == "audit database \(missing): create: No such file or directory")

        writeFile(dir.path + "/plain", [1, 2, 3])
        let underFile = dir.path + "/plain/audit.db"
        let notDir = auditError { _ = try AuditStore(path: underFile) }
        #expect(notDir?.description == "audit database \(underFile): create: Not a directory")

        if getuid() != 0 {
            let readOnly = dir.path + "/ro"
            mkdir(readOnly, 0o500)
            let denied = auditError { _ = try AuditStore(path: readOnly + "/audit.db") }
            #expect(denied?.description.contains("Permission denied") == true)
        }
    }

    @Test func aFileThatIsNotSQLiteIsRefusedAndLeftAlone() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let bytes = Array("this is not a database, just some text that happens to be long enough to read a header\n".utf8)
            + [UInt8](repeating: 0xAB, count: 8192)
        writeFile(dir.database, bytes)
        let error = auditError { _ = try AuditStore(path: dir.database) }
        #expect(error?.code == .incompatible)
        #expect(error?.description.hasPrefix("audit database \(dir.database): ") == true)
        #expect(error?.description.contains("not a database") == true)
        #expect(readFile(dir.database) == bytes)
    }

    /// A store written before tasks had `changes_bytes` gains the column when opened; a task's
    /// held changes count with its output until `forgetChanges`, which happens once.
    @Test func changesBytesAreAddedToAnOlderStoreAndForgottenOnce() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        try AuditStore(path: dir.database).close()
        try SQLiteDatabase(path: dir.database).execute("ALTER TABLE tasks DROP COLUMN changes_bytes")
        let store = try AuditStore(path: dir.database)
        defer { store.close() }
        let id = try store.createTask(newTask(argv: ["/bin/true"]))
        try store.markStarted(id: id, at: 1_700_000_001, cgroup: nil, scratch: "/var/lib/cordon/tasks/\(id)")
        var outcome = TaskOutcome(state: .finished, reason: "exited", exitCode: 0, finishedAt: 1_700_000_002, stdoutBytes: 10)
        outcome.changesBytes = 5000
        try store.finish(id: id, outcome: outcome, events: [])
        #expect(try store.task(id: id)?.changesBytes == 5000)
        #expect(try store.usage()[1000]?.outputBytes == 5010)
        let event = NewEvent(kind: "changes-discarded", taskID: id, uid: 1000, time: 1_700_000_003, detail: "{\"by\":1000}")
        #expect(try store.forgetChanges(id: id, event: event))
        #expect(try !store.forgetChanges(id: id, event: event), "already forgotten")
        #expect(try store.task(id: id)?.changesBytes == 0)
        #expect(try store.usage()[1000]?.outputBytes == 10)
        #expect(try store.events(EventQuery(taskID: id, kinds: ["changes-discarded"])).count == 1)
    }

    @Test func aNewerSchemaIsRefusedAndLeftAlone() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        try AuditStore(path: dir.database).close()
        try SQLiteDatabase(path: dir.database).execute("PRAGMA user_version = 99")
        let before = readFile(dir.database)
        let error = auditError { _ = try AuditStore(path: dir.database) }
        #expect(error?.code == .incompatible)
        #expect(error?.description == "audit database \(dir.database): read schema version: schema version 99 is newer than this cordond understands (1); refusing to open it")
        #expect(readFile(dir.database) == before)
    }

    @Test func anotherSQLiteDatabaseIsRefused() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        try SQLiteDatabase(path: dir.database).execute("CREATE TABLE records (id TEXT)")
        let error = auditError { _ = try AuditStore(path: dir.database) }
        #expect(error?.code == .incompatible)
        #expect(error?.description.contains("not an audit database") == true)
    }

    @Test func aSymlinkIsRefused() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        try AuditStore(path: dir.database).close()
        let link = dir.path + "/link.db"
        symlink(dir.database, link)
        let error = auditError { _ = try AuditStore(path: link) }
        #expect(error?.code == .storage)
        #expect(error?.description.hasPrefix("audit database \(link): ") == true)
    }

    @Test func writesAndReadsAfterCloseFail() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        let id = try store.createTask(newTask())
        store.close()
        store.close()
        let create = auditError { _ = try store.createTask(newTask()) }
        #expect(create?.code == .closed)
        #expect(create?.description == "audit database \(dir.database): create task: the store is closed")
        #expect(auditError { try store.markStarted(id: id, at: 1, cgroup: nil, scratch: nil) }?.code == .closed)
        #expect(auditError { try store.record(NewEvent(kind: "x", time: 1)) }?.code == .closed)
        #expect(auditError { _ = try store.prune(RetentionRules(olderThan: 1)) }?.code == .closed)
        #expect(auditError { _ = try store.task(id: id) }?.code == .closed)
        #expect(auditError { _ = try store.events(EventQuery()) }?.code == .closed)
    }

    @Test func theFileIsPrivate() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        _ = try store.createTask(newTask())
        for file in [dir.database, dir.database + "-wal"] {
            var info = stat()
            #expect(stat(file, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600, "\(file)")
        }
    }
}

/// `SQLiteDatabase.rows(_:binding:)`: statements kept between calls of the same text.
@Suite struct KeptStatementTests {
    /// Kept statements answer each call with its own bindings, from several threads at once
    /// (one in use is never shared), past the number kept, and after the schema changed.
    @Test func keptStatementsAnswerEachCallAsAFreshOneWould() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let db = try SQLiteDatabase(path: dir.database)
        try db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        for k in 0..<50 { _ = try db.rows("INSERT INTO t (k, v) VALUES (?1, ?2)", binding: [.integer(Int64(k)), .text("v\(k)")]) }
        let wrong = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for i in 0..<200 {
                let k = Int64((thread * 7 + i) % 50)
                let got = try? db.rows("SELECT v FROM t WHERE k = ?1", binding: [.integer(k)])
                if got != [[.text("v\(k)")]] { wrong.withLock { $0.append("\(k): \(String(describing: got))") } }
            }
        }
        #expect(wrong.withLock { $0 }.isEmpty, "\(wrong.withLock { $0.prefix(5) })")
        // Texts run again are kept once; more texts than are kept, each twice: never more kept
        // than the limit, and what comes last is kept.
        let kept = db.keptStatements
        #expect(kept == 2, "\(kept)")
        for round in 0..<2 {
            for n in 0..<(SQLiteDatabase.keptLimit + 20) {
                #expect(try db.rows("SELECT count(*) + \(n) FROM t WHERE k < ?1", binding: [.integer(10)]) == [[.integer(Int64(10 + n))]], "round \(round)")
            }
        }
        #expect(db.keptStatements == SQLiteDatabase.keptLimit)
        // A text in use all along stays kept among one-off texts; the oldest one-offs go.
        let hot = "SELECT v FROM t WHERE k = ?1"
        for n in 0..<(3 * SQLiteDatabase.keptLimit) {
            _ = try db.rows("SELECT \(n) + count(*) FROM t", binding: [])
            #expect(try db.rows(hot, binding: [.integer(3)]) == [[.text("v3")]])
        }
        #expect(db.keeps(hot) && !db.keeps("SELECT 0 + count(*) FROM t") && db.keeps("SELECT \(3 * SQLiteDatabase.keptLimit - 1) + count(*) FROM t"))
        #expect(db.keptStatements == SQLiteDatabase.keptLimit)
        // The schema changed under a kept statement: it is prepared again by SQLite.
        #expect(try db.rows("SELECT * FROM t WHERE k = ?1", binding: [.integer(1)]) == [[.integer(1), .text("v1")]])
        try db.execute("ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 7")
        #expect(try db.rows("SELECT * FROM t WHERE k = ?1", binding: [.integer(1)]) == [[.integer(1), .text("v1"), .integer(7)]])
        // A failing statement leaves nothing broken behind it.
        for _ in 0..<2 {
            #expect(throws: SQLiteDatabase.Failure.self) { try db.rows("INSERT INTO t (k, v) VALUES (?1, ?2)", binding: [.integer(1), .text("again")]) }
        }
        _ = try db.rows("INSERT INTO t (k, v) VALUES (?1, ?2)", binding: [.integer(100), .text("v100")])
        #expect(try db.rows("SELECT v FROM t WHERE k = ?1", binding: [.integer(100)]) == [[.text("v100")]])
    }

    /// Releasing the connection finalises what it kept, so it really closes: the last
    /// connection of a WAL database checkpoints it and removes the log (a statement left
    /// unfinalised makes the close fail and leaves the log and the descriptors behind).
    @Test func aConnectionWithKeptStatementsCloses() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        do {
            let db = try SQLiteDatabase(path: dir.database)
            _ = try db.rows("PRAGMA journal_mode = WAL", binding: [])
            try db.execute("CREATE TABLE t (k INTEGER)")
            _ = try db.rows("INSERT INTO t (k) VALUES (?1)", binding: [.integer(1)])
            _ = try db.rows("SELECT k FROM t", binding: [])
            #expect(access(dir.database + "-wal", F_OK) == 0)
        }
        #expect(access(dir.database + "-wal", F_OK) != 0, "the connection did not close: its log is still there")
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let onIt = open.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.hasPrefix(dir.database) == true }
        #expect(onIt.isEmpty, "descriptors still open on the database: \(onIt)")
    }
}
