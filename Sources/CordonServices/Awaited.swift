import CordonSystem

/// A value one thread sets (a completion) and another waits for: the blocking forms of the
/// completion-based calls (`JSONRPCConnection.call`, `ServicePool.lease`, health checks).
public final class Awaited<T: Sendable>: @unchecked Sendable {
    private let monitor = Monitor()
    private var value: T?

    public init() {}

    public func set(_ v: T) { monitor.locked { value = v; monitor.broadcast() } }

    /// The value, once set; nil when `deadline` (CLOCK_MONOTONIC seconds) passed first.
    public func wait(until deadline: Double? = nil) -> T? {
        monitor.locked {
            _ = monitor.wait(until: deadline) { value != nil }
            return value
        }
    }
}
