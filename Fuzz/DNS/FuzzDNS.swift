import CordonEgress
import CordonPolicy
import FuzzSupport

/// DNS datagrams from both sides of the egress resolver. The first byte chooses:
/// even — a query a sandbox sent (`DNSQuery.parse`, then the responses built from it);
/// odd — an upstream server's answer (`parseUpstreamResponse`) to an A (bit 1 clear) or AAAA
/// query for api.example.com with the datagram's own ID, so the fuzzer need not guess it.
@main enum FuzzDNS {
    static let answers = [IPAddress("203.0.113.7")!, IPAddress("2001:db8::1")!]

    static func main() {
        Fuzzer.run { input in
            guard let mode = input.first else { return }
            let packet = Array(input.dropFirst())
            if mode & 1 == 0 { query(packet) } else { upstream(packet, aaaa: mode & 2 != 0) }
        }
    }

    static func query(_ packet: [UInt8]) {
        switch DNSQuery.parse(packet) {
        case .success(let query):
            let response = query.response(.noError, answers: answers)
            // The response echoes the ID and the question as received.
            require(response.count >= 12 + query.question.count
                         && Array(response[0..<2]) == Array(packet[0..<2])
                         && Array(response[12..<(12 + query.question.count)]) == query.question,
                         "the response does not echo the query")
            // An accepted name is one the resolver can ask upstream, and it reads back unchanged.
            let rebuilt = DNSQuery.build(id: query.id, name: query.name, type: query.type)
            guard case .success(let again) = DNSQuery.parse(rebuilt), again.name == query.name else {
                fatalError("accepted name \(query.name) does not survive build then parse")
            }
            _ = query.response(.nameError)
        case .failure(let malformed):
            if let id = malformed.id { _ = DNSQuery.formatError(id: id) }
        }
    }

    static func upstream(_ packet: [UInt8], aaaa: Bool) {
        let id = packet.count >= 2 ? UInt16(packet[0]) << 8 | UInt16(packet[1]) : 0
        let query = DNSQuery.build(id: id, name: "api.example.com", type: aaaa ? .aaaa : .a)
        _ = DNSQuery.parseUpstreamResponse(packet, to: query)
    }
}
