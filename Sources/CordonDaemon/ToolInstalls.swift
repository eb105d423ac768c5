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
    /// One install at a time: each runs resolvers and downloads of its own in parallel.
    private let serial = Mutex(false)
    static let python = "/usr/bin/python3"
    /// The verdicts a failure names before "and N more" (the record has them all).
    static let shownVerdicts = 5

    init(stateDir: String, cacheDir: String, environment: SandboxEnvironment, log: Logger) {
        self.stateDir = stateDir
        self.cacheDir = cacheDir
        self.environment = environment
        self.log = log
    }

    /// What a pin is keyed by: everything the installed set depends on but the index's answers.
    static func request(_ m: ToolManifest, _ policy: Policy) -> String {
        var h = SHA256()
        h.update(Array("cordon tool requirements 1\n\(python)\n\(policy.contentHash)\n".utf8))
        for line in m.requires { h.update(Array("requires \(line)\n".utf8)) }
        if let lock = m.lock { h.update(Array("lock \(lock)\n\(m.lockText ?? "")".utf8)) }
        return h.hexDigest()
    }

    /// The requirements as `cordon install` reads them: the lines of `requires`, or the lock.
    static func requirements(_ m: ToolManifest) throws(RequirementsError) -> (requirements: [Requirement], source: String) {
        if let lock = m.lock {
            let source = "\(m.source.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))/\(lock)"
            return (try RequirementsFile.parse(m.lockText ?? "", source: source), source)
        }
        var out: [Requirement] = []
        for (i, line) in m.requires.enumerated() {
            if let r = try RequirementsFile.parseLine(line, source: "\(m.source): tool.requires", line: i) { out.append(r) }
        }
        return (out, "\(m.source): tool.requires")
    }

    func install(_ m: ToolManifest, _ policy: Policy) -> Result<String, RequirementsProblem> {
        let started = MonotonicClock.now
        return serial.withLock { (first: inout Bool) -> Result<String, RequirementsProblem> in
            let packages: PackageStore
            do {
                try FileSystem.makeDirectories(stateDir, mode: 0o700)
                packages = try PackageStore(root: "\(stateDir)/store")
            } catch {
                return .failure(RequirementsProblem("the store in \(stateDir)/store: \(error)"))
            }
            if !first {
                // Work an earlier cordond left behind (its process gone); live installs kept.
                for problem in packages.removeStale(setsAside: false) { log.warning("store", metadata: ["problem": "\(problem)"]) }
                first = true
            }
            let request = Self.request(m, policy)
            if let set = packages.pinned(request) {
                log.info("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "pinned", "set": "\(set.hash)"])
                return .success(set.site)
            }
            let parsed: (requirements: [Requirement], source: String)
            do { parsed = try Self.requirements(m) } catch { return .failure(RequirementsProblem("\(error)")) }
            var setup: InstallRun.Setup
            do {
                setup = InstallRun.Setup(scanner: try WorkerProgram.locate(name: "cordon-scan"), database: Locations(stateDir: stateDir).vulnDB().path,
                                         environment: environment, seccompCache: "\(cacheDir)/seccomp")
                setup.uv = try InstallRun.findUV(nil)
            } catch {
                return .failure(RequirementsProblem("cordond cannot install requirements: \(error)"))
            }
            setup.python = Self.python
            log.info("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "installing", "requirements": "\(parsed.requirements.count)",
                                                     "policy": "\(m.policy)", "index": "\(policy.install.index)"])
            let run = InstallRun(gate: policy.install, policyName: m.policy, store: packages, setup: setup)
            let outcome: InstallRun.Outcome
            do { outcome = try run.run(parsed.requirements, source: parsed.source) } catch {
                log.error("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "error", "error": "\(error)"])
                return .failure(RequirementsProblem("installing through policy \(m.policy)'s [install] gate: \(error)"))
            }
            var recordPath = "(not kept)"
            var record = outcome.record
            if case .object(var members) = record {
                members.append(("tool", .string(m.name)))
                record = .object(members)
            }
            do { recordPath = try packages.writeRecord(record) } catch {
                log.error("tool requirements: keeping the record", metadata: ["tool": "\(m.name)", "error": "\(error)"])
            }
            let seconds = "\(Int((MonotonicClock.now - started) * 10) / 10).\(Int((MonotonicClock.now - started) * 10) % 10)"
            guard let set = outcome.set else {
                let refusals = outcome.verdicts.filter(\.refuses)
                var text = refusals.prefix(Self.shownVerdicts).map { "\($0)" }.joined(separator: "; ")
                if refusals.count > Self.shownVerdicts { text += "; and \(refusals.count - Self.shownVerdicts) more" }
                log.error("tool requirements", metadata: ["tool": "\(m.name)", "outcome": "refused", "record": "\(recordPath)", "seconds": "\(seconds)"])
                return .failure(RequirementsProblem("refused by policy \(m.policy)'s [install] gate: \(text) (record: \(recordPath))"))
            }
            do { try packages.pin(request, to: set.hash) } catch {
                log.warning("tool requirements: pinning the set", metadata: ["tool": "\(m.name)", "error": "\(error)"])
            }
            log.info("tool requirements", metadata: ["tool": "\(m.name)", "outcome": outcome.reused ? "reused" : "installed", "set": "\(set.hash)",
                                                     "files": "\(outcome.record["files"]?.arrayValue?.count ?? 0)", "record": "\(recordPath)",
                                                     "seconds": "\(seconds)"])
            return .success(set.site)
        }
    }
}
