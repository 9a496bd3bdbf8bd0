/// A compiled regular expression: instructions for the Pike VM (`LinearRegex`), as Go's
/// `regexp/syntax.Prog`.
struct RegexProgram: Sendable {
    enum Instruction: Sendable, Equatable {
        /// Consumes one rune equal to this one.
        case rune(UInt32)
        /// Consumes one rune of a case-folding orbit (`(?i)a`: `a` or `A`).
        case runeFold([UInt32])
        /// Consumes one rune of `classes[n]`.
        case runeClass(Int)
        case anyRune
        case anyRuneNotNewline
        /// Goes on at both, preferring the first: this order is what makes matching leftmost-first.
        case split(Int, Int)
        case jump(Int)
        /// Records the position in capture slot `n` (group n/2; even: start, odd: end).
        case save(Int)
        case assertion(RegexAssertion)
        case match
    }

    /// The largest program a pattern may compile to. Matching costs at most two visits per
    /// instruction per rune of the name, each copying the thread's capture slots, so these
    /// bound the time and memory any rule can take: at most 2,000 instructions, and 20,000
    /// instructions x capture slots (two per group, the whole match included). A pattern
    /// past either is refused at load ("expression too large"); real mapping rules are a
    /// few dozen instructions.
    static let maxInstructions = 2_000
    static let maxInstructionSlots = 20_000

    private(set) var instructions: [Instruction] = []
    private(set) var classes: [RuneClass] = []
    /// Two per group, group 0 (the whole match) included.
    let slotCount: Int
    /// Whether every match must start at the beginning of the text (`^...` or `\A...`
    /// without `(?m)`): the search then tries only there.
    let anchoredAtStart: Bool

    /// UTF-8 bytes every match starts with, when the pattern is anchored at the start and
    /// begins with literal text (`^batch\.`): a name without them is refused by one compare.
    let requiredPrefix: [UInt8]
    /// UTF-8 bytes every match contains (the longest literal run of the pattern's top-level
    /// sequence, `.status.` in `(.*)\.status\.(.*)`): a name without them cannot match, and
    /// is refused by one search of its bytes, without running the machine.
    let requiredLiteral: [UInt8]

    /// Compiles a parsed pattern with `captures` groups.
    init(_ node: RegexNode, captures: Int, pattern: String) throws(RegexSyntaxError) {
        slotCount = 2 * (captures + 1)
        anchoredAtStart = Self.startsWithBeginText(node)
        (requiredPrefix, requiredLiteral) = Self.literals(of: node, anchored: anchoredAtStart)
        try emit(.capture(index: 0, name: nil, node), pattern: pattern)
        try append(.match, pattern: pattern)
        guard instructions.count * slotCount <= Self.maxInstructionSlots else {
            throw RegexSyntaxError(code: .large, expression: pattern)
        }
    }

    /// The literal runs of the top-level sequence: the one right after a leading `^` or `\A`,
    /// and the longest anywhere (case-sensitive literals only: a folded one may match other bytes).
    private static func literals(of node: RegexNode, anchored: Bool) -> (prefix: [UInt8], longest: [UInt8]) {
        let items: [RegexNode]
        if case .concatenation(let subs) = node { items = subs } else { items = [node] }
        func bytes(_ item: RegexNode) -> [UInt8]? {
            guard case .literal(let rune, false) = item, let scalar = Unicode.Scalar(rune) else { return nil }
            return Array(String(Character(scalar)).utf8)
        }
        var prefix: [UInt8] = []
        if case .assertion(.beginText)? = items.first {
            for item in items.dropFirst() {
                guard let b = bytes(item) else { break }
                prefix += b
            }
        }
        var longest: [UInt8] = []
        var run: [UInt8] = []
        for item in items {
            if let b = bytes(item) {
                run += b
                if run.count > longest.count { longest = run }
            } else {
                run = []
            }
        }
        return (prefix, longest)
    }

    private static func startsWithBeginText(_ node: RegexNode) -> Bool {
        switch node {
        case .assertion(.beginText): return true
        case .capture(_, _, let sub): return startsWithBeginText(sub)
        case .concatenation(let subs): return subs.first.map(startsWithBeginText) ?? false
        case .alternation(let subs): return !subs.isEmpty && subs.allSatisfy(startsWithBeginText)
        default: return false
        }
    }

