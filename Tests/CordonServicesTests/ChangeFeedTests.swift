import CordonServices
import Synchronization
import Testing

/// The long poll `tool.watch` rests on: a wait is answered by the next change, at its deadline
/// with nothing new, or at once when the caller's count is stale (another daemon's).
struct ChangeFeedTests {
    final class Answers: Sendable {
        let got = Mutex<[UInt64]>([])
        func add(_ g: UInt64) { got.withLock { $0.append(g) } }
        var all: [UInt64] { got.withLock { $0 } }
    }

    @Test func aWaitIsAnsweredByTheNextChangeOrItsDeadline() {
        let feed = ChangeFeed(start: 100)
        let answers = Answers()
        feed.watch(after: 100, deadline: 50) { answers.add($0) }
        feed.watch(after: 100, deadline: 10) { answers.add($0) }
        #expect(answers.all.isEmpty && feed.waiting == 2)
        feed.expire(now: 20)
        #expect(answers.all == [100], "the one past its deadline, with nothing new")
        feed.bump()
        #expect(answers.all == [100, 101] && feed.waiting == 0)
        feed.expire(now: 100)
        #expect(answers.all == [100, 101], "answered once")
    }

    @Test func aStaleCountIsAnsweredAtOnce() {
        let feed = ChangeFeed(start: 7)
        let answers = Answers()
        feed.watch(after: 3, deadline: 1e9) { answers.add($0) }
        #expect(answers.all == [7] && feed.waiting == 0)
    }

    @Test func pastItsLimitAWaitIsAnsweredAtOnce() {
        let feed = ChangeFeed(start: 1)
        let answers = Answers()
        for _ in 0..<ChangeFeed.maxWaiters { feed.watch(after: 1, deadline: 1e9) { _ in } }
        feed.watch(after: 1, deadline: 1e9) { answers.add($0) }
        #expect(answers.all == [1] && feed.waiting == ChangeFeed.maxWaiters)
        feed.bump()
        #expect(feed.waiting == 0)
    }
}
