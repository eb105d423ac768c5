import CordonSQLite

/// Retention: what the store keeps when it must shrink, and who pays for it.
///
/// The store is shared by every user of the socket, so one user's volume must never push
/// another user's records out. Rules, in order:
/// 1. Age: ended tasks that ended before `olderThan` go with their events, and events and tool
///    calls older than that.
/// 2. Per user: a uid whose records take more than `maxBytesPerUser` sheds its own records.
/// 3. Size: while the store is larger than `maxBytes`, the uid with the most bytes sheds first.
/// Shedding a uid's records takes, oldest first, its bulk (an argv beyond its first item, the
/// result document) before whole tasks, whole tasks before events, and events before tool calls.
/// Denial events (`denied`, `auth-refused`) and refused tool calls at or after
/// `keepDenialsSince` are never deleted by any rule, nor the tasks they belong to (their bulk
/// may go). Queued and running tasks are never touched.
///
/// Every step is a transaction of at most `batch` tasks, queued on the writer like any other
/// write: submits and task ends commit between the steps instead of waiting for a whole pass.
public struct RetentionRules: Sendable {
    public var olderThan: Double?
    public var maxBytes: Int64?
    public var maxBytesPerUser: Int64?
    public var keepDenialsSince: Double?
    public var batch = 256
    /// Transactions one pass may make at most; a pass that runs out says so (`incomplete`) and
    /// the next one goes on, so no input can keep a pass running.
    public var maxSteps = 10_000

    public init(olderThan: Double? = nil, maxBytes: Int64? = nil, maxBytesPerUser: Int64? = nil, keepDenialsSince: Double? = nil) {
        self.olderThan = olderThan
        self.maxBytes = maxBytes
        self.maxBytesPerUser = maxBytesPerUser
        self.keepDenialsSince = keepDenialsSince
    }
}

/// What a retention pass did, and what it could not do.
public struct PruneReport: Sendable {
    /// Deleted tasks and their output directories, for the daemon to remove.
    public var removed: [(id: Int64, scratch: String?)] = []
    /// Tasks whose bulk went (argv cut to its first item and a note, result dropped).
    public var stripped = 0
    /// Users who shed records for going over `maxBytesPerUser`, with the bytes they held.
    public var overQuota: [UInt32: Int64] = [:]
    /// Users still over `maxBytesPerUser` after the pass: only protected records are left.
    public var stillOverQuota: Set<UInt32> = []
    /// Users who shed records for the store's `maxBytes`, heaviest first.
    public var shedForSize: [UInt32] = []
    /// The store is still larger than `maxBytes`: only unfinished or protected records are left.
    public var overMaxBytes = false
    /// The pass stopped at `maxSteps` with work left.
    public var incomplete = false
}

/// Bytes a user holds in the store: its records, and the output of its tasks still on disk.
public struct StoredUsage: Sendable, Equatable {
    public var recordBytes: Int64 = 0
    public var outputBytes: Int64 = 0
    public init(recordBytes: Int64 = 0, outputBytes: Int64 = 0) {
        self.recordBytes = recordBytes
        self.outputBytes = outputBytes
    }
}

extension AuditStore {
    /// Estimated bytes per row beyond its text (keys, numbers, index entries).
    public static let taskOverhead = 256, eventOverhead = 64, toolCallOverhead = 128, modelCallOverhead = 384
    static let ended = "state IN ('finished', 'cancelled', 'lost')"
    static let protectedKinds = "('denied', 'auth-refused')"
    /// Tool calls kept like denials: refusals (the daemon records at most its refusal rate).
    static let protectedCalls = "outcome = 'refused'"
    /// Model calls kept as long as denials are: refused ones, and those whose worker's sandbox
    /// was refused something.
    static let protectedModelCalls = "(outcome = 'refused' OR denials <> '[]')"
    /// A task is bulky when its argv and result take more than this many bytes. Stripping
    /// keeps at most `keptCommandCharacters` of argv[0] (4 bytes each at most) and a note, well
    /// under the threshold, so a stripped task is never bulky again and every strip frees bytes.
    static let bulkThreshold = 4096, keptCommandCharacters = 256

