/// Where a task is in its life. `lost` means the daemon died while the task was queued or
/// running, and the task was found unfinished at the next start.
public enum TaskState: String, Codable, Sendable, CaseIterable {
    case queued, running, finished, cancelled, lost

    /// The states a task ends in.
    public var isTerminal: Bool { self == .finished || self == .cancelled || self == .lost }
}

/// Who asked for a task, from the socket's peer credentials.
public struct Submitter: Codable, Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    public var exe: String

    public init(uid: UInt32, gid: UInt32, pid: Int32, exe: String) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.exe = exe
    }
}

/// What `task.submit` knows about a task.
public struct NewTask: Sendable {
    public var submitter: Submitter
    public var label: String?
    public var policy: String
    public var policyHash: String
    /// Any Unicode, including newlines, quotes and NUL; stored as a JSON array.
    public var argv: [String]
    /// Seconds since the epoch.
    public var submittedAt: Double
    /// The directory bound at /workspace, as the kernel named it when it was opened, whether
    /// the sandbox may write it, and whether through a copy-on-write layer (an empty path: a
    /// scratch workspace, a layer over nothing): in the "submitted" event's detail.
    public var workspace: (path: String, writable: Bool, cow: Bool)?
    /// "task", or "session" (a persistent sandbox whose commands are its "exec" events).
    public var kind: String

    public init(submitter: Submitter, label: String? = nil, policy: String, policyHash: String, argv: [String],
                submittedAt: Double, workspace: (path: String, writable: Bool, cow: Bool)? = nil, kind: String = "task") {
        self.workspace = workspace
        self.kind = kind
        self.submitter = submitter
        self.label = label
        self.policy = policy
        self.policyHash = policyHash
        self.argv = argv
        self.submittedAt = submittedAt
    }
}

/// What is known when a task ends.
///
/// Byte counts are `UInt64` and round-trip exactly: they are stored as the INTEGER with the same
/// bit pattern, so values above `Int64.max` (never seen in practice) read back unchanged through
/// the store but look negative to raw SQL. A NaN CPU time is stored as NULL and reads back nil.
/// When a task started, in which cgroup, with which scratch directory (`AuditStore.markStarted`).
public struct TaskStart: Sendable {
    public var time: Double
    public var cgroup: String?
    public var scratch: String?
    public init(time: Double, cgroup: String?, scratch: String?) {
        self.time = time
        self.cgroup = cgroup
        self.scratch = scratch
    }
}

public struct TaskOutcome: Sendable {
    /// `finished`, `cancelled` or `lost`.
    public var state: TaskState
    /// e.g. "exited", "timeout", "memory-limit", "setup-failed", "cancelled", "lost".
    public var reason: String
    public var exitCode: Int32?
    public var signal: Int32?
    public var finishedAt: Double
    public var cpuUserSeconds: Double?
    public var cpuSystemSeconds: Double?
    public var peakMemoryBytes: UInt64?
    public var stdoutBytes: UInt64
    public var stderrBytes: UInt64
    /// The full result record as JSON text, opaque to the store.
    public var result: String?
    /// The bytes of a copy-on-write workspace's captured changes (held with the output).
    public var changesBytes: Int64 = 0

    public init(state: TaskState, reason: String, exitCode: Int32? = nil, signal: Int32? = nil, finishedAt: Double,
                cpuUserSeconds: Double? = nil, cpuSystemSeconds: Double? = nil, peakMemoryBytes: UInt64? = nil,
                stdoutBytes: UInt64 = 0, stderrBytes: UInt64 = 0, result: String? = nil) {
        self.state = state
        self.reason = reason
        self.exitCode = exitCode
        self.signal = signal
        self.finishedAt = finishedAt
        self.cpuUserSeconds = cpuUserSeconds
        self.cpuSystemSeconds = cpuSystemSeconds
        self.peakMemoryBytes = peakMemoryBytes
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.result = result
    }
}

