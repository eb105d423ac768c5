import CordonPolicy
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Turns what a learning run observed into the smallest policy, on top of a base policy, that
/// lets the same run succeed:
///
/// - the policy `extends` the base and adds only what the base does not already give: a
///   read-only bind for each file read, executed or looked up, and each directory listed; a
///   read-write bind for each existing file written; a read-write bind of the directory for
///   each file created, removed or renamed (a bind needs an existing path, so the nearest
///   directory that existed before the run);
/// - a directory only looked up is left out when something bound below it recreates it;
/// - the seccomp profile is the base's, with its permitting rules cut down to the syscalls the
///   run made (plus those the spawn itself makes after the filter is in place), so the learned
///   profile never permits what the base refuses;
/// - IPv4 destinations other than loopback become `network.allow` entries (the sandbox's
///   loopback is its own, so loopback needs no entry); IPv6 ones and Unix sockets are reported,
///   not carried (IPv6 egress is refused on every path, and so are IPv6 rules).
///
/// What the sandbox provides itself (/proc, /dev, the identity files in /etc) is never bound.
public enum LearnedPolicy {
    /// Calls the spawn makes under the filter before the workload's program runs (every profile
    /// must allow them: `SeccompCompiler.spawnCalls`), and the gate's read and close, which let
    /// the filter go on before the gate.
    public static let spawnSyscalls = Set(SeccompCompiler.spawnCalls + ["read", "close"])
    /// Provided by every sandbox, never bound from the host.
    static let providedPrefixes = ["/proc", "/dev"]
    static let providedFiles: Set<String> = ["/etc/passwd", "/etc/group", "/etc/hostname", "/etc/hosts"]

    public struct LearnError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public struct Result: Sendable {
        public var toml: String
        public var seccompJSON: String
        public var readOnly: [String]
        public var readWrite: [String]
        public var syscalls: [String]
        public var destinations: [String]
        public var cwd: String?
        /// Things the learned policy cannot express or will still refuse, for the user to read.
        public var warnings: [String]
    }

    /// - Parameters:
    ///   - base: the effective base policy; `baseReference` is how the learned policy names it
    ///     in `extends` (a policy name or an absolute path).
    ///   - profileFileName: where the learned seccomp profile is written, relative to the policy.
    public static func make(_ observation: LearnObservation, base: Policy, baseReference: String,
                            baseProfile: (bytes: [UInt8], source: String), name: String,
                            profileFileName: String, command: [String],
                            flags: PolicyOverrides = PolicyOverrides()) throws(LearnError) -> Result {
        if let path = observation.paths.keys.sorted().first(where: { $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f } }) {
            throw LearnError(message: "the run used a path with a control character, which a policy cannot name: \(quoteTOML(path))")
        }
        let coverage = Coverage(base.filesystem)
        var readOnly = Set<String>(), readWrite = Set<String>(), writableDirs = Set<String>()
        var lookupOnly = Set<String>()
        for (path, use) in observation.paths where !isProvided(path) {
            let covered = coverage.access(path)
            if use.contains(.modifyEntries), covered != .readWrite {
                if let dir = existingAncestor(path, created: observation.created) { writableDirs.insert(dir) }
            }
            if use.contains(.write), covered != .readWrite, !observation.created.contains(path), FileSystem.kind(path) != .missing {
                readWrite.insert(path)
            }
            if !use.isDisjoint(with: [.read, .list, .lookup]), covered == .none, !observation.created.contains(path), FileSystem.kind(path) != .missing {
                readOnly.insert(path)
                if use.isDisjoint(with: [.read, .list]) { lookupOnly.insert(path) }
            }
        }
        // Minimise: nothing below a writable directory; nothing below a read-only directory
        // that is bound whole; a looked-up directory is recreated by any bind below it.
        func under(_ p: String, _ dirs: Set<String>) -> Bool { dirs.contains { isWithin(p, $0) } }
        readWrite = readWrite.filter { !under($0, writableDirs) }
        readOnly = readOnly.filter { !under($0, writableDirs) }
        let all = readOnly.union(readWrite).union(writableDirs)
        readOnly = readOnly.filter { p in
            !(lookupOnly.contains(p) && FileSystem.isDirectory(p) && all.contains { $0 != p && isWithin($0, p) })
        }
        let wholeDirs = Set(readOnly.filter { !lookupOnly.contains($0) && FileSystem.isDirectory($0) })
        readOnly = readOnly.filter { p in !wholeDirs.contains { $0 != p && isWithin(p, $0) } }
        let writable = readWrite.union(writableDirs).sorted()

        var warnings: [String] = []
        // The working directory matters only when the command named paths relative to it.
        var cwd: String?
        if observation.usedRelativePaths, observation.cwd != (base.process.cwd ?? base.filesystem.workdir) {
            let visible = coverage.access(observation.cwd) != .none
                || readOnly.union(writable).contains { isWithin($0, observation.cwd) }
            if visible { cwd = observation.cwd } else {
                warnings.append("the command used paths relative to \(observation.cwd), which the learned policy does not make visible")
            }
        }

        let destinations = observation.destinations.filter { !isLoopback($0) && !isIPv6($0) }.sorted()
        // IPv6 egress is refused on every path, and the policy parser refuses IPv6 rules.
        for destination in observation.destinations.filter({ !isLoopback($0) && isIPv6($0) }).sorted() {
            warnings.append("connected to \(destination) over IPv6: not carried into the policy (\(EgressRule.ipv6Refusal))")
        }
        for socket in observation.unixSockets.sorted() {
            warnings.append("connected to the Unix socket \(socket): not carried into the policy")
        }

