import CordonArchive
import CordonPackaging
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Wheels unpacked into one `site` directory, as pip would place them for a `--target`-style
/// tree, with nothing of the wheel run: no scripts made, no bytecode compiled, no `.pth`
/// processed. It runs inside a sandbox with no network (`cordon-scan install-wheels`); what it
/// writes is checked again by the store before it is kept.
///
/// Only what the wheel's RECORD vouches for is written: every member must be listed with its
/// sha256 (hashed again while writing), no member twice, no link of any kind. Files of
/// `NAME.data/purelib` and `NAME.data/platlib` go to the top of site; `scripts`, `headers` and
/// `data` have no place in a site tree and are skipped, each named. A file two wheels of the
/// set would both write refuses the set. Writes go through descriptors, never following a
/// symlink, creating each file with O_EXCL.
public final class WheelInstaller: Sendable {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public struct Installed: Sendable {
        public var files = 0
        public var bytes: Int64 = 0
        public var skipped: [String] = []
        /// The top-level names it makes importable (`PythonModules.topLevel`): what `import NAME` finds
        /// in the site.
        public var top: Set<String> = []
    }

    let site: Int32
    /// Every path written (or being written), by the wheel that claimed it, and the bytes in
    /// all: wheels may be installed from several threads at once.
    private let state = Mutex<(written: [String: (wheel: String, rank: Int)], bytes: Int64)>(([:], 0))
    let maxBytes: Int64

    /// `site` must exist and be empty.
    public init(site path: String, maxBytes: Int64 = 8 << 30) throws(Failure) {
        site = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard site >= 0 else { throw Failure("\(path): \(SystemError.text(errno))") }
        self.maxBytes = maxBytes
    }

    deinit { close(site) }

    /// Installs the wheel open at `descriptor` (`filename` names it in messages; `rank`, its
    /// place in the set, orders the two names of a clash).
    public func install(descriptor: Int32, filename: String, rank: Int = 0) throws(Failure) -> Installed {
        // Its RECORD first: what may be written, with what digest.
        var record: [String: (sha256: String, size: Int?)] = [:]
        var info: String?
        let zip: ZipDirectory
        do { zip = try ZipDirectory.read(descriptor, name: filename) } catch { throw Failure(error.description) }
        var listed: [(path: String, isDirectory: Bool)] = []
        do {
            guard lseek(descriptor, 0, SEEK_SET) == 0 else { throw Failure("\(filename): \(SystemError.text(errno))") }
            let reader = try ArchiveReader(descriptor: descriptor, name: filename)
            try reader.forEach { entry, read in
                listed.append((entry.path, entry.kind == .directory))
                let parts = entry.path.split(separator: "/")
                guard parts.count == 2, parts[0].hasSuffix(".dist-info"), parts[1] == "RECORD", entry.kind == .file else { return }
                guard info == nil else { throw Failure("\(filename): more than one .dist-info/RECORD") }
                info = String(parts[0])
                for row in PackageCheck.csvRows(try read()) where row.count == 3 && row[1].hasPrefix("sha256=") {
                    record[row[0]] = (String(row[1].dropFirst(7)), Int(row[2]))
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("\(filename): \(error)")
        }
        if let differs = zip.disagreement(with: listed) { throw Failure("\(filename): \(differs)") }
        guard let info else { throw Failure("\(filename): no .dist-info/RECORD") }
        let data = String(info.dropLast(".dist-info".count)) + ".data/"
        let exempt: Set<String> = ["\(info)/RECORD", "\(info)/RECORD.jws", "\(info)/RECORD.p7s"]
        guard lseek(descriptor, 0, SEEK_SET) == 0 else { throw Failure("\(filename): \(SystemError.text(errno))") }
        var out = Installed()
        var seen = Set<String>()
        do {
            let reader = try ArchiveReader(descriptor: descriptor, name: filename)
            try reader.forEach { entry, read in
                switch entry.kind {
                case .directory: return
                case .symlink, .hardlink: throw Failure("\(filename): \(entry.path) is a \(entry.kind.rawValue) (a wheel has regular files only)")
                case .file: break
                }
                guard seen.insert(entry.path).inserted else { throw Failure("\(filename): \(entry.path) appears twice") }
                let bytes = try read()
                if !exempt.contains(entry.path) {
                    guard let listed = record[entry.path] else { throw Failure("\(filename): \(entry.path) is not in RECORD") }
                    var h = SHA256()
                    h.update(bytes)
                    guard PackageCheck.urlsafeBase64(h.finalize()) == listed.sha256, listed.size.map({ $0 == bytes.count }) ?? true else {
                        throw Failure("\(filename): \(entry.path) does not match its RECORD entry")
                    }
                }
                var target = entry.path
                if target.hasPrefix(data) {
                    let rest = target.dropFirst(data.count)
                    if rest.hasPrefix("purelib/") { target = String(rest.dropFirst(8)) }
                    else if rest.hasPrefix("platlib/") { target = String(rest.dropFirst(8)) }
                    else {
                        out.skipped.append(entry.path)
                        return
                    }
                }
                // Claimed before it is written: of two wheels with one path, one writes it and
                // the other fails naming both, whichever thread comes first.
                let other: (wheel: String, rank: Int)? = state.withLock { s in
                    if let other = s.written[target] { return other }
                    s.written[target] = (filename, rank)
                    return nil
                }
                if let other {
                    let (first, second) = other.rank <= rank ? (other.wheel, filename) : (filename, other.wheel)
                    throw Failure("\(target) would be written by both \(first) and \(second)")
                }
                try write(target, bytes, mode: entry.mode & 0o111 != 0 ? 0o755 : 0o644, wheel: filename)
                if let module = PythonModules.topLevel(target) { out.top.insert(module) }
                out.files += 1
                out.bytes += Int64(bytes.count)
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("\(filename): \(error)")
        }
        for path in record.keys where !seen.contains(path) && !exempt.contains(path) {
            throw Failure("\(filename): RECORD lists \(path), which the wheel does not have")
        }
        return out
    }

    /// Writes `bytes` at `path` under site: each directory on the way made or opened without
    /// following a symlink, the file created new.
    func write(_ path: String, _ contents: [UInt8], mode: mode_t, wheel: String) throws(Failure) {
        let total = state.withLock { s in
            s.bytes += Int64(contents.count)
            return s.bytes
        }
        guard total <= maxBytes else { throw Failure("the set is over \(maxBytes) bytes") }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let name = parts.popLast(), !name.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), name != ".", name != ".." else {
            throw Failure("\(wheel): \(path) is not a path inside the site")
        }
        var dir = dup(site)
        defer { close(dir) }
        for part in parts {
            if mkdirat(dir, part, 0o755) != 0 && errno != EEXIST { throw Failure("\(path): \(SystemError.text(errno))") }
            let next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw Failure("\(path): \(SystemError.text(errno))") }
            close(dir)
            dir = next
        }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure("\(path): \(SystemError.text(errno))") }
        defer { close(fd) }
        var done = 0
        while done < contents.count {
            let n = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, contents.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("\(path): \(SystemError.text(errno))") }
            done += n
        }
    }
}
