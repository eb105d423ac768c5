import CordonJSON
@testable import CordonMCP
import Testing

/// Both sessions fed damaged copies of real lines: nothing traps, a server answers only with
/// messages that read back, and a client never answers a stateless-era server.
struct RobustnessTests {
    /// A fixed sequence (SplitMix64), so a failure names the input that caused it.
    struct Sequence {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let lines = [
        Wire.pythonDiscover, Wire.pythonInitialize, Wire.pythonInitialized,
        ServerSessionTests.stateless(2, "tools/call", #""name":"get_current_time","arguments":{"timezone":"UTC"}"#),
        ServerSessionTests.stateless(3, "subscriptions/listen", #""notifications":{"toolsListChanged":true}"#),
        ClientNegotiationTests.discoverResult, ClientNegotiationTests.initializeResult(1),
        Wire.toolsPage(2, names: ["a", "b"], next: "c", modern: true),
        Wire.result(2, #"{"content":[{"type":"image","data":"AAAA","mimeType":"image/png"},{"type":"resource","resource":{"uri":"u","text":"t"}}],"structuredContent":{"a":1}}"#),
        Wire.error(1, -32022, "x", data: #"{"supported":["2025-11-25"],"requested":"2026-07-28"}"#),
    ]

    static let alphabet = Array(#"{}[]":,0123456789-.eE truefalsn\"#.utf8) + [0x00, 0x0A, 0xC3, 0xFF]

    static func mutate(_ line: [UInt8], _ random: inout Sequence) -> [UInt8] {
        var bytes = line
        for _ in 0...random.below(4) {
            guard !bytes.isEmpty else { break }
            let at = random.below(bytes.count)
            switch random.below(4) {
            case 0: bytes[at] = alphabet[random.below(alphabet.count)]
            case 1: bytes.remove(at: at)
            case 2: bytes.insert(alphabet[random.below(alphabet.count)], at: at)
            default:
                let other = lines[random.below(lines.count)].utf8
                bytes.insert(contentsOf: other.prefix(random.below(other.count)), at: at)
            }
        }
        return bytes
    }

    /// The damaged lines, the same every run.
    static func damagedLines(_ count: Int) -> [[UInt8]] {
        var random = Sequence(state: 20_260_728)
        return (0..<count).map { mutate(Array(lines[$0 % lines.count].utf8), &random) }
    }

    /// Every distinct error the server session answers damaged lines with (schema-checked in
    /// SchemaConformanceTests).
    static func serverErrors(_ count: Int) -> [MCPMessage] {
        var seen: Set<String> = []
        var out: [MCPMessage] = []
        for line in damagedLines(count) {
            var server = ServerSessionTests.session()
            for message in server.receive(line).send where message.errorValue != nil && seen.insert(message.line).inserted {
                out.append(message)
            }
        }
        return out
    }

    @Test func damagedLinesNeverTrapAndAreAnsweredWithReadableMessages() throws {
        for (round, line) in Self.damagedLines(3_000).enumerated() {
            var server = ServerSessionTests.session()
            for message in server.receive(line).send {
                let again = try MCPMessage.parse(Wire.bytes(message.line))
                #expect(again == message, "round \(round): \(String(decoding: line, as: UTF8.self))")
                #expect(message.resultValue != nil || message.errorValue != nil || message.method != nil)
            }
            for revisions in [[MCPRevision.v2026_07_28, .v2025_11_25], [.v2025_11_25]] {
                var client = MCPClientSession(clientInfo: Wire.cordonClient, revisions: revisions)
                _ = client.start()
                let step = client.receive(line)
                if case .ready(.v2026_07_28) = client.phase {
                    #expect(step.send.allSatisfy { $0.resultValue == nil && $0.errorValue == nil })
                }
            }
        }
    }
}
