import CordonInstall
import CordonJSON
import CordonPackaging
import CordonRPC
import CordonPolicy
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// `install.run`: `cordon install` through cordond, for users who are not root (docs/daemon.md).
extension Daemon {
    /// The most requirement lines one request names (a longer set: `lock`).
    static let maxInstallLines = 1000

    /// install.run {requirements?: [LINE], lock?: TEXT, policy?: NAME, progress?: bool}: the
    /// requirements (argument lines, or a requirements file's text) through the `[install]` gate
    /// of `policy` (default `default`; the caller must be allowed to use it) into cordond's store.
    /// With `progress`, `install.progress` notifications ({step, …}) come first. Answered with
    /// {outcome: installed|reused|refused, set, files, verdicts, record}; a refusal is an
    /// outcome, not an error. One install runs at a time (tools' requirements included).
    func installRun(_ params: inout Params, _ peer: Peer, _ sink: MessageSink) throws -> Answer {
        let lines = try params.stringArray("requirements", maxCount: Self.maxInstallLines, maxBytes: RequirementsFile.maxLine)
        let lock = try params.string("lock", maxBytes: RequirementsFile.maxBytes)
        let policyName = try params.string("policy", maxBytes: 255) ?? "default"
        let progress = try params.bool("progress") ?? false
        try params.finish()
        let requirements: [Requirement]
        let source: String
        switch (lines, lock) {
        case (let lines?, nil):
            source = "params.requirements"
            var parsed: [Requirement] = []
            for (i, line) in lines.enumerated() {
                do {
                    if let r = try RequirementsFile.parseLine(line, source: source, line: i + 1) { parsed.append(r) }
                } catch {
                    throw RPCError.invalid("params.requirements[\(i)]", error.reason)
                }
            }
            requirements = parsed
        case (nil, let lock?):
            source = "params.lock"
            do { requirements = try RequirementsFile.parse(lock, source: source) } catch {
                throw RPCError.invalid("params.lock", "line \(error.line): \(error.reason)")
            }
        default:
            throw RPCError.invalid("params.requirements", "give requirements (one requirement per element) or lock (a requirements file's text): one of them")
        }
        do { try InstallRun.validate(requirements, source: source) } catch {
            throw RPCError.invalid(source, error.description)
        }
        var asked = try tasks.policy(named: policyName, for: peer, method: "install.run")
        // A build runs the sdist's own code for as long as its sandbox allows, in the one
        // install slot everyone shares: only an admin's install.run builds.
        if !authorizer.isAdmin(peer) { asked.install.sdists = .refuse }
        let policy = asked
        let stateDir = config.stateDir, floor = config.minFreeDiskBytes
        let room: @Sendable () -> Bool = {
            var fs = statvfs()
            return statvfs(stateDir, &fs) != 0 || UInt64(fs.f_bavail) &* UInt64(fs.f_frsize) > floor
        }
        guard room() else {
            throw RPCError(RPCCode.quotaExceeded, "the state directory's disk has less free than tasks.min_free_disk (\(Units.formatSize(floor))): nothing is installed until there is room")
        }
        let installs = self.installs, log = self.log
        // One queued or running install.run per user, a few in all: the install slot is shared
        // with every tool's requirements, which go first.
        guard installs.admit(peer.uid) else {
            throw RPCError(RPCCode.busy, "an install.run of uid \(peer.uid) is already queued or running, or \(ToolInstalls.maxQueuedRuns) are: try again when it has ended")
        }
        return .laterUnlessClosed { reply in
            let body: @Sendable () -> Void = {
                defer { installs.done(peer.uid) }
                log.info("install", metadata: ["uid": "\(peer.uid)", "policy": "\(policyName)", "requirements": "\(requirements.count)"])
                let ran: (outcome: InstallRun.Outcome, recordPath: String)
                do {
                    // Not begun once its caller has gone, or the disk has filled meanwhile.
                    ran = try installs.run(requirements, source: source, policy: policy, policyName: policyName,
                                           label: [("uid", .int(Int64(peer.uid)))], proceed: { sink.isOpen && room() }, progress: { step in
                        guard progress, sink.isOpen else { return }
                        _ = sink.sendWithoutWaiting(RPCMessage.notification(method: "install.progress", params: step.json))
                    })
                } catch {
                    log.error("install", metadata: ["uid": "\(peer.uid)", "policy": "\(policyName)", "error": "\(error)"])
                    return reply(.failure(RPCError(RPCCode.unavailable, "install: \(error)")))
                }
                let o = ran.outcome
                log.info("install", metadata: ["uid": "\(peer.uid)", "policy": "\(policyName)", "outcome": "\(o.refused ? "refused" : o.reused ? "reused" : "installed")",
                                               "set": "\(o.set?.hash ?? "-")", "record": "\(ran.recordPath)"])
                reply(.success(.object([
                    ("outcome", .string(o.refused ? "refused" : o.reused ? "reused" : "installed")),
                    ("set", o.set.map { .string($0.hash) } ?? .null),
                    ("files", o.record["files"] ?? .array([])),
                    ("verdicts", .array(o.verdicts.map(InstallRun.json))),
                    ("message", o.refused ? .string(ToolInstalls.refusals(o, policyName: policyName)) : .null),
                    ("record", .string(ran.recordPath)),
                ])))
            }
            if (try? Threads.detach("cordond-install", signals: .noSIGPIPE, body)) == nil {
                installs.done(peer.uid)
                reply(.failure(RPCError(RPCCode.unavailable, "install: cordond could not start a thread for it")))
            }
            // An install that started runs to its end (its set may serve the next request).
            return {}
        }
    }
}
