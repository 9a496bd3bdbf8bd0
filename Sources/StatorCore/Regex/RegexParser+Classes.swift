/// The parts of `RegexParser` that read single runes and classes: escapes, `[...]`,
/// Perl, POSIX and Unicode classes.
extension RegexParser {
    /// `\pX`, `\p{Name}`, `\PX`, `\P{Name}` or a Perl class (`\d \D \s \S \w \W`) at the cursor,
    /// added to `cls`.
    /// - Returns: whether there was one.
    mutating func parseClassEscape(into cls: inout RuneClass) throws(RegexSyntaxError) -> Bool {
        guard peek() == Self.ascii("\\"), let letter = peek(1) else { return false }
        if letter == Self.ascii("p") || letter == Self.ascii("P") {
            let start = position
            var negated = letter == Self.ascii("P")
            guard let first = peek(2) else { throw RegexSyntaxError(code: .invalidCharRange, expression: text(start)) }
            var name: String
            if first == Self.ascii("{") {
                guard let end = runes[(position + 2)...].firstIndex(of: Self.ascii("}")) else {
                    throw RegexSyntaxError(code: .invalidCharRange, expression: text(start))
                }
                name = text(position + 3, end)
                position = end + 1
            } else {
                name = text(position + 2, position + 3)
                position += 3
            }
            if name.hasPrefix("^") {
                negated.toggle()
                name.removeFirst()
            }
            guard let item = Self.unicodeItem(name, negated: negated) else {
                throw RegexSyntaxError(code: .invalidCharRange, expression: text(start, position))
            }
            cls.items.append(item)
            return true
        }
        guard letter < 0x80, let ranges = ASCIIClasses.perl(UInt8(letter)) else { return false }
        let negated = letter == Self.ascii("D") || letter == Self.ascii("S") || letter == Self.ascii("W")
        cls.items.append(.ranges(ranges, negated: negated))
        position += 2
        return true
    }

    /// The class a `\p` name stands for, as Go's `unicodeTable` reads names: categories,
    /// `Any`, `Assigned`, `ASCII` and `LC`, and the long category names (`Letter`,
    /// `Uppercase_Letter`...), ignoring case, `_`, `-` and spaces past the first letter.
    private static func unicodeItem(_ name: String, negated: Bool) -> RuneClass.Item? {
        let canonical = canonicalName(name)
        switch canonical {
        case "Ascii": return .ranges([0...0x7F], negated: negated)
        case "Assigned": return .categories(UnicodeCategories.unassigned, negated: !negated)
        case "Lc": return .categories(UnicodeCategories.casedLetters, negated: negated)
        default: break
        }
        if let set = UnicodeCategories(goName: canonical) { return .categories(set, negated: negated) }
        if let short = longCategoryNames[canonical] {
            if short == "LC" { return .categories(UnicodeCategories.casedLetters, negated: negated) }
            if let set = UnicodeCategories(goName: short) { return .categories(set, negated: negated) }
        }
        return nil
    }

    /// Go's `canonicalName`: a capital, then lower case, without `_`, `-` and spaces
    /// ("uppercase_letter" and "UPPERCASE LETTER" are "Uppercaseletter"; "Lu" stays "Lu").
    private static func canonicalName(_ name: String) -> String {
        var out = String.UnicodeScalarView()
        for c in name.unicodeScalars where c != "_" && c != "-" && c != " " {
            var value = c.value
            if out.isEmpty {
                if value >= 0x61 && value <= 0x7A { value -= 0x20 }
            } else if value >= 0x41 && value <= 0x5A {
                value += 0x20
            }
            out.append(Unicode.Scalar(value) ?? c)
        }
        return String(out)
    }

    /// Unicode's long category names (Go's `unicode.CategoryAliases`), canonical form.
    private static let longCategoryNames: [String: String] = [
        "Letter": "L", "Casedletter": "LC", "Uppercaseletter": "Lu", "Lowercaseletter": "Ll", "Titlecaseletter": "Lt",
        "Modifierletter": "Lm", "Otherletter": "Lo", "Mark": "M", "Combiningmark": "M", "Nonspacingmark": "Mn",
        "Spacingmark": "Mc", "Enclosingmark": "Me", "Number": "N", "Decimalnumber": "Nd", "Digit": "Nd",
        "Letternumber": "Nl", "Othernumber": "No", "Punctuation": "P", "Punct": "P", "Connectorpunctuation": "Pc",
        "Dashpunctuation": "Pd", "Openpunctuation": "Ps", "Closepunctuation": "Pe", "Initialpunctuation": "Pi",
        "Finalpunctuation": "Pf", "Otherpunctuation": "Po", "Symbol": "S", "Mathsymbol": "Sm", "Currencysymbol": "Sc",
        "Modifiersymbol": "Sk", "Othersymbol": "So", "Separator": "Z", "Spaceseparator": "Zs", "Lineseparator": "Zl",
        "Paragraphseparator": "Zp", "Other": "C", "Control": "Cc", "Cntrl": "Cc", "Format": "Cf", "Surrogate": "Cs",
        "Privateuse": "Co",
    ]