    /// The record bytes (an estimate: text lengths plus a fixed cost per row) and the output
    /// bytes still on disk (tasks whose scratch directory is recorded) of every uid.
    /// Only `uid`'s when given.
    public func usage(uid: UInt32? = nil) throws(AuditError) -> [UInt32: StoredUsage] {
        let operation = "measure usage"
        let only = SQLiteValue(uid.map { Int64($0) })
        return try read(operation) { db throws(AuditError) in
            var out: [UInt32: StoredUsage] = [:]
            for row in try rows(db, operation, """
                SELECT uid, sum(\(Self.taskOverhead) + length(CAST(argv AS BLOB)) + length(CAST(exe AS BLOB)) + length(CAST(policy AS BLOB)) + length(CAST(policy_hash AS BLOB))
                               + ifnull(length(CAST(label AS BLOB)), 0) + ifnull(length(CAST(result AS BLOB)), 0) + ifnull(length(CAST(cgroup AS BLOB)), 0) + ifnull(length(CAST(scratch AS BLOB)), 0)),
                       sum(CASE WHEN scratch IS NOT NULL THEN stdout_bytes + stderr_bytes + changes_bytes ELSE 0 END)
                FROM tasks WHERE ?1 IS NULL OR uid = ?1 GROUP BY uid
                """, [only]) {
                guard row.count == 3, case .integer(let uid) = row[0], let u = UInt32(exactly: uid),
                      case .integer(let records) = row[1], case .integer(let output) = row[2] else { continue }
                out[u, default: StoredUsage()].recordBytes += records
                out[u, default: StoredUsage()].outputBytes += output
            }
            for row in try rows(db, operation, "SELECT uid, sum(\(Self.eventOverhead) + length(CAST(kind AS BLOB)) + length(CAST(detail AS BLOB))) FROM events WHERE uid IS NOT NULL AND (?1 IS NULL OR uid = ?1) GROUP BY uid", [only]) {
                guard row.count == 2, case .integer(let uid) = row[0], let u = UInt32(exactly: uid), case .integer(let bytes) = row[1] else { continue }
                out[u, default: StoredUsage()].recordBytes += bytes
            }
            for row in try rows(db, operation, """
                SELECT uid, sum(\(Self.toolCallOverhead) + length(CAST(exe AS BLOB)) + length(CAST(tool AS BLOB)) + length(CAST(outcome AS BLOB))
                                + ifnull(length(CAST(message AS BLOB)), 0) + ifnull(length(CAST(policy AS BLOB)), 0) + ifnull(length(CAST(policy_hash AS BLOB)), 0)
                                + length(CAST(argument_sha256 AS BLOB)) + ifnull(length(CAST(arguments AS BLOB)), 0) + length(CAST(attempts AS BLOB)) + length(CAST(denials AS BLOB)))
                FROM tool_calls WHERE ?1 IS NULL OR uid = ?1 GROUP BY uid
                """, [only]) {
                guard row.count == 2, case .integer(let uid) = row[0], let u = UInt32(exactly: uid), case .integer(let bytes) = row[1] else { continue }
                out[u, default: StoredUsage()].recordBytes += bytes
            }
            for row in try rows(db, operation, """
                SELECT uid, sum(\(Self.modelCallOverhead) + length(CAST(exe AS BLOB)) + length(CAST(requested AS BLOB)) + length(CAST(reason AS BLOB))
                                + length(CAST(attempts AS BLOB)) + length(CAST(denials AS BLOB)) + ifnull(length(CAST(message AS BLOB)), 0))
                FROM model_calls WHERE ?1 IS NULL OR uid = ?1 GROUP BY uid
                """, [only]) {
                guard row.count == 2, case .integer(let uid) = row[0], let u = UInt32(exactly: uid), case .integer(let bytes) = row[1] else { continue }
                out[u, default: StoredUsage()].recordBytes += bytes
            }
            return out
        }
    }

