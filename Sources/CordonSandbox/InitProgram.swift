import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// cordon-init (Sources/cordon-init): every sandbox's pid 1 executes it from a descriptor once
/// the workload has started. It runs in every sandbox, so it is opened only if it is a regular
/// file that root owns and only root can write; the descriptor is checked, not the path, and kept
/// for the life of the process.
enum InitProgram {
    static let installed = "/usr/libexec/cordon/cordon-init"
    private static let opened = Mutex<[String: Int32]>([:])

    /// The places looked at when no path is configured: next to the running executable (a build
    /// directory), then PREFIX/libexec/cordon beside the executable's PREFIX/bin (where `make
    /// install` puts it, whatever PREFIX and DESTDIR were), then `installed`.
    static let candidates: [String] = FileSystem.executableDirectory.map { candidates(executableDirectory: $0) } ?? [installed]

    static func candidates(executableDirectory dir: String) -> [String] {
        var paths = ["\(dir)/cordon-init"]
        if let slash = dir.lastIndex(of: "/"), dir[dir.index(after: slash)...] == "bin" {
            paths.append("\(dir[..<slash])/libexec/cordon/cordon-init")
        }
        if !paths.contains(installed) { paths.append(installed) }
        return paths
    }

    static func open(_ configured: String?) throws(SystemError) -> Int32 {
        let paths = configured.map { [$0] } ?? candidates
        var missing: [String] = []
        for path in paths {
            if let fd = opened.withLock({ $0[path] }) { return fd }
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            if fd < 0 {
                if errno == ENOENT { missing.append(path); continue }
                throw SystemError("open the sandbox init program", path: path, errno: errno)
            }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                close(fd)
                throw SystemError("the sandbox init program is not a regular file", path: path, errno: EINVAL)
            }
            guard st.st_uid == 0, st.st_mode & 0o022 == 0, st.st_mode & 0o111 != 0 else {
                close(fd)
                throw SystemError("the sandbox init program must be owned by root, executable, and writable by root only (mode \(String(st.st_mode & 0o7777, radix: 8)), owner \(st.st_uid))",
                                  path: path, errno: EPERM)
            }
            // Another thread may have opened it meanwhile: keep one descriptor per path.
            return opened.withLock { table in
                if let existing = table[path] { close(fd); return existing }
                table[path] = fd
                return fd
            }
        }
        throw SystemError("find the sandbox init program (build it with `swift build`, or install it as \(installed)); looked at \(missing.joined(separator: ", "))",
                          path: paths.first ?? installed, errno: ENOENT)
    }
}
