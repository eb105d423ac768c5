import CordonJSON

/// A seccomp profile in the OCI runtime-spec / Docker JSON format, and the normalisation Cordon
/// applies before compiling it (see `normalized()`). Pure: no libseccomp here.
public struct SeccompProfile: Sendable, Equatable {
    public enum Action: Sendable, Equatable, Hashable {
        case allow
        case errno(Int32)
        case killProcess
        case killThread
        case trap
        case log
    }

    public enum Op: String, Sendable, Equatable, Hashable {
        case ne = "SCMP_CMP_NE", lt = "SCMP_CMP_LT", le = "SCMP_CMP_LE", eq = "SCMP_CMP_EQ"
        case ge = "SCMP_CMP_GE", gt = "SCMP_CMP_GT", maskedEq = "SCMP_CMP_MASKED_EQ"
    }

    /// One argument comparison. For `maskedEq`, `value` is the mask and `valueTwo` the datum
    /// (runc's convention).
    public struct Arg: Sendable, Equatable, Hashable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64
        public var op: Op
        public init(index: UInt32, value: UInt64, valueTwo: UInt64 = 0, op: Op) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    public struct Rule: Sendable, Equatable {
        public var names: [String]
        public var action: Action
        public var args: [Arg]
        public init(names: [String], action: Action, args: [Arg] = []) {
            self.names = names
            self.action = action
            self.args = args
        }
    }

    public var defaultAction: Action
    public var architectures: [String]
    public var rules: [Rule]

    public init(defaultAction: Action, architectures: [String] = [], rules: [Rule]) {
        self.defaultAction = defaultAction
        self.architectures = architectures
        self.rules = rules
    }

