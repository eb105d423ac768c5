/// A set of Unicode scalars: what a class, an escape like `\d` or a literal matches.
struct ScalarSet: Sendable, Equatable {
    enum Item: Sendable, Equatable {
        case range(UInt32, UInt32)
        case digit, notDigit, word, notWord, space, notSpace
        /// General categories as a mask of `ScalarSet.bit(_:)`; `negated` for `\P{…}`.
        case categories(mask: UInt64, negated: Bool)
        case binaryProperty(BinaryProperty, negated: Bool)
    }

    enum BinaryProperty: Sendable, Equatable {
        case any, ascii, assigned, alphabetic, whiteSpace, uppercase, lowercase
    }

    var items: [Item]
    var negated = false

    static func scalar(_ s: UInt32) -> ScalarSet { ScalarSet(items: [.range(s, s)]) }
    /// `.`: anything but a line terminator.
    static let dot = ScalarSet(items: [.range(0x0A, 0x0A), .range(0x0D, 0x0D), .range(0x2028, 0x2029)], negated: true)

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        var found = false
        for item in items where Self.item(item, contains: scalar) {
            found = true
            break
        }
        return found != negated
    }

    static func item(_ item: Item, contains scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        switch item {
        case .range(let lo, let hi): return v >= lo && v <= hi
        case .digit: return isDigit(v)
        case .notDigit: return !isDigit(v)
        case .word: return isWord(v)
        case .notWord: return !isWord(v)
        case .space: return isSpace(v)
        case .notSpace: return !isSpace(v)
        case .categories(let mask, let negated):
            return (mask & bit(scalar.properties.generalCategory) != 0) != negated
        case .binaryProperty(let property, let negated):
            let p = scalar.properties
            let has: Bool
            switch property {
            case .any: has = true
            case .ascii: has = v < 0x80
            case .assigned: has = p.generalCategory != .unassigned
            case .alphabetic: has = p.isAlphabetic
            case .whiteSpace: has = p.isWhitespace
            case .uppercase: has = p.isUppercase
            case .lowercase: has = p.isLowercase
            }
            return has != negated
        }
    }

    static func isDigit(_ v: UInt32) -> Bool { v >= 0x30 && v <= 0x39 }

    /// ECMA-262's word characters (without `i` and `u` together): ASCII letters, digits, `_`.
    static func isWord(_ v: UInt32) -> Bool {
        (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) || isDigit(v) || v == 0x5F
    }

    /// ECMA-262's WhiteSpace and LineTerminator: `\s`.
    static func isSpace(_ v: UInt32) -> Bool {
        switch v {
        case 0x09...0x0D, 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF: return true
        default: return false
        }
    }

    static func bit(_ category: Unicode.GeneralCategory) -> UInt64 {
        let index: Int
        switch category {
        case .uppercaseLetter: index = 0
        case .lowercaseLetter: index = 1
        case .titlecaseLetter: index = 2
        case .modifierLetter: index = 3
        case .otherLetter: index = 4
        case .nonspacingMark: index = 5
        case .spacingMark: index = 6
        case .enclosingMark: index = 7
        case .decimalNumber: index = 8
        case .letterNumber: index = 9
        case .otherNumber: index = 10
        case .connectorPunctuation: index = 11
        case .dashPunctuation: index = 12
        case .openPunctuation: index = 13
        case .closePunctuation: index = 14
        case .initialPunctuation: index = 15
        case .finalPunctuation: index = 16
        case .otherPunctuation: index = 17
        case .mathSymbol: index = 18
        case .currencySymbol: index = 19
        case .modifierSymbol: index = 20
        case .otherSymbol: index = 21
        case .spaceSeparator: index = 22
        case .lineSeparator: index = 23
        case .paragraphSeparator: index = 24
        case .control: index = 25
        case .format: index = 26
        case .surrogate: index = 27
        case .privateUse: index = 28
        case .unassigned: index = 29
        @unknown default: index = 29
        }
        return 1 << UInt64(index)
    }

    /// The general categories `\p{…}` accepts, by short and long name (ECMA-262 table
    /// "Value aliases and canonical values for the Unicode property General_Category").
    static let categoryNames: [String: UInt64] = {
        let c: [(String, String, [Unicode.GeneralCategory])] = [
            ("L", "Letter", [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter]),
            ("LC", "Cased_Letter", [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter]),
            ("Lu", "Uppercase_Letter", [.uppercaseLetter]), ("Ll", "Lowercase_Letter", [.lowercaseLetter]),
            ("Lt", "Titlecase_Letter", [.titlecaseLetter]), ("Lm", "Modifier_Letter", [.modifierLetter]),
            ("Lo", "Other_Letter", [.otherLetter]),
            ("M", "Mark", [.nonspacingMark, .spacingMark, .enclosingMark]),
            ("Mn", "Nonspacing_Mark", [.nonspacingMark]), ("Mc", "Spacing_Mark", [.spacingMark]),
            ("Me", "Enclosing_Mark", [.enclosingMark]),
            ("N", "Number", [.decimalNumber, .letterNumber, .otherNumber]),
            ("Nd", "Decimal_Number", [.decimalNumber]), ("Nl", "Letter_Number", [.letterNumber]),
            ("No", "Other_Number", [.otherNumber]),
            ("P", "Punctuation", [.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                                  .initialPunctuation, .finalPunctuation, .otherPunctuation]),
            ("Pc", "Connector_Punctuation", [.connectorPunctuation]), ("Pd", "Dash_Punctuation", [.dashPunctuation]),
            ("Ps", "Open_Punctuation", [.openPunctuation]), ("Pe", "Close_Punctuation", [.closePunctuation]),
            ("Pi", "Initial_Punctuation", [.initialPunctuation]), ("Pf", "Final_Punctuation", [.finalPunctuation]),
            ("Po", "Other_Punctuation", [.otherPunctuation]),
            ("S", "Symbol", [.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol]),
            ("Sm", "Math_Symbol", [.mathSymbol]), ("Sc", "Currency_Symbol", [.currencySymbol]),
            ("Sk", "Modifier_Symbol", [.modifierSymbol]), ("So", "Other_Symbol", [.otherSymbol]),
            ("Z", "Separator", [.spaceSeparator, .lineSeparator, .paragraphSeparator]),
            ("Zs", "Space_Separator", [.spaceSeparator]), ("Zl", "Line_Separator", [.lineSeparator]),
            ("Zp", "Paragraph_Separator", [.paragraphSeparator]),
            ("C", "Other", [.control, .format, .surrogate, .privateUse, .unassigned]),
            ("Cc", "Control", [.control]), ("Cf", "Format", [.format]), ("Cs", "Surrogate", [.surrogate]),
            ("Co", "Private_Use", [.privateUse]), ("Cn", "Unassigned", [.unassigned]),
        ]
        var names: [String: UInt64] = [:]
        for (short, long, categories) in c {
            let mask = categories.reduce(UInt64(0)) { $0 | bit($1) }
            names[short] = mask
            names[long] = mask
        }
        // ECMA-262's other aliases.
        names["Combining_Mark"] = names["M"]
        names["digit"] = names["Nd"]
        names["punct"] = names["P"]
        names["cntrl"] = names["Cc"]
        return names
    }()

    static let binaryPropertyNames: [String: BinaryProperty] = [
        "Any": .any, "ASCII": .ascii, "Assigned": .assigned, "Alphabetic": .alphabetic, "Alpha": .alphabetic,
        "White_Space": .whiteSpace, "space": .whiteSpace, "Uppercase": .uppercase, "Upper": .uppercase,
        "Lowercase": .lowercase, "Lower": .lowercase,
    ]
}
