import CordonScan

/// One advisory as stored: the matching fields plus what a report shows.
struct StoredAdvisory: Equatable {
    var record: OSVRecord
    var modified: String?
    var published: String?
    var details: String?
    /// `severity[]` entries (top level and per affected entry) as "TYPE<TAB>score", in order.
    var scores: [String] = []
    /// A textual grade from `database_specific` / `ecosystem_specific` (GHSA's MODERATE, Debian's
    /// "medium"...), when the record has no CVSS vector this reads.
    var grade: String?
    /// The advisory's own page (an ADVISORY reference), else the osv.dev page.
    var url: String?

    /// critical, high, medium or low, with the CVSS v3 base score when a v3 vector gave it.
    var severity: (level: String, score: Double?)? {
        for entry in scores {
            let parts = entry.split(separator: "\t", maxSplits: 1)
            if parts.count == 2, let score = CVSS.baseScore(String(parts[1])) {
                let rating = CVSS.rating(score)
                return (rating == "none" ? "low" : rating, score)
            }
        }
        switch grade?.lowercased() {
        case "critical"?: return ("critical", nil)
        case "high"?, "important"?: return ("high", nil)
        case "moderate"?, "medium"?: return ("medium", nil)
        case "low"?, "negligible"?, "unimportant"?: return ("low", nil)
        default: return nil
        }
    }
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

    /// The first paragraph of a `details` text on one line, cut at a word under 200 characters:
    /// what a report shows when a record has no `summary` (most PyPA records).
    static func headline(_ details: String) -> String {
        let paragraph = details.split(separator: "\n\n", maxSplits: 1).first.map(String.init) ?? details
        let words = paragraph.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
        var line = ""
        for word in words {
            if line.count + word.count + 1 > 200 { return line + "…" }
            line += line.isEmpty ? String(word) : " " + word
        }
        return line
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
        var scores: [String] = []
        var grade = root["database_specific"]?["severity"]?.string
        for node in (root["severity"]?.items ?? []) + (root["affected"]?.items ?? []).flatMap({ $0["severity"]?.items ?? [] }) {
            if let type = node["type"]?.string, let score = node["score"]?.string, !score.contains("\n") { scores.append("\(type)\t\(score)") }
        }
        for entry in root["affected"]?.items ?? [] where grade == nil {
            grade = entry["ecosystem_specific"]?["severity"]?.string ?? entry["database_specific"]?["severity"]?.string
        }
        let advisoryURL = (root["references"]?.items ?? []).first { $0["type"]?.string == "ADVISORY" }?["url"]?.string
        let record = OSVRecord(id: id, aliases: (root["aliases"]?.items ?? []).compactMap { $0.string },
                               summary: root["summary"]?.string ?? root["details"]?.string.map(Self.headline),
                               withdrawn: root["withdrawn"]?.string, affected: affected)
        return StoredAdvisory(record: record, modified: root["modified"]?.string, published: root["published"]?.string,
                              details: root["details"]?.string, scores: scores, grade: grade,
                              url: advisoryURL ?? "https://osv.dev/vulnerability/\(id)")
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
