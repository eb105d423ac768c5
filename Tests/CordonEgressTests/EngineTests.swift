@testable import CordonEgress
import CordonPolicy
import CordonSystem
import Glibc
import Synchronization
import Testing

let publicA = IPAddress("203.0.113.10")!   // TEST-NET-3: never dialled, routed to loopback servers
let publicB = IPAddress("203.0.113.20")!
let localhost = IPAddress("127.0.0.1")!

/// Real sockets on loopback; original destinations are injected, dials to test addresses are
/// routed to loopback servers. One at a time: the fd-count test needs a quiet process.
@Suite(.serialized) struct EngineTests {
    let hosts: [String: [IPAddress]] = [
        "api.example.test": [publicA], "other.example.test": [publicB], "internal.example.test": [localhost],
    ]

    @Test func dnsAnswersListedNamesAndNeverAsksForUnlisted() throws {
        let upstream = FakeUpstreamDNS(["api.example.test": IPv4Address(203, 0, 113, 10), "x.pkg.test": IPv4Address(203, 0, 113, 30)])
        defer { upstream.stop() }
        let h = try Harness(rules: ["api.example.test:443", "*.pkg.test:443"],
                            resolver: Resolver(hosts: [:], upstream: .server(Endpoint(localhost, upstream.port))))
        defer { h.proxy.stop() }

        #expect(h.resolve("API.Example.Test") == [publicA])
        #expect(h.proxy.addresses(for: "api.example.test") == [publicA])
        let reply = try #require(Net.ask(h.dnsPort, dnsQuery(labels: labels("ApI.example.TEST"), type: 28)))
        #expect(reply[3] & 0x0f == 0 && reply[7] == 0)  // NOERROR, no AAAA (IPv6 egress is refused; never asked upstream)
        #expect(Array(reply[12..<30]) == Array(dnsQuery(labels: labels("ApI.example.TEST"), type: 28)[12..<30]))  // case kept
        #expect(h.resolve("x.pkg.test") == [IPAddress("203.0.113.30")!])

        let unlisted = ["evil.test", "pkg.test", "api.example.test.evil.test", "example.test", "a.b.evil.test"]
        for name in unlisted {
            let r = try #require(Net.ask(h.dnsPort, dnsQuery(labels: labels(name))))
            #expect(r[3] & 0x0f == 3, "\(name) not NXDOMAIN")
        }
        // A label with a '.' inside must not be read as "api.example.test".
        let dotted = try #require(Net.ask(h.dnsPort, dnsQuery(labels: [Array("api.example".utf8), Array("test".utf8)])))
        #expect(dotted[3] & 0x0f == 1)
        let nul = try #require(Net.ask(h.dnsPort, dnsQuery(labels: [[0x61, 0x00], Array("pkg".utf8), Array("test".utf8)])))
        #expect(nul[3] & 0x0f == 1)
        #expect(Net.ask(h.dnsPort, dnsQuery(labels: labels("api.example.test"), flags: [0x81, 0x80])) == nil)  // responses dropped
        let mx = try #require(Net.ask(h.dnsPort, dnsQuery(labels: labels("api.example.test"), type: 15)))
        #expect(mx[3] & 0x0f == 0 && mx[7] == 0)
        #expect(Net.ask(h.dnsPort, [1, 2, 3]) == nil)

        usleep(100_000)
        let asked = upstream.queries.withLock { $0 }
        #expect(asked.sorted() == ["api.example.test", "x.pkg.test"])
        let nx = h.events.withLock { $0.filter { $0.kind == .dns && $0.reason.hasPrefix("NXDOMAIN: not on the allowlist") } }
        #expect(nx.count == unlisted.count)
        #expect(h.proxy.threadCount >= 2)
    }

    @Test func hostsFileIsConsultedFirst() throws {
        let upstream = FakeUpstreamDNS([:])
        defer { upstream.stop() }
        let path = "/tmp/cordon-egress-hosts-\(getpid())"
        try FileSystem.writeAtomically(path, Array("# test\n203.0.113.10  API.example.test alias.example.test\n\n::1 v6.example.test\n".utf8))
        defer { unlink(path) }
        let h = try Harness(rules: ["api.example.test:443", "alias.example.test:443", "missing.example.test:443"],
                            resolver: Resolver(hostsFile: path, upstream: .server(Endpoint(localhost, upstream.port))))
        defer { h.proxy.stop() }
        #expect(h.resolve("api.example.test") == [publicA])
        #expect(h.resolve("alias.example.test") == [publicA])
        #expect(h.resolve("missing.example.test") == [])
        #expect(upstream.queries.withLock { $0 } == ["missing.example.test"])
        #expect(throws: EgressError.self) { try Resolver(hostsFile: "/nonexistent/hosts") }
    }

