@testable import CordonEgress
import CordonPolicy
import Glibc
import Testing

/// The engine dialling for real, from a namespace the test makes (standing in for the
/// supervisor's) over a veth pair to a peer namespace (standing in for the network): what the
/// engine refuses here, a listener really did not get.
@Suite(.enabled(if: getuid() == 0, "needs root: network namespaces"), .serialized)
struct NamespaceTests {
    static let port: UInt16 = 8080

    /// One request to the proxy at `port` on the calling thread's loopback. With `then`, the
    /// first reply is read, `then` is sent (through the tunnel) and the rest read.
    func exchange(_ proxyPort: UInt16, _ request: String, then: String? = nil) -> String {
        let c = Net.connect(proxyPort)
        defer { close(c) }
        Net.send(c, request)
        guard let then else { return String(decoding: Net.readAll(c), as: UTF8.self) }
        var buf = [UInt8](repeating: 0, count: 200)
        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "" }
        let head = String(decoding: buf[0..<n], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 200") else { return head + String(decoding: Net.readAll(c), as: UTF8.self) }
        Net.send(c, then)
        shutdown(c, Int32(SHUT_WR))
        return head + String(decoding: Net.readAll(c), as: UTF8.self)
    }

    func get(_ path: String, host: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: \(host):\(Self.port)\r\nConnection: close\r\n\r\n"
    }

    /// Issue 16, item 15: whoever controls a listed name's DNS must not reach what the
    /// supervisor's host serves on 0.0.0.0 by answering with one of the host's own addresses
    /// (an interface's, one covered by a local route, or one added while the engine runs).
    @Test func aListedNameResolvingToTheDiallersOwnAddressIsRefused() throws {
        let net = try TestNetwork()
        defer { net.close() }
        let anyIP = IPAddress("198.51.100.77")!, moving = IPAddress("203.0.113.9")!
        // AnyIP: every address of 198.51.100.0/24 is the host's own, though no interface has it.
        try TestNetwork.ip(["-n", net.host, "route", "add", "local", "198.51.100.0/24", "dev", "lo"])
        try TestNetwork.ip(["-n", net.peer, "addr", "add", "\(moving)/32", "dev", "veth0"])
        let peerWeb = try net.inPeer { TestServer.http(at: Endpoint(IPAddress("::")!, Self.port)) }
        defer { peerWeb.stop() }
        try net.inHost {
            // The host's own service, bound to every address it has.
            let hostWeb = TestServer.http(at: Endpoint(IPAddress("0.0.0.0")!, Self.port))
            defer { hostWeb.stop() }
            let hosts: [String: [IPAddress]] = [
                "self.example.test": [TestNetwork.hostV4], "peer.example.test": [TestNetwork.peerV4],
                "anyip.example.test": [anyIP], "moving.example.test": [moving],
            ]
            let h = try Harness(rules: hosts.keys.map { "\($0):\(Self.port)" }, resolver: Resolver(hosts: hosts), direct: true)
            defer { h.proxy.stop() }
            func connect(_ name: String) -> String {
                exchange(h.proxyPort, "CONNECT \(name):\(Self.port) HTTP/1.1\r\n\r\n", then: get("/\(name)", host: name))
            }

            // The engine really dials through the veth pair: a listed name of the peer is reached.
            let peer = connect("peer.example.test")
            #expect(peer.hasSuffix("hello /peer.example.test"), "\(peer)")

            // CONNECT, absolute-form and an intercepted connection to the host's own address.
            let tunnel = connect("self.example.test")
            #expect(tunnel.hasPrefix("HTTP/1.1 403") && tunnel.contains("own network namespace"), "\(tunnel)")
            let absolute = exchange(h.proxyPort, "GET http://self.example.test:\(Self.port)/abs HTTP/1.1\r\nHost: self.example.test:\(Self.port)\r\n\r\n")
            #expect(absolute.hasPrefix("HTTP/1.1 403"), "\(absolute)")
            #expect(h.resolve("self.example.test") == [TestNetwork.hostV4])
            h.destination.withLock { $0 = Endpoint(TestNetwork.hostV4, Self.port) }
            let intercepted = exchange(h.proxyPort, get("/intercepted", host: "self.example.test"))
            h.destination.withLock { $0 = nil }
            #expect(intercepted.hasPrefix("HTTP/1.1 403") && intercepted.contains("own network namespace"), "\(intercepted)")

            // An address no interface holds but a local route delivers.
            let local = connect("anyip.example.test")
            #expect(local.hasPrefix("HTTP/1.1 403") && local.contains("local route"), "\(local)")

            // An address that moves from the peer to the host while the engine runs.
            let before = connect("moving.example.test")
            #expect(before.hasSuffix("hello /moving.example.test"), "\(before)")
            try TestNetwork.ip(["-n", net.peer, "addr", "del", "\(moving)/32", "dev", "veth0"])
            try TestNetwork.ip(["-n", net.host, "addr", "add", "\(moving)/32", "dev", "veth0"])
            let after = connect("moving.example.test")
            #expect(after.hasPrefix("HTTP/1.1 403") && after.contains("own network namespace"), "\(after)")

            #expect(hostWeb.received.withLock { $0.count } == 0, "the host's own listener was reached: \(hostWeb.received.withLock { $0 })")
            #expect(peerWeb.received.withLock { $0.count } == 2)
            let refused = h.connectionEvents.filter { $0.verdict == .denied }
            #expect(refused.count == 5 && refused.allSatisfy { $0.name != nil && $0.destination != nil }, "\(refused)")

            // An address rule is the explicit way to the host's own address.
            let opted = try Harness(rules: ["self.example.test:\(Self.port)", "\(TestNetwork.hostV4)/32:\(Self.port)"],
                                    resolver: Resolver(hosts: hosts), direct: true)
            defer { opted.proxy.stop() }
            let allowed = exchange(opted.proxyPort, "CONNECT self.example.test:\(Self.port) HTTP/1.1\r\n\r\n", then: get("/opted", host: "self.example.test"))
            #expect(allowed.hasSuffix("hello /opted"), "\(allowed)")
            #expect(hostWeb.received.withLock { $0.count } == 1)
        }
    }

