import CLinux
import CordonConfig
import CordonPolicy
import CordonTools
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Who is on the other end of a connection, as the kernel reported it at connect time
/// (SO_PEERCRED, SO_PEERGROUPS) — never what the client says about itself.
public struct Peer: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// Primary and supplementary groups.
    public var groups: [UInt32]
    /// The client's executable (from /proc/PID/exe; "?" when it could not be read).
    public var exe: String

    public init(uid: UInt32, gid: UInt32, pid: Int32, groups: [UInt32], exe: String) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.groups = groups
        self.exe = exe
    }

    /// The credentials of the process connected on `fd`, or nil when the kernel does not give
    /// all of them (the connection is then refused: a partial group list must never be read).
    static func of(socket fd: Int32) -> Peer? {
        guard let c = PeerCredentials.of(socket: fd) else { return nil }
        // Clipped: it goes into records, some kept for audit.keep_denials whatever the quota.
        let exe = TaskManager.clip(c.pid > 0 ? FileSystem.symlinkTarget("/proc/\(c.pid)/exe") ?? "?" : "?")
        return Peer(uid: c.uid, gid: c.gid, pid: c.pid, groups: c.groups, exe: exe)
    }
}

/// Users and groups by name or number (`useradd` names or decimal ids).
enum Accounts {
    static func uid(_ nameOrID: String) -> UInt32? {
        if let n = UInt32(nameOrID) { return n }
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(nameOrID, &pw, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return pw.pw_uid
    }

    static func gid(_ nameOrID: String) -> UInt32? {
        if let n = UInt32(nameOrID) { return n }
        var gr = group()
        var result: UnsafeMutablePointer<group>?
        // A group with many members needs a large buffer: grow it on ERANGE.
        var size = 65536
        while size <= 64 << 20 {
            var buffer = [CChar](repeating: 0, count: size)
            let rc = getgrnam_r(nameOrID, &gr, &buffer, buffer.count, &result)
            if rc == ERANGE { size *= 4; continue }
            guard rc == 0, result != nil else { return nil }
            return gr.gr_gid
        }
        return nil
    }
}

/// Decides what a peer may do: admins (root, and `cordond.toml`'s `[admins]`) everything; other
/// users only policies whose `[access]` names them or one of their groups, and only their own
/// tasks.
public struct Authorizer: Sendable {
    let adminUIDs: Set<UInt32>
    let adminGIDs: Set<UInt32>

    /// Every admin name must resolve: a typo must not silently leave the daemon without admins.
    public init(config: DaemonConfig) throws(DaemonConfig.Error) {
        var uids: Set<UInt32> = [0]
        var gids: Set<UInt32> = []
        for name in config.adminUsers {
            guard let uid = Accounts.uid(name) else { throw DaemonConfig.Error(description: "admins.users: no such user \"\(name)\"") }
            uids.insert(uid)
        }
        for name in config.adminGroups {
            guard let gid = Accounts.gid(name) else { throw DaemonConfig.Error(description: "admins.groups: no such group \"\(name)\"") }
            gids.insert(gid)
        }
        adminUIDs = uids
        adminGIDs = gids
    }

    public func isAdmin(_ peer: Peer) -> Bool {
        adminUIDs.contains(peer.uid) || peer.groups.contains { adminGIDs.contains($0) }
    }

    /// Whether `peer` may run tasks under `policy`. Names in `[access]` are resolved now, so a
    /// user added later is honoured and a name that no longer exists matches nobody.
    public func mayUse(_ peer: Peer, _ policy: Policy) -> Bool {
        if isAdmin(peer) { return true }
        if policy.access.users.contains(where: { Accounts.uid($0) == peer.uid }) { return true }
        return policy.access.groups.contains { name in Accounts.gid(name).map { peer.groups.contains($0) } ?? false }
    }

    /// Whether `peer` may call the tool of `manifest`: admins; the manifest's `[access]` when it
    /// has one; otherwise whoever may use its policy.
    func mayUse(_ peer: Peer, manifest: ToolManifest, policies: PolicyStore) -> Bool {
        if isAdmin(peer) { return true }
        if let access = manifest.access {
            if access.users.contains(where: { Accounts.uid($0) == peer.uid }) { return true }
            return access.groups.contains { name in Accounts.gid(name).map { peer.groups.contains($0) || peer.gid == $0 } ?? false }
        }
        guard let policy = try? policies.loadPolicy(manifest.policy) else { return false }
        return mayUse(peer, policy)
    }

    /// Whether `peer` may see and act on a task submitted by `owner`.
    public func maySee(_ peer: Peer, taskOwner owner: UInt32) -> Bool { isAdmin(peer) || peer.uid == owner }
}
