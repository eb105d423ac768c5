import CordonJSON
import CordonRPC
import FuzzSupport

/// cordond's request reader: one line from a client → `JSON.parse`, the request envelope checks
/// the server makes, then `Params` read the way `task.submit` reads them. What is written must
/// read back: the text of a parsed value, parsed again, is the same text.
@main enum FuzzRPC {
    static func main() {
        Fuzzer.run { input in
            guard let message = try? JSON.parse(Array(input)) else { return }
            let text = message.text
            guard let again = try? JSON.parse(text) else { fatalError("written JSON does not read back: \(text)") }
            require(again.text == text, "JSON text changes when read back: \(text) → \(again.text)")
            _ = RPCMessage.result(id: message["id"] ?? .null, message)
            request(message)
        }
    }

    /// As Server.handle and Methods.submit do; errors are answers, not failures.
    static func request(_ message: JSON) {
        guard case .object(let members) = message, message["jsonrpc"] == .string("2.0"),
              message["method"]?.stringValue != nil,
              members.allSatisfy({ ["jsonrpc", "id", "method", "params"].contains($0.0) }) else { return }
        do {
            var params = try Params(message["params"])
            _ = try params.string("policy", maxBytes: 64)
            _ = try params.stringArray("argv", maxCount: 4096, maxBytes: 256 << 10)
            _ = try params.string("stdin", maxBytes: 1 << 20)
            _ = try params.stringMap("env")
            if var limits = try params.object("limits") {
                _ = try limits.number("wall_time", max: 86400 * 365)
                _ = try limits.int("pids", min: 1, max: 1 << 22)
                try limits.finish()
            }
            _ = try params.requiredInt("id", min: 1)
            _ = try params.bool("wait")
            try params.finish()
        } catch {
            _ = RPCMessage.error(id: message["id"] ?? .null, error)
        }
    }
}
