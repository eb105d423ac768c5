import CordonArchive
import CordonHeuristics
import CordonJSON
import CordonPackaging
import CordonPolicy
import CordonScan
import CordonSystem
import CordonVulnDB

/// One archive the install gate is about to install, checked as the file the resolver chose:
/// `cordon-scan check` runs this inside a sandbox (no network, the archive read-only) and prints
/// the result; cordond reads it as untrusted JSON and decides with `InstallGate`.
///
/// What is checked besides the scanner's usual rules: the archive's own METADATA or PKG-INFO
/// identity (reported, for the gate to compare with what was resolved), advisories matched by
/// the *resolved* name and version (never by what the file claims), the `typosquat` match of
/// the resolved name, and for a wheel its RECORD: every member listed with a matching sha256
/// and size, nothing listed that is missing, no member twice (a zip may hold two entries of one
/// name, and installers disagree on which one wins), no link of any kind.
public enum PackageCheck {
    public struct Expected: Sendable, Equatable {
        public var name: String
        public var version: String
        public var filename: String
        public init(name: String, version: String, filename: String) {
            self.name = name
            self.version = version
            self.filename = filename
        }
    }

    /// Findings and RECORD problems kept in a result (the count says how many there were).
    public static let maxFindings = 50
    public static let maxRecordProblems = 20
    /// The largest text file the heuristics read (CordonHeuristics' limit).
    public static let maxReadText = 4 * 1024 * 1024

