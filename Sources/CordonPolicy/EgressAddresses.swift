#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 address as a host-order 32-bit value.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Strict dotted quad: four decimal parts 0-255, no leading zeros (so "010.0.0.1" is not
    /// read as octal by one tool and decimal by another).
    public init?(_ text: some StringProtocol) {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  part.count == 1 || part.first != 48 else { return nil }
            let n = part.reduce(0) { $0 * 10 + Int($1 - 48) }
            guard n <= 255 else { return nil }
            v = v << 8 | UInt32(n)
        }
        value = v
    }

    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    public var description: String { bytes.map(String.init).joined(separator: ".") }

    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }

    /// Whether the address is in `base/prefix`.
    func isIn(_ base: UInt32, _ prefix: Int) -> Bool {
        prefix == 0 || value >> (32 - prefix) == base >> (32 - prefix)
    }
}

/// An IPv6 address as two host-order 64-bit halves.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h; low = l
    }

    /// Text form as inet_pton(3) reads it (including "::ffff:1.2.3.4"); no zone index.
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        guard !s.isEmpty, s.utf8.count <= 45, s.utf8.allSatisfy({ $0 == 58 || $0 == 46 || ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }) else { return nil }
        var raw = in6_addr()
        guard inet_pton(AF_INET6, s, &raw) == 1 else { return nil }
        self.init(bytes: withUnsafeBytes(of: raw) { Array($0) })
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(high >> (56 - 8 * UInt64($0)) & 0xff) } + (0..<8).map { UInt8(low >> (56 - 8 * UInt64($0)) & 0xff) }
    }

    /// The IPv4 address of an IPv4-mapped address (::ffff:a.b.c.d), else nil.
    public var mappedIPv4: IPv4Address? {
        high == 0 && low >> 32 == 0xffff ? IPv4Address(UInt32(low & 0xffff_ffff)) : nil
    }

    public var description: String {
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &raw, &buf, socklen_t(buf.count)) != nil else { return "?" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func < (a: Self, b: Self) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// Whether the address is in `base/prefix`.
    func isIn(_ base: IPv6Address, _ prefix: Int) -> Bool {
        if prefix == 0 { return true }
        if prefix <= 64 { return high >> (64 - prefix) == base.high >> (64 - prefix) }
        return high == base.high && (prefix == 128 ? low == base.low : low >> (128 - prefix) == base.low >> (128 - prefix))
    }
}

/// An IP address of either family. IPv4-mapped IPv6 addresses are kept as written; use
/// `unmapped` to compare them with IPv4 rules.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// "1.2.3.4" or an IPv6 text form (without brackets).
    public init?(_ text: some StringProtocol) {
        if let a = IPv4Address(text) { self = .v4(a) }
        else if let a = IPv6Address(text) { self = .v6(a) }
        else { return nil }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address, otherwise the address itself.
    public var unmapped: IPAddress {
        if case .v6(let a) = self, let v4 = a.mappedIPv4 { return .v4(v4) }
        return self
    }

    /// Whether this is an IPv4 address (an IPv4-mapped IPv6 address is not: see `unmapped`).
    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .v4(let a): return a.description
        case .v6(let a): return a.description
        }
    }

    /// Why a connection to this address must not be made on a name's word alone (loopback,
    /// private, link-local, metadata, multicast ...), or nil for an ordinary public address.
    /// IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are
    /// judged by the IPv4 address they carry.
    public var restriction: String? {
        switch self {
        case .v4(let a): return Self.restriction(a)
        case .v6(let a): return Self.restriction(a)
        }
    }

    /// Whether `restriction` is non-nil.
    public var isRestricted: Bool { restriction != nil }

    private static let v4Ranges: [(UInt32, Int, String)] = [
        (0x0000_0000, 8, "unspecified/this network (0.0.0.0/8)"),
        (0x0a00_0000, 8, "private (10.0.0.0/8)"),
        (0x6440_0000, 10, "carrier-grade NAT (100.64.0.0/10)"),
        (0x7f00_0000, 8, "loopback (127.0.0.0/8)"),
        (0xa9fe_a9fe, 32, "cloud metadata (169.254.169.254)"),
        (0xa9fe_0000, 16, "link-local (169.254.0.0/16)"),
        (0xac10_0000, 12, "private (172.16.0.0/12)"),
        (0xc000_0000, 24, "IETF protocol assignments (192.0.0.0/24)"),
        (0xc0a8_0000, 16, "private (192.168.0.0/16)"),
        (0xc612_0000, 15, "benchmarking (198.18.0.0/15)"),
        (0xe000_0000, 4, "multicast (224.0.0.0/4)"),
        (0xffff_ffff, 32, "broadcast (255.255.255.255)"),
        (0xf000_0000, 4, "reserved (240.0.0.0/4)"),
    ]

    static func restriction(_ a: IPv4Address) -> String? {
        v4Ranges.first { a.isIn($0.0, $0.1) }?.2
    }

    static func restriction(_ a: IPv6Address) -> String? {
        if a.high == 0 && a.low == 0 { return "unspecified (::)" }
        if a.high == 0 && a.low == 1 { return "loopback (::1)" }
        if let v4 = a.mappedIPv4 { return restriction(v4).map { "IPv4-mapped \($0)" } }
        if a.high == 0 && a.low >> 32 == 0 { return "IPv4-compatible (::/96)" }
        if a.high == 0x0064_ff9b_0000_0000 && a.low >> 32 == 0 {
            return restriction(IPv4Address(UInt32(a.low & 0xffff_ffff))).map { "NAT64 \($0)" }
        }
        if a.high >> 48 == 0x2002 {
            return restriction(IPv4Address(UInt32(a.high >> 16 & 0xffff_ffff))).map { "6to4 \($0)" }
        }
        let top = a.high >> 56
        if top == 0xff { return "multicast (ff00::/8)" }
        if a.high >> 57 == 0x7e { return "unique local (fc00::/7)" }
        if a.high >> 54 == 0x3fa { return "link-local (fe80::/10)" }
        if a.high >> 54 == 0x3fb { return "site-local (fec0::/10)" }
        if a.high >> 32 == 0x0100_0000 && a.high & 0xffff_ffff == 0 { return "discard-only (100::/64)" }
        return nil
    }
}

/// An address block: `address/prefixLength`, host bits zero.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// nil when the prefix is out of range for the family or host bits are set.
    public init?(address: IPAddress, prefixLength: Int) {
        switch address {
        case .v4(let a):
            guard (0...32).contains(prefixLength),
                  prefixLength == 32 || a.value & (UInt32.max >> prefixLength) == 0 else { return nil }
        case .v6(let a):
            guard (0...128).contains(prefixLength) else { return nil }
            let lowMask: UInt64 = prefixLength >= 128 ? 0 : prefixLength <= 64 ? .max : UInt64.max >> (prefixLength - 64)
            let highMask: UInt64 = prefixLength >= 64 ? 0 : UInt64.max >> prefixLength
            guard a.high & highMask == 0, a.low & lowMask == 0 else { return nil }
        }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Whether `other` lies in this block. An IPv4-mapped IPv6 address is compared as IPv4.
    public func contains(_ other: IPAddress) -> Bool {
        switch (address, other.unmapped) {
        case (.v4(let base), .v4(let a)): return a.isIn(base.value, prefixLength)
        case (.v6(let base), .v6(let a)): return a.isIn(base, prefixLength)
        default: return false
        }
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// A TCP/UDP endpoint.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) { self.address = address; self.port = port }

    public var description: String {
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }
}
