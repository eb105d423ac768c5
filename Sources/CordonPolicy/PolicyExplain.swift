import CordonScan

/// The effective policy after `extends`, one line per value, each annotated with the file (and
/// line) that set it, or "default" when no file did. The values are TOML: the lines under their
/// table headers form a policy file that parses back to the same policy (the tests hold it to that).
public struct PolicyExplanation: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        /// `limits.memory`, `filesystem.read_only`, `process.env.PATH`, …
        public var key: String
        /// The value as TOML.
        public var value: String
        /// The file that set it, or "default".
        public var source: String
        public var line: Int?
    }

    public var policy: String
    public var extends: [String]
    public var entries: [Entry]

    public static func explain(_ policy: Policy, layers: [PolicyParser.Layer]) -> PolicyExplanation {
        var entries: [Entry] = []
        /// The last file in merge order that sets `table.key` (or, with `sub`, that key of it).
        func origin(_ table: String, _ key: String, sub: String? = nil) -> (String, Int?) {
            for layer in layers.reversed() {
                guard case .table(let t)? = layer.table[table]?.kind, let value = t[key] else { continue }
                if let sub {
                    guard case .table(let inner) = value.kind, let v = inner[sub] else { continue }
                    return (layer.source, inner.keyLocation(sub)?.line ?? v.location.line)
                }
                return (layer.source, t.keyLocation(key)?.line ?? value.location.line)
            }
            return ("default", nil)
        }
        /// For the list `table.key`, where each entry is written: the last file in merge order
        /// that has it, at its first mention there. One pass over every file's list, so a list
        /// of n entries is explained in O(n), not by searching the files once per entry.
        var listOrigins: [String: [String: (String, Int?)]] = [:]
        func itemOrigin(_ table: String, _ key: String, _ item: String) -> (String, Int?) {
            let list = "\(table).\(key)"
            if listOrigins[list] == nil {
                var found: [String: (String, Int?)] = [:]
                for layer in layers.reversed() {
                    guard case .table(let t)? = layer.table[table]?.kind, case .array(let items)? = t[key]?.kind else { continue }
                    for entry in items {
                        if let identity = PolicyMerge.identity(entry), found[identity] == nil { found[identity] = (layer.source, entry.location.line) }
                    }
                }
                listOrigins[list] = found
            }
            return listOrigins[list]?[item] ?? ("default", nil)
        }
        /// An `install.accept` entry is a table without a path: found by its fields in the last
        /// file that lists it (its package as the file spells it, normalized).
        func acceptOrigin(_ a: Policy.Acceptance) -> (String, Int?) {
            for layer in layers.reversed() {
                guard case .table(let t)? = layer.table["install"]?.kind, case .array(let items)? = t["accept"]?.kind else { continue }
                for item in items {
                    guard case .table(let e) = item.kind else { continue }
                    func text(_ key: String) -> String? { if case .string(let v)? = e[key]?.kind { return v }; return nil }
                    if text("rule") == a.rule.rawValue, text("package").map({ normalizePyPIName($0) }) == a.package, text("version") == a.version,
                       text("finding") == a.finding, text("file") == a.file, text("advisory") == a.advisory, text("reason") == a.reason {
                        return (layer.source, item.location.line)
                    }
                }
            }
            return origin("install", "accept")
        }
        func add(_ table: String, _ key: String, _ value: String) {
            let (source, line) = origin(table, key)
            entries.append(Entry(key: "\(table).\(key)", value: value, source: source, line: line))
        }
        func addList(_ table: String, _ key: String, _ items: [(identity: String, toml: String)]) {
            if items.isEmpty { add(table, key, "[]"); return }
            for item in items {
                let (source, line) = itemOrigin(table, key, item.identity)
                entries.append(Entry(key: "\(table).\(key)", value: item.toml, source: source, line: line))
            }
        }

        let fs = policy.filesystem
        func bind(_ b: Policy.Bind) -> (String, String) {
            if b.source == b.path && !b.optional && b.owner == nil { return (b.path, quote(b.path)) }
            var parts = ["path = \(quote(b.path))"]
            if b.source != b.path { parts.append("source = \(quote(b.source))") }
            if b.optional { parts.append("optional = true") }
            if let owner = b.owner { parts.append("owner = \(quote(owner.description))") }
            return (b.path, "{ \(parts.joined(separator: ", ")) }")
        }
        addList("filesystem", "read_only", fs.readOnly.map(bind))
        addList("filesystem", "read_write", fs.readWrite.map(bind))
        addList("filesystem", "tmpfs", fs.tmpfs.map {
            ($0.path, "{ path = \(quote($0.path)), size = \(quote(Units.formatSize($0.sizeBytes))), mode = \(quote(String($0.mode, radix: 8))) }")
        })
        add("filesystem", "workdir", quote(fs.workdir))
        add("filesystem", "workdir_size", quote(Units.formatSize(fs.workdirSizeBytes)))
        addList("filesystem", "hide", fs.hide.map { ($0, quote($0)) })
        if let image = fs.image {
            add("filesystem", "image", quote(image.description))
            add("filesystem", "image_fail_on", quote(fs.imageFailOn.rawValue))
        }

        let p = policy.process
        add("process", "user", "\(p.uid)")
        add("process", "group", "\(p.gid)")
        add("process", "hostname", quote(p.hostname))
        if p.env.isEmpty { add("process", "env", "{}") }
        for variable in p.env {
            let (source, line) = origin("process", "env", sub: variable.name)
            entries.append(Entry(key: "process.env.\(variable.name)", value: quote(variable.value), source: source, line: line))
        }
        addList("process", "pass_env", p.passEnv.map { ($0, quote($0)) })
        if let cwd = p.cwd { add("process", "cwd", quote(cwd)) }

        let l = policy.limits
        if let v = l.memoryBytes { add("limits", "memory", quote(Units.formatSize(v))) }
        if let v = l.pids { add("limits", "pids", "\(v)") }
        if let v = l.cpuCores { add("limits", "cpu", "\(v)") }
        if let v = l.wallTimeSeconds { add("limits", "wall_time", quote(Units.formatDuration(v))) }
        if let v = l.cpuTimeSeconds { add("limits", "cpu_time", quote(Units.formatDuration(v))) }
        if let v = l.openFiles { add("limits", "open_files", "\(v)") }
        if let v = l.fileSizeBytes { add("limits", "file_size", quote(Units.formatSize(v))) }
        if let v = l.outputBytes { add("limits", "output", quote(Units.formatSize(v))) }

        add("seccomp", "profile", quote(policy.seccomp.profile))
        add("seccomp", "action", quote(policy.seccomp.action.rawValue))
        // Capabilities are stored normalised (CAP_X); a file may spell them X.
        let keep = policy.capabilities.keep
        if keep.isEmpty { add("capabilities", "keep", "[]") }
        for cap in keep {
            var hit = itemOrigin("capabilities", "keep", cap)
            if hit.0 == "default" { hit = itemOrigin("capabilities", "keep", String(cap.dropFirst(4))) }
            entries.append(Entry(key: "capabilities.keep", value: quote(cap), source: hit.0, line: hit.1))
        }
        add("network", "mode", quote(policy.network.mode.rawValue))
        if !policy.network.allow.isEmpty { addList("network", "allow", policy.network.allow.map { ($0, quote($0)) }) }
        add("landlock", "mode", quote(policy.landlock.mode.rawValue))
        if !policy.access.users.isEmpty { addList("access", "users", policy.access.users.map { ($0, quote($0)) }) }
        if !policy.access.groups.isEmpty { addList("access", "groups", policy.access.groups.map { ($0, quote($0)) }) }
        if !policy.workspace.allow.isEmpty { addList("workspace", "allow", policy.workspace.allow.map { ($0, quote($0)) }) }
        if policy.daemon.warm > 0 { add("daemon", "warm", "\(policy.daemon.warm)") }
        // The gate is explained whole once any key of it is set: whoever reads the explanation of
        // a policy used for installs sees every rule in force, and a parent's edit of any of
        // them changes the explanation (and so the content hash of every policy extending it).
        let install = policy.install
        if install != Policy.Install() {
            /// Names are kept PEP 503-normalized; a file may spell them otherwise, so an entry
            /// not found as written is credited to the file that last set the list.
            func names(_ key: String, _ items: [String]) {
                if items.isEmpty { add("install", key, "[]"); return }
                for item in items {
                    var hit = itemOrigin("install", key, item)
                    if hit.0 == "default" { hit = origin("install", key) }
                    entries.append(Entry(key: "install.\(key)", value: quote(item), source: hit.0, line: hit.1))
                }
            }
            add("install", "index", quote(install.index.description))
            addList("install", "index_hosts", install.indexHosts.map { ($0, quote($0)) })
            add("install", "min_release_age", quote(Units.formatDuration(install.minReleaseAgeSeconds)))
            add("install", "require_hashes", "\(install.requireHashes)")
            add("install", "deny_vulnerability_severity", quote(install.denyVulnerabilitySeverity.rawValue))
            add("install", "deny_finding_severity", quote(install.denyFindingSeverity.rawValue))
            names("allow", install.allow)
            names("deny", install.deny)
            add("install", "typosquats", quote(install.typosquats.rawValue))
            add("install", "sdists", quote(install.sdists.rawValue))
            names("require_provenance", install.requireProvenance)
            add("install", "yanked", quote(install.yanked.rawValue))
            if install.accept.isEmpty { add("install", "accept", "[]") }
            for a in install.accept {
                var parts = ["rule = \(quote(a.rule.rawValue))", "package = \(quote(a.package))"]
                for (key, value) in [("version", a.version), ("finding", a.finding), ("file", a.file), ("advisory", a.advisory)] {
                    if let value { parts.append("\(key) = \(quote(value))") }
                }
                parts.append("reason = \(quote(a.reason))")
                let (source, line) = acceptOrigin(a)
                entries.append(Entry(key: "install.accept", value: "{ \(parts.joined(separator: ", ")) }", source: source, line: line))
            }
        }
        return PolicyExplanation(policy: policy.name, extends: policy.extends, entries: entries)
    }

    /// The effective policy as a TOML file, each value commented with where it came from.
    public func toml() -> String {
        let lists: Set<String> = ["read_only", "read_write", "tmpfs", "hide", "pass_env", "keep", "allow", "users", "groups",
                                   "index_hosts", "deny", "require_provenance", "accept"]
        var out = "# effective policy \(quote(policy))" + (extends.isEmpty ? "" : ", extends \(extends.map(quote).joined(separator: ", "))") + "\n"
        var table = ""
        var index = 0
        while index < entries.count {
            let entry = entries[index]
            let parts = entry.key.split(separator: ".", maxSplits: 2).map(String.init)
            if parts[0] != table {
                table = parts[0]
                out += "\n[\(table)]\n"
            }
            if parts.count == 3 {
                out += "env.\(quote(parts[2])) = \(entry.value)  # \(origin(of: entry))\n"
                index += 1
            } else if lists.contains(parts[1]) && entry.value != "[]" {
                out += "\(parts[1]) = [\n"
                while index < entries.count && entries[index].key == entry.key {
                    out += "  \(entries[index].value),  # \(origin(of: entries[index]))\n"
                    index += 1
                }
                out += "]\n"
            } else {
                out += "\(parts[1]) = \(entry.value)  # \(origin(of: entry))\n"
                index += 1
            }
        }
        return out
    }

    /// "file:line", escaped: a file name with a newline must not end the comment.
    func origin(of entry: Entry) -> String {
        let file = String(quote(entry.source).dropFirst().dropLast())
        return entry.line.map { "\(file):\($0)" } ?? file
    }
}
