import CordonCLI
#if canImport(Glibc)
import Glibc
#endif

// `cordon run` with well-formed arguments skips the general parser (see RunFastPath).
let arguments = CommandLine.arguments
if arguments.count > 2, arguments[1] == "run", let options = RunFastPath.parse(arguments.dropFirst(2)) {
    exit(RunFastPath.execute(options))
}
// The scanner is its own binary; hand over before parsing anything else.
if arguments.count > 1, arguments[1] == "scan" || arguments[1] == "db" {
    CordonCommand.forwardToScanner(Array(arguments.dropFirst()))
}
CordonCommand.main()
