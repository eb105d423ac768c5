import CordonSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The loop over socket pairs, unprivileged. Each test runs the loop on a thread of its own and
/// reads what the handlers recorded after joining it (the join orders their writes before).
/// Whether the loop closed a descriptor is seen from its peer (EOF), never by probing its number.
struct EventLoopTests {
    /// What handlers record, on the loop's thread; read after the loop's thread is joined.
    final class Record: @unchecked Sendable {
        var events: [String] = []
        /// Descriptors a test keeps open until it ends.
        var kept: [OwnedDescriptor] = []
    }

    func start(_ loop: EventLoop) throws -> Threads.Joinable {
        try Threads.start("test-loop", signals: .noSIGPIPE) { loop.run() }
    }

    func stream() throws -> SocketPair { try Descriptor.socketPair(type: Int32(SOCK_STREAM.rawValue)) }

    func send(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        #expect(Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count)
    }

    /// 0 when the other end is closed (EOF, or ECONNRESET: it was closed with bytes unread),
    /// -1 while it is open and silent (after waiting `ms`).
    func readNow(_ fd: Int32, waiting ms: Int32 = 1000) -> Int {
        var byte: UInt8 = 0
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, ms) == 1 else { return -1 }
        let n = read(fd, &byte, 1)
        return n < 0 && errno == ECONNRESET ? 0 : n
    }

    /// Reads what is there without blocking.
    func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64)
        _ = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
    }

    @Test func aReadableDescriptorCallsItsHandlerUntilItIsRead() throws {
        let loop = try EventLoop()
        let record = Record()
        let pair = try stream()
        let peer = pair.second
        var calls = 0
        try loop.register(pair.first, .readable) { [unowned loop] events in
            calls += 1
            // Level-triggered: not reading it the first time means being called again.
            guard calls == 2 else { return }
            record.events.append(events.contains(.readable) ? "readable" : "other")
            loop.stop()
        }
        send(peer.raw, "x")
        try start(loop).join()
        #expect(record.events == ["readable"])
        #expect(calls == 2)
    }

    @Test func writableIsReportedOnlyWhileAsked() throws {
        let loop = try EventLoop()
        let record = Record()
        let pair = try stream()
        let peer = pair.second
        var fd: Int32 = -1
        fd = try loop.register(pair.first, []) { [unowned loop] events in
            record.events.append(events.contains(.writable) ? "writable" : "other")
            loop.modify(fd, [])
            loop.schedule(after: 0.05) { loop.stop() }
        }
        loop.modify(fd, .writable)
        try start(loop).join()
        #expect(record.events == ["writable"])
        _ = peer
    }

    @Test func timersRunInDeadlineOrderAndCancelledOnesNever() throws {
        let loop = try EventLoop()
        let record = Record()
        let now = MonotonicClock.now
        loop.schedule(at: now + 0.03) { record.events.append("30ms") }
        loop.schedule(at: now + 0.01) { record.events.append("10ms a") }
        loop.schedule(at: now + 0.01) { record.events.append("10ms b") }
        let cancelled = loop.schedule(at: now + 0.02) { record.events.append("cancelled") }
        loop.schedule(at: now + 0.02) { record.events.append("20ms") }
        loop.schedule(at: now - 1) { record.events.append("past") }
        loop.schedule(at: now + 0.05) { loop.stop() }
        loop.cancel(cancelled)
        loop.cancel(cancelled)  // twice: nothing
        try start(loop).join()
        #expect(record.events == ["past", "10ms a", "10ms b", "20ms", "30ms"])
        #expect(MonotonicClock.since(now) >= 0.05)
        #expect(loop.timerCount == 0)
    }

    @Test func manyCancelledTimersAreForgotten() throws {
        let loop = try EventLoop()
        let record = Record()
        let now = MonotonicClock.now
        var kept: [Int] = []
        for i in 0..<1000 {
            let timer = loop.schedule(at: now + 0.001 * Double(i % 7)) { record.events.append("\(i)") }
            if i % 10 == 0 { kept.append(i) } else { loop.cancel(timer) }
        }
        #expect(loop.timerCount == kept.count)
        loop.schedule(at: now + 0.02) { loop.stop() }
        try start(loop).join()
        #expect(Set(record.events) == Set(kept.map { "\($0)" }))
        #expect(record.events.count == kept.count)
    }

    @Test func executeWakesAnIdleLoopFromOtherThreads() throws {
        let loop = try EventLoop()
        let record = Record()
        let thread = try start(loop)
        let threads = 4, jobs = 250
        var senders: [Threads.Joinable] = []
        for t in 0..<threads {
            senders.append(try Threads.start("test-exec", signals: .noSIGPIPE) {
                for j in 0..<jobs {
                    loop.execute {
                        #expect(loop.inLoopThread)
                        record.events.append("\(t).\(j)")
                    }
                }
            })
        }
        for sender in senders { sender.join() }
        // Nothing else is due: only the eventfd can wake it for this one.
        usleep(20_000)
        loop.execute { loop.stop() }
        thread.join()
        #expect(record.events.count == threads * jobs)
        for t in 0..<threads {
            // Each thread's jobs run in the order it submitted them.
            let mine = record.events.filter { $0.hasPrefix("\(t).") }
            #expect(mine == (0..<jobs).map { "\(t).\($0)" })
        }
        #expect(!loop.inLoopThread)
    }

    @Test func aDescriptorDeregisteredDuringACallbackIsNotCalledAndIsClosed() throws {
        let loop = try EventLoop()
        let record = Record()
        let a = try stream(), b = try stream()
        let peerA = a.second, peerB = b.second
        var fdA: Int32 = -1, fdB: Int32 = -1
        // Both are readable in the same batch; whichever runs first deregisters the other.
        fdA = try loop.register(a.first, .readable) { [unowned loop] _ in
            record.events.append("a")
            loop.deregister(fdB)
            loop.deregister(fdA)
            loop.stop()
        }
        fdB = try loop.register(b.first, .readable) { [unowned loop] _ in
            record.events.append("b")
            loop.deregister(fdA)
            loop.deregister(fdB)
            loop.stop()
        }
        send(peerA.raw, "x")
        send(peerB.raw, "x")
        try start(loop).join()
        #expect(record.events == ["a"] || record.events == ["b"])
        #expect(loop.registeredCount == 0)
        // Both closed by the loop: their peers read EOF.
        #expect(readNow(peerA.raw) == 0)
        #expect(readNow(peerB.raw) == 0)
    }

    @Test func aNumberReusedInTheSameBatchDoesNotGetTheOldReadiness() throws {
        let loop = try EventLoop()
        let record = Record()
        let a = try stream(), b = try stream()
        let peerA = a.second, peerB = b.second
        var fdA: Int32 = -1, fdB: Int32 = -1
        // The first handler called closes the other and registers a new, silent descriptor
        // (often under the other's number) whose peer stays open until the test ends.
        let handler: (String) -> EventLoop.Handler = { [unowned loop] name in
            { _ in
                drain(name == "a" ? fdA : fdB)
                guard record.events.isEmpty else { return }
                record.events.append(name)
                let other = name == "a" ? fdB : fdA
                loop.deregister(other)
                do {
                    let pair = try stream()
                    record.kept.append(OwnedDescriptor(pair.second))
                    try loop.register(pair.first, .readable) { _ in record.events.append("silent") }
                    loop.schedule(after: 0.05) { loop.stop() }
                } catch { record.events.append("\(error)") }
            }
        }
        fdA = try loop.register(a.first, .readable, handler("a"))
        fdB = try loop.register(b.first, .readable, handler("b"))
        send(peerA.raw, "x")
        send(peerB.raw, "x")
        try start(loop).join()
        #expect(record.events == ["a"] || record.events == ["b"])
    }

    @Test func stopEndsRunAndTheLoopClosesWhatItOwnsWhenItGoes() throws {
        let pair = try stream()
        let peer = pair.second
        var loop: EventLoop? = try EventLoop()
        try loop!.register(pair.first, .readable) { _ in }
        let thread = try start(loop!)
        loop!.stop()
        thread.join()
        // Dropped after the stop: never run.
        let record = Record()
        loop!.execute { record.events.append("late") }
        #expect(readNow(peer.raw, waiting: 0) == -1)  // still open: the loop still owns it
        loop = nil
        #expect(readNow(peer.raw) == 0)
        #expect(record.events.isEmpty)
    }

    @Test func aHangupIsReportedWithoutAskingForIt() throws {
        let loop = try EventLoop()
        let record = Record()
        let pair = try stream()
        var fd: Int32 = -1
        fd = try loop.register(pair.first, []) { [unowned loop] events in
            record.events.append(events.contains(.hangup) ? "hangup" : "other")
            loop.deregister(fd)
            loop.stop()
        }
        pair.second.close()
        try start(loop).join()
        #expect(record.events == ["hangup"])
    }
}
