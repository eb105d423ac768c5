import Testing
@testable import CordonResilience

@Suite struct CircuitBreakerTransitionTests {
    @Test func metricsValues() {
        #expect(CircuitBreaker.State.closed.rawValue == 0)
        #expect(CircuitBreaker.State.open.rawValue == 1)
        #expect(CircuitBreaker.State.halfOpen.rawValue == 2)
    }

    @Test func closedLetsCallsThroughUntilTheCountRuleTrips() throws {
        let b = breaker()
        #expect(b.state(at: t(0)) == .closed)
        let ticket = try admit(b, at: t(0))
        let isProbe = ticket.isProbe
        #expect(!isProbe)
        #expect(b.record(ticket, outcome: .success, at: t(0)) == .counted)
        try call(b, .failure, at: t(1))
        try call(b, .failure, at: t(2))
        #expect(b.state(at: t(2)) == .closed)
        #expect(try call(b, .failure, at: t(3)) == .counted)
        #expect(b.state(at: t(3)) == .open)
        #expect(refusal(b, at: t(3)) == t(8))
        #expect(refusal(b, at: justBefore(t(8))) == t(8))
    }

    @Test func openTurnsHalfOpenWhenTheCooldownEnds() throws {
        let b = breaker()
        try call(b, .failure, at: t(3), times: 3)
        #expect(b.state(at: justBefore(t(8))) == .open)
        #expect(b.state(at: t(8)) == .halfOpen)
        let isProbe = try admit(b, at: t(9)).isProbe
        #expect(isProbe)
    }

    @Test func halfOpenLetsOneProbeOutAtATime() throws {
        let b = breaker()
        try call(b, .failure, at: t(0), times: 3)
        let probe = try admit(b, at: t(5))
        let isProbe = probe.isProbe
        #expect(isProbe)
        // Refused as if open, until the probe's deadline (5 s + 2 s).
        #expect(refusal(b, at: t(5)) == t(7))
        #expect(refusal(b, at: t(6.5)) == t(7))
        #expect(b.state(at: t(6.5)) == .halfOpen)
        #expect(b.record(probe, outcome: .success, at: t(6.5)) == .counted)
        #expect(b.state(at: t(6.5)) == .closed)
    }

    /// The failures that tripped it are still within 10 s when it closes: they must be gone.
    @Test func aSuccessfulProbeClosesWithAnEmptyWindow() throws {
        let b = breaker()
        try call(b, .failure, at: t(0))
        try call(b, .failure, at: t(1))
        try call(b, .failure, at: t(2))
        let probe = try admit(b, at: t(7))
        b.record(probe, outcome: .success, at: t(7.5))
        try call(b, .failure, at: t(8), times: 2)
        #expect(b.state(at: t(8)) == .closed)
        try call(b, .failure, at: t(8))
        #expect(b.state(at: t(8)) == .open)
    }

    @Test func eachFailedProbeDoublesTheCooldownUpToTheMaximum() throws {
        let b = breaker()
        try call(b, .failure, at: t(0), times: 3)
        #expect(refusal(b, at: t(0)) == t(5))
        var probe = try admit(b, at: t(5))
        #expect(b.record(probe, outcome: .failure, at: t(6)) == .counted)
        #expect(b.state(at: t(6)) == .open)
        #expect(refusal(b, at: t(6)) == t(16))  // 10 s
        probe = try admit(b, at: t(16))
        b.record(probe, outcome: .failure, at: t(16))
        #expect(refusal(b, at: t(16)) == t(36))  // 20 s
        probe = try admit(b, at: t(36))
        b.record(probe, outcome: .failure, at: t(36))
        #expect(refusal(b, at: t(36)) == t(76))  // 40 s: the maximum
        probe = try admit(b, at: t(76))
        b.record(probe, outcome: .failure, at: t(76))
        #expect(refusal(b, at: t(76)) == t(116))  // still 40 s
    }

    @Test func theDefaultMaximumIs32TimesTheCooldown() throws {
        let b = breaker(cooldown: .seconds(1), maxCooldown: nil)
        #expect(b.configuration.maxCooldown == .seconds(32))
        try call(b, .failure, at: t(0), times: 3)
        var now = t(1)
        for expected in [2, 4, 8, 16, 32, 32, 32] {
            let probe = try admit(b, at: now)
            b.record(probe, outcome: .failure, at: now)
            let reopens = try #require(refusal(b, at: now))
            #expect(reopens - now == .seconds(expected))
            now = reopens
        }
    }

