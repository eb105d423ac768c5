/// Three-way comparison result (Foundation-free stand-in for `Foundation.ComparisonResult`).
public enum ComparisonResult: Sendable, Equatable {
    case orderedAscending
    case orderedSame
    case orderedDescending

    /// The result of comparing the operands in the opposite order.
    public var reversed: ComparisonResult {
        switch self {
        case .orderedAscending: return .orderedDescending
        case .orderedSame: return .orderedSame
        case .orderedDescending: return .orderedAscending
        }
    }
}

/// Three-way compare of two `Comparable` values.
@inline(__always)
func compare3<T: Comparable>(_ a: T, _ b: T) -> ComparisonResult {
    if a < b { return .orderedAscending }
    if b < a { return .orderedDescending }
    return .orderedSame
}

/// Lexicographic byte comparison (memcmp, then length): what C's strcmp/apk_blob_sort do.
func compareBytes(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> ComparisonResult {
    var i = a.startIndex
    var j = b.startIndex
    while i < a.endIndex && j < b.endIndex {
        if a[i] != b[j] { return a[i] < b[j] ? .orderedAscending : .orderedDescending }
        i += 1
        j += 1
    }
    return compare3(a.count, b.count)
}

/// An arbitrary-precision natural number stored as its decimal digits (no leading zeros),
/// so version components of any length compare numerically without overflow.
public struct Natural: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// ASCII digits, most significant first, without leading zeros ("0" is the empty array).
    let digits: [UInt8]

    static let zero = Natural(digits: [])

    private init(digits: [UInt8]) { self.digits = digits }

    /// `bytes` must be non-empty and all ASCII digits; returns nil otherwise.
    init?<C: Collection>(ascii bytes: C) where C.Element == UInt8 {
        guard !bytes.isEmpty, bytes.allSatisfy(isDigit) else { return nil }
        self.digits = Array(bytes.drop(while: { $0 == UInt8(ascii: "0") }))
    }

    /// Parses a non-empty string of ASCII digits.
    public init?(_ text: String) { self.init(ascii: Array(text.utf8)) }

    public static func < (a: Natural, b: Natural) -> Bool {
        if a.digits.count != b.digits.count { return a.digits.count < b.digits.count }
        return a.digits.lexicographicallyPrecedes(b.digits)
    }

    var isZero: Bool { digits.isEmpty }

    public var description: String { digits.isEmpty ? "0" : String(decoding: digits, as: UTF8.self) }
}

@inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
@inline(__always) func isLower(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7A }
@inline(__always) func isUpper(_ c: UInt8) -> Bool { c >= 0x41 && c <= 0x5A }
@inline(__always) func isAlpha(_ c: UInt8) -> Bool { isLower(c) || isUpper(c) }
@inline(__always) func isAlnum(_ c: UInt8) -> Bool { isAlpha(c) || isDigit(c) }
@inline(__always) func isASCIISpace(_ c: UInt8) -> Bool {
    c == 0x20 || (c >= 0x09 && c <= 0x0D)
}
@inline(__always) func asciiLower(_ c: UInt8) -> UInt8 { isUpper(c) ? c + 0x20 : c }

/// The UTF-8 bytes of `text` with leading and trailing ASCII whitespace removed.
func trimmedBytes(_ text: String) -> ArraySlice<UInt8> {
    let bytes = Array(text.utf8)
    var lo = 0
    var hi = bytes.count
    while lo < hi && isASCIISpace(bytes[lo]) { lo += 1 }
    while hi > lo && isASCIISpace(bytes[hi - 1]) { hi -= 1 }
    return bytes[lo..<hi]
}