    /// Applies `rules` (see `RetentionRules`), then gives freed pages back to the file system.
    public func prune(_ rules: RetentionRules) throws(AuditError) -> PruneReport {
        if let t = rules.olderThan, t.isNaN { throw refuse("prune", "olderThan is NaN") }
        if let t = rules.keepDenialsSince, t.isNaN { throw refuse("prune", "keepDenialsSince is NaN") }
        var report = PruneReport()
        let batch = max(1, rules.batch)
        let keep = rules.keepDenialsSince ?? Double.infinity
        // A task is protected while it holds a young denial event.
        let unprotected = "NOT EXISTS (SELECT 1 FROM events d WHERE d.task_id = tasks.id AND d.kind IN \(Self.protectedKinds) AND d.time >= ?2)"
        var steps = max(1, rules.maxSteps)
        func spend(_ report: inout PruneReport) -> Bool {
            guard steps > 0 else { report.incomplete = true; return false }
            steps -= 1
            return true
        }

        if let olderThan = rules.olderThan {
            while spend(&report) {
                let removed = try deleteTasks(where: "\(Self.ended) AND finished_at < ?1 AND \(unprotected)", [.real(olderThan), .real(keep)], batch)
                report.removed += removed
                if removed.count < batch { break }
            }
            while spend(&report), try deleteEvents(where: "task_id IS NULL AND time < ?1 AND NOT (kind IN \(Self.protectedKinds) AND time >= ?2)",
                                                   [.real(olderThan), .real(keep)], batch) == batch {}
            while spend(&report), try deleteCalls("tool_calls", where: "time < ?1 AND NOT (\(Self.protectedCalls) AND time >= ?2)",
                                                  [.real(olderThan), .real(keep)], batch) == batch {}
            while spend(&report), try deleteCalls("model_calls", where: "time < ?1 AND NOT (\(Self.protectedModelCalls) AND time >= ?2)",
                                                  [.real(olderThan), .real(keep)], batch) == batch {}
            // Old tasks kept for their denials still lose their bulk.
            while spend(&report) {
                let n = try stripBulk(where: "\(Self.ended) AND finished_at < ?1", [.real(olderThan)], batch)
                report.stripped += n
                if n < batch { break }
            }
        }

        var usage = try self.usage()
        if let quota = rules.maxBytesPerUser {
            for (uid, held) in usage.sorted(by: { $0.key < $1.key }) where held.recordBytes > quota {
                report.overQuota[uid] = held.recordBytes
                var step = Step(batch: batch)
                while let held = usage[uid]?.recordBytes, held > quota, spend(&report) {
                    let limit = try step.next(excess: held - quota, uid: uid, held: held, store: self)
                    guard try shed(uid, keep: keep, limit: limit, &report) else { report.stillOverQuota.insert(uid); break }
                    usage[uid] = try self.usage(uid: uid)[uid]
                    step.progress(now: usage[uid]?.recordBytes ?? 0, before: held)
                }
            }
        }

        if let maxBytes = rules.maxBytes {
            var exhausted = Set<UInt32>()
            var step = Step(batch: batch)
            while spend(&report) {
                let used = try usedBytes()
                if used <= maxBytes { break }
                guard let (uid, held) = usage.filter({ !exhausted.contains($0.key) && $0.value.recordBytes > 0 })
                    .max(by: { ($0.value.recordBytes, $1.key) < ($1.value.recordBytes, $0.key) }) else {
                    report.overMaxBytes = true
                    break
                }
                if report.shedForSize.last != uid {
                    report.shedForSize.append(uid)
                    step = Step(batch: batch)
                }
                let limit = try step.next(excess: used - maxBytes, uid: uid, held: held.recordBytes, store: self)
                if try !shed(uid, keep: keep, limit: limit, &report) { exhausted.insert(uid) }
                usage[uid] = try self.usage(uid: uid)[uid]
                step.progress(now: try usedBytes(), before: used)
            }
        }

        _ = try write("prune: vacuum", checkpoint: true) { w throws(AuditError) in
            try w.rows("PRAGMA incremental_vacuum")
            return .none
        }
        return report
    }

