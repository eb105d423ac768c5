import CordonPolicy
/// DNS record types the engine answers.
public enum DNSType: Sendable, Hashable, CustomStringConvertible {
    case a, aaaa, other(UInt16)

    public init(_ code: UInt16) {
        switch code {
        case 1: self = .a
        case 28: self = .aaaa
        default: self = .other(code)
        }
    }

    public var code: UInt16 {
        switch self {
        case .a: return 1
        case .aaaa: return 28
        case .other(let c): return c
        }
    }

    public var description: String {
        switch self {
        case .a: return "A"
        case .aaaa: return "AAAA"
        case .other(let c): return "TYPE\(c)"
        }
    }
}

/// DNS response codes the engine sends.
public enum DNSResponseCode: UInt8, Sendable {
    case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
}

/// One DNS query as a sandbox sent it: a single question, parsed strictly.
public struct DNSQuery: Sendable, Equatable {
    public let id: UInt16
    /// The RD bit, echoed in the response.
    public let recursionDesired: Bool
    /// The question name exactly as received (wire labels, case preserved).
    public let rawName: [UInt8]
    /// The question name as text: labels joined with '.', case preserved.
    public let name: String
    public let type: DNSType
    public let qclass: UInt16
    /// The question section bytes as received (name, type, class), echoed in responses.
    public let question: [UInt8]

    /// Why a datagram is not an acceptable query. `id` is set when the header could be read
    /// (so a FORMERR can be sent back), nil when even that failed (drop the datagram).
    public struct Malformed: Error, Equatable, Sendable, CustomStringConvertible {
        public let id: UInt16?
        public let reason: String
        public var description: String { reason }
    }

    /// Parses a query datagram. Refused: shorter than a header, QR set, an opcode other than
    /// QUERY, QDCOUNT != 1, answer or authority records, a compression pointer or an extended
    /// label type in the question, a label over 63 bytes, a name over 253 bytes (255 on the
    /// wire), a label with a NUL, control, non-printable or '.' byte, and a truncated question.
    /// Records in the additional section (EDNS OPT) are tolerated and ignored.
    public static func parse(_ packet: [UInt8]) -> Result<DNSQuery, Malformed> {
        guard packet.count >= 12 else { return .failure(Malformed(id: nil, reason: "shorter than a DNS header")) }
        let id = UInt16(packet[0]) << 8 | UInt16(packet[1])
        func bad(_ reason: String) -> Result<DNSQuery, Malformed> { .failure(Malformed(id: id, reason: reason)) }
        if packet[2] & 0x80 != 0 { return .failure(Malformed(id: nil, reason: "QR set (a response, not a query)")) }
        let opcode = (packet[2] >> 3) & 0x0f
        if opcode != 0 { return bad("opcode \(opcode) is not QUERY") }
        let qd = UInt16(packet[4]) << 8 | UInt16(packet[5])
        let an = UInt16(packet[6]) << 8 | UInt16(packet[7])
        let ns = UInt16(packet[8]) << 8 | UInt16(packet[9])
        if qd != 1 { return bad("QDCOUNT is \(qd), not 1") }
        if an != 0 || ns != 0 { return bad("a query with answer or authority records") }
        var i = 12
        var wireLength = 0
        var labels: [[UInt8]] = []
        while true {
            guard i < packet.count else { return bad("truncated question name") }
            let len = Int(packet[i])
            if len & 0xc0 == 0xc0 { return bad("compression pointer in the question") }
            if len & 0xc0 != 0 { return bad("extended label type in the question") }
            i += 1
            wireLength += 1 + len
            if len == 0 { break }
            if len > 63 { return bad("label longer than 63 bytes") }
            guard i + len <= packet.count else { return bad("truncated label") }
            let label = Array(packet[i..<(i + len)])
            if let b = label.first(where: { $0 <= 0x20 || $0 >= 0x7f || $0 == UInt8(ascii: ".") }) {
                return bad(b == 0 ? "NUL byte in a label" : b == UInt8(ascii: ".") ? "'.' inside a label" : "non-printable byte in a label")
            }
            labels.append(label)
            i += len
            if wireLength > 255 { return bad("name longer than 253 bytes") }
        }
        if labels.reduce(0, { $0 + $1.count }) + max(0, labels.count - 1) > 253 { return bad("name longer than 253 bytes") }
        guard i + 4 <= packet.count else { return bad("truncated question type/class") }
        let qtype = UInt16(packet[i]) << 8 | UInt16(packet[i + 1])
        let qclass = UInt16(packet[i + 2]) << 8 | UInt16(packet[i + 3])
        let name = labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
        return .success(DNSQuery(
            id: id, recursionDesired: packet[2] & 0x01 != 0,
            rawName: Array(packet[12..<(i)]), name: name, type: DNSType(qtype), qclass: qclass,
            question: Array(packet[12..<(i + 4)])))
    }

