import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where Cordon keeps things. Each location resolves the same way in every binary: the flag,
/// then an environment variable, then the system default, so that tests and the README demo run
/// from a scratch directory.
///
/// - config dir (`--config-dir`, `$CORDON_CONFIG`, /etc/cordon if it exists, else none: the
///   embedded defaults only): `cordond.toml`, `policies/`, `profiles/`;
/// - state dir (`--state-dir`, `$CORDON_STATE_DIR`, /var/lib/cordon): SQLite stores, caches;
/// - runtime dir (`--runtime-dir`, `$CORDON_RUNTIME_DIR`, /run/cordon): sandbox roots;
/// - the vulnerability database: `vulndb.sqlite` in the state dir when one is given (flag or
///   variable), else /var/lib/cordon-scan/vulndb.sqlite. Not in /var/lib/cordon, which cordond
///   keeps private (0700): the advisories are public data that every user's scan reads;
/// - cordond's socket for clients (`--socket`, `$CORDON_SOCKET`, /run/cordon/cordon.sock).
///
/// cordond takes the flags and `$CORDON_CONFIG` only (its state and runtime dirs come from
/// `cordond.toml`), and needs an absolute config dir: see `absoluteConfigDir()`.
public struct Locations: Sendable {
    public static let systemConfigDir = "/etc/cordon"
    public static let systemStateDir = "/var/lib/cordon"
    public static let systemRuntimeDir = "/run/cordon"
    /// The vulnerability database's directory when no state dir is given: readable by all.
    public static let systemVulnDBDir = "/var/lib/cordon-scan"
    public static let systemSocket = "\(systemRuntimeDir)/cordon.sock"

    public var configDir: String?
    public var stateDir: String?
    public var runtimeDir: String?

    /// Each argument is the flag's value, nil when the flag was not given.
    public init(configDir: String? = nil, stateDir: String? = nil, runtimeDir: String? = nil) {
        self.configDir = configDir
        self.stateDir = stateDir
        self.runtimeDir = runtimeDir
    }

    /// The config directory in effect: explicit, then $CORDON_CONFIG, then /etc/cordon if present.
    public static func defaultConfigDir() -> String? {
        if let env = environment("CORDON_CONFIG") { return env }
        return FileSystem.exists(systemConfigDir) ? systemConfigDir : nil
    }

    public func resolvedConfigDir() -> String? { configDir ?? Self.defaultConfigDir() }
    public func resolvedStateDir() -> String { stateDir ?? Self.environment("CORDON_STATE_DIR") ?? Self.systemStateDir }
    public func resolvedRuntimeDir() -> String { runtimeDir ?? Self.environment("CORDON_RUNTIME_DIR") ?? Self.systemRuntimeDir }

    /// Where the vulnerability database lives, and whether that is the shared system default
    /// (created readable by all) rather than a state dir someone chose (created private).
    public func vulnDB() -> (dir: String, path: String, shared: Bool) {
        if let dir = stateDir ?? Self.environment("CORDON_STATE_DIR") { return (dir, "\(dir)/vulndb.sqlite", false) }
        return (Self.systemVulnDBDir, "\(Self.systemVulnDBDir)/vulndb.sqlite", true)
    }

    /// The policies and profiles of the resolved config dir (then the embedded defaults).
    public func policyStore() -> PolicyStore { PolicyStore(configDir: resolvedConfigDir()) }

    /// cordond's socket as a client finds it: explicit, then $CORDON_SOCKET, then the system's.
    public static func socketPath(_ explicit: String?) -> String {
        explicit ?? environment("CORDON_SOCKET") ?? systemSocket
    }

    public struct LookupError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The resolved config directory as an absolute path, for a process that leaves its working
    /// directory (cordond chdirs to /): a relative $CORDON_CONFIG is resolved now, and must exist.
    public func absoluteConfigDir() throws(LookupError) -> String? {
        guard let dir = resolvedConfigDir() else { return nil }
        if dir.hasPrefix("/") { return dir }
        guard let absolute = FileSystem.realPath(dir) else {
            throw LookupError(description: "config dir \(dir) ($CORDON_CONFIG): no such directory")
        }
        return absolute
    }

    /// A variable's value; unset and empty are the same.
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }
}
