import CordonSystem

/// A value one thread sets (a completion) and another waits for: the blocking forms of the
/// completion-based calls (`JSONRPCConnection.call`, `ServicePool.lease`, health checks).
final class Awaited<T: Sendable>: @unchecked Sendable {
    private let monitor = Monitor()
    private var value: T?

    func set(_ v: T) { monitor.locked { value = v; monitor.broadcast() } }

    /// The value, once set; nil when `deadline` (CLOCK_MONOTONIC seconds) passed first.
    func wait(until deadline: Double? = nil) -> T? {
        monitor.locked {
            _ = monitor.wait(until: deadline) { value != nil }
            return value
        }
    }
}
