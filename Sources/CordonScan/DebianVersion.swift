/// A Debian package version `[epoch:]upstream_version[-debian_revision]`, parsed and ordered
/// exactly as dpkg does (`parseversion` and `verrevcmp` in lib/dpkg/version.c).
///
/// Strings that dpkg would only warn about (upstream not starting with a digit, characters
/// outside the allowed sets) are rejected here.
public struct DebianVersion: Comparable, Sendable, CustomStringConvertible {
    public let epoch: Int
    public let upstream: String
    public let revision: String
    private let upstreamBytes: [UInt8]
    private let revisionBytes: [UInt8]

    public init?(_ text: String) {
        var bytes = trimmedBytes(text)
        guard !bytes.isEmpty, !bytes.contains(where: isASCIISpace) else { return nil }

        var epoch = 0
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            let digits = bytes[..<colon]
            guard !digits.isEmpty, digits.allSatisfy(isDigit) else { return nil }
            guard let n = Natural(ascii: digits), n.digits.count <= 10,
                  let value = Int(n.description), value <= Int(Int32.max) else { return nil }
            epoch = value
            bytes = bytes[(colon + 1)...]
            guard !bytes.isEmpty else { return nil }
        }

        var upstream = bytes
        var revision: ArraySlice<UInt8> = []
        if let hyphen = bytes.lastIndex(of: UInt8(ascii: "-")) {
            upstream = bytes[..<hyphen]
            revision = bytes[(hyphen + 1)...]
            guard !revision.isEmpty else { return nil }
        }
        guard let first = upstream.first, isDigit(first) else { return nil }
        guard upstream.allSatisfy({ isAlnum($0) || ".-+~:".utf8.contains($0) }) else { return nil }
        guard revision.allSatisfy({ isAlnum($0) || ".+~".utf8.contains($0) }) else { return nil }

        self.epoch = epoch
        upstreamBytes = Array(upstream)
        revisionBytes = Array(revision)
        self.upstream = String(decoding: upstream, as: UTF8.self)
        self.revision = String(decoding: revision, as: UTF8.self)
    }

    public var description: String {
        (epoch != 0 ? "\(epoch):" : "") + upstream + (revision.isEmpty ? "" : "-\(revision)")
    }

    public static func == (a: DebianVersion, b: DebianVersion) -> Bool { a.compare(to: b) == .orderedSame }
    public static func < (a: DebianVersion, b: DebianVersion) -> Bool { a.compare(to: b) == .orderedAscending }

    public func compare(to other: DebianVersion) -> ComparisonResult {
        let e = compare3(epoch, other.epoch)
        if e != .orderedSame { return e }
        let u = Self.verrevcmp(upstreamBytes, other.upstreamBytes)
        if u != .orderedSame { return u }
        return Self.verrevcmp(revisionBytes, other.revisionBytes)
    }

    /// dpkg's `order()`: digits and end-of-string 0, `~` -1, letters their code, others code+256.
    private static func order(_ c: UInt8?) -> Int {
        guard let c else { return 0 }
        if isDigit(c) { return 0 }
        if isAlpha(c) { return Int(c) }
        if c == UInt8(ascii: "~") { return -1 }
        return Int(c) + 256
    }

    /// dpkg's `verrevcmp()`: alternate non-digit runs (compared with `order`) and digit runs
    /// (compared numerically).
    static func verrevcmp(_ a: [UInt8], _ b: [UInt8]) -> ComparisonResult {
        var i = 0
        var j = 0
        func at(_ s: [UInt8], _ k: Int) -> UInt8? { k < s.count ? s[k] : nil }
        while i < a.count || j < b.count {
            while true {
                let ca = at(a, i)
                let cb = at(b, j)
                let aText = ca.map { !isDigit($0) } ?? false
                let bText = cb.map { !isDigit($0) } ?? false
                guard aText || bText else { break }
                let oa = order(ca)
                let ob = order(cb)
                if oa != ob { return oa < ob ? .orderedAscending : .orderedDescending }
                i += 1
                j += 1
            }
            while at(a, i) == UInt8(ascii: "0") { i += 1 }
            while at(b, j) == UInt8(ascii: "0") { j += 1 }
            var firstDiff = ComparisonResult.orderedSame
            while let ca = at(a, i), let cb = at(b, j), isDigit(ca), isDigit(cb) {
                if firstDiff == .orderedSame { firstDiff = compare3(ca, cb) }
                i += 1
                j += 1
            }
            if let ca = at(a, i), isDigit(ca) { return .orderedDescending }
            if let cb = at(b, j), isDigit(cb) { return .orderedAscending }
            if firstDiff != .orderedSame { return firstDiff }
        }
        return .orderedSame
    }
}