    /// A service that flaps (a probe succeeds, the next calls fail) keeps its doubled cooldown;
    /// one success in the closed state brings it back to the base.
    @Test func theCooldownStaysDoubledUntilASuccessInTheClosedState() throws {
        let b = breaker()
        try call(b, .failure, at: t(0), times: 3)
        var probe = try admit(b, at: t(5))
        b.record(probe, outcome: .failure, at: t(5))  // open 10 s, until 15
        probe = try admit(b, at: t(15))
        b.record(probe, outcome: .success, at: t(15))
        try call(b, .failure, at: t(16), times: 3)
        #expect(refusal(b, at: t(16)) == t(26))  // still 10 s
        probe = try admit(b, at: t(26))
        b.record(probe, outcome: .success, at: t(26))
        try call(b, .success, at: t(27))
        try call(b, .failure, at: t(28), times: 3)
        #expect(refusal(b, at: t(28)) == t(33))  // the base 5 s again
    }

    /// A probe not reported within its timeout counts as failed at its deadline, so a lost
    /// ticket cannot keep the breaker half-open for ever.
    @Test func aLostProbeFailsAtItsDeadline() throws {
        let b = breaker()
        try call(b, .failure, at: t(0), times: 3)
        _ = try admit(b, at: t(5))  // the probe, never reported
        #expect(refusal(b, at: justBefore(t(7))) == t(7))
        #expect(b.state(at: t(7)) == .open)
        #expect(refusal(b, at: t(8)) == t(17))  // opened at the deadline, for 10 s
        #expect(b.state(at: t(17)) == .halfOpen)
        let isProbe = try admit(b, at: t(17)).isProbe
        #expect(isProbe)
    }

    /// Time alone moves it on even if nobody asks in between: a state read long after the
    /// cooldown, or after a lost probe's deadline and its doubled cooldown, is current.
    @Test func stateCatchesUpOverSeveralSteps() throws {
        let b = breaker()
        try call(b, .failure, at: t(0), times: 3)
        _ = try admit(b, at: t(5))
        #expect(b.state(at: t(1000)) == .halfOpen)  // 7 s: lost; 17 s: half-open again
        let isProbe = try admit(b, at: t(1000)).isProbe
        #expect(isProbe)
        #expect(refusal(b, at: t(1001)) == t(1002))
    }
}

@Suite struct CircuitBreakerRuleTests {
    /// 100 % of 3 calls failed, but 4 calls are needed before the ratio means anything.
    @Test func theRatioWaitsForTheMinimumCalls() throws {
        let b = breaker(failureCount: nil, failureRatio: .init(0.5, minimumCalls: 4))
        try call(b, .failure, at: t(0), times: 3)
        #expect(b.state(at: t(0)) == .closed)
        try call(b, .failure, at: t(0))
        #expect(b.state(at: t(0)) == .open)
    }

    @Test func theRatioTripsAtExactlyTheRatio() throws {
        let b = breaker(failureCount: nil, failureRatio: .init(0.5, minimumCalls: 4))
        try call(b, .success, at: t(0), times: 3)
        try call(b, .failure, at: t(0))  // 1/4
        try call(b, .failure, at: t(0))  // 2/5
        #expect(b.state(at: t(0)) == .closed)
        try call(b, .failure, at: t(0))  // 3/6
        #expect(b.state(at: t(0)) == .open)
    }

    /// 0.28 is not a binary fraction: 7 of 25 must still meet it (0.28 × 25 computes as
    /// 7.000000000000001, so comparing failures with ratio × calls would not trip).
    @Test func aDecimalRatioIsMetExactly() throws {
        let b = breaker(failureCount: nil, failureRatio: .init(0.28, minimumCalls: 25))
        try call(b, .success, at: t(0), times: 18)
        try call(b, .failure, at: t(0), times: 6)
        #expect(b.state(at: t(0)) == .closed)
        try call(b, .failure, at: t(0))
        #expect(b.state(at: t(0)) == .open)
    }

    @Test func successesAloneNeverTrip() throws {
        let b = breaker(failureCount: nil, failureRatio: .init(0.01, minimumCalls: 1))
        try call(b, .success, at: t(0), times: 1_000)
        #expect(b.state(at: t(0)) == .closed)
    }

