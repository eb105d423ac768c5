import CordonEgress
import CordonPolicy
import FuzzSupport

/// The egress proxy's TLS ClientHello reader (SNI). The input is the byte stream a sandbox
/// sends; it is fed once whole and once in pieces whose size comes from the bytes' sum (1–61),
/// and both must reach the same outcome. An accepted SNI is already normalised.
@main enum FuzzClientHello {
    static func main() {
        Fuzzer.run { input in
            let bytes = Array(input)
            var whole = ClientHelloParser()
            let outcome = whole.feed(bytes)
            if case .sni(let name) = outcome {
                require((try? HostName.normalize(name).get()) == name, "SNI \(name) is not normalised")
            }
            // Past the limit, how much arrives per read decides where it is noticed.
            guard bytes.count <= whole.limit else { return }
            var split = ClientHelloParser()
            let (piece, last) = feedInPieces(bytes, needMore: ClientHelloParser.Outcome.needMore) { split.feed($0) }
            require(last == outcome, "whole: \(outcome), in pieces of \(piece): \(last)")
        }
    }
}
