@testable import CordonEgress
import CordonHTTP
import CordonPolicy
import Testing

/// A DNS query datagram with the given raw labels.
func dnsQuery(id: UInt16 = 0x1234, labels: [[UInt8]], type: UInt16 = 1, flags: [UInt8] = [0x01, 0x00],
              qd: UInt16 = 1, additional: [UInt8] = [], arcount: UInt16 = 0) -> [UInt8] {
    var p: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff)] + flags + [UInt8(qd >> 8), UInt8(qd & 0xff), 0, 0, 0, 0, UInt8(arcount >> 8), UInt8(arcount & 0xff)]
    for l in labels { p.append(UInt8(l.count)); p += l }
    p.append(0)
    return p + [UInt8(type >> 8), UInt8(type & 0xff), 0, 1] + additional
}

func labels(_ name: String) -> [[UInt8]] { name.split(separator: ".").map { Array($0.utf8) } }

struct DNSTests {
    @Test func parsesAndAnswersPreservingCase() throws {
        let packet = dnsQuery(labels: labels("Api.EXAMPLE.com"), type: 1)
        let q = try DNSQuery.parse(packet).get()
        #expect(q.id == 0x1234 && q.name == "Api.EXAMPLE.com" && q.type == .a)
        let r = q.response(.noError, answers: [IPAddress("203.0.113.7")!, IPAddress("2001:db8::1")!], ttl: 30)
        #expect(Array(r[0..<2]) == [0x12, 0x34])
        #expect(r[2] & 0x80 != 0 && r[3] & 0x0f == 0)
        #expect(r[7] == 1)  // only the A record
        #expect(Array(r[12..<(12 + q.question.count)]) == Array(packet[12...]))
        #expect(Array(r.suffix(4)) == [203, 0, 113, 7])
        #expect(Array(r[(r.count - 10)..<(r.count - 6)]) == [0, 0, 0, 30])  // TTL
        #expect(try DNSQuery.parse(dnsQuery(labels: labels("a.b"), type: 28)).get().response(.nameError)[3] & 0x0f == 3)
    }

    @Test func toleratesEDNS() throws {
        let opt: [UInt8] = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]
        let q = try DNSQuery.parse(dnsQuery(labels: labels("a.example"), additional: opt, arcount: 1)).get()
        #expect(q.name == "a.example")
    }

    @Test func refusesMalformed() {
        func reason(_ p: [UInt8]) -> String? {
            if case .failure(let m) = DNSQuery.parse(p) { return m.reason }
            return nil
        }
        #expect(reason([1, 2, 3]) != nil)
        #expect(reason(dnsQuery(labels: labels("a.com"), flags: [0x81, 0x80])) != nil)  // QR set
        #expect(reason(dnsQuery(labels: labels("a.com"), qd: 2)) != nil)
        #expect(reason(dnsQuery(labels: labels("a.com"), qd: 0)) != nil)
        #expect(reason(dnsQuery(labels: [Array("a".utf8), [0x61, 0x00, 0x62], Array("com".utf8)]))?.contains("NUL") == true)
        #expect(reason(dnsQuery(labels: [Array("evil.com".utf8)]))?.contains("'.'") == true)
        #expect(reason(dnsQuery(labels: [[0x61, 0x07]])) != nil)
        #expect(reason(dnsQuery(labels: [[0x61, 0xc3, 0xa4]])) != nil)
        #expect(reason(dnsQuery(labels: [Array(repeating: 0x61, count: 64)])) != nil)
        #expect(reason(dnsQuery(labels: Array(repeating: Array(repeating: 0x61, count: 63), count: 4))) != nil)  // 255 > 253
        var pointer = dnsQuery(labels: []).prefix(12) + [0xc0, 0x0c, 0, 1, 0, 1]
        #expect(reason(Array(pointer))?.contains("compression") == true)
        pointer = dnsQuery(labels: labels("abc.com")).prefix(16)
        #expect(reason(Array(pointer)) != nil)  // truncated
        let full = dnsQuery(labels: labels("abc.com"))
        for cut in 12..<full.count { #expect(reason(Array(full.prefix(cut))) != nil) }
        #expect(DNSQuery.formatError(id: 7)[3] & 0x0f == 1)
    }

    @Test func upstreamResponseValidation() {
        let query = DNSQuery.build(id: 0xabcd, name: "api.example.com", type: .a)
        var response = query
        response[2] = 0x81; response[3] = 0x80; response[7] = 1
        response += [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 9]
        #expect(DNSQuery.parseUpstreamResponse(response, to: query) == .addresses([IPAddress("203.0.113.9")!]))
        var wrongID = response; wrongID[1] ^= 1
        #expect(DNSQuery.parseUpstreamResponse(wrongID, to: query) == .failure("ID mismatch"))
        var wrongName = response; wrongName[14] = UInt8(ascii: "x")
        #expect(DNSQuery.parseUpstreamResponse(wrongName, to: query) == .failure("response question differs from the query"))
        #expect(DNSQuery.parseUpstreamResponse(Array(response.dropLast(2)), to: query) == .failure("truncated answer data"))
        var nx = query; nx[2] = 0x81; nx[3] = 0x83
        #expect(DNSQuery.parseUpstreamResponse(nx, to: query) == .nameError)
    }
}

