#if canImport(Glibc)
import CordonHTTP
import CordonPolicy
import Glibc
#endif
import CLinux
import CordonSystem
import Synchronization

/// The egress engine of one sandbox: its DNS server and its transparent (and explicit) TCP
/// proxy. It runs in the supervisor; the listening sockets it is given were created inside the
/// sandbox's network namespace, and it dials upstream from its own namespace.
///
/// Threads, not a poll loop: one thread accepts, one reads DNS datagrams, and each connection
/// and each listed-name lookup gets a thread of its own. The lookups block (getaddrinfo has no
/// asynchronous form), a sandbox opens tens of connections rather than thousands (capped by
/// `maxConnections`), and a thread per connection keeps each decision a straight-line function
/// that reads like the policy. Relaying is splice(2) in a small per-connection poll loop, so the
/// thread costs no copies. Every wait also polls a stop pipe: `stop()` wakes all of them and
/// joins every thread.
///
/// A connection is allowed when (a) its original destination is covered by an address rule
/// for that port, or (b) the name the client presents (TLS SNI or HTTP Host; for requests made
/// to the proxy itself, the CONNECT target or absolute URI) is listed for that port, the
/// destination is an address this engine's DNS returned for that very name, and that address
/// is not restricted (loopback, private, link-local, metadata ..., or an address the namespace
/// the engine dials from holds or routes locally — the kernel is asked just before each dial) —
/// restricted ones pass only through (a). Names not on the list get NXDOMAIN and are never
/// looked up.
///
/// Only IPv4 leaves: AAAA questions get an empty answer (never looked up), the explicit proxy
/// resolves A only, and an IPv6 destination is refused on every path, under any rule. The
/// sandbox side steers IPv4 TCP only, and a second address family would need a second
/// restricted set, steering program and test network to be governed as well; refusing it is
/// the one state that is complete (SECURITY.md).
///
/// Residual channel: for a wildcard rule ("*.example.com") any label below the suffix is
/// looked up upstream, so a workload can encode data in those labels towards whoever runs the
/// suffix's name servers.
public final class EgressProxy: Sendable {
    /// The name of each connection's thread (decision, then relay), as /proc and `top -H` show it.
    public static let relayThreadName = "egress-relay"

    public struct Configuration: Sendable {
        public var allowlist: Allowlist
        public var resolver: Resolver
        /// TTL of DNS answers given to the sandbox, seconds.
        public var dnsTTL: UInt32 = 30
        /// How long a connection may take to show its ClientHello or request head, seconds.
        public var peekTimeout: Double = 5
        /// Upstream connect timeout, seconds.
        public var connectTimeout: Double = 10
        /// A relayed connection with no traffic either way for this long is closed, seconds.
        public var idleTimeout: Double = 300
        /// Connections handled at once; more are closed at accept.
        public var maxConnections = 256
        /// Listed-name lookups in flight at once; more are answered SERVFAIL.
        public var maxLookups = 32
        /// The destination a client dialled. The sandbox's sk_lookup program hands connections to
        /// the listener unchanged, so by default it is the accepted socket's own address. nil or
        /// the listener's address means the client spoke to the proxy itself (HTTP_PROXY).
        public var originalDestination: @Sendable (Int32) -> Endpoint? = { Sockets.localEndpoint($0) }
        /// Where to dial for a destination that was allowed. The wiring leaves this alone (the
        /// original destination, never re-resolved); tests on one host map public test
        /// addresses to loopback servers with it.
        public var upstreamRoute: @Sendable (Endpoint) -> Endpoint = { $0 }
        /// Where allowed connections are dialled from: nil, this process's own network
        /// namespace; otherwise the namespace this returns at each dial (a local model server's
        /// sandbox, for the worker that calls it). When it returns nil the dial fails: it never
        /// falls back to this process's own namespace, whose loopback is the host's.
        public var upstreamNamespace: (@Sendable () -> NetworkNamespace?)?

