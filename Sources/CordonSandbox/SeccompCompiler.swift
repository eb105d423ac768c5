import CLinux
import CordonConfig
import CordonPolicy
import CordonSystem
import CSeccomp
import CSpawn
#if canImport(Glibc)
import Glibc
#endif

/// A seccomp filter ready to load: BPF instructions plus what the supervisor answers to each
/// notification (denied calls reach the supervisor by seccomp user notification, so every denial
/// is logged by name).
public struct CompiledSeccomp: Sendable, Equatable {
    /// `struct sock_filter` array, 8 bytes an instruction.
    public var bpf: [UInt8]
    /// errno returned for a notified syscall number; `defaultErrno` for the rest.
    public var errnoBySyscall: [Int32: Int32]
    public var defaultErrno: Int32
    public var usesNotification: Bool
    public var instructionCount: Int { bpf.count / 8 }

    /// Whether the filter lets system call `nr` through whatever its arguments (`cs_filter_allows`).
    public func allowsUnconditionally(_ nr: Int32) -> Bool {
        nr >= 0 && bpf.withUnsafeBytes { cs_filter_allows($0.baseAddress, instructionCount, UInt32(nr)) } == 1
    }
}

public enum SeccompCompiler {
    static let actAllow: UInt32 = 0x7fff_0000
    static let actKillProcess: UInt32 = 0x8000_0000
    static let actKillThread: UInt32 = 0x0000_0000
    static let actTrap: UInt32 = 0x0003_0000
    static let actLog: UInt32 = 0x7ffc_0000
    static let actNotify: UInt32 = 0x7fc0_0000
    static func actErrno(_ e: Int32) -> UInt32 { 0x0005_0000 | (UInt32(e) & 0xffff) }
    static let enosys: Int32 = 38

    /// The calls that take a file mode, and the index of that argument.
    static let modeArgument: [String: UInt32] = [
        "chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "open": 2, "openat": 3, "creat": 1,
        "mknod": 1, "mknodat": 2,
    ]

    public struct CompileError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// What the spawn calls under the filter before the program runs: the listener's hand-off
    /// and a failure's report (sendmsg), the signal mask, execve (execveat for a session's
    /// server), a failed spawn's exit. Every profile must allow them unconditionally.
    public static let spawnCalls = ["sendmsg", "rt_sigprocmask", "execve", "execveat", "exit_group"]

    /// Compiles (or loads from `cacheDir`, keyed by the profile's bytes) the filter for `profileBytes`.
    public static func compile(profileBytes: [UInt8], file: String, cacheDir: String?) throws(CompileError) -> CompiledSeccomp {
        // The profile's hash is the one the policy hash already took (computed once per process).
        let key = SHA256.hex(Array("\(PolicyStore.profileHash(profileBytes))|notify|libseccomp-\(versionString)|format-4".utf8))
        let cachePath = cacheDir.map { "\($0)/\(key).bpf" }
        // A cached filter is trusted only in a root-owned directory no one else can write.
        if let cachePath, let bytes = FileSystem.readTrusted(cachePath), let cached = decode(bytes) { return cached }
        let profile: SeccompProfile
        do { profile = try SeccompProfile.parse(profileBytes, file: file) } catch {
            throw CompileError(message: error.description)
        }
        let compiled = try compile(profile, file: file)
        if let cacheDir, let cachePath {
            // A cache that cannot be written only costs the next spawn a compile.
            try? FileSystem.ensureDirectory(cacheDir, mode: 0o700)
            try? FileSystem.writeAtomically(cachePath, encode(compiled), mode: 0o600)
        }
        return compiled
    }

