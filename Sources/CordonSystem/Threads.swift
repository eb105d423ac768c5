#if canImport(Glibc)
import CLinux
import Glibc
#endif

/// Threads and the lock they sleep on, one way each for the whole project: the daemon's
/// connection, task and maintenance threads, the audit store's writer and the egress engine's
/// threads all start through `Threads.start` (named, with a stated signal mask) and wait on a
/// `Monitor`. Why threads at all, and which work gets one: docs/architecture.md.
public enum Threads {
    /// What a new thread's signal mask is, beside what it inherits from its creator.
    public enum Signals: Sendable {
        /// The creator's mask (cordond's main thread blocks the signals it reads from a signalfd).
        case inherited
        /// Also SIGPIPE: a write to a closed socket or pipe fails with EPIPE instead of killing
        /// the process.
        case noSIGPIPE
        /// Every signal: the thread can never be picked to run a handler.
        case none
    }

    /// A started, joinable thread: join it, or detach it, exactly once.
    public struct Joinable: Sendable {
        public let id: pthread_t
        /// Waits for the thread to finish. The corresponding C function is `pthread_join`.
        public func join() { precondition(pthread_join(id, nil) == 0, "pthread_join: not a joinable thread of ours") }
        /// Whether the calling thread is this one (which cannot join itself).
        public var isCurrent: Bool { pthread_equal(id, pthread_self()) != 0 }
        /// Lets the thread clean up after itself when it ends, instead of being joined. The
        /// corresponding C function is `pthread_detach`.
        public func detach() { precondition(pthread_detach(id) == 0, "pthread_detach: not a joinable thread of ours") }
    }

    private final class Start {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    /// Starts `body` on a new joinable thread named `name` (at most 15 bytes are kept: what
    /// `top -H` and /proc/PID/task/TID/comm show).
    public static func start(_ name: String, signals: Signals, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> Joinable {
        Joinable(id: try create(name, signals: signals, detached: false, body))
    }

    /// Starts `body` on a new detached thread named `name`: it cleans up after itself.
    public static func detach(_ name: String, signals: Signals, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        _ = try create(name, signals: signals, detached: true, body)
    }

    private static func create(_ name: String, signals: Signals, detached: Bool,
                               _ body: @escaping @Sendable () -> Void) throws(SystemError) -> pthread_t {
        var mask = sigset_t(), previous = sigset_t()
        switch signals {
        case .inherited: sigemptyset(&mask)
        case .noSIGPIPE: sigemptyset(&mask); sigaddset(&mask, SIGPIPE)
        case .none: sigfillset(&mask)
        }
        // The new thread inherits the mask in force at pthread_create: set it around the call.
        pthread_sigmask(SIG_BLOCK, &mask, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        var id = pthread_t()
        let context = Unmanaged.passRetained(Start(name, body))
        let rc = pthread_create(&id, &attributes, { raw in
            let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            _ = cl_set_thread_name(start.name)
            start.body()
            return nil
        }, context.toOpaque())
        guard rc == 0 else {
            context.release()
            throw SystemError("pthread_create", path: name, errno: rc)
        }
        return id
    }
}

/// A mutex with condition variables on the monotonic clock (Synchronization's Mutex has no
/// wait): for state that threads sleep on until it changes (a task ends, a batch commits).
public final class Monitor: @unchecked Sendable {
    /// One of the monitor's condition variables (the index given at `init`).
    public struct Condition: Sendable {
        let index: Int
        public init(_ index: Int) { self.index = index }
        public static let first = Condition(0)
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    private let count: Int

    /// `conditions`: how many condition variables (waiters on different things, so that a
    /// signal wakes only those it is meant for).
    public init(conditions: Int = 1) {
        precondition(conditions >= 1)
        count = conditions
        self.conditions = .allocate(capacity: conditions)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        for i in 0..<conditions { pthread_cond_init(self.conditions + i, &attributes) }
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        for i in 0..<count { pthread_cond_destroy(conditions + i) }
        pthread_mutex_destroy(mutex)
        conditions.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the lock held.
    public func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Sleeps (the lock held by the caller, inside `locked`) until `done()` or the deadline
    /// (`MonotonicClock` seconds, nil: none). Returns `done()`.
    public func wait(_ condition: Condition = .first, until deadline: Double? = nil, _ done: () -> Bool) -> Bool {
        let c = conditions + condition.index
        while !done() {
            guard let deadline else {
                pthread_cond_wait(c, mutex)
                continue
            }
            let now = MonotonicClock.now
            if now >= deadline { return false }
            let at = MonotonicClock.deadline(adding: deadline - now)
            var ts = at
            pthread_cond_timedwait(c, mutex, &ts)
        }
        return true
    }

    /// Wakes one waiter on `condition` (call with the lock held).
    public func signal(_ condition: Condition = .first) { pthread_cond_signal(conditions + condition.index) }

    /// Wakes every waiter on `condition` (call with the lock held).
    public func broadcast(_ condition: Condition = .first) { pthread_cond_broadcast(conditions + condition.index) }
}

/// A job handed to a new thread, taken out once.
private final class JobBox: @unchecked Sendable {
    private var job: (@Sendable () -> Void)?
    init(_ job: @escaping @Sendable () -> Void) { self.job = job }
    /// Called once, by the thread the job was given to, before anything else reads it.
    func take() -> (@Sendable () -> Void)? {
        defer { job = nil }
        return job
    }
}

/// Threads for jobs that may block for long (a forwarded call waiting on its answer), reused:
/// a job goes to a thread that is idle, or to a new one — never waits behind another job, so a
/// slow one holds up nothing — and a thread idle for `idleSeconds` ends, with at most `maxIdle`
/// kept. Starting a thread per job costs tens of microseconds on a call that takes a
/// millisecond; this pays it only when every thread is busy.
public final class ElasticThreads: @unchecked Sendable {
    private let monitor = Monitor()
    private let name: String
    private let maxIdle: Int
    private let idleSeconds: Double
    // Guarded by `monitor`.
    private var jobs: [@Sendable () -> Void] = []
    private var idle = 0

    public init(name: String, maxIdle: Int = 8, idleSeconds: Double = 10) {
        self.name = name
        self.maxIdle = maxIdle
        self.idleSeconds = idleSeconds
    }

    /// Runs `job` on an idle thread, or a new one.
    public func run(_ job: @escaping @Sendable () -> Void) throws(SystemError) {
        let handed = monitor.locked { () -> Bool in
            guard idle > jobs.count else { return false }
            jobs.append(job)
            monitor.signal()
            return true
        }
        if handed { return }
        // The first job through a box the thread empties: a closure the thread's own closure
        // captured would stay alive (and all it holds: a task, its descriptors) while it idles.
        let first = JobBox(job)
        try Threads.detach(name, signals: .noSIGPIPE) { [self] in
            var next = first.take()
            while next != nil {
                next!()
                next = nil
                next = monitor.locked { () -> (@Sendable () -> Void)? in
                    guard idle < maxIdle else { return nil }
                    idle += 1
                    defer { idle -= 1 }
                    _ = monitor.wait(until: MonotonicClock.now + idleSeconds) { !jobs.isEmpty }
                    return jobs.isEmpty ? nil : jobs.removeFirst()
                }
            }
        }
    }
}
