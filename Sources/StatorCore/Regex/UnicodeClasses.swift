/// A set of Unicode general categories, for `\pL`, `\p{Lu}`, `\PN`, `\p{^Nd}` and `\p{Any}`.
struct UnicodeCategories: Sendable, Equatable {
    /// One bit per `Unicode.GeneralCategory`, in `Self.order`.
    private var bits: UInt64 = 0
    private var everything = false

    /// The categories Go names (`unicode.Categories`): one letter for a major class (its
    /// two-letter ones; `C` is `Cc Cf Co Cs`, without the unassigned `Cn`), two letters for one.
    /// - Returns: nil for a name Go does not know as a category (a script name such as
    ///   `Greek` among them: see docs/mapping.md).
    init?(goName name: String) {
        if name == "Any" {
            everything = true
            return
        }
        let matches = Self.names.enumerated().filter { name.count == 1 ? $0.element.hasPrefix(name) : $0.element == name }
        let chosen = name == "C" ? matches.filter { $0.element != "Cn" } : matches
        guard !chosen.isEmpty, name.count <= 2 else { return nil }
        for (index, _) in chosen { bits |= 1 << UInt64(index) }
    }

    /// Exactly the categories named by their short names.
    private init(shortNames: [String]) {
        for (index, name) in Self.names.enumerated() where shortNames.contains(name) { bits |= 1 << UInt64(index) }
    }

    /// `Cn`, the unassigned code points (`\p{Assigned}` is its negation).
    static let unassigned = UnicodeCategories(shortNames: ["Cn"])
    /// `LC`: `Lu`, `Ll` and `Lt`.
    static let casedLetters = UnicodeCategories(shortNames: ["Lu", "Ll", "Lt"])

    func contains(_ rune: UInt32) -> Bool {
        if everything { return rune <= 0x10FFFF }
        guard let scalar = Unicode.Scalar(rune) else { return false }  // a surrogate: no category Go has
        guard let index = Self.order.firstIndex(of: scalar.properties.generalCategory) else { return false }
        return bits & (1 << UInt64(index)) != 0
    }

    /// The Unicode short names, in the order of `order`.
    private static let names = [
        "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po",
        "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn",
    ]

    private static let order: [Unicode.GeneralCategory] = [
        .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .nonspacingMark,
        .spacingMark, .enclosingMark, .decimalNumber, .letterNumber, .otherNumber, .connectorPunctuation,
        .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
        .otherPunctuation, .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol, .spaceSeparator,
        .lineSeparator, .paragraphSeparator, .control, .format, .surrogate, .privateUse, .unassigned,
    ]
}

