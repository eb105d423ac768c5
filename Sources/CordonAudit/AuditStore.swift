import CordonJSON
import CordonSQLite
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's audit store: tasks and their events in one SQLite file (WAL).
///
/// Writes go through one writer thread that groups whatever is queued into one transaction
/// and one fsync (synchronous=FULL), so each durable write call returns once its data is on
/// disk while concurrent writers share the cost of the commit; a non-durable one (a "started"
/// mark, a tool call's record) is synced by the next durable commit or within 50 ms. Reads use a second connection and run
/// alongside the writes. The file is created 0600: argv and results may carry secrets.
public final class AuditStore: Sendable {
    /// The schema this code writes; a file with a larger `PRAGMA user_version` is refused.
    public static let schemaVersion: Int64 = 1

    public let path: String
    private let queue: WriteQueue
    /// Nil once closed. One read at a time holds it: SQLite keeps a connection's read
    /// transaction (its snapshot) open while any statement on it is active, so overlapping reads
    /// on a shared connection could keep seeing the database as it was before a commit that
    /// already returned — a reader must always start a fresh snapshot.
    private let reader: Mutex<SQLiteDatabase?>

    /// Opens the store at `path`, creating the file and schema if needed.
    public init(path: String) throws(AuditError) {
        self.path = path
        try Self.createPrivateFile(path)
        let writer: WriterConnection
        do {
            writer = WriterConnection(db: try SQLiteDatabase(path: path, followSymlinks: false))
        } catch { throw AuditError(.storage, path: path, "open", error.message) }
        try Self.prepareSchema(writer)
        let readDB: SQLiteDatabase
        do {
            readDB = try SQLiteDatabase(path: path, create: false, followSymlinks: false)
            try readDB.execute("PRAGMA query_only = ON")
        } catch { throw AuditError(.storage, path: path, "open read connection", error.message) }
        reader = Mutex(readDB)
        queue = WriteQueue(path: path)
        try queue.start(writer)
    }

    deinit { close() }

    /// Commits the writes already queued, stops the writer thread and closes the database.
    /// Later calls fail with `AuditError.Code.closed`. Safe to call more than once.
    public func close() {
        queue.close()
        _ = reader.withLock { db in
            let old = db
            db = nil
            return old
        }
    }

    /// How many commits the writer made for how many writes since the store was opened.
    public var writerStatistics: WriterStatistics { queue.writerStatistics }

    /// Writes waiting for the connection while another commits (for tests).
    var queuedWrites: Int { queue.queued }

    // MARK: Opening

