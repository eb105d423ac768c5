import CordonPolicy
/// Reads the server name (SNI) out of a TLS ClientHello as it arrives, in pieces of any size.
///
/// The handshake message may span several TLS records, and the records several reads; every
/// length field is checked against its container, and everything together is limited to
/// `limit` bytes (16 KiB). Only one `host_name` entry is accepted; other name types, duplicate
/// extensions or entries, and names that `HostName.normalize` refuses make the hello invalid.
public struct ClientHelloParser: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Feed more bytes.
        case needMore
        /// A complete ClientHello with this (normalised) server name.
        case sni(String)
        /// A complete, well-formed ClientHello without a server_name extension.
        case noSNI
        /// Not a ClientHello we accept, and why.
        case invalid(String)
    }

    public let limit: Int
    private var received: [UInt8] = []
    /// Handshake bytes gathered from the record payloads read so far.
    private var handshake: [UInt8] = []
    /// Offset in `received` of the next record header.
    private var nextRecord = 0
    private var done: Outcome?

    public init(limit: Int = 16 * 1024) { self.limit = limit }

    /// Adds bytes and says whether the hello is complete.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> Outcome {
        if let done { return done }
        if received.count + bytes.count > limit {
            return finish(.invalid("ClientHello larger than \(limit) bytes"))
        }
        received.append(contentsOf: bytes)
        while received.count - nextRecord >= 5 {
            let h = nextRecord
            guard received[h] == 0x16 else {
                return finish(.invalid(h == 0 ? "not a TLS handshake record" : "a non-handshake record before the ClientHello ended"))
            }
            guard received[h + 1] == 0x03, received[h + 2] <= 0x04 else { return finish(.invalid("unknown TLS record version")) }
            let length = Int(received[h + 3]) << 8 | Int(received[h + 4])
            guard length > 0 else { return finish(.invalid("empty handshake record")) }
            guard length <= 16384 else { return finish(.invalid("record longer than 2^14 bytes")) }
            guard received.count - h - 5 >= length else { break }
            handshake.append(contentsOf: received[(h + 5)..<(h + 5 + length)])
            nextRecord = h + 5 + length
            if handshake.count >= 4 {
                guard handshake[0] == 0x01 else { return finish(.invalid("first handshake message is not a ClientHello")) }
                let messageLength = Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3])
                guard messageLength + 4 <= limit else { return finish(.invalid("ClientHello larger than \(limit) bytes")) }
                if handshake.count >= messageLength + 4 {
                    return finish(Self.parseHello(handshake[4..<(4 + messageLength)]))
                }
            }
        }
        if nextRecord < received.count && received[nextRecord] != 0x16 {
            return finish(.invalid(nextRecord == 0 ? "not a TLS handshake record" : "a non-handshake record before the ClientHello ended"))
        }
        return .needMore
    }

    private mutating func finish(_ outcome: Outcome) -> Outcome {
        done = outcome
        received = []
        handshake = []
        return outcome
    }

    /// Parses a ClientHello body (after the 4-byte handshake header).
    static func parseHello(_ body: ArraySlice<UInt8>) -> Outcome {
        var r = ByteReader(body)
        guard let version = r.u16(), version >= 0x0300, version <= 0x0304 else { return .invalid("bad client_version") }
        guard r.skip(32) else { return .invalid("truncated random") }
        guard let sid = r.u8(), sid <= 32, r.skip(Int(sid)) else { return .invalid("bad session_id") }
        guard let suites = r.u16(), suites >= 2, suites % 2 == 0, r.skip(Int(suites)) else { return .invalid("bad cipher_suites") }
        guard let comp = r.u8(), comp >= 1, r.skip(Int(comp)) else { return .invalid("bad compression_methods") }
        if r.remaining == 0 { return .noSNI }
        guard let extLength = r.u16(), Int(extLength) == r.remaining else { return .invalid("extensions length does not match the ClientHello") }
        var seen = Set<UInt16>()
        var name: String?
        while r.remaining > 0 {
            guard let type = r.u16(), let length = r.u16(), let data = r.bytes(Int(length)) else {
                return .invalid("truncated extension")
            }
            guard seen.insert(type).inserted else { return .invalid("duplicate extension \(type)") }
            guard type == 0 else { continue }
            switch parseServerName(data) {
            case .success(let n): name = n
            case .failure(let e): return .invalid(e.reason)
            }
        }
        return name.map { .sni($0) } ?? .noSNI
    }

    private static func parseServerName(_ data: ArraySlice<UInt8>) -> Result<String, HostName.NameError> {
        var r = ByteReader(data)
        guard let listLength = r.u16(), Int(listLength) == r.remaining, listLength > 0 else {
            return .failure(.init("server_name list length does not match the extension"))
        }
        guard let type = r.u8(), let length = r.u16(), let name = r.bytes(Int(length)) else {
            return .failure(.init("truncated server_name entry"))
        }
        guard type == 0 else { return .failure(.init("server_name type \(type) is not host_name")) }
        guard r.remaining == 0 else { return .failure(.init("more than one server_name entry")) }
        switch HostName.normalize(name) {
        case .success(let n): return .success(n)
        case .failure(let e): return .failure(.init("server name \(e.reason)"))
        }
    }
}

/// Bounds-checked big-endian reads over a byte slice.
struct ByteReader {
    private let data: ArraySlice<UInt8>
    private var at: Int

    init(_ data: ArraySlice<UInt8>) { self.data = data; at = data.startIndex }

    var remaining: Int { data.endIndex - at }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { at += 1 }
        return data[at]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { at += 2 }
        return UInt16(data[at]) << 8 | UInt16(data[at + 1])
    }

    mutating func skip(_ n: Int) -> Bool {
        guard n >= 0, remaining >= n else { return false }
        at += n
        return true
    }

    mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, remaining >= n else { return nil }
        defer { at += n }
        return data[at..<(at + n)]
    }
}
