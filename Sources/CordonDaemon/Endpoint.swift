import CLinux
import CordonHTTP
import CordonHTTPServer
import CordonJSON
import CordonModelGateway
import CordonModels
import CordonRPC
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The OpenAI-compatible endpoint (docs/models.md, "The endpoint"): `GET /v1/models`,
/// `POST /v1/chat/completions` (whole or streamed as server-sent events), `POST /v1/feedback`,
/// on a Unix socket beside cordond's (the caller is who SO_PEERCRED says) and, when models.toml
/// has an `[endpoint]`, on a loopback TCP port where the caller is the user its bearer token
/// maps to (`tokens`: a root-only file of lines "TOKEN USER"). Every call takes the socket's
/// path (`Daemon.modelCall`): the same checks, the same record.
final class ModelEndpoint: @unchecked Sendable {
    unowned let daemon: Daemon
    let tokens: [(token: [UInt8], uid: UInt32)]
    private var servers: [HTTPServer] = []
    let maxBody: Int
    /// The groups of each token's user as last looked up, and when: reused for
    /// `groupsLifetime` seconds (one entry per user a token names, so it stays small).
    private let groupsCache = Mutex<[UInt32: (at: Double, gid: UInt32, groups: [UInt32])]>([:])
    /// How long a TCP caller's looked-up groups are reused. A user taken out of a group loses
    /// what the group gave within this; a lookup costs tens of microseconds (it reads
    /// /etc/passwd and /etc/group), on the path of every call otherwise.
    static let groupsLifetime = 1.0

    struct StartError: Error, CustomStringConvertible { var description: String }

    init(daemon: Daemon, tokens: [(token: [UInt8], uid: UInt32)]) {
        self.daemon = daemon
        self.tokens = tokens
        maxBody = ChatLimits.default.maxBodyBytes
    }

