import CordonHeuristics

/// SARIF 2.1.0: one run, heuristic rules and advisories as rules, each finding a result with a
/// line-level region in the file it was found in.
struct SARIF: Encodable {
    struct Message: Encodable { var text: String }
    struct Rule: Encodable {
        var id: String
        var shortDescription: Message
        var fullDescription: Message? = nil
        var helpUri: String? = nil
        var defaultConfiguration: Configuration
        var properties: Properties? = nil
        struct Configuration: Encodable { var level: String }
        /// GitHub code scanning reads `security-severity` (a CVSS-like score as a string).
        struct Properties: Encodable {
            var securitySeverity: String?
            var tags: [String]
            enum CodingKeys: String, CodingKey { case securitySeverity = "security-severity", tags }
        }
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
    struct Notification: Encodable { var message: Message; var level: String }
    struct Invocation: Encodable { var executionSuccessful: Bool; var toolExecutionNotifications: [Notification] }
    struct Run: Encodable { var tool: Tool; var invocations: [Invocation]?; var results: [Result] }

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
                let level = SARIF.level(ScanReport.severity(of: v))
                if advisoryRules.insert(v.id).inserted {
                    // GitHub's buckets: critical ≥ 9, high ≥ 7, medium ≥ 4; an ungraded advisory counts as high.
                    let score = v.score ?? ["critical": 9.0, "high": 7.0, "medium": 5.0, "low": 2.0][ScanReport.severity(of: v).rawValue]
                    rules.append(Rule(id: v.id, shortDescription: Message(text: v.summary ?? "Known vulnerability \(v.id)"),
                                      fullDescription: v.details.map { Message(text: $0) }, helpUri: v.url,
                                      defaultConfiguration: .init(level: level),
                                      properties: .init(securitySeverity: score.map { String($0) }, tags: ["security", "vulnerability"])))
                }
                var text = "\(p.name) \(p.version) is affected by \(v.id)"
                if let summary = v.summary { text += ": \(summary)" }
                if !v.affected.isEmpty { text += " Affected: \(v.affected.joined(separator: "; "))." }
                text += v.fixedIn.map { " Fixed in \($0): upgrade to it or later." } ?? " No fixed version above \(p.version)."
                results.append(Result(ruleId: v.id, level: level, message: Message(text: text),
                                      locations: [Location(physicalLocation: PhysicalLocation(
                                          artifactLocation: ArtifactLocation(uri: p.source),
                                          region: Region(startLine: 1, endLine: 1, snippet: nil)))]))
            }
        }
        // Packages not checked against advisories are not clean: said as notifications.
        let notChecked = report.notChecked.map {
            Notification(message: Message(text: "\($0.count) \($0.count == 1 ? "package" : "packages") not checked against advisories: \($0.reason)"),
                         level: "warning")
        }
        runs = [Run(tool: Tool(driver: Driver(version: toolVersion, rules: rules)),
                    invocations: notChecked.isEmpty ? nil : [Invocation(executionSuccessful: true, toolExecutionNotifications: notChecked)],
                    results: results)]
    }
}
