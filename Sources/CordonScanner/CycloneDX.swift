import CordonScan
import FoundationEssentials

/// A CycloneDX 1.5 JSON SBOM of the packages found, with their known vulnerabilities.
struct CycloneDX: Encodable {
    struct Tool: Encodable { var type = "application"; var name = "cordon"; var version: String }
    struct Tools: Encodable { var components: [Tool] }
    struct Metadata: Encodable { var timestamp: String; var tools: Tools }
    struct Property: Encodable { var name: String; var value: String }
    struct Component: Encodable {
        var type = "library"
        var bomRef: String
        var name: String
        var version: String
        var purl: String
        /// `cordon:advisories` = "not checked: <reason>" when the package was not checked.
        var properties: [Property]?
        enum CodingKeys: String, CodingKey { case type, bomRef = "bom-ref", name, version, purl, properties }
    }
    struct Source: Encodable { var name = "OSV"; var url: String? }
    struct AffectedVersion: Encodable { var version: String; var status = "affected" }
    struct Affects: Encodable { var ref: String; var versions: [AffectedVersion]? }
    struct Rating: Encodable { var source: Source?; var score: Double?; var severity: String; var method: String?; var vector: String? }
    struct Advisory: Encodable { var url: String }
    struct Vulnerability: Encodable {
        var bomRef: String
        var id: String
        var source: Source
        var ratings: [Rating]?
        var description: String?
        var detail: String?
        var recommendation: String?
        var advisories: [Advisory]?
        var published: String?
        var updated: String?
        var affects: [Affects]
        enum CodingKeys: String, CodingKey {
            case bomRef = "bom-ref", id, source, ratings, description, detail, recommendation, advisories, published, updated, affects
        }
    }

    let bomFormat = "CycloneDX"
    let specVersion = "1.5"
    var serialNumber: String
    let version = 1
    var metadata: Metadata
    var components: [Component]
    var vulnerabilities: [Vulnerability]

    init(_ report: ScanReport, toolVersion: String) {
        serialNumber = "urn:uuid:\(UUID().uuidString.lowercased())"
        metadata = Metadata(timestamp: report.scannedAt, tools: Tools(components: [Tool(version: toolVersion)]))
        var seen = Set<String>()
        components = []
        vulnerabilities = []
        for p in report.packages where seen.insert(p.purl).inserted {
            components.append(Component(bomRef: p.purl, name: p.name, version: p.version, purl: p.purl,
                                        properties: p.notChecked.map { [Property(name: "cordon:advisories", value: "not checked: \($0)")] }))
            for v in p.vulnerabilities {
                var ratings: [Rating] = []
                for entry in v.cvss {
                    let parts = entry.split(separator: " ", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { continue }
                    let method = parts[1].hasPrefix("CVSS:3.1/") ? "CVSSv31" : parts[1].hasPrefix("CVSS:3.0/") ? "CVSSv3"
                        : parts[1].hasPrefix("CVSS:4.0/") ? "CVSSv4" : parts[0] == "CVSS_V2" ? "CVSSv2" : "other"
                    let score = CVSS.baseScore(parts[1])
                    ratings.append(Rating(source: Source(url: v.url), score: score,
                                          severity: score.map { CVSS.rating($0) } ?? "unknown", method: method, vector: parts[1]))
                }
                if ratings.isEmpty, let severity = v.severity { ratings.append(Rating(source: Source(url: v.url), severity: severity)) }
                let recommendation = v.fixedIn.map { "Upgrade \(p.name) to \($0) or later." }
                    ?? (v.fixed.isEmpty ? "No fixed version is known." : "Fixed in \(v.fixed.joined(separator: ", ")).")
                vulnerabilities.append(Vulnerability(bomRef: "\(v.id)/\(p.purl)", id: v.id,
                                                     source: Source(url: "https://osv.dev/vulnerability/\(v.id)"),
                                                     ratings: ratings.isEmpty ? nil : ratings,
                                                     description: v.summary, detail: v.details, recommendation: recommendation,
                                                     advisories: v.url.map { [Advisory(url: $0)] },
                                                     published: v.published, updated: v.modified,
                                                     affects: [Affects(ref: p.purl, versions: [AffectedVersion(version: p.version)])]))
            }
        }
    }
}
