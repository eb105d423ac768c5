import CordonArchive
import CordonHeuristics
import CordonJSON
import CordonScan
import CordonSystem

/// One package found in a scan target, with its files (paths relative to the package root).
public struct ScannedPackage: Sendable {
    public var ecosystem: Ecosystem
    public var name: String
    public var version: String
    /// Where it was found: the archive, or archive!member for nested ones.
    public var source: String
    public var files: [(path: String, bytes: [UInt8])]
    /// A wheel tagged *-none-any: native binaries inside are unexpected.
    public var pureWheel: Bool
    /// The name and version advisories use when they differ from the installed package's: a
    /// Debian binary package's source package (`Source:`), an Alpine package's origin (`o:`).
    public var advisoryName: String? = nil
    public var advisoryVersion: String? = nil
    /// Metadata that was found but could not be read whole (no version): the package is
    /// reported, not checked, instead of left out.
    public var problem: String? = nil
}

public struct ScanFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Finds packages in a path, by content: Python wheels and sdists (.tar.gz, .zip), npm tarballs,
/// and directories (an unpacked package, or site-packages / node_modules trees).
public enum Inventory {
    public static func packages(at path: String, limits: ArchiveLimits = ArchiveLimits()) throws -> [ScannedPackage] {
        switch FileSystem.kind(path) {
        case .directory: return try directory(path, limits: limits)
        case .file:
            let reader: ArchiveReader
            do { reader = try ArchiveReader(path: path, limits: limits) } catch {
                throw ScanFailure(description: "\(path): not a package archive this scanner reads (wheel, sdist, npm tarball): \(error)")
            }
            var members: [(path: String, bytes: [UInt8])] = []
            try reader.forEach { entry, read in
                guard entry.kind == .file else { return }
                members.append((entry.path, retained(try read())))
            }
            return try fromArchive(members, source: path)
        case .missing: throw ScanFailure(description: "\(path): no such file or directory")
        default: throw ScanFailure(description: "\(path): not a file or directory")
        }
    }

    /// What of a member is kept in memory: a binary (a NUL in its first 8 KiB) only needs its
    /// head — the text rules skip it and the native-binary rule reads its magic — so a wheel full
    /// of shared objects does not sit in memory whole.
    static func retained(_ bytes: [UInt8]) -> [UInt8] {
        bytes.prefix(8192).contains(0) ? Array(bytes.prefix(8192)) : bytes
    }

    /// The package(s) in an archive's members.
    static func fromArchive(_ members: [(path: String, bytes: [UInt8])], source: String) throws -> [ScannedPackage] {
        // Wheel: NAME-VERSION.dist-info/METADATA at the top.
        if let metadata = members.first(where: { $0.path.split(separator: "/").count == 2 && $0.path.hasSuffix(".dist-info/METADATA") }) {
            let fields = rfc822(metadata.bytes)
            let wheel = members.first { $0.path.hasSuffix(".dist-info/WHEEL") }.map { rfc822($0.bytes) } ?? [:]
            guard let name = fields["name"], let version = fields["version"] else {
                throw ScanFailure(description: "\(source): \(metadata.path) has no Name or Version")
            }
            let pure = (wheel["root-is-purelib"] ?? "").lowercased() == "true" && (wheel["tag"] ?? "").hasSuffix("-none-any")
            return [ScannedPackage(ecosystem: .pypi, name: name, version: version, source: source, files: members, pureWheel: pure)]
        }
        // npm tarball: TOP/package.json (npm strips the first folder, whatever its name, so every
        // member is kept with its first folder stripped: a second top folder is scanned too).
        if let manifest = members.first(where: { $0.path.split(separator: "/").count == 2 && $0.path.hasSuffix("/package.json") }),
           !members.contains(where: { $0.path.split(separator: "/").count == 2 && $0.path.hasSuffix("/PKG-INFO") }) {
            let (name, version) = try npmIdentity(manifest.bytes, source: source)
            let files = members.map { member -> (path: String, bytes: [UInt8]) in
                let parts = member.path.split(separator: "/", maxSplits: 1)
                return (path: parts.count == 2 ? String(parts[1]) : member.path, bytes: member.bytes)
            }
            return [ScannedPackage(ecosystem: .npm, name: name, version: version, source: source, files: files, pureWheel: false)]
        }
        // sdist: TOP/PKG-INFO.
        if let pkgInfo = members.first(where: { $0.path.split(separator: "/").count == 2 && $0.path.hasSuffix("/PKG-INFO") }) {
            let fields = rfc822(pkgInfo.bytes)
            guard let name = fields["name"], let version = fields["version"] else {
                throw ScanFailure(description: "\(source): \(pkgInfo.path) has no Name or Version")
            }
            let top = String(pkgInfo.path.split(separator: "/")[0]) + "/"
            let files = members.filter { $0.path.hasPrefix(top) }.map { (path: String($0.path.dropFirst(top.count)), bytes: $0.bytes) }
            return [ScannedPackage(ecosystem: .pypi, name: name, version: version, source: source, files: files, pureWheel: false)]
        }
        throw ScanFailure(description: "\(source): no package metadata found (no *.dist-info/METADATA, PKG-INFO or package/package.json)")
    }

