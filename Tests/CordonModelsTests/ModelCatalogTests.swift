import CordonModels
import Testing

@Suite struct BaseURLTests {
    /// A base URL prints as it would be written: default ports left out, IPv6 in brackets.
    @Test func printsAsWritten() {
        #expect(ModelCatalog.BaseURL(scheme: "https", host: "api.openai.com", port: 443, path: "/v1").description == "https://api.openai.com/v1")
        #expect(ModelCatalog.BaseURL(scheme: "http", host: "127.0.0.1", port: 8000, path: "/v1").description == "http://127.0.0.1:8000/v1")
        #expect(ModelCatalog.BaseURL(scheme: "http", host: "::1", port: 80, path: "").description == "http://[::1]")
    }
}
