import CordonSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Whether a descriptor is closed is seen from its peer (EOF, EPIPE), never by probing its number:
/// tests run in parallel, and a closed number may already be another test's.
struct DescriptorTests {
    /// Bytes `fd` reads, without blocking: 0 at EOF, -1 (EAGAIN) while a writer is still open.
    func readNow(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) == 1 else { return -1 }
        return read(fd, &byte, 1)
    }

    @Test func closedWhenTheOwnerGoes() throws {
        let pipe = try Descriptor.pipe()
        let reader = pipe.read
        do {
            let writer = pipe.write
            #expect(writer.raw >= 0)
            #expect(readNow(reader.raw) == -1)  // a writer is open
        }
        #expect(readNow(reader.raw) == 0)  // EOF: the writer's owner went, and closed it
    }

    @Test func closeClosesAtOnce() throws {
        let pipe = try Descriptor.pipe()
        let reader = pipe.read
        let writer = pipe.write
        writer.close()
        #expect(readNow(reader.raw) == 0)
    }

    @Test func socketPairEndsAreIndependent() throws {
        let pair = try Descriptor.socketPair(type: Int32(SOCK_STREAM.rawValue))
        let first = pair.first
        var byte: UInt8 = 7
        #expect(send(first.raw, &byte, 1, Int32(MSG_NOSIGNAL)) == 1)
        pair.second.close()
        #expect(send(first.raw, &byte, 1, Int32(MSG_NOSIGNAL)) == -1 && errno == EPIPE)
    }

    @Test func ownedDescriptorClosesWithItsLastReference() throws {
        let pipe = try Descriptor.pipe()
        let reader = pipe.read
        var shared: OwnedDescriptor? = OwnedDescriptor(pipe.write)
        var other = shared
        shared = nil
        #expect(other != nil && readNow(reader.raw) == -1)  // `other` still holds it
        other = nil
        #expect(readNow(reader.raw) == 0)
    }

    /// A descriptor closed behind its owner's back is a bookkeeping bug: the owner's close traps
    /// instead of closing whatever now has that number.
    @Test func closingBehindTheOwnersBackTraps() async {
        await #expect(processExitsWith: .failure) {
            let pipe = try Descriptor.pipe()
            let reader = pipe.read
            _ = Glibc.close(reader.raw)
            reader.close()  // EBADF
        }
    }
}
