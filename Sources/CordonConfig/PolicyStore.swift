import CordonDefaults
import CordonPolicy
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Finds policies and profiles: a path, or a name looked up in the config directory's
/// policies/ and profiles/seccomp/, then in the defaults built into the binary.
///
/// A `confined` store (cordond's) takes names only: a name is never read as a path, an
/// `extends` or profile path must resolve inside the config directory, and every file it reads
/// must be a regular file owned by root (or the daemon's uid) that nobody else may write —
/// socket users choose among the policies an admin installed, never a file of their own, and
/// a file outside the config directory is refused before it is opened (so no parse error can
/// echo its content).
public struct PolicyStore: Sendable {
    public var configDir: String?
    public var confined: Bool
    /// When set, every file the store reads and every config-dir lookup that found nothing is
    /// noted here: what a cache of a load must find unchanged (see `SpawnPlanCache`).
    public var inputs: PolicyInputs?

    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var description: String
        /// The individual problems, when the error is a policy that did not parse.
        public var diagnostics: [PolicyDiagnostic] = []

        public init(description: String, diagnostics: [PolicyDiagnostic] = []) {
            self.description = description
            self.diagnostics = diagnostics
        }
    }

    public init(configDir: String?, confined: Bool = false) {
        self.configDir = configDir
        self.confined = confined
    }

    /// Whether `--policy` (or an `extends` entry) names a file rather than a policy.
    public static func isPath(_ s: String) -> Bool { s.contains("/") || s.hasSuffix(".toml") || s.hasSuffix(".json") }

    /// Reads and parses a policy by name or path (a confined store: by name only).
    public func loadPolicy(_ nameOrPath: String) throws(LoadError) -> Policy {
        try loadPolicyLayers(nameOrPath).policy
    }

    /// The policy and the files of its `extends` chain in merge order.
    public func loadPolicyLayers(_ nameOrPath: String) throws(LoadError) -> (policy: Policy, layers: [PolicyParser.Layer]) {
        if confined && Self.isPath(nameOrPath) {
            throw LoadError(description: "\"\(nameOrPath)\" is not a policy name: cordond takes the name of a policy in its config directory, never a path")
        }
        let (bytes, source, name) = try locate(nameOrPath, directory: "policies", suffix: ".toml", embedded: EmbeddedDefaults.policy(named:),
                                              builtins: EmbeddedDefaults.policyNames, what: "policy")
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw LoadError(description: "\(source): not valid UTF-8")
        }
        return try parsePolicyLayers(text: text, source: source, defaultName: name)
    }

    /// Parses policy text as if read from `source` (its `extends` resolve from there).
    public func parsePolicy(text: String, source: String) throws(LoadError) -> Policy {
        var name = String(source.split(separator: "/").last ?? "policy")
        if name.hasSuffix(".toml") { name.removeLast(".toml".count) }
        return try parsePolicyLayers(text: text, source: source, defaultName: name).policy
    }

    func parsePolicyLayers(text: String, source: String, defaultName name: String) throws(LoadError) -> (policy: Policy, layers: [PolicyParser.Layer]) {
        let bytes = Array(text.utf8)
        do {
            var (policy, layers) = try PolicyParser.parseLayers(text: text, source: source, defaultName: name, resolve: resolveExtends)
            // The hash identifies what ran: the file itself, or, when it extends others, the
            // effective policy with the origin of every value (a parent's edit changes it too).
            let layersHash = layers.count == 1 ? SHA256.hex(bytes)
                : SHA256.hex(Array(PolicyExplanation.explain(policy, layers: layers).toml().utf8))
            policy.contentHash = sandboxHash(policy, layersHash: layersHash)
            return (policy, layers)
        } catch {
            throw LoadError(description: error.description, diagnostics: error.diagnostics)
        }
    }

    /// The hash a record carries covers everything that shapes the sandbox: the policy's
    /// layers and the seccomp profile it names (an admin tightening a profile changes the hash,
    /// and every cache keyed by it). A profile that cannot be read leaves the layers' hash: the
    /// spawn fails on it anyway, naming the profile.
    private func sandboxHash(_ policy: Policy, layersHash: String) -> String {
        guard let profile = try? seccompProfile(policy.seccomp.profile) else {
            // Not a load to keep: the hash would not change when the profile is made readable.
            inputs?.markIncomplete()
            return layersHash
        }
        return SHA256.hex(Array("\(layersHash)\nseccomp \(Self.profileHash(profile.bytes))".utf8))
    }

    /// SHA-256 of profile contents seen before, by content (a dictionary lookup hashes with
    /// SipHash, far cheaper than SHA-256, and compares the bytes): cordond loads the policy,
    /// and so its profile, at every submit.
    private final class ProfileHashes: Sendable {
        let known = Mutex<[ContentKey: String]>([:])
    }
    private static let profileHashes = ProfileHashes()

    public static func profileHash(_ bytes: [UInt8]) -> String {
        let key = ContentKey(bytes: bytes)
        if let known = profileHashes.known.withLock({ $0[key] }) { return known }
        let hash = SHA256.hex(bytes)
        profileHashes.known.withLock { cache in
            if cache.count >= 32 { cache.removeAll() }
            cache[key] = hash
        }
        return hash
    }

    /// Bytes as a dictionary key, hashed and compared in bulk ([UInt8]'s own Hashable feeds
    /// the hasher one byte at a time).
    struct ContentKey: Hashable, Sendable {
        let bytes: [UInt8]
        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
        static func == (a: ContentKey, b: ContentKey) -> Bool {
            guard a.bytes.count == b.bytes.count else { return false }
            guard !a.bytes.isEmpty else { return true }
            return a.bytes.withUnsafeBytes { x in b.bytes.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
        }
    }

    /// Finds what `extends` names: a path (relative to the extending file's directory), or a
    /// policy name looked up like `--policy` (config dir, then the built-in policies), or
    /// `runtime:NAME`, a runtime profile (the config dir's profiles/runtime/, then the built-in
    /// ones). The prefix keeps a policy named like a runtime profile from shadowing it.
    func resolveExtends(_ name: String, from: String) throws(PolicyParser.ResolveError) -> (text: String, source: String) {
        var target = name
        if Self.isPath(name), !name.hasPrefix("/") {
            guard !from.hasPrefix("builtin:") else {
                throw PolicyParser.ResolveError("relative path \"\(name)\" in a built-in policy")
            }
            if let slash = from.lastIndex(of: "/") { target = String(from[...slash]) + name }
        }
        let found: ([UInt8], String, String)
        do {
            if name.hasPrefix("runtime:") {
                found = try locate(String(name.dropFirst("runtime:".count)), directory: "profiles/runtime", suffix: ".toml",
                                   embedded: EmbeddedDefaults.runtimeProfile(named:), builtins: EmbeddedDefaults.runtimeProfileNames,
                                   what: "runtime profile")
            } else {
                found = try locate(target, directory: "policies", suffix: ".toml", embedded: EmbeddedDefaults.policy(named:),
                                   builtins: EmbeddedDefaults.policyNames, what: "policy")
            }
        } catch {
            let hint = name.hasPrefix("runtime:") || Self.isPath(name) ? "" : " (runtime profiles are named runtime:NAME)"
            throw PolicyParser.ResolveError(error.description + hint)
        }
        guard let text = String(validating: found.0, as: UTF8.self) else { throw PolicyParser.ResolveError("\(found.1): not valid UTF-8") }
        // Files by their real path, so a cycle through "./a.toml" and "a.toml" is seen as one.
        // Its own `extends` paths resolve from there: which directory that is is an input too.
        if found.1.hasPrefix("builtin:") { return (text, found.1) }
        let real = FileSystem.realPath(found.1) ?? found.1
        inputs?.note(.resolved(path: found.1, real: real))
        return (text, real)
    }

    /// The bytes of a seccomp profile by name or path.
    public func seccompProfile(_ nameOrPath: String) throws(LoadError) -> (bytes: [UInt8], source: String) {
        let (bytes, source, _) = try locate(nameOrPath, directory: "profiles/seccomp", suffix: ".json", embedded: EmbeddedDefaults.seccompProfile(named:),
                                            builtins: EmbeddedDefaults.seccompProfileNames, what: "seccomp profile")
        return (bytes, source)
    }

    /// Reads a policy or profile file: regular files only (a FIFO must not block the reader),
    /// capped; in a confined store only inside the config directory and only trusted files.
    private func readFile(_ path: String, what: String) throws(LoadError) -> [UInt8] {
        var target = path
        if confined {
            // Resolved now, not once: the config dir may be a symlink an admin retargets.
            guard let root = configDir.flatMap({ FileSystem.realPath($0) }), let real = FileSystem.realPath(path),
                  real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
                throw LoadError(description: "\(what) \(path) is outside cordond's config directory (\(configDir ?? "none")): cordond reads policies and profiles only from there")
            }
            // Every directory from the config dir down to the file must be root's and writable
            // by nobody else: then no one else can swap a component between this check and the
            // open below.
            var directory = root
            let below = real.dropFirst(root.count + 1).split(separator: "/").dropLast()
            for component in [Substring("")] + below {
                if !component.isEmpty { directory += "/" + component }
                var st = stat()
                guard lstat(directory, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == 0 || st.st_uid == geteuid(), st.st_mode & 0o022 == 0 else {
                    throw LoadError(description: "\(what) \(path): directory \(directory) may be written by others than its owner (or is not root's): cordond refuses it (chmod go-w, chown root)")
                }
            }
            target = real
            // A symlink on the way (the config dir itself, retargeted by an admin) moves the file.
            if real != path { inputs?.note(.resolved(path: path, real: real)) }
        }
        do {
            let (bytes, identity) = try FileSystem.readRegularFileIdentified(target, limit: 1 << 20, noFollow: confined, trusted: confined)
            inputs?.note(.file(path: target, identity: identity, bytes: bytes))
            return bytes
        } catch { throw LoadError(description: "\(what) \(path): \(error)") }
    }

    func locate(_ nameOrPath: String, directory: String, suffix: String, embedded: (String) -> [UInt8]?,
                builtins: [String], what: String) throws(LoadError) -> ([UInt8], String, String) {
        if Self.isPath(nameOrPath) {
            let bytes = try readFile(nameOrPath, what: what)
            var base = String(nameOrPath.split(separator: "/").last ?? "")
            if base.hasSuffix(suffix) { base.removeLast(suffix.count) }
            return (bytes, nameOrPath, base)
        }
        let valid = !nameOrPath.isEmpty && nameOrPath.utf8.allSatisfy { c in
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 45 || c == 95 || c == 46
        }
        guard valid else { throw LoadError(description: "\(what) name \"\(nameOrPath)\" is invalid (letters, digits, '-', '_', '.')") }
        var looked: [String] = []
        if let configDir {
            let path = "\(configDir)/\(directory)/\(nameOrPath)\(suffix)"
            looked.append(path)
            if FileSystem.exists(path) { return (try readFile(path, what: what), path, nameOrPath) }
            // Absent now, so the built-in one is used: a file put there later must be noticed.
            inputs?.note(.absent(path: path))
        }
        if let bytes = embedded(nameOrPath) { return (bytes, "builtin:\(directory)/\(nameOrPath)\(suffix)", nameOrPath) }
        let searched = looked.isEmpty ? "" : " (looked in \(looked.joined(separator: ", ")))"
        throw LoadError(description: "unknown \(what) \"\(nameOrPath)\"\(searched); built in: \(builtins.joined(separator: ", "))")
    }
}

/// What one load read, in order: each file with its identity and bytes, each config-dir path
/// that was looked for and absent (a built-in default was used instead), and each real path a
/// file's own relative `extends` resolved from. Built-in layers are not listed: they are part of
/// the binary, whose identity a cache keys on.
public final class PolicyInputs: Sendable {
    public enum Input: Sendable, Equatable {
        case file(path: String, identity: FileIdentity, bytes: [UInt8])
        case absent(path: String)
        /// `realpath(path)` was `real`: a symlink on the way, retargeted, moves the parents.
        case resolved(path: String, real: String)
    }

    private let noted = Mutex<[Input]>([])
    private let incompleteLoad = Mutex(false)

    public init() {}

    func note(_ input: Input) { noted.withLock { $0.append(input) } }

    /// Something the load needed could not be read, and the result does not say so (the seccomp
    /// profile of the policy's hash): such a load must not be kept.
    func markIncomplete() { incompleteLoad.withLock { $0 = true } }

    public var all: [Input] { noted.withLock { $0 } }
    public var incomplete: Bool { incompleteLoad.withLock { $0 } }
}
