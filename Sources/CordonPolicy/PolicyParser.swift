import CordonScan

/// One problem found in a policy file: where (file, key path, line) and what.
public struct PolicyDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var keyPath: String
    public var line: Int?
    public var message: String

    public init(file: String, keyPath: String, line: Int?, message: String) {
        self.file = file
        self.keyPath = keyPath
        self.line = line
        self.message = message
    }

    public var description: String {
        let at = line.map { "\(file):\($0)" } ?? file
        return keyPath.isEmpty ? "\(at): \(message)" : "\(at): \(keyPath): \(message)"
    }
}

/// All the problems of one policy file; nothing is partially applied.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [PolicyDiagnostic]
    public init(diagnostics: [PolicyDiagnostic]) { self.diagnostics = diagnostics }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// TOML → `Policy`, collecting every error (unknown keys with a "did you mean", wrong types,
/// bad units, contradictions) instead of stopping at the first.
public enum PolicyParser {
    static let schema: [String: [String]] = [
        "policy": ["name", "description", "extends"],
        "filesystem": ["read_only", "read_write", "tmpfs", "workdir", "workdir_size", "hide", "image", "image_fail_on"],
        "process": ["user", "group", "hostname", "env", "pass_env", "cwd"],
        "limits": ["memory", "pids", "cpu", "wall_time", "cpu_time", "open_files", "file_size", "output"],
        "seccomp": ["profile", "action"],
        "capabilities": ["keep"],
        "network": ["mode", "allow"],
        "landlock": ["mode"],
        "access": ["users", "groups"],
        "workspace": ["allow"],
        "daemon": ["warm"],
        "install": ["index", "index_hosts", "min_release_age", "require_hashes", "deny_vulnerability_severity", "deny_finding_severity",
                    "allow", "deny", "typosquats", "sdists", "require_provenance", "yanked", "accept"],
    ]

    /// Finds a policy or profile named in `extends`: (name, the extending file's source) →
    /// (its text, its source). Throws a message saying what was looked for.
    public typealias Resolver = (_ name: String, _ from: String) throws(ResolveError) -> (text: String, source: String)

