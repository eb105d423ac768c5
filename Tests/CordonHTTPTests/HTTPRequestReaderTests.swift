import CordonHTTP
import Testing

/// `HTTPRequestReader`: framing of whole requests, fed whole and one byte at a time.
@Suite struct HTTPRequestReaderTests {
    /// Every outcome `text` gives, fed in pieces of `piece` bytes, until `.needMore`.
    func read(_ text: String, piece: Int = Int.max, limits: HTTPRequestLimits = HTTPRequestLimits()) -> [HTTPRequestReader.Next] {
        var reader = HTTPRequestReader(limits: limits)
        let bytes = Array(text.utf8)
        var out: [HTTPRequestReader.Next] = []
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + min(piece, bytes.count))
            reader.append(bytes[i..<end])
            i = end
            while true {
                let next = reader.next()
                if next == .needMore { break }
                out.append(next)
                if case .failed = next { return out }
            }
        }
        return out
    }

    /// The status of the failure `text` ends in, the same whole and byte by byte (-1 if not).
    func status(_ text: String, limits: HTTPRequestLimits = HTTPRequestLimits()) -> Int? {
        let seen: [Int?] = [Int.max, 1].map { piece in
            if case .failed(let e)? = read(text, piece: piece, limits: limits).last { return e.status }
            return nil
        }
        return seen[0] == seen[1] ? seen[0] : -1
    }

    @Test func contentLengthBodiesAndPipelining() {
        let text = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
            + "GET /v1/models?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        for piece in [Int.max, 1, 7] {
            let got = read(text, piece: piece)
            #expect(got.count == 2)
            guard case .request(let a) = got[0], case .request(let b) = got[1] else { Issue.record("\(got)"); return }
            #expect(a.method == "POST" && a.body == Array("hello".utf8) && a.keepAlive && a.header("content-length") == "5")
            #expect(b.path == "/v1/models" && b.query == "x=1" && !b.keepAlive && b.body.isEmpty)
        }
    }

    @Test func chunkedBodyIsDecoded() {
        let text = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
        for piece in [Int.max, 1, 3] {
            guard case .request(let r)? = read(text, piece: piece).first else { Issue.record("no request"); return }
            #expect(String(decoding: r.body, as: UTF8.self) == "hello world")
        }
    }

    @Test func http10KeepAliveOnlyWhenAsked() {
        guard case .request(let a)? = read("GET / HTTP/1.0\r\nHost: a\r\n\r\n").first,
              case .request(let b)? = read("GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n").first else {
            Issue.record("no request"); return
        }
        #expect(!a.keepAlive && b.keepAlive && a.version == .http10)
    }

    @Test func refusals() {
        let small = HTTPRequestLimits(maxHead: 256, maxHeaders: 3, maxBody: 10)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", limits: small) == 413)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n", limits: small) == 413)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: small) == 431)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nA: " + String(repeating: "x", count: 300) + "\r\n\r\n", limits: small) == 431)
        #expect(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n folded\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\nHost: a\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nX: caf\u{e9}\r\n\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX") == 400)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc") == 400)
        #expect(status("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\n\r\n") == 400)
    }

    @Test func expectContinueIsAskedOnce() {
        var reader = HTTPRequestReader()
        reader.append(Array("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8))
        #expect(reader.next() == .needMore && reader.awaitsContinue)
        reader.sentContinue()
        #expect(!reader.awaitsContinue)
        reader.append(Array("ok".utf8))
        guard case .request(let r) = reader.next() else { Issue.record("no request"); return }
        #expect(r.body == Array("ok".utf8) && !reader.awaitsContinue && !reader.hasRequestBytes)
    }
}