    /// A problem in a profile file, with the JSON path of the offending value.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var path: String
        public var message: String
        public var description: String { path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)" }
    }

    /// RFC 8259, and a leading byte order mark skipped (Foundation's decoder, which read
    /// profiles before, skipped it too).
    static let jsonOptions = JSON.ParseOptions(skipsByteOrderMark: true)

    /// A key repeated in the objects Cordon reads (the profile, a rule, an argument) is an
    /// error: runc takes the last value, and Cordon took the first before this parser, so such
    /// a profile meant different things to each.
    public static func parse(_ data: [UInt8], file: String) throws(ParseError) -> SeccompProfile {
        func fail(_ path: String, _ message: String) -> ParseError { ParseError(file: file, path: path, message: message) }
        let root: JSON
        do { root = try JSON.parse(data, options: jsonOptions) } catch { throw fail("", "not valid JSON: \(error)") }
        guard case .object = root else { throw fail("", "expected a JSON object") }
        let known = ["defaultAction", "defaultErrnoRet", "architectures", "syscalls", "flags", "listenerPath", "listenerMetadata", "archMap"]
        for key in root.keys where !known.contains(key) { throw fail(key, "unknown key") }
        if let key = root.repeatedKey { throw fail(key, "given more than once") }
        if root["listenerPath"] != nil { throw fail("listenerPath", "not supported: Cordon is the seccomp listener") }
        if case .array(let flags)? = root["flags"], !flags.isEmpty { throw fail("flags", "not supported: Cordon sets the filter flags") }

        let defaultErrno = try int32(root["defaultErrnoRet"], "defaultErrnoRet", fail) ?? 1
        guard case .string(let defaultName)? = root["defaultAction"] else { throw fail("defaultAction", "missing or not a string") }
        let defaultAction = try action(defaultName, errno: defaultErrno, "defaultAction", fail)

        var arches: [String] = []
        if let list = root["architectures"] {
            guard let names = list.stringArrayValue else { throw fail("architectures", "expected an array of strings") }
            arches = names
        }
        guard case .array(let syscalls)? = root["syscalls"] else { throw fail("syscalls", "missing or not an array") }
        var rules: [Rule] = []
        for (i, entry) in syscalls.enumerated() {
            let at = "syscalls[\(i)]"
            guard case .object = entry else { throw fail(at, "expected an object") }
            let rule = entry
            for key in rule.keys where !["names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes"].contains(key) {
                throw fail("\(at).\(key)", "unknown key")
            }
            if let key = rule.repeatedKey { throw fail("\(at).\(key)", "given more than once") }
            for key in ["includes", "excludes"] {
                if case .object(let cond)? = rule[key], !cond.isEmpty {
                    throw fail("\(at).\(key)", "conditional rules are not supported; write the rule for the policy at hand")
                }
            }
            var names: [String] = []
            if let list = rule["names"] {
                guard let n = list.stringArrayValue, !n.isEmpty else { throw fail("\(at).names", "expected a non-empty array of strings") }
                names = n
            } else if case .string(let name)? = rule["name"] {
                names = [name]
            } else {
                throw fail("\(at).names", "missing")
            }
            guard case .string(let actionName)? = rule["action"] else { throw fail("\(at).action", "missing or not a string") }
            let errno = try int32(rule["errnoRet"], "\(at).errnoRet", fail) ?? defaultErrno
            let act = try action(actionName, errno: errno, "\(at).action", fail)
            var args: [Arg] = []
            if let list = rule["args"] {
                guard case .array(let argList) = list else { throw fail("\(at).args", "expected an array") }
                var indexes = Set<UInt32>()
                for (j, a) in argList.enumerated() {
                    let ap = "\(at).args[\(j)]"
                    guard case .object = a else { throw fail(ap, "expected an object") }
                    let arg = a
                    for key in arg.keys where !["index", "value", "valueTwo", "op"].contains(key) {
                        throw fail("\(ap).\(key)", "unknown key")
                    }
                    if let key = arg.repeatedKey { throw fail("\(ap).\(key)", "given more than once") }
                    guard let index = try uint64(arg["index"], "\(ap).index", fail), index < 6 else {
                        throw fail("\(ap).index", "expected 0...5")
                    }
                    guard case .string(let opName)? = arg["op"], let op = Op(rawValue: opName) else {
                        throw fail("\(ap).op", "expected one of \(["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"].joined(separator: ", "))")
                    }
                    guard indexes.insert(UInt32(index)).inserted else {
                        throw fail(ap, "a second comparison on argument \(index) in one rule (libseccomp allows one per argument; write two rules)")
                    }
                    let value = try uint64(arg["value"], "\(ap).value", fail) ?? 0
                    let valueTwo = try uint64(arg["valueTwo"], "\(ap).valueTwo", fail) ?? 0
                    args.append(Arg(index: UInt32(index), value: value, valueTwo: valueTwo, op: op))
                }
            }
            rules.append(Rule(names: names, action: act, args: args))
        }
        return SeccompProfile(defaultAction: defaultAction, architectures: arches, rules: rules)
    }

    private static func action(_ name: String, errno: Int32, _ path: String, _ fail: (String, String) -> ParseError) throws(ParseError) -> Action {
        switch name {
        case "SCMP_ACT_ALLOW": return .allow
        case "SCMP_ACT_ERRNO": return .errno(errno)
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return .killThread
        case "SCMP_ACT_KILL_PROCESS": return .killProcess
        case "SCMP_ACT_TRAP": return .trap
        case "SCMP_ACT_LOG": return .log
        case "SCMP_ACT_NOTIFY": throw fail(path, "SCMP_ACT_NOTIFY is reserved: Cordon reports denials itself")
        case "SCMP_ACT_TRACE": throw fail(path, "SCMP_ACT_TRACE is not supported: there is no tracer")
        default: throw fail(path, "unknown action \"\(name)\"")
        }
    }

    /// A non-negative integer; written with a fraction or an exponent too (`1.0`, `1e2`), as
    /// Foundation's decoder, which read profiles before, took it.
    private static func uint64(_ value: JSON?, _ path: String, _ fail: (String, String) -> ParseError) throws(ParseError) -> UInt64? {
        switch value {
        case nil: return nil
        case .int(let n)? where n >= 0: return UInt64(n)
        case .uint(let n)?: return n
        case .double(let d)?: if let n = UInt64(exactly: d) { return n }
        default: break
        }
        throw fail(path, "expected a non-negative integer")
    }

    private static func int32(_ any: JSON?, _ path: String, _ fail: (String, String) -> ParseError) throws(ParseError) -> Int32? {
        guard let v = try uint64(any, path, fail) else { return nil }
        guard v > 0, v < 4096 else { throw fail(path, "expected an errno between 1 and 4095") }
        return Int32(v)
    }
}

extension JSON {
    /// An object's keys, each once, sorted: the order in which unknown keys are reported.
    var keys: [String] {
        guard case .object(let members) = self else { return [] }
        return Set(members.map(\.0)).sorted()
    }

    /// The first key of an object that a later member repeats.
    var repeatedKey: String? {
        guard case .object(let members) = self else { return nil }
        var seen = Set<String>()
        return members.first { !seen.insert($0.0).inserted }?.0
    }
}