        let syscalls = observation.syscalls.union(spawnSyscalls)
        let json: String, notPermitted: [String]
        do { (json, notPermitted) = try SeccompProfile.restricted(baseProfile.bytes, file: baseProfile.source, to: syscalls) }
        catch { throw LearnError(message: "base seccomp profile: \(error.description)") }
        if !notPermitted.isEmpty {
            warnings.append("the base seccomp profile refuses \(notPermitted.joined(separator: ", ")); the learned profile still does")
        }

        var toml = """
            # Learned by `cordon run --learn` from one run of:
            #   \(String(command.map(shellQuote).joined(separator: " ").unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) }))
            # It adds to \(baseReference) only what that run used. Review it before use: a learned
            # policy allows what the run did, including anything it should not have done.

            [policy]
            name = \(quoteTOML(name))
            description = \(quoteTOML("Learned from one run on top of \(baseReference)"))
            extends = [\(quoteTOML(baseReference))]

            """
        // What `cordon run`'s flags added for the learning run is carried too, so the learned
        // policy runs as the learning run did (`base` already has it: nothing above repeats it).
        func entry(_ b: PolicyOverrides.Bind) -> String {
            b.source == b.path ? quoteTOML(b.path) : "{ path = \(quoteTOML(b.path)), source = \(quoteTOML(b.source)) }"
        }
        let readOnlyEntries = readOnly.sorted().map(quoteTOML) + flags.binds.filter { !$0.writable }.map(entry)
        let writableEntries = writable.map(quoteTOML) + flags.binds.filter(\.writable).map(entry)
        if !readOnlyEntries.isEmpty || !writableEntries.isEmpty {
            toml += "\n[filesystem]\n"
            if !readOnlyEntries.isEmpty { toml += "read_only = [\n" + readOnlyEntries.map { "  \($0),\n" }.joined() + "]\n" }
            if !writableEntries.isEmpty { toml += "read_write = [\n" + writableEntries.map { "  \($0),\n" }.joined() + "]\n" }
        }
        let learnedCwd = flags.cwd ?? cwd
        if learnedCwd != nil || !flags.env.isEmpty {
            toml += "\n[process]\n"
            if let learnedCwd { toml += "cwd = \(quoteTOML(learnedCwd))\n" }
            if !flags.env.isEmpty {
                toml += "env = { " + flags.env.map { "\(quoteTOML($0.name)) = \(quoteTOML($0.value))" }.joined(separator: ", ") + " }\n"
            }
        }
        if flags.memoryBytes != nil || flags.pids != nil {
            toml += "\n[limits]\n"
            if let memory = flags.memoryBytes { toml += "memory = \(quoteTOML(Units.formatSize(memory)))\n" }
            if let pids = flags.pids { toml += "pids = \(pids)\n" }
        }
        toml += "\n[seccomp]\n# The base profile's rules, cut down to the \(syscalls.count) syscalls the run made.\nprofile = \(quoteTOML(profileFileName))\n"
        let allowed = destinations + flags.networkAllow.filter { !destinations.contains($0) }
        if !allowed.isEmpty {
            toml += "\n[network]\nmode = \"allowlist\"\nallow = [\n" + allowed.map { "  \(quoteTOML($0)),\n" }.joined() + "]\n"
        }
        return Result(toml: toml, seccompJSON: json + "\n", readOnly: readOnly.sorted(), readWrite: writable,
                      syscalls: syscalls.sorted(), destinations: destinations, cwd: cwd, warnings: warnings)
    }

    static func isProvided(_ path: String) -> Bool {
        providedFiles.contains(path) || providedPrefixes.contains { isWithin(path, $0) }
    }

    /// "[ADDRESS]:PORT", as the learner writes an IPv6 destination.
    static func isIPv6(_ destination: String) -> Bool { destination.hasPrefix("[") }

    static func isLoopback(_ destination: String) -> Bool {
        destination.hasPrefix("127.") || destination.hasPrefix("[0:0:0:0:0:0:0:1]:")
    }

    /// The nearest directory at or above `path` that existed before the run and still does.
    static func existingAncestor(_ path: String, created: Set<String>) -> String? {
        var p = path
        while true {
            if !created.contains(p) && FileSystem.isDirectory(p) { return p }
            if p == "/" { return nil }
            p = parent(p)
        }
    }

    static func shellQuote(_ s: String) -> String {
        s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }) && !s.isEmpty ? s : "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    static func quoteTOML(_ s: String) -> String { CordonPolicy.quote(s) }

    /// What the base policy already gives at a host path.
    struct Coverage {
        enum Access { case none, readOnly, readWrite }
        var mounts: [(path: String, access: Access)] = []

        init(_ fs: Policy.Filesystem) {
            // A bind shows the host's file; a tmpfs (the workdir included) or a hidden path shows
            // something else, so it covers nothing of the host.
            for b in fs.readOnly where b.source == b.path { mounts.append((b.path, .readOnly)) }
            for b in fs.readWrite where b.source == b.path { mounts.append((b.path, .readWrite)) }
            for b in fs.readOnly + fs.readWrite where b.source != b.path { mounts.append((b.path, .none)) }
            for t in fs.tmpfs { mounts.append((t.path, .none)) }
            mounts.append((fs.workdir, .none))
            for h in fs.hide { mounts.append((h, .none)) }
        }

        func access(_ path: String) -> Access {
            var best: (depth: Int, access: Access) = (-1, .none)
            for m in mounts where isWithin(path, m.path) {
                let depth = m.path.split(separator: "/").count
                // At equal depth the later entry wins (hide is last).
                if depth >= best.depth { best = (depth, m.access) }
            }
            return best.access
        }
    }
}
