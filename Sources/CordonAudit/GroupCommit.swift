import CordonSQLite
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// What a write hands back to its caller.
enum WriteOutput: Sendable {
    case none
    case id(Int64)
    case ids([Int64])
    case pruned([(id: Int64, scratch: String?)])
    case count(Int)
}

/// One write waiting for the writer thread. `output` is set by the writer thread before it sets
/// `done` under the queue's lock; the waiter reads it only after seeing `done` under that lock.
final class PendingWrite: @unchecked Sendable {
    let operation: String
    let body: @Sendable (WriterConnection) throws(AuditError) -> WriteOutput
    /// Run a TRUNCATE checkpoint after the commit (prune: give the space back to the file system).
    let checkpoint: Bool
    /// Whether the commit must reach the disk before the caller goes on (fsync, synchronous=FULL).
    /// A non-durable write (a task's "started" mark, the submission of a task whose submitter
    /// waits for its end) is committed atomically and survives the daemon's death (it is in the
    /// page cache); a power loss spares it once the write-ahead log has been synced up to and
    /// including it: by the next durable commit, or by the writer thread within
    /// `WriteQueue.flushAfter` seconds when no durable commit comes first.
    let durable: Bool
    var output: Result<WriteOutput, AuditError>?
    var done = false

    init(_ operation: String, checkpoint: Bool = false, durable: Bool = true,
         _ body: @escaping @Sendable (WriterConnection) throws(AuditError) -> WriteOutput) {
        self.operation = operation
        self.checkpoint = checkpoint
        self.durable = durable
        self.body = body
    }
}

/// The write connection. Used by the thread that opens the store until the writer thread
/// starts, then only by the writer thread.
final class WriterConnection: @unchecked Sendable {
    let db: SQLiteDatabase
    let path: String
    /// The operation being run, for error messages.
    var operation = "open"
    /// The connection's current `PRAGMA synchronous` (FULL when the store was opened).
    private var syncing = true

    init(db: SQLiteDatabase) {
        self.db = db
        self.path = db.path
    }

    func fail(_ code: AuditError.Code, _ message: String) -> AuditError {
        AuditError(code, path: path, operation, message)
    }

    /// Runs `sql` (a prepared statement the connection keeps) with bound `values` and returns
    /// its rows. Not for a pragma SQLite applies when preparing it (`synchronous`): use `execute`.
    @discardableResult
    func rows(_ sql: String, _ values: [SQLiteValue] = []) throws(AuditError) -> [[SQLiteValue]] {
        do { return try db.rows(sql, binding: values) } catch { throw fail(.storage, error.description) }
    }

    /// Runs SQL text without parameters (transaction control, pragmas).
    func execute(_ sql: String) throws(AuditError) {
        do { try db.execute(sql) } catch { throw fail(.storage, "\(sql): \(error.message)") }
    }

    /// The write-ahead log, open for `syncLog` from its first use to the connection's end: one
    /// descriptor, so that a write-back error the kernel reports once is reported to it (a
    /// descriptor opened after the error would not see it).
    private var log: Int32 = -1

    deinit { closeLog() }

    /// Closes the log's descriptor (the writer thread, stopping: not left to the last reference).
    func closeLog() {
        if log >= 0 { Glibc.close(log) }
        log = -1
    }

    /// Syncs the write-ahead log to the disk (fdatasync of the -wal file): every commit made so
    /// far is then durable. The connection has written to it (in WAL mode it exists from the
    /// first commit until the last connection closes).
    func syncLog() throws(AuditError) {
        let wal = path + "-wal"
        if log < 0 {
            log = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            if log < 0 { throw AuditError(.storage, path: wal, "sync log", SystemError.text(errno)) }
        }
        if fdatasync(log) != 0 { throw AuditError(.storage, path: wal, "sync log", SystemError.text(errno)) }
    }

    /// The first column of the first row, as an integer.
    func integer(_ sql: String, _ values: [SQLiteValue] = []) throws(AuditError) -> Int64 {
        guard case .integer(let value)? = try rows(sql, values).first?.first else {
            throw fail(.storage, "\(sql): no integer result")
        }
        return value
    }

