import CordonConfig
import CordonPolicy
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cordon run`'s cache of what it loads and plans before every spawn: the policy (parsed from
/// its `extends` layers, merged, hashed, with the plan-shaping flags applied) and its
/// `Confinement` (seccomp filter, mounts, Landlock rules). Loading and planning cost about 12% of
/// a spawn's CPU; a hit costs a file read, a decode and one stat per input.
///
/// An entry is used only when everything it was built from is as it was:
/// - its name: the config dir, the policy argument and the plan-shaping flags (`--bind`,
///   `--ro-bind`, `--network-allow`) — the file name is their SHA-256, the text is kept and
///   compared;
/// - its stamp: this format, the cordon binary's identity (which covers the built-in policies
///   and profiles and the code that planned) and libseccomp's version;
/// - every file the load read, by `FileIdentity` (device, inode, size, mode, mtime and ctime to
///   the nanosecond), and by content too when it had changed less than `recentSeconds` before
///   the entry was written (a second write within one tick of the file system's clock could
///   leave every field as it was: git's "racily clean" files);
/// - every config-dir path the load looked for and did not find, and the real path of every
///   file whose relative `extends` resolve from it;
/// - every host fact the mount planner consulted (the kind of each bind source and each mount
///   point inside a bound directory, a symlink's target), looked at again.
/// Anything else — a corrupt, short or foreign entry — is a miss, and the entry is rebuilt.
///
/// The flags that only set values (`--env`, `--cwd`, `--memory`, `--pids`, `--timeout`) and the
/// caller's environment are applied after the cache (`PolicyOverrides.perRun`), so their values
/// never reach the disk.
///
/// Entries are trusted only when the file and its directory are root's and writable by no one
/// else, as the seccomp filter cache's are; they are written 0600 without fsync (a torn file
/// fails to decode). The format is the project's own compact binary: decoding the default
/// policy's entry takes a fraction of what CordonJSON's parse of the same content takes (see
/// docs/architecture.md, "Spawn cost").
public struct SpawnPlanCache: Sendable {
    public var directory: String
    /// Inputs that changed less than this before an entry was written are checked by content.
    public var recentSeconds: Int64 = 2
    /// At most this many entries; a write beyond it starts the directory afresh.
    public var capacity = 128

    public init(directory: String) { self.directory = directory }

    /// What names an entry: the same for every run of the same policy with the same shaping flags.
    public struct Key: Sendable, Equatable {
        public var text: String
        public var fileName: String { SHA256.hex(Array(text.utf8)) + ".plan" }

        /// Each field is preceded by its length in bytes: a path may hold a newline, and
        /// `--policy "/x.toml\n--bind /a"` must not name the entry of `--policy /x.toml --bind /a`.
        public init(configDir: String?, policy: String, shapingFlags: String) {
            func field(_ name: String, _ value: String) -> String { "\(name) \(value.utf8.count):\(value)\n" }
            text = field("config", configDir ?? "-") + field("policy", policy) + field("flags", shapingFlags)
        }
    }

    /// What was loaded and planned, with what it was built from.
    public struct Entry: Sendable, Equatable {
        public var policy: Policy
        public var confinement: Confinement
        public var inputs: [Input]
        public var observations: [HostObservation]
    }

    /// A file the load read (with the SHA-256 of its content when it had just changed), a
    /// path it looked for and did not find, or the real path a layer's `extends` resolved from.
    public enum Input: Sendable, Equatable {
        case file(path: String, identity: FileIdentity, contentHash: String?)
        case absent(path: String)
        case resolved(path: String, real: String)
    }

    /// What the mount planner saw at a host path.
    public struct HostObservation: Sendable, Equatable {
        public var path: String
        public var kind: FileSystem.Kind
    }

    /// Host facts seen while planning, in order: pass `inspect` to `PolicyStore.confinement`.
    public final class ObservationLog: Sendable {
        private let seen = Mutex<[HostObservation]>([])
        public init() {}
        public var all: [HostObservation] { seen.withLock { $0 } }
        public var inspect: @Sendable (String) -> FileSystem.Kind {
            { [self] path in
                let kind = FileSystem.kind(path)
                seen.withLock { $0.append(HostObservation(path: path, kind: kind)) }
                return kind
            }
        }
    }

    /// The format, the binary that planned, and the library that compiled the filter.
    static let stamp: String = {
        let binary = FileSystem.identity("/proc/self/exe").map { i in
            "\(i.device):\(i.inode):\(i.size):\(i.modified.seconds).\(i.modified.nanoseconds):\(i.changed.seconds).\(i.changed.nanoseconds)"
        } ?? "unknown"
        return "cordon-plan 7\nbinary \(binary)\nlibseccomp \(SeccompCompiler.versionString)"
    }()

    // MARK: lookup and store

    /// The cached policy and confinement for `key`, if the entry is trusted and still holds.
    public func lookup(_ key: Key) -> (policy: Policy, confinement: Confinement)? {
        guard let bytes = FileSystem.readTrusted("\(directory)/\(key.fileName)", limit: 4 << 20),
              let (stamp, name, entry) = Self.decode(bytes), stamp == Self.stamp, name == key.text,
              Self.holds(entry) else { return nil }
        return (entry.policy, entry.confinement)
    }

    /// Whether every input and host observation of `entry` is as it was.
    static func holds(_ entry: Entry) -> Bool {
        for input in entry.inputs {
            switch input {
            case .absent(let path):
                if FileSystem.exists(path) { return false }
            case .resolved(let path, let real):
                if (FileSystem.realPath(path) ?? path) != real { return false }
            case .file(let path, let identity, let contentHash):
                guard FileSystem.identity(path) == identity else { return false }
                if let contentHash {
                    guard let bytes = try? FileSystem.read(path, limit: 1 << 20), SHA256.hex(bytes) == contentHash else { return false }
                }
            }
        }
        for seen in entry.observations where FileSystem.kind(seen.path) != seen.kind { return false }
        return true
    }

    /// Writes the entry for `key` (replacing one that did not hold). Nothing is written where it
    /// would not be trusted when read, nor an entry that does not decode to what was planned.
    public func store(_ key: Key, policy: Policy, confinement: Confinement, inputs: [PolicyInputs.Input],
                      observations: [HostObservation]) {
        let now = FileIdentity.Timestamp.now()
        let recorded: [Input] = inputs.map { input in
            switch input {
            case .absent(let path): return .absent(path: path)
            case .resolved(let path, let real): return .resolved(path: path, real: real)
            case .file(let path, let identity, let bytes):
                return .file(path: path, identity: identity, contentHash: identity.isRecent(now: now, seconds: recentSeconds) ? SHA256.hex(bytes) : nil)
            }
        }
        let entry = Entry(policy: policy, confinement: confinement, inputs: recorded, observations: observations)
        let bytes = Self.encode(entry, stamp: Self.stamp, name: key.text)
        // A field the codec does not know (a new policy key) would be lost: such an entry is
        // not written, and the runs plan as without a cache.
        guard let decoded = Self.decode(bytes), decoded.entry == entry else { return }
        try? FileSystem.ensureDirectory(directory, mode: 0o700)
        guard FileSystem.isRootOwnedPrivate(directory, directory: true), Self.makeRoom(in: directory, capacity: capacity) else { return }
        try? FileSystem.writeAtomically("\(directory)/\(key.fileName)", bytes, mode: 0o600, durable: false)
    }

    /// Removes every entry when there are `capacity` or more; false when the directory is not
    /// root's and private. It works through one descriptor, checked itself: the path is
    /// resolved once (a parent someone else controls could be swapped for /etc between a check
    /// by path and a walk by path), and only regular files named `*.plan` directly in it go.
    /// The corresponding C functions are `open`, `fstat`, `fdopendir` and `unlinkat`.
    static func makeRoom(in directory: String, capacity: Int) -> Bool {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_uid == 0, st.st_mode & 0o022 == 0, let handle = fdopendir(fd) else {
            close(fd)
            return false
        }
        defer { closedir(handle) }  // closes fd
        var entries: [String] = []
        while let item = readdir(handle) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".plan") else { continue }
            var est = stat()
            if fstatat(fd, name, &est, AT_SYMLINK_NOFOLLOW) == 0, est.st_mode & S_IFMT == S_IFREG { entries.append(name) }
        }
        if entries.count >= capacity { for name in entries { unlinkat(fd, name, 0) } }
        return true
    }

    // MARK: format

    static let magic = Array("cordon-plan\n".utf8)

    static func encode(_ e: Entry, stamp: String, name: String) -> [UInt8] {
        var w = ByteWriter()
        w.bytes(magic)
        w.string(stamp)
        w.string(name)
        w.array(e.inputs) { w, input in
            switch input {
            case .file(let path, let i, let hash):
                w.u8(0); w.string(path)
                w.u64(i.device); w.u64(i.inode); w.i64(i.size); w.u32(i.mode)
                w.i64(i.modified.seconds); w.i64(i.modified.nanoseconds); w.i64(i.changed.seconds); w.i64(i.changed.nanoseconds)
                w.optional(hash) { $0.string($1) }
            case .absent(let path):
                w.u8(1); w.string(path)
            case .resolved(let path, let real):
                w.u8(2); w.string(path); w.string(real)
            }
        }
        w.array(e.observations) { w, o in
            w.string(o.path)
            switch o.kind {
            case .missing: w.u8(0)
            case .directory: w.u8(1)
            case .file: w.u8(2)
            case .device: w.u8(3)
            case .symlink(let target): w.u8(4); w.string(target)
            case .other: w.u8(5)
            }
        }
        w.policy(e.policy)
        let c = e.confinement
        w.array(c.mounts) { w, m in
            w.u32(UInt32(bitPattern: m.kind.rawValue)); w.string(m.target); w.bytes(m.data); w.u32(m.mode)
            w.u32(UInt32(bitPattern: m.flags.rawValue)); w.optional(m.owner) { $0.u32($1.uid); $0.u32($1.gid) }
        }
        w.array(c.landlockRules) { w, r in w.string(r.path); w.u64(r.access.rawValue) }
        w.bytes(c.seccomp.bpf)
        w.array(c.seccomp.errnoBySyscall.sorted { $0.key < $1.key }) { w, pair in
            w.u32(UInt32(bitPattern: pair.key)); w.u32(UInt32(bitPattern: pair.value))
        }
        w.u32(UInt32(bitPattern: c.seccomp.defaultErrno))
        w.bool(c.seccomp.usesNotification)
        return w.out
    }

    static func decode(_ bytes: [UInt8]) -> (stamp: String, name: String, entry: Entry)? {
        var r = ByteReader(bytes)
        guard r.bytes() == magic, let stamp = r.string(), let name = r.string() else { return nil }
        let inputs: [Input]? = r.array { r in
            switch r.u8() {
            case 0:
                guard let path = r.string(), let device = r.u64(), let inode = r.u64(), let size = r.i64(), let mode = r.u32(),
                      let ms = r.i64(), let mn = r.i64(), let cs = r.i64(), let cn = r.i64(), let hash = r.optional({ $0.string() }) else { return nil }
                let identity = FileIdentity(device: device, inode: inode, size: size, mode: mode,
                                            modified: .init(seconds: ms, nanoseconds: mn), changed: .init(seconds: cs, nanoseconds: cn))
                return .file(path: path, identity: identity, contentHash: hash)
            case 1: return r.string().map { .absent(path: $0) }
            case 2:
                guard let path = r.string(), let real = r.string() else { return nil }
                return .resolved(path: path, real: real)
            default: return nil
            }
        }
        let observations: [HostObservation]? = r.array { r in
            guard let path = r.string() else { return nil }
            let kind: FileSystem.Kind
            switch r.u8() {
            case 0: kind = .missing
            case 1: kind = .directory
            case 2: kind = .file
            case 3: kind = .device
            case 4: guard let target = r.string() else { return nil }; kind = .symlink(target)
            case 5: kind = .other
            default: return nil
            }
            return HostObservation(path: path, kind: kind)
        }
        guard let inputs, let observations, let policy = r.policy() else { return nil }
        let mounts: [MountStep]? = r.array { r in
            guard let raw = r.u32(), let kind = MountStep.Kind(rawValue: Int32(bitPattern: raw)), let target = r.string(),
                  let data = r.bytes(), let mode = r.u32(), let flags = r.u32(),
                  let owner = r.optional({ r -> Policy.Owner? in
                      guard let uid = r.u32(), let gid = r.u32() else { return nil }
                      return Policy.Owner(uid: uid, gid: gid)
                  }) else { return nil }
            return MountStep(kind, target, data: data, mode: mode, flags: MountStep.Flags(rawValue: Int32(bitPattern: flags)), owner: owner)
        }
        let rules: [LandlockRule]? = r.array { r in
            guard let path = r.string(), let access = r.u64() else { return nil }
            return LandlockRule(path: path, access: Landlock.FS(rawValue: access))
        }
        guard let mounts, let rules, let bpf = r.bytes(), !bpf.isEmpty, bpf.count % 8 == 0 else { return nil }
        let errnos: [(Int32, Int32)]? = r.array { r in
            guard let nr = r.u32(), let e = r.u32() else { return nil }
            return (Int32(bitPattern: nr), Int32(bitPattern: e))
        }
        guard let errnos, let defaultErrno = r.u32(), let notify = r.bool(), r.atEnd else { return nil }
        var byNumber: [Int32: Int32] = [:]
        byNumber.reserveCapacity(errnos.count)
        for (nr, e) in errnos { byNumber[nr] = e }
        let seccomp = CompiledSeccomp(bpf: bpf, errnoBySyscall: byNumber, defaultErrno: Int32(bitPattern: defaultErrno), usesNotification: notify)
        let entry = Entry(policy: policy, confinement: Confinement(mounts: mounts, landlockRules: rules, seccomp: seccomp),
                          inputs: inputs, observations: observations)
        return (stamp, name, entry)
    }
}

// MARK: - the byte codec

/// Little-endian integers, length-prefixed byte strings and arrays, a tag byte for optionals.
struct ByteWriter {
    var out: [UInt8] = []

    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func bool(_ v: Bool) { out.append(v ? 1 : 0) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func double(_ v: Double) { u64(v.bitPattern) }
    mutating func bytes(_ v: [UInt8]) { u32(UInt32(v.count)); out.append(contentsOf: v) }
    mutating func string(_ v: String) { u32(UInt32(v.utf8.count)); out.append(contentsOf: v.utf8) }
    mutating func strings(_ v: [String]) { array(v) { $0.string($1) } }
    mutating func array<T>(_ items: [T], _ each: (inout ByteWriter, T) -> Void) {
        u32(UInt32(items.count))
        for item in items { each(&self, item) }
    }
    mutating func optional<T>(_ v: T?, _ some: (inout ByteWriter, T) -> Void) {
        if let v { u8(1); some(&self, v) } else { u8(0) }
    }
}

/// Reads what `ByteWriter` wrote; nil at the first byte out of place or past the end.
struct ByteReader {
    let input: [UInt8]
    var offset = 0

    init(_ input: [UInt8]) { self.input = input }

    var atEnd: Bool { offset == input.count }

    private mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, n <= input.count - offset else { return nil }
        defer { offset += n }
        return input[offset..<offset + n]
    }

    mutating func u8() -> UInt8? { take(1)?.first }
    mutating func bool() -> Bool? {
        switch u8() { case 0: return false; case 1: return true; default: return nil }
    }
    mutating func u32() -> UInt32? {
        guard let b = take(4) else { return nil }
        return UInt32(littleEndian: b.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
    }
    mutating func u64() -> UInt64? {
        guard let b = take(8) else { return nil }
        return UInt64(littleEndian: b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    }
    mutating func i64() -> Int64? { u64().map { Int64(bitPattern: $0) } }
    mutating func double() -> Double? { u64().map { Double(bitPattern: $0) } }
    mutating func bytes() -> [UInt8]? {
        guard let n = u32(), let b = take(Int(n)) else { return nil }
        return Array(b)
    }
    mutating func string() -> String? {
        guard let n = u32(), let b = take(Int(n)) else { return nil }
        return String(validating: b, as: UTF8.self)
    }
    mutating func strings() -> [String]? { array { $0.string() } }
    /// At most as many items as bytes remain: a corrupt count cannot make a huge allocation.
    mutating func array<T>(_ each: (inout ByteReader) -> T?) -> [T]? {
        guard let n = u32(), Int(n) <= input.count - offset else { return nil }
        var items: [T] = []
        items.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard let item = each(&self) else { return nil }
            items.append(item)
        }
        return items
    }
    /// nil when malformed; .some(nil) for an absent value.
    mutating func optional<T>(_ some: (inout ByteReader) -> T?) -> T?? {
        switch u8() {
        case 0: return .some(nil)
        case 1:
            guard let value = some(&self) else { return nil }
            return .some(value)
        default: return nil
        }
    }
}

// MARK: - Policy in the codec (every field: `SpawnPlanCacheTests` counts them)

extension ByteWriter {
    mutating func policy(_ p: Policy) {
        string(p.name); string(p.description); strings(p.extends); string(p.source); string(p.contentHash)
        let fs = p.filesystem
        for binds in [fs.readOnly, fs.readWrite] {
            array(binds) { w, b in
                w.string(b.path); w.string(b.source); w.bool(b.optional); w.optional(b.owner) { $0.u32($1.uid); $0.u32($1.gid) }
            }
        }
        array(fs.tmpfs) { w, t in w.string(t.path); w.u64(t.sizeBytes); w.u32(t.mode) }
        string(fs.workdir); u64(fs.workdirSizeBytes); strings(fs.hide)
        optional(fs.image) { $0.string($1.path); $0.optional($1.ref) { $0.string($1) } }
        string(fs.imageFailOn.rawValue)
        let pr = p.process
        u32(pr.uid); u32(pr.gid); string(pr.hostname)
        array(pr.env) { w, v in w.string(v.name); w.string(v.value) }
        strings(pr.passEnv); optional(pr.cwd) { $0.string($1) }
        let l = p.limits
        optional(l.memoryBytes) { $0.u64($1) }
        optional(l.pids) { $0.i64(Int64($1)) }
        optional(l.cpuCores) { $0.double($1) }
        optional(l.wallTimeSeconds) { $0.double($1) }
        optional(l.cpuTimeSeconds) { $0.double($1) }
        optional(l.openFiles) { $0.u64($1) }
        optional(l.fileSizeBytes) { $0.u64($1) }
        optional(l.outputBytes) { $0.u64($1) }
        string(p.seccomp.profile); string(p.seccomp.action.rawValue)
        strings(p.capabilities.keep)
        string(p.network.mode.rawValue); strings(p.network.allow)
        string(p.landlock.mode.rawValue)
        strings(p.access.users); strings(p.access.groups)
        strings(p.workspace.allow)
        u64(UInt64(p.daemon.warm))
        let i = p.install
        string(i.index.scheme); string(i.index.host); u64(UInt64(i.index.port)); string(i.index.path)
        strings(i.indexHosts); double(i.minReleaseAgeSeconds); bool(i.requireHashes)
        string(i.denyVulnerabilitySeverity.rawValue); string(i.denyFindingSeverity.rawValue)
        strings(i.allow); strings(i.deny); string(i.typosquats.rawValue); string(i.sdists.rawValue)
        strings(i.requireProvenance); string(i.yanked.rawValue)
        array(i.accept) { w, a in
            w.string(a.rule.rawValue); w.string(a.package); w.optional(a.version) { $0.string($1) }; w.optional(a.finding) { $0.string($1) }
            w.optional(a.file) { $0.string($1) }; w.optional(a.advisory) { $0.string($1) }; w.string(a.reason)
        }
    }
}

extension ByteReader {
    mutating func policy() -> Policy? {
        guard let name = string(), let description = string(), let extends = strings(), let source = string(),
              let contentHash = string() else { return nil }
        var p = Policy(name: name, source: source)
        p.description = description
        p.extends = extends
        p.contentHash = contentHash
        func binds(_ r: inout ByteReader) -> [Policy.Bind]? {
            r.array { r in
                guard let path = r.string(), let source = r.string(), let optional = r.bool(),
                      let owner = r.optional({ r -> Policy.Owner? in
                          guard let uid = r.u32(), let gid = r.u32() else { return nil }
                          return Policy.Owner(uid: uid, gid: gid)
                      }) else { return nil }
                return Policy.Bind(path: path, source: source, optional: optional, owner: owner)
            }
        }
        guard let readOnly = binds(&self), let readWrite = binds(&self),
              let tmpfs: [Policy.Tmpfs] = array({ r in
                  guard let path = r.string(), let size = r.u64(), let mode = r.u32() else { return nil }
                  return Policy.Tmpfs(path: path, sizeBytes: size, mode: mode)
              }),
              let workdir = string(), let workdirSize = u64(), let hide = strings(),
              let image = optional({ r -> Policy.ImageSource? in
                  guard let path = r.string(), let ref = r.optional({ $0.string() }) else { return nil }
                  return Policy.ImageSource(path: path, ref: ref)
              }),
              let gateText = string(), let gate = Policy.ImageGate(rawValue: gateText) else { return nil }
        p.filesystem.image = image
        p.filesystem.imageFailOn = gate
        p.filesystem.readOnly = readOnly
        p.filesystem.readWrite = readWrite
        p.filesystem.tmpfs = tmpfs
        p.filesystem.workdir = workdir
        p.filesystem.workdirSizeBytes = workdirSize
        p.filesystem.hide = hide
        guard let uid = u32(), let gid = u32(), let hostname = string(),
              let env: [Policy.EnvVar] = array({ r in
                  guard let name = r.string(), let value = r.string() else { return nil }
                  return Policy.EnvVar(name, value)
              }),
              let passEnv = strings(), let cwd = optional({ $0.string() }) else { return nil }
        p.process.uid = uid
        p.process.gid = gid
        p.process.hostname = hostname
        p.process.env = env
        p.process.passEnv = passEnv
        p.process.cwd = cwd
        guard let memory = optional({ $0.u64() }), let pids = optional({ $0.i64().flatMap { Int(exactly: $0) } }),
              let cpu = optional({ $0.double() }), let wall = optional({ $0.double() }), let cpuTime = optional({ $0.double() }),
              let openFiles = optional({ $0.u64() }), let fileSize = optional({ $0.u64() }), let output = optional({ $0.u64() })
        else { return nil }
        p.limits.memoryBytes = memory
        p.limits.pids = pids
        p.limits.cpuCores = cpu
        p.limits.wallTimeSeconds = wall
        p.limits.cpuTimeSeconds = cpuTime
        p.limits.openFiles = openFiles
        p.limits.fileSizeBytes = fileSize
        p.limits.outputBytes = output
        guard let profile = string(), let action = string().flatMap(Policy.SeccompViolationAction.init(rawValue:)),
              let keep = strings(), let mode = string().flatMap(Policy.NetworkMode.init(rawValue:)), let allow = strings(),
              let landlock = string().flatMap(Policy.LandlockMode.init(rawValue:)), let users = strings(), let groups = strings(),
              let workspaces = strings(), let warm = u64().flatMap({ Int(exactly: $0) })
        else { return nil }
        p.seccomp.profile = profile
        p.seccomp.action = action
        p.capabilities.keep = keep
        p.network.mode = mode
        p.network.allow = allow
        p.landlock.mode = landlock
        p.access.users = users
        p.access.groups = groups
        p.workspace.allow = workspaces
        p.daemon.warm = warm
        guard let scheme = string(), let host = string(), let port = u64().flatMap({ Int(exactly: $0) }), let path = string(),
              let indexHosts = strings(), let age = double(), let requireHashes = bool(),
              let vulnerabilities = string().flatMap(Policy.ImageGate.init(rawValue:)), let findings = string().flatMap(Policy.ImageGate.init(rawValue:)),
              let allowNames = strings(), let denyNames = strings(), let typosquats = string().flatMap(Policy.TyposquatRule.init(rawValue:)),
              let sdists = string().flatMap(Policy.SdistRule.init(rawValue:)), let provenance = strings(),
              let yanked = string().flatMap(Policy.YankedRule.init(rawValue:)),
              let accept: [Policy.Acceptance] = array({ r in
                  guard let rule = r.string().flatMap(Policy.Acceptance.Rule.init(rawValue:)), let package = r.string(),
                        let version = r.optional({ $0.string() }), let finding = r.optional({ $0.string() }),
                        let file = r.optional({ $0.string() }), let advisory = r.optional({ $0.string() }), let reason = r.string() else { return nil }
                  return Policy.Acceptance(rule: rule, package: package, version: version, finding: finding, file: file, advisory: advisory, reason: reason)
              })
        else { return nil }
        p.install.index = ServiceURL(scheme: scheme, host: host, port: port, path: path)
        p.install.indexHosts = indexHosts
        p.install.minReleaseAgeSeconds = age
        p.install.requireHashes = requireHashes
        p.install.denyVulnerabilitySeverity = vulnerabilities
        p.install.denyFindingSeverity = findings
        p.install.allow = allowNames
        p.install.deny = denyNames
        p.install.typosquats = typosquats
        p.install.sdists = sdists
        p.install.requireProvenance = provenance
        p.install.yanked = yanked
        p.install.accept = accept
        return p
    }
}
