/// DNS host names as the allowlist compares them.
public enum HostName {
    /// The canonical form of a host name: ASCII lowercase, one trailing dot removed; each label
    /// 1-63 bytes of [a-z0-9-] not starting or ending with '-', at most 253 bytes in all. Raw
    /// UTF-8 is refused (internationalised names are written in punycode, "xn--..."), and so are
    /// NUL, control characters, spaces, '_' and anything else. Returns the name or why not.
    public static func normalize(_ bytes: some Collection<UInt8>) -> Result<String, NameError> {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes {
            switch b {
            case 0: return .failure(.init("contains a NUL byte"))
            case 1..<0x20, 0x7f: return .failure(.init("contains a control character"))
            case 0x80...: return .failure(.init("contains non-ASCII bytes (write internationalised names as punycode, xn--...)"))
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): out.append(b + 32)
            default: out.append(b)
            }
        }
        if out.last == UInt8(ascii: ".") { out.removeLast() }
        if out.isEmpty { return .failure(.init("is empty")) }
        if out.count > 253 { return .failure(.init("is longer than 253 bytes")) }
        for label in out.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            if label.isEmpty { return .failure(.init("has an empty label")) }
            if label.count > 63 { return .failure(.init("has a label longer than 63 bytes")) }
            if label.first == UInt8(ascii: "-") || label.last == UInt8(ascii: "-") {
                return .failure(.init("has a label starting or ending with '-'"))
            }
            if !label.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }) {
                return .failure(.init("has a character other than letters, digits, '-' and '.'"))
            }
        }
        return .success(String(decoding: out, as: UTF8.self))
    }

    /// `normalize` over a string's UTF-8.
    public static func normalize(_ text: some StringProtocol) -> Result<String, NameError> {
        normalize(Array(text.utf8))
    }

    /// Why a name was refused.
    public struct NameError: Error, Equatable, Sendable, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }
}

/// An inclusive range of ports, 1-65535.
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public let lower: UInt16
    public let upper: UInt16

    public init?(_ lower: UInt16, _ upper: UInt16) {
        guard lower >= 1, lower <= upper else { return nil }
        self.lower = lower; self.upper = upper
    }

    public func contains(_ port: UInt16) -> Bool { port >= lower && port <= upper }

    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}

/// One `network.allow` entry of a policy.
public struct EgressRule: Hashable, Sendable, CustomStringConvertible {
    public enum Destination: Hashable, Sendable {
        /// Exactly this name.
        case name(String)
        /// One or more labels below this suffix ("*.pypi.org" holds "pypi.org"); never the
        /// suffix itself.
        case nameSuffix(String)
        /// An address block (a single address is a /32 or /128).
        case network(IPNetwork)
    }

    public let destination: Destination
    public let ports: PortRange

    /// More than one name, address or port: a wildcard, an address block or a port range.
    public var isBroad: Bool {
        if ports.lower != ports.upper { return true }
        switch destination {
        case .name: return false
        case .nameSuffix: return true
        case .network(let n): if case .v4 = n.address { return n.prefixLength < 32 } else { return n.prefixLength < 128 }
        }
    }

    public init(destination: Destination, ports: PortRange) {
        self.destination = destination
        self.ports = ports
    }

