import CordonJSON
import CordonPolicy
import CordonScan

/// One project's page of a package index's simple API as JSON (PEP 691, with PEP 700's
/// `upload-time`, `size` and `versions`, PEP 714's `core-metadata` and PEP 740's `provenance`),
/// read under caps. The page is untrusted: the downloader worker fetches it inside a sandbox and
/// cordond reads what the worker passes on again, with this same reader.
///
/// What is kept of each file is what the gate decides on and what the record shows; a file
/// whose name is not a wheel or an sdist of this very project is refused with the page (an
/// index that lists `evil-1.0-py3-none-any.whl` under `requests` is not one to install from).
public struct ProjectPage: Sendable, Equatable {
    /// The project's name as the page spells it, and PEP 503-normalized.
    public var name: String
    public var normalizedName: String
    /// `meta.api-version`: "1.0" and up (a major version other than 1 is refused).
    public var apiVersion: String
    public var files: [IndexFile]
    /// Files listed that are neither a wheel nor an sdist this gate reads (eggs, installers,
    /// other archive formats), with why: skipped, as pip skips them, and never installed.
    public var skipped: [(filename: String, reason: String)] = []

    public static func == (a: ProjectPage, b: ProjectPage) -> Bool {
        a.name == b.name && a.normalizedName == b.normalizedName && a.apiVersion == b.apiVersion && a.files == b.files
            && a.skipped.map(\.filename) == b.skipped.map(\.filename) && a.skipped.map(\.reason) == b.skipped.map(\.reason)
    }
}

public struct IndexFile: Sendable, Equatable {
    public var filename: String
    /// As the page gives it: absolute, or relative to the page's URL.
    public var url: String
    /// Hash name → lowercase hex (`sha256` when the index gives one; others kept as given).
    public var hashes: [String: String]
    public var requiresPython: String?
    /// nil: not yanked; otherwise the reason, "" when the index gives none (PEP 592).
    public var yanked: String?
    /// PEP 700 `upload-time`, seconds since the epoch.
    public var uploadTime: Double?
    public var size: Int64?
    /// The index serves the file's METADATA on its own (PEP 658/714).
    public var coreMetadata: Bool
    /// PEP 740: the URL of the file's provenance object, when the index has one.
    public var provenance: String?
    /// What the name says the file is.
    public var kind: DistributionFile

    public var sha256: String? { hashes["sha256"] }
}

/// Why a page was refused; `description` names the member (`files[3].hashes.sha256`).
public struct IndexPageError: Error, Sendable, Equatable, CustomStringConvertible {
    public var member: String
    public var reason: String
    public var description: String { member.isEmpty ? reason : "\(member): \(reason)" }
}

public enum SimpleIndex {
    /// The media type of a PEP 691 JSON page.
    public static let jsonMediaType = "application/vnd.pypi.simple.v1+json"

    public struct Limits: Sendable {
        /// Bigger pages are refused unread (pypi.org's largest project pages are a few MB).
        public var maxBytes = 32 << 20
        public var maxFiles = 100_000
        /// Longest string kept (a URL, a file name, a yanked reason).
        public var maxString = 4096
        public init() {}
    }

