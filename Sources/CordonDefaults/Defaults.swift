/// The shipped policies and profiles, compiled into the binary so that `cordon run` works on a
/// machine with no /etc/cordon. The files themselves live at the top of the repository
/// (policies/, profiles/); these are the same bytes, embedded by SwiftPM at build time.
public enum EmbeddedDefaults {
    public static let policies: [String: [UInt8]] = [
        "default": PackageResources.default_toml,
    ]
    public static let seccompProfiles: [String: [UInt8]] = [
        "default": PackageResources.default_json,
    ]
}
