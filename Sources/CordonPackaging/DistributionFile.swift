import CordonScan

/// What a distribution file's name says it is: a wheel (PEP 427, with the binary distribution
/// format's escaping) or an sdist (`NAME-VERSION.tar.gz`, or the older `.zip`). Names are read
/// strictly: a file whose name does not parse is not installed, and the project a name claims is
/// compared (PEP 503-normalized) with the project whose page listed it.
public enum DistributionFile: Sendable, Equatable {
    case wheel(Wheel)
    case sdist(Sdist)

    public struct Wheel: Sendable, Equatable {
        /// As the file name writes it (`typing_extensions`), and PEP 503-normalized.
        public var name: String
        public var normalizedName: String
        public var version: String
        public var build: String?
        public var pythonTags: [String]
        public var abiTags: [String]
        public var platformTags: [String]

        /// Pure Python: installable on any platform (`none` ABI, `any` platform).
        public var isPure: Bool { abiTags == ["none"] && platformTags == ["any"] }
    }

    public struct Sdist: Sendable, Equatable {
        public var name: String
        public var normalizedName: String
        public var version: String
        /// ".tar.gz" or ".zip".
        public var suffix: String
    }

    public var normalizedName: String {
        switch self {
        case .wheel(let w): return w.normalizedName
        case .sdist(let s): return s.normalizedName
        }
    }

    public var version: String {
        switch self {
        case .wheel(let w): return w.version
        case .sdist(let s): return s.version
        }
    }

    public var isSdist: Bool { if case .sdist = self { return true }; return false }

    public struct NameError: Error, Sendable, Equatable, CustomStringConvertible {
        public var filename: String
        public var reason: String
        public var description: String { "\"\(SimpleIndex.shown(filename))\": \(reason)" }
    }

    /// The file `filename` names. Nothing with a '/', '\\', a NUL or a control character, or a
    /// leading '.', is a file name; nor is one over 255 bytes.
    /// With `project` (the project whose page lists the file), an sdist's name is split where
    /// its left part is that project (`foo-1.0-1.tar.gz` is foo's 1.0-1, a post-release).
    public static func parse(_ filename: String, project: String? = nil) -> Result<DistributionFile, NameError> {
        func fail(_ reason: String) -> Result<DistributionFile, NameError> { .failure(NameError(filename: filename, reason: reason)) }
        guard !filename.isEmpty, filename.utf8.count <= 255, !filename.hasPrefix("."),
              !filename.utf8.contains(where: { $0 == 47 || $0 == 92 || $0 <= 0x20 || $0 >= 0x7f }) else {
            return fail("not a file name (empty, over 255 bytes, a leading '.', or a '/', '\\\\', space, control character or non-ASCII byte)")
        }
        if filename.hasSuffix(".whl") {
            let parts = filename.dropLast(4).split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 5 || parts.count == 6 else {
                return fail("a wheel's name is NAME-VERSION(-BUILD)-PYTHON-ABI-PLATFORM.whl (\(parts.count) parts, not 5 or 6)")
            }
            let name = parts[0], version = parts[1]
            guard isValidPyPIName(name) else { return fail("\"\(SimpleIndex.shown(name))\" is not a package name") }
            guard PEP440Version(version) != nil else { return fail("\"\(SimpleIndex.shown(version))\" is not a PEP 440 version") }
            var build: String?
            if parts.count == 6 {
                guard let first = parts[2].utf8.first, first >= 48 && first <= 57, parts[2].utf8.allSatisfy(isTagByte) else {
                    return fail("a build tag starts with a digit (\"\(SimpleIndex.shown(parts[2]))\")")
                }
                build = parts[2]
            }
            let tags = parts.suffix(3).map { $0.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
            for (what, list) in zip(["python", "ABI", "platform"], tags) where list.contains(where: { $0.isEmpty || !$0.utf8.allSatisfy(isTagByte) }) {
                return fail("bad \(what) tag in \"\(SimpleIndex.shown(list.joined(separator: ".")))\"")
            }
            return .success(.wheel(Wheel(name: name, normalizedName: normalizePyPIName(name), version: version, build: build,
                                         pythonTags: tags[0], abiTags: tags[1], platformTags: tags[2])))
        }
        for suffix in [".tar.gz", ".zip"] where filename.hasSuffix(suffix) {
            // NAME-VERSION: the version is after the last '-' (a name may hold '-' in older
            // sdists; a PEP 440 version never does).
            let stem = filename.dropLast(suffix.utf8.count)
            let dashes = stem.indices.filter { stem[$0] == "-" }
            let projectDash = project.map(normalizePyPIName).flatMap { p in dashes.first { normalizePyPIName(String(stem[..<$0])) == p } }
            guard let dash = projectDash ?? dashes.last else { return fail("an sdist's name is NAME-VERSION\(suffix)") }
            let name = String(stem[..<dash]), version = String(stem[stem.index(after: dash)...])
            guard isValidPyPIName(name) else { return fail("\"\(SimpleIndex.shown(name))\" is not a package name") }
            guard PEP440Version(version) != nil else { return fail("\"\(SimpleIndex.shown(version))\" is not a PEP 440 version") }
            return .success(.sdist(Sdist(name: name, normalizedName: normalizePyPIName(name), version: version, suffix: suffix)))
        }
        return fail("neither a wheel (.whl) nor an sdist (.tar.gz, .zip)")
    }

    /// Letters, digits, '_' (tags and build tags hold nothing else).
    static func isTagByte(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 }
}
