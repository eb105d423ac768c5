import CordonJSON
import FuzzSupport

/// CordonJSON on any bytes, strict (the daemon, seccomp profiles, image manifests) and as npm
/// reads package.json (a byte order mark skipped, ill-formed text replaced, with key offsets,
/// as the heuristics parse it). Checked: a document the strict parser takes reads the same
/// when repairing; what is written, compact or indented, reads back to the same text; every
/// key offset points at the opening quote of a key with that name.
@main enum FuzzJSON {
    static func main() {
        Fuzzer.run { input in
            let bytes = Array(input)
            let strict = try? JSON.parse(bytes)
            guard let (value, keys) = try? JSON.parseWithKeyOffsets(bytes, options: .javaScript) else {
                require(strict == nil, "the strict parser takes what the repairing one refuses")
                return
            }
            if let strict { require(strict == value, "a strict document reads differently when repairing") }

            let text = value.text
            guard let again = try? JSON.parse(text) else { fatalError("written JSON does not read back: \(text)") }
            require(again.text == text, "JSON text changes when read back: \(text) → \(again.text)")
            let sorted = JSON.Format(indent: " ", sortedKeys: true, scalarArraysOnOneLine: bytes.count % 2 == 0)
            guard let indented = try? JSON.parse(value.text(sorted)) else { fatalError("indented JSON does not read back: \(value.text(sorted))") }
            require(indented.text == value.text(JSON.Format(sortedKeys: true)), "indented JSON reads back differently: \(value.text(sorted))")

            checkOffsets(value, [], keys, bytes)
        }
    }

    /// Each member reachable through `subscript` (the last of a repeated key) has its key's
    /// offset, and the bytes there open a string that reads as the key.
    static func checkOffsets(_ value: JSON, _ path: [JSON.PathComponent], _ keys: JSON.KeyOffsets, _ bytes: [UInt8]) {
        switch value {
        case .object(let members):
            for (key, _) in members {
                let member = path + [.key(key)]
                guard let offset = keys.offset(ofKeyAt: member) else { fatalError("no offset for \(member)") }
                require(offset < bytes.count && bytes[offset] == UInt8(ascii: "\""), "offset \(offset) of \(member) is not a quote")
                checkOffsets(value[key]!, member, keys, bytes)
            }
        case .array(let items):
            for (i, item) in items.enumerated() { checkOffsets(item, path + [.index(i)], keys, bytes) }
        default: break
        }
    }
}
