import CLinux
import CordonCLI
#if canImport(Glibc)
import Glibc
#endif

// `cordon run` and `cordon submit` with well-formed arguments skip the general parser (see
// RunFastPath, SubmitFastPath).
let arguments = CommandLine.arguments
if arguments.count > 2, arguments[1] == "run", let options = RunFastPath.parse(arguments.dropFirst(2)) {
    // The sandbox has ended and its record is written: our caller need not wait for the kernel
    // to tear down this process's memory (CLinux, cl_exit_leaving_teardown).
    cl_exit_leaving_teardown(RunFastPath.execute(options))
}
if arguments.count > 2, arguments[1] == "submit", let options = SubmitFastPath.parse(arguments.dropFirst(2)) {
    exit(SubmitFastPath.execute(options))
}
// The scanner is its own binary; hand over before parsing anything else.
if arguments.count > 1, arguments[1] == "scan" || arguments[1] == "db" {
    CordonCommand.forwardToScanner(Array(arguments.dropFirst()))
}
// `cordon run COMMAND` without `--`: the general parser reads the command after `--` only.
if arguments.count > 2, arguments[1] == "run" {
    CordonCommand.main(["run"] + RunFastPath.argumentsForParser(Array(arguments.dropFirst(2))))
} else {
    CordonCommand.main()
}
