import CordonPolicy

// The request head as the egress proxy and the endpoint engine (CordonHTTPServer) both read it:
// one strict parser for every HTTP/1.x request that reaches Cordon. Moved here from CordonEgress
// so that the engine, which must not link the egress code, reads heads the same way.

/// A host as a client names it: a DNS name (normalised) or an IP literal.
public enum EgressHost: Hashable, Sendable, CustomStringConvertible {
    case name(String)
    case address(IPAddress)

    public var description: String {
        switch self {
        case .name(let n): return n
        case .address(.v6(let a)): return "[\(a)]"
        case .address(let a): return a.description
        }
    }
}

/// `host[:port]` from a Host header, an absolute URI or a CONNECT target.
public struct Authority: Hashable, Sendable, CustomStringConvertible {
    public var host: EgressHost
    public var port: UInt16?

    public init(host: EgressHost, port: UInt16?) { self.host = host; self.port = port }

    /// Parses `host[:port]`: no userinfo, an IPv6 literal in brackets, a port 1-65535 when the
    /// colon is there. Names are normalised with `HostName.normalize`.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<Authority, HostName.NameError> {
        let b = Array(bytes)
        if b.contains(UInt8(ascii: "@")) { return .failure(.init("authority has userinfo")) }
        var hostPart = b[...]
        var portPart: ArraySlice<UInt8>?
        if b.first == UInt8(ascii: "[") {
            guard let close = b.firstIndex(of: UInt8(ascii: "]")) else { return .failure(.init("unclosed IPv6 literal")) }
            hostPart = b[1..<close]
            let rest = b[(close + 1)...]
            if !rest.isEmpty {
                guard rest.first == UInt8(ascii: ":") else { return .failure(.init("junk after IPv6 literal")) }
                portPart = rest.dropFirst()
            }
            guard let a = IPv6Address(String(decoding: hostPart, as: UTF8.self)) else { return .failure(.init("bad IPv6 literal")) }
            return port(portPart).map { Authority(host: .address(.v6(a)), port: $0) }
        }
        if let colon = b.firstIndex(of: UInt8(ascii: ":")) {
            hostPart = b[..<colon]
            portPart = b[(colon + 1)...]
        }
        let text = String(decoding: hostPart, as: UTF8.self)
        if let a = IPv4Address(text) { return port(portPart).map { Authority(host: .address(.v4(a)), port: $0) } }
        switch HostName.normalize(hostPart) {
        case .failure(let e): return .failure(.init("host \(e.reason)"))
        case .success(let n): return port(portPart).map { Authority(host: .name(n), port: $0) }
        }
    }

    private static func port(_ p: ArraySlice<UInt8>?) -> Result<UInt16?, HostName.NameError> {
        guard let p else { return .success(nil) }
        guard (1...5).contains(p.count), p.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return .failure(.init("bad port")) }
        let n = p.reduce(0) { $0 * 10 + Int($1 - 48) }
        guard (1...65535).contains(n) else { return .failure(.init("port out of range")) }
        return .success(UInt16(n))
    }

    public var description: String { port.map { "\(host):\($0)" } ?? host.description }
}

/// One header line of a request head.
public struct HTTPHeader: Equatable, Sendable {
    public let name: String
    public let value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

extension Array where Element == HTTPHeader {
    /// The first value of the header `name`, compared without case (ASCII).
    public func first(_ name: String) -> String? {
        let wanted = name.lowercased()
        return first { $0.name.lowercased() == wanted }?.value
    }

    /// Every value of the header `name`, compared without case (ASCII), in order.
    public func all(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return filter { $0.name.lowercased() == wanted }.map(\.value)
    }
}

/// A parsed HTTP/1.x request head (request line and headers), strictly: lines end in CRLF,
/// no bare CR or LF, no NUL or control characters, no obs-fold, no whitespace before a colon,
/// exactly one Host (optional for CONNECT, where it must agree with the target when present).
public struct HTTPRequestHead: Equatable, Sendable {
    public enum Target: Equatable, Sendable {
        /// "/path?query"
        case origin(String)
        /// "http://authority/path": the form a client uses with an HTTP proxy.
        case absolute(Authority, path: String)
        /// "host:port", CONNECT only.
        case authority(Authority)
        /// "*", OPTIONS only.
        case asterisk
    }

    public let method: String
    public let target: Target
    /// "HTTP/1.1" or "HTTP/1.0".
    public let version: String
    public let headers: [HTTPHeader]
    /// The Host header (nil only for a CONNECT without one).
    public let host: Authority?
    /// Bytes of the head including the final CRLF CRLF.
    public let headLength: Int
    /// Bytes received after the head when it was parsed (a body, a pipelined request, or data
    /// a client sent through a CONNECT before the proxy answered).
    public let bytesAfterHead: Int
    /// The head as received.
    public let raw: [UInt8]