    /// Old successes leave the window: 4 fresh failures are 4/4, not 4/8.
    @Test func theRatioCountsOnlyTheWindow() throws {
        let b = breaker(failureCount: nil, failureRatio: .init(0.6, minimumCalls: 4))
        try call(b, .success, at: t(0), times: 4)
        try call(b, .failure, at: t(11), times: 3)
        #expect(b.state(at: t(11)) == .closed)  // 3 calls: under the minimum
        try call(b, .failure, at: t(11))
        #expect(b.state(at: t(11)) == .open)
    }

    @Test func theCountCountsOnlyTheWindow() throws {
        let b = breaker()
        for second in [0.0, 6, 12, 18] {
            try call(b, .failure, at: t(second))
            #expect(b.state(at: t(second)) == .closed)
        }
        try call(b, .failure, at: t(18.5))  // with 12 and 18
        #expect(b.state(at: t(18.5)) == .open)
    }

    @Test func theCountTripsWhateverTheRatio() throws {
        let b = breaker(failureCount: 5, failureRatio: .init(0.5, minimumCalls: 8))
        try call(b, .success, at: t(0), times: 20)
        try call(b, .failure, at: t(0), times: 4)
        #expect(b.state(at: t(0)) == .closed)
        try call(b, .failure, at: t(0))  // 5 failures, 5/25
        #expect(b.state(at: t(0)) == .open)
    }

    @Test func theRatioTripsBeforeTheCount() throws {
        let b = breaker(failureCount: 5, failureRatio: .init(0.5, minimumCalls: 8))
        try call(b, .success, at: t(0), times: 4)
        try call(b, .failure, at: t(0), times: 3)
        #expect(b.state(at: t(0)) == .closed)  // 3/7
        try call(b, .failure, at: t(0))  // 4/8, 4 failures
        #expect(b.state(at: t(0)) == .open)
    }

    @Test func invalidSettingsAreRefused() {
        typealias Configuration = CircuitBreaker.Configuration
        let w = Duration.seconds(10), c = Duration.seconds(5)
        #expect(refusedSetting { try Configuration(window: w, cooldown: c) } == "circuitBreaker.failureCount")
        #expect(refusedSetting { try Configuration(failureCount: 0, window: w, cooldown: c) } == "circuitBreaker.failureCount")
        #expect(refusedSetting { try Configuration(failureRatio: .init(0, minimumCalls: 1), window: w, cooldown: c) } == "circuitBreaker.failureRatio")
        #expect(refusedSetting { try Configuration(failureRatio: .init(1.5, minimumCalls: 1), window: w, cooldown: c) } == "circuitBreaker.failureRatio")
        #expect(refusedSetting { try Configuration(failureRatio: .init(.nan, minimumCalls: 1), window: w, cooldown: c) } == "circuitBreaker.failureRatio")
        #expect(refusedSetting { try Configuration(failureRatio: .init(0.5, minimumCalls: 0), window: w, cooldown: c) } == "circuitBreaker.minimumCalls")
        #expect(refusedSetting { try Configuration(failureCount: 1, window: .zero, cooldown: c) } == "circuitBreaker.window")
        #expect(refusedSetting { try Configuration(failureCount: 1, window: w, buckets: 0, cooldown: c) } == "circuitBreaker.buckets")
        #expect(refusedSetting { try Configuration(failureCount: 1, window: w, cooldown: .zero) } == "circuitBreaker.cooldown")
        #expect(refusedSetting { try Configuration(failureCount: 1, window: w, cooldown: c, maxCooldown: .seconds(4)) } == "circuitBreaker.maxCooldown")
        #expect(refusedSetting { try Configuration(failureCount: 1, window: w, cooldown: c, probeTimeout: .zero) } == "circuitBreaker.probeTimeout")
        #expect(refusedSetting { try Configuration(failureRatio: .init(1, minimumCalls: 1), window: w, cooldown: c) } == nil)
    }
}

/// A ticket is good only in the state it was issued in.
@Suite struct StaleTicketTests {
    @Test func aCallAdmittedBeforeTheTripCannotExtendTheOpening() throws {
        let b = breaker()
        let slow = try admit(b, at: t(0))
        try call(b, .failure, at: t(1), times: 3)
        #expect(b.record(slow, outcome: .failure, at: t(2)) == .stale)
        #expect(refusal(b, at: t(2)) == t(6))
        #expect(b.state(at: t(6)) == .halfOpen)
    }

