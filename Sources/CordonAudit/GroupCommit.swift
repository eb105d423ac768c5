import CordonSQLite
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

/// The queue between writers and the writer thread, guarded by a pthread mutex so that
/// waiters can sleep on condition variables.
final class WriteQueue: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when a write is queued or the queue is closed.
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Broadcast when a batch is done and when the writer thread stops.
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [PendingWrite] = []
    private var closed = false
    private var stopped = false
    private var statistics = WriterStatistics(commits: 0, operations: 0)
    private var thread: pthread_t?
    let path: String

    init(path: String) {
        self.path = path
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(work, nil)
        pthread_cond_init(done, nil)
    }

    deinit {
        pthread_cond_destroy(done)
        pthread_cond_destroy(work)
        pthread_mutex_destroy(mutex)
        done.deallocate()
        work.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () throws(AuditError) -> T) throws(AuditError) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    var writerStatistics: WriterStatistics {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return statistics
    }

    /// Starts the writer thread, which owns `connection` from now on. All signals are blocked
    /// in it: it must not be picked to run the daemon's signal handlers.
    func start(_ connection: WriterConnection) throws(AuditError) {
        final class Start {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        let start = Start { [self] in serve(connection) }
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var id = pthread_t()
        let context = Unmanaged.passRetained(start)
        let rc = pthread_create(&id, nil, { raw in
            Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context.toOpaque())
        guard rc == 0 else {
            context.release()
            throw AuditError(.storage, path: path, "start writer thread", String(cString: strerror(rc)))
        }
        pthread_mutex_lock(mutex)
        thread = id
        pthread_mutex_unlock(mutex)
    }

    /// Queues `write` and sleeps until its batch is committed (or failed).
    func submit(_ write: PendingWrite) throws(AuditError) -> WriteOutput {
        let output: Result<WriteOutput, AuditError> = try locked { () throws(AuditError) in
            guard !closed else { throw AuditError(.closed, path: path, write.operation, "the store is closed") }
            pending.append(write)
            pthread_cond_signal(work)
            while !write.done { pthread_cond_wait(done, mutex) }
            return write.output ?? .failure(AuditError(.storage, path: path, write.operation, "no result"))
        }
        return try output.get()
    }

    /// The writer thread: take everything queued, commit it as one transaction, wake the
    /// waiters; on close, drain what is queued and stop.
    private func serve(_ connection: WriterConnection) {
        pthread_mutex_lock(mutex)
        while true {
            while pending.isEmpty && !closed { pthread_cond_wait(work, mutex) }
            if pending.isEmpty { break }
            let batch = pending
            pending = []
            pthread_mutex_unlock(mutex)
            connection.commit(batch)
            pthread_mutex_lock(mutex)
            for write in batch { write.done = true }
            statistics.commits += 1
            statistics.operations += batch.count
            pthread_cond_broadcast(done)
        }
        stopped = true
        pthread_cond_broadcast(done)
        pthread_mutex_unlock(mutex)
    }

    /// Refuses new writes, lets the writer thread commit what is queued, and returns once it has
    /// stopped. Safe to call more than once and from several threads.
    func close() {
        pthread_mutex_lock(mutex)
        let first = !closed
        closed = true
        pthread_cond_signal(work)
        let joinable = first ? thread : nil
        if joinable == nil {
            while thread != nil && !stopped { pthread_cond_wait(done, mutex) }
        }
        pthread_mutex_unlock(mutex)
        if let joinable { pthread_join(joinable, nil) }
    }
}
