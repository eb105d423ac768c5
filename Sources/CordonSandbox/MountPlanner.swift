import CordonPolicy
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Policy → mount plan and the Landlock rules that mirror it. The host is consulted only through
/// `inspect`, so the plan is unit-testable without root.
public struct MountPlanner {
    public struct PlanError: Error, Sendable, CustomStringConvertible {
        public var key: String
        public var message: String
        public var description: String { "\(key): \(message)" }
    }

    public var inspect: @Sendable (String) -> FileSystem.Kind = { FileSystem.kind($0) }
    /// The unpacked root file system of the policy's `filesystem.image` (cordond's store), when
    /// it has one: its top-level entries are the sandbox's, read-only (see `imageEntries`).
    public var imageRoot: String?
    /// The names in a directory (the image root's top level).
    public var list: @Sendable (String) -> [String] = { FileSystem.listDirectory($0) }
    public init() {}


    /// What the sandbox makes itself at its top, whatever the image holds there.
    static let ownTopLevel: Set<String> = ["dev", "proc", "sys"]

    /// Host device nodes bound into the sandbox's /dev.
    static let devices = ["null", "zero", "full", "random", "urandom", "tty"]
    /// procfs entries hidden (a file gets /dev/null over it, a directory an empty read-only
    /// tmpfs): the world-readable ones that describe the host's kernel. Root-only entries
    /// (kpagecount, kpageflags, …) need no mask: they belong to the host's root, which no
    /// sandbox process can be.
    static let procMasked = ["/proc/kcore", "/proc/sysrq-trigger", "/proc/timer_list", "/proc/keys",
                             "/proc/latency_stats", "/proc/sched_debug", "/proc/kallsyms", "/proc/acpi",
                             "/proc/scsi", "/proc/asound", "/proc/firmware", "/proc/config.gz"]
    /// procfs trees made read-only: /proc/sys holds per-namespace settings a namespace's root
    /// could otherwise change.
    static let procReadOnly = ["/proc/sys"]

    /// Capabilities no policy with a writable idmapped mount (a bind or a workspace) may keep:
    /// CAP_SETFCAP would let a write give a host file capabilities, CAP_FSETID keep a setgid bit.
    static let unsafeWithWritableMounts = ["CAP_SETFCAP", "CAP_FSETID"]

