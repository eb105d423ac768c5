import CordonScan

/// One advisory as stored: the matching fields plus what a report shows.
struct StoredAdvisory: Equatable {
    var record: OSVRecord
    var modified: String?
    var published: String?
}

/// OSV (YAML or JSON) → `StoredAdvisory`, with errors that name the field.
enum OSVDecoder {
    struct Failure: Error, CustomStringConvertible {
        var field: String
        var message: String
        var description: String { field.isEmpty ? message : "\(field): \(message)" }
    }

    /// A version with a control character is refused: the parsers trim whitespace, so "\n\n0"
    /// would read as 0, while the stored form (ranges and versions as lines of tab-separated
    /// fields) would read it back differently — a record must match the same versions stored
    /// as read. (Found by the `osv` fuzz target.)
    static func checkVersion(_ version: String, field: String) throws {
        if version.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw Failure(field: field, message: "version \(version.debugDescription) contains a control character")
        }
    }

    static func decode(_ bytes: [UInt8]) throws -> StoredAdvisory {
        let root: YAMLNode
        do { root = try YAMLNode.parse(bytes) } catch { throw Failure(field: "", message: "not valid YAML or JSON: \(error)") }
        if case .mapping = root {} else { throw Failure(field: "", message: "expected an OSV record (a mapping)") }
        guard let id = root["id"]?.string, !id.isEmpty else { throw Failure(field: "id", message: "missing") }
        var affected: [OSVRecord.Affected] = []
        for (i, entry) in (root["affected"]?.items ?? []).enumerated() {
            let at = "affected[\(i)]"
            guard let packageNode = entry["package"] else {
                // OSV allows affected entries without a package (e.g. git-only); they match no package.
                continue
            }
            guard let ecosystem = packageNode["ecosystem"]?.string, let name = packageNode["name"]?.string else {
                throw Failure(field: "\(at).package", message: "needs ecosystem and name")
            }
            var ranges: [OSVRecord.Range] = []
            for (j, rangeNode) in (entry["ranges"]?.items ?? []).enumerated() {
                guard let typeText = rangeNode["type"]?.string, let type = OSVRecord.RangeType(rawValue: typeText) else {
                    throw Failure(field: "\(at).ranges[\(j)].type", message: "expected ECOSYSTEM, SEMVER or GIT")
                }
                var events: [OSVRecord.Event] = []
                let eventNodes: [YAMLNode] = rangeNode["events"]?.items ?? []
                for k in eventNodes.indices {
                    guard let event = decodeEvent(eventNodes[k]) else {
                        throw Failure(field: "\(at).ranges[\(j)].events[\(k)]", message: "expected one of introduced, fixed, last_affected, limit")
                    }
                    try Self.checkVersion(event.version, field: "\(at).ranges[\(j)].events[\(k)]")
                    events.append(event)
                }
                ranges.append(OSVRecord.Range(type: type, events: events))
            }
            let versions = (entry["versions"]?.items ?? []).compactMap { $0.string }
            for (k, version) in versions.enumerated() { try Self.checkVersion(version, field: "\(at).versions[\(k)]") }
            affected.append(OSVRecord.Affected(package: .init(ecosystem: ecosystem, name: name, purl: packageNode["purl"]?.string),
                                               ranges: ranges, versions: versions))
        }
        let record = OSVRecord(id: id, aliases: (root["aliases"]?.items ?? []).compactMap { $0.string },
                               summary: root["summary"]?.string ?? root["details"]?.string.map { String($0.prefix(200)) },
                               withdrawn: root["withdrawn"]?.string, affected: affected)
        return StoredAdvisory(record: record, modified: root["modified"]?.string, published: root["published"]?.string)
    }
}

/// One OSV range event: a mapping with a single key.
func decodeEvent(_ node: YAMLNode) -> OSVRecord.Event? {
    guard case .mapping(let pairs) = node, pairs.count == 1 else { return nil }
    let key: String = pairs[0].0
    guard let value: String = pairs[0].1.string else { return nil }
    switch key {
    case "introduced": return OSVRecord.Event.introduced(value)
    case "fixed": return OSVRecord.Event.fixed(value)
    case "last_affected": return OSVRecord.Event.lastAffected(value)
    case "limit": return OSVRecord.Event.limit(value)
    default: return nil
    }
}

/// The compact text form of ranges stored in SQLite: one range a line, `TYPE<TAB>event=value…`.
enum RangeCoding {
    static func encode(_ ranges: [OSVRecord.Range]) -> String {
        ranges.map { range in
            ([range.type.rawValue] + range.events.map { event -> String in
                switch event {
                case .introduced(let v): return "introduced=\(v)"
                case .fixed(let v): return "fixed=\(v)"
                case .lastAffected(let v): return "last_affected=\(v)"
                case .limit(let v): return "limit=\(v)"
                }
            }).joined(separator: "\t")
        }.joined(separator: "\n")
    }

    static func decode(_ text: String) -> [OSVRecord.Range] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard let first = fields.first, let type = OSVRecord.RangeType(rawValue: String(first)) else { return nil }
            let events: [OSVRecord.Event] = fields.dropFirst().compactMap { field in
                guard let eq = field.firstIndex(of: "=") else { return nil }
                let value = String(field[field.index(after: eq)...])
                switch field[..<eq] {
                case "introduced": return .introduced(value)
                case "fixed": return .fixed(value)
                case "last_affected": return .lastAffected(value)
                case "limit": return .limit(value)
                default: return nil
                }
            }
            return OSVRecord.Range(type: type, events: events)
        }
    }
}
