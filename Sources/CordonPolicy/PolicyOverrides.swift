/// What `cordon run`'s flags change in a policy for one run, applied to the policy value before
/// anything is planned, so the mount plan, the record, `--learn` and the hash all see one policy.
///
/// The flags follow the policy's own rules:
/// - `--bind`/`--ro-bind` add a `filesystem.read_write`/`read_only` entry; like a mount in a
///   file that `extends` the policy, one at a path the policy already mounts (a bind or a tmpfs)
///   replaces it. A path the policy hides, or its workdir, is refused: the policy said what is
///   there.
/// - `--env NAME=VALUE` sets `process.env.NAME` (replacing the policy's value).
/// - `--cwd` sets `process.cwd`.
/// - `--network-allow` adds a `network.allow` entry (a policy with `mode = "none"` becomes an
///   allowlist of just the flags' entries).
/// - `--memory`, `--pids` and `--timeout` only tighten `limits.memory`, `limits.pids` and
///   `limits.wall_time`: a looser value is an error naming the key and both values.
///
/// Pure: whether a bind's source exists is the caller's to check (see `CordonCLI`).
public struct PolicyOverrides: Sendable, Equatable {
    public struct Bind: Sendable, Equatable {
        /// The host path.
        public var source: String
        /// The path inside the sandbox.
        public var path: String
        public var writable: Bool
        /// "--bind" or "--ro-bind", for messages.
        public var flag: String { writable ? "--bind" : "--ro-bind" }
        /// As typed: "SRC" or "SRC:DST".
        public var text: String { source == path ? source : "\(source):\(path)" }
    }

    public var binds: [Bind] = []
    public var env: [Policy.EnvVar] = []
    public var cwd: String?
    public var memoryBytes: UInt64?
    public var pids: Int?
    public var wallTimeSeconds: Double?
    public var networkAllow: [String] = []

    public init() {}

