/// What one policy allows that another does not, in both directions: the review a policy change
/// needs ("does this edit widen anything?"). Pure: the caller hands in both parsed seccomp profiles.
public struct PolicyDiff: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        /// The key it is about (`filesystem.read_write`, `limits.memory`, …).
        public var key: String
        public var detail: String
    }

    /// What B allows that A does not.
    public var onlyB: [Entry]
    /// What A allows that B does not.
    public var onlyA: [Entry]

    public static func diff(_ a: Policy, _ aProfile: SeccompProfile, _ b: Policy, _ bProfile: SeccompProfile) -> PolicyDiff {
        PolicyDiff(onlyB: wider(b, bProfile, than: a, aProfile), onlyA: wider(a, aProfile, than: b, bProfile))
    }

    /// Everything `x` grants beyond `y`.
    static func wider(_ x: Policy, _ xp: SeccompProfile, than y: Policy, _ yp: SeccompProfile) -> [Entry] {
        var out: [Entry] = []
        func add(_ key: String, _ detail: String) { out.append(Entry(key: key, detail: detail)) }

        let fs = x.filesystem, other = y.filesystem
        func describe(_ b: Policy.Bind) -> String { b.source == b.path ? b.path : "host \(b.source) at \(b.path)" }
        // Sets and maps, not a search per entry: a policy may list a hundred thousand mounts.
        struct Mount: Hashable { var path: String, source: String }
        let readable = Set((other.readOnly + other.readWrite).map { Mount(path: $0.path, source: $0.source) })
        let writable = Set(other.readWrite.map { Mount(path: $0.path, source: $0.source) })
        for bind in fs.readOnly where !readable.contains(Mount(path: bind.path, source: bind.source)) {
            add("filesystem.read_only", "\(describe(bind)) readable")
        }
        for bind in fs.readWrite where !writable.contains(Mount(path: bind.path, source: bind.source)) {
            add("filesystem.read_write", "\(describe(bind)) writable")
        }
        let otherTmpfs = Dictionary(other.tmpfs.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        for t in fs.tmpfs {
            if let o = otherTmpfs[t.path] {
                if t.sizeBytes > o.sizeBytes { add("filesystem.tmpfs", "tmpfs \(t.path) of \(size(t.sizeBytes)) (other: \(size(o.sizeBytes)))") }
            } else {
                add("filesystem.tmpfs", "writable tmpfs at \(t.path) (\(size(t.sizeBytes)))")
            }
        }
        if fs.workdirSizeBytes > other.workdirSizeBytes {
            add("filesystem.workdir_size", "\(size(fs.workdirSizeBytes)) (other: \(size(other.workdirSizeBytes)))")
        }
        let hidden = Set(fs.hide)
        for path in other.hide where !hidden.contains(path) { add("filesystem.hide", "\(path) is not hidden") }
        if let image = fs.image, image != other.image {
            add("filesystem.image", "its root is the image \(image)\(other.image.map { " (other: \($0))" } ?? "")")
        }
        // A gate that refuses less: "never" refuses nothing, "critical" only the worst.
        let gates = Policy.ImageGate.allCases
        if fs.image != nil, gates.firstIndex(of: fs.imageFailOn)! > gates.firstIndex(of: other.imageFailOn)! {
            add("filesystem.image_fail_on", "images are refused at \(fs.imageFailOn.rawValue) (other: \(other.imageFailOn.rawValue))")
        }

        let theirCaps = Set(y.capabilities.keep)
        for cap in x.capabilities.keep where !theirCaps.contains(cap) { add("capabilities.keep", "keeps \(cap)") }
        if x.process.uid == 0 && y.process.uid != 0 { add("process.user", "runs as root inside its user namespace") }
        let theirPassEnv = Set(y.process.passEnv)
        for name in x.process.passEnv where !theirPassEnv.contains(name) {
            add("process.pass_env", "\(name) passed in from the caller")
        }

        let l = x.limits, m = y.limits
        func limit<T: Comparable>(_ key: String, _ mine: T?, _ theirs: T?, _ show: (T) -> String) {
            switch (mine, theirs) {
            case (nil, let t?): add("limits.\(key)", "unlimited (other: \(show(t)))")
            case (let v?, let t?) where v > t: add("limits.\(key)", "\(show(v)) (other: \(show(t)))")
            default: break
            }
        }
        limit("memory", l.memoryBytes, m.memoryBytes, size)
        limit("pids", l.pids, m.pids) { "\($0)" }
        limit("cpu", l.cpuCores, m.cpuCores) { "\($0) cores" }
        limit("wall_time", l.wallTimeSeconds, m.wallTimeSeconds, seconds)
        limit("cpu_time", l.cpuTimeSeconds, m.cpuTimeSeconds, seconds)
        limit("open_files", l.openFiles, m.openFiles) { "\($0)" }
        limit("file_size", l.fileSizeBytes, m.fileSizeBytes, size)
        limit("output", l.outputBytes, m.outputBytes, size)

        let strength: [Policy.LandlockMode: Int] = [.required: 0, .bestEffort: 1, .off: 2]
        if strength[x.landlock.mode]! > strength[y.landlock.mode]! {
            add("landlock.mode", "\(x.landlock.mode.rawValue) (other: \(y.landlock.mode.rawValue))")
        }
        if x.network.mode == .allowlist {
            let theirs = y.network.mode == .allowlist ? Set(y.network.allow) : []
            for destination in x.network.allow where !theirs.contains(destination) {
                add("network.allow", "reaches \(destination)")
            }
        }

        let severity: [Policy.SeccompViolationAction: Int] = [.kill: 0, .errno: 1, .log: 2]
        if severity[x.seccomp.action]! > severity[y.seccomp.action]! {
            add("seccomp.action", x.seccomp.action == .log ? "refused calls run and are only reported (other: \(y.seccomp.action.rawValue))"
                : "a refused call fails with an errno (other: \(y.seccomp.action.rawValue) stops the sandbox)")
        }
        let theirUsers = Set(y.access.users), theirGroups = Set(y.access.groups)
        for user in x.access.users where !theirUsers.contains(user) { add("access.users", "usable by user \(user)") }
        for group in x.access.groups where !theirGroups.contains(group) { add("access.groups", "usable by group \(group)") }
        for place in x.workspace.allow where !y.workspace.allows(place) { add("workspace.allow", "takes a caller's workspace under \(place)") }
        installGate(x.install, than: y.install, add)
        if xp.letsUnlistedThrough && !yp.letsUnlistedThrough {
            add("seccomp.profile", "\(x.seccomp.profile) lets unlisted syscalls through (other: \(y.seccomp.profile) refuses them)")
        }
        let names = Set(xp.rules.flatMap(\.names) + yp.rules.flatMap(\.names))
        for name in names.sorted() {
            let mine = xp.verdict(name), theirs = yp.verdict(name)
            guard mine.rawValue > theirs.rawValue else { continue }
            add("seccomp.profile", mine == .allowed
                ? (theirs == .conditional ? "allows \(name) without the other's argument conditions" : "allows \(name)")
                : "allows \(name) (with argument conditions)")
        }
        return out
    }

    /// What `x`'s install gate lets through that `y`'s refuses: another index or file host, a
    /// younger release, a file without a hash, a looser severity, a name `y` does not allow or
    /// does deny, a typosquat, an sdist build, a package without provenance, a yanked file.
    static func installGate(_ x: Policy.Install, than y: Policy.Install, _ add: (String, String) -> Void) {
        if x.index != y.index { add("install.index", "installs from \(x.index) (other: \(y.index))") }
        let theirHosts = Set(y.hosts)
        for host in x.hosts where !theirHosts.contains(host) && host != x.hosts.first { add("install.index_hosts", "downloads files from \(host)") }
        if x.minReleaseAgeSeconds < y.minReleaseAgeSeconds {
            add("install.min_release_age", x.minReleaseAgeSeconds == 0 ? "installs releases of any age (other: \(seconds(y.minReleaseAgeSeconds)) old at least)"
                : "installs releases \(seconds(x.minReleaseAgeSeconds)) old (other: \(seconds(y.minReleaseAgeSeconds)))")
        }
        if !x.requireHashes && y.requireHashes { add("install.require_hashes", "installs files the request gives no hash for (other: every file needs one)") }
        let gates = Policy.ImageGate.allCases
        for (key, mine, theirs, what) in [("deny_vulnerability_severity", x.denyVulnerabilitySeverity, y.denyVulnerabilitySeverity, "known vulnerabilities"),
                                          ("deny_finding_severity", x.denyFindingSeverity, y.denyFindingSeverity, "scanner findings")]
        where gates.firstIndex(of: mine)! > gates.firstIndex(of: theirs)! {
            add("install.\(key)", mine == .never ? "installs packages whatever their \(what) (other: refused at \(theirs.rawValue))"
                : "refuses \(what) only at \(mine.rawValue) (other: \(theirs.rawValue))")
        }
        if x.allow.isEmpty && !y.allow.isEmpty {
            add("install.allow", "installs any package name (other: only \(y.allow.count) listed)")
        } else if !y.allow.isEmpty {
            let theirs = Set(y.allow)
            for name in x.allow where !theirs.contains(name) { add("install.allow", "installs \(name)") }
        }
        let mine = Set(x.deny)
        for name in y.deny where !mine.contains(name) { add("install.deny", "does not deny \(name)") }
        if x.typosquats == .warn && y.typosquats == .refuse { add("install.typosquats", "installs a likely typosquat with a warning (other: refused)") }
        if x.sdists == .build && y.sdists == .refuse { add("install.sdists", "builds releases that have no wheel, in the build sandbox (other: refused)") }
        if y.requireProvenance.contains("*") && !x.requireProvenance.contains("*") {
            add("install.require_provenance", "installs packages without a verified attestation (other: every package needs one)")
        } else {
            for name in y.requireProvenance where name != "*" && !x.requiresProvenance(name) {
                add("install.require_provenance", "installs \(name) without a verified attestation")
            }
        }
        if x.yanked == .allowPinned && y.yanked == .refuse { add("install.yanked", "installs a yanked file the request pins exactly (other: refused)") }
        for a in x.accept where !y.accept.contains(a) {
            let what = [a.version.map { " \($0)" }, a.finding.map { ", finding \($0)" }, a.file.map { " in \($0)" }, a.advisory.map { ", advisory \($0)" }]
                .compactMap { $0 }.joined()
            add("install.accept", "installs \(a.package)\(what) despite \(a.rule.rawValue) (\"\(a.reason)\")")
        }
    }

    static func size(_ bytes: UInt64) -> String { Units.formatSize(bytes) }
    static func seconds(_ value: Double) -> String { Units.formatDuration(value) }
}

