import CordonJSON
import CordonPolicy
import CordonResilience

/// One tool of the registry, as its manifest (`tools/NAME.toml`) declares it. The file's stem is
/// the tool's name. docs/tools.md describes every key.
///
/// Two kinds:
/// - `mcp`: a stdio MCP server, long-lived in a sandbox of `policy`; the tools it lists are
///   exposed as `NAME.TOOL`.
/// - `command`: one sandbox per call running `argv`; the validated arguments arrive as JSON on
///   stdin (and as whole argv elements where `argv` names them, `{NAME}`); stdout is the result.
public struct ToolManifest: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case mcp, command }
    /// How a command tool's stdout becomes the result.
    public enum Output: String, Sendable, CaseIterable { case text, json }

    public var name: String
    /// Where it was read from: a path, or `builtin:tools/NAME.toml`.
    public var source: String
    public var kind: Kind
    public var description: String
    /// The sandbox policy every instance or call runs under.
    public var policy: String
    /// mcp: the server's command line (inside the sandbox).
    public var command: [String] = []
    /// mcp and command: environment given to the server or the call, on top of the policy's.
    public var environment: [(name: String, value: String)] = []
    /// command: the program and its arguments; an element `{NAME}` is replaced, whole, by the
    /// argument NAME (a string, number or boolean; anything else is refused).
    public var argv: [String] = []
    /// command: the JSON Schema of the arguments (an object schema).
    public var inputSchema: JSON?
    public var output: Output = .text
    /// Per call, from the moment it is admitted to its answer.
    public var timeoutSeconds: Double = 60
    /// Who may call it, besides admins; nil: whoever may use its policy.
    public var access: Policy.Access?
    /// Tried in order when this tool's breaker is open or a call fails in a retryable way.
    public var fallbacks: [String] = []
    /// false: every calling user gets instances of their own.
    public var shared = false
    /// Record the arguments themselves (false: their size and SHA-256 only).
    public var auditArguments = false
    /// Python packages the tool needs (`requires`: requirement lines; or `lock`: a requirements
    /// file beside the manifest, its text in `lockText` once `ToolStore` read it). Installed
    /// through the install gate of the tool's policy before the tool first starts, and bound
    /// read-only at `sitePath`, on `PYTHONPATH` (docs/tools.md, "Requirements").
    public var requires: [String] = []
    public var lock: String?
    public var lockText: String?
    public var service = ServiceSettings()
    public var breaker = BreakerSettings()
    /// Where some keys were written ("tool.policy" → line), for problems found later.
    public var keyLines: [String: Int] = [:]

    public init(name: String, source: String, kind: Kind, description: String, policy: String) {
        self.name = name
        self.source = source
        self.kind = kind
        self.description = description
        self.policy = policy
    }

    public static func == (a: ToolManifest, b: ToolManifest) -> Bool {
        a.name == b.name && a.source == b.source && a.kind == b.kind && a.description == b.description && a.policy == b.policy
            && a.command == b.command && a.environment.map(\.name) == b.environment.map(\.name)
            && a.environment.map(\.value) == b.environment.map(\.value) && a.argv == b.argv && a.inputSchema == b.inputSchema
            && a.output == b.output && a.timeoutSeconds == b.timeoutSeconds && a.access == b.access && a.fallbacks == b.fallbacks
            && a.shared == b.shared && a.auditArguments == b.auditArguments && a.service == b.service && a.breaker == b.breaker
            && a.keyLines == b.keyLines && a.requires == b.requires && a.lock == b.lock && a.lockText == b.lockText
    }

    /// Where a tool's installed requirements are bound (read-only) in its sandbox.
    public static let sitePath = "/cordon/site"

    /// Whether the tool has packages to install before it starts.
    public var hasRequirements: Bool { !requires.isEmpty || lock != nil }

    /// `[service]`: how instances of an mcp tool are kept.
    public typealias ServiceSettings = CordonResilience.ServiceSettings

    /// `[breaker]`: when calls stop being sent to a tool that keeps failing.
    public typealias BreakerSettings = CordonResilience.BreakerSettings

    /// The argument names `argv` takes as whole elements (`{NAME}`), in order.
    public var argvPlaceholders: [String] { argv.compactMap(Self.placeholder) }

    /// The argument an `argv` element takes whole (`{NAME}`), or nil for a literal element.
    public static func placeholderName(_ element: String) -> String? { placeholder(element) }

    static func placeholder(_ element: String) -> String? {
        guard element.count > 2, element.hasPrefix("{"), element.hasSuffix("}") else { return nil }
        let name = String(element.dropFirst().dropLast())
        return ToolManifestParser.isArgumentName(name) ? name : nil
    }
}
