/// How `policy.extends` combines files, at the TOML level, before the merged table is read:
///
/// - tables merge key by key (so `process.env` gains and overrides variables);
/// - scalars override: the extending file's value replaces the inherited one;
/// - lists append, without repeating an entry already there;
/// - a mount (`read_only`, `read_write`, `tmpfs`) at a path the extending file also mounts is
///   replaced by the extending file's (so a read-only bind can be turned writable, or back);
/// - a later deny wins: a path the extending file hides removes the inherited mounts of it, and
///   `network.mode = "none"` removes the inherited allow list;
/// - `[policy]` (name, description, extends) and `[access]` (who may use the policy) are never
///   inherited: being allowed to use a base policy says nothing about a policy built on it.
enum PolicyMerge {
    static let mountKeys = ["read_only", "read_write", "tmpfs"]

    static func merge(_ base: TOMLTable, _ over: TOMLTable) -> TOMLTable {
        var out = base
        out.remove("policy")
        out.remove("access")
        for key in over.keys {
            guard let value = over[key] else { continue }
            if key == "filesystem", case .table(let o)? = over[key]?.kind, case .table(var b)? = out[key]?.kind {
                // Drop inherited mounts the extending file replaces or hides.
                let replaced = Set(mountKeys.flatMap { identities(o[$0]) } + identities(o["hide"]))
                for mount in mountKeys {
                    guard let v = b[mount], case .array(let items) = v.kind else { continue }
                    b.set(mount, TOMLValue(kind: .array(items.filter { identity($0).map { !replaced.contains($0) } ?? true }), location: v.location),
                          keyLocation: b.keyLocation(mount))
                }
                out.set(key, TOMLValue(kind: .table(mergeTable(b, o)), location: value.location), keyLocation: over.keyLocation(key))
            } else if key == "network", case .table(let o) = value.kind, case .table(var b)? = out[key]?.kind {
                // A later deny wins: mode = "none" drops the inherited allow list.
                if case .string("none")? = o["mode"]?.kind { b.remove("allow") }
                out.set(key, TOMLValue(kind: .table(mergeTable(b, o)), location: value.location), keyLocation: over.keyLocation(key))
            } else if case .table(let o) = value.kind, case .table(let b)? = out[key]?.kind {
                out.set(key, TOMLValue(kind: .table(mergeTable(b, o)), location: value.location), keyLocation: over.keyLocation(key))
            } else {
                out.set(key, value, keyLocation: over.keyLocation(key))
            }
        }
        return out
    }

    static func mergeTable(_ base: TOMLTable, _ over: TOMLTable) -> TOMLTable {
        var out = base
        for key in over.keys {
            guard let value = over[key] else { continue }
            switch (out[key]?.kind, value.kind) {
            case (.table(let b)?, .table(let o)):
                out.set(key, TOMLValue(kind: .table(mergeTable(b, o)), location: value.location), keyLocation: over.keyLocation(key))
            case (.array(let b)?, .array(let o)):
                let mine = Set(o.compactMap(identity))
                let kept = b.filter { identity($0).map { !mine.contains($0) } ?? true }
                out.set(key, TOMLValue(kind: .array(kept + o), location: value.location), keyLocation: over.keyLocation(key))
            default:
                out.set(key, value, keyLocation: over.keyLocation(key))
            }
        }
        return out
    }

    /// What makes two list entries the same: the string itself, or a table's `path`.
    static func identity(_ item: TOMLValue) -> String? {
        switch item.kind {
        case .string(let s): return s
        case .table(let t): if case .string(let p)? = t["path"]?.kind { return p }; return nil
        default: return nil
        }
    }

    static func identities(_ value: TOMLValue?) -> [String] {
        guard let value, case .array(let items) = value.kind else { return [] }
        return items.compactMap(identity)
    }
}
