/// How a call admitted by a `CircuitBreaker` ended.
public enum CallOutcome: Sendable, Equatable {
    case success
    case failure
}

/// Successes and failures over a rolling window, kept in `bucketCount` slices of
/// `window / bucketCount` each: memory is those buckets, however many calls there are.
///
/// Time is cut into slices at multiples of the slice width (counted from instant 0), and a
/// tally at `now` sums the slice holding `now` and the `bucketCount − 1` before it. So an
/// outcome counts for between `window − width` and `window` after it happened, depending on
/// where in its slice it fell: the price of bounded memory. More buckets, finer edges.
///
/// A value the caller owns and guards (the breaker keeps one under its lock).
public struct SlidingWindow: Sendable, Equatable {
    public struct Tally: Sendable, Equatable {
        public var successes = 0
        public var failures = 0
        public var calls: Int { successes + failures }

        public init(successes: Int = 0, failures: Int = 0) {
            self.successes = successes
            self.failures = failures
        }
    }

    struct Bucket: Sendable, Equatable {
        /// Which slice of time this bucket holds (instant / width, rounded down); `.min`: none yet.
        var slice: Int64 = .min
        var tally = Tally()
    }

    public let window: Duration
    public let bucketCount: Int
    private let width: Int64
    private(set) var buckets: [Bucket]

    /// `window` > 0, `bucketCount` in 1...`maxBuckets`, and each bucket at least 1 ns wide.
    public init(window: Duration, buckets bucketCount: Int = 10) throws(ResilienceError) {
        width = try Self.bucketWidth(window: window, buckets: bucketCount, setting: "slidingWindow", name: "sliding window")
        self.window = window
        self.bucketCount = bucketCount
        buckets = Array(repeating: Bucket(), count: bucketCount)
    }

    /// Checks a window's settings for its owner, whose names the error carries
    /// ("circuitBreaker.window"); returns the width of a bucket in nanoseconds.
    static func bucketWidth(window: Duration, buckets bucketCount: Int, setting: String, name: String) throws(ResilienceError) -> Int64 {
        let windowNanoseconds = window.saturatingNanoseconds
        guard windowNanoseconds > 0 else {
            throw .invalid("\(setting).window", "\(name): window \(window) is not positive (at least 1 ns)")
        }
        guard (1...maxBuckets).contains(bucketCount) else {
            throw .invalid("\(setting).buckets", "\(name): \(bucketCount) buckets is not in 1...\(maxBuckets)")
        }
        guard windowNanoseconds / Int64(bucketCount) >= 1 else {
            throw .invalid("\(setting).buckets", "\(name): \(bucketCount) buckets over \(window) is less than 1 ns each")
        }
        return windowNanoseconds / Int64(bucketCount)
    }

    /// A bound on the memory a window may take, whatever its configuration says.
    public static let maxBuckets = 1024

    /// Counts `outcome` at `now`. An outcome older than the slice its bucket now holds (more
    /// than a window behind an outcome already counted) is dropped: it is out of every window
    /// that could still be asked about.
    public mutating func record(_ outcome: CallOutcome, at now: MonotonicInstant) {
        let slice = slice(of: now)
        let index = self.index(of: slice)
        if buckets[index].slice < slice {
            buckets[index] = Bucket(slice: slice)
        } else if buckets[index].slice > slice {
            return
        }
        switch outcome {
        case .success: buckets[index].tally.successes += 1
        case .failure: buckets[index].tally.failures += 1
        }
    }

    /// The outcomes in the window that ends at `now`.
    public func tally(at now: MonotonicInstant) -> Tally {
        let newest = slice(of: now)
        let oldest = newest.saturatingSubtract(Int64(bucketCount - 1))
        var total = Tally()
        for bucket in buckets where bucket.slice >= oldest && bucket.slice <= newest {
            total.successes += bucket.tally.successes
            total.failures += bucket.tally.failures
        }
        return total
    }

    /// Forgets every outcome.
    public mutating func removeAll() {
        for index in buckets.indices { buckets[index] = Bucket() }
    }

    private func slice(of instant: MonotonicInstant) -> Int64 {
        // Rounded down, also before instant 0.
        let (quotient, remainder) = instant.nanoseconds.quotientAndRemainder(dividingBy: width)
        return remainder < 0 ? quotient - 1 : quotient
    }

    private func index(of slice: Int64) -> Int {
        let index = Int(slice % Int64(bucketCount))
        return index < 0 ? index + bucketCount : index
    }
}
