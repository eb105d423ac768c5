import CordonPolicy
import CordonResilience
import CordonTools

/// TOML → `ModelCatalog`, collecting every problem (file, key path, line, "did you mean") with
/// the policy language's reader. Nothing here touches the file system or the network: whether a
/// policy exists or a key file can be read is the daemon's and `cordon model check`'s to say.
public enum ModelCatalogParser {
    static let topLevel: [String: [String]] = [
        "provider": [],  // an array of tables: its keys are checked per element
        "model": [],
        "selector": ["success", "latency", "cost", "latency_reference", "cost_reference", "discount", "change_threshold", "exploration"],
        "breaker": ["failures", "failure_ratio", "min_calls", "window", "cooldown", "max_cooldown"],
        "local": ["max_loaded"],
        "endpoint": ["listen", "tokens"],
    ]
    static let providerKeys = ["name", "kind", "base_url", "api_key_file", "policy", "timeout", "idle_timeout", "max_concurrency",
                               "command", "model_file", "server_policy", "memory", "keep_alive", "preload", "start_timeout", "service"]
    /// Keys of `[[provider]]` only a local server has.
    static let localOnly = ["command", "model_file", "server_policy", "memory", "keep_alive", "preload", "start_timeout", "service"]
    static let modelKeys = ["name", "provider", "upstream", "context_length", "tools", "price_input", "price_output", "task_types",
                            "fallbacks", "access", "max_output_tokens", "max_tokens_field", "breaker"]
    /// `[provider.service]` of a local server: how the pool keeps it (one instance, shared).
    static let serviceKeys = ["health_interval", "max_restarts", "restart_window", "backoff", "backoff_max"]

    /// Limits on what one catalogue may declare (guards, not design limits).
    public static let maxProviders = 64
    public static let maxModels = 256
    public static let maxNameLength = 64
    public static let maxTaskTypes = 16
    public static let maxFallbacks = 8
    /// Where a local server listens inside its own network namespace, unless base_url says.
    public static let localDefaultURL = ModelCatalog.BaseURL(scheme: "http", host: "127.0.0.1", port: 8080, path: "/v1")
    public static let anthropicDefaultURL = ModelCatalog.BaseURL(scheme: "https", host: "api.anthropic.com", port: 443, path: "/v1")

    /// Why `name` cannot name a provider or a model, or nil. Letters, digits and `_ - . :`; a
    /// model may not be called `auto` or `auto:…` (those ask the selector).
    public static func nameProblem(_ name: String, _ what: String) -> String? {
        let bytes = Array(name.utf8)
        guard (1...maxNameLength).contains(bytes.count) else { return "a \(what) name has 1 to \(maxNameLength) characters" }
        guard bytes.allSatisfy({ isNameByte($0) || (what == "model" && ($0 == 46 || $0 == 58)) }),
              let first = bytes.first, isNameByte(first) else {
            let allowed = what == "model" ? "letters, digits, '_', '-', '.' and ':', starting with a letter or digit" : "letters, digits, '_' and '-'"
            return "\"\(printable(name))\" is not a \(what) name (\(allowed))"
        }
        if what == "model" && (name == "auto" || name.hasPrefix("auto:")) {
            return "\"\(printable(name))\" is reserved: a client asks the selector with auto or auto:TASK"
        }
        return nil
    }