    @Test func systemResolverWhenNoUpstream() {
        let r = Resolver(hosts: [:], upstream: .system)
        guard case .addresses(let a) = r.resolve("localhost", .a) else { Issue.record("localhost did not resolve"); return }
        #expect(a.contains(localhost))
    }

    @Test func tlsFromOpenSSLWithListedSNIIsRelayed() throws {
        let server = TestServer.recorder()
        defer { server.stop() }
        let h = try Harness(rules: ["api.example.test:443"], resolver: Resolver(hosts: hosts),
                            routes: [Endpoint(publicA, 443): server.port])
        defer { h.proxy.stop() }
        #expect(h.resolve("api.example.test") == [publicA])
        h.destination.withLock { $0 = Endpoint(publicA, 443) }
        Net.run(["openssl", "s_client", "-servername", "API.example.test", "-connect", "127.0.0.1:\(h.proxyPort)"])
        let event = try #require(h.nextConnectionEvent())
        #expect(event.verdict == .allowed, "\(event)")
        #expect(event.name == "api.example.test")
        #expect(event.destination == Endpoint(publicA, 443))
        #expect(h.dialled.withLock { $0 } == [Endpoint(publicA, 443)])
        let got = server.received.withLock { $0.first ?? [] }
        #expect(got.first == 0x16 && got.count > 100)
        // The recorder's close may make the client send an alert after what the recorder read.
        #expect(event.bytesUp >= UInt64(got.count) && event.bytesUp <= UInt64(got.count) + 64, "\(event)")
    }

    @Test func tlsRefusals() throws {
        let server = TestServer.recorder()
        defer { server.stop() }
        let h = try Harness(rules: ["api.example.test:443", "other.example.test:443"], resolver: Resolver(hosts: hosts),
                            routes: [Endpoint(publicA, 443): server.port, Endpoint(publicB, 443): server.port])
        defer { h.proxy.stop() }
        _ = h.resolve("api.example.test")
        _ = h.resolve("other.example.test")
        func attempt(_ hello: [UInt8], to: IPAddress) -> EgressEvent? {
            let before = h.connectionEvents.count
            h.destination.withLock { $0 = Endpoint(to, 443) }
            let c = Net.connect(h.proxyPort)
            Net.send(c, hello)
            let rest = Net.readAll(c)
            close(c)
            #expect(rest.isEmpty)
            return h.nextConnectionEvent(after: before)
        }
        let sniOther = clientHello(extensions: [sniExtension([(0, Array("other.example.test".utf8))])])
        let mismatch = try #require(attempt(sniOther, to: publicA))
        #expect(mismatch.verdict == .denied && mismatch.reason.contains("was not returned for other.example.test"), "\(mismatch)")
        let none = try #require(attempt(clientHello(extensions: nil), to: publicA))
        #expect(none.verdict == .denied && none.reason.contains("without SNI"), "\(none)")
        let unlisted = try #require(attempt(clientHello(extensions: [sniExtension([(0, Array("evil.test".utf8))])]), to: publicA))
        #expect(unlisted.verdict == .denied && unlisted.reason.contains("not on the allowlist"), "\(unlisted)")
        let two = try #require(attempt(clientHello(extensions: [sniExtension([(0, Array("api.example.test".utf8)), (0, Array("evil.test".utf8))])]), to: publicA))
        #expect(two.verdict == .denied && two.reason.contains("invalid ClientHello"), "\(two)")
        let raw = try #require(attempt([0, 1, 2, 3, 0xff, 0xfe], to: publicA))
        #expect(raw.verdict == .denied && raw.reason.contains("raw bytes"), "\(raw)")
        let direct = try #require(attempt(sniOther, to: IPAddress("198.51.100.7")!))
        #expect(direct.verdict == .denied && direct.reason.contains("direct IP"), "\(direct)")
        // Split byte by byte over the wire, the listed name still goes through.
        h.destination.withLock { $0 = Endpoint(publicB, 443) }
        let c = Net.connect(h.proxyPort)
        for b in sniOther { Net.send(c, [b]) }
        _ = Net.readAll(c)
        close(c)
        let ok = try #require(h.nextConnectionEvent(after: 6))
        #expect(ok.verdict == .allowed && ok.name == "other.example.test", "\(ok)")
        #expect(h.dialled.withLock { $0 } == [Endpoint(publicB, 443)])
        #expect(server.received.withLock { $0.count } == 1)
    }

