import CLinux
import CordonPolicy
import CordonSystem
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// Who owns, on the host, what a sandbox writes through its writable binds.
public enum WriteOwnership: Sendable, Equatable {
    /// The owner a bind names (`owner = "uid:gid"`), else the owner of the bind's source: what
    /// `cordon run` (root) and cordond's admins get.
    case sourceOwner
    /// Always this owner; a bind naming another is refused. cordond gives its non-admin callers
    /// themselves (uid and primary gid), so a sandbox writes with no one's ownership but theirs.
    case only(Policy.Owner)

    /// The owner a bind that names `named` (nil: names none) writes as, given its source's
    /// owner; nil when this ownership refuses the name. (cordond asks at submit, the spawn again.)
    /// The one owner `.only` allows.
    public var caller: Policy.Owner? {
        if case .only(let caller) = self { return caller }
        return nil
    }

    public func owner(named: Policy.Owner?, source: Policy.Owner) -> Policy.Owner? {
        switch self {
        case .sourceOwner: return named ?? source
        case .only(let caller): return named == nil || named == caller ? caller : nil
        }
    }
}

/// The writable binds of one spawn, made before clone as detached mounts idmapped so that the
/// bind's host owner is the sandbox's user inside: files the sandbox creates there belong to
/// that owner on the host, and the next sandbox (another uid range) can rewrite them. Only the
/// owner's uid and gid are mapped: a file with any other id shows as the overflow id and cannot
/// be written (the kernel refuses writes to inodes with unmapped ids), a file the sandbox creates
/// can belong to no one else, and no capability a policy keeps reaches anyone else's files.
///
/// Only the host's root may idmap a mount (mount_setattr needs CAP_SYS_ADMIN over the file
/// system), and a detached mount can only be attached in the mount namespace it was cloned
/// from or one its creator's user namespace owns: the parent makes it here, the child moves it
/// into its tree (CS_MOUNT_ATTACH).
final class IdmappedMounts {
    /// Mount step index → the detached mount (-1: an optional source was missing).
    private(set) var fds: [Int: Int32] = [:]
    private var owned: [OwnedDescriptor] = []

    struct Failure: Error {
        var errno: Int32
        var message: String
    }