    /// Reads a project page (`GET /simple/NAME/` with `Accept: application/vnd.pypi.simple.v1+json`)
    /// for the project `expected` (any spelling: compared normalized).
    public static func parseProjectPage(_ bytes: [UInt8], expected: String, limits: Limits = Limits()) throws(IndexPageError) -> ProjectPage {
        guard bytes.count <= limits.maxBytes else { throw IndexPageError(member: "", reason: "the page is \(bytes.count) bytes, over the \(limits.maxBytes)-byte cap") }
        let page: JSON
        do { page = try JSON.parse(bytes, options: JSON.ParseOptions(maxDepth: 16, maxValues: limits.maxFiles * 24 + 64, maxBytes: limits.maxBytes)) }
        catch { throw IndexPageError(member: "", reason: "not JSON: \(error)") }
        guard case .object = page else { throw IndexPageError(member: "", reason: "expected an object, found \(page.typeName)") }
        guard case .string(let apiVersion)? = page["meta"]?["api-version"] else {
            throw IndexPageError(member: "meta.api-version", reason: "missing: not a PEP 691 page")
        }
        guard apiVersion.split(separator: ".", omittingEmptySubsequences: false).first == "1" else {
            throw IndexPageError(member: "meta.api-version", reason: "\"\(shown(apiVersion))\": only version 1 of the simple API is read")
        }
        let name = try string(page, "name", member: "name", limits)
        guard isValidPyPIName(name) else { throw IndexPageError(member: "name", reason: "\"\(shown(name))\" is not a package name") }
        let normalized = normalizePyPIName(name)
        guard normalized == normalizePyPIName(expected) else {
            throw IndexPageError(member: "name", reason: "the page is for \"\(shown(name))\", not \"\(shown(expected))\"")
        }
        guard case .array(let items)? = page["files"] else { throw IndexPageError(member: "files", reason: "missing, or not an array") }
        guard items.count <= limits.maxFiles else { throw IndexPageError(member: "files", reason: "\(items.count) files, over the cap of \(limits.maxFiles)") }
        var result = ProjectPage(name: name, normalizedName: normalized, apiVersion: apiVersion, files: [])
        result.files.reserveCapacity(items.count)
        var seen = Set<String>()
        for (i, item) in items.enumerated() {
            switch try file(item, member: "files[\(i)]", project: normalized, limits) {
            case .kept(let f):
                guard seen.insert(f.filename).inserted else {
                    throw IndexPageError(member: "files[\(i)].filename", reason: "\"\(shown(f.filename))\" is listed twice")
                }
                result.files.append(f)
            case .skipped(let filename, let reason): result.skipped.append((filename, reason))
            }
        }
        return result
    }

    enum Listed { case kept(IndexFile), skipped(String, String) }

