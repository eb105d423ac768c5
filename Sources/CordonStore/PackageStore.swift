import CordonJSON
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// The install gate's store (STATE/store, root's): verified archives by content, and installed
/// sets by the hash of their lock, each read-only once kept. Its directories are 0711: no one
/// else may list them, but a sandbox's set-up (root of its own user namespace, which is nobody
/// to the host's files) must pass through them to bind a blob or a set read-only.
///
///     blobs/sha256/HEX        an archive whose bytes hash to HEX (0444); written only here,
///                             by copying and hashing at once, so what is scanned and installed
///                             is the blob, never a file a worker could still rewrite
///     sets/H/site/            an installed set (directories 0555, files 0444), bound read-only
///                             into sandboxes at /cordon/site
///     sets/H/lock.json        what it holds: name, version, filename and sha256 per file
///     sets/H/record.json      the install's record (0400: it names the request's source)
///     records/T-PID.json      every install's record, refused ones too (0400)
///     .tmp-*                  work in progress, removed at start
///     .stale-*                sets moved aside by gc: a sandbox may still have one mounted, so
///                             none is emptied in place; removed at the next start
///
/// Changes (a set kept, gc, the start's clean-up) are made under an exclusive flock on `.lock`,
/// whether they come from cordond or from `cordon install` run by root; gc keeps blobs younger
/// than a grace period, since an install holds no lock between copying its blobs in and keeping
/// its set.
public final class PackageStore: @unchecked Sendable {
    public let root: String
    public var blobs: String { "\(root)/blobs/sha256" }
    public var sets: String { "\(root)/sets" }

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Opens (making it if need be) the store at `root`: root's, not writable by others, and
    /// no symlink at any of its own directories.
    public init(root: String) throws(Problem) {
        self.root = root
        for dir in [root, "\(root)/blobs", "\(root)/blobs/sha256", "\(root)/sets"] {
            if mkdir(dir, 0o711) != 0 && errno != EEXIST { throw Problem("\(dir): \(SystemError.text(errno))") }
            var st = stat()
            guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { throw Problem("\(dir): not a directory (a symlink is not taken)") }
            guard st.st_uid == geteuid(), st.st_mode & 0o022 == 0 else {
                throw Problem("\(dir): owned by uid \(st.st_uid) with mode \(String(st.st_mode & 0o7777, radix: 8)); the store must be this user's and writable by no one else")
            }
        }
        for dir in [root, "\(root)/blobs", "\(root)/blobs/sha256", "\(root)/sets"] { _ = chmod(dir, 0o711) }
    }

    // MARK: Locking

    /// Runs `body` holding the store's exclusive lock; `wait` false: fails at once, saying so,
    /// when another holds it.
    public func locked<T>(wait: Bool = true, _ body: () throws(Problem) -> T) throws(Problem) -> T {
        let fd = open("\(root)/.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Problem("\(root)/.lock: \(SystemError.text(errno))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { throw Problem("the package store \(root) is busy: another install or gc holds it") }
            throw Problem("\(root)/.lock: \(SystemError.text(errno))")
        }
        return try body()
    }

    // MARK: Blobs

    public struct Blob: Sendable, Equatable {
        public var sha256: String
        public var size: Int64
        public var path: String
    }

