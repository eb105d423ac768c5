import CLinux
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One thread's readiness loop: descriptors watched with epoll, timers, and work handed in from
/// other threads — the shape of the supervisor's poll loop (`Supervisor.loop`), for descriptors
/// counted in thousands rather than ten. cordond's socket server runs on one; why a loop of our
/// own and not SwiftNIO: docs/architecture.md (Concurrency).
///
/// Level-triggered, as poll(2) is: a handler that reads only part of what is ready (a bounded
/// chunk, or nothing while its output is backed up) is simply called again, so no handler has to
/// drain to EAGAIN and no readiness is lost when interest changes. The price is an epoll_ctl
/// whenever a descriptor starts or stops wanting EPOLLOUT, which happens only while output is
/// backed up.
///
/// Ownership: `register` takes the `Descriptor`; the loop closes it in `deregister` (after
/// taking it out of epoll, so "deregister before close" holds by construction) or when the loop
/// itself goes. Others may use its number for reads and writes while it is registered.
///
/// Threading: `register`, `modify`, `deregister`, `schedule` and `cancel` are for the loop's own
/// thread (handlers, timers and executed work run there), or any one thread before `run` starts;
/// `execute` and `stop` may be called from any thread, and wake the loop through an eventfd.
/// Handlers must not block.
public final class EventLoop: @unchecked Sendable {
    /// What a descriptor is watched for, and what was reported.
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: UInt32(CL_EPOLLIN))
        public static let writable = Events(rawValue: UInt32(CL_EPOLLOUT))
        /// Reported only, whatever the interest: both directions hung up, or the descriptor
        /// failed. (A half-close is not reported: a client that shut down its sending side still
        /// gets its answer; its read returns 0 once the loop reads again.)
        public static let hangup = Events(rawValue: UInt32(CL_EPOLLHUP))
    }

    /// The kernel's bits as handlers see them: EPOLLERR is reported as a hangup (either way the
    /// descriptor is done with), so `contains(.hangup)` is the one test.
    private static func reported(_ bits: UInt32) -> Events {
        var events = Events(rawValue: bits & UInt32(CL_EPOLLIN | CL_EPOLLOUT | CL_EPOLLHUP))
        if bits & UInt32(CL_EPOLLERR) != 0 { events.insert(.hangup) }
        return events
    }

    public typealias Handler = (Events) -> Void

    /// A scheduled timer, for `cancel`.
    public struct Timer: Hashable, Sendable {
        fileprivate let id: UInt64
    }

    private let epoll: Descriptor
    private let wakeup: Descriptor
    private struct Watched {
        let owner: OwnedDescriptor
        let token: UInt64
        let handler: Handler
    }
    // The loop thread's own state.
    /// By descriptor number; each registration has a token of its own (generation << 32 | fd),
    /// so readiness reported for a descriptor deregistered earlier in the same batch — whose
    /// number a handler may already have reused — is not delivered to its successor.
    private var watched: [Int32: Watched] = [:]
    private var generation: UInt64 = 0
    private var timers: [UInt64: (deadline: Double, body: () -> Void)] = [:]
    /// Min-heap of (deadline, id), ties in scheduling order; a cancelled timer is skipped when it
    /// surfaces and the heap is rebuilt when cancelled ones outnumber the live.
    private var heap: [(deadline: Double, id: UInt64)] = []
    private var nextTimer: UInt64 = 0
    // Shared with other threads.
    private let inbox = Mutex<(jobs: [@Sendable () -> Void], stopped: Bool)>(([], false))
    private let thread = Atomic<UInt>(0)

    private static let wakeToken = UInt64.max

    public init() throws(SystemError) {
        epoll = Descriptor(adopting: try syscallRetrying("epoll_create1") { cl_epoll_create() })
        wakeup = Descriptor(adopting: try syscallRetrying("eventfd") { cl_eventfd() })
        try syscallRetrying("epoll_ctl ADD", path: "eventfd") { cl_epoll_ctl(epoll.raw, 0, wakeup.raw, UInt32(CL_EPOLLIN), Self.wakeToken) }
    }

    /// True on the thread running `run()`.
    public var inLoopThread: Bool { pthread_equal(pthread_self(), thread.load(ordering: .acquiring)) != 0 }

    /// How many descriptors are registered (for tests and metrics).
    public var registeredCount: Int { watched.count }

    /// How many timers are scheduled and not cancelled.
    public var timerCount: Int { timers.count }

    // MARK: Descriptors (loop thread)

    /// Watches `descriptor` for `events`, calling `handler` on the loop's thread while it is
    /// ready; the loop owns it from now on (and closes it at once if watching fails). Returns its
    /// number, the key for `modify` and `deregister`.
    @discardableResult
    public func register(_ descriptor: consuming Descriptor, _ events: Events, _ handler: @escaping Handler) throws(SystemError) -> Int32 {
        let fd = descriptor.raw
        let owner = OwnedDescriptor(descriptor)
        generation &+= 1
        let token = (generation << 32) | UInt64(UInt32(bitPattern: fd))
        try syscallRetrying("epoll_ctl ADD", path: "fd \(fd)") { cl_epoll_ctl(epoll.raw, 0, fd, events.rawValue, token) }
        watched[fd] = Watched(owner: owner, token: token, handler: handler)
        return fd
    }

    /// Changes what `fd` is watched for.
    public func modify(_ fd: Int32, _ events: Events) {
        // EBADF/ENOENT here is our bookkeeping's bug, not the peer's doing.
        guard let entry = watched[fd] else { preconditionFailure("EventLoop.modify(\(fd)): not registered") }
        do { try syscallRetrying("epoll_ctl MOD") { cl_epoll_ctl(epoll.raw, 1, fd, events.rawValue, entry.token) } }
        catch { preconditionFailure("EventLoop.modify(\(fd)): \(error)") }
    }

    /// Stops watching `fd` and closes it (nothing is called for it after this, even for
    /// readiness already reported in the current batch). A number not registered is ignored.
    public func deregister(_ fd: Int32) {
        guard let entry = watched.removeValue(forKey: fd) else { return }
        do { try syscallRetrying("epoll_ctl DEL") { cl_epoll_ctl(epoll.raw, 2, fd, 0, 0) } }
        catch { preconditionFailure("EventLoop.deregister(\(fd)): \(error)") }
        // Closed only now, out of epoll: its owner goes with the entry.
        withExtendedLifetime(entry) {}
    }

    // MARK: Timers (loop thread)

    /// Runs `body` on the loop once `deadline` (`MonotonicClock` seconds) has passed; timers due
    /// together run in deadline order, equal deadlines in the order they were scheduled.
    @discardableResult
    public func schedule(at deadline: Double, _ body: @escaping () -> Void) -> Timer {
        nextTimer += 1
        timers[nextTimer] = (deadline, body)
        heap.append((deadline, nextTimer))
        siftUp(heap.count - 1)
        return Timer(id: nextTimer)
    }

    /// Runs `body` once `seconds` have passed.
    @discardableResult
    public func schedule(after seconds: Double, _ body: @escaping () -> Void) -> Timer {
        schedule(at: MonotonicClock.now + seconds, body)
    }

    /// Forgets `timer` (nothing if it already ran or was cancelled).
    public func cancel(_ timer: Timer) {
        guard timers.removeValue(forKey: timer.id) != nil else { return }
        if heap.count > 64 && heap.count > 2 * timers.count {
            heap = timers.map { ($0.value.deadline, $0.key) }
            for i in stride(from: heap.count / 2, through: 0, by: -1) { siftDown(i) }
        }
    }

    // MARK: Other threads

    /// Runs `body` on the loop's thread, soon, in the order submitted. Dropped once the loop has
    /// stopped.
    public func execute(_ body: @escaping @Sendable () -> Void) {
        let wasEmpty = inbox.withLock { inbox in
            if inbox.stopped { return false }
            inbox.jobs.append(body)
            return inbox.jobs.count == 1
        }
        if wasEmpty { wake() }
    }

    /// Ends `run()` after the current iteration; later `execute`s are dropped.
    public func stop() {
        inbox.withLock { $0.stopped = true }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        // EAGAIN: the counter is already non-zero, the loop will wake anyway.
        _ = write(wakeup.raw, &one, 8)
    }

    // MARK: The loop

    /// Waits for readiness, timers and executed work, and runs their handlers, until `stop()`.
    public func run() {
        thread.store(pthread_self(), ordering: .releasing)
        defer { thread.store(0, ordering: .releasing) }
        var ready = [cl_ready](repeating: cl_ready(), count: 256)
        while true {
            let now = MonotonicClock.now
            runDueTimers(now)
            var timeout: Int32 = -1
            if let first = heap.first {
                timeout = Int32(min(Double(Int32.max), max(0, (first.deadline - now) * 1000).rounded(.up)))
            }
            let n = cl_epoll_wait(epoll.raw, &ready, Int32(ready.count), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                preconditionFailure("epoll_wait: \(SystemError.text(errno))")
            }
            for i in 0..<Int(n) {
                let token = ready[i].token
                if token == Self.wakeToken {
                    var count: UInt64 = 0
                    _ = read(wakeup.raw, &count, 8)
                    continue
                }
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: token))
                // A handler earlier in this batch may have deregistered it (and reused its number).
                guard let entry = watched[fd], entry.token == token else { continue }
                entry.handler(Self.reported(ready[i].events))
            }
            let (jobs, stopped) = inbox.withLock { inbox in
                defer { inbox.jobs.removeAll(keepingCapacity: true) }
                return (inbox.jobs, inbox.stopped)
            }
            for job in jobs { job() }
            if stopped { return }
        }
    }

    private func runDueTimers(_ now: Double) {
        while let first = heap.first, first.deadline <= now {
            heap.swapAt(0, heap.count - 1)
            heap.removeLast()
            if !heap.isEmpty { siftDown(0) }
            if let timer = timers.removeValue(forKey: first.id) { timer.body() }
        }
    }

    private func earlier(_ a: (deadline: Double, id: UInt64), _ b: (deadline: Double, id: UInt64)) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id)
    }

    private func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard earlier(heap[child], heap[parent]) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1, right = left + 1
            var least = parent
            if left < heap.count && earlier(heap[left], heap[least]) { least = left }
            if right < heap.count && earlier(heap[right], heap[least]) { least = right }
            if least == parent { return }
            heap.swapAt(parent, least)
            parent = least
        }
    }
}

/// Bounds on the C allocator, for a process whose threads take turns with large buffers
/// (cordond's request workers).
public enum MallocArenas {
    /// At most `count` malloc arenas: memory one worker freed is reused by the next instead of
    /// staying in the first one's arena. Call before the threads start. The corresponding C
    /// function is `mallopt(M_ARENA_MAX, …)`.
    @discardableResult
    public static func limit(_ count: Int) -> Bool { cl_malloc_arena_max(Int32(clamping: count)) == 1 }

    /// Gives free memory back to the system. The corresponding C function is `malloc_trim`.
    public static func trim() { _ = cl_malloc_trim() }
}
