import CordonJSON
import CordonSQLite

/// One model call through the gateway, as the store keeps it: who, what was asked and chosen and
/// why, every attempt, tokens, cost, latencies, outcome, the worker's sandbox and its denials.
/// Never a prompt, an answer or a key.
public struct NewModelCall: Sendable {
    public var completionID: String
    public var time: Double
    public var caller: Submitter
    public var requested: String
    public var taskType: String?
    public var model: String?
    public var provider: String?
    public var reason: String
    /// JSON array of {model, provider, outcome, message, status, seconds}.
    public var attempts: String
    public var stream: Bool
    public var inputTokens: Int?
    public var outputTokens: Int?
    public var cost: Double?
    public var firstTokenSeconds: Double?
    public var latencySeconds: Double
    public var outcome: String
    public var message: String?
    public var finishReason: String?
    public var upstreamID: String?
    public var policy: String?
    public var policyHash: String?
    /// JSON array of {kind, what, reason?}.
    public var denials: String
    public var requestBytes: Int
    public var answerBytes: Int

    public init(completionID: String, time: Double, caller: Submitter, requested: String, taskType: String?, model: String?, provider: String?,
                reason: String, attempts: String, stream: Bool, inputTokens: Int?, outputTokens: Int?, cost: Double?, firstTokenSeconds: Double?,
                latencySeconds: Double, outcome: String, message: String?, finishReason: String?, upstreamID: String?, policy: String?,
                policyHash: String?, denials: String, requestBytes: Int, answerBytes: Int) {
        self.completionID = completionID
        self.time = time
        self.caller = caller
        self.requested = requested
        self.taskType = taskType
        self.model = model
        self.provider = provider
        self.reason = reason
        self.attempts = attempts
        self.stream = stream
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cost = cost
        self.firstTokenSeconds = firstTokenSeconds
        self.latencySeconds = latencySeconds
        self.outcome = outcome
        self.message = message
        self.finishReason = finishReason
        self.upstreamID = upstreamID
        self.policy = policy
        self.policyHash = policyHash
        self.denials = denials
        self.requestBytes = requestBytes
        self.answerBytes = answerBytes
    }
}

/// A model call as read back.
public struct ModelCallRow: Sendable, Equatable {
    public var id: Int64
    public var completionID: String
    public var time: Double
    public var uid: UInt32
    public var requested: String
    public var taskType: String?
    public var model: String?
    public var provider: String?
    public var reason: String
    public var attempts: String
    public var stream: Bool
    public var inputTokens: Int64?
    public var outputTokens: Int64?
    public var cost: Double?
    public var firstTokenSeconds: Double?
    public var latencySeconds: Double
    public var outcome: String
    public var message: String?
    public var finishReason: String?
    public var denials: String
    /// The client's verdict, once given: 1 right, 0 wrong, or the score.
    public var feedback: Double?
}

/// What `rateModelCall` found.
public enum ModelCallRating: Sendable, Equatable {
    /// Recorded: the call's model and task type, for the selector.
    case rated(model: String, taskType: String?)
    /// No call with that id that this uid made (someone else's looks the same).
    case unknown
    /// Rated before: a call is rated once.
    case alreadyRated
    /// The call did not answer: there is nothing to rate.
    case notAnswered
}

extension AuditStore {
    static let modelCallsSchema = """
        CREATE TABLE IF NOT EXISTS model_calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            completion_id TEXT NOT NULL UNIQUE,
            time REAL NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            exe TEXT NOT NULL,
            requested TEXT NOT NULL,
            task_type TEXT,
            model TEXT,
            provider TEXT,
            reason TEXT NOT NULL,
            attempts TEXT NOT NULL,
            stream INTEGER NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost REAL,
            first_token_seconds REAL,
            latency_seconds REAL NOT NULL,
            outcome TEXT NOT NULL,
            message TEXT,
            finish_reason TEXT,
            upstream_id TEXT,
            policy TEXT,
            policy_hash TEXT,
            denials TEXT NOT NULL,
            request_bytes INTEGER NOT NULL,
            answer_bytes INTEGER NOT NULL,
            feedback REAL,
            feedback_time REAL
        );
        CREATE INDEX IF NOT EXISTS model_calls_time ON model_calls (time);
        CREATE INDEX IF NOT EXISTS model_calls_uid ON model_calls (uid);
        """

    /// Records one model call; returns its row id.
    public func recordModelCall(_ call: NewModelCall) throws(AuditError) -> Int64 {
        // Never nil: the write waits for the store.
        try recordModelCall(call, onlyIfFree: false)!
    }

    /// Records `call` on this thread if the store is free right now, else writes nothing and
    /// returns nil (the caller hands the record to a thread that may wait). For a model
    /// worker's reader, which every call to that provider shares.
    public func recordModelCallIfFree(_ call: NewModelCall) throws(AuditError) -> Int64? {
        try recordModelCall(call, onlyIfFree: true)
    }

