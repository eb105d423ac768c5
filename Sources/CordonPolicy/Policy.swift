/// A sandbox policy: what a workload may see and do. Parsed from TOML by `PolicyParser`; turned
/// into a spawn plan by CordonSandbox. Pure values, no I/O.
public struct Policy: Sendable, Equatable {
    public var name: String
    public var description: String = ""
    /// The policies and profiles this one builds on, as written (see `PolicyMerge` for the rules).
    public var extends: [String] = []
    /// Where the policy came from (a file path or "embedded:NAME").
    public var source: String
    /// SHA-256 of the policy file's bytes; for a policy that extends others, of its explanation
    /// (the effective values and the file each came from).
    public var contentHash: String = ""
    public var filesystem = Filesystem()
    public var process = Process()
    public var limits = Limits()
    public var seccomp = Seccomp()
    public var capabilities = Capabilities()
    public var network = Network()
    public var landlock = LandlockSettings()
    public var access = Access()
    public var workspace = Workspace()
    public var daemon = Daemon()
    public var install = Install()

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    /// A host path made visible inside the sandbox.
    public struct Bind: Sendable, Equatable {
        /// Path inside the sandbox.
        public var path: String
        /// Path on the host (defaults to `path`).
        public var source: String
        /// A missing source is skipped instead of failing the spawn.
        public var optional: Bool
        /// read_write only: the host user and group that own what the sandbox writes there (the
        /// bind is idmapped so that they are the sandbox's user inside). nil: the source's owner.
        public var owner: Owner?

        public init(path: String, source: String? = nil, optional: Bool = false, owner: Owner? = nil) {
            self.path = path
            self.source = source ?? path
            self.optional = optional
            self.owner = owner
        }
    }

    /// A host uid and gid, written "uid:gid" in a policy.
    public struct Owner: Sendable, Hashable, CustomStringConvertible {
        public var uid: UInt32
        public var gid: UInt32
        public init(uid: UInt32, gid: UInt32) {
            self.uid = uid
            self.gid = gid
        }

        /// "1000:1000"; nil for anything else (names are not looked up: the host's user database
        /// is not the policy's business, and ids are what the kernel compares).
        public init?(parsing text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let u = Self.id(parts[0]), let g = Self.id(parts[1]) else { return nil }
            uid = u
            gid = g
        }

        /// A decimal id below 4294967295 (the kernel's "no id"), without sign or leading zeros.
        private static func id(_ s: Substring) -> UInt32? {
            guard !s.isEmpty, s.count <= 10, s.allSatisfy({ $0 >= "0" && $0 <= "9" }), s == "0" || !s.hasPrefix("0"),
                  let v = UInt32(s), v != UInt32.max else { return nil }
            return v
        }

        public var description: String { "\(uid):\(gid)" }
    }

    public struct Tmpfs: Sendable, Equatable {
        public var path: String
        public var sizeBytes: UInt64
        public var mode: UInt32
        public init(path: String, sizeBytes: UInt64 = 64 << 20, mode: UInt32 = 0o1777) {
            self.path = path
            self.sizeBytes = sizeBytes
            self.mode = mode
        }
    }

    public struct Filesystem: Sendable, Equatable {
        public var readOnly: [Bind] = []
        public var readWrite: [Bind] = []
        public var tmpfs: [Tmpfs] = []
        /// A writable scratch directory (tmpfs) owned by the workload's user; the default cwd.
        public var workdir: String = "/work"
        public var workdirSizeBytes: UInt64 = 256 << 20
        /// Paths masked inside the sandbox (an empty directory or /dev/null over them).
        public var hide: [String] = []
        /// The root's lower layer: an OCI image layout (a directory or its tar) or a `docker
        /// save` archive on the host, and the image of it to use. cordond unpacks and scans it
        /// once (in a sandbox) and mounts it read-only; see docs/daemon.md, "Images as roots".
        public var image: ImageSource?
        /// Images whose scan finds something this severe or worse are refused.
        public var imageFailOn: ImageGate = .high
        public init() {}
    }

    /// `filesystem.image = "PATH[:REF]"`: an absolute host path, and a reference (an OCI index's
    /// `org.opencontainers.image.ref.name`, or one of a `docker save` image's tags) when the
    /// archive holds more than one image.
    public struct ImageSource: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var ref: String?
        public init(path: String, ref: String? = nil) {
            self.path = path
            self.ref = ref
        }

        /// The path up to the first ':', the reference after it (a tag may hold ':' itself).
        public init?(parsing text: String) {
            if let colon = text.firstIndex(of: ":") {
                let ref = String(text[text.index(after: colon)...])
                guard !ref.isEmpty else { return nil }
                self.init(path: String(text[..<colon]), ref: ref)
            } else {
                self.init(path: text)
            }
        }

