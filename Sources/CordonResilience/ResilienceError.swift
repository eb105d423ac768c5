// Supervised services (MCP tool servers, local model servers) fail; this module decides what
// the supervisor does about it, and nothing else. It is pure: it reads no clock, draws no
// system randomness and makes no system call, so every rule is unit-tested by driving time
// and the random source by hand.
//
// - `Backoff`: how long to wait before restarting a service (exponential, full jitter).
// - `RestartBudget`: whether a service has restarted too often lately and is to be marked
//   failed instead.
// - `CircuitBreaker` (with `SlidingWindow`): whether a call to a tool or model is let through,
//   from the outcomes of the calls before it.
// - `DiscountedThompson`: which of the models left after those checks to call, learnt online
//   from outcomes, latencies, tokens and clients' verdicts (the model selector's core).
//
// Time is `MonotonicInstant`; randomness is any `RandomNumberGenerator` (`SplitMix64` for a
// seeded, reproducible one).

/// A setting this module refuses; its description names the setting and the rule it breaks
/// ("circuit breaker: failure ratio 1.5 is not in (0, 1]").
public struct ResilienceError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case invalidSetting
    }

    public var code: Code
    /// The setting, as `component.name` (`backoff.factor`, `circuitBreaker.minimumCalls`).
    public var setting: String
    public var description: String

    static func invalid(_ setting: String, _ description: String) -> Self {
        Self(code: .invalidSetting, setting: setting, description: description)
    }
}
