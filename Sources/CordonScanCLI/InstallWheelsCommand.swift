import ArgumentParser
import CordonCommandLine
import CordonJSON
import CordonScanner
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan install-wheels`: a set's wheels unpacked into DIR/site (`WheelInstaller`), with
/// nothing of theirs run. cordond runs it inside a sandbox with no network, the wheels bound
/// read-only, only DIR writable, and checks the tree it wrote before the store keeps it.
struct InstallWheelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install-wheels",
        abstract: "Unpack a set of wheels into one site directory, running nothing of theirs.",
        discussion: """
        MANIFEST (a file, or - for standard input) holds one JSON object per line, \
        {"file": PATH, "filename": FILENAME}, the wheels of one set. Writes DIR/site (DIR must exist; \
        site must not): every member the wheel's RECORD vouches for (sha256 checked again), \
        NAME.data/purelib and platlib at the top, scripts, headers and data skipped and named; no \
        scripts are made and no bytecode compiled. Prints one JSON object per wheel. Exit status: 0 \
        when every wheel was installed, 1 when one could not be (it says why; the set is not whole), \
        2 when the manifest or DIR could not be used.
        """
    )

    @Option(name: .long, help: "The directory to write site into.")
    var into: String

    @Argument(help: "The manifest (a file, or - for standard input).")
    var manifest: String

    func run() throws {
        let text: [UInt8]
        do { text = try FileSystem.readInput(manifest, limit: 16 << 20) } catch {
            printError("cordon-scan install-wheels: the manifest \(manifest): \(error)")
            throw ExitCode(2)
        }
        var wheels: [(file: String, filename: String)] = []
        for (i, line) in text.split(separator: 10).enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
            guard let item = try? JSON.parse(Array(line)), let file = item["file"]?.stringValue, let filename = item["filename"]?.stringValue,
                  filename.hasSuffix(".whl") else {
                printError("cordon-scan install-wheels: the manifest's line \(i + 1) is not {\"file\", \"filename\"} of a wheel")
                throw ExitCode(2)
            }
            wheels.append((file, filename))
        }
        let site = "\(into)/site"
        guard mkdir(site, 0o755) == 0, chmod(site, 0o755) == 0 else {
            printError("cordon-scan install-wheels: \(site): \(SystemError.text(errno))")
            throw ExitCode(2)
        }
        let installer: WheelInstaller
        do { installer = try WheelInstaller(site: site) } catch {
            printError("cordon-scan install-wheels: \(error)")
            throw ExitCode(2)
        }
        // The wheels on every core (`LargestFirst`); a line for each, in the manifest's order. Of two
        // wheels with one path, the one that claims it first writes it and the other fails,
        // naming both in the manifest's order.
        let asked = wheels
        let lines = LargestFirst.run(asked.map(\.file), thread: "install") { () -> (@Sendable (Int) -> (json: JSON, failed: Bool))? in
            { i in Self.install(asked[i].file, filename: asked[i].filename, rank: i, installer) }
        }
        // Each wheel that was tried; one that failed is said on stderr too (its parent shows
        // the last of it), and the set is not kept.
        var failed = false
        for line in lines {
            print(line.json.text)
            if line.failed {
                failed = true
                printError("cordon-scan install-wheels: \(line.json["error"]?.stringValue ?? "failed")")
            }
        }
        if failed { throw ExitCode(1) }
    }

    /// One wheel into the site: its result line, and whether it failed.
    static func install(_ file: String, filename: String, rank: Int, _ installer: WheelInstaller) -> (json: JSON, failed: Bool) {
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return (JSON.object([("filename", .string(filename)), ("error", .string("\(file): \(SystemError.text(errno))"))]), true) }
        defer { close(fd) }
        do {
            let done = try installer.install(descriptor: fd, filename: filename, rank: rank)
            return (JSON.object([("filename", .string(filename)), ("files", .int(Int64(done.files))), ("bytes", .int(done.bytes)),
                                 ("skipped", .array(done.skipped.prefix(100).map(JSON.string))),
                                 ("top", .array(done.top.sorted().prefix(1000).map(JSON.string)))]), false)
        } catch {
            return (JSON.object([("filename", .string(filename)), ("error", .string(error.description))]), true)
        }
    }
}