        public var description: String { ref.map { "\(path):\($0)" } ?? path }
    }

    /// `filesystem.image_fail_on`: the least severe scan result that refuses an image, or never.
    public enum ImageGate: String, Sendable, Equatable, CaseIterable {
        case low, medium, high, critical, never

        /// Whether a scan whose worst result is `worst` (low … critical; nil: nothing found)
        /// refuses the image.
        public func refuses(_ worst: String?) -> Bool {
            let order = ["low", "medium", "high", "critical"]
            guard self != .never, let worst, let w = order.firstIndex(of: worst), let g = order.firstIndex(of: rawValue) else { return false }
            return w >= g
        }
    }

    public struct Process: Sendable, Equatable {
        /// uid and gid inside the user namespace (never mapped to a privileged host id).
        public var uid: UInt32 = 1000
        public var gid: UInt32 = 1000
        public var hostname: String = "cordon"
        /// The environment, in order. Nothing from the caller's environment leaks in.
        public var env: [EnvVar] = []
        /// Caller's variables copied in by name (e.g. TERM).
        public var passEnv: [String] = []
        public var cwd: String? = nil
        public init() {}
    }

    public struct EnvVar: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public struct Limits: Sendable, Equatable {
        public var memoryBytes: UInt64? = nil
        public var pids: Int? = nil
        public var cpuCores: Double? = nil
        public var wallTimeSeconds: Double? = nil
        public var cpuTimeSeconds: Double? = nil
        public var openFiles: UInt64? = nil
        public var fileSizeBytes: UInt64? = nil
        public var outputBytes: UInt64? = nil
        public init() {}
    }

    public struct Seccomp: Sendable, Equatable {
        /// A profile name (profiles/seccomp/NAME.json) or a path to an OCI seccomp JSON file.
        public var profile: String = "default"
        /// What a call the profile refuses (with an errno) does to the sandbox.
        public var action: SeccompViolationAction = .errno
        public init() {}
    }

    public enum SeccompViolationAction: String, Sendable, Equatable, CaseIterable {
        /// The call fails with the profile's errno and is reported (the default).
        case errno
        /// The whole sandbox is killed at the first refused call, which is reported.
        case kill
        /// The call runs and is reported: an audit mode for developing a profile, not a sandbox.
        case log
    }

    /// Who may use the policy through the daemon (besides its admins). Not inherited.
    public struct Access: Sendable, Equatable {
        /// User names or numeric uids.
        public var users: [String] = []
        /// Group names or numeric gids (a member through any of its groups qualifies).
        public var groups: [String] = []
        public init() {}
    }

    /// How cordond serves the policy's tasks (docs/daemon.md, "Warm sandboxes").
    public struct Daemon: Sendable, Equatable {
        /// Sandboxes of this policy cordond keeps built and parked before the workload's
        /// execve, each for one task (0: none; inherited, a child's value replaces it).
        public var warm = 0
        public init() {}
    }

    /// The install gate (`cordon install`, docs/install.md): where packages come from and what
    /// refuses them before anything is installed. It shapes no sandbox of this policy's own;
    /// it governs the sets installed under it. Inherited key by key: a child's value replaces a
    /// scalar, and lists append (so a child can widen `allow` or loosen a threshold, which
    /// `cordon policy diff` shows).
    public struct Install: Sendable, Equatable {
        /// The package index's simple API (PEP 691 JSON, PEP 503 HTML).
        public var index = ServiceURL(scheme: "https", host: "pypi.org", port: 443, path: "/simple")
        /// Further hosts ("host:port") the index serves files from, besides its own
        /// (pypi.org's files are on files.pythonhosted.org:443, added for it by `hosts`).
        public var indexHosts: [String] = []
        /// Files uploaded less than this long ago are refused (0: no age is required).
        public var minReleaseAgeSeconds: Double = 0
        /// Every requested file must come with a hash (a lock's, or `--hash`).
        public var requireHashes = false
        /// The least severe known vulnerability that refuses a package (PyPA advisories).
        public var denyVulnerabilitySeverity = ImageGate.high
        /// The least severe scanner finding (the heuristics) that refuses a package.
        public var denyFindingSeverity = ImageGate.high
        /// PEP 503-normalized names that may be installed; empty: any name.
        public var allow: [String] = []
        /// PEP 503-normalized names that are never installed (deny wins over allow).
        public var deny: [String] = []
        /// A name one edit from a popular one: refused, whatever its finding's severity, or warned.
        public var typosquats = TyposquatRule.refuse
        /// A release with no wheel: built in the no-network build sandbox, or refused.
        public var sdists = SdistRule.build
        /// PEP 503-normalized names ("*": every package) that must carry a verified PEP 740
        /// attestation.
        public var requireProvenance: [String] = []
        /// A yanked file (PEP 592): refused, or installed when the request pins it exactly.
        public var yanked = YankedRule.refuse
        /// Refusals of the judgement rules (a likely typosquat, a heuristic finding, an advisory)
        /// that the policy's author has looked at and accepts for one package, each with why.
        public var accept: [Acceptance] = []
        public init() {}

        /// The hosts ("host:port") the resolver and the downloader may reach: the index's, and
        /// for pypi.org the files host, and `indexHosts`.
        public var hosts: [String] {
            var out = ["\(index.host.contains(":") ? "[\(index.host)]" : index.host):\(index.port)"]
            if index.host == "pypi.org" && index.port == 443 { out.append("files.pythonhosted.org:443") }
            for host in indexHosts where !out.contains(host) { out.append(host) }
            return out
        }

        /// Whether `name` (PEP 503-normalized) must have a verified attestation.
        public func requiresProvenance(_ name: String) -> Bool {
            requireProvenance.contains("*") || requireProvenance.contains(name)
        }
    }

    /// One accepted refusal (`install.accept`): the gate lets the file through with a warning
    /// that names the entry and its reason. Only the rules that are judgements can be accepted;
    /// the integrity checks (hashes, identity, the whole set), allow/deny, age, yanks, sdists,
    /// provenance and the standard-library check cannot.
    public struct Acceptance: Sendable, Equatable {
        /// The rule, by the key its refusals name.
        public enum Rule: String, Sendable, Equatable, CaseIterable {
            case typosquats = "install.typosquats"
            case finding = "install.deny_finding_severity"
            case vulnerability = "install.deny_vulnerability_severity"
        }
        public var rule: Rule
        /// PEP 503-normalized.
        public var package: String
        /// The release it holds for (nil: every release; only for `install.typosquats`, a
        /// property of the name): a new release is judged afresh.
        public var version: String?
        /// `install.deny_finding_severity`: the heuristic's rule ("credential-access"), and the
        /// file in the package it was found in (nil: any file of the package).
        public var finding: String?
        public var file: String?
        /// `install.deny_vulnerability_severity`: the advisory's id.
        public var advisory: String?
        /// Why it is accepted, kept in every record it lets a file through.
        public var reason: String
        /// The longest reason, and the longest file path (the check names a file by at most 300
        /// characters; one of that length may have been cut), in characters.
        public static let maxReason = 300
        public static let maxFile = 299
        /// Findings that report the archive itself, not its code: never accepted.
        public static let integrityFindings: Set<String> = ["record", "unreadable-archive"]
        /// Findings that say code was not read: accepted only for the file named.
        public static let unreadFindings: Set<String> = ["unscanned-code", "sourceless-module", "pth-unreadable"]
        public init(rule: Rule, package: String, version: String? = nil, finding: String? = nil, file: String? = nil,
                    advisory: String? = nil, reason: String) {
            self.rule = rule
            self.package = package
            self.version = version
            self.finding = finding
            self.file = file
            self.advisory = advisory
            self.reason = reason
        }
    }

    public enum TyposquatRule: String, Sendable, Equatable, CaseIterable { case refuse, warn }
    public enum SdistRule: String, Sendable, Equatable, CaseIterable { case build, refuse }
    public enum YankedRule: String, Sendable, Equatable, CaseIterable {
        case refuse
        case allowPinned = "allow-pinned"
    }

    /// Where a daemon task's caller may bind a directory of their own as the sandbox's
    /// workspace. Inherited, entries appended, like `network.allow`.
    public struct Workspace: Sendable, Equatable {
        /// Directories under which (or at which) a workspace may be: absolute, normalized, not
        /// `/` and not in /proc, /sys or /dev. Empty: this policy takes no workspace.
        public var allow: [String] = []
        public init() {}

        /// Whether `path` (absolute and normalized, as the kernel names an opened directory) is
        /// at or under an allowed directory, compared by whole components ("/srv/projects"
        /// allows "/srv/projects/a", never "/srv/projects-old").
        public func allows(_ path: String) -> Bool {
            allow.contains { path == $0 || path.hasPrefix($0 + "/") }
        }
    }

    public struct Capabilities: Sendable, Equatable {
        /// Capability names the workload keeps (CAP_NET_BIND_SERVICE, …). Empty by default.
        public var keep: [String] = []
        public init() {}
    }

    public enum NetworkMode: String, Sendable, Equatable, CaseIterable {
        /// A network namespace with loopback only.
        case none
        /// Only the destinations in `allow` (enforced by the egress layer; until it exists, a
        /// sandbox with this mode is refused rather than run with a different network).
        case allowlist
    }

    public struct Network: Sendable, Equatable {
        public var mode: NetworkMode = .none
        /// Destinations as "HOST:PORT" (a DNS name, an IPv4 address or a bracketed IPv6 address).
        public var allow: [String] = []
        public init() {}
    }

    public enum LandlockMode: String, Sendable, Equatable, CaseIterable {
        /// Use what the kernel supports; report the ABI used (the default).
        case bestEffort = "best-effort"
        /// Refuse to run without Landlock.
        case required
        case off
    }

    public struct LandlockSettings: Sendable, Equatable {
        public var mode: LandlockMode = .bestEffort
        public init() {}
    }
}