    public struct ResolveError: Error, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
    }

    /// How deep `extends` may nest, and how many files one policy may pull in (guards against
    /// runaway chains and fan-out, not design limits).
    public static let maxExtendsDepth = 16
    public static let maxExtendsFiles = 64

    /// Parses a policy file and everything it extends. Each file is checked on its own first, so
    /// errors name the file that has them; the merged result is then checked as a whole.
    public static func parse(text: String, source: String, defaultName: String,
                             resolve: Resolver? = nil) throws(PolicyError) -> Policy {
        try parseLayers(text: text, source: source, defaultName: defaultName, resolve: resolve).policy
    }

    /// One file of a policy's `extends` chain, as written.
    public struct Layer: Sendable {
        public var source: String
        public var table: TOMLTable
    }

    /// The policy and its files in merge order (parents first, the file itself last): what
    /// `policy explain` needs to say where each value came from.
    public static func parseLayers(text: String, source: String, defaultName: String,
                                   resolve: Resolver? = nil) throws(PolicyError) -> (policy: Policy, layers: [Layer]) {
        var files: [Layer] = []
        let (own, merged) = try layers(text: text, source: source, defaultName: defaultName, resolve: resolve, chain: [], files: &files)
        guard let merged else { return (own, files) }
        var reader = ConfigReader(file: source)
        var policy = Policy(name: defaultName, source: source)
        reader.read(merged, into: &policy)
        if !reader.diagnostics.isEmpty {
            // Lines in the merged table may belong to another file: say where the problem arose.
            throw PolicyError(diagnostics: reader.diagnostics.map {
                PolicyDiagnostic(file: source, keyPath: $0.keyPath, line: nil, message: $0.message + " (after merging extends)")
            })
        }
        policy.extends = own.extends
        return (policy, files)
    }

    /// The file read on its own, and — when it extends others — the merged TOML table.
    static func layers(text: String, source: String, defaultName: String, resolve: Resolver?,
                       chain: [String], files: inout [Layer]) throws(PolicyError) -> (Policy, TOMLTable?) {
        func fail(_ key: String, _ line: Int?, _ message: String) -> PolicyError {
            PolicyError(diagnostics: [PolicyDiagnostic(file: source, keyPath: key, line: line, message: message)])
        }
        var root: TOMLTable
        do {
            root = try TOML.parse(text)
        } catch {
            throw fail("", error.location.line, "\(error.message) (column \(error.location.column))")
        }
        anchorProfilePath(&root, source: source)
        var reader = ConfigReader(file: source)
        var policy = Policy(name: defaultName, source: source)
        reader.read(root, into: &policy)
        if !reader.diagnostics.isEmpty { throw PolicyError(diagnostics: reader.diagnostics) }
        guard !policy.extends.isEmpty else {
            files.append(Layer(source: source, table: root))
            return (policy, chain.isEmpty ? nil : root)
        }

        var line: Int? = nil
        if case .table(let t)? = root["policy"]?.kind { line = t.keyLocation("extends")?.line }
        guard let resolve else { throw fail("policy.extends", line, "extends cannot be resolved here (no policy store)") }
        if chain.count >= maxExtendsDepth {
            throw fail("policy.extends", line, "extends nests deeper than \(maxExtendsDepth) files")
        }
        var base: TOMLTable? = nil
        for (i, name) in policy.extends.enumerated() {
            if files.count + chain.count >= maxExtendsFiles {
                throw fail("policy.extends[\(i)]", line, "extends pulls in more than \(maxExtendsFiles) files")
            }
            let parent: (text: String, source: String)
            do { parent = try resolve(name, source) } catch {
                throw fail("policy.extends[\(i)]", line, error.message)
            }
            if parent.source == source || chain.contains(parent.source) {
                let cycle = (chain + [source, parent.source]).drop { $0 != parent.source }
                throw fail("policy.extends[\(i)]", line, "extends cycle: \(cycle.joined(separator: " -> "))")
            }
            let (_, table) = try layers(text: parent.text, source: parent.source, defaultName: name, resolve: resolve,
                                        chain: chain + [source], files: &files)
            let parentTable = table ?? TOMLTable(location: TOMLSourceLocation(line: 1, column: 1))
            base = base.map { PolicyMerge.merge($0, parentTable) } ?? parentTable
        }
        files.append(Layer(source: source, table: root))
        return (policy, PolicyMerge.merge(base!, root))
    }

    /// A relative seccomp profile path is relative to the policy file that names it (like
    /// `extends`), not to the caller's directory: an inherited profile must not change meaning
    /// with the directory `cordon` runs in.
    static func anchorProfilePath(_ root: inout TOMLTable, source: String) {
        guard !source.hasPrefix("builtin:"), let slash = source.lastIndex(of: "/"),
              let value = root["seccomp"], case .table(var table) = value.kind,
              let profile = table["profile"], case .string(let path) = profile.kind,
              !path.hasPrefix("/"), path.contains("/") || path.hasSuffix(".json") else { return }
        table.set("profile", TOMLValue(kind: .string(String(source[...slash]) + path), location: profile.location),
                  keyLocation: table.keyLocation("profile"))
        root.set("seccomp", TOMLValue(kind: .table(table), location: value.location), keyLocation: root.keyLocation("seccomp"))
    }

    /// Why a `network.allow` entry is not a valid rule (see `EgressRule.parse`), or nil.
    public static func destinationProblem(_ entry: String) -> String? {
        if case .failure(let error) = EgressRule.parse(entry) { return error.reason }
        return nil
    }

    /// Why `name` is not a user or group name (POSIX portable, as useradd accepts) or a numeric
    /// id below 2^32 - 1; nil when it is one.
    public static func principalProblem(_ name: String, _ what: String) -> String? {
        let shown = String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
        if !name.isEmpty, name.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return name.count <= 10 && (UInt64(name) ?? .max) < UInt64(UInt32.max) ? nil : "\(what) id \(shown) is out of range"
        }
        let bytes = Array(name.utf8)
        let valid = (1...32).contains(bytes.count)
            && bytes.enumerated().allSatisfy { i, c in
                (c >= 97 && c <= 122) || c == 95 || (i > 0 && ((c >= 48 && c <= 57) || c == 45 || (c == 36 && i == bytes.count - 1)))
            }
        return valid ? nil : "expected a \(what) name (lower case letters, digits, '_', '-'; at most 32) or a numeric id, found \"\(shown)\""
    }

    /// Why `p` is not a path a policy may name (absolute, normalized, no control characters,
    /// shorter than PATH_MAX), or nil. The same text for a policy key and a `cordon run` flag.
    public static func pathProblem(_ p: String) -> String? {
        if !p.hasPrefix("/") { return "\"\(p)\" must be an absolute path" }
        if p.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "path contains a control character" }
        let parts = p.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if parts.contains(where: { $0 == ".." || $0 == "." }) || (p != "/" && parts.contains(where: { $0.isEmpty })) {
            return "\"\(p)\" must be a normalized path (no '.', '..', '//' or trailing '/')"
        }
        if p.utf8.count >= 4096 { return "path is too long" }
        return nil
    }

    /// Why `p` cannot be a `workspace.allow` entry, or nil: a path a policy may name, and a
    /// directory of files (not `/`, which would allow every directory a caller can reach, and
    /// not the kernel's /proc, /sys or /dev).
    public static func workspaceProblem(_ p: String) -> String? {
        if let problem = pathProblem(p) { return problem }
        if p == "/" { return "\"/\" would allow any directory a caller can reach: name the directories workspaces live in (\"/home\", \"/srv/projects\")" }
        for kernel in ["/proc", "/sys", "/dev"] where p == kernel || p.hasPrefix(kernel + "/") {
            return "\"\(ConfigReader.printable(p))\" is in \(kernel), the kernel's own files: a workspace is a directory of the caller's files"
        }
        return nil
    }

    /// Levenshtein distance, for "did you mean".
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.utf8), y = Array(b.utf8)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        for i in 1...x.count {
            var current = [i] + Array(repeating: 0, count: y.count)
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            previous = current
        }
        return previous[y.count]
    }

    public static func suggestion(for key: String, among known: [String]) -> String {
        let best = known.map { ($0, distance(key.lowercased(), $0.lowercased())) }.min { $0.1 < $1.1 }
        guard let (name, d) = best, d <= max(2, key.count / 3) else { return "" }
        return " (did you mean '\(name)'?)"
    }
}