    /// Creates the file 0600 if it does not exist (SQLite gives the -wal and -shm files the same
    /// mode). Refuses a symbolic link, like the SQLite open after it.
    private static func createPrivateFile(_ path: String) throws(AuditError) {
        do {
            let fd = try syscallRetrying("create", path: path) { open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600) }
            Glibc.close(fd)
        } catch where error.errno == EEXIST {
            return
        } catch {
            throw AuditError(.storage, path: path, "create", SystemError.text(error.errno))
        }
    }

    /// Checks the schema version, then (for a new file) sets auto_vacuum before anything is
    /// written — it cannot change once tables exist — and creates the schema in one transaction.
    private static func prepareSchema(_ w: WriterConnection) throws(AuditError) {
        w.operation = "read schema version"
        let (version, tables) = try schemaState(w)
        if version > schemaVersion {
            throw w.fail(.incompatible, "schema version \(version) is newer than this cordond understands (\(schemaVersion)); refusing to open it")
        }
        if version == 0 && tables > 0 {
            throw w.fail(.incompatible, "not an audit database (\(tables) tables but no schema version)")
        }
        if version == 0 {
            w.operation = "set auto_vacuum"
            try w.execute("PRAGMA auto_vacuum = INCREMENTAL")
        }
        w.operation = "set journal mode"
        guard case .text(let mode)? = try w.rows("PRAGMA journal_mode = WAL").first?.first, mode.lowercased() == "wal" else {
            throw w.fail(.storage, "could not switch to WAL")
        }
        w.operation = "configure"
        // FULL: a commit is on disk (WAL fsynced) before a write call returns. The WAL is cut
        // back to 4 MiB after checkpoints so the file size stays close to the data.
        try w.execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = 4194304")
        // Checkpoints are the writer thread's (WriteQueue), never a committing caller's.
        w.db.keepLogPages()
        w.operation = "create schema"
        try w.execute("BEGIN IMMEDIATE")
        do {
            let (again, _) = try schemaState(w)
            if again == 0 {
                try w.execute(schema)
                // A pragma takes no bound parameter; this is our own constant.
                try w.execute("PRAGMA user_version = \(schemaVersion)")
            }
            try w.execute("COMMIT")
        } catch {
            try? w.execute("ROLLBACK")
            throw error
        }
        // Retention measures and sheds one uid's events (added after version 1 shipped: an
        // index changes no row, so older readers are unaffected).
        w.operation = "create index events_uid"
        try w.execute("CREATE INDEX IF NOT EXISTS events_uid ON events (uid)")
        // Tool calls (added after version 1 shipped, like the index: a new table changes no row).
        w.operation = "create table tool_calls"
        try w.execute(toolCallsSchema)
        // Model calls (added like tool_calls: a new table changes no row).
        w.operation = "create table model_calls"
        try w.execute(modelCallsSchema)
        // Columns added after their tables: an older table gains them.
        // The denials of a call.
        try addColumn(w, table: "tool_calls", column: "denials", definition: "TEXT NOT NULL DEFAULT '[]'")
        // The bytes of a copy-on-write workspace's captured changes, held with the task's output.
        try addColumn(w, table: "tasks", column: "changes_bytes", definition: "INTEGER NOT NULL DEFAULT 0")
        // What the row is: a task, or a session (docs/daemon.md, "Sessions").
        try addColumn(w, table: "tasks", column: "kind", definition: "TEXT NOT NULL DEFAULT 'task'")
    }

    /// `ALTER TABLE table ADD COLUMN column definition`, unless the table has it already.
    private static func addColumn(_ w: WriterConnection, table: String, column: String, definition: String) throws(AuditError) {
        w.operation = "add \(table).\(column)"
        let columns: [[SQLiteValue]]
        do { columns = try w.db.prepare("SELECT name FROM pragma_table_info('\(table)')").rows(binding: []) }
        catch { throw AuditError(.storage, path: w.path, w.operation, error.message) }
        if !columns.contains(where: { $0.first == .text(column) }) {
            try w.execute("ALTER TABLE \(table) ADD COLUMN \(column) \(definition)")
        }
    }

    private static func schemaState(_ w: WriterConnection) throws(AuditError) -> (version: Int64, tables: Int64) {
        // On a file that is not SQLite this is the first read, and fails with "file is not a database".
        let version: SQLiteValue?, tables: SQLiteValue?
        do {
            version = try w.db.prepare("PRAGMA user_version").rows(binding: []).first?.first
            tables = try w.db.prepare("SELECT count(*) FROM sqlite_schema").rows(binding: []).first?.first
        } catch { throw AuditError(.incompatible, path: w.path, w.operation, error.message) }
        guard case .integer(let v)? = version, case .integer(let t)? = tables else {
            throw w.fail(.incompatible, "no schema version")
        }
        return (v, t)
    }

    /// Version 1. UInt64 counters are stored as INTEGER with the same bit pattern; argv is a
    /// JSON array; times are REAL seconds since the epoch.
    private static let schema = """
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            exe TEXT NOT NULL,
            label TEXT,
            policy TEXT NOT NULL,
            policy_hash TEXT NOT NULL,
            argv TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'cancelled', 'lost')),
            reason TEXT,
            exit_code INTEGER,
            signal INTEGER,
            submitted_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            cpu_user_seconds REAL,
            cpu_system_seconds REAL,
            peak_memory_bytes INTEGER,
            stdout_bytes INTEGER NOT NULL DEFAULT 0,
            stderr_bytes INTEGER NOT NULL DEFAULT 0,
            cgroup TEXT,
            scratch TEXT,
            result TEXT
        );
        CREATE INDEX tasks_state ON tasks (state);
        CREATE INDEX tasks_uid ON tasks (uid);
        CREATE INDEX tasks_policy ON tasks (policy);
        CREATE INDEX tasks_finished_at ON tasks (finished_at);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            task_id INTEGER REFERENCES tasks (id),
            uid INTEGER,
            detail TEXT NOT NULL
        );
        CREATE INDEX events_task ON events (task_id);
        CREATE INDEX events_time ON events (time);
        """

    /// One row per tool call through the gateway. `attempts` is a JSON array of {tool, outcome,
    /// message}; `arguments` is NULL unless the tool's manifest asks for them to be kept.
    private static let toolCallsSchema = """
        CREATE TABLE IF NOT EXISTS tool_calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            exe TEXT NOT NULL,
            tool TEXT NOT NULL,
            outcome TEXT NOT NULL,
            message TEXT,
            instance INTEGER,
            policy TEXT,
            policy_hash TEXT,
            argument_bytes INTEGER NOT NULL,
            argument_sha256 TEXT NOT NULL,
            arguments TEXT,
            result_bytes INTEGER NOT NULL,
            is_error INTEGER NOT NULL,
            latency_seconds REAL NOT NULL,
            attempts TEXT NOT NULL,
            denials TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX IF NOT EXISTS tool_calls_time ON tool_calls (time);
        CREATE INDEX IF NOT EXISTS tool_calls_uid ON tool_calls (uid);
        """

    /// Records one tool call; returns its id.
    public func recordToolCall(_ call: NewToolCall) throws(AuditError) -> Int64 {
        let operation = "record tool call"
        guard call.time.isFinite, call.latencySeconds.isFinite else { throw refuse(operation, "a time is not finite") }
        let attempts = JSON.array(call.attempts.map { a in
            .object([("tool", .string(a.tool)), ("outcome", .string(a.outcome)), ("message", a.message.map(JSON.string) ?? .null)])
        }).text
        let denials = JSON.array(call.denials.map { d in
            var members: [(String, JSON)] = [("kind", .string(d.kind)), ("what", .string(d.what))]
            if let reason = d.reason { members.append(("reason", .string(reason))) }
            return .object(members)
        }).text
        let output = try write(operation, durable: false) { w throws(AuditError) in
            try w.rows("""
                INSERT INTO tool_calls (time, uid, gid, pid, exe, tool, outcome, message, instance, policy, policy_hash,
                                        argument_bytes, argument_sha256, arguments, result_bytes, is_error, latency_seconds, attempts, denials)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                """, [.real(call.time), .integer(Int64(call.caller.uid)), .integer(Int64(call.caller.gid)), .integer(Int64(call.caller.pid)),
                      .text(call.caller.exe), .text(call.tool), .text(call.outcome), SQLiteValue(call.message),
                      call.instance.map { .integer(Int64($0)) } ?? .null, SQLiteValue(call.policy), SQLiteValue(call.policyHash),
                      .integer(Int64(call.argumentBytes)), .text(call.argumentSHA256), SQLiteValue(call.arguments),
                      .integer(Int64(call.resultBytes)), .integer(call.isError ? 1 : 0), .real(call.latencySeconds), .text(attempts),
                      .text(denials)])
            return .id(w.db.lastInsertRowID)
        }
        guard case .id(let id) = output else { throw AuditError(.storage, path: path, operation, "no id") }
        return id
    }

    /// The most recent tool calls (newest first), of `uid` only when given; `onlyDenials`: only
    /// calls refused or whose sandbox was refused something.
    public func toolCalls(uid: UInt32? = nil, limit: Int = 100, onlyDenials: Bool = false) throws(AuditError) -> [ToolCallRow] {
        var conditions: [String] = []
        if uid != nil { conditions.append("uid = ?2") }
        if onlyDenials { conditions.append("(outcome = 'refused' OR denials <> '[]')") }
        let sql = """
            SELECT id, time, uid, tool, outcome, message, instance, policy, policy_hash, argument_bytes, argument_sha256,
                   result_bytes, is_error, latency_seconds, attempts, denials
            FROM tool_calls \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) ORDER BY id DESC LIMIT ?1
            """
        var values: [SQLiteValue] = [.integer(Int64(max(1, min(limit, 10_000))))]
        if let uid { values.append(.integer(Int64(uid))) }
        return try read("read tool calls") { db throws(AuditError) in
            try rows(db, "read tool calls", sql, values).map { r in
                func text(_ v: SQLiteValue) -> String? { if case .text(let t) = v { return t }; return nil }
                func int(_ v: SQLiteValue) -> Int64? { if case .integer(let n) = v { return n }; return nil }
                func real(_ v: SQLiteValue) -> Double { if case .real(let d) = v { return d }; return 0 }
                return ToolCallRow(id: int(r[0]) ?? 0, time: real(r[1]), uid: UInt32(truncatingIfNeeded: int(r[2]) ?? 0), tool: text(r[3]) ?? "",
                                   outcome: text(r[4]) ?? "", message: text(r[5]), instance: int(r[6]), policy: text(r[7]), policyHash: text(r[8]),
                                   argumentBytes: int(r[9]) ?? 0, argumentSHA256: text(r[10]) ?? "", resultBytes: int(r[11]) ?? 0,
                                   isError: int(r[12]) == 1, latencySeconds: real(r[13]), attempts: text(r[14]) ?? "[]",
                                   denials: text(r[15]) ?? "[]")
            }
        }
    }

    // MARK: Writes

    func write(_ operation: String, checkpoint: Bool = false, durable: Bool = true,
                       _ body: @escaping @Sendable (WriterConnection) throws(AuditError) -> WriteOutput) throws(AuditError) -> WriteOutput {
        try queue.submit(PendingWrite(operation, checkpoint: checkpoint, durable: durable, body))
    }

    /// `write`, only if it can be committed on this thread at once (`WriteQueue.submit(_:onlyIfFree:)`):
    /// nil, and nothing written, when the store is busy.
    func writeIfFree(_ operation: String, durable: Bool = true,
                     _ body: @escaping @Sendable (WriterConnection) throws(AuditError) -> WriteOutput) throws(AuditError) -> WriteOutput? {
        try queue.submit(PendingWrite(operation, durable: durable, body), onlyIfFree: true)
    }

    func refuse(_ operation: String, _ message: String) -> AuditError {
        AuditError(.invalid, path: path, operation, message)
    }

    static let insertEvent = "INSERT INTO events (time, kind, task_id, uid, detail) VALUES (?1, ?2, ?3, ?4, ?5)"

    /// Records a queued task and its "submitted" event; returns the task's id (never reused).
    /// `durable: false` when nobody is told of the task before its end is recorded (a submitter
    /// that waits for the end): its end's durable commit syncs this one too, and the writer
    /// syncs it within `WriteQueue.flushAfter` if the task runs longer.
    public func createTask(_ task: NewTask, durable: Bool = true) throws(AuditError) -> Int64 {
        let operation = "create task"
        guard task.submittedAt.isFinite else { throw refuse(operation, "submittedAt is not finite") }
        let argv = JSON.array(task.argv.map(JSON.string)).text
        let detail = task.workspace.map { w in
            // An empty path: a scratch workspace (files put into a layer over nothing).
            var members: [(String, JSON)] = w.path.isEmpty ? [("scratch", .bool(true))]
                : [("workspace", .string(w.path)), ("writable", .bool(w.writable))]
            if w.cow { members.append(("cow", .bool(true))) }
            return JSON.object(members).text
        } ?? "{}"
        let output = try write(operation, durable: durable) { w throws(AuditError) in
            try w.rows("""
                INSERT INTO tasks (uid, gid, pid, exe, label, policy, policy_hash, argv, state, submitted_at, kind)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?10)
                """, [.integer(Int64(task.submitter.uid)), .integer(Int64(task.submitter.gid)),
                      .integer(Int64(task.submitter.pid)), .text(task.submitter.exe), SQLiteValue(task.label),
                      .text(task.policy), .text(task.policyHash), .text(argv), .real(task.submittedAt), .text(task.kind)])
            let id = w.db.lastInsertRowID
            try w.rows(Self.insertEvent, [.real(task.submittedAt), .text("submitted"), .integer(id),
                                          .integer(Int64(task.submitter.uid)), .text(detail)])
            return .id(id)
        }
        guard case .id(let id) = output else { throw AuditError(.storage, path: path, operation, "no id") }
        return id
    }

    /// Moves a queued task to running and records a "started" event.
    public func markStarted(id: Int64, at time: Double, cgroup: String?, scratch: String?) throws(AuditError) {
        let operation = "mark task \(id) started"
        let start = TaskStart(time: time, cgroup: cgroup, scratch: scratch)
        guard time.isFinite else { throw refuse(operation, "time is not finite") }
        _ = try write(operation, durable: false) { w throws(AuditError) in
            try Self.start(id, start, w)
            return .none
        }
    }

    /// `ifQueued`: a task that is not queued is left as it is (its start recorded already, or
    /// its state for the caller's next statement to refuse).
    private static func start(_ id: Int64, _ start: TaskStart, _ w: WriterConnection, ifQueued: Bool = false) throws(AuditError) {
        let rows = try w.rows("""
            UPDATE tasks SET state = 'running', started_at = ?2, cgroup = ?3, scratch = ?4
            WHERE id = ?1 AND state = 'queued' RETURNING uid
            """, [.integer(id), .real(start.time), SQLiteValue(start.cgroup), SQLiteValue(start.scratch)])
        if ifQueued && rows.isEmpty { return }
        guard let uid = rows.first?.first else { throw try Self.stateConflict(w, id, expected: "queued") }
        try w.rows(Self.insertEvent, [.real(start.time), .text("started"), .integer(id), uid, .text("{}")])
    }

    /// Records how a queued or running task ended, the given events (those without a task id
    /// are attached to this task) and a "finished", "cancelled" or "lost" event, atomically.
    /// `started`: the task's start, recorded first in the same transaction (as `markStarted`
    /// would) when the task is still queued — a task that ended before anything else of it was
    /// recorded costs one commit where it took two; one started already keeps its start.
    public func finish(id: Int64, outcome: TaskOutcome, events: [NewEvent], started: TaskStart? = nil) throws(AuditError) {
        let operation = "finish task \(id)"
        guard outcome.state.isTerminal else { throw refuse(operation, "outcome state \(outcome.state.rawValue) is not an end state") }
        guard outcome.finishedAt.isFinite else { throw refuse(operation, "finishedAt is not finite") }
        if let started, !started.time.isFinite { throw refuse(operation, "the start's time is not finite") }
        for event in events { try validate(event, operation) }
        let detail = Self.endDetail(reason: outcome.reason, exitCode: outcome.exitCode, signal: outcome.signal)
        _ = try write(operation) { w throws(AuditError) in
            if let started { try Self.start(id, started, w, ifQueued: true) }
            let rows = try w.rows("""
                UPDATE tasks SET state = ?2, reason = ?3, exit_code = ?4, signal = ?5, finished_at = ?6,
                    cpu_user_seconds = ?7, cpu_system_seconds = ?8, peak_memory_bytes = ?9,
                    stdout_bytes = ?10, stderr_bytes = ?11, result = ?12, changes_bytes = ?13
                WHERE id = ?1 AND state IN ('queued', 'running') RETURNING uid
                """, [.integer(id), .text(outcome.state.rawValue), .text(outcome.reason),
                      SQLiteValue(outcome.exitCode.map(Int64.init)), SQLiteValue(outcome.signal.map(Int64.init)),
                      .real(outcome.finishedAt), SQLiteValue(outcome.cpuUserSeconds), SQLiteValue(outcome.cpuSystemSeconds),
                      SQLiteValue(outcome.peakMemoryBytes.map { Int64(bitPattern: $0) }),
                      .integer(Int64(bitPattern: outcome.stdoutBytes)), .integer(Int64(bitPattern: outcome.stderrBytes)),
                      SQLiteValue(outcome.result), .integer(outcome.changesBytes)])
            guard let uid = rows.first?.first else { throw try Self.stateConflict(w, id, expected: "queued or running") }
            for event in events {
                var event = event
                if event.taskID == nil { event.taskID = id }
                _ = try Self.insert(event, w)
            }
            try w.rows(Self.insertEvent, [.real(outcome.finishedAt), .text(outcome.state.rawValue), .integer(id), uid, .text(detail)])
            return .none
        }
    }

    /// Records one event; returns its id. An event naming a task that does not exist is refused.
    @discardableResult
    public func record(_ event: NewEvent) throws(AuditError) -> Int64 {
        let operation = "record \(event.kind) event"
        try validate(event, operation)
        let output = try write(operation) { w throws(AuditError) in .id(try Self.insert(event, w)) }
        guard case .id(let id) = output else { throw AuditError(.storage, path: path, operation, "no id") }
        return id
    }

    /// Marks the given tasks lost (reason "lost", finishedAt `time`) with one "lost" event each.
    /// Only tasks still queued or running change; returns the ids that did.
    @discardableResult
    public func markLost(ids: [Int64], at time: Double) throws(AuditError) -> [Int64] {
        let operation = "mark tasks lost"
        guard time.isFinite else { throw refuse(operation, "time is not finite") }
        let detail = Self.endDetail(reason: "lost", exitCode: nil, signal: nil)
        let output = try write(operation) { w throws(AuditError) in
            var changed: [Int64] = []
            for id in ids {
                let rows = try w.rows("""
                    UPDATE tasks SET state = 'lost', reason = 'lost', finished_at = ?2
                    WHERE id = ?1 AND state IN ('queued', 'running') RETURNING uid
                    """, [.integer(id), .real(time)])
                guard let uid = rows.first?.first else { continue }
                try w.rows(Self.insertEvent, [.real(time), .text("lost"), .integer(id), uid, .text(detail)])
                changed.append(id)
            }
            return .ids(changed)
        }
        guard case .ids(let changed) = output else { throw AuditError(.storage, path: path, operation, "no ids") }
        return changed
    }

    private static func insert(_ event: NewEvent, _ w: WriterConnection) throws(AuditError) -> Int64 {
        if let task = event.taskID, try w.rows("SELECT 1 FROM tasks WHERE id = ?1", [.integer(task)]).isEmpty {
            throw w.fail(.notFound, "no task \(task)")
        }
        try w.rows(insertEvent, [.real(event.time), .text(event.kind), SQLiteValue(event.taskID),
                                 SQLiteValue(event.uid.map(Int64.init)), .text(event.detail)])
        return w.db.lastInsertRowID
    }

    /// The error for an UPDATE that matched no row: the task is missing or in another state.
    private static func stateConflict(_ w: WriterConnection, _ id: Int64, expected: String) throws(AuditError) -> AuditError {
        guard case .text(let state)? = try w.rows("SELECT state FROM tasks WHERE id = ?1", [.integer(id)]).first?.first else {
            return w.fail(.notFound, "no task \(id)")
        }
        return w.fail(.conflict, "task \(id) is \(state), not \(expected)")
    }

    private func validate(_ event: NewEvent, _ operation: String) throws(AuditError) {
        guard !event.kind.isEmpty else { throw refuse(operation, "event kind is empty") }
        guard event.time.isFinite else { throw refuse(operation, "event time is not finite") }
    }

    /// The detail of an end event, its keys sorted (as they were when Foundation's encoder
    /// wrote them): the same end is always the same text.
    static func endDetail(reason: String, exitCode: Int32?, signal: Int32?) -> String {
        var members: [(String, JSON)] = []
        if let exitCode { members.append(("exitCode", .int(Int64(exitCode)))) }
        members.append(("reason", .string(reason)))
        if let signal { members.append(("signal", .int(Int64(signal)))) }
        return JSON.object(members).text
    }

    /// Records that a copy-on-write task's held changes are gone (applied in full, or
    /// discarded): their bytes leave the task's output, and an event of `kind` with `detail`
    /// says who did it and what. False when the task holds no changes (already gone).
    public func forgetChanges(id: Int64, event: NewEvent) throws(AuditError) -> Bool {
        let operation = "forget the changes of task \(id)"
        try validate(event, operation)
        let output = try write(operation) { w throws(AuditError) in
            let rows = try w.rows("UPDATE tasks SET changes_bytes = 0 WHERE id = ?1 AND changes_bytes > 0 AND scratch IS NOT NULL RETURNING id", [.integer(id)])
            guard !rows.isEmpty else { return .count(0) }
            _ = try w.rows(Self.insertEvent, [.real(event.time), .text(event.kind), .integer(id), SQLiteValue(event.uid.map { Int64($0) }), .text(event.detail)])
            return .count(1)
        }
        if case .count(let n) = output { return n == 1 }
        return false
    }

    // MARK: Reads

    func read<T: Sendable>(_ operation: String, _ body: (SQLiteDatabase) throws(AuditError) -> T) throws(AuditError) -> T {
        try reader.withLock { (db: inout SQLiteDatabase?) throws(AuditError) -> T in
            guard let db else { throw AuditError(.closed, path: path, operation, "the store is closed") }
            return try body(db)
        }
    }

    func rows(_ db: SQLiteDatabase, _ operation: String, _ sql: String, _ values: [SQLiteValue]) throws(AuditError) -> [[SQLiteValue]] {
        do { return try db.rows(sql, binding: values) } catch {
            throw AuditError(.storage, path: path, operation, error.description)
        }
    }

    private static let taskColumns = """
        id, uid, gid, pid, exe, label, policy, policy_hash, argv, state, reason, exit_code, signal,
        submitted_at, started_at, finished_at, cpu_user_seconds, cpu_system_seconds, peak_memory_bytes,
        stdout_bytes, stderr_bytes, cgroup, scratch, result, changes_bytes, kind
        """

    public func task(id: Int64) throws(AuditError) -> TaskRecord? {
        try tasks(TaskQuery(id: id, limit: 1)).first
    }

    public func tasks(_ query: TaskQuery) throws(AuditError) -> [TaskRecord] {
        let operation = "query tasks"
        return try read(operation) { db throws(AuditError) in
            let rows = try rows(db, operation, """
                SELECT \(Self.taskColumns) FROM tasks
                WHERE (?1 IS NULL OR submitted_at >= ?1) AND (?2 IS NULL OR uid = ?2) AND (?3 IS NULL OR policy = ?3)
                    AND (?4 IS NULL OR id = ?4) AND (?5 IS NULL OR state IN (SELECT value FROM json_each(?5)))
                    AND (?7 IS NULL OR kind = ?7)
                ORDER BY id DESC LIMIT ?6
                """, [SQLiteValue(query.since), SQLiteValue(query.uid.map(Int64.init)), SQLiteValue(query.policy),
                      SQLiteValue(query.id), SQLiteValue(query.states.map { JSONArray.strings($0.map(\.rawValue)) }),
                      .integer(Int64(max(0, query.limit))), SQLiteValue(query.kind)])
            return try rows.map { row throws(AuditError) in try taskRecord(Row(values: row, path: path, operation: operation)) }
        }
    }

    /// Queued and running tasks, oldest first: what a restarted daemon must recover.
    public func unfinished() throws(AuditError) -> [TaskRecord] {
        let operation = "query unfinished tasks"
        return try read(operation) { db throws(AuditError) in
            let rows = try rows(db, operation, "SELECT \(Self.taskColumns) FROM tasks WHERE state IN ('queued', 'running') ORDER BY id", [])
            return try rows.map { row throws(AuditError) in try taskRecord(Row(values: row, path: path, operation: operation)) }
        }
    }

    /// Number of tasks in each state; every state is present, with 0 when there are none.
    public func countsByState() throws(AuditError) -> [TaskState: Int] {
        let operation = "count tasks"
        return try read(operation) { db throws(AuditError) in
            var counts = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
            for values in try rows(db, operation, "SELECT state, count(*) FROM tasks GROUP BY state", []) {
                let row = Row(values: values, path: path, operation: operation)
                guard let state = TaskState(rawValue: try row.text(0)) else { throw row.fail(0, "unknown state") }
                counts[state] = Int(try row.integer(1))
            }
            return counts
        }
    }

    public func events(_ query: EventQuery) throws(AuditError) -> [AuditEvent] {
        let operation = "query events"
        return try read(operation) { db throws(AuditError) in
            let rows = try rows(db, operation, """
                SELECT e.id, e.time, e.kind, e.task_id, e.uid, t.policy, e.detail
                FROM events e LEFT JOIN tasks t ON t.id = e.task_id
                WHERE (?1 IS NULL OR e.time >= ?1) AND (?2 IS NULL OR e.uid = ?2 OR t.uid = ?2)
                    AND (?3 IS NULL OR t.policy = ?3) AND (?4 IS NULL OR e.task_id = ?4)
                    AND (?5 IS NULL OR e.kind IN (SELECT value FROM json_each(?5))) AND (?6 IS NULL OR e.id > ?6)
                ORDER BY e.id LIMIT ?7
                """, [SQLiteValue(query.since), SQLiteValue(query.uid.map(Int64.init)), SQLiteValue(query.policy),
                      SQLiteValue(query.taskID), SQLiteValue(query.kinds.map(JSONArray.strings)), SQLiteValue(query.afterID),
                      .integer(Int64(max(0, query.limit)))])
            return try rows.map { values throws(AuditError) in
                let row = Row(values: values, path: path, operation: operation)
                return AuditEvent(id: try row.integer(0), time: try row.real(1), kind: try row.text(2),
                                  taskID: try row.optionalInteger(3), uid: try row.optionalInteger(4).map { v throws(AuditError) in try row.narrow(4, v) },
                                  policy: try row.optionalText(5), detail: try row.text(6))
            }
        }
    }

    /// Bytes on disk: the database file plus its WAL.
    public var fileBytes: Int64 {
        func size(_ path: String) -> Int64 {
            var info = stat()
            return stat(path, &info) == 0 ? Int64(info.st_size) : 0
        }
        return size(path) + size(path + "-wal")
    }

    private func taskRecord(_ row: Row) throws(AuditError) -> TaskRecord {
        let argvText = try row.text(8)
        // Any JSON writer's text reads: Foundation's encoder wrote "\/" for "/" before this
        // codec did not, and retention rewrites argv with SQLite's json_array.
        guard let argv = (try? JSON.parse(argvText, options: .init(maxValues: .max)))?.stringArrayValue else {
            throw row.fail(8, "argv is not a JSON array of strings")
        }
        guard let state = TaskState(rawValue: try row.text(9)) else { throw row.fail(9, "unknown state") }
        return TaskRecord(
            id: try row.integer(0),
            submitter: Submitter(uid: try row.narrow(1, row.integer(1)), gid: try row.narrow(2, row.integer(2)),
                                 pid: try row.narrow(3, row.integer(3)), exe: try row.text(4)),
            label: try row.optionalText(5), policy: try row.text(6), policyHash: try row.text(7), argv: argv,
            state: state, reason: try row.optionalText(10),
            exitCode: try row.optionalInteger(11).map { v throws(AuditError) in try row.narrow(11, v) },
            signal: try row.optionalInteger(12).map { v throws(AuditError) in try row.narrow(12, v) },
            submittedAt: try row.real(13), startedAt: try row.optionalReal(14), finishedAt: try row.optionalReal(15),
            cpuUserSeconds: try row.optionalReal(16), cpuSystemSeconds: try row.optionalReal(17),
            peakMemoryBytes: try row.optionalInteger(18).map { UInt64(bitPattern: $0) },
            stdoutBytes: UInt64(bitPattern: try row.integer(19)), stderrBytes: UInt64(bitPattern: try row.integer(20)),
            cgroup: try row.optionalText(21), scratch: try row.optionalText(22), result: try row.optionalText(23),
            changesBytes: try row.integer(24), kind: try row.text(25))
    }
}

