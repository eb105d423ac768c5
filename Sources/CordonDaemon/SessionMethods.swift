import CordonAudit
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSystem
import FoundationEssentials
import Synchronization

/// session.create, session.exec, session.list, session.close (docs/daemon.md, "Sessions").
extension Daemon {
    /// session.create {policy?, env?, limits?, label?, workspace?, files?, ttl?, idle?}: answered
    /// once the session's server is ready, with the session.
    func sessionCreate(_ params: inout Params, _ peer: Peer) throws -> Answer {
        let policy = try params.string("policy", maxBytes: 64) ?? config.defaultPolicy
        let env = try envParam(&params)
        let task = try taskParams(&params, policy: policy, argv: ["cordon-session"], stdin: [], env: env)
        let ttl = try params.number("ttl", min: 1, max: config.sessionsMaxTTL)
        let idle = try params.number("idle", min: 1, max: 86400 * 365)
        try params.finish()
        let (id, channel) = try tasks.createSession(SessionRequest(task: task, ttlSeconds: ttl, idleSeconds: idle), from: peer)
        return .later { [self] reply in
            channel.whenReady { [self] ready in
                switch ready {
                case .success:
                    guard let live = tasks.liveSession(id, for: peer, adminToo: false) else {
                        reply(.failure(RPCError(RPCCode.internalError, "session \(id) ended as it started")))
                        return
                    }
                    reply(.success(sessionJSON(live)))
                case .failure(let error):
                    reply(.failure(RPCError(error.code, "session \(id): \(error.message)", field: "params.policy")))
                }
            }
        }
    }

    func sessionJSON(_ task: LiveTask) -> JSON {
        guard let s = task.session else { return .null }
        let (state, last, execs, reason) = s.monitor.locked { (s.state, s.lastActivity, s.execCount, s.closeReason) }
        var m: [(String, JSON)] = [("id", .int(task.id)), ("state", .string(state.rawValue)), ("policy", .string(task.plan.policy.name))]
        if let label = task.request.label { m.append(("label", .string(label))) }
        m.append(("uid", .int(Int64(task.owner.uid))))
        m.append(("createdAt", .string(UTCTime.format(s.createdAt))))
        m.append(("expiresAt", .string(UTCTime.format(s.createdAt + s.ttlSeconds))))
        m.append(("idleTimeout", .double(s.idleSeconds)))
        m.append(("idleSeconds", .double(max(0, MonotonicClock.now - last))))
        m.append(("execs", .int(Int64(execs))))
        m.append(("running", .int(Int64(s.inFlight))))
        if let w = task.request.workspace {
            m.append(("workspace", .object([("path", .string(w.path)), ("cow", .bool(w.cow)), ("writable", .bool(w.writable))])))
        }
        if let reason { m.append(("closing", .string(reason))) }
        return .object(m)
    }

    /// The live session `params.id` names, for `peer`: someone else's reads as missing (and the
    /// attempt is recorded), as a task does.
    private func session(_ params: inout Params, _ peer: Peer, _ method: String, adminToo: Bool) throws -> LiveTask {
        let id = try params.requiredInt("id", min: 1)
        if let task = tasks.liveSession(id, for: peer, adminToo: adminToo) { return task }
        if let record = try? store.task(id: id), record.kind == "session",
           record.submitter.uid == peer.uid || (adminToo && authorizer.isAdmin(peer)) {
            throw RPCError(RPCCode.notFound, "session \(id) has ended (\(record.reason ?? record.state.rawValue)); its record is task \(id)", field: "params.id")
        }
        tasks.refuse(peer, method: method, what: "session \(id)")
        throw RPCError(RPCCode.notFound, "no open session \(id) of yours", field: "params.id")
    }

