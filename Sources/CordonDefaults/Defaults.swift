/// The shipped policies and profiles, compiled into the binary so that `cordon run` works on a
/// machine with no /etc/cordon. The files themselves live at the top of the repository
/// (policies/, profiles/); these are the same bytes, embedded by SwiftPM at build time.
///
/// Lookups are functions rather than dictionaries: building a `[String: [UInt8]]` on every
/// start-up instantiates generic metadata the spawn path does not otherwise need.
public enum EmbeddedDefaults {
    public static let policyNames = ["default"]
    public static let seccompProfileNames = ["default"]

    public static func policy(named name: String) -> [UInt8]? {
        switch name {
        case "default": return PackageResources.default_toml
        default: return nil
        }
    }

    public static func seccompProfile(named name: String) -> [UInt8]? {
        switch name {
        case "default": return PackageResources.default_json
        default: return nil
        }
    }
}
