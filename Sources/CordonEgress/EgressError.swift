#if canImport(Glibc)
import CordonPolicy
import Glibc
#endif
import CordonSystem

/// The one error type of this module: what kind of failure, what was being done, and the
/// errno when a system call failed. Reads "reading hosts file /x: No such file or directory".
public struct EgressError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// A setting or file given to the engine is unusable.
        case configuration
        /// A system call failed.
        case system
    }

    public let code: Code
    public let operation: String
    public let errno: Int32?

    public init(_ code: Code, _ operation: String, errno: Int32? = nil) {
        self.code = code
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        errno.map { "\(operation): \(SystemError.text($0))" } ?? operation
    }
}
