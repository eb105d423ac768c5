import CordonHTTP
import CordonPolicy
import FuzzSupport

/// The egress proxy's HTTP request-head reader and `Authority.parse`. The input is the byte
/// stream a sandbox sends; it is fed once whole and once in pieces whose size comes from the
/// bytes' sum (1–61), and both must reach the same outcome (but for `bytesAfterHead`, which is
/// what had arrived after the head by then). A destination host name is already
/// normalised, and the origin-form rewrite keeps a head that reads back to the same request.
@main enum FuzzHTTP {
    static func main() {
        Fuzzer.run { input in
            let bytes = Array(input)
            var whole = HTTPHeadParser()
            let outcome = whole.feed(bytes)
            if case .head(let head) = outcome { check(head) }
            guard bytes.count <= whole.limit else { return }
            var split = HTTPHeadParser()
            let (piece, last) = feedInPieces(bytes, needMore: HTTPHeadParser.Outcome.needMore) { split.feed($0) }
            require(same(last, outcome), "whole: \(outcome), in pieces of \(piece): \(last)")
            // The same bytes as a CONNECT or Host authority on their own.
            if bytes.count <= 300 { _ = Authority.parse(bytes) }
        }
    }

    static func same(_ a: HTTPHeadParser.Outcome, _ b: HTTPHeadParser.Outcome) -> Bool {
        guard case .head(let x) = a, case .head(let y) = b else { return a == b }
        return x.method == y.method && x.target == y.target && x.version == y.version && x.headers == y.headers
            && x.host == y.host && x.headLength == y.headLength && x.raw == y.raw
    }

    static func check(_ head: HTTPRequestHead) {
        if case .name(let name)? = head.destination?.host {
            require((try? HostName.normalize(name).get()) == name, "destination \(name) is not normalised")
        }
        let rewritten = head.originFormHead()
        // The rewrite may be a few bytes longer than the head (`Connection: close` replaces the
        // scheme and authority): it is what the server reads, not this parser.
        var again = HTTPHeadParser(limit: 16 * 1024 + 64)
        guard case .head(let reread) = again.feed(rewritten) else {
            fatalError("origin-form head does not read back: \(String(decoding: rewritten, as: UTF8.self))")
        }
        var expected = head.headers
        if case .absolute = head.target {
            expected.removeAll { HTTPRequestHead.droppedInOriginForm.contains($0.name.lowercased()) }
            expected.append(HTTPHeader(name: "Connection", value: "close"))
        }
        require(reread.method == head.method && reread.headers == expected && reread.host == head.host,
                     "origin-form head reads back as another request")
    }
}
