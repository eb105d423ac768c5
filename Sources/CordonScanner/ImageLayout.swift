import CordonArchive
import CordonJSON
import CordonSystem

/// Which images of an archive that holds several to scan: those of one platform
/// (`--platform os/arch[/variant]`, no variant matching any) and/or one ref name
/// (`--ref NAME`, the `org.opencontainers.image.ref.name` annotation). Neither: all of them.
public struct ImageSelection: Sendable, Equatable {
    public struct Platform: Sendable, Equatable, CustomStringConvertible {
        public var os: String
        public var architecture: String
        public var variant: String?

        public init(os: String, architecture: String, variant: String? = nil) {
            self.os = os
            self.architecture = architecture
            self.variant = variant
        }

        /// "linux/arm64" or "linux/arm64/v8"; nil for anything else.
        public init?(parsing text: String) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 || parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
            self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
        }

        public var description: String { "\(os)/\(architecture)" + (variant.map { "/\($0)" } ?? "") }
    }

    public var platform: Platform?
    public var ref: String?

    public init(platform: Platform? = nil, ref: String? = nil) {
        self.platform = platform
        self.ref = ref
    }

    public static let all = ImageSelection()
    public var isEmpty: Bool { platform == nil && ref == nil }

    /// The flags as typed, for messages: "--platform linux/arm64 --ref v1".
    var flags: String {
        [platform.map { "--platform \($0)" }, ref.map { "--ref \($0)" }].compactMap { $0 }.joined(separator: " ")
    }

    func matches(_ image: ImageManifest) -> Bool {
        if let ref, image.ref != ref { return false }
        if let platform {
            guard let theirs = image.platform, theirs.os == platform.os, theirs.architecture == platform.architecture else { return false }
            if let variant = platform.variant, theirs.variant != variant { return false }
        }
        return true
    }
}

/// One image of an archive: its layers (member paths) and what tells it from the others.
struct ImageManifest {
    var ref: String?
    var platform: ImageSelection.Platform?
    var digest: String?
    /// A docker save image's first tag, or its place in manifest.json.
    var tag: String?
    /// A docker save image's tags (`RepoTags`).
    var tags: [String] = []
    var layers: [String] = []

    init(ref: String? = nil, platform: ImageSelection.Platform? = nil, digest: String? = nil, tag: String? = nil, layers: [String] = []) {
        self.ref = ref
        self.platform = platform
        self.digest = digest
        self.tag = tag
        self.layers = layers
    }

    init(label: String, layers: [String]) {
        self.init(tag: label, layers: layers)
    }

    /// "ref v1 linux/amd64", "linux/arm64/v8", a tag, or the manifest's digest when nothing else
    /// tells it apart.
    var label: String {
        if let tag { return tag }
        let parts = [ref.map { "ref \($0)" }, platform?.description].compactMap { $0 }
        return parts.isEmpty ? (digest ?? "image") : parts.joined(separator: " ")
    }

    /// " (label)" for messages about one image of several.
    var named: String { tag == nil && ref == nil && platform == nil ? "" : " (\(label))" }
}

/// An OCI content descriptor, as an index or a manifest lists them.
struct Descriptor {
    var digest: String
    var mediaType: String?
    var platform: ImageSelection.Platform?
    var annotations: [String: String] = [:]

    static let indexTypes: Set<String> = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    var isIndex: Bool { mediaType.map(Self.indexTypes.contains) ?? false }
    var ref: String? { annotations["org.opencontainers.image.ref.name"] }
    /// BuildKit's provenance and SBOM manifests sit in an index beside the images they describe.
    var isAttestation: Bool { annotations["vnd.docker.reference.type"] == "attestation-manifest" }

