import Testing
@testable import CordonResilience

/// The draws the selector's posteriors are sampled with: right moments for fixed seeds, and the
/// same sequence from the same seed.
@Suite struct DiscountedThompsonSamplingTests {
    /// Mean and variance of `count` draws.
    func moments(_ count: Int, _ draw: () -> Double) -> (mean: Double, variance: Double) {
        var sum = 0.0, squares = 0.0
        for _ in 0..<count {
            let x = draw()
            sum += x
            squares += x * x
        }
        let mean = sum / Double(count)
        return (mean, squares / Double(count) - mean * mean)
    }

    /// Exact arithmetic, so pinned exactly: SplitMix64's first word from seed 0
    /// (0xE220A8397B1DCDAF), its top 52 bits plus one half, times 2⁻⁵².
    @Test func unitIsTheTop52BitsCentredInTheirStep() {
        var random = SplitMix64(seed: 0)
        #expect(Sample.unit(using: &random) == (Double(0xE220_A839_7B1D_CDAF as UInt64 >> 12) + 0.5) * 0x1p-52)
        // The extremes of a word land strictly inside (0, 1): 2⁻⁵³ and 1 − 2⁻⁵³.
        var extremes = Replay(words: [0, .max])
        let low = Sample.unit(using: &extremes), high = Sample.unit(using: &extremes)
        #expect(low == 0x1p-53)
        #expect(high == 1 - 0x1p-53)
        #expect(high < 1)
    }

    @Test func unitIsUniform() {
        var random = SplitMix64(seed: 11)
        let (mean, variance) = moments(200_000) { Sample.unit(using: &random) }
        #expect(abs(mean - 0.5) < 0.003)
        #expect(abs(variance - 1.0 / 12) < 0.001)
    }

    @Test func normalHasMeanZeroVarianceOneAndItsTails() {
        var random = SplitMix64(seed: 12)
        var draws: [Double] = []
        let (mean, variance) = moments(200_000) {
            let x = Sample.normal(using: &random)
            draws.append(x)
            return x
        }
        #expect(abs(mean) < 0.01)
        #expect(abs(variance - 1) < 0.01)
        let inside = Double(draws.count(where: { abs($0) < 1.959964 })) / Double(draws.count)
        #expect(abs(inside - 0.95) < 0.003)
        let cubes = draws.reduce(0) { $0 + $1 * $1 * $1 } / Double(draws.count)
        #expect(abs(cubes) < 0.03, "skewness \(cubes)")
    }

    /// Gamma(k, 1) has mean k and variance k, for shapes below 1 (the boosted path), at 1, and
    /// far above (the counts of a long-lived arm with γ = 1).
    @Test(arguments: [0.3, 1.0, 2.5, 50.0, 10_000.0])
    func gammaHasMeanAndVarianceOfItsShape(shape: Double) {
        var random = SplitMix64(seed: UInt64(shape * 10))
        let (mean, variance) = moments(100_000) { Sample.gamma(shape: shape, using: &random) }
        #expect(abs(mean - shape) < 0.01 * shape + 0.01, "mean \(mean) for shape \(shape)")
        #expect(abs(variance - shape) < 0.05 * shape + 0.01, "variance \(variance) for shape \(shape)")
    }

    @Test(arguments: [(1.0, 1.0), (2.0, 5.0), (0.5, 0.5), (30.0, 70.0), (1.0, 400.0)])
    func betaHasItsMeanAndVariance(a: Double, b: Double) {
        var random = SplitMix64(seed: UInt64(a * 1000 + b))
        var outside = 0
        let (mean, variance) = moments(100_000) {
            let x = Sample.beta(a, b, using: &random)
            if !(0...1).contains(x) { outside += 1 }
            return x
        }
        let expectedMean = a / (a + b)
        let expectedVariance = a * b / ((a + b) * (a + b) * (a + b + 1))
        #expect(outside == 0)
        #expect(abs(mean - expectedMean) < 0.005 * max(expectedMean, 0.1), "mean \(mean), expected \(expectedMean)")
        #expect(abs(variance - expectedVariance) < 0.05 * expectedVariance, "variance \(variance), expected \(expectedVariance)")
    }

    @Test func drawsReplayFromTheirSeed() {
        func sequence(_ seed: UInt64) -> [Double] {
            var random = SplitMix64(seed: seed)
            return (0..<50).flatMap { _ in
                [Sample.normal(using: &random), Sample.gamma(shape: 0.7, using: &random), Sample.beta(3, 4, using: &random)]
            }
        }
        #expect(sequence(99) == sequence(99))
        #expect(sequence(99) != sequence(100))
    }

    @Test func indexIsUniformBelowItsCount() {
        var random = SplitMix64(seed: 5)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[Sample.index(below: 7, using: &random)] += 1 }
        let even = counts.allSatisfy { abs($0 - 10_000) < 400 }
        #expect(even, "\(counts)")
        #expect(Sample.index(below: 1, using: &random) == 0)
    }

    @Test func normalCDFMatchesKnownValues() {
        #expect(standardNormalCDF(0) == 0.5)
        #expect(abs(standardNormalCDF(1.6448536269514722) - 0.95) < 1e-12)
        #expect(abs(standardNormalCDF(-1.959963984540054) - 0.025) < 1e-12)
        // The far tail keeps its relative accuracy (1 − Φ(8) = 6.22096e-16).
        #expect(abs(standardNormalCDF(-8) / 6.220960574271785e-16 - 1) < 1e-9)
        #expect(standardNormalCDF(-40) == 0)
        #expect(standardNormalCDF(40) == 1)
    }
}