    /// session.exec {id, argv, stdin?|stdinBase64?, env?, cwd?, timeout?, stream?}: runs the
    /// command in the session and answers when it has ended. With `stream`, its output comes
    /// first as `session.output` notifications ({id, exec, stream, data}: base64).
    func sessionExec(_ params: inout Params, _ peer: Peer, _ sink: MessageSink) throws -> Answer {
        let task = try session(&params, peer, "session.exec", adminToo: false)
        let argv = try argvParam(&params)
        let stdin = try stdinParam(&params)
        let env = try envParam(&params)
        let cwd = try params.string("cwd", maxBytes: 4096)
        if let cwd, !cwd.hasPrefix("/") { throw RPCError.invalid(params.field("cwd"), "\(PrintableText.of(cwd)) is not an absolute path") }
        let timeout = try params.number("timeout", min: 0.001, max: 86400 * 365)
        let stream = try params.bool("stream") ?? false
        try params.finish()
        try TaskManager.checkPassed(env, policy: task.plan.policy)
        // Each command is a new act of the caller's: the policy must still be theirs to use
        // (as it is now on disk), and their records must have room.
        _ = try tasks.policy(named: task.plan.policy.name, for: peer, method: "session.exec")
        do { try quotas.checkRecords(peer.uid) } catch {
            tasks.quotaRefused(peer, error)
            throw error
        }
        if let timeout, let wall = task.plan.policy.limits.wallTimeSeconds, timeout > wall {
            throw RPCError.invalid("params.timeout", "\(Units.formatDuration(timeout)) is longer than policy \(task.plan.policy.name)'s wall_time \(Units.formatDuration(wall)): a command's timeout may only tighten it")
        }
        let request = ExecRequest(argv: argv, stdin: stdin, env: env, cwd: cwd, timeoutSeconds: timeout, stream: stream)
        guard let channel = task.session else { throw RPCError(RPCCode.notFound, "no open session \(task.id)") }
        let id = task.id
        return .laterUnlessClosed { [self] reply in
            let gone = Atomic<Bool>(false)
            let started: Void? = try? tasks.execThreads.run { [self] in
                let output: ((Int, Bool, ArraySlice<UInt8>) -> Bool)? = stream ? { exec, isStdout, bytes in
                    let note = RPCMessage.notification(method: "session.output", params: .object([
                        ("id", .int(id)), ("exec", .int(Int64(exec))), ("stream", .string(isStdout ? "stdout" : "stderr")),
                        ("data", .string(Data(bytes).base64EncodedString())),
                    ]))
                    return sink.send(note)
                } : nil
                do {
                    let outcome = try channel.run(request, plan: task.plan, baseEnv: task.request.env, output: output,
                                                  cancelled: { gone.load(ordering: .relaxed) },
                                                  record: { tasks.recordExec(task, request, $0, by: peer) })
                    reply(.success(Self.execJSON(outcome, session: id)))
                } catch let error as RPCError {
                    reply(.failure(error))
                } catch {
                    reply(.failure(RPCError(RPCCode.internalError, "\(error)")))
                }
            }
            if started == nil { reply(.failure(RPCError(RPCCode.internalError, "cannot start a thread for the command"))) }
            // The client went away: its command is killed (as a cancelled task's sandbox is).
            return { gone.store(true, ordering: .relaxed) }
        }
    }

    static func execJSON(_ o: ExecOutcome, session: Int64) -> JSON {
        var m: [(String, JSON)] = [("id", .int(session)), ("exec", .int(Int64(o.exec))), ("reason", .string(o.reason))]
        if let code = o.exitCode { m.append(("exitCode", .int(Int64(code)))) }
        if let signal = o.signal { m.append(("signal", .int(Int64(signal)))) }
        if let error = o.error { m.append(("error", .string(error))) }
        m += [("seconds", .double(o.seconds)), ("cpuUserSeconds", .double(o.cpuUserSeconds)), ("cpuSystemSeconds", .double(o.cpuSystemSeconds)),
              ("peakMemoryBytes", .int(o.peakMemoryBytes)), ("stdoutBytes", .int(o.stdoutBytes)), ("stderrBytes", .int(o.stderrBytes))]
        if !o.stdout.isEmpty || !o.stderr.isEmpty || o.truncated {
            m.append(("stdout", .string(Data(o.stdout).base64EncodedString())))
            m.append(("stderr", .string(Data(o.stderr).base64EncodedString())))
            if o.truncated { m.append(("truncated", .bool(true))) }
        }
        return .object(m)
    }

    /// session.list {all?}: open sessions, the caller's (an admin's `all`: everyone's).
    func sessionList(_ params: inout Params, _ peer: Peer) throws -> JSON {
        let all = try params.bool("all") ?? false
        try params.finish()
        if all && !authorizer.isAdmin(peer) {
            tasks.refuse(peer, method: "session.list", what: "every user's sessions")
            throw RPCError(RPCCode.unauthorized, "listing every user's sessions is for cordond admins (uid \(peer.uid) is not one)", field: "params.all")
        }
        return .array(tasks.liveSessions(of: all ? nil : peer.uid).map { sessionJSON($0) })
    }

    /// session.close {id}: ends the session (its commands are killed, a copy-on-write
    /// workspace's changes kept for task.diff) and answers with its record once it has ended.
    func sessionClose(_ params: inout Params, _ peer: Peer) throws -> Answer {
        let task = try session(&params, peer, "session.close", adminToo: true)
        try params.finish()
        task.session?.close(reason: "closed", by: peer)
        let id = task.id
        return .afterTask(id, timeout: 30) { [self] ended throws in
            guard ended else {
                throw RPCError(RPCCode.waitTimedOut, "session \(id) is still ending after 30 s", field: "params.id")
            }
            return taskJSON(try reload(id), withResult: false)
        }
    }
}