    /// A flag's value that is wrong on its own or against the policy: "--FLAG VALUE: message".
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var flag: String
        public var value: String
        public var message: String
        public init(_ flag: String, _ value: String, _ message: String) {
            self.flag = flag
            self.value = value
            self.message = message
        }
        public var description: String { "\(flag) \(value): \(message)" }
    }

    public var isEmpty: Bool {
        binds.isEmpty && env.isEmpty && cwd == nil && memoryBytes == nil && pids == nil && wallTimeSeconds == nil && networkAllow.isEmpty
    }

    // MARK: flag values

    /// `SRC[:DST]`: absolute, normalized paths (the policy's rules and texts); DST defaults to SRC.
    public static func bind(_ text: String, writable: Bool) throws(Problem) -> Bind {
        let flag = writable ? "--bind" : "--ro-bind"
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let source = parts[0]
        let path = parts.count == 2 ? parts[1] : source
        for p in parts.count == 2 ? [source, path] : [source] {
            if let problem = PolicyParser.pathProblem(p) {
                throw Problem(flag, text, problem + pathHint(p))
            }
        }
        if path == "/" { throw Problem(flag, text, "the sandbox's root cannot be a bind: name a directory below it") }
        return Bind(source: source, path: path, writable: writable)
    }

    /// What to type instead of a relative or unnormalized path.
    static func pathHint(_ p: String) -> String {
        if !p.hasPrefix("/") { return " (use \"$PWD/\(p)\")" }
        var parts: [Substring] = []
        for part in p.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        let normal = "/" + parts.joined(separator: "/")
        return normal != p && PolicyParser.pathProblem(normal) == nil ? " (did you mean \(normal)?)" : ""
    }

    /// `NAME=VALUE`, with `process.env`'s rules.
    public static func envVar(_ text: String) throws(Problem) -> Policy.EnvVar {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw Problem("--env", text, "expected NAME=VALUE")
        }
        let name = String(text[..<eq]), value = String(text[text.index(after: eq)...])
        if name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) || value.utf8.contains(0) {
            throw Problem("--env", text, "invalid environment variable (a control character in the name or a NUL in the value)")
        }
        return Policy.EnvVar(name, value)
    }

    public static func cwd(_ text: String) throws(Problem) -> String {
        if let problem = PolicyParser.pathProblem(text) { throw Problem("--cwd", text, problem + pathHint(text)) }
        return text
    }

    /// A size within `limits.memory`'s range.
    public static func memory(_ text: String) throws(Problem) -> UInt64 {
        guard let value = Units.sizeValue(text), let bytes = UInt64(exactly: value.rounded()) else {
            throw Problem("--memory", text, "bad size (use a number of bytes or units like \"512M\", \"64k\", \"2G\")")
        }
        guard PolicyRange.memory.contains(bytes) else {
            throw Problem("--memory", text, "out of range \(Units.formatSize(PolicyRange.memory.lowerBound))...\(Units.formatSize(PolicyRange.memory.upperBound))")
        }
        return bytes
    }

    public static func pids(_ text: String) throws(Problem) -> Int {
        guard let n = Int64(text) else { throw Problem("--pids", text, "expected a number of processes") }
        guard PolicyRange.pids.contains(n) else {
            throw Problem("--pids", text, "out of range \(PolicyRange.pids.lowerBound)...\(PolicyRange.pids.upperBound)")
        }
        return Int(n)
    }

    public static func duration(_ text: String, flag: String = "--timeout") throws(Problem) -> Double {
        guard let d = Units.parseDuration(text) else { throw Problem(flag, text, "bad duration (use e.g. 30s, 500ms, 2m)") }
        guard PolicyRange.duration.contains(d) else { throw Problem(flag, text, "out of range \(PolicyRange.durationText)") }
        return PolicyRange.quantize(seconds: d)
    }

    /// `HOST:PORT` with `network.allow`'s rules.
    public static func destination(_ text: String) throws(Problem) -> String {
        if let problem = PolicyParser.destinationProblem(text) { throw Problem("--network-allow", text, problem) }
        return text
    }

    /// The flags that shape the mount plan: binds, and network destinations (an allowlist gets
    /// the supervisor's resolv.conf). A cached plan is keyed by these.
    public var planShaping: PolicyOverrides {
        var o = PolicyOverrides()
        o.binds = binds
        o.networkAllow = networkAllow
        return o
    }

    /// The flags that only set values the plan copies from the policy (the environment, the
    /// cwd, cgroup limits and the wall clock): applied to a cached plan's policy on every run,
    /// so their values are never written to a cache. `apply(to:)` of `planShaping` then of
    /// `perRun` gives what `apply(to:)` of all gives, refusals included (the bind ones first).
    public var perRun: PolicyOverrides {
        var o = self
        o.binds = []
        o.networkAllow = []
        return o
    }

    // MARK: applying

    /// `policy` with the flags applied; a problem names the flag, its value and the policy key
    /// it meets. Nothing is applied when anything is refused.
    public func apply(to policy: Policy) throws(Problem) -> Policy {
        var p = policy
        var seen: [String: Bind] = [:]
        for bind in binds {
            if let first = seen[bind.path] {
                throw Problem(bind.flag, bind.text, "\(bind.path) is already bound by \(first.flag) \(first.text)")
            }
            seen[bind.path] = bind
            let fs = p.filesystem
            if bind.path == fs.workdir {
                throw Problem(bind.flag, bind.text, "\(bind.path) is policy \(policy.name)'s workdir (filesystem.workdir, a private scratch tmpfs): bind the directory at another path, e.g. \(bind.flag) \(bind.source):/src")
            }
            if let hidden = fs.hide.first(where: { Self.isWithin(bind.path, $0) }) {
                throw Problem(bind.flag, bind.text, "\(hidden) is hidden by policy \(policy.name) (filesystem.hide): the flags cannot show it")
            }
            // Replaces whatever the policy mounts at that path, as an extending policy file does.
            p.filesystem.readOnly.removeAll { $0.path == bind.path }
            p.filesystem.readWrite.removeAll { $0.path == bind.path }
            p.filesystem.tmpfs.removeAll { $0.path == bind.path }
            let entry = Policy.Bind(path: bind.path, source: bind.source)
            if bind.writable { p.filesystem.readWrite.append(entry) } else { p.filesystem.readOnly.append(entry) }
        }
        for variable in env {
            p.process.env.removeAll { $0.name == variable.name }
            p.process.env.append(variable)
        }
        if let cwd { p.process.cwd = cwd }
        func tighten<T: Comparable>(_ flag: String, _ key: String, _ asked: T?, _ current: T?, _ show: (T) -> String) throws(Problem) -> T? {
            guard let asked else { return current }
            if let current, asked > current {
                throw Problem(flag, show(asked), "looser than policy \(policy.name)'s \(key) = \(show(current)): flags only tighten a policy's limits (write a policy that extends \(policy.name) to loosen them)")
            }
            return asked
        }
        p.limits.memoryBytes = try tighten("--memory", "limits.memory", memoryBytes, policy.limits.memoryBytes) { Units.formatSize($0) }
        p.limits.pids = try tighten("--pids", "limits.pids", pids, policy.limits.pids) { "\($0)" }
        p.limits.wallTimeSeconds = try tighten("--timeout", "limits.wall_time", wallTimeSeconds, policy.limits.wallTimeSeconds) { Units.formatDuration($0) }
        if !networkAllow.isEmpty {
            if p.network.mode == .none {
                p.network.mode = .allowlist
                p.network.allow = []
            }
            for entry in networkAllow where !p.network.allow.contains(entry) { p.network.allow.append(entry) }
        }
        return p
    }

    /// One line per flag, in a fixed order: what the record's hash covers besides the policy.
    public var canonicalText: String {
        var lines: [String] = []
        lines += binds.map { "\($0.flag) \($0.text)" }
        lines += env.map { "--env \($0.name)=\($0.value)" }
        if let cwd { lines.append("--cwd \(cwd)") }
        if let memoryBytes { lines.append("--memory \(memoryBytes)") }
        if let pids { lines.append("--pids \(pids)") }
        if let wallTimeSeconds { lines.append("--timeout \(Units.formatDuration(wallTimeSeconds))") }
        lines += networkAllow.map { "--network-allow \($0)" }
        return lines.joined(separator: "\n")
    }

    /// The sandbox path at which the host directory `hostPath` is seen under `policy`: through
    /// the bind whose source holds it most specifically, when no other mount (a tmpfs, the
    /// workdir, another bind, a hidden path) covers that sandbox path more specifically. Nil when
    /// the directory is not visible as itself. `realSource` maps a bind's source to its real
    /// path (the caller's cwd is a real path).
    public static func sandboxPath(ofHostDirectory hostPath: String, in policy: Policy,
                                   realSource: (String) -> String? = { $0 }) -> String? {
        let fs = policy.filesystem
        var best: (bind: Policy.Bind, source: String)?
        for bind in fs.readOnly + fs.readWrite {
            guard let source = realSource(bind.source), isWithin(hostPath, source) else { continue }
            if best == nil || source.count > best!.source.count { best = (bind, source) }
        }
        guard let (bind, source) = best else { return nil }
        let rest = source == "/" ? (hostPath == "/" ? "" : hostPath) : String(hostPath.dropFirst(source.count))
        let path = bind.path == "/" ? (rest.isEmpty ? "/" : rest) : bind.path + rest
        // Another mount deeper than the bind, at or above the path, shows something else there.
        let others = (fs.readOnly + fs.readWrite).filter { $0.path != bind.path }.map(\.path) + fs.tmpfs.map(\.path) + [fs.workdir] + fs.hide
        if others.contains(where: { isWithin(path, $0) && $0.count > bind.path.count }) { return nil }
        return path
    }

    /// `path` is `dir` or lies below it.
    static func isWithin(_ path: String, _ dir: String) -> Bool {
        path == dir || dir == "/" || path.hasPrefix(dir + "/")
    }
}
