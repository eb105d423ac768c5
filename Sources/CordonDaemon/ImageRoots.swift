import CordonConfig
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonStore
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Policies' images as roots (`filesystem.image`, docs/daemon.md "Images as roots").
///
/// cordond never reads an image archive itself. The first task of an image (as its files are
/// now: the key is every file's identity) runs `cordon-scan unpack` in a sandbox of the
/// `default` policy with the archive bound read-only and a fresh directory of the store bound
/// writable: the worker unpacks the image (layers in order, whiteouts applied, devices refused,
/// no setuid bits, symlinks never followed) and scans it. cordond then walks what it wrote,
/// through descriptors and without following anything, and refuses the lot if one entry is not
/// a plain directory, file or symlink of root's without set-ID bits; it moves the directory into
/// place and records the verdict beside it. Each policy then refuses the image if the scan's worst
/// is at or above its `image_fail_on`. Entries are never changed once in place, so sandboxes
/// that mount one are never disturbed; an entry whose image has changed or gone is removed at
/// the next start, when no sandbox can be using it.
final class ImageRoots: Sendable {
    /// `<state>/cache/images`: `<key>/rootfs`, `<key>/report.json` and `<key>.verdict.json`.
    let directory: String
    let seccompCache: String
    let scanProgram: String?
    let database: String
    let environment: SandboxEnvironment
    let log: Logger

    struct Verdict: Sendable {
        var worst: String?
        var findings: [String]
        var findingCount: Int
        var label: String?
        var layers: Int
    }

    private let verdicts = Mutex<[String: Verdict]>([:])
    /// The image being prepared and since when: one at a time, on the thread of the request that
    /// asked first. Any other request for an unprepared image meanwhile is answered `busy` at
    /// once rather than holding a request worker for minutes.
    private let preparing = Mutex<(image: String, since: Double)?>(nil)
    /// Preparations that failed, by key, and when: the same image as it is is not prepared again
    /// for `retrySeconds` (a policy whose image cannot be unpacked would otherwise have each task
    /// start a 15-minute worker, and hold every other image's first task at `busy`).
    private let failures = Mutex<[String: (message: String, at: Double)]>([:])
    static let retrySeconds = 60.0

    /// Limits of one preparation: the worker's memory (the scanner keeps package databases and
    /// candidate secrets, up to 512 MiB) and its time.
    static let memoryBytes: UInt64 = 2 << 30
    static let wallSeconds: Double = 900
    /// Entries of one unpacked image cordond checks at most.
    static let maxEntries = 2_000_000

    init(cacheDir: String, stateDir: String, environment: SandboxEnvironment, log: Logger) {
        directory = "\(cacheDir)/images"
        seccompCache = "\(cacheDir)/seccomp"
        database = Locations(stateDir: stateDir).vulnDB().path
        scanProgram = try? WorkerProgram.locate(name: "cordon-scan")
        self.environment = environment
        self.log = log
    }

    struct Problem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: Resolving

