import CordonJSON
import CordonPackaging
import CordonPolicy
import CordonScan
import CordonSandbox
import CordonStore
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// One install through the gate (docs/install.md): a complete, pinned and hashed set of
/// requirements is fetched, checked, decided on and installed into the store, every step that
/// touches the network or a package's bytes in a worker sandbox of its own:
///
///     python   the target interpreter describes itself      no network, nothing bound
///     fetch    index pages, then the chosen files           the index's hosts only, /out writable
///     check    each archive as what it was resolved as      no network, the blobs read-only
///     install  the wheels unpacked into a site directory    no network, the blobs read-only, /out
///
/// This process (root: `cordon install`, or cordond) never parses an archive. It reads the
/// index pages again under its own caps, copies and hashes every downloaded file into the store
/// (what is checked and installed is that blob, not a file a worker could still rewrite), takes
/// the gate's decision from the facts, and checks the tree the installer wrote before the store
/// keeps it. A refusal installs nothing; every run leaves a record.
public final class InstallRun: @unchecked Sendable {
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Where the workers come from and how their sandboxes are made.
    public struct Setup: Sendable {
        /// cordon-scan (`WorkerProgram.locate(name: "cordon-scan")`).
        public var scanner: String
        /// The vulnerability database `check` reads (absent: advisories are not checked, and
        /// the record says so).
        public var database: String?
        /// The interpreter the set is for; bound with /usr as the built-in policy binds it.
        public var python = "/usr/bin/python3"
        public var environment: SandboxEnvironment
        public var seccompCache: String?
        /// Transfers at once in the fetch worker.
        public var parallel = 8
        /// uv (`uv pip compile`), when there is one: the resolver of a loose request instead of
        /// pip, run in the same sandbox (a lock with markers still goes through pip).
        public var uv: String?
        public init(scanner: String, database: String?, environment: SandboxEnvironment, seccompCache: String? = nil) {
            self.scanner = scanner
            self.database = database
            self.environment = environment
            self.seccompCache = seccompCache
        }
    }

    /// What the run is at, for a progress line or a notification.
    public enum Step: Sendable {
        case describing
        case resolving(Int)
        case pages(Int)
        case downloading(files: Int, bytes: Int64?)
        case checking(Int)
        case building(String)
        case installing(Int)
        case reused(String)
    }

    /// One file of the set, as chosen and as found.
    public struct Chosen: Sendable {
        public var requirement: Requirement
        public var file: IndexFile
        public var url: String
        public var blob: PackageStore.Blob?
        public var facts: PackageFacts?
        /// An sdist's wheel, built in the build sandbox.
        public var built: Built?
        /// Whether the request itself pins this version exactly (not only the resolver).
        public var pinnedByRequest = false

        /// What is installed for it: the wheel, or the wheel built from the sdist.
        var installed: Archive? {
            if let built { return Archive(blob: built.blob, name: requirement.normalizedName, version: requirement.pinnedVersion ?? "", filename: built.filename) }
            return blob.map { Archive(blob: $0, name: requirement.normalizedName, version: requirement.pinnedVersion ?? "", filename: file.filename) }
        }
    }

    /// A wheel built from an sdist in the build sandbox.
    public struct Built: Sendable {
        public var filename: String
        public var blob: PackageStore.Blob
        /// The set of build requirements it was built with (nil: it had none).
        public var buildSet: String?
    }

    /// An archive in the store, as what a worker reads it.
    struct Archive {
        var blob: PackageStore.Blob
        var name: String
        var version: String
        var filename: String
    }

    public struct Outcome: Sendable {
        /// Every verdict, refusing or not.
        public var verdicts: [Verdict]
        /// The set in the store (nil: refused, nothing installed).
        public var set: PackageStore.InstalledSet?
        /// Whether the set was already in the store (nothing was installed again).
        public var reused: Bool
        public var record: JSON
        public var refused: Bool { self.set == nil }
    }

    let gate: Policy.Install
    let policyName: String
    let store: PackageStore
    let setup: Setup
    let now: @Sendable () -> Double
    /// Whether an sdist may be built (not for an sdist's own build requirements: one level).
    let buildsAllowed: Bool

    public init(gate: Policy.Install, policyName: String, store: PackageStore, setup: Setup, now: @escaping @Sendable () -> Double = UTCTime.epochSeconds,
                buildsAllowed: Bool = true) {
        self.gate = gate
        self.policyName = policyName
        self.store = store
        self.setup = setup
        self.now = now
        self.buildsAllowed = buildsAllowed
    }

    static let pageMemory: UInt64 = 256 << 20
    /// The largest wheel a build may give (the worker's file size limit is 256 MiB too).
    static let maxBuiltBytes = 256 << 20
    static let builtPrefix = "cordon-build: built "

    /// Run by the target Python in the build sandbox: pip builds the sdist (argv[1]) into a
    /// fresh directory of the sandbox's /tmp; exactly one file there is copied to standard
    /// output and named on standard error's last line.
    static let buildScript = """
        import os, shutil, subprocess, sys, tempfile
        out = tempfile.mkdtemp(dir="/tmp")
        r = subprocess.run([sys.executable, "-s", "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
                            "--isolated", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--wheel-dir", out, sys.argv[1]],
                           stdout=sys.stderr)
        if r.returncode != 0:
            sys.exit(r.returncode)
        names = os.listdir(out)
        if len(names) != 1:
            print("cordon-build: wrote %d files: %s" % (len(names), ", ".join(sorted(names)[:5])), file=sys.stderr)
            sys.exit(3)
        with open(os.path.join(out, names[0]), "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.flush()
        print("\(builtPrefix)" + names[0], file=sys.stderr, flush=True)
        """
    static let maxFileBytes: Int64 = 1 << 30