    /// Why `name` cannot be a task type, or nil.
    public static func taskTypeProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard (1...32).contains(bytes.count), bytes.allSatisfy(isNameByte) else {
            return "\"\(printable(name))\" is not a task type (1 to 32 letters, digits, '_' and '-')"
        }
        return nil
    }

    static func isNameByte(_ c: UInt8) -> Bool { ConfigReader.isNameByte(c) }

    static func printable(_ s: String) -> String { ConfigReader.printable(s) }

    /// Parses `text`, read from `source`.
    public static func parse(text: String, source: String) throws(PolicyError) -> ModelCatalog {
        var reader = ConfigReader(file: source)
        guard let root = reader.parse(text) else { throw PolicyError(diagnostics: reader.diagnostics) }
        var catalog = ModelCatalog(source: source)
        read(root, into: &catalog, &reader)
        guard reader.diagnostics.isEmpty else { throw PolicyError(diagnostics: reader.diagnostics) }
        return catalog
    }

    static func read(_ root: TOMLTable, into c: inout ModelCatalog, _ r: inout ConfigReader) {
        for key in root.keys {
            guard let known = topLevel[key] else {
                r.error(key, root.keyLocation(key)?.line, "unknown table" + PolicyParser.suggestion(for: key, among: topLevel.keys.sorted()))
                continue
            }
            guard let value = root[key] else { continue }
            if key == "provider" || key == "model" {
                guard case .array = value.kind else {
                    r.error(key, value.location.line, "expected [[\(key)]] tables, found \(value.typeName)")
                    continue
                }
            } else {
                guard case .table(let table) = value.kind else {
                    r.error(key, value.location.line, "expected a table, found \(value.typeName)")
                    continue
                }
                r.rejectUnknown(table, key, known: known)
            }
        }
        // The catalogue-wide tables first: a model's own breaker starts from [breaker].
        if case .table(let t)? = root["selector"]?.kind { readSelector(t, &c.selector, &r) }
        if case .table(let t)? = root["breaker"]?.kind { r.readBreaker(t, into: &c.breaker) }
        if case .table(let t)? = root["local"]?.kind, let n = r.integer(t, "local", "max_loaded", range: 1...64) { c.maxLoaded = Int(n) }
        if case .table(let t)? = root["endpoint"]?.kind { c.endpoint = readEndpoint(t, &r) }
        for (i, t) in tables(root, "provider", &r).enumerated() {
            if i == maxProviders { r.error("provider", t.location.line, "at most \(maxProviders) providers"); break }
            if let p = readProvider(t, "provider[\(i)]", &c, &r) {
                if c.provider(named: p.name) != nil {
                    r.error("provider[\(i)].name", r.line(t, "name"), "a second provider named \"\(p.name)\"")
                } else { c.providers.append(p) }
            }
        }
        for (i, t) in tables(root, "model", &r).enumerated() {
            if i == maxModels { r.error("model", t.location.line, "at most \(maxModels) models"); break }
            if let m = readModel(t, "model[\(i)]", &c, &r) {
                if c.model(named: m.name) != nil {
                    r.error("model[\(i)].name", r.line(t, "name"), "a second model named \"\(m.name)\"")
                } else { c.models.append(m) }
            }
        }
        // Preloaded servers are kept loaded: more of them than may be loaded at once would evict
        // one another without end.
        let preloaded = c.providers.filter { $0.server?.preload == true }.map(\.name)
        if preloaded.count > c.maxLoaded {
            var line: Int?
            if case .table(let t)? = root["local"]?.kind { line = r.line(t, "max_loaded") }
            r.error("local.max_loaded", line, "\(preloaded.count) local servers preload (\(preloaded.joined(separator: ", "))) but at most \(c.maxLoaded) may be loaded at once: raise [local] max_loaded or preload fewer")
        }
        if root["model"] == nil && root["provider"] != nil {
            r.error("model", nil, "no [[model]]: clients name models, not providers (add name, provider, upstream)")
        }
        // Fallbacks name models defined anywhere in the file.
        for (i, m) in c.models.enumerated() {
            for f in m.fallbacks where c.model(named: f) == nil {
                r.error("model[\(i)].fallbacks", c.keyLines["model[\(i)].fallbacks"],
                        "\"\(printable(f))\" is no model of this file" + PolicyParser.suggestion(for: f, among: c.models.map(\.name)))
            }
        }
    }

    /// The tables of the array `key` (`[[key]]`), each element checked to be a table.
    static func tables(_ root: TOMLTable, _ key: String, _ r: inout ConfigReader) -> [TOMLTable] {
        guard case .array(let items)? = root[key]?.kind else { return [] }
        var out: [TOMLTable] = []
        for (i, item) in items.enumerated() {
            if case .table(let t) = item.kind { out.append(t) }
            else { r.error("\(key)[\(i)]", item.location.line, "expected a table, found \(item.typeName)") }
        }
        return out
    }

    static func readProvider(_ t: TOMLTable, _ path: String, _ c: inout ModelCatalog, _ r: inout ConfigReader) -> ModelCatalog.Provider? {
        r.rejectUnknown(t, path, known: providerKeys)
        var name: String?
        if let n = r.string(t, path, "name", required: true) {
            if let problem = nameProblem(n, "provider") { r.error("\(path).name", r.line(t, "name"), problem) } else { name = n }
        }
        var kind: ModelCatalog.Provider.Kind?
        if let k = r.string(t, path, "kind", required: true) {
            kind = ModelCatalog.Provider.Kind(rawValue: k)
            if kind == nil {
                r.error("\(path).kind", r.line(t, "kind"), "unknown kind \"\(printable(k))\" (expected: "
                        + ModelCatalog.Provider.Kind.allCases.map(\.rawValue).joined(separator: ", ") + ")"
                        + PolicyParser.suggestion(for: k, among: ModelCatalog.Provider.Kind.allCases.map(\.rawValue)))
            }
        }
        guard let name, let kind else { return nil }
        if kind != .local {
            for key in localOnly where t[key] != nil {
                r.error("\(path).\(key)", r.line(t, key), "\(key) is for kind = \"local\" (a server cordond runs); this provider is kind = \"\(kind.rawValue)\"")
            }
        }
        var url: ModelCatalog.BaseURL?
        if let text = r.string(t, path, "base_url") {
            switch ServiceURL.parse(text) {
            case .success(let u): url = u
            case .failure(let why): r.error("\(path).base_url", r.line(t, "base_url"), "\"\(printable(text))\": \(why.message)")
            }
        } else if t["base_url"] == nil {
            switch kind {
            case .local: url = localDefaultURL
            case .anthropic: url = anthropicDefaultURL
            case .openai, .ollama: r.error("\(path).base_url", t.location.line, "missing required key: where calls go, e.g. \"http://127.0.0.1:8000/v1\"")
            }
        }
        // IPv4 only: its worker reaches it through the sandbox's egress, which carries IPv4 alone.
        if kind == .local, let u = url, u.scheme != "http" || !isLoopback(u.host) || u.host.contains(":") {
            r.error("\(path).base_url", r.line(t, "base_url"), "a local server listens on IPv4 loopback inside its own sandbox: http://127.0.0.1:PORT/v1")
            url = nil
        } else if kind == .local, let u = url, u.port < 1024 {
            r.error("\(path).base_url", r.line(t, "base_url"), "port \(u.port): a local server runs unprivileged and cannot listen below 1024 (http://127.0.0.1:8080/v1)")
            url = nil
        }
        guard let url else { return nil }
        var p = ModelCatalog.Provider(name: name, kind: kind, baseURL: url)
        if let f = r.string(t, path, "api_key_file") {
            if !f.hasPrefix("/") || f.utf8.contains(0) || r.hasControl(f) {
                r.error("\(path).api_key_file", r.line(t, "api_key_file"), "\"\(printable(f))\": an absolute path to a root-only file whose first line is the key")
            } else if kind == .local {
                r.error("\(path).api_key_file", r.line(t, "api_key_file"), "a local server takes no key (cordond reaches it in its own sandbox)")
            } else { p.apiKeyFile = f }
        }
        if let policy = r.string(t, path, "policy") {
            if policy.isEmpty || r.hasControl(policy) { r.error("\(path).policy", r.line(t, "policy"), "expected a policy name or path") }
            else { p.policy = policy; c.keyLines["\(path).policy"] = r.line(t, "policy") }
        }
        r.positive(t, path, "timeout", &p.timeoutSeconds)
        r.positive(t, path, "idle_timeout", &p.idleSeconds)
        if let n = r.integer(t, path, "max_concurrency", range: 1...1024) { p.maxConcurrency = Int(n) }
        if kind == .local {
            guard let server = readLocalServer(t, path, &c, &r) else { return nil }
            p.server = server
        }
        return p
    }

    static func readLocalServer(_ t: TOMLTable, _ path: String, _ c: inout ModelCatalog, _ r: inout ConfigReader) -> ModelCatalog.LocalServer? {
        var command: [String] = []
        if let argv = r.stringArray(t, path, "command") {
            if argv.isEmpty || argv.count > 256 { r.error("\(path).command", r.line(t, "command"), "expected the program and its arguments (at most 256)") }
            else if !argv[0].hasPrefix("/") { r.error("\(path).command[0]", r.line(t, "command"), "\"\(printable(argv[0]))\": the program is an absolute path inside the sandbox") }
            else if let i = argv.firstIndex(where: { $0.utf8.contains(0) }) { r.error("\(path).command[\(i)]", r.line(t, "command"), "an argument may not contain a NUL byte") }
            else {
                for (i, a) in argv.enumerated() where a.hasPrefix("{") && a.hasSuffix("}") && !["{model_file}", "{port}"].contains(a) {
                    r.error("\(path).command[\(i)]", r.line(t, "command"), "\(printable(a)): the placeholders are {model_file} and {port}")
                }
                command = argv
            }
        } else if t["command"] == nil {
            r.error("\(path).command", t.location.line, "missing required key: the server's command line, e.g. [\"/opt/cordon/llama/bin/python3\", \"-m\", \"llama_cpp.server\", \"--model\", \"{model_file}\", \"--port\", \"{port}\"]")
        }
        var modelFile = ""
        if let f = r.string(t, path, "model_file", required: true) {
            let parts = f.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            if !f.hasPrefix("/") || f.utf8.contains(0) || r.hasControl(f) || parts.isEmpty || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
                r.error("\(path).model_file", r.line(t, "model_file"), "\"\(printable(f))\": an absolute path to the model (bound read-only into the server's sandbox)")
            } else { modelFile = f }
        }
        guard !command.isEmpty, !modelFile.isEmpty else { return nil }
        var s = ModelCatalog.LocalServer(command: command, modelFile: modelFile)
        if let policy = r.string(t, path, "server_policy") {
            if policy.isEmpty || r.hasControl(policy) { r.error("\(path).server_policy", r.line(t, "server_policy"), "expected a policy name or path") }
            else { s.policy = policy; c.keyLines["\(path).server_policy"] = r.line(t, "server_policy") }
        }
        if let bytes = r.size(t, path, "memory", range: (16 << 20)...(1 << 40)) { s.memoryBytes = bytes }
        r.positive(t, path, "keep_alive", &s.keepAliveSeconds)
        r.positive(t, path, "start_timeout", &s.startTimeoutSeconds)
        if let preload = r.boolean(t, path, "preload") { s.preload = preload }
        // One instance, shared by every caller: the pool's settings for it follow from the keys.
        s.service.minInstances = s.preload ? 1 : 0
        s.service.maxInstances = 1
        s.service.concurrency = 1
        s.service.idleTimeoutSeconds = s.keepAliveSeconds
        s.service.startTimeoutSeconds = s.startTimeoutSeconds
        if let v = t["service"] {
            if case .table(let st) = v.kind {
                r.rejectUnknown(st, "\(path).service", known: serviceKeys)
                r.readService(st, into: &s.service, at: "\(path).service")
            } else { r.error("\(path).service", v.location.line, "expected a table, found \(v.typeName)") }
        }
        return s
    }

    static func readModel(_ t: TOMLTable, _ path: String, _ c: inout ModelCatalog, _ r: inout ConfigReader) -> ModelCatalog.Model? {
        r.rejectUnknown(t, path, known: modelKeys)
        var name: String?
        if let n = r.string(t, path, "name", required: true) {
            if let problem = nameProblem(n, "model") { r.error("\(path).name", r.line(t, "name"), problem) } else { name = n }
        }
        var provider: String?
        if let p = r.string(t, path, "provider", required: true) {
            if c.provider(named: p) == nil {
                r.error("\(path).provider", r.line(t, "provider"), "no provider named \"\(printable(p))\" in this file"
                        + PolicyParser.suggestion(for: p, among: c.providers.map(\.name)))
            } else { provider = p }
        }
        guard let name, let provider else { return nil }
        var upstream = name
        if let u = r.string(t, path, "upstream") {
            if u.isEmpty || u.utf8.count > 256 || r.hasControl(u) { r.error("\(path).upstream", r.line(t, "upstream"), "the provider's id of the model: 1 to 256 bytes, no control characters") }
            else { upstream = u }
        }
        var m = ModelCatalog.Model(name: name, provider: provider, upstream: upstream)
        if let n = r.integer(t, path, "context_length", range: 256...10_000_000) { m.contextLength = Int(n) }
        if let n = r.integer(t, path, "max_output_tokens", range: 1...1_000_000) { m.maxOutputTokens = Int(n) }
        if m.maxOutputTokens >= m.contextLength {
            r.error("\(path).max_output_tokens", r.line(t, "max_output_tokens") ?? r.line(t, "context_length"),
                    "max_output_tokens (\(m.maxOutputTokens)) leaves no room for a prompt in context_length (\(m.contextLength))")
        }
        if let field = r.string(t, path, "max_tokens_field") {
            let kind = c.provider(named: provider)?.kind
            if let f = OpenAIWire.MaxTokensField(rawValue: field), kind == .openai || kind == .ollama || f == .maxTokens {
                m.maxTokensField = f
            } else if OpenAIWire.MaxTokensField(rawValue: field) != nil {
                r.error("\(path).max_tokens_field", r.line(t, "max_tokens_field"), kind == .local
                        ? "llama.cpp's server reads max_tokens only (it ignores max_completion_tokens, and would answer to the end of its context)"
                        : "the Messages API takes max_tokens only")
            } else {
                r.error("\(path).max_tokens_field", r.line(t, "max_tokens_field"), "\"\(printable(field))\": expected max_tokens or max_completion_tokens")
            }
        }
        if let tools = r.boolean(t, path, "tools") { m.tools = tools }
        for (key, keyPath) in [("price_input", \ModelCatalog.Model.priceInput), ("price_output", \ModelCatalog.Model.priceOutput)] {
            if let price = number(t, path, key, &r) {
                if price < 0 || price > 1_000_000 { r.error("\(path).\(key)", r.line(t, key), "a price per 1000 tokens is 0 or more (at most 1000000)") }
                else { m[keyPath: keyPath] = price }
            }
        }
        if let types = r.stringArray(t, path, "task_types") {
            if types.isEmpty || types.count > maxTaskTypes { r.error("\(path).task_types", r.line(t, "task_types"), "1 to \(maxTaskTypes) task types") }
            else {
                var kept: [String] = []
                for (i, type) in types.enumerated() {
                    if let problem = taskTypeProblem(type) { r.error("\(path).task_types[\(i)]", r.line(t, "task_types"), problem) }
                    else if !kept.contains(type) { kept.append(type) }
                }
                if !kept.isEmpty { m.taskTypes = kept }
            }
        }
        if let fallbacks = r.stringArray(t, path, "fallbacks") {
            c.keyLines["\(path).fallbacks"] = r.line(t, "fallbacks")
            if fallbacks.count > maxFallbacks { r.error("\(path).fallbacks", r.line(t, "fallbacks"), "at most \(maxFallbacks) fallbacks") }
            for (i, f) in fallbacks.enumerated() {
                if f == name { r.error("\(path).fallbacks[\(i)]", r.line(t, "fallbacks"), "a model cannot fall back to itself") }
                else if !m.fallbacks.contains(f) { m.fallbacks.append(f) }
            }
        }
        if let v = t["access"] {
            if case .table(let a) = v.kind {
                r.rejectUnknown(a, "\(path).access", known: ["users", "groups"])
                var access = Policy.Access()
                for (key, what) in [("users", "user"), ("groups", "group")] {
                    guard let names = r.stringArray(a, "\(path).access", key) else { continue }
                    for (i, n) in names.enumerated() {
                        if let problem = PolicyParser.principalProblem(n, what) { r.error("\(path).access.\(key)[\(i)]", r.line(a, key), problem) }
                        else if key == "users", !access.users.contains(n) { access.users.append(n) }
                        else if key == "groups", !access.groups.contains(n) { access.groups.append(n) }
                    }
                }
                m.access = access
            } else { r.error("\(path).access", v.location.line, "expected a table { users = [...], groups = [...] }, found \(v.typeName)") }
        }
        if let v = t["breaker"] {
            if case .table(let b) = v.kind {
                r.rejectUnknown(b, "\(path).breaker", known: topLevel["breaker"]!)
                var settings = c.breaker
                r.readBreaker(b, into: &settings, at: "\(path).breaker")
                m.breaker = settings
            } else { r.error("\(path).breaker", v.location.line, "expected a table, found \(v.typeName)") }
        }
        return m
    }

    static func readSelector(_ t: TOMLTable, _ s: inout ModelCatalog.SelectorSettings, _ r: inout ConfigReader) {
        var weights: [Double] = []
        for (key, keyPath) in [("success", \ModelCatalog.SelectorSettings.successWeight), ("latency", \ModelCatalog.SelectorSettings.latencyWeight),
                               ("cost", \ModelCatalog.SelectorSettings.costWeight)] {
            if let w = number(t, "selector", key, &r) {
                if w < 0 || w > 1 { r.error("selector.\(key)", r.line(t, key), "a weight is from 0 to 1") } else { s[keyPath: keyPath] = w }
            }
            weights.append(s[keyPath: keyPath])
        }
        let sum = weights.reduce(0, +)
        if abs(sum - 1) > 1e-6 && ["success", "latency", "cost"].contains(where: { t[$0] != nil }) {
            let line = ["success", "latency", "cost"].compactMap { r.line(t, $0) }.first
            r.error("selector", line, "the weights success, latency and cost sum to 1 (these sum to \(sum))")
        }
        r.positive(t, "selector", "latency_reference", &s.latencyReferenceSeconds)
        if let c = number(t, "selector", "cost_reference", &r) {
            if c <= 0 || !c.isFinite { r.error("selector.cost_reference", r.line(t, "cost_reference"), "a cost above 0") } else { s.costReference = c }
        }
        if let d = number(t, "selector", "discount", &r) {
            if d <= 0 || d > 1 { r.error("selector.discount", r.line(t, "discount"), "above 0 and at most 1 (1: never forget; 0.98: about 50 calls of memory)") }
            else { s.discount = d }
        }
        if let h = number(t, "selector", "change_threshold", &r) {
            if !(h == 0 || (4...1000).contains(h)) {
                r.error("selector.change_threshold", r.line(t, "change_threshold"),
                        "0 (no change detection) or from 4 to 1000 (7: the default; below 4 one call could tip it)")
            } else { s.changeThreshold = h }
        }
        if let e = number(t, "selector", "exploration", &r) {
            if e < 0 || e > 0.5 { r.error("selector.exploration", r.line(t, "exploration"), "from 0 to 0.5") } else { s.exploration = e }
        }
    }

    static func readEndpoint(_ t: TOMLTable, _ r: inout ConfigReader) -> ModelCatalog.Endpoint? {
        var host: String?, port: Int?
        if let listen = r.string(t, "endpoint", "listen", required: true) {
            if let (h, p) = splitHostPort(listen), isLoopback(h), (1...65535).contains(p) { (host, port) = (h, p) }
            else {
                r.error("endpoint.listen", r.line(t, "listen"), "\"\(printable(listen))\": a loopback address and port, \"127.0.0.1:8089\" or \"[::1]:8089\" (the endpoint never listens beyond this machine)")
            }
        }
        var tokens: String?
        if let f = r.string(t, "endpoint", "tokens", required: true) {
            if !f.hasPrefix("/") || f.utf8.contains(0) || r.hasControl(f) {
                r.error("endpoint.tokens", r.line(t, "tokens"), "\"\(printable(f))\": an absolute path to a root-owned file of lines \"TOKEN USER\"")
            } else { tokens = f }
        }
        guard let host, let port, let tokens else { return nil }
        return ModelCatalog.Endpoint(host: host, port: port, tokensFile: tokens)
    }

    static func number(_ t: TOMLTable, _ table: String, _ key: String, _ r: inout ConfigReader) -> Double? {
        guard let v = t[key] else { return nil }
        switch v.kind {
        case .integer(let n): return Double(n)
        case .float(let f) where f.isFinite: return f
        default:
            r.error("\(table).\(key)", v.location.line, "expected a number, found \(r.describe(v))")
            return nil
        }
    }

    static func splitHostPort(_ text: String) -> (String, Int)? {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()) else { return nil }
            return (host, port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = Int(parts[1]) else { return nil }
        return (String(parts[0]), port)
    }

    /// 127.0.0.0/8 written as four decimal numbers, or ::1.
    static func isLoopback(_ host: String) -> Bool {
        if host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let first = Int(parts[0]), first == 127 else { return false }
        return parts.allSatisfy { (Int($0) ?? 256) <= 255 }
    }
}