    /// One step of shedding `uid`'s records: its oldest bulk, else its oldest unprotected
    /// tasks, else its oldest unprotected events without a task, else its oldest unprotected
    /// tool calls. False when nothing is left.
    private func shed(_ uid: UInt32, keep: Double, limit batch: Int, _ report: inout PruneReport) throws(AuditError) -> Bool {
        let u = SQLiteValue.integer(Int64(uid))
        let stripped = try stripBulk(where: "\(Self.ended) AND uid = ?1", [u], batch)
        report.stripped += stripped
        if stripped > 0 { return true }
        let removed = try deleteTasks(where: """
            \(Self.ended) AND uid = ?1 AND NOT EXISTS (SELECT 1 FROM events d WHERE d.task_id = tasks.id AND d.kind IN \(Self.protectedKinds) AND d.time >= ?2)
            """, [u, .real(keep)], batch)
        report.removed += removed
        if !removed.isEmpty { return true }
        if try deleteEvents(where: "task_id IS NULL AND uid = ?1 AND NOT (kind IN \(Self.protectedKinds) AND time >= ?2)", [u, .real(keep)], batch) > 0 {
            return true
        }
        if try deleteCalls("tool_calls", where: "uid = ?1 AND NOT (\(Self.protectedCalls) AND time >= ?2)", [u, .real(keep)], batch) > 0 {
            return true
        }
        return try deleteCalls("model_calls", where: "uid = ?1 AND NOT (\(Self.protectedModelCalls) AND time >= ?2)", [u, .real(keep)], batch) > 0
    }

    /// How many of a uid's tasks one shedding step takes: about as many as make up the excess
    /// (at the uid's average bytes per task), at most a batch; twice as many after a step that
    /// freed nothing measurable (SQLite frees whole pages).
    struct Step {
        let batch: Int
        var atLeast = 1

        init(batch: Int) { self.batch = batch }

        func next(excess: Int64, uid: UInt32, held: Int64, store: AuditStore) throws(AuditError) -> Int {
            let tasks = try store.taskCount(uid: uid)
            let perTask = max(1, held / max(1, tasks))
            return Int(min(Int64(batch), max(Int64(atLeast), (excess + perTask - 1) / perTask)))
        }

        mutating func progress(now: Int64, before: Int64) { atLeast = now < before ? 1 : min(batch, atLeast * 2) }
    }

    func taskCount(uid: UInt32) throws(AuditError) -> Int64 {
        let operation = "count tasks"
        return try read(operation) { db throws(AuditError) in
            guard case .integer(let n)? = try rows(db, operation, "SELECT count(*) FROM tasks WHERE uid = ?1", [.integer(Int64(uid))]).first?.first else { return 0 }
            return n
        }
    }

    /// Cuts the argv of up to `limit` bulky matching tasks (oldest ended first) to the start of
    /// its first item and a note of how many bytes went, and drops their result documents.
    /// Returns how many. (Sizes are bytes: SQLite's `length` of text counts characters.)
    private func stripBulk(where condition: String, _ values: [SQLiteValue], _ limit: Int) throws(AuditError) -> Int {
        let output = try write("prune: strip bulk") { w throws(AuditError) in
            let rows = try w.rows("""
                UPDATE tasks SET
                    argv = json_array(substr(json_extract(argv, '$[0]'), 1, \(Self.keptCommandCharacters)),
                                      '… ' || (length(CAST(argv AS BLOB)) + ifnull(length(CAST(result AS BLOB)), 0)) || ' bytes of argv and result removed by audit retention'),
                    result = NULL
                WHERE id IN (SELECT id FROM tasks WHERE \(condition)
                             AND length(CAST(argv AS BLOB)) + ifnull(length(CAST(result AS BLOB)), 0) > \(Self.bulkThreshold)
                             ORDER BY finished_at, id LIMIT \(limit))
                RETURNING id
                """, values)
            return .count(rows.count)
        }
        guard case .count(let n) = output else { return 0 }
        return n
    }

    /// Deletes up to `limit` matching tasks, oldest ended first, with their events.
    private func deleteTasks(where condition: String, _ values: [SQLiteValue], _ limit: Int) throws(AuditError) -> [(id: Int64, scratch: String?)] {
        let output = try write("prune: delete tasks") { w throws(AuditError) in
            let rows = try w.rows("SELECT id, scratch FROM tasks WHERE \(condition) ORDER BY finished_at, id LIMIT \(limit)", values)
            var removed: [(id: Int64, scratch: String?)] = []
            for row in rows {
                guard row.count == 2, case .integer(let id) = row[0] else { throw w.fail(.storage, "malformed task row") }
                var scratch: String?
                if case .text(let text) = row[1] { scratch = text }
                removed.append((id, scratch))
            }
            guard !removed.isEmpty else { return .pruned([]) }
            let ids = JSONArray.integers(removed.map(\.id))
            try w.rows("DELETE FROM events WHERE task_id IN (SELECT value FROM json_each(?1))", [.text(ids)])
            try w.rows("DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?1))", [.text(ids)])
            return .pruned(removed)
        }
        guard case .pruned(let removed) = output else { return [] }
        return removed
    }

