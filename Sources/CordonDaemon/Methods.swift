import CLinux
import CordonAudit
import CordonDefaults
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonSystem
import CordonToolGateway
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The socket API's methods. Each validates its params completely (unknown members are
/// errors), checks what the peer may do, and answers with JSON.
extension Daemon {
    static let methods = ["task.submit", "task.status", "task.wait", "task.cancel", "task.list", "task.logs",
                          "task.diff", "task.get", "task.apply", "task.discard",
                          "session.create", "session.exec", "session.list", "session.close",
                          "policy.list", "audit.query", "system.health", "system.version", "system.metrics",
                          "tool.list", "tool.call", "tool.stats", "tool.watch",
                          "model.list", "model.chat", "model.stats", "model.explain", "model.feedback", "install.run"]

    /// Calls `method`. Methods that wait for a task (task.wait, task.cancel, task.submit with
    /// `wait`) answer `.afterTask`, so no thread is held while they wait.
    func call(_ method: String, _ params: inout Params, peer: Peer, sink: MessageSink, id: JSON) throws -> Answer {
        switch method {
        case "task.submit": return try submit(&params, peer)
        case "task.status":
            let task = try visibleTask(&params, peer, method)
            try params.finish()
            return .result(taskJSON(task, withResult: true))
        case "task.wait": return try wait(&params, peer)
        case "task.cancel": return try cancel(&params, peer)
        case "task.list": return .result(try list(&params, peer))
        case "task.logs": return .result(try logs(&params, peer, sink))
        case "task.diff": return .result(try taskDiff(&params, peer))
        case "task.get": return .result(try taskGet(&params, peer))
        case "task.apply": return .result(try taskApply(&params, peer))
        case "task.discard": return .result(try taskDiscard(&params, peer))
        case "session.create": return try sessionCreate(&params, peer)
        case "session.exec": return try sessionExec(&params, peer, sink)
        case "session.list": return .result(try sessionList(&params, peer))
        case "session.close": return try sessionClose(&params, peer)
        case "policy.list":
            try params.finish()
            return .result(policyList(peer))
        case "audit.query": return .result(try audit(&params, peer))
        case "system.health":
            try params.finish()
            return .result(Health.check(self).json)
        case "system.version":
            try params.finish()
            return .result(.object([("version", .string(cordonVersion)), ("protocol", .int(Int64(rpcProtocolVersion))),
                                    ("methods", .array(Self.methods.map { .string($0) })),
                                    ("startedAt", .string(UTCTime.format(startedAt))), ("pid", .int(Int64(getpid())))]))
        case "system.metrics":
            try params.finish()
            guard authorizer.isAdmin(peer) else {
                tasks.refuse(peer, method: method, what: "metrics")
                throw RPCError(RPCCode.unauthorized, "system.metrics is for cordond admins (uid \(peer.uid) is not one)")
            }
            return .result(.object([("text", .string(metricsText()))]))
        case "tool.list":
            try params.finish()
            let gateway = try toolGateway()
            let who = caller(peer)
            // Listing may start the caller's instances: answered when they have, no thread held.
            return .later { reply in
                gateway.list(for: who, deadline: MonotonicClock.now + 30) { tools in
                    // Tools whose requirements are not installed (yet): being installed, or refused.
                    let pending: [JSON] = gateway.requirements(for: who).compactMap { tool, phase in
                        switch phase {
                        case .installing(let since): .object([("tool", .string(tool)), ("state", .string("installing")), ("since", .string(UTCTime.format(since)))])
                        case .failed(let why): .object([("tool", .string(tool)), ("state", .string("failed")), ("reason", .string(why))])
                        case .ready: nil
                        }
                    }
                    reply(.success(.object([("tools", .array(tools.map { t in
                        var members: [(String, JSON)] = [("name", .string(t.name)), ("description", .string(t.description)), ("inputSchema", t.inputSchema),
                                                         ("policy", .string(t.policy)), ("exposure", t.exposure.map(JSON.double) ?? .null)]
                        if let a = t.annotations { members.append(("annotations", a)) }
                        return .object(members)
                    })), ("requirements", .array(pending))])))
                }
            }
        case "tool.call": return try toolCall(&params, peer)
        case "tool.watch": return try toolWatch(&params)
        case "tool.stats":
            try params.finish()
            let gateway = try toolGateway()
            let who = caller(peer)
            return .later { reply in
                gateway.list(for: who, deadline: MonotonicClock.now + 30) { tools in
                    reply(.success(.object([("tools", .array(tools.map { t in
                        let (breaker, pool) = gateway.stats(t.name, for: who)
                        var members: [(String, JSON)] = [("name", .string(t.name)), ("breaker", breaker.map { .string(["closed", "open", "half-open"][$0]) } ?? .null)]
                        if let pool {
                            members += [("instances", .int(Int64(pool.instances))), ("starting", .int(Int64(pool.starting))), ("inFlight", .int(Int64(pool.inFlight))),
                                        ("starts", .int(Int64(pool.starts))), ("failures", .int(Int64(pool.failures))), ("failed", pool.failed.map(JSON.string) ?? .null),
                                        ("lastFailure", pool.lastFailureJSON)]
                        }
                        return .object(members)
                    }))])))
                }
            }
        case "model.list":
            try params.finish()
            return .result(try modelList(peer))
        case "model.chat": return try modelChat(&params, peer, sink)
        case "model.stats":
            try params.finish()
            return .result(try modelGateway().stats(for: Self.modelCaller(peer)))
        case "model.explain": return .result(try modelExplain(&params, peer))
        case "install.run": return try installRun(&params, peer, sink)
        case "model.feedback": return .result(try modelFeedbackMethod(&params, peer))
        default:
            throw RPCError(RPCCode.methodNotFound, "unknown method \"\(method)\" (known: \(Self.methods.joined(separator: ", ")))", field: "method")
        }
    }

