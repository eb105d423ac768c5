/// The package ecosystems `cordon scan` understands, spelled as OSV spells them.
public enum Ecosystem: String, Sendable, CaseIterable {
    case pypi = "PyPI"
    case npm
    case debian = "Debian"
    case alpine = "Alpine"

    /// Parses an OSV `affected[].package.ecosystem` value. Release-qualified ecosystems such as
    /// `Debian:12` or `Alpine:v3.18` map to their base ecosystem. Matching is case-sensitive,
    /// as OSV ecosystem names are.
    public init?(osv text: String) {
        let base = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? text
        self.init(rawValue: base)
    }

    /// The canonical form of a package name in this ecosystem, for equality tests.
    public func normalizedName(_ name: String) -> String {
        switch self {
        case .pypi: return normalizePyPIName(name)
        case .npm, .debian, .alpine: return name
        }
    }
}

/// PEP 503 name normalisation: runs of `-`, `_` and `.` become a single `-`, then lower-case.
/// `Foo.Bar_baz` → `foo-bar-baz`.
public func normalizePyPIName(_ name: String) -> String {
    var out: [UInt8] = []
    var inRun = false
    for c in name.utf8 {
        if c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") {
            if !inRun { out.append(UInt8(ascii: "-")) }
            inRun = true
        } else {
            out.append(c)
            inRun = false
        }
    }
    return String(decoding: out, as: UTF8.self).lowercased()
}

/// Whether `name` is a Python project name as PEP 508 spells one: ASCII letters, digits, '.',
/// '_' and '-', beginning and ending with a letter or digit (at most 256 bytes here).
public func isValidPyPIName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
    guard let first = bytes.first, let last = bytes.last, bytes.count <= 256, alnum(first), alnum(last) else { return false }
    return bytes.allSatisfy { alnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }
}

/// Compares two versions with the ordering rules of `ecosystem`
/// (PyPI: PEP 440, npm: SemVer 2.0.0, Debian: dpkg, Alpine: apk).
/// Returns nil when either side does not parse.
public func compareVersions(_ a: String, _ b: String, ecosystem: Ecosystem) -> ComparisonResult? {
    switch ecosystem {
    case .pypi:
        guard let x = PEP440Version(a), let y = PEP440Version(b) else { return nil }
        return x.compare(to: y)
    case .npm:
        return compareSemVer(a, b)
    case .debian:
        guard let x = DebianVersion(a), let y = DebianVersion(b) else { return nil }
        return x.compare(to: y)
    case .alpine:
        guard let x = AlpineVersion(a), let y = AlpineVersion(b) else { return nil }
        return x.compare(to: y)
    }
}

/// Compares two SemVer 2.0.0 strings; nil when either side does not parse.
public func compareSemVer(_ a: String, _ b: String) -> ComparisonResult? {
    guard let x = SemVer(a), let y = SemVer(b) else { return nil }
    return x.compare(to: y)
}
