/// The Model Context Protocol, both ways, as pure values: the messages Cordon's tool gateway
/// sends and accepts, and two state machines, `MCPClientSession` (cordond toward an MCP server
/// in a sandbox) and `MCPServerSession` (`cordon mcp serve` toward an agent's MCP client). No
/// I/O and no clock: a session takes one received line and returns the lines to write and what
/// happened; the caller owns the pipes, the timeouts and the tools. docs/mcp.md has the protocol
/// as Cordon speaks it.
///
/// Why not the official Swift SDK: it negotiates only up to 2025-11-25 (no `server/discover`,
/// no per-request `_meta`), decodes with Foundation into dictionaries (repeated and reordered
/// keys vanish), and brings its own actors and a stdio reader with no line limit. Here the
/// project's one codec (`CordonJSON`, strict and capped) parses, every count and size has a
/// limit that names itself (`MCPLimits`), and the event loop stays the daemon's.
///
/// Everything a peer sends is untrusted: a server in a sandbox may be hostile, and so may the
/// agent's client. Parsing refuses what it cannot read with an `MCPError` naming the field
/// (`result.tools[3].name`), tolerates members the specification leaves open, and keeps content
/// blocks it does not know as raw JSON.

/// A revision of the protocol. Cordon speaks exactly these two; a peer's other strings are
/// compared with them, never ordered as dates.
public enum MCPRevision: String, Sendable, CaseIterable, Comparable {
    /// The handshake era: `initialize` / `notifications/initialized` open a session.
    case v2025_11_25 = "2025-11-25"
    /// The stateless era: every request carries its version and the client's capabilities in
    /// `_meta`; `server/discover` replaces the handshake.
    case v2026_07_28 = "2026-07-28"

    public init?(_ version: String) { self.init(rawValue: version) }

    public static func < (a: MCPRevision, b: MCPRevision) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    public var version: String { rawValue }

    /// A session opens with `initialize` and `notifications/initialized` (2025-11-25, Lifecycle).
    public var opensWithInitialize: Bool { self == .v2025_11_25 }
    /// Every request carries `io.modelcontextprotocol/protocolVersion` and `…/clientCapabilities`
    /// in `params._meta` (2026-07-28, Overview, `_meta`).
    public var requestsCarryMeta: Bool { self == .v2026_07_28 }
    /// `server/discover` exists (2026-07-28, Discovery).
    public var hasDiscover: Bool { self == .v2026_07_28 }
    /// `ping` exists (removed in 2026-07-28, Key Changes 5).
    public var hasPing: Bool { self == .v2025_11_25 }
    /// Every result carries `resultType` (2026-07-28, Key Changes 8).
    public var resultsCarryResultType: Bool { self == .v2026_07_28 }
    /// `tools/list` results carry `ttlMs` and `cacheScope` (2026-07-28, Key Changes minor 5).
    public var listResultsCarryCacheHints: Bool { self == .v2026_07_28 }
    /// `notifications/tools/list_changed` arrives only on a `subscriptions/listen` stream the
    /// client opened (2026-07-28, Subscriptions); in 2025-11-25 the server just sends it.
    public var listChangedNeedsSubscription: Bool { self == .v2026_07_28 }
    /// The server may send requests (ping, sampling, roots) to the client (2025-11-25 only;
    /// 2026-07-28 uses `InputRequiredResult` instead).
    public var serverSendsRequests: Bool { self == .v2025_11_25 }
    /// `structuredContent` and `outputSchema` may be any JSON (2026-07-28, Key Changes minor 10);
    /// in 2025-11-25 both are objects (`outputSchema` with `"type": "object"`).
    public var structuredContentMayBeAnyJSON: Bool { self == .v2026_07_28 }

    public static let newest: MCPRevision = .v2026_07_28
}

/// The handshake-era revisions before 2025-11-25. Cordon does not speak them: a client asking
/// for one in `initialize` is offered 2025-11-25 (2025-11-25, Lifecycle, Version Negotiation).
public let mcpOlderHandshakeVersions = ["2024-11-05", "2025-03-26", "2025-06-18"]

/// The reserved `_meta` keys Cordon reads or writes (2026-07-28, Overview, `_meta`).
public enum MCPMetaKey {
    public static let protocolVersion = "io.modelcontextprotocol/protocolVersion"
    public static let clientInfo = "io.modelcontextprotocol/clientInfo"
    public static let clientCapabilities = "io.modelcontextprotocol/clientCapabilities"
    public static let logLevel = "io.modelcontextprotocol/logLevel"
    public static let serverInfo = "io.modelcontextprotocol/serverInfo"
    public static let subscriptionID = "io.modelcontextprotocol/subscriptionId"
    public static let progressToken = "progressToken"
    /// The reserved prefix of the keys above.
    public static let reservedPrefix = "io.modelcontextprotocol/"
}

/// The methods Cordon handles by name.
public enum MCPMethod {
    public static let initialize = "initialize"
    public static let initialized = "notifications/initialized"
    public static let ping = "ping"
    public static let discover = "server/discover"
    public static let listTools = "tools/list"
    public static let callTool = "tools/call"
    public static let cancelled = "notifications/cancelled"
    public static let toolsListChanged = "notifications/tools/list_changed"
    public static let subscriptionsListen = "subscriptions/listen"
    public static let subscriptionsAcknowledged = "notifications/subscriptions/acknowledged"
    public static let progress = "notifications/progress"
}
