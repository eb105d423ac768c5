#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Unbuffered writes to a descriptor, for diagnostics and command output: every binary writes
/// its errors this way, so even a worker that links nothing but this module can report.
public enum FileDescriptorIO {
    /// Writes all `count` bytes, retrying EINTR and EAGAIN; any other error ends the write
    /// silently (there is nowhere left to report it).
    public static func writeAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int) {
        _ = writeFully(fd, base, count)
    }

    /// Writes all `count` bytes, retrying EINTR and EAGAIN: 0, or the errno that stopped it
    /// (EIO for a write that wrote nothing).
    public static func writeFully(_ fd: Int32, _ base: UnsafeRawPointer?, _ count: Int) -> Int32 {
        guard let base else { return count == 0 ? 0 : EINVAL }
        var done = 0
        while done < count {
            let n = write(fd, base + done, count - done)
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; return errno }
            if n == 0 { return EIO }
            done += n
        }
        return 0
    }

    public static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        let count = bytes.count
        bytes.withUnsafeMutableBytes { writeAll(fd, $0.baseAddress!, count) }
    }
}