    /// A directory: every installed distribution in it (dist-info, node_modules), or, failing
    /// that, the unpacked package it is.
    static func directory(_ root: String, limits: ArchiveLimits = ArchiveLimits()) throws -> [ScannedPackage] {
        let paths = try FileSystem.regularFiles(under: root)
        guard paths.count <= 200_000 else { throw ScanFailure(description: "\(root): more than 200000 files") }
        func rel(_ p: String) -> String { String(p.dropFirst(root.count).drop { $0 == "/" }) }
        var found: [ScannedPackage] = []
        // An unpacked sdist carries its own NAME.egg-info/: it is the package, not an installed tree.
        let sdist = FileSystem.kind("\(root)/PKG-INFO") == .file
        for path in paths where isInstalledMetadata(path) && !(sdist && path.contains(".egg-info")) {
            let limit = isPackageDatabase(path) ? 64 << 20 : 4 << 20
            let bytes: [UInt8]
            do { bytes = try FileSystem.read(path, limit: limit) } catch {
                found.append(unreadable(path: path, source: rel(path), problem: "\(error)"))
                continue
            }
            found += installed(path: path, bytes: bytes, source: rel(path))
        }
        // Zipped eggs: NAME-VERSION-pyX.Y.egg with EGG-INFO/PKG-INFO inside.
        for path in paths where path.hasSuffix(".egg") && !sdist {
            var info: [UInt8]?
            try? ArchiveReader(path: path, limits: limits).forEach { entry, read in
                if entry.kind == .file && entry.path == "EGG-INFO/PKG-INFO" { info = try read() }
            }
            if let info { found += installed(path: path + "/EGG-INFO/PKG-INFO", bytes: info, source: rel(path)) }
            else { found.append(unreadable(path: path, source: rel(path), problem: "not a zip with EGG-INFO/PKG-INFO")) }
        }
        if !found.isEmpty { return found }
        // An unpacked package: read its files (text scanning needs them) under a size budget.
        var members: [(path: String, bytes: [UInt8])] = []
        var total = 0
        for path in paths {
            let bytes = retained(try FileSystem.read(path, limit: 64 << 20))
            total += bytes.count
            guard total <= 1 << 30 else { throw ScanFailure(description: "\(root): more than 1 GiB of files") }
            members.append((rel(path), bytes))
        }
        if let manifest = members.first(where: { $0.path == "package.json" }) {
            let (name, version) = try npmIdentity(manifest.bytes, source: root)
            return [ScannedPackage(ecosystem: .npm, name: name, version: version, source: root, files: members, pureWheel: false)]
        }
        if let info = members.first(where: { $0.path == "PKG-INFO" }) {
            let fields = rfc822(info.bytes)
            if let name = fields["name"], let version = fields["version"] {
                return [ScannedPackage(ecosystem: .pypi, name: name, version: version, source: root, files: members, pureWheel: false)]
            }
        }
        throw ScanFailure(description: "\(root): no package metadata found (PKG-INFO, package.json, *.dist-info)")
    }

    /// Whether a file (a path in a directory or an image) is installed-package metadata: Python's
    /// `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, `*.egg-info` files and `*.egg/EGG-INFO/PKG-INFO`;
    /// npm's `node_modules/[@scope/]name/package.json`; dpkg's status (and distroless
    /// `status.d/` files); apk's installed database.
    public static func isInstalledMetadata(_ path: String) -> Bool {
        if path.hasSuffix(".dist-info/METADATA") || path.hasSuffix(".egg-info/PKG-INFO") || path.hasSuffix(".egg-info")
            || path.hasSuffix(".egg/EGG-INFO/PKG-INFO") { return true }
        if isPackageDatabase(path) { return true }
        return npmPackageRoot(path)
    }

