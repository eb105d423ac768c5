/// A Python package version per PEP 440 (the "Version scheme" specification), parsed with the
/// permissive normalisation rules of PEP 440 §"Normalization" (as implemented by `packaging`).
///
/// Ordering follows PEP 440: epoch, release (trailing zeros insignificant), then
/// dev < pre (a < b < rc) < final < post, with `.devN` sorting before the segment it
/// is attached to, and local versions sorting after their public version.
public struct PEP440Version: Comparable, Sendable, CustomStringConvertible {
    public enum PreReleaseKind: Int, Comparable, Sendable {
        case alpha = 0, beta = 1, releaseCandidate = 2
        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    /// One dot-separated segment of a local version label.
    enum LocalSegment: Sendable, Equatable {
        case number(Natural)
        case text([UInt8])  // lower-cased ASCII alphanumerics
    }

    let epoch: Natural
    let release: [Natural]
    let pre: (kind: PreReleaseKind, number: Natural)?
    let post: Natural?
    let dev: Natural?
    let local: [LocalSegment]?

    public init?(_ text: String) {
        let bytes = Array(trimmedBytes(text).map(asciiLower))
        var p = Parser(bytes: bytes)
        guard let parsed = p.parse() else { return nil }
        self = parsed
    }

    fileprivate init(epoch: Natural, release: [Natural], pre: (PreReleaseKind, Natural)?,
                     post: Natural?, dev: Natural?, local: [LocalSegment]?) {
        self.epoch = epoch
        self.release = release
        self.pre = pre.map { (kind: $0.0, number: $0.1) }
        self.post = post
        self.dev = dev
        self.local = local
    }

    /// The normalised form, e.g. `1!2.0rc1.post3.dev4+ubuntu.1`.
    public var description: String {
        var s = epoch.isZero ? "" : "\(epoch)!"
        s += release.map(\.description).joined(separator: ".")
        if let pre {
            switch pre.kind {
            case .alpha: s += "a"
            case .beta: s += "b"
            case .releaseCandidate: s += "rc"
            }
            s += pre.number.description
        }
        if let post { s += ".post\(post)" }
        if let dev { s += ".dev\(dev)" }
        if let local {
            s += "+" + local.map {
                switch $0 {
                case .number(let n): return n.description
                case .text(let t): return String(decoding: t, as: UTF8.self)
                }
            }.joined(separator: ".")
        }
        return s
    }

    public var isPreRelease: Bool { pre != nil || dev != nil }

    // MARK: Ordering

    public static func == (a: PEP440Version, b: PEP440Version) -> Bool { a.compare(to: b) == .orderedSame }
    public static func < (a: PEP440Version, b: PEP440Version) -> Bool { a.compare(to: b) == .orderedAscending }

    public func compare(to other: PEP440Version) -> ComparisonResult {
        let e = compare3(epoch, other.epoch)
        if e != .orderedSame { return e }
        // Release: trailing zeros are insignificant, i.e. pad the shorter one with zeros.
        for i in 0..<max(release.count, other.release.count) {
            let a = i < release.count ? release[i] : .zero
            let b = i < other.release.count ? other.release[i] : .zero
            let r = compare3(a, b)
            if r != .orderedSame { return r }
        }
        let p = compareBounded(preKey, other.preKey)
        if p != .orderedSame { return p }
        let q = compareBounded(post.map { Bounded.value($0) } ?? .negativeInfinity,
                               other.post.map { Bounded.value($0) } ?? .negativeInfinity)
        if q != .orderedSame { return q }
        let d = compareBounded(dev.map { Bounded.value($0) } ?? .positiveInfinity,
                               other.dev.map { Bounded.value($0) } ?? .positiveInfinity)
        if d != .orderedSame { return d }
        return Self.compareLocal(local, other.local)
    }

    private enum Bounded<T: Comparable>: Comparable {
        case negativeInfinity
        case value(T)
        case positiveInfinity
    }

    private struct PreKey: Comparable {
        let kind: PreReleaseKind
        let number: Natural
        static func < (a: PreKey, b: PreKey) -> Bool {
            (a.kind, a.number) < (b.kind, b.number)
        }
    }

    /// As in `packaging`: a dev release without pre/post sorts before any pre-release of the
    /// same release (`1.0.dev1 < 1.0a1`); a version without a pre-release sorts after all of them.
    private var preKey: Bounded<PreKey> {
        if let pre { return .value(PreKey(kind: pre.kind, number: pre.number)) }
        if post == nil && dev != nil { return .negativeInfinity }
        return .positiveInfinity
    }

    private func compareBounded<T>(_ a: Bounded<T>, _ b: Bounded<T>) -> ComparisonResult {
        compare3(a, b)
    }

