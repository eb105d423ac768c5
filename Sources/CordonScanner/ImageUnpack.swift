import CordonArchive
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// Unpacks one image of an OCI image layout (a directory or its tar) or a `docker save` archive
/// into an empty directory: the root file system cordond mounts read-only under a sandbox
/// (`filesystem.image`). It reads with the scanner's hardened reader (the same limits, the same
/// manifest choice) and is meant to run where the scanner does, unprivileged, inside a sandbox:
/// cordond runs `cordon-scan unpack` and then checks the tree it wrote.
///
/// Layers are applied in the manifest's order, each to the end before the next. A whiteout
/// (`.wh.NAME`) deletes NAME of the layers below, an opaque marker (`.wh..wh..opq`) everything
/// the layers below put in its directory; neither touches what its own layer wrote (the OCI
/// image spec's rule). Every path is walked from the root's descriptor one component at a time
/// with O_NOFOLLOW: a symlink the image holds is written as a symlink and never followed, so no
/// entry can write outside the root, and an entry under a symlink or a file is refused. Device
/// nodes, FIFOs and sockets are refused by the reader; set-user-ID and set-group-ID bits are
/// dropped, and so are group and other write bits (the root is read-only: they could serve only
/// a sandbox that managed to remount it); a directory keeps its sticky bit. A directory's mode is
/// applied once every layer is in (the unpacker keeps the right to write into it until then: an
/// image's 0555 /usr/bin still gets its files). Owners and times are not kept: every file is the
/// unpacker's. One budget holds for the whole image, every layer together: the reader's total
/// bytes and a million entries. `etc/resolv.conf` and `etc/hosts` are Cordon's (the
/// sandbox's resolver is 127.0.0.1), as a container runtime replaces them.
public enum ImageUnpacker {
    public struct Summary: Sendable, Equatable {
        /// Which image of the archive, when it holds more than one.
        public var label: String?
        public var layers: [String]
        public var files: Int
        public var bytes: Int64
        /// The choice to scan: exactly the image unpacked (an OCI layout), or the whole archive (a
        /// `docker save` archive, whose images the scanner reads together).
        public var scanSelection: ImageSelection
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// The host's platform as OCI names it (linux/amd64, linux/arm64).
    static var hostPlatform: ImageSelection.Platform {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let arch = ["x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"][machine] ?? machine
        return ImageSelection.Platform(os: "linux", architecture: arch)
    }

    /// Unpacks the image of `path` that `ref` names (an OCI ref name or a docker tag; the
    /// archive's only image when nil), for `platform` when an OCI index holds several (the
    /// host's when nil), into `root`, an existing empty directory.
    public static func unpack(_ path: String, ref: String?, platform: ImageSelection.Platform?, into root: String,
                              limits: ArchiveLimits = ArchiveLimits()) throws -> Summary {
        guard var found = try ContainerImage.choose(path, limits: limits, selection: .all) else {
            throw Failure("\(path) is not an OCI image layout (a directory with oci-layout and index.json, or its tar) nor a docker save archive")
        }
        var selection = ImageSelection.all
        if found.isDockerSave {
            if platform != nil { throw Failure("\(path): a platform chooses among an OCI index's images; this is a docker save archive (name an image by its tag)") }
            if let ref { found = try ContainerImage.choose(path, limits: limits, selection: .all, dockerTag: ref)! }
        } else if ref != nil || platform != nil || found.images.count > 1 {
            selection = ImageSelection(platform: platform, ref: ref)
            found = try ContainerImage.choose(path, limits: limits, selection: selection)!
            // Several left: the host's platform, if that leaves one.
            if found.images.count > 1 && platform == nil {
                let host = ImageSelection(platform: hostPlatform, ref: ref)
                if let mine = try? ContainerImage.choose(path, limits: limits, selection: host), mine.images.count == 1 {
                    found = mine
                    selection = host
                }
            }
        }
        guard found.images.count == 1, let image = found.images.first else {
            let how = found.isDockerSave ? "PATH:TAG" : "PATH:REF (an org.opencontainers.image.ref.name)"
            throw Failure("\(path) holds \(found.images.count) images (\(found.images.map(\.label).joined(separator: ", "))): name one as \(how)")
        }
        var layerLimits = limits
        layerLimits.symlinksResolveInRoot = true
        let tree = try Tree(root, maxBytes: limits.totalBytes)
        defer { close(tree.root) }
        for (n, layer) in image.layers.enumerated() {
            tree.created = []
            var seen = false
            try found.store.stream([layer], limits: layerLimits) { _, reader in
                seen = true
                try reader.forEach { entry, read in
                    do { try tree.apply(entry, read) } catch let failure as Failure {
                        throw Failure("\(path): layer \(n + 1) (\(layer)): \(entry.path): \(failure.description)")
                    }
                }
            }
            guard seen else { throw Failure("\(path): layer \(layer) was there when the manifests were read and gone when the layers were: the archive changed while it was unpacked") }
        }
        try tree.resolverFiles()
        try tree.applyDirectoryModes()
        return Summary(label: found.images.count == 1 && selection.isEmpty && ref == nil ? nil : image.label, layers: image.layers,
                       files: tree.files, bytes: tree.bytes, scanSelection: found.isDockerSave ? .all : selection)
    }

