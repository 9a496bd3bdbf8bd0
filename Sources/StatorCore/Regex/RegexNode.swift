/// A parsed regular expression (Go's `regexp/syntax` tree, reduced to what the compiler
/// needs). Flags are already applied: a literal or class knows whether it folds case, `.`
/// whether it matches `\n`, and `^`/`$` whether they are line or text anchors.
indirect enum RegexNode: Sendable, Equatable {
    /// Matches the empty string.
    case empty
    /// One rune; `foldCase` under `(?i)`.
    case literal(UInt32, foldCase: Bool)
    case runeClass(RuneClass)
    /// `.` under `(?s)`.
    case anyRune
    /// `.`: any rune but `\n`.
    case anyRuneNotNewline
    case assertion(RegexAssertion)
    /// A group: `index` counts from 1 in the order of the opening parentheses.
    case capture(index: Int, name: String?, RegexNode)
    /// `min` to `max` copies (`max` nil: no bound); `greedy` prefers more.
    case `repeat`(RegexNode, min: Int, max: Int?, greedy: Bool)
    case concatenation([RegexNode])
    /// Tried in order: the first alternative that leads to a match wins (leftmost-first).
    case alternation([RegexNode])
}

/// The empty-width assertions.
enum RegexAssertion: UInt8, Sendable {
    /// `^` under `(?m)`: at the start of the text or after `\n`.
    case beginLine
    /// `$` under `(?m)`: at the end of the text or before `\n`.
    case endLine
    /// `\A`, and `^` without `(?m)`.
    case beginText
    /// `\z`, and `$` without `(?m)`: only at the very end (Go's `$` never matches before a
    /// final `\n`).
    case endText
    /// `\b`: between an ASCII word byte (`[0-9A-Za-z_]`) and anything else, as Go.
    case wordBoundary
    /// `\B`.
    case noWordBoundary
}

/// A set of runes: the union of its items, folded over case when `foldCase`, then negated
/// when `negated`. Perl and POSIX classes are ASCII, as in Go; `\p` classes use the Unicode
/// general categories of the toolchain's Unicode tables.
struct RuneClass: Sendable, Equatable {
    enum Item: Sendable, Equatable {
        /// Runes `lower...upper`.
        case range(UInt32, UInt32)
        /// Runes in (or, negated, not in) any of the general categories; `any` is every rune.
        case categories(UnicodeCategories, negated: Bool)
        /// Runes in (or, negated, not in) a list of ranges: `\D`, `[:^alpha:]` inside a class.
        case ranges([ClosedRange<UInt32>], negated: Bool)
    }

    var items: [Item] = []
    var negated = false
    var foldCase = false

    /// As Go builds a class under `(?i)`: each item's positive set is folded first, then a
    /// negated item (`\D`, `[:^upper:]`, `\PL`) negated, then the whole class when `[^...]`.
    func contains(_ rune: UInt32) -> Bool {
        foldCase ? contains(anyOf: CaseFolding.orbit(of: rune)) : contains(anyOf: CollectionOfOne(rune))
    }

    /// Whether the class holds any of `runes` (one rune, or its folding orbit).
    private func contains(anyOf runes: some Collection<UInt32>) -> Bool {
        var found = false
        for item in items where !found {
            switch item {
            case .range(let lower, let upper):
                found = runes.contains { $0 >= lower && $0 <= upper }
            case .categories(let set, let negated):
                found = runes.contains { set.contains($0) } != negated
            case .ranges(let ranges, let negated):
                found = runes.contains { r in ranges.contains { $0.contains(r) } } != negated
            }
        }
        return found != negated
    }
}
