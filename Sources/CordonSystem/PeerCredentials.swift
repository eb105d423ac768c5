import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Who is on the other end of a Unix socket, as the kernel says: SO_PEERCRED's uid, gid and
/// pid and SO_PEERGROUPS' supplementary groups (as of the peer's connect). cordond's socket and
/// its OpenAI-compatible endpoint both identify callers with it.
public struct PeerCredentials: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// The primary group and every supplementary one, sorted, each once.
    public var groups: [UInt32]

    /// nil when the kernel does not give all of them (the connection is then refused: a
    /// partial group list must never be read).
    public static func of(socket fd: Int32) -> PeerCredentials? {
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        guard cl_peer_cred(fd, &uid, &gid, &pid) == 0 else { return nil }
        // Room for 64 groups first (this runs on an event loop for every accept); past that the
        // kernel answers ERANGE and copies nothing, and NGROUPS_MAX (65536) always fits.
        var groups = [UInt32](repeating: 0, count: 64)
        var n = cl_peer_groups(fd, &groups, Int32(groups.count))
        if n < 0 && errno == ERANGE {
            groups = [UInt32](repeating: 0, count: 65536)
            n = cl_peer_groups(fd, &groups, Int32(groups.count))
        }
        guard n >= 0 else { return nil }
        let all = [gid] + groups.prefix(Int(n))
        return PeerCredentials(uid: uid, gid: gid, pid: pid, groups: Array(Set(all)).sorted())
    }
}
