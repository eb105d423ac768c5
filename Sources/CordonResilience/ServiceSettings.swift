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

/// When a service's (a tool's, a model's) circuit breaker opens and how it recovers: a tool
/// manifest's or the model catalogue's `[breaker]` table, turned into a `CircuitBreaker`'s
/// configuration by the gateway that keeps the breaker.
public struct BreakerSettings: Sendable, Equatable {
    /// Failures within `windowSeconds` that open the breaker (nil: no count rule, the ratio
    /// alone; the model catalogue's default, see `forModels`)…
    public var failures: Int? = 5
    /// …or this ratio of failed calls, once at least `minCalls` were made in the window.
    public var failureRatio = 0.5
    public var minCalls = 10
    public var windowSeconds: Double = 60
    /// Open this long, then one probe call; doubled after each failed probe, up to the maximum.
    public var cooldownSeconds: Double = 30
    public var maxCooldownSeconds: Double = 600
    public init() {}

    /// A model's breaker unless models.toml says otherwise: the ratio rule only. A model called
    /// hundreds of times a minute fails a few calls out of hundreds in a normal minute, which a
    /// count of 5 reads as an outage; the selector already weighs a model's error rate, and the
    /// breaker is for outages (bench/models.sh: with the count rule every model's breaker opened
    /// within a run of 1 %-3 % errors).
    public static var forModels: BreakerSettings {
        var b = BreakerSettings()
        b.failures = nil
        return b
    }
}

extension BreakerSettings {
    /// The breaker these settings describe (a manifest's reader has already checked them; the
    /// defaults stand in for values the breaker itself refuses).
    public var configuration: CircuitBreaker.Configuration {
        let ratio = CircuitBreaker.Configuration.FailureRatio(failureRatio, minimumCalls: minCalls)
        return (try? CircuitBreaker.Configuration(failureCount: failures, failureRatio: ratio, window: .milliseconds(Int64(windowSeconds * 1000)),
                                                   cooldown: .milliseconds(Int64(cooldownSeconds * 1000)),
                                                   maxCooldown: .milliseconds(Int64(maxCooldownSeconds * 1000))))
            ?? (try! CircuitBreaker.Configuration(failureCount: 5, window: .seconds(60), cooldown: .seconds(30)))
    }
}
