import CLinux

/// Landlock access rights (linux/landlock.h), by the ABI version that introduced them.
public enum Landlock {
    public struct FS: OptionSet, Sendable, Hashable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let execute = FS(rawValue: 1 << 0)
        public static let writeFile = FS(rawValue: 1 << 1)
        public static let readFile = FS(rawValue: 1 << 2)
        public static let readDir = FS(rawValue: 1 << 3)
        public static let removeDir = FS(rawValue: 1 << 4)
        public static let removeFile = FS(rawValue: 1 << 5)
        public static let makeChar = FS(rawValue: 1 << 6)
        public static let makeDir = FS(rawValue: 1 << 7)
        public static let makeReg = FS(rawValue: 1 << 8)
        public static let makeSock = FS(rawValue: 1 << 9)
        public static let makeFifo = FS(rawValue: 1 << 10)
        public static let makeBlock = FS(rawValue: 1 << 11)
        public static let makeSym = FS(rawValue: 1 << 12)
        public static let refer = FS(rawValue: 1 << 13)      // ABI 2
        public static let truncate = FS(rawValue: 1 << 14)   // ABI 3
        public static let ioctlDev = FS(rawValue: 1 << 15)   // ABI 5

        /// Everything the kernel of `abi` can mediate.
        public static func handled(abi: Int) -> FS {
            var all = FS(rawValue: (1 << 13) - 1)
            if abi >= 2 { all.insert(.refer) }
            if abi >= 3 { all.insert(.truncate) }
            if abi >= 5 { all.insert(.ioctlDev) }
            return all
        }

        public static let readOnly: FS = [.execute, .readFile, .readDir]
        /// The rights that apply to a file (a rule for a file with any other right is refused).
        public static let fileRights: FS = [.execute, .writeFile, .readFile, .truncate, .ioctlDev]
    }

    public static let scopeAbstractUnixSocket: UInt64 = 1 << 0  // ABI 6
    public static let scopeSignal: UInt64 = 1 << 1              // ABI 6

    /// The running kernel's Landlock ABI, 0 when Landlock is unavailable or disabled.
    public static let abi: Int = {
        let v = cl_landlock_abi()
        return v < 0 ? 0 : Int(v)
    }()

    /// Creates a ruleset that handles every filesystem right of `abi` and, from ABI 6, scopes
    /// signals and abstract unix sockets to the sandbox. The corresponding C function is `landlock_create_ruleset`.
    public static func createRuleset(abi: Int) throws(SystemError) -> Descriptor {
        let scoped: UInt64 = abi >= 6 ? (scopeAbstractUnixSocket | scopeSignal) : 0
        return Descriptor(adopting: try syscallRetrying("landlock_create_ruleset") {
            cl_landlock_create_ruleset(FS.handled(abi: abi).rawValue, 0, scoped)
        })
    }
}
