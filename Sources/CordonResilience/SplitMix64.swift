/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state advanced by a fixed odd constant and
/// passed through a bijective mixer. Small, fast and reproducible from its seed, so a test (or
/// a bug report that logged the seed) replays the same jitter. Not for secrets.
///
/// Production seeds it once from the system at the call site, which keeps this module free of
/// system calls:
///
///     var system = SystemRandomNumberGenerator()
///     var random = SplitMix64(seed: system.next())
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A uniform draw from `0...upper`, without modulo bias (Lemire's multiply-and-reject, 2019).
/// Written out rather than left to `UInt64.random(in:using:)`, whose algorithm the standard
/// library does not promise to keep: a seed must replay the same delays on every toolchain.
func uniform<R: RandomNumberGenerator>(through upper: UInt64, using random: inout R) -> UInt64 {
    if upper == .max { return random.next() }
    let range = upper + 1
    var product = random.next().multipliedFullWidth(by: range)
    if product.low < range {
        // 2^64 mod range: the low words below it would make some results one draw likelier.
        let threshold = (0 &- range) % range
        while product.low < threshold {
            product = random.next().multipliedFullWidth(by: range)
        }
    }
    return product.high
}
