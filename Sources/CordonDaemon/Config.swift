import CordonConfig
import CordonPolicy
#if canImport(Glibc)
import Glibc
#endif

/// cordond's configuration: `cordond.toml` in the config directory, every key optional. Paths
/// given on the command line (`--state-dir` …) override the file, so tests and the README demo
/// run from a scratch directory. Finding and reading the file is CordonConfig's (`ConfigFile`);
/// its keys, their ranges and what they mean are the daemon's, here.
public struct DaemonConfig: Sendable, Equatable {
    /// Where `policies/` and `profiles/` live (nil: the embedded defaults only).
    public var configDir: String?
    public var stateDir = Locations.systemStateDir
    public var runtimeDir = Locations.systemRuntimeDir
    /// Default: `<runtimeDir>/cordon.sock`.
    public var socketPath: String?
    /// The socket's group: a name or gid. Nil: group "cordon" if it exists, else root's.
    public var socketGroup: String?
    public var socketMode: mode_t = 0o660
    /// Users and groups (names or ids) who may use every policy and see every task; root always may.
    public var adminUsers: [String] = []
    public var adminGroups: [String] = []
    /// The policy `task.submit` uses when none is named.
    public var defaultPolicy = "default"
    public var maxRunning = 8
    public var maxQueued = 1024
    public var maxQueuedPerUser = 256
    public var maxRunningPerUser: Int?
    public var maxConnections = 256
    /// Connections one non-admin uid may hold (admins are not counted against either cap, up
    /// to `adminReserve` more).
    public var maxConnectionsPerUser = 32
    public static let adminReserve = 16
    /// Connections a second one non-admin uid may open (bursts of twice that); admins: no limit.
    public var connectRatePerUser = 200
    /// A connection that sends no request for this long is closed (waits in task.wait or
    /// task.logs do not count: the daemon is the one talking then).
    public var idleSeconds = 300.0
    public var maxMessageBytes = 1 << 20
    /// Threads that run requests for the socket's event loop (a task.wait or a submit with
    /// `wait` holds none while it waits; each task.logs stream has a thread of its own).
    public var workers = 8
    /// How long SIGTERM lets running tasks finish before cancelling them.
    public var drainSeconds = 30.0
    /// Audit retention: finished tasks older than this go, and the oldest go while the store is larger.
    public var retentionSeconds: Double? = 30 * 86400
    public var retentionBytes: UInt64? = 1 << 30
    /// Audit record bytes one uid may hold; past it the uid's own oldest records are shed.
    public var recordBytesPerUser: UInt64 = 128 << 20
    /// Denial events younger than this are never deleted, by any retention rule.
    public var keepDenialsSeconds: Double = 30 * 86400
    /// Task output kept on disk: per uid (its own oldest outputs make room) and in all.
    public var outputBytesPerUser: UInt64 = 2 << 30
    public var outputBytesTotal: UInt64 = 16 << 30
    /// Output caps never take the state dir's free space below this; health degrades at twice it.
    public var minFreeDiskBytes: UInt64 = 1 << 30
    /// Bytes of queued requests (argv, environment, stdin) per uid and in all.
    public var maxQueuedBytesPerUser: UInt64 = 32 << 20
    public var maxQueuedBytes: UInt64 = 256 << 20
    /// MCP tool instances of every tool and user together (each costs cordond three threads and
    /// about 20 descriptors); at the limit the least recently used idle one is stopped.
    public var toolMaxInstances = 64
    /// Command-tool calls in flight (a sandbox and a thread each), in all and per uid.
    public var toolMaxCommandCalls = 64
    public var toolMaxCommandCallsPerUser = 8
    /// Model calls in flight per uid (socket and endpoint together): past it, 429.
    public var modelMaxCallsPerUser = 16
    /// Sessions open at once, in all and per uid (each a sandbox and two threads), and the
    /// longest TTL one may ask for.
    public var sessionsMax = 64
    public var sessionsMaxPerUser = 8
    public var sessionsMaxTTL = 86400.0
    /// Warm sandboxes parked for every policy together (a policy asks for its own with
    /// `daemon.warm`).
    public var warmMax = 32
    /// Prometheus text on http://127.0.0.1:PORT/metrics (nil: off).
    public var metricsPort: Int?
    public var dnsHostsFile: String?
    public var dnsUpstream: String?

    public init() {}

