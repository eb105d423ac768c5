import CordonJSON
import CordonPackaging
import CordonScan
import FuzzSupport

/// The install gate's readers of untrusted text, by the input's first byte (mod 3): a PEP 691
/// project page (for the project its own `name` claims, then for another); a requirements file;
/// a distribution file name. Checked: every file a page keeps is a file of that project, with a
/// 64-digit lowercase sha256 when it has one and an upload time that reads back from its
/// formatted second; a page for another project is refused; every requirement's name is valid
/// and normalized, its hashes `ALG:hex` in lowercase, its pinned version one `==` clause; a file
/// name that parses names a valid project and reads back the same.
@main enum FuzzPackaging {
    static func main() {
        Fuzzer.run { input in
            guard let mode = input.first else { return }
            let bytes = Array(input.dropFirst())
            switch mode % 3 {
            case 0: page(bytes)
            case 1: requirements(String(decoding: bytes, as: UTF8.self))
            default: filename(String(decoding: bytes, as: UTF8.self))
            }
        }
    }

    static func page(_ bytes: [UInt8]) {
        var limits = SimpleIndex.Limits()
        limits.maxFiles = 64
        limits.maxBytes = 1 << 16
        // The project the page says it is (what a reader that trusted it would ask for).
        let claimed = (try? JSON.parse(bytes))?["name"]?.stringValue ?? "requests"
        guard let p = try? SimpleIndex.parseProjectPage(bytes, expected: claimed, limits: limits) else { return }
        require(p.normalizedName == normalizePyPIName(claimed), "a page for \(p.name) read as \(claimed)'s")
        require(p.files.count <= 64, "\(p.files.count) files past the cap")
        for f in p.files {
            require(f.kind.normalizedName == p.normalizedName, "\(f.filename) kept on \(p.name)'s page")
            if let sha = f.sha256 {
                require(sha.utf8.count == 64 && sha.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }, "sha256 \(sha)")
            }
            if let t = f.uploadTime {
                require(Timestamp.parse(Timestamp.format(t)) == t.rounded(.down), "upload time \(t) does not read back")
            }
            guard case .success(let again) = DistributionFile.parse(f.filename, project: p.normalizedName) else { fatalError("\(f.filename) kept but does not parse") }
            require(again == f.kind, "\(f.filename) reads differently")
        }
        let other = normalizePyPIName(claimed) == "other-project" ? "another-project" : "other-project"
        require((try? SimpleIndex.parseProjectPage(bytes, expected: other, limits: limits)) == nil, "\(p.name)'s page read as \(other)'s")
    }

    static func requirements(_ text: String) {
        guard let list = try? RequirementsFile.parse(text, source: "fuzz") else { return }
        var names = Set<String>()
        for r in list {
            require(isValidPyPIName(r.name) && r.normalizedName == normalizePyPIName(r.name), "name \(r.name)")
            require(names.insert(r.normalizedName).inserted, "\(r.name) twice")
            for h in r.hashes {
                let parts = h.split(separator: ":")
                require(parts.count == 2 && ["sha256", "sha384", "sha512"].contains(parts[0]) && parts[1] == parts[1].lowercased(), "hash \(h)")
            }
            if let v = r.pinnedVersion { require(r.specifier == "==" + v && PEP440Version(v) != nil, "pinned \(v) from \(r.specifier)") }
        }
    }

    static func filename(_ text: String) {
        guard case .success(let kind) = DistributionFile.parse(text) else { return }
        require(isValidPyPIName(kind.normalizedName), "project \(kind.normalizedName)")
        require(PEP440Version(kind.version) != nil, "version \(kind.version)")
        guard case .success(let again) = DistributionFile.parse(text) else { fatalError("\(text) parsed once only") }
        require(again == kind, "\(text) reads differently twice")
    }
}
