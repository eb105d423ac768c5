#if canImport(Glibc)
import CLinux
import Glibc
#endif
import Synchronization

/// A network namespace held open by descriptor — a sandbox's, taken from its init while it runs —
/// in which this process makes sockets: a socket belongs to the namespace it was made in, so one
/// made here reaches that namespace's loopback from whichever thread later connects or reads it.
/// cordond reaches a local model server this way, in a sandbox with no network of its own.
///
/// Each socket is made on a short-lived thread of its own that enters the namespace and ends:
/// no thread of this process is ever left in another namespace (setns(2) changes the calling
/// thread only, and a thread that failed to come back would open everything it opens later
/// there).
public final class NetworkNamespace: Sendable {
    private let handle: Descriptor

    /// The namespace of process `pid` (a sandbox's init, on the host): opened now, so it stays
    /// the same namespace whatever becomes of the pid later.
    public init(pid: Int32) throws(SystemError) {
        let path = "/proc/\(pid)/ns/net"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
        handle = Descriptor(adopting: fd)
    }

    /// Whether this is the namespace this process's own threads are in (where a sandbox's
    /// namespace must never turn out to be: its loopback is the host's).
    public var isThisProcesses: Bool {
        var mine = stat(), its = stat()
        guard stat("/proc/self/ns/net", &mine) == 0, fstat(handle.raw, &its) == 0 else { return true }
        return mine.st_ino == its.st_ino && mine.st_dev == its.st_dev
    }

    /// A new close-on-exec, non-blocking TCP socket of `family` in this namespace.
    public func tcpSocket(family: Int32) throws(SystemError) -> Descriptor {
        let made = Mutex<(fd: Int32, errno: Int32, step: String)>((-1, 0, ""))
        let ns = handle.raw
        let thread = try Threads.start("netns-socket", signals: .none) {
            guard cl_enter_netns(ns) == 0 else { let e = errno; made.withLock { $0 = (-1, e, "setns") }; return }
            let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            let e = errno
            made.withLock { $0 = (fd, e, "socket") }
        }
        thread.join()
        let (fd, code, step) = made.withLock { $0 }
        guard fd >= 0 else { throw SystemError(step, path: "a sandbox's network namespace", errno: code) }
        return Descriptor(adopting: fd)
    }
}