    /// PEP 440 local version ordering: absent < present; segment-wise, numeric segments compare
    /// numerically and sort after alphanumeric ones (compared lexically); when one label is a
    /// prefix of the other, the shorter sorts first.
    private static func compareLocal(_ a: [LocalSegment]?, _ b: [LocalSegment]?) -> ComparisonResult {
        switch (a, b) {
        case (nil, nil): return .orderedSame
        case (nil, _): return .orderedAscending
        case (_, nil): return .orderedDescending
        case let (a?, b?):
            for (x, y) in zip(a, b) {
                let r: ComparisonResult
                switch (x, y) {
                case let (.number(m), .number(n)): r = compare3(m, n)
                case (.number, .text): r = .orderedDescending
                case (.text, .number): r = .orderedAscending
                case let (.text(s), .text(t)): r = compareBytes(s[...], t[...])
                }
                if r != .orderedSame { return r }
            }
            return compare3(a.count, b.count)
        }
    }
}

// MARK: - Parser

/// A hand-written equivalent of PEP 440's `VERSION_PATTERN` (Appendix B), applied to a
/// lower-cased, whitespace-trimmed string. Optional groups restore the position when they
/// do not match, which is exactly the backtracking the regular expression needs.
private struct Parser {
    let bytes: [UInt8]
    var pos = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { pos >= bytes.count }
    func peek(_ offset: Int = 0) -> UInt8? {
        pos + offset < bytes.count ? bytes[pos + offset] : nil
    }

    mutating func digits() -> Natural? {
        let start = pos
        while let c = peek(), isDigit(c) { pos += 1 }
        return pos > start ? Natural(ascii: bytes[start..<pos]) : nil
    }

    mutating func separator() {
        if let c = peek(), c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") {
            pos += 1
        }
    }

    mutating func literal(_ s: String) -> Bool {
        let lit = Array(s.utf8)
        guard pos + lit.count <= bytes.count, Array(bytes[pos..<pos + lit.count]) == lit else { return false }
        pos += lit.count
        return true
    }

    /// Tries the alternatives in order (longest spellings first, as in the PEP's regex).
    mutating func oneOf(_ options: [String]) -> String? {
        for o in options where literal(o) { return o }
        return nil
    }

    mutating func parse() -> PEP440Version? {
        if peek() == UInt8(ascii: "v") { pos += 1 }

        // Epoch: digits followed by '!'; otherwise those digits start the release.
        var epoch = Natural.zero
        let save = pos
        if let n = digits(), peek() == UInt8(ascii: "!") {
            epoch = n
            pos += 1
        } else {
            pos = save
        }

        // Release: N(.N)*
        guard let first = digits() else { return nil }
        var release = [first]
        while peek() == UInt8(ascii: "."), let c = peek(1), isDigit(c) {
            pos += 1
            release.append(digits()!)
        }

        // Pre-release: [-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?N?
        var pre: (PEP440Version.PreReleaseKind, Natural)?
        var mark = pos
        separator()
        if let label = oneOf(["alpha", "a", "beta", "b", "preview", "pre", "c", "rc"]) {
            separator()
            let kind: PEP440Version.PreReleaseKind
            switch label {
            case "alpha", "a": kind = .alpha
            case "beta", "b": kind = .beta
            default: kind = .releaseCandidate
            }
            pre = (kind, digits() ?? .zero)
        } else {
            pos = mark
        }

        // Post-release: -N | [-_.]?(post|rev|r)[-_.]?N?
        var post: Natural?
        mark = pos
        if peek() == UInt8(ascii: "-"), let c = peek(1), isDigit(c) {
            pos += 1
            post = digits()
        } else {
            separator()
            if oneOf(["post", "rev", "r"]) != nil {
                separator()
                post = digits() ?? .zero
            } else {
                pos = mark
            }
        }

        // Dev release: [-_.]?dev[-_.]?N?
        var dev: Natural?
        mark = pos
        separator()
        if literal("dev") {
            separator()
            dev = digits() ?? .zero
        } else {
            pos = mark
        }

        // Local version: +[a-z0-9]+([-_.][a-z0-9]+)*
        var local: [PEP440Version.LocalSegment]?
        if peek() == UInt8(ascii: "+") {
            pos += 1
            var segments: [PEP440Version.LocalSegment] = []
            while true {
                let start = pos
                while let c = peek(), isLower(c) || isDigit(c) { pos += 1 }
                guard pos > start else { return nil }
                let seg = bytes[start..<pos]
                if let n = Natural(ascii: seg) {
                    segments.append(.number(n))
                } else {
                    segments.append(.text(Array(seg)))
                }
                guard let c = peek() else { break }
                guard c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") else { return nil }
                pos += 1
            }
            local = segments
        }

        guard atEnd else { return nil }
        return PEP440Version(epoch: epoch, release: release, pre: pre, post: post, dev: dev, local: local)
    }
}
