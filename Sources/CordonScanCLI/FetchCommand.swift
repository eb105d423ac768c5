import ArgumentParser
import CordonCommandLine
import CordonHTTPClient
import CordonJSON
import CordonPackaging
import CordonPolicy
import CordonScan
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan fetch`: the install gate's downloader. cordond runs it inside a sandbox whose
/// egress allowlist is the index's hosts only; it fetches index pages and files over libcurl
/// and writes them under --out, hashing each file as it arrives. It decides nothing: cordond
/// reads every page again with its own bounded reader, and copies and hashes every file again
/// into its store before anything looks at it.
struct FetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fetch index pages and package files for the install gate.",
        discussion: """
        REQUESTS (a file, or - for standard input) holds one JSON object per line: \
        {"page": NAME, "url": URL} fetches a project's PEP 691 page to OUT/pages/NAME.json; \
        {"download": URL, "filename": FILENAME, "maxBytes": N} fetches a file to OUT/files/FILENAME. \
        Every URL's host and port must be one of --allow (no redirect is followed, no proxy from \
        the environment is used). Prints one JSON object per request, in order: its status, size \
        and (for a file) sha256, or why it failed. Exit status: 0 when every request was tried \
        (each line says how it went), 2 when the requests or --out could not be read. Lines come as \
        transfers end, not in the requests' order; a file without its line is not whole.
        """
    )

    @Option(name: .long, help: "The directory to write pages/ and files/ into (it must exist).")
    var out: String

    @Option(name: .long, help: "A HOST:PORT requests may go to (repeat it).")
    var allow: [String] = []

    @Option(name: .long, help: "Transfers at once.")
    var parallel = 8

    @Option(name: .long, help: "Seconds for one transfer, start to end.")
    var timeout: Double = 300

    @Argument(help: "The requests (a file, or - for standard input).")
    var requests: String

    static let maxRequests = 10_000
    static let maxPageBytes = SimpleIndex.Limits().maxBytes

    func validate() throws {
        guard !allow.isEmpty else { throw ValidationError("--allow: name at least one HOST:PORT") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel: 1 to 64") }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout: a positive number of seconds") }
    }

    enum Job {
        case page(name: String, url: String)
        case download(url: String, filename: String, maxBytes: Int)
    }

    func run() throws {
        let text: [UInt8]
        do { text = try FileSystem.readInput(requests, limit: 16 << 20) } catch {
            printError("cordon-scan fetch: the requests \(requests): \(error)")
            throw ExitCode(2)
        }
        var jobs: [Job] = []
        for (i, line) in text.split(separator: 10).enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
            let item = try? JSON.parse(Array(line))
            if let name = item?["page"]?.stringValue, let url = item?["url"]?.stringValue, isValidPyPIName(name) {
                jobs.append(.page(name: normalizePyPIName(name), url: url))
            } else if let url = item?["download"]?.stringValue, let filename = item?["filename"]?.stringValue,
                      let max = item?["maxBytes"]?.intValue, max > 0, case .success = DistributionFile.parse(filename) {
                jobs.append(.download(url: url, filename: filename, maxBytes: Int(clamping: max)))
            } else {
                printError("cordon-scan fetch: the requests' line \(i + 1) is not {\"page\", \"url\"} or {\"download\", \"filename\", \"maxBytes\"} with a package name or file name")
                throw ExitCode(2)
            }
            guard jobs.count <= Self.maxRequests else {
                printError("cordon-scan fetch: more than \(Self.maxRequests) requests")
                throw ExitCode(2)
            }
        }
        for dir in ["\(out)/pages", "\(out)/files"] where mkdir(dir, 0o755) != 0 && errno != EEXIST {
            printError("cordon-scan fetch: \(dir): \(SystemError.text(errno))")
            throw ExitCode(2)
        }
        let client: HTTPClient
        do { client = try HTTPClient() } catch {
            printError("cordon-scan fetch: \(error)")
            throw ExitCode(2)
        }
        defer { client.shutDown() }
        var allowed = Set<String>()
        for entry in allow {
            guard case .success(let rule) = EgressRule.parse(entry), !rule.isBroad else {
                printError("cordon-scan fetch: --allow \(entry): not one HOST:PORT")
                throw ExitCode(2)
            }
            allowed.insert(rule.description)
        }
        // Every job runs, `parallel` at once, each line printed as its transfer ends.
        final class Progress: @unchecked Sendable {
            let monitor = Monitor()
            var running = 0, finished = 0
        }
        let output = Mutex<Void>(())
        let progress = Progress()
        for job in jobs {
            progress.monitor.locked {
                _ = progress.monitor.wait { progress.running < parallel }
                progress.running += 1
            }
            let done: @Sendable (JSON) -> Void = { result in
                // Each line as its transfer ends, written through (a worker stopped at its wall
                // time has said what it finished; a file without a line is not to be used).
                output.withLock { _ in FileDescriptorIO.writeAll(1, result.text + "\n") }
                progress.monitor.locked {
                    progress.finished += 1
                    progress.running -= 1
                    progress.monitor.broadcast()
                }
            }
            switch job {
            case .page(let name, let url):
                transfer(client, url: url, allowed: allowed, to: "\(out)/pages/\(name).json", maxBytes: Self.maxPageBytes,
                         accept: "\(SimpleIndex.jsonMediaType), application/vnd.pypi.simple.latest+json;q=0.9") { outcome in
                    done(.object([("page", .string(name))] + outcome))
                }
            case .download(let url, let filename, let maxBytes):
                transfer(client, url: url, allowed: allowed, to: "\(out)/files/\(filename)", maxBytes: maxBytes, accept: nil) { outcome in
                    done(.object([("download", .string(filename))] + outcome))
                }
            }
        }
        progress.monitor.locked { _ = progress.monitor.wait { progress.finished == jobs.count } }
    }

    /// One GET to a file created for it (O_EXCL), hashed as it arrives; `completion` gets the
    /// members of the result line.
    func transfer(_ client: HTTPClient, url: String, allowed: Set<String>, to path: String, maxBytes: Int, accept: String?,
                  completion: @escaping @Sendable ([(String, JSON)]) -> Void) {
        func failed(_ why: String) { completion([("url", .string(url)), ("error", .string(why))]) }
        guard case .success(let parsed) = ServiceURL.parse(url) else { return failed("not an http(s) URL without a query, fragment or user") }
        let hostPort = "\(parsed.host):\(parsed.port)"
        guard allowed.contains(hostPort) else { return failed("\(hostPort) is not an allowed host (--allow)") }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return failed("\(path): \(SystemError.text(errno))") }
        var request = HTTPRequest(url: url, headers: accept.map { [("Accept", $0)] } ?? [], body: [])
        request.method = .get
        request.timeout = timeout
        request.idleTimeout = 60
        request.maxBodyBytes = maxBytes
        // An index and its file host answer HTTP/2: every page (or file) on one connection.
        request.http2 = true
        let call: HTTPCall
        do { call = try client.call(request) } catch {
            close(fd)
            return failed("\(error)")
        }
        final class Sink: @unchecked Sendable {
            var hash = SHA256()
            var size = 0
            var writeError: String?
            var status = 0
            var contentType: String?
        }
        let sink = Sink()
        call.start(onHead: { head in
            sink.status = head.status
            sink.contentType = head.header("content-type")
            return head.status == 200
        }, onBody: { bytes in
            sink.hash.update(bytes)
            sink.size += bytes.count
            var written = 0
            while written < bytes.count {
                let w = write(fd, bytes.baseAddress! + written, bytes.count - written)
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { sink.writeError = SystemError.text(errno); return false }
                written += w
            }
            return true
        }, completion: { result in
            close(fd)
            var members: [(String, JSON)] = [("url", .string(url)), ("status", .int(Int64(sink.status)))]
            if let type = sink.contentType { members.append(("contentType", .string(String(type.prefix(200))))) }
            switch result {
            case .success where sink.status == 200 && sink.writeError == nil:
                completion(members + [("size", .int(Int64(sink.size))), ("sha256", .string(sink.hash.hexDigest()))])
            case .success, .failure:
                unlink(path)
                let why: String
                if let e = sink.writeError { why = "writing \(path): \(e)" }
                else if case .failure(let e) = result, sink.status == 200 || sink.status == 0 { why = "\(e)" }
                else { why = "the server answered \(sink.status)" }
                completion(members + [("error", .string(why))])
            }
        })
    }
}