    /// dpkg's and apk's databases: one file, many packages.
    public static func isPackageDatabase(_ path: String) -> Bool {
        let p = path.hasPrefix("/") ? path : "/" + path
        if p.hasSuffix("/var/lib/dpkg/status") || p.hasSuffix("/lib/apk/db/installed") { return true }
        // Distroless images: one stanza a file in status.d/ (beside NAME.md5sums files).
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count >= 5, Array(parts.suffix(5).prefix(4)) == ["var", "lib", "dpkg", "status.d"] {
            let name = parts[parts.count - 1]
            return !name.isEmpty && !name.contains(".")
        }
        return false
    }

    /// `…/node_modules/NAME/package.json` or `…/node_modules/@SCOPE/NAME/package.json`: a
    /// package's own manifest, not one of the package.json files packages carry deeper down.
    static func npmPackageRoot(_ path: String) -> Bool {
        guard path.hasSuffix("/package.json") else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let n = parts.count
        if n >= 3, parts[n - 3] == "node_modules", !parts[n - 2].hasPrefix("@"), !parts[n - 2].hasPrefix(".") { return true }
        if n >= 4, parts[n - 4] == "node_modules", parts[n - 3].hasPrefix("@") { return true }
        return false
    }

    /// The packages one installed-metadata file (see `isInstalledMetadata`) describes. Metadata
    /// without a version is still a package: reported with the problem, never dropped.
    public static func installed(path: String, bytes: [UInt8], source: String) -> [ScannedPackage] {
        func package(_ eco: Ecosystem, _ name: String, _ version: String) -> ScannedPackage {
            ScannedPackage(ecosystem: eco, name: name, version: version, source: source, files: [], pureWheel: false)
        }
        let p = path.hasPrefix("/") ? path : "/" + path
        if p.hasSuffix("/var/lib/dpkg/status") || p.split(separator: "/").dropLast().last == "status.d" {
            return stanzas(bytes).compactMap { f in
                guard let name = f["package"], let version = f["version"] else { return nil }
                // "install ok installed" (and half-installed, half-configured: files are there).
                let status = f["status"] ?? "install ok installed"  // status.d/ files have no Status
                guard status.hasSuffix("installed") || status.hasSuffix("half-configured") || status.hasSuffix("unpacked") else { return nil }
                var out = package(.debian, name, version)
                if let field = f["source"] {
                    // "Source: openssl (3.0.11-1~deb12u2)": advisories name source packages.
                    let parts = field.split(separator: " ", maxSplits: 1)
                    out.advisoryName = parts.first.map(String.init)
                    if parts.count == 2 { out.advisoryVersion = String(parts[1].drop { $0 == "(" }.prefix { $0 != ")" }) }
                }
                return out
            }
        }
        if p.hasSuffix("/lib/apk/db/installed") {
            var out: [ScannedPackage] = []
            var name: String?, version: String?, origin: String?
            func flush() {
                if let name, let version {
                    var found = package(.alpine, name, version)
                    if let origin, origin != name { found.advisoryName = origin }
                    out.append(found)
                }
                name = nil; version = nil; origin = nil
            }
            for line in ByteLines(bytes) {
                if line.isEmpty || line == [UInt8(ascii: "\r")] { flush(); continue }
                guard line.count > 2, line[line.startIndex + 1] == UInt8(ascii: ":") else { continue }
                let value = String(decoding: line.dropFirst(2), as: UTF8.self)
                switch line[line.startIndex] {
                case UInt8(ascii: "P"): name = value
                case UInt8(ascii: "V"): version = value
                case UInt8(ascii: "o"): origin = value
                default: break
                }
            }
            flush()
            return out
        }
        if p.hasSuffix("/package.json") {
            guard let (name, version) = try? npmIdentity(bytes, source: path) else {
                return [unreadable(path: path, source: source, problem: "package.json has no name or version")]
            }
            return [package(.npm, name, version)]
        }
        // Python: METADATA / PKG-INFO (an .egg-info file is a PKG-INFO).
        let fields = rfc822(bytes)
        let fallback = pythonNameFromPath(path)
        guard let name = fields["name"] ?? fallback.name else {
            return [unreadable(path: path, source: source, problem: "no Name in the metadata")]
        }
        guard let version = fields["version"] ?? fallback.version else {
            var out = package(.pypi, name, "")
            out.problem = "no Version in the metadata"
            return [out]
        }
        return [package(.pypi, name, version)]
    }

