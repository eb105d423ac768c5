#if canImport(Glibc)
import CordonPolicy
import Glibc
#endif
import CordonSystem

/// Resolves names for the sandbox from the supervisor's namespace: a hosts file first, then a
/// configured DNS server (plain UDP, queries built here) or, when none is configured, the
/// host's getaddrinfo(3). The engine only ever asks it about names on the allowlist.
public struct Resolver: Sendable {
    /// Where names missing from the hosts file are looked up.
    public enum Upstream: Sendable, Equatable {
        /// getaddrinfo(3) in the supervisor's namespace.
        case system
        /// A DNS server, asked over UDP.
        case server(Endpoint)

        /// "A.B.C.D:PORT", or nil.
        public static func parse(_ text: String) -> Upstream? {
            guard let colon = text.lastIndex(of: ":"), let a = IPv4Address(text[..<colon]),
                  let p = UInt16(text[text.index(after: colon)...]), p > 0 else { return nil }
            return .server(Endpoint(.v4(a), p))
        }
    }

    /// The outcome of one lookup.
    public enum Answer: Equatable, Sendable {
        case addresses([IPAddress])
        case nameError
        case failure(String)
    }

    public let hosts: [String: [IPAddress]]
    public let upstream: Upstream
    /// How long one upstream query may take, in milliseconds.
    public let timeoutMilliseconds: Int32

    /// `hostsFile` (in /etc/hosts format) is read once, here. A missing file is an error: a
    /// configured file that is not there is a mistake, not an empty table.
    public init(hostsFile: String? = nil, upstream: Upstream = .system, timeoutMilliseconds: Int32 = 2000) throws(EgressError) {
        var table: [String: [IPAddress]] = [:]
        if let hostsFile {
            do {
                table = Self.parseHosts(try FileSystem.read(hostsFile, limit: 4 << 20))
            } catch {
                throw EgressError(.configuration, "reading hosts file \(hostsFile)", errno: error.errno)
            }
        }
        self.init(hosts: table, upstream: upstream, timeoutMilliseconds: timeoutMilliseconds)
    }

    public init(hosts: [String: [IPAddress]], upstream: Upstream = .system, timeoutMilliseconds: Int32 = 2000) {
        self.hosts = hosts
        self.upstream = upstream
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Reads /etc/hosts format: "ADDRESS NAME [ALIAS...]", '#' comments. Lines with an address
    /// or name that does not parse are skipped.
    public static func parseHosts(_ bytes: [UInt8]) -> [String: [IPAddress]] {
        var table: [String: [IPAddress]] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let content = line.prefix { $0 != UInt8(ascii: "#") }
            let fields = content.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0d })
            guard fields.count >= 2, let address = IPAddress(String(decoding: fields[0], as: UTF8.self)) else { continue }
            for field in fields.dropFirst() {
                guard case .success(let name) = HostName.normalize(field) else { continue }
                if !(table[name]?.contains(address) ?? false) { table[name, default: []].append(address) }
            }
        }
        return table
    }

    /// Addresses of `name` (normalised) of `type` (.a or .aaaa).
    public func resolve(_ name: String, _ type: DNSType) -> Answer {
        if let listed = hosts[name] {
            return .addresses(listed.filter { type == .a ? isV4($0) : !isV4($0) })
        }
        switch upstream {
        case .system: return systemLookup(name, type)
        case .server(let server): return askServer(server, name, type)
        }
    }

    private func isV4(_ a: IPAddress) -> Bool {
        if case .v4 = a { return true }
        return false
    }

    private func systemLookup(_ name: String, _ type: DNSType) -> Answer {
        var hints = addrinfo()
        hints.ai_family = type == .a ? AF_INET : AF_INET6
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        switch rc {
        case 0: break
        case EAI_NONAME: return .nameError
        case -5, -9: return .addresses([])  // EAI_NODATA, EAI_ADDRFAMILY (GNU, hidden from Swift)
        default: return .failure("getaddrinfo: \(String(cString: gai_strerror(rc)))")
        }
        var out: [IPAddress] = []
        var node = list
        while let n = node {
            if let sa = n.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(n.pointee.ai_addrlen))) }
                if let e = Endpoint(storage: storage), !out.contains(e.address) { out.append(e.address) }
            }
            node = n.pointee.ai_next
        }
        return .addresses(out)
    }

    /// One UDP query to `server`; responses that fail validation (ID, question, source) are
    /// ignored until the timeout, so a spoofed datagram cannot cut a lookup short.
    private func askServer(_ server: Endpoint, _ name: String, _ type: DNSType) -> Answer {
        var rng = SystemRandomNumberGenerator()
        let query = DNSQuery.build(id: UInt16.random(in: 0...UInt16.max, using: &rng), name: name, type: type)
        let fd = socket(server.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure("socket: \(SystemError.text(errno))") }
        defer { close(fd) }
        var (addr, len) = server.storage
        // A connected UDP socket only receives datagrams from the server's address and port.
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } }
        guard connected == 0 else { return .failure("connect \(server): \(SystemError.text(errno))") }
        guard query.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == query.count else {
            return .failure("send to \(server): \(SystemError.text(errno))")
        }
        let deadline = MonotonicClock.now + Double(timeoutMilliseconds) / 1000
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = Int32(max(0, (deadline - MonotonicClock.now) * 1000))
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, left)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { return .failure("no answer from \(server) within \(timeoutMilliseconds) ms") }
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &fromLength) } }
            }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return .failure("receive from \(server): \(SystemError.text(errno))")
            }
            guard Endpoint(storage: from) == server else { continue }
            switch DNSQuery.parseUpstreamResponse(Array(buffer[0..<n]), to: query) {
            case .addresses(let a): return .addresses(a)
            case .nameError: return .nameError
            case .failure(let reason):
                if reason == "ID mismatch" || reason == "response question differs from the query" || reason == "not a response" { continue }
                return .failure("\(server): \(reason)")
            }
        }
    }
}
