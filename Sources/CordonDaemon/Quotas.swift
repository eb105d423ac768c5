import CordonAudit
import CordonPolicy
import CordonRPC
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What each user holds in the daemon's state — audit records, task output on disk, queued
/// requests — against `cordond.toml`'s quotas. The store is the record of truth: the counts
/// here are re-read from it at start and after every retention pass, and moved by each submit
/// and task end in between, so a check costs no query.
///
/// How each quota bites (SECURITY.md, "cordond"):
/// - audit records: past `audit.max_size_per_user` the next retention pass (woken at once)
///   sheds the user's own oldest records; past 1.5× that, or with only protected records left,
///   the user's submits are refused until it has.
/// - output: a task's output cap is the least of its policy's, its user's quota, the room
///   left in the global quota, and the free disk above `tasks.min_free_disk`; past its quota a
///   user's own oldest task outputs are removed when a task of it ends (their records stay).
/// - queued requests: their bytes per user and in all are bounded at submit.
final class Quotas: Sendable {
    let config: DaemonConfig

    struct State {
        var records: [UInt32: Int64] = [:]
        var output: [UInt32: Int64] = [:]
        var outputTotal: Int64 = 0
        var reserved: [UInt32: Int64] = [:]
        var reservedTotal: Int64 = 0
        var queued: [UInt32: Int64] = [:]
        var queuedTotal: Int64 = 0
        /// From the last retention pass: users whose protected records alone exceed their quota,
        /// and whether the store is still over `audit.max_size`.
        var stillOverQuota: Set<UInt32> = []
        var overMaxBytes = false
        /// A retention pass should run now (a user went over its record quota).
        var pruneWanted = false
        /// A large request left the queue: the heap it used should go back to the system.
        var trimWanted = false
    }
    let state = Mutex(State())

    init(config: DaemonConfig) { self.config = config }

    var recordQuota: Int64 { Int64(clamping: config.recordBytesPerUser) }

    /// Takes the store's measure (at start and after each retention pass).
    func sync(_ usage: [UInt32: StoredUsage], report: PruneReport? = nil) {
        state.withLock { s in
            s.records = usage.mapValues(\.recordBytes)
            s.output = usage.mapValues(\.outputBytes).filter { $0.value > 0 }
            s.outputTotal = s.output.values.reduce(0, +)
            if let report {
                s.stillOverQuota = report.stillOverQuota
                s.overMaxBytes = report.overMaxBytes
            }
        }
    }

    // MARK: Records

    /// Bytes a task's records take in the store (the estimate `AuditStore.usage` makes).
    static func recordBytes(argv: [String], exe: String, label: String?, policy: String, workspace: String? = nil) -> Int64 {
        Int64(AuditStore.taskOverhead + 3 * AuditStore.eventOverhead + 64 + exe.utf8.count + policy.utf8.count + (label?.utf8.count ?? 0)
              + argv.reduce(2) { $0 + $1.utf8.count + 3 } + (workspace.map { $0.utf8.count + 40 } ?? 0))
    }

    /// Bytes a tool call's row takes in the store (the estimate `AuditStore.usage` makes).
    static func recordBytes(_ call: NewToolCall) -> Int64 {
        Int64(AuditStore.toolCallOverhead + call.caller.exe.utf8.count + call.tool.utf8.count + call.outcome.utf8.count
              + (call.message?.utf8.count ?? 0) + (call.policy?.utf8.count ?? 0) + (call.policyHash?.utf8.count ?? 0)
              + call.argumentSHA256.utf8.count + (call.arguments?.utf8.count ?? 0)
              + call.attempts.reduce(2) { $0 + 40 + $1.tool.utf8.count + $1.outcome.utf8.count + ($1.message?.utf8.count ?? 0) }
              + call.denials.reduce(2) { $0 + 40 + $1.what.utf8.count + ($1.reason?.utf8.count ?? 0) })
    }

    /// Refuses a submit from a user whose records are over quota beyond what retention can
    /// catch up with; asks for a retention pass when the user is over it at all.
    func checkRecords(_ uid: UInt32) throws(RPCError) {
        let quota = recordQuota
        let (held, stuck) = state.withLock { s in
            let held = s.records[uid, default: 0]
            if held > quota { s.pruneWanted = true }
            return (held, s.stillOverQuota.contains(uid))
        }
        if held > quota + quota / 2 || (stuck && held > quota) {
            throw RPCError(RPCCode.quotaExceeded, "uid \(uid) holds \(Units.formatSize(UInt64(held))) of audit records "
                + "(audit.max_size_per_user = \(Units.formatSize(UInt64(quota)))): \(stuck ? "only records kept for their denial events are left; an admin must raise the quota or shorten audit.keep_denials" : "its oldest records are being removed; retry in a moment")")
        }
    }

    func addRecords(_ uid: UInt32, _ bytes: Int64) {
        state.withLock { s in
            s.records[uid, default: 0] += bytes
            if s.records[uid, default: 0] > recordQuota { s.pruneWanted = true }
        }
    }

    func wantPrune() { state.withLock { $0.pruneWanted = true } }

    func takePruneWanted() -> Bool { state.withLock { s in defer { s.pruneWanted = false }; return s.pruneWanted } }

    // MARK: Queued requests

