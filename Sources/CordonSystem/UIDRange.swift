#if canImport(Glibc)
import Glibc
#endif

/// A block of 65,536 host uids and gids that one sandbox's user namespace maps to, so that two
/// sandboxes never share a host uid and cannot signal or ptrace each other even outside their
/// pid namespaces. Slots are claimed with an flock on a file in the runtime directory: the lock
/// dies with its holder, so a killed supervisor never leaks a slot.
public final class UIDRange: Sendable {
    public static let size: UInt32 = 65536
    public static let base: UInt32 = 0x4000_0000
    public static let slots: Int = 4096

    public let slot: Int
    /// The slot's lock, held until this range goes.
    private let lock: Descriptor
    public var lockFD: Int32 { lock.raw }
    public var hostBase: UInt32 { UIDRange.base + UInt32(slot) * UIDRange.size }

    init(slot: Int, lockFD: Int32) {
        self.slot = slot
        self.lock = Descriptor(adopting: lockFD)
    }

    /// Where slots are locked. Host-global, whatever runtime directory a caller uses, because
    /// what a slot stands for is: the uid range and the cgroup name `cordon/s<slot>`.
    public static let lockDirectory = "/run/cordon/slots"

    /// Claims a free slot under `directory` (created if needed; it must be root's and private).
    public static func claim(in directory: String = lockDirectory) throws(SystemError) -> UIDRange {
        try FileSystem.ensureDirectory(directory, mode: 0o700)
        guard FileSystem.isRootOwnedPrivate(directory, directory: true) else {
            throw SystemError("use uid-slot lock directory (must be a directory owned by root, not writable by others)", path: directory, errno: EPERM)
        }
        let start = Int(getpid()) % slots
        for offset in 0..<slots {
            let slot = (start + offset) % slots
            let path = "\(directory)/\(slot)"
            let fd = try syscallRetrying("open", path: path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600) }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return UIDRange(slot: slot, lockFD: fd) }
            let code = Glibc.errno
            close(fd)
            if code != EWOULDBLOCK { throw SystemError("flock", path: path, errno: code) }
        }
        throw SystemError("claim a uid range (all \(slots) in use)", path: directory, errno: EAGAIN)
    }

    /// Claims `slot` if nobody holds it (a supervisor's sandbox or its cleanup guardian), for
    /// cleaning up after a supervisor that died: while the claim is held, nobody else can start
    /// a sandbox in that slot.
    public static func tryClaim(slot: Int, in directory: String = lockDirectory) -> UIDRange? {
        guard slot >= 0, slot < slots, FileSystem.isRootOwnedPrivate(directory, directory: true) else { return nil }
        let fd = open("\(directory)/\(slot)", O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return UIDRange(slot: slot, lockFD: fd) }
        close(fd)
        return nil
    }
}
