import CordonHTTP
import FuzzSupport

/// The endpoint engine's request reader (`HTTPRequestReader`): heads, Content-Length and chunked
/// bodies, pipelining, under small limits so that every cap is reached. The input is the byte
/// stream a client sends; fed once whole and once in pieces (1–61 bytes, from the input's byte
/// sum), it must give the same requests and the same failure. No request is over a limit, and
/// each one written back with a Content-Length body reads back the same.
@main enum FuzzHTTPRequest {
    static let limits = HTTPRequestLimits(maxHead: 2048, maxHeaders: 16, maxBody: 4096)

    static func main() {
        Fuzzer.run { input in
            let bytes = Array(input)
            let whole = read([bytes[...]])
            let piece = 1 + Int(bytes.reduce(0) { $0 &+ UInt32($1) } % 61)
            let pieces = stride(from: 0, to: bytes.count, by: piece).map { bytes[$0..<min(bytes.count, $0 + piece)] }
            let split = read(pieces)
            require(whole == split, "whole: \(whole), in pieces of \(piece): \(split)")
            for case .request(let r) in whole {
                require(r.body.count <= limits.maxBody && r.headers.count <= limits.maxHeaders, "over a limit: \(r)")
                let again = read([rewritten(r)[...]])
                guard case .request(let back)? = again.first else { fatalError("\(r) rewritten reads as \(again)") }
                require(back.method == r.method && back.target == r.target && back.version == r.version && back.body == r.body
                        && back.keepAlive == r.keepAlive, "\(r) rewritten reads as \(back)")
            }
        }
    }

    /// Every outcome, in order, up to the first failure.
    static func read(_ pieces: [ArraySlice<UInt8>]) -> [HTTPRequestReader.Next] {
        var reader = HTTPRequestReader(limits: limits)
        var out: [HTTPRequestReader.Next] = []
        for piece in pieces {
            reader.append(piece)
            require(reader.bufferedBytes >= 0, "negative buffered bytes")
            while true {
                let next = reader.next()
                if next == .needMore { break }
                out.append(next)
                if case .failed = next { return out }
            }
        }
        return out
    }

    /// `r` as a client would send it with a Content-Length body. The length header replaces
    /// the framing headers it had; a request that had none (and so no body) gets none, or the
    /// rewrite could hold one header line more than the limit the original was read under.
    static func rewritten(_ r: HTTPRequest) -> [UInt8] {
        var text = "\(r.method) \(r.target) \(r.version == .http10 ? "HTTP/1.0" : "HTTP/1.1")\r\n"
        var dropped = 0
        for h in r.headers {
            if ["content-length", "transfer-encoding", "expect"].contains(h.name.lowercased()) { dropped += 1; continue }
            text += "\(h.name): \(h.value)\r\n"
        }
        if dropped > 0 || !r.body.isEmpty { text += "Content-Length: \(r.body.count)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + r.body
    }
}
