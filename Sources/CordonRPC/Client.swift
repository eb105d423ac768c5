import CLinux
import CordonJSON
#if canImport(Glibc)
import Glibc
#endif

/// Why a call did not get an answer from cordond.
public struct RPCClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// A connection to cordond. Calls are answered in order; notifications that arrive before a
/// call's response (task output) go to the call's handler.
public final class RPCClient {
    public let socketPath: String
    private let channel: LineChannel
    private var nextID: Int64 = 1

    /// Responses can be large (task lists, audit queries); requests are small.
    public static let maxResponse = 64 << 20
    /// How long one send() (or the connect) may wait for cordond to take bytes.
    public static let sendTimeoutSeconds = 10

    public init(socketPath: String) throws(RPCClientError) {
        self.socketPath = socketPath
        // A send (or the connect) that cordond does not take within this time fails rather
        // than blocking for ever (a cordond that stopped reading).
        let fd = cl_unix_connect_timeout(socketPath, Int32(Self.sendTimeoutSeconds * 1000))
        guard fd >= 0 else {
            let code = errno
            var hint = ""
            if code == ENOENT || code == ECONNREFUSED { hint = " (is cordond running? --socket PATH or CORDON_SOCKET selects another socket)" }
            if code == EACCES { hint = " (the socket is 0660: ask to be added to its group)" }
            throw RPCClientError(description: "cannot connect to \(socketPath): \(String(cString: strerror(code)))\(hint)")
        }
        channel = LineChannel(fd: fd, maxLine: Self.maxResponse)
    }

    deinit { close(channel.fd) }

    /// Sends one request and returns its result; a JSON-RPC error is thrown as `RPCError`.
    /// `sent` runs once the request is on its way, before the wait for the answer.
    public func call(_ method: String, _ params: JSON = .object([]),
                     onNotification: ((String, JSON) -> Void)? = nil, sent: () -> Void = {}) throws -> JSON {
        let id = nextID
        nextID += 1
        guard channel.send(RPCMessage.request(id: id, method: method, params: params)) else {
            throw RPCClientError(description: "\(socketPath): cordond closed the connection, or took nothing for \(Self.sendTimeoutSeconds) s, while \(method) was being sent")
        }
        sent()
        while true {
            let message: [UInt8]
            switch channel.readLine() {
            case .eof: throw RPCClientError(description: "\(socketPath): connection closed by cordond before it answered \(method)")
            case .tooLong: throw RPCClientError(description: "\(socketPath): response larger than \(Self.maxResponse) bytes")
            case .message(let m): message = m
            }
            let value: JSON
            do { value = try JSON.parse(message, options: .init(maxValues: .max)) } catch {  // the daemon is trusted
                throw RPCClientError(description: "\(socketPath): unreadable response: \(error)")
            }
            if value["id"] == nil, let name = value["method"]?.stringValue {
                onNotification?(name, value["params"] ?? .null)
                continue
            }
            if let error = value["error"] {
                throw RPCError(error["code"]?.intValue ?? RPCCode.internalError, error["message"]?.stringValue ?? "error",
                               field: error["data"]?["field"]?.stringValue)
            }
            guard value["id"] == .int(id), let result = value["result"] else {
                throw RPCClientError(description: "\(socketPath): response does not answer request \(id)")
            }
            return result
        }
    }
}
