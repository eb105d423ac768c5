import CordonJSON
import CordonPolicy
import CordonSystem
import CordonTools

/// What a tool with requirements (`requires`, `lock`) is at: their install through the gate runs
/// on a thread of its own when the manifest is read, and the tool has no sandbox plan until it
/// ends. Calls meanwhile wait for it (up to their deadline); a failed install fails the calls
/// with its reason, and is tried again when the manifests are read again (a reload, SIGHUP).
public enum RequirementsPhase: Sendable, Equatable {
    case installing(since: Double)
    /// The installed set's site directory on the host.
    case ready(site: String)
    case failed(String)
}

/// Installs a tool's requirements through the install gate of `policy` (the tool's own, its
/// `[install]` table), blocking, and gives the host path of the set's site directory; or why
/// not (the refusals, each naming the package, the rule and the evidence). cordond's uses
/// CordonInstall; nothing else installs.
/// `isCurrent` says whether the tool still wants this install (it is not begun otherwise: an
/// install queued behind another may have been overtaken by a change of the manifest).
public typealias RequirementsInstaller = @Sendable (_ tool: ToolManifest, _ policy: Policy, _ isCurrent: @escaping @Sendable () -> Bool)
    -> Result<String, RequirementsProblem>

public struct RequirementsProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What the set installed for a tool's requirements depends on, besides the Python and the
/// index's answers: the policy's content (its gate) and the requirement text, or the lock's
/// name and text. The one list: the gateway's key is it (`ToolManifest.requirementsKey`) and
/// cordond's pin of the set hashes it, with the Python's identity.
public struct RequirementsInputs: Sendable, Equatable {
    public var policyHash: String
    public var requires: [String]
    public var lock: String?
    public var lockText: String?
}

extension ToolManifest {
    public func requirementsInputs(under policy: Policy) -> RequirementsInputs {
        RequirementsInputs(policyHash: policy.contentHash, requires: requires, lock: lock, lockText: lockText)
    }

    /// The inputs as JSON, so that no two different requests can spell the same key: the
    /// gateway installs again when it changes.
    public func requirementsKey(under policy: Policy) -> String {
        let i = requirementsInputs(under: policy)
        return JSON.object([("policy", .string(i.policyHash)), ("requires", .array(i.requires.map(JSON.string))),
                            ("lock", i.lock.map(JSON.string) ?? .null), ("lockText", i.lockText.map(JSON.string) ?? .null)]).text
    }
}

/// The phases of every tool with requirements, by tool name, each for the key (policy, requirement
/// text) it was started for: a manifest or policy that changed starts a new install, and the
/// answer of an install started for an older key is dropped.
final class ToolRequirements: @unchecked Sendable {
    struct Entry {
        var key: String
        var phase: RequirementsPhase
        var since: Double
        /// Whether calls see `phase` yet: an install's end is published once the registry has
        /// been read again with it (the tool's plan is in the catalog), never before.
        var published: Bool
    }

    private let monitor = Monitor()
    // Guarded by `monitor`.
    private var entries: [String: Entry] = [:]

    /// What calls see of `name`: installing until the end of its install is published.
    func phase(_ name: String) -> RequirementsPhase? { monitor.locked { entries[name].map(Self.visible) } }

    static func visible(_ e: Entry) -> RequirementsPhase { e.published ? e.phase : .installing(since: e.since) }

    /// Where the install of `name` for `key` is (for reading the registry: unpublished too).
    func phase(_ name: String, key: String) -> RequirementsPhase? {
        monitor.locked { entries[name].flatMap { $0.key == key ? $0.phase : nil } }
    }

    var all: [String: RequirementsPhase] { monitor.locked { entries.mapValues(Self.visible) } }

    /// Marks `name` installing for `key`; false when it already is (nothing to start).
    func begin(_ name: String, key: String, now: Double) -> Bool {
        monitor.locked {
            if let e = entries[name], e.key == key, case .installing = e.phase { return false }
            entries[name] = Entry(key: key, phase: .installing(since: now), since: now, published: true)
            return true
        }
    }

    /// The end of the install of `name` started for `key`, not yet seen by calls (`publish`);
    /// false (dropped) when the tool has since changed or gone.
    func finish(_ name: String, key: String, _ phase: RequirementsPhase) -> Bool {
        monitor.locked {
            guard var e = entries[name], e.key == key, case .installing = e.phase else { return false }
            e.phase = phase
            e.published = false
            entries[name] = e
            return true
        }
    }

    /// Lets calls see the end of `name`'s install for `key`, and wakes those waiting.
    func publish(_ name: String, key: String) {
        monitor.locked {
            guard entries[name]?.key == key else { return }
            entries[name]?.published = true
            monitor.broadcast()
        }
    }

    /// Whether `name` is still installing for `key`.
    func isCurrent(_ name: String, key: String) -> Bool {
        monitor.locked {
            guard let e = entries[name], e.key == key, case .installing = e.phase else { return false }
            return true
        }
    }

    /// Forgets the tools not in `names` (their manifests are gone); a waiter on one wakes.
    func keep(only names: Set<String>) {
        monitor.locked {
            let gone = entries.keys.filter { !names.contains($0) }
            for name in gone { entries[name] = nil }
            if !gone.isEmpty { monitor.broadcast() }
        }
    }

    /// Blocks until calls see `name` not installing any more, or `deadline` (MonotonicClock
    /// seconds); gives what they see then.
    func wait(_ name: String, until deadline: Double) -> RequirementsPhase? {
        monitor.locked {
            _ = monitor.wait(until: deadline) {
                if case .installing? = entries[name].map(Self.visible) { return false }
                return true
            }
            return entries[name].map(Self.visible)
        }
    }
}
