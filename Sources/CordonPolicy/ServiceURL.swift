/// An http or https URL of a service cordond calls or lets a sandbox call (a model provider's
/// base URL, a package index), split: scheme, a host written so that where it is can be told
/// from the text alone, a port, and a path without a trailing "/". An IPv6 host is kept without
/// brackets.
public struct ServiceURL: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// "/v1", or "" (never ends in "/").
    public var path: String

    public init(scheme: String, host: String, port: Int, path: String) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
    }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        let defaultPort = (scheme == "https" && port == 443) || (scheme == "http" && port == 80)
        return "\(scheme)://\(h)\(defaultPort ? "" : ":\(port)")\(path)"
    }

    /// Why a text is not a service URL.
    public struct Problem: Error, Sendable, Equatable {
        public let message: String
        public init(message: String) { self.message = message }
    }

    /// `scheme://host[:port][/path]`, http or https; no user, query or fragment.
    public static func parse(_ text: String) -> Result<ServiceURL, Problem> {
        let scheme: String, rest: Substring
        if text.hasPrefix("https://") { (scheme, rest) = ("https", text.dropFirst(8)) }
        else if text.hasPrefix("http://") { (scheme, rest) = ("http", text.dropFirst(7)) }
        else { return .failure(Problem(message: "expected http:// or https://")) }
        if rest.contains(where: { $0 == "?" || $0 == "#" || $0 == "@" || $0 == " " || $0 == "\\" }) || rest.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value > 0x7e }) {
            return .failure(Problem(message: "no user, query, fragment, spaces or non-ASCII: scheme://host:port/path"))
        }
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        if path.split(separator: "/").contains("..") { return .failure(Problem(message: "no \"..\" in the path")) }
        let defaultPort = scheme == "https" ? 443 : 80
        let host: String, port: Int
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return .failure(Problem(message: "an IPv6 address ends with ]")) }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.isEmpty { port = defaultPort }
            else if after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) { port = p }
            else { return .failure(Problem(message: "bad port")) }
            guard let words = ipv6Words(host) else { return .failure(Problem(message: "bad IPv6 address")) }
            if words.allSatisfy({ $0 == 0 }) { return .failure(Problem(message: "[::] is no address to call: name the server's")) }
            if words[0..<5].allSatisfy({ $0 == 0 }) && words[5] == 0xffff {
                return .failure(Problem(message: "an IPv4-mapped address: write the IPv4 address itself"))
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let h = parts.first, !h.isEmpty else { return .failure(Problem(message: "expected a host")) }
            host = h.lowercased()
            if parts.count == 2 {
                guard let p = Int(parts[1]), (1...65535).contains(p) else { return .failure(Problem(message: "bad port \"\(parts[1])\"")) }
                port = p
            } else { port = defaultPort }
            if let problem = hostProblem(host) { return .failure(Problem(message: problem)) }
        }
        return .success(ServiceURL(scheme: scheme, host: host, port: port, path: path))
    }

    /// Why `host` (lowercased, not bracketed) is neither a strict dotted-quad IPv4 address nor
    /// a DNS name, or nil. What resolvers read as an address in other spellings (`127.1`,
    /// `2130706433`, `0x7f000001`, `0177.0.0.1`) is refused, so that whether a provider is on
    /// this machine, the local network or the internet can be told from the text alone.
    public static func hostProblem(_ host: String) -> String? {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard host.utf8.count <= 253, !labels.contains(where: \.isEmpty) else {
            return "bad host name (empty label, or a trailing dot)"
        }
        guard labels.allSatisfy({ $0.utf8.count <= 63 && $0.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 } }),
              labels.allSatisfy({ !$0.hasPrefix("-") && !$0.hasSuffix("-") }) else {
            return "bad host name (letters, digits and '-' in labels)"
        }
        let numeric = labels.last!.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
        let hexy = labels.contains { $0.hasPrefix("0x") }
        if numeric || hexy {
            // Then it must be four decimal numbers 0–255 without leading zeros.
            guard labels.count == 4, labels.allSatisfy({ l in
                l.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } && (l == "0" || !l.hasPrefix("0")) && (Int(l) ?? 256) <= 255
            }) else { return "an address written other than as four decimal numbers (a.b.c.d)" }
            if host == "0.0.0.0" { return "0.0.0.0 is no address to call: name the server's" }
        }
        return nil
    }

    /// The eight 16-bit words of an IPv6 address in text (with :: and a trailing dotted quad),
    /// or nil. No zone ids.
    public static func ipv6Words(_ text: String) -> [UInt16]? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func words(_ part: String, allowQuad: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let groups = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, g) in groups.enumerated() {
                if allowQuad && i == groups.count - 1 && g.contains(".") {
                    let q = g.split(separator: ".", omittingEmptySubsequences: false)
                    guard q.count == 4, let bytes = Optional(q.compactMap { UInt8($0) }), bytes.count == 4,
                          q.allSatisfy({ $0 == "0" || !$0.hasPrefix("0") }) else { return nil }
                    out.append(UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
                    out.append(UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
                } else {
                    guard (1...4).contains(g.count), let w = UInt16(g, radix: 16) else { return nil }
                    out.append(w)
                }
            }
            return out
        }
        if halves.count == 2 {
            guard let h = words(halves[0], allowQuad: false), let t = words(halves[1], allowQuad: true), h.count + t.count <= 7 else { return nil }
            head = h
            tail = t
            return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard let all = words(text, allowQuad: true), all.count == 8 else { return nil }
        return all
    }
}
