#if canImport(Glibc)
import Glibc
#endif
// Byte-level text helpers. Patterns are lowercase ASCII and are matched against
// ASCII-lowercased lines, which keeps matching fast and Foundation-free.

typealias Bytes = [UInt8]

@inline(__always) func lowerASCII(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b &+ 32 : b }

@inline(__always) func isIdentByte(_ b: UInt8) -> Bool {
    (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) || b == 95 || b == 36
}

func bytes(_ s: String) -> Bytes { Array(s.utf8) }
func byteList(_ ss: [String]) -> [Bytes] { ss.map { Array($0.utf8) } }

/// Index of the first occurrence of `needle` in `hay` at or after `start`. Candidates are found
/// with memchr (vectorised in libc), then confirmed with memcmp.
func find(_ hay: Bytes, _ needle: Bytes, from start: Int = 0) -> Int? {
    let n = needle.count, h = hay.count
    if n == 0 { return start <= h ? start : nil }
    if start < 0 || h - start < n { return nil }
    return hay.withUnsafeBufferPointer { hp in
        needle.withUnsafeBufferPointer { np in
            guard let hb = hp.baseAddress, let nb = np.baseAddress else { return nil }
            let first = Int32(nb[0])
            var i = start
            let last = h - n
            while i <= last {
                guard let hit = memchr(hb + i, first, last - i + 1) else { return nil }
                let k = hb.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                if n == 1 || memcmp(hb + k + 1, nb + 1, n - 1) == 0 { return k }
                i = k + 1
            }
            return nil
        }
    }
}

func has(_ hay: Bytes, _ needle: Bytes) -> Bool { find(hay, needle) != nil }

func hasAny(_ hay: Bytes, _ needles: [Bytes]) -> Bool {
    for n in needles where find(hay, n) != nil { return true }
    return false
}

/// A call such as `exec(` not preceded by an identifier character or a dot
/// (so `re.exec(`, `execute(` and `my_eval(` do not match).
func hasBareCall(_ hay: Bytes, _ callee: Bytes) -> Bool {
    var from = 0
    while let i = find(hay, callee, from: from) {
        if i == 0 { return true }
        let p = hay[i - 1]
        if !isIdentByte(p) && p != 46 { return true }
        from = i + 1
    }
    return false
}

/// `token` occurs with identifier boundaries on both sides.
func hasToken(_ hay: Bytes, _ token: Bytes) -> Bool {
    var from = 0
    while let i = find(hay, token, from: from) {
        let beforeOK = i == 0 || !isIdentByte(hay[i - 1])
        let end = i + token.count
        let afterOK = end >= hay.count || !isIdentByte(hay[end])
        if beforeOK && afterOK { return true }
        from = i + 1
    }
    return false
}

func shannonEntropy<C: Collection>(_ data: C) -> Double where C.Element == UInt8 {
    var counts = [Int](repeating: 0, count: 256)
    var total = 0
    for b in data { counts[Int(b)] += 1; total += 1 }
    if total == 0 { return 0 }
    var h = 0.0
    let t = Double(total)
    for c in counts where c > 0 {
        let p = Double(c) / t
        h -= p * log2Approx(p)
    }
    return h
}

/// log2 without Foundation: frexp-style decomposition plus a series for ln(m).
func log2Approx(_ x: Double) -> Double {
    precondition(x > 0)
    let e = x.exponent
    let m = x.significand  // in [1, 2)
    // ln(m) via atanh series: ln(m) = 2 * atanh((m-1)/(m+1))
    let y = (m - 1) / (m + 1)
    let y2 = y * y
    var term = y
    var sum = 0.0
    var k = 1.0
    for _ in 0..<30 {
        sum += term / k
        term *= y2
        k += 2
    }
    let lnM = 2 * sum
    return Double(e) + lnM / 0.6931471805599453
}

let codeExtensions: Set<String> = [
    "py", "pyw", "pth", "js", "cjs", "mjs", "jsx", "ts", "tsx", "sh", "bash", "zsh",
    "ps1", "bat", "cmd", "vbs", "pl", "rb",
]

