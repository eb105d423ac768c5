import CordonPolicy
/// One audit record from the engine: a DNS answer or a connection decision.
public struct EgressEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, Codable {
        /// A DNS query from the sandbox and what it was answered.
        case dns
        /// A TCP connection from the sandbox and whether it was let through.
        case connection
    }

    public enum Verdict: String, Sendable, Equatable, Codable {
        case allowed, denied
    }

    public var kind: Kind
    public var verdict: Verdict
    /// Why: which rule allowed it, or what was refused ("not on the allowlist", "SNI a.com does
    /// not match ..."). For DNS also the answer kind ("answered", "NXDOMAIN: not on the allowlist").
    public var reason: String
    /// The DNS question name (normalised when it could be), or the name the client presented
    /// (SNI, Host, CONNECT target).
    public var name: String?
    /// DNS only: the question type.
    public var queryType: DNSType?
    /// DNS only: the addresses answered.
    public var answers: [IPAddress]
    /// Connection only: the destination (original destination, or the address dialled for a
    /// CONNECT / absolute-form proxy request).
    public var destination: Endpoint?
    /// Where the query or connection came from (inside the sandbox).
    public var client: Endpoint?
    /// Connection only: payload bytes relayed client → upstream and upstream → client.
    public var bytesUp: UInt64
    public var bytesDown: UInt64
    /// Connection only: seconds from accept to close.
    public var duration: Double
    /// Connection only: how an allowed connection ended ("closed by both sides", "idle timeout").
    public var end: String?

    public init(kind: Kind, verdict: Verdict, reason: String, name: String? = nil, queryType: DNSType? = nil,
                answers: [IPAddress] = [], destination: Endpoint? = nil, client: Endpoint? = nil,
                bytesUp: UInt64 = 0, bytesDown: UInt64 = 0, duration: Double = 0, end: String? = nil) {
        self.kind = kind
        self.verdict = verdict
        self.reason = reason
        self.name = name
        self.queryType = queryType
        self.answers = answers
        self.destination = destination
        self.client = client
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.duration = duration
        self.end = end
    }

    public var description: String {
        var parts = ["\(kind == .dns ? "dns" : "connection") \(verdict.rawValue): \(reason)"]
        if let name { parts.append("name=\(name)") }
        if let queryType { parts.append("type=\(queryType)") }
        if !answers.isEmpty { parts.append("answers=\(answers.map(\.description).joined(separator: ","))") }
        if let destination { parts.append("destination=\(destination)") }
        if kind == .connection { parts.append("up=\(bytesUp) down=\(bytesDown)") }
        return parts.joined(separator: " ")
    }
}
