@testable import CordonSandbox
import CordonConfig
import CordonPolicy
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The plan cache's codec and rules, without sandboxes.
struct SpawnPlanCacheUnitTests {
    /// A newline in a path cannot make two different runs name one entry.
    @Test func keysCannotBeForgedWithANewline() {
        let plain = SpawnPlanCache.Key(configDir: nil, policy: "/x.toml", shapingFlags: "--bind /a")
        let forged = SpawnPlanCache.Key(configDir: nil, policy: "/x.toml\nflags 9:--bind /a", shapingFlags: "")
        let forged2 = SpawnPlanCache.Key(configDir: "-\npolicy 7:/x.toml", policy: "x", shapingFlags: "--bind /a")
        #expect(plain.fileName != forged.fileName && plain.fileName != forged2.fileName && forged.fileName != forged2.fileName)
    }

    /// A policy with every field away from its default.
    static var everyField: Policy {
        var p = Policy(name: "every", source: "/etc/cordon/policies/every.toml")
        p.description = "all set"
        p.extends = ["default", "runtime:python"]
        p.contentHash = "abc123"
        p.filesystem.readOnly = [Policy.Bind(path: "/usr", source: "/usr"), Policy.Bind(path: "/opt", source: "/srv/opt", optional: true)]
        p.filesystem.readWrite = [Policy.Bind(path: "/data", source: "/var/data", owner: Policy.Owner(uid: 1000, gid: 100))]
        p.filesystem.tmpfs = [Policy.Tmpfs(path: "/tmp", sizeBytes: 1 << 20, mode: 0o700)]
        p.filesystem.workdir = "/w"
        p.filesystem.workdirSizeBytes = 12345
        p.filesystem.hide = ["/usr/secret"]
        p.filesystem.image = Policy.ImageSource(path: "/srv/images/a.tar", ref: "repo:tag")
        p.filesystem.imageFailOn = .critical
        p.process.uid = 7
        p.process.gid = 8
        p.process.hostname = "h"
        p.process.env = [Policy.EnvVar("A", "1"), Policy.EnvVar("B", "two words")]
        p.process.passEnv = ["TERM"]
        p.process.cwd = "/w/sub"
        p.limits = Policy.Limits()
        p.limits.memoryBytes = 1 << 28
        p.limits.pids = 10
        p.limits.cpuCores = 0.5
        p.limits.wallTimeSeconds = 1.25
        p.limits.cpuTimeSeconds = 3
        p.limits.openFiles = 64
        p.limits.fileSizeBytes = 99
        p.limits.outputBytes = 100
        p.seccomp.profile = "strict"
        p.seccomp.action = .kill
        p.capabilities.keep = ["CAP_NET_BIND_SERVICE"]
        p.network.mode = .allowlist
        p.network.allow = ["example.org:443"]
        p.landlock.mode = .required
        p.access.users = ["alice"]
        p.access.groups = ["staff"]
        p.workspace.allow = ["/srv/projects", "/home"]
        p.daemon.warm = 3
        p.install.index = ServiceURL(scheme: "http", host: "index.test", port: 8000, path: "/simple")
        p.install.indexHosts = ["files.index.test:8443"]
        p.install.minReleaseAgeSeconds = 604_800
        p.install.requireHashes = true
        p.install.denyVulnerabilitySeverity = .medium
        p.install.denyFindingSeverity = .never
        p.install.allow = ["requests", "flask"]
        p.install.deny = ["pycrypto"]
        p.install.typosquats = .warn
        p.install.sdists = .refuse
        p.install.requireProvenance = ["*"]
        p.install.yanked = .allowPinned
        p.install.accept = [Policy.Acceptance(rule: .typosquats, package: "httpx2", reason: "the 2.x line"),
                            Policy.Acceptance(rule: .finding, package: "httpx2", version: "2.17.0", finding: "credential-access", file: "httpx2/_auth.py", reason: "netrc")]
        return p
    }

    static let confinement = Confinement(
        mounts: [MountStep(.attach, "/data", data: Array("/var/data".utf8), mode: 0o700, flags: [.isDirectory, .optional], owner: Policy.Owner(uid: 1, gid: 2)),
                 MountStep(.symlink, "/bin", data: Array("usr/bin".utf8))],
        landlockRules: [LandlockRule(path: "/", access: .readOnly)],
        seccomp: CompiledSeccomp(bpf: [1, 2, 3, 4, 5, 6, 7, 8], errnoBySyscall: [41: 1, 101: 13], defaultErrno: 1, usesNotification: true))

    static let entry = SpawnPlanCache.Entry(
        policy: everyField, confinement: confinement,
        inputs: [.file(path: "/p.toml", identity: FileIdentity(device: 1, inode: 2, size: 3, mode: 0o100644,
                                                               modified: .init(seconds: 4, nanoseconds: 5), changed: .init(seconds: 6, nanoseconds: 7)),
                       contentHash: "ff"),
                 .file(path: "/q.toml", identity: FileIdentity(device: 1, inode: 3, size: 3, mode: 0o100644,
                                                               modified: .init(seconds: 4, nanoseconds: 5), changed: .init(seconds: 6, nanoseconds: 7)),
                       contentHash: nil),
                 .absent(path: "/etc/cordon/policies/default.toml"),
                 .resolved(path: "/etc/cordon/policies/p.toml", real: "/srv/cordon/policies/p.toml")],
        observations: [.init(path: "/usr", kind: .directory), .init(path: "/bin", kind: .symlink("usr/bin")), .init(path: "/x", kind: .missing)])

