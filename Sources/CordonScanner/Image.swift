import CordonArchive
import CordonHeuristics
import CordonJSON
import CordonScan
import CordonSystem

/// A container image read from an OCI image layout (a directory or its tar) or a `docker save`
/// tarball: its layers applied in order, whiteouts honoured, every file attributed to the layer
/// that last wrote it. Nothing is extracted.
public struct ContainerImage {
    public struct File {
        public var path: String
        public var layer: Int
        public var mode: UInt32
        public var kind: ArchiveEntry.Kind
        public var bytes: [UInt8]
    }

    /// The final filesystem, after every layer and whiteout.
    public var files: [String: File] = [:]
    /// Every file as each layer wrote it, including files a later layer deleted or replaced:
    /// secrets in those are still in the image.
    public var history: [File] = []
    public var layerDigests: [String] = []

    /// File contents kept in memory: what inventories and secret rules read.
    static func keepsContent(_ path: String, size: Int64) -> Bool {
        // Package databases are read up to 64 MiB (a large distribution's dpkg status is a few
        // MiB); everything else kept is small.
        if Inventory.isPackageDatabase(path) { return size <= 64 << 20 }
        if Inventory.isInstalledMetadata(path) { return size <= 1 << 20 }
        guard size <= 256 << 10 else { return false }
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        return name.hasPrefix("id_") || name.hasSuffix(".pem") || name.hasSuffix(".key") || name == "credentials"
            || name.hasPrefix(".") || path.hasPrefix("etc/") || path.hasPrefix("root/") || path.hasPrefix("home/")
            || name.hasSuffix(".env") || name.hasSuffix(".json") || name.hasSuffix(".yaml") || name.hasSuffix(".yml")
    }

    /// Recognises an image at `path`; nil when it is not one.
    static func open(_ path: String, limits: ArchiveLimits) throws -> ContainerImage? {
        var blobs: [String: [UInt8]] = [:]
        var manifest: [UInt8]?
        var index: [UInt8]?
        var sawLayout = false
        var sawPackageMetadata = false
        var loaded: Int64 = 0
        func note(_ name: String, _ bytes: () throws -> [UInt8]) throws {
            let depth = name.split(separator: "/").count
            if (depth == 2 && (name.hasSuffix("/PKG-INFO") || name.hasSuffix("/package.json") || name.hasSuffix(".dist-info/METADATA")))
                || (depth == 1 && (name == "PKG-INFO" || name == "package.json" || name == "setup.py")) {
                sawPackageMetadata = true
            }
            if name == "manifest.json" { manifest = try bytes() }
            else if name == "index.json" { index = try bytes() }
            else if name == "oci-layout" { sawLayout = true }
            else if name.hasPrefix("blobs/") || name.hasSuffix(".tar") || name.hasSuffix("/layer.tar") {
                let data = try bytes()
                // One budget for the whole image, however it is laid out.
                loaded += Int64(data.count)
                guard loaded <= limits.totalBytes else { throw ArchiveError.limit(name: "total size", limit: limits.totalBytes, archive: path) }
                blobs[name] = data
            }
        }
        switch FileSystem.kind(path) {
        case .directory:
            guard FileSystem.exists("\(path)/oci-layout") || FileSystem.exists("\(path)/manifest.json") else { return nil }
            for file in try FileSystem.regularFiles(under: path) {
                let rel = String(file.dropFirst(path.count).drop { $0 == "/" })
                try note(rel) { try FileSystem.read(file, limit: Int(limits.totalBytes)) }
            }
        case .file:
            // Images are plain tars (docker save, OCI layout tars); packages are zips and
            // compressed tarballs. Only a plain tar is worth reading as an image.
            guard let head = try? FileSystem.readPrefix(path, count: 512), head.count == 512,
                  Array(head[257..<262]) == Array("ustar".utf8) else { return nil }
            guard let reader = try? ArchiveReader(path: path, limits: limits) else { return nil }
            try reader.forEach { entry, read in
                if entry.kind == .file { try note(entry.path) { try read() } }
            }
        default:
            return nil
        }
        // Package metadata wins: a package that also carries a manifest.json is scanned as a
        // package (otherwise the file-level rules would never see its code).
        if sawPackageMetadata { return nil }
        let layers: [String]
        if let manifest, let docker = try dockerLayers(manifest, path: path) {
            layers = docker
        } else if sawLayout, let index {
            layers = try ociLayers(index: index, blobs: blobs)
        } else {
            return nil
        }
        guard !layers.isEmpty else { throw ScanFailure(description: "\(path): an image manifest with no layers") }
        guard Set(layers).count == layers.count else { throw ScanFailure(description: "\(path): the manifest lists a layer twice") }
        guard layers.count <= 256 else { throw ScanFailure(description: "\(path): more than 256 layers") }
        var image = ContainerImage()
        for (n, layer) in layers.enumerated() {
            guard let bytes = blobs[layer] else { throw ScanFailure(description: "\(path): layer \(layer) is missing") }
            image.layerDigests.append(layer)
            let reader = try ArchiveReader.inMemory(name: "\(path)!\(layer)", bytes: bytes, limits: limits, depth: 2)
            try image.apply(reader, layer: n)
        }
        return image
    }

