import CLinux
import CordonEgress
import CordonPolicy
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where the supervisor resolves the names a sandbox may reach. Supervisor configuration, never
/// policy: a policy cannot choose its own resolver.
public struct EgressSettings: Sendable {
    /// /etc/hosts-format file consulted before anything else (tests, air-gapped hosts).
    public var hostsFile: String?
    /// "IPv4:PORT" of a DNS server to ask instead of the host's resolver (getaddrinfo).
    public var upstream: String?
    /// Where allowed connections are dialled from (`EgressProxy.Configuration.upstreamNamespace`):
    /// nil, cordond's own network namespace; set for the worker of a local model server, whose
    /// one allowed destination is the server's loopback address inside the server's sandbox.
    public var upstreamNamespace: (@Sendable () -> NetworkNamespace?)?
    public init(hostsFile: String? = nil, upstream: String? = nil) {
        self.hostsFile = hostsFile
        self.upstream = upstream
    }
}

/// One decision of a sandbox's egress, as the run record carries it.
public struct EgressRecord: Codable, Sendable, Equatable {
    public var kind: EgressEvent.Kind
    public var verdict: EgressEvent.Verdict
    public var reason: String
    public var name: String?
    /// DNS: the question type and the addresses answered.
    public var queryType: String?
    public var answers: [String]?
    /// Connection: "ADDRESS:PORT" (the original destination, or what a CONNECT dialled).
    public var destination: String?
    public var bytesUp: UInt64?
    public var bytesDown: UInt64?
    public var durationSeconds: Double?

    init(_ e: EgressEvent) {
        kind = e.kind
        verdict = e.verdict
        reason = e.reason
        name = e.name
        if e.kind == .dns {
            queryType = e.queryType.map { "\($0)" }
            answers = e.answers.map(\.description)
        } else {
            destination = e.destination?.description
            bytesUp = e.bytesUp
            bytesDown = e.bytesDown
            durationSeconds = e.duration
        }
    }
}

extension Denial {
    /// An egress refusal, named as `RunSummary` names it.
    public init(_ record: EgressRecord) {
        switch record.kind {
        case .dns: self.init(kind: .lookup, what: record.name ?? "a malformed query", reason: record.reason)
        case .connection:
            let port = record.destination.flatMap { d in d.lastIndex(of: ":").map { String(d[d.index(after: $0)...]) } }
            let what = if let name = record.name, let port { "\(name):\(port)" } else { record.destination ?? "an unknown destination" }
            self.init(kind: .connection, what: what, reason: record.reason)
        }
    }

    init(_ e: EgressEvent) { self.init(EgressRecord(e)) }
}

extension SandboxResult {
    /// Every refusal of the run, each distinct one once: the syscalls, then egress.
    public var denials: [Denial] {
        var out = denied.map { Denial(kind: .syscall, what: $0.syscall) }
        for record in egress ?? [] where record.verdict == .denied {
            let d = Denial(record)
            if !out.contains(d) { out.append(d) }
        }
        return out
    }
}

/// The egress of one sandbox with `network.mode = "allowlist"`: in its network namespace, TCP to
/// any address is delivered locally and an sk_lookup BPF program hands every such connection
/// outside 127.0.0.0/8 to a listener the supervisor holds there; a DNS socket on 127.0.0.1:53 is
/// the resolver; UDP and ICMP have no route past loopback (cl_egress_netns_setup). The proxy
/// engine (CordonEgress) answers DNS for listed names only and lets a connection through only
/// when its destination and the name it presents agree with the policy, dialling from the
/// supervisor's own namespace.
final class EgressSession: Sendable {
    /// The proxy's port inside the sandbox (also usable as an explicit HTTP proxy).
    static let proxyPort: Int32 = 3128
    /// Records kept for the run record; further ones are counted.
    static let maxRecords = 512

    let proxy: EgressProxy
    let records = Records()
    /// Keeps the steering program attached to the sandbox's namespace; nil once closed.
    let link: Mutex<Descriptor?>

    final class Records: Sendable {
        let state = Mutex<(kept: [EgressRecord], omitted: Int)>(([], 0))
        func add(_ event: EgressEvent) {
            state.withLock { r in
                if r.kept.count < EgressSession.maxRecords { r.kept.append(EgressRecord(event)) } else { r.omitted += 1 }
            }
        }
    }

    struct SetupError: Error {
        var step: SetupStep
        var errno: Int32
        var message: String
    }

    init(pid: pid_t, rules: [String], settings: EgressSettings, onDenied: (@Sendable (Denial) -> Void)? = nil) throws(SetupError) {
        let allowlist: Allowlist
        switch Allowlist.parse(rules) {
        case .success(let a): allowlist = a
        case .failure(let e): throw SetupError(step: .egress, errno: EINVAL, message: e.description)
        }
        var upstream = Resolver.Upstream.system
        if let text = settings.upstream {
            guard let u = Resolver.Upstream.parse(text) else {
                throw SetupError(step: .egress, errno: EINVAL, message: "DNS upstream \"\(text)\" is not IPv4:PORT")
            }
            upstream = u
        }
        let resolver: Resolver
        do { resolver = try Resolver(hostsFile: settings.hostsFile, upstream: upstream) }
        catch { throw SetupError(step: .egress, errno: EINVAL, message: "resolver: \(error)") }

        let netnsFD = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
        guard netnsFD >= 0 else { throw SetupError(step: .egress, errno: errno, message: "open /proc/\(pid)/ns/net: \(SystemError.text(errno))") }
        let netns = Descriptor(adopting: netnsFD)
        var tcp: Int32 = -1, udp: Int32 = -1, link: Int32 = -1, step: Int32 = 0
        if cl_egress_netns_setup(netns.raw, Self.proxyPort, &tcp, &udp, &link, &step) != 0 {
            let e = errno
            let what = ["", "entering the sandbox's network namespace", "bringing up loopback",
                        "setting the congestion control", "adding the TCP routing rule",
                        "adding the TCP local route", "listening on 127.0.0.1:\(Self.proxyPort)", "binding 127.0.0.1:53",
                        "creating the listener's sockmap", "loading the sk_lookup program", "attaching the sk_lookup program"]
            let name = Int(step) < what.count ? what[Int(step)] : "step \(step)"
            throw SetupError(step: .egress, errno: e, message: "egress: \(name): \(SystemError.text(e))")
        }
        // A failed init closes the link with the rest of what it set up.
        self.link = Mutex(Descriptor(adopting: link))
        let records = self.records
        var configuration = EgressProxy.Configuration(allowlist: allowlist, resolver: resolver)
        configuration.upstreamNamespace = settings.upstreamNamespace
        do {
            proxy = try EgressProxy(listener: tcp, dns: udp, configuration: configuration) { event in
                records.add(event)
                if let onDenied, event.verdict == .denied { onDenied(Denial(event)) }
            }
            try proxy.start()
        } catch {
            throw SetupError(step: .egress, errno: EIO, message: "egress proxy: \(error)")
        }
    }

    /// Stops the proxy (closing every relayed connection) and returns what it recorded.
    func finish() -> (records: [EgressRecord], omitted: Int) {
        proxy.stop()
        link.withLock { $0 = nil }
        return records.state.withLock { ($0.kept, $0.omitted) }
    }
}