/// One row of the tasks table.
public struct TaskRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var submitter: Submitter
    public var label: String?
    public var policy: String
    public var policyHash: String
    public var argv: [String]
    public var state: TaskState
    public var reason: String?
    public var exitCode: Int32?
    public var signal: Int32?
    public var submittedAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var cpuUserSeconds: Double?
    public var cpuSystemSeconds: Double?
    public var peakMemoryBytes: UInt64?
    public var stdoutBytes: UInt64
    public var stderrBytes: UInt64
    /// Where the task ran, so a restarted daemon can kill what is left of it.
    public var cgroup: String?
    /// The task's scratch and log directory, so recovery and retention can remove it.
    public var scratch: String?
    /// The result record as JSON text.
    public var result: String?
    /// The bytes of a copy-on-write workspace's changes held for review (0: none, or gone).
    public var changesBytes: Int64 = 0
    /// "task", or "session".
    public var kind = "task"
}

/// An event to record.
public struct NewEvent: Sendable {
    /// "submitted", "started", "finished", "denied", "limit", "cancelled", "auth-refused",
    /// "daemon-start", "daemon-stop", "lost", "egress", …
    public var kind: String
    public var taskID: Int64?
    public var uid: UInt32?
    public var time: Double
    /// A JSON object as text, opaque to the store (e.g. {"syscall":"unshare","count":2}).
    public var detail: String

    public init(kind: String, taskID: Int64? = nil, uid: UInt32? = nil, time: Double, detail: String = "{}") {
        self.kind = kind
        self.taskID = taskID
        self.uid = uid
        self.time = time
        self.detail = detail
    }
}

/// One row of the events table. The events the store writes itself (submitted, started,
/// finished/cancelled/lost) carry the submitter's uid.
public struct AuditEvent: Codable, Sendable, Equatable {
    public var id: Int64
    public var time: Double
    public var kind: String
    public var taskID: Int64?
    public var uid: UInt32?
    /// The task's policy, when `taskID` is set.
    public var policy: String?
    public var detail: String
}

/// A filter over tasks; results are newest first. Every field left nil matches everything.
public struct TaskQuery: Sendable {
    /// Tasks submitted at or after this time.
    public var since: Double?
    public var uid: UInt32?
    public var policy: String?
    public var id: Int64?
    /// An empty list matches no task.
    public var states: [TaskState]?
    /// "task" or "session"; nil: both.
    public var kind: String?
    /// At most this many (a negative limit is treated as 0).
    public var limit: Int

    public init(since: Double? = nil, uid: UInt32? = nil, policy: String? = nil, id: Int64? = nil,
                states: [TaskState]? = nil, limit: Int = 100) {
        self.since = since
        self.uid = uid
        self.policy = policy
        self.id = id
        self.states = states
        self.limit = limit
    }
}

/// A filter over events; results are oldest first, in the order the store recorded them.
public struct EventQuery: Sendable {
    /// Events whose time is at or after this.
    public var since: Double?
    /// Matches the event's uid or its task's submitter uid.
    public var uid: UInt32?
    /// Matches through the event's task (events without a task never match).
    public var policy: String?
    public var taskID: Int64?
    /// An empty list matches no event.
    public var kinds: [String]?
    /// Only events with a larger id: a cursor for following the log.
    public var afterID: Int64?
    /// At most this many (a negative limit is treated as 0).
    public var limit: Int

    public init(since: Double? = nil, uid: UInt32? = nil, policy: String? = nil, taskID: Int64? = nil,
                kinds: [String]? = nil, afterID: Int64? = nil, limit: Int = 1000) {
        self.since = since
        self.uid = uid
        self.policy = policy
        self.taskID = taskID
        self.kinds = kinds
        self.afterID = afterID
        self.limit = limit
    }
}

