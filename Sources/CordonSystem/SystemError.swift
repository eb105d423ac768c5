#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: what was attempted, on which path, and the errno.
/// Its description reads "mkdir /sys/fs/cgroup/pids/cordon: Permission denied".
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public var operation: String
    public var path: String?
    public var errno: Int32

    public init(_ operation: String, path: String? = nil, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let target = path.map { " \($0)" } ?? ""
        return "\(operation)\(target): \(SystemError.text(errno))"
    }

    /// strerror(3) text for an errno value.
    public static func text(_ code: Int32) -> String {
        guard let message = strerror(code) else { return "errno \(code)" }
        return String(cString: message)
    }
}

/// Runs a system call, retrying EINTR, and turns -1 into a `SystemError` carrying the errno
/// captured right after the call. Every wrapper in this module goes through here.
@discardableResult
@inline(__always)
public func syscallRetrying<T: FixedWidthInteger>(
    _ operation: @autoclosure () -> String, path: String? = nil, _ call: () -> T
) throws(SystemError) -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(operation(), path: path, errno: code)
    }
}
