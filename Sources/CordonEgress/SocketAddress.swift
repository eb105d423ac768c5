import CordonPolicy
#if canImport(Glibc)
import Glibc
#endif

/// Endpoints as the socket API spells them.
extension Endpoint {
    /// Reads a sockaddr_in / sockaddr_in6.
    init?(storage: sockaddr_storage) {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            let sin = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            self.init(.v4(IPv4Address(UInt32(bigEndian: sin.sin_addr.s_addr))), UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            let sin6 = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            guard let a = IPv6Address(bytes: withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }) else { return nil }
            self.init(.v6(a), UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }

    /// The sockaddr for this endpoint and its length.
    var storage: (sockaddr_storage, socklen_t) {
        var s = sockaddr_storage()
        switch address {
        case .v4(let a):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr.s_addr = a.value.bigEndian
            withUnsafeMutableBytes(of: &s) { dst in withUnsafeBytes(of: sin) { dst.copyMemory(from: $0) } }
            return (s, socklen_t(MemoryLayout<sockaddr_in>.size))
        case .v6(let a):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: a.bytes) }
            withUnsafeMutableBytes(of: &s) { dst in withUnsafeBytes(of: sin6) { dst.copyMemory(from: $0) } }
            return (s, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }

    var family: Int32 {
        if case .v4 = address { return AF_INET }
        return AF_INET6
    }
}
