@testable import CordonCLI
import CordonJSON
import Testing

/// `cordon submit --wait` exits with the status the sandbox decided, which cordond's task record
/// carries; a record from a cordond that did not store it is derived as it was before.
struct TaskExitStatusTests {
    static func status(_ text: String) throws -> Int32 { exitStatus(try JSON.parse(text)) }

    @Test func theRecordsStatusWins() throws {
        // An output failure: the workload was killed (signal 9) because its output could not be
        // stored; the sandbox's verdict is 125, not 137.
        #expect(try Self.status(#"{"signal":9,"result":{"reason":"setup-failed","signal":9,"setupFailure":{"step":"output","errno":28,"message":"m"},"exitStatus":125}}"#) == 125)
        #expect(try Self.status(#"{"exitCode":3,"result":{"exitCode":3,"exitStatus":3}}"#) == 3)
        #expect(try Self.status(#"{"result":{"setupFailure":{"step":"execve","errno":2,"message":"m"},"exitStatus":127}}"#) == 127)
    }

    @Test(arguments: [
        (#"{"exitCode":0}"#, Int32(0)),
        (#"{"exitCode":3,"result":{"exitCode":3}}"#, 3),
        (#"{"signal":15}"#, 143),
        (#"{"result":{"setupFailure":{"step":"execve","errno":2,"message":"m"}}}"#, 127),
        (#"{"result":{"setupFailure":{"step":"execve","errno":13,"message":"m"}}}"#, 126),
        (#"{"result":{"setupFailure":{"step":"mount","errno":1,"message":"m"}}}"#, 125),
        (#"{"state":"cancelled"}"#, 125),
        (#"{"state":"lost"}"#, 125),
    ])
    func recordsOfAnOlderDaemon(_ c: (String, Int32)) throws {
        #expect(try Self.status(c.0) == c.1)
    }
}