    /// One detached mount per `.attach` step of `plan`. The sandbox's user (`plan.policy.process`)
    /// is mapped at `hostBase` + its id, as in the sandbox's own user namespace. A workspace
    /// step's mount is cloned from `workspace`'s descriptor (opened with its caller's rights),
    /// never from a path: what is mounted is the inode the caller was allowed, whatever its path
    /// names by now; and it is the caller's ids that are mapped, whoever the caller is.
    init(plan: SpawnPlan, hostBase: UInt32, ownership: WriteOwnership, workspace: SandboxWorkspace? = nil) throws(Failure) {
        let attach = plan.mounts.indices.filter { plan.mounts[$0].kind == .attach }
        guard !attach.isEmpty else { return }
        guard attach.count <= Int(CS_MAX_ATTACH) else {
            throw Failure(errno: E2BIG, message: "filesystem.read_write: \(attach.count) writable binds; at most \(CS_MAX_ATTACH) per sandbox")
        }
        let inside = (uid: hostBase + plan.policy.process.uid, gid: hostBase + plan.policy.process.gid)
        // By the owner and, for a workspace of another group than its caller's, that group.
        struct Mapping: Hashable { var owner: Policy.Owner; var group: UInt32? }
        var namespaces: [Mapping: OwnedDescriptor] = [:]
        for index in attach {
            let step = plan.mounts[index]
            let source = String(decoding: step.data, as: UTF8.self)
            if step.flags.contains(.image) {
                let mount = try Self.image(source, step: step)
                owned.append(mount)
                fds[index] = mount.fd
                continue
            }
            let isWorkspace = step.flags.contains(.workspace)
            let cow = isWorkspace && step.flags.contains(.cow)
            // A copy-on-write workspace's directory is its overlay's lower layer: read-only.
            let readOnly = isWorkspace && (step.flags.contains(.readOnly) || cow)
            let key = isWorkspace ? "workspace" : "filesystem.read_write"
            var uid: UInt32 = 0, gid: UInt32 = 0
            var isDirectory: Int32 = 0
            var mode: UInt32 = 0
            let tree: Int32
            if isWorkspace {
                guard let workspace else { throw Failure(errno: EBADF, message: "workspace: \(source): no descriptor was given for it") }
                tree = cl_open_tree_clone_fd(workspace.descriptor, &uid, &gid, &isDirectory, &mode)
            } else {
                tree = cl_open_tree_clone(source, &uid, &gid, &isDirectory, &mode)
            }
            if tree < 0 {
                let e = errno
                if e == ENOENT && step.flags.contains(.optional) {
                    fds[index] = -1
                    continue
                }
                let why = e == ELOOP ? "a symlink on the way (name the real path)" : SystemError.text(e)
                throw Failure(errno: e, message: "\(key): \(source): \(why)")
            }
            let mount = OwnedDescriptor(tree)
            owned.append(mount)
            // The planner saw the same kind; a swap since then is refused, not mounted.
            guard (isDirectory != 0) == step.flags.contains(.isDirectory) else {
                throw Failure(errno: ENOTDIR, message: "\(key): \(source) changed kind since the policy was planned")
            }
            // The kernel does not clear a setuid or setgid bit on stores through a shared mmap:
            // such a file bound writable could have its code changed and keep its bit. (A
            // directory's files are not walked at each spawn: see SECURITY.md.)
            if isDirectory == 0 && mode & UInt32(S_ISUID | S_ISGID) != 0 {
                throw Failure(errno: EPERM, message: "filesystem.read_write: \(source) is setuid or setgid (mode \(String(mode & 0o7777, radix: 8))): a sandbox could rewrite its code in place and keep the bit; bind it read-only")
            }
            // A workspace is its caller's (an admin's too); a bind's owner is the ownership's.
            guard let owner = isWorkspace ? workspace?.caller : ownership.owner(named: step.owner, source: Policy.Owner(uid: uid, gid: gid)) else {
                throw Failure(errno: EPERM, message: "filesystem.read_write: \(source): owner \"\(step.owner!)\" is not the caller (\(ownership.caller.map { "\($0)" } ?? "")); only cordond's admins may name another owner")
            }
            // Only the owner's ids are mapped, and the kernel lets nobody write an inode whose
            // ids are unmapped: a bind whose top belongs to someone else could not be written at
            // all. Said now, by name, instead of as EACCES from the workload.
            // A read-only workspace is read through the permissions its files give to others
            // (and as their owner where that is the caller): nothing is written, so its top may
            // be anyone's.
            // A writable workspace is its caller's, in one of the caller's groups (a shared project
            // group, a setgid directory's): that group is mapped too, so what the task creates in a
            // setgid directory takes it on the host, as it would for the caller. Never a group the
            // caller is not in (a policy keeping CAP_SETGID could join it inside), and nothing
            // extra for a read-only workspace, which is read with the caller's ids alone.
            if isWorkspace && !readOnly {
                switch SandboxWorkspace.writeRefusal(uid: uid, gid: gid, caller: owner, groups: workspace?.callerGroups ?? []) {
                case .owner?:
                    throw Failure(errno: EACCES, message: "workspace: \(source) belongs to uid \(uid), not to its caller (\(owner.uid)): only the caller's ids are mapped into a sandbox, so it could write nothing there. Use a directory of your own, or ask for it read-only")
                case .group?:
                    throw Failure(errno: EACCES, message: "workspace: \(source) belongs to group \(gid), which is not one of its caller's: a writable workspace is in one of your groups. Ask for it read-only, or change its group")
                case nil: break
                }
            }
            let extraGroup: UInt32? = isWorkspace && !readOnly && gid != owner.gid ? gid : nil
            if !isWorkspace && (uid != owner.uid || gid != owner.gid) {
                throw Failure(errno: EACCES, message: "filesystem.read_write: \(source) belongs to \(uid):\(gid), but this sandbox writes as \(owner) (\(step.owner != nil ? "the bind's owner" : ownership == .sourceOwner ? "its owner" : "the caller")): only the owner's ids are mapped, so it could write nothing there. Bind a directory that \(owner) owns\(ownership == .sourceOwner ? ", or name its owner" : "")")
            }
            let userns: OwnedDescriptor
            let mapping = Mapping(owner: owner, group: extraGroup)
            if let made = namespaces[mapping] {
                userns = made
            } else {
                var gidMap = "\(owner.gid) \(inside.gid) 1\n"
                if let extraGroup { gidMap += "\(extraGroup) \(hostBase + SandboxWorkspace.groupInside(plan.policy.process.gid)) 1\n" }
                let fd = cs_idmap_userns("\(owner.uid) \(inside.uid) 1\n", gidMap)
                if fd < 0 { throw Failure(errno: Int32(-fd), message: "\(key): user namespace for owner \(owner): \(SystemError.text(Int32(-fd)))") }
                userns = OwnedDescriptor(Int32(fd))
                namespaces[mapping] = userns
            }
            if cl_mount_setattr_idmap(tree, userns.fd, step.flags.contains(.noExec) && !cow ? 1 : 0, readOnly ? 1 : 0) != 0 {
                let e = errno
                var ro: Int32 = 0
                let type = cl_fd_fs_type(tree, &ro)
                let why = e == EINVAL || e == EPERM
                    ? (isWorkspace
                        ? "its file system (\(Self.typeName(type))) cannot be idmapped, so it cannot be a workspace; use a directory on a file system that supports idmapped mounts (ext4, xfs, btrfs, tmpfs)"
                        : "its file system (\(Self.typeName(type))) cannot be idmapped, so a sandbox cannot write there with its owner's ids; bind it read-only, or move the data to a file system that supports idmapped mounts (ext4, xfs, btrfs, tmpfs)")
                    : SystemError.text(e)
                throw Failure(errno: e, message: "\(key): \(source): \(why)")
            }
            var onReadOnly: Int32 = 0
            let type = cl_fd_fs_type(tree, &onReadOnly)
            if onReadOnly != 0 && !readOnly {
                throw Failure(errno: EROFS, message: "\(key): \(source) is on a read-only file system (\(Self.typeName(type)))")
            }
            if cow {
                guard let layer = workspace?.cow else { throw Failure(errno: EBADF, message: "workspace: \(source): no copy-on-write layer was given for it") }
                do { try WorkspaceChanges.giveUpper(layer: layer, to: inside.uid, inside.gid) } catch {
                    throw Failure(errno: error.errno, message: "workspace: the files put into it: \(error)")
                }
                fds[index] = try Self.overlay(lower: tree, layer: layer, owner: inside, mode: mode, noExec: step.flags.contains(.noExec), source: source)
                owned.append(OwnedDescriptor(fds[index]!))
                continue
            }
            fds[index] = tree
        }
    }

    /// One top-level entry of a policy's image in cordond's store (or a worker's root-owned
    /// input, `WorkerSandbox`), as a detached read-only,
    /// nosuid, nodev mount. Not idmapped: its files are the host's root's, an id no sandbox's
    /// user namespace maps, so inside they read as the overflow id (nobody) and the kernel lets
    /// no process of the sandbox write them or change their modes, whatever capabilities it
    /// keeps — even through a mount it could remount read-write (the flags of a mount moved into
    /// a namespace the sandbox owns are not locked; the ids are).
    private static func image(_ source: String, step: MountStep) throws(Failure) -> OwnedDescriptor {
        var uid: UInt32 = 0, gid: UInt32 = 0, isDirectory: Int32 = 0, mode: UInt32 = 0
        let tree = cl_open_tree_clone(source, &uid, &gid, &isDirectory, &mode)
        guard tree >= 0 else {
            let e = errno
            throw Failure(errno: e, message: "\(step.target): \(source): \(e == ELOOP ? "a symlink on the way" : SystemError.text(e))")
        }
        let mount = OwnedDescriptor(tree)
        guard (isDirectory != 0) == step.flags.contains(.isDirectory), uid == 0, gid == 0, mode & UInt32(S_ISUID | S_ISGID) == 0 else {
            throw Failure(errno: EPERM, message: "\(step.target): \(source) must be root's, without a set-ID bit (it is a \(isDirectory != 0 ? "directory" : "file") of \(uid):\(gid), mode \(String(mode & 0o7777, radix: 8)))")
        }
        if cl_mount_setattr_readonly(tree) != 0 {
            let e = errno
            throw Failure(errno: e, message: "\(step.target): \(source): making its mount read-only: \(SystemError.text(e))")
        }
        return mount
    }

    /// The copy-on-write overlay of a workspace: `lower` (its idmapped, read-only clone) under
    /// the upper directory of `layer`, whose root — the merged root's owner and mode — becomes
    /// the sandbox user's with the directory's own mode.
    private static func overlay(lower: Int32, layer: Int32, owner: (uid: UInt32, gid: UInt32), mode: UInt32, noExec: Bool,
                                source: String) throws(Failure) -> Int32 {
        var why = [CChar](repeating: 0, count: 512)
        let fd = cl_cow_overlay(lower, layer, owner.uid, owner.gid, mode, noExec ? 1 : 0, &why, why.count)
        guard fd >= 0 else {
            let e = errno
            let said = String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw Failure(errno: e, message: "workspace: \(source): the copy-on-write overlay: \(SystemError.text(e))\(said.isEmpty ? "" : " (overlayfs: \(said))")")
        }
        return fd
    }

    /// "ext2/ext3/ext4" for a statfs f_type; the hex number for the rest.
    static func typeName(_ type: Int) -> String {
        let known: [Int: String] = [
            0xEF53: "ext2/ext3/ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs",
            0x794C_7630: "overlayfs", 0x6969: "nfs", 0x6573_5546: "fuse", 0x0102_1997: "9p", 0x4d44: "vfat",
            0xFF53_4D42: "cifs", 0x7366_7173: "squashfs", 0x9FA0: "proc", 0x6265_6572: "sysfs",
        ]
        if type < 0 { return "unknown" }
        return known[type] ?? "type 0x\(String(type, radix: 16))"
    }
}
