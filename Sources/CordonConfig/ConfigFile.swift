import CordonSystem

/// A settings file in the config directory (`cordond.toml` today; `models.toml` and the tools'
/// files next): found and read here, its keys parsed by the service that owns them. A missing
/// file, or no config directory, means every setting keeps its default.
public enum ConfigFile {
    public static let daemon = "cordond.toml"
    /// Settings files are small; a larger one is a mistake, not a configuration.
    public static let maxBytes = 1 << 20

    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The text of `<configDir>/<name>` and its path (which error messages name), or nil.
    public static func read(_ name: String, in configDir: String?) throws(ReadError) -> (text: String, path: String)? {
        guard let configDir else { return nil }
        let path = "\(configDir)/\(name)"
        guard FileSystem.exists(path) else { return nil }
        let bytes: [UInt8]
        do { bytes = try FileSystem.read(path, limit: maxBytes) } catch { throw ReadError(description: "\(error)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ReadError(description: "\(path): not valid UTF-8") }
        return (text, path)
    }
}