    public func plan(_ policy: Policy) throws(PlanError) -> (mounts: [MountStep], landlock: [LandlockRule]) {
        var steps: [MountStep] = []
        var dirs: Set<String> = ["/"]
        func ensureParents(_ path: String) {
            var current = ""
            let parts = path.split(separator: "/").dropLast()
            for part in parts {
                current += "/" + part
                if dirs.insert(current).inserted { steps.append(MountStep(.dir, current)) }
            }
        }

        let fs = policy.filesystem
        // A writable bind is idmapped: its owner is the sandbox's user inside, and a file
        // capability the sandbox writes there (a v3 security.capability naming that user as its
        // root) lands on the host naming the owner, root for a root-owned bind: a host binary
        // with capabilities. The kernel lets only CAP_SETFCAP write that xattr; seccomp cannot
        // read the xattr's name, so the capability is what must go.
        if !fs.readWrite.isEmpty, policy.capabilities.keep.contains("CAP_SETFCAP") {
            throw PlanError(key: "capabilities.keep", message: "CAP_SETFCAP with filesystem.read_write: through an idmapped writable bind the sandbox could give a host file capabilities that run as the bind's owner (root, for a root-owned directory); keep CAP_SETFCAP only in a policy without writable binds")
        }
        // CAP_FSETID lets a write keep a setgid bit the kernel would clear: a setgid file of the
        // owner's, rewritten through the bind, would stay setgid on the host.
        if !fs.readWrite.isEmpty, policy.capabilities.keep.contains("CAP_FSETID") {
            throw PlanError(key: "capabilities.keep", message: "CAP_FSETID with filesystem.read_write: a write through an idmapped writable bind would keep a setgid bit the kernel clears otherwise, on a file the bind's owner has on the host; keep CAP_FSETID only in a policy without writable binds")
        }
        // An image's files are the host's root's, unmapped inside, and its mounts read-only — but
        // a namespace's own mounts can be remounted by whoever holds CAP_SYS_ADMIN in it, and an
        // image's world-writable directory would then take writes that every later sandbox sees.
        if fs.image != nil, policy.capabilities.keep.contains("CAP_SYS_ADMIN") {
            throw PlanError(key: "capabilities.keep", message: "CAP_SYS_ADMIN with filesystem.image: the sandbox could remount the image's read-only mounts and write into cordond's copy of it, which other sandboxes share; keep CAP_SYS_ADMIN only in a policy without an image")
        }
        let binds = fs.readOnly.map { ($0, true, "filesystem.read_only") } + fs.readWrite.map { ($0, false, "filesystem.read_write") }
        // Binds, tmpfs mounts and the workdir in one order, parents before children (/usr before
        // /usr/lib/python3, a /tmp tmpfs before a file bound at /tmp/in.txt); at equal depth in
        // the order binds, tmpfs, workdir.
        enum Placement { case bind(Policy.Bind, readOnly: Bool, key: String), tmpfs(Policy.Tmpfs), workdir, image(String) }
        func path(_ p: Placement) -> String {
            switch p {
            case .image(let name): return "/" + name
            case .bind(let b, _, _): return b.path
            case .tmpfs(let t): return t.path
            case .workdir: return fs.workdir
            }
        }
        // What each writable bind turned out to be: Landlock's rights for a file are a file's.
        var writable: [String: FileSystem.Kind] = [:]
        // An image's top-level entries come first: at equal depth, the policy's own mounts go
        // over them (a tmpfs /tmp over the image's /tmp).
        if fs.image != nil && imageRoot == nil {
            throw PlanError(key: "filesystem.image", message: "\(fs.image!): images as roots are prepared by cordond (unpacked and scanned in a sandbox): run this policy's tasks and sessions through the daemon (cordon submit, cordon session)")
        }
        let imageNames = imageRoot.map { root in list(root).filter { !Self.ownTopLevel.contains($0) && !$0.hasPrefix(".") } } ?? []
        let placements = imageNames.map { Placement.image($0) } + binds.map { Placement.bind($0.0, readOnly: $0.1, key: $0.2) }
            + fs.tmpfs.map { Placement.tmpfs($0) } + [.workdir]
        let ordered = placements.enumerated().sorted { a, b in
            let da = path(a.element).split(separator: "/").count, db = path(b.element).split(separator: "/").count
            return da != db ? da < db : a.offset < b.offset
        }.map(\.element)
        // Directory binds placed so far: a mount point under one of them is a path of the host's.
        var boundDirectories: [(path: String, source: String, key: String)] = []
        // The image's top-level paths: /etc among them means the image's /etc.
        var fromImage: Set<String> = []
        /// A mount point at `target` of this kind must already exist when `target` lies inside a
        /// bound host directory: the child may not create it there (that would write to the host,
        /// and a read-only bind or the sandbox's unprivileged root cannot). Nil when `target` is
        /// not inside a bind, or its mount point is there.
        func mountPointProblem(_ target: String, directory: Bool) -> String? {
            guard let parent = boundDirectories.last(where: { target.hasPrefix($0.path == "/" ? "/" : $0.path + "/") }) else { return nil }
            let host = parent.source + target.dropFirst(parent.path.count)
            let want = directory ? "a directory" : "a file"
            switch inspect(host) {
            case .directory where directory: return nil
            case .file where !directory, .device where !directory: return nil
            case .missing where parent.key == "filesystem.image":
                return "\(target) lies inside the image's \(parent.path), which has no \(directory ? "directory" : "file") \(target) to mount on (an image is read-only: nothing is made in it); mount \(target) outside \(parent.path), or add it to the image"
            case .missing:
                return "\(target) lies inside the bind of \(parent.path) (\(parent.key)), where \(host) does not exist: the sandbox cannot make a mount point in a host directory. Create \(host) as \(want) on the host, or mount \(target) outside \(parent.path)"
            default:
                return "\(target) lies inside the bind of \(parent.path) (\(parent.key)), where \(host) is not \(want) (a symlink or another kind): it cannot be its mount point"
            }
        }
        // The image's top-level symlinks: a mount made through one would land where it points
        // before the root is pivoted into (an image's `etc -> /tmp` is the host's /tmp then).
        var imageLinks: Set<String> = []
        /// Why a mount at `target` cannot be made in an image's tree, or nil: it lies under one
        /// of its top-level symlinks, or under a directory of it through a symlink on the way, or
        /// is a symlink itself. The image's tree is walked component by component, never
        /// following a symlink (the store's copy does not change once in place).
        func imageProblem(_ target: String) -> String? {
            guard let imageRoot else { return nil }
            let parts = target.split(separator: "/").map(String.init)
            guard let first = parts.first else { return nil }
            var prefix = ""
            for part in parts {
                prefix += "/" + part
                if imageLinks.contains(prefix) {
                    return "\(target) lies under the symlink \(prefix) (the image's, or one recreated over it): no mount is made through a symlink with an image (mount it at the real path)"
                }
            }
            guard fromImage.contains("/" + first) else { return nil }
            var host = "\(imageRoot)/\(first)", inside = "/\(first)"
            for part in parts.dropFirst() {
                host += "/" + part
                inside += "/" + part
                switch inspect(host) {
                case .symlink: return "\(target): the image's \(inside) is a symlink: no mount is made through or onto a symlink of an image (mount it at the real path)"
                case .directory: continue
                default: return nil  // the last component, or missing: mountPointProblem says which
                }
            }
            return nil
        }
        for placement in ordered {
            if case .image = placement {} else if let problem = imageProblem(path(placement)) {
                throw PlanError(key: { switch placement { case .bind(_, _, let k): return k; case .tmpfs: return "filesystem.tmpfs"; default: return "filesystem.workdir" } }(), message: problem)
            }
            let bind: Policy.Bind, readOnly: Bool, key: String
            switch placement {
            case .tmpfs(let tmpfs):
                if let problem = mountPointProblem(tmpfs.path, directory: true) { throw PlanError(key: "filesystem.tmpfs", message: problem) }
                ensureParents(tmpfs.path)
                dirs.insert(tmpfs.path)
                let options = "size=\(tmpfs.sizeBytes),mode=\(String(tmpfs.mode, radix: 8))"
                steps.append(MountStep(.tmpfs, tmpfs.path, data: Array(options.utf8)))
                continue
            case .workdir:
                if let problem = mountPointProblem(fs.workdir, directory: true) { throw PlanError(key: "filesystem.workdir", message: problem) }
                ensureParents(fs.workdir)
                dirs.insert(fs.workdir)
                steps.append(MountStep(.tmpfs, fs.workdir, data: Array("size=\(fs.workdirSizeBytes),mode=0700".utf8), flags: [.chown]))
                continue
            case .image(let name):
                let target = "/" + name, source = "\(imageRoot!)/\(name)"
                switch inspect(source) {
                case .directory:
                    dirs.insert(target)
                    steps.append(MountStep(.attach, target, data: Array(source.utf8), flags: [.readOnly, .isDirectory, .image]))
                    boundDirectories.append((target, source, "filesystem.image"))
                case .file:
                    steps.append(MountStep(.attach, target, data: Array(source.utf8), flags: [.readOnly, .image]))
                case .symlink(let linkTarget):
                    steps.append(MountStep(.symlink, target, data: Array(linkTarget.utf8)))
                    imageLinks.insert(target)
                default:
                    continue
                }
                fromImage.insert(target)
                continue
            case .bind(let b, let ro, let k): (bind, readOnly, key) = (b, ro, k)
            }
            ensureParents(bind.path)
            var flags: MountStep.Flags = readOnly ? [.readOnly] : []
            if bind.optional { flags.insert(.optional) }
            switch inspect(bind.source) {
            case .missing:
                if bind.optional { continue }
                throw PlanError(key: key, message: "\(bind.source) does not exist on this host (mark it optional = true if that is expected)")
            case .symlink(let target):
                // Merged-/usr hosts: /bin -> usr/bin. Recreate the link; its target is bound on its own.
                guard bind.source == bind.path else {
                    throw PlanError(key: key, message: "source \(bind.source) is a symlink; name the real path")
                }
                steps.append(MountStep(.symlink, bind.path, data: Array(target.utf8)))
                // With an image, what the link points at is the image's: nothing is mounted through it.
                if imageRoot != nil { imageLinks.insert(bind.path) }
            case .directory:
                if let problem = mountPointProblem(bind.path, directory: true) { throw PlanError(key: key, message: problem) }
                dirs.insert(bind.path)
                // Writable binds are idmapped (see IdmappedMounts): what the sandbox writes there
                // belongs to the source's owner, or the one the policy names.
                steps.append(MountStep(readOnly ? .bind : .attach, bind.path, data: Array(bind.source.utf8), flags: flags.union(.isDirectory),
                                       owner: bind.owner))
                boundDirectories.append((bind.path, bind.source, key))
                writable[bind.path] = .directory
            case .file:
                if let problem = mountPointProblem(bind.path, directory: false) { throw PlanError(key: key, message: problem) }
                steps.append(MountStep(readOnly ? .bind : .attach, bind.path, data: Array(bind.source.utf8), flags: flags, owner: bind.owner))
                writable[bind.path] = .file
            case .device:
                if let problem = mountPointProblem(bind.path, directory: false) { throw PlanError(key: key, message: problem) }
                writable[bind.path] = .file
                steps.append(MountStep(.bind, bind.path, data: Array(bind.source.utf8), flags: flags.union(.device)))
            case .other:
                throw PlanError(key: key, message: "\(bind.source) is not a file, directory or device")
            }
        }

        // /dev: a small tmpfs with the harmless device nodes bound in.
        steps.append(MountStep(.tmpfs, "/dev", data: Array("size=64k,mode=0755".utf8)))
        dirs.insert("/dev")
        for device in Self.devices {
            steps.append(MountStep(.bind, "/dev/\(device)", data: Array("/dev/\(device)".utf8), flags: [.device]))
        }
        for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                               ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore")] where name != "core" {
            steps.append(MountStep(.symlink, "/dev/\(name)", data: Array(target.utf8)))
        }
        steps.append(MountStep(.devpts, "/dev/pts"))
        steps.append(MountStep(.tmpfs, "/dev/shm", data: Array("size=64m,mode=1777".utf8), flags: [.noExec]))

