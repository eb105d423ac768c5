import CordonSystem
import Foundation
import Synchronization
import Testing

/// The one way threads start and sleep: names and signal masks as stated, deadlines on the
/// monotonic clock, and conditions that wake only their own waiters.
struct ThreadsTests {
    /// What /proc says about the calling thread: its name and blocked-signal mask.
    static func selfStatus() -> (name: String, blocked: UInt64) {
        let status = (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)) ?? ""
        var name = "", blocked: UInt64 = 0
        for line in status.split(separator: "\n") {
            if line.hasPrefix("Name:") { name = line.dropFirst(5).trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("SigBlk:") { blocked = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0 }
        }
        return (name, blocked)
    }

    @Test(arguments: [(Threads.Signals.none, "none"), (.noSIGPIPE, "pipe"), (.inherited, "inherited")])
    func aThreadHasItsNameAndSignalMask(_ c: (Threads.Signals, String)) throws {
        let seen = Mutex<(name: String, blocked: UInt64)>(("", 0))
        let creator = Self.selfStatus().blocked
        let thread = try Threads.start("t-\(c.1)", signals: c.0) { seen.withLock { $0 = Self.selfStatus() } }
        thread.join()
        let (name, blocked) = seen.withLock { $0 }
        #expect(name == "t-\(c.1)")
        let pipe: UInt64 = 1 << (UInt64(SIGPIPE) - 1)
        switch c.0 {
        case .none:
            // Every standard signal (the kernel never blocks SIGKILL and SIGSTOP; glibc keeps its
            // own real-time signals 32 and 33 for itself).
            let standard: UInt64 = (1 << 31) - 1
            #expect(blocked & standard == standard & ~(1 << (UInt64(SIGKILL) - 1)) & ~(1 << (UInt64(SIGSTOP) - 1)))
        case .noSIGPIPE: #expect(blocked == creator | pipe)
        case .inherited: #expect(blocked == creator)
        }
        // The creator's own mask is as it was.
        #expect(Self.selfStatus().blocked == creator)
    }

    @Test func aLongNameIsCutToWhatTheKernelKeeps() throws {
        let seen = Mutex("")
        try Threads.start("a-name-longer-than-fifteen-bytes", signals: .inherited) { seen.withLock { $0 = Self.selfStatus().name } }.join()
        #expect(seen.withLock { $0 } == "a-name-longer-t")
    }

    @Test func aDetachedThreadRuns() throws {
        let monitor = Monitor()
        nonisolated(unsafe) var ran = false
        try Threads.detach("detached", signals: .noSIGPIPE) {
            monitor.locked {
                ran = true
                monitor.broadcast()
            }
        }
        #expect(monitor.locked { monitor.wait(until: MonotonicClock.now + 10) { ran } })
    }

    @Test func aWaitWithADeadlineEndsAtTheDeadline() {
        let monitor = Monitor()
        let start = MonotonicClock.now
        let done = monitor.locked { monitor.wait(until: start + 0.2) { false } }
        let waited = MonotonicClock.since(start)
        #expect(!done)
        #expect(waited >= 0.2)
        #expect(waited < 5)
        // A deadline already past returns at once, with what done() says.
        #expect(monitor.locked { monitor.wait(until: start) { true } })
    }

    /// A signal on one condition wakes its waiter and not the other condition's.
    @Test func conditionsWakeOnlyTheirOwnWaiters() throws {
        let monitor = Monitor(conditions: 2)
        let a = Monitor.Condition(0), b = Monitor.Condition(1)
        nonisolated(unsafe) var flag = false
        nonisolated(unsafe) var wakeups = 0
        nonisolated(unsafe) var waiting = false
        let waiter = try Threads.start("waiter", signals: .inherited) {
            monitor.locked {
                waiting = true
                monitor.broadcast(a)
                _ = monitor.wait(b, until: MonotonicClock.now + 10) { wakeups += 1; return flag }
            }
        }
        #expect(monitor.locked { monitor.wait(a, until: MonotonicClock.now + 10) { waiting } })
        // Signals on `a` do not wake the waiter on `b` (its predicate ran once, before sleeping).
        for _ in 0..<5 { monitor.locked { monitor.signal(a) } }
        usleep(50_000)
        #expect(monitor.locked { wakeups } == 1)
        monitor.locked {
            flag = true
            monitor.signal(b)
        }
        waiter.join()
        #expect(wakeups == 2)
    }
}
