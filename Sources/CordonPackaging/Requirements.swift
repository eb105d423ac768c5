import CordonScan

/// One requirement of an install request: `NAME[EXTRAS] SPECIFIER ; MARKER --hash=ALG:HEX ...`,
/// as pip's requirements files (and its hash-checking mode) write them.
public struct Requirement: Sendable, Equatable {
    /// As written, and PEP 503-normalized.
    public var name: String
    public var normalizedName: String
    public var extras: [String]
    /// The version clauses, as written without spaces (`==2.31.0`, `>=2,<3`); "" for any version.
    public var specifier: String
    /// The version when the specifier is exactly one `==` clause without a wildcard.
    public var pinnedVersion: String?
    public var marker: String?
    /// `sha256:HEX` (lowercase), as `--hash` gave them.
    public var hashes: [String]
    /// Where it was written: 1-based line of a requirements file, or the argument's position.
    public var line: Int

    /// The sha256 digests among `hashes`.
    public var sha256Hashes: [String] { hashes.compactMap { $0.hasPrefix("sha256:") ? String($0.dropFirst(7)) : nil } }
}

/// Why a request was refused; `description` says where (`requirements.txt:4`) and why.
public struct RequirementsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var source: String
    public var line: Int
    public var reason: String
    public var description: String { "\(source):\(line): \(reason)" }
}

/// Reads requirements files and requirement arguments. Only what can be installed through the
/// gate is taken: names with version clauses and hashes. Everything that would choose where
/// packages come from or how they are built (`-i`, `--extra-index-url`, `-f`, `-e`, `-r`, a URL,
/// a path, a VCS link) is refused, naming the line: the index and the rules are the policy's
/// `[install]` table, and a request cannot widen them.
public enum RequirementsFile {
    public static let maxBytes = 1 << 20
    public static let maxRequirements = 10_000
    static let hashAlgorithms: [String: Int] = ["sha256": 64, "sha384": 96, "sha512": 128]

    public static func parse(_ text: String, source: String) throws(RequirementsError) -> [Requirement] {
        guard text.utf8.count <= maxBytes else { throw RequirementsError(source: source, line: 0, reason: "over \(maxBytes) bytes") }
        var out: [Requirement] = []
        var seen: [String: Int] = [:]
        // Physical lines joined where one ends in '\', numbered by the first of them.
        var logical = ""
        var first = 0
        // Split on the byte: in a String "\r\n" is one Character, not a "\n".
        let lines = text.utf8.split(separator: 10, omittingEmptySubsequences: false)
        for (index, raw) in lines.enumerated() {
            let line = Substring(String(decoding: raw.last == 13 ? raw.dropLast() : raw, as: UTF8.self))
            if logical.isEmpty { first = index + 1 }
            if line.hasSuffix("\\") {
                logical += line.dropLast() + " "
                if index < lines.count - 1 { continue }
            } else {
                logical += line
            }
            defer { logical = "" }
            guard let requirement = try parseLine(logical, source: source, line: first) else { continue }
            if let earlier = seen[requirement.normalizedName] {
                throw RequirementsError(source: source, line: first, reason: "\(requirement.name) is required twice (line \(earlier) too): write it once")
            }
            seen[requirement.normalizedName] = first
            out.append(requirement)
            guard out.count <= maxRequirements else { throw RequirementsError(source: source, line: first, reason: "more than \(maxRequirements) requirements") }
        }
        return out
    }

