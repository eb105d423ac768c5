import CordonSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A job never waits behind another (a blocked one holds up nothing), and an idle thread is
/// reused rather than a new one started.
struct ElasticThreadsTests {
    final class Seen: Sendable {
        let threads = Mutex<[UInt64]>([])
        func add() { threads.withLock { $0.append(UInt64(UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))))) } }
        var all: [UInt64] { threads.withLock { $0 } }
    }

    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }
    final class Held: Sendable {
        let gone: Flag
        init(_ gone: Flag) { self.gone = gone }
        deinit { gone.set() }
    }

    /// What a finished job held is let go while its thread idles (a task's descriptors and
    /// request must not live on for the thread's idle seconds): the first job of a new thread,
    /// and one handed to an idle thread.
    @Test func aFinishedJobIsLetGoWhileItsThreadIdles() throws {
        let pool = ElasticThreads(name: "test-elastic", maxIdle: 1, idleSeconds: 30)
        for round in 0..<2 {
            let gone = Flag(), ran = Flag()
            do {
                let held = Held(gone)
                try pool.run { withExtendedLifetime(held) { ran.set() } }
            }
            let until = MonotonicClock.now + 5
            while !gone.isSet && MonotonicClock.now < until { usleep(1000) }
            #expect(ran.isSet, "round \(round): the job did not run")
            #expect(gone.isSet, "round \(round): the idle thread still holds the finished job")
        }
    }

    @Test func aBlockedJobHoldsUpNothingAndIdleThreadsAreReused() throws {
        let pool = ElasticThreads(name: "test-elastic", maxIdle: 2, idleSeconds: 5)
        let gate = Monitor()
        let open = Mutex(false)
        let done = Mutex(0)
        // One job blocks until the gate opens; the next runs meanwhile.
        try pool.run { gate.locked { _ = gate.wait(until: MonotonicClock.now + 10) { open.withLock { $0 } } }; done.withLock { $0 += 1 } }
        try pool.run { done.withLock { $0 += 1 } }
        let until = MonotonicClock.now + 5
        while done.withLock({ $0 }) < 1 && MonotonicClock.now < until { usleep(1000) }
        #expect(done.withLock { $0 } == 1, "the second job waited behind the first")
        gate.locked { open.withLock { $0 = true }; gate.broadcast() }
        while done.withLock({ $0 }) < 2 && MonotonicClock.now < until { usleep(1000) }
        // Now both threads are idle: ten jobs one after another run on them, no new thread.
        usleep(20_000)
        let seen = Seen()
        for i in 0..<10 {
            try pool.run { seen.add() }
            // Each job has run, and its thread is idle again, before the next is given.
            let before = MonotonicClock.now + 5
            while seen.all.count <= i && MonotonicClock.now < before { usleep(100) }
            usleep(20_000)
        }
        #expect(seen.all.count == 10 && Set(seen.all).count <= 2, "\(Set(seen.all).count) threads for 10 jobs")
    }
}
