import CordonScan

enum Typosquat {
    static func normalize(_ name: String, _ eco: PackageEcosystem) -> String {
        eco == .pypi ? normalizePyPIName(name) : name.lowercased()
    }

    /// Confusable folding: 0→o, 1→l, rn→m, l→i, separators removed.
    static func fold(_ name: String) -> String {
        var s = Array(name.lowercased().unicodeScalars.map(Character.init))
        s.removeAll { $0 == "-" || $0 == "_" || $0 == "." }
        var out: [Character] = []
        var i = 0
        while i < s.count {
            if s[i] == "r" && i + 1 < s.count && s[i + 1] == "n" { out.append("m"); i += 2; continue }
            switch s[i] {
            case "0": out.append("o")
            case "1", "l": out.append("i")
            default: out.append(s[i])
            }
            i += 1
        }
        return String(out)
    }

    /// Damerau–Levenshtein (optimal string alignment) distance ≤ 1.
    static func withinOneEdit(_ a: [Character], _ b: [Character]) -> Bool {
        if a == b { return true }
        let (s, t) = a.count <= b.count ? (a, b) : (b, a)
        if t.count - s.count > 1 { return false }
        if s.count == t.count {
            var diffs: [Int] = []
            for i in 0..<s.count where s[i] != t[i] {
                diffs.append(i)
                if diffs.count > 2 { return false }
            }
            if diffs.count == 1 { return true }
            if diffs.count == 2 {
                let i = diffs[0], j = diffs[1]
                return j == i + 1 && s[i] == t[j] && s[j] == t[i]
            }
            return false
        }
        // One insertion into s gives t.
        var i = 0, j = 0, skipped = false
        while i < s.count && j < t.count {
            if s[i] == t[j] { i += 1; j += 1; continue }
            if skipped { return false }
            skipped = true
            j += 1
        }
        return true
    }

    static func metadataFile(_ package: PackageUnderScan) -> String {
        let candidates = package.ecosystem == .npm
            ? ["package.json"]
            : ["PKG-INFO", "METADATA", "pyproject.toml", "setup.py", "setup.cfg"]
        for c in candidates {
            if let f = package.files.first(where: { $0.path == c || $0.path.hasSuffix("/" + c) }) { return f.path }
        }
        return package.files.first?.path ?? ""
    }

    /// The popular name `name` imitates, and how ("one edit away from", "a confusable spelling
    /// of"); nil for a name that imitates none, or is itself popular.
    static func imitated(_ name: String, _ ecosystem: PackageEcosystem) -> (popular: String, how: String)? {
        let popular = ecosystem == .pypi ? PopularNames.pypiNormalized : PopularNames.npmNormalized
        let name = normalize(name, ecosystem)
        guard !name.isEmpty, !popular.contains(name) else { return nil }
        let nameChars = Array(name)
        let folded = fold(name)
        for p in ecosystem == .pypi ? PopularNames.pypiList : PopularNames.npmList {
            // Distance-1 matches on very short names are mostly noise.
            if p.count >= 4 && withinOneEdit(nameChars, Array(p)) { return (p, "one edit away from") }
            if fold(p) == folded { return (p, "a confusable spelling of") }
        }
        return nil
    }

    static func check(_ package: PackageUnderScan) -> [Finding] {
        guard let (p, how) = imitated(package.name, package.ecosystem) else { return [] }
        return [Finding(rule: RuleID.typosquat, severity: .medium, file: metadataFile(package), startLine: 1, endLine: 1,
                        message: "package name `\(package.name)` is \(how) popular \(package.ecosystem.rawValue) package `\(p)`",
                        evidence: makeEvidence(bytes(package.name)))]
    }
}

extension PopularNames {
    static let pypiList: [String] = pypi.map { normalizePyPIName($0) }
    static let pypiNormalized: Set<String> = Set(pypiList)
    static let npmList: [String] = npm.map { $0.lowercased() }
    static let npmNormalized: Set<String> = Set(npmList)
}