    /// Copies what `fd` holds (from its start, at most `maxBytes`) into the store, hashing as it
    /// copies, and keeps it as `blobs/sha256/HEX`, 0444. A blob of the same content already
    /// there is checked and kept (a damaged one is replaced).
    public func addBlob(copying fd: Int32, maxBytes: Int64) throws(Problem) -> Blob {
        let tmp = "\(root)/blobs/.tmp-\(getpid())-\(UInt64(MonotonicClock.now * 1e9))"
        let out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw Problem("\(tmp): \(SystemError.text(errno))") }
        var kept = false
        defer {
            close(out)
            if !kept { unlink(tmp) }
        }
        var hash = SHA256()
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(size)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Problem("reading the archive: \(SystemError.text(errno))") }
            if n == 0 { break }
            size += Int64(n)
            guard size <= maxBytes else { throw Problem("the archive is over \(maxBytes) bytes") }
            buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            var written = 0
            while written < n {
                let w = buffer.withUnsafeBytes { write(out, $0.baseAddress! + written, n - written) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw Problem("\(tmp): \(SystemError.text(errno))") }
                written += w
            }
        }
        let hex = hash.hexDigest()
        let path = "\(blobs)/\(hex)"
        if let existing = try? Self.digest(path), existing.sha256 == hex {
            // Young again: gc's grace keeps a blob an install is using, however old.
            _ = utimensat(AT_FDCWD, path, nil, 0)
            return Blob(sha256: hex, size: existing.size, path: path)
        }
        guard fchmod(out, 0o444) == 0, fsync(out) == 0 else { throw Problem("\(tmp): \(SystemError.text(errno))") }
        guard rename(tmp, path) == 0 else { throw Problem("\(path): \(SystemError.text(errno))") }
        kept = true
        return Blob(sha256: hex, size: size, path: path)
    }

    /// The blob of `sha256`, when the store has it and its bytes still hash to it.
    public func blob(_ sha256: String) -> Blob? {
        guard Self.isDigest(sha256) else { return nil }
        let path = "\(blobs)/\(sha256)"
        guard let d = try? Self.digest(path), d.sha256 == sha256 else { return nil }
        return Blob(sha256: sha256, size: d.size, path: path)
    }

    static func isDigest(_ s: String) -> Bool { s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) } }

    /// SHA-256 and size of a regular file, not following a symlink.
    static func digest(_ path: String) throws(Problem) -> (sha256: String, size: Int64) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Problem("\(path): \(SystemError.text(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw Problem("\(path): not a regular file") }
        do { let d = try FileSystem.sha256(of: fd); return (d.hex, d.size) } catch { throw Problem("\(path): \(error)") }
    }

    // MARK: Sets

    public struct InstalledSet: Sendable, Equatable {
        public var hash: String
        public var path: String
        /// The sha256 of every archive in it (from its lock).
        public var blobs: [String]
        public var lock: JSON
        public var site: String { "\(path)/site" }
    }

    /// A fresh directory (0700) for a worker to write a set's `site` into, and for its lock.
    /// Private while the worker writes: through the 0711 store anyone could otherwise open a
    /// file the worker left writable and keep the descriptor past the seal. (The worker's bind
    /// of it is cloned by this process, so it needs no path through it.)
    public func workDirectory() throws(Problem) -> String {
        let dir = "\(root)/.tmp-\(getpid())-\(UInt64(MonotonicClock.now * 1e9))"
        guard mkdir(dir, 0o700) == 0, chmod(dir, 0o700) == 0 else { throw Problem("\(dir): \(SystemError.text(errno))") }
        return dir
    }

    /// Keeps the set a worker wrote in `work` (its `site` directory) as `sets/HASH`: checked
    /// (regular files and directories only, all root's, no set-ID bit), sealed read-only, with
    /// `lock` (a JSON object whose `files` each have a `sha256`) and `record` beside it. A set of
    /// that hash already kept stays as it is and `work` is removed: a set is its lock's content.
    public func keepSet(_ work: String, hash: String, lock: JSON, record: JSON) throws(Problem) -> InstalledSet {
        guard Self.isDigest(hash) else { throw Problem("\"\(hash)\" is not a set's hash (64 lowercase hex digits)") }
        let blobs = try Self.blobs(of: lock)
        defer { remove(work) }
        do { _ = try WorkerTree.check(work, WorkerTree.Rules(top: "site", symlinks: false)) } catch { throw Problem("the installed tree: \(error)") }
        do { try WorkerTree.seal(work, top: "site") } catch { throw Problem("sealing the installed tree: \(error)") }
        do {
            try FileSystem.writeAtomically("\(work)/lock.json", Array(lock.text(JSON.Format(indent: "  ", sortedKeys: true)).utf8), mode: 0o444)
            try FileSystem.writeAtomically("\(work)/record.json", Array(record.text(JSON.Format(indent: "  ", sortedKeys: true)).utf8), mode: 0o400)
        } catch { throw Problem("\(work): \(error)") }
        guard chmod(work, 0o555) == 0 else { throw Problem("\(work): \(SystemError.text(errno))") }
        let path = "\(sets)/\(hash)"
        return try locked { () throws(Problem) -> InstalledSet in
            if let existing = set(hash) { return existing }
            // A directory without a readable lock (a damaged one) may be mounted: moved aside.
            if FileSystem.kind(path) != .missing { try moveAside(hash) }
            guard rename(work, path) == 0 else { throw Problem("\(path): \(SystemError.text(errno))") }
            return InstalledSet(hash: hash, path: path, blobs: blobs, lock: lock)
        }
    }

    /// Marks `set` as in use now (its directory's times): gc's grace keeps it a while.
    public func touch(_ set: InstalledSet) { _ = utimensat(AT_FDCWD, set.path, nil, 0) }

    /// The set `hash`, when kept whole (its lock readable).
    public func set(_ hash: String) -> InstalledSet? {
        guard Self.isDigest(hash) else { return nil }
        let path = "\(sets)/\(hash)"
        guard FileSystem.isDirectory("\(path)/site"), let bytes = FileSystem.readTrusted("\(path)/lock.json", limit: 64 << 20),
              let lock = try? JSON.parse(bytes), let blobs = try? Self.blobs(of: lock) else { return nil }
        return InstalledSet(hash: hash, path: path, blobs: blobs, lock: lock)
    }

    /// Every set kept, by hash.
    public func installedSets() -> [InstalledSet] {
        FileSystem.listDirectory(sets).filter(Self.isDigest).sorted().compactMap(set)
    }

    static func blobs(of lock: JSON) throws(Problem) -> [String] {
        guard case .array(let files)? = lock["files"] else { throw Problem("a set's lock has no files list") }
        var out: [String] = []
        for (i, f) in files.enumerated() {
            guard let sha = f["sha256"]?.stringValue, isDigest(sha) else { throw Problem("the lock's files[\(i)] has no sha256") }
            out.append(sha)
            // A wheel built from an sdist is the set's too: kept while the set is.
            if let built = f["built"]?["sha256"]?.stringValue, isDigest(built) { out.append(built) }
        }
        return out
    }

    // MARK: Pins

    /// Remembers that the request `request` (the SHA-256 hex of what was asked and under which
    /// gate: cordond's key of a tool's requirements) was installed as the set `set`, so that it
    /// is not resolved again (a restarted daemon starts the tool offline). `pins/REQUEST`, 0600.
    /// Under the store's lock, and only while the set is kept (gc may have moved it aside since
    /// it was installed).
    public func pin(_ request: String, to set: String) throws(Problem) {
        guard Self.isDigest(request), Self.isDigest(set) else { throw Problem("a pin names a request and a set by their SHA-256") }
        let dir = "\(root)/pins"
        try locked { () throws(Problem) in
            guard self.set(set) != nil else { throw Problem("the set \(set) is not in the store any more (collected since it was installed)") }
            if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw Problem("\(dir): \(SystemError.text(errno))") }
            var st = stat()
            guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid() else { throw Problem("\(dir): not this user's directory") }
            // Readable as trusted (`pinned`) only while no one else may write it.
            if st.st_mode & 0o077 != 0, chmod(dir, 0o700) != 0 { throw Problem("\(dir): \(SystemError.text(errno))") }
            do { try FileSystem.writeAtomically("\(dir)/\(request)", Array(set.utf8), mode: 0o600) } catch { throw Problem("\(dir)/\(request): \(error)") }
        }
    }

    /// The set `request` was pinned to, when it is still kept whole.
    public func pinned(_ request: String) -> InstalledSet? {
        guard Self.isDigest(request), let bytes = FileSystem.readTrusted("\(root)/pins/\(request)", limit: 64) else { return nil }
        return set(String(decoding: bytes, as: UTF8.self))
    }

    /// The sets some pin names (what gc keeps besides the sets it is told of).
    public func pinnedSets() -> Set<String> {
        Set(FileSystem.listDirectory("\(root)/pins").filter(Self.isDigest).compactMap { pinned($0)?.hash })
    }

    // MARK: Records

    /// Keeps one install's record (refused or not) as `records/TIME-PID-N.json`, 0400; returns
    /// its path.
    public func writeRecord(_ record: JSON) throws(Problem) -> String {
        let dir = "\(root)/records"
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw Problem("\(dir): \(SystemError.text(errno))") }
        var st = stat()
        guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid() else { throw Problem("\(dir): not this user's directory") }
        let stamp = String(UTCTime.format(UTCTime.epochSeconds()).filter { $0 != ":" })
        let path = "\(dir)/\(stamp)-\(getpid())-\(UInt64(MonotonicClock.now * 1e9) % 1_000_000_000).json"
        do { try FileSystem.writeAtomically(path, Array(record.text(JSON.Format(indent: "  ", sortedKeys: true)).utf8), mode: 0o400) } catch {
            throw Problem("\(path): \(error)")
        }
        return path
    }

    // MARK: gc

    public struct Collected: Sendable, Equatable {
        public var sets: [String] = []
        public var blobs: [String] = []
        public var bytes: Int64 = 0
    }

    /// Removes every set not in `keeping` and not pinned (`pin`), then every blob no remaining set (nor `keepingBlobs`)
    /// holds. Sets are moved aside, never emptied where they are (a running sandbox may have one
    /// mounted); blobs are unlinked. `dryRun`: says what would go, changes nothing. With another
    /// holder of the store (an install keeping its set), fails at once saying so, unless `wait`.
    ///
    /// A blob is kept while younger than `blobGraceSeconds` too: an install copies its blobs in
    /// (or finds them there, which makes them young again) before it keeps its set, without
    /// holding the store in between (a download can take minutes), so a blob no set holds yet
    /// may be one it is about to. A set kept or used within `setGraceSeconds` is kept likewise.
    public func collect(keeping: Set<String>, keepingBlobs: Set<String> = [], dryRun: Bool, wait: Bool = false,
                        blobGraceSeconds: Double = 86_400, setGraceSeconds: Double = 3600) throws(Problem) -> Collected {
        try locked(wait: wait) { () throws(Problem) -> Collected in
            var out = Collected()
            let all = installedSets()
            var kept = keepingBlobs
            // A pinned set is some tool's: kept while its pin is.
            let keeping = keeping.union(pinnedSets())
            let now = UTCTime.epochSeconds()
            for s in all {
                // A set kept or used (`touch`) within the grace may be an install's that is
                // still on its way to binding or pinning it.
                var st = stat()
                let young = lstat(s.path, &st) == 0 && now - Double(st.st_mtim.tv_sec) < setGraceSeconds
                if keeping.contains(s.hash) || young { kept.formUnion(s.blobs); continue }
                out.sets.append(s.hash)
                if !dryRun { try moveAside(s.hash) }
            }
            for name in FileSystem.listDirectory(blobs).sorted() where Self.isDigest(name) && !kept.contains(name) {
                var st = stat()
                guard lstat("\(blobs)/\(name)", &st) == 0 else { continue }
                if now - Double(st.st_mtim.tv_sec) < blobGraceSeconds { continue }
                out.blobs.append(name)
                out.bytes += Int64(st.st_size)
                if !dryRun { unlink("\(blobs)/\(name)") }
            }
            return out
        }
    }

    func moveAside(_ hash: String) throws(Problem) {
        let aside = "\(root)/.stale-\(hash)-\(UInt64(MonotonicClock.now * 1e9))"
        guard rename("\(sets)/\(hash)", aside) == 0 else { throw Problem("\(sets)/\(hash): moving it aside: \(SystemError.text(errno))") }
    }

    /// Removes work left half done by processes that are gone and, with `setsAside` (only at
    /// cordond's start, when no sandbox of the store can have one mounted), sets gc moved
    /// aside. What could not be removed is returned, not hidden.
    public func removeStale(setsAside: Bool = true) -> [String] {
        // Under the store's lock, and not at all while another process holds it: its work in
        // progress is not stale.
        (try? locked(wait: false) { () throws(Problem) -> [String] in removeStaleLocked(setsAside: setsAside) }) ?? []
    }

    func removeStaleLocked(setsAside: Bool = true) -> [String] {
        var failed: [String] = []
        for name in FileSystem.listDirectory(root) where (name.hasPrefix(".tmp-") && !Self.isLiveWork(name)) || (setsAside && name.hasPrefix(".stale-")) {
            if let problem = removeReporting("\(root)/\(name)") { failed.append(problem) }
        }
        for name in FileSystem.listDirectory("\(root)/blobs") where name.hasPrefix(".tmp-") && !Self.isLiveWork(name) {
            if let problem = removeReporting("\(root)/blobs/\(name)") { failed.append(problem) }
        }
        return failed
    }

    /// Whether `.tmp-PID-…` is the work of a process still running (an install does not hold
    /// the store's lock while it fetches and checks: its work is not stale while it lives).
    static func isLiveWork(_ name: String) -> Bool {
        let parts = name.split(separator: "-")
        guard parts.count >= 3, let pid = Int32(parts[1]), pid > 0 else { return false }
        return pid == getpid() || kill(pid, 0) == 0 || errno == EPERM
    }

    /// Removes `path` (in the store) with `FileSystem.removeTree(in:name:)` (root's DAC override
    /// reaches into a sealed set's 0555 directories).
    func remove(_ path: String) { _ = removeReporting(path) }

    func removeReporting(_ path: String) -> String? {
        do { try FileSystem.removeTree(path, noFollow: true) } catch { return "\(path): \(error)" }
        return nil
    }
}
