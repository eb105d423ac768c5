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
    /// A non-durable write (a task's "started" mark) is committed atomically and survives the
    /// daemon's death (it is in the page cache), but only the next durable commit, which
    /// syncs the write-ahead log up to and including it, protects it from a power loss.
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
    private var statements: [String: Statement] = [:]
    /// The connection's current `PRAGMA synchronous` (FULL when the store was opened).
    private var syncing = true

    init(db: SQLiteDatabase) {
        self.db = db
        self.path = db.path
    }

    func fail(_ code: AuditError.Code, _ message: String) -> AuditError {
        AuditError(code, path: path, operation, message)
    }

    /// Runs `sql` (a cached prepared statement) with bound `values` and returns its rows.
    @discardableResult
    func rows(_ sql: String, _ values: [SQLiteValue] = []) throws(AuditError) -> [[SQLiteValue]] {
        do {
            let statement: Statement
            if let cached = statements[sql] {
                statement = cached
            } else {
                statement = try db.prepare(sql)
                statements[sql] = statement
            }
            return try statement.rows(binding: values)
        } catch { throw fail(.storage, error.description) }
    }

    /// Runs SQL text without parameters (transaction control, pragmas).
    func execute(_ sql: String) throws(AuditError) {
        do { try db.execute(sql) } catch { throw fail(.storage, "\(sql): \(error.message)") }
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
    func commit(_ batch: [PendingWrite]) {
        // FULL fsyncs the write-ahead log at commit; NORMAL does not. Set between transactions.
        let durable = batch.contains(where: \.durable)
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
        operation = "begin"
        do { try execute("BEGIN IMMEDIATE") } catch {
            for item in batch { item.output = .failure(error) }
            return
        }
        for (index, item) in batch.enumerated() {
            operation = item.operation
            do {
                try execute("SAVEPOINT write")
                let output = try item.body(self)
                try execute("RELEASE write")
                item.output = .success(output)
            } catch {
                item.output = .failure(error)
                if db.inTransaction {
                    try? execute("ROLLBACK TO write")
                    try? execute("RELEASE write")
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
        do { try execute("COMMIT") } catch {
            try? execute("ROLLBACK")
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
/// sleep on its conditions.
final class WriteQueue: @unchecked Sendable {
    /// `work`: a write is queued or the queue is closed. `done`: a batch is done, or the writer
    /// thread stopped. Two conditions, so that a submit wakes the writer, not the other waiters.
    private let monitor = Monitor(conditions: 2)
    private static let work = Monitor.Condition(0)
    private static let done = Monitor.Condition(1)
    // Guarded by `monitor`.
    private var pending: [PendingWrite] = []
    private var closed = false
    private var stopped = false
    private var statistics = WriterStatistics(commits: 0, operations: 0)
    private var thread: Threads.Joinable?
    let path: String

    init(path: String) {
        self.path = path
    }

    var writerStatistics: WriterStatistics { monitor.locked { statistics } }

    /// Starts the writer thread, which owns `connection` from now on. All signals are blocked
    /// in it: it must not be picked to run the daemon's signal handlers.
    func start(_ connection: WriterConnection) throws(AuditError) {
        let started: Threads.Joinable
        do { started = try Threads.start("audit-writer", signals: .none) { [self] in serve(connection) } }
        catch { throw AuditError(.storage, path: path, "start writer thread", error.description) }
        monitor.locked { thread = started }
    }

    /// Queues `write` and sleeps until its batch is committed (or failed).
    func submit(_ write: PendingWrite) throws(AuditError) -> WriteOutput {
        let output: Result<WriteOutput, AuditError> = try monitor.locked { () throws(AuditError) in
            guard !closed else { throw AuditError(.closed, path: path, write.operation, "the store is closed") }
            pending.append(write)
            monitor.signal(Self.work)
            _ = monitor.wait(Self.done) { write.done }
            return write.output ?? .failure(AuditError(.storage, path: path, write.operation, "no result"))
        }
        return try output.get()
    }

    /// The writer thread: take everything queued, commit it as one transaction, wake the
    /// waiters; on close, drain what is queued and stop.
    private func serve(_ connection: WriterConnection) {
        while true {
            let batch: [PendingWrite] = monitor.locked {
                _ = monitor.wait(Self.work) { !pending.isEmpty || closed }
                defer { pending = [] }
                return pending
            }
            if batch.isEmpty { break }
            connection.commit(batch)
            monitor.locked {
                for write in batch { write.done = true }
                statistics.commits += 1
                statistics.operations += batch.count
                monitor.broadcast(Self.done)
            }
        }
        monitor.locked {
            stopped = true
            monitor.broadcast(Self.done)
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