    /// Lines "TOKEN USER" (blank lines and `#` comments skipped); a token is 16 to 512
    /// printable ASCII characters; the user a name or uid that exists. The file must be root's
    /// and readable by root only: a token is a user's password here.
    static func readTokens(_ path: String) throws(StartError) -> [(token: [UInt8], uid: UInt32)] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw StartError(description: "\(path): cannot open the endpoint's tokens: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == 0, st.st_mode & 0o077 == 0 else {
            throw StartError(description: "\(path): the endpoint's tokens must be a regular file owned by root and readable by root only (chown root; chmod 600)")
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        var out: [(token: [UInt8], uid: UInt32)] = []
        for (i, raw) in bytes.split(separator: 10, omittingEmptySubsequences: false).enumerated() {
            let line = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard parts.count == 2 else { throw StartError(description: "\(path):\(i + 1): expected \"TOKEN USER\"") }
            guard (16...512).contains(parts[0].utf8.count), parts[0].utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw StartError(description: "\(path):\(i + 1): a token is 16 to 512 printable ASCII characters without spaces")
            }
            guard let uid = Accounts.uid(parts[1]) else { throw StartError(description: "\(path):\(i + 1): no such user \"\(parts[1])\"") }
            guard !out.contains(where: { $0.token == Array(parts[0].utf8) }) else { throw StartError(description: "\(path):\(i + 1): a token given twice") }
            out.append((Array(parts[0].utf8), uid))
        }
        return out
    }

    /// Starts the Unix socket's server and, when configured, the TCP one.
    func start(catalog: ModelCatalog) throws(StartError) {
        let config = daemon.config
        let handler: HTTPServer.Handler = { [self] request, peer, responder in handle(request, peer, responder) }
        var configuration = HTTPServerConfiguration()
        configuration.limits.maxBody = maxBody
        configuration.maxConnectionsPerUser = config.maxConnectionsPerUser
        configuration.maxConnections = config.maxConnections
        configuration.loopThreadName = "cordond-openai"
        do {
            let fd = try daemon.bindSocket(config.endpointSocket)
            let server = try HTTPServer(listener: Descriptor(adopting: fd), configuration: configuration, handler: handler)
            try server.start()
            servers.append(server)
        } catch {
            throw StartError(description: "the OpenAI-compatible endpoint on \(config.endpointSocket): \(error)")
        }
        if let endpoint = catalog.endpoint {
            do {
                let fd = try Self.listenTCP(host: endpoint.host, port: endpoint.port)
                configuration.loopThreadName = "cordond-openai-tcp"
                let server = try HTTPServer(listener: fd, configuration: configuration, handler: handler)
                try server.start()
                servers.append(server)
            } catch {
                throw StartError(description: "the OpenAI-compatible endpoint on \(endpoint.host):\(endpoint.port): \(error)")
            }
        }
    }

    static func listenTCP(host: String, port: Int) throws(SystemError) -> Descriptor {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", path: host, errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            _ = inet_pton(AF_INET6, host, &addr.sin6_addr)
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { close(fd); throw SystemError("not an address", path: host, errno: EINVAL) }
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0, listen(fd, 128) == 0 else {
            let code = errno
            close(fd)
            throw SystemError("bind/listen", path: "\(host):\(port)", errno: code)
        }
        return Descriptor(adopting: fd)
    }

    func stop(graceSeconds: Double) {
        for server in servers { server.stop(graceSeconds: graceSeconds) }
        unlink(daemon.config.endpointSocket)
    }

    // MARK: Requests

    /// The caller: a Unix peer as the kernel says; a TCP peer by its bearer token (compared in
    /// constant time against every token), nil when it has none that is valid.
    func caller(_ request: HTTPRequest, _ peer: HTTPPeer) -> Peer? {
        switch peer {
        case .unix(let uid, let gid, let pid, let groups, let exe):
            return Peer(uid: uid, gid: gid, pid: pid, groups: groups, exe: TaskManager.clip(exe))
        case .tcp:
            guard let auth = request.header("authorization"), auth.lowercased().hasPrefix("bearer ") else { return nil }
            let presented = Array(auth.utf8.dropFirst(7))
            var found: UInt32?
            for (token, uid) in tokens where Self.equalInConstantTime(token, presented) { found = uid }
            guard let uid = found else { return nil }
            let (gid, groups) = self.groups(of: uid)
            return Peer(uid: uid, gid: gid, pid: 0, groups: groups, exe: "endpoint \(peer)")
        }
    }

    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return diff == 0
    }

    /// `groups(of:)`, reused for `groupsLifetime` seconds.
    private func groups(of uid: UInt32) -> (UInt32, [UInt32]) {
        let now = MonotonicClock.now
        if let known = groupsCache.withLock({ $0[uid] }), now - known.at < Self.groupsLifetime { return (known.gid, known.groups) }
        let (gid, groups) = Self.groups(of: uid)
        groupsCache.withLock { $0[uid] = (now, gid, groups) }
        return (gid, groups)
    }

    /// The primary group and every group of the user (as login would set them); for a user
    /// who cannot be looked up, gid 4294967295 (no group: no policy or model names it) and none.
    static func groups(of uid: UInt32) -> (UInt32, [UInt32]) {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        // A user who cannot be looked up (gone since the tokens were read) is in no group at all:
        // not in the group whose number happens to be their uid.
        guard getpwuid_r(uid, &pw, &buffer, buffer.count, &result) == 0, result != nil, let name = pw.pw_name else { return (UInt32.max, []) }
        let gid = pw.pw_gid
        var count: Int32 = 256
        var list = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &list, &count) < 0 {
            list = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, gid, &list, &count)
        }
        let all: [UInt32] = [gid] + list.prefix(Int(max(0, count)))
        return (gid, Array(Set(all)).sorted())
    }

    static let json = [HTTPHeader(name: "Content-Type", value: "application/json")]

    static func error(_ responder: HTTPResponder, _ status: Int, _ message: String, type: String, code: String? = nil,
                      headers: [HTTPHeader] = []) {
        let body = OpenAIWire.errorBody(message: message, type: type, code: code)
        responder.respond(status: status, headers: json + headers, body: Array(body.text.utf8))
    }

    func handle(_ request: HTTPRequest, _ peer: HTTPPeer, _ responder: HTTPResponder) {
        guard let who = caller(request, peer) else {
            daemon.metrics.refused(method: "endpoint")
            return Self.error(responder, 401, "a valid bearer token is required (Authorization: Bearer TOKEN, from the endpoint's tokens file)",
                              type: "invalid_request_error", code: "invalid_api_key")
        }
        let path = request.path.hasSuffix("/") ? String(request.path.dropLast()) : request.path
        switch (request.method, path) {
        case ("GET", "/v1/models"): models(who, responder)
        case ("POST", "/v1/chat/completions"): chat(request, who, responder)
        case ("POST", "/v1/feedback"): feedback(request, who, responder)
        case (_, "/v1/models"), (_, "/v1/chat/completions"), (_, "/v1/feedback"):
            Self.error(responder, 405, "\(request.method) is not allowed on \(path)", type: "invalid_request_error")
        default:
            Self.error(responder, 404, "no such endpoint \(String(path.prefix(128))) (cordond serves /v1/models, /v1/chat/completions, /v1/feedback)",
                       type: "invalid_request_error", code: "not_found")
        }
    }

    private func models(_ who: Peer, _ responder: HTTPResponder) {
        guard let gateway = daemon.models else { return Self.error(responder, 503, "no models are configured", type: "server_error") }
        let created = Int64(daemon.startedAt)
        var listed = gateway.models(for: Daemon.modelCaller(who)).map { OpenAIWire.ListedModel(id: $0.name, created: created) }
        // What asks the selector: listed, so clients that check names find them.
        for type in gateway.catalog.taskTypes { listed.append(OpenAIWire.ListedModel(id: type == "chat" ? "auto" : "auto:\(type)", created: created)) }
        responder.respond(status: 200, headers: Self.json, body: Array(OpenAIWire.modelsBody(listed).text.utf8))
    }

    private func chat(_ http: HTTPRequest, _ who: Peer, _ responder: HTTPResponder) {
        let request: ChatRequest
        do { request = try ChatRequest.parse(http.body) } catch {
            return Self.error(responder, error.code == .tooLarge ? 413 : 400, error.description, type: "invalid_request_error")
        }
        let created = Int64(UTCTime.epochSeconds())
        let name: String
        switch request.model { case .named(let n): name = n; case .auto(let t): name = t == "chat" ? "auto" : "auto:\(t)" }
        let id = Daemon.completionID()
        let stream = SSEStream(responder: responder, id: id, model: name, created: created, includeUsage: request.includeUsage)
        // A client that leaves before the answer's end abandons its call (nothing blamed).
        responder.onClose { [daemon] in
            stream.clientLeft()
            daemon.cancelModelCall(id)
        }
        let send: @Sendable (ChatDelta) -> Bool = { stream.send($0) }
        let onDelta = request.stream ? send : nil
        let streaming = request.stream
        let answered: @Sendable (ModelCallRecord, Result<ChatResult, ModelCallFailure>) -> Void = { record, result in
            if streaming { return stream.end(record, result) }
            Self.answer(responder, record, result, id: id, model: name, created: created)
        }
        do {
            try daemon.modelCall(request, id: id, requestBytes: http.body.count, peer: who, timeout: 600, onDelta: onDelta, completion: answered)
        } catch {
            let status = error.code == RPCCode.quotaExceeded || error.code == RPCCode.busy ? 429 : 503
            Self.error(responder, status, error.message, type: status == 429 ? "rate_limit_exceeded" : "server_error",
                       headers: [HTTPHeader(name: "x-should-retry", value: "false")])
        }
    }

    static func answer(_ responder: HTTPResponder, _ record: ModelCallRecord, _ result: Result<ChatResult, ModelCallFailure>,
                       id: String, model: String, created: Int64) {
        switch result {
        case .success(let answer):
            let body = OpenAIWire.completionBody(answer, id: id, model: record.model ?? model, created: created)
            responder.respond(status: 200, headers: json + [HTTPHeader(name: "x-request-id", value: id)], body: Array(body.text.utf8))
        case .failure(let f):
            failure(responder, f, id: id)
        }
    }

    /// A call that did not answer: the status its outcome has, OpenAI's error body, and
    /// `x-should-retry: false` (Cordon has already tried the fallbacks within the deadline: the
    /// client's own retries would only multiply the load) with `retry-after` when known.
    static func failure(_ responder: HTTPResponder, _ f: ModelCallFailure, id: String) {
        var headers = [HTTPHeader(name: "x-should-retry", value: "false"), HTTPHeader(name: "x-request-id", value: id)]
        if let after = f.retryAfterSeconds, after.isFinite, after > 0 { headers.append(HTTPHeader(name: "retry-after", value: "\(Int(after.rounded(.up)))")) }
        let type: String
        switch f.outcome {
        case .badRequest: type = "invalid_request_error"
        case .refused: type = "permission_error"
        case .notFound: type = "invalid_request_error"
        default: type = "server_error"
        }
        error(responder, f.httpStatus, "\(id): \(f.message)", type: type, code: f.outcome == .notFound ? "model_not_found" : nil, headers: headers)
    }

    private func feedback(_ http: HTTPRequest, _ who: Peer, _ responder: HTTPResponder) {
        guard let body = try? JSON.parse(http.body, options: JSON.ParseOptions(maxDepth: 4, maxValues: 64, maxBytes: 4096)), case .object = body else {
            return Self.error(responder, 400, "the body must be a JSON object {\"id\": COMPLETION_ID, \"success\": true|false, \"score\": 0..1}", type: "invalid_request_error")
        }
        var params: Params
        do { params = try Params(body, path: "body") } catch { return Self.error(responder, 400, error.message, type: "invalid_request_error") }
        do {
            let json = try daemon.modelFeedbackMethod(&params, who)
            responder.respond(status: 200, headers: Self.json, body: Array(json.text.utf8))
        } catch {
            let status: Int
            switch error.code {
            case RPCCode.notFound: status = 404
            case RPCCode.conflict: status = 409
            case RPCCode.unavailable: status = 503
            default: status = 400
            }
            Self.error(responder, status, error.message, type: "invalid_request_error")
        }
    }
}

