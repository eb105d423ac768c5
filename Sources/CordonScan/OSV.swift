/// The subset of an OSV record (https://ossf.github.io/osv-schema/) needed to decide whether
/// a package version is affected.
public struct OSVRecord: Sendable, Equatable {
    public var id: String
    public var aliases: [String]
    public var summary: String?
    /// Timestamp at which the record was withdrawn; any non-nil value means withdrawn.
    public var withdrawn: String?
    public var affected: [Affected]

    public init(id: String, aliases: [String] = [], summary: String? = nil,
                withdrawn: String? = nil, affected: [Affected] = []) {
        self.id = id
        self.aliases = aliases
        self.summary = summary
        self.withdrawn = withdrawn
        self.affected = affected
    }

    public struct Package: Sendable, Equatable {
        /// OSV ecosystem string, e.g. `PyPI`, `npm`, `Debian:12`, `Alpine:v3.18`.
        public var ecosystem: String
        public var name: String
        public var purl: String?

        public init(ecosystem: String, name: String, purl: String? = nil) {
            self.ecosystem = ecosystem
            self.name = name
            self.purl = purl
        }
    }

    public struct Affected: Sendable, Equatable {
        public var package: Package
        public var ranges: [Range]
        public var versions: [String]

        public init(package: Package, ranges: [Range] = [], versions: [String] = []) {
            self.package = package
            self.ranges = ranges
            self.versions = versions
        }
    }

    public enum RangeType: String, Sendable, Equatable {
        case ecosystem = "ECOSYSTEM"
        case semver = "SEMVER"
        case git = "GIT"
    }

    public enum Event: Sendable, Equatable {
        case introduced(String)
        case fixed(String)
        case lastAffected(String)
        case limit(String)

        public var version: String {
            switch self {
            case .introduced(let v), .fixed(let v), .lastAffected(let v), .limit(let v): return v
            }
        }
    }

    public struct Range: Sendable, Equatable {
        public var type: RangeType
        public var events: [Event]

        public init(type: RangeType, events: [Event]) {
            self.type = type
            self.events = events
        }
    }
}

/// Whether `record` says that `version` of package `name` in `ecosystem` is affected.
///
/// Implements OSV's evaluation: withdrawn records never match; otherwise a version matches an
/// `affected` entry for the same ecosystem and (normalised) name when it is listed in
/// `versions` or lies in one of its ECOSYSTEM/SEMVER ranges. GIT ranges are ignored.
/// A version that does not parse in the relevant scheme never matches.
public func affects(_ record: OSVRecord, ecosystem: Ecosystem, name: String, version: String) -> Bool {
    guard record.withdrawn == nil else { return false }
    let wanted = ecosystem.normalizedName(name)
    for entry in record.affected {
        guard Ecosystem(osv: entry.package.ecosystem) == ecosystem,
              ecosystem.normalizedName(entry.package.name) == wanted else { continue }
        if listedVersionMatches(entry.versions, version: version, ecosystem: ecosystem) { return true }
        for range in entry.ranges where rangeIncludes(range, version: version, ecosystem: ecosystem) {
            return true
        }
    }
    return false
}

private func listedVersionMatches(_ versions: [String], version: String, ecosystem: Ecosystem) -> Bool {
    guard compareVersions(version, version, ecosystem: ecosystem) != nil else { return false }
    return versions.contains { compareVersions($0, version, ecosystem: ecosystem) == .orderedSame }
}