    /// The root being written, through descriptors only.
    final class Tree {
        let root: Int32
        /// Paths this layer wrote: its own whiteouts and opaque markers leave them.
        var created = Set<String>()
        var files = 0
        var bytes: Int64 = 0
        var entries = 0
        let maxBytes: Int64
        static let maxEntries = 1_000_000
        /// Each directory's mode as its last layer gave it, with the inode it was given to,
        /// applied at the end to that inode only (a directory removed since and made again as a
        /// parent of a later entry gets none).
        var directoryModes: [String: (mode: mode_t, device: UInt64, inode: UInt64)] = [:]

        init(_ path: String, maxBytes: Int64) throws {
            root = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard root >= 0 else { throw Failure("\(path): \(SystemError.text(errno))") }
            self.maxBytes = maxBytes
        }

        func apply(_ entry: ArchiveEntry, _ read: () throws(ArchiveError) -> [UInt8]) throws {
            if entry.path == "." { return }
            entries += 1
            guard entries <= Self.maxEntries else { throw Failure("more than \(Self.maxEntries) entries in the image's layers together") }
            var parts = entry.path.split(separator: "/").map(String.init)
            let name = parts.removeLast()
            let parent = parts.joined(separator: "/")
            // The directories on its way are this layer's too (a whiteout of one of them in the
            // same layer is for the layers below).
            var ancestor = ""
            for part in parts {
                ancestor += ancestor.isEmpty ? part : "/" + part
                created.insert(ancestor)
            }
            if name == ".wh..wh..opq" { return try opaque(parent) }
            if name.hasPrefix(".wh.") {
                let gone = String(name.dropFirst(4))
                guard !gone.isEmpty, gone != ".", gone != ".." else { throw Failure("a whiteout that names nothing") }
                return try whiteout(parts, gone)
            }
            let dir = try directory(parts, create: true)!
            defer { close(dir) }
            var st = stat()
            let exists = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0
            switch entry.kind {
            case .directory:
                if exists && (st.st_mode & S_IFMT) == S_IFDIR {
                    // Kept with what the layers below put in it (unless it is made opaque).
                } else {
                    if exists { try remove(dir, name) }
                    guard mkdirat(dir, name, 0o755) == 0 else { throw Failure("mkdir: \(SystemError.text(errno))") }
                    guard fchmodat(dir, name, 0o755, 0) == 0 else { throw Failure("chmod: \(SystemError.text(errno))") }
                }
                var made = stat()
                guard fstatat(dir, name, &made, AT_SYMLINK_NOFOLLOW) == 0 else { throw Failure("stat: \(SystemError.text(errno))") }
                directoryModes[entry.path] = (mode_t(entry.mode & 0o1755), UInt64(made.st_dev), UInt64(made.st_ino))
            case .file:
                let content = try read()
                guard bytes + Int64(content.count) <= maxBytes else {
                    throw Failure("the image's files add up to more than \(maxBytes) bytes, the unpacker's budget for all its layers together")
                }
                if exists { try remove(dir, name) }
                let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw Failure("create: \(SystemError.text(errno))") }
                defer { close(fd) }
                let e = content.withUnsafeBytes { FileDescriptorIO.writeFully(fd, $0.baseAddress, $0.count) }
                guard e == 0 else { throw Failure("write: \(SystemError.text(e))") }
                // Permission bits only: no set-user-ID, set-group-ID or sticky bit, and no write
                // bit for group or others.
                guard fchmod(fd, mode_t(entry.mode & 0o755)) == 0 else { throw Failure("chmod: \(SystemError.text(errno))") }
                files += 1
                bytes += Int64(content.count)
            case .symlink:
                if exists { try remove(dir, name) }
                guard symlinkat(entry.linkTarget ?? "", dir, name) == 0 else { throw Failure("symlink: \(SystemError.text(errno))") }
            case .hardlink:
                var targetParts = (entry.linkTarget ?? "").split(separator: "/").map(String.init).filter { $0 != "." }
                guard let targetName = targetParts.popLast() else { throw Failure("a hard link to nothing") }
                guard let from = try directory(targetParts, create: false) else {
                    throw Failure("a hard link to \(entry.linkTarget ?? ""), which is not in the image")
                }
                defer { close(from) }
                if exists { try remove(dir, name) }
                guard linkat(from, targetName, dir, name, 0) == 0 else {
                    throw Failure("hard link to \(entry.linkTarget ?? ""): \(SystemError.text(errno))")
                }
            }
            created.insert(entry.path)
        }

