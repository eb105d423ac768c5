import ArgumentParser
import CordonArchive
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonScanner
import CordonSystem
import CordonVulnDB
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan check`: the install gate's scan of the archives a resolver chose, each checked
/// as the file it was resolved as (`PackageCheck`). cordond runs it inside a sandbox with no
/// network, the archives bound read-only, so the privileged daemon never parses a package.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check package archives for the install gate: identity, RECORD, advisories, heuristics.",
        discussion: """
        MANIFEST (a file, or - for standard input) holds one JSON object per line: \
        {"file": PATH, "name": NAME, "version": VERSION, "filename": FILENAME}, the archive to read and \
        what it was resolved as. With --archive -, standard input is the archive itself (a regular \
        file, as a descriptor) and --name, --version and --filename say what it is. \
        Prints one JSON object per archive, in order: its sha256 and size, its METADATA or PKG-INFO \
        identity, RECORD problems (wheels), advisories matched by the resolved name and version, the \
        heuristics' findings and the typosquat match, or an error for an archive that could not be read. \
        Exit status: 0 when every archive was looked at (each result says what was found), 2 when the \
        manifest or the database could not be read.
        """
    )

    @Option(name: .long, help: "The vulnerability database to read (default: the state directory's; none: not checked).")
    var db: String?

    @Option(name: .long, help: "Standard input is the archive (-), instead of a manifest.")
    var archive: String?

    @Option(name: .long, help: "With --archive: the name it was resolved as.")
    var name: String?

    @Option(name: .long, help: "With --archive: the version it was resolved as.")
    var version: String?

    @Option(name: .long, help: "With --archive: its file name as the index lists it.")
    var filename: String?

    @OptionGroup var locations: LocationOptions

    @Argument(help: "The manifest (a file, or - for standard input).")
    var manifest: String?

    static let maxArchives = 10_000

    func validate() throws {
        if let archive {
            guard archive == "-" else { throw ValidationError("--archive: only - (standard input) is read") }
            guard manifest == nil else { throw ValidationError("give either --archive - or a manifest, not both") }
            guard name != nil, version != nil, filename != nil else { throw ValidationError("--archive - needs --name, --version and --filename") }
        } else if manifest == nil {
            throw ValidationError("give a manifest (or - for standard input), or --archive -")
        }
    }

    func run() throws {
        let dbPath = db ?? Locations(stateDir: locations.stateDir).vulnDB().path
        var database: VulnDatabase?
        if access(dbPath, F_OK) == 0 || errno != ENOENT {
            do { database = try VulnDatabase(readingAt: dbPath) } catch {
                printError("cordon-scan check: \(error)")
                throw ExitCode(2)
            }
        }
        if archive != nil, let name, let version, let filename {
            print(Self.check(descriptor: 0, shown: "standard input", PackageCheck.Expected(name: name, version: version, filename: filename), database).text)
            return
        }
        let text: [UInt8]
        do { text = try FileSystem.readInput(manifest ?? "", limit: 64 << 20) } catch {
            printError("cordon-scan check: the manifest \(manifest ?? ""): \(error)")
            throw ExitCode(2)
        }
        var requests: [(String, PackageCheck.Expected)] = []
        for (i, line) in text.split(separator: 10).enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
            guard let item = try? JSON.parse(Array(line)), let file = item["file"]?.stringValue, let name = item["name"]?.stringValue,
                  let version = item["version"]?.stringValue, let filename = item["filename"]?.stringValue else {
                printError("cordon-scan check: the manifest's line \(i + 1) is not {\"file\", \"name\", \"version\", \"filename\"}")
                throw ExitCode(2)
            }
            requests.append((file, PackageCheck.Expected(name: name, version: version, filename: filename)))
            guard requests.count <= Self.maxArchives else {
                printError("cordon-scan check: more than \(Self.maxArchives) archives in the manifest")
                throw ExitCode(2)
            }
        }
        // The archives on every core (the install gate waits for the last one), each thread with
        // a database connection of its own (one that opened once opens again).
        let asked = requests
        var first = true
        let results = LargestFirst.run(asked.map(\.0), thread: "check") { () -> (@Sendable (Int) -> JSON)? in
            let own = first ? database : database.flatMap { try? VulnDatabase(readingAt: $0.path) }
            first = false
            if database != nil && own == nil { return nil }
            return { i in Self.check(file: asked[i].0, asked[i].1, own) }
        }
        for r in results { print(r.text) }
    }

    /// One archive of the manifest, opened without following a link or blocking on a FIFO.
    static func check(file: String, _ expected: PackageCheck.Expected, _ database: VulnDatabase?) -> JSON {
        // O_NONBLOCK: a FIFO named in the manifest must not block the open (fstat refuses it after).
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return JSON.object([("filename", .string(expected.filename)), ("error", .string("\(file): \(SystemError.text(errno))"))]) }
        defer { close(fd) }
        return check(descriptor: fd, shown: file, expected, database)
    }

    /// One archive from a descriptor: hashed whole first (the digest the result carries is of
    /// the bytes read here), then read again from the start as an archive.
    static func check(descriptor fd: Int32, shown: String, _ expected: PackageCheck.Expected, _ database: VulnDatabase?) -> JSON {
        func failed(_ why: String) -> JSON { .object([("filename", .string(expected.filename)), ("error", .string("\(shown): \(why)"))]) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return failed("not a regular file") }
        let hash: String, size: Int64
        do { (hash, size) = try FileSystem.sha256(of: fd) } catch { return failed("\(error)") }
        var zip: ZipDirectory?
        if expected.filename.hasSuffix(".whl") {
            do { zip = try ZipDirectory.read(fd, name: expected.filename) } catch { return failed(error.description) }
        }
        guard lseek(fd, 0, SEEK_SET) == 0 else { return failed(SystemError.text(errno)) }
        let reader: ArchiveReader
        do { reader = try ArchiveReader(descriptor: fd, name: expected.filename) } catch { return failed("\(error)") }
        return PackageCheck.check(reader, sha256: hash, size: size, expected: expected, database: database, zip: zip)
    }
}
