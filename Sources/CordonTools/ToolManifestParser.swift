import CordonJSON
import CordonPackaging
import CordonPolicy

/// TOML → `ToolManifest`, collecting every problem (file, key path, line, "did you mean") as the
/// policy parser does, with the same reader. Nothing here touches the file system: whether the
/// policy exists and binds the command is `ToolRegistry`'s and `cordon tool check`'s to say.
public enum ToolManifestParser {
    static let tables: [String: [String]] = [
        "tool": ["kind", "description", "policy", "command", "env", "argv", "input_schema", "output", "timeout",
                 "fallbacks", "shared", "audit_arguments", "requires", "lock"],
        "access": ["users", "groups"],
        "service": ["min_instances", "max_instances", "concurrency", "idle_timeout", "health_interval", "start_timeout",
                    "max_restarts", "restart_window", "backoff", "backoff_max"],
        "breaker": ["failures", "failure_ratio", "min_calls", "window", "cooldown", "max_cooldown"],
    ]
    /// Keys of `[tool]` that belong to one kind only.
    static let kindOnly: [String: ToolManifest.Kind] = [
        "command": .mcp, "argv": .command, "input_schema": .command, "output": .command,
    ]

    /// Limits on what one manifest may declare (guards, not design limits).
    public static let maxNameLength = 64
    public static let maxArgv = 256
    public static let maxFallbacks = 8
    public static let maxSchemaBytes = 64 << 10