    /// Deletes up to `limit` matching rows of `table` (tool_calls, model_calls: our own
    /// constants), oldest first. Returns how many.
    private func deleteCalls(_ table: String, where condition: String, _ values: [SQLiteValue], _ limit: Int) throws(AuditError) -> Int {
        let output = try write("prune: delete \(table)") { w throws(AuditError) in
            let rows = try w.rows("DELETE FROM \(table) WHERE id IN (SELECT id FROM \(table) WHERE \(condition) ORDER BY id LIMIT \(limit)) RETURNING id", values)
            return .count(rows.count)
        }
        guard case .count(let n) = output else { return 0 }
        return n
    }

    /// Deletes up to `limit` matching events, oldest first. Returns how many.
    private func deleteEvents(where condition: String, _ values: [SQLiteValue], _ limit: Int) throws(AuditError) -> Int {
        let output = try write("prune: delete events") { w throws(AuditError) in
            let rows = try w.rows("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE \(condition) ORDER BY id LIMIT \(limit)) RETURNING id", values)
            return .count(rows.count)
        }
        guard case .count(let n) = output else { return 0 }
        return n
    }

    /// Bytes in pages that hold data (the file size once free pages are vacuumed).
    func usedBytes() throws(AuditError) -> Int64 {
        let operation = "measure the store"
        return try read(operation) { db throws(AuditError) in
            func value(_ pragma: String) throws(AuditError) -> Int64 {
                guard case .integer(let n)? = try rows(db, operation, "PRAGMA \(pragma)", []).first?.first else {
                    throw AuditError(.storage, path: path, operation, "PRAGMA \(pragma) gave no number")
                }
                return n
            }
            return try (value("page_count") - value("freelist_count")) * value("page_size")
        }
    }
}

extension AuditStore {
    /// The oldest ended tasks of `uid` whose output is still on disk: id, directory and bytes.
    public func outputs(of uid: UInt32, limit: Int) throws(AuditError) -> [(id: Int64, scratch: String, bytes: Int64)] {
        let operation = "query outputs"
        return try read(operation) { db throws(AuditError) in
            try rows(db, operation, """
                SELECT id, scratch, stdout_bytes + stderr_bytes + changes_bytes FROM tasks
                WHERE uid = ?1 AND \(Self.ended) AND scratch IS NOT NULL ORDER BY finished_at, id LIMIT ?2
                """, [.integer(Int64(uid)), .integer(Int64(max(0, limit)))]).compactMap { row in
                guard row.count == 3, case .integer(let id) = row[0], case .text(let scratch) = row[1], case .integer(let bytes) = row[2] else { return nil }
                return (id, scratch, bytes)
            }
        }
    }

    /// Records that the output of `ids` was removed (their directory is gone; the records stay):
    /// the scratch column is cleared and each gets an "output-removed" event naming `reason`.
    public func forgetOutput(ids: [Int64], at time: Double, reason: String) throws(AuditError) {
        guard !ids.isEmpty else { return }
        let operation = "forget output"
        guard time.isFinite else { throw refuse(operation, "time is not finite") }
        let detail = "{\"reason\":\(JSONArray.strings([reason]).dropFirst().dropLast())}"
        _ = try write(operation) { w throws(AuditError) in
            for id in ids {
                let rows = try w.rows("UPDATE tasks SET scratch = NULL WHERE id = ?1 AND scratch IS NOT NULL RETURNING uid", [.integer(id)])
                guard let uid = rows.first?.first else { continue }
                try w.rows(Self.insertEvent, [.real(time), .text("output-removed"), .integer(id), uid, .text(detail)])
            }
            return .none
        }
    }
}
