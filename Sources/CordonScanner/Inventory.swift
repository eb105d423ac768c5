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
}

public struct ScanFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Finds packages in a path, by content: Python wheels and sdists (.tar.gz, .zip), npm tarballs,
/// and directories (an unpacked package, or site-packages / node_modules trees).
public enum Inventory {
    public static func packages(at path: String, limits: ArchiveLimits = ArchiveLimits()) throws -> [ScannedPackage] {
        switch FileSystem.kind(path) {
        case .directory: return try directory(path)
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
    static func directory(_ root: String) throws -> [ScannedPackage] {
        let paths = try FileSystem.regularFiles(under: root)
        guard paths.count <= 200_000 else { throw ScanFailure(description: "\(root): more than 200000 files") }
        func rel(_ p: String) -> String { String(p.dropFirst(root.count).drop { $0 == "/" }) }
        var found: [ScannedPackage] = []
        for path in paths where path.hasSuffix(".dist-info/METADATA") {
            let fields = rfc822((try? FileSystem.read(path, limit: 4 << 20)) ?? [])
            if let name = fields["name"], let version = fields["version"] {
                found.append(ScannedPackage(ecosystem: .pypi, name: name, version: version, source: rel(path), files: [], pureWheel: false))
            }
        }
        for path in paths where path.hasSuffix("/package.json") && path.contains("/node_modules/") {
            if let bytes = try? FileSystem.read(path, limit: 4 << 20), let (name, version) = try? npmIdentity(bytes, source: path) {
                found.append(ScannedPackage(ecosystem: .npm, name: name, version: version, source: rel(path), files: [], pureWheel: false))
            }
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
