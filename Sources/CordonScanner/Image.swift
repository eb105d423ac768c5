import CordonArchive
import CordonHeuristics
import CordonJSON
import CordonScan
import CordonSystem

/// A container image read from an OCI image layout (a directory or its tar) or a `docker save`
/// tarball: its layers applied in order, whiteouts honoured, every file attributed to the layer
/// that last wrote it. Nothing is extracted and no layer is held whole: the manifests are read
/// first (small documents whose size is known before they are read), then each layer the chosen
/// images list is streamed once through libarchive, keeping file metadata and only the contents
/// the inventory and secret rules read (`keepsContent`), so memory is bounded by those however
/// much the layers weigh. An archive can hold several images (an OCI index's platforms, a
/// `docker save` of several tags): all are read, or those an `ImageSelection` names.
public struct ContainerImage {
    public struct File {
        public var path: String
        public var layer: Int
        public var mode: UInt32
        public var kind: ArchiveEntry.Kind
        public var bytes: [UInt8]
    }

    /// Which image of its archive this is ("linux/arm64/v8", "ref v1 linux/amd64", a tag), when
    /// the archive holds more than one.
    public var label: String?
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

    /// Manifests, indexes and manifest.json are read whole: a few KiB in practice.
    static let documentLimit = 4 << 20
    /// Images one archive may hold: a multi-platform index has a handful.
    static let maxImages = 64

    /// Recognises an image archive at `path` and reads the images in it that `selection` names
    /// (all, when it names none); nil when `path` is not an image archive.
    static func open(_ path: String, limits: ArchiveLimits, selection: ImageSelection = .all) throws -> [ContainerImage]? {
        guard let found = try choose(path, limits: limits, selection: selection) else { return nil }
        // Layers are root file systems: their symlinks resolve inside the image, whatever they say.
        var limits = limits
        limits.symlinksResolveInRoot = true
        return try readLayers(path, store: found.store, chosen: found.images, selection: selection, limits: limits)
    }

    /// An image archive's store, its members and the images `selection` names in it (all of
    /// them when it names none, each checked: layers listed, present, within the size budget);
    /// nil when `path` is not an image archive.
    struct Chosen {
        var store: ImageStore
        var members: [String: Int64]
        var images: [ImageManifest]
        var isDockerSave: Bool
    }