/// Reads typed values out of a TOML table, collecting every problem (file, key path, line and a
/// sentence) instead of stopping at the first. The policy parser's reader; tool manifests and
/// every other Cordon configuration file read their keys with it, so a wrong type, a bad unit or
/// an unknown key reads the same everywhere.
public struct ConfigReader {
    public let file: String
    public private(set) var diagnostics: [PolicyDiagnostic] = []

    public init(file: String) { self.file = file }

    /// `text` as TOML, or nil with the syntax error recorded (its line and column).
    public mutating func parse(_ text: String) -> TOMLTable? {
        do { return try TOML.parse(text) } catch {
            self.error("", error.location.line, "\(error.message) (column \(error.location.column))")
            return nil
        }
    }

    /// A name's byte: a letter, a digit, '_' or '-'.
    public static func isNameByte(_ c: UInt8) -> Bool {
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 || c == 45
    }

    /// A value from a file as a message shows it: at most 80 characters, control characters as '?'.
    public static func printable(_ s: String) -> String {
        String(s.unicodeScalars.prefix(80).map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    }

    public mutating func error(_ path: String, _ line: Int?, _ message: String) {
        diagnostics.append(PolicyDiagnostic(file: file, keyPath: path, line: line, message: message))
    }

    /// Each key of `table` (at `path`) that is not in `known`, as "unknown key (did you mean …)".
    public mutating func rejectUnknown(_ table: TOMLTable, _ path: String, known: [String]) {
        for key in table.keys where !known.contains(key) {
            error(path.isEmpty ? key : "\(path).\(key)", table.keyLocation(key)?.line,
                  "unknown key" + PolicyParser.suggestion(for: key, among: known))
        }
    }

    mutating func read(_ root: TOMLTable, into policy: inout Policy) {
        let tables = PolicyParser.schema.keys.sorted()
        for key in root.keys {
            guard let known = PolicyParser.schema[key] else {
                error(key, root.keyLocation(key)?.line,
                      "unknown table" + PolicyParser.suggestion(for: key, among: tables))
                continue
            }
            guard let value = root[key], case .table(let table) = value.kind else {
                error(key, root[key]?.location.line, "expected a table, found \(root[key]?.typeName ?? "nothing")")
                continue
            }
            for sub in table.keys where !known.contains(sub) {
                error("\(key).\(sub)", table.keyLocation(sub)?.line,
                      "unknown key" + PolicyParser.suggestion(for: sub, among: known))
            }
            switch key {
            case "policy": readPolicy(table, &policy)
            case "filesystem": readFilesystem(table, &policy.filesystem)
            case "process": readProcess(table, &policy.process)
            case "limits": readLimits(table, &policy.limits)
            case "seccomp":
                if let s = string(table, "seccomp", "profile") {
                    if s.isEmpty || hasControl(s) { error("seccomp.profile", line(table, "profile"), "must be a non-empty name or path without control characters") }
                    policy.seccomp.profile = s
                }
                if let a = string(table, "seccomp", "action") {
                    if let action = Policy.SeccompViolationAction(rawValue: a) { policy.seccomp.action = action }
                    else { error("seccomp.action", line(table, "action"), "unknown action '\(a)' (expected: \(Policy.SeccompViolationAction.allCases.map(\.rawValue).joined(separator: ", ")))") }
                }
            case "access":
                for (key, what) in [("users", "user"), ("groups", "group")] {
                    guard let names = stringArray(table, "access", key) else { continue }
                    var seen = Set<String>()
                    for (i, name) in names.enumerated() {
                        if let problem = PolicyParser.principalProblem(name, what) { error("access.\(key)[\(i)]", line(table, key), problem) }
                        else if !seen.insert(name).inserted { continue }
                        else if key == "users" { policy.access.users.append(name) }
                        else { policy.access.groups.append(name) }
                    }
                }
            case "daemon":
                if let warm = integer(table, "daemon", "warm", range: PolicyRange.warm) { policy.daemon.warm = Int(warm) }
            case "install": readInstall(table, &policy.install)
            case "workspace":
                guard let paths = stringArray(table, "workspace", "allow") else { break }
                for (i, path) in paths.enumerated() {
                    if let problem = PolicyParser.workspaceProblem(path) { error("workspace.allow[\(i)]", line(table, "allow"), problem) }
                    else if !policy.workspace.allow.contains(path) { policy.workspace.allow.append(path) }
                }
            case "capabilities":
                if let names = stringArray(table, "capabilities", "keep") {
                    for (i, name) in names.enumerated() {
                        let normalized = name.uppercased().hasPrefix("CAP_") ? name.uppercased() : "CAP_" + name.uppercased()
                        if Capability.number(normalized) == nil {
                            error("capabilities.keep[\(i)]", line(table, "keep"), "unknown capability '\(name)'"
                                  + PolicyParser.suggestion(for: normalized, among: Capability.names))
                        } else {
                            policy.capabilities.keep.append(normalized)
                        }
                    }
                }
            case "network":
                if let mode = string(table, "network", "mode") {
                    if let m = Policy.NetworkMode(rawValue: mode) { policy.network.mode = m }
                    else { error("network.mode", line(table, "mode"), "unknown mode '\(mode)' (expected: \(Policy.NetworkMode.allCases.map(\.rawValue).joined(separator: ", ")))") }
                }
                if let entries = stringArray(table, "network", "allow") {
                    var seen = Set<String>()
                    for (i, entry) in entries.enumerated() {
                        if let problem = PolicyParser.destinationProblem(entry) { error("network.allow[\(i)]", line(table, "allow"), problem) }
                        else if seen.insert(entry).inserted { policy.network.allow.append(entry) }
                    }
                }
            case "landlock":
                if let mode = string(table, "landlock", "mode") {
                    if let m = Policy.LandlockMode(rawValue: mode) { policy.landlock.mode = m }
                    else { error("landlock.mode", line(table, "mode"), "unknown mode '\(mode)' (expected: \(Policy.LandlockMode.allCases.map(\.rawValue).joined(separator: ", ")))") }
                }
            default: break
            }
        }
        checkContradictions(policy)
    }

    // MARK: tables

    mutating func readPolicy(_ t: TOMLTable, _ policy: inout Policy) {
        if let name = string(t, "policy", "name") {
            if name.isEmpty || name.contains("/") || hasControl(name) {
                error("policy.name", line(t, "name"), "must be a non-empty name without '/' or control characters")
            }
            else { policy.name = name }
        }
        if let d = string(t, "policy", "description") { policy.description = d }
        if let parents = stringArray(t, "policy", "extends") {
            for (i, parent) in parents.enumerated() {
                if parent.isEmpty { error("policy.extends[\(i)]", line(t, "extends"), "must not be empty") }
                else if hasControl(parent) { error("policy.extends[\(i)]", line(t, "extends"), "contains a control character") }
                else { policy.extends.append(parent) }
            }
        }
    }

    mutating func readFilesystem(_ t: TOMLTable, _ fs: inout Policy.Filesystem) {
        if let binds = bindArray(t, "read_only") { fs.readOnly = binds }
        if let binds = bindArray(t, "read_write") { fs.readWrite = binds }
        if let value = t["tmpfs"] {
            if case .array(let items) = value.kind {
                for (i, item) in items.enumerated() {
                    let path = "filesystem.tmpfs[\(i)]"
                    switch item.kind {
                    case .string(let p):
                        if checkSandboxPath(p, path, item.location.line) { fs.tmpfs.append(Policy.Tmpfs(path: p)) }
                    case .table(let entry):
                        for k in entry.keys where !["path", "size", "mode"].contains(k) {
                            error("\(path).\(k)", entry.keyLocation(k)?.line, "unknown key" + PolicyParser.suggestion(for: k, among: ["path", "size", "mode"]))
                        }
                        guard let p = string(entry, path, "path", required: true) else { continue }
                        var tmpfs = Policy.Tmpfs(path: p)
                        if let size = size(entry, path, "size", range: PolicyRange.mountSize) { tmpfs.sizeBytes = size }
                        if let modeText = string(entry, path, "mode") {
                            if let mode = UInt32(modeText, radix: 8), PolicyRange.mode.contains(mode) { tmpfs.mode = mode }
                            else { error("\(path).mode", line(entry, "mode"), "expected an octal mode like \"1777\", found \"\(modeText)\"") }
                        }
                        if checkSandboxPath(p, "\(path).path", line(entry, "path")) { fs.tmpfs.append(tmpfs) }
                    default:
                        error(path, item.location.line, "expected a path or a table {path, size, mode}, found \(item.typeName)")
                    }
                }
            } else {
                error("filesystem.tmpfs", value.location.line, "expected an array, found \(value.typeName)")
            }
        }
        if let w = string(t, "filesystem", "workdir"), checkSandboxPath(w, "filesystem.workdir", line(t, "workdir")) { fs.workdir = w }
        if let s = size(t, "filesystem", "workdir_size", range: PolicyRange.mountSize) { fs.workdirSizeBytes = s }
        if let hide = stringArray(t, "filesystem", "hide") {
            for (i, p) in hide.enumerated() where checkSandboxPath(p, "filesystem.hide[\(i)]", line(t, "hide")) { fs.hide.append(p) }
        }
        if let text = string(t, "filesystem", "image") {
            let at = line(t, "image")
            if let source = Policy.ImageSource(parsing: text), PolicyParser.pathProblem(source.path) == nil,
               !hasControl(text), source.path != "/" {
                fs.image = source
            } else {
                error("filesystem.image", at, "\"\(text)\" is not PATH[:REF]: an absolute host path (an OCI image layout directory, its tar, or a docker save archive) without '..' or ':', then optionally ':' and the image's ref name or tag")
            }
        }
        if let text = string(t, "filesystem", "image_fail_on") {
            if let gate = Policy.ImageGate(rawValue: text) { fs.imageFailOn = gate }
            else { error("filesystem.image_fail_on", line(t, "image_fail_on"), "unknown severity \"\(text)\" (expected: \(Policy.ImageGate.allCases.map(\.rawValue).joined(separator: ", ")))") }
        }
    }

    mutating func readInstall(_ t: TOMLTable, _ install: inout Policy.Install) {
        if let text = string(t, "install", "index") {
            switch ServiceURL.parse(text) {
            case .success(let url) where url.host.contains(":"):
                error("install.index", line(t, "index"), "\"\(ConfigReader.printable(text))\" is an IPv6 address: \(EgressRule.ipv6Refusal)")
            case .success(let url): install.index = url
            case .failure(let why): error("install.index", line(t, "index"), "\"\(ConfigReader.printable(text))\": \(why.message) (e.g. \"https://pypi.org/simple\")")
            }
        }
        if let hosts = stringArray(t, "install", "index_hosts") {
            for (i, host) in hosts.enumerated() {
                switch EgressRule.parse(host) {
                case .failure(let e): error("install.index_hosts[\(i)]", line(t, "index_hosts"), e.reason)
                case .success(let rule) where rule.isBroad:
                    error("install.index_hosts[\(i)]", line(t, "index_hosts"), "\"\(ConfigReader.printable(host))\" is more than one host or port: name the host files come from and its port (\"files.example.com:443\")")
                case .success(let rule):
                    // Kept as the rule spells itself (case, a trailing dot, "/32" gone), so that
                    // hosts compare as the egress layer will.
                    if !install.indexHosts.contains(rule.description) { install.indexHosts.append(rule.description) }
                }
            }
        }
        if let v = t["min_release_age"] {
            let seconds: Double?
            switch v.kind {
            case .integer(let n): seconds = Double(n)
            case .float(let f): seconds = f
            case .string(let s): seconds = Units.parseDuration(s)
            default: seconds = nil
            }
            if let seconds, PolicyRange.releaseAge.contains(seconds) { install.minReleaseAgeSeconds = PolicyRange.quantize(seconds: seconds) }
            else if seconds == nil { error("install.min_release_age", v.location.line, "expected a duration like \"7d\", \"36h\" or 0 (no age required), found \(describe(v))") }
            else { error("install.min_release_age", v.location.line, "\(describe(v)) is out of range 0...365d") }
        }
        if let v = t["require_hashes"] {
            if case .boolean(let b) = v.kind { install.requireHashes = b }
            else { error("install.require_hashes", v.location.line, "expected true or false, found \(describe(v))") }
        }
        for (key, keyPath) in [("deny_vulnerability_severity", \Policy.Install.denyVulnerabilitySeverity), ("deny_finding_severity", \Policy.Install.denyFindingSeverity)] {
            guard let text = string(t, "install", key) else { continue }
            if let gate = Policy.ImageGate(rawValue: text) { install[keyPath: keyPath] = gate }
            else { error("install.\(key)", line(t, key), "unknown severity \"\(ConfigReader.printable(text))\" (expected: \(Policy.ImageGate.allCases.map(\.rawValue).joined(separator: ", ")))") }
        }
        for (key, keyPath) in [("allow", \Policy.Install.allow), ("deny", \Policy.Install.deny), ("require_provenance", \Policy.Install.requireProvenance)] {
            guard let names = stringArray(t, "install", key) else { continue }
            for (i, name) in names.enumerated() {
                if key == "require_provenance" && name == "*" {
                    if !install[keyPath: keyPath].contains("*") { install[keyPath: keyPath].append("*") }
                } else if isValidPyPIName(name) {
                    let normalized = normalizePyPIName(name)
                    if !install[keyPath: keyPath].contains(normalized) { install[keyPath: keyPath].append(normalized) }
                } else {
                    error("install.\(key)[\(i)]", line(t, key), "\"\(ConfigReader.printable(name))\" is not a package name (letters, digits, '.', '_' and '-', starting and ending with a letter or digit)"
                          + (key == "require_provenance" ? "; \"*\" means every package" : ""))
                }
            }
        }
        if let text = string(t, "install", "typosquats") {
            if let rule = Policy.TyposquatRule(rawValue: text) { install.typosquats = rule }
            else { error("install.typosquats", line(t, "typosquats"), "unknown rule \"\(ConfigReader.printable(text))\" (expected: refuse, warn)") }
        }
        if let text = string(t, "install", "sdists") {
            if let rule = Policy.SdistRule(rawValue: text) { install.sdists = rule }
            else { error("install.sdists", line(t, "sdists"), "unknown rule \"\(ConfigReader.printable(text))\" (expected: build, refuse)") }
        }
        if let text = string(t, "install", "yanked") {
            if let rule = Policy.YankedRule(rawValue: text) { install.yanked = rule }
            else { error("install.yanked", line(t, "yanked"), "unknown rule \"\(ConfigReader.printable(text))\" (expected: refuse, allow-pinned)") }
        }
        if let v = t["accept"] {
            if case .array(let items) = v.kind {
                for (i, item) in items.enumerated() {
                    if let entry = acceptance(item, "install.accept[\(i)]"), !install.accept.contains(entry) { install.accept.append(entry) }
                }
            } else {
                error("install.accept", v.location.line, "expected an array of tables {rule, package, version, finding, file, advisory, reason}, found \(v.typeName)")
            }
        }
    }

    /// One `install.accept` entry: which refusal of which package (and release, finding, file or
    /// advisory) is accepted, and why. Each rule takes the fields that say what it refused.
    mutating func acceptance(_ item: TOMLValue, _ path: String) -> Policy.Acceptance? {
        guard case .table(let entry) = item.kind else {
            error(path, item.location.line, "expected a table {rule, package, version, finding, file, advisory, reason}, found \(item.typeName)")
            return nil
        }
        let known = ["rule", "package", "version", "finding", "file", "advisory", "reason"]
        var ok = true
        for k in entry.keys where !known.contains(k) {
            error("\(path).\(k)", entry.keyLocation(k)?.line, "unknown key" + PolicyParser.suggestion(for: k, among: known))
            ok = false
        }
        let ruleText = string(entry, path, "rule", required: true)
        let package = string(entry, path, "package", required: true)
        let version = string(entry, path, "version")
        let finding = string(entry, path, "finding")
        let file = string(entry, path, "file")
        let advisory = string(entry, path, "advisory")
        let reason = string(entry, path, "reason", required: true)
        var rule: Policy.Acceptance.Rule?
        if let ruleText {
            rule = Policy.Acceptance.Rule(rawValue: ruleText)
            if rule == nil {
                error("\(path).rule", line(entry, "rule"), "\"\(ConfigReader.printable(ruleText))\" cannot be accepted (expected: \(Policy.Acceptance.Rule.allCases.map(\.rawValue).joined(separator: ", ")), the key a refusal names; the other checks are not judgements)")
            }
        }
        if let package, !isValidPyPIName(package) {
            error("\(path).package", line(entry, "package"), "\"\(ConfigReader.printable(package))\" is not a package name (letters, digits, '.', '_' and '-', starting and ending with a letter or digit)")
            ok = false
        }
        func token(_ value: String?, _ key: String, max: Int, allowed: (UInt8) -> Bool, what: String) {
            guard let value else { return }
            if value.isEmpty || value.utf8.count > max || !value.utf8.allSatisfy(allowed) {
                error("\(path).\(key)", line(entry, key), "\"\(ConfigReader.printable(value))\" is not \(what)")
                ok = false
            }
        }
        let word: (UInt8) -> Bool = { c in (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x2e || c == 0x5f }
        token(version, "version", max: 64, allowed: { word($0) || $0 == 0x2b || $0 == 0x21 }, what: "a version (e.g. \"2.17.0\")")
        token(finding, "finding", max: 64, allowed: word, what: "a heuristic's rule name (e.g. \"credential-access\")")
        token(advisory, "advisory", max: 64, allowed: { word($0) || $0 == 0x3a }, what: "an advisory id (e.g. \"PYSEC-2023-117\", \"GHSA-xxxx-xxxx-xxxx\")")
        // Printable: no control or format character (C0, C1, bidi, zero-width), which would
        // reorder or hide what a reviewer reads in `policy diff`; "?" is what the check shows
        // for an unprintable character, so an entry with one could match another file.
        func printable(_ s: String) -> Bool {
            s.unicodeScalars.allSatisfy { ![.control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator].contains($0.properties.generalCategory) }
        }
        if let file, file.isEmpty || file.unicodeScalars.count > Policy.Acceptance.maxFile || !printable(file) || file.contains("?") || file.hasPrefix("/")
            || file.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            error("\(path).file", line(entry, "file"), "\"\(ConfigReader.printable(file))\" is not a path inside a package (relative, printable, no '?', at most \(Policy.Acceptance.maxFile) characters, as a refusal names it: \"httpx2/_auth.py\")")
            ok = false
        }
        if let reason, !reason.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) || reason.unicodeScalars.count > Policy.Acceptance.maxReason || !printable(reason) {
            error("\(path).reason", line(entry, "reason"), "say in 1 to \(Policy.Acceptance.maxReason) printable characters why it is accepted: it is kept in every record it lets a file through")
            ok = false
        }
        if let finding, Policy.Acceptance.integrityFindings.contains(finding) {
            error("\(path).finding", line(entry, "finding"), "\"\(finding)\" reports the archive itself (its RECORD, or bytes the check could not read), not code: it cannot be accepted")
            ok = false
        }
        if let finding, Policy.Acceptance.unreadFindings.contains(finding), file == nil {
            error("\(path).file", entry.location.line, "missing: \"\(finding)\" says code was not read, and is accepted only for the one file named")
            ok = false
        }
        guard let rule, let package, let reason, ok else { return nil }
        // The fields each rule reads; any other is a mistake (an entry that would match more
        // than its author meant, or never match).
        let needs: [String]
        let takes: [String]
        switch rule {
        case .typosquats: needs = []; takes = ["version"]
        case .finding: needs = ["version", "finding"]; takes = ["version", "finding", "file"]
        case .vulnerability: needs = ["version", "advisory"]; takes = ["version", "advisory"]
        }
        let given: [String: String?] = ["version": version, "finding": finding, "file": file, "advisory": advisory]
        for key in needs where given[key]! == nil {
            error("\(path).\(key)", entry.location.line, "missing: \(rule.rawValue) is accepted for one \(key == "version" ? "release (a new one is judged afresh)" : key) at a time")
            ok = false
        }
        for key in ["version", "finding", "file", "advisory"] where given[key]! != nil && !takes.contains(key) {
            error("\(path).\(key)", line(entry, key), "\(rule.rawValue) has no \(key) to match (it takes: \(takes.isEmpty ? "package" : (["package"] + takes).joined(separator: ", ")))")
            ok = false
        }
        guard ok else { return nil }
        return Policy.Acceptance(rule: rule, package: normalizePyPIName(package), version: version, finding: finding, file: file, advisory: advisory, reason: reason)
    }

