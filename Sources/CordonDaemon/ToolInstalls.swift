import CordonConfig
import CordonInstall
import CordonJSON
import CordonPackaging
import CordonPolicy
import CordonSandbox
import CordonStore
import CordonSystem
import CordonToolGateway
import CordonTools
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// cordond's installs of tools' requirements (`requires`, `lock`): each through the install gate
/// of the tool's own policy (`InstallRun`, the same run as `cordon install`) into the store in
/// the state dir, one install at a time. A set installed for a tool is pinned to what was asked
/// (the requirement text, the policy's content, the Python), so a restarted cordond binds it
/// again without resolving: a tool with requirements starts offline once it started once.
/// docs/tools.md, "Requirements".
final class ToolInstalls: Sendable {
    let stateDir: String
    let cacheDir: String
    let environment: SandboxEnvironment
    let log: Logger
    /// One install at a time (each runs resolvers and downloads of its own in parallel); a
    /// tool's requirements go before any `install.run` waiting with them.
    private let turn = Monitor()
    // Guarded by `turn`.
    private nonisolated(unsafe) var busy = false
    private nonisolated(unsafe) var toolsWaiting = 0
    private nonisolated(unsafe) var cleaned = false
    /// `install.run`s queued or running, by uid (one each), and in all.
    private let asked = Mutex<[UInt32: Int]>([:])
    static let maxQueuedRuns = 8
    static let python = "/usr/bin/python3"
    /// The verdicts a failure names before "and N more" (the record has them all).
    static let shownVerdicts = 5

    init(stateDir: String, cacheDir: String, environment: SandboxEnvironment, log: Logger) {
        self.stateDir = stateDir
        self.cacheDir = cacheDir
        self.environment = environment
        self.log = log
    }

    /// What a pin is keyed by: everything the installed set depends on but the index's answers —
    /// the Python, and the inputs the gateway's key is made of (`RequirementsInputs`), so the two
    /// cannot disagree on what a set depends on. (Each line is one a manifest's parser let
    /// through: printable, no newline. The bytes are those of the pins cordond has written since
    /// format 2: an upgrade keeps them.)
    static func request(_ m: ToolManifest, _ policy: Policy) -> String {
        let i = m.requirementsInputs(under: policy)
        var h = SHA256()
        h.update(Array("cordon tool requirements 2\n\(pythonIdentity)\n\(i.policyHash)\n".utf8))
        for line in i.requires { h.update(Array("requires \(line)\n".utf8)) }
        if let lock = i.lock { h.update(Array("lock \(lock)\n\(i.lockText ?? "")".utf8)) }
        return h.hexDigest()
    }

    /// Which Python `python` is now: the file it resolves to (python3.11, python3.12, …) — a
    /// set resolved and built for one minor version is not pinned for another; a patch update
    /// (the same ABI) keeps its pins.
    static var pythonIdentity: String { FileSystem.realPath(python) ?? python }

    /// The requirements as `cordon install` reads them: the lines of `requires`, or the lock.
    static func requirements(_ m: ToolManifest) throws(RequirementsError) -> (requirements: [Requirement], source: String) {
        if let lock = m.lock {
            let source = "\(m.source.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))/\(lock)"
            return (try RequirementsFile.parse(m.lockText ?? "", source: source), source)
        }
        var out: [Requirement] = []
        for (i, line) in m.requires.enumerated() {
            if let r = try RequirementsFile.parseLine(line, source: "\(m.source): tool.requires", line: i + 1) { out.append(r) }
        }
        return (out, "\(m.source): tool.requires")
    }

    /// One install through the gate of `policy` (named `policyName`), one at a time: the
    /// outcome and where its record was kept. `label` goes into the record (who asked, for what).
    /// Throws for what stopped it before a decision.
    /// `proceed`, asked once the install's turn has come: false, and it is not begun.
    func run(_ requirements: [Requirement], source: String, policy: Policy, policyName: String, label: [(String, JSON)],
             forTool: Bool = false, proceed: () -> Bool = { true },
             progress: (InstallRun.Step) -> Void = { _ in }) throws(InstallRun.Problem) -> (outcome: InstallRun.Outcome, recordPath: String) {
        turn.locked {
            if forTool { toolsWaiting += 1 }
            _ = turn.wait { !busy && (forTool || toolsWaiting == 0) }
            if forTool { toolsWaiting -= 1 }
            busy = true
        }
        defer { turn.locked { busy = false; turn.broadcast() } }
        guard proceed() else { throw InstallRun.Problem("not begun: what it was for has changed since it was asked") }
        return try runLocked(requirements, source: source, policy: policy, policyName: policyName, label: label, progress: progress)
    }

    /// `install.run`'s place in the queue: one per uid, `maxQueuedRuns` in all; false when
    /// there is none (answered busy). `done` gives it back.
    func admit(_ uid: UInt32) -> Bool {
        asked.withLock { a in
            guard a[uid, default: 0] == 0, a.values.reduce(0, +) < Self.maxQueuedRuns else { return false }
            a[uid, default: 0] += 1
            return true
        }
    }

    func done(_ uid: UInt32) {
        asked.withLock { a in
            let n = a[uid, default: 0] - 1
            a[uid] = n > 0 ? n : nil
        }
    }

