/// A pattern Go's `regexp.Compile` would refuse, worded as Go words it:
/// "error parsing regexp: missing closing ): `(a`".
public struct RegexSyntaxError: Error, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidCharClass = "invalid character class"
        case invalidCharRange = "invalid character class range"
        case invalidEscape = "invalid escape sequence"
        case invalidNamedCapture = "invalid named capture"
        case invalidPerlOp = "invalid or unsupported Perl syntax"
        case invalidRepeatOp = "invalid nested repetition operator"
        case invalidRepeatSize = "invalid repeat count"
        case invalidUTF8 = "invalid UTF-8"
        case missingBracket = "missing closing ]"
        case missingParen = "missing closing )"
        case missingRepeatArgument = "missing argument to repetition operator"
        case trailingBackslash = "trailing backslash at end of expression"
        case unexpectedParen = "unexpected )"
        case nestingDepth = "expression nests too deeply"
        case large = "expression too large"
    }

    public var code: Code
    /// The part of the pattern at fault.
    public var expression: String

    public var description: String { "error parsing regexp: \(code.rawValue): `\(expression)`" }
}

/// Parses Go's regular expression syntax (`regexp/syntax` with the `Perl` flags, which
/// `regexp.Compile` and so statsd_exporter use) into a `RegexNode`.
///
/// Works on the pattern's runes; every error is one Go gives for the same pattern, with the
/// same text. Bounds, as Go's: a counted repetition at most 1,000 (and the product of nested
/// ones too), nesting at most 1,000 deep.
struct RegexParser {
    struct Flags {
        var foldCase = false
        /// `(?m)` clears it: `^` and `$` then match at line boundaries.
        var oneLine = true
        var dotMatchesNewline = false
        var nonGreedy = false
    }

    /// An open group on the stack.
    private struct Frame {
        var capture: Int?
        var name: String?
        /// The flags in force before the group opened, restored at its `)`.
        var outerFlags: Flags
        var alternatives: [[RegexNode]] = []
        var current: [RegexNode] = []
        /// Whether the last item of `current` was made by a repetition operator (`a**` is an error).
        var lastWasRepeat = false
        /// The operator text of that repetition, for the error.
        var lastRepeatText = ""
    }

    static let maxRepeat = 1000
    static let maxDepth = 1000

    private let pattern: String
    let runes: [UInt32]
    var position = 0
    var flags = Flags()
    private var captureCount = 0
    private(set) var names: [Int: String] = [:]

    /// Parses `pattern`.
    /// - Returns: the tree, the number of capturing groups, and the names of named ones.
    static func parse(_ pattern: String) throws(RegexSyntaxError) -> (node: RegexNode, captures: Int, names: [Int: String]) {
        var parser = RegexParser(pattern: pattern)
        let node = try parser.parseAll()
        return (node, parser.captureCount, parser.names)
    }

    private init(pattern: String) {
        self.pattern = pattern
        runes = pattern.unicodeScalars.map(\.value)
    }

    /// The pattern from rune `start` to rune `end`, for error messages.
    func text(_ start: Int, _ end: Int? = nil) -> String {
        var s = String.UnicodeScalarView()
        for r in runes[start..<min(end ?? runes.count, runes.count)] { if let u = Unicode.Scalar(r) { s.append(u) } }
        return String(s)
    }

    func peek(_ offset: Int = 0) -> UInt32? {
        position + offset < runes.count ? runes[position + offset] : nil
    }

    static func ascii(_ c: Character) -> UInt32 { c.unicodeScalars.first.map(\.value) ?? 0 }

