import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// What a worker wrote through its writable bind, checked before anything of Cordon's keeps or
/// mounts it: walked from descriptors, following nothing, every entry a directory, a regular
/// file or (where allowed) a symlink, all root's (a worker's writable bind maps its uid to
/// root), none with a set-user-ID or set-group-ID bit, within a count and a depth. The image
/// store and the package store share it.
public enum WorkerTree {
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Rules: Sendable {
        /// A top-level directory that must be there (`rootfs` for an image, `site` for a set).
        public var top: String
        public var symlinks: Bool
        public var maxEntries: Int
        /// Directories nested, at most (a worker's paths are at most 1024 bytes).
        public var maxDepth: Int
        public init(top: String, symlinks: Bool, maxEntries: Int = 2_000_000, maxDepth: Int = 520) {
            self.top = top
            self.symlinks = symlinks
            self.maxEntries = maxEntries
            self.maxDepth = maxDepth
        }
    }

    /// Checks the tree at `work` (everything in it, and its `rules.top` directory must be
    /// there); the entry count.
    public static func check(_ work: String, _ rules: Rules) throws(Problem) -> Int {
        let top = open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard top >= 0 else { throw Problem("\(work): \(SystemError.text(errno))") }
        defer { close(top) }
        var st = stat()
        guard fstatat(top, rules.top, &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw Problem("no \(rules.top) directory was written")
        }
        var count = 0
        func walk(_ dir: Int32, _ path: String, depth: Int) throws(Problem) {
            guard depth <= rules.maxDepth else { throw Problem("directories nested more than \(rules.maxDepth) deep") }
            for name in try names(dir, path) {
                count += 1
                guard count <= rules.maxEntries else { throw Problem("more than \(rules.maxEntries) entries") }
                let shown = path.isEmpty ? name : "\(path)/\(name)"
                var st = stat()
                guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw Problem("\(shown): \(SystemError.text(errno))") }
                let type = st.st_mode & S_IFMT
                guard type == S_IFDIR || type == S_IFREG || (rules.symlinks && type == S_IFLNK) else {
                    throw Problem("\(shown) is not a directory\(rules.symlinks ? ", file or symlink" : " or regular file")")
                }
                guard st.st_uid == 0, st.st_gid == 0 else { throw Problem("\(shown) belongs to \(st.st_uid):\(st.st_gid), not to root") }
                guard type == S_IFLNK || st.st_mode & UInt32(S_ISUID | S_ISGID) == 0 else {
                    throw Problem("\(shown) has a set-user-ID or set-group-ID bit (mode \(String(st.st_mode & 0o7777, radix: 8)))")
                }
                if type == S_IFDIR {
                    let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard sub >= 0 else { throw Problem("\(shown): \(SystemError.text(errno))") }
                    defer { close(sub) }
                    try walk(sub, shown, depth: depth + 1)
                }
            }
        }
        // Everything the worker wrote, not only `top`: the whole directory is kept.
        try walk(top, "", depth: 0)
        return count
    }

    /// Sets every directory under `work`'s `top` to `directories` and every file to `files`
    /// (regular files and directories only, checked first): a kept set is read-only to all.
    public static func seal(_ work: String, top: String, directories: mode_t = 0o555, files: mode_t = 0o444) throws(Problem) {
        let dir = open("\(work)/\(top)", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dir >= 0 else { throw Problem("\(work)/\(top): \(SystemError.text(errno))") }
        defer { close(dir) }
        func walk(_ dir: Int32, _ path: String) throws(Problem) {
            for name in try names(dir, path) {
                let shown = "\(path)/\(name)"
                var st = stat()
                guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw Problem("\(shown): \(SystemError.text(errno))") }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard sub >= 0 else { throw Problem("\(shown): \(SystemError.text(errno))") }
                    defer { close(sub) }
                    try walk(sub, shown)
                    guard fchmod(sub, directories) == 0 else { throw Problem("\(shown): \(SystemError.text(errno))") }
                case S_IFREG:
                    guard fchmodat(dir, name, files, 0) == 0 else { throw Problem("\(shown): \(SystemError.text(errno))") }
                default:
                    throw Problem("\(shown) is not a directory or regular file")
                }
            }
        }
        try walk(dir, top)
        guard fchmod(dir, directories) == 0 else { throw Problem("\(top): \(SystemError.text(errno))") }
    }

    static func names(_ dir: Int32, _ path: String) throws(Problem) -> [String] {
        do { return try FileSystem.entryNames(dir).map { String(decoding: $0, as: UTF8.self) } } catch {
            throw Problem("\(path.isEmpty ? "." : path): \(SystemError.text(error.errno))")
        }
    }
}