/// The ASCII classes of Go's syntax: Perl's `\d \s \w` and POSIX's `[:name:]`.
enum ASCIIClasses {
    static func perl(_ letter: UInt8) -> [ClosedRange<UInt32>]? {
        switch letter {
        case UInt8(ascii: "d"), UInt8(ascii: "D"): return [0x30...0x39]
        case UInt8(ascii: "s"), UInt8(ascii: "S"): return [0x09...0x0A, 0x0C...0x0D, 0x20...0x20]
        case UInt8(ascii: "w"), UInt8(ascii: "W"): return [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
        default: return nil
        }
    }

    static func posix(_ name: String) -> [ClosedRange<UInt32>]? {
        switch name {
        case "alnum": return [0x30...0x39, 0x41...0x5A, 0x61...0x7A]
        case "alpha": return [0x41...0x5A, 0x61...0x7A]
        case "ascii": return [0x00...0x7F]
        case "blank": return [0x09...0x09, 0x20...0x20]
        case "cntrl": return [0x00...0x1F, 0x7F...0x7F]
        case "digit": return [0x30...0x39]
        case "graph": return [0x21...0x7E]
        case "lower": return [0x61...0x7A]
        case "print": return [0x20...0x7E]
        case "punct": return [0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E]
        case "space": return [0x09...0x0D, 0x20...0x20]
        case "upper": return [0x41...0x5A]
        case "word": return [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
        case "xdigit": return [0x30...0x39, 0x41...0x46, 0x61...0x66]
        default: return nil
        }
    }

    /// `[0-9A-Za-z_]`, what `\b` looks at.
    static func isWord(_ rune: UInt32) -> Bool {
        (rune >= 0x30 && rune <= 0x39) || (rune >= 0x41 && rune <= 0x5A) || rune == 0x5F || (rune >= 0x61 && rune <= 0x7A)
    }
}

/// Case folding for `(?i)`: the runes that match one another, as Go's simple folding orbits
/// (`unicode.SimpleFold`) group them: a letter, its simple lower-, upper- and title-case
/// mappings, and the few extra members Go's orbits have (K and the Kelvin sign, S and the
/// long s, Å and the Ångström sign, Ω and the Ohm sign, µ and μ, and the Greek symbol forms).
enum CaseFolding {
    static func orbit(of rune: UInt32) -> [UInt32] {
        if rune < 0x80 {
            if rune >= 0x41 && rune <= 0x5A { return extra(rune, [rune, rune + 0x20]) }
            if rune >= 0x61 && rune <= 0x7A { return extra(rune, [rune - 0x20, rune]) }
            return [rune]
        }
        // Dotless ı and dotted İ fold to nothing in Go (CaseFolding.txt has only Turkic rules for them).
        if rune == 0x130 || rune == 0x131 { return [rune] }
        guard let scalar = Unicode.Scalar(rune) else { return [rune] }
        var runes = [rune]
        let properties = scalar.properties
        for mapping in [properties.lowercaseMapping, properties.uppercaseMapping, properties.titlecaseMapping] {
            let scalars = mapping.unicodeScalars
            if scalars.count == 1, let first = scalars.first, !runes.contains(first.value) { runes.append(first.value) }
        }
        // The orbit also holds what maps to the same lower case (the Kelvin sign's `k` gives `K`).
        for other in runes {
            guard let s = Unicode.Scalar(other) else { continue }
            let upper = s.properties.uppercaseMapping.unicodeScalars
            if upper.count == 1, let u = upper.first, !runes.contains(u.value), u.value != 0x130 { runes.append(u.value) }
        }
        return extra(rune, runes)
    }

    /// Orbit members no simple mapping of the rune itself reaches.
    private static let orbits: [[UInt32]] = [
        [0x4B, 0x6B, 0x212A], [0x53, 0x73, 0x17F], [0xC5, 0xE5, 0x212B], [0x3A9, 0x3C9, 0x2126],
        [0xB5, 0x39C, 0x3BC], [0x392, 0x3B2, 0x3D0], [0x395, 0x3B5, 0x3F5], [0x398, 0x3B8, 0x3D1, 0x3F4],
        [0x399, 0x3B9, 0x345, 0x1FBE], [0x39A, 0x3BA, 0x3F0], [0x3A0, 0x3C0, 0x3D6], [0x3A1, 0x3C1, 0x3F1],
        [0x3A3, 0x3C2, 0x3C3], [0x3A6, 0x3C6, 0x3D5], [0x1E60, 0x1E61, 0x1E9B], [0xDF, 0x1E9E],
        // Cyrillic letter variants that fold to plain letters (CaseFolding.txt 1C80-1C88).
        [0x412, 0x432, 0x1C80], [0x414, 0x434, 0x1C81], [0x41E, 0x43E, 0x1C82], [0x421, 0x441, 0x1C83],
        [0x422, 0x442, 0x1C84, 0x1C85], [0x42A, 0x44A, 0x1C86], [0x462, 0x463, 0x1C87], [0xA64A, 0xA64B, 0x1C88],
    ]

    private static func extra(_ rune: UInt32, _ runes: [UInt32]) -> [UInt32] {
        guard let orbit = orbits.first(where: { $0.contains(rune) }) else { return runes }
        var all = runes
        for r in orbit where !all.contains(r) { all.append(r) }
        return all
    }
}
