import CordonJSON
import CordonPackaging
import CordonPolicy
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan fetch`, the install gate's downloader, against a real HTTP index on loopback
/// (index_standin.py over make_index.py's pages): pages and files land under --out with their
/// sha256; a host that is not allowed, a 404, a file over its cap and a name already there each
/// fail alone, saying why, and leave no file behind.
final class FetchTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    let dir: String
    let server: Process
    let port: Int

    init() throws {
        dir = "\(ScanFixture.dir)/fetch-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: "\(dir)/out", withIntermediateDirectories: true)
        let made = try UnprivilegedScanTests.run(["/usr/bin/python3", "\(Self.here)/make_packages.py", "\(dir)/packages"])
        try #require(made.status == 0, "\(made.err)")
        let index = try UnprivilegedScanTests.run(["/usr/bin/python3", "\(Self.here)/make_index.py", "\(dir)/packages", "\(dir)/index", "\(Date().timeIntervalSince1970)"])
        try #require(index.status == 0, "\(index.err)")
        server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["\(Self.here)/index_standin.py", "\(dir)/index", "--host", "127.0.0.1", "--log", "\(dir)/requests.log"]
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        // Its first line is its port: read with poll, so a server that never answers cannot hang the test.
        var line = [UInt8]()
        let fd = out.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(20)
        reading: while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 1000) >= 0 else { break }
            if p.revents == 0 { continue }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { break }
            if byte == 10 { break reading }
            line.append(byte)
        }
        port = Int(String(decoding: line, as: UTF8.self)) ?? 0
    }

    deinit {
        // SIGKILL: the test process may hand its children a mask that blocks SIGTERM.
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func fetch(_ requests: [JSON], allow: [String]? = nil) throws -> (status: Int32, lines: [JSON], err: String) {
        let path = "\(dir)/requests-\(UInt32.random(in: 0...UInt32.max)).jsonl"
        try requests.map(\.text).joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try UnprivilegedScanTests.run([PackageCheckTests.scanner, "fetch", "--out", "\(dir)/out"] + (allow ?? ["127.0.0.1:\(port)"]).flatMap { ["--allow", $0] } + [path])
        return (r.status, r.out.split(separator: "\n").compactMap { try? JSON.parse(Array($0.utf8)) }, r.err)
    }

    var index: ServiceURL { ServiceURL(scheme: "http", host: "127.0.0.1", port: port, path: "/simple") }

    @Test func pagesAndFilesArriveWithTheirHashes() throws {
        try #require(port > 0, "the index did not start")
        let pageURL = IndexURL.page(index: index, project: "Cordon_Clean")
        #expect(pageURL == "http://127.0.0.1:\(port)/simple/cordon-clean/")
        let pages = try fetch([.object([("page", .string("cordon-clean")), ("url", .string(pageURL))])])
        #expect(pages.status == 0 && pages.lines.count == 1, "\(pages.err)")
        #expect(pages.lines.first?["status"] == .int(200) && pages.lines.first?["contentType"] == .string(SimpleIndex.jsonMediaType), "\(pages.lines)")
        // cordond reads the page itself, with the bounded reader, and resolves the file's URL.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(dir)/out/pages/cordon-clean.json")))
        let page = try SimpleIndex.parseProjectPage(bytes, expected: "cordon-clean")
        let file = try #require(page.files.first)
        guard case .success(let url) = IndexURL.resolve(file.url, against: pageURL) else { Issue.record("\(file.url) does not resolve"); return }
        #expect(url.description == "http://127.0.0.1:\(port)/files/\(file.filename)")
        let got = try fetch([.object([("download", .string(url.description)), ("filename", .string(file.filename)), ("maxBytes", .int(1 << 20))])])
        #expect(got.lines.first?["sha256"]?.stringValue == file.sha256 && got.lines.first?["size"]?.intValue == file.size, "\(got.lines)")
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/out/files/\(file.filename)"))
        #expect(onDisk == (try Data(contentsOf: URL(fileURLWithPath: "\(dir)/packages/\(file.filename)"))))
    }

    @Test func eachFailureIsItsOwnAndLeavesNothing() throws {
        try #require(port > 0, "the index did not start")
        let base = "http://127.0.0.1:\(port)/files"
        let clean = "cordon_clean-1.0-py3-none-any.whl"
        _ = try fetch([.object([("download", .string("\(base)/\(clean)")), ("filename", .string(clean)), ("maxBytes", .int(1 << 20))])])
        let r = try fetch([
            .object([("download", .string("http://127.0.0.2:\(port)/files/\(clean)")), ("filename", .string("cordon_other-1.0-py3-none-any.whl")), ("maxBytes", .int(1 << 20))]),
            .object([("download", .string("\(base)/nope-1.0-py3-none-any.whl")), ("filename", .string("nope-1.0-py3-none-any.whl")), ("maxBytes", .int(1 << 20))]),
            .object([("download", .string("\(base)/cordon_bomb-1.0-py3-none-any.whl")), ("filename", .string("cordon_bomb-1.0-py3-none-any.whl")), ("maxBytes", .int(1000))]),
            .object([("download", .string("\(base)/\(clean)")), ("filename", .string(clean)), ("maxBytes", .int(1 << 20))]),
            .object([("download", .string("\(base)/cordon_pth-1.0-py3-none-any.whl")), ("filename", .string("cordon_pth-1.0-py3-none-any.whl")), ("maxBytes", .int(1 << 20))]),
        ])
        #expect(r.status == 0 && r.lines.count == 5, "\(r.err)")
        // Lines come as transfers end: found by what they fetched.
        func line(_ name: String) -> JSON? { r.lines.first { $0["download"]?.stringValue == name } }
        #expect(line("cordon_other-1.0-py3-none-any.whl")?["error"]?.stringValue == "127.0.0.2:\(port) is not an allowed host (--allow)")
        #expect(line("nope-1.0-py3-none-any.whl")?["error"]?.stringValue == "the server answered 404")
        let bomb = line("cordon_bomb-1.0-py3-none-any.whl")
        #expect(bomb?["error"]?.stringValue?.isEmpty == false && bomb?["sha256"] == nil, "\(String(describing: bomb))")
        #expect(line(clean)?["error"]?.stringValue?.contains("File exists") == true)
        #expect(line("cordon_pth-1.0-py3-none-any.whl")?["sha256"] != nil, "one failure does not stop the others")
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/out/files").sorted()
        #expect(left == [clean, "cordon_pth-1.0-py3-none-any.whl"], "\(left)")
        // Nothing left the allowed host: the index saw only what was allowed.
        let log = try String(contentsOfFile: "\(dir)/requests.log", encoding: .utf8)
        #expect(!log.contains("cordon_other") && log.contains("GET /files/nope-1.0-py3-none-any.whl"))
    }

    @Test func badRequestsAreRefusedBeforeAnythingIsFetched() throws {
        let r = try fetch([.object([("download", .string("http://127.0.0.1:1/x")), ("filename", .string("../escape-1.0-py3-none-any.whl")), ("maxBytes", .int(1))])])
        #expect(r.status == 2 && r.lines.isEmpty && r.err.contains("line 1"), "\(r.err)")
        let noAllow = try fetch([], allow: [])
        #expect(noAllow.status != 0 && noAllow.err.contains("--allow"))
        let broad = try fetch([], allow: ["*.example.com:443"])
        #expect(broad.status == 2 && broad.err.contains("not one HOST:PORT"))
    }
}

/// Reference resolution as browsers and pip do it (RFC 3986), for the URLs on an index page.
struct IndexURLTests {
    @Test func relativeReferencesResolveAgainstThePage() {
        let page = "https://pypi.org/simple/requests/"
        func r(_ ref: String) -> String? { if case .success(let u) = IndexURL.resolve(ref, against: page) { return u.description }; return nil }
        #expect(r("../../packages/ab/requests-2.31.0.tar.gz") == "https://pypi.org/packages/ab/requests-2.31.0.tar.gz")
        #expect(r("requests-2.31.0.tar.gz") == "https://pypi.org/simple/requests/requests-2.31.0.tar.gz")
        #expect(r("/x/y.whl") == "https://pypi.org/x/y.whl")
        #expect(r("//files.pythonhosted.org/p/y.whl") == "https://files.pythonhosted.org/p/y.whl")
        #expect(r("https://files.pythonhosted.org:443/p/./q/../y.whl") == nil, "an absolute URL is taken as written, and '..' in it refused")
        #expect(r("../../../../../etc/y.whl") == "https://pypi.org/etc/y.whl", "never above the root")
        #expect(r("ftp://x/y.whl") == nil)
    }
}
