import CLinux
import CordonAudit
import CordonJSON
import CordonRPC
import CordonSandbox
import CordonSystem
import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// task.diff, task.apply and task.discard: the review of a copy-on-write task's changes
/// (docs/daemon.md, "Copy-on-write workspaces"). Diff and apply are the task owner's alone and
/// run as them (`CallerFiles.perform`): the host directory is read and written with their own
/// rights, beneath the directory's descriptor. Discard is the owner's or an admin's.
extension Daemon {
    /// A task's held changes and where they apply: its record, the captured directory, and
    /// the workspace path from its "submitted" event.
    struct HeldChanges {
        var record: TaskRecord
        var directory: String
        /// nil: a scratch workspace (no host directory).
        var workspace: String?
        var entries: [WorkspaceChanges.Entry]
    }

    func heldChanges(_ record: TaskRecord, method: String, readEntries: Bool = true) throws(RPCError) -> HeldChanges {
        guard record.changesBytes > 0, let scratch = record.scratch else {
            let why = record.state.isTerminal ? "it holds no changes (not a copy-on-write task, it changed nothing, or they were applied or discarded)"
                : "it has not ended (\(record.state.rawValue)): its changes are kept when it ends"
            throw RPCError(RPCCode.notFound, "task \(record.id): \(why)", field: "params.id")
        }
        let events: [AuditEvent]
        do { events = try store.events(EventQuery(taskID: record.id, kinds: ["submitted"], limit: 1)) } catch {
            throw RPCError(RPCCode.internalError, "audit store: \(error)")
        }
        guard let detail = events.first.flatMap({ try? JSON.parse($0.detail) }), detail["cow"] == .bool(true),
              detail["workspace"]?.stringValue != nil || detail["scratch"] == .bool(true) else {
            throw RPCError(RPCCode.internalError, "task \(record.id): its record does not name a copy-on-write workspace")
        }
        let workspace = detail["workspace"]?.stringValue
        let directory = "\(scratch)/changes"
        var entries: [WorkspaceChanges.Entry] = []
        if readEntries { do { entries = try WorkspaceChanges.entries(in: directory) } catch {
            throw RPCError(RPCCode.internalError, "task \(record.id): its changes cannot be read (task.discard lets them go): \(error)")
        } }
        return HeldChanges(record: record, directory: directory, workspace: workspace, entries: entries)
    }

    /// Only the owner reviews and applies: the blobs are theirs and the host is read as them.
    func ownChanges(_ params: inout Params, _ peer: Peer, _ method: String) throws -> HeldChanges {
        let id = try params.requiredInt("id", min: 1)
        let record: TaskRecord?
        do { record = try store.task(id: id) } catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
        guard let record, authorizer.maySee(peer, taskOwner: record.submitter.uid) else {
            if record != nil { tasks.refuse(peer, method: method, what: "task \(id)") }
            throw RPCError(RPCCode.notFound, "no task \(id)", field: "params.id")
        }
        guard record.submitter.uid == peer.uid else {
            throw RPCError(RPCCode.unauthorized, "\(method) is for the task's owner (uid \(record.submitter.uid)): the changes are read and applied with their own rights; an admin may task.discard them",
                           field: "params.id")
        }
        return try heldChanges(record, method: method)
    }