    // MARK: task.submit

    /// The most files one task.submit may carry.
    static let maxInputFiles = 1000

    /// `files: [{path, data (base64), mode?}]`: each path relative to /workspace, written there
    /// before the task starts (docs/daemon.md, "Files in and out").
    static func inputFiles(_ value: JSON?, field: String) throws(RPCError) -> [InputFile] {
        guard let value else { return [] }
        guard case .array(let items) = value else { throw RPCError.invalid(field, "expected an array of {path, data, mode?}") }
        guard items.count <= maxInputFiles else { throw RPCError.invalid(field, "\(items.count) files; at most \(maxInputFiles)") }
        var files: [InputFile] = []
        var seen: Set<String> = []
        for (i, item) in items.enumerated() {
            var f = try Params(item, path: "\(field)[\(i)]")
            guard let path = try f.string("path", maxBytes: 4096), WorkspaceChanges.validPath(path) else {
                throw RPCError.invalid("\(field)[\(i)].path", "required: a path relative to /workspace, without empty, \".\" or \"..\" components, each at most 255 bytes")
            }
            guard let encoded = try f.string("data", maxBytes: 1 << 30), let data = Data(base64Encoded: encoded) else {
                throw RPCError.invalid("\(field)[\(i)].data", "required: the file's bytes in base64")
            }
            let mode = try f.int("mode", min: 0, max: 0o777) ?? 0o644
            try f.finish()
            guard seen.insert(path).inserted else { throw RPCError.invalid("\(field)[\(i)].path", "\(PrintableText.of(path)) is given twice") }
            files.append(InputFile(path: path, bytes: Array(data), mode: UInt32(mode)))
        }
        // A file cannot also be a directory on the way to another.
        for file in files where seen.contains(where: { $0.hasPrefix(file.path + "/") }) {
            throw RPCError.invalid(field, "\(PrintableText.of(file.path)) is a file and a directory of another file")
        }
        return files
    }

    /// `argv`: required, a non-empty array of strings, the command first.
    func argvParam(_ params: inout Params) throws(RPCError) -> [String] {
        guard let argv = try params.stringArray("argv", maxCount: 4096, maxBytes: 256 << 10), !argv.isEmpty, !argv[0].isEmpty else {
            throw RPCError.invalid(params.field("argv"), "required: a non-empty array of strings, the command first")
        }
        return argv
    }

    /// `stdin` (text) or `stdinBase64`.
    func stdinParam(_ params: inout Params) throws(RPCError) -> [UInt8] {
        let text = try params.string("stdin", maxBytes: config.maxMessageBytes)
        let encoded = try params.string("stdinBase64", maxBytes: config.maxMessageBytes)
        if text != nil && encoded != nil { throw RPCError.invalid(params.field("stdinBase64"), "give stdin or stdinBase64, not both") }
        if let text { return Array(text.utf8) }
        if let encoded {
            guard let data = Data(base64Encoded: encoded) else { throw RPCError.invalid(params.field("stdinBase64"), "not valid base64") }
            return Array(data)
        }
        return []
    }