/// OSV range evaluation: sort the events by version (`introduced: "0"` first, ties keep their
/// order), then walk them: introduced ≤ v sets affected, fixed ≤ v clears it, last_affected < v
/// clears it. If the range has `limit` events, v must also be below at least one of them.
/// A range containing an event version that does not parse is ignored.
func rangeIncludes(_ range: OSVRecord.Range, version: String, ecosystem: Ecosystem) -> Bool {
    let compare: (String, String) -> ComparisonResult?
    switch range.type {
    case .git: return false
    case .semver: compare = compareSemVer
    case .ecosystem: compare = { compareVersions($0, $1, ecosystem: ecosystem) }
    }
    guard compare(version, version) != nil else { return false }

    func isZero(_ e: OSVRecord.Event) -> Bool {
        if case .introduced("0") = e { return true }
        return false
    }
    for e in range.events where !isZero(e) {
        guard compare(e.version, e.version) != nil else { return false }
    }

    let sorted = range.events.enumerated().sorted { x, y in
        switch (isZero(x.element), isZero(y.element)) {
        case (true, true): return x.offset < y.offset
        case (true, false): return true
        case (false, true): return false
        case (false, false):
            switch compare(x.element.version, y.element.version)! {
            case .orderedAscending: return true
            case .orderedDescending: return false
            case .orderedSame: return x.offset < y.offset
            }
        }
    }.map(\.element)

    var affected = false
    var limits: [String] = []
    for event in sorted {
        switch event {
        case .introduced(let v):
            if v == "0" || compare(version, v)! != .orderedAscending { affected = true }
        case .fixed(let v):
            if compare(version, v)! != .orderedAscending { affected = false }
        case .lastAffected(let v):
            if compare(version, v)! == .orderedDescending { affected = false }
        case .limit(let v):
            limits.append(v)
        }
    }
    if affected && !limits.isEmpty {
        affected = limits.contains { compare(version, $0)! == .orderedAscending }
    }
    return affected
}

/// What a report tells a user about one advisory for one installed version: the ranges in a
/// form people read, the versions that fix it, and the one to upgrade to.
public struct AffectedDescription: Sendable, Equatable {
    /// One entry a range segment or listed-version set: `< 2.15.1`, `>= 2.0, < 2.3.4`, `<= 1.2 (last affected)`.
    public var ranges: [String]
    /// Every `fixed` version the entries name, in their order, without repeats.
    public var fixed: [String]
    /// The lowest fixed version above `version` in a range that contains it; nil when no range
    /// containing it has a fix (or the version is affected only by listing).
    public var fixedIn: String?
}

/// Describes the entries of `record` for `name` in `ecosystem`, from the point of view of `version`.
public func describeAffected(_ record: OSVRecord, ecosystem: Ecosystem, name: String, version: String) -> AffectedDescription {
    var out = AffectedDescription(ranges: [], fixed: [], fixedIn: nil)
    let wanted = ecosystem.normalizedName(name)
    for entry in record.affected {
        guard Ecosystem(osv: entry.package.ecosystem) == ecosystem,
              ecosystem.normalizedName(entry.package.name) == wanted else { continue }
        for range in entry.ranges where range.type != .git {
            var open: [String]? = nil
            for event in range.events {
                switch event {
                case .introduced(let v):
                    if let open { out.ranges.append(open.isEmpty ? "all versions" : open.joined(separator: ", ")) }
                    open = v == "0" ? [] : [">= \(v)"]
                case .fixed(let v):
                    out.ranges.append(((open ?? []) + ["< \(v)"]).joined(separator: ", "))
                    open = nil
                    if !out.fixed.contains(v) { out.fixed.append(v) }
                case .lastAffected(let v):
                    out.ranges.append(((open ?? []) + ["<= \(v)"]).joined(separator: ", "))
                    open = nil
                case .limit(let v):
                    out.ranges.append("(only below \(v))")
                }
            }
            if let open { out.ranges.append(open.isEmpty ? "all versions" : open.joined(separator: ", ")) }
            // A range that includes `version`: its lowest fix above it.
            func compare(_ a: String, _ b: String) -> ComparisonResult? {
                range.type == .semver ? compareSemVer(a, b) : compareVersions(a, b, ecosystem: ecosystem)
            }
            if rangeIncludes(range, version: version, ecosystem: ecosystem) {
                for event in range.events {
                    guard case .fixed(let v) = event, compare(v, version) == .orderedDescending else { continue }
                    if let best = out.fixedIn, compare(v, best) != .orderedAscending { continue }
                    out.fixedIn = v
                }
            }
        }
        if !entry.versions.isEmpty {
            out.ranges.append(entry.versions.count == 1 ? "version \(entry.versions[0])" : "\(entry.versions.count) listed versions")
        }
    }
    return out
}

/// Whether `version` parses in `ecosystem`'s version scheme (a version that does not is never
/// matched, so it is not checked).
public func isValidVersion(_ version: String, ecosystem: Ecosystem) -> Bool {
    compareVersions(version, version, ecosystem: ecosystem) != nil
}
