import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor with exactly one owner, closed exactly once: by `close()`, or when its owner
/// lets it go. Being `~Copyable`, it cannot be duplicated by accident, and the compiler refuses a
/// use after `close()` or after it was handed on.
///
/// `raw` is the number for the system call at hand; it is valid only while the owner lives, so
/// whoever passes it on (to C, to the child's plan) keeps the owner alive across that call.
///
/// A close that fails with EBADF or EFAULT traps: the descriptor was closed behind its owner's back,
/// or never was its own, and the number may by now belong to someone else — a bookkeeping bug, not
/// a runtime condition (SwiftNIO treats it the same way). Any other close error (EINTR, EIO) is
/// ignored: on Linux the descriptor is released either way, and retrying could close another's.
public struct Descriptor: ~Copyable, Sendable {
    public let raw: Int32

    /// Takes ownership of `raw` (which must be open and no one else's to close).
    public init(adopting raw: Int32) {
        precondition(raw >= 0, "adopting descriptor \(raw): not a descriptor")
        self.raw = raw
    }

    /// Closes it now rather than when the owner goes.
    public consuming func close() {
        let fd = raw
        discard self
        Self.close(fd)
    }

    /// Closes it on a short-lived thread of its own, for a descriptor whose last close does slow
    /// work nobody needs to wait for (a mount namespace's teardown waits out an RCU grace period).
    /// Nothing outlives the process: if it exits first, the kernel releases the descriptor in
    /// the exit itself, before anyone can reap it. The close is done here when no thread can be
    /// made.
    public consuming func closeInBackground() {
        let fd = raw
        discard self
        if cl_close_in_background(fd) != 0 { Self.close(fd) }
    }

    deinit { Self.close(raw) }

    static func close(_ fd: Int32) {
        guard Glibc.close(fd) != 0 else { return }
        let code = Glibc.errno
        if code == EBADF || code == EFAULT {
            preconditionFailure("close(\(fd)): \(SystemError.text(code)): closed twice or never owned (a descriptor bookkeeping bug)")
        }
    }

    /// A pipe, both ends with `flags` (O_CLOEXEC, O_NONBLOCK). The corresponding C function is `pipe2`.
    public static func pipe(flags: Int32 = O_CLOEXEC) throws(SystemError) -> Pipe {
        var fds: [Int32] = [-1, -1]
        try syscallRetrying("pipe2") { cl_pipe2(&fds, flags) }
        return Pipe(read: Descriptor(adopting: fds[0]), write: Descriptor(adopting: fds[1]))
    }

    /// A connected pair of close-on-exec Unix sockets of `type` (SOCK_STREAM, SOCK_SEQPACKET).
    /// The corresponding C function is `socketpair`.
    public static func socketPair(type: Int32) throws(SystemError) -> SocketPair {
        var fds: [Int32] = [-1, -1]
        try syscallRetrying("socketpair") { socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        return SocketPair(first: Descriptor(adopting: fds[0]), second: Descriptor(adopting: fds[1]))
    }
}

/// The two ends of a pipe, taken apart by their new owners (`let reader = pipe.read`; frozen so
/// that other modules may take it apart).
@frozen
public struct Pipe: ~Copyable, Sendable {
    public var read: Descriptor
    public var write: Descriptor
}

/// The two ends of a socket pair (frozen, like `Pipe`).
@frozen
public struct SocketPair: ~Copyable, Sendable {
    public var first: Descriptor
    public var second: Descriptor
}

/// A `Descriptor` behind a reference, for an owner that several threads hold (a queued task's
/// stdin): closed exactly once, when the last reference goes.
public final class OwnedDescriptor: Sendable {
    private let descriptor: Descriptor
    public var fd: Int32 { descriptor.raw }
    public init(_ fd: Int32) { descriptor = Descriptor(adopting: fd) }
    public init(_ descriptor: consuming Descriptor) { self.descriptor = descriptor }
}
