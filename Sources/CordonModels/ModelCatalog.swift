import CordonPolicy
import CordonResilience

/// What cordond knows about models: `models.toml` in the config dir (an admin's file). Providers
/// say where calls go and how (each provider's calls are made by a worker of its own, in a
/// sandbox that reaches that provider only); models are what clients name or the selector
/// chooses among. docs/models.md describes every key.
public struct ModelCatalog: Sendable, Equatable {
    public var providers: [Provider] = []
    public var models: [Model] = []
    public var selector = SelectorSettings()
    /// Every model's breaker, unless its `[[model]]` says otherwise.
    public var breaker = BreakerSettings.forModels
    /// Local servers (`kind = "local"`) loaded at once, at most; the least recently used idle one
    /// is stopped for another.
    public var maxLoaded = 1
    public var endpoint: Endpoint?
    /// Where it was read from: a path, or `builtin:models.toml`.
    public var source: String
    /// Where some keys were written ("provider[0].policy" → line), for problems found later
    /// (a policy that does not exist, a key file that cannot be read).
    public var keyLines: [String: Int] = [:]

    public init(source: String) { self.source = source }

    public func provider(named name: String) -> Provider? { providers.first { $0.name == name } }
    public func model(named name: String) -> Model? { models.first { $0.name == name } }
    /// The task types some model serves, sorted.
    public var taskTypes: [String] { Array(Set(models.flatMap(\.taskTypes))).sorted() }

    /// Where a provider's calls go and how.
    public struct Provider: Sendable, Equatable {
        public enum Kind: String, Sendable, CaseIterable {
            /// Any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, llama.cpp, LiteLLM…).
            case openai
            /// Anthropic's Messages API.
            case anthropic
            /// An Ollama server (its OpenAI-compatible /v1 endpoints; readiness its own way).
            case ollama
            /// A model server cordond runs and supervises itself (llama.cpp's server), in a
            /// sandbox with no network of its own.
            case local
        }

        public var name: String
        public var kind: Kind
        /// Where calls go; for `local`, where the server listens inside its sandbox.
        public var baseURL: BaseURL
        /// A root-only file holding the API key (its first line). Read by cordond, handed to
        /// this provider's worker only; never logged, never in a record.
        public var apiKeyFile: String?
        /// The sandbox policy of the provider's worker (default `model-worker`).
        public var policy = "model-worker"
        /// Per call, from admission to the last byte (a stream's included).
        public var timeoutSeconds: Double = 120
        /// A stream that sends nothing for this long is hung (the call fails; a local server is
        /// restarted).
        public var idleSeconds: Double = 30
        /// Calls in flight to this provider at once.
        public var maxConcurrency = 16
        /// `local` only: how the server runs.
        public var server: LocalServer?

        public init(name: String, kind: Kind, baseURL: BaseURL) {
            self.name = name
            self.kind = kind
            self.baseURL = baseURL
        }
    }

    /// A model server cordond starts and supervises (`kind = "local"`).
    public struct LocalServer: Sendable, Equatable {
        /// The server's command line inside its sandbox; `{model_file}` and `{port}` are
        /// replaced, whole elements only.
        public var command: [String]
        /// The model, bound read-only into the server's sandbox.
        public var modelFile: String
        /// The sandbox policy the server runs under (default `model-server`).
        public var policy = "model-server"
        /// Its memory limit (the policy's, if lower, wins).
        public var memoryBytes: UInt64?
        /// Stopped after this long without a call (`keep_alive`).
        public var keepAliveSeconds: Double = 300
        /// Started with cordond rather than at its first call.
        public var preload = false
        /// From start to ready: the server answers its health check and a one-token completion.
        public var startTimeoutSeconds: Double = 60
        public var service = ServiceSettings()

        public init(command: [String], modelFile: String) {
            self.command = command
            self.modelFile = modelFile
        }
    }

    /// A provider's base URL (http or https; an IPv6 host without brackets).
    public typealias BaseURL = ServiceURL

    /// A model clients may name, or the selector choose.
    public struct Model: Sendable, Equatable {
        public var name: String
        public var provider: String
        /// The provider's own id for it (sent upstream; default: `name`).
        public var upstream: String
        /// Prompt and answer together, in tokens: a request that cannot fit is not sent here.
        public var contextLength = 8192
        /// Whether it takes `tools` (a request with tools goes only to models that do).
        public var tools = false
        /// Prices per 1000 tokens, in whatever currency the admin counts in.
        public var priceInput = 0.0
        public var priceOutput = 0.0
        /// What `auto:TYPE` may choose it for (`auto` is `auto:chat`).
        public var taskTypes = ["chat"]
        /// Tried in order when this model fails in a retryable way or its breaker is open.
        public var fallbacks: [String] = []
        /// Who may use it, besides admins; nil: every user the endpoint or the socket admits.
        public var access: Policy.Access?
        /// Answers longer than this are cut (a request's own cap, if lower, wins).
        public var maxOutputTokens = 4096
        /// How the cap is spelled upstream (OpenAI's reasoning models take only
        /// `max_completion_tokens`; llama.cpp's server only `max_tokens`).
        public var maxTokensField: OpenAIWire.MaxTokensField = .maxTokens
        public var breaker: BreakerSettings?

        public init(name: String, provider: String, upstream: String) {
            self.name = name
            self.provider = provider
            self.upstream = upstream
        }
    }

    /// How the selector weighs what it learns (docs/models.md, "The selector").
    public struct SelectorSettings: Sendable, Equatable {
        /// Weights of the reward's three parts; they sum to 1.
        public var successWeight = 0.6
        public var latencyWeight = 0.3
        public var costWeight = 0.1
        /// A call this slow scores 0 on latency (one twice as fast, 0.5).
        public var latencyReferenceSeconds: Double = 10
        /// A call this expensive scores 0 on cost; nil: the dearest eligible model's expected cost.
        public var costReference: Double?
        /// Each observation's weight shrinks by this factor per later call of its task type:
        /// what was learned long ago counts less (1/(1 − discount) calls of memory).
        public var discount = 0.98
        /// The evidence at which the selector takes a model to have changed and relearns
        /// (docs/models.md, "The selector"); 0: never, only `discount` forgets.
        public var changeThreshold = 7.0
        /// The chance a choice is made uniformly among the eligible models, whatever the
        /// selector believes (each of n models is then tried at least exploration/n of the time).
        public var exploration = 0.02
        public init() {}
    }

    /// cordond's OpenAI-compatible endpoint on loopback TCP (it always serves its Unix socket).
    public struct Endpoint: Sendable, Equatable {
        /// A loopback address and port ("127.0.0.1:8089", "[::1]:8089").
        public var host: String
        public var port: Int
        /// A root-owned file of lines "TOKEN USER": a request without a valid bearer token is 401.
        public var tokensFile: String

        public init(host: String, port: Int, tokensFile: String) {
            self.host = host
            self.port = port
            self.tokensFile = tokensFile
        }
    }
}
