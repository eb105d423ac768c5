import CordonHTTPClient
import CordonJSON
import CordonSystem
import Foundation
import Synchronization
import Testing

/// `HTTPClient`'s end, against `provider_standin.py` (a real HTTP/1.1 server on 127.0.0.1):
/// where its last reference goes, and `shutDown`.
@Suite(.serialized) struct HTTPClientTests {
    final class Holder: @unchecked Sendable {
        var client: HTTPClient?
        var result: Result<HTTPOutcome, HTTPError>?
        let done = DispatchSemaphore(value: 0)
    }

    static func request(_ standin: StandIn, model: String, temperature: Double = 0) -> HTTPRequest {
        let body = JSON.object([("model", .string(model)), ("temperature", .double(temperature)),
                                ("messages", .array([.object([("role", .string("user")), ("content", .string("hi"))])]))])
        return HTTPRequest(url: standin.baseURL + "/chat/completions", headers: [("Content-Type", "application/json")],
                           body: Array(body.text.utf8))
    }

    /// The threads of this process named as the client's.
    static func clientThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) == "http-client\n" }.count
    }

    /// A completion that drops the last reference to its client (the model worker's session
    /// does, when stdin ends as its last answer is written): the client goes on its own
    /// thread, which cannot join itself — it ends instead, and the process goes on.
    @Test func aCompletionMayDropTheLastReferenceToItsClient() throws {
        let standin = try StandIn()
        for _ in 0..<20 {
            let holder = Holder()
            holder.client = try HTTPClient()
            let call = try #require(holder.client).call(Self.request(standin, model: "plain"))
            call.start(onBody: { _ in true }) { result in
                holder.result = result
                holder.client = nil
                holder.done.signal()
            }
            #expect(holder.done.wait(timeout: .now() + 10) == .success)
            #expect((try? holder.result?.get())?.head.status == 200, "\(String(describing: holder.result))")
        }
        let deadline = Date(timeIntervalSinceNow: 5)
        while Self.clientThreads() > 0 && Date() < deadline { usleep(10_000) }
        #expect(Self.clientThreads() == 0, "every client's thread ended")
    }

    /// `shutDown` ends the calls in flight before it returns, and every later call at once;
    /// called twice, it does nothing more.
    @Test func shutDownEndsWhatRunsAndWhatComesLater() throws {
        let standin = try StandIn()
        let client = try HTTPClient()
        let slow = Holder()
        let call = try client.call(Self.request(standin, model: "slow", temperature: 5))
        call.start(onBody: { _ in true }) { result in
            slow.result = result
            slow.done.signal()
        }
        usleep(200_000)
        let before = Date()
        client.shutDown()
        #expect(Date().timeIntervalSince(before) < 2, "not the 5 s the server takes")
        guard case .failure(let error)? = slow.result else { Issue.record("\(String(describing: slow.result))"); return }
        #expect(error.reason == .cancelled)
        let later = Holder()
        try client.call(Self.request(standin, model: "plain")).start(onBody: { _ in true }) { result in
            later.result = result
            later.done.signal()
        }
        #expect(later.done.wait(timeout: .now() + 1) == .success)
        guard case .failure(let refused)? = later.result else { Issue.record("\(String(describing: later.result))"); return }
        #expect(refused.reason == .cancelled)
        client.shutDown()
    }
}

/// `watch`: the client's thread reads a descriptor along with its transfers (the model worker's
/// stdin), and a call started from `onInput` runs without a wake-up of its own.
@Suite(.serialized) struct HTTPClientInputTests {
    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var reads: [Int] = []
        var onClientThread = true
        var completed: Result<HTTPOutcome, HTTPError>?
        let done = DispatchSemaphore(value: 0)
        func note(_ n: Int, thread: String) {
            lock.withLock { reads.append(n); if thread != "http-client" { onClientThread = false } }
        }
        var snapshot: [Int] { lock.withLock { reads } }
    }

    static func threadName() -> String {
        (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) ?? "?"
    }

    /// A call started on the client's thread (here by a completion) does not wake it: it must
    /// still start at the end of that turn, not after the wait for the next (up to a second).
    @Test func aCallStartedByACompletionStartsAtOnce() throws {
        let standin = try StandIn()
        let client = try HTTPClient()
        defer { client.shutDown() }
        let request = HTTPClientTests.request(standin, model: "plain")
        for _ in 0..<3 {
            let seen = Seen()
            let firstEnded = Mutex<Double>(0)
            let first = try client.call(request)
            first.start(onBody: { _ in true }) { _ in
                firstEnded.withLock { $0 = MonotonicClock.now }
                let second = try! client.call(request)
                second.start(onBody: { _ in true }) { result in
                    seen.completed = result
                    seen.done.signal()
                }
            }
            #expect(seen.done.wait(timeout: .now() + 10) == .success)
            let took = MonotonicClock.now - firstEnded.withLock { $0 }
            #expect(took < 0.5, "the second call ended \(took) s after the first")
            guard case .success? = seen.completed else { Issue.record("\(String(describing: seen.completed))"); return }
        }
    }

    /// A pipe's end with nothing left in it shows POLLHUP alone: `onInput` must still hear of
    /// it (a read of 0), once, and not be called again — else a worker whose cordond went away
    /// would never end, or would spin.
    @Test func inputIsReadOnTheClientsThreadUpToItsEnd() throws {
        let standin = try StandIn()
        let client = try HTTPClient()
        defer { client.shutDown() }
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let readEnd = fds[0]
        defer { close(readEnd) }
        let seen = Seen()
        let request = HTTPClientTests.request(standin, model: "plain")
        client.watch(readEnd) {
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = read(readEnd, &buffer, buffer.count)
            seen.note(n, thread: Self.threadName())
            if n == 1 {
                // A request read here starts its call here.
                let call = try! client.call(request)
                call.start(onBody: { _ in true }) { result in
                    seen.completed = result
                    seen.done.signal()
                }
            }
            return n > 0
        }
        var byte: UInt8 = 0x78
        #expect(write(fds[1], &byte, 1) == 1)
        #expect(seen.done.wait(timeout: .now() + 10) == .success)
        guard case .success(let outcome)? = seen.completed else { Issue.record("\(String(describing: seen.completed))"); return }
        #expect(outcome.head.status == 200)
        close(fds[1])
        for _ in 0..<200 where seen.snapshot.last != 0 { usleep(10_000) }
        usleep(200_000)
        #expect(seen.snapshot == [1, 0], "reads: \(seen.snapshot)")
        #expect(seen.onClientThread)
    }
}
