/// A line diff in the unified format (`diff -u`, three lines of context), found with Myers's
/// O((N+M)·D) greedy algorithm ("An O(ND) Difference Algorithm and Its Variations", 1986). When
/// the two sides differ in more than `maxEdits` lines the search stops and the diff replaces
/// the whole of one side with the other: still a correct diff, only not the shortest.
public enum LineDiff {
    public static let maxEdits = 2000
    static let context = 3

    enum Edit: Equatable { case same(Int, Int), delete(Int), insert(Int) }

    typealias Line = ArraySlice<UInt8>

    /// Lines split at each LF byte, terminators kept (a missing final newline shows), compared
    /// byte for byte: a CR stays part of its line, and text that only looks the same (another
    /// normalization, a look-alike letter) is a difference.
    static func lines(_ bytes: [UInt8]) -> [Line] {
        var out: [Line] = []
        var start = 0
        for i in bytes.indices where bytes[i] == 0x0A {
            out.append(bytes[start...i])
            start = i + 1
        }
        if start < bytes.count { out.append(bytes[start...]) }
        return out
    }

    /// The unified diff of `old` into `new` (UTF-8 text), headed `--- oldName` and
    /// `+++ newName`; empty when they are equal.
    public static func unified(old: String, new: String, oldName: String, newName: String) -> String {
        unified(old: Array(old.utf8), new: Array(new.utf8), oldName: oldName, newName: newName)
    }

    /// The same of two byte strings, each split at LF; the text is theirs, decoded as UTF-8.
    public static func unified(old: [UInt8], new: [UInt8], oldName: String, newName: String) -> String {
        let a = lines(old), b = lines(new)
        let edits = script(a, b)
        guard edits.contains(where: { if case .same = $0 { return false }; return true }) else { return "" }
        var out = "--- \(oldName)\n+++ \(newName)\n"
        // Hunks: runs of edits with at most 2×context unchanged lines between them.
        var i = 0
        var ai = 0, bi = 0, counted = 0
        while i < edits.count {
            guard let first = edits[i...].firstIndex(where: { if case .same = $0 { return false }; return true }) else { break }
            var last = first
            var j = first
            while j < edits.count {
                if case .same = edits[j] {
                    var k = j
                    while k < edits.count, case .same = edits[k] { k += 1 }
                    if k == edits.count || k - j > 2 * context { break }
                    j = k
                } else {
                    last = j
                    j += 1
                }
            }
            let lo = max(i, first - context), hi = min(edits.count - 1, last + context)
            var oldStart = 0, newStart = 0, oldCount = 0, newCount = 0
            var body = ""
            var positioned = false
            // Where the hunk starts on each side: the lines before it, counted on from where
            // the last hunk's count stopped (each edit is counted once).
            for e in edits[counted..<lo] {
                switch e {
                case .same: ai += 1; bi += 1
                case .delete: ai += 1
                case .insert: bi += 1
                }
            }
            counted = lo
            for e in edits[lo...hi] {
                if !positioned { (oldStart, newStart, positioned) = (ai + 1, bi + 1, true) }
                switch e {
                case .same(let x, _):
                    body += " " + line(a[x]); oldCount += 1; newCount += 1
                case .delete(let x):
                    body += "-" + line(a[x]); oldCount += 1
                case .insert(let y):
                    body += "+" + line(b[y]); newCount += 1
                }
            }
            if oldCount == 0 { oldStart -= 1 }
            if newCount == 0 { newStart -= 1 }
            // As diff prints a range: "start,count", or "start" alone for one line.
            func range(_ start: Int, _ count: Int) -> String { count == 1 ? "\(start)" : "\(start),\(count)" }
            out += "@@ -\(range(oldStart, oldCount)) +\(range(newStart, newCount)) @@\n" + body
            i = hi + 1
        }
        return out
    }

    /// A file name for a `---`/`+++` header, C-quoted as GNU diff does when it holds a control
    /// character, a quote or a backslash (a newline in a name must not start a header line).
    public static func quoted(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0x22 || $0 == 0x5C }) else { return name }
        var out: [UInt8] = [0x22]
        for byte in name.utf8 {
            switch byte {
            case 0x0A: out += Array("\\n".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0x22, 0x5C: out += [0x5C, byte]
            case 0..<0x20, 0x7F: out += Array(("\\" + String(repeating: "0", count: 3 - String(byte, radix: 8).count) + String(byte, radix: 8)).utf8)
            default: out.append(byte)
            }
        }
        return String(decoding: out + [0x22], as: UTF8.self)
    }

    /// A line as printed: with its newline, or with one added and the marker diff prints.
    static func line(_ s: Line) -> String {
        let text = String(decoding: s, as: UTF8.self)
        return s.last == 0x0A ? text : text + "\n\\ No newline at end of file\n"
    }

    /// The edit script from `a` to `b`.
    static func script(_ a: [Line], _ b: [Line]) -> [Edit] {
        // Common prefix and suffix first: most edits touch a small middle.
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let x = Array(a[prefix..<(a.count - suffix)]), y = Array(b[prefix..<(b.count - suffix)])
        var edits = (0..<prefix).map { Edit.same($0, $0) }
        for e in middle(x, y) {
            switch e {
            case .same(let i, let j): edits.append(.same(i + prefix, j + prefix))
            case .delete(let i): edits.append(.delete(i + prefix))
            case .insert(let j): edits.append(.insert(j + prefix))
            }
        }
        for k in 0..<suffix { edits.append(.same(a.count - suffix + k, b.count - suffix + k)) }
        return edits
    }

    /// Myers's forward search, keeping each round's frontier to walk the path back.
    static func middle(_ a: [Line], _ b: [Line]) -> [Edit] {
        let n = a.count, m = b.count
        if n == 0 { return (0..<m).map { .insert($0) } }
        if m == 0 { return (0..<n).map { .delete($0) } }
        let offset = n + m
        var v = [Int](repeating: 0, count: 2 * offset + 2)
        // Round d's starting frontier, diagonals -d...d (what the walk back reads): memory
        // grows as d², about 32 MB at maxEdits.
        var trace: [[Int]] = []
        var found = false
        search: for d in 0...min(n + m, maxEdits) {
            trace.append(Array(v[(offset - d)...(offset + d)]))
            for k in stride(from: -d, through: d, by: 2) {
                var x = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])) ? v[offset + k + 1] : v[offset + k - 1] + 1
                var y = x - k
                while x < n, y < m, a[x] == b[y] { x += 1; y += 1 }
                v[offset + k] = x
                if x >= n && y >= m { found = true; break search }
            }
        }
        guard found else { return (0..<n).map { .delete($0) } + (0..<m).map { .insert($0) } }
        // Back from (n, m) through each round's frontier.
        var edits: [Edit] = []
        var x = n, y = m
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let frontier = trace[d]
            func v(_ k: Int) -> Int { frontier[k + d] }
            let k = x - y
            let previousK = (k == -d || (k != d && v(k - 1) < v(k + 1))) ? k + 1 : k - 1
            let previousX = d == 0 ? 0 : v(previousK)
            let previousY = previousX - previousK
            while x > previousX && y > previousY {
                x -= 1; y -= 1
                edits.append(.same(x, y))
            }
            if d > 0 {
                if x == previousX { y -= 1; edits.append(.insert(y)) } else { x -= 1; edits.append(.delete(x)) }
            }
        }
        return edits.reversed()
    }
}