    @discardableResult
    private mutating func append(_ instruction: Instruction, pattern: String) throws(RegexSyntaxError) -> Int {
        guard instructions.count < Self.maxInstructions else { throw RegexSyntaxError(code: .large, expression: pattern) }
        instructions.append(instruction)
        return instructions.count - 1
    }

    private mutating func emit(_ node: RegexNode, pattern: String) throws(RegexSyntaxError) {
        switch node {
        case .empty:
            break
        case .literal(let rune, let foldCase):
            try append(foldCase ? .runeFold(CaseFolding.orbit(of: rune)) : .rune(rune), pattern: pattern)
        case .runeClass(let cls):
            classes.append(cls)
            try append(.runeClass(classes.count - 1), pattern: pattern)
        case .anyRune:
            try append(.anyRune, pattern: pattern)
        case .anyRuneNotNewline:
            try append(.anyRuneNotNewline, pattern: pattern)
        case .assertion(let kind):
            try append(.assertion(kind), pattern: pattern)
        case .capture(let index, _, let sub):
            try append(.save(2 * index), pattern: pattern)
            try emit(sub, pattern: pattern)
            try append(.save(2 * index + 1), pattern: pattern)
        case .concatenation(let subs):
            for sub in subs { try emit(sub, pattern: pattern) }
        case .alternation(let subs):
            // split L1, next; L1: a; jump end; next: split L2, next'; ... last: z; end:
            var jumps: [Int] = []
            for (i, sub) in subs.enumerated() {
                if i < subs.count - 1 {
                    let split = try append(.split(0, 0), pattern: pattern)
                    try emit(sub, pattern: pattern)
                    jumps.append(try append(.jump(0), pattern: pattern))
                    instructions[split] = .split(split + 1, instructions.count)
                } else {
                    try emit(sub, pattern: pattern)
                }
            }
            for jump in jumps { instructions[jump] = .jump(instructions.count) }
        case .repeat(let sub, let min, let max, let greedy):
            for _ in 0..<min { try emit(sub, pattern: pattern) }
            guard let max else {
                if Self.canMatchEmpty(sub) {
                    // As Go (since 1.17): a star of what can match empty is (x+)?, so that an
                    // empty iteration never ends the loop before a non-empty one is tried.
                    let quest = try append(.split(0, 0), pattern: pattern)
                    let body = instructions.count
                    try emit(sub, pattern: pattern)
                    let again = try append(.split(0, 0), pattern: pattern)
                    let end = instructions.count
                    instructions[again] = greedy ? .split(body, end) : .split(end, body)
                    instructions[quest] = greedy ? .split(body, end) : .split(end, body)
                    return
                }
                // x*: loop: split body, exit; body; jump loop
                let loop = try append(.split(0, 0), pattern: pattern)
                try emit(sub, pattern: pattern)
                try append(.jump(loop), pattern: pattern)
                instructions[loop] = greedy ? .split(loop + 1, instructions.count) : .split(instructions.count, loop + 1)
                return
            }
            // x{0,k}: (x(x(x)?)?)?, every optional part leaving to the same end.
            var splits: [Int] = []
            for _ in 0..<(max - min) {
                splits.append(try append(.split(0, 0), pattern: pattern))
                try emit(sub, pattern: pattern)
            }
            let end = instructions.count
            for split in splits { instructions[split] = greedy ? .split(split + 1, end) : .split(end, split + 1) }
        }
    }

    /// Whether `node` can match the empty string.
    private static func canMatchEmpty(_ node: RegexNode) -> Bool {
        switch node {
        case .empty, .assertion: return true
        case .literal, .runeClass, .anyRune, .anyRuneNotNewline: return false
        case .capture(_, _, let sub): return canMatchEmpty(sub)
        case .repeat(let sub, let min, _, _): return min == 0 || canMatchEmpty(sub)
        case .concatenation(let subs): return subs.allSatisfy(canMatchEmpty)
        case .alternation(let subs): return subs.contains(where: canMatchEmpty)
        }
    }

    /// The class an instruction refers to.
    func runeClass(_ n: Int) -> RuneClass { classes[n] }
}