    /// One escaped rune at the cursor (`\n`, `\x41`, `\x{263a}`, `\101`, `\.`).
    mutating func parseEscapedRune() throws(RegexSyntaxError) -> UInt32 {
        let start = position
        position += 1  // the backslash
        guard position < runes.count else { throw RegexSyntaxError(code: .trailingBackslash, expression: "") }
        let c = runes[position]
        position += 1
        func isOctal(_ r: UInt32?) -> Bool { r.map { $0 >= 0x30 && $0 <= 0x37 } ?? false }
        func hex(_ r: UInt32) -> UInt32? {
            switch r {
            case 0x30...0x39: return r - 0x30
            case 0x41...0x46: return r - 0x41 + 10
            case 0x61...0x66: return r - 0x61 + 10
            default: return nil
            }
        }
        switch c {
        case 0x31...0x37 where !isOctal(peek()):
            break  // `\1` alone is a backreference, which Go does not have
        case 0x30...0x37:
            var value = c - 0x30
            for _ in 1..<3 where isOctal(peek()) {
                value = value * 8 + ((peek() ?? 0x30) - 0x30)
                position += 1
            }
            return value
        case Self.ascii("x"):
            guard let first = peek() else { break }
            position += 1
            if first == Self.ascii("{") {
                var value: UInt32 = 0
                var digits = 0
                while let r = peek() {
                    position += 1
                    if r == Self.ascii("}") {
                        if digits == 0 { break }
                        return value
                    }
                    guard let v = hex(r) else { break }
                    value = value * 16 + v
                    digits += 1
                    if value > 0x10FFFF { break }
                }
                throw RegexSyntaxError(code: .invalidEscape, expression: text(start, position))
            }
            guard let second = peek() else { throw RegexSyntaxError(code: .invalidEscape, expression: text(start, position)) }
            position += 1
            guard let x = hex(first), let y = hex(second) else { break }
            return x * 16 + y
        case Self.ascii("a"): return 0x07
        case Self.ascii("f"): return 0x0C
        case Self.ascii("n"): return 0x0A
        case Self.ascii("r"): return 0x0D
        case Self.ascii("t"): return 0x09
        case Self.ascii("v"): return 0x0B
        default:
            // Escaped ASCII punctuation (and `\_`) is itself; escaped letters and digits are not.
            if c < 0x80 && !(ASCIIClasses.isWord(c) && c != 0x5F) { return c }
        }
        throw RegexSyntaxError(code: .invalidEscape, expression: text(start, position))
    }

    /// A bracketed class at the cursor (`[...]`).
    mutating func parseClass() throws(RegexSyntaxError) -> RuneClass {
        let start = position
        position += 1
        var cls = RuneClass()
        cls.foldCase = flags.foldCase
        if peek() == Self.ascii("^") {
            cls.negated = true
            position += 1
        }
        var first = true
        while position < runes.count, runes[position] != Self.ascii("]") || first {
            first = false
            // POSIX `[:alpha:]` and `[:^alpha:]`.
            if peek() == Self.ascii("["), peek(1) == Self.ascii(":"),
                let close = runes[(position + 2)...].indices.first(where: {
                    runes[$0] == Self.ascii(":") && $0 + 1 < runes.count && runes[$0 + 1] == Self.ascii("]")
                })
            {
                var name = text(position + 2, close)
                let whole = text(position, close + 2)
                let negated = name.hasPrefix("^")
                if negated { name.removeFirst() }
                guard let ranges = ASCIIClasses.posix(name) else {
                    throw RegexSyntaxError(code: .invalidCharRange, expression: whole)
                }
                cls.items.append(.ranges(ranges, negated: negated))
                position = close + 2
                continue
            }
            if try parseClassEscape(into: &cls) { continue }
            let rangeStart = position
            let lower = try parseClassRune(start: start)
            var upper = lower
            if peek() == Self.ascii("-"), let after = peek(1), after != Self.ascii("]") {
                position += 1
                upper = try parseClassRune(start: start)
                guard upper >= lower else {
                    throw RegexSyntaxError(code: .invalidCharRange, expression: text(rangeStart, position))
                }
            }
            cls.items.append(.range(lower, upper))
        }
        guard position < runes.count else { throw RegexSyntaxError(code: .missingBracket, expression: text(start)) }
        position += 1  // the `]`
        return cls
    }

    private mutating func parseClassRune(start: Int) throws(RegexSyntaxError) -> UInt32 {
        guard position < runes.count else { throw RegexSyntaxError(code: .missingBracket, expression: text(start)) }
        if runes[position] == Self.ascii("\\") { return try parseEscapedRune() }
        position += 1
        return runes[position - 1]
    }
}