/// Every failure of the audit store; the description names the database file and the operation.
public struct AuditError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// The store was closed.
        case closed
        /// No task with the given id.
        case notFound
        /// The task is not in a state the operation applies to (e.g. finishing a finished task).
        case conflict
        /// The input was refused before it reached the database (e.g. a NaN time).
        case invalid
        /// The file is not an audit database this code can use (not SQLite, newer schema, …).
        case incompatible
        /// SQLite or the file system failed.
        case storage
    }

    public var code: Code
    public var description: String

    init(_ code: Code, path: String, _ operation: String, _ message: String) {
        self.code = code
        self.description = "audit database \(path): \(operation): \(message)"
    }
}

/// How well writes are being grouped: `operations / commits` writes share each fsync.
public struct WriterStatistics: Sendable, Equatable {
    public var commits: Int
    public var operations: Int
    /// Transactions that stored something: synced to the disk before they returned
    /// (synchronous=FULL), or not; and transactions that failed.
    public var durableCommits = 0
    public var nonDurableCommits = 0
    public var failedCommits = 0
    /// Syncs of the log the writer made for non-durable commits no durable one covered in time.
    public var syncs = 0
    public var syncFailures = 0
    public var lastSyncError: String?
    /// Checkpoints of the log the writer made (it grew past `WriteQueue.checkpointPages`).
    public var checkpoints = 0

    public init(commits: Int, operations: Int) {
        self.commits = commits
        self.operations = operations
    }
}

/// One tool call, as the gateway describes it (docs/tools.md, "Audit").
public struct NewToolCall: Sendable {
    public struct Attempt: Sendable {
        public var tool: String
        public var outcome: String
        public var message: String?
        public init(tool: String, outcome: String, message: String?) { self.tool = tool; self.outcome = outcome; self.message = message }
    }
    public var time: Double
    public var caller: Submitter
    public var tool: String
    public var outcome: String
    public var message: String?
    public var instance: Int?
    public var policy: String?
    public var policyHash: String?
    public var argumentBytes: Int
    public var argumentSHA256: String
    /// JSON text, kept only when the manifest asks.
    public var arguments: String?
    public var resultBytes: Int
    public var isError: Bool
    public var latencySeconds: Double
    public var attempts: [Attempt]
    /// What the call's sandbox was refused meanwhile (a syscall, a lookup, a connection).
    public var denials: [Denial]
    public struct Denial: Sendable {
        public var kind: String
        public var what: String
        public var reason: String?
        public init(kind: String, what: String, reason: String?) { self.kind = kind; self.what = what; self.reason = reason }
    }
    public init(time: Double, caller: Submitter, tool: String, outcome: String, message: String?, instance: Int?, policy: String?,
                policyHash: String?, argumentBytes: Int, argumentSHA256: String, arguments: String?, resultBytes: Int, isError: Bool,
                latencySeconds: Double, attempts: [Attempt], denials: [Denial] = []) {
        self.time = time; self.caller = caller; self.tool = tool; self.outcome = outcome; self.message = message
        self.instance = instance; self.policy = policy; self.policyHash = policyHash; self.argumentBytes = argumentBytes
        self.argumentSHA256 = argumentSHA256; self.arguments = arguments; self.resultBytes = resultBytes; self.isError = isError
        self.latencySeconds = latencySeconds; self.attempts = attempts; self.denials = denials
    }
}

/// A recorded tool call, read back.
public struct ToolCallRow: Sendable, Equatable {
    public var id: Int64
    public var time: Double
    public var uid: UInt32
    public var tool: String
    public var outcome: String
    public var message: String?
    public var instance: Int64?
    public var policy: String?
    public var policyHash: String?
    public var argumentBytes: Int64
    public var argumentSHA256: String
    public var resultBytes: Int64
    public var isError: Bool
    public var latencySeconds: Double
    /// JSON array of {tool, outcome, message}.
    public var attempts: String
    /// JSON array of {kind, what, reason?}: what the call's sandbox was refused meanwhile.
    public var denials: String = "[]"
}