    /// The result as one JSON object (the worker's line for this archive).
    /// `zip`: a wheel's central directory as installers read it (`ZipDirectory`), which what
    /// libarchive lists must match member for member.
    public static func check(_ reader: ArchiveReader, sha256: String, size: Int64, expected: Expected, database: VulnDatabase?,
                             zip: ZipDirectory? = nil) -> JSON {
        var out: [(String, JSON)] = [("filename", .string(expected.filename)), ("sha256", .string(sha256)), ("size", .int(size))]
        let kind: DistributionFile
        switch DistributionFile.parse(expected.filename) {
        case .success(let k): kind = k
        case .failure(let e): return .object(out + [("error", .string(e.description))])
        }
        out.append(("kind", .string(kind.isSdist ? "sdist" : "wheel")))

        // Every member once: its bytes for the rules (a binary's head only), its digest and size
        // for RECORD.
        var files: [(path: String, bytes: [UInt8])] = []
        var digests: [String: (hash: String, size: Int)] = [:]
        var problems: [String] = []
        func problem(_ text: String) { problems.append(text) }
        var listed: [(path: String, isDirectory: Bool)] = []
        do {
            try reader.forEach { entry, read in
                listed.append((entry.path, entry.kind == .directory))
                switch entry.kind {
                case .directory: return
                case .symlink, .hardlink:
                    problem("\(shown(entry.path)) is a \(entry.kind.rawValue) (a package has regular files only)")
                    return
                case .file: break
                }
                let bytes = try read()
                if digests[entry.path] != nil { problem("\(shown(entry.path)) appears twice in the archive") }
                var h = SHA256()
                h.update(bytes)
                digests[entry.path] = (urlsafeBase64(h.finalize()), bytes.count)
                files.append((entry.path, Inventory.retained(bytes)))
            }
        } catch {
            return .object(out + [("error", .string("\(error)"))])
        }

        if case .wheel = kind {
            if let zip {
                if let differs = zip.disagreement(with: listed) { return .object(out + [("error", .string("\(expected.filename): \(differs)"))]) }
            } else {
                return .object(out + [("error", .string("\(expected.filename): its central directory was not read"))])
            }
        }

        // Identity: the METADATA (wheel) or PKG-INFO (sdist) at the top.
        let metadata: (path: String, fields: [String: String])?
        switch kind {
        case .wheel:
            let infos = Set(files.compactMap { f -> String? in
                let parts = f.path.split(separator: "/")
                return parts.count >= 2 && parts[0].hasSuffix(".dist-info") ? String(parts[0]) : nil
            })
            if infos.count != 1 { problem("\(infos.count) .dist-info directories at the top (a wheel has one)") }
            metadata = infos.sorted().first.flatMap { info in
                files.first { $0.path == "\(info)/METADATA" }.map { ("\(info)/METADATA", Inventory.rfc822($0.bytes)) }
            }
        case .sdist:
            metadata = files.first { $0.path.split(separator: "/").count == 2 && $0.path.hasSuffix("/PKG-INFO") }
                .map { ($0.path, Inventory.rfc822($0.bytes)) }
        }
        if let metadata {
            out.append(("metadata", .object([("name", metadata.fields["name"].map { .string(shown($0)) } ?? .null),
                                             ("version", metadata.fields["version"].map { .string(shown($0)) } ?? .null),
                                             ("file", .string(shown(metadata.path)))])))
        } else {
            out.append(("metadata", .null))
            problem(kind.isSdist ? "no PKG-INFO at the top" : "no .dist-info/METADATA")
        }

        // RECORD (wheels): the installer's own list of what it will write.
        if case .wheel = kind, let info = metadata.map({ String($0.path.split(separator: "/")[0]) }) {
            let recordPath = "\(info)/RECORD"
            if let record = files.first(where: { $0.path == recordPath }) {
                var listed = Set<String>()
                for (i, row) in csvRows(record.bytes).enumerated() where !(row.count == 1 && row[0].isEmpty) {
                    guard row.count == 3 else { problem("RECORD line \(i + 1) has \(row.count) fields, not 3"); continue }
                    let path = row[0]
                    if !listed.insert(path).inserted { problem("RECORD lists \(shown(path)) twice"); continue }
                    if path == recordPath || path == "\(recordPath).jws" || path == "\(recordPath).p7s" { continue }
                    guard let actual = digests[path] else { problem("RECORD lists \(shown(path)), which the wheel does not have"); continue }
                    guard row[1].hasPrefix("sha256=") else { problem("\(shown(path)) has no sha256 in RECORD"); continue }
                    if String(row[1].dropFirst(7)) != actual.hash { problem("\(shown(path)): its sha256 differs from RECORD's") }
                    if !row[2].isEmpty && Int(row[2]) != actual.size { problem("\(shown(path)): \(actual.size) bytes, RECORD says \(shown(row[2]))") }
                }
                for path in digests.keys.sorted() where !listed.contains(path) && path != "\(recordPath).jws" && path != "\(recordPath).p7s" {
                    problem("\(shown(path)) is not in RECORD")
                }
            } else {
                problem("no \(shown(recordPath))")
            }
        }
        out.append(("problems", .array(problems.prefix(maxRecordProblems).map(JSON.string))))
        out.append(("problemCount", .int(Int64(problems.count))))

        // Advisories by what was resolved.
        if let database {
            if let reason = database.notCheckedReason(ecosystem: .pypi, version: expected.version) {
                out.append(("advisories", .array([])))
                out.append(("notChecked", .string(reason)))
            } else {
                do {
                    let found = try database.match(ecosystem: .pypi, name: expected.name, version: expected.version)
                    out.append(("advisories", .array(found.map { a in
                        .object([("id", .string(a.id)), ("severity", .string(ScanReport.severity(of: a).rawValue)),
                                 ("fixed", a.fixedIn.map(JSON.string) ?? .null)])
                    })))
                    out.append(("notChecked", .null))
                } catch {
                    out.append(("advisories", .array([])))
                    out.append(("notChecked", .string("the database could not be read: \(error)")))
                }
            }
        } else {
            out.append(("advisories", .array([])))
            out.append(("notChecked", .string("no vulnerability database")))
        }

        // The heuristics, on the package as it is; its typosquat match by the resolved name.
        let top = kind.isSdist ? files.first.map { String($0.path.split(separator: "/")[0]) + "/" } : nil
        let members = files.map { f -> PackageFile in
            let path = top.map { f.path.hasPrefix($0) ? String(f.path.dropFirst($0.count)) : f.path } ?? f.path
            return PackageFile(path: path, bytes: f.bytes)
        }
        let wheelInfo = metadata.flatMap { m in files.first { $0.path == m.path.replacingSuffix("METADATA", with: "WHEEL") } }.map { Inventory.rfc822($0.bytes) } ?? [:]
        let pure = (wheelInfo["root-is-purelib"] ?? "").lowercased() == "true" && (wheelInfo["tag"] ?? "").hasSuffix("-none-any")
        var findings = Heuristics.scan(PackageUnderScan(ecosystem: .pypi, name: expected.name, files: members, pureWheel: pure))
            .filter { $0.rule != "typosquat" }
        // What runs but the rules cannot read is a finding of its own: a gate that relies on the
        // rules must not pass code they never saw.
        for (member, file) in Swift.zip(files, members) {
            let size = digests[member.path]?.size ?? file.bytes.count
            let binary = file.bytes.prefix(8192).contains(0)
            func unread(_ rule: String, _ message: String) {
                findings.append(Finding(rule: rule, severity: .high, file: file.path, startLine: 1, endLine: 1, message: message, evidence: ""))
            }
            if file.path.hasSuffix(".pth") && (binary || size > PackageCheck.maxReadText) {
                unread("pth-unreadable", "a .pth file the rules cannot read (\(binary ? "binary" : "\(size) bytes")): Python runs its import lines at every start")
            } else if file.path.hasSuffix(".pyc") && !file.path.contains("__pycache__/") {
                unread("sourceless-module", "a compiled module with no source beside it: importable, and unreadable to the rules")
            } else if file.path.hasSuffix(".py") && size > PackageCheck.maxReadText {
                unread("unscanned-code", "a Python file of \(size) bytes, over the \(PackageCheck.maxReadText) the rules read")
            }
            // A wheel's top-level sitecustomize or usercustomize module (at the top, or in its
            // .data/purelib or platlib) is imported by the site module at every interpreter start
            // on that path, as a .pth's import lines are: code that runs with no import of it.
            if !kind.isSdist, let hook = Self.startupHook(file.path) {
                findings.append(Finding(rule: "startup-code", severity: .high, file: file.path, startLine: 1, endLine: 1,
                                        message: "\(hook) at the top of the site: Python runs it at every start, before any import", evidence: ""))
            }
        }
        findings.sort { $0.severity > $1.severity }
        out.append(("findings", .array(findings.prefix(maxFindings).map { f in
            .object([("rule", .string(f.rule)), ("severity", .string(f.severity.rawValue)), ("message", .string(shown(f.message, 300))),
                     ("file", .string(shown(f.file, 300)))])
        })))
        out.append(("findingCount", .int(Int64(findings.count))))
        out.append(("typosquatOf", Heuristics.typosquatOf(expected.name, ecosystem: .pypi).map(JSON.string) ?? .null))
        if kind.isSdist { out.append(("buildRequires", buildRequires(files))) }
        return .object(out)
    }

