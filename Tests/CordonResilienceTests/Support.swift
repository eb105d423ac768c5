import CordonResilience

/// An instant `seconds` after 0, exact for the binary fractions the tests use.
func t(_ seconds: Double) -> MonotonicInstant {
    MonotonicInstant(seconds: seconds)
}

/// One nanosecond before `instant`: the last instant something still holds.
func justBefore(_ instant: MonotonicInstant) -> MonotonicInstant {
    MonotonicInstant(nanoseconds: instant.nanoseconds - 1)
}

/// A generator that replays fixed words, then traps: to drive the bounded draw through its
/// rejection branch.
struct Replay: RandomNumberGenerator {
    var words: [UInt64]
    mutating func next() -> UInt64 { words.removeFirst() }
}

/// `duration` in seconds, for arithmetic on many draws.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The setting `make` refuses, nil if it accepts them all.
func refusedSetting<T>(_ make: () throws -> T) -> String? {
    do {
        _ = try make()
        return nil
    } catch let error as ResilienceError {
        return error.setting
    } catch {
        return "not a ResilienceError: \(error)"
    }
}