    @Test func httpHostDecides() throws {
        let web = TestServer.http()
        defer { web.stop() }
        let h = try Harness(rules: ["api.example.test:80", "internal.example.test:80"], resolver: Resolver(hosts: hosts),
                            routes: [Endpoint(publicA, 80): web.port])
        defer { h.proxy.stop() }
        _ = h.resolve("api.example.test")
        _ = h.resolve("internal.example.test")
        func get(_ host: String, to: Endpoint) -> String {
            h.destination.withLock { $0 = to }
            let c = Net.connect(h.proxyPort)
            defer { close(c) }
            Net.send(c, "GET /x HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            return String(decoding: Net.readAll(c), as: UTF8.self)
        }
        #expect(get("api.example.test", to: Endpoint(publicA, 80)).hasSuffix("hello /x"))
        #expect(get("Api.Example.Test:80", to: Endpoint(publicA, 80)).hasSuffix("hello /x"))
        let unlisted = get("evil.test", to: Endpoint(publicA, 80))
        #expect(unlisted.hasPrefix("HTTP/1.1 403") && unlisted.contains("not on the allowlist"), "\(unlisted)")
        let port = get("api.example.test:8080", to: Endpoint(publicA, 80))
        #expect(port.hasPrefix("HTTP/1.1 403"))
        // A listed name that resolved to loopback: refused without an address rule.
        let restricted = get("internal.example.test", to: Endpoint(localhost, 80))
        #expect(restricted.hasPrefix("HTTP/1.1 403") && restricted.contains("loopback"), "\(restricted)")
        #expect(web.received.withLock { $0.count } == 2)
    }

    @Test func addressRuleAllowsARestrictedDestination() throws {
        let echo = TestServer.echo()
        defer { echo.stop() }
        let h = try Harness(rules: ["internal.example.test:\(echo.port)", "127.0.0.1/32:\(echo.port)"], resolver: Resolver(hosts: hosts))
        defer { h.proxy.stop() }
        h.destination.withLock { $0 = Endpoint(localhost, echo.port) }
        let c = Net.connect(h.proxyPort)
        Net.send(c, "ping\n")
        shutdown(c, Int32(SHUT_WR))
        #expect(Net.readAll(c) == Array("ping\n".utf8))
        close(c)
        let e = try #require(h.nextConnectionEvent())
        #expect(e.verdict == .allowed && e.reason.contains("address rule") && e.bytesUp == 5 && e.bytesDown == 5, "\(e)")
    }

    @Test func explicitProxyRequests() throws {
        let echo = TestServer.echo()
        let web = TestServer.http()
        defer { echo.stop(); web.stop() }
        let h = try Harness(rules: ["api.example.test:443", "api.example.test:8080", "internal.example.test:443"], resolver: Resolver(hosts: hosts),
                            routes: [Endpoint(publicA, 443): echo.port, Endpoint(publicA, 8080): web.port])
        defer { h.proxy.stop() }
        func exchange(_ request: String, then: String? = nil) -> String {
            let c = Net.connect(h.proxyPort)
            defer { close(c) }
            Net.send(c, request)
            if let then {
                var buf = [UInt8](repeating: 0, count: 200)
                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return "" }
                let head = String(decoding: buf[0..<n], as: UTF8.self)
                Net.send(c, then)
                shutdown(c, Int32(SHUT_WR))
                return head + String(decoding: Net.readAll(c), as: UTF8.self)
            }
            return String(decoding: Net.readAll(c), as: UTF8.self)
        }
        let tunnel = exchange("CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n", then: "through the tunnel")
        #expect(tunnel == "HTTP/1.1 200 Connection established\r\n\r\nthrough the tunnel", "\(tunnel)")
        #expect(h.dialled.withLock { $0.last } == Endpoint(publicA, 443))
        let unlisted = exchange("CONNECT evil.test:443 HTTP/1.1\r\n\r\n")
        #expect(unlisted.hasPrefix("HTTP/1.1 403") && unlisted.contains("not on the allowlist"))
        let smuggled = exchange("CONNECT api.example.test:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        #expect(smuggled.hasPrefix("HTTP/1.1 403") && smuggled.contains("before the CONNECT"), "\(smuggled)")
        let restricted = exchange("CONNECT internal.example.test:443 HTTP/1.1\r\n\r\n")
        #expect(restricted.hasPrefix("HTTP/1.1 403") && restricted.contains("restricted"), "\(restricted)")
        let literal = exchange("CONNECT 203.0.113.10:443 HTTP/1.1\r\n\r\n")
        #expect(literal.hasPrefix("HTTP/1.1 403") && literal.contains("IP literal"))
        let otherPort = exchange("CONNECT api.example.test:22 HTTP/1.1\r\n\r\n")
        #expect(otherPort.hasPrefix("HTTP/1.1 403"))

        // A real client using the proxy for plain HTTP: absolute-form, rewritten to origin-form.
        Net.run(["curl", "-s", "-o", "/dev/null", "--max-time", "5", "-x", "http://127.0.0.1:\(h.proxyPort)", "http://api.example.test:8080/via-curl"])
        let head = String(decoding: web.received.withLock { $0.first ?? [] }, as: UTF8.self)
        #expect(head.hasPrefix("GET /via-curl HTTP/1.1\r\n"), "\(head)")
        // An allowed connection's event comes when the proxy has seen both sides close, which
        // may be just after the client has exited.
        var allowed = h.connectionEvents.filter { $0.verdict == .allowed }
        for _ in 0..<200 where allowed.count < 2 {
            usleep(10_000)
            allowed = h.connectionEvents.filter { $0.verdict == .allowed }
        }
        #expect(allowed.count == 2)
        #expect(h.connectionEvents.filter { $0.verdict == .denied }.allSatisfy { !$0.reason.isEmpty })
    }

    @Test func bulkTransferCountsEveryByte() throws {
        let down = 16 << 20, up = 64 << 20
        let sink = TestServer.sink(reply: down)
        defer { sink.stop() }
        let h = try Harness(rules: ["127.0.0.1/32:\(sink.port)"], resolver: Resolver(hosts: [:]))
        defer { h.proxy.stop() }
        h.destination.withLock { $0 = Endpoint(localhost, sink.port) }
        let c = Net.connect(h.proxyPort)
        let chunk = [UInt8](repeating: 0xa5, count: 1 << 20)
        let started = MonotonicClock.now
        for _ in 0..<(up >> 20) { Net.send(c, chunk) }
        shutdown(c, Int32(SHUT_WR))
        let back = Net.readAll(c, limit: .max)
        let seconds = MonotonicClock.now - started
        close(c)
        #expect(back.count == down)
        #expect(sink.received.withLock { $0 } == [Array("\(up)".utf8)])
        let e = try #require(h.nextConnectionEvent())
        #expect(e.bytesUp == UInt64(up) && e.bytesDown == UInt64(down), "\(e)")
        print("relayed \(up + down) bytes in \(seconds) s")
    }

    /// A client that stops reading must cost the supervisor nothing while it waits. The server
    /// trickles small segments, which the relay splices one by one into its pipe: the pipe runs
    /// out of slots (one per segment) while holding far fewer bytes than its size, and a relay
    /// that still polls for input then spins on a readable socket it cannot splice from.
    @Test func aStalledReaderCostsTheRelayNoCPU() throws {
        let size = 1000, count = 12_000
        let trickle = TestServer.trickle(size: size, count: count, gap: 250)
        defer { trickle.stop() }
        let h = try Harness(rules: ["127.0.0.1/32:\(trickle.port)"], resolver: Resolver(hosts: [:]))
        defer { h.proxy.stop() }
        h.destination.withLock { $0 = Endpoint(localhost, trickle.port) }
        let c = Net.connect(h.proxyPort)
        usleep(700_000)  // the socket buffers and the pipe fill up; the client reads nothing
        let before = Net.threadCPU(named: EgressProxy.relayThreadName)
        #expect(!before.isEmpty)
        usleep(2_000_000)
        let after = Net.threadCPU(named: EgressProxy.relayThreadName)
        let spent = after.map { tid, seconds in seconds - (before[tid] ?? 0) }.max() ?? 0
        #expect(spent < 0.3, "a relay thread used \(spent) s of cpu in 2 s while its client read nothing")
        print("relay cpu while stalled: \(spent) s in 2 s")
        let back = Net.readAll(c, limit: .max)
        close(c)
        #expect(back.count == size * count)
        let e = try #require(h.nextConnectionEvent())
        #expect(e.bytesDown == UInt64(size * count), "\(e)")
    }

    @Test func stopLeavesNoDescriptorsOrThreads() throws {
        let before = Net.openFDs()
        let echo = TestServer.echo()
        let h = try Harness(rules: ["127.0.0.1/32:\(echo.port)", "api.example.test:443"], resolver: Resolver(hosts: hosts)) { $0.peekTimeout = 30 }
        _ = h.resolve("api.example.test")
        h.destination.withLock { $0 = Endpoint(localhost, echo.port) }
        let relayed = Net.connect(h.proxyPort)  // relaying, idle
        Net.send(relayed, "x")
        var one = [UInt8](repeating: 0, count: 1)
        #expect(recv(relayed, &one, 1, 0) == 1)
        h.destination.withLock { $0 = Endpoint(publicA, 443) }
        let peeking = Net.connect(h.proxyPort)  // waiting for a ClientHello
        usleep(100_000)
        #expect(h.proxy.threadCount >= 4)
        let started = MonotonicClock.now
        h.proxy.stop()
        #expect(MonotonicClock.now - started < 2)
        #expect(h.proxy.threadCount == 0)
        h.proxy.stop()  // idempotent
        close(relayed)
        close(peeking)
        echo.stop()
        #expect(Net.openFDs() == before)
    }
}