/// Builds a ClientHello handshake record with the given extensions (type, data).
func clientHello(extensions: [(UInt16, [UInt8])]?, recordSize: Int = 16384) -> [UInt8] {
    var body: [UInt8] = [0x03, 0x03] + Array(repeating: 0x42, count: 32) + [32] + Array(repeating: 7, count: 32)
    body += [0, 4, 0x13, 0x01, 0x13, 0x02] + [1, 0]
    if let extensions {
        var ext: [UInt8] = []
        for (t, d) in extensions { ext += [UInt8(t >> 8), UInt8(t & 0xff), UInt8(d.count >> 8), UInt8(d.count & 0xff)] + d }
        body += [UInt8(ext.count >> 8), UInt8(ext.count & 0xff)] + ext
    }
    let handshake: [UInt8] = [1, UInt8(body.count >> 16), UInt8(body.count >> 8 & 0xff), UInt8(body.count & 0xff)] + body
    var out: [UInt8] = []
    var i = 0
    while i < handshake.count {
        let piece = handshake[i..<min(handshake.count, i + recordSize)]
        out += [0x16, 0x03, 0x01, UInt8(piece.count >> 8), UInt8(piece.count & 0xff)] + piece
        i += recordSize
    }
    return out
}

func sniExtension(_ names: [(UInt8, [UInt8])]) -> (UInt16, [UInt8]) {
    var list: [UInt8] = []
    for (t, n) in names { list += [t, UInt8(n.count >> 8), UInt8(n.count & 0xff)] + n }
    return (0, [UInt8(list.count >> 8), UInt8(list.count & 0xff)] + list)
}

/// Feeds `bytes` to an incremental parser `pieces` bytes at a time, until it stops needing more.
func feedInPieces<Outcome: Equatable>(_ bytes: [UInt8], pieces: Int, needMore: Outcome, _ feed: (ArraySlice<UInt8>) -> Outcome) -> Outcome {
    var i = 0
    var last = needMore
    while i < bytes.count {
        last = feed(bytes[i..<min(bytes.count, i + pieces)])
        i += pieces
        if last != needMore { return last }
    }
    return last
}

struct ClientHelloTests {
    func run(_ bytes: [UInt8], pieces: Int = Int.max) -> ClientHelloParser.Outcome {
        var p = ClientHelloParser()
        return feedInPieces(bytes, pieces: pieces, needMore: .needMore) { p.feed($0) }
    }

    let hello = clientHello(extensions: [(10, [0, 2, 0, 29]), sniExtension([(0, Array("API.Example.com.".utf8))]), (16, [0, 3, 2, 0x68, 0x32])])