    public var isConnect: Bool { method == "CONNECT" }

    /// The headers `originFormHead` leaves out, lower-case.
    public static let droppedInOriginForm: Set<String> = ["connection", "proxy-connection", "keep-alive", "proxy-authorization"]

    /// Where the request wants to go: the CONNECT target, the absolute URI's authority, or Host.
    public var destination: Authority? {
        switch target {
        case .authority(let a), .absolute(let a, _): return a
        case .origin, .asterisk: return host
        }
    }

    /// The head with an absolute-form target rewritten to origin-form (what an origin server
    /// expects from a proxy), and with `Connection: close` in place of the client's connection
    /// headers: the proxy decides on a connection's first request and then relays bytes, so a
    /// later request on a kept-alive connection would reach the server in absolute form (which
    /// servers refuse: llama.cpp's answers 404) and unexamined. Closing after one exchange makes
    /// the client open a new connection, decided anew, for each request (a server that ignores
    /// the header keeps the connection, and later requests on it reach it as sent). A
    /// `Proxy-Authorization` is the proxy's, never the origin's: it is dropped. Other heads
    /// unchanged.
    public func originFormHead() -> [UInt8] {
        guard case .absolute(_, let path) = target else { return raw }
        let hopByHop: Set<String> = Self.droppedInOriginForm
        var out = "\(method) \(path) \(version)\r\n"
        for h in headers where !hopByHop.contains(h.name.lowercased()) { out += "\(h.name): \(h.value)\r\n" }
        out += "Connection: close\r\n\r\n"
        return Array(out.utf8)
    }
}

/// Incremental parser for `HTTPRequestHead`; the head may arrive in pieces of any size.
public struct HTTPHeadParser: Sendable {
    public enum Outcome: Equatable, Sendable {
        case needMore
        case head(HTTPRequestHead)
        case invalid(String)
    }

    /// Why a head was refused, for the status a server answers with.
    public enum Rejection: Equatable, Sendable {
        /// Longer than `limit` (431).
        case tooLarge
        /// More header lines than `maxHeaders` (431).
        case tooManyHeaders
        /// Not HTTP/1.0 or HTTP/1.1 (505).
        case unsupportedVersion
        /// Anything else (400).
        case malformed
    }

    public let limit: Int
    public let maxHeaders: Int
    public let asciiOnly: Bool
    /// Set with `.invalid`.
    public private(set) var rejection: Rejection?
    private var buffer: [UInt8] = []
    private var scanned = 0
    private var done: Outcome?

    /// `maxHeaders`: header lines allowed; `asciiOnly`: a byte above 0x7F anywhere in the head
    /// is refused (the endpoint's heads are ASCII; the proxy passes UTF-8 values through).
    public init(limit: Int = 16 * 1024, maxHeaders: Int = .max, asciiOnly: Bool = false) {
        self.limit = limit
        self.maxHeaders = maxHeaders
        self.asciiOnly = asciiOnly
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) -> Outcome {
        if let done { return done }
        buffer.append(contentsOf: bytes)
        var i = scanned
        while i < buffer.count {
            let b = buffer[i]
            if b == 0 { return finish(.invalid("NUL byte in the request head")) }
            if b >= 0x80 && asciiOnly { return finish(.invalid("non-ASCII byte in the request head")) }
            if b == UInt8(ascii: "\n") && (i == 0 || buffer[i - 1] != UInt8(ascii: "\r")) {
                return finish(.invalid("bare LF in the request head"))
            }
            if b == UInt8(ascii: "\r") {
                guard i + 1 < buffer.count else { break }
                if buffer[i + 1] != UInt8(ascii: "\n") { return finish(.invalid("bare CR in the request head")) }
            }
            if b == UInt8(ascii: "\n") && i >= 3 && buffer[i - 3] == UInt8(ascii: "\r") && buffer[i - 2] == UInt8(ascii: "\n") {
                if i + 1 > limit { return finish(.invalid("request head larger than \(limit) bytes"), .tooLarge) }
                let (outcome, rejection) = Self.parse(Array(buffer[0...i]), extra: buffer.count - i - 1, maxHeaders: maxHeaders)
                return finish(outcome, rejection)
            }
            i += 1
        }
        scanned = i
        if buffer.count > limit || scanned >= limit { return finish(.invalid("request head larger than \(limit) bytes"), .tooLarge) }
        return .needMore
    }

