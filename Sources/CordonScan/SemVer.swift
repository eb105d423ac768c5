/// A Semantic Versioning 2.0.0 version, as used by npm.
///
/// Parsing is strict semver 2.0.0 (no leading zeros in numeric identifiers, non-empty
/// identifiers) except that surrounding whitespace and a leading `=` and/or `v` are accepted,
/// as npm's `semver.clean` does. Precedence follows semver 2.0.0 §11; build metadata is kept
/// but ignored for ordering and equality.
public struct SemVer: Comparable, Sendable, CustomStringConvertible {
    public enum Identifier: Comparable, Sendable, CustomStringConvertible {
        case numeric(Natural)
        case alphanumeric(String)

        /// §11.4: numeric identifiers compare numerically, alphanumeric ones lexically in ASCII
        /// order, and numeric identifiers have lower precedence than alphanumeric ones.
        public static func < (a: Identifier, b: Identifier) -> Bool {
            switch (a, b) {
            case let (.numeric(x), .numeric(y)): return x < y
            case (.numeric, .alphanumeric): return true
            case (.alphanumeric, .numeric): return false
            case let (.alphanumeric(x), .alphanumeric(y)):
                return compareBytes(Array(x.utf8)[...], Array(y.utf8)[...]) == .orderedAscending
            }
        }

        public var description: String {
            switch self {
            case .numeric(let n): return n.description
            case .alphanumeric(let s): return s
            }
        }
    }

    let majorNumber: Natural
    let minorNumber: Natural
    let patchNumber: Natural
    public let preRelease: [Identifier]
    public let build: [String]

    public init?(_ text: String) {
        var bytes = trimmedBytes(text)
        if bytes.first == UInt8(ascii: "=") { bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: "v") || bytes.first == UInt8(ascii: "V") { bytes = bytes.dropFirst() }

        var build: [String] = []
        if let plus = bytes.firstIndex(of: UInt8(ascii: "+")) {
            guard let ids = Self.identifiers(bytes[(plus + 1)...]) else { return nil }
            build = ids.map { String(decoding: $0, as: UTF8.self) }
            bytes = bytes[..<plus]
        }
        var pre: [Identifier] = []
        if let dash = bytes.firstIndex(of: UInt8(ascii: "-")) {
            guard let ids = Self.identifiers(bytes[(dash + 1)...]) else { return nil }
            for id in ids {
                if let n = Natural(ascii: id) {
                    guard id.count == 1 || id.first != UInt8(ascii: "0") else { return nil }
                    pre.append(.numeric(n))
                } else {
                    pre.append(.alphanumeric(String(decoding: id, as: UTF8.self)))
                }
            }
            bytes = bytes[..<dash]
        }
        let core = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard core.count == 3 else { return nil }
        var numbers: [Natural] = []
        for part in core {
            guard let n = Natural(ascii: part), part.count == 1 || part.first != UInt8(ascii: "0") else { return nil }
            numbers.append(n)
        }
        majorNumber = numbers[0]
        minorNumber = numbers[1]
        patchNumber = numbers[2]
        preRelease = pre
        self.build = build
    }

    /// Dot-separated, non-empty identifiers of `[0-9A-Za-z-]`.
    private static func identifiers(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>]? {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for p in parts {
            guard !p.isEmpty, p.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") }) else { return nil }
        }
        return parts
    }

    public var major: String { majorNumber.description }
    public var minor: String { minorNumber.description }
    public var patch: String { patchNumber.description }

    public var description: String {
        var s = "\(majorNumber).\(minorNumber).\(patchNumber)"
        if !preRelease.isEmpty { s += "-" + preRelease.map(\.description).joined(separator: ".") }
        if !build.isEmpty { s += "+" + build.joined(separator: ".") }
        return s
    }

    public static func == (a: SemVer, b: SemVer) -> Bool { a.compare(to: b) == .orderedSame }
    public static func < (a: SemVer, b: SemVer) -> Bool { a.compare(to: b) == .orderedAscending }

    public func compare(to other: SemVer) -> ComparisonResult {
        for (a, b) in [(majorNumber, other.majorNumber), (minorNumber, other.minorNumber), (patchNumber, other.patchNumber)] {
            let r = compare3(a, b)
            if r != .orderedSame { return r }
        }
        // §11.3: a pre-release version has lower precedence than the normal version.
        switch (preRelease.isEmpty, other.preRelease.isEmpty) {
        case (true, true): return .orderedSame
        case (true, false): return .orderedDescending
        case (false, true): return .orderedAscending
        case (false, false): break
        }
        for (a, b) in zip(preRelease, other.preRelease) {
            let r = compare3(a, b)
            if r != .orderedSame { return r }
        }
        // §11.4.4: a larger set of pre-release fields has higher precedence.
        return compare3(preRelease.count, other.preRelease.count)
    }
}