    /// Runs a batch in one transaction, each write inside its own savepoint so that a write
    /// refused for its own reasons (unknown id, wrong state) does not take the others with it.
    /// Sets every write's output.
    /// `sync`: commit with an fsync even if no write asks for one (a sync of the log is due).
    func commit(_ batch: [PendingWrite], sync: Bool = false) {
        // FULL fsyncs the write-ahead log at commit; NORMAL does not. Set between transactions,
        // by SQLite, whose failed fsync fails the COMMIT and leaves the transaction unpublished
        // (an fsync of ours after a NORMAL commit would leave it standing, and the kernel reports
        // a lost write-back once). Parsed each time: SQLite applies this pragma when it prepares it.
        let durable = sync || batch.contains(where: \.durable)
        if durable != syncing {
            operation = "synchronous"
            do {
                try execute(durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                syncing = durable
            } catch where durable {
                // Never report a durable write that was not synced.
                for item in batch { item.output = .failure(error) }
                return
            } catch {}
        }
        // Transaction control through cached statements: sqlite3_exec would parse each again.
        operation = "begin"
        do { try rows("BEGIN IMMEDIATE") } catch {
            for item in batch { item.output = .failure(error) }
            return
        }
        // One write alone needs no savepoint: refused, the whole transaction is rolled back.
        let alone = batch.count == 1
        for (index, item) in batch.enumerated() {
            operation = item.operation
            do {
                if !alone { try rows("SAVEPOINT write") }
                let output = try item.body(self)
                if !alone { try rows("RELEASE write") }
                item.output = .success(output)
            } catch {
                item.output = .failure(error)
                if alone {
                    if db.inTransaction { _ = try? rows("ROLLBACK") }
                    return
                }
                if db.inTransaction {
                    _ = try? rows("ROLLBACK TO write")
                    _ = try? rows("RELEASE write")
                } else {
                    // SQLite rolled the whole transaction back (I/O error, disk full): nothing
                    // of this batch is stored, so no write may report success.
                    let lost = fail(.storage, "transaction rolled back after: \(error.description)")
                    for earlier in batch[..<index] { earlier.output = .failure(lost) }
                    for later in batch[(index + 1)...] { later.output = .failure(lost) }
                    return
                }
            }
        }
        operation = "commit"
        do { try rows("COMMIT") } catch {
            if db.inTransaction { _ = try? rows("ROLLBACK") }
            for item in batch { if case .success = item.output { item.output = .failure(error) } }
            return
        }
        if batch.contains(where: \.checkpoint) {
            // TRUNCATE: the main file shrinks to what incremental_vacuum left and the WAL to zero.
            // Busy (a reader mid-query) only delays that to a later checkpoint.
            operation = "checkpoint"
            _ = try? rows("PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }
}

/// The queue between writers and the writer thread, guarded by a monitor so that waiters can
/// sleep on its conditions. A write submitted while nothing else is queued or being committed
/// is committed by its own thread, at once: a hand-off to the writer thread and back costs two
/// wake-ups, more than the commit itself on an idle daemon (a tool call's record is on its
/// answer's path). Writes that arrive while a commit runs queue for the writer thread, which
/// commits them together (group commit). The connection is used by one thread at a time.
///
/// Non-durable commits are synced by the next durable one; when none comes within `flushAfter`
/// seconds of the first of them, the writer thread syncs the log itself (`syncLog`), so no
/// commit stays off the disk for longer than that.
final class WriteQueue: @unchecked Sendable {
    /// `work`: a write is queued, the connection is free again, the queue is closed, or the
    /// log has commits to sync. `done`: a batch is done, or the writer thread stopped. Two
    /// conditions, so that a submit wakes the writer, not the other waiters.
    private let monitor = Monitor(conditions: 2)
    private static let work = Monitor.Condition(0)
    private static let done = Monitor.Condition(1)
    // Guarded by `monitor`.
    private var pending: [PendingWrite] = []
    private var closed = false
    private var stopped = false
    /// A thread (the writer, or a submitter committing its own write) holds the connection.
    private var busy = false
    private var connection: WriterConnection?
    private var statistics = WriterStatistics(commits: 0, operations: 0)
    private var thread: Threads.Joinable?
    /// When the oldest commit not yet synced to the disk was made (nil: every commit is).
    private var unsyncedSince: Double?
    /// The writer thread waits for a submitter to give the connection back.
    private var writerWaitsForConnection = false
    /// The log has grown past `checkpointPages`: the writer checkpoints it next.
    private var checkpointDue = false
    /// SQLite's own automatic checkpoint threshold, kept, now on the writer thread.
    static let checkpointPages = 1000
    let path: String
    /// How long a non-durable commit may wait for a durable one before the writer syncs the log.
    let flushAfter: Double

    init(path: String, flushAfter: Double = 0.05) {
        self.path = path
        self.flushAfter = flushAfter
    }

    var writerStatistics: WriterStatistics { monitor.locked { statistics } }

    /// Writes waiting for the connection (for tests).
    var queued: Int { monitor.locked { pending.count } }

    /// Starts the writer thread; from now on `connection` is used only by the thread holding
    /// `busy`. All signals are blocked in the writer: it must not be picked to run the daemon's
    /// signal handlers.
    func start(_ connection: WriterConnection) throws(AuditError) {
        monitor.locked { self.connection = connection }
        let started: Threads.Joinable
        do { started = try Threads.start("audit-writer", signals: .none) { [self] in serve(connection) } }
        catch {
            monitor.locked { self.connection = nil }
            throw AuditError(.storage, path: path, "start writer thread", error.description)
        }
        monitor.locked { thread = started }
    }

    /// Notes what a finished commit left unsynced (with the lock held): a durable commit syncs
    /// the log up to itself, a non-durable one leaves it (and what came before) for later.
    private func committed(_ batch: [PendingWrite], synced: Bool = false) {
        if !checkpointDue, let connection, connection.db.logPages >= Self.checkpointPages {
            checkpointDue = true
            monitor.signal(Self.work)
        }
        let stored = batch.contains { if case .success = $0.output { true } else { false } }
        guard stored else {
            statistics.failedCommits += 1
            return
        }
        if synced || batch.contains(where: \.durable) {
            statistics.durableCommits += 1
            unsyncedSince = nil
        } else {
            statistics.nonDurableCommits += 1
            if unsyncedSince == nil {
                unsyncedSince = MonotonicClock.now
                // The writer sleeps without a deadline while everything is synced: give it one.
                monitor.signal(Self.work)
            }
        }
    }

    /// Whether the log has waited `flushAfter` for a sync (with the lock held).
    private var syncDue: Bool { unsyncedSince.map { MonotonicClock.now >= $0 + flushAfter } ?? false }

    /// Syncs the log with the connection held (`busy`), then gives the connection back. A
    /// failure is kept (`syncFailures`, `lastSyncError`): the kernel reports a lost write-back
    /// once, so a later sync that succeeds does not bring back what was lost; the commits since
    /// `unsyncedSince` are retried after another `flushAfter` and by the next durable commit.
    private func sync(_ connection: WriterConnection) {
        var failure: AuditError?
        do { try connection.syncLog() } catch { failure = error }
        monitor.locked {
            busy = false
            if let failure {
                statistics.syncFailures += 1
                statistics.lastSyncError = failure.description
                // Closing, the database's own close is the last chance.
                unsyncedSince = closed ? nil : MonotonicClock.now
            } else {
                statistics.syncs += 1
                unsyncedSince = nil
            }
            if !pending.isEmpty || closed || writerWaitsForConnection { monitor.signal(Self.work) }
        }
    }

    /// Commits `write` (on this thread when the connection is free and nothing is queued, else
    /// queued for the writer thread) and returns once its batch is committed (or failed).
    func submit(_ write: PendingWrite) throws(AuditError) -> WriteOutput {
        // Never nil: a write that cannot be committed at once waits for the writer.
        try submit(write, onlyIfFree: false)!
    }

    /// `onlyIfFree`: commit `write` on this thread if that can start at once (the connection
    /// free, nothing queued, no sync or checkpoint of the log due), else do nothing and return nil — for a
    /// thread that others wait on, which must not wait for the store or the disk (a model
    /// worker's reader). A sync that falls due meanwhile is left to the writer thread.
    func submit(_ write: PendingWrite, onlyIfFree: Bool) throws(AuditError) -> WriteOutput? {
        let own: WriterConnection? = try monitor.locked { () throws(AuditError) in
            guard !closed else { throw AuditError(.closed, path: path, write.operation, "the store is closed") }
            // A checkpoint that is due goes first (the writer's): a writer that keeps finding
            // the connection free must not keep putting it off.
            if !busy, pending.isEmpty, !checkpointDue, let connection, !(onlyIfFree && syncDue) {
                busy = true
                return connection
            }
            if onlyIfFree { return nil }
            pending.append(write)
            // While a commit runs, its thread wakes the writer when it is done (a wake-up now
            // would find the connection busy and sleep again).
            if !busy { monitor.signal(Self.work) }
            _ = monitor.wait(Self.done) { write.done }
            return nil
        }
        if let own {
            own.commit([write])
            let mustSync: Bool = monitor.locked {
                write.done = true
                statistics.commits += 1
                statistics.operations += 1
                committed([write])
                // A sync that is due is made here, with the connection still held: writers that
                // keep finding it free must not keep putting the writer's sync off.
                if syncDue && !onlyIfFree { return true }
                busy = false
                // Writes queued meanwhile, a close, the writer waiting to sync, or a sync this
                // caller leaves to it: the writer's turn.
                if !pending.isEmpty || closed || writerWaitsForConnection || syncDue { monitor.signal(Self.work) }
                return false
            }
            if mustSync { sync(own) }
        } else if onlyIfFree {
            return nil
        }
        return try (write.output ?? .failure(AuditError(.storage, path: path, write.operation, "no result"))).get()
    }

    private enum Step {
        /// `sync`: with an fsync, a sync of the log being due.
        case commit([PendingWrite], sync: Bool)
        case sync
        case checkpoint
        case stop
    }

    /// What the writer does next (with the lock held): once the connection is free, commit what
    /// is queued; sync the log when a commit has waited `flushAfter` for it; stop once closed
    /// and drained (syncing first).
    private func nextStep() -> Step {
        while true {
            if busy {
                // A submitter commits its own write; it wakes us when it is done.
                writerWaitsForConnection = true
                _ = monitor.wait(Self.work) { !busy }
                writerWaitsForConnection = false
            }
            if checkpointDue && !closed {
                busy = true
                return .checkpoint
            }
            if !pending.isEmpty {
                defer { pending = [] }
                busy = true
                // Writes that keep coming must not put a due sync off: this commit makes it.
                return .commit(pending, sync: syncDue)
            }
            if unsyncedSince != nil && (closed || syncDue) {
                busy = true
                return .sync
            }
            if closed { return .stop }
            let deadline = unsyncedSince.map { $0 + flushAfter }
            // Woken by a write, a close, or a first unsynced commit (which brings a deadline
            // where there was none); a submitter may take the connection meanwhile.
            _ = monitor.wait(Self.work, until: deadline) {
                busy || !pending.isEmpty || closed || checkpointDue || (deadline == nil && unsyncedSince != nil)
            }
        }
    }

    /// The writer thread: commit what is queued as one transaction and wake its waiters; sync
    /// the log when a non-durable commit has waited long enough; on close, drain and stop.
    private func serve(_ connection: WriterConnection) {
        while true {
            let step = monitor.locked { nextStep() }
            switch step {
            case .stop:
                connection.closeLog()
                monitor.locked {
                    stopped = true
                    // The last reference: the database closes with this thread (close() says so).
                    self.connection = nil
                    monitor.broadcast(Self.done)
                }
                return
            case .sync:
                // No commit runs during the sync (the connection is ours): it covers them all.
                sync(connection)
            case .checkpoint:
                // PASSIVE: copies what no reader still needs, never waits for one; what is left
                // goes at a later checkpoint. (The log is synced first, whatever `synchronous`.)
                connection.operation = "checkpoint"
                _ = try? connection.rows("PRAGMA wal_checkpoint(PASSIVE)")
                monitor.locked {
                    busy = false
                    checkpointDue = false
                    statistics.checkpoints += 1
                }
            case .commit(let batch, let sync):
                connection.commit(batch, sync: sync)
                monitor.locked {
                    busy = false
                    for write in batch { write.done = true }
                    statistics.commits += 1
                    statistics.operations += batch.count
                    committed(batch, synced: sync)
                    monitor.broadcast(Self.done)
                }
            }
        }
    }

    /// Refuses new writes, lets the writer thread commit what is queued, and returns once it has
    /// stopped. Safe to call more than once and from several threads.
    func close() {
        let joinable: Threads.Joinable? = monitor.locked {
            let first = !closed
            closed = true
            monitor.signal(Self.work)
            if first { return thread }
            _ = monitor.wait(Self.done) { thread == nil || stopped }
            return nil
        }
        joinable?.join()
    }
}