    public static func compile(_ profile: SeccompProfile, file: String) throws(CompileError) -> CompiledSeccomp {
        let rules: [SeccompProfile.FlatRule]
        do { rules = try profile.normalized() } catch { throw CompileError(message: "\(file): \(error.description)") }

        var errnoBySyscall: [Int32: Int32] = [:]
        let (defaultAction, defaultErrno) = action(profile.defaultAction)
        guard let ctx = seccomp_init(defaultAction) else { throw CompileError(message: "seccomp_init failed") }
        defer { seccomp_release(ctx) }
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, actKillProcess)
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for arch in profile.architectures {
            let token = seccomp_arch_resolve_name(arch.replacingPrefix("SCMP_ARCH_", with: "").lowercased())
            guard token != 0 else { throw CompileError(message: "\(file): unknown architecture \"\(arch)\"") }
            if token == seccomp_arch_native() { continue }
            let r = seccomp_arch_add(ctx, token)
            if r != 0 && r != -EEXIST { throw CompileError(message: "\(file): adding architecture \(arch): \(SystemError.text(-r))") }
        }
        func add(_ name: String, _ act: UInt32, _ args: [scmp_arg_cmp]) throws(CompileError) {
            var args = args
            let r = args.withUnsafeMutableBufferPointer { buf in
                seccomp_rule_add_array(ctx, act, seccomp_syscall_resolve_name(name), UInt32(buf.count), buf.baseAddress)
            }
            if r != 0 { throw CompileError(message: "\(file): rule for \(name): \(SystemError.text(-r))") }
        }
        var unconditionallyAllowed = Set<String>()
        for rule in rules {
            let nr = seccomp_syscall_resolve_name(rule.name)
            if nr == __NR_SCMP_ERROR { throw CompileError(message: "\(file): unknown syscall \"\(rule.name)\"") }
            if nr < 0 { continue }  // exists only on other architectures
            let (act, err) = action(rule.action)
            if let err, rule.action != .allow { errnoBySyscall[nr] = err }
            if rule.action == .allow && rule.args.isEmpty && (Self.modeArgument[rule.name] != nil || rule.name == "openat2") {
                unconditionallyAllowed.insert(rule.name)
                continue  // allowed below, without the bits no sandbox may set
            }
            if act == defaultAction { continue }  // libseccomp refuses rules that repeat the default
            var args = rule.args.map { arg in
                scmp_arg_cmp(arg: arg.index, op: op(arg.op), datum_a: arg.value, datum_b: arg.valueTwo)
            }
            // A conditional allow (or log) of a mode-taking call carries the guard below as one
            // more condition: otherwise a mode matching the profile's condition would pass with
            // the bits.
            if let index = Self.modeArgument[rule.name], rule.action == .allow || rule.action == .log {
                if rule.args.contains(where: { $0.index == index }) {
                    throw CompileError(message: "\(file): \(rule.name): a condition on argument \(index) (the file mode) cannot be combined with the rule that refuses setuid and setgid bits; allow \(rule.name) without it")
                }
                args.append(scmp_arg_cmp(arg: index, op: SCMP_CMP_MASKED_EQ, datum_a: UInt64(S_ISUID | S_ISGID), datum_b: 0))
            }
            try add(rule.name, act, args)
        }
        // Whatever the profile says, no file gets a setuid or setgid bit from a sandbox: through
        // an idmapped writable bind it would belong to the bind's host owner (root, for a
        // root-owned directory) and run as them from the host. The mode argument is a value, so
        // the filter sees it; openat2's is in a struct it cannot read, so openat2 answers ENOSYS
        // (callers fall back to openat).
        let special: UInt64 = UInt64(S_ISUID | S_ISGID)
        for (name, index) in Self.modeArgument.sorted(by: { $0.key < $1.key }) {
            let nr = seccomp_syscall_resolve_name(name)
            if nr < 0 { continue }
            let allowed = unconditionallyAllowed.contains(name)
            if !allowed && defaultAction != actAllow { continue }  // refused or conditioned by the profile already
            if allowed && defaultAction != actAllow {
                try add(name, actAllow, [scmp_arg_cmp(arg: index, op: SCMP_CMP_MASKED_EQ, datum_a: special, datum_b: 0)])
            }
            // What the allow rule leaves out reaches the default action; unless that already is a
            // notification, the two bits get one of their own (logged, answered EPERM).
            for bit in [UInt64(S_ISUID), UInt64(S_ISGID)] where defaultAction != actNotify {
                try add(name, actNotify, [scmp_arg_cmp(arg: index, op: SCMP_CMP_MASKED_EQ, datum_a: bit, datum_b: bit)])
            }
            errnoBySyscall[nr] = EPERM
        }
        if unconditionallyAllowed.contains("openat2") || defaultAction == actAllow {
            try add("openat2", actErrno(enosys), [])
        }
        let compiled = CompiledSeccomp(bpf: try export(ctx), errnoBySyscall: errnoBySyscall, defaultErrno: defaultErrno ?? 1,
                                       usesNotification: true)
        // Between installing the filter and the program's start the spawn makes these calls
        // under it, before the supervisor answers its notifications (it reads the report
        // channel until execve closes it): refused, or decided by an argument, any of them
        // would leave the sandbox waiting for an answer that never comes.
        let missing = Self.spawnCalls.filter { !compiled.allowsUnconditionally(seccomp_syscall_resolve_name($0)) }
        if !missing.isEmpty {
            let list = missing.count == 1 ? missing[0] : missing.dropLast().joined(separator: ", ") + " and " + missing.last!
            throw CompileError(message: "\(file): \(list) must be allowed without conditions (between installing the filter and starting the program the sandbox makes \(Self.spawnCalls.joined(separator: ", ")) under it, before anyone answers its notifications): add \(missing.count == 1 ? "it" : "them") to a rule with action SCMP_ACT_ALLOW and no args")
        }
        return compiled
    }

    /// The filter of `cordon run --learn`: every call on the native architecture reaches the
    /// supervisor as a user notification (answered "continue") except sendmsg, which carries the
    /// listener to the supervisor before anyone can answer. Other architectures are killed, as
    /// in every profile.
    public static func learningFilter() throws(CompileError) -> [UInt8] {
        guard let ctx = seccomp_init(actNotify) else { throw CompileError(message: "seccomp_init failed") }
        defer { seccomp_release(ctx) }
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, actKillProcess)
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        let r = seccomp_rule_add_array(ctx, actAllow, seccomp_syscall_resolve_name("sendmsg"), 0, nil)
        guard r == 0 else { throw CompileError(message: "learning filter: \(SystemError.text(-r))") }
        return try export(ctx)
    }

    /// The BPF program of a libseccomp context (2.5.4 can only export to a file: a memfd).
    static func export(_ ctx: scmp_filter_ctx) throws(CompileError) -> [UInt8] {
        let fd = cl_memfd("cordon-seccomp")
        guard fd >= 0 else { throw CompileError(message: "memfd_create: \(SystemError.text(errno))") }
        defer { close(fd) }
        let r = seccomp_export_bpf(ctx, fd)
        guard r == 0 else { throw CompileError(message: "seccomp_export_bpf: \(SystemError.text(-r))") }
        let size = lseek(fd, 0, SEEK_END)
        lseek(fd, 0, SEEK_SET)
        var bpf = [UInt8](repeating: 0, count: Int(size))
        let n = bpf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n == size, size % 8 == 0, size > 0 else { throw CompileError(message: "seccomp_export_bpf produced \(size) bytes") }
        return bpf
    }

    /// libseccomp action for a profile action. Refusals (errno other than ENOSYS) become a user
    /// notification, answered by the supervisor with that errno after logging the call.
    static func action(_ a: SeccompProfile.Action) -> (UInt32, Int32?) {
        switch a {
        case .allow: return (actAllow, nil)
        case .errno(let e) where e == enosys: return (actErrno(e), nil)
        case .errno(let e): return (actNotify, e)
        case .killProcess: return (actKillProcess, nil)
        case .killThread: return (actKillThread, nil)
        case .trap: return (actTrap, nil)
        case .log: return (actLog, nil)
        }
    }

    static func op(_ o: SeccompProfile.Op) -> scmp_compare {
        switch o {
        case .ne: return SCMP_CMP_NE
        case .lt: return SCMP_CMP_LT
        case .le: return SCMP_CMP_LE
        case .eq: return SCMP_CMP_EQ
        case .ge: return SCMP_CMP_GE
        case .gt: return SCMP_CMP_GT
        case .maskedEq: return SCMP_CMP_MASKED_EQ
        }
    }

    public static var versionString: String {
        guard let v = seccomp_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)"
    }

    /// The syscall's name on the native architecture ("nr 451" when libseccomp does not know it).
    public static func syscallName(_ nr: Int32) -> String {
        guard let name = seccomp_syscall_resolve_num_arch(seccomp_arch_native(), nr) else { return "nr \(nr)" }
        defer { free(name) }
        return String(cString: name)
    }

    // Cache file: "cordon-seccomp 1\n" "default E\n" ("errno NR E\n")* "bpf N\n" + N bytes.
    static func encode(_ c: CompiledSeccomp) -> [UInt8] {
        var text = "cordon-seccomp 1\ndefault \(c.defaultErrno)\n"
        for (nr, e) in c.errnoBySyscall.sorted(by: { $0.key < $1.key }) { text += "errno \(nr) \(e)\n" }
        text += "bpf \(c.bpf.count)\n"
        return Array(text.utf8) + c.bpf
    }

    static func decode(_ bytes: [UInt8]) -> CompiledSeccomp? {
        var result = CompiledSeccomp(bpf: [], errnoBySyscall: [:], defaultErrno: 1, usesNotification: true)
        var offset = 0
        var first = true
        while offset < bytes.count {
            guard let nl = bytes[offset...].firstIndex(of: 10) else { return nil }
            let line = String(decoding: bytes[offset..<nl], as: UTF8.self)
            offset = nl + 1
            let parts = line.split(separator: " ")
            if first { guard line == "cordon-seccomp 1" else { return nil }; first = false; continue }
            switch parts.first {
            case "default": guard parts.count == 2, let e = Int32(parts[1]) else { return nil }; result.defaultErrno = e
            case "errno":
                guard parts.count == 3, let nr = Int32(parts[1]), let e = Int32(parts[2]) else { return nil }
                result.errnoBySyscall[nr] = e
            case "bpf":
                guard parts.count == 2, let n = Int(parts[1]), n > 0, n % 8 == 0, bytes.count - offset == n else { return nil }
                result.bpf = Array(bytes[offset...])
                return result
            default: return nil
            }
        }
        return nil
    }
}

extension String {
    func replacingPrefix(_ prefix: String, with replacement: String) -> String {
        hasPrefix(prefix) ? replacement + dropFirst(prefix.count) : self
    }
}
