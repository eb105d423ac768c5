import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan check` and `install-wheels`: one job per file on every core (at most
/// `maxThreads`: each holds an archive's reading in memory), the largest file first so that the
/// longest is not left for the end; the results in the files' order.
enum LargestFirst {
    static let maxThreads = 4

    /// `worker()` makes each thread's job runner (nil: no more threads, e.g. a database that
    /// would not open again); the calling thread runs the first.
    static func run<R: Sendable>(_ paths: [String], thread name: String, worker: () -> (@Sendable (Int) -> R)?) -> [R] {
        let results = Mutex<[R?]>(Array(repeating: nil, count: paths.count))
        let order = paths.indices.sorted { size(paths[$0]) > size(paths[$1]) }
        let next = Mutex(0)
        func drain(_ job: @escaping @Sendable (Int) -> R) -> @Sendable () -> Void {
            {
                while let i = next.withLock({ n -> Int? in
                    guard n < order.count else { return nil }
                    defer { n += 1 }
                    return order[n]
                }) {
                    let r = job(i)
                    results.withLock { $0[i] = r }
                }
            }
        }
        guard let first = worker() else { return [] }
        var started: [Threads.Joinable] = []
        for _ in 1..<min(max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))), maxThreads, max(1, paths.count)) {
            guard let job = worker(), let t = try? Threads.start(name, signals: .inherited, drain(job)) else { break }
            started.append(t)
        }
        drain(first)()
        for t in started { t.join() }
        return results.withLock { $0.compactMap { $0 } }
    }

    static func size(_ path: String) -> Int64 {
        var st = stat()
        return lstat(path, &st) == 0 ? Int64(st.st_size) : 0
    }
}