    /// Why `name` cannot name a tool (the manifest's file stem), or nil. Letters, digits, '_' and
    /// '-': the registry exposes an MCP server's tools as `NAME.TOOL`, so no dots.
    public static func nameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard (1...maxNameLength).contains(bytes.count) else { return "a tool name has 1 to \(maxNameLength) characters" }
        guard bytes.allSatisfy(isNameByte) else {
            return "\"\(printable(name))\" is not a tool name (letters, digits, '_' and '-' only)"
        }
        return nil
    }

    /// A name an argument may have where `argv` takes it whole (`{NAME}`).
    static func isArgumentName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...64).contains(bytes.count) && bytes.allSatisfy(isNameByte)
    }

    static func isNameByte(_ c: UInt8) -> Bool { ConfigReader.isNameByte(c) }

    /// Why `name` cannot be a fallback: a tool name, or `NAME.TOOL` for a tool an MCP server lists.
    static func fallbackProblem(_ name: String) -> String? {
        let parts = name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        if let problem = nameProblem(String(parts[0])) { return problem }
        if parts.count == 2 {
            let tool = parts[1].utf8
            guard (1...128).contains(tool.count), tool.allSatisfy({ isNameByte($0) || $0 == 46 || $0 == 47 }) else {
                return "\"\(printable(name))\" is not NAME or NAME.TOOL"
            }
        }
        return nil
    }

    static func printable(_ s: String) -> String { ConfigReader.printable(s) }

    /// Parses the manifest `text` of the tool `name`, read from `source`.
    public static func parse(text: String, name: String, source: String) throws(PolicyError) -> ToolManifest {
        var reader = ConfigReader(file: source)
        if let problem = nameProblem(name) { reader.error("", nil, "the file name gives the tool's name: \(problem)") }
        guard let root = reader.parse(text) else { throw PolicyError(diagnostics: reader.diagnostics) }
        var manifest = ToolManifest(name: name, source: source, kind: .mcp, description: "", policy: "")
        read(root, into: &manifest, &reader)
        guard reader.diagnostics.isEmpty else { throw PolicyError(diagnostics: reader.diagnostics) }
        return manifest
    }

    static func read(_ root: TOMLTable, into m: inout ToolManifest, _ r: inout ConfigReader) {
        for key in root.keys {
            guard let known = tables[key] else {
                r.error(key, root.keyLocation(key)?.line, "unknown table" + PolicyParser.suggestion(for: key, among: tables.keys.sorted()))
                continue
            }
            guard case .table(let table)? = root[key]?.kind else {
                r.error(key, root[key]?.location.line, "expected a table, found \(root[key]?.typeName ?? "nothing")")
                continue
            }
            r.rejectUnknown(table, key, known: known)
        }
        guard case .table(let tool)? = root["tool"]?.kind else {
            if root["tool"] == nil { r.error("tool", nil, "missing the [tool] table (kind, description, policy, …)") }
            return
        }
        readTool(tool, into: &m, &r)
        for key in ["policy", "fallbacks", "lock", "requires"] { if let line = r.line(tool, key) { m.keyLines["tool.\(key)"] = line } }
        if case .table(let access)? = root["access"]?.kind { m.access = readAccess(access, &r) }
        if case .table(let service)? = root["service"]?.kind {
            if m.kind == .command { r.error("service", root.keyLocation("service")?.line, "[service] is for kind = \"mcp\": a command tool runs one sandbox per call") }
            r.readService(service, into: &m.service)
        }
        if case .table(let breaker)? = root["breaker"]?.kind { r.readBreaker(breaker, into: &m.breaker) }
    }

    static func readTool(_ t: TOMLTable, into m: inout ToolManifest, _ r: inout ConfigReader) {
        if let kind = r.string(t, "tool", "kind", required: true) {
            if let k = ToolManifest.Kind(rawValue: kind) { m.kind = k }
            else { r.error("tool.kind", r.line(t, "kind"), "unknown kind \"\(printable(kind))\" (expected: mcp, command)"); return }
        } else { return }
        for (key, kind) in kindOnly where t[key] != nil && kind != m.kind {
            r.error("tool.\(key)", r.line(t, key), "\(key) is for kind = \"\(kind.rawValue)\"; this tool is kind = \"\(m.kind.rawValue)\"")
        }
        if let d = r.string(t, "tool", "description", required: true) {
            if d.isEmpty || d.utf8.count > 4096 || r.hasControl(d.replacing("\n", with: " ")) {
                r.error("tool.description", r.line(t, "description"), "a description is 1 to 4096 bytes of text (no control characters but newlines)")
            } else { m.description = d }
        }
        if let p = r.string(t, "tool", "policy", required: true) {
            if p.isEmpty || r.hasControl(p) { r.error("tool.policy", r.line(t, "policy"), "expected a policy name or path") }
            else { m.policy = p }
        }
        switch m.kind {
        case .mcp:
            if let command = r.stringArray(t, "tool", "command") {
                m.command = checkedArgv(command, "tool.command", r.line(t, "command"), &r)
            } else if t["command"] == nil {
                r.error("tool.command", t.location.line, "missing required key: the server's command line, e.g. [\"/usr/bin/python3\", \"-m\", \"mcp_server_time\"]")
            }
        case .command:
            if let argv = r.stringArray(t, "tool", "argv") {
                m.argv = checkedArgv(argv, "tool.argv", r.line(t, "argv"), &r)
            } else if t["argv"] == nil {
                r.error("tool.argv", t.location.line, "missing required key: the program and its arguments")
            }
            m.inputSchema = readSchema(t, &r)
            if let schema = m.inputSchema {
                let properties = schema["properties"].flatMap { p -> [String]? in
                    if case .object(let members) = p { return members.map(\.0) }
                    return nil
                } ?? []
                for name in m.argvPlaceholders where !properties.contains(name) {
                    r.error("tool.argv", r.line(t, "argv"), "{\(name)} names no property of input_schema"
                            + PolicyParser.suggestion(for: name, among: properties))
                }
            }
            if let o = r.string(t, "tool", "output") {
                if let output = ToolManifest.Output(rawValue: o) { m.output = output }
                else { r.error("tool.output", r.line(t, "output"), "unknown output \"\(printable(o))\" (expected: text, json)") }
            }
        }
        if case .table(let env)? = t["env"]?.kind {
            for key in env.keys {
                guard case .string(let value)? = env[key]?.kind else {
                    r.error("tool.env.\(key)", env.keyLocation(key)?.line, "expected a string, found \(env[key]?.typeName ?? "nothing")")
                    continue
                }
                if !isEnvironmentName(key) { r.error("tool.env.\(key)", env.keyLocation(key)?.line, "not an environment variable name (letters, digits, '_'; not starting with a digit)") }
                else if value.utf8.contains(0) { r.error("tool.env.\(key)", env.keyLocation(key)?.line, "a value may not contain a NUL byte") }
                else { m.environment.append((key, value)) }
            }
        } else if let e = t["env"] {
            r.error("tool.env", e.location.line, "expected a table of NAME = \"value\", found \(e.typeName)")
        }
        if let seconds = r.duration(t, "tool", "timeout") {
            if seconds <= 0 { r.error("tool.timeout", r.line(t, "timeout"), "a timeout is more than 0") } else { m.timeoutSeconds = seconds }
        }
        if let fallbacks = r.stringArray(t, "tool", "fallbacks") {
            if fallbacks.count > maxFallbacks { r.error("tool.fallbacks", r.line(t, "fallbacks"), "at most \(maxFallbacks) fallbacks") }
            for (i, f) in fallbacks.enumerated() {
                if let problem = fallbackProblem(f) { r.error("tool.fallbacks[\(i)]", r.line(t, "fallbacks"), problem) }
                else if f == m.name || f.hasPrefix(m.name + ".") { r.error("tool.fallbacks[\(i)]", r.line(t, "fallbacks"), "a tool cannot fall back to itself") }
                else if !m.fallbacks.contains(f) { m.fallbacks.append(f) }
            }
        }
        readRequirements(t, into: &m, &r)
        if let shared = r.boolean(t, "tool", "shared") { m.shared = shared }
        if let audit = r.boolean(t, "tool", "audit_arguments") { m.auditArguments = audit }
    }

    /// Requirements a tool has installed before it starts: `requires` (requirement lines, read
    /// as `cordon install` reads its arguments) or `lock` (a requirements file's name, beside
    /// the manifest in tools/), not both.
    static func readRequirements(_ t: TOMLTable, into m: inout ToolManifest, _ r: inout ConfigReader) {
        if let lines = r.stringArray(t, "tool", "requires") {
            if lines.isEmpty { r.error("tool.requires", r.line(t, "requires"), "an empty list: name the packages, or leave the key out") }
            if lines.count > maxRequires { r.error("tool.requires", r.line(t, "requires"), "at most \(maxRequires) requirements (a longer set: lock = \"FILE\")") }
            var seen: [String: Int] = [:]
            for (i, line) in lines.prefix(maxRequires).enumerated() {
                do {
                    guard let requirement = try RequirementsFile.parseLine(line, source: "tool.requires", line: i) else {
                        r.error("tool.requires[\(i)]", r.line(t, "requires"), "a blank or comment line: name a package, e.g. \"requests==2.32.3\"")
                        continue
                    }
                    if let first = seen[requirement.normalizedName] {
                        r.error("tool.requires[\(i)]", r.line(t, "requires"), "\(requirement.name) is already required by tool.requires[\(first)]: write it once")
                    }
                    seen[requirement.normalizedName] = i
                    m.requires.append(line)
                } catch {
                    r.error("tool.requires[\(i)]", r.line(t, "requires"), error.reason)
                }
            }
        }
        if let lock = r.string(t, "tool", "lock") {
            if t["requires"] != nil {
                r.error("tool.lock", r.line(t, "lock"), "requires and lock both name the packages: use one")
            } else if let problem = lockNameProblem(lock) {
                r.error("tool.lock", r.line(t, "lock"), problem)
            } else {
                m.lock = lock
            }
        }
    }

    /// The most requirement lines `requires` takes.
    public static let maxRequires = 256

    /// Why `name` cannot name a lock file: a file name in the manifest's directory (tools/),
    /// read with the same checks as the manifest, not ending in .toml (that is a manifest).
    public static func lockNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard (1...255).contains(bytes.count), bytes.allSatisfy({ isNameByte($0) || $0 == 46 }), name != ".", name != "..", !name.hasPrefix(".") else {
            return "\"\(printable(name))\" is not a file name in tools/ (letters, digits, '_', '-' and '.', e.g. \"NAME.lock\")"
        }
        if name.hasSuffix(".toml") { return "\"\(printable(name))\": a .toml file in tools/ is a manifest; name the lock e.g. \"NAME.lock\"" }
        return nil
    }

    static func checkedArgv(_ argv: [String], _ path: String, _ line: Int?, _ r: inout ConfigReader) -> [String] {
        if argv.isEmpty { r.error(path, line, "expected at least the program"); return [] }
        if argv.count > maxArgv { r.error(path, line, "at most \(maxArgv) elements"); return [] }
        if !argv[0].hasPrefix("/") { r.error("\(path)[0]", line, "\"\(printable(argv[0]))\": the program is an absolute path inside the sandbox") }
        for (i, a) in argv.enumerated() where a.utf8.contains(0) { r.error("\(path)[\(i)]", line, "an argument may not contain a NUL byte") }
        for (i, a) in argv.enumerated() where i > 0 && a.hasPrefix("{") && a.hasSuffix("}") && ToolManifest.placeholder(a) == nil {
            r.error("\(path)[\(i)]", line, "\"\(printable(a))\" looks like a placeholder but {NAME} takes letters, digits, '_' and '-'")
        }
        if path == "tool.command", let p = argv.first(where: { ToolManifest.placeholder($0) != nil }) {
            r.error(path, line, "\(p): an MCP server's command takes no call arguments (they arrive as tools/call)")
        }
        if let p = argv.first.flatMap(ToolManifest.placeholder) { r.error("\(path)[0]", line, "{\(p)}: the program itself cannot come from a call's arguments") }
        return argv
    }

    /// `input_schema`: a TOML table, or a string holding JSON (for what TOML cannot write, such
    /// as null). An object schema, as MCP requires of a tool's inputSchema.
    static func readSchema(_ t: TOMLTable, _ r: inout ConfigReader) -> JSON? {
        guard let v = t["input_schema"] else {
            r.error("tool.input_schema", t.location.line, "missing required key: the JSON Schema of the arguments (an object schema)")
            return nil
        }
        let schema: JSON
        switch v.kind {
        case .table(let table): schema = json(table)
        case .string(let text):
            guard text.utf8.count <= maxSchemaBytes else {
                r.error("tool.input_schema", v.location.line, "longer than \(maxSchemaBytes >> 10) KiB")
                return nil
            }
            do { schema = try JSON.parse(text) } catch {
                r.error("tool.input_schema", v.location.line, "not JSON: \(error)")
                return nil
            }
        default:
            r.error("tool.input_schema", v.location.line, "expected a table (or a string of JSON), found \(v.typeName)")
            return nil
        }
        guard case .object = schema, schema["type"]?.stringValue == "object" else {
            r.error("tool.input_schema", v.location.line, "an input schema is an object schema: type = \"object\"")
            return nil
        }
        return schema
    }

    /// A TOML table as JSON: members in order, dates as their text.
    public static func json(_ table: TOMLTable) -> JSON {
        .object(table.keys.compactMap { key in table[key].map { (key, json($0)) } })
    }

    static func json(_ value: TOMLValue) -> JSON {
        switch value.kind {
        case .string(let s): return .string(s)
        case .integer(let n): return .int(n)
        case .float(let f): return .double(f)
        case .boolean(let b): return .bool(b)
        case .dateTime(let text): return .string(text)
        case .array(let items): return .array(items.map(json))
        case .table(let table): return json(table)
        }
    }

    static func readAccess(_ t: TOMLTable, _ r: inout ConfigReader) -> Policy.Access {
        var access = Policy.Access()
        for (key, what) in [("users", "user"), ("groups", "group")] {
            guard let names = r.stringArray(t, "access", key) else { continue }
            for (i, name) in names.enumerated() {
                if let problem = PolicyParser.principalProblem(name, what) { r.error("access.\(key)[\(i)]", r.line(t, key), problem) }
                else if key == "users", !access.users.contains(name) { access.users.append(name) }
                else if key == "groups", !access.groups.contains(name) { access.groups.append(name) }
            }
        }
        return access
    }

    static func isEnvironmentName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, !(first >= 48 && first <= 57), bytes.count <= 256 else { return false }
        return bytes.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }
}
