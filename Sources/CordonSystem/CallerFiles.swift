#if canImport(Glibc)
import CLinux
import Glibc
#endif
import Synchronization

/// Opening a path with a client's rights, not the privileged process's: cordond decides whether a
/// caller may have a directory bound into a sandbox by having the kernel resolve and check it as
/// that caller (uid, gid and groups from SO_PEERCRED and SO_PEERGROUPS), never by checking modes
/// itself as root (the confused deputy: root may open anything).
///
/// The open runs on a short-lived thread of its own whose file-system identity becomes the
/// caller's (setgroups, setfsgid, setfsuid for that thread only, then every capability of the
/// thread dropped, so neither permissions nor ptrace rules are overridden) and which ends right
/// after: no thread of this process ever keeps a caller's identity, and no other thread's
/// changes. The path is resolved without following any symlink (openat2 RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS), and must be absolute with no `.` or `..` component; the access asked
/// is checked on the descriptor opened (faccessat2 AT_EMPTY_PATH as the caller). What comes back is an O_PATH descriptor of that
/// directory: whoever mounts or reads through it gets exactly the inode the caller was allowed,
/// whatever the path names by then (a directory swapped in after the check is not it).
public enum CallerFiles {
    public struct Caller: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        /// Supplementary groups (the primary may be among them).
        public var groups: [UInt32]

        public init(uid: UInt32, gid: UInt32, groups: [UInt32]) {
            (self.uid, self.gid, self.groups) = (uid, gid, groups)
        }
    }

    /// Why a path was refused: the errno, and a sentence naming the path and what to do.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var errno: Int32
        public var message: String
        public var description: String { message }
    }

    /// The most path bytes accepted (PATH_MAX).
    public static let maxPathBytes = 4096

    /// An O_PATH descriptor of directory `path`, which `caller` may search and read, and write
    /// too when `writable`. Throws a `Refusal` otherwise (its message names the path and why).
    public static func openDirectory(_ path: String, as caller: Caller, writable: Bool) throws(Refusal) -> Descriptor {
        if let problem = lexicalProblem(path) {
            throw Refusal(errno: EINVAL, message: "\(PrintableText.of(path)): \(problem)")
        }
        let mode = R_OK | X_OK | (writable ? W_OK : 0)
        let opened: (fd: Int32, errno: Int32, step: Step)
        do {
            opened = try perform(as: caller) { () -> (fd: Int32, errno: Int32, step: Step) in
                let fd = path.withCString { cl_open_directory_nofollow($0) }
                guard fd >= 0 else { return (-1, errno, .open) }
                guard cl_access_fd(fd, mode) == 0 else {
                    let e = errno
                    close(fd)
                    return (-1, e, .access)
                }
                return (fd, 0, .access)
            }
        } catch {
            throw Refusal(errno: error.errno, message: "\(PrintableText.of(path)): \(error.message)")
        }
        let (fd, code, step) = opened
        guard fd >= 0 else { throw refusal(path, code, step, writable: writable) }
        return Descriptor(adopting: fd)
    }

    enum Step { case open, access }

    /// Runs `body` on a short-lived thread whose file-system identity is `caller`'s (as
    /// `openDirectory`'s open), and returns what it returns. Every file `body` opens, creates,
    /// renames or removes is checked by the kernel as the caller; descriptors opened before
    /// (by this process, as itself) keep working. Throws a `Refusal` when the thread could not
    /// be started or could not become the caller.
    public static func perform<T: Sendable>(as caller: Caller, _ body: @escaping @Sendable () -> T) throws(Refusal) -> T {
        guard caller.groups.count <= 65536 else {
            throw Refusal(errno: EINVAL, message: "the caller has \(caller.groups.count) groups, more than 65536")
        }
        let outcome = Mutex<(value: T?, errno: Int32)>((nil, 0))
        let thread: Threads.Joinable
        do {
            thread = try Threads.start("caller-files", signals: .none) {
                let became = caller.groups.withUnsafeBufferPointer { list in
                    cl_thread_become_fs(caller.uid, caller.gid, list.baseAddress, Int32(list.count))
                }
                guard became == 0 else { let e = errno; outcome.withLock { $0.errno = e }; return }
                let value = body()
                outcome.withLock { $0.value = value }
            }
        } catch {
            throw Refusal(errno: error.errno, message: "cannot start a thread to act as the caller: \(error)")
        }
        thread.join()
        let (value, code) = outcome.withLock { ($0.value, $0.errno) }
        guard let value else { throw Refusal(errno: code, message: "could not take on the caller's identity (\(SystemError.text(code)))") }
        return value
    }

    /// Why `path` is refused before the kernel sees it, or nil: it must be absolute, with no
    /// empty, `.` or `..` component and no NUL, and at most `maxPathBytes` long.
    public static func lexicalProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "not an absolute path" }
        guard path.utf8.count <= maxPathBytes else { return "longer than \(maxPathBytes) bytes" }
        guard !path.utf8.contains(0) else { return "contains a NUL byte" }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if path != "/" {
            for c in components where c.isEmpty || c == "." || c == ".." {
                return c.isEmpty ? "has an empty component (\"//\" or a trailing \"/\"): name the directory as it is"
                    : "has a \"\(c)\" component: name the directory as it is"
            }
        }
        return nil
    }

    static func refusal(_ path: String, _ code: Int32, _ step: Step, writable: Bool) -> Refusal {
        let shown = PrintableText.of(path)
        switch (step, code) {
        case (.open, ELOOP):
            // (RESOLVE_NO_MAGICLINKS refuses /proc's magic links with ELOOP as well.)
            return Refusal(errno: code, message: "\(shown): a symlink (or a /proc magic link) on the way; name the real directory")
        case (.open, ENOTDIR):
            return Refusal(errno: code, message: "\(shown): not a directory (or a file on the way)")
        case (.open, ENOENT):
            return Refusal(errno: code, message: "\(shown): no such directory")
        case (.open, EACCES):
            return Refusal(errno: code, message: "\(shown): you cannot reach it (a directory on the way is not searchable by you)")
        case (.access, EACCES), (.access, EPERM), (.access, EROFS):
            let what = writable ? "write, read and search" : "read and search"
            let extra = code == EROFS ? " (it is on a read-only file system)" : ""
            return Refusal(errno: code, message: "\(shown): you may not \(what) it\(extra)")
        default:
            return Refusal(errno: code, message: "\(shown): \(SystemError.text(code))")
        }
    }
}
