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

    public init(name: String, normalizedName: String, extras: [String] = [], specifier: String, pinnedVersion: String?, marker: String? = nil,
                hashes: [String] = [], line: Int) {
        self.name = name
        self.normalizedName = normalizedName
        self.extras = extras
        self.specifier = specifier
        self.pinnedVersion = pinnedVersion
        self.marker = marker
        self.hashes = hashes
        self.line = line
    }
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
    /// Longest requirement (a command-line argument, or a file's logical line).
    public static let maxLine = 64 << 10
    /// The variables a PEP 508 marker may name.
    static let markerVariables: Set<String> = ["python_version", "python_full_version", "os_name", "sys_platform", "platform_release",
                                               "platform_system", "platform_version", "platform_machine", "platform_python_implementation",
                                               "implementation_name", "implementation_version", "extra"]

    public static func parse(_ text: String, source: String) throws(RequirementsError) -> [Requirement] {
        guard text.utf8.count <= maxBytes else { throw RequirementsError(source: source, line: 0, reason: "over \(maxBytes) bytes") }
        // Read only what every installer reads the same way: printable ASCII (pip also splits
        // lines at U+0085 and U+2028, and decodes a file by a `coding:` comment in its first two
        // lines), and no comment that ends in '\\' (pip does not continue a comment line; a
        // plain reader would).
        var lineNumber = 1
        let bytes = Array(text.utf8)
        for (i, c) in bytes.enumerated() {
            if c == 10 { lineNumber += 1 }
            else if c == 13 && (i + 1 == bytes.count || bytes[i + 1] != 10) {
                throw RequirementsError(source: source, line: lineNumber, reason: "a carriage return not followed by a line feed: installers would start a new line there")
            } else if c != 9 && c != 13 && (c < 0x20 || c > 0x7e) {
                throw RequirementsError(source: source, line: lineNumber, reason: "a byte outside printable ASCII (0x\(String(c, radix: 16))): a requirements file is read only when every installer would read it the same way")
            }
        }
        for (i, raw) in text.utf8.split(separator: 10, omittingEmptySubsequences: false).prefix(2).enumerated() {
            let line = String(decoding: raw, as: UTF8.self)
            if line.drop(while: { $0 == " " || $0 == "\t" || $0 == "\u{0C}" }).hasPrefix("#"), line.contains("coding:") || line.contains("coding=") {
                throw RequirementsError(source: source, line: i + 1, reason: "an encoding declaration: installers would decode the file by it (write the file in ASCII, without one)")
            }
        }
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
                if let hash = line.firstIndex(of: "#"), hash == line.startIndex || line[line.index(before: hash)] == " " || line[line.index(before: hash)] == "\t" {
                    throw RequirementsError(source: source, line: index + 1, reason: "a comment that ends in '\\': installers disagree on whether it continues onto the next line")
                }
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
        guard text.utf8.count <= maxLine else { throw fail("longer than \(maxLine) bytes") }
        if text.utf8.contains(where: { ($0 < 0x20 && $0 != 9) || $0 > 0x7e }) { throw fail("a control character or a byte outside printable ASCII") }
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
        var seenHashes = Set<String>()
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
                guard parts.count == 2, parts[0].lowercased() == "sha256", parts[1].utf8.count == 64,
                      parts[1].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }) else {
                    throw fail("--hash \"\(SimpleIndex.shown(value))\": expected sha256:HEX (64 hex digits; Cordon checks sha256, so a hash it could not check is refused rather than ignored)")
                }
                let hash = "sha256:\(parts[1].lowercased())"
                if seenHashes.insert(hash).inserted { hashes.append(hash) }
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
            if let problem = markerProblem(m) { throw fail("the marker \"\(SimpleIndex.shown(m))\": \(problem)") }
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
        // pip reads a name ending like an archive as a file to install ("x-1.0-py3-none-any.whl").
        let lower = name.lowercased()
        if let suffix = [".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma", ".tar", ".egg"].first(where: { lower.hasSuffix($0) }) {
            throw fail("\"\(SimpleIndex.shown(name))\" ends in \(suffix), which installers take for a file to install: name the package and its version")
        }
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

extension RequirementsFile {
    /// Why `marker` is not a PEP 508 environment marker, or nil: only its variables, quoted
    /// strings, comparison operators, `in`, `not in`, `and`, `or` and parentheses (so that no
    /// option, URL or second requirement hides behind the ';').
    static func markerProblem(_ marker: String) -> String? {
        let b = Array(marker.utf8)
        var i = 0
        var depth = 0
        while i < b.count {
            let c = b[i]
            if c == 32 || c == 9 { i += 1; continue }
            if c == 40 { depth += 1; i += 1; continue }
            if c == 41 { depth -= 1; if depth < 0 { return "unbalanced ')'" }; i += 1; continue }
            if c == 34 || c == 39 {
                guard let end = b[(i + 1)...].firstIndex(of: c) else { return "an unclosed string" }
                i = end + 1
                continue
            }
            if let op = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"].first(where: { b[i...].starts(with: $0.utf8) }) { i += op.utf8.count; continue }
            guard (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c == 95 else { return "unexpected \"\(Character(Unicode.Scalar(c)))\"" }
            var j = i
            while j < b.count && ((b[j] >= 97 && b[j] <= 122) || (b[j] >= 65 && b[j] <= 90) || (b[j] >= 48 && b[j] <= 57) || b[j] == 95 || b[j] == 46) { j += 1 }
            let word = String(decoding: b[i..<j], as: UTF8.self)
            guard markerVariables.contains(word) || ["and", "or", "in", "not"].contains(word) else { return "\"\(word)\" is not a marker variable or keyword" }
            i = j
        }
        return depth == 0 ? nil : "unbalanced '('"
    }
}

extension Requirement {
    /// The requirement as Cordon read it, written back in one spelling every installer reads
    /// the same way: what a resolver is given, never the request's own text.
    public var canonical: String {
        var out = normalizedName
        if !extras.isEmpty { out += "[\(extras.joined(separator: ","))]" }
        out += specifier
        if let marker { out += " ; \(marker)" }
        for hash in hashes { out += " --hash=\(hash)" }
        return out
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