    /// The unpacked root of `policy`'s image, prepared now if it is not yet (nil: the policy has
    /// no image); refused when the image's scan reaches the policy's `image_fail_on`.
    func root(for policy: Policy) throws(RPCError) -> String? {
        guard let image = policy.filesystem.image else { return nil }
        func refuse(_ message: String) -> RPCError {
            RPCError(RPCCode.policyError, "policy \(policy.name): filesystem.image \(image): \(message)", field: "params.policy")
        }
        let key: String
        do { key = try self.key(image) } catch { throw refuse(error.description) }
        var verdict = verdicts.withLock { $0[key] } ?? readVerdict(key)
        if verdict == nil, let failed = failures.withLock({ $0[key] }), MonotonicClock.now - failed.at < Self.retrySeconds {
            throw refuse("\(failed.message) (\(Int(MonotonicClock.now - failed.at)) s ago; tried again \(Int(Self.retrySeconds)) s after, or once the image changes)")
        }
        if verdict == nil {
            let busy = preparing.withLock { state -> (image: String, since: Double)? in
                if let state { return state }
                state = (image.description, MonotonicClock.now)
                return nil
            }
            if let busy {
                throw RPCError(RPCCode.busy, "policy \(policy.name): filesystem.image \(image): cordond is preparing an image (\(busy.image), for \(Int(MonotonicClock.now - busy.since)) s: unpacking and scanning it in a sandbox); try again shortly",
                               field: "params.policy")
            }
            defer { preparing.withLock { $0 = nil } }
            if let done = readVerdict(key) {
                verdict = done
            } else {
                do { verdict = try prepare(image, key: key) } catch {
                    failures.withLock { $0[key] = (error.description, MonotonicClock.now) }
                    throw refuse(error.description)
                }
                failures.withLock { $0[key] = nil }
            }
        }
        guard let verdict else { throw refuse("not prepared") }
        verdicts.withLock { $0[key] = verdict }
        if policy.filesystem.imageFailOn.refuses(verdict.worst) {
            let shown = verdict.findings.prefix(5).joined(separator: "; ")
            let more = verdict.findingCount > 5 ? " (and \(verdict.findingCount - 5) more: \(directory)/\(key)/report.json)" : ""
            throw refuse("its scan found \(verdict.worst!) problems, and the policy refuses images at \(policy.filesystem.imageFailOn.rawValue) or above (filesystem.image_fail_on): \(shown)\(more)")
        }
        return "\(directory)/\(key)/rootfs"
    }

    /// What names an image as its files are: every file's device, inode, size, times and mode
    /// (its tar, or each file of its layout), and the ref. The image must be root's and writable
    /// only by root, each file of a layout too: whoever could change it would change what every
    /// sandbox of the policy runs, after the scan.
    func key(_ image: Policy.ImageSource) throws(Problem) -> String {
        try Self.key(image, scanner: [scanProgram ?? "", database])
    }

    /// `scanner`: the files whose change makes a verdict stale (the scanner's binary and its
    /// vulnerability database): their identities are part of the key, so a database imported
    /// since, or a new cordon-scan, scans the image again.
    static func key(_ image: Policy.ImageSource, scanner: [String]) throws(Problem) -> String {
        var lines = ["ref \(image.ref ?? "")"]
        for path in scanner where !path.isEmpty {
            let id = FileSystem.identity(path).map { "\($0.device) \($0.inode) \($0.size) \($0.modified.seconds).\($0.modified.nanoseconds) \($0.changed.seconds).\($0.changed.nanoseconds)" }
            lines.append("scanner \(path) \(id ?? "absent")")
        }
        var count = 0
        func visit(_ path: String, _ relative: String) throws(Problem) {
            count += 1
            guard count <= 100_000 else { throw Problem("\(image.path) has more than 100000 files") }
            var st = stat()
            guard lstat(path, &st) == 0 else { throw Problem("\(path): \(SystemError.text(errno))") }
            let type = st.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFDIR else {
                throw Problem("\(path) is \(type == S_IFLNK ? "a symlink (name the real path)" : "not a file or directory")")
            }
            guard st.st_uid == 0, st.st_mode & 0o022 == 0 else {
                throw Problem("\(path) must be root's and writable only by root (it is uid \(st.st_uid)'s, mode \(String(st.st_mode & 0o7777, radix: 8))): whoever can change an image changes what every sandbox of the policy runs")
            }
            lines.append("\(relative) \(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec) \(st.st_mode)")
            if type == S_IFDIR {
                for name in FileSystem.listDirectory(path) { try visit("\(path)/\(name)", relative.isEmpty ? name : "\(relative)/\(name)") }
            }
        }
        // Its directories too: whoever could rename an entry on the way could put another
        // image in its place between this check and the worker's bind. (A sticky directory,
        // /tmp's, lets nobody rename an entry of root's.)
        var parent = image.path
        while let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
            parent = String(parent[..<slash])
            var st = stat()
            guard lstat(parent, &st) == 0 else { throw Problem("\(parent): \(SystemError.text(errno))") }
            guard (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == 0, st.st_mode & 0o022 == 0 || st.st_mode & S_ISVTX != 0 else {
                throw Problem("\(parent), a directory on the way to the image, must be root's and writable only by root (it is uid \(st.st_uid)'s, mode \(String(st.st_mode & 0o7777, radix: 8))\((st.st_mode & S_IFMT) == S_IFLNK ? ", a symlink: name the real path" : "")): whoever can rename an entry in it can put another image in its place")
            }
        }
        try visit(image.path, "")
        return String(SHA256.hex(Array(lines.joined(separator: "\n").utf8)).prefix(40))
    }