    /// Image manifests and indexes are a few KiB; the default caps hold the rest.
    static let manifestOptions = JSON.ParseOptions(maxBytes: 4 << 20)

    /// manifest.json as `docker load` reads it (Go's encoding/json, as Foundation's decoder did
    /// here before): a number beyond a Double's range in a member nobody reads is no error, and
    /// ill-formed text is replaced.
    static let dockerManifestOptions = JSON.ParseOptions(maxBytes: 4 << 20, illFormedText: .replacementCharacter,
                                                         numbersOutOfRange: .infinity)

    /// The first image's layers of a `docker save` manifest.json (an array of objects with
    /// `Layers`), or nil when it is not one: every entry must have its list of layer paths.
    /// A manifest.json past the parser's caps is an error, not "not one": `docker load` would
    /// read its layers, so falling back to the tarball's OCI index could scan other layers.
    static func dockerLayers(_ manifest: [UInt8], path: String = "manifest.json") throws -> [String]? {
        let document: JSON
        do { document = try JSON.parse(manifest, options: dockerManifestOptions) } catch {
            if error.exceedsLimit { throw ScanFailure(description: "\(path): manifest.json is beyond what the scanner reads: \(error)") }
            return nil
        }
        guard let entries = document.arrayValue, !entries.isEmpty else { return nil }
        let layers = entries.map { $0["Layers"]?.stringArrayValue }
        guard layers.allSatisfy({ $0 != nil }) else { return nil }
        return layers[0]
    }

    static func blobPath(_ digest: String) -> String { "blobs/" + digest.split(separator: ":", maxSplits: 1).joined(separator: "/") }

    /// The digests of the descriptors in `document[key]` (an OCI index's manifests, a
    /// manifest's layers): each must have a string `digest` (and a string `mediaType`, if any).
    static func digests(_ bytes: [UInt8], _ key: String, _ what: String) throws -> [String] {
        let document: JSON
        do { document = try JSON.parse(bytes, options: manifestOptions) } catch {
            throw ScanFailure(description: "OCI layout: \(what) is not valid JSON: \(error)")
        }
        guard let descriptors = document[key]?.arrayValue else {
            throw ScanFailure(description: "OCI layout: \(what) has no \"\(key)\" array")
        }
        return try descriptors.enumerated().map { i, descriptor in
            switch descriptor["mediaType"] {
            case nil, .null?, .string?: break
            default: throw ScanFailure(description: "OCI layout: \(what): \(key)[\(i)].mediaType is not a string")
            }
            guard let digest = descriptor["digest"]?.stringValue else {
                throw ScanFailure(description: "OCI layout: \(what): \(key)[\(i)] has no digest")
            }
            return digest
        }
    }

    static func ociLayers(index: [UInt8], blobs: [String: [UInt8]]) throws -> [String] {
        let manifests = try digests(index, "manifests", "index.json")
        guard let first = manifests.first, let manifest = blobs[blobPath(first)] else {
            throw ScanFailure(description: "OCI layout: index.json names no manifest present in blobs/")
        }
        return try digests(manifest, "layers", "the image manifest").map(blobPath)
    }

    /// Applies one layer: whiteouts delete from the layers below, entries add or replace.
    /// Whiteouts are collected and applied in one pass at the end of the layer (a path is gone
    /// when it or one of its parents was whited out), so a layer of many whiteouts stays linear.
    mutating func apply(_ reader: ArchiveReader, layer: Int) throws {
        var removed = Set<String>()       // .wh.NAME: NAME and everything below it
        var opaque = Set<String>()        // .wh..wh..opq in DIR: everything below DIR
        try reader.forEach { entry, read in
            let parts = entry.path.split(separator: "/")
            guard let name = parts.last else { return }
            let dir = parts.dropLast().joined(separator: "/")
            if name == ".wh..wh..opq" { opaque.insert(dir); return }
            if name.hasPrefix(".wh.") { removed.insert((dir.isEmpty ? "" : dir + "/") + name.dropFirst(4)); return }
            let keep = entry.kind == .file && ContainerImage.keepsContent(entry.path, size: entry.declaredSize)
            let bytes = keep ? try read() : []
            historyBytes += bytes.count
            guard historyBytes <= ContainerImage.maxContentBytes else {
                throw ScanFailure(description: "more than \(ContainerImage.maxContentBytes >> 20) MiB of package databases and candidate secret files")
            }
            let file = File(path: entry.path, layer: layer, mode: entry.mode, kind: entry.kind, bytes: bytes)
            files[entry.path] = file
            history.append(file)
        }
        guard !removed.isEmpty || !opaque.isEmpty else { return }
        files = files.filter { path, file in
            guard file.layer < layer else { return true }
            if removed.contains(path) { return false }
            var ancestor = Substring(path)
            while let slash = ancestor.lastIndex(of: "/") {
                ancestor = ancestor[..<slash]
                if removed.contains(String(ancestor)) || opaque.contains(String(ancestor)) { return false }
            }
            return !opaque.contains("")
        }
    }

