import CordonSystem
import Testing

struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func vectors(_ c: (String, String)) {
        #expect(SHA256.hex(Array(c.0.utf8)) == c.1)
        // A hasher fed the bytes gives the same digest (hexDigest encodes; it does not hash again).
        var hasher = SHA256()
        hasher.update(Array(c.0.utf8))
        #expect(hasher.hexDigest() == c.1)
    }

    @Test func millionAs() {
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Feeding the same bytes in uneven pieces gives the same digest (the buffering is right).
    @Test func incrementalMatchesOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hasher = SHA256()
        var i = 0
        for size in [1, 63, 64, 65, 7, 200] + Array(repeating: 100, count: 6) {
            let end = min(data.count, i + size)
            hasher.update(data[i..<end])
            i = end
        }
        hasher.update(data[i...])
        let digest = hasher.finalize().map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        #expect(digest == SHA256.hex(data))
    }
}