extension SeccompProfile {
    /// What a profile does with one syscall, from refusing it to letting it run whatever its
    /// arguments. `SCMP_ACT_LOG` lets a call run, so it counts as allowing it.
    public enum Verdict: Int, Sendable, Comparable {
        case refused = 0, conditional = 1, allowed = 2
        public static func < (a: Verdict, b: Verdict) -> Bool { a.rawValue < b.rawValue }
    }

    static func lets(_ action: Action) -> Bool { action == .allow || action == .log }

    /// The default action lets every syscall the rules do not name run.
    public var letsUnlistedThrough: Bool { Self.lets(defaultAction) }

    public func verdict(_ name: String) -> Verdict {
        let mine = rules.filter { $0.names.contains(name) }
        if mine.contains(where: { Self.lets($0.action) && $0.args.isEmpty }) {
            // An unconditional allow with conditional denies (the ioctl idiom) is conditional.
            return mine.contains(where: { !Self.lets($0.action) }) ? .conditional : .allowed
        }
        if mine.contains(where: { Self.lets($0.action) }) { return .conditional }
        if mine.contains(where: { !Self.lets($0.action) && $0.args.isEmpty }) { return .refused }
        return letsUnlistedThrough ? (mine.isEmpty ? .allowed : .conditional) : .refused
    }
}
