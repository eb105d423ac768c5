import CLinux
@testable import CordonEgress
import CordonPolicy
import CordonSystem
import Glibc
import Synchronization
import Testing

/// Loopback sockets and small servers for the engine tests. Everything binds 127.0.0.1 unless
/// told otherwise (the namespace tests bind wildcard addresses in namespaces they made).
enum Net {
    static func bound(_ type: Int32, at local: Endpoint = Endpoint(IPAddress("127.0.0.1")!, 0)) -> (fd: Int32, port: UInt16) {
        let fd = socket(local.family, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        precondition(fd >= 0)
        var (addr, len) = local.storage
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        precondition(rc == 0, "bind \(local): \(errno)")
        if type == Int32(SOCK_STREAM.rawValue) { precondition(listen(fd, 64) == 0) }
        return (fd, Sockets.localEndpoint(fd)!.port)
    }

    static func tcpListener() -> (fd: Int32, port: UInt16) { bound(Int32(SOCK_STREAM.rawValue)) }
    static func udp() -> (fd: Int32, port: UInt16) { bound(Int32(SOCK_DGRAM.rawValue)) }

    /// A blocking connection with a 10 s receive timeout.
    static func connect(_ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var (addr, len) = Endpoint(IPAddress("127.0.0.1")!, port).storage
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } }
        precondition(rc == 0, "connect: \(errno)")
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    static func send(_ fd: Int32, _ text: String) { send(fd, Array(text.utf8)) }

    /// Reads until EOF, error or timeout (the socket's SO_RCVTIMEO).
    static func readAll(_ fd: Int32, limit: Int = 1 << 20) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// One DNS exchange with `port`: the reply, or nil after 3 s.
    static func ask(_ port: UInt16, _ packet: [UInt8]) -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var (addr, len) = Endpoint(IPAddress("127.0.0.1")!, port).storage
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } }
        _ = packet.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 3000) == 1 else { return nil }
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    /// CPU seconds (user + system) used so far by each of this process's threads named `name`,
    /// by thread id.
    static func threadCPU(named name: String) -> [Int: Double] {
        var out: [Int: Double] = [:]
        guard let d = opendir("/proc/self/task") else { return out }
        defer { closedir(d) }
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        while let entry = readdir(d) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let id = Int(tid),
                  let comm = try? FileSystem.read("/proc/self/task/\(tid)/comm"),
                  comm == Array((name + "\n").utf8),
                  let stat = try? FileSystem.read("/proc/self/task/\(tid)/stat"),
                  let close = stat.lastIndex(of: UInt8(ascii: ")")) else { continue }
            // Fields after "comm)": state is field 3, utime 14 and stime 15.
            let fields = String(decoding: stat[(close + 2)...], as: UTF8.self).split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            out[id] = (user + system) / tick
        }
        return out
    }

    static func openFDs() -> Int {
        guard let d = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(d) }
        var n = 0
        while readdir(d) != nil { n += 1 }
        return n
    }

    /// Runs a program with stdin and stdout on /dev/null; returns its exit status.
    @discardableResult
    static func run(_ argv: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, argv[0], &actions, nil, cargs, environ) == 0 else { return -1 }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return status
    }
}

/// A TCP server on a thread: each connection is handed to `serve`, one at a time.
final class TestServer: Sendable {
    let port: UInt16
    private let fd: Int32
    private let stopFlag = Mutex(false)
    private let threads = ThreadSet()
    let received = Mutex<[[UInt8]]>([])

    /// Listens on `local` (default 127.0.0.1, any port), in the namespace of the calling thread.
    init(at local: Endpoint? = nil, _ serve: @escaping @Sendable (Int32, TestServer) -> Void) {
        (fd, port) = local.map { Net.bound(Int32(SOCK_STREAM.rawValue), at: $0) } ?? Net.tcpListener()
        threads.spawn("test-server") { [self] in
            while !stopFlag.withLock({ $0 }) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 50) == 1 else { continue }
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                var tv = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                serve(c, self)
                close(c)
            }
        }
    }

    func stop() {
        stopFlag.withLock { $0 = true }
        threads.joinAll()
        close(fd)
    }

    /// Echoes everything back until EOF.
    static func echo() -> TestServer {
        TestServer { c, _ in
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                Net.send(c, Array(buf[0..<n]))
            }
        }
    }

    /// Records what arrives within `seconds` or until EOF, then closes.
    static func recorder(seconds: Int = 1) -> TestServer {
        TestServer { c, server in
            var tv = timeval(tv_sec: seconds, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let got = Net.readAll(c)
            server.received.withLock { $0.append(got) }
        }
    }

    /// A minimal HTTP server: reads one request head, records it, answers 200 "hello <path>".
    static func http(at local: Endpoint? = nil) -> TestServer {
        TestServer(at: local) { c, server in
            var head: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                head += buf[0..<n]
            }
            server.received.withLock { $0.append(head) }
            let path = String(decoding: head, as: UTF8.self).split(separator: " ").dropFirst().first ?? "?"
            let body = "hello \(path)"
            Net.send(c, "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        }
    }

    /// Sends `count` messages of `size` bytes `gap` microseconds apart, each its own segment
    /// (TCP_NODELAY), then closes.
    static func trickle(size: Int, count: Int, gap: UInt32) -> TestServer {
        TestServer { c, _ in
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let message = [UInt8](repeating: 0x3c, count: size)
            for _ in 0..<count {
                Net.send(c, message)
                usleep(gap)
            }
        }
    }

    /// Counts bytes until EOF, then sends `reply` bytes back and closes.
    static func sink(reply: Int) -> TestServer {
        TestServer { c, server in
            var total = 0
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                total += n
            }
            server.received.withLock { $0.append(Array("\(total)".utf8)) }
            let chunk = [UInt8](repeating: 0x5a, count: 1 << 16)
            var left = reply
            while left > 0 {
                let n = min(left, chunk.count)
                Net.send(c, Array(chunk[0..<n]))
                left -= n
            }
        }
    }
}