    mutating func readProcess(_ t: TOMLTable, _ p: inout Policy.Process) {
        if let uid = integer(t, "process", "user", range: PolicyRange.id) { p.uid = UInt32(uid) }
        if let gid = integer(t, "process", "group", range: PolicyRange.id) { p.gid = UInt32(gid) }
        if let h = string(t, "process", "hostname") {
            if h.isEmpty || h.utf8.count > 64 { error("process.hostname", line(t, "hostname"), "must be 1 to 64 bytes") }
            else { p.hostname = h }
        }
        if let value = t["env"] {
            if case .table(let env) = value.kind {
                for name in env.keys {
                    guard let v = env[name], case .string(let s) = v.kind else {
                        error("process.env.\(name)", env[name]?.location.line, "expected a string, found \(env[name]?.typeName ?? "nothing")")
                        continue
                    }
                    if name.isEmpty || name.contains("=") || hasControl(name) || s.utf8.contains(0) {
                        error("process.env.\(name)", v.location.line, "invalid environment variable")
                        continue
                    }
                    p.env.append(Policy.EnvVar(name, s))
                }
            } else {
                error("process.env", value.location.line, "expected a table of strings, found \(value.typeName)")
            }
        }
        if let names = stringArray(t, "process", "pass_env") {
            for (i, name) in names.enumerated() {
                if name.isEmpty || name.contains("=") || hasControl(name) { error("process.pass_env[\(i)]", line(t, "pass_env"), "invalid environment variable name") }
                else { p.passEnv.append(name) }
            }
        }
        if let cwd = string(t, "process", "cwd"), checkSandboxPath(cwd, "process.cwd", line(t, "cwd")) { p.cwd = cwd }
    }