        public init(allowlist: Allowlist, resolver: Resolver) {
            self.allowlist = allowlist
            self.resolver = resolver
        }
    }

    private let configuration: Configuration
    /// The numbers of the engine's descriptors, for its threads: valid until `stop()` has joined
    /// every thread, because `owned` holds them open until then.
    private let listener: Int32
    private let dnsSocket: Int32
    private let stopRead: Int32
    /// The owners of the descriptors above and of the stop pipe's write end; `stop()` takes them
    /// (nil afterwards: stopped).
    private let owned: Mutex<Owned?>
    private struct Owned: ~Copyable {
        var listener: Descriptor
        var dns: Descriptor
        var stop: Pipe
    }
    /// The listener's own address (see isListener).
    private let listenerAddress: Endpoint?
    private let emit: @Sendable (EgressEvent) -> Void
    private let threads = ThreadSet()
    private let book = Mutex(AddressBook())
    private let counters = Mutex(InFlight())

    /// Connections and lookups under way, each bounded by the configuration.
    private struct InFlight {
        var connections = 0
        var lookups = 0
    }

    /// Takes one slot of `which` if fewer than `limit` are taken.
    private func admit(_ which: WritableKeyPath<InFlight, Int>, limit: Int) -> Bool {
        counters.withLock { c in
            guard c[keyPath: which] < limit else { return false }
            c[keyPath: which] += 1
            return true
        }
    }

    /// Takes ownership of `listener` (a listening TCP socket) and `dns` (a bound UDP socket);
    /// `stop()` closes both. `events` is called from engine threads, one call per event.
    public init(listener: Int32, dns: Int32, configuration: Configuration,
                events: @escaping @Sendable (EgressEvent) -> Void) throws(EgressError) {
        let owner = Owned(listener: Descriptor(adopting: listener), dns: Descriptor(adopting: dns),
                          stop: try Self.stopPipe())
        self.listener = listener
        self.listenerAddress = Sockets.localEndpoint(listener)
        self.dnsSocket = dns
        self.stopRead = owner.stop.read.raw
        self.owned = Mutex(owner)
        self.configuration = configuration
        self.emit = events
        Sockets.setNonBlocking(listener)
        Sockets.setNonBlocking(dns)
    }

    /// Starts the accept and DNS threads.
    public func start() throws(EgressError) {
        guard threads.spawn("egress-accept", { [self] in acceptLoop() }), threads.spawn("egress-dns", { [self] in dnsLoop() }) else {
            stop()
            throw EgressError(.system, "starting the egress threads", errno: EAGAIN)
        }
    }

    /// Wakes every thread, joins them all and closes every descriptor the engine owns. Safe to
    /// call more than once. A lookup blocked in getaddrinfo or an upstream query finishes first
    /// (bounded by the resolver's timeout).
    public func stop() {
        guard let owner = owned.withLock({ $0.take() }) else { return }
        owner.stop.write.close()  // every poll in the engine watches stopRead: POLLHUP from now on
        threads.joinAll()
        // The threads are gone: nothing uses the numbers any more.
        owner.listener.close()
        owner.dns.close()
        owner.stop.read.close()
    }

    private static func stopPipe() throws(EgressError) -> Pipe {
        do { return try Descriptor.pipe(flags: O_CLOEXEC | O_NONBLOCK) }
        catch { throw EgressError(.system, "pipe2", errno: error.errno) }
    }

    /// The addresses this engine's DNS returned for `name` (normalised), so far.
    public func addresses(for name: String) -> [IPAddress] {
        book.withLock { $0.addresses(name) }
    }

    /// Threads started and not yet joined (for tests).
    var threadCount: Int { threads.count }

    // MARK: DNS