    func readVerdict(_ key: String) -> Verdict? {
        guard FileSystem.kind("\(directory)/\(key)/rootfs") == .directory,
              let bytes = FileSystem.readTrusted("\(directory)/\(key).verdict.json", limit: 1 << 20),
              let json = try? JSON.parse(bytes) else { return nil }
        return Verdict(worst: json["worst"]?.stringValue, findings: json["findings"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                       findingCount: Int(json["findingCount"]?.intValue ?? 0), label: json["label"]?.stringValue,
                       layers: Int(json["layers"]?.intValue ?? 0))
    }

    // MARK: Preparing

    private func prepare(_ image: Policy.ImageSource, key: String) throws(Problem) -> Verdict {
        guard let program = scanProgram else {
            throw Problem("cordond cannot find cordon-scan, which unpacks and scans images (install it beside cordond, or as /usr/bin/cordon-scan)")
        }
        let started = MonotonicClock.now
        do { try FileSystem.makeDirectories(directory, mode: 0o700) } catch { throw Problem("the image store \(directory): \(error)") }
        // A fresh name each time: one a failed removal left behind never blocks the next.
        let work = "\(directory)/.prepare-\(key)-\(UInt64(MonotonicClock.now * 1e6))"
        remove(work)
        defer { remove(work) }
        guard mkdir(work, 0o755) == 0, chmod(work, 0o755) == 0 else { throw Problem("\(work): \(SystemError.text(errno))") }
        log.info("preparing an image", metadata: ["image": "\(image)", "key": "\(key)"])

        var argv = ["/cordon/cordon-scan", "unpack", "--into", "/out", "--report", "/out/report.json"]
        var binds = [WorkerSandbox.Bind(program, at: "/cordon/cordon-scan"), WorkerSandbox.Bind(image.path, at: "/image"),
                     WorkerSandbox.Bind(work, at: "/out", writable: true)]
        if FileSystem.kind(database) == .file {
            binds.append(WorkerSandbox.Bind(database, at: "/cordon/vulns.db"))
            argv += ["--db", "/cordon/vulns.db"]
        } else {
            argv += ["--db", "/cordon/none.db"]
        }
        if let ref = image.ref { argv += ["--ref", ref] }
        argv.append("/image")
        let outcome: WorkerSandbox.Outcome
        do {
            outcome = try WorkerSandbox.run(argv: argv, binds: binds, limits: WorkerSandbox.Limits(memoryBytes: Self.memoryBytes, wallSeconds: Self.wallSeconds),
                                            scratch: directory, environment: environment, seccompCache: seccompCache)
        } catch {
            throw Problem("the sandbox that unpacks it: \(error)")
        }
        guard outcome.succeeded else {
            throw Problem("unpacking and scanning it failed (\(outcome.how))\(outcome.lastError.isEmpty ? "" : ": \(outcome.lastError)")")
        }
        guard let bytes = outcome.stdout, let summary = try? JSON.parse(bytes) else {
            throw Problem("the unpacker's summary is not JSON")
        }
        // The image is what it was when the key was taken (a change meanwhile, by root, would
        // file another image's files under this key).
        guard (try? self.key(image)) == key else { throw Problem("the image changed while it was prepared; try again") }
        // What the worker wrote is checked before anything mounts it.
        let entries: Int
        do { entries = try Self.check(work) } catch { throw Problem("the unpacked image: \(error)") }
        let verdict = Verdict(worst: summary["worst"]?.stringValue, findings: summary["findings"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                              findingCount: Int(summary["findingCount"]?.intValue ?? 0), label: summary["label"]?.stringValue,
                              layers: summary["layers"]?.arrayValue?.count ?? 0)
        let final = "\(directory)/\(key)"
        // An entry without a usable verdict (a damaged one) may still be mounted by a sandbox:
        // it is moved aside, never emptied under it, and removed at the next start.
        if FileSystem.kind(final) != .missing {
            let aside = "\(directory)/.stale-\(key)-\(UInt64(MonotonicClock.now * 1e6))"
            guard rename(final, aside) == 0 else { throw Problem("\(final): moving the entry without a verdict aside: \(SystemError.text(errno))") }
        }
        guard rename(work, final) == 0 else { throw Problem("\(final): \(SystemError.text(errno))") }
        let record = JSON.object([
            ("image", .string(image.description)), ("key", .string(key)), ("worst", verdict.worst.map(JSON.string) ?? .null),
            ("findings", .array(verdict.findings.map(JSON.string))), ("findingCount", .int(Int64(verdict.findingCount))),
            ("label", verdict.label.map(JSON.string) ?? .null), ("layers", .int(Int64(verdict.layers))),
            ("files", summary["files"] ?? .null), ("bytes", summary["bytes"] ?? .null), ("entries", .int(Int64(entries))),
            ("database", summary["database"] ?? .null), ("notChecked", summary["notChecked"] ?? .array([])),
            ("preparedAt", .string(UTCTime.now())),
        ])
        do { try FileSystem.writeAtomically("\(final).verdict.json", Array(record.text.utf8), mode: 0o600) } catch {
            throw Problem("\(final).verdict.json: \(error)")
        }
        log.info("prepared an image", metadata: ["image": "\(image)", "key": "\(key)", "layers": "\(verdict.layers)", "entries": "\(entries)",
                                                  "worst": "\(verdict.worst ?? "none")", "seconds": "\(MonotonicClock.now - started)"])
        return verdict
    }

    /// Checks what the worker wrote (`WorkerTree`: directories, regular files and symlinks,
    /// all root's, no set-ID bit, a `rootfs` directory at the top). The entry count.
    static func check(_ work: String) throws(Problem) -> Int {
        do { return try WorkerTree.check(work, WorkerTree.Rules(top: "rootfs", symlinks: true, maxEntries: maxEntries)) } catch {
            throw Problem(error.description)
        }
    }

    /// Removes `path` (in the store) and everything below it with `FileSystem.removeTree(in:name:)`
    /// (a subverted worker may nest directories past PATH_MAX or past the descriptor limit, and
    /// name files in no encoding; it is gone, so nothing moves meanwhile). What could not be
    /// removed is logged, not hidden.
    func remove(_ path: String) {
        do { try FileSystem.removeTree(path, noFollow: true) } catch {
            log.error("image store: cannot remove", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    // MARK: Start-up

    /// At start, before any sandbox runs: removes half-prepared directories, and entries whose
    /// image is gone or has changed since it was prepared (nothing can be using them yet).
    func removeStale() {
        for name in FileSystem.listDirectory(directory) {
            let path = "\(directory)/\(name)"
            if name.hasPrefix(".prepare-") || name.hasPrefix(".stale-") {
                remove(path)
                continue
            }
            guard name.hasSuffix(".verdict.json") else {
                // An entry without a verdict was never finished.
                if !FileSystem.exists("\(path).verdict.json") { remove(path) }
                continue
            }
            let key = String(name.dropLast(".verdict.json".count))
            let image = FileSystem.readTrusted(path, limit: 1 << 20).flatMap { try? JSON.parse($0) }?["image"]?.stringValue
                .flatMap(Policy.ImageSource.init(parsing:))
            if let image, (try? self.key(image)) == key { continue }
            remove("\(directory)/\(key)")
            remove(path)
            log.info("removed a prepared image whose archive changed or is gone", metadata: ["image": "\(image?.description ?? "?")", "key": "\(key)"])
        }
    }
}