    /// File contents kept in memory across all layers.
    static let maxContentBytes = 512 << 20
    var historyBytes = 0

    /// Packages the image has installed: dpkg, apk, Python dist-info, node_modules.
    func inventory(source: String) -> [ScannedPackage] {
        var out: [ScannedPackage] = []
        // Every installed-metadata form the directory inventory reads (Inventory.installed).
        for file in files.values.sorted(by: { $0.path < $1.path }) where file.kind == .file && Inventory.isInstalledMetadata(file.path) {
            out += Inventory.installed(path: file.path, bytes: file.bytes, source: "\(source)!layer\(file.layer):\(file.path)")
        }
        return out
    }

    /// The image rules, for reports that list rules (SARIF).
    public static let rules: [HeuristicRule] = [
        HeuristicRule(id: "setuid-file", severity: .medium, summary: "set-user-ID or set-group-ID file in the image"),
        HeuristicRule(id: "world-writable", severity: .low, summary: "world-writable file outside /tmp"),
        HeuristicRule(id: "private-key", severity: .high, summary: "private key in any layer of the image"),
        HeuristicRule(id: "cloud-token", severity: .high, summary: "AWS, GitHub, Slack or Google credential in any layer of the image"),
    ]

    /// Image-only rules: setuid/setgid files, world-writable files outside /tmp, private keys
    /// and cloud tokens — the secrets in every layer, deleted later or not.
    func findings() -> [Finding] {
        var out: [Finding] = []
        for file in files.values.sorted(by: { $0.path < $1.path }) where file.kind == .file {
            if file.mode & 0o6000 != 0 {
                out.append(Finding(rule: "setuid-file", severity: .medium, file: "layer\(file.layer):\(file.path)", startLine: 1, endLine: 1,
                                   message: "set-user/group-ID file (mode \(String(file.mode, radix: 8)))", evidence: file.path))
            }
            if file.mode & 0o002 != 0 && !file.path.hasPrefix("tmp/") && !file.path.hasPrefix("var/tmp/") {
                out.append(Finding(rule: "world-writable", severity: .low, file: "layer\(file.layer):\(file.path)", startLine: 1, endLine: 1,
                                   message: "world-writable file outside /tmp", evidence: file.path))
            }
        }
        for file in history where !file.bytes.isEmpty && file.bytes.count <= 4 << 20 {
            let text = String(decoding: file.bytes, as: UTF8.self)
            let gone = files[file.path]?.layer != file.layer
            let note = gone ? " (deleted or replaced by a later layer, still in the image)" : ""
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if line.contains("-----BEGIN") && line.contains("PRIVATE KEY-----") {
                    out.append(Finding(rule: "private-key", severity: .high, file: "layer\(file.layer):\(file.path)", startLine: i + 1, endLine: i + 1,
                                       message: "private key in the image" + note, evidence: String(line.prefix(60))))
                } else if let token = ContainerImage.cloudToken(line) {
                    out.append(Finding(rule: "cloud-token", severity: .high, file: "layer\(file.layer):\(file.path)", startLine: i + 1, endLine: i + 1,
                                       message: "\(token) in the image" + note, evidence: String(line.prefix(8)) + "…"))
                }
            }
        }
        return out
    }

    /// AWS access key ids, GitHub tokens, Slack tokens, Google API keys.
    static let tokenPrefixes: [(prefix: [UInt8], length: Int, what: String)] = [
        (Array("AKIA".utf8), 16, "an AWS access key id"), (Array("ghp_".utf8), 36, "a GitHub token"),
        (Array("xoxb-".utf8), 0, "a Slack token"), (Array("xoxp-".utf8), 0, "a Slack token"), (Array("AIza".utf8), 35, "a Google API key"),
    ]

    static func cloudToken(_ line: Substring) -> String? {
        let b = Array(line.utf8)
        for (prefix, length, what) in tokenPrefixes {
            var from = 0
            while let i = firstIndex(of: prefix, in: b, from: from) {
                let start = i + prefix.count
                let tail = b[start..<min(b.count, start + length)]
                let ok = tail.count == length && tail.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95 }
                // AWS key ids are upper case and digits only.
                if ok && (what != "an AWS access key id" || tail.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) }) { return what }
                from = i + 1
            }
        }
        return nil
    }

    static func firstIndex(of needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
