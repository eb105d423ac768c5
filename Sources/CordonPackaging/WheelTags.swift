import CordonScan

/// The Python a set is installed for, as the install gate chooses files for it: which wheels'
/// tags it takes (PEP 425, the platform tags of PEP 600) and which `Requires-Python` ranges
/// admit it. Read from the interpreter itself (`describe`'s script, run in a worker), never
/// guessed from the host.
public struct PythonTarget: Sendable, Equatable, CustomStringConvertible {
    /// Its version, e.g. [3, 11, 2].
    public var version: [Int]
    /// `sys.implementation.name` ("cpython", "pypy").
    public var implementation: String
    /// `platform.machine()` ("x86_64", "aarch64").
    public var machine: String
    /// glibc's version (major, minor), nil on a musl or unknown libc (then only `linux_*`
    /// and pure wheels are taken).
    public var glibc: (Int, Int)?
    /// Its standard library's top-level modules (`sys.stdlib_module_names`, and every name in
    /// its stdlib and lib-dynload directories): what a set on `PYTHONPATH` must not provide.
    public var stdlib: Set<String> = []

    public init(version: [Int], implementation: String, machine: String, glibc: (Int, Int)?) {
        self.version = version
        self.implementation = implementation
        self.machine = machine
        self.glibc = glibc
    }

    public static func == (a: PythonTarget, b: PythonTarget) -> Bool {
        a.version == b.version && a.implementation == b.implementation && a.machine == b.machine && a.glibc?.0 == b.glibc?.0 && a.glibc?.1 == b.glibc?.1
    }

    public var description: String {
        "\(implementation) \(version.map(String.init).joined(separator: ".")) on \(machine)\(glibc.map { ", glibc \($0.0).\($0.1)" } ?? "")"
    }

    /// The Python script that prints what `parse` reads: one line, space-separated, then the
    /// standard library's module names on a second.
    public static let describeScript = """
        import sys, platform
        v = sys.version_info
        libc = platform.libc_ver()
        print(sys.implementation.name, "%d.%d.%d" % (v[0], v[1], v[2]), platform.machine(), libc[1] if libc[0] == "glibc" else "-")
        import os, sysconfig
        names = set(getattr(sys, "stdlib_module_names", ()))
        paths = sysconfig.get_paths()
        for d in {paths.get("stdlib"), paths.get("platstdlib"), os.path.join(paths.get("stdlib") or "/", "lib-dynload")}:
            try:
                names.update(e.split(".")[0] for e in os.listdir(d) if e.split(".")[0])
            except OSError:
                pass
        print(" ".join(sorted(n for n in names if n.replace("_", "a").replace("-", "a").isalnum() and n.isascii())))
        """

