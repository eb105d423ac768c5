import CordonJSON

/// The JSON Schema (draft-07) of the policy format, generated from the same key lists and rules
/// the parser uses, so editors can validate policies (TOML converted to JSON, as Even Better TOML
/// and taplo do). `cordon policy schema` prints it; docs/policy.schema.json is the checked-in
/// copy, and the tests hold both to agree with the parser on every fixture.
///
/// What a schema cannot say stays with the parser: a path mounted twice or both mounted and
/// hidden, an allow list that contradicts the network mode, a dotted-quad IPv4 address with an
/// octet above 255, an address block with host bits set, a port range running backwards, a host
/// name over 253 bytes, a size or duration written as a string (`"2000T"`, `"400d"`) outside
/// its key's range (`PolicyRange`; a number is held to it here too), a seccomp profile that
/// does not exist, and `extends` chains.
public enum PolicySchema {
    /// An absolute, normalized path: no '.', '..', '//' or trailing '/' (the root itself is fine).
    static let path: JSON = .object([
        ("type", .string("string")),
        ("pattern", .string(#"^(/|(/(?!\.\.?(/|$))[^/\u0000]+)+)$"#)),
        ("maxLength", .int(4095)),
    ])
    static func size(_ range: ClosedRange<UInt64>) -> JSON { .object([("oneOf", .array([
        .object([("type", .string("integer")), ("minimum", .int(Int64(range.lowerBound))), ("maximum", .int(Int64(range.upperBound)))]),
        .object([("type", .string("string")),
                 ("pattern", .string(#"^[ \t]*[0-9]+(\.[0-9]+)?[ \t]*(KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T|k|m|g|t|B)?[ \t]*$"#))]),
    ]))]) }
    static let duration: JSON = .object([("oneOf", .array([
        .object([("type", .string("integer")), ("minimum", .int(1)), ("maximum", .int(Int64(PolicyRange.duration.upperBound)))]),
        .object([("type", .string("number")), ("not", .object([("type", .string("integer"))])),
                 ("minimum", .double(PolicyRange.duration.lowerBound)), ("maximum", .int(Int64(PolicyRange.duration.upperBound)))]),
        .object([("type", .string("string")),
                 ("pattern", .string(#"^[ \t]*([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)[ \t]*(ms|us|s|m|h|d)?[ \t]*$"#))]),
    ]))])
    /// `install.min_release_age`: like `duration`, but 0 (no age required) is a value.
    static let age: JSON = .object([("oneOf", .array([
        .object([("type", .string("integer")), ("minimum", .int(0)), ("maximum", .int(Int64(PolicyRange.releaseAge.upperBound)))]),
        .object([("type", .string("number")), ("not", .object([("type", .string("integer"))])),
                 ("minimum", .int(0)), ("maximum", .int(Int64(PolicyRange.releaseAge.upperBound)))]),
        .object([("type", .string("string")), ("pattern", .string(#"^[ \t]*[0-9]+(\.[0-9]+)?[ \t]*(ms|us|s|m|h|d)?[ \t]*$"#))]),
    ]))])
    /// A Python project name as PEP 508 spells one.
    static let packageName = #"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])"#
    /// One host and one port: a name or an IPv4 address (the parser refuses more).
    static let hostPort: JSON = .object([("type", .string("string")), ("pattern", .string(
        #"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?))*:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"#))])
    static func integer(_ range: ClosedRange<Int64>) -> JSON {
        .object([("type", .string("integer")), ("minimum", .int(Int64(range.lowerBound))), ("maximum", .int(Int64(range.upperBound)))])
    }
    static func strings(_ item: JSON) -> JSON { .object([("type", .string("array")), ("items", item)]) }
    static func enumeration(_ values: [String]) -> JSON { .object([("type", .string("string")), ("enum", .array(values.map(JSON.string)))]) }
    static func table(_ properties: [(String, JSON)], required: [String] = []) -> JSON {
        var members: [(String, JSON)] = [("type", .string("object")), ("additionalProperties", .bool(false)), ("properties", .object(properties))]
        if !required.isEmpty { members.append(("required", .array(required.map(JSON.string)))) }
        return .object(members)
    }
    static func pathOr(_ entry: JSON) -> JSON { strings(.object([("oneOf", .array([path, entry]))])) }

    /// A capability name, any case, with or without the CAP_ prefix.
    static var capability: JSON {
        func anyCase(_ s: Substring) -> String {
            s.map { c in c.isLetter ? "[\(c.lowercased())\(c.uppercased())]" : String(c) }.joined()
        }
        let names = Capability.names.map { anyCase($0.dropFirst(4)) }.joined(separator: "|")
        return .object([("type", .string("string")), ("pattern", .string("^(\(anyCase("CAP_")))?(\(names))$"))])
    }

    /// A user or group: a name as useradd accepts it, or a numeric id (the parser also refuses
    /// ten-digit ids from 4294967295 up).
    static let principal: JSON = .object([("type", .string("string")),
                                          ("pattern", .string(#"^([a-z_]([a-z0-9_-]{0,31}|[a-z0-9_-]{0,30}\$)|[0-9]{1,10})$"#))])

    /// Each table's keys, in the parser's order (`PolicyParser.schema`), with their types.
    static var tables: [String: [String: JSON]] {
        let bind = table([("path", path), ("source", path), ("optional", .object([("type", .string("boolean"))]))], required: ["path"])
        let writableBind = table([("path", path), ("source", path), ("optional", .object([("type", .string("boolean"))])),
                                  ("owner", .object([("type", .string("string")), ("pattern", .string(#"^(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$"#))]))],
                                 required: ["path"])
        let tmpfs = table([("path", path), ("size", size(PolicyRange.mountSize)), ("mode", .object([("type", .string("string")), ("pattern", .string("^[0-7]{1,4}$"))]))],
                          required: ["path"])
        return [
            "policy": [
                "name": .object([("type", .string("string")), ("pattern", .string("^[^/]+$"))]),
                "description": .object([("type", .string("string"))]),
                "extends": strings(.object([("type", .string("string")), ("minLength", .int(1))])),
            ],
            "filesystem": [
                "read_only": pathOr(bind), "read_write": pathOr(writableBind), "tmpfs": pathOr(tmpfs),
                "workdir": path, "workdir_size": size(PolicyRange.mountSize), "hide": strings(path),
                "image": .object([("type", .string("string")), ("pattern", .string("^/[^:]*[^:/](:.+)?$"))]),
                "image_fail_on": .object([("enum", .array(Policy.ImageGate.allCases.map { .string($0.rawValue) }))]),
            ],
            "process": [
                "user": integer(PolicyRange.id), "group": integer(PolicyRange.id),
                "hostname": .object([("type", .string("string")), ("minLength", .int(1)), ("maxLength", .int(64))]),
                "env": .object([("type", .string("object")), ("propertyNames", .object([("pattern", .string("^[^=\\u0000]+$"))])),
                                ("additionalProperties", .object([("type", .string("string")), ("pattern", .string("^[^\\u0000]*$"))]))]),
                "pass_env": strings(.object([("type", .string("string"))])),
                "cwd": path,
            ],
            "limits": [
                "memory": size(PolicyRange.memory), "pids": integer(PolicyRange.pids),
                "cpu": .object([("type", .string("number")), ("minimum", .double(PolicyRange.cpu.lowerBound)),
                                ("maximum", .int(Int64(PolicyRange.cpu.upperBound)))]),
                "wall_time": duration, "cpu_time": duration, "open_files": integer(PolicyRange.openFiles),
                "file_size": size(PolicyRange.bytes), "output": size(PolicyRange.bytes),
            ],
            "seccomp": [
                "profile": .object([("type", .string("string")), ("minLength", .int(1))]),
                "action": enumeration(Policy.SeccompViolationAction.allCases.map(\.rawValue)),
            ],
            "access": ["users": strings(principal), "groups": strings(principal)],
            "workspace": ["allow": strings(path)],
            "daemon": ["warm": integer(PolicyRange.warm)],
            "install": [
                "index": .object([("type", .string("string")), ("pattern", .string(#"^https?://[!-~]+$"#)), ("not", .object([("pattern", .string(#"[?#@\\]"#))]))]),
                "index_hosts": strings(hostPort),
                "min_release_age": age,
                "require_hashes": .object([("type", .string("boolean"))]),
                "deny_vulnerability_severity": enumeration(Policy.ImageGate.allCases.map(\.rawValue)),
                "deny_finding_severity": enumeration(Policy.ImageGate.allCases.map(\.rawValue)),
                "allow": strings(.object([("type", .string("string")), ("pattern", .string("^\(packageName)$"))])),
                "deny": strings(.object([("type", .string("string")), ("pattern", .string("^\(packageName)$"))])),
                "typosquats": enumeration(Policy.TyposquatRule.allCases.map(\.rawValue)),
                "sdists": enumeration(Policy.SdistRule.allCases.map(\.rawValue)),
                "require_provenance": strings(.object([("type", .string("string")), ("pattern", .string("^(\\*|\(packageName))$"))])),
                "yanked": enumeration(Policy.YankedRule.allCases.map(\.rawValue)),
                "accept": strings(table([
                    ("rule", enumeration(Policy.Acceptance.Rule.allCases.map(\.rawValue))),
                    ("package", .object([("type", .string("string")), ("pattern", .string("^\(packageName)$"))])),
                    ("version", .object([("type", .string("string")), ("pattern", .string(#"^[A-Za-z0-9._+!-]{1,64}$"#))])),
                    ("finding", .object([("type", .string("string")), ("pattern", .string(#"^[A-Za-z0-9._-]{1,64}$"#))])),
                    ("file", .object([("type", .string("string")), ("minLength", .int(1)), ("maxLength", .int(299))])),
                    ("advisory", .object([("type", .string("string")), ("pattern", .string(#"^[A-Za-z0-9._:-]{1,64}$"#))])),
                    ("reason", .object([("type", .string("string")), ("minLength", .int(1)), ("maxLength", .int(300))])),
                ], required: ["rule", "package", "reason"])),
            ],
            "capabilities": ["keep": strings(capability)],
            "network": [
                "mode": enumeration(Policy.NetworkMode.allCases.map(\.rawValue)),
                "allow": strings(.object([("type", .string("string")), ("pattern", .string(
                    #"^((\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?))*\.?(/([0-9]|[12][0-9]|3[0-2]))?):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])(-([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$"#))])),
            ],
            "landlock": ["mode": enumeration(Policy.LandlockMode.allCases.map(\.rawValue))],
        ]
    }

    /// The schema document.
    public static func document() -> String {
        let t = tables
        let properties: [(String, JSON)] = PolicyParser.schema.keys.sorted().map { name in
            let keys = PolicyParser.schema[name]!
            return (name, table(keys.map { ($0, t[name]![$0]!) }))
        }
        return JSON.object([
            ("$schema", .string("http://json-schema.org/draft-07/schema#")),
            ("$id", .string("https://cordon.dev/schemas/policy.schema.json")),
            ("title", .string("Cordon sandbox policy")),
            ("description", .string("A Cordon policy file (TOML), as JSON. Generated by `cordon policy schema`; see docs/policies.md.")),
            ("type", .string("object")),
            ("additionalProperties", .bool(false)),
            ("properties", .object(properties)),
        ]).text(JSON.Format(indent: "  ", sortedKeys: true)) + "\n"
    }
}