    func reserveQueued(_ uid: UInt32, _ bytes: Int64) throws(RPCError) {
        let perUser = Int64(clamping: config.maxQueuedBytesPerUser), total = Int64(clamping: config.maxQueuedBytes)
        try state.withLock { (s: inout State) throws(RPCError) in
            if s.queued[uid, default: 0] + bytes > perUser {
                throw RPCError(RPCCode.queueFull, "uid \(uid) has \(Units.formatSize(UInt64(s.queued[uid, default: 0]))) of requests queued; this one (\(Units.formatSize(UInt64(bytes)))) would pass scheduler.max_queued_bytes_per_user = \(Units.formatSize(UInt64(perUser))): retry when some have started")
            }
            if s.queuedTotal + bytes > total {
                throw RPCError(RPCCode.queueFull, "cordond has \(Units.formatSize(UInt64(s.queuedTotal))) of requests queued (scheduler.max_queued_bytes = \(Units.formatSize(UInt64(total)))): retry later")
            }
            s.queued[uid, default: 0] += bytes
            s.queuedTotal += bytes
        }
    }

    func releaseQueued(_ uid: UInt32, _ bytes: Int64) {
        state.withLock { s in
            s.queued[uid, default: 0] -= bytes
            if s.queued[uid] ?? 0 <= 0 { s.queued[uid] = nil }
            s.queuedTotal -= bytes
            if bytes >= 64 << 10 { s.trimWanted = true }
        }
    }

    func takeTrimWanted() -> Bool { state.withLock { s in defer { s.trimWanted = false }; return s.trimWanted } }

    // MARK: Output

    /// Refuses a submit while task output already fills `tasks.max_output`.
    func checkOutput() throws(RPCError) {
        let total = Int64(clamping: config.outputBytesTotal)
        let held = state.withLock { $0.outputTotal }
        if held >= total {
            throw RPCError(RPCCode.quotaExceeded, "task output on this host takes \(Units.formatSize(UInt64(held))) (tasks.max_output = \(Units.formatSize(UInt64(total)))): retry when retention has removed some")
        }
    }

    /// The output cap of a task of `uid` that is starting: the least of what it `wanted` (its
    /// policy's), the user's quota, the room left in the global quota,
    /// and the free disk above `tasks.min_free_disk` not already promised to running tasks
    /// (reserved until `outputEnded`; one uid at most half of it). When the task ends, the user's oldest outputs are
    /// removed until it holds no more than its quota again; running tasks are not reserved
    /// against the quotas (a user may run many tasks that write little), so a quota can be
    /// passed by at most the caps of the user's running tasks.
    func reserveOutput(_ uid: UInt32, wanted: UInt64?, freeDisk: Int64?) -> (cap: Int64, limitedBy: String?) {
        let perUser = Int64(clamping: config.outputBytesPerUser), total = Int64(clamping: config.outputBytesTotal)
        return state.withLock { s in
            let totalRoom = total - s.outputTotal
            // One uid may hold at most half the room above the floor, so its silent tasks
            // cannot promise all of it away from everyone else's.
            let diskRoom = freeDisk.map { free in
                let room = free - Int64(clamping: config.minFreeDiskBytes)
                return min(room - s.reservedTotal, room / 2 - s.reserved[uid, default: 0])
            } ?? Int64.max
            var cap = wanted.map { Int64(clamping: $0) } ?? Int64.max
            var limitedBy: String?
            for (room, key) in [(perUser, "tasks.max_output_per_user"), (totalRoom, "tasks.max_output"), (diskRoom, "tasks.min_free_disk")] where room < cap {
                cap = max(0, room)
                limitedBy = key
            }
            let reserve = freeDisk == nil ? 0 : cap
            s.reserved[uid, default: 0] += reserve
            s.reservedTotal += reserve
            return (cap, limitedBy)
        }
    }

    func outputEnded(_ uid: UInt32, reserved: Int64, written: Int64) {
        state.withLock { s in
            s.reserved[uid, default: 0] -= reserved
            if s.reserved[uid] ?? 0 <= 0 { s.reserved[uid] = nil }
            s.reservedTotal -= reserved
            s.output[uid, default: 0] += written
            s.outputTotal += written
        }
    }

    func outputRemoved(_ uid: UInt32, _ bytes: Int64) {
        state.withLock { s in
            let removed = min(bytes, s.output[uid, default: 0])
            s.output[uid, default: 0] -= removed
            if s.output[uid] ?? 0 <= 0 { s.output[uid] = nil }
            s.outputTotal -= removed
        }
    }

    func outputHeld(_ uid: UInt32) -> Int64 { state.withLock { $0.output[uid, default: 0] } }

    // MARK: Health

    /// (name, ok, detail) checks for system.health.
    func health() -> [(String, Bool, String)] {
        let s = state.withLock { $0 }
        var checks: [(String, Bool, String)] = []
        let recordsOK = s.stillOverQuota.isEmpty && !s.overMaxBytes
        var detail = "\(s.records.count) users hold records"
        if !s.stillOverQuota.isEmpty {
            detail = "uids \(s.stillOverQuota.sorted().map(String.init).joined(separator: ", ")) are over audit.max_size_per_user with only protected records left"
        } else if s.overMaxBytes {
            detail = "the store is over audit.max_size with only unfinished or protected records left"
        }
        checks.append(("audit-quota", recordsOK, detail))
        let total = Int64(clamping: config.outputBytesTotal)
        let held = s.outputTotal + s.reservedTotal
        checks.append(("output-quota", held < total - total / 10,
                       "\(Units.formatSize(UInt64(max(0, held)))) of task output held or reserved of \(Units.formatSize(UInt64(total))) (tasks.max_output)"))
        return checks
    }
}
