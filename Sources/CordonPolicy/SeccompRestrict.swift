import FoundationEssentials

extension SeccompProfile {
    /// A copy of the profile (given as its JSON bytes) whose permitting rules (ALLOW, LOG) name
    /// only the syscalls in `keep`: what `cordon run --learn` writes. Refusing rules, the default
    /// action, argument conditions and architectures are kept as they are, so the result never
    /// permits anything the original does not. Returns the JSON text and the syscalls in `keep`
    /// that no permitting rule of the original names (they stay refused).
    public static func restricted(_ data: [UInt8], file: String, to keep: Set<String>) throws(ParseError) -> (json: String, notPermitted: [String]) {
        _ = try parse(data, file: file)  // validates everything below
        guard case .object(var root)? = try? JSONDecoder().decode(JSONValue.self, from: Data(data)),
              case .array(let rules)? = root["syscalls"] else {
            throw ParseError(file: file, path: "", message: "expected a JSON object with syscalls")
        }
        var kept: [JSONValue] = []
        var permitted = Set<String>()
        for case .object(var rule) in rules {
            let names = rule["names"]?.stringArray ?? (rule["name"].flatMap { if case .string(let s) = $0 { [s] } else { nil } } ?? [])
            rule["name"] = nil
            guard case .string(let action)? = rule["action"], action == "SCMP_ACT_ALLOW" || action == "SCMP_ACT_LOG" else {
                rule["names"] = .array(names.map { .string($0) })
                kept.append(.object(rule))
                continue
            }
            let remaining = names.filter { keep.contains($0) }
            permitted.formUnion(remaining)
            guard !remaining.isEmpty else { continue }
            rule["names"] = .array(remaining.map { .string($0) })
            kept.append(.object(rule))
        }
        root["syscalls"] = .array(kept)
        return (JSONValue.object(root).json(indent: ""), keep.subtracting(permitted).sorted())
    }
}

extension JSONValue {
    /// Pretty JSON with sorted keys; arrays of scalars stay on one line.
    func json(indent: String) -> String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .unsigned(let u): return String(u)
        case .signed(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return quote(s)
        case .array(let items):
            if items.allSatisfy({ if case .array = $0 { false } else if case .object = $0 { false } else { true } }) {
                return "[" + items.map { $0.json(indent: indent) }.joined(separator: ", ") + "]"
            }
            let inner = indent + "  "
            return "[\n" + items.map { inner + $0.json(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let object):
            if object.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + object.keys.sorted().map { "\(inner)\(quote($0)): \(object[$0]!.json(indent: inner))" }.joined(separator: ",\n") + "\n\(indent)}"
        }
    }
}
