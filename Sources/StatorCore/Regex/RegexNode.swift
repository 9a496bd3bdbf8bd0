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

    func contains(_ rune: UInt32) -> Bool {
        var found = itemsContain(rune)
        if !found && foldCase {
            for other in CaseFolding.orbit(of: rune) where other != rune && itemsContain(other) {
                found = true
                break
            }
        }
        return found != negated
    }

    private func itemsContain(_ rune: UInt32) -> Bool {
        for item in items {
            switch item {
            case .range(let lower, let upper):
                if rune >= lower && rune <= upper { return true }
            case .categories(let set, let negated):
                if set.contains(rune) != negated { return true }
            case .ranges(let ranges, let negated):
                if ranges.contains(where: { $0.contains(rune) }) != negated { return true }
            }
        }
        return false
    }
}