/// A DNS server that answers A queries from a table and counts every query it gets.
final class FakeUpstreamDNS: Sendable {
    let port: UInt16
    private let fd: Int32
    private let stopFlag = Mutex(false)
    private let threads = ThreadSet()
    let queries = Mutex<[String]>([])

    init(_ table: [String: IPv4Address]) {
        (fd, port) = Net.udp()
        threads.spawn("test-dns") { [self] in
            var buf = [UInt8](repeating: 0, count: 2048)
            while !stopFlag.withLock({ $0 }) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 50) == 1 else { continue }
                var from = sockaddr_storage()
                var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = buf.withUnsafeMutableBytes { b in
                    withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &len) } }
                }
                guard n > 0, case .success(let q) = DNSQuery.parse(Array(buf[0..<n])) else { continue }
                queries.withLock { $0.append(q.name.lowercased()) }
                let answer = table[q.name.lowercased()]
                let reply = answer == nil ? q.response(.nameError) : q.response(.noError, answers: q.type == .a ? [.v4(answer!)] : [])
                _ = reply.withUnsafeBytes { r in
                    withUnsafePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, r.baseAddress, r.count, 0, $0, len) } }
                }
            }
        }
    }

    func stop() {
        stopFlag.withLock { $0 = true }
        threads.joinAll()
        close(fd)
    }
}

/// An engine on loopback with injected original destinations and an upstream route that
/// sends every allowed dial to a loopback server (never off the machine).
final class Harness: Sendable {
    let proxy: EgressProxy
    let proxyPort: UInt16
    let dnsPort: UInt16
    let events = Mutex<[EgressEvent]>([])
    /// The original destination the next accepted connection reports (nil: the proxy itself).
    let destination = Mutex<Endpoint?>(nil)
    /// Dial targets the engine asked for, in order.
    let dialled = Mutex<[Endpoint]>([])
    let routes: Mutex<[Endpoint: UInt16]>

    /// `direct`: every allowed dial goes to the destination itself (the namespace tests, whose
    /// destinations live in namespaces they made); otherwise to the loopback port `routes` maps
    /// it to.
    /// `built`: rules added as values, past the parser (which refuses IPv6 rules), to show the
    /// engine refusing what a rule it should never be given would allow.
    init(rules: [String], built: [EgressRule] = [], resolver: Resolver, routes: [Endpoint: UInt16] = [:], direct: Bool = false,
         tune: (inout EgressProxy.Configuration) -> Void = { _ in }) throws {
        let listener = Net.tcpListener()
        let dns = Net.udp()
        proxyPort = listener.port
        dnsPort = dns.port
        self.routes = Mutex(routes)
        var config = EgressProxy.Configuration(allowlist: Allowlist(rules: try Allowlist.parse(rules).get().rules + built), resolver: resolver)
        config.peekTimeout = 2
        tune(&config)
        let proxyPort = listener.port
        let box = Box()
        config.originalDestination = { _ in box.harness?.destination.withLock { $0 } ?? Endpoint(IPAddress("127.0.0.1")!, proxyPort) }
        config.upstreamRoute = { e in
            box.harness?.dialled.withLock { $0.append(e) }
            if direct { return e }
            if case .v4(let a) = e.address, a.value >> 24 == 127 { return e }
            return Endpoint(IPAddress("127.0.0.1")!, box.harness?.routes.withLock { $0[e] } ?? 1)
        }
        proxy = try EgressProxy(listener: listener.fd, dns: dns.fd, configuration: config) { event in
            box.harness?.events.withLock { $0.append(event) }
        }
        box.harness = self
        try proxy.start()
    }