    /// Why an entry was refused; `description` names the entry.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let entry: String
        public let reason: String
        public var description: String { "network.allow entry \"\(entry)\": \(reason)" }
    }

    /// Why an IPv6 rule is refused (the parser's diagnostics and the docs quote it).
    public static let ipv6Refusal = "IPv6 egress is refused on every path; see SECURITY.md"

    /// Parses `NAME:PORT`, `*.SUFFIX:PORT`, `A.B.C.D:PORT` or `A.B.C.D/N:PORT`, where PORT is `N`
    /// or `LO-HI` (1-65535). A bracketed IPv6 address or block (`[2001:db8::1]:443`) is read and
    /// refused: IPv6 egress is refused on every path, so such a rule would never match.
    public static func parse(_ entry: String) -> Result<EgressRule, ParseError> {
        func fail(_ reason: String) -> Result<EgressRule, ParseError> {
            let shown = String(decoding: entry.utf8.prefix(300).map { $0 < 0x20 || $0 == 0x7f ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
            return .failure(ParseError(entry: shown, reason: reason))
        }
        if entry.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return fail("contains a NUL or control character") }
        guard let colon = entry.utf8.lastIndex(of: UInt8(ascii: ":")) else { return fail("expected HOST:PORT, where HOST is a name, *.SUFFIX or an IPv4 address or block (A.B.C.D/N), and PORT a port or a range LO-HI") }
        let host = Substring(entry.utf8[..<colon])
        let portText = Substring(entry.utf8[entry.utf8.index(after: colon)...])
        guard let ports = parsePorts(portText) else { return fail("expected a port 1-65535 or a range LO-HI, found \"\(portText)\"") }

        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return fail("expected [IPv6]:PORT") }
            let inner = host.dropFirst().dropLast()
            let (addressText, prefix) = splitPrefix(inner)
            guard let a = IPv6Address(addressText) else { return fail("\"\(addressText)\" is not an IPv6 address") }
            let length = prefix.map { Int($0) } ?? 128
            guard let length, IPNetwork(address: .v6(a), prefixLength: length) != nil else {
                return fail("invalid prefix length or bits set below it in \"\(inner)\"")
            }
            // Well formed, and refused: the engine dials IPv4 only, so the rule could never
            // match, and a policy that lists it would read as allowing what nothing allows.
            var why = "\"\(entry)\" is an IPv6 address rule, which would never match: \(ipv6Refusal)"
            if case .v4(let mapped) = IPAddress.v6(a).unmapped, length == 128 {
                why += " (an IPv4-mapped address is IPv4: write \(mapped):\(ports))"
            }
            return fail(why)
        }
        if host.contains(":") { return fail("\"\(entry)\" names an IPv6 address, and \(ipv6Refusal)") }

        let (addressText, prefix) = splitPrefix(host)
        if prefix != nil || IPv4Address(addressText) != nil || looksNumeric(addressText) {
            guard let a = IPv4Address(addressText) else { return fail("\"\(addressText)\" is not an IPv4 address") }
            guard let length = prefix.map({ Int($0) }) ?? 32, let network = IPNetwork(address: .v4(a), prefixLength: length) else {
                return fail("invalid prefix length or bits set below it in \"\(host)\"")
            }
            return .success(EgressRule(destination: .network(network), ports: ports))
        }

        var wildcard = false
        var nameText = host
        if host.hasPrefix("*.") { wildcard = true; nameText = host.dropFirst(2) }
        if nameText.contains("*") { return fail("'*' is allowed only as the whole first label (\"*.example.com\")") }
        switch HostName.normalize(nameText) {
        case .failure(let e): return fail("the name \(e.reason)")
        case .success(let name):
            if wildcard && !name.contains(".") { return fail("a wildcard needs a suffix of at least two labels") }
            return .success(EgressRule(destination: wildcard ? .nameSuffix(name) : .name(name), ports: ports))
        }
    }

    private static func parsePorts(_ text: Substring) -> PortRange? {
        func number(_ s: Substring) -> UInt16? {
            guard (1...5).contains(s.utf8.count), s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let n = Int(s), (1...65535).contains(n) else { return nil }
            return UInt16(n)
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return number(parts[0]).flatMap { PortRange($0, $0) }
        case 2: guard let lo = number(parts[0]), let hi = number(parts[1]) else { return nil }
            return PortRange(lo, hi)
        default: return nil
        }
    }

    private static func splitPrefix(_ s: Substring) -> (Substring, Substring?) {
        guard let slash = s.firstIndex(of: "/") else { return (s, nil) }
        let p = s[s.index(after: slash)...]
        guard (1...3).contains(p.utf8.count), p.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return (s[..<slash], "x") }
        return (s[..<slash], p)
    }

    /// Every label numeric: the writer meant an IPv4 address (and must write it correctly).
    private static func looksNumeric(_ s: Substring) -> Bool {
        !s.isEmpty && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    /// Whether the rule's name part holds `name` (already normalised).
    public func matches(name: String) -> Bool {
        switch destination {
        case .name(let n): return n == name
        case .nameSuffix(let suffix):
            return name.utf8.count > suffix.utf8.count + 1 && name.hasSuffix("." + suffix)
        case .network: return false
        }
    }

    public var description: String {
        switch destination {
        case .name(let n): return "\(n):\(ports)"
        case .nameSuffix(let s): return "*.\(s):\(ports)"
        case .network(let net):
            let full = (net.address, net.prefixLength)
            switch full {
            case (.v4(let a), 32): return "\(a):\(ports)"
            case (.v4, _): return "\(net):\(ports)"
            case (.v6(let a), 128): return "[\(a)]:\(ports)"
            case (.v6, _): return "[\(net)]:\(ports)"
            }
        }
    }
}

/// The parsed `network.allow` list of one sandbox. Pure: no I/O.
public struct Allowlist: Sendable, Equatable {
    public let rules: [EgressRule]

    public init(rules: [EgressRule]) { self.rules = rules }

    /// Parses every entry; the first refusal wins.
    public static func parse(_ entries: [String]) -> Result<Allowlist, EgressRule.ParseError> {
        var rules: [EgressRule] = []
        for entry in entries {
            switch EgressRule.parse(entry) {
            case .success(let r): rules.append(r)
            case .failure(let e): return .failure(e)
            }
        }
        return .success(Allowlist(rules: rules))
    }

    /// Whether a name rule (any port) holds `name`: the condition for resolving it at all.
    /// The name is normalised first; a name that does not normalise is not listed.
    public func isNameListed(_ name: String) -> Bool {
        guard case .success(let n) = HostName.normalize(name) else { return false }
        return rules.contains { $0.matches(name: n) }
    }

    /// Whether a name rule holds `name` for `port`.
    public func nameAllows(_ name: String, port: UInt16) -> Bool {
        guard case .success(let n) = HostName.normalize(name) else { return false }
        return rules.contains { $0.ports.contains(port) && $0.matches(name: n) }
    }

    /// Whether some name rule mentions `port` (otherwise a connection to it can only be allowed
    /// by an address rule).
    public func anyNameRule(port: UInt16) -> Bool {
        rules.contains {
            if case .network = $0.destination { return false }
            return $0.ports.contains(port)
        }
    }

    /// Whether an address rule holds `address` for `port`.
    public func cidrAllows(_ address: IPAddress, port: UInt16) -> Bool {
        rules.contains {
            guard case .network(let net) = $0.destination else { return false }
            return $0.ports.contains(port) && net.contains(address)
        }
    }

    /// See `IPAddress.restriction`.
    public static func isRestricted(_ address: IPAddress) -> Bool { address.isRestricted }
}
