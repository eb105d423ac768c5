import CordonJSON

/// Every size and count a peer's message may reach. Each refusal names its limit and field.
/// The defaults fit real servers (a few dozen tools, schemas of a few KiB) with wide margins
/// and keep one peer's worst case to a few MiB of memory.
public struct MCPLimits: Sendable, Equatable {
    /// One line; the framer (`LineFramer`) should be given the same number.
    public var maxMessageBytes = 4 << 20
    /// Nesting of one message (CordonJSON recurses once per level).
    public var maxDepth = 64
    /// Values of one message: a boxed value costs far more than its text.
    public var maxValues = 250_000
    /// Tools in one `tools/list` page.
    public var maxToolsPerPage = 1_024
    /// Tools across all pages of one listing.
    public var maxTools = 4_096
    /// Pages of one listing (a server that pages forever is cut off).
    public var maxPages = 64
    /// A tool's name: the specification's 128 characters (2025-11-25 and 2026-07-28, Tool Names).
    public var maxToolNameBytes = 128
    /// Titles, and the name, version and title of an `Implementation`.
    public var maxTitleBytes = 512
    public var maxDescriptionBytes = 32 << 10
    /// `inputSchema` or `outputSchema` of one tool, as written compactly.
    public var maxSchemaBytes = 256 << 10
    /// `instructions` of an initialize or discover result.
    public var maxInstructionsBytes = 32 << 10
    /// Content blocks in one tool result.
    public var maxContentBlocks = 1_024
    /// A cursor, a request id or a progress token that is a string.
    public var maxTokenBytes = 1_024
    /// A method name.
    public var maxMethodBytes = 256
    /// An error's message (its `data`, four times this).
    public var maxErrorMessageBytes = 8 << 10
    /// Versions listed by `supportedVersions` or an error's `supported`.
    public var maxVersions = 64
    /// Members of a `_meta` object.
    public var maxMetaMembers = 64
    /// Requests a server session has forwarded and not yet answered.
    public var maxInFlight = 256
    /// Open `subscriptions/listen` streams of one server session.
    public var maxSubscriptions = 16

    public init() {}

    public static let `default` = MCPLimits()

    var parseOptions: JSON.ParseOptions {
        JSON.ParseOptions(maxDepth: maxDepth, maxValues: maxValues, maxBytes: maxMessageBytes)
    }
}

extension JSON {
    /// Bytes of the compact text: what a nested value costs on the wire.
    var encodedSize: Int { text.utf8.count }

    var isObject: Bool { if case .object = self { return true }; return false }
}

/// Typed access to one object of a message (CordonJSON's `JSONFields`, failing with
/// `MCPError`). Unlike the daemon's `Params` it tolerates members nobody asks for (MCP lets
/// every object grow), but it refuses a repeated key; a `null` member counts as absent.
typealias Fields = JSONFields<MCPError>

extension MCPError: JSONFieldFailure {
    public static func jsonFieldInvalid(_ field: String?, _ message: String) -> MCPError { .invalid(field ?? "", message) }
    public static func jsonFieldLimit(_ field: String?, _ message: String) -> MCPError { .limit(field ?? "", message) }
}

extension JSONFields where Failure == MCPError {
    /// An object member kept whole (schemas, capabilities, arguments), with repeated keys
    /// refused at its top level and reduced below it, and at most `maxBytes` of text.
    func rawObject(_ key: String, maxBytes: Int) throws(MCPError) -> JSON? {
        guard let value = raw(key) else { return nil }
        _ = try Fields(value, path: field(key))
        guard value.encodedSize <= maxBytes else { throw .limit(field(key), "longer than \(maxBytes) bytes") }
        return value.uniquingKeys()
    }
}