    static func file(_ item: JSON, member: String, project: String, _ limits: Limits) throws(IndexPageError) -> Listed {
        guard case .object = item else { throw IndexPageError(member: member, reason: "expected an object, found \(item.typeName)") }
        let filename = try string(item, "filename", member: "\(member).filename", limits)
        let kind: DistributionFile
        switch DistributionFile.parse(filename, project: project) {
        case .success(let k): kind = k
        case .failure(let why): return .skipped(filename, why.reason)
        }
        guard kind.normalizedName == project else {
            throw IndexPageError(member: "\(member).filename", reason: "\"\(shown(filename))\" is a file of \"\(kind.normalizedName)\", not of \"\(project)\"")
        }
        let url = try string(item, "url", member: "\(member).url", limits)
        guard !url.isEmpty, !url.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value > 0x7e }), !url.contains("?"), !url.contains("#") else {
            throw IndexPageError(member: "\(member).url", reason: "empty, with a query or fragment, or not printable ASCII without spaces")
        }
        // Installers name a file by its URL, not by `filename`: the two must agree.
        let last = url.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        guard percentDecoded(last) == filename else {
            throw IndexPageError(member: "\(member).url", reason: "its last segment \"\(shown(last))\" is not the file's name \"\(shown(filename))\"")
        }
        guard case .object(let hashMembers)? = item["hashes"] else { throw IndexPageError(member: "\(member).hashes", reason: "missing, or not an object") }
        var hashes: [String: String] = [:]
        for (algorithm, value) in hashMembers {
            guard case .string(let hex) = value, !hex.isEmpty, hex.utf8.count <= 256,
                  hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }) else {
                throw IndexPageError(member: "\(member).hashes.\(shown(algorithm))", reason: "expected a hex digest")
            }
            let name = algorithm.lowercased()
            guard name.utf8.count <= 32 else { throw IndexPageError(member: "\(member).hashes", reason: "a hash name over 32 bytes") }
            if let earlier = hashes[name], earlier != hex.lowercased() {
                throw IndexPageError(member: "\(member).hashes.\(name)", reason: "given twice, with two values")
            }
            hashes[name] = hex.lowercased()
        }
        if let sha = hashes["sha256"], sha.utf8.count != 64 {
            throw IndexPageError(member: "\(member).hashes.sha256", reason: "\(sha.utf8.count) hex digits, not 64")
        }
        var out = IndexFile(filename: filename, url: url, hashes: hashes, requiresPython: nil, yanked: nil, uploadTime: nil,
                            size: nil, coreMetadata: false, provenance: nil, kind: kind)
        switch item["requires-python"] {
        case nil, .null?: break
        case .string(let s)?: out.requiresPython = String(s.prefix(limits.maxString))
        case let v?: throw IndexPageError(member: "\(member).requires-python", reason: "expected a string or null, found \(v.typeName)")
        }
        switch item["yanked"] {
        case nil, .bool(false)?: break
        case .bool(true)?: out.yanked = ""
        case .string(let reason)?: out.yanked = String(reason.prefix(limits.maxString))
        case let v?: throw IndexPageError(member: "\(member).yanked", reason: "expected a boolean or a string, found \(v.typeName)")
        }
        switch item["upload-time"] {
        case nil, .null?: break
        case .string(let text)?:
            guard let t = Timestamp.parse(text) else {
                throw IndexPageError(member: "\(member).upload-time", reason: "\"\(shown(text))\" is not an ISO 8601 UTC time (yyyy-mm-ddThh:mm:ss[.ffffff]Z)")
            }
            out.uploadTime = t
        case let v?: throw IndexPageError(member: "\(member).upload-time", reason: "expected a string, found \(v.typeName)")
        }
        switch item["size"] {
        case nil: break
        case .int(let n)? where n >= 0: out.size = n
        case let v?: throw IndexPageError(member: "\(member).size", reason: "expected a non-negative integer, found \(v.typeName)")
        }
        // PEP 714 renamed `dist-info-metadata` to `core-metadata`; either is a boolean or the
        // metadata file's hashes.
        for key in ["core-metadata", "dist-info-metadata"] {
            switch item[key] {
            case nil, .bool(false)?, .null?: continue
            case .bool(true)?, .object?: out.coreMetadata = true
            case let v?: throw IndexPageError(member: "\(member).\(key)", reason: "expected a boolean or an object, found \(v.typeName)")
            }
        }
        switch item["provenance"] {
        case nil, .null?: break
        case .string(let s)? where !s.isEmpty && s.utf8.count <= limits.maxString && !s.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value > 0x7e }):
            out.provenance = s
        case let v?: throw IndexPageError(member: "\(member).provenance", reason: "expected a URL or null, found \(v.typeName == "string" ? "an empty, long or non-ASCII string" : v.typeName)")
        }
        return .kept(out)
    }

    /// `%XX` escapes decoded (a malformed one is kept as written, so it cannot match a name).
    static func percentDecoded(_ text: String) -> String {
        let b = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < b.count {
            if b[i] == 37, i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func string(_ object: JSON, _ key: String, member: String, _ limits: Limits) throws(IndexPageError) -> String {
        guard let value = object[key] else { throw IndexPageError(member: member, reason: "missing") }
        guard case .string(let s) = value else { throw IndexPageError(member: member, reason: "expected a string, found \(value.typeName)") }
        guard s.utf8.count <= limits.maxString else { throw IndexPageError(member: member, reason: "\(s.utf8.count) bytes, over the cap of \(limits.maxString)") }
        return s
    }

    /// A value from a page as a message shows it: at most 80 characters, control characters as '?'.
    public static func shown(_ s: String, limit: Int = 80) -> String {
        String(s.unicodeScalars.prefix(limit).map { isUnprintable($0) ? "?" : Character($0) })
    }

    /// What a package's or index's text may not put on a terminal or in a record line as it
    /// is: controls (C0, DEL, C1: an 8-bit CSI is an escape sequence too) and every character
    /// that draws nothing or reorders text — Unicode's format characters (bidi marks, overrides
    /// and isolates, zero-width characters, the soft hyphen, tag characters, the BOM), line and
    /// paragraph separators, private-use and unassigned code points, variation selectors. The
    /// same set as CordonSystem's PrintableText, which this pure layer cannot use.
    public static func isUnprintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned: return true
        default:
            // Variation selectors and the Mongolian vowel separator draw nothing either.
            let v = scalar.value
            return (0xfe00...0xfe0f).contains(v) || (0xe0100...0xe01ef).contains(v) || v == 0x180e
        }
    }
}