    /// Reads the line `describeScript` prints.
    public static func parse(_ text: String) -> PythonTarget? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard var target = parseFirst(String(lines.first ?? "")) else { return nil }
        if lines.count > 1 {
            let names = lines[1].split(separator: " ").map(String.init)
            guard names.count <= 4096, names.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 128 && $0.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45 } }) else {
                return nil
            }
            target.stdlib = Set(names)
        }
        return target
    }

    static func parseFirst(_ line: String) -> PythonTarget? {
        let parts = line.split(whereSeparator: { $0 == " " }).map(String.init)
        guard parts.count == 4, parts[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
              parts[2].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }), !parts[2].isEmpty else { return nil }
        let version = parts[1].split(separator: ".").compactMap { Int($0) }
        guard version.count == 3, version[0] == 3 else { return nil }
        var glibc: (Int, Int)?
        if parts[3] != "-" {
            let g = parts[3].split(separator: ".").compactMap { Int($0) }
            guard g.count >= 2 else { return nil }
            glibc = (g[0], g[1])
        }
        return PythonTarget(version: version, implementation: parts[0], machine: parts[2], glibc: glibc)
    }

    /// The tags it takes, best first, as pip orders them (packaging.tags: the interpreter's
    /// own ABI, then abi3 back to 3.2, then `none`; each over the platforms, newest glibc
    /// first; then pure Python wheels).
    public var tags: [String] {
        let major = version[0], minor = version[1]
        let platforms = platformTags
        var out: [String] = []
        if implementation == "cpython" {
            let cp = "cp\(major)\(minor)"
            for abi in [cp, "abi3", "none"] { for p in platforms { out.append("\(cp)-\(abi)-\(p)") } }
            if minor >= 2 {
                for m in stride(from: minor - 1, through: 2, by: -1) { for p in platforms { out.append("cp\(major)\(m)-abi3-\(p)") } }
            }
        }
        let pythons = ["py\(major)\(minor)", "py\(major)"] + stride(from: minor - 1, through: 0, by: -1).map { "py\(major)\($0)" }
        for py in pythons { for p in platforms { out.append("\(py)-none-\(p)") } }
        if implementation == "cpython" { out.append("cp\(major)\(minor)-none-any") }
        for py in pythons { out.append("\(py)-none-any") }
        return out
    }

    /// manylinux_2_X (with the legacy aliases at 2.17, 2.12 and 2.5) newest first, then linux.
    var platformTags: [String] {
        let arch = machine
        var out: [String] = []
        if let (major, minor) = glibc, major == 2 {
            let oldest = ["x86_64", "i686"].contains(arch) ? 5 : 17
            if minor >= oldest {
                for m in stride(from: minor, through: oldest, by: -1) {
                    out.append("manylinux_2_\(m)_\(arch)")
                    switch m {
                    case 17: out.append("manylinux2014_\(arch)")
                    case 12: out.append("manylinux2010_\(arch)")
                    case 5: out.append("manylinux1_\(arch)")
                    default: break
                    }
                }
            }
        }
        out.append("linux_\(arch)")
        return out
    }

    /// How good `wheel` is for it: the best of its tags' places in `tags` (lower is better),
    /// nil when none of its tags is taken.
    public func rank(_ wheel: DistributionFile.Wheel, in table: [String: Int]) -> Int? {
        var best: Int?
        for py in wheel.pythonTags {
            for abi in wheel.abiTags {
                for platform in wheel.platformTags {
                    if let r = table["\(py)-\(abi)-\(platform)"], r < best ?? Int.max { best = r }
                }
            }
        }
        return best
    }

    /// `tags` as a lookup table for `rank`.
    public var tagTable: [String: Int] {
        var out: [String: Int] = [:]
        for (i, tag) in tags.enumerated() where out[tag] == nil { out[tag] = i }
        return out
    }

    /// Whether a `Requires-Python` value admits this version: true, false, or nil when the
    /// value is not a PEP 440 specifier set (pip then ignores the value and keeps the file, and
    /// so does the gate).
    public func admits(requiresPython spec: String) -> Bool? {
        let full = PEP440Version(version.map(String.init).joined(separator: "."))!
        for raw in spec.split(separator: ",") {
            let clause = raw.trimmingCharacters(in: " \t")
            if clause.isEmpty { continue }
            let ops = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"]
            guard let op = ops.first(where: { clause.hasPrefix($0) }) else { return nil }
            let text = clause.dropFirst(op.count).trimmingCharacters(in: " \t")
            if text.hasSuffix(".*") {
                guard op == "==" || op == "!=" else { return nil }
                let prefix = text.dropLast(2).split(separator: ".").map { Int($0) }
                guard !prefix.isEmpty, !prefix.contains(nil) else { return nil }
                let wanted = prefix.map { $0! }
                let mine = (version + Array(repeating: 0, count: max(0, wanted.count - version.count))).prefix(wanted.count)
                let matches = Array(mine) == wanted
                if matches != (op == "==") { return false }
                continue
            }
            if op == "===" {
                if text != version.map(String.init).joined(separator: ".") { return false }
                continue
            }
            guard let v = PEP440Version(text) else { return nil }
            let ok: Bool
            switch op {
            case "==": ok = full == v
            case "!=": ok = full != v
            case "<=": ok = full <= v
            case ">=": ok = full >= v
            case "<": ok = full < v
            case ">": ok = full > v
            default:  // ~=: at least V, and the same release up to V's last component but one
                let parts = text.split(separator: ".").map { Int($0) }
                guard parts.count >= 2, !parts.contains(nil) else { return nil }
                let stem = parts.dropLast().map { $0! }
                let mine = (version + Array(repeating: 0, count: max(0, stem.count - version.count))).prefix(stem.count)
                ok = full >= v && Array(mine) == stem
            }
            if !ok { return false }
        }
        return true
    }
}

private extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}

/// What a site directory makes importable at its top, and which of it would take the place of
/// the standard library's modules when the site is on PYTHONPATH (ahead of the standard library).
public enum PythonModules {
    /// The top-level module a file of a site makes importable, or nil: a module file at the top
    /// (`.py`, `.pyc`, an extension module), or a package's `__init__` (a directory without one
    /// is a namespace portion, which any module of that name elsewhere on the path wins over).
    public static func topLevel(_ path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 1 { return module(parts[0]).map(String.init) }
        if parts.count == 2, module(parts[1]) == "__init__" { return String(parts[0]) }
        return nil
    }

    static func module(_ file: Substring) -> Substring? {
        guard let dot = file.firstIndex(of: "."), dot != file.startIndex else { return nil }
        let suffix = file[dot...]
        guard suffix == ".py" || suffix == ".pyc" || suffix.hasSuffix(".so") || suffix == ".pyd" else { return nil }
        return file[..<dot]
    }

    /// Whether a top-level module `name` of a site would be imported instead of the Python's
    /// own: one of `stdlib`, or what Python imports at start-up by name (`sitecustomize`,
    /// `usercustomize`, the `_sysconfigdata` that sysconfig and pip read).
    public static func shadows(_ name: String, stdlib: Set<String>) -> Bool {
        stdlib.contains(name) || name == "sitecustomize" || name == "usercustomize" || name.hasPrefix("_sysconfigdata")
    }
}