    @Test func sniInOneRead() { #expect(run(hello) == .sni("api.example.com")) }
    @Test func sniByteByByte() { #expect(run(hello, pieces: 1) == .sni("api.example.com")) }
    @Test func sniAcrossRecords() {
        let fragmented = clientHello(extensions: [sniExtension([(0, Array("api.example.com".utf8))])], recordSize: 7)
        #expect(run(fragmented) == .sni("api.example.com"))
        #expect(run(fragmented, pieces: 3) == .sni("api.example.com"))
    }
    @Test func noSNI() {
        #expect(run(clientHello(extensions: nil)) == .noSNI)
        #expect(run(clientHello(extensions: [(10, [0, 2, 0, 29])])) == .noSNI)
    }
    @Test func refusesHostileHellos() {
        func invalid(_ b: [UInt8]) -> Bool { if case .invalid = run(b) { return true } else { return false } }
        #expect(invalid(clientHello(extensions: [sniExtension([(0, Array("a.com".utf8)), (0, Array("b.com".utf8))])])))
        #expect(invalid(clientHello(extensions: [sniExtension([(0, Array("a.com".utf8))]), sniExtension([(0, Array("b.com".utf8))])])))
        #expect(invalid(clientHello(extensions: [sniExtension([(1, Array("a.com".utf8))])])))
        #expect(invalid(clientHello(extensions: [sniExtension([(0, [0x61, 0, 0x62, 0x2e, 0x63])])])))
        #expect(invalid(clientHello(extensions: [sniExtension([(0, Array("bücher.de".utf8))])])))
        #expect(invalid(clientHello(extensions: [sniExtension([(0, Array(repeating: 0x61, count: 64) + Array(".com".utf8))])])))
        #expect(invalid(clientHello(extensions: [sniExtension([(0, [])])])))
        #expect(invalid(clientHello(extensions: [(0, [0, 50, 0, 0, 1, 0x61])])))  // list length lies
        #expect(invalid(Array("GET / HTTP/1.1\r\n".utf8)))
        // Declared lengths larger than the data that follows.
        #expect(invalid(clientHello(extensions: [(0, [0, 8, 0, 0, 50] + Array("a.com".utf8))])))
        #expect(invalid(clientHello(extensions: [(0, [0, 3, 0, 0, 0, 0x61])])))
        // The extension's own length running past the ClientHello.
        var lying = hello
        let extStart = 5 + 4 + 2 + 32 + 1 + 32 + 6 + 2
        lying[extStart + 2 + 2 + 1] = 0xff  // the first extension's length, low byte
        #expect(invalid(lying))
        // The handshake length claiming more than the records carry, then a new record type.
        var long = hello
        long[8] = long[8] &+ 10
        #expect(run(long) == .needMore)
        #expect(invalid(long + [0x17, 0x03, 0x03, 0x00, 0x01, 0x00]))
        // A handshake message claiming more than 16 KiB.
        #expect(invalid([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]))
        // A record of length 0, an oversized record, an alert in the middle.
        #expect(invalid([0x16, 0x03, 0x01, 0x00, 0x00]))
        #expect(invalid([0x16, 0x03, 0x01, 0x40, 0x01]))
        #expect(invalid(Array(hello.prefix(20)) + [0x15, 0x03, 0x03, 0, 2, 2, 40]) || run(Array(hello.prefix(20)) + [0x15, 0x03, 0x03, 0, 2, 2, 40]) == .needMore)
        // More than 16 KiB fed in total.
        var p = ClientHelloParser()
        _ = p.feed([0x16, 0x03, 0x01, 0x40, 0x00] + [0x01, 0x00, 0x3f, 0xfc])
        var outcome = ClientHelloParser.Outcome.needMore
        for _ in 0..<20 where outcome == .needMore { outcome = p.feed([UInt8](repeating: 0, count: 1000)) }
        if case .invalid = outcome {} else { Issue.record("no refusal past 16 KiB: \(outcome)") }
    }
    @Test func truncationsNeverAllow() {
        for cut in 0..<hello.count {
            let o = run(Array(hello.prefix(cut)))
            #expect(o == .needMore || { if case .invalid = o { return true } else { return false } }(), "cut \(cut): \(o)")
        }
    }
}

struct HTTPTests {
    func parse(_ s: String, pieces: Int = Int.max) -> HTTPHeadParser.Outcome {
        var p = HTTPHeadParser()
        return feedInPieces(Array(s.utf8), pieces: pieces, needMore: .needMore) { p.feed($0) }
    }
    func head(_ s: String, pieces: Int = Int.max) -> HTTPRequestHead? {
        if case .head(let h) = parse(s, pieces: pieces) { return h }
        return nil
    }
    func invalid(_ s: String) -> Bool { if case .invalid = parse(s) { return true } else { return false } }

    @Test func originForm() {
        let h = head("GET /x?y HTTP/1.1\r\nHost: Api.Example.com:8080\r\nAccept: */*\r\n\r\n", pieces: 1)
        #expect(h?.destination == Authority(host: .name("api.example.com"), port: 8080))
        #expect(h?.bytesAfterHead == 0)
    }

    @Test func pipelinedRequestsReportTheRest() {
        let two = "GET /a HTTP/1.1\r\nHost: a.example\r\n\r\nGET /b HTTP/1.1\r\nHost: evil.example\r\n\r\n"
        let h = head(two)
        #expect(h?.destination?.host == .name("a.example"))
        #expect(h?.bytesAfterHead == "GET /b HTTP/1.1\r\nHost: evil.example\r\n\r\n".utf8.count)
    }

    @Test func connect() {
        let h = head("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n")
        #expect(h?.isConnect == true && h?.destination == Authority(host: .name("api.example.com"), port: 443))
        #expect(head("CONNECT api.example.com:443 HTTP/1.1\r\n\r\n")?.isConnect == true)
        let smuggled = head("CONNECT api.example.com:443 HTTP/1.1\r\n\r\nGET http://evil/ HTTP/1.1\r\nHost: evil\r\n\r\n")
        #expect(smuggled?.bytesAfterHead ?? 0 > 0)
        #expect(invalid("CONNECT api.example.com HTTP/1.1\r\n\r\n"))
        #expect(invalid("CONNECT /x HTTP/1.1\r\n\r\n"))
        #expect(invalid("CONNECT http://a.com:443/ HTTP/1.1\r\n\r\n"))
        #expect(invalid("CONNECT a.com:443 HTTP/1.1\r\nHost: b.com:443\r\n\r\n"))
        #expect(invalid("CONNECT user@a.com:443 HTTP/1.1\r\n\r\n"))
    }

    @Test func absoluteForm() {
        let h = head("GET http://API.example.com:8080/p?q HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n")
        #expect(h?.target == .absolute(Authority(host: .name("api.example.com"), port: 8080), path: "/p?q"))
        #expect(h.map { String(decoding: $0.originFormHead(), as: UTF8.self) } == "GET /p?q HTTP/1.1\r\nHost: api.example.com:8080\r\nConnection: close\r\n\r\n")
        // The client's connection headers give way to one exchange per connection (a later
        // request on it would reach the server in absolute form, and unexamined).
        let kept = head("POST http://a.example/v1/x HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\nProxy-Connection: Keep-Alive\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eDp5\r\nContent-Length: 2\r\n\r\n")
        #expect(kept.map { String(decoding: $0.originFormHead(), as: UTF8.self) } == "POST /v1/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        #expect(invalid("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n"))
        #expect(invalid("GET http://a.example:81/ HTTP/1.1\r\nHost: a.example\r\n\r\n"))
        #expect(invalid("GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"))
        #expect(head("GET http://a.example HTTP/1.1\r\nHost: a.example:80\r\n\r\n")?.target == .absolute(Authority(host: .name("a.example"), port: nil), path: "/"))
    }

    @Test func refusesAmbiguousHeads() {
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com\r\nhOsT: a.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost : a.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nX: y\r\n folded\r\nHost: a.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\nHost: a.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com\rX: y\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a\u{0}.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com\u{0}\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\n\r\n"))
        #expect(invalid("GET / HTTP/2.0\r\nHost: a.com\r\n\r\n"))
        #expect(invalid("GET  / HTTP/1.1\r\nHost: a.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: bücher.de\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: user@a.com\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com:99999\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com\r\nX: \u{1}\r\n\r\n"))
        #expect(invalid("GET / HTTP/1.1\r\nHost: a.com\r\n" + String(repeating: "X: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n", count: 600) + "\r\n"))
        #expect(invalid(String(repeating: "A", count: 20000)))
        #expect(head("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n")?.destination == Authority(host: .address(IPAddress("2001:db8::1")!), port: 8080))
    }
}

/// Random bytes and mutated valid inputs: the parsers must return, never trap, and never
/// report a name that fails normalisation.
struct FuzzTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    @Test func randomAndMutatedInputs() {
        var rng = SplitMix(state: 0xC0DD0)
        let seeds: [[UInt8]] = [
            clientHello(extensions: [sniExtension([(0, Array("api.example.com".utf8))])], recordSize: 50),
            Array("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n".utf8),
            Array("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n".utf8),
            dnsQuery(labels: labels("api.example.com")),
        ]
        var outcomes = 0
        for round in 0..<4000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int.random(in: 0...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if round % 8 == 0, !bytes.isEmpty { bytes[0] = 0x16 }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: i)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                    }
                    if bytes.isEmpty { break }
                }
            }
            var hello = ClientHelloParser()
            var http = HTTPHeadParser()
            var i = 0
            while i < bytes.count {
                let n = Int.random(in: 1...64, using: &rng)
                let piece = bytes[i..<min(bytes.count, i + n)]
                if case .sni(let name) = hello.feed(piece) {
                    #expect((try? HostName.normalize(name).get()) == name)
                    outcomes += 1
                }
                if case .head(let h) = http.feed(piece), case .name(let name)? = h.destination?.host {
                    #expect((try? HostName.normalize(name).get()) == name)
                    outcomes += 1
                }
                i += n
            }
            if case .success(let q) = DNSQuery.parse(bytes) {
                _ = q.response(.noError, answers: [IPAddress("1.2.3.4")!])
                outcomes += 1
            }
            _ = EgressRule.parse(String(decoding: bytes.prefix(80), as: UTF8.self))
        }
        #expect(outcomes > 0)  // some mutants stay valid: the loop exercised the accepting paths too
    }
}
