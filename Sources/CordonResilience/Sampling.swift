#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Draws from the distributions `DiscountedThompson` samples its posteriors from, all made from
/// the generator passed in, so a seed replays every choice. Written out rather than taken from a
/// library: the algorithms are fixed here (the standard library promises none), and the only
/// dependency is libm's `log`, `exp`, `cos`, `pow` and `erfc`.
enum Sample {
    /// Uniform on the open interval (0, 1): the top 52 bits of a word, offset by half a step,
    /// so neither 0 (whose log is −∞) nor 1 is ever drawn. 52 bits, not 53: the largest
    /// result, 1 − 2⁻⁵³, is then a double; 1 − 2⁻⁵⁴ would round to 1.
    static func unit<R: RandomNumberGenerator>(using random: inout R) -> Double {
        (Double(random.next() >> 12) + 0.5) * 0x1p-52
    }

    /// Standard normal by Box–Muller (one of the pair; the other is dropped so a draw costs a
    /// fixed two words and no cached state).
    static func normal<R: RandomNumberGenerator>(using random: inout R) -> Double {
        let radius = (-2 * log(unit(using: &random))).squareRoot()
        return radius * cos(2 * Double.pi * unit(using: &random))
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang's squeeze-and-reject method (ACM TOMS 26(3),
    /// 2000): about 1.03 normal draws per result for any shape ≥ 1. A shape below 1 is boosted
    /// to shape + 1 and scaled by U^(1/shape). `shape` is finite and positive (a caller's bug
    /// otherwise: traps).
    static func gamma<R: RandomNumberGenerator>(shape: Double, using random: inout R) -> Double {
        precondition(shape.isFinite && shape > 0, "Sample.gamma: shape \(shape) is not finite and positive")
        if shape < 1 {
            let boosted = gamma(shape: shape + 1, using: &random)
            return boosted * pow(unit(using: &random), 1 / shape)
        }
        let d = shape - 1.0 / 3
        let c = 1 / (9 * d).squareRoot()
        while true {
            let x = normal(using: &random)
            let root = 1 + c * x
            guard root > 0 else { continue }
            let v = root * root * root
            let u = unit(using: &random)
            let xx = x * x
            if u < 1 - 0.0331 * xx * xx { return d * v }
            if log(u) < 0.5 * xx + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). Both shapes finite and
    /// positive. When both gammas underflow to 0 (shapes far below 1) the mean stands in.
    static func beta<R: RandomNumberGenerator>(_ a: Double, _ b: Double, using random: inout R) -> Double {
        let x = gamma(shape: a, using: &random)
        let y = gamma(shape: b, using: &random)
        let sum = x + y
        return sum > 0 ? x / sum : a / (a + b)
    }

    /// Uniform index in `0..<count` (count ≥ 1), without modulo bias.
    static func index<R: RandomNumberGenerator>(below count: Int, using random: inout R) -> Int {
        precondition(count >= 1, "Sample.index: count \(count) is below 1")
        return Int(uniform(through: UInt64(count - 1), using: &random))
    }
}

/// The standard normal distribution function Φ(x), through libm's `erfc` (accurate in both
/// tails, where 1 − erf would cancel).
func standardNormalCDF(_ x: Double) -> Double {
    0.5 * erfc(-x / 2.0.squareRoot())
}
