import CordonJSON
import CordonModels
import CordonPolicy
import CordonServices
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A local model server (`kind = "local"`, llama.cpp's or any OpenAI-compatible one) is a
/// supervised service like an MCP server: an instance of the gateway's second `ServicePool`
/// (`servers`, at most `[local] max_loaded` instances, the least recently used idle one stopped
/// for another), shared by every caller, one call at a time, stopped after `keep_alive` idle,
/// restarted with backoff when it dies, fails its health check or hangs a call. It runs in a
/// sandbox with no network (it listens on the loopback of its own namespace); its provider's
/// worker reaches it there, because the worker's egress proxy dials from inside the namespace
/// of the server's current instance (`NetworkNamespace`), and from nowhere else. So the bytes a
/// server writes are read by the worker, as a hosted provider's are, never by cordond.
///
/// Ready means the server answers `GET /v1/models` with 200 *and* a one-token completion
/// through its worker succeeds: a port that answers is not a model that answers.
final class LocalServer: Sendable {
    let provider: ModelCatalog.Provider
    let settings: ModelCatalog.LocalServer
    /// The model the readiness completion names (the provider's first in the catalogue), and
    /// how its answer's cap is spelt.
    let model: ModelCatalog.Model?
    /// The instance being started or serving: its sandbox and network namespace.
    private let current = Mutex<(process: SandboxedProcess, namespace: NetworkNamespace)?>(nil)
    /// Calls in flight on it (one, as the pool admits them): while one runs, the call's own
    /// limits are its health check.
    let busy = Atomic<Int>(0)

    init(provider: ModelCatalog.Provider, settings: ModelCatalog.LocalServer, model: ModelCatalog.Model?) {
        self.provider = provider
        self.settings = settings
        self.model = model
    }

    /// The namespace its worker's connections are dialled in: the current instance's, while it
    /// runs; nil otherwise (the dial then fails: never the host's loopback).
    func namespace() -> NetworkNamespace? {
        current.withLock { c in
            guard let running = c, running.process.result == nil else {
                c = nil  // the namespace of an instance that ended is let go
                return nil
            }
            return running.namespace
        }
    }

    func adopt(_ process: SandboxedProcess, _ namespace: NetworkNamespace) {
        current.withLock { $0 = (process, namespace) }
    }

    /// The host pid of the running instance's init (tests, `model.stats`).
    var pid: Int32? {
        current.withLock { c in c?.process.result == nil ? c?.process.started?.pid : nil }
    }

    /// `command` with its placeholders filled: the model file's path and the port of `base_url`.
    var argv: [String] {
        settings.command.map { a in
            switch a {
            case "{model_file}": return settings.modelFile
            case "{port}": return String(provider.baseURL.port)
            default: return a
            }
        }
    }
}

/// The pool's client of one server instance. It never speaks HTTP itself: its readiness and
/// health checks are made by the provider's model worker (`probe`, `chat`), through the same
/// sandbox and egress path a call takes.
final class LocalServerClient: ServiceClient, @unchecked Sendable {
    private let process: SandboxedProcess
    private let server: LocalServer
    /// The provider's worker, by a deadline.
    private let worker: @Sendable (Double) -> Result<ServicePool.Lease, ServicePool.ServiceError>
    private static let probes = Atomic<Int>(0)

    var isOpen: Bool { process.result == nil }

    init(process: SandboxedProcess, server: LocalServer,
         worker: @escaping @Sendable (Double) -> Result<ServicePool.Lease, ServicePool.ServiceError>) {
        self.process = process
        self.server = server
        self.worker = worker
    }

    func ready(deadline: Double) throws(ServicePool.ServiceError) -> JSON {
        let began = MonotonicClock.now
        var pid: Int32?
        while pid == nil {
            if let ended = process.result { throw ServicePool.ServiceError("the server exited at start (\(ended.reason.rawValue)\(ended.exitCode.map { " \($0)" } ?? ""))") }
            pid = process.started?.pid
            if pid == nil {
                guard MonotonicClock.now < deadline else { throw ServicePool.ServiceError("its sandbox did not start in time") }
                usleep(2_000)
            }
        }
        let namespace: NetworkNamespace
        do { namespace = try NetworkNamespace(pid: pid!) } catch {
            throw ServicePool.ServiceError("its network namespace: \(error)")
        }
        // Opened by pid: the sandbox must still run (its init not reaped, the pid not reused),
        // and the namespace must not be this process's own, whose loopback is the host's.
        guard process.result == nil, !namespace.isThisProcesses else {
            throw ServicePool.ServiceError("its sandbox ended before its network namespace could be held")
        }
        server.adopt(process, namespace)
        let lease: ServicePool.Lease
        switch worker(deadline) {
        case .success(let l): lease = l
        case .failure(let e): throw ServicePool.ServiceError("its model worker: \(e.message)")
        }
        defer { lease.release() }
        guard let client = lease.client as? ModelWorkerClient else { throw ServicePool.ServiceError("its model worker is not one") }
        // 1. Its health check says ready: GET /v1/models answers 200 (a server still loading
        // refuses the connection or answers 503).
        var last = "no answer yet"
        while true {
            if let ended = process.result {
                throw ServicePool.ServiceError("the server exited before it was ready (\(ended.reason.rawValue)\(ended.exitCode.map { " \($0)" } ?? "")); its health check: \(last)")
            }
            let (status, failure) = client.probe(deadline: min(deadline, MonotonicClock.now + 2))
            last = status.map { $0 == 200 ? "200" : "HTTP \($0)" } ?? failure ?? "no answer"
            if last == "200" { break }
            guard MonotonicClock.now + 0.05 < deadline else { throw ServicePool.ServiceError("not ready in time: its health check (GET /v1/models): \(last)") }
            usleep(50_000)
        }
        let healthy = MonotonicClock.now
        // 2. A one-token completion succeeds: the model is loaded and answers.
        let model = server.model
        let body = JSON.object([
            ("model", .string(model?.upstream ?? "default")),
            ("messages", .array([.object([("role", .string("user")), ("content", .string("Ready?"))])])),
            ((model?.maxTokensField ?? .maxTokens).rawValue, .int(1)),
        ])
        let answer = Awaited<Result<(ChatResult?, ModelWorkerClient.Finished), ProviderError>>()
        let call = "ready-\(pid!)-\(Self.probes.wrappingAdd(1, ordering: .relaxed).newValue)"
        client.chat(call: call, body: body, stream: false, deadline: deadline, onDelta: nil) { answer.set($0) }
        switch answer.wait() {
        case .success?: break
        case .failure(let e)?: throw ServicePool.ServiceError("its health check passed, but a one-token completion failed: \(e.description)")
        case nil: throw ServicePool.ServiceError("its one-token completion got no answer")
        }
        let now = MonotonicClock.now
        return .object([("pid", .int(Int64(pid!))), ("healthySeconds", .double(healthy - began)), ("readySeconds", .double(now - began))])
    }

    func healthy(deadline: Double) -> Bool {
        // A call in progress is checked by its own limits (its deadline, a stream's idle limit):
        // a server generating may not answer anything else until it is done.
        if server.busy.load(ordering: .relaxed) > 0 || process.result != nil { return process.result == nil }
        guard case .success(let lease) = worker(deadline) else { return false }
        defer { lease.release() }
        guard let client = lease.client as? ModelWorkerClient else { return false }
        return client.probe(deadline: deadline).status == 200
    }
}
