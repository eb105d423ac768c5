import CordonHTTPClient
import CordonJSON
import Foundation
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