    private mutating func parseAll() throws(RegexSyntaxError) -> RegexNode {
        var stack = [Frame(capture: nil, outerFlags: flags)]
        while position < runes.count {
            let c = runes[position]
            var madeRepeat = false
            var repeatText = ""
            switch c {
            case Self.ascii("("):
                if peek(1) == Self.ascii("?") {
                    if let opened = try parseGroupFlags() {
                        stack.append(opened)
                        guard stack.count <= Self.maxDepth else {
                            throw RegexSyntaxError(code: .nestingDepth, expression: pattern)
                        }
                    }
                } else {
                    captureCount += 1
                    stack.append(Frame(capture: captureCount, outerFlags: flags))
                    guard stack.count <= Self.maxDepth else { throw RegexSyntaxError(code: .nestingDepth, expression: pattern) }
                    position += 1
                }
            case Self.ascii("|"):
                stack[stack.count - 1].alternatives.append(stack[stack.count - 1].current)
                stack[stack.count - 1].current = []
                position += 1
            case Self.ascii(")"):
                guard stack.count > 1 else { throw RegexSyntaxError(code: .unexpectedParen, expression: pattern) }
                let frame = stack.removeLast()
                var node = Self.finish(frame)
                if let index = frame.capture { node = .capture(index: index, name: frame.name, node) }
                flags = frame.outerFlags
                stack[stack.count - 1].current.append(node)
                position += 1
            case Self.ascii("^"):
                stack[stack.count - 1].current.append(.assertion(flags.oneLine ? .beginText : .beginLine))
                position += 1
            case Self.ascii("$"):
                stack[stack.count - 1].current.append(.assertion(flags.oneLine ? .endText : .endLine))
                position += 1
            case Self.ascii("."):
                stack[stack.count - 1].current.append(flags.dotMatchesNewline ? .anyRune : .anyRuneNotNewline)
                position += 1
            case Self.ascii("["):
                stack[stack.count - 1].current.append(.runeClass(try parseClass()))
            case Self.ascii("*"), Self.ascii("+"), Self.ascii("?"):
                let start = position
                position += 1
                let (min, max): (Int, Int?) = c == Self.ascii("*") ? (0, nil) : c == Self.ascii("+") ? (1, nil) : (0, 1)
                repeatText = try applyRepeat(&stack[stack.count - 1], min: min, max: max, start: start)
                madeRepeat = true
            case Self.ascii("{"):
                let start = position
                guard let (min, max) = try parseRepeatBraces() else {
                    stack[stack.count - 1].current.append(literal(c))  // not a repetition: `{` is literal
                    position += 1
                    break
                }
                repeatText = try applyRepeat(&stack[stack.count - 1], min: min, max: max, start: start)
                madeRepeat = true
            case Self.ascii("\\"):
                try parseEscapeAtom(into: &stack[stack.count - 1].current)
            default:
                stack[stack.count - 1].current.append(literal(c))
                position += 1
            }
            stack[stack.count - 1].lastWasRepeat = madeRepeat
            stack[stack.count - 1].lastRepeatText = repeatText
        }
        guard stack.count == 1, let top = stack.first else { throw RegexSyntaxError(code: .missingParen, expression: pattern) }
        return Self.finish(top)
    }

    func literal(_ rune: UInt32) -> RegexNode {
        .literal(rune, foldCase: flags.foldCase && CaseFolding.orbit(of: rune).count > 1)
    }

    private static func finish(_ frame: Frame) -> RegexNode {
        let alternatives = (frame.alternatives + [frame.current]).map { items -> RegexNode in
            items.isEmpty ? .empty : items.count == 1 ? items[0] : .concatenation(items)
        }
        return alternatives.count == 1 ? alternatives[0] : .alternation(alternatives)
    }

    /// Applies a repetition operator that began at rune `start` (the cursor is past its text)
    /// to the frame's last item.
    /// - Returns: the operator's text, for a following operator's error.
    private mutating func applyRepeat(_ frame: inout Frame, min: Int, max: Int?, start: Int) throws(RegexSyntaxError) -> String {
        var greedy = !flags.nonGreedy
        if peek() == Self.ascii("?") {
            position += 1
            greedy.toggle()
        }
        let operatorText = text(start, position)
        if frame.lastWasRepeat {
            throw RegexSyntaxError(code: .invalidRepeatOp, expression: frame.lastRepeatText + operatorText)
        }
        guard let sub = frame.current.popLast() else {
            throw RegexSyntaxError(code: .missingRepeatArgument, expression: operatorText)
        }
        let node = RegexNode.repeat(sub, min: min, max: max, greedy: greedy)
        if (min >= 2 || (max ?? 0) >= 2) && !Self.repeatIsValid(node, Self.maxRepeat) {
            throw RegexSyntaxError(code: .invalidRepeatSize, expression: operatorText)
        }
        frame.current.append(node)
        return operatorText
    }

    /// Go's rule: nested counted repetitions may not make more than 1,000 copies in all.
    private static func repeatIsValid(_ node: RegexNode, _ budget: Int) -> Bool {
        var n = budget
        switch node {
        case .repeat(let sub, let min, let max, _):
            var m = max ?? min
            if max == 0 { return true }
            if max == nil { m = min }
            if m > n { return false }
            if m > 0 { n /= m }
            return repeatIsValid(sub, n)
        case .capture(_, _, let sub): return repeatIsValid(sub, n)
        case .concatenation(let subs), .alternation(let subs): return subs.allSatisfy { repeatIsValid($0, n) }
        default: return true
        }
    }

    /// `{n}`, `{n,}` or `{n,m}` at the cursor; nil when it is not one (then `{` is a literal,
    /// as `x{,3}` is in Go).
    private mutating func parseRepeatBraces() throws(RegexSyntaxError) -> (Int, Int?)? {
        let start = position
        var i = position + 1
        func number() -> Int?? {
            guard i < runes.count, runes[i] >= 0x30, runes[i] <= 0x39 else { return .none }
            // No leading zeros: `x{01}` is literal text, as in Go.
            if runes[i] == 0x30, i + 1 < runes.count, runes[i + 1] >= 0x30, runes[i + 1] <= 0x39 { return .none }
            var n = 0
            var tooBig = false
            while i < runes.count, runes[i] >= 0x30, runes[i] <= 0x39 {
                if n >= 100_000_000 { tooBig = true } else { n = n * 10 + Int(runes[i] - 0x30) }
                i += 1
            }
            return .some(tooBig ? nil : n)
        }
        guard case .some(let minValue) = number() else { return nil }
        var maxValue: Int?? = minValue
        guard i < runes.count else { return nil }
        if runes[i] == Self.ascii(",") {
            i += 1
            guard i < runes.count else { return nil }
            if runes[i] == Self.ascii("}") {
                maxValue = .some(nil)  // no upper bound
            } else {
                guard case .some(let m) = number() else { return nil }
                maxValue = m == nil ? .none : .some(m)
            }
        }
        guard i < runes.count, runes[i] == Self.ascii("}") else { return nil }
        i += 1
        position = i
        let expression = text(start, i)
        guard let min = minValue, min <= Self.maxRepeat else {
            throw RegexSyntaxError(code: .invalidRepeatSize, expression: expression)
        }
        switch maxValue {
        case .none: throw RegexSyntaxError(code: .invalidRepeatSize, expression: expression)
        case .some(.none): return (min, nil)
        case .some(.some(let max)):
            guard max <= Self.maxRepeat, min <= max else {
                throw RegexSyntaxError(code: .invalidRepeatSize, expression: expression)
            }
            return (min, max)
        }
    }