    private func dnsLoop() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            threads.reap()
            guard Sockets.wait(dnsSocket, Int16(POLLIN), stopFd: stopRead, seconds: 1) != .stopped else { return }
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(dnsSocket, b.baseAddress, b.count, Int32(MSG_TRUNC), $0, &fromLength) }
                }
            }
            if n < 0 { continue }  // EAGAIN (spurious wakeup) or a transient error: keep serving
            let client = Endpoint(storage: from)
            if n > buffer.count {
                dnsEvent(.denied, "datagram of \(n) bytes is larger than any query", client: client)
                continue
            }
            answer(Array(buffer[0..<n]), from: from, length: fromLength, client: client)
        }
    }

    private func answer(_ packet: [UInt8], from: sockaddr_storage, length: socklen_t, client: Endpoint?) {
        let query: DNSQuery
        switch DNSQuery.parse(packet) {
        case .failure(let m):
            dnsEvent(.denied, "\(m.id == nil ? "dropped" : "FORMERR"): \(m.reason)", client: client)
            if let id = m.id { reply(DNSQuery.formatError(id: id), to: from, length) }
            return
        case .success(let q): query = q
        }
        let name: String
        switch HostName.normalize(query.rawName.isEmpty ? [] : Array(query.name.utf8)) {
        case .failure(let e):
            dnsEvent(.denied, "NXDOMAIN: the name \(e.reason)", name: query.name, type: query.type, client: client)
            reply(query.response(.nameError), to: from, length)
            return
        case .success(let n): name = n
        }
        guard configuration.allowlist.isNameListed(name) else {
            dnsEvent(.denied, "NXDOMAIN: not on the allowlist", name: name, type: query.type, client: client)
            reply(query.response(.nameError), to: from, length)
            return
        }
        guard query.qclass == 1 else {
            dnsEvent(.denied, "REFUSED: class \(query.qclass) is not IN", name: name, type: query.type, client: client)
            reply(query.response(.refused), to: from, length)
            return
        }
        guard query.type == .a else {
            // IPv6 egress is refused on every path, so an AAAA question is answered without a
            // lookup and without data: a client goes straight to the A records.
            reply(query.response(.noError), to: from, length)
            dnsEvent(.allowed, query.type == .aaaa ? "no data: IPv6 egress is refused (AAAA is answered empty, never looked up)" : "no data: only A is served",
                     name: name, type: query.type, client: client)
            return
        }
        guard admit(\.lookups, limit: configuration.maxLookups) else {
            dnsEvent(.denied, "SERVFAIL: too many lookups in flight", name: name, type: query.type, client: client)
            reply(query.response(.serverFailure), to: from, length)
            return
        }
        let started = threads.spawn("egress-lookup") { [self] in
            defer { counters.withLock { $0.lookups -= 1 } }
            let (code, addresses, reason) = lookUp(name)
            // Recorded before the client has its answer, as every refusal is.
            dnsEvent(code == .noError ? .allowed : .denied, reason, name: name, type: query.type, answers: addresses, client: client)
            reply(query.response(code, answers: addresses, ttl: configuration.dnsTTL), to: from, length)
        }
        if !started {
            counters.withLock { $0.lookups -= 1 }
            reply(query.response(.serverFailure), to: from, length)
        }
    }

    /// Resolves a listed name's IPv4 addresses and records the answer in the book. Only called
    /// for names the allowlist lists: this is the one path to the resolver.
    private func lookUp(_ name: String) -> (DNSResponseCode, [IPAddress], String) {
        // Both callers have checked already; this guard keeps the invariant local to the one
        // function that reaches the resolver (refuse rather than trap the supervisor).
        guard configuration.allowlist.isNameListed(name) else { return (.refused, [], "REFUSED: not on the allowlist") }
        switch configuration.resolver.resolve(name, .a) {
        case .addresses(let list):
            let kept = Array(list.map(\.unmapped).filter(\.isIPv4).prefix(16))
            book.withLock { $0.record(name, kept) }
            return (.noError, kept, kept.isEmpty ? "no data" : "answered")
        case .nameError:
            return (.nameError, [], "NXDOMAIN: upstream has no such name")
        case .failure(let why):
            return (.serverFailure, [], "SERVFAIL: \(why)")
        }
    }

    private func reply(_ bytes: [UInt8], to: sockaddr_storage, _ length: socklen_t) {
        var to = to
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(dnsSocket, b.baseAddress, b.count, Int32(MSG_NOSIGNAL), $0, length) } }
        }
    }

    private func dnsEvent(_ verdict: EgressEvent.Verdict, _ reason: String, name: String? = nil, type: DNSType? = nil,
                          answers: [IPAddress] = [], client: Endpoint?) {
        emit(EgressEvent(kind: .dns, verdict: verdict, reason: reason, name: name, queryType: type, answers: answers, client: client))
    }

    // MARK: TCP

    private func acceptLoop() {
        while true {
            threads.reap()
            guard Sockets.wait(listener, Int16(POLLIN), stopFd: stopRead, seconds: 1) != .stopped else { return }
            let fd = cl_accept_nonblock(listener)
            if fd < 0 {
                // EAGAIN after a spurious wakeup; EMFILE and friends: back off instead of spinning.
                if errno != EAGAIN && errno != EINTR && errno != ECONNABORTED { usleep(10_000) }
                continue
            }
            guard admit(\.connections, limit: configuration.maxConnections) else {
                emit(EgressEvent(kind: .connection, verdict: .denied, reason: "too many connections", client: Sockets.peerEndpoint(fd)))
                Descriptor(adopting: fd).close()
                continue
            }
            // The connection's thread owns `fd` (a closure cannot carry an owner): it adopts it
            // first thing; if the thread never starts, we close it.
            let started = threads.spawn(Self.relayThreadName) { [self] in
                defer { counters.withLock { $0.connections -= 1 } }
                handle(Descriptor(adopting: fd))
            }
            if !started {
                counters.withLock { $0.connections -= 1 }
                Descriptor(adopting: fd).close()
            }
        }
    }

    /// What the engine decided about a connection before relaying it.
    private struct Admission {
        var destination: Endpoint
        var name: String?
        var reason: String
        /// Bytes to send upstream before relaying (what was read while deciding).
        var prefix: [UInt8]
        /// Sent to the client before relaying (the CONNECT 200), if any.
        var greeting: [UInt8]?
        /// Whether the client spoke HTTP (a refusal then gets a 403).
        var http: Bool
    }

    private enum Decision {
        case allow(Admission)
        /// `http` says whether a 403 line should be sent back.
        case deny(String, name: String?, destination: Endpoint?, http: Bool)
    }

    private func handle(_ connection: consuming Descriptor) {
        let started = MonotonicClock.now
        let owner = connection  // closed when this function returns
        let client = owner.raw
        // Both legs without Nagle: a reply the upstream writes in two pieces (head, then body)
        // would otherwise wait on the sandbox side for the client's delayed ACK, ~40 ms
        // (bench/models.sh saw 9 % of calls take that long before this).
        Sockets.setNoDelay(client)
        let peer = Sockets.peerEndpoint(client)
        let decision = vetted(decide(client))
        guard case .allow(let admission) = decision else {
            if case .deny(let reason, let name, let destination, let http) = decision {
                // Recorded before the client hears of it (the record of a call it makes next
                // must not miss this refusal).
                emit(EgressEvent(kind: .connection, verdict: .denied, reason: reason, name: name, destination: destination,
                                 client: peer, duration: MonotonicClock.now - started))
                if http { _ = Sockets.writeAll(client, Array("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: \(reason.utf8.count + 1)\r\n\r\n\(reason)\n".utf8), stopFd: stopRead, timeout: 1) }
            }
            return
        }
        func fail(_ reason: String, http: Bool) {
            if http { _ = Sockets.writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: \(reason.utf8.count + 1)\r\n\r\n\(reason)\n".utf8), stopFd: stopRead, timeout: 1) }
            emit(EgressEvent(kind: .connection, verdict: .denied, reason: reason, name: admission.name,
                             destination: admission.destination, client: peer, duration: MonotonicClock.now - started))
        }
        let upstreamOwner: Descriptor
        var namespace: NetworkNamespace?
        if let upstreamNamespace = configuration.upstreamNamespace {
            guard let current = upstreamNamespace() else { return fail("upstream is not running", http: admission.greeting != nil) }
            namespace = current
        }
        do { upstreamOwner = try Sockets.dial(configuration.upstreamRoute(admission.destination), timeout: configuration.connectTimeout, stopFd: stopRead, in: namespace) }
        catch { return fail("upstream \(error)", http: admission.greeting != nil) }
        let upstream = upstreamOwner.raw  // closed when this function returns
        var up: UInt64 = 0
        if let greeting = admission.greeting {
            // Anything the client sent after CONNECT and before our 200 would be a second request
            // smuggled past the decision: refuse rather than forward it.
            var probe: UInt8 = 0
            if recv(client, &probe, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) > 0 {
                _ = Sockets.writeAll(client, Array("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 36\r\n\r\ndata sent before the CONNECT answer\n".utf8), stopFd: stopRead, timeout: 1)
                emit(EgressEvent(kind: .connection, verdict: .denied, reason: "data sent before the CONNECT answer",
                                 name: admission.name, destination: admission.destination, client: peer, duration: MonotonicClock.now - started))
                return
            }
            guard Sockets.writeAll(client, greeting, stopFd: stopRead, timeout: configuration.connectTimeout) else {
                return fail("client went away before the CONNECT answer", http: false)
            }
        }
        if !admission.prefix.isEmpty {
            guard Sockets.writeAll(upstream, admission.prefix, stopFd: stopRead, timeout: configuration.idleTimeout) else {
                return fail("upstream write failed", http: false)
            }
            up = UInt64(admission.prefix.count)
        }
        let result = Sockets.relay(client: client, upstream: upstream, stopFd: stopRead, idle: configuration.idleTimeout)
        emit(EgressEvent(kind: .connection, verdict: .allowed, reason: admission.reason, name: admission.name,
                         destination: admission.destination, client: peer, bytesUp: up + result.up, bytesDown: result.down,
                         duration: MonotonicClock.now - started, end: result.end))
    }

    static let ipv6Refusal = "IPv6 egress is refused: the supervisor dials IPv4 only (an IPv6 address rule never matches)"

    /// The last word on an allowed connection, taken just before the dial: only IPv4 leaves,
    /// and a restricted destination — now including an address the dialling namespace holds or
    /// routes locally, read from the kernel at this moment — needs an address rule.
    private func vetted(_ decision: Decision) -> Decision {
        guard case .allow(let a) = decision else { return decision }
        let address = a.destination.address.unmapped, port = a.destination.port
        guard address.isIPv4 else { return .deny(Self.ipv6Refusal, name: a.name, destination: a.destination, http: a.http) }
        if configuration.allowlist.cidrAllows(address, port: port) { return decision }
        if let why = restriction(address, port: port) {
            return .deny("\(a.name ?? "the destination") resolved to \(address), \(why); only an address rule allows it",
                         name: a.name, destination: a.destination, http: a.http)
        }
        return decision
    }

    /// Why a name alone cannot take a connection to `address`:`port`, or nil when it can: an
    /// IPv6 address; a restricted range (`IPAddress.restriction`); or an address the engine's
    /// own namespace delivers locally — its interfaces' addresses, local routes (AnyIP),
    /// broadcast and multicast — asked of the kernel at each call, so a listener the host binds
    /// to 0.0.0.0 is never reached on a name's word, however the host's addresses change.
    /// Fails closed when the kernel cannot be asked.
    private func restriction(_ address: IPAddress, port: UInt16) -> String? {
        let address = address.unmapped
        guard address.isIPv4 else { return "IPv6 (the supervisor dials IPv4 only)" }
        if let r = address.restriction { return r }
        switch Sockets.route(Endpoint(address, port)) {
        case .away, .none: return nil  // no route: the dial itself fails and says so
        case .own(let what): return what
        case .unknown(let why): return "possibly the supervisor's own (\(why))"
        }
    }

    /// Whether `destination` is the listener's own address: a client using the proxy explicitly.
    private func isListener(_ destination: Endpoint) -> Bool {
        guard let l = listenerAddress else { return false }
        return destination.address.unmapped == l.address.unmapped && destination.port == l.port
    }

    private func decide(_ client: Int32) -> Decision {
        let allowlist = configuration.allowlist
        guard let original = configuration.originalDestination(client), !isListener(original) else { return decideProxyRequest(client) }
        let destination = Endpoint(original.address.unmapped, original.port)
        let address = destination.address, port = destination.port
        guard address.isIPv4 else { return .deny(Self.ipv6Refusal, name: nil, destination: destination, http: false) }

        // (a) An address rule: no name needed (and server-speaks-first protocols work).
        if allowlist.cidrAllows(address, port: port) {
            return .allow(Admission(destination: destination, name: nil, reason: "address rule for \(destination)", prefix: [], greeting: nil, http: false))
        }
        guard allowlist.anyNameRule(port: port) else {
            return .deny("no rule allows port \(port) and no address rule covers \(address)", name: nil, destination: destination, http: false)
        }
        let namesForAddress = book.withLock { $0.names(address) }
        guard !namesForAddress.isEmpty else {
            return .deny("\(address) was not returned by the sandbox's DNS for any listed name (direct IP connection)", name: nil, destination: destination, http: false)
        }

        // (b) The name the client presents.
        var buffer: [UInt8] = []
        let presented: (name: String, http: Bool)
        switch readName(client, into: &buffer) {
        case .failure(let why):
            return .deny(why.reason, name: nil, destination: destination, http: why.http)
        case .success(let p):
            if p.isConnect {
                return .deny("CONNECT is only accepted by the proxy itself, not on an intercepted connection", name: p.name, destination: destination, http: true)
            }
            if let hostPort = p.port, hostPort != port {
                return .deny("Host port \(hostPort) differs from the destination port \(port)", name: p.name, destination: destination, http: true)
            }
            presented = (p.name, p.http)
        }
        let name = presented.name
        guard allowlist.nameAllows(name, port: port) else {
            return .deny("\(name):\(port) is not on the allowlist", name: name, destination: destination, http: presented.http)
        }
        guard book.withLock({ $0.contains(name, address) }) else {
            return .deny("\(address) was not returned for \(name) (it was for \(namesForAddress.sorted().prefix(3).joined(separator: ", ")))",
                         name: name, destination: destination, http: presented.http)
        }
        if let restriction = address.restriction {
            return .deny("\(name) resolved to \(address), \(restriction); only an address rule allows it", name: name, destination: destination, http: presented.http)
        }
        return .allow(Admission(destination: destination, name: name, reason: "name rule for \(name):\(port)", prefix: buffer, greeting: nil, http: presented.http))
    }

    private struct Presented {
        var name: String
        var port: UInt16?
        var http: Bool
        var isConnect: Bool
    }

    private struct Refusal: Error {
        var reason: String
        var http: Bool
    }

    /// Reads the ClientHello or request head (within `peekTimeout`, at most 16 KiB) and returns
    /// the name it presents. The bytes read are left in `buffer` to be forwarded.
    private func readName(_ client: Int32, into buffer: inout [UInt8]) -> Result<Presented, Refusal> {
        let deadline = MonotonicClock.now + configuration.peekTimeout
        var tls: ClientHelloParser?
        var http: HTTPHeadParser?
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            switch Sockets.wait(client, Int16(POLLIN), stopFd: stopRead, seconds: deadline - MonotonicClock.now) {
            case .stopped: return .failure(Refusal(reason: "engine stopped", http: false))
            case .timeout: return .failure(Refusal(reason: "no TLS ClientHello or HTTP request within \(configuration.peekTimeout) s", http: false))
            case .ready: break
            }
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { return .failure(Refusal(reason: "client closed before presenting a name", http: false)) }
            let bytes = chunk[0..<n]
            buffer += bytes
            if tls == nil && http == nil {
                if buffer[0] == 0x16 { tls = ClientHelloParser() }
                else if HTTPHeadParser.isTokenByte(buffer[0]) { http = HTTPHeadParser() }
                else { return .failure(Refusal(reason: "neither a TLS ClientHello nor an HTTP request (raw bytes to a name-only destination)", http: false)) }
            }
            if tls != nil {
                switch tls!.feed(bytes) {
                case .needMore: continue
                case .sni(let name): return .success(Presented(name: name, port: nil, http: false, isConnect: false))
                case .noSNI: return .failure(Refusal(reason: "TLS ClientHello without SNI to a name-only destination", http: false))
                case .invalid(let why): return .failure(Refusal(reason: "invalid ClientHello: \(why)", http: false))
                }
            }
            switch http!.feed(bytes) {
            case .needMore: continue
            case .invalid(let why): return .failure(Refusal(reason: "invalid HTTP request: \(why)", http: true))
            case .head(let head):
                guard let destination = head.destination else { return .failure(Refusal(reason: "HTTP request without a destination", http: true)) }
                guard case .name(let name) = destination.host else {
                    return .failure(Refusal(reason: "HTTP request to the IP literal \(destination.host) (no address rule covers it)", http: true))
                }
                if case .absolute = head.target {
                    return .failure(Refusal(reason: "absolute-form request on an intercepted connection (only the proxy itself takes them)", http: true))
                }
                return .success(Presented(name: name, port: destination.port, http: true, isConnect: head.isConnect))
            }
        }
    }

    /// A request made to the proxy itself (HTTP_PROXY): CONNECT host:port or an absolute-form
    /// URI. The supervisor resolves the name (never trusting an address from the client) and
    /// dials an address that is not restricted, or that an address rule covers.
    private func decideProxyRequest(_ client: Int32) -> Decision {
        let allowlist = configuration.allowlist
        let deadline = MonotonicClock.now + configuration.peekTimeout
        var parser = HTTPHeadParser()
        var chunk = [UInt8](repeating: 0, count: 4096)
        var head: HTTPRequestHead?
        var received: [UInt8] = []
        while head == nil {
            switch Sockets.wait(client, Int16(POLLIN), stopFd: stopRead, seconds: deadline - MonotonicClock.now) {
            case .stopped: return .deny("engine stopped", name: nil, destination: nil, http: false)
            case .timeout: return .deny("no proxy request within \(configuration.peekTimeout) s", name: nil, destination: nil, http: false)
            case .ready: break
            }
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { return .deny("client closed before a proxy request", name: nil, destination: nil, http: false) }
            if received.isEmpty && !HTTPHeadParser.isTokenByte(chunk[0]) {
                return .deny("not an HTTP proxy request (connection to the proxy itself, or original destination unknown)", name: nil, destination: nil, http: false)
            }
            received += chunk[0..<n]
            switch parser.feed(chunk[0..<n]) {
            case .needMore: continue
            case .invalid(let why): return .deny("invalid HTTP request: \(why)", name: nil, destination: nil, http: true)
            case .head(let h): head = h
            }
        }
        guard let head else { return .deny("no request", name: nil, destination: nil, http: true) }
        let authority: Authority
        let prefix: [UInt8]
        var greeting: [UInt8]?
        switch head.target {
        case .authority(let a):
            if head.bytesAfterHead > 0 {
                return .deny("data sent before the CONNECT answer", name: a.host.description, destination: nil, http: true)
            }
            authority = a
            prefix = []
            greeting = Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)
        case .absolute(let a, _):
            authority = a
            prefix = head.originFormHead() + received[head.headLength...]
        case .origin, .asterisk:
            return .deny("a request to the proxy itself that names no destination (original destination unknown)", name: head.host?.description, destination: nil, http: true)
        }
        let port = authority.port ?? 80
        switch authority.host {
        case .address(let literal):
            let destination = Endpoint(literal.unmapped, port)
            guard destination.address.isIPv4 else { return .deny(Self.ipv6Refusal, name: nil, destination: destination, http: true) }
            guard allowlist.cidrAllows(destination.address, port: port) else {
                return .deny("proxy request to the IP literal \(destination) (no address rule covers it)", name: nil, destination: destination, http: true)
            }
            return .allow(Admission(destination: destination, name: nil, reason: "address rule for \(destination) (proxy request)", prefix: prefix, greeting: greeting, http: true))
        case .name(let name):
            guard allowlist.nameAllows(name, port: port) else {
                return .deny("\(name):\(port) is not on the allowlist", name: name, destination: nil, http: true)
            }
            // IPv4 only: IPv6 egress is refused, so an AAAA-only name does not resolve here.
            let (code, candidates, reason) = lookUp(name)
            emit(EgressEvent(kind: .dns, verdict: code == .noError ? .allowed : .denied, reason: "\(reason) (for a proxy request)",
                             name: name, queryType: .a, answers: candidates, client: Sockets.peerEndpoint(client)))
            guard let chosen = candidates.first(where: { allowlist.cidrAllows($0, port: port) || restriction($0, port: port) == nil }) else {
                let why = candidates.isEmpty ? "\(name) has no IPv4 address (\(reason); IPv6 egress is refused)"
                    : "\(name) resolved only to restricted addresses (\(candidates.map { "\($0): \(restriction($0, port: port) ?? "")" }.joined(separator: ", "))); only an address rule allows them"
                return .deny(why, name: name, destination: candidates.first.map { Endpoint($0, port) }, http: true)
            }
            let destination = Endpoint(chosen.unmapped, port)
            return .allow(Admission(destination: destination, name: name, reason: "name rule for \(name):\(port) (proxy request)", prefix: prefix, greeting: greeting, http: true))
        }
    }
}