    /// A package whose metadata could not be read: named after its file.
    static func unreadable(path: String, source: String, problem: String) -> ScannedPackage {
        let eco: Ecosystem = path.hasSuffix("package.json") ? .npm : isPackageDatabase(path) ? (path.contains("apk") ? .alpine : .debian) : .pypi
        var name = pythonNameFromPath(path).name ?? path.split(separator: "/").last.map(String.init) ?? path
        if eco == .npm { name = path.split(separator: "/").dropLast().last.map(String.init) ?? name }
        return ScannedPackage(ecosystem: eco, name: name, version: "", source: source, files: [], pureWheel: false, problem: problem)
    }

    /// NAME and VERSION from `NAME-VERSION[-pyX.Y].{dist,egg}-info` or `.egg` (setuptools writes
    /// `-` in either as `_`).
    static func pythonNameFromPath(_ path: String) -> (name: String?, version: String?) {
        let parts = path.split(separator: "/")
        guard let base = parts.last(where: { $0.hasSuffix(".dist-info") || $0.hasSuffix(".egg-info") || $0.hasSuffix(".egg") }) else { return (nil, nil) }
        let suffix = [".dist-info", ".egg-info", ".egg"].first { base.hasSuffix($0) }!
        let fields = base.dropLast(suffix.count).split(separator: "-")
        return (fields.first.map(String.init), fields.count > 1 ? String(fields[1]) : nil)
    }

    /// The lines of `bytes`, split at LF as `split(separator:omittingEmptySubsequences: false)`
    /// splits them, one at a time: the databases are kept up to 64 MiB, and an array of a slice
    /// a line held 2 GiB for 64 MiB of blank lines.
    struct ByteLines: Sequence, IteratorProtocol {
        let bytes: [UInt8]
        var start = 0
        var done = false

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func next() -> ArraySlice<UInt8>? {
            guard !done else { return nil }
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            let line = bytes[start..<end]
            if end == bytes.count { done = true } else { start = end + 1 }
            return line
        }
    }

    /// The stanzas of a dpkg status file (blank-line separated RFC 822 paragraphs), read in
    /// one pass over the bytes: a file of blank lines costs what its length does.
    static func stanzas(_ bytes: [UInt8]) -> [[String: String]] {
        var out: [[String: String]] = []
        var current: [String: String] = [:]
        for line in ByteLines(bytes) {
            if line.isEmpty || line.allSatisfy({ $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
                if !current.isEmpty { out.append(current); current = [:] }
                continue
            }
            let first = line[line.startIndex]
            guard first != UInt8(ascii: " "), first != UInt8(ascii: "\t"),
                  let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let key = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            guard ["package", "version", "status", "source"].contains(key), current[key] == nil else { continue }
            let value = line[(colon + 1)...].drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            current[key] = String(decoding: value, as: UTF8.self).trimmingTrailingWhitespace()
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Header fields of a METADATA / PKG-INFO / WHEEL file (keys lowercased; first value wins).
    static func rfc822(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty || line == "\r" { break }  // the body starts
            guard let colon = line.firstIndex(of: ":"), line.first != " ", line.first != "\t" else { continue }
            let key = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
            if fields[key] == nil { fields[key] = value }
        }
        return fields
    }

    static func npmIdentity(_ bytes: [UInt8], source: String) throws -> (String, String) {
        // As npm reads it; a name or version that is there but not a string spoils the file,
        // as it did when Foundation's decoder read it.
        let failure = ScanFailure(description: "\(source): package.json has no name or version")
        guard let manifest = try? JSON.parse(bytes, options: Heuristics.packageJSON), case .object = manifest else { throw failure }
        for key in ["name", "version"] {
            switch manifest[key] {
            case nil, .null?, .string?: continue
            default: throw failure
            }
        }
        guard let name = manifest["name"]?.stringValue, let version = manifest["version"]?.stringValue else { throw failure }
        return (name, version)
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        String(reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