    /// The descriptors in `document[key]`; each member read must have the type the image spec
    /// gives it, and the error names the one that does not.
    static func list(_ document: JSON, _ key: String, _ what: String) throws -> [Descriptor] {
        guard let descriptors = document[key]?.arrayValue else {
            throw ScanFailure(description: "OCI layout: \(what) has no \"\(key)\" array")
        }
        return try descriptors.enumerated().map { i, descriptor in
            let at = "\(what): \(key)[\(i)]"
            func string(_ value: JSON?, _ name: String) throws -> String? {
                switch value {
                case nil, .null?: return nil
                case .string(let s)?: return s
                default: throw ScanFailure(description: "OCI layout: \(at).\(name) is not a string")
                }
            }
            guard let digest = descriptor["digest"]?.stringValue else {
                throw ScanFailure(description: "OCI layout: \(at) has no digest")
            }
            var out = Descriptor(digest: digest, mediaType: try string(descriptor["mediaType"], "mediaType"))
            switch descriptor["platform"] {
            case nil, .null?: break
            case .object?:
                let platform = descriptor["platform"]!
                guard let os = try string(platform["os"], "platform.os"), let arch = try string(platform["architecture"], "platform.architecture") else {
                    throw ScanFailure(description: "OCI layout: \(at).platform has no os or architecture")
                }
                out.platform = .init(os: os, architecture: arch, variant: try string(platform["variant"], "platform.variant"))
            default: throw ScanFailure(description: "OCI layout: \(at).platform is not an object")
            }
            switch descriptor["annotations"] {
            case nil, .null?: break
            case .object(let members)?:
                for (name, value) in members where name == "org.opencontainers.image.ref.name" || name == "vnd.docker.reference.type" {
                    out.annotations[name] = try string(value, "annotations[\"\(name)\"]")
                }
            default: throw ScanFailure(description: "OCI layout: \(at).annotations is not an object")
            }
            return out
        }
    }
}

/// Where an image archive's members are: inside a plain tar (read in passes: the headers, then
/// the few documents, then the layers streamed), or the files of an OCI layout directory. The
/// same limits hold for both, and are checked on sizes known before anything is read.
enum ImageStore {
    case tar(String)
    case directory(String)

    var path: String {
        switch self { case .tar(let p), .directory(let p): return p }
    }

    /// The regular members and their sizes. A tar's headers are checked by `ArchiveReader`
    /// (entry size, count, paths); a directory's files get the same entry-size and count limits.
    func members(limits: ArchiveLimits) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        switch self {
        case .tar(let path):
            try ArchiveReader(path: path, limits: limits).forEach { entry, _ in
                if entry.kind == .file { out[entry.path] = entry.declaredSize }
            }
        case .directory(let root):
            let files = try FileSystem.regularFiles(under: root)
            guard files.count <= limits.entryCount else { throw ArchiveError.limit(name: "entry count", limit: Int64(limits.entryCount), archive: root) }
            for file in files {
                let name = String(file.dropFirst(root.count).drop { $0 == "/" })
                let size = try FileSystem.size(file)
                guard size <= limits.entryBytes else { throw ArchiveError.limit(name: "entry size", limit: limits.entryBytes, archive: "\(root)!\(name)") }
                out[name] = size
            }
        }
        return out
    }

    /// Reads the named members whole (a later member of the same name replaces an earlier one,
    /// as the tar's last wins on extraction); each must be at most `documentLimit` bytes, which
    /// its size says before it is read.
    func read(_ names: some Collection<String>, members: [String: Int64], limits: ArchiveLimits) throws -> [String: [UInt8]] {
        let names = Set(names)
        guard !names.isEmpty else { return [:] }
        var total: Int64 = 0
        for name in names.sorted() {
            guard let size = members[name], size <= ContainerImage.documentLimit else {
                throw ScanFailure(description: "\(path): \(name) is \(members[name] ?? 0) bytes, more than an image manifest or index may be (\(ContainerImage.documentLimit >> 20) MiB)")
            }
            total += size
        }
        guard total <= 4 * Int64(ContainerImage.documentLimit) else {
            throw ScanFailure(description: "\(path): its manifests and indexes add up to \(total) bytes, more than the scanner reads (\(4 * ContainerImage.documentLimit >> 20) MiB at one level of an index)")
        }
        var out: [String: [UInt8]] = [:]
        switch self {
        case .tar(let path):
            try ArchiveReader(path: path, limits: limits).forEach { entry, read in
                if entry.kind == .file && names.contains(entry.path) { out[entry.path] = try read() }
            }
        case .directory(let root):
            for name in names {
                out[name] = try FileSystem.readRegularFile("\(root)/\(name)", limit: ContainerImage.documentLimit, noFollow: true)
            }
        }
        return out
    }

    /// Opens each named member as an archive (a layer) and hands it to `body`, streamed: in a
    /// tar, in the tar's order, pulled from the tar as it is read; in a directory, from its file.
    func stream(_ names: Set<String>, limits: ArchiveLimits, _ body: (String, ArchiveReader) throws -> Void) throws {
        switch self {
        case .tar(let path):
            let outer = try ArchiveReader(path: path, limits: limits)
            try outer.forEach { entry, _ in
                guard entry.kind == .file && names.contains(entry.path) else { return }
                try body(entry.path, try outer.nestedStream(entry))
            }
        case .directory(let root):
            for name in names.sorted() {
                try body(name, try ArchiveReader(path: "\(root)/\(name)", limits: limits, depth: 2))
            }
        }
    }
}