    @Test func aCallAdmittedBeforeTheTripCannotCloseTheBreaker() throws {
        let b = breaker()
        let slow = try admit(b, at: t(0))
        try call(b, .failure, at: t(1), times: 3)
        let probe = try admit(b, at: t(6))
        #expect(b.record(slow, outcome: .success, at: t(6.5)) == .stale)
        #expect(b.state(at: t(6.5)) == .halfOpen)
        #expect(refusal(b, at: t(6.5)) == t(8))  // the probe is still out
        #expect(b.record(probe, outcome: .failure, at: t(7)) == .counted)
        #expect(refusal(b, at: t(7)) == t(17))
    }

    @Test func aCallAdmittedBeforeTheTripDoesNotCountAfterItCloses() throws {
        let b = breaker()
        let slow = try admit(b, at: t(0))
        try call(b, .failure, at: t(1), times: 3)
        let probe = try admit(b, at: t(6))
        b.record(probe, outcome: .success, at: t(6))
        #expect(b.record(slow, outcome: .failure, at: t(7)) == .stale)
        try call(b, .failure, at: t(7), times: 2)
        #expect(b.state(at: t(7)) == .closed)
        try call(b, .failure, at: t(7))
        #expect(b.state(at: t(7)) == .open)
    }

    /// A success from an earlier closed spell does not reset the doubled cooldown.
    @Test func aCallFromAnEarlierClosedSpellCannotResetTheCooldown() throws {
        let b = breaker()
        let slow = try admit(b, at: t(0))
        try call(b, .failure, at: t(1), times: 3)  // open until 6
        var probe = try admit(b, at: t(6))
        b.record(probe, outcome: .failure, at: t(6))  // open 10 s, until 16
        probe = try admit(b, at: t(16))
        b.record(probe, outcome: .success, at: t(16))
        #expect(b.record(slow, outcome: .success, at: t(17)) == .stale)
        try call(b, .failure, at: t(18), times: 3)
        #expect(refusal(b, at: t(18)) == t(28))
    }

    @Test func aProbeReportedAfterItsDeadlineCannotCloseTheBreaker() throws {
        let b = breaker()
        try call(b, .failure, at: t(0), times: 3)
        let probe = try admit(b, at: t(5))
        #expect(b.record(probe, outcome: .success, at: t(8)) == .stale)
        #expect(b.state(at: t(8)) == .open)
        #expect(refusal(b, at: t(8)) == t(17))
    }

    @Test func aTicketOfAnotherBreakerTraps() async {
        await #expect(processExitsWith: .failure) {
            let a = breaker(), b = breaker()
            switch a.acquire(at: t(0)) {
            case .allowed(let ticket): b.record(ticket, outcome: .success, at: t(0))
            case .refused: break  // exits 0: the expectation fails
            }
        }
    }
}

@Suite struct CircuitBreakerConcurrencyTests {
    /// Threads released together into a breaker whose cooldown has just ended: one of them gets
    /// the probe, every other is refused until the probe's deadline.
    @Test func exactlyOneProbeUnderConcurrentAcquire() throws {
        for _ in 0..<100 {
            let b = breaker()
            try call(b, .failure, at: t(0), times: 3)
            let probes = Counter(), others = Counter(), refused = Counter()
            onThreads(16) { _ in
                switch b.acquire(at: t(5)) {
                case .allowed(let ticket): ticket.isProbe ? probes.increment() : others.increment()
                case .refused(let reopensAt): if reopensAt == t(7) { refused.increment() }
                }
            }
            #expect(probes.count == 1)
            #expect(others.count == 0)
            #expect(refused.count == 15)
        }
    }

    /// Threads failing calls together: exactly the threshold's worth of failures are counted;
    /// every report after the trip is stale, every later call refused.
    @Test func concurrentFailuresTripAtExactlyTheThreshold() {
        let b = breaker(failureCount: 1_000)
        let counted = Counter(), stale = Counter(), refused = Counter()
        onThreads(8) { _ in
            for _ in 0..<300 {
                switch b.acquire(at: t(1)) {
                case .allowed(let ticket):
                    b.record(ticket, outcome: .failure, at: t(1)) == .counted ? counted.increment() : stale.increment()
                case .refused:
                    refused.increment()
                }
            }
        }
        #expect(counted.count == 1_000)
        #expect(counted.count + stale.count + refused.count == 2_400)
        #expect(b.state(at: t(1)) == .open)
    }
}