    static func choose(_ path: String, limits: ArchiveLimits, selection: ImageSelection, dockerTag: String? = nil) throws -> Chosen? {
        let store: ImageStore
        switch FileSystem.kind(path) {
        case .directory:
            guard FileSystem.exists("\(path)/oci-layout") || FileSystem.exists("\(path)/manifest.json") else { return nil }
            store = .directory(path)
        case .file:
            // Images are plain tars (docker save, OCI layout tars); packages are zips and
            // compressed tarballs. Only a plain tar is worth reading as an image.
            guard let head = try? FileSystem.readPrefix(path, count: 512), head.count == 512,
                  Array(head[257..<262]) == Array("ustar".utf8) else { return nil }
            guard (try? ArchiveReader(path: path, limits: limits)) != nil else { return nil }
            store = .tar(path)
        default:
            return nil
        }
        let members = try store.members(limits: limits)
        // Package metadata wins: a package that also carries a manifest.json is scanned as a
        // package (otherwise the file-level rules would never see its code).
        if members.keys.contains(where: isPackageMetadata) { return nil }
        let documents = try store.read(["manifest.json", "index.json"].filter { members[$0] != nil }, members: members, limits: limits)
        var chosen: [ImageManifest]
        var isDockerSave = false
        if let manifest = documents["manifest.json"], let docker = try dockerImages(manifest, path: path) {
            guard selection.isEmpty else {
                throw ScanFailure(description: "\(path): \(selection.flags) choose among the manifests of an OCI index, and this is a docker save archive: `docker load` reads every image its manifest.json lists, so they are all scanned; leave out \(selection.flags)")
            }
            chosen = docker
            isDockerSave = true
            if let dockerTag {
                chosen = docker.filter { $0.tags.contains(dockerTag) }
                guard !chosen.isEmpty else {
                    throw ScanFailure(description: "\(path): no image of this docker save archive is tagged \(dockerTag); its tags: \(docker.flatMap(\.tags).joined(separator: ", "))")
                }
            }
        } else if members["oci-layout"] != nil, let index = documents["index.json"] {
            chosen = try ociImages(index: index, store: store, members: members, selection: selection, limits: limits)
        } else {
            return nil
        }
        guard chosen.count <= ContainerImage.maxImages else {
            throw ScanFailure(description: "\(path): \(chosen.count) images, more than the \(ContainerImage.maxImages) one scan reads\(documents["manifest.json"] == nil ? " (choose some with --platform or --ref)" : "")")
        }
        for image in chosen {
            let layers = image.layers
            guard !layers.isEmpty else { throw ScanFailure(description: "\(path): an image manifest with no layers\(image.named)") }
            guard Set(layers).count == layers.count else { throw ScanFailure(description: "\(path): the manifest lists a layer twice\(image.named)") }
            guard layers.count <= 256 else { throw ScanFailure(description: "\(path): more than 256 layers\(image.named)") }
            for layer in layers where members[layer] == nil {
                throw ScanFailure(description: "\(path): layer \(layer) is missing\(image.named)")
            }
        }
        // One budget for the whole image, however it is laid out, checked before any layer is read.
        let needed = Set(chosen.flatMap(\.layers))
        guard needed.reduce(Int64(0), { $0 + members[$1]! }) <= limits.totalBytes else {
            throw ArchiveError.limit(name: "total size", limit: limits.totalBytes, archive: path)
        }
        return Chosen(store: store, members: members, images: chosen, isDockerSave: isDockerSave)
    }

    static func readLayers(_ path: String, store: ImageStore, chosen: [ImageManifest], selection: ImageSelection,
                           limits: ArchiveLimits) throws -> [ContainerImage] {
        let needed = Set(chosen.flatMap(\.layers))
        var read: [String: Layer] = [:]
        var contentBytes = 0
        try store.stream(needed, limits: limits) { name, reader in
            read[name] = try Layer.read(reader, contentBytes: &contentBytes)
        }
        // The archive is read in passes: one that changed between them is refused, not trusted.
        for layer in needed.sorted() where read[layer] == nil {
            throw ScanFailure(description: "\(path): layer \(layer) was there when the manifests were read and gone when the layers were: the archive changed while it was scanned")
        }
        return chosen.map { manifest in
            var image = ContainerImage()
            // Labelled when it is one of several, or was chosen from several.
            image.label = chosen.count > 1 || !selection.isEmpty ? manifest.label : nil
            for (n, layer) in manifest.layers.enumerated() {
                image.layerDigests.append(layer)
                image.apply(read[layer]!, layer: n)
            }
            return image
        }
    }

    /// A package's own metadata at its top (a wheel's, an sdist's, an npm tarball's).
    static func isPackageMetadata(_ name: String) -> Bool {
        let depth = name.split(separator: "/").count
        return (depth == 2 && (name.hasSuffix("/PKG-INFO") || name.hasSuffix("/package.json") || name.hasSuffix(".dist-info/METADATA")))
            || (depth == 1 && (name == "PKG-INFO" || name == "package.json" || name == "setup.py"))
    }

    /// Image manifests and indexes are a few KiB; the default caps hold the rest.
    static let manifestOptions = JSON.ParseOptions(maxBytes: 4 << 20)

    /// manifest.json as `docker load` reads it (Go's encoding/json, as Foundation's decoder did
    /// here before): a number beyond a Double's range in a member nobody reads is no error, and
    /// ill-formed text is replaced.
    static let dockerManifestOptions = JSON.ParseOptions(maxBytes: 4 << 20, illFormedText: .replacementCharacter,
                                                         numbersOutOfRange: .infinity)