func basename(_ path: String) -> String {
    if let slash = path.lastIndex(of: "/") { return String(path[path.index(after: slash)...]) }
    return path
}

func fileExtension(_ path: String) -> String? {
    let base = basename(path)
    guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return nil }
    return String(base[base.index(after: dot)...]).lowercased()
}

/// Code files get the code rules. An extension-less file counts as code only when it starts
/// with "#!" (a script); METADATA, LICENSE and the like are prose.
func isCodeFile(_ path: String, bytes: [UInt8]) -> Bool {
    guard let ext = fileExtension(path) else { return bytes.starts(with: [0x23, 0x21]) }
    return codeExtensions.contains(ext)
}

let maxTextSize = 4 * 1024 * 1024

func looksBinary(_ data: [UInt8]) -> Bool {
    let n = min(data.count, 8192)
    var i = 0
    while i < n {
        if data[i] == 0 { return true }
        i += 1
    }
    return false
}

struct TextFile {
    let path: String
    let raw: [Bytes]
    let lower: [Bytes]
    /// The whole file, lowercased: rules first ask it whether their trigger words occur at all,
    /// which spares the line-by-line work for the great majority of files.
    let whole: Bytes
    let isCode: Bool

    init?(_ file: PackageFile) {
        if file.bytes.count > maxTextSize || looksBinary(file.bytes) { return nil }
        path = file.path
        let content = file.bytes
        let folded = content.map(lowerASCII)
        var lines: [Bytes] = []
        var lowered: [Bytes] = []
        var start = 0
        while start <= content.count {
            let end = find(content, [10], from: start) ?? content.count
            var stop = end
            if stop > start && content[stop - 1] == 13 { stop -= 1 }
            if end == content.count && start == end && !lines.isEmpty { break }  // no empty line after a final newline
            lines.append(Array(content[start..<stop]))
            lowered.append(Array(folded[start..<stop]))
            start = end + 1
        }
        raw = lines
        lower = lowered
        whole = folded
        isCode = isCodeFile(file.path, bytes: file.bytes)
    }

    var lineCount: Int { raw.count }

    func mayContain(_ patterns: [Bytes]) -> Bool { hasAny(whole, patterns) }

    func isComment(_ i: Int) -> Bool {
        let l = raw[i]
        var j = 0
        while j < l.count && (l[j] == 32 || l[j] == 9) { j += 1 }
        if j >= l.count { return false }
        if l[j] == 35 { return true }  // '#'
        if l[j] == 47 && j + 1 < l.count && l[j + 1] == 47 { return true }  // '//'
        return false
    }

    /// Lines (0-based) that contain any of the patterns, optionally skipping comment lines.
    func lines(matchingAny pats: [Bytes], skipComments: Bool = true) -> [Int] {
        var out: [Int] = []
        for i in 0..<lower.count where hasAny(lower[i], pats) {
            if skipComments && isComment(i) { continue }
            out.append(i)
        }
        return out
    }

    func firstLine(matchingAny pats: [Bytes], skipComments: Bool = true) -> Int? {
        for i in 0..<lower.count where hasAny(lower[i], pats) {
            if skipComments && isComment(i) { continue }
            return i
        }
        return nil
    }

    func anyLine(matchingAny pats: [Bytes]) -> Bool { firstLine(matchingAny: pats, skipComments: true) != nil }

    func evidence(_ i: Int) -> String { makeEvidence(raw[i]) }
}

func makeEvidence(_ b: Bytes) -> String {
    let cleaned = b.map { ($0 < 32 || $0 == 127) ? UInt8(32) : $0 }
    var s = Substring(String(decoding: cleaned, as: UTF8.self))
    while let f = s.first, f == " " { s = s.dropFirst() }
    while let l = s.last, l == " " { s = s.dropLast() }
    if s.count > 160 { return String(s.prefix(160)) }
    return String(s)
}