    /// `env`: {NAME: value}.
    func envParam(_ params: inout Params) throws(RPCError) -> [String: String] {
        var env: [String: String] = [:]
        for (name, value) in try params.stringMap("env") ?? [] {
            guard !name.isEmpty, !name.contains("=") else { throw RPCError.invalid("\(params.field("env")).\(name)", "not a variable name") }
            env[name] = value
        }
        return env
    }

    private func submit(_ params: inout Params, _ peer: Peer) throws -> Answer {
        let policy = try params.string("policy", maxBytes: 64) ?? config.defaultPolicy
        let argv = try argvParam(&params)
        let stdin = try stdinParam(&params)
        let env = try envParam(&params)
        let request = try taskParams(&params, policy: policy, argv: argv, stdin: stdin, env: env)
        let wait = try params.bool("wait") ?? false
        try params.finish()
        let id = try tasks.submit(request, from: peer, answeredAtEnd: wait)
        let answer: @Sendable (Bool) -> JSON = { [self] _ in
            guard let record = try? store.task(id: id) else { return .object([("id", .int(id)), ("state", .string("queued"))]) }
            return taskJSON(record, withResult: wait)
        }
        return wait ? .afterTask(id, timeout: nil, then: answer) : .result(answer(false))
    }

    /// What task.submit and session.create share: limits, label, workspace, files.
    func taskParams(_ params: inout Params, policy: String, argv: [String], stdin: [UInt8], env: [String: String]) throws(RPCError) -> TaskRequest {
        var limits = LimitRequest()
        if var l = try params.object("limits") {
            // The policy language's ranges (docs/policies.md): a limit from a client is held to
            // what a policy file may say.
            limits.wallTimeSeconds = try l.number("wallTime", min: 0.001, max: 86400 * 365)
            limits.cpuTimeSeconds = try l.number("cpuTime", min: 0.001, max: 86400 * 365)
            limits.memoryBytes = try l.int("memory", min: 1 << 20, max: 1 << 50).map { UInt64($0) }
            limits.pids = try l.int("pids", min: 1, max: 1 << 22).map { Int($0) }
            limits.outputBytes = try l.int("output", min: 0, max: 1 << 50).map { UInt64($0) }
            try l.finish()
        }
        let label = try params.string("label", maxBytes: 256)
        var workspace: WorkspaceRequest?
        if var w = try params.object("workspace") {
            guard let path = try w.string("path", maxBytes: CallerFiles.maxPathBytes) else {
                throw RPCError.invalid("\(params.field("workspace")).path", "required: the absolute path of a directory of yours")
            }
            let writable = try w.bool("writable")
            let cow = try w.bool("cow") ?? false
            if cow && writable != nil {
                throw RPCError.invalid("\(params.field("workspace")).writable", "not with cow: a copy-on-write workspace is only read on the host (the sandbox writes its own layer, reviewed with task.diff)")
            }
            workspace = WorkspaceRequest(path: path, writable: !cow && (writable ?? true), cow: cow)
            try w.finish()
        }
        let files = try Self.inputFiles(params.raw("files"), field: params.field("files"))
        if !files.isEmpty && workspace.map({ !$0.cow }) == true {
            throw RPCError.invalid(params.field("files"), "files go into a copy-on-write workspace (workspace.cow) or, without a workspace, a scratch one: with a writable or read-only workspace, put them in its directory yourself")
        }
        return TaskRequest(policyName: policy, argv: argv, stdin: stdin, env: env, limits: limits, label: label, workspace: workspace, files: files)
    }

    // MARK: Tasks by id

    /// The task `params.id` names, if the peer may see it. Someone else's task gets the same
    /// answer as a missing one (ids and owners are not for enumerating), and the attempt is
    /// recorded as a refusal.
    private func visibleTask(_ params: inout Params, _ peer: Peer, _ method: String) throws -> TaskRecord {
        let id = try params.requiredInt("id", min: 1)
        let record: TaskRecord?
        do { record = try store.task(id: id) } catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
        guard let record else { throw RPCError(RPCCode.notFound, "no task \(id)", field: "params.id") }
        guard authorizer.maySee(peer, taskOwner: record.submitter.uid) else {
            tasks.refuse(peer, method: method, what: "task \(id)")
            throw RPCError(RPCCode.notFound, "no task \(id)", field: "params.id")
        }
        return record
    }