    /// A response echoing this query's ID and question: `answers` become A or AAAA records
    /// (only those of the question's family), with `ttl` seconds. `code` other than noError
    /// sends no answers.
    public func response(_ code: DNSResponseCode, answers: [IPAddress] = [], ttl: UInt32 = 30) -> [UInt8] {
        let records: [[UInt8]] = code != .noError ? [] : answers.compactMap { address in
            switch (type, address) {
            case (.a, .v4(let a)): return a.bytes
            case (.aaaa, .v6(let a)): return a.bytes
            default: return nil
            }
        }
        var out = DNSQuery.header(id: id, rd: recursionDesired, code: code, qd: 1, an: records.count)
        out += question
        for data in records {
            out += [0xc0, 0x0c]  // pointer to the question name at offset 12
            out += DNSQuery.be16(type.code) + DNSQuery.be16(qclass)
            out += [UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xff), UInt8(ttl >> 8 & 0xff), UInt8(ttl & 0xff)]
            out += DNSQuery.be16(UInt16(data.count)) + data
        }
        return out
    }

    /// FORMERR for a datagram whose question could not be trusted: header only.
    public static func formatError(id: UInt16) -> [UInt8] {
        header(id: id, rd: false, code: .formatError, qd: 0, an: 0)
    }

    static func header(id: UInt16, rd: Bool, code: DNSResponseCode, qd: Int, an: Int) -> [UInt8] {
        // QR=1, opcode 0, AA=0, RA=1 (we recurse for the sandbox).
        be16(id) + [0x80 | (rd ? 1 : 0), 0x80 | code.rawValue] + be16(UInt16(qd)) + be16(UInt16(an)) + [0, 0, 0, 0]
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    /// A query for `name` (already normalised) and `type` with recursion desired, as the
    /// resolver sends it upstream.
    public static func build(id: UInt16, name: String, type: DNSType) -> [UInt8] {
        var out = be16(id) + [0x01, 0x00] + be16(1) + [0, 0, 0, 0, 0, 0]
        for label in name.utf8.split(separator: UInt8(ascii: ".")) {
            out.append(UInt8(label.count))
            out += label
        }
        out.append(0)
        return out + be16(type.code) + be16(1)
    }
}

/// What an upstream server answered, as far as the resolver cares.
public enum DNSUpstreamAnswer: Equatable, Sendable {
    case addresses([IPAddress])
    case nameError
    case failure(String)
}

extension DNSQuery {
    /// Reads an upstream response to `query` (a datagram built by `build`): checks the ID, the
    /// QR bit and that the question is the one asked (name compared case-insensitively), then
    /// collects A/AAAA records of the asked type from the answer section. Any record whose
    /// lengths run past the packet makes the whole response a failure.
    public static func parseUpstreamResponse(_ packet: [UInt8], to query: [UInt8]) -> DNSUpstreamAnswer {
        guard packet.count >= 12, query.count >= 12 else { return .failure("short response") }
        guard packet[0] == query[0], packet[1] == query[1] else { return .failure("ID mismatch") }
        guard packet[2] & 0x80 != 0 else { return .failure("not a response") }
        if packet[2] & 0x02 != 0 { return .failure("truncated response (TC)") }
        let qd = Int(packet[4]) << 8 | Int(packet[5])
        let an = Int(packet[6]) << 8 | Int(packet[7])
        guard qd == 1 else { return .failure("response QDCOUNT \(qd)") }
        let question = query[12...]
        guard packet.count >= 12 + question.count,
              zip(packet[12..<(12 + question.count)], question).allSatisfy({ lower($0) == lower($1) })
        else { return .failure("response question differs from the query") }
        let rcode = packet[3] & 0x0f
        if rcode == 3 { return .nameError }
        if rcode != 0 { return .failure("upstream rcode \(rcode)") }
        let qtype = UInt16(query[query.count - 4]) << 8 | UInt16(query[query.count - 3])
        var i = 12 + question.count
        var out: [IPAddress] = []
        for _ in 0..<an {
            // Skip the owner name (labels or a pointer; pointers end the name).
            while true {
                guard i < packet.count else { return .failure("truncated answer") }
                let len = Int(packet[i])
                if len & 0xc0 == 0xc0 { i += 2; break }
                if len & 0xc0 != 0 { return .failure("bad label type in answer") }
                i += 1 + len
                if len == 0 { break }
            }
            guard i + 10 <= packet.count else { return .failure("truncated answer") }
            let type = UInt16(packet[i]) << 8 | UInt16(packet[i + 1])
            let klass = UInt16(packet[i + 2]) << 8 | UInt16(packet[i + 3])
            let rdlength = Int(packet[i + 8]) << 8 | Int(packet[i + 9])
            i += 10
            guard i + rdlength <= packet.count else { return .failure("truncated answer data") }
            if klass == 1 && type == qtype {
                if type == 1 && rdlength == 4 {
                    out.append(.v4(IPv4Address(packet[i], packet[i + 1], packet[i + 2], packet[i + 3])))
                } else if type == 28 && rdlength == 16, let a = IPv6Address(bytes: packet[i..<(i + 16)]) {
                    out.append(.v6(a))
                }
            }
            i += rdlength
        }
        return .addresses(out)
    }

    private static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b + 32 : b }
}