/// Per-sandbox record of the addresses the engine's DNS returned, by name: the only addresses a
/// name rule lets a connection go to. Bounded: beyond `maxNames` names the oldest is forgotten
/// (a later connection to it is refused — fail closed).
struct AddressBook {
    private var byName: [String: [IPAddress]] = [:]
    private var byAddress: [IPAddress: Set<String>] = [:]
    private var order: [String] = []
    let maxNames = 4096
    let maxPerName = 64

    mutating func record(_ name: String, _ addresses: [IPAddress]) {
        if byName[name] == nil {
            order.append(name)
            byName[name] = []
            if order.count > maxNames { forget(order.removeFirst()) }
        }
        for a in addresses.map(\.unmapped) where !(byName[name]!.contains(a)) {
            if byName[name]!.count >= maxPerName, let old = byName[name]!.first {
                byName[name]!.removeFirst()
                byAddress[old]?.remove(name)
            }
            byName[name]!.append(a)
            byAddress[a, default: []].insert(name)
        }
    }

    private mutating func forget(_ name: String) {
        for a in byName[name] ?? [] { byAddress[a]?.remove(name) }
        byName[name] = nil
    }

    func addresses(_ name: String) -> [IPAddress] { byName[name] ?? [] }
    func names(_ address: IPAddress) -> Set<String> { byAddress[address.unmapped] ?? [] }
    func contains(_ name: String, _ address: IPAddress) -> Bool { byName[name]?.contains(address.unmapped) ?? false }
}