    /// Issue 16, item 16: IPv6 egress is refused on every path — DNS, CONNECT, absolute-form,
    /// an intercepted connection, an IPv6 address rule — while the peer is reachable over IPv6
    /// from the dialling namespace (so a refusal is the engine's, not the network's).
    @Test func ipv6IsRefusedOnEveryPath() throws {
        let net = try TestNetwork()
        defer { net.close() }
        // Dual-stack: answers over IPv4 and IPv6 alike.
        let peerWeb = try net.inPeer { TestServer.http(at: Endpoint(IPAddress("::")!, Self.port)) }
        defer { peerWeb.stop() }
        try net.inHost {
            // The peer's IPv6 address is reachable from here: a plain dial gets through.
            let probe = try Sockets.dial(Endpoint(TestNetwork.peerV6, Self.port), timeout: 5, stopFd: -1)
            probe.close()
            #expect(peerWeb.received.withLock { $0.count } == 0)

            let hosts: [String: [IPAddress]] = [
                "v6only.example.test": [TestNetwork.peerV6],
                "dual.example.test": [TestNetwork.peerV4, TestNetwork.peerV6],
            ]
            // The policy parser refuses IPv6 address rules; the engine must refuse IPv6 even if
            // handed one, so this one is built past the parser.
            let v6Rule = EgressRule(destination: .network(IPNetwork(address: TestNetwork.peerV6, prefixLength: 128)!), ports: PortRange(Self.port, Self.port)!)
            #expect(throws: (any Error).self) { try Allowlist.parse(["[\(TestNetwork.peerV6)]:\(Self.port)"]).get() }
            let h = try Harness(rules: ["v6only.example.test:\(Self.port)", "dual.example.test:\(Self.port)"], built: [v6Rule],
                                resolver: Resolver(hosts: hosts), direct: true)
            defer { h.proxy.stop() }

            // DNS: AAAA is answered without data, A as before.
            let aaaa = h.ask("v6only.example.test", type: 28)
            #expect(aaaa?.rcode == 0 && aaaa?.answers == 0, "\(String(describing: aaaa))")
            let dualAAAA = h.ask("dual.example.test", type: 28)
            #expect(dualAAAA?.rcode == 0 && dualAAAA?.answers == 0, "\(String(describing: dualAAAA))")
            #expect(h.ask("dual.example.test", type: 1)?.answers == 1)

            // The explicit proxy: CONNECT and absolute-form to an AAAA-only name, CONNECT to an
            // IPv6 literal that an address rule lists.
            let tunnel = exchange(h.proxyPort, "CONNECT v6only.example.test:\(Self.port) HTTP/1.1\r\n\r\n", then: get("/v6only", host: "v6only.example.test"))
            #expect(tunnel.hasPrefix("HTTP/1.1 403") && tunnel.contains("IPv6"), "\(tunnel)")
            let absolute = exchange(h.proxyPort, "GET http://v6only.example.test:\(Self.port)/abs HTTP/1.1\r\nHost: v6only.example.test:\(Self.port)\r\n\r\n")
            #expect(absolute.hasPrefix("HTTP/1.1 403") && absolute.contains("IPv6"), "\(absolute)")
            let literal = exchange(h.proxyPort, "CONNECT [\(TestNetwork.peerV6)]:\(Self.port) HTTP/1.1\r\n\r\n", then: get("/literal", host: "[\(TestNetwork.peerV6)]"))
            #expect(literal.hasPrefix("HTTP/1.1 403") && literal.contains("IPv6 egress is refused"), "\(literal)")

            // An intercepted connection to the IPv6 address (a sandbox has no IPv6 route, but the
            // engine does not rely on that), which the address rule lists.
            let before = h.connectionEvents.count
            h.destination.withLock { $0 = Endpoint(TestNetwork.peerV6, Self.port) }
            let intercepted = exchange(h.proxyPort, get("/intercepted", host: "v6only.example.test"))
            h.destination.withLock { $0 = nil }
            #expect(!intercepted.contains("hello"), "\(intercepted)")
            let event = try #require(h.nextConnectionEvent(after: before))
            #expect(event.verdict == .denied && event.reason.contains("IPv6 egress is refused"), "\(event)")

            // A name with both: reached over IPv4.
            let dual = exchange(h.proxyPort, "CONNECT dual.example.test:\(Self.port) HTTP/1.1\r\n\r\n", then: get("/dual", host: "dual.example.test"))
            #expect(dual.hasSuffix("hello /dual"), "\(dual)")
            #expect(h.dialled.withLock { $0 } == [Endpoint(TestNetwork.peerV4, Self.port)])
            #expect(peerWeb.received.withLock { $0.count } == 1)
        }
    }
}