    private func wait(_ params: inout Params, _ peer: Peer) throws -> Answer {
        let task = try visibleTask(&params, peer, "task.wait")
        let timeout = try params.number("timeout", max: 86400 * 365)
        try params.finish()
        return .afterTask(task.id, timeout: timeout) { [self] ended throws in
            guard ended else {
                throw RPCError(RPCCode.waitTimedOut, "task \(task.id) is still \(task.state.rawValue) after \(Units.formatDuration(timeout ?? 0))", field: "params.timeout")
            }
            return taskJSON(try reload(task.id), withResult: true)
        }
    }

    private func cancel(_ params: inout Params, _ peer: Peer) throws -> Answer {
        let task = try visibleTask(&params, peer, "task.cancel")
        try params.finish()
        let wasOpen = task.state == .queued || task.state == .running
        // A running task is answered once its sandbox is gone (30 s at most, as TaskManager.cancel).
        if wasOpen { tasks.startCancel(task.id, by: peer) }
        let answer: @Sendable (Bool) throws -> JSON = { [self] _ in
            let final = try reload(task.id)
            var json = taskJSON(final, withResult: false)
            if case .object(var members) = json {
                // Cancelled by this request: the record says so, and its "cancel" event names us.
                members.append(("cancelled", .bool(wasOpen && final.state == .cancelled)))
                json = .object(members)
            }
            return json
        }
        return wasOpen ? .afterTask(task.id, timeout: 30, then: answer) : .result(try answer(true))
    }

    func reload(_ id: Int64) throws -> TaskRecord {
        do {
            guard let record = try store.task(id: id) else { throw RPCError(RPCCode.notFound, "no task \(id)") }
            return record
        } catch let error as RPCError { throw error } catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
    }

    private func list(_ params: inout Params, _ peer: Peer) throws -> JSON {
        var query = TaskQuery()
        query.limit = Int(try params.int("limit", min: 1, max: 1000) ?? 100)
        if let names = try params.stringArray("states", maxCount: 8) {
            query.states = try names.enumerated().map { (i, name) throws(RPCError) in
                guard let state = TaskState(rawValue: name) else {
                    throw RPCError.invalid("params.states[\(i)]", "\"\(name)\" is not a state (queued, running, finished, cancelled, lost)")
                }
                return state
            }
        }
        let all = try params.bool("all") ?? false
        try params.finish()
        if all && !authorizer.isAdmin(peer) {
            tasks.refuse(peer, method: "task.list", what: "every user's tasks")
            throw RPCError(RPCCode.unauthorized, "listing every user's tasks is for cordond admins (uid \(peer.uid) is not one)", field: "params.all")
        }
        if !all { query.uid = peer.uid }
        do { return .array(try store.tasks(query).map { taskJSON($0, withResult: false) }) }
        catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
    }

    // MARK: task.logs