    mutating func readLimits(_ t: TOMLTable, _ l: inout Policy.Limits) {
        l.memoryBytes = size(t, "limits", "memory", range: PolicyRange.memory)
        if let pids = integer(t, "limits", "pids", range: PolicyRange.pids) { l.pids = Int(pids) }
        if let value = t["cpu"] {
            let range = PolicyRange.cpu
            switch value.kind {
            case .integer(let n) where range.contains(Double(n)): l.cpuCores = Double(n)
            case .float(let f) where range.contains(f): l.cpuCores = f
            default: error("limits.cpu", value.location.line, "expected a number of cores between \(range.lowerBound) and \(Int(range.upperBound)), found \(describe(value))")
            }
        }
        l.wallTimeSeconds = duration(t, "limits", "wall_time")
        l.cpuTimeSeconds = duration(t, "limits", "cpu_time")
        if let n = integer(t, "limits", "open_files", range: PolicyRange.openFiles) { l.openFiles = UInt64(n) }
        l.fileSizeBytes = size(t, "limits", "file_size", range: PolicyRange.bytes)
        l.outputBytes = size(t, "limits", "output", range: PolicyRange.bytes)
    }

    /// A path may be bound once, and what is bound is not also hidden.
    mutating func checkContradictions(_ policy: Policy) {
        switch (policy.network.mode, policy.network.allow.isEmpty) {
        case (.none, false): error("network.allow", nil, "an allow list with mode = \"none\" would be ignored (use mode = \"allowlist\")")
        case (.allowlist, true) where !diagnostics.contains(where: { $0.keyPath.hasPrefix("network.allow[") }):
            error("network.allow", nil, "mode = \"allowlist\" needs at least one destination (or use mode = \"none\")")
        default: break
        }
        let fs = policy.filesystem
        var seen: [String: String] = [:]
        let mounts = fs.readOnly.map { ($0.path, "filesystem.read_only") } + fs.readWrite.map { ($0.path, "filesystem.read_write") }
            + fs.tmpfs.map { ($0.path, "filesystem.tmpfs") } + [(fs.workdir, "filesystem.workdir")]
        for (path, key) in mounts {
            if let first = seen[path] { error(key, nil, "\"\(path)\" is already mounted by \(first)") }
            else { seen[path] = key }
        }
        for hidden in fs.hide {
            if let key = seen[hidden] { error("filesystem.hide", nil, "\"\(hidden)\" is both hidden and mounted by \(key)") }
        }
    }