    /// Each image's layers in a `docker save` manifest.json (an array of objects with `Layers`),
    /// or nil when it is not one: every entry must have its list of layer paths.
    /// A manifest.json past the parser's caps is an error, not "not one": `docker load` would
    /// read its layers, so falling back to the tarball's OCI index could scan other layers.
    static func dockerLayers(_ manifest: [UInt8], path: String = "manifest.json") throws -> [[String]]? {
        try dockerImages(manifest, path: path)?.map(\.layers)
    }

    static func dockerImages(_ manifest: [UInt8], path: String) throws -> [ImageManifest]? {
        let document: JSON
        do { document = try JSON.parse(manifest, options: dockerManifestOptions) } catch {
            if error.exceedsLimit { throw ScanFailure(description: "\(path): manifest.json is beyond what the scanner reads: \(error)") }
            return nil
        }
        guard let entries = document.arrayValue, !entries.isEmpty else { return nil }
        var images: [ImageManifest] = []
        for (i, entry) in entries.enumerated() {
            guard let layers = entry["Layers"]?.stringArrayValue else { return nil }
            let tags = entry["RepoTags"]?.arrayValue?.compactMap(\.stringValue) ?? []
            var image = ImageManifest(label: tags.first ?? "image \(i + 1) of manifest.json", layers: layers)
            image.tags = tags
            images.append(image)
        }
        return images
    }

    static func blobPath(_ digest: String) -> String { "blobs/" + digest.split(separator: ":", maxSplits: 1).joined(separator: "/") }

    /// The images of an OCI layout: every image manifest its index.json leads to (through
    /// nested indexes, as multi-platform builds write them), or those `selection` names.
    /// Attestation manifests (build provenance, SBOMs) are not images and are left out.
    static func ociImages(index: [UInt8], store: ImageStore, members: [String: Int64],
                          selection: ImageSelection, limits: ArchiveLimits) throws -> [ImageManifest] {
        var choices: [ImageManifest] = []
        var chosen: [ImageManifest] = []
        func walk(_ bytes: [UInt8], _ what: String, ref: String?, platform: ImageSelection.Platform?, depth: Int) throws {
            let descriptors = try Descriptor.list(try document(bytes, what), "manifests", what).filter { !$0.isAttestation }
            // A manifest's own descriptor says its platform and ref; a nested index's descriptor
            // may say them for everything below it.
            var wanted: [(descriptor: Descriptor, choice: ImageManifest)] = []
            for d in descriptors {
                let choice = ImageManifest(ref: d.ref ?? ref, platform: d.platform ?? platform, digest: d.digest)
                // Indexes are always read (a few KiB): what they lead to is what can be chosen.
                if !d.isIndex {
                    choices.append(choice)
                    guard selection.matches(choice) else { continue }
                }
                guard members[blobPath(d.digest)] != nil else {
                    throw ScanFailure(description: "\(store.path): \(what) names \(d.digest)\(choice.named), which is not in blobs/\(selection.isEmpty ? " (--platform or --ref can choose an image that is)" : "")")
                }
                wanted.append((d, choice))
            }
            let blobs = try store.read(Set(wanted.map { blobPath($0.descriptor.digest) }), members: members, limits: limits)
            for (d, choice) in wanted {
                let bytes = blobs[blobPath(d.digest)]!
                let parsed = try document(bytes, "manifest \(d.digest)")
                if d.isIndex || parsed["manifests"]?.arrayValue != nil {
                    guard depth < 4 else { throw ScanFailure(description: "\(store.path): OCI indexes nested more than 4 deep at \(d.digest)") }
                    choices.removeAll { $0.digest == d.digest }
                    try walk(bytes, "index \(d.digest)", ref: choice.ref, platform: choice.platform, depth: depth + 1)
                } else {
                    var image = choice
                    image.layers = try Descriptor.list(parsed, "layers", "manifest \(d.digest)").map { blobPath($0.digest) }
                    chosen.append(image)
                }
            }
        }
        try walk(index, "index.json", ref: nil, platform: nil, depth: 0)
        guard !choices.isEmpty else { throw ScanFailure(description: "\(store.path): index.json leads to no image manifest") }
        guard !chosen.isEmpty else {
            throw ScanFailure(description: "\(store.path): no image in the OCI index matches \(selection.flags); the index has: \(choices.map(\.label).joined(separator: ", ")) (choose with --platform os/arch[/variant] or --ref NAME)")
        }
        return chosen
    }