    @Test func everyFieldRoundTrips() throws {
        let bytes = SpawnPlanCache.encode(Self.entry, stamp: "s", name: "n")
        let decoded = try #require(SpawnPlanCache.decode(bytes))
        #expect(decoded.stamp == "s" && decoded.name == "n")
        #expect(decoded.entry == Self.entry)
    }

    /// The codec writes each field by name: a field added to these types must be added to it
    /// (and to `everyField`). `store` refuses an entry that does not decode to what was planned,
    /// so a forgotten field costs the cache, never the policy.
    @Test func theCodecKnowsEveryField() {
        func count(_ value: Any) -> Int { Mirror(reflecting: value).children.count }
        let p = Self.everyField
        #expect(count(p) == 16 && count(p.workspace) == 1 && count(p.daemon) == 1 && count(p.install) == 13 && count(p.install.index) == 4 && count(p.install.accept[1]) == 7)
        #expect(count(p.filesystem) == 8 && count(p.filesystem.image!) == 2 && count(p.filesystem.readOnly[0]) == 4 && count(p.filesystem.tmpfs[0]) == 3)
        #expect(count(p.process) == 6 && count(p.process.env[0]) == 2)
        #expect(count(p.limits) == 8)
        #expect(count(p.seccomp) == 2 && count(p.capabilities) == 1 && count(p.network) == 2 && count(p.landlock) == 1 && count(p.access) == 2)
        #expect(count(Self.confinement) == 3 && count(Self.confinement.mounts[0]) == 6 && count(Self.confinement.seccomp) == 4)
        #expect(count(Self.confinement.landlockRules[0]) == 2)
    }

    @Test func aDamagedEntryDoesNotDecode() {
        let bytes = SpawnPlanCache.encode(Self.entry, stamp: "s", name: "n")
        for cut in [0, 1, 12, bytes.count / 2, bytes.count - 1] {
            #expect(SpawnPlanCache.decode(Array(bytes.prefix(cut))) == nil, "cut at \(cut)")
        }
        #expect(SpawnPlanCache.decode(bytes + [0]) == nil)
        var huge = bytes
        // The stamp's length, made enormous: refused, not allocated.
        huge[12] = 0xff; huge[13] = 0xff; huge[14] = 0xff; huge[15] = 0x7f
        #expect(SpawnPlanCache.decode(huge) == nil)
    }