    /// Streams the task's output as `task.output` notifications (base64 `data`), from the
    /// start; with `follow`, until the task ends. Then answers with the byte counts.
    private func logs(_ params: inout Params, _ peer: Peer, _ channel: MessageSink) throws -> JSON {
        let task = try visibleTask(&params, peer, "task.logs")
        let follow = try params.bool("follow") ?? false
        let stream = try params.string("stream") ?? "both"
        guard ["stdout", "stderr", "both"].contains(stream) else {
            throw RPCError.invalid(params.field("stream"), "\"\(stream)\" is not stdout, stderr or both")
        }
        try params.finish()
        let names = stream == "both" ? ["stdout", "stderr"] : [stream]
        var offsets = [Int](repeating: 0, count: names.count)
        let dir = "\(config.tasksDir)/\(task.id)"
        var fds = [Int32](repeating: -1, count: names.count)
        defer { for fd in fds where fd >= 0 { close(fd) } }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let live = tasks.isLive(task.id)
            for (i, name) in names.enumerated() {
                if fds[i] < 0 { fds[i] = open("\(dir)/\(name)", O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
                guard fds[i] >= 0 else { continue }
                while true {
                    let n = buffer.withUnsafeMutableBytes { pread(fds[i], $0.baseAddress, $0.count, off_t(offsets[i])) }
                    if n <= 0 { break }
                    offsets[i] += n
                    let note = RPCMessage.notification(method: "task.output", params: .object([
                        ("id", .int(task.id)), ("stream", .string(name)), ("data", .string(Data(buffer[0..<n]).base64EncodedString())),
                    ]))
                    guard channel.send(note) else { throw RPCError(RPCCode.internalError, "client went away") }
                }
            }
            if !follow || !live { break }
            // Its client gone, a follower stops: the connection's slot is already given back,
            // so nothing else would bound the threads following a long quiet task.
            guard channel.isOpen else { throw RPCError(RPCCode.internalError, "client went away") }
            usleep(20_000)
        }
        let record = try reload(task.id)
        var answer: [(String, JSON)] = [("id", .int(task.id)), ("state", .string(record.state.rawValue)),
                                        ("stdoutBytes", .int(Int64(clamping: record.stdoutBytes))), ("stderrBytes", .int(Int64(clamping: record.stderrBytes)))]
        // An ended task with output but no directory recorded: its output was removed for its
        // user's output quota (the "output-removed" event says when).
        if record.scratch == nil && record.stdoutBytes + record.stderrBytes > 0 && record.state.isTerminal {
            answer.append(("outputRemoved", .bool(true)))
        }
        return .object(answer)
    }

    // MARK: policy.list, audit.query

    /// Every policy name cordond knows: the embedded ones and its config directory's.
    func policyNames() -> [String] {
        var names = Set(EmbeddedDefaults.policyNames)
        if let dir = config.configDir {
            for file in FileSystem.listDirectory("\(dir)/policies") where file.hasSuffix(".toml") {
                let name = String(file.dropLast(5))
                if TaskManager.validPolicyName(name) { names.insert(name) }
            }
        }
        return names.sorted()
    }

    private func policyList(_ peer: Peer) -> JSON {
        let names = policyNames()
        // Non-admins see only the policies they may use.
        let admin = authorizer.isAdmin(peer)
        return .array(names.compactMap { name in
            do {
                let policy = try policies.loadPolicy(name)
                let allowed = authorizer.mayUse(peer, policy)
                guard admin || allowed else { return nil }
                return .object([("name", .string(name)), ("source", .string(policy.source)), ("hash", .string(policy.contentHash)),
                                ("network", .string(policy.network.mode.rawValue)), ("allowed", .bool(allowed))])
            } catch {
                return admin ? .object([("name", .string(name)), ("error", .string("\(error)")), ("allowed", .bool(false))]) : nil
            }
        })
    }

    private func audit(_ params: inout Params, _ peer: Peer) throws -> JSON {
        var taskQuery = TaskQuery()
        var eventQuery = EventQuery()
        if let since = try params.number("since", max: 1e11) { taskQuery.since = since; eventQuery.since = since }
        if let user = try params.string("user", maxBytes: 64) {
            guard let uid = Accounts.uid(user) else { throw RPCError.invalid(params.field("user"), "no such user \"\(user)\"") }
            taskQuery.uid = uid
            eventQuery.uid = uid
        }
        if let policy = try params.string("policy", maxBytes: 64) { taskQuery.policy = policy; eventQuery.policy = policy }
        if let id = try params.int("task", min: 1) { taskQuery.id = id; eventQuery.taskID = id }
        let onlyDenials = try params.bool("denials") == true
        if onlyDenials { eventQuery.kinds = ["denied", "auth-refused"] }
        if let kinds = try params.stringArray("kinds", maxCount: 32) { eventQuery.kinds = (eventQuery.kinds ?? []) + kinds }
        let calls = try params.bool("calls") ?? false
        let limit = Int(try params.int("limit", min: 1, max: 10_000) ?? 1000)
        taskQuery.limit = limit
        eventQuery.limit = limit
        try params.finish()
        if !authorizer.isAdmin(peer) {
            if let asked = taskQuery.uid, asked != peer.uid {
                tasks.refuse(peer, method: "audit.query", what: "records of uid \(asked)")
                throw RPCError(RPCCode.unauthorized, "uid \(peer.uid) may only query its own records (not uid \(asked))", field: "params.user")
            }
            taskQuery.uid = peer.uid
            eventQuery.uid = peer.uid
        }
        if calls {
            // Tool calls (the gateway's records), newest first.
            do {
                // With `denials`: the calls refused, or whose sandbox was refused something.
                let rows = try store.toolCalls(uid: taskQuery.uid, limit: limit, onlyDenials: onlyDenials).filter { $0.time >= (taskQuery.since ?? 0) }
                return .object([("calls", .array(rows.map { c in
                    var m: [(String, JSON)] = [("id", .int(c.id)), ("time", .string(UTCTime.format(c.time))), ("uid", .int(Int64(c.uid))),
                                               ("tool", .string(c.tool)), ("outcome", .string(c.outcome))]
                    if let message = c.message { m.append(("message", .string(message))) }
                    if let instance = c.instance { m.append(("instance", .int(instance))) }
                    if let policy = c.policy { m.append(("policy", .string(policy))) }
                    if let hash = c.policyHash { m.append(("policyHash", .string(hash))) }
                    m += [("argumentBytes", .int(c.argumentBytes)), ("argumentSHA256", .string(c.argumentSHA256)),
                          ("resultBytes", .int(c.resultBytes)), ("isError", .bool(c.isError)), ("latencySeconds", .double(c.latencySeconds)),
                          ("attempts", (try? JSON.parse(c.attempts)) ?? .array([])), ("denials", (try? JSON.parse(c.denials)) ?? .array([]))]
                    return .object(m)
                }))])
            } catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
        }
        do {
            let records = eventQuery.kinds == nil ? try store.tasks(taskQuery) : []
            let events = try store.events(eventQuery)
            return .object([("tasks", .array(records.map { taskJSON($0, withResult: taskQuery.id != nil) })),
                            ("events", .array(events.map(eventJSON)))])
        } catch { throw RPCError(RPCCode.internalError, "audit store: \(error)") }
    }

    // MARK: JSON shapes

    func taskJSON(_ r: TaskRecord, withResult: Bool) -> JSON {
        var m: [(String, JSON)] = [("id", .int(r.id)), ("state", .string(r.state.rawValue))]
        if let reason = r.reason { m.append(("reason", .string(reason))) }
        if let code = r.exitCode { m.append(("exitCode", .int(Int64(code)))) }
        if let sig = r.signal { m.append(("signal", .int(Int64(sig)))) }
        m.append(("policy", .string(r.policy)))
        m.append(("policyHash", .string(r.policyHash)))
        // Lists carry a bounded argv (32 arguments of at most 256 bytes); a task's own record has it all.
        if withResult || (r.argv.count <= 32 && r.argv.allSatisfy { $0.utf8.count <= 256 }) {
            m.append(("argv", .array(r.argv.map { .string($0) })))
        } else {
            m.append(("argv", .array(r.argv.prefix(32).map { .string(String(decoding: Array($0.utf8.prefix(256)), as: UTF8.self)) })))
            m.append(("argvTruncated", .bool(true)))
        }
        if let label = r.label { m.append(("label", .string(label))) }
        if r.kind != "task" { m.append(("kind", .string(r.kind))) }
        m.append(("submitter", .object([("uid", .int(Int64(r.submitter.uid))), ("gid", .int(Int64(r.submitter.gid))),
                                         ("pid", .int(Int64(r.submitter.pid))), ("exe", .string(r.submitter.exe))])))
        m.append(("submittedAt", .string(UTCTime.format(r.submittedAt))))
        if let t = r.startedAt { m.append(("startedAt", .string(UTCTime.format(t)))) }
        if let t = r.finishedAt { m.append(("finishedAt", .string(UTCTime.format(t)))) }
        if let t = r.cpuUserSeconds { m.append(("cpuUserSeconds", .double(t))) }
        if let t = r.cpuSystemSeconds { m.append(("cpuSystemSeconds", .double(t))) }
        if let b = r.peakMemoryBytes { m.append(("peakMemoryBytes", .int(Int64(clamping: b)))) }
        m.append(("stdoutBytes", .int(Int64(clamping: r.stdoutBytes))))
        m.append(("stderrBytes", .int(Int64(clamping: r.stderrBytes))))
        // A copy-on-write task's changes waiting for task.diff / task.apply / task.discard.
        if r.changesBytes > 0 && r.scratch != nil { m.append(("changesHeld", .int(r.changesBytes))) }
        if withResult, let text = r.result, let result = try? JSON.parse(text) { m.append(("result", result)) }
        return .object(m)
    }

    func eventJSON(_ e: AuditEvent) -> JSON {
        var m: [(String, JSON)] = [("id", .int(e.id)), ("time", .string(UTCTime.format(e.time))), ("kind", .string(e.kind))]
        if let task = e.taskID { m.append(("task", .int(task))) }
        if let uid = e.uid { m.append(("uid", .int(Int64(uid)))) }
        if let policy = e.policy { m.append(("policy", .string(policy))) }
        m.append(("detail", (try? JSON.parse(e.detail)) ?? .string(e.detail)))
        return .object(m)
    }
}

/// `system.health`: ok, or degraded with the reasons a person can act on.
struct Health {
    var checks: [(String, Bool, String)] = []
    var ok: Bool { checks.allSatisfy(\.1) }

