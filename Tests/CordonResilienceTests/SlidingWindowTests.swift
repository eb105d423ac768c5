import Testing
@testable import CordonResilience

@Suite struct SlidingWindowTests {
    /// 10 s in 1 s buckets.
    var window = try! SlidingWindow(window: .seconds(10), buckets: 10)

    /// An outcome at 0.5 s is in the bucket [0, 1) and counts while that bucket is one of the
    /// ten newest: up to 10 s, then no more.
    @Test mutating func anOutcomeCountsUntilItsBucketLeavesTheWindow() {
        window.record(.failure, at: t(0.5))
        #expect(window.tally(at: t(0.5)) == .init(successes: 0, failures: 1))
        window.record(.success, at: t(1.25))
        #expect(window.tally(at: t(9.5)) == .init(successes: 1, failures: 1))
        #expect(window.tally(at: justBefore(t(10))) == .init(successes: 1, failures: 1))
        #expect(window.tally(at: t(10)) == .init(successes: 1, failures: 0))
        #expect(window.tally(at: t(11)).calls == 0)
    }

    @Test mutating func tallySumsEveryBucketInTheWindow() {
        for second in 0..<10 {
            window.record(.success, at: t(Double(second) + 0.25))
            window.record(second.isMultiple(of: 3) ? .failure : .success, at: t(Double(second) + 0.5))
        }
        #expect(window.tally(at: t(9.75)) == .init(successes: 16, failures: 4))
        // At 12 s the buckets of seconds 0, 1 and 2 (one failure: second 0) have left.
        #expect(window.tally(at: t(12)) == .init(successes: 11, failures: 3))
    }

    /// A bucket is reused for a later slice of time: what it held is dropped, not added.
    @Test mutating func aReusedBucketStartsEmpty() {
        window.record(.failure, at: t(0.5))
        window.record(.failure, at: t(10.5))
        #expect(window.tally(at: t(10.5)) == .init(successes: 0, failures: 1))
        #expect(window.buckets.count == 10)
    }

    /// An outcome older than what its bucket already holds is out of every window still asked
    /// about; one that is older but still in the window counts.
    @Test mutating func lateOutcomes() {
        window.record(.failure, at: t(20.5))
        window.record(.failure, at: t(0.5))
        #expect(window.tally(at: t(20.5)).failures == 1)
        window.record(.success, at: t(15.5))
        #expect(window.tally(at: t(20.5)) == .init(successes: 1, failures: 1))
    }

    @Test mutating func removeAllForgets() {
        window.record(.failure, at: t(1))
        window.removeAll()
        #expect(window.tally(at: t(1)).calls == 0)
    }

    /// Slices are rounded down on both sides of instant 0.
    @Test mutating func instantsBeforeZero() {
        window.record(.failure, at: t(-0.5))
        window.record(.success, at: t(0.5))
        #expect(window.tally(at: t(-0.25)) == .init(successes: 0, failures: 1))
        #expect(window.tally(at: t(0.5)) == .init(successes: 1, failures: 1))
        #expect(window.tally(at: justBefore(t(9))).failures == 1)
        #expect(window.tally(at: t(9)).failures == 0)
    }

    /// A window that does not divide evenly still has exact-width buckets (333,333,333 ns).
    @Test func unevenBuckets() throws {
        var window = try SlidingWindow(window: .seconds(1), buckets: 3)
        window.record(.failure, at: MonotonicInstant(nanoseconds: 0))
        #expect(window.tally(at: MonotonicInstant(nanoseconds: 999_999_998)).failures == 1)
        #expect(window.tally(at: MonotonicInstant(nanoseconds: 999_999_999)).failures == 0)
    }

    @Test func invalidSettingsAreRefused() {
        func setting(_ window: Duration, _ buckets: Int) -> String? {
            refusedSetting { try SlidingWindow(window: window, buckets: buckets) }
        }
        #expect(setting(.zero, 10) == "slidingWindow.window")
        #expect(setting(.seconds(1), 0) == "slidingWindow.buckets")
        #expect(setting(.seconds(1), SlidingWindow.maxBuckets + 1) == "slidingWindow.buckets")
        #expect(setting(.nanoseconds(10), 20) == "slidingWindow.buckets")
        #expect(setting(.nanoseconds(10), 10) == nil)
    }
}