    /// One requirement (a command-line argument, or a file's logical line); nil for a blank or
    /// comment line.
    public static func parseLine(_ text: String, source: String, line: Int) throws(RequirementsError) -> Requirement? {
        func fail(_ reason: String) -> RequirementsError { RequirementsError(source: source, line: line, reason: reason) }
        if text.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7f }) { throw fail("a control character") }
        // A comment starts at '#' at the start or after whitespace (pip's rule).
        var body = Substring(text)
        var previous: Character = " "
        for i in text.indices {
            if text[i] == "#" && (previous == " " || previous == "\t") { body = text[..<i]; break }
            previous = text[i]
        }
        var words = body.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return nil }
        // --hash options, wherever they are on the line after the requirement.
        var hashes: [String] = []
        var rest: [String] = []
        var i = 0
        while i < words.count {
            let w = words[i]
            if w == "--hash" || w.hasPrefix("--hash=") {
                let value: String
                if w == "--hash" {
                    guard i + 1 < words.count else { throw fail("--hash needs ALGORITHM:HEX") }
                    value = words[i + 1]
                    i += 2
                } else {
                    value = String(w.dropFirst(7))
                    i += 1
                }
                let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, let length = hashAlgorithms[parts[0].lowercased()], parts[1].utf8.count == length,
                      parts[1].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }) else {
                    throw fail("--hash \"\(SimpleIndex.shown(value))\": expected sha256:HEX (64 hex digits; sha384 and sha512 are read too)")
                }
                let hash = "\(parts[0].lowercased()):\(parts[1].lowercased())"
                if !hashes.contains(hash) { hashes.append(hash) }
            } else {
                rest.append(w)
                i += 1
            }
        }
        words = rest
        guard let head = words.first else { throw fail("--hash with no requirement before it") }
        if head.hasPrefix("-") {
            throw fail("\(SimpleIndex.shown(head)) is not taken here: the index, the sources and the rules come from the policy's [install] table (a request names packages, versions and hashes)")
        }
        let requirement = words.joined(separator: " ")
        if requirement.contains("://") || requirement.contains(" @ ") || requirement.contains("@") || head.hasPrefix(".") || head.hasPrefix("/") || head.hasPrefix("~") {
            throw fail("\"\(SimpleIndex.shown(requirement))\": a URL, path or VCS link is not installed through the gate; name the package and its version")
        }
        // NAME [EXTRAS] CLAUSES ; MARKER
        var spec = Substring(requirement)
        var marker: String?
        if let semicolon = spec.firstIndex(of: ";") {
            let m = spec[spec.index(after: semicolon)...].trimmingCharacters()
            guard !m.isEmpty else { throw fail("an empty marker after ';'") }
            marker = m
            spec = spec[..<semicolon]
        }
        // Spaces may stand between tokens, never inside one ("requests 2.31", "a b").
        func isWordByte(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45 || c == 42 || c == 43 || c == 33 }
        let bytes = Array(spec.utf8)
        for i in bytes.indices where bytes[i] == 32 || bytes[i] == 9 {
            guard let before = bytes[..<i].last(where: { $0 != 32 && $0 != 9 }), let after = bytes[(i + 1)...].first(where: { $0 != 32 && $0 != 9 }) else { continue }
            if isWordByte(before) && isWordByte(after) { throw fail("\"\(SimpleIndex.shown(String(spec)))\": a space inside a name or version") }
        }
        let compact = String(spec.filter { $0 != " " && $0 != "\t" })
        let nameEnd = compact.firstIndex(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-")) }) ?? compact.endIndex
        let name = String(compact[..<nameEnd])
        guard isValidPyPIName(name) else { throw fail("\"\(SimpleIndex.shown(name))\" is not a package name") }
        var after = compact[nameEnd...]
        var extras: [String] = []
        if after.hasPrefix("[") {
            guard let close = after.firstIndex(of: "]") else { throw fail("extras are [a,b]: no closing ']'") }
            for extra in after[after.index(after: after.startIndex)..<close].split(separator: ",", omittingEmptySubsequences: false) {
                guard isValidPyPIName(String(extra)) else { throw fail("\"\(SimpleIndex.shown(String(extra)))\" is not an extra's name") }
                extras.append(normalizePyPIName(String(extra)))
            }
            after = after[after.index(after: close)...]
        }
        let specifier = String(after)
        var pinned: String?
        if !specifier.isEmpty {
            let clauses = specifier.split(separator: ",", omittingEmptySubsequences: false)
            for clause in clauses {
                guard let op = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"].first(where: { clause.hasPrefix($0) }) else {
                    throw fail("\"\(SimpleIndex.shown(String(clause)))\": a version clause starts with ==, !=, <=, >=, <, >, ~= or ===")
                }
                let version = clause.dropFirst(op.count)
                let wildcard = (op == "==" || op == "!=") && version.hasSuffix(".*")
                let bare = wildcard ? String(version.dropLast(2)) : String(version)
                guard op == "===" ? (!bare.isEmpty && bare.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 44 })) : PEP440Version(bare) != nil else {
                    throw fail("\"\(SimpleIndex.shown(String(version)))\" is not a PEP 440 version")
                }
                if clauses.count == 1 && op == "==" && !wildcard { pinned = bare }
            }
        }
        return Requirement(name: name, normalizedName: normalizePyPIName(name), extras: extras, specifier: specifier,
                           pinnedVersion: pinned, marker: marker, hashes: hashes, line: line)
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
