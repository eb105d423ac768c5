import Testing
@testable import CordonResilience

@Suite struct BackoffTests {
    let backoff = try! Backoff(base: .milliseconds(100), cap: .seconds(10))

    /// The published SplitMix64 vectors: seed 0, and Vigna's seed 1234567.
    @Test func splitMixReproducesReferenceOutputs() {
        var zero = SplitMix64(seed: 0)
        #expect([zero.next(), zero.next(), zero.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var vigna = SplitMix64(seed: 1_234_567)
        #expect([vigna.next(), vigna.next(), vigna.next()] == [0x599E_D017_FB08_FC85, 0x2C73_F084_5854_0FA5, 0x883E_BCE5_A3F2_7C77])
    }

    @Test func ceilingDoublesUpToTheCap() {
        let expected: [Duration] = [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                                    .milliseconds(1600), .milliseconds(3200), .milliseconds(6400), .seconds(10), .seconds(10)]
        #expect((0..<expected.count).map { backoff.ceiling(attempt: $0) } == expected)
    }

    /// Every draw lies in [0, min(cap, base·factorⁿ)], the bound computed here in integers.
    @Test(arguments: [2, 3]) func drawsStayWithinTheirCeiling(factor: Int) throws {
        let backoff = try Backoff(base: .milliseconds(7), factor: Double(factor), cap: .seconds(90))
        let base: Int64 = 7_000_000, cap: Int64 = 90_000_000_000
        var random = SplitMix64(seed: 42)
        for attempt in 0...80 {
            var bound = base
            for _ in 0..<attempt where bound < cap { bound *= Int64(factor) }
            bound = min(bound, cap)
            #expect(backoff.ceiling(attempt: attempt) == .nanoseconds(bound))
            for _ in 0..<500 {
                let delay = backoff.delay(attempt: attempt, using: &random)
                #expect(delay >= .zero && delay <= .nanoseconds(bound), "attempt \(attempt): \(delay) outside 0...\(bound) ns")
            }
        }
    }

    /// Full jitter: draws spread over the whole range, not bunched at the ceiling or above half.
    @Test func drawsSpreadOverTheWholeRange() {
        var random = SplitMix64(seed: 7)
        #expect(backoff.ceiling(attempt: 4) == .milliseconds(1600))
        let ceiling = seconds(backoff.ceiling(attempt: 4))
        let draws = (0..<20_000).map { _ in seconds(backoff.delay(attempt: 4, using: &random)) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - ceiling / 2) < ceiling * 0.02)
        #expect(draws.min()! < ceiling * 0.01)
        #expect(draws.max()! > ceiling * 0.99)
    }

    @Test(arguments: [64, 1_000, 1 << 40, Int.max / 2, Int.max])
    func hugeAttemptsSaturateAtTheCap(attempt: Int) throws {
        #expect(backoff.ceiling(attempt: attempt) == .seconds(10))
        var random = SplitMix64(seed: UInt64(truncatingIfNeeded: attempt))
        for _ in 0..<1_000 {
            #expect(backoff.delay(attempt: attempt, using: &random) <= .seconds(10))
        }
        // A cap beyond Int64 nanoseconds (292 years) saturates there, and converting it back
        // must not trap.
        let unbounded = try Backoff(base: .seconds(1), cap: .seconds(Int64.max))
        #expect(unbounded.ceiling(attempt: attempt) == .nanoseconds(Int64.max))
        #expect(unbounded.delay(attempt: attempt, using: &random) <= .nanoseconds(Int64.max))
    }

    /// A factor barely above 1 still reaches the cap, without looping once per attempt.
    @Test func aSlowFactorSaturatesAtHugeAttempts() throws {
        let slow = try Backoff(base: .seconds(1), factor: 1.000001, cap: .seconds(3600))
        #expect(slow.ceiling(attempt: 1_000) < .seconds(2))
        #expect(slow.ceiling(attempt: 1 << 40) == .seconds(3600))
        #expect(slow.ceiling(attempt: Int.max) == .seconds(3600))
    }

    @Test func factorOneKeepsTheBase() throws {
        let constant = try Backoff(base: .seconds(2), factor: 1, cap: .seconds(60))
        for attempt in [0, 1, 10, Int.max] {
            #expect(constant.ceiling(attempt: attempt) == .seconds(2))
        }
    }

    @Test func aFractionalFactorGrowsGeometrically() throws {
        let gentle = try Backoff(base: .seconds(1), factor: 1.5, cap: .seconds(60))
        #expect(gentle.ceiling(attempt: 1) == .milliseconds(1500))
        #expect(gentle.ceiling(attempt: 2) == .milliseconds(2250))
        #expect(gentle.ceiling(attempt: 3) == .milliseconds(3375))
        #expect(gentle.ceiling(attempt: 10) == .seconds(57) + .nanoseconds(665_039_062))  // 1.5^10 = 57.6650390625
        #expect(gentle.ceiling(attempt: 11) == .seconds(60))
    }

    @Test func aSeedReplaysTheSameDelays() {
        var a = SplitMix64(seed: 99), b = SplitMix64(seed: 99), c = SplitMix64(seed: 100)
        let first = (0..<20).map { backoff.delay(attempt: $0, using: &a) }
        #expect(first == (0..<20).map { backoff.delay(attempt: $0, using: &b) })
        #expect(first != (0..<20).map { backoff.delay(attempt: $0, using: &c) })
    }

    /// 2^64 mod 3 = 1: a word whose product with 3 has low word 0 would make 0 likelier, so it
    /// is rejected and the next word decides.
    @Test func theBoundedDrawRejectsBiasedWords() {
        var replay = Replay(words: [0, .max])
        #expect(uniform(through: 2, using: &replay) == 2)
        #expect(replay.words.isEmpty)
        var accepted = Replay(words: [1, .max])
        #expect(uniform(through: 2, using: &accepted) == 0)
        #expect(accepted.words == [.max])
        var full = Replay(words: [12_345])
        #expect(uniform(through: .max, using: &full) == 12_345)
        var random = SplitMix64(seed: 1)
        #expect((0..<100).allSatisfy { _ in uniform(through: 0, using: &random) == 0 })
        var counts = [0, 0, 0]
        for _ in 0..<30_000 { counts[Int(uniform(through: 2, using: &random))] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")
    }

    @Test func invalidSettingsAreRefused() {
        #expect(refusedSetting { try Backoff(base: .zero, cap: .seconds(1)) } == "backoff.base")
        #expect(refusedSetting { try Backoff(base: .seconds(-1), cap: .seconds(1)) } == "backoff.base")
        #expect(refusedSetting { try Backoff(base: .seconds(2), cap: .seconds(1)) } == "backoff.cap")
        #expect(refusedSetting { try Backoff(base: .seconds(1), factor: 0.5, cap: .seconds(2)) } == "backoff.factor")
        #expect(refusedSetting { try Backoff(base: .seconds(1), factor: .nan, cap: .seconds(2)) } == "backoff.factor")
        #expect(refusedSetting { try Backoff(base: .seconds(1), factor: .infinity, cap: .seconds(2)) } == "backoff.factor")
        #expect(refusedSetting { try Backoff(base: .seconds(1), cap: .seconds(1)) } == nil)
    }

    @Test func aNegativeAttemptTraps() async {
        await #expect(processExitsWith: .failure) {
            let backoff = try! Backoff(base: .seconds(1), cap: .seconds(2))
            _ = backoff.ceiling(attempt: -1)
        }
    }
}