    public var socket: String { socketPath ?? "\(runtimeDir)/cordon.sock" }
    /// The OpenAI-compatible endpoint's Unix socket (served when models.toml exists): beside
    /// the daemon's socket, with its group and mode.
    public var endpointSocket: String {
        let dir = socket.lastIndex(of: "/").map { String(socket[..<$0]) } ?? runtimeDir
        return "\(dir.isEmpty ? "/" : dir)/openai.sock"
    }
    public var auditPath: String { "\(stateDir)/audit.db" }
    public var tasksDir: String { "\(stateDir)/tasks" }
    public var cacheDir: String { "\(stateDir)/cache" }

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    static let keys: [String: Set<String>] = [
        "socket": ["path", "group", "mode"],
        "admins": ["users", "groups"],
        "scheduler": ["max_running", "max_queued", "max_queued_per_user", "max_running_per_user", "max_queued_bytes", "max_queued_bytes_per_user", "max_warm"],
        "server": ["max_connections", "max_connections_per_user", "max_message_bytes", "idle_timeout", "connect_rate_per_user", "workers"],
        "tasks": ["default_policy", "drain_timeout", "max_output", "max_output_per_user", "min_free_disk"],
        "audit": ["max_age", "max_size", "max_size_per_user", "keep_denials"],
        "metrics": ["listen"],
        "egress": ["dns_hosts", "dns_upstream"],
        "tools": ["max_instances", "max_command_calls", "max_command_calls_per_user"],
        "models": ["max_calls_per_user"],
        "sessions": ["max", "max_per_user", "max_ttl"],
    ]

    /// Reads `<configDir>/cordond.toml` over the defaults; a missing file means the defaults.
    public static func load(configDir: String?) throws(Error) -> DaemonConfig {
        var config = DaemonConfig()
        config.configDir = configDir
        let file: (text: String, path: String)?
        do { file = try ConfigFile.read(ConfigFile.daemon, in: configDir) } catch { throw Error(description: error.description) }
        guard let file else { return config }
        try config.apply(text: file.text, source: file.path)
        return config
    }

