/// The profile Cordon actually compiles.
///
/// libseccomp lets an unconditional rule swallow every conditional rule of the same syscall, so
/// the OCI idiom "allow ioctl, but refuse TIOCSTI" would silently allow TIOCSTI. Cordon's rule is
/// the opposite and documented: a deny always wins. `normalized()` rewrites such an unconditional
/// allow into the exact complement of the denied argument values, expressed as masked-equality
/// rules libseccomp can compile. Supported deny form: one EQ or MASKED_EQ comparison per rule, all
/// on the same argument index and mask (what TIOCSTI/TIOCLINUX-style rules need); anything else is
/// an error naming the syscall rather than a filter that does not mean what it says.
extension SeccompProfile {
    public struct NormalizeError: Error, Sendable, Equatable, CustomStringConvertible {
        public var syscall: String
        public var message: String
        public var description: String { "seccomp rule for \(syscall): \(message)" }
    }

    /// One compiled-to-be rule: a single syscall, an action, its comparisons.
    public struct FlatRule: Sendable, Equatable, Hashable {
        public var name: String
        public var action: Action
        public var args: [Arg]
    }

    public func normalized() throws(NormalizeError) -> [FlatRule] {
        var order: [String] = []
        var bySyscall: [String: [FlatRule]] = [:]
        for rule in rules {
            for name in rule.names {
                if bySyscall[name] == nil { order.append(name) }
                bySyscall[name, default: []].append(FlatRule(name: name, action: rule.action, args: rule.args))
            }
        }
        var out: [FlatRule] = []
        for name in order {
            var flat = bySyscall[name]!
            // Drop exact duplicates, keep order.
            var seen = Set<FlatRule>()
            flat = flat.filter { seen.insert($0).inserted }
            let unconditionalAllow = flat.contains { $0.action == .allow && $0.args.isEmpty }
            let denies = flat.filter { $0.action != .allow }
            if unconditionalAllow && !denies.isEmpty {
                out.append(contentsOf: try Self.complement(name: name, denies: denies))
                out.append(contentsOf: denies)
            } else if unconditionalAllow {
                out.append(FlatRule(name: name, action: .allow, args: []))
            } else {
                out.append(contentsOf: flat)
            }
        }
        return out
    }

    static func complement(name: String, denies: [FlatRule]) throws(NormalizeError) -> [FlatRule] {
        var index: UInt32?
        var mask: UInt64?
        var excluded = Set<UInt64>()
        for deny in denies {
            guard deny.args.count == 1, let arg = deny.args.first else {
                throw NormalizeError(syscall: name, message: "a deny rule next to an unconditional allow must compare exactly one argument")
            }
            let (m, v): (UInt64, UInt64)
            switch arg.op {
            case .eq: (m, v) = (~0, arg.value)
            case .maskedEq: (m, v) = (arg.value, arg.valueTwo & arg.value)
            default:
                throw NormalizeError(syscall: name, message: "a deny rule next to an unconditional allow must use SCMP_CMP_EQ or SCMP_CMP_MASKED_EQ, not \(arg.op.rawValue)")
            }
            if let i = index, i != arg.index { throw NormalizeError(syscall: name, message: "deny rules compare different arguments") }
            if let known = mask, known != m { throw NormalizeError(syscall: name, message: "deny rules use different masks") }
            guard m != 0 else { throw NormalizeError(syscall: name, message: "a zero mask denies every call; deny the syscall instead") }
            index = arg.index
            mask = m
            excluded.insert(v)
        }
        guard let index, let mask else { return [] }
        // Walk the mask's bits from the most significant. At each bit, a branch no excluded
        // value takes is allowed wholesale: one MASKED_EQ on the bits decided so far.
        let bits = (0..<64).reversed().filter { mask & (1 << UInt64($0)) != 0 }
        var result: [FlatRule] = []
        func walk(_ depth: Int, _ prefixMask: UInt64, _ prefix: UInt64, _ candidates: [UInt64]) {
            guard depth < bits.count else { return }
            let bit: UInt64 = 1 << UInt64(bits[depth])
            let m = prefixMask | bit
            for side in [UInt64(0), bit] {
                let value = prefix | side
                let rest = candidates.filter { $0 & bit == side }
                if rest.isEmpty {
                    result.append(FlatRule(name: name, action: .allow,
                                           args: [Arg(index: index, value: m, valueTwo: value, op: .maskedEq)]))
                } else {
                    walk(depth + 1, m, value, rest)
                }
            }
        }
        walk(0, 0, 0, excluded.sorted())
        return result
    }
}