    private mutating func finish(_ outcome: Outcome, _ why: Rejection? = .malformed) -> Outcome {
        done = outcome
        if case .invalid = outcome { rejection = why ?? .malformed }
        buffer = []
        return outcome
    }

    /// A byte of an RFC 9110 token (methods, header names).
    public static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    private static func bad(_ message: String, _ why: Rejection = .malformed) -> (Outcome, Rejection?) { (.invalid(message), why) }

    static func parse(_ head: [UInt8], extra: Int, maxHeaders: Int) -> (Outcome, Rejection?) {
        // Lines without their CRLF; the last two are empty (the terminator).
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for i in 0..<head.count where head[i] == UInt8(ascii: "\n") {
            lines.append(head[start..<(i - 1)])
            start = i + 1
        }
        guard lines.count >= 2, lines.last?.isEmpty == true else { return bad("malformed head") }
        let requestLine = lines[0]
        if requestLine.isEmpty { return bad("empty request line") }
        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else { return bad("request line is not METHOD TARGET VERSION") }
        guard (1...32).contains(parts[0].count), parts[0].allSatisfy(isTokenByte) else { return bad("bad method") }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return bad("bad request target") }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return bad("unsupported version", .unsupportedVersion) }
        let method = String(decoding: parts[0], as: UTF8.self)

        var headers: [HTTPHeader] = []
        var hostValues: [ArraySlice<UInt8>] = []
        if lines.count - 2 > maxHeaders { return bad("more than \(maxHeaders) header lines", .tooManyHeaders) }
        for line in lines[1..<(lines.count - 1)] {
            guard let first = line.first else { return bad("empty header line") }
            if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { return bad("obs-fold (continuation line)") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return bad("header line without a colon") }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                return bad(name.last == UInt8(ascii: " ") || name.last == UInt8(ascii: "\t") ? "whitespace before a header colon" : "bad header name")
            }
            var value = line[(colon + 1)...]
            if value.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7f }) { return bad("control character in a header value") }
            while let f = value.first, f == 0x20 || f == 0x09 { value = value.dropFirst() }
            while let l = value.last, l == 0x20 || l == 0x09 { value = value.dropLast() }
            let nameText = String(decoding: name, as: UTF8.self)
            if nameText.lowercased() == "host" { hostValues.append(value) }
            headers.append(HTTPHeader(name: nameText, value: String(decoding: value, as: UTF8.self)))
        }
        if hostValues.count > 1 { return bad("more than one Host header") }
        var host: Authority?
        if let v = hostValues.first {
            switch Authority.parse(v) {
            case .success(let a): host = a
            case .failure(let e): return bad("Host: \(e.reason)")
            }
        }

        let rawTarget = parts[1]
        let target: HTTPRequestHead.Target
        if method == "CONNECT" {
            switch Authority.parse(rawTarget) {
            case .failure(let e): return bad("CONNECT target: \(e.reason)")
            case .success(let a):
                guard a.port != nil else { return bad("CONNECT target without a port") }
                if let host, host.host != a.host || (host.port != nil && host.port != a.port) {
                    return bad("Host \(host) disagrees with the CONNECT target \(a)")
                }
                target = .authority(a)
            }
        } else {
            guard host != nil else { return bad("no Host header") }
            if rawTarget.first == UInt8(ascii: "/") {
                target = .origin(String(decoding: rawTarget, as: UTF8.self))
            } else if rawTarget.elementsEqual("*".utf8) {
                guard method == "OPTIONS" else { return bad("asterisk-form target outside OPTIONS") }
                target = .asterisk
            } else {
                let scheme = Array("http://".utf8)
                guard rawTarget.count > scheme.count,
                      zip(rawTarget.prefix(scheme.count), scheme).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 }) else {
                    return bad("request target is neither origin-form nor an http:// absolute URI")
                }
                let rest = rawTarget.dropFirst(scheme.count)
                let end = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? rest.endIndex
                guard case .success(let a) = Authority.parse(rest[rest.startIndex..<end]) else { return bad("bad authority in the absolute URI") }
                let pathBytes = rest[end...]
                var path = String(decoding: pathBytes, as: UTF8.self)
                if path.hasPrefix("#") { path = "" }
                if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
                if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
                guard let host, host.host == a.host, (host.port ?? 80) == (a.port ?? 80) else {
                    return bad("Host disagrees with the absolute URI's authority \(a)")
                }
                target = .absolute(a, path: path)
            }
        }
        return (.head(HTTPRequestHead(method: method, target: target, version: version, headers: headers, host: host,
                                      headLength: head.count, bytesAfterHead: extra, raw: head)), nil)
    }
}