/// One streamed answer as server-sent events: the head is sent with the first piece (until
/// then a failure can still be a plain error status), each delta as OpenAI chunks, then
/// `data: [DONE]`; a failure after the first piece is an in-stream `data: {"error": …}`.
final class SSEStream: @unchecked Sendable {
    let responder: HTTPResponder
    let id: String
    let model: String
    let created: Int64
    let includeUsage: Bool
    private let state = Mutex<(started: Bool, gone: Bool)>((false, false))

    init(responder: HTTPResponder, id: String, model: String, created: Int64, includeUsage: Bool) {
        self.responder = responder
        self.id = id
        self.model = model
        self.created = created
        self.includeUsage = includeUsage
    }

    static let headers = [HTTPHeader(name: "Content-Type", value: "text/event-stream"), HTTPHeader(name: "Cache-Control", value: "no-cache")]

    func clientLeft() { state.withLock { $0.gone = true } }

    private func startIfNeeded() -> Bool {
        let first = state.withLock { s -> Bool? in
            if s.gone { return nil }
            defer { s.started = true }
            return !s.started
        }
        guard let first else { return false }
        if first { return responder.start(status: 200, headers: Self.headers + [HTTPHeader(name: "x-request-id", value: id)]) }
        return true
    }

    /// False once the client is gone (the call is then abandoned).
    func send(_ delta: ChatDelta) -> Bool {
        guard startIfNeeded() else { return false }
        var bytes: [UInt8] = []
        for chunk in OpenAIWire.chunkBodies(delta, id: id, model: model, created: created, includeUsage: includeUsage) {
            bytes += Array("data: \(chunk.text)\n\n".utf8)
        }
        // Never waits: this runs on the worker's reader, which every call to the provider
        // shares; a client that falls 256 KiB behind loses its stream (the call is cancelled).
        return bytes.isEmpty || responder.writeWithoutWaiting(bytes)
    }

    func end(_ record: ModelCallRecord, _ result: Result<ChatResult, ModelCallFailure>) {
        let started = state.withLock { $0.started }
        switch result {
        case .success:
            guard startIfNeeded() else { return }
            // A client too far behind gets neither: its connection is closed by the finish.
            _ = responder.writeWithoutWaiting(Array("data: [DONE]\n\n".utf8))
            responder.finishWithoutWaiting()
        case .failure(let f):
            if !started {
                if responder.isOpen { ModelEndpoint.failure(responder, f, id: id) }
                return
            }
            let body = OpenAIWire.errorBody(message: "\(id): \(f.message)", type: "server_error")
            _ = responder.writeWithoutWaiting(Array("data: \(body.text)\n\n".utf8))
            responder.finishWithoutWaiting()
        }
    }
}
