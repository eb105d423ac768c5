import CordonJSON
import CordonModels
import CordonPolicy
import Testing

/// What an attacker's review of CordonModels found, each test failing before its fix: peer
/// keys with control characters in error text, tool calls merged across servers' index
/// conventions, hosts that resolvers read as addresses, a model file of "/", keys echoed.
@Suite struct ModelsAttackTests {
    static func hasControl(_ s: String) -> Bool { s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f } }

    /// A provider's duplicate key lands, raw, in ProviderError.field and so in `description`:
    /// `clean()` covers the message only.
    @Test func aProvidersKeyCannotPutControlCharactersInAnError() {
        let body = "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"a\\u001b[2J\\nFAKE LOG LINE\":1,\"a\\u001b[2J\\nFAKE LOG LINE\":2}"
        do {
            _ = try OpenAIWire.parseResponse(Array(body.utf8))
            Issue.record("parsed")
        } catch {
            #expect(!Self.hasControl(error.description), "\(error.description.debugDescription)")
        }
    }

    /// The same on the client side: an unknown member's key is quoted into the error's field raw.
    @Test func aClientsKeyCannotPutControlCharactersInAnError() {
        let body = "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"x\\r\\nINJECTED\":1}"
        do {
            _ = try ChatRequest.parse(Array(body.utf8))
            Issue.record("parsed")
        } catch {
            #expect(!Self.hasControl(error.description), "\(error.description.debugDescription)")
        }
    }

    /// A server that leaves `index` out and sends each whole call in a chunk of its own: every
    /// call gets index 0 (its place in that chunk), so the second call's arguments are appended
    /// to the first's and its id and name are lost.
    @Test func indexlessToolCallsInChunksOfTheirOwnStayApart() throws {
        let c1 = #"{"choices":[{"delta":{"tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]}}]}"#
        let c2 = #"{"choices":[{"delta":{"tool_calls":[{"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"y\":2}"}}]}}]}"#
        var acc = ChatAccumulator()
        for c in [c1, c2] { if let d = try OpenAIWire.parseChunk(c) { try acc.add(d) } }
        #expect(acc.result.toolCalls.count == 2, "\(acc.result.toolCalls)")
    }

    /// Ollama's /v1 stream (ollama/ollama#15457, #15497) gives every call `index: 0`, each call
    /// with its own id in a chunk of its own: the second call is appended to the first.
    @Test func ollamasReusedIndexZeroStillGivesTwoCalls() throws {
        let c1 = #"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"file_write","arguments":"{\"path\":\"a\"}"}}]}}]}"#
        let c2 = #"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"file_write","arguments":"{\"path\":\"b\"}"}}]}}]}"#
        var acc = ChatAccumulator()
        for c in [c1, c2] { if let d = try OpenAIWire.parseChunk(c) { try acc.add(d) } }
        #expect(acc.result.toolCalls.count == 2, "\(acc.result.toolCalls)")
    }

    /// Hosts that are loopback / unspecified in inet_aton's or the kernel's reading but pass
    /// ServiceURL.parse as *names*; and a model_file of "/" (the whole root, bound into the server).
    @Test(arguments: ["http://0.0.0.0:6379/v1", "http://[::]:6379/v1", "http://127.1:6379/v1", "http://2130706433:6379/v1",
                      "http://0x7f000001:6379/v1", "http://0177.0.0.1:6379/v1", "http://10.0.0.1.:8000/v1", "http://a..b:80/v1",
                      "http://[::ffff:127.0.0.1]:6379/v1", "http://[1]:80/v1"])
    func hostsResolversReadAsAddressesAreRefused(_ url: String) {
        let text = """
        [[provider]]
        name = "p"
        kind = "openai"
        base_url = "\(url)"

        [[model]]
        name = "m"
        provider = "p"
        """
        #expect(throws: PolicyError.self, "\(url) accepted") { try ModelCatalogParser.parse(text: text, source: "t") }
    }

    @Test func aModelFileOfTheRootIsRefused() {
        let text = """
        [[provider]]
        name = "l"
        kind = "local"
        command = ["/usr/bin/llama-server", "--model", "{model_file}", "--port", "{port}"]
        model_file = "/"

        [[model]]
        name = "m"
        provider = "l"
        """
        #expect(throws: PolicyError.self) { try ModelCatalogParser.parse(text: text, source: "t") }
    }

    /// A provider that echoes a refused key under a status other than 401 (a 400, or an error
    /// in a 200's stream): the key is cut to `sk-…` in what Cordon keeps.
    @Test func anEchoedKeyIsCutFromTheMessage() {
        let body = #"{"error":{"type":"invalid_request_error","code":null,"message":"Incorrect API key provided: sk-proj-abcdEFGH1234ijklMNOP5678. See docs."}}"#
        let e = ProviderError.fromHTTP(status: 400, headers: [], body: Array(body.utf8))
        #expect(!e.message.contains("abcdEFGH1234"), "\(e.message)")
        #expect(e.message.contains("sk-…"), "\(e.message)")
    }
}
