import CordonHeuristics

/// SARIF 2.1.0: one run, heuristic rules and advisories as rules, each finding a result with a
/// line-level region in the file it was found in.
struct SARIF: Encodable {
    struct Message: Encodable { var text: String }
    struct Rule: Encodable {
        var id: String
        var shortDescription: Message
        var defaultConfiguration: Configuration
        struct Configuration: Encodable { var level: String }
    }
    struct Region: Encodable { var startLine: Int; var endLine: Int; var snippet: Message? }
    struct ArtifactLocation: Encodable { var uri: String }
    struct PhysicalLocation: Encodable { var artifactLocation: ArtifactLocation; var region: Region }
    struct Location: Encodable { var physicalLocation: PhysicalLocation }
    struct Result: Encodable {
        var ruleId: String
        var level: String
        var message: Message
        var locations: [Location]
    }
    struct Driver: Encodable {
        var name = "cordon"
        var version: String
        var informationUri = "https://github.com/cordon-sandbox/cordon"
        var rules: [Rule]
    }
    struct Tool: Encodable { var driver: Driver }
    struct Run: Encodable { var tool: Tool; var results: [Result] }

    let version = "2.1.0"
    let schema = "https://json.schemastore.org/sarif-2.1.0.json"
    var runs: [Run]

    enum CodingKeys: String, CodingKey { case version, schema = "$schema", runs }

    static func level(_ s: Severity) -> String {
        switch s {
        case .critical, .high: return "error"
        case .medium: return "warning"
        case .low: return "note"
        }
    }

    init(_ report: ScanReport, toolVersion: String) {
        var rules = (Heuristics.rules + ContainerImage.rules).map {
            Rule(id: $0.id, shortDescription: Message(text: $0.summary), defaultConfiguration: .init(level: SARIF.level($0.severity)))
        }
        var results: [Result] = []
        var advisoryRules = Set<String>()
        for p in report.packages {
            for f in p.findings {
                let uri = "\(p.source)/\(f.file)"
                results.append(Result(ruleId: f.rule, level: SARIF.level(f.severity), message: Message(text: "\(p.name) \(p.version): \(f.message)"),
                                      locations: [Location(physicalLocation: PhysicalLocation(
                                          artifactLocation: ArtifactLocation(uri: uri),
                                          region: Region(startLine: max(1, f.startLine), endLine: max(f.startLine, f.endLine),
                                                         snippet: f.evidence.isEmpty ? nil : Message(text: f.evidence))))]))
            }
            for v in p.vulnerabilities {
                if advisoryRules.insert(v.id).inserted {
                    rules.append(Rule(id: v.id, shortDescription: Message(text: "Known vulnerability \(v.id)"),
                                      defaultConfiguration: .init(level: SARIF.level(ScanReport.vulnerabilitySeverity))))
                }
                results.append(Result(ruleId: v.id, level: SARIF.level(ScanReport.vulnerabilitySeverity),
                                      message: Message(text: "\(p.name) \(p.version) is affected by \(v.id)"),
                                      locations: [Location(physicalLocation: PhysicalLocation(
                                          artifactLocation: ArtifactLocation(uri: p.source),
                                          region: Region(startLine: 1, endLine: 1, snippet: nil)))]))
            }
        }
        runs = [Run(tool: Tool(driver: Driver(version: toolVersion, rules: rules)), results: results)]
    }
}