    /// The uv to resolve with: the one named (none: pip), or one in /usr/local/bin or /usr/bin.
    /// Root's and writable by root only, as any program Cordon runs for root must be.
    public static func findUV(_ given: String?) throws(Problem) -> String? {
        if given == "none" { return nil }
        let candidates = given.map { [FileSystem.absolute($0)] } ?? ["/usr/local/bin/uv", "/usr/bin/uv"]
        for path in candidates {
            guard let real = FileSystem.realPath(path) else {
                if given != nil { throw Problem("--uv \(path): no such file") }
                continue
            }
            var st = stat()
            guard stat(real, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == 0, st.st_mode & 0o022 == 0, st.st_mode & 0o111 != 0 else {
                throw Problem("\(path): uv must be a regular executable file owned by root and writable by root only (--uv none: resolve with pip)")
            }
            return real
        }
        return nil
    }

    /// How a request is taken: a complete lock as it is; a lock with environment markers through
    /// the resolver with `--no-deps` (it evaluates the markers and keeps the hashes); anything
    /// else resolved.
    public enum Resolution: String, Sendable { case asGiven = "as given", lockWithMarkers = "lock, markers evaluated by pip", resolved = "resolved by pip" }

    public static func resolution(of requirements: [Requirement]) -> Resolution {
        guard requirements.allSatisfy({ $0.pinnedVersion != nil && !$0.sha256Hashes.isEmpty }) else { return .resolved }
        return requirements.contains { $0.marker != nil } ? .lockWithMarkers : .asGiven
    }

    /// Checks a request before anything runs: something asked, each name once.
    public static func validate(_ requirements: [Requirement], source: String) throws(Problem) {
        guard !requirements.isEmpty else { throw Problem("\(source): no requirements") }
        var seen: [String: Int] = [:]
        for r in requirements {
            if let first = seen[r.normalizedName] {
                throw Problem("\(source):\(r.line): \(r.name): \(r.normalizedName) is already required on line \(first): write it once")
            }
            seen[r.normalizedName] = r.line
        }
    }

    /// Runs the whole install. Throws only for what stopped it before a decision (a worker that
    /// failed, a page that does not parse, a file no longer on the index); a refusal is an
    /// outcome, with its verdicts.
    public func run(_ requirements: [Requirement], source: String, progress: (Step) -> Void = { _ in }) throws(Problem) -> Outcome {
        try Self.validate(requirements, source: source)
        if gate.denyVulnerabilitySeverity != .never && !(setup.database.map { FileSystem.kind($0) == .file } ?? false) {
            throw Problem("no vulnerability database at \(setup.database ?? "(none given)"), so install.deny_vulnerability_severity = \"\(gate.denyVulnerabilitySeverity.rawValue)\" cannot be checked: import one first (`cordon-scan db import DIR`, DIR a checkout of the PyPA advisory database), or set it to \"never\" in policy \(policyName)")
        }
        var timings: [(String, JSON)] = []
        var clock = MonotonicClock.now
        func lap(_ name: String) {
            let t = MonotonicClock.now
            timings.append((name, .double(((t - clock) * 1000).rounded() / 1000)))
            clock = t
        }
        let started = now()
        let scratch: String, fetchDir: String
        do {
            scratch = try store.workDirectory()
            fetchDir = "\(scratch)/fetch"
        } catch { throw Problem("the store: \(error)") }
        defer { try? FileSystem.removeTree(scratch, noFollow: true) }
        guard chmod(scratch, 0o700) == 0, mkdir(fetchDir, 0o755) == 0, chmod(fetchDir, 0o755) == 0 else {
            throw Problem("\(scratch): \(SystemError.text(errno))")
        }

        progress(.describing)
        let python = try describePython(scratch: scratch)
        lap("python")

        // What to install: the request as it is, or what pip resolves it to (in its sandbox).
        let mode = Self.resolution(of: requirements)
        var wanted = requirements
        var preferred: [String: String] = [:]
        if mode != .asGiven {
            progress(.resolving(requirements.count))
            let resolved = mode == .resolved && setup.uv != nil
                ? try resolveWithUV(requirements, scratch: scratch) : try resolve(requirements, noDeps: mode == .lockWithMarkers, scratch: scratch)
            var hashes: [String: [String]] = [:]
            for r in requirements { hashes[r.normalizedName, default: []] += r.hashes }
            wanted = resolved.enumerated().map { i, r in
                Requirement(name: r.name, normalizedName: normalizePyPIName(r.name), specifier: "==\(r.version)", pinnedVersion: r.version,
                            hashes: hashes[normalizePyPIName(r.name)] ?? [], line: i + 1)
            }
            for r in resolved { if let f = r.filename { preferred[normalizePyPIName(r.name)] = f } }
            lap("resolve")
        }

        // Pages: one per name, each read again here under the page caps.
        progress(.pages(wanted.count))
        let pageURLs = wanted.map { IndexURL.page(index: gate.index, project: $0.normalizedName) }
        let pageJobs = zip(wanted, pageURLs).map { r, url in JSON.object([("page", .string(r.normalizedName)), ("url", .string(url))]) }
        let pageResults = try fetch(pageJobs, scratch: scratch, fetchDir: fetchDir, what: "index pages")
        // What the request itself pins (install.yanked = "allow-pinned" takes only those).
        var pins: [String: String] = [:]
        // An sdist's build requirements are its author's, not the request's: no pin of theirs
        // lets a yanked file in.
        if buildsAllowed { for r in requirements { if let v = r.pinnedVersion { pins[r.normalizedName] = v } } }
        var chosen: [Chosen] = []
        for (r, url) in zip(wanted, pageURLs) {
            guard let line = pageResults.first(where: { $0["page"]?.stringValue == r.normalizedName }) else {
                throw Problem("the index page of \(r.normalizedName) (\(url)): the fetch worker said nothing of it")
            }
            if let error = line["error"]?.stringValue { throw Problem("the index page of \(r.normalizedName) (\(url)): \(SimpleIndex.shown(error))") }
            let bytes = try readOutput(fetchDir, "pages", "\(r.normalizedName).json", limit: SimpleIndex.Limits().maxBytes)
            let page: ProjectPage
            do { page = try SimpleIndex.parseProjectPage(bytes, expected: r.normalizedName) } catch {
                throw Problem("the index page of \(r.normalizedName) (\(url)): \(error)")
            }
            var c = try choose(r, page: page, pageURL: url, python: python, preferred: preferred[r.normalizedName])
            c.pinnedByRequest = pins[r.normalizedName].map { InstallGate.sameVersion($0, r.pinnedVersion ?? "") } ?? false
            chosen.append(c)
        }
        lap("pages")

        // Downloads: only the chosen files, each to its index-given size (when it gives one).
        let total = chosen.reduce(Int64(0)) { $0 + ($1.file.size ?? 0) }
        progress(.downloading(files: chosen.count, bytes: chosen.allSatisfy { $0.file.size != nil } ? total : nil))
        let downloadJobs = chosen.map { c in
            JSON.object([("download", .string(c.url)), ("filename", .string(c.file.filename)),
                         ("maxBytes", .int(min(c.file.size ?? Self.maxFileBytes, Self.maxFileBytes)))])
        }
        let downloads = try fetch(downloadJobs, scratch: scratch, fetchDir: fetchDir, what: "package files")
        for i in chosen.indices {
            let filename = chosen[i].file.filename
            guard let line = downloads.first(where: { $0["download"]?.stringValue == filename }) else {
                throw Problem("\(filename) (\(chosen[i].url)): the fetch worker said nothing of it")
            }
            if let error = line["error"]?.stringValue { throw Problem("\(filename) (\(chosen[i].url)): \(SimpleIndex.shown(error))") }
            let fd = try openOutput(fetchDir, "files", filename)
            defer { close(fd) }
            do { chosen[i].blob = try store.addBlob(copying: fd, maxBytes: Self.maxFileBytes) } catch { throw Problem("\(filename): \(error)") }
        }
        lap("download")

        // Check: each blob as the file it was resolved as.
        progress(.checking(chosen.count))
        let checked = try check(chosen.map { c in Archive(blob: c.blob!, name: c.requirement.normalizedName, version: c.requirement.pinnedVersion ?? "", filename: c.file.filename) },
                                scratch: scratch)
        for i in chosen.indices {
            chosen[i].facts = facts(for: chosen[i], checked[i])
        }
        lap("check")

        var verdicts = InstallGate.decide(gate, set: chosen.compactMap(\.facts), now: now())
        var builds: [JSON] = []
        let lock = Self.lock(chosen, python: python, index: gate.index.description)
        let hash = SHA256.hex(Array(lock.text(JSON.Format(sortedKeys: true)).utf8))
        func record(set: String?, reused: Bool) -> JSON {
            .object([
                ("started", .string(UTCTime.format(started))), ("policy", .string(policyName)), ("source", .string(source)),
                ("requested", .array(requirements.map { .string($0.canonical) })), ("resolution", .string(mode == .resolved && setup.uv != nil ? "resolved by uv" : mode.rawValue)),
                ("index", .string(gate.index.description)),
                ("python", .string(python.description)),
                ("files", .array(chosen.map { c in
                    .object([("name", .string(c.requirement.normalizedName)), ("version", .string(c.requirement.pinnedVersion ?? "")),
                             ("filename", .string(c.file.filename)), ("url", .string(c.url)), ("sha256", c.blob.map { .string($0.sha256) } ?? .null),
                             ("size", c.blob.map { .int($0.size) } ?? .null), ("uploadTime", c.file.uploadTime.map { .string(UTCTime.format($0)) } ?? .null),
                             ("yanked", c.file.yanked.map(JSON.string) ?? .null), ("provenance", c.file.provenance.map(JSON.string) ?? .null),
                             ("advisories", .array((c.facts?.advisories ?? []).map { .string($0.id) })),
                             ("findings", .int(Int64(c.facts?.findings.count ?? 0))),
                             ("built", c.built.map { b in .object([("filename", .string(b.filename)), ("sha256", .string(b.blob.sha256)), ("buildSet", b.buildSet.map(JSON.string) ?? .null)]) } ?? .null)])
                })),
                ("builds", .array(builds)),
                ("verdicts", .array(verdicts.map(Self.json))),
                ("outcome", .string(set == nil ? "refused" : reused ? "reused" : "installed")),
                ("set", set.map(JSON.string) ?? .null),
                ("timings", .object(timings)),
            ])
        }
        guard !verdicts.contains(where: \.refuses) else {
            return Outcome(verdicts: verdicts, set: nil, reused: false, record: record(set: nil, reused: false))
        }
        if let existing = store.set(hash) {
            store.touch(existing)
            // The lock names the sdists, not the wheels built from them: those are checked and
            // decided on again, under this policy, before the set is handed out.
            var built = try reuseBuilt(existing, chosen: chosen, scratch: scratch)
            // And what it makes importable, as a new set's is (one kept before that check).
            built += Self.shadowVerdicts(site: existing.site, chosen, tops: [:], python: python)
            verdicts += built
            guard !built.contains(where: \.refuses) else {
                return Outcome(verdicts: verdicts, set: nil, reused: false, record: record(set: nil, reused: false))
            }
            progress(.reused(hash))
            return Outcome(verdicts: verdicts, set: existing, reused: true, record: record(set: existing.hash, reused: true))
        }

        // Sdists: each built in the build sandbox, its wheel checked and decided on again.
        for i in chosen.indices where chosen[i].file.kind.isSdist {
            progress(.building(chosen[i].file.filename))
            let (built, buildVerdicts, buildRecord) = try build(chosen[i], checked: checked[i], python: python, scratch: scratch)
            chosen[i].built = built
            verdicts += buildVerdicts
            builds.append(buildRecord)
        }
        if !builds.isEmpty { lap("build") }
        guard !verdicts.contains(where: \.refuses) else {
            return Outcome(verdicts: verdicts, set: nil, reused: false, record: record(set: nil, reused: false))
        }

        progress(.installing(chosen.count))
        let work: String
        do { work = try store.workDirectory() } catch { throw Problem("the store: \(error)") }
        let tops: [String: [String]]
        do {
            tops = try install(chosen.compactMap(\.installed), into: work, scratch: scratch)
        } catch {
            try? FileSystem.removeTree(work, noFollow: true)
            throw error
        }
        lap("install")
        // The set is imported from PYTHONPATH, ahead of the standard library: a module of the
        // standard library's name in it would be imported in that module's place (a backport,
        // or a dependency nobody imports taking over `json`).
        let shadows = Self.shadowVerdicts(site: "\(work)/site", chosen, tops: tops, python: python)
        if !shadows.isEmpty {
            try? FileSystem.removeTree(work, noFollow: true)
            verdicts += shadows
            return Outcome(verdicts: verdicts, set: nil, reused: false, record: record(set: nil, reused: false))
        }
        let final = record(set: hash, reused: false)
        let kept: PackageStore.InstalledSet
        do { kept = try store.keepSet(work, hash: hash, lock: Self.lock(chosen, python: python, index: gate.index.description, built: true), record: final) } catch {
            throw Problem("keeping the set: \(error)")
        }
        return Outcome(verdicts: verdicts, set: kept, reused: false, record: final)
    }

    // MARK: Choosing

    /// The file of `r`'s pinned version to install: the resolver's choice, or the wheel whose tags suit the target best
    /// among those whose Requires-Python admits it, an sdist only when there is no such wheel —
    /// taken first from the files whose index hash the request lists. When the index lists
    /// none the request's hashes name, the best file is fetched anyway: its bytes decide, and
    /// the gate refuses it with both hashes as evidence (the index's word is not evidence).
    func choose(_ r: Requirement, page: ProjectPage, pageURL: String, python: PythonTarget, preferred: String? = nil) throws(Problem) -> Chosen {
        let version = r.pinnedVersion!
        let table = python.tagTable
        var reasons: [String] = []
        let ofVersion = page.files.filter { InstallGate.sameVersion($0.kind.version, version) }
        var suitable: [(file: IndexFile, rank: Int)] = []
        for file in ofVersion {
            if let spec = file.requiresPython {
                switch python.admits(requiresPython: spec) {
                case true?: break
                case false?: reasons.append("\(file.filename): Requires-Python \(SimpleIndex.shown(spec)) excludes \(python.version.map(String.init).joined(separator: "."))"); continue
                case nil: break  // as pip does: a Requires-Python that does not parse is ignored, the file kept
                }
            }
            switch file.kind {
            case .wheel(let wheel):
                guard let rank = python.rank(wheel, in: table) else {
                    reasons.append("\(file.filename): its tags do not suit \(python)")
                    continue
                }
                suitable.append((file, rank))
            case .sdist:
                suitable.append((file, Int.max))
            }
        }
        let hashed = suitable.filter { c in c.file.sha256.map { sha in r.sha256Hashes.contains { $0.lowercased() == sha.lowercased() } } ?? false }
        let pool = hashed.isEmpty ? suitable : hashed
        // The resolver's file when it is among them (the same tag order picks the same one).
        // Equal tags: the higher build number first, as pip orders them.
        func build(_ f: IndexFile) -> (Int, String) {
            guard case .wheel(let w) = f.kind, let tag = w.build else { return (-1, "") }
            let digits = tag.prefix { $0.isASCII && $0.isNumber }
            return (Int(digits) ?? -1, String(tag.dropFirst(digits.count)))
        }
        let best = pool.min { a, b in a.rank != b.rank ? a.rank < b.rank : build(a.file) > build(b.file) }
        guard let file = pool.first(where: { $0.file.filename == preferred })?.file ?? best?.file else {
            let why = ofVersion.isEmpty ? "the index lists no file of version \(version)" : reasons.prefix(5).joined(separator: "; ")
            throw Problem("\(r.normalizedName)==\(version) (\(pageURL)): no file to install: \(why)")
        }
        if file.kind.isSdist && gate.sdists == .build && !buildsAllowed {
            throw Problem("\(r.normalizedName)==\(version) has no wheel for \(python), only the sdist \(file.filename), and it is a build requirement: Cordon builds sdists one level deep (an sdist's build requirements must be wheels)")
        }
        let url: String
        switch IndexURL.resolve(file.url, against: pageURL) {
        case .success(let u): url = u.description
        case .failure(let e): throw Problem("\(file.filename): its URL \(SimpleIndex.shown(file.url)): \(e)")
        }
        return Chosen(requirement: r, file: file, url: url)
    }

    // MARK: Building

    /// Builds `c` (an sdist that passed the gate) into a wheel: its build requirements (from
    /// the check worker's reading of its pyproject.toml) through this same gate into a set of
    /// their own; then `pip wheel --no-deps --no-build-isolation --no-index` with the target
    /// Python in the build sandbox — no network, that set read-only on its PYTHONPATH, the sdist
    /// read-only, only /out writable — and the one wheel it writes copied into the store and
    /// checked and decided on again, as a file built from the sdist. A failed build refuses
    /// the sdist, with the build's last words and any denials in the record.
    func build(_ c: Chosen, checked: JSON, python: PythonTarget, scratch: String) throws(Problem) -> (Built?, [Verdict], JSON) {
        let name = c.requirement.normalizedName, version = c.requirement.pinnedVersion ?? ""
        var record: [(String, JSON)] = [("sdist", .string(c.file.filename))]
        func refused(_ evidence: String, _ more: [Verdict] = []) -> (Built?, [Verdict], JSON) {
            record.append(("error", .string(evidence)))
            return (nil, more + [Verdict(package: name, version: version, filename: c.file.filename, rule: .build, refuses: true, evidence: evidence)], .object(record))
        }
        guard let sdistBlob = c.blob else { throw Problem("\(c.file.filename): not in the store") }
        guard case .array(let texts)? = checked["buildRequires"] else {
            return refused("its pyproject.toml's [build-system] requires could not be read")
        }
        var requirements: [Requirement] = []
        for (i, text) in texts.compactMap(\.stringValue).enumerated() {
            do {
                if let r = try RequirementsFile.parseLine(text, source: "\(c.file.filename) build-system.requires", line: i + 1) {
                    // A PEP 508 requirement, not a requirements-file line: no options.
                    guard r.hashes.isEmpty else { return refused("its build requirement \"\(SimpleIndex.shown(text))\" carries --hash, which PEP 508 does not have") }
                    requirements.append(r)
                }
            } catch { return refused("its build requirement \"\(SimpleIndex.shown(text))\" is not taken: \(error.reason)") }
        }
        record.append(("buildRequires", .array(requirements.map { .string($0.canonical) })))

        // The build requirements, through the gate like anything else (one level deep); none
        // (an in-tree backend): the host's Python as it is — its standard library, pip, and
        // what the host installed for it (/usr/lib/python3/dist-packages: see docs/install.md).
        var buildSet: PackageStore.InstalledSet?
        var nestedWarnings: [Verdict] = []
        if !requirements.isEmpty {
            let nested = InstallRun(gate: gate, policyName: policyName, store: store, setup: setup, now: now, buildsAllowed: false)
            do {
                let outcome = try nested.run(requirements, source: "the build requirements of \(c.file.filename)")
                record.append(("buildSetRecord", outcome.record))
                guard let set = outcome.set else {
                    return refused("its build requirements were refused", outcome.verdicts.filter(\.refuses))
                }
                buildSet = set
                nestedWarnings = outcome.verdicts.filter { !$0.refuses }
            } catch {
                return refused("its build requirements: \(error.description)")
            }
        }
        record.append(("buildSet", buildSet.map { .string($0.hash) } ?? .null))

        let dir = "\(scratch)/build-\(sdistBlob.sha256.prefix(16))"
        guard mkdir(dir, 0o700) == 0 else { throw Problem("\(dir): \(SystemError.text(errno))") }
        let sdist = Archive(blob: sdistBlob, name: name, version: version, filename: c.file.filename)
        let input = try inputs([sdist], scratch: dir, name: "in", byFilename: true)
        // The build writes into the sandbox's own /tmp (a tmpfs its memory limit bounds), not a
        // host directory it could fill; the one wheel comes back as standard output (the file
        // size limit bounds it), its name as the last line of standard error.
        let argv = [setup.python, "-s", "-c", Self.buildScript, "/in/\(c.file.filename)"]
        let outcome: WorkerSandbox.Outcome
        do {
            var binds = [WorkerSandbox.Bind(input, at: "/in")]
            var env = [("PYTHONDONTWRITEBYTECODE", "1"), ("HOME", "/tmp")]
            if let buildSet {
                binds.append(WorkerSandbox.Bind(buildSet.site, at: "/cordon/build-site"))
                env.append(("PYTHONPATH", "/cordon/build-site"))
            }
            outcome = try WorkerSandbox.run(argv: argv, binds: binds, env: env,
                                            limits: limits(900, memory: 2 << 30), scratch: scratch, environment: setup.environment,
                                            seccompCache: setup.seccompCache, stdoutLimit: Self.maxBuiltBytes)
        } catch { throw Problem("the build sandbox of \(c.file.filename): \(error)") }
        let denied = outcome.result.denied.map { d in JSON.string("\(d.kind) \(d.syscall)\(d.count > 1 ? " ×\(d.count)" : "")") }
        record.append(("denied", .array(denied)))
        record.append(("how", .string(outcome.how)))
        // What the build said last, each line made safe to show: the evidence of what it tried.
        record.append(("log", .array(outcome.errorTail.split(separator: "\n").suffix(40).map { .string(SimpleIndex.shown(String($0), limit: 300)) })))
        guard outcome.succeeded else {
            return refused("its build failed in the build sandbox (\(outcome.how))\(outcome.lastError.isEmpty ? "" : ": \(SimpleIndex.shown(outcome.lastError))")\(denied.isEmpty ? "" : "; denied: \(denied.compactMap(\.stringValue).joined(separator: ", "))")")
        }
        // Exactly one wheel, of this project and version, for this Python.
        let said = outcome.lastError.hasPrefix(Self.builtPrefix) ? String(outcome.lastError.dropFirst(Self.builtPrefix.count)) : ""
        guard let bytes = outcome.stdout, !bytes.isEmpty, case .success(.wheel(let wheel)) = DistributionFile.parse(said, project: name),
              wheel.normalizedName == name, InstallGate.sameVersion(wheel.version, version) else {
            return refused("the build did not give one wheel of \(name) \(version) (it said: \(SimpleIndex.shown(outcome.lastError))\(outcome.stdout == nil ? "; over \(Self.maxBuiltBytes) bytes" : ""))")
        }
        let filename = said
        guard python.rank(wheel, in: python.tagTable) != nil else { return refused("it built \(SimpleIndex.shown(filename)), whose tags do not suit \(python)") }
        let blob: PackageStore.Blob
        let staged = "\(dir)/built.whl"
        do {
            try FileSystem.writeAtomically(staged, bytes, mode: 0o600, durable: false)
        } catch { throw Problem("\(staged): \(error)") }
        let fd = open(staged, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Problem("\(staged): \(SystemError.text(errno))") }
        do {
            defer { close(fd) }
            blob = try store.addBlob(copying: fd, maxBytes: Self.maxFileBytes)
        } catch { throw Problem("\(filename): \(error)") }
        record.append(("wheel", .string(filename)))
        record.append(("sha256", .string(blob.sha256)))

        // The built wheel, checked and decided on again.
        let archive = Archive(blob: blob, name: name, version: version, filename: filename)
        let results = try check([archive], scratch: scratch, inputs: "built-\(blob.sha256.prefix(16))")
        let verdicts = nestedWarnings + InstallGate.decide(gate, builtFacts(archive, c, results[0]), now: now())
        return (Built(filename: filename, blob: blob, buildSet: buildSet?.hash), verdicts, .object(record))
    }

    // MARK: Facts

    /// The gate's facts on one file: the index's (hash, upload time, yank), the request's
    /// (hashes, pin), the blob's own hash, and what the check worker read from it.
    func facts(for c: Chosen, _ checked: JSON) -> PackageFacts {
        let sha = c.blob?.sha256 ?? ""
        var f = PackageFacts(name: c.requirement.normalizedName, version: c.requirement.pinnedVersion ?? "", filename: c.file.filename,
                             kind: c.file.kind.isSdist ? .sdist : .wheel, sha256: sha)
        f.indexSHA256 = c.file.sha256
        f.requestedSHA256 = c.requirement.sha256Hashes
        f.pinned = c.pinnedByRequest
        f.uploadTime = c.file.uploadTime
        f.yanked = c.file.yanked
        f.provenance = c.file.provenance == nil ? .absent : .notChecked
        if let error = checked["error"]?.stringValue {
            f.findings.append(.init(rule: "unreadable-archive", severity: "critical", message: "the check could not read it: \(error)"))
            return f
        }
        if checked["sha256"]?.stringValue != sha {
            f.findings.append(.init(rule: "unreadable-archive", severity: "critical", message: "the check read other bytes than the store holds"))
        }
        f.metadataName = checked["metadata"]?["name"]?.stringValue
        f.metadataVersion = checked["metadata"]?["version"]?.stringValue
        for a in checked["advisories"]?.arrayValue ?? [] {
            guard let id = a["id"]?.stringValue else { continue }
            f.advisories.append(.init(id: id, severity: a["severity"]?.stringValue ?? "unknown", fixed: a["fixed"]?.stringValue))
        }
        f.advisoriesUnchecked = checked["notChecked"]?.stringValue
        for problem in checked["problems"]?.arrayValue ?? [] {
            if let text = problem.stringValue { f.findings.append(.init(rule: "record", severity: "high", message: text)) }
        }
        let listed = checked["findings"]?.arrayValue ?? []
        for finding in listed {
            guard let rule = finding["rule"]?.stringValue, let severity = finding["severity"]?.stringValue else { continue }
            f.findings.append(.init(rule: rule, severity: severity, message: finding["message"]?.stringValue ?? "", file: finding["file"]?.stringValue))
        }
        if let count = checked["findingCount"]?.intValue, count > Int64(listed.count) { f.findingsOmitted = Int(count) - listed.count }
        f.typosquatOf = checked["typosquatOf"]?.stringValue
        return f
    }

    /// A verdict as the record (and `install.run`'s answer) says it.
    public static func json(_ v: Verdict) -> JSON {
        .object([("package", .string(v.package)), ("version", .string(v.version)), ("filename", .string(v.filename)), ("rule", .string(v.rule.key)),
                 ("refuses", .bool(v.refuses)), ("evidence", .string(v.evidence))])
    }

    /// What the set holds, the name of its tree: every file (sorted by name) with its sha256,
    /// the interpreter and the index.
    /// `built`: with each sdist's built wheel (the lock kept beside the set; its hash, the set's
    /// name, is of the lock without them: what was asked for and fetched).
    static func lock(_ chosen: [Chosen], python: PythonTarget, index: String, built: Bool = false) -> JSON {
        .object([
            ("files", .array(chosen.sorted { $0.requirement.normalizedName < $1.requirement.normalizedName }.map { c in
                var members: [(String, JSON)] = [("name", .string(c.requirement.normalizedName)), ("version", .string(c.requirement.pinnedVersion ?? "")),
                                                 ("filename", .string(c.file.filename)), ("sha256", .string(c.blob?.sha256 ?? ""))]
                if built, let b = c.built { members.append(("built", .object([("filename", .string(b.filename)), ("sha256", .string(b.blob.sha256))]))) }
                return .object(members)
            })),
            ("index", .string(index)), ("python", .string(python.description)),
        ])
    }

    /// The verdicts, under this run's policy, on the wheels a kept set was built with.
    func reuseBuilt(_ set: PackageStore.InstalledSet, chosen: [Chosen], scratch: String) throws(Problem) -> [Verdict] {
        var archives: [Archive] = []
        for file in set.lock["files"]?.arrayValue ?? [] {
            guard let built = file["built"], let filename = built["filename"]?.stringValue, let sha = built["sha256"]?.stringValue,
                  let name = file["name"]?.stringValue, let version = file["version"]?.stringValue else { continue }
            guard let blob = store.blob(sha) else {
                throw Problem("the set \(set.hash) holds \(filename), built from \(file["filename"]?.stringValue ?? "an sdist"), whose archive is no longer in the store: remove the set and install again")
            }
            archives.append(Archive(blob: blob, name: name, version: version, filename: filename))
        }
        guard !archives.isEmpty else { return [] }
        let results = try check(archives, scratch: scratch, inputs: "reuse")
        var verdicts: [Verdict] = []
        for (a, checked) in zip(archives, results) {
            guard let c = chosen.first(where: { $0.requirement.normalizedName == a.name }) else { continue }
            verdicts += InstallGate.decide(gate, builtFacts(a, c, checked), now: now())
        }
        return verdicts
    }

    /// A built wheel's facts: what the check worker read from it; no index facts (those were
    /// the sdist's).
    func builtFacts(_ a: Archive, _ c: Chosen, _ checked: JSON) -> PackageFacts {
        var facts = PackageFacts(name: a.name, version: a.version, filename: a.filename, kind: .built, sha256: a.blob.sha256)
        let read = self.facts(for: Chosen(requirement: c.requirement, file: c.file, url: c.url, blob: a.blob), checked)
        facts.metadataName = read.metadataName
        facts.metadataVersion = read.metadataVersion
        facts.advisories = read.advisories
        facts.advisoriesUnchecked = read.advisoriesUnchecked
        facts.findings = read.findings
        facts.typosquatOf = read.typosquatOf
        return facts
    }

    // MARK: Workers

    func limits(_ seconds: Double, memory: UInt64 = pageMemory, cores: Double = 1) -> WorkerSandbox.Limits {
        WorkerSandbox.Limits(memoryBytes: memory, wallSeconds: seconds, cpuCores: cores)
    }

    /// The cores the check and unpack workers may use: they take the archives on every core
    /// (cordon-scan check and install-wheels use at most 4 threads).
    static let workerCores = Double(min(4, max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))))
    /// Their memory: 1 GiB for each archive read at once (one member of up to 256 MiB may be
    /// held twice over while it is read).
    static let workerMemory = UInt64(1 << 30) * UInt64(workerCores)

    func describePython(scratch: String) throws(Problem) -> PythonTarget {
        let outcome: WorkerSandbox.Outcome
        do {
            outcome = try WorkerSandbox.run(argv: [setup.python, "-I", "-S", "-c", PythonTarget.describeScript], binds: [], limits: limits(30),
                                            scratch: scratch, environment: setup.environment, seccompCache: setup.seccompCache, stdoutLimit: 64 << 10)
        } catch { throw Problem("describing \(setup.python): \(error)") }
        guard outcome.succeeded, let out = outcome.stdout, let target = PythonTarget.parse(String(decoding: out, as: UTF8.self)) else {
            throw Problem("describing \(setup.python) in its sandbox failed (\(outcome.how))\(outcome.lastError.isEmpty ? "" : ": \(outcome.lastError)")")
        }
        return target
    }

    /// One file the resolver chose.
    struct Resolved {
        var name: String
        var version: String
        /// The file the resolver chose (pip says; uv does not).
        var filename: String?
    }

    /// pip's resolution of `requirements` (`pip install --dry-run --report`), run with the target
    /// Python in a worker sandbox that reaches only the index's hosts, wheels only (no sdist's
    /// build code runs to learn its metadata), ignoring whatever the host has installed. Its
    /// report is untrusted: each entry must name a valid project, a version and a wheel of it.
    func resolve(_ requirements: [Requirement], noDeps: Bool, scratch: String) throws(Problem) -> [Resolved] {
        // Hashes only for a lock (pip's hash-checking mode then checks every file it looks at);
        // otherwise the names and specifiers alone, and the request's hashes are the gate's.
        let dir = try resolverRequest(requirements, hashes: noDeps, scratch: scratch)
        var argv = [setup.python, "-I", "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary", ":all:", "--report", "-", "--quiet",
                    "--isolated", "--no-cache-dir", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--index-url", gate.index.description]
        if gate.index.scheme == "http" { argv += ["--trusted-host", gate.index.host] }
        if noDeps { argv.append("--no-deps") }
        argv += ["-r", "/cordon/resolve/requirements.txt"]
        let hosts = gate.hosts
        let outcome: WorkerSandbox.Outcome
        do {
            outcome = try WorkerSandbox.run(argv: argv, binds: [WorkerSandbox.Bind(dir, at: "/cordon/resolve")], network: hosts, limits: limits(600, memory: 1 << 30),
                                            scratch: scratch, environment: setup.environment, seccompCache: setup.seccompCache, stdoutLimit: 32 << 20)
        } catch { throw Problem("resolving with pip: \(error)") }
        guard outcome.succeeded, let out = outcome.stdout else {
            var why = SimpleIndex.shown(outcome.lastError)
            if why.contains("No module named pip") { why += " (install pip for \(setup.python), e.g. apt-get install python3-pip, or give a complete pinned, hashed set)" }
            if why.contains("No matching distribution") { why += " (Cordon resolves to wheels only: building sdists in the build sandbox is not built yet)" }
            throw Problem("resolving with pip failed (\(outcome.how))\(why.isEmpty ? "" : ": \(why)")")
        }
        let report: JSON
        do { report = try JSON.parse(out) } catch { throw Problem("pip's report is not JSON: \(error)") }
        guard case .array(let items)? = report["install"] else { throw Problem("pip's report has no install list") }
        var resolved: [Resolved] = []
        var seen = Set<String>()
        for (i, item) in items.enumerated() {
            guard let name = item["metadata"]?["name"]?.stringValue, isValidPyPIName(name), let version = item["metadata"]?["version"]?.stringValue,
                  let url = item["download_info"]?["url"]?.stringValue, let filename = url.split(separator: "/").last.map(String.init),
                  case .success(let file) = DistributionFile.parse(filename, project: name), !file.isSdist,
                  file.normalizedName == normalizePyPIName(name), InstallGate.sameVersion(file.version, version) else {
                throw Problem("pip's report: install[\(i)] is not a wheel of a named project and version")
            }
            guard seen.insert(normalizePyPIName(name)).inserted else { throw Problem("pip's report names \(name) twice") }
            resolved.append(Resolved(name: name, version: version, filename: filename))
        }
        guard !resolved.isEmpty else {
            throw Problem("nothing in the request applies to \(setup.python): pip resolved it to nothing (is every requirement's environment marker false here?)")
        }
        return resolved
    }

    /// `scratch`/resolve/requirements.txt: the request as Cordon re-wrote it (`canonical`), with
    /// or without its hashes, for the resolver to read at /cordon/resolve; the directory.
    func resolverRequest(_ requirements: [Requirement], hashes: Bool, scratch: String) throws(Problem) -> String {
        let dir = "\(scratch)/resolve"
        guard mkdir(dir, 0o755) == 0, chmod(dir, 0o755) == 0 else { throw Problem("\(dir): \(SystemError.text(errno))") }
        let lines = requirements.map { r -> String in
            var line = r
            if !hashes { line.hashes = [] }
            return line.canonical
        }
        do { try FileSystem.writeAtomically("\(dir)/requirements.txt", Array((lines.joined(separator: "\n") + "\n").utf8), mode: 0o644, durable: false) } catch {
            throw Problem("\(dir)/requirements.txt: \(error)")
        }
        return dir
    }

    /// uv's resolution of `requirements` (`uv pip compile`, for the target Python, wheels only,
    /// no configuration or cache of its own), in the resolver's sandbox. Its output is read as
    /// a requirements file, strictly: every line one pinned name.
    func resolveWithUV(_ requirements: [Requirement], scratch: String) throws(Problem) -> [Resolved] {
        guard let uv = setup.uv else { throw Problem("no uv") }
        let dir = try resolverRequest(requirements, hashes: false, scratch: scratch)
        var argv = ["/cordon/uv", "pip", "compile", "/cordon/resolve/requirements.txt", "--python", setup.python, "--python-preference", "only-system",
                    "--index-url", gate.index.description, "--only-binary", ":all:", "--no-header", "--no-annotate", "--quiet", "--no-cache",
                    "--no-config", "--system-certs"]
        if gate.index.scheme == "http" { argv += ["--allow-insecure-host", gate.index.host] }
        let outcome: WorkerSandbox.Outcome
        do {
            outcome = try WorkerSandbox.run(argv: argv, binds: [WorkerSandbox.Bind(dir, at: "/cordon/resolve"), WorkerSandbox.Bind(uv, at: "/cordon/uv")],
                                            network: gate.hosts, env: [("HOME", "/tmp")], limits: limits(600, memory: 1 << 30),
                                            scratch: scratch, environment: setup.environment, seccompCache: setup.seccompCache, stdoutLimit: 4 << 20)
        } catch { throw Problem("resolving with uv: \(error)") }
        guard outcome.succeeded, let out = outcome.stdout else {
            var why = SimpleIndex.shown(outcome.lastError, limit: 300)
            if outcome.errorTail.contains("no wheels") || outcome.errorTail.contains("only-binary") {
                why += " (Cordon resolves to wheels only: pin an sdist in a lock to have it built)"
            }
            throw Problem("resolving with uv failed (\(outcome.how))\(why.isEmpty ? "" : ": \(why)")")
        }
        let pinned: [Requirement]
        do { pinned = try RequirementsFile.parse(String(decoding: out, as: UTF8.self), source: "uv's resolution") } catch {
            throw Problem("uv's resolution does not read as pinned requirements: \(error)")
        }
        var resolved: [Resolved] = []
        for r in pinned {
            guard let version = r.pinnedVersion, r.marker == nil else { throw Problem("uv's resolution: line \(r.line) is not NAME==VERSION") }
            resolved.append(Resolved(name: r.name, version: version, filename: nil))
        }
        guard !resolved.isEmpty else {
            throw Problem("nothing in the request applies to \(setup.python): uv resolved it to nothing (is every requirement's environment marker false here?)")
        }
        return resolved
    }

    /// Runs the fetch worker over `jobs` (each a request line) and returns its result lines.
    func fetch(_ jobs: [JSON], scratch: String, fetchDir: String, what: String) throws(Problem) -> [JSON] {
        let requests = "\(scratch)/requests-\(UInt64(MonotonicClock.now * 1e9)).jsonl"
        do { try FileSystem.writeAtomically(requests, Array(jobs.map(\.text).joined(separator: "\n").utf8), mode: 0o644, durable: false) } catch {
            throw Problem("\(requests): \(error)")
        }
        let fd = open(requests, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Problem("\(requests): \(SystemError.text(errno))") }
        defer { close(fd) }
        let hosts = gate.hosts
        let argv = ["/cordon/cordon-scan", "fetch", "--out", "/out", "--parallel", "\(setup.parallel)"] + hosts.flatMap { ["--allow", $0] } + ["-"]
        let outcome: WorkerSandbox.Outcome
        do {
            outcome = try WorkerSandbox.run(argv: argv, binds: [WorkerSandbox.Bind(setup.scanner, at: "/cordon/cordon-scan"), WorkerSandbox.Bind(fetchDir, at: "/out", writable: true)],
                                            network: hosts, limits: limits(900), stdin: fd, scratch: scratch, environment: setup.environment,
                                            seccompCache: setup.seccompCache, stdoutLimit: 16 << 20)
        } catch { throw Problem("fetching \(what): \(error)") }
        guard outcome.succeeded, let out = outcome.stdout else {
            throw Problem("fetching \(what) failed (\(outcome.how))\(outcome.lastError.isEmpty ? "" : ": \(SimpleIndex.shown(outcome.lastError))")")
        }
        return out.split(separator: 10).compactMap { try? JSON.parse(Array($0)) }
    }

    /// Runs the check worker over `archives`; one result per archive, in order.
    func check(_ archives: [Archive], scratch: String, inputs name: String = "in") throws(Problem) -> [JSON] {
        var binds = [WorkerSandbox.Bind(setup.scanner, at: "/cordon/cordon-scan")]
        var argv = ["/cordon/cordon-scan", "check"]
        if let db = setup.database, FileSystem.kind(db) == .file {
            binds.append(WorkerSandbox.Bind(db, at: "/cordon/vulns.db"))
            argv += ["--db", "/cordon/vulns.db"]
        } else {
            argv += ["--db", "/cordon/none.db"]
        }
        binds.append(WorkerSandbox.Bind(try inputs(archives, scratch: scratch, name: name), at: "/in"))
        let lines = archives.map { a in
            JSON.object([("file", .string("/in/\(a.blob.sha256)")), ("name", .string(a.name)), ("version", .string(a.version)), ("filename", .string(a.filename))]).text
        }
        let out = try runWithManifest(argv + ["-"], lines: lines, binds: binds, scratch: scratch, what: "checking the files", memory: Self.workerMemory)
        let results = out.split(separator: 10).compactMap { try? JSON.parse(Array($0)) }
        guard results.count == archives.count else { throw Problem("the check worker gave \(results.count) results for \(archives.count) files") }
        for (a, r) in zip(archives, results) where r["filename"]?.stringValue != a.filename {
            throw Problem("the check worker's results are not in the order asked (\(a.filename))")
        }
        return results
    }

    /// Refusals for what `site` makes importable at its top that would be imported in place of
    /// the target Python's own modules (`PythonModules.shadows`). Read here from the tree
    /// itself, not from the worker's word; each is put on the wheel the install worker said
    /// provides it (`tops`), or on the set.
    static func shadowVerdicts(site: String, _ chosen: [Chosen], tops: [String: [String]], python: PythonTarget) -> [Verdict] {
        var found: [String] = []
        for entry in FileSystem.listDirectory(site).sorted() {
            var st = stat()
            guard lstat("\(site)/\(entry)", &st) == 0 else { continue }
            let module: String?
            if st.st_mode & S_IFMT == S_IFDIR {
                module = FileSystem.listDirectory("\(site)/\(entry)").contains { PythonModules.topLevel("\(entry)/\($0)") != nil } ? entry : nil
            } else {
                module = PythonModules.topLevel(entry)
            }
            if let module, PythonModules.shadows(module, stdlib: python.stdlib), !found.contains(module) { found.append(module) }
        }
        guard !found.isEmpty else { return [] }
        let version = python.version.prefix(2).map(String.init).joined(separator: ".")
        var byOwner: [(owner: Archive?, names: [String])] = []
        for name in found {
            let owner = chosen.compactMap(\.installed).first { tops[$0.filename]?.contains(name) ?? false }
            if let i = byOwner.firstIndex(where: { $0.owner?.filename == owner?.filename }) { byOwner[i].names.append(name) }
            else { byOwner.append((owner, [name])) }
        }
        return byOwner.map { owner, names in
            Verdict(package: owner?.name ?? "(the set)", version: owner?.version ?? "", filename: owner?.filename ?? "(the installed tree)", rule: .standardLibrary,
                    refuses: true,
                    evidence: "provides \(names.prefix(5).joined(separator: ", "))\(names.count > 5 ? " and \(names.count - 5) more" : ""), which Python \(version) has as its own: on PYTHONPATH it would be imported in its place")
        }
    }

    /// Runs the install worker: the wheels unpacked into `work`/site. Gives each wheel's
    /// top-level modules, by file name.
    func install(_ archives: [Archive], into work: String, scratch: String) throws(Problem) -> [String: [String]] {
        var binds = [WorkerSandbox.Bind(setup.scanner, at: "/cordon/cordon-scan"), WorkerSandbox.Bind(work, at: "/out", writable: true)]
        binds.append(WorkerSandbox.Bind(try inputs(archives, scratch: scratch, name: "install-in"), at: "/in"))
        let lines = archives.map { a in JSON.object([("file", .string("/in/\(a.blob.sha256)")), ("filename", .string(a.filename))]).text }
        let out = try runWithManifest(["/cordon/cordon-scan", "install-wheels", "--into", "/out", "-"], lines: lines, binds: binds, scratch: scratch,
                                      what: "installing the wheels", memory: Self.workerMemory)
        var tops: [String: [String]] = [:]
        for line in out.split(separator: 10) {
            guard let r = try? JSON.parse(Array(line)), let filename = r["filename"]?.stringValue, case .array(let names)? = r["top"] else { continue }
            tops[filename] = names.compactMap(\.stringValue)
        }
        guard archives.allSatisfy({ tops[$0.filename] != nil }) else { throw Problem("the install worker did not say what each wheel provides") }
        return tops
    }

    /// `scratch`/NAME: a hard link to each archive's blob (the store's own file, same inode,
    /// 0444), named by its sha256 (or `byFilename`: by its file name, as pip wants an sdist) —
    /// one directory to bind instead of a mount per file.
    func inputs(_ archives: [Archive], scratch: String, name: String, byFilename: Bool = false) throws(Problem) -> String {
        let dir = "\(scratch)/\(name)"
        if FileSystem.kind(dir) == .missing {
            guard mkdir(dir, 0o755) == 0, chmod(dir, 0o755) == 0 else { throw Problem("\(dir): \(SystemError.text(errno))") }
        }
        for a in archives {
            let link = "\(dir)/\(byFilename ? a.filename : a.blob.sha256)"
            if FileSystem.kind(link) == .file { continue }
            guard Glibc.link(a.blob.path, link) == 0 else { throw Problem("\(link): \(SystemError.text(errno))") }
        }
        return dir
    }

    func runWithManifest(_ argv: [String], lines: [String], binds: [WorkerSandbox.Bind], scratch: String, what: String, memory: UInt64) throws(Problem) -> [UInt8] {
        let manifest = "\(scratch)/manifest-\(UInt64(MonotonicClock.now * 1e9)).jsonl"
        do { try FileSystem.writeAtomically(manifest, Array(lines.joined(separator: "\n").utf8), mode: 0o644, durable: false) } catch {
            throw Problem("\(manifest): \(error)")
        }
        let fd = open(manifest, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Problem("\(manifest): \(SystemError.text(errno))") }
        defer { close(fd) }
        let outcome: WorkerSandbox.Outcome
        do {
            outcome = try WorkerSandbox.run(argv: argv, binds: binds, limits: limits(600, memory: memory, cores: Self.workerCores), stdin: fd, scratch: scratch,
                                            environment: setup.environment, seccompCache: setup.seccompCache, stdoutLimit: 64 << 20)
        } catch { throw Problem("\(what): \(error)") }
        guard outcome.succeeded, let out = outcome.stdout else {
            throw Problem("\(what) failed (\(outcome.how))\(outcome.lastError.isEmpty ? "" : ": \(SimpleIndex.shown(outcome.lastError))")")
        }
        return out
    }

    // MARK: The fetch worker's output

    /// Opens `dir/sub/name` without following a link at any step below `dir` (the worker
    /// could have made any of them one).
    func openOutput(_ dir: String, _ sub: String, _ name: String) throws(Problem) -> Int32 {
        let top = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard top >= 0 else { throw Problem("\(dir): \(SystemError.text(errno))") }
        defer { close(top) }
        let middle = openat(top, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard middle >= 0 else { throw Problem("\(dir)/\(sub): \(SystemError.text(errno))") }
        defer { close(middle) }
        guard !name.contains("/"), name != "..", name != "." else { throw Problem("\(name): not a file name") }
        let fd = openat(middle, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Problem("\(dir)/\(sub)/\(name): \(SystemError.text(errno))") }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw Problem("\(dir)/\(sub)/\(name): not a regular file")
        }
        return fd
    }

    func readOutput(_ dir: String, _ sub: String, _ name: String, limit: Int) throws(Problem) -> [UInt8] {
        let fd = try openOutput(dir, sub, name)
        defer { close(fd) }
        do { return try FileSystem.read(descriptor: fd, shown: "\(dir)/\(sub)/\(name)", limit: limit) } catch { throw Problem("\(error)") }
    }
}

extension InstallRun.Step {
    /// The step as `install.progress` notifications carry it ({step, count?, bytes?, file?}).
    public var json: JSON {
        switch self {
        case .describing: .object([("step", .string("describing"))])
        case .resolving(let n): .object([("step", .string("resolving")), ("count", .int(Int64(n)))])
        case .pages(let n): .object([("step", .string("pages")), ("count", .int(Int64(n)))])
        case .downloading(let n, let bytes): .object([("step", .string("downloading")), ("count", .int(Int64(n))), ("bytes", bytes.map { .int($0) } ?? .null)])
        case .checking(let n): .object([("step", .string("checking")), ("count", .int(Int64(n)))])
        case .building(let f): .object([("step", .string("building")), ("file", .string(f))])
        case .installing(let n): .object([("step", .string("installing")), ("count", .int(Int64(n)))])
        case .reused(let set): .object([("step", .string("reused")), ("set", .string(set))])
        }
    }
}