    /// Runs `body` as `peer` with the workspace (O_PATH, opened as them, writable if asked)
    /// and the blobs' directory. A scratch workspace has no directory: `root` is -1, where
    /// nothing resolves (everything reads as added).
    func asOwner<T: Sendable>(_ held: HeldChanges, _ peer: Peer, writable: Bool,
                              _ body: @escaping @Sendable (_ root: Int32, _ blobs: Int32) -> T) throws(RPCError) -> T {
        let caller = CallerFiles.Caller(uid: peer.uid, gid: peer.gid, groups: peer.groups)
        let root: OwnedDescriptor?
        if let workspace = held.workspace {
            do { root = OwnedDescriptor(try CallerFiles.openDirectory(workspace, as: caller, writable: writable)) } catch {
                throw RPCError(error.errno == EACCES || error.errno == EPERM ? RPCCode.unauthorized : RPCCode.invalidParams,
                               "task \(held.record.id)'s workspace \(error.message)", field: "params.id")
            }
            // The directory at that path must still be the one the task ran on.
            var st = stat()
            if let origin = WorkspaceChanges.origin(in: held.directory), let root,
               fstat(root.fd, &st) != 0 || UInt64(st.st_dev) != origin.device || UInt64(st.st_ino) != origin.inode {
                throw RPCError(RPCCode.conflict, "task \(held.record.id): \(PrintableText.of(workspace)) is not the directory the task ran on (it was moved or replaced since); its changes stay held (task.discard lets them go)",
                               field: "params.id")
            }
        } else {
            root = nil
        }
        let blobs = open("\(held.directory)/blobs", CL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard blobs >= 0 else { throw RPCError(RPCCode.internalError, "task \(held.record.id): its changes cannot be read: \(SystemError.text(errno))") }
        defer { close(blobs) }
        let rootFD = root?.fd ?? -1
        do { return try withExtendedLifetime(root) { () throws(CallerFiles.Refusal) -> T in try CallerFiles.perform(as: caller) { body(rootFD, blobs) } } } catch {
            throw RPCError(RPCCode.internalError, "task \(held.record.id): \(error.message)")
        }
    }

    /// Tasks whose changes an apply or a discard is working on: a second one is refused (busy)
    /// instead of writing the same files at the same time.
    private static let changesInUse = Monitor()
    private nonisolated(unsafe) static var changesBusy: Set<Int64> = []

    static func oneAtATime<T>(_ id: Int64, _ body: () throws -> T) throws -> T {
        // Never waited for: a request worker is not parked behind another apply.
        let taken = changesInUse.locked { changesBusy.insert(id).inserted }
        guard taken else {
            throw RPCError(RPCCode.busy, "task \(id): another apply or discard of its changes is running; retry when it has ended", field: "params.id")
        }
        defer { changesInUse.locked { _ = changesBusy.remove(id) } }
        return try body()
    }

    /// The bytes of diff text one answer carries at most; past them, changes are listed only.
    static let maxDiffAnswerBytes = 16 << 20

    func taskDiff(_ params: inout Params, _ peer: Peer) throws -> JSON {
        let held = try ownChanges(&params, peer, "task.diff")
        try params.finish()
        let since = held.record.startedAt ?? held.record.submittedAt
        let entries = held.entries
        let reviewed = try asOwner(held, peer, writable: false) { root, blobs in
            WorkspaceChanges.review(entries, root: root, blobs: blobs, since: since, diffBytes: Self.maxDiffAnswerBytes)
        }
        var changes: [JSON] = []
        for item in reviewed where item.change != .unchanged {
            var m: [(String, JSON)] = [("path", .string(item.entry.path)), ("change", .string(item.change.rawValue)),
                                       ("kind", .string(item.entry.kind.rawValue))]
            if item.entry.kind == .file || item.entry.kind == .directory { m.append(("mode", .string(String(item.entry.mode, radix: 8)))) }
            if let host = item.hostMode { m.append(("hostMode", .string(String(host & 0o777, radix: 8)))) }
            if item.entry.kind == .file { m.append(("size", .int(item.entry.size))) }
            if let target = item.entry.target { m.append(("target", .string(target))) }
            if item.conflict { m.append(("conflict", .bool(true))) }
            if item.binary { m.append(("binary", .bool(true))) }
            if let diff = item.diff, !diff.isEmpty {
                m.append(("diff", .string(diff)))
            } else if item.diffOmitted {
                m.append(("diffOmitted", .bool(true)))  // past the answer's budget of diff text
            }
            changes.append(.object(m))
        }
        return .object([("task", .int(held.record.id)), ("workspace", held.workspace.map(JSON.string) ?? .null),
                        ("startedAt", .string(UTCTime.format(since))), ("changes", .array(changes))])
    }

    /// The most bytes one task.get answer carries.
    static let maxGetBytes: Int64 = 4 << 20

    /// A file the task left in its copy-on-write layer, read without applying it (an artifact):
    /// `{path, size, offset, data (base64), eof}`, at most `maxGetBytes` from `offset`.
    func taskGet(_ params: inout Params, _ peer: Peer) throws -> JSON {
        let held = try ownChanges(&params, peer, "task.get")
        guard let path = try params.string("path", maxBytes: 4096) else { throw RPCError.invalid(params.field("path"), "required: a path relative to the workspace") }
        let offset = try params.int("offset") ?? 0
        let length = try params.int("length", min: 1, max: Self.maxGetBytes) ?? Self.maxGetBytes
        try params.finish()
        guard let entry = held.entries.first(where: { $0.path.utf8.elementsEqual(path.utf8) }) else {
            throw RPCError(RPCCode.notFound, "task \(held.record.id) left no \(PrintableText.of(path)) in its layer (task.diff lists what it changed)", field: "params.path")
        }
        guard entry.kind == .file, let blob = entry.blob else {
            let what = switch entry.kind {
            case .directory: "is a directory"
            case .deleted: "was deleted by the task"
            case .symlink: "is a symlink"
            default: "is a fifo, socket, device, or a sparse file whose bytes were not kept"
            }
            throw RPCError.invalid(params.field("path"), "\(PrintableText.of(path)) \(what), not a file the task wrote")
        }
        let fd = open("\(held.directory)/blobs/\(blob)", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw RPCError(RPCCode.internalError, "task \(held.record.id): \(PrintableText.of(path)): \(SystemError.text(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw RPCError(RPCCode.internalError, "task \(held.record.id): \(PrintableText.of(path)): \(SystemError.text(errno))") }
        let size = Int64(st.st_size)
        guard offset <= size else { throw RPCError.invalid(params.field("offset"), "\(offset) is past the end of \(PrintableText.of(path)) (\(size) bytes)") }
        var bytes = [UInt8](repeating: 0, count: Int(min(length, size - offset)))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw RPCError(RPCCode.internalError, "task \(held.record.id): \(PrintableText.of(path)): read: \(n < 0 ? SystemError.text(errno) : "cut short")") }
            done += n
        }
        return .object([("path", .string(path)), ("size", .int(size)), ("offset", .int(offset)), ("mode", .string(String(entry.mode, radix: 8))),
                        ("data", .string(Data(bytes).base64EncodedString())), ("eof", .bool(offset + Int64(done) >= size))])
    }

    func taskApply(_ params: inout Params, _ peer: Peer) throws -> JSON {
        let checked = try ownChanges(&params, peer, "task.apply")
        let only = try params.stringArray("paths", maxCount: 4096, maxBytes: 4096)
        try params.finish()
        guard checked.workspace != nil else {
            throw RPCError.invalid("params.id", "task \(checked.record.id) had a scratch workspace (files put in, no directory): there is nothing to apply to; copy what it left out with task.get (cordon cp)")
        }
        let id = checked.record.id
        // One apply or discard of a task at a time, waited for only once the caller is known
        // to own it; the changes are read again inside (the one before may have taken some).
        return try Self.oneAtATime(id) { () throws -> JSON in
            let held = try heldChanges(try reload(id), method: "task.apply")
            let entries = try Self.select(held.entries, only: only, task: id)
            let since = held.record.startedAt ?? held.record.submittedAt
            let outcome = try asOwner(held, peer, writable: true) { root, blobs in
                WorkspaceChanges.apply(entries, root: root, blobs: blobs, since: since)
            }
            if !outcome.conflicts.isEmpty {
                let shown = outcome.conflicts.prefix(10).map { PrintableText.of($0) }.joined(separator: ", ") + (outcome.conflicts.count > 10 ? ", …" : "")
                throw RPCError(RPCCode.conflict, "task \(id): nothing applied: \(outcome.conflicts.count) path(s) changed on the host since the task started (\(shown)); review them with task.diff, then apply the other paths with `paths`, or discard",
                               field: "params.paths")
            }
            // What was written leaves the held changes: a later review or apply starts from what is left.
            let applied = Set(outcome.applied.map { Array($0.utf8) })
            let remaining = held.entries.filter { !applied.contains(Array($0.path.utf8)) }
            if let failure = outcome.failure {
                _ = try? WorkspaceChanges.writeManifest(remaining, in: held.directory)
                recordApply(id, peer, applied: outcome.applied, complete: false)
                throw RPCError(RPCCode.internalError, "task \(id): \(PrintableText.of(failure.path)): \(failure.message); \(outcome.applied.count) path(s) before it were applied, the rest were not")
            }
            let skipped = Set(outcome.skipped.map { Array($0.utf8) })
            let complete = only == nil || remaining.allSatisfy { skipped.contains(Array($0.path.utf8)) }
            let released: Bool
            if complete {
                released = try forgetChanges(held, peer, kind: "changes-applied", detail: [("applied", .int(Int64(outcome.applied.count)))])
            } else {
                do { try WorkspaceChanges.writeManifest(remaining, in: held.directory) } catch {
                    throw RPCError(RPCCode.internalError, "task \(id): the paths were applied, but what is left could not be recorded: \(error)")
                }
                recordApply(id, peer, applied: outcome.applied, complete: false)
                released = false
            }
            return .object([("task", .int(id)), ("applied", .array(outcome.applied.map(JSON.string))),
                            ("skipped", .array(outcome.skipped.map(JSON.string))), ("released", .bool(released))])
        }
    }

    /// The entries `only` selects: each path asked, what is under it, and the directories on the
    /// way to it — unless one of those is a directory the task deleted and made again, whose
    /// applying would remove what the host has there: it must be asked for itself.
    static func select(_ entries: [WorkspaceChanges.Entry], only: [String]?, task id: Int64) throws(RPCError) -> [WorkspaceChanges.Entry] {
        guard let only else { return entries }
        // Keyed by bytes: two spellings of a name that Swift calls equal are two names.
        let asked = Set(only.map { Array($0.utf8) })
        let byPath = Dictionary(entries.map { (Array($0.path.utf8), $0) }, uniquingKeysWith: { a, _ in a })
        var covered = Set<[UInt8]>()
        var selected = Set<[UInt8]>()
        for e in entries {
            let key = Array(e.path.utf8)
            let hits = ([key] + WorkspaceChanges.ancestors(e.path).map { Array($0.utf8) }).filter(asked.contains)
            guard !hits.isEmpty else { continue }
            selected.insert(key)
            covered.formUnion(hits)
        }
        for path in only where !covered.contains(Array(path.utf8)) {
            throw RPCError.invalid("params.paths", "\(PrintableText.of(path)): task \(id) changed nothing there (task.diff lists what it changed)")
        }
        for path in only {
            for a in WorkspaceChanges.ancestors(path) where !selected.contains(Array(a.utf8)) {
                guard let dir = byPath[Array(a.utf8)] else { continue }
                if dir.opaque {
                    throw RPCError.invalid("params.paths", "\(PrintableText.of(a)) is a directory the task deleted and made again: applying \(PrintableText.of(path)) would replace the host's \(PrintableText.of(a)) with it; ask for \(PrintableText.of(a)) itself")
                }
                selected.insert(Array(a.utf8))
            }
        }
        return entries.filter { selected.contains(Array($0.path.utf8)) }
    }

    private func recordApply(_ id: Int64, _ peer: Peer, applied: [String], complete: Bool) {
        let detail = JSON.object([("by", .int(Int64(peer.uid))), ("applied", .int(Int64(applied.count))), ("complete", .bool(complete))])
        _ = try? store.record(NewEvent(kind: "changes-applied", taskID: id, uid: peer.uid, time: UTCTime.epochSeconds(), detail: detail.text))
    }

    func taskDiscard(_ params: inout Params, _ peer: Peer) throws -> JSON {
        let id = try params.requiredInt("id", min: 1)
        try params.finish()
        let record: TaskRecord?
        do { record = try store.task(id: id) } catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
        guard let record, authorizer.maySee(peer, taskOwner: record.submitter.uid) else {
            if record != nil { tasks.refuse(peer, method: "task.discard", what: "task \(id)") }
            throw RPCError(RPCCode.notFound, "no task \(id)", field: "params.id")
        }
        return try Self.oneAtATime(id) { () throws -> JSON in
            // Discarding needs nothing from the manifest, so even one that cannot be read goes.
            let held = try heldChanges(try reload(id), method: "task.discard", readEntries: false)
            let count = (try? WorkspaceChanges.entries(in: held.directory))?.count
            _ = try forgetChanges(held, peer, kind: "changes-discarded", detail: [])
            return .object([("task", .int(id)), ("discarded", count.map { .int(Int64($0)) } ?? .null)])
        }
    }

    /// Removes the held changes and records who let them go; false when someone else did first.
    private func forgetChanges(_ held: HeldChanges, _ peer: Peer, kind: String, detail: [(String, JSON)]) throws(RPCError) -> Bool {
        let event = NewEvent(kind: kind, taskID: held.record.id, uid: held.record.submitter.uid, time: UTCTime.epochSeconds(),
                             detail: JSON.object([("by", .int(Int64(peer.uid)))] + detail).text)
        // Under the output accounting's lock: an eviction or retention removing this task's
        // directory meanwhile must not take the same bytes off the count twice.
        var outcome: Result<Bool, RPCError> = .success(false)
        tasks.withOutputAccounting {
            do {
                guard try store.forgetChanges(id: held.record.id, event: event) else { return }
            } catch {
                outcome = .failure(RPCError(RPCCode.internalError, "audit store: \(error)"))
                return
            }
            do { try FileSystem.removeTree(held.directory) } catch {
                log.error("cannot remove a task's changes", metadata: ["task": "\(held.record.id)", "error": "\(error)"])
            }
            tasks.quotas.outputRemoved(held.record.submitter.uid, held.record.changesBytes)
            outcome = .success(true)
        }
        return try outcome.get()
    }
}
