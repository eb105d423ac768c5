import CordonJSON

extension SeccompProfile {
    /// A copy of the profile (given as its JSON bytes) whose permitting rules (ALLOW, LOG) name
    /// only the syscalls in `keep`: what `cordon run --learn` writes. Refusing rules, the default
    /// action, argument conditions and architectures are kept as they are, so the result never
    /// permits anything the original does not. Returns the JSON text and the syscalls in `keep`
    /// that no permitting rule of the original names (they stay refused).
    ///
    /// The text has sorted keys, two-space indents and arrays of scalars on one line. (`parse`
    /// refuses repeated keys where it reads; in the parts it does not read, such as `archMap`,
    /// a repeated key is written once, with its last value.)
    public static func restricted(_ data: [UInt8], file: String, to keep: Set<String>) throws(ParseError) -> (json: String, notPermitted: [String]) {
        _ = try parse(data, file: file)  // validates everything below
        guard let document = try? JSON.parse(data, options: jsonOptions).uniquingKeys(), case .object(var root) = document,
              case .array(let rules)? = document["syscalls"] else {
            throw ParseError(file: file, path: "", message: "expected a JSON object with syscalls")
        }
        var kept: [JSON] = []
        var permitted = Set<String>()
        for rule in rules {
            guard case .object(var members) = rule else { continue }
            let names = rule["names"]?.stringArrayValue ?? (rule["name"]?.stringValue.map { [$0] } ?? [])
            members.removeAll { $0.0 == "name" }
            guard let action = rule["action"]?.stringValue, action == "SCMP_ACT_ALLOW" || action == "SCMP_ACT_LOG" else {
                set(&members, "names", .array(names.map(JSON.string)))
                kept.append(.object(members))
                continue
            }
            let remaining = names.filter { keep.contains($0) }
            permitted.formUnion(remaining)
            guard !remaining.isEmpty else { continue }
            set(&members, "names", .array(remaining.map(JSON.string)))
            kept.append(.object(members))
        }
        set(&root, "syscalls", .array(kept))
        let text = JSON.object(root).integersWrittenAsIntegers().text(JSON.Format(indent: "  ", sortedKeys: true, scalarArraysOnOneLine: true))
        return (text, keep.subtracting(permitted).sorted())
    }

    /// Replaces the member `key` (the members are unique) or adds it.
    private static func set(_ members: inout [(String, JSON)], _ key: String, _ value: JSON) {
        if let i = members.firstIndex(where: { $0.0 == key }) { members[i].1 = value } else { members.append((key, value)) }
    }
}

private extension JSON {
    /// Every number with an integer value written as an integer (`1.0`, `1e19`), as profiles
    /// were written back before this codec, when Foundation's decoder read them.
    func integersWrittenAsIntegers() -> JSON {
        switch self {
        case .double(let d):
            if let n = Int64(exactly: d) { return .int(n) }
            if let n = UInt64(exactly: d) { return .uint(n) }
            return self
        case .array(let items): return .array(items.map { $0.integersWrittenAsIntegers() })
        case .object(let members): return .object(members.map { ($0.0, $0.1.integersWrittenAsIntegers()) })
        default: return self
        }
    }
}
