import CordonJSON

/// A JSON number as CordonJSON holds it, compared exactly: `9007199254740993` is greater than
/// the double `9007199254740992.0`, though converting the integer to a Double would say equal.
enum Number: Sendable, Equatable {
    case int(Int64)
    case uint(UInt64)
    case double(Double)

    init?(_ value: JSON) {
        switch value {
        case .int(let n): self = .int(n)
        case .uint(let n): self = .uint(n)
        case .double(let d): self = .double(d)
        default: return nil
        }
    }

    var json: JSON {
        switch self {
        case .int(let n): return .int(n)
        case .uint(let n): return .uint(n)
        case .double(let d): return .double(d)
        }
    }

    /// JSON Schema's "integer": a number with no fractional part, whatever its spelling (1.0 is one).
    var isInteger: Bool {
        switch self {
        case .int, .uint: return true
        case .double(let d): return Self.isIntegral(d)
        }
    }

    /// Whether a Double has no fractional part. Written without `rounded()`, which calls libm's
    /// trunc: a pure module must not need libm linked (a Double of magnitude 2^52 or more has
    /// no bits below the point; below that, Int64 truncation is exact).
    static func isIntegral(_ d: Double) -> Bool {
        guard d.isFinite else { return false }
        if d.magnitude >= 4503599627370496.0 { return true }
        return Double(Int64(d)) == d
    }

    var isZero: Bool {
        switch self {
        case .int(let n): return n == 0
        case .uint(let n): return n == 0
        case .double(let d): return d == 0
        }
    }

    /// An integer as sign and magnitude, which holds both Int64 and UInt64.
    private var integer: (negative: Bool, magnitude: UInt64)? {
        switch self {
        case .int(let n): return (n < 0, n.magnitude)
        case .uint(let n): return (false, n)
        case .double: return nil
        }
    }

    private static func compareIntegers(_ a: (negative: Bool, magnitude: UInt64), _ b: (negative: Bool, magnitude: UInt64)) -> Int {
        let an = a.negative && a.magnitude != 0, bn = b.negative && b.magnitude != 0
        if an != bn { return an ? -1 : 1 }
        if a.magnitude == b.magnitude { return 0 }
        return (a.magnitude < b.magnitude) != an ? -1 : 1
    }

    /// -1, 0 or 1 as the integer `a` is below, equal to or above `d`, exactly.
    private static func compare(_ a: (negative: Bool, magnitude: UInt64), _ d: Double) -> Int {
        if d >= 18446744073709551616.0 { return -1 }  // 2^64: above every integer held here
        if d <= -18446744073709551616.0 { return 1 }
        // The floor of d as sign and magnitude (|d| < 2^64, so it converts), without libm.
        let floor: (negative: Bool, magnitude: UInt64)
        let fractional: Bool
        if d >= 0 {
            floor = (false, UInt64(d))
            fractional = Double(floor.magnitude) != d
        } else {
            let t = UInt64(-d)  // toward zero; a fractional d is below 2^53 here, so t + 1 fits
            fractional = Double(t) != -d
            floor = (true, fractional ? t + 1 : t)
        }
        let c = compareIntegers(a, floor)
        if c != 0 { return c }
        return fractional ? -1 : 0
    }

    /// -1, 0 or 1 as `a` is below, equal to or above `b`, exactly.
    static func compare(_ a: Number, _ b: Number) -> Int {
        switch (a.integer, b.integer) {
        case (let x?, let y?): return compareIntegers(x, y)
        case (let x?, nil):
            guard case .double(let d) = b else { return 0 }
            return compare(x, d)
        case (nil, let y?):
            guard case .double(let d) = a else { return 0 }
            return -compare(y, d)
        case (nil, nil):
            guard case .double(let x) = a, case .double(let y) = b else { return 0 }
            return x < y ? -1 : (x > y ? 1 : 0)
        }
    }

    /// The number as the decimal its JSON text wrote, m × 10^e with m < 10^20: for a Double, the
    /// shortest text that reads back as it (what JSON text such as 0.0001 means). Nil for an
    /// infinity.
    var decimal: (negative: Bool, mantissa: UInt64, exponent: Int)? {
        switch self {
        case .int(let n): return Self.normalized(n < 0, n.magnitude, 0)
        case .uint(let n): return Self.normalized(false, n, 0)
        case .double(let d):
            guard d.isFinite else { return nil }
            // Swift prints the shortest round-trip digits: "0.0075", "1e-08", "1.2391239123e+10".
            var mantissa: UInt64 = 0
            var exponent = 0
            var afterPoint = false
            var text = Substring(d.magnitude.description)
            if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                exponent = Int(text[text.index(after: e)...].replacing("+", with: "")) ?? 0
                text = text[..<e]
            }
            for c in text {
                if c == "." { afterPoint = true; continue }
                guard let digit = c.wholeNumberValue else { continue }
                mantissa = mantissa * 10 + UInt64(digit)
                if afterPoint { exponent -= 1 }
            }
            return Self.normalized(d < 0, mantissa, exponent)
        }
    }

    private static func normalized(_ negative: Bool, _ mantissa: UInt64, _ exponent: Int) -> (negative: Bool, mantissa: UInt64, exponent: Int) {
        var m = mantissa, e = exponent
        while m != 0 && m % 10 == 0 {
            m /= 10
            e += 1
        }
        return (negative, m, e)
    }

    /// Whether `self` is an integer multiple of `divisor` (> 0), in decimal arithmetic on the
    /// numbers as written: 0.0075 is a multiple of 0.0001 although the Doubles' quotient is
    /// 74.99999999999999, and 1e308 is not one of 0.123456789 although the quotient overflows.
    func isMultiple(of divisor: Number) -> Bool {
        guard let x = decimal, let d = divisor.decimal, d.mantissa != 0 else { return false }
        if x.mantissa == 0 { return true }
        let k = x.exponent - d.exponent
        if k >= 0 {
            // d.m | x.m × 10^k  ⇔  (d.m / gcd) has no prime factors but 2 and 5, each at most k times.
            var rest = d.mantissa / gcd(x.mantissa, d.mantissa)
            var twos = 0, fives = 0
            while rest % 2 == 0 { rest /= 2; twos += 1 }
            while rest % 5 == 0 { rest /= 5; fives += 1 }
            return rest == 1 && twos <= k && fives <= k
        }
        // d.m × 10^-k | x.m: x.m < 2^64 < 10^20, so a larger power of ten cannot divide it.
        let j = -k
        guard j < 20, x.mantissa % d.mantissa == 0 else { return false }
        var power: UInt64 = 1
        for _ in 0..<j { power *= 10 }
        return (x.mantissa / d.mantissa) % power == 0
    }

    private func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }
}
