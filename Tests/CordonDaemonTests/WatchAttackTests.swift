import CordonJSON
import CordonRPC
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An unprivileged user against `tool.watch` (from the second attacker's review of issue 17;
/// the test failed before its fix).
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct WatchAttackTests {
    /// A tool.watch wait ends with its connection: nobody opens a connection, asks tool.watch
    /// with timeout 300 and closes it, a few thousand times, and root's long poll still waits
    /// for a change. (Before the fix each wait outlived its connection until its deadline; the
    /// feed filled to its 4096 waits and every user's long poll was answered at once for five
    /// minutes. The connection rate is raised to keep the test short.)
    @Test func closedConnectionsKeepTheirWatchesAndFillTheFeedForEveryone() throws {
        let d = try TestDaemon(config: "[socket]\ngroup = \"65534\"\n[server]\nconnect_rate_per_user = 100000\n")
        let generation = try #require(try d.call("tool.watch")["generation"]?.intValue)
        // Root's long poll first: held until its timeout (nothing changes).
        var start = MonotonicClock.now
        _ = try d.call("tool.watch", .object([("after", .int(generation)), ("timeout", .double(2))]))
        let before = MonotonicClock.now - start
        #expect(before >= 1.9, "root's wait was not held before the flood: \(before) s")
        let flood = """
            import json, socket, sys, time
            req = (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tool.watch", "params": {"after": int(sys.argv[2]), "timeout": 300}}) + "\\n").encode()
            sent, until = 0, time.monotonic() + 60
            for i in range(6000):
                if time.monotonic() > until: break
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(sys.argv[1]); s.sendall(req); sent += 1
                except OSError:
                    pass
                finally:
                    s.close()
                if i % 25 == 24: time.sleep(0.005)
            print(sent)
            """
        let r = TestDaemon.runAs(uid: 65534, gid: 65534, ["/usr/bin/python3", "-c", flood, d.socket, "\(generation)"])
        #expect(r.status == 0, "\(r)")
        Thread.sleep(forTimeInterval: 1)
        #expect(d.process?.isRunning == true)
        // nobody holds no connection now; root's long poll should still be held.
        start = MonotonicClock.now
        let answer = try d.call("tool.watch", .object([("after", .int(generation)), ("timeout", .double(2))]))
        let after = MonotonicClock.now - start
        #expect(answer["generation"]?.intValue == generation)
        #expect(after >= 1.9, "after nobody's closed connections (\(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) sent), root's long poll is answered at once (\(after) s): the feed is full of waits whose connections are gone")
    }
}
