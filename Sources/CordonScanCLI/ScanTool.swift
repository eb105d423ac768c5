import ArgumentParser
import CordonRPC

/// `cordon-scan`: the scanner and the vulnerability database, a binary of its own so that
/// `cordon run` does not load libarchive, libyaml and the scanner (start-up is on the spawn
/// path), and so that scanning untrusted input can later run inside a sandbox as a worker.
/// `cordon scan …` and `cordon db …` execute it.
public struct ScanToolCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cordon",
        abstract: "Scan packages and images; manage the offline vulnerability database.",
        version: cordonVersion,
        subcommands: [ScanCommand.self, DBCommand.self, UnpackCommand.self, CheckCommand.self, FetchCommand.self, InstallWheelsCommand.self]
    )
    public init() {}
}