    /// An input that had just changed when the entry was written is compared by content too.
    @Test func aRecentInputIsCheckedByContent() throws {
        let path = NSTemporaryDirectory() + "cordon-plancache-\(getpid()).toml"
        try "policy text\n".write(toFile: path, atomically: false, encoding: .utf8)
        defer { unlink(path) }
        let identity = try #require(FileSystem.identity(path))
        #expect(identity.isRecent(now: .now()))
        #expect(!identity.isRecent(now: .init(seconds: identity.changed.seconds + 3, nanoseconds: 0)))
        func entry(_ hash: String?) -> SpawnPlanCache.Entry {
            SpawnPlanCache.Entry(policy: Self.everyField, confinement: Self.confinement,
                                 inputs: [.file(path: path, identity: identity, contentHash: hash)], observations: [])
        }
        #expect(SpawnPlanCache.holds(entry(nil)))
        #expect(SpawnPlanCache.holds(entry(SHA256.hex(Array("policy text\n".utf8)))))
        // Same identity, other content: what a second write in the same clock tick leaves.
        #expect(!SpawnPlanCache.holds(entry(SHA256.hex(Array("policy tExt\n".utf8)))))
        #expect(!SpawnPlanCache.holds(SpawnPlanCache.Entry(policy: Self.everyField, confinement: Self.confinement,
                                                           inputs: [.absent(path: path)], observations: [])))
        #expect(!SpawnPlanCache.holds(SpawnPlanCache.Entry(policy: Self.everyField, confinement: Self.confinement,
                                                           inputs: [], observations: [.init(path: path, kind: .directory)])))
    }

    /// The flags applied after the cache (`perRun`) change nothing the cache keeps, and the two
    /// halves applied in turn are the flags applied at once.
    @Test func perRunFlagsDoNotShapeTheConfinement() throws {
        let store = PolicyStore(configDir: nil)
        let base = try store.loadPolicy("default")
        var o = PolicyOverrides()
        o.env = [Policy.EnvVar("X", "1")]
        o.cwd = "/tmp"
        o.memoryBytes = 1 << 27
        o.pids = 5
        o.wallTimeSeconds = 2
        o.binds = [try PolicyOverrides.bind("/var", writable: false)]
        o.networkAllow = ["example.org:443"]
        let shaped = try o.planShaping.apply(to: base)
        #expect(try o.perRun.apply(to: shaped) == o.apply(to: base))
        let whole = try store.confinement(for: try o.apply(to: base), cacheDir: nil)
        #expect(try store.confinement(for: shaped, cacheDir: nil) == whole)
    }

    /// A full cache starts afresh by removing its own entries only: the files directly in the
    /// directory named like one. What the purge walked before was the tree under a path, read
    /// again after the trust check: a state dir whose parent someone else controls could be
    /// swapped for /etc between the two.
    @Test func aFullCacheRemovesOnlyItsOwnEntries() throws {
        guard geteuid() == 0 else { return }
        let dir = NSTemporaryDirectory() + "cordon-plancache-purge-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/plans/other", withIntermediateDirectories: true)
        chmod("\(dir)/plans", 0o700)
        for i in 0..<130 { try "x".write(toFile: "\(dir)/plans/other/f\(i)", atomically: false, encoding: .utf8) }
        try "keep".write(toFile: "\(dir)/plans/notes.txt", atomically: false, encoding: .utf8)
        var cache = SpawnPlanCache(directory: "\(dir)/plans")
        cache.capacity = 2
        let key = SpawnPlanCache.Key(configDir: nil, policy: "default", shapingFlags: "")
        cache.store(key, policy: Self.everyField, confinement: Self.confinement, inputs: [], observations: [])
        #expect(FileSystem.exists("\(dir)/plans/\(key.fileName)"))
        #expect(FileSystem.exists("\(dir)/plans/other/f0") && FileSystem.exists("\(dir)/plans/other/f129"),
                "the purge removed files that are not entries")
        #expect(FileSystem.exists("\(dir)/plans/notes.txt"))
        // Over capacity in entries: they go, the rest stays.
        for n in ["a", "b", "c"] {
            cache.store(SpawnPlanCache.Key(configDir: nil, policy: n, shapingFlags: ""), policy: Self.everyField,
                        confinement: Self.confinement, inputs: [], observations: [])
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/plans").filter { $0.hasSuffix(".plan") }
        #expect(entries.count <= 2)
        #expect(FileSystem.exists("\(dir)/plans/notes.txt") && FileSystem.exists("\(dir)/plans/other/f0"))
    }

    /// An `extends` path resolves from the real path of the file that names it: a symlink on the
    /// way there, retargeted, changes which parent a fresh load reads even when every file the
    /// cached load read is still there, unchanged (a release directory swapped in whose
    /// unchanged files are hard links of the old one's, as rsync --link-dest leaves them).
    @Test func aRetargetedSymlinkOnAnExtendsPathIsSeen() throws {
        let dir = NSTemporaryDirectory() + "cordon-plancache-realpath-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for release in ["r1", "r2"] { try fm.createDirectory(atPath: "\(dir)/\(release)", withIntermediateDirectories: true) }
        try "[policy]\nname = \"a\"\nextends = [\"b.toml\"]\n".write(toFile: "\(dir)/r1/a.toml", atomically: false, encoding: .utf8)
        try "[policy]\nname = \"b\"\nextends = [\"c.toml\"]\n".write(toFile: "\(dir)/r1/b.toml", atomically: false, encoding: .utf8)
        try "[policy]\nname = \"c\"\nextends = [\"default\"]\n[process]\nhostname = \"one\"\n"
            .write(toFile: "\(dir)/r1/c.toml", atomically: false, encoding: .utf8)
        try "[policy]\nname = \"c\"\nextends = [\"default\"]\n[process]\nhostname = \"two\"\n"
            .write(toFile: "\(dir)/r2/c.toml", atomically: false, encoding: .utf8)
        #expect(link("\(dir)/r1/a.toml", "\(dir)/r2/a.toml") == 0 && link("\(dir)/r1/b.toml", "\(dir)/r2/b.toml") == 0)
        #expect(symlink("r1", "\(dir)/current") == 0)

        var store = PolicyStore(configDir: nil)
        let inputs = PolicyInputs()
        store.inputs = inputs
        #expect(try store.loadPolicy("\(dir)/current/a.toml").process.hostname == "one")
        let entry = SpawnPlanCache.Entry(policy: Self.everyField, confinement: Self.confinement,
                                         inputs: inputs.all.map { i -> SpawnPlanCache.Input in
                                             switch i {
                                             case .file(let path, let identity, _): return .file(path: path, identity: identity, contentHash: nil)
                                             case .absent(let path): return .absent(path: path)
                                             case .resolved(let path, let real): return .resolved(path: path, real: real)
                                             }
                                         }, observations: [])
        #expect(SpawnPlanCache.holds(entry))

        unlink("\(dir)/current")
        #expect(symlink("r2", "\(dir)/current") == 0)
        #expect(try PolicyStore(configDir: nil).loadPolicy("\(dir)/current/a.toml").process.hostname == "two")
        #expect(!SpawnPlanCache.holds(entry), "the entry of r1's chain holds after current -> r2")
    }
}
