import ArgumentParser
import CordonCommandLine
import CordonJSON
import CordonScanner
import CordonSystem
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
        for wheel in wheels {
            let fd = open(wheel.file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                print(JSON.object([("filename", .string(wheel.filename)), ("error", .string("\(wheel.file): \(SystemError.text(errno))"))]).text)
                throw ExitCode(1)
            }
            defer { close(fd) }
            do {
                let done = try installer.install(descriptor: fd, filename: wheel.filename)
                print(JSON.object([("filename", .string(wheel.filename)), ("files", .int(Int64(done.files))), ("bytes", .int(done.bytes)),
                                   ("skipped", .array(done.skipped.prefix(100).map(JSON.string)))]).text)
            } catch {
                print(JSON.object([("filename", .string(wheel.filename)), ("error", .string(error.description))]).text)
                throw ExitCode(1)
            }
        }
    }
}