    /// Resolves `name` through the engine's DNS (so the book learns it); the A answers.
    func resolve(_ name: String) -> [IPAddress] {
        guard let reply = Net.ask(dnsPort, dnsQuery(labels: labels(name))) else { return [] }
        var out: [IPAddress] = []
        var i = reply.count
        let an = Int(reply[7])
        for _ in 0..<an { i -= 4; out.insert(.v4(IPv4Address(reply[i], reply[i + 1], reply[i + 2], reply[i + 3])), at: 0); i -= 12 }
        return out
    }

    /// Asks the engine's DNS for `name` with question `type` (1: A, 28: AAAA): the response code
    /// and the number of answers, or nil without a reply.
    func ask(_ name: String, type: UInt16) -> (rcode: UInt8, answers: Int)? {
        guard let reply = Net.ask(dnsPort, dnsQuery(labels: labels(name), type: type)), reply.count >= 12 else { return nil }
        return (reply[3] & 0x0f, Int(reply[6]) << 8 | Int(reply[7]))
    }

    /// Waits up to 5 s for a connection event and returns it.
    func nextConnectionEvent(after count: Int = 0) -> EgressEvent? {
        for _ in 0..<500 {
            let found = events.withLock { $0.filter { $0.kind == .connection } }
            if found.count > count { return found[count] }
            usleep(10_000)
        }
        return nil
    }

    var connectionEvents: [EgressEvent] { events.withLock { $0.filter { $0.kind == .connection } } }
}

/// Lets the engine's closures reach the harness that owns the engine (set once, before start).
final class Box: @unchecked Sendable { weak var harness: Harness? }

/// Two network namespaces the test makes, joined by a veth pair: `host` stands for the
/// supervisor's namespace (the engine runs and dials there), `peer` for the network beyond it.
/// Addresses are TEST-NET-3 and 2001:db8::/32, only inside them. `ip` does the plumbing; the
/// namespaces, and with them the veth pair and the addresses, go at `close()`.
final class TestNetwork {
    static let hostV4 = IPAddress("203.0.113.1")!
    static let peerV4 = IPAddress("203.0.113.2")!
    static let hostV6 = IPAddress("2001:db8:cafe::1")!
    static let peerV6 = IPAddress("2001:db8:cafe::2")!

    let host: String
    let peer: String
    private let hostFD: Int32
    private let peerFD: Int32

    init() throws {
        let tag = "\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        host = "cordon-egh-\(tag)"
        peer = "cordon-egp-\(tag)"
        for n in [host, peer] { try Self.ip(["netns", "add", n]) }
        hostFD = open("/run/netns/\(host)", O_RDONLY | O_CLOEXEC)
        peerFD = open("/run/netns/\(peer)", O_RDONLY | O_CLOEXEC)
        do {
            guard hostFD >= 0, peerFD >= 0 else { throw NetworkError(command: "open /run/netns", status: errno) }
            try Self.ip(["-n", host, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", peer])
            for (n, v4, v6) in [(host, Self.hostV4, Self.hostV6), (peer, Self.peerV4, Self.peerV6)] {
                try Self.ip(["-n", n, "link", "set", "lo", "up"])
                try Self.ip(["-n", n, "addr", "add", "\(v4)/24", "dev", "veth0"])
                try Self.ip(["-n", n, "-6", "addr", "add", "\(v6)/64", "dev", "veth0", "nodad"])
                try Self.ip(["-n", n, "link", "set", "veth0", "up"])
            }
        } catch {
            close()
            throw error
        }
    }

    struct NetworkError: Error, CustomStringConvertible {
        var command: String
        var status: Int32
        var description: String { "\(command): status \(status)" }
    }

    /// Runs `ip ARGS`; throws unless it succeeds.
    static func ip(_ args: [String]) throws {
        let status = Net.run(["/usr/sbin/ip"] + args)
        guard status == 0 else { throw NetworkError(command: "ip " + args.joined(separator: " "), status: status) }
    }

    /// Runs `body` with the calling thread in namespace `fd`, then puts the thread back. The
    /// threads `body` starts (an engine's, a server's) stay there, and so do its sockets.
    private func inside<T>(_ fd: Int32, _ body: () throws -> T) throws -> T {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        precondition(original >= 0)
        defer {
            precondition(cl_enter_netns(original) == 0, "could not return to the test's namespace: \(errno)")
            Glibc.close(original)
        }
        guard cl_enter_netns(fd) == 0 else { throw NetworkError(command: "setns", status: errno) }
        return try body()
    }

    func inHost<T>(_ body: () throws -> T) throws -> T { try inside(hostFD, body) }
    func inPeer<T>(_ body: () throws -> T) throws -> T { try inside(peerFD, body) }

    func close() {
        if hostFD >= 0 { Glibc.close(hostFD) }
        if peerFD >= 0 { Glibc.close(peerFD) }
        for n in [host, peer] { _ = Net.run(["/usr/sbin/ip", "netns", "del", n]) }
    }
}