    static func check(_ daemon: Daemon) -> Health {
        var h = Health()
        let env = daemon.tasks.environment
        do {
            let hierarchy = try CgroupHierarchy.detect(mount: env.cgroupMount, group: env.cgroupGroup)
            h.checks.append(("cgroups", true, "\(hierarchy.version.rawValue)"))
        } catch {
            h.checks.append(("cgroups", false, "cannot use cgroups: \(error)"))
        }
        let status = (try? FileSystem.readString("/proc/self/status")) ?? ""
        let seccomp = status.split(separator: "\n").contains { $0.hasPrefix("Seccomp:") }
        h.checks.append(("seccomp", seccomp && cl_seccomp_notif_sizes_ok() == 1,
                         seccomp ? "filters with user notification" : "the kernel has no seccomp filter support"))
        let abi = Landlock.abi
        h.checks.append(("landlock", abi > 0, abi > 0 ? "ABI \(abi)" : "Landlock is not available: policies with landlock.mode = \"required\" cannot run"))
        var fs = statvfs()
        if statvfs(daemon.config.stateDir, &fs) == 0 {
            let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
            let total = UInt64(fs.f_blocks) * UInt64(fs.f_frsize)
            // Degraded while there is still room: output caps stop at tasks.min_free_disk.
            let low = free < 2 * daemon.config.minFreeDiskBytes || (total > 0 && free * 100 / total < 5)
            h.checks.append(("disk", !low, "\(Units.formatSize(free)) free of \(Units.formatSize(total)) in \(daemon.config.stateDir)"))
        } else {
            h.checks.append(("disk", false, "cannot stat \(daemon.config.stateDir): \(SystemError.text(errno))"))
        }
        // A failed sync of the log may have lost commits for good (the kernel reports a lost
        // write-back once): degraded until cordond restarts, whatever later syncs say.
        let audit = daemon.store.writerStatistics
        h.checks.append(("audit", audit.syncFailures == 0, audit.syncFailures == 0
            ? "\(Units.formatSize(UInt64(max(0, daemon.store.fileBytes)))) in \(daemon.config.auditPath)"
            : "\(audit.syncFailures) syncs of the audit log failed (last: \(audit.lastSyncError ?? "?")): records written since the last good sync may not survive a power loss; check the disk, then restart cordond"))
        h.checks += daemon.quotas.health()
        return h
    }

