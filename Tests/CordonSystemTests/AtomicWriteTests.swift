import CordonSystem
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `writeAtomically` from many threads to one path: every read sees one writer's bytes whole.
/// The temporary file was once `PATH.tmp.PID`, shared by every thread of the process, so two
/// writers truncated and wrote the same file and the rename published a mix (a cache's check
/// then failed on read and the entry was rebuilt each time).
struct AtomicWriteTests {
    @Test func concurrentWritersToOnePathNeverPublishAMix() throws {
        var template = Array("/tmp/cordon-atomic-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SystemError("mkdtemp", errno: errno) }
        let base = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let path = "\(base)/entry"
        let size = 64 << 10
        let mixed = Mutex(0), failed = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { writer in
            let bytes = [UInt8](repeating: UInt8(writer + 1), count: size)
            for _ in 0..<30 {
                do {
                    try FileSystem.writeAtomically(path, bytes, mode: 0o600, durable: false)
                    let read = try FileSystem.read(path)
                    if read.count != size || Set(read).count != 1 { mixed.withLock { $0 += 1 } }
                } catch {
                    failed.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failed.withLock { $0 } == [])
        #expect(mixed.withLock { $0 } == 0)
        // Nothing is left behind but the file itself.
        #expect(try FileManager.default.contentsOfDirectory(atPath: base) == ["entry"])
    }
}