/// A result row with typed accessors that fail (naming the column) instead of trapping on a
/// value of the wrong type or range.
private struct Row {
    let values: [SQLiteValue]
    let path: String
    let operation: String

    func fail(_ column: Int, _ message: String) -> AuditError {
        AuditError(.storage, path: path, operation, "column \(column): \(message)")
    }

    private func value(_ column: Int) throws(AuditError) -> SQLiteValue {
        guard column < values.count else { throw fail(column, "missing") }
        return values[column]
    }

    func integer(_ column: Int) throws(AuditError) -> Int64 {
        guard let v = try optionalInteger(column) else { throw fail(column, "is NULL") }
        return v
    }

    func optionalInteger(_ column: Int) throws(AuditError) -> Int64? {
        switch try value(column) {
        case .null: return nil
        case .integer(let v): return v
        default: throw fail(column, "is not an integer")
        }
    }

    func real(_ column: Int) throws(AuditError) -> Double {
        guard let v = try optionalReal(column) else { throw fail(column, "is NULL") }
        return v
    }

    func optionalReal(_ column: Int) throws(AuditError) -> Double? {
        switch try value(column) {
        case .null: return nil
        case .real(let v): return v
        case .integer(let v): return Double(v)  // SQLite may store an integral REAL as INTEGER
        default: throw fail(column, "is not a number")
        }
    }

    func text(_ column: Int) throws(AuditError) -> String {
        guard let v = try optionalText(column) else { throw fail(column, "is NULL") }
        return v
    }

    func optionalText(_ column: Int) throws(AuditError) -> String? {
        switch try value(column) {
        case .null: return nil
        case .text(let v): return v
        default: throw fail(column, "is not text")
        }
    }

    func narrow<T: FixedWidthInteger>(_ column: Int, _ value: Int64) throws(AuditError) -> T {
        guard let v = T(exactly: value) else { throw fail(column, "\(value) is out of range") }
        return v
    }
}

/// JSON arrays bound as one parameter and expanded with json_each(), so a list filter needs
/// no SQL built from values.
enum JSONArray {
    static func strings(_ values: [String]) -> String {
        JSON.array(values.map(JSON.string)).text
    }

    static func integers(_ values: [Int64]) -> String {
        "[" + values.map(String.init).joined(separator: ",") + "]"
    }
}