    var json: JSON {
        .object([("status", .string(ok ? "ok" : "degraded")),
                 ("reasons", .array(checks.filter { !$0.1 }.map { .string("\($0.0): \($0.2)") })),
                 ("checks", .object(checks.map { ($0.0, .object([("ok", .bool($0.1)), ("detail", .string($0.2))])) }))])
    }
}

extension Daemon {
    // MARK: tools

    private func toolGateway() throws(RPCError) -> ToolGateway {
        guard !tools.manifests.isEmpty else {
            throw RPCError(RPCCode.notFound, "no tools: cordond found no manifests in its config directory's tools/ (docs/tools.md)")
        }
        return tools
    }

    private func caller(_ peer: Peer) -> ToolGateway.Caller {
        ToolGateway.Caller(uid: peer.uid, gid: peer.gid, pid: peer.pid, groups: peer.groups, exe: peer.exe)
    }

    /// tool.watch {after?, timeout?}: the registry's change count, once it is not `after` (at
    /// once without `after`), or after `timeout` seconds (default 25) with it unchanged — a long
    /// poll: `cordon mcp serve` tells its client the tool list changed when the count moves.
    /// Manifests added, changed or removed and a server's own list change count. No thread is
    /// held while it waits; a connection holds one wait at a time.
    private func toolWatch(_ params: inout Params) throws -> Answer {
        let after = try params.int("after")
        let timeout = try params.number("timeout", min: 0.1, max: 300) ?? 25
        try params.finish()
        let changes = tools.changes
        guard let after else { return .result(.object([("generation", .int(Int64(clamping: changes.generation)))])) }
        // A connection that closes lets go of its wait.
        return .laterUnlessClosed { reply in
            changes.watch(after: UInt64(after), deadline: MonotonicClock.now + timeout) { generation in
                reply(.success(.object([("generation", .int(Int64(clamping: generation)))])))
            }
        }
    }