    /// Applies the TOML `text` (read from `source`, which errors name with line and key).
    public mutating func apply(text: String, source: String) throws(Error) {
        let root: TOMLTable
        do { root = try TOML.parse(text) } catch { throw Error(description: "\(source): \(error)") }
        func fail(_ key: String, _ at: TOMLSourceLocation?, _ message: String) -> Error {
            Error(description: "\(source):\(at.map { "\($0.line)" } ?? "?"): \(key): \(message)")
        }
        for section in root.keys {
            guard let allowed = Self.keys[section] else {
                throw fail(section, root.keyLocation(section), "unknown section (known: \(Self.keys.keys.sorted().joined(separator: ", ")))")
            }
            guard case .table(let table)? = root[section]?.kind else { throw fail(section, root.keyLocation(section), "expected a table") }
            for key in table.keys where !allowed.contains(key) {
                throw fail("\(section).\(key)", table.keyLocation(key), "unknown key (known: \(allowed.sorted().joined(separator: ", ")))")
            }
            for key in table.keys {
                let value = table[key]!
                let name = "\(section).\(key)"
                let at = table.keyLocation(key)
                func string() throws(Error) -> String {
                    guard case .string(let s) = value.kind, !s.isEmpty else { throw fail(name, at, "expected a non-empty string") }
                    return s
                }
                func count(_ range: ClosedRange<Int64>) throws(Error) -> Int {
                    guard case .integer(let n) = value.kind, range.contains(n) else {
                        throw fail(name, at, "expected an integer in \(range.lowerBound)…\(range.upperBound)")
                    }
                    return Int(n)
                }
                func names() throws(Error) -> [String] {
                    guard case .array(let items) = value.kind else { throw fail(name, at, "expected an array of names or ids") }
                    var out: [String] = []
                    for item in items {
                        guard case .string(let s) = item.kind, !s.isEmpty else { throw fail(name, at, "expected an array of names or ids") }
                        out.append(s)
                    }
                    return out
                }
                func duration() throws(Error) -> Double {
                    switch value.kind {
                    case .integer(let n) where n >= 0: return Double(n)
                    case .float(let d) where d >= 0 && d.isFinite: return d
                    case .string(let s):
                        // Retention is counted in days ("30d"), which policies' durations never are.
                        if s.hasSuffix("d"), let days = Double(s.dropLast()), days >= 0, days.isFinite,
                           s.dropLast().allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
                            return days * 86400
                        }
                        if let d = Units.parseDuration(s) { return d }
                    default: break
                    }
                    throw fail(name, at, "expected a duration (seconds, or \"30s\", \"5m\", \"7d\")")
                }
                func size() throws(Error) -> UInt64 {
                    switch value.kind {
                    case .integer(let n) where n > 0: return UInt64(n)
                    case .string(let s): if let n = Units.parseSize(s), n > 0 { return n }
                    default: break
                    }
                    throw fail(name, at, "expected a size (bytes, or \"512MiB\", \"1GiB\")")
                }
                switch name {
                case "socket.path":
                    let s = try string()
                    guard s.hasPrefix("/"), s.utf8.count < 108 else { throw fail(name, at, "expected an absolute path shorter than 108 bytes") }
                    socketPath = s
                case "socket.group": socketGroup = try string()
                case "socket.mode":
                    let s = try string()
                    guard let m = mode_t(s, radix: 8), m <= 0o777, m & 0o600 == 0o600 else {
                        throw fail(name, at, "expected an octal mode string such as \"0660\" (the owner must keep read and write)")
                    }
                    guard m & 0o002 == 0 else { throw fail(name, at, "\(s) lets every local user connect: use a group instead") }
                    socketMode = m
                case "admins.users": adminUsers = try names()
                case "admins.groups": adminGroups = try names()
                case "scheduler.max_running": maxRunning = try count(1...4096)
                case "scheduler.max_queued": maxQueued = try count(0...1_000_000)
                case "scheduler.max_queued_per_user": maxQueuedPerUser = try count(0...1_000_000)
                case "scheduler.max_running_per_user": maxRunningPerUser = try count(1...4096)
                case "scheduler.max_warm": warmMax = try count(0...1024)
                case "server.max_connections": maxConnections = try count(1...65536)
                case "server.max_message_bytes": maxMessageBytes = try count(1024...(64 << 20))
                case "server.max_connections_per_user": maxConnectionsPerUser = try count(1...65536)
                case "server.connect_rate_per_user": connectRatePerUser = try count(1...1_000_000)
                case "server.workers": workers = try count(1...256)
                case "server.idle_timeout":
                    idleSeconds = try duration()
                    guard idleSeconds >= 1 else { throw fail(name, at, "expected at least 1s") }
                case "tasks.default_policy": defaultPolicy = try string()
                case "tasks.drain_timeout": drainSeconds = try duration()
                case "audit.max_age": retentionSeconds = try duration()
                case "audit.max_size": retentionBytes = try size()
                case "audit.max_size_per_user": recordBytesPerUser = try size()
                case "audit.keep_denials": keepDenialsSeconds = try duration()
                case "tasks.max_output": outputBytesTotal = try size()
                case "tasks.max_output_per_user": outputBytesPerUser = try size()
                case "tasks.min_free_disk": minFreeDiskBytes = try size()
                case "scheduler.max_queued_bytes": maxQueuedBytes = try size()
                case "scheduler.max_queued_bytes_per_user": maxQueuedBytesPerUser = try size()
                case "metrics.listen":
                    let s = try string()
                    guard s.hasPrefix("127.0.0.1:"), let port = Int(s.dropFirst("127.0.0.1:".count)), (1...65535).contains(port) else {
                        throw fail(name, at, "expected \"127.0.0.1:PORT\" (metrics are served on loopback only)")
                    }
                    metricsPort = port
                case "tools.max_instances": toolMaxInstances = try count(1...4096)
                case "tools.max_command_calls": toolMaxCommandCalls = try count(1...4096)
                case "tools.max_command_calls_per_user": toolMaxCommandCallsPerUser = try count(1...4096)
                case "models.max_calls_per_user": modelMaxCallsPerUser = try count(1...4096)
                case "sessions.max": sessionsMax = try count(0...4096)
                case "sessions.max_per_user": sessionsMaxPerUser = try count(0...4096)
                case "sessions.max_ttl":
                    sessionsMaxTTL = try duration()
                    guard sessionsMaxTTL >= 1 else { throw fail(name, at, "expected at least 1s") }
                case "egress.dns_hosts": dnsHostsFile = try string()
                case "egress.dns_upstream": dnsUpstream = try string()
                default: break
                }
            }
        }
    }
}