        // /proc of the sandbox's own pid namespace, with the host-revealing parts hidden.
        steps.append(MountStep(.proc, "/proc"))
        dirs.insert("/proc")
        for path in Self.procMasked { steps.append(MountStep(.mask, path, flags: [.optional])) }
        for path in Self.procReadOnly { steps.append(MountStep(.readonly, path, flags: [.optional])) }

        // Identity files, unless the policy brings its own.
        let bound = Set(binds.map { $0.0.path }).union(fromImage)
        if !bound.contains("/etc") {
            ensureParents("/etc/passwd")
            let p = policy.process
            let home = fs.workdir
            let files: [(String, String)] = [
                ("/etc/passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:\(p.uid):\(p.gid):sandbox:\(home):/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
                ("/etc/group", "root:x:0:\nsandbox:x:\(p.gid):\nnogroup:x:65534:\n"),
                ("/etc/hostname", "\(p.hostname)\n"),
                ("/etc/hosts", "127.0.0.1\tlocalhost \(p.hostname)\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
            ]
            // With an allowlist the supervisor is the resolver (see EgressSession).
            let resolver = policy.network.mode == .allowlist ? [("/etc/resolv.conf", "nameserver 127.0.0.1\noptions attempts:2 timeout:2\n")] : []
            for (path, content) in files + resolver where !bound.contains(path) {
                steps.append(MountStep(.file, path, data: Array(content.utf8), mode: 0o644))
            }
        }
        for hidden in fs.hide {
            if let problem = imageProblem(hidden) { throw PlanError(key: "filesystem.hide", message: problem) }
            steps.append(MountStep(.mask, hidden, flags: [.optional]))
        }

        // Landlock mirrors the plan: everything readable and executable, writable only where a
        // writable mount is.
        var rules = [LandlockRule(path: "/", access: .readOnly)]
        let full = Landlock.FS(rawValue: ~0)
        for bind in fs.readWrite {
            // Directory-only rights asked for a file make landlock_add_rule fail (EINVAL).
            guard let kind = writable[bind.path] else { continue }
            rules.append(LandlockRule(path: bind.path, access: kind == .directory ? full : Landlock.FS.fileRights))
        }
        for tmpfs in fs.tmpfs { rules.append(LandlockRule(path: tmpfs.path, access: full)) }
        rules.append(LandlockRule(path: fs.workdir, access: full))
        rules.append(LandlockRule(path: "/dev", access: [.readFile, .writeFile, .readDir, .truncate, .ioctlDev]))
        rules.append(LandlockRule(path: "/dev/shm", access: full.subtracting(.execute)))
        rules.append(LandlockRule(path: "/proc", access: [.readFile, .writeFile, .readDir]))
        return (steps, rules)
    }
}