    /// tool.call {name, arguments, timeout?}: answered when the tool has (no thread held
    /// meanwhile), with the outcome and the tool's result; every call is an audit record.
    private func toolCall(_ params: inout Params, _ peer: Peer) throws -> Answer {
        let gateway = try toolGateway()
        guard let name = try params.string("name", maxBytes: 256), !name.isEmpty else {
            throw RPCError.invalid(params.field("name"), "required: the tool's name (tool.list lists them)")
        }
        let arguments = params.raw("arguments") ?? .object([])
        let timeout = try params.number("timeout", min: 0.001, max: 3600) ?? 300
        try params.finish()
        // Every call is a record: a user far over its record quota waits for retention.
        try quotas.checkRecords(peer.uid)
        let who = caller(peer)
        return .later { [self] reply in
            gateway.call(name, arguments: arguments, caller: who, deadline: MonotonicClock.now + timeout) { [self] result in
                let r = result.record
                // A name that is no tool is counted under one label: callers choose names.
                metrics.toolCall(tool: gateway.metricLabel(r.tool), outcome: r.outcome.description, seconds: r.latencySeconds)
                if !r.sharedInstanceDenials.isEmpty {
                    // Whose doing is unknown (a shared instance): the instance's event, for admins.
                    event("tool-denied", .object([("tool", .string(r.tool)), ("instance", r.instance.map { .int(Int64($0)) } ?? .null),
                                                  ("policy", r.policy.map(JSON.string) ?? .null),
                                                  ("denials", .array(r.sharedInstanceDenials.map { .string($0.description) }))]))
                }
                var members: [(String, JSON)] = [("tool", .string(r.tool)), ("outcome", .string(r.outcome.description))]
                // A refusal is a row within the caller's refusal rate (tasks.admitRefusal), like
                // every other refusal: past it, only counted, so no one grows the store by asking.
                var message = r.message
                var recordIt = true
                if r.outcome == .refused {
                    metrics.refused(method: "tool.call")
                    if let suppressed = tasks.admitRefusal(peer) {
                        if suppressed > 0 { message = (message ?? "refused") + " (\(suppressed) refusals of uid \(peer.uid) not recorded before this one)" }
                    } else {
                        recordIt = false
                    }
                }
                if recordIt {
                    let row = NewToolCall(time: UTCTime.epochSeconds(), caller: Submitter(uid: peer.uid, gid: peer.gid, pid: peer.pid, exe: peer.exe),
                                          tool: r.tool, outcome: r.outcome.description, message: message, instance: r.instance, policy: r.policy,
                                          policyHash: r.policyHash, argumentBytes: r.argumentBytes, argumentSHA256: r.argumentSHA256,
                                          arguments: r.arguments?.text, resultBytes: r.resultBytes, isError: r.isError, latencySeconds: r.latencySeconds,
                                          attempts: r.attempts.map { NewToolCall.Attempt(tool: $0.tool, outcome: $0.outcome.description, message: $0.message) },
                                          denials: r.denials.map { NewToolCall.Denial(kind: $0.kind.rawValue, what: $0.what, reason: $0.reason) })
                    do {
                        members.append(("call", .int(try store.recordToolCall(row))))
                        quotas.addRecords(peer.uid, Quotas.recordBytes(row))
                    } catch {
                        log.error("tool call not recorded", metadata: ["tool": "\(r.tool)", "error": "\(error)"])
                        return reply(.failure(RPCError(RPCCode.internalError, "the call ran but could not be recorded: \(error)")))
                    }
                }
                if let message = r.message { members.append(("message", .string(message))) }
                switch result.outcome {
                case .complete(let tool)?: members.append(("result", tool.json(for: .v2025_11_25)))
                case .inputRequired?: members.append(("result", .null)); members.append(("message", .string("the tool asked for input, which Cordon does not relay yet")))
                case nil: members.append(("result", .null))
                }
                members.append(("attempts", .array(r.attempts.map { a in
                    .object([("tool", .string(a.tool)), ("outcome", .string(a.outcome.description)), ("message", a.message.map(JSON.string) ?? .null)])
                })))
                members.append(("denials", .array(r.denials.map { d in
                    .object([("kind", .string(d.kind.rawValue)), ("what", .string(d.what)), ("reason", d.reason.map(JSON.string) ?? .null),
                             ("text", .string(d.description))])
                })))
                if r.deniedOmitted > 0 { members.append(("deniedOmitted", .int(Int64(r.deniedOmitted)))) }
                members.append(("latencySeconds", .double(r.latencySeconds)))
                reply(.success(.object(members)))
            }
        }
    }
}