    /// `(?` at the cursor: a named group, flags, or a non-capturing group with flags.
    /// - Returns: the frame to open, or nil for a flag change alone (`(?i)`).
    private mutating func parseGroupFlags() throws(RegexSyntaxError) -> Frame? {
        let start = position
        let afterQuestion = position + 2
        // As Go: a named group needs more than `(?P<` (or `(?<`) before the end; else the
        // `P` or `<` is read as a flag, and refused as Perl syntax.
        let remaining = runes.count - position
        let isP = remaining > 4 && peek(2) == Self.ascii("P") && peek(3) == Self.ascii("<")
        if isP || (remaining > 3 && peek(2) == Self.ascii("<")) {
            let nameStart = afterQuestion + (isP ? 2 : 1)
            guard let end = runes[nameStart...].firstIndex(of: Self.ascii(">")) else {
                throw RegexSyntaxError(code: .invalidNamedCapture, expression: text(start))
            }
            let name = text(nameStart, end)
            let valid =
                !name.isEmpty
                && name.unicodeScalars.allSatisfy { $0.isASCII && (ASCIIClasses.isWord($0.value)) }
            guard valid else { throw RegexSyntaxError(code: .invalidNamedCapture, expression: text(start, end + 1)) }
            captureCount += 1
            names[captureCount] = name
            position = end + 1
            return Frame(capture: captureCount, name: name, outerFlags: flags)
        }
        var i = afterQuestion
        var next = flags
        var negate = false
        var sawFlag = false
        while i < runes.count {
            let c = runes[i]
            i += 1
            switch c {
            case Self.ascii("i"):
                next.foldCase = !negate
                sawFlag = true
            case Self.ascii("m"):
                next.oneLine = negate
                sawFlag = true
            case Self.ascii("s"):
                next.dotMatchesNewline = !negate
                sawFlag = true
            case Self.ascii("U"):
                next.nonGreedy = !negate
                sawFlag = true
            case Self.ascii("-"):
                guard !negate else { throw RegexSyntaxError(code: .invalidPerlOp, expression: text(start, i)) }
                negate = true
                sawFlag = false
            case Self.ascii(":"), Self.ascii(")"):
                guard !negate || sawFlag else { throw RegexSyntaxError(code: .invalidPerlOp, expression: text(start, i)) }
                position = i
                if c == Self.ascii(":") {
                    let frame = Frame(capture: nil, outerFlags: flags)
                    flags = next
                    return frame
                }
                flags = next
                return nil
            default:
                throw RegexSyntaxError(code: .invalidPerlOp, expression: text(start, i))
            }
        }
        throw RegexSyntaxError(code: .invalidPerlOp, expression: text(start, i))
    }

    /// A `\` sequence outside a class: an assertion, `\Q...\E`, a class, or one rune.
    private mutating func parseEscapeAtom(into items: inout [RegexNode]) throws(RegexSyntaxError) {
        guard let next = peek(1) else { throw RegexSyntaxError(code: .trailingBackslash, expression: "") }
        switch next {
        case Self.ascii("A"), Self.ascii("z"), Self.ascii("b"), Self.ascii("B"):
            let kind: RegexAssertion =
                next == Self.ascii("A")
                ? .beginText : next == Self.ascii("z") ? .endText : next == Self.ascii("b") ? .wordBoundary : .noWordBoundary
            items.append(.assertion(kind))
            position += 2
            return
        case Self.ascii("C"):
            throw RegexSyntaxError(code: .invalidEscape, expression: "\\C")
        case Self.ascii("Q"):
            position += 2
            while position < runes.count {
                if runes[position] == Self.ascii("\\"), peek(1) == Self.ascii("E") {
                    position += 2
                    return
                }
                items.append(literal(runes[position]))
                position += 1
            }
            return
        default:
            break
        }
        var cls = RuneClass()
        cls.foldCase = flags.foldCase
        if try parseClassEscape(into: &cls) {
            items.append(.runeClass(cls))
            return
        }
        items.append(literal(try parseEscapedRune()))
    }
}