    static func document(_ bytes: [UInt8], _ what: String) throws -> JSON {
        do { return try JSON.parse(bytes, options: manifestOptions) } catch {
            throw ScanFailure(description: "OCI layout: \(what) is not valid JSON: \(error)")
        }
    }

    /// The digests of the descriptors in `document[key]` (an OCI index's manifests, a
    /// manifest's layers): each must have a string `digest` (and a string `mediaType`, if any).
    static func digests(_ bytes: [UInt8], _ key: String, _ what: String) throws -> [String] {
        try Descriptor.list(try document(bytes, what), key, what).map(\.digest)
    }

    /// Applies one layer: whiteouts delete from the layers below, entries add or replace.
    /// Whiteouts are applied in one pass after the layer's entries (a path is gone when it or
    /// one of its parents was whited out), so a layer of many whiteouts stays linear.
    mutating func apply(_ contents: Layer, layer: Int) {
        for var file in contents.files {
            file.layer = layer
            files[file.path] = file
            history.append(file)
        }
        let removed = contents.removed, opaque = contents.opaque
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

    /// One layer as its archive says it: entries in order, then its whiteouts. Read once and
    /// applied to every image that lists it.
    struct Layer {
        var files: [File] = []
        var removed = Set<String>()       // .wh.NAME: NAME and everything below it
        var opaque = Set<String>()        // .wh..wh..opq in DIR: everything below DIR

        /// Reads a layer to its end, keeping only what `keepsContent` asks for; `contentBytes`
        /// counts what is kept across the whole image, against `maxContentBytes`.
        static func read(_ reader: ArchiveReader, contentBytes: inout Int) throws -> Layer {
            var layer = Layer()
            try reader.forEach { entry, read in
                let parts = entry.path.split(separator: "/")
                guard let name = parts.last else { return }
                let dir = parts.dropLast().joined(separator: "/")
                if name == ".wh..wh..opq" { layer.opaque.insert(dir); return }
                if name.hasPrefix(".wh.") { layer.removed.insert((dir.isEmpty ? "" : dir + "/") + name.dropFirst(4)); return }
                let keep = entry.kind == .file && ContainerImage.keepsContent(entry.path, size: entry.declaredSize)
                let bytes = keep ? try read() : []
                contentBytes += bytes.count
                guard contentBytes <= ContainerImage.maxContentBytes else {
                    throw ScanFailure(description: "more than \(ContainerImage.maxContentBytes >> 20) MiB of package databases and candidate secret files")
                }
                layer.files.append(File(path: entry.path, layer: 0, mode: entry.mode, kind: entry.kind, bytes: bytes))
            }
            return layer
        }
    }

    /// File contents kept in memory across all layers.
    static let maxContentBytes = 512 << 20

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
            let gone = files[file.path]?.layer != file.layer
            let note = gone ? " (deleted or replaced by a later layer, still in the image)" : ""
            var work = 0
            for (number, line, secret) in ContainerImage.secrets(in: file.bytes, work: &work) {
                let text = String(decoding: line, as: UTF8.self)
                switch secret {
                case .privateKey:
                    out.append(Finding(rule: "private-key", severity: .high, file: "layer\(file.layer):\(file.path)", startLine: number, endLine: number,
                                       message: "private key in the image" + note, evidence: String(text.prefix(60))))
                case .token(let token):
                    out.append(Finding(rule: "cloud-token", severity: .high, file: "layer\(file.layer):\(file.path)", startLine: number, endLine: number,
                                       message: "\(token) in the image" + note, evidence: String(text.prefix(8)) + "…"))
                }
            }
        }
        return out
    }

    enum Secret: Equatable {
        case privateKey
        case token(String)
    }

    static let keyBegin = Array("-----BEGIN".utf8), keyEnd = Array("PRIVATE KEY-----".utf8)

    /// The lines of `bytes` (split at LF, numbered from 1) on which a secret rule fires, at most
    /// one a line, a private key before a token. One pass over the lines, each looked into as a
    /// slice of the file, byte by byte: the cost is linear in the file whatever its shape. (Each
    /// line once became a String searched with `contains`, which builds a pattern table per call:
    /// 1.5 s of CPU for a MiB of blank lines.) `work` counts the bytes looked at, so a test can
    /// check the scaling without a clock.
    static func secrets(in bytes: [UInt8], work: inout Int) -> [(line: Int, text: ArraySlice<UInt8>, secret: Secret)] {
        var out: [(line: Int, text: ArraySlice<UInt8>, secret: Secret)] = []
        var start = 0, number = 1
        while start <= bytes.count {
            // Only a line holding a byte some marker starts with ("-----BEGIN", "AKIA", "AIza",
            // "ghp_", "xox") is looked into further.
            var end = start, candidate = false
            while end < bytes.count && bytes[end] != 10 {
                let b = bytes[end]
                candidate = candidate || b == 45 || b == 65 || b == 103 || b == 120
                end += 1
            }
            work += end - start + 1
            let line = bytes[start..<end]
            if candidate, let secret = secret(in: line, work: &work) { out.append((number, line, secret)) }
            start = end + 1
            number += 1
        }
        return out
    }

    /// A private key's armour, else a cloud token, in one line.
    static func secret(in line: ArraySlice<UInt8>, work: inout Int) -> Secret? {
        if firstIndex(of: keyBegin, in: line, from: line.startIndex, work: &work) != nil
            && firstIndex(of: keyEnd, in: line, from: line.startIndex, work: &work) != nil { return .privateKey }
        return cloudToken(line, work: &work).map(Secret.token)
    }

    /// AWS access key ids, GitHub tokens, Slack tokens, Google API keys.
    static let tokenPrefixes: [(prefix: [UInt8], length: Int, what: String)] = [
        (Array("AKIA".utf8), 16, "an AWS access key id"), (Array("ghp_".utf8), 36, "a GitHub token"),
        (Array("xoxb-".utf8), 0, "a Slack token"), (Array("xoxp-".utf8), 0, "a Slack token"), (Array("AIza".utf8), 35, "a Google API key"),
    ]

    static func cloudToken(_ b: ArraySlice<UInt8>, work: inout Int) -> String? {
        for (prefix, length, what) in tokenPrefixes {
            var from = b.startIndex
            while let i = firstIndex(of: prefix, in: b, from: from, work: &work) {
                let start = i + prefix.count
                let tail = b[start..<min(b.endIndex, start + length)]
                work += tail.count
                let ok = tail.count == length && tail.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95 }
                // AWS key ids are upper case and digits only.
                if ok && (what != "an AWS access key id" || tail.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) }) { return what }
                from = i + 1
            }
        }
        return nil
    }

    /// Where `needle` first occurs in `hay` at or after index `from`.
    static func firstIndex(of needle: [UInt8], in hay: ArraySlice<UInt8>, from: Int, work: inout Int) -> Int? {
        var i = from
        while i + needle.count <= hay.endIndex {
            work += 1
            if hay[i] == needle[0] {
                var k = 1
                while k < needle.count && hay[i + k] == needle[k] { k += 1 }
                work += k - 1
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}
