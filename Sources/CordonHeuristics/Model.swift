public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    case low, medium, high, critical

    private var rank: Int {
        switch self {
        case .low: return 0
        case .medium: return 1
        case .high: return 2
        case .critical: return 3
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

public struct PackageFile: Sendable {
    public var path: String
    public var bytes: [UInt8]
    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
    }
}

public enum PackageEcosystem: String, Sendable { case pypi, npm }

public struct PackageUnderScan: Sendable {
    public var ecosystem: PackageEcosystem
    public var name: String
    public var files: [PackageFile]
    public var pureWheel: Bool
    public init(ecosystem: PackageEcosystem, name: String, files: [PackageFile], pureWheel: Bool = false) {
        self.ecosystem = ecosystem
        self.name = name
        self.files = files
        self.pureWheel = pureWheel
    }
}

public struct Finding: Sendable, Equatable, Codable {
    public var rule: String
    public var severity: Severity
    public var file: String
    public var startLine: Int
    public var endLine: Int
    public var message: String
    public var evidence: String

    public init(rule: String, severity: Severity, file: String, startLine: Int, endLine: Int, message: String, evidence: String) {
        self.rule = rule
        self.severity = severity
        self.file = file
        self.startLine = startLine
        self.endLine = endLine
        self.message = message
        self.evidence = evidence
    }
}

public struct HeuristicRule: Sendable {
    public let id: String
    public let severity: Severity
    public let summary: String
    public init(id: String, severity: Severity, summary: String) {
        self.id = id
        self.severity = severity
        self.summary = summary
    }
}