    // MARK: typed accessors

    /// Names and paths are printed in reports and terminals: no control characters in them.
    public func hasControl(_ s: String) -> Bool { s.utf8.contains { $0 < 0x20 || $0 == 0x7f } }

    public func line(_ t: TOMLTable, _ key: String) -> Int? { t.keyLocation(key)?.line ?? t[key]?.location.line }

    public func describe(_ v: TOMLValue) -> String {
        switch v.kind {
        case .string(let s): return "\"\(s)\""
        case .integer(let n): return "\(n)"
        case .float(let f): return "\(f)"
        case .boolean(let b): return "\(b)"
        default: return v.typeName
        }
    }

    public mutating func string(_ t: TOMLTable, _ table: String, _ key: String, required: Bool = false) -> String? {
        guard let v = t[key] else {
            if required { error("\(table).\(key)", t.location.line, "missing required key") }
            return nil
        }
        guard case .string(let s) = v.kind else {
            error("\(table).\(key)", v.location.line, "expected a string, found \(v.typeName)")
            return nil
        }
        return s
    }

    public mutating func integer(_ t: TOMLTable, _ table: String, _ key: String, range: ClosedRange<Int64>) -> Int64? {
        guard let v = t[key] else { return nil }
        guard case .integer(let n) = v.kind else {
            error("\(table).\(key)", v.location.line, "expected an integer, found \(v.typeName)")
            return nil
        }
        guard range.contains(n) else {
            error("\(table).\(key)", v.location.line, "\(n) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return n
    }

    /// A size within `range`: a TOML integer (bytes) or a string with units, rounded to a byte.
    public mutating func size(_ t: TOMLTable, _ table: String, _ key: String, range: ClosedRange<UInt64>) -> UInt64? {
        guard let v = t[key] else { return nil }
        let bytes: UInt64?
        switch v.kind {
        case .integer(let n): bytes = UInt64(exactly: n)
        case .string(let s):
            guard let value = Units.sizeValue(s) else {
                error("\(table).\(key)", v.location.line, "bad size \"\(s)\" (use a number of bytes or units like \"512M\", \"64k\", \"2G\")")
                return nil
            }
            bytes = UInt64(exactly: value.rounded())
        default:
            error("\(table).\(key)", v.location.line, "expected a size like \"512M\", found \(describe(v))")
            return nil
        }
        guard let bytes, range.contains(bytes) else {
            error("\(table).\(key)", v.location.line,
                  "\(describe(v)) is out of range \(Units.formatSize(range.lowerBound))...\(Units.formatSize(range.upperBound))")
            return nil
        }
        return bytes
    }

    /// A duration in `PolicyRange.duration`: seconds as a TOML number, or a string with units;
    /// kept to the microsecond so that `explain` prints it exactly.
    public mutating func duration(_ t: TOMLTable, _ table: String, _ key: String) -> Double? {
        guard let v = t[key] else { return nil }
        let seconds: Double
        switch v.kind {
        case .integer(let n): seconds = Double(n)
        case .float(let f): seconds = f
        case .string(let s):
            guard let d = Units.parseDuration(s) else {
                error("\(table).\(key)", v.location.line, "bad duration \"\(s)\" (use units like \"30s\", \"500ms\", \"2m\")")
                return nil
            }
            seconds = d
        default:
            error("\(table).\(key)", v.location.line, "expected a duration like \"30s\", found \(describe(v))")
            return nil
        }
        // Compared before rounding, as the JSON Schema compares; NaN is in no range.
        guard PolicyRange.duration.contains(seconds) else {
            error("\(table).\(key)", v.location.line, "\(describe(v)) is out of range \(PolicyRange.durationText)")
            return nil
        }
        return PolicyRange.quantize(seconds: seconds)
    }

    public mutating func stringArray(_ t: TOMLTable, _ table: String, _ key: String) -> [String]? {
        guard let v = t[key] else { return nil }
        guard case .array(let items) = v.kind else {
            error("\(table).\(key)", v.location.line, "expected an array of strings, found \(v.typeName)")
            return nil
        }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            if case .string(let s) = item.kind { out.append(s) }
            else { error("\(table).\(key)[\(i)]", item.location.line, "expected a string, found \(item.typeName)") }
        }
        return out
    }

    mutating func bindArray(_ t: TOMLTable, _ key: String) -> [Policy.Bind]? {
        guard let v = t[key] else { return nil }
        guard case .array(let items) = v.kind else {
            error("filesystem.\(key)", v.location.line, "expected an array, found \(v.typeName)")
            return nil
        }
        var out: [Policy.Bind] = []
        for (i, item) in items.enumerated() {
            let path = "filesystem.\(key)[\(i)]"
            switch item.kind {
            case .string(let p):
                if checkSandboxPath(p, path, item.location.line) { out.append(Policy.Bind(path: p)) }
            case .table(let entry):
                let known = key == "read_write" ? ["path", "source", "optional", "owner"] : ["path", "source", "optional"]
                for k in entry.keys where !known.contains(k) {
                    if k == "owner" {
                        error("\(path).owner", entry.keyLocation(k)?.line, "owner applies to read_write binds only: what a read-only bind shows keeps its host owner")
                        continue
                    }
                    error("\(path).\(k)", entry.keyLocation(k)?.line, "unknown key" + PolicyParser.suggestion(for: k, among: known))
                }
                guard let p = string(entry, path, "path", required: true) else { continue }
                let source = string(entry, path, "source") ?? p
                var optional = false
                if let o = entry["optional"] {
                    if case .boolean(let b) = o.kind { optional = b }
                    else { error("\(path).optional", o.location.line, "expected true or false, found \(o.typeName)") }
                }
                var owner: Policy.Owner?
                if key == "read_write", let text = string(entry, path, "owner") {
                    owner = Policy.Owner(parsing: text)
                    if owner == nil {
                        error("\(path).owner", line(entry, "owner"), "\"\(text)\" is not \"uid:gid\" (two numeric ids, e.g. \"1000:1000\")")
                    }
                }
                if checkSandboxPath(p, "\(path).path", line(entry, "path")) && checkSandboxPath(source, "\(path).source", line(entry, "source")) {
                    out.append(Policy.Bind(path: p, source: source, optional: optional, owner: owner))
                }
            default:
                let shape = key == "read_write" ? "{path, source, optional, owner}" : "{path, source, optional}"
                error(path, item.location.line, "expected a path or a table \(shape), found \(item.typeName)")
            }
        }
        return out
    }

    /// Paths must be absolute, normalized, and free of NUL bytes.
    mutating func checkSandboxPath(_ p: String, _ keyPath: String, _ line: Int?) -> Bool {
        guard let problem = PolicyParser.pathProblem(p) else { return true }
        error(keyPath, line, problem)
        return false
    }
}