/// Where an index's pages and files are, as absolute URLs (RFC 3986 reference resolution,
/// http and https only, no query or fragment).
public enum IndexURL {
    /// A project's page: the index's URL, the PEP 503-normalized name, and the trailing '/'
    /// PEP 503 gives every project URL.
    public static func page(index: ServiceURL, project: String) -> String {
        "\(index)/\(normalizePyPIName(project))/"
    }

    /// `reference` (a file's `url` on the page at `page`) as an absolute URL, split.
    public static func resolve(_ reference: String, against page: String) -> Result<ServiceURL, ServiceURL.Problem> {
        let absolute: String
        if reference.hasPrefix("http://") || reference.hasPrefix("https://") {
            absolute = reference
        } else if let colon = reference.firstIndex(of: ":"), !reference[..<colon].contains("/") {
            // A scheme of another kind (RFC 3986: letters before the first ':' and any '/').
            return .failure(ServiceURL.Problem(message: "\"\(SimpleIndex.shown(reference))\" is not an http or https URL"))
        } else {
            guard case .success(let base) = ServiceURL.parse(page) else { return .failure(ServiceURL.Problem(message: "the page's URL \(page) does not parse")) }
            let origin = "\(base.scheme)://\(base.host.contains(":") ? "[\(base.host)]" : base.host):\(base.port)"
            if reference.hasPrefix("//") {
                absolute = "\(base.scheme):\(reference)"
            } else if reference.hasPrefix("/") {
                absolute = origin + removingDotSegments(reference)
            } else {
                // The page's path up to its last '/' (a page URL ends in one).
                let pagePath = page.hasSuffix("/") ? base.path + "/" : String(base.path[..<(base.path.lastIndex(of: "/") ?? base.path.startIndex)]) + "/"
                absolute = origin + removingDotSegments(pagePath + reference)
            }
        }
        return ServiceURL.parse(absolute)
    }

    /// RFC 3986 §5.2.4, for a path that begins with '/'.
    static func removingDotSegments(_ path: String) -> String {
        var out: [Substring] = []
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (i, part) in parts.enumerated() {
            let last = i == parts.count - 1
            switch part {
            case ".": if last { out.append("") }
            case "..":
                if !out.isEmpty { out.removeLast() }
                if last { out.append("") }
            default: out.append(part)
            }
        }
        return "/" + out.joined(separator: "/")
    }
}

/// Times as PEP 700 writes them (ISO 8601 in UTC: `2023-06-01T12:34:56.123456Z`), read and
/// written without a calendar library.
public enum Timestamp {
    /// Seconds since the epoch, or nil. Accepts `Z` or `+00:00`, one to nine fraction digits,
    /// years 1970–9999; nothing else (no local offsets: the PEP says UTC).
    public static func parse(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func digits(_ at: Int, _ count: Int) -> Int64? {
            guard at + count <= b.count else { return nil }
            var v: Int64 = 0
            for c in b[at..<(at + count)] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            return v
        }
        guard b.count >= 20, let year = digits(0, 4), b[4] == 45, let month = digits(5, 2), b[7] == 45, let day = digits(8, 2),
              b[10] == 84 || b[10] == 116, let hour = digits(11, 2), b[13] == 58, let minute = digits(14, 2), b[16] == 58,
              let second = digits(17, 2) else { return nil }
        guard (1970...9999).contains(year), (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second) else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count && b[i] == 46 {
            i += 1
            let start = i
            var scale = 0.1
            while i < b.count && b[i] >= 48 && b[i] <= 57 && i - start < 9 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        let rest = Array(b[i...])
        guard rest == [90] || rest == [122] || rest == Array("+00:00".utf8) else { return nil }
        return Double(daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) + fraction
    }

    /// `2023-06-01T12:34:56Z` (to the second) of seconds since the epoch.
    public static func format(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 253_402_300_800 else { return "\(seconds)" }
        let whole = Int64(seconds.rounded(.down))
        let days = whole / 86_400, rest = whole % 86_400
        let (y, m, d) = civilFromDays(days)
        func pad(_ n: Int64, _ w: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rest / 3600, 2)):\(pad(rest % 3600 / 60, 2)):\(pad(rest % 60, 2))Z"
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