    private func runLocked(_ requirements: [Requirement], source: String, policy: Policy, policyName: String, label: [(String, JSON)],
                           progress: (InstallRun.Step) -> Void) throws(InstallRun.Problem) -> (outcome: InstallRun.Outcome, recordPath: String) {
        let packages = try store()
        var setup: InstallRun.Setup
        do {
            setup = InstallRun.Setup(scanner: try WorkerProgram.locate(name: "cordon-scan"), database: Locations(stateDir: stateDir).vulnDB().path,
                                     environment: environment, seccompCache: "\(cacheDir)/seccomp")
        } catch {
            throw InstallRun.Problem("cordond cannot install: \(error)")
        }
        setup.uv = try InstallRun.findUV(nil)
        setup.python = Self.python
        let outcome = try InstallRun(gate: policy.install, policyName: policyName, store: packages, setup: setup).run(requirements, source: source, progress: progress)
        var record = outcome.record
        if case .object(var members) = record {
            members += label
            record = .object(members)
        }
        var recordPath = "(not kept)"
        do { recordPath = try packages.writeRecord(record) } catch {
            log.error("install: keeping the record", metadata: ["error": "\(error)"])
        }
        return (outcome, recordPath)
    }

    /// The store, with (once per cordond) the work an earlier cordond left behind removed.
    /// Called with the turn held.
    private func store() throws(InstallRun.Problem) -> PackageStore {
        let packages: PackageStore
        do {
            try FileSystem.makeDirectories(stateDir, mode: 0o700)
            packages = try PackageStore(root: "\(stateDir)/store")
        } catch {
            throw InstallRun.Problem("the store in \(stateDir)/store: \(error)")
        }
        if !cleaned {
            // Its process gone; live installs (a root `cordon install`) kept.
            for problem in packages.removeStale(setsAside: false) { log.warning("store", metadata: ["problem": "\(problem)"]) }
            cleaned = true
        }
        return packages
    }

    /// At cordond's start: work of processes that are gone, and the sets `cordon store gc`
    /// moved aside (no sandbox of a previous cordond is left to have one mounted).
    func removeStale() {
        guard FileSystem.isDirectory("\(stateDir)/store"), let packages = try? PackageStore(root: "\(stateDir)/store") else { return }
        for problem in packages.removeStale(setsAside: true) { log.warning("store", metadata: ["problem": "\(problem)"]) }
    }

    /// What a refusal says: the refusing verdicts (the first few), and where the record is.
    static func refusals(_ outcome: InstallRun.Outcome, policyName: String) -> String {
        let refusals = outcome.verdicts.filter(\.refuses)
        var text = refusals.prefix(shownVerdicts).map { "\($0)" }.joined(separator: "; ")
        if refusals.count > shownVerdicts { text += "; and \(refusals.count - shownVerdicts) more" }
        return "refused by policy \(policyName)'s [install] gate: \(text)"
    }

    /// A tool's requirements: the pinned set when there is one, else an install, pinned.
    /// What callers of the tool are told is the gate's verdicts, never a path of cordond's: the
    /// record's place and an error's details are in the log.
    func install(_ m: ToolManifest, _ policy: Policy, isCurrent: @escaping @Sendable () -> Bool = { true }) -> Result<String, RequirementsProblem> {
        let started = MonotonicClock.now
        let request = Self.request(m, policy)
        if let set = try? PackageStore(root: "\(stateDir)/store").pinned(request) {
            log.info("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "pinned", "set": "\(set.hash)"])
            return .success(set.site)
        }
        let parsed: (requirements: [Requirement], source: String)
        do { parsed = try Self.requirements(m) } catch { return .failure(RequirementsProblem(error.reason)) }
        log.info("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "installing", "requirements": "\(parsed.requirements.count)",
                                                 "policy": "\(m.policy)", "index": "\(policy.install.index)"])
        let ran: (outcome: InstallRun.Outcome, recordPath: String)
        do {
            ran = try run(parsed.requirements, source: parsed.source, policy: policy, policyName: m.policy, label: [("tool", .string(m.name))],
                          forTool: true, proceed: isCurrent)
        } catch {
            log.error("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "error", "error": "\(error)"])
            return .failure(RequirementsProblem("the install through policy \(m.policy)'s [install] gate stopped before a decision (cordond's log says why, tool=\(m.name))"))
        }
        let seconds = "\(Int((MonotonicClock.now - started) * 10) / 10).\(Int((MonotonicClock.now - started) * 10) % 10)"
        guard let set = ran.outcome.set else {
            log.error("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "refused", "record": "\(ran.recordPath)", "seconds": "\(seconds)"])
            return .failure(RequirementsProblem(Self.refusals(ran.outcome, policyName: m.policy)))
        }
        do { try PackageStore(root: "\(stateDir)/store").pin(request, to: set.hash) } catch {
            log.error("tool requirements: pinning the set", metadata: ["tool": "\(m.name)", "error": "\(error)"])
            return .failure(RequirementsProblem("the installed set could not be kept for the tool (cordond's log says why, tool=\(m.name))"))
        }
        log.info("tool requirements", metadata: ["tool": "\(m.name)", "outcome": ran.outcome.reused ? "reused" : "installed", "set": "\(set.hash)",
                                                 "files": "\(ran.outcome.record["files"]?.arrayValue?.count ?? 0)", "record": "\(ran.recordPath)",
                                                 "seconds": "\(seconds)"])
        return .success(set.site)
    }
}
