/// The range of every numeric policy key. The parser refuses a value outside it with the key, the
/// value and the range; the JSON Schema and docs/policies.md state the same bounds. Inside them
/// every value converts without loss to what enforces it (a cgroup file, an rlimit, a tmpfs
/// option, the supervisor's clock) and back to the text `policy explain` prints.
public enum PolicyRange {
    /// 1024T (2^50 bytes). Sizes are read as Double ("1.5G"), exact up to 2^53; cgroups,
    /// rlimits and tmpfs take any 64-bit count, and no host has a petabyte to give.
    public static let maxBytes: UInt64 = 1 << 50

    /// `limits.memory`: below a megabyte the sandbox's init cannot start (and cordond's
    /// `task.submit` refuses less).
    public static let memory: ClosedRange<UInt64> = 1 << 20 ... maxBytes
    /// `filesystem.workdir_size` and a tmpfs `size`: at least a page, since tmpfs reads
    /// `size=0` as "unlimited".
    public static let mountSize: ClosedRange<UInt64> = 4096 ... maxBytes
    /// `limits.file_size` and `limits.output`: zero forbids writing files or printing anything.
    public static let bytes: ClosedRange<UInt64> = 0 ... maxBytes

    /// `limits.wall_time` and `limits.cpu_time`, in seconds: 1ms to 365 days.
    public static let duration: ClosedRange<Double> = 0.001 ... 31_536_000
    /// How `duration` reads in a message, in units a policy can spell.
    static let durationText = "1ms...8760h (365 days)"
    /// `limits.cpu`, in cores: the kernel's smallest CFS quota (1ms per 100ms period) up to 4096.
    public static let cpu: ClosedRange<Double> = 0.01 ... 4096
    /// `limits.pids`: the kernel's PID_MAX_LIMIT.
    public static let pids: ClosedRange<Int64> = 1 ... 4_194_304
    /// Sandboxes cordond keeps warm for a policy (`daemon.warm`).
    public static let warm: ClosedRange<Int64> = 0 ... 64
    /// `limits.open_files`: stdin, stdout and stderr, up to the default `fs.nr_open`.
    public static let openFiles: ClosedRange<Int64> = 3 ... 1_048_576
    /// `install.min_release_age`, in seconds: none (0) up to 365 days.
    public static let releaseAge: ClosedRange<Double> = 0 ... 31_536_000
    /// `process.user` and `process.group`: the ids the user namespace maps.
    public static let id: ClosedRange<Int64> = 0 ... 65535
    /// A tmpfs `mode` (octal string): permission bits with setuid, setgid and sticky.
    public static let mode: ClosedRange<UInt32> = 0 ... 0o7777

    /// `seconds` to the nearest microsecond, the finest unit `Units.formatDuration` prints, so an
    /// explained policy parses back to the same values. Idempotent over `duration`.
    public static func quantize(seconds: Double) -> Double {
        (seconds * 1e6).rounded() / 1e6
    }
}
