import FoundationEssentials

/// A CycloneDX 1.5 JSON SBOM of the packages found, with their known vulnerabilities.
struct CycloneDX: Encodable {
    struct Tool: Encodable { var type = "application"; var name = "cordon"; var version: String }
    struct Tools: Encodable { var components: [Tool] }
    struct Metadata: Encodable { var timestamp: String; var tools: Tools }
    struct Component: Encodable {
        var type = "library"
        var bomRef: String
        var name: String
        var version: String
        var purl: String
        enum CodingKeys: String, CodingKey { case type, bomRef = "bom-ref", name, version, purl }
    }
    struct Source: Encodable { var name = "OSV"; var url: String }
    struct Affects: Encodable { var ref: String }
    struct Vulnerability: Encodable {
        var bomRef: String
        var id: String
        var source: Source
        var affects: [Affects]
        enum CodingKeys: String, CodingKey { case bomRef = "bom-ref", id, source, affects }
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
            components.append(Component(bomRef: p.purl, name: p.name, version: p.version, purl: p.purl))
            for v in p.vulnerabilities {
                vulnerabilities.append(Vulnerability(bomRef: "\(v.id)/\(p.purl)", id: v.id,
                                                     source: Source(url: "https://osv.dev/vulnerability/\(v.id)"),
                                                     affects: [Affects(ref: p.purl)]))
            }
        }
    }
}
