import CFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// Runs libFuzzer with this process's arguments, calling `body` with each input.
///
/// Each target has a Swift `main` that calls this instead of defining `LLVMFuzzerTestOneInput`
/// and linking libFuzzer's `main`: SwiftPM links every executable's entry point under the
/// module's name, which an executable without a Swift `main` does not have.
public enum Fuzzer {
    nonisolated(unsafe) private static var body: ((UnsafeBufferPointer<UInt8>) -> Void)?

    public static func run(_ body: @escaping (UnsafeBufferPointer<UInt8>) -> Void) -> Never {
        Fuzzer.body = body
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            Fuzzer.body!(UnsafeBufferPointer(start: data, count: size))
            return 0
        })
    }
}

/// A property of the code under test: when it does not hold, the input is a crash that says
/// why. (`precondition` would do, but an optimised build drops its message.)
public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// Feeds `bytes` to a streaming parser in pieces of 1–61 bytes (the size chosen by the input's
/// byte sum, so a crash replays) until it stops asking for more; returns the piece size and the
/// last outcome, to compare with feeding everything at once.
public func feedInPieces<Outcome: Equatable>(_ bytes: [UInt8], needMore: Outcome,
                                             _ feed: (ArraySlice<UInt8>) -> Outcome) -> (piece: Int, last: Outcome) {
    let piece = 1 + Int(bytes.reduce(0) { $0 &+ UInt32($1) } % 61)
    var last = needMore
    var i = 0
    while i < bytes.count, last == needMore {
        last = feed(bytes[i..<min(bytes.count, i + piece)])
        i += piece
    }
    return (piece, last)
}
