/// How the instances of one long-lived service are kept: a tool manifest's `[service]` table
/// (CordonTools reads it) and what the supervised-service pool (CordonServices) does with it.
/// One struct for both, so a key the manifest gains reaches the pool without a copy.
public struct ServiceSettings: Sendable, Equatable {
    /// Kept running per owner (or in all, when shared) even when idle.
    public var minInstances = 0
    public var maxInstances = 4
    /// Calls in flight on one instance at once (multiplexed by JSON-RPC id).
    public var concurrency = 8
    public var idleTimeoutSeconds: Double = 300
    public var healthIntervalSeconds: Double = 30
    /// From start to a completed handshake.
    public var startTimeoutSeconds: Double = 20
    /// More restarts than this within `restartWindowSeconds`: the service is failed.
    public var maxRestarts = 5
    public var restartWindowSeconds: Double = 60
    public var backoffBaseSeconds: Double = 0.2
    public var backoffMaxSeconds: Double = 30
    public init() {}
}
