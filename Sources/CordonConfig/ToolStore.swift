import CordonPackaging
import CordonPolicy
import CordonSystem
import CordonTools

/// Finds and checks tool manifests: `tools/NAME.toml` in the config directory. Parsing is
/// `ToolManifestParser`'s; this adds what needs the file system and the other manifests: the
/// policy a manifest names must load, and its fallbacks must name tools that exist. (Fallbacks
/// are one level deep — a fallback's own fallbacks are not tried — so two tools may back each
/// other up.)
public struct ToolStore: Sendable {
    public var configDir: String?
    public var policies: PolicyStore
    /// The largest manifest read (a guard, not a design limit).
    public static let maxManifestBytes = 1 << 20

    public init(configDir: String?, policies: PolicyStore) {
        self.configDir = configDir
        self.policies = policies
    }

    /// The manifest files of the config directory, sorted.
    public func manifestPaths() -> [String] {
        guard let configDir else { return [] }
        let dir = "\(configDir)/tools"
        return ((try? FileSystem.regularFiles(under: dir)) ?? [])
            .filter { $0.hasSuffix(".toml") && !$0.dropFirst(dir.count + 1).contains("/") }
    }

    /// One file's manifest or its problems. The name is the file's stem.
    public func load(path: String) -> Result<ToolManifest, PolicyError> {
        let file = String(path.split(separator: "/").last ?? "")
        let name = file.hasSuffix(".toml") ? String(file.dropLast(5)) : file
        let bytes: [UInt8]
        // A confined store (cordond's) reads only files nobody but root may have written.
        do { bytes = try FileSystem.readRegularFile(path, limit: Self.maxManifestBytes, noFollow: true, trusted: policies.confined) } catch {
            return .failure(PolicyError(diagnostics: [PolicyDiagnostic(file: path, keyPath: "", line: nil, message: "\(error)")]))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(PolicyError(diagnostics: [PolicyDiagnostic(file: path, keyPath: "", line: nil, message: "not valid UTF-8")]))
        }
        var manifest: ToolManifest
        do { manifest = try ToolManifestParser.parse(text: text, name: name, source: path) } catch { return .failure(error) }
        if let lock = manifest.lock {
            // Beside the manifest, read as the manifest is; its problems are the manifest's.
            let lockPath = "\(path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))/\(lock)"
            func refuse(_ message: String) -> Result<ToolManifest, PolicyError> {
                .failure(PolicyError(diagnostics: [PolicyDiagnostic(file: path, keyPath: "tool.lock", line: manifest.keyLines["tool.lock"], message: message)]))
            }
            let lockBytes: [UInt8]
            do { lockBytes = try FileSystem.readRegularFile(lockPath, limit: RequirementsFile.maxBytes, noFollow: true, trusted: policies.confined) } catch {
                return refuse("\(lockPath): \(error)")
            }
            let lockText = String(decoding: lockBytes, as: UTF8.self)
            do {
                if try RequirementsFile.parse(lockText, source: lockPath).isEmpty { return refuse("\(lockPath): no requirements in it") }
            } catch {
                return refuse(error.description)
            }
            manifest.lockText = lockText
        }
        return .success(manifest)
    }

    /// Checks `manifests` together (each one's policy and fallbacks); returns the problems by
    /// manifest name.
    public func check(_ manifests: [ToolManifest]) -> [String: [PolicyDiagnostic]] {
        var problems: [String: [PolicyDiagnostic]] = [:]
        let byName = Dictionary(manifests.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for m in manifests {
            func problem(_ key: String, _ message: String) {
                let line = m.keyLines[key.split(separator: "[").first.map(String.init) ?? key]
                problems[m.name, default: []].append(PolicyDiagnostic(file: m.source, keyPath: key, line: line, message: message))
            }
            do { _ = try policies.loadPolicy(m.policy) } catch {
                problem("tool.policy", "policy \"\(m.policy)\" does not load: \(error.description)")
            }
            for (i, fallback) in m.fallbacks.enumerated() {
                let tool = String(fallback.split(separator: ".", maxSplits: 1)[0])
                guard let target = byName[tool] else {
                    problem("tool.fallbacks[\(i)]", "no tool \"\(tool)\"" + PolicyParser.suggestion(for: tool, among: byName.keys.sorted()))
                    continue
                }
                if fallback.contains(".") && target.kind != .mcp {
                    problem("tool.fallbacks[\(i)]", "\"\(fallback)\": \(tool) is a command tool, which has no tools of its own to name")
                } else if target.kind == .mcp && (!fallback.contains(".") || fallback.hasSuffix(".")) {
                    problem("tool.fallbacks[\(i)]", "\"\(fallback)\": \(tool) is an MCP server; name one of its tools, as \"\(tool).TOOL\"")
                }
            }
        }
        return problems
    }
}