        /// The directory at `parts` below the root, opened one component at a time without
        /// following symlinks, made (0755) where missing if `create`; nil when it is missing.
        func directory(_ parts: [String], create: Bool) throws -> Int32? {
            var fd = dup(root)
            guard fd >= 0 else { throw Failure("dup: \(SystemError.text(errno))") }
            var walked = ""
            for part in parts {
                walked += walked.isEmpty ? part : "/" + part
                var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if next < 0 && errno == ENOENT && create {
                    if mkdirat(fd, part, 0o755) != 0 && errno != EEXIST {
                        let e = errno
                        close(fd)
                        throw Failure("\(walked): mkdir: \(SystemError.text(e))")
                    }
                    _ = fchmodat(fd, part, 0o755, 0)
                    next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                let e = errno
                close(fd)
                if next < 0 {
                    if e == ENOENT && !create { return nil }
                    if e == ELOOP || e == ENOTDIR {
                        throw Failure("\(walked) is a symlink or a file in the image, not a directory: no entry is written through a symlink")
                    }
                    throw Failure("\(walked): \(SystemError.text(e))")
                }
                fd = next
            }
            return fd
        }

        /// `.wh.NAME` in `parts`: NAME of the layers below goes. A NAME this layer wrote stays,
        /// and so does what it wrote below it; a directory it re-declared loses what the layers
        /// below put in it (the OCI rule: a whiteout applies to the layers below only).
        func whiteout(_ parts: [String], _ name: String) throws {
            let path = (parts + [name]).joined(separator: "/")
            guard let dir = try? directory(parts, create: false) else { return }
            defer { close(dir) }
            var st = stat()
            guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            guard created.contains(path) else { return try remove(dir, name) }
            guard (st.st_mode & S_IFMT) == S_IFDIR else { return }
            let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard sub >= 0 else { throw Failure("\(path): \(SystemError.text(errno))") }
            defer { close(sub) }
            try prune(sub, path)
        }

        /// `.wh..wh..opq` in `path`: what the layers below put there goes, at every depth.
        func opaque(_ path: String) throws {
            let parts = path.split(separator: "/").map(String.init)
            guard let dir = try directory(parts, create: true) else { return }
            defer { close(dir) }
            try prune(dir, path)
        }

        private func prune(_ dir: Int32, _ path: String) throws {
            for name in try Self.names(dir) {
                let child = path.isEmpty ? name : "\(path)/\(name)"
                guard created.contains(child) else {
                    try remove(dir, name)
                    continue
                }
                var st = stat()
                guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
                let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw Failure("\(child): \(SystemError.text(errno))") }
                defer { close(sub) }
                try prune(sub, child)
            }
        }

        /// Removes `name` in `dir`, a directory with everything below it; symlinks are removed,
        /// never followed.
        func remove(_ dir: Int32, _ name: String) throws {
            do { try FileSystem.removeTree(in: dir, name: Array(name.utf8)) } catch { throw Failure("\(name): \(error)") }
        }

        /// The names in the directory `dir` (without . and ..).
        static func names(_ dir: Int32) throws -> [String] {
            do { return try FileSystem.entryNames(dir).map { String(decoding: $0, as: UTF8.self) } } catch {
                throw Failure("opendir: \(SystemError.text(error.errno))")
            }
        }

        /// Each directory's own mode, deepest first (a parent made 0555 after its children).
        func applyDirectoryModes() throws {
            for (path, want) in directoryModes.sorted(by: { $0.key.split(separator: "/").count > $1.key.split(separator: "/").count }) {
                var parts = path.split(separator: "/").map(String.init)
                let name = parts.removeLast()
                // Gone since (a whiteout, a later layer's file in its place): nothing to do.
                guard let dir = try? directory(parts, create: false) else { continue }
                defer { close(dir) }
                var st = stat()
                guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
                      UInt64(st.st_dev) == want.device, UInt64(st.st_ino) == want.inode else { continue }
                guard fchmodat(dir, name, want.mode, 0) == 0 else { throw Failure("\(path): chmod: \(SystemError.text(errno))") }
            }
        }

        /// Cordon's etc/resolv.conf (the sandbox's resolver, 127.0.0.1) and etc/hosts.
        func resolverFiles() throws {
            guard let etc = try directory(["etc"], create: true) else { return }
            defer { close(etc) }
            for (name, text) in [("resolv.conf", "nameserver 127.0.0.1\noptions attempts:2 timeout:2\n"),
                                 ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")] {
                try remove(etc, name)
                let fd = openat(etc, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw Failure("etc/\(name): \(SystemError.text(errno))") }
                defer { close(fd) }
                let e = Array(text.utf8).withUnsafeBytes { FileDescriptorIO.writeFully(fd, $0.baseAddress, $0.count) }
                guard e == 0 else { throw Failure("etc/\(name): \(SystemError.text(e))") }
                _ = fchmod(fd, 0o644)
            }
        }
    }
}
