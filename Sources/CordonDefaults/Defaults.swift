/// The shipped policies and profiles, compiled into the binary so that `cordon run` works on a
/// machine with no /etc/cordon. The files themselves live at the top of the repository
/// (policies/, profiles/); these are the same bytes, embedded by SwiftPM at build time.
///
/// Lookups are functions rather than dictionaries: building a `[String: [UInt8]]` on every
/// start-up instantiates generic metadata the spawn path does not otherwise need.
public enum EmbeddedDefaults {
    public static let policyNames = ["default", "installer", "mcp-fetch", "mcp-git", "mcp-time", "model-http", "model-server", "model-worker", "python-tool", "shell-tool"]
    /// Policy fragments for `extends` (profiles/runtime/NAME.toml).
    public static let runtimeProfileNames = ["compiled", "node", "python", "shell"]
    public static let seccompProfileNames = ["default", "strict"]

    public static func policy(named name: String) -> [UInt8]? {
        switch name {
        case "default": return PackageResources.default_toml
        case "python-tool": return PackageResources.python_tool_toml
        case "model-http": return PackageResources.model_http_toml
        case "model-worker": return PackageResources.model_worker_toml
        case "model-server": return PackageResources.model_server_toml
        case "installer": return PackageResources.installer_toml
        case "mcp-fetch": return PackageResources.mcp_fetch_toml
        case "mcp-git": return PackageResources.mcp_git_toml
        case "mcp-time": return PackageResources.mcp_time_toml
        case "shell-tool": return PackageResources.shell_tool_toml
        default: return nil
        }
    }

    public static func runtimeProfile(named name: String) -> [UInt8]? {
        switch name {
        case "compiled": return PackageResources.compiled_toml
        case "node": return PackageResources.node_toml
        case "python": return PackageResources.python_toml
        case "shell": return PackageResources.shell_toml
        default: return nil
        }
    }

    public static func seccompProfile(named name: String) -> [UInt8]? {
        switch name {
        case "default": return PackageResources.default_json
        case "strict": return PackageResources.strict_json
        default: return nil
        }
    }
}