    /// RECORD's hash spelling: base64url without padding (PEP 376, PEP 427).
    static func urlsafeBase64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)], table[Int(n & 63)]]
            i += 3
        }
        if bytes.count - i == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)]]
        } else if bytes.count - i == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The rows of a CSV file as Python's csv module writes RECORD: fields split by ',', a field
    /// in double quotes may hold ',' and '""'; rows end at '\n' (a '\r' before it is dropped).
    static func csvRows(_ bytes: [UInt8]) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field: [UInt8] = []
        var quoted = false, wasQuoted = false
        var i = 0
        func endField() { row.append(String(decoding: field, as: UTF8.self)); field = []; wasQuoted = false }
        while i < bytes.count {
            let c = bytes[i]
            if quoted {
                if c == 34 {
                    if i + 1 < bytes.count && bytes[i + 1] == 34 { field.append(34); i += 2; continue }
                    quoted = false
                } else {
                    field.append(c)
                }
            } else if c == 34 && field.isEmpty && !wasQuoted {
                quoted = true
                wasQuoted = true
            } else if c == 44 {
                endField()
            } else if c == 10 {
                endField()
                rows.append(row)
                row = []
            } else if c != 13 || !(i + 1 < bytes.count && bytes[i + 1] == 10) {
                field.append(c)
            }
            i += 1
        }
        if !field.isEmpty || !row.isEmpty { endField(); rows.append(row) }
        return rows
    }

    /// A value from the archive as a result shows it: bounded, control characters as '?'.
    static func shown(_ s: String, _ limit: Int = 200) -> String { SimpleIndex.shown(s, limit: limit) }
}

extension String {
    func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}

extension PackageCheck {
    /// `sitecustomize.py` or `usercustomize.py` (or a package of that name) where installing
    /// the wheel puts it at the top of the site, or nil.
    static func startupHook(_ path: String) -> String? {
        var parts = path.split(separator: "/").map(String.init)
        if parts.count >= 3, parts[0].hasSuffix(".data"), parts[1] == "purelib" || parts[1] == "platlib" { parts.removeFirst(2) }
        guard let first = parts.first else { return nil }
        for hook in ["sitecustomize", "usercustomize"] where (parts.count == 1 && (first == "\(hook).py" || first.hasPrefix("\(hook).")))
            || (parts.count > 1 && first == hook) {
            return hook
        }
        return nil
    }

    /// An sdist's build requirements as its top pyproject.toml's `[build-system] requires`
    /// lists them (at most 64, each as written, shown safely): what the build sandbox may have.
    /// No pyproject.toml, or no `[build-system]`: pip's default for a setup.py project
    /// (setuptools>=40.8.0). A pyproject.toml that does not parse: null (the build is refused).
    static func buildRequires(_ files: [(path: String, bytes: [UInt8])]) -> JSON {
        let fallback = JSON.array([.string("setuptools>=40.8.0")])
        guard let file = files.first(where: { $0.path.split(separator: "/").count == 2 && $0.path.hasSuffix("/pyproject.toml") }) else { return fallback }
        guard file.bytes.count <= 1 << 20, !file.bytes.contains(0), let text = String(validating: file.bytes, as: UTF8.self),
              let table = try? TOML.parse(text) else { return .null }
        guard let system = table["build-system"] else { return fallback }
        guard case .table(let build) = system.kind else { return .null }
        guard let requires = build["requires"] else { return fallback }
        guard case .array(let items) = requires.kind, items.count <= 64 else { return .null }
        var out: [JSON] = []
        for item in items {
            guard case .string(let s) = item.kind, s.utf8.count <= 500 else { return .null }
            out.append(.string(s))
        }
        return .array(out)
    }
}