    private func recordModelCall(_ call: NewModelCall, onlyIfFree: Bool) throws(AuditError) -> Int64? {
        let operation = "record model call"
        guard call.time.isFinite, call.latencySeconds.isFinite else { throw refuse(operation, "a time is not finite") }
        @Sendable func real(_ d: Double?) -> SQLiteValue { d.flatMap { $0.isFinite ? SQLiteValue.real($0) : nil } ?? .null }
        @Sendable func int(_ n: Int?) -> SQLiteValue { n.map { .integer(Int64($0)) } ?? .null }
        let body: @Sendable (WriterConnection) throws(AuditError) -> WriteOutput = { w throws(AuditError) in
            try w.rows("""
                INSERT INTO model_calls (completion_id, time, uid, gid, pid, exe, requested, task_type, model, provider, reason, attempts,
                                         stream, input_tokens, output_tokens, cost, first_token_seconds, latency_seconds, outcome, message,
                                         finish_reason, upstream_id, policy, policy_hash, denials, request_bytes, answer_bytes)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
                """, [.text(call.completionID), .real(call.time), .integer(Int64(call.caller.uid)), .integer(Int64(call.caller.gid)),
                      .integer(Int64(call.caller.pid)), .text(call.caller.exe), .text(call.requested), SQLiteValue(call.taskType),
                      SQLiteValue(call.model), SQLiteValue(call.provider), .text(call.reason), .text(call.attempts), .integer(call.stream ? 1 : 0),
                      int(call.inputTokens), int(call.outputTokens), real(call.cost), real(call.firstTokenSeconds), .real(call.latencySeconds),
                      .text(call.outcome), SQLiteValue(call.message), SQLiteValue(call.finishReason), SQLiteValue(call.upstreamID),
                      SQLiteValue(call.policy), SQLiteValue(call.policyHash), .text(call.denials), .integer(Int64(call.requestBytes)),
                      .integer(Int64(call.answerBytes))])
            return .id(w.db.lastInsertRowID)
        }
        let written = onlyIfFree ? try writeIfFree(operation, durable: false, body) : try write(operation, durable: false, body)
        guard let output = written else { return nil }
        guard case .id(let id) = output else { throw AuditError(.storage, path: path, operation, "no id") }
        return id
    }

    /// Records a client's verdict on its own call, once: `value` is 1 (right), 0 (wrong) or a
    /// score in [0, 1]. Checked and written in one transaction, so two ratings racing cannot
    /// both count.
    public func rateModelCall(completionID: String, uid: UInt32, value: Double, at time: Double) throws(AuditError) -> ModelCallRating {
        let operation = "rate model call"
        guard value.isFinite, (0...1).contains(value), time.isFinite else { throw refuse(operation, "a rating is a number from 0 to 1") }
        let output = try write(operation, durable: false) { w throws(AuditError) in
            let found = try w.rows("SELECT model, task_type, outcome, feedback FROM model_calls WHERE completion_id = ?1 AND uid = ?2",
                                   [.text(completionID), .integer(Int64(uid))])
            guard let row = found.first else { return .count(0) }
            if row[3] != .null { return .count(-1) }
            guard row[2] == .text("ok") else { return .count(-2) }
            _ = try w.rows("UPDATE model_calls SET feedback = ?1, feedback_time = ?2 WHERE completion_id = ?3 AND feedback IS NULL",
                           [.real(value), .real(time), .text(completionID)])
            return .count(1)
        }
        guard case .count(let n) = output else { throw AuditError(.storage, path: path, operation, "no answer") }
        switch n {
        case 1:
            // Read again outside the write: the model and task type of the row just rated.
            let rows = try read(operation) { db throws(AuditError) in
                try self.rows(db, operation, "SELECT model, task_type FROM model_calls WHERE completion_id = ?1", [.text(completionID)])
            }
            guard let row = rows.first, case .text(let model) = row[0] else { return .unknown }
            if case .text(let type) = row[1] { return .rated(model: model, taskType: type) }
            return .rated(model: model, taskType: nil)
        case -1: return .alreadyRated
        case -2: return .notAnswered
        default: return .unknown
        }
    }

    /// The most recent model calls (newest first), of `uid` only when given.
    public func modelCalls(uid: UInt32? = nil, limit: Int = 100) throws(AuditError) -> [ModelCallRow] {
        let sql = """
            SELECT id, completion_id, time, uid, requested, task_type, model, provider, reason, attempts, stream, input_tokens, output_tokens,
                   cost, first_token_seconds, latency_seconds, outcome, message, finish_reason, denials, feedback
            FROM model_calls \(uid == nil ? "" : "WHERE uid = ?2") ORDER BY id DESC LIMIT ?1
            """
        var values: [SQLiteValue] = [.integer(Int64(max(1, min(limit, 10_000))))]
        if let uid { values.append(.integer(Int64(uid))) }
        return try read("read model calls") { db throws(AuditError) in
            try rows(db, "read model calls", sql, values).map { r in
                func text(_ v: SQLiteValue) -> String? { if case .text(let t) = v { return t }; return nil }
                func int(_ v: SQLiteValue) -> Int64? { if case .integer(let n) = v { return n }; return nil }
                func real(_ v: SQLiteValue) -> Double? {
                    if case .real(let d) = v { return d }
                    if case .integer(let n) = v { return Double(n) }
                    return nil
                }
                return ModelCallRow(id: int(r[0]) ?? 0, completionID: text(r[1]) ?? "", time: real(r[2]) ?? 0,
                                    uid: UInt32(truncatingIfNeeded: int(r[3]) ?? 0), requested: text(r[4]) ?? "", taskType: text(r[5]),
                                    model: text(r[6]), provider: text(r[7]), reason: text(r[8]) ?? "", attempts: text(r[9]) ?? "[]",
                                    stream: int(r[10]) == 1, inputTokens: int(r[11]), outputTokens: int(r[12]), cost: real(r[13]),
                                    firstTokenSeconds: real(r[14]), latencySeconds: real(r[15]) ?? 0, outcome: text(r[16]) ?? "",
                                    message: text(r[17]), finishReason: text(r[18]), denials: text(r[19]) ?? "[]", feedback: real(r[20]))
            }
        }
    }
}
