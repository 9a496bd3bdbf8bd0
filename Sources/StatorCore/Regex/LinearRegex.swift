/// A regular expression with Go's syntax and meaning (RE2: `regexp.Compile`), matched in
/// time linear in the text: a Pike VM runs every thread of the program in step over the
/// text's runes, each instruction at most once per position, so no pattern and no name can
/// make it backtrack. statsd_exporter matches its regex rules with Go's `regexp`; so does
/// this, byte offset for byte offset.
///
/// Immutable once made: safe to match from several threads.
public final class LinearRegex: Sendable {
    let program: RegexProgram
    /// The number of groups, the whole match not counted.
    public let captureCount: Int
    /// Group names by group number.
    let names: [Int: String]

    /// Compiles `pattern`.
    /// - Throws: what Go's `regexp.Compile` would say of it.
    public init(_ pattern: String) throws(RegexSyntaxError) {
        let parsed = try RegexParser.parse(pattern)
        program = try RegexProgram(parsed.node, captures: parsed.captures, pattern: pattern)
        captureCount = parsed.captures
        names = parsed.names
    }

    /// The number of the first group called `name` (Go's `SubexpIndex`).
    func group(named name: String) -> Int? {
        names.filter { $0.value == name }.keys.min()
    }

    /// The leftmost-first match in `text` (Go's `FindSubmatchIndex`): for each group (0 is
    /// the whole match) its start and end byte offsets, -1 for a group that took no part.
    /// nil when nothing matches.
    public func firstMatch(in text: String) -> [Int]? {
        var text = text
        return text.withUTF8 { firstMatch(in: UnsafeRawBufferPointer($0)) }
    }

    func firstMatch(in text: UnsafeRawBufferPointer) -> [Int]? { search(text).slots }

    /// The search behind both `firstMatch` and `firstMatchCountingVisits`.
    private func search(_ text: UnsafeRawBufferPointer) -> (slots: [Int]?, visits: Int) {
        guard mayMatch(text) else { return (nil, 0) }
        var machine = PikeVM(program: program)
        let slots = machine.run(text)
        return (slots, machine.visits)
    }

    /// Whether `text` holds the literal bytes every match needs (its prefix, when anchored).
    /// Most rules of a large mapping file refuse most names here.
    private func mayMatch(_ text: UnsafeRawBufferPointer) -> Bool {
        guard let base = text.baseAddress else { return program.requiredPrefix.isEmpty && program.requiredLiteral.count <= 1 }
        let prefix = program.requiredPrefix
        if !prefix.isEmpty {
            guard text.count >= prefix.count,
                prefix.withUnsafeBytes({ ByteScan.equal(base, $0.baseAddress ?? base, count: prefix.count) })
            else { return false }
        }
        let literal = program.requiredLiteral
        guard literal.count > 1, let first = literal.first else { return true }
        return literal.withUnsafeBytes { needle in
            guard let n = needle.baseAddress else { return true }
            let last = text.count - literal.count
            var from = 0
            while from <= last, let i = ByteScan.firstIndex(of: first, in: text, from..<(last + 1)) {
                if ByteScan.equal(base + i, n, count: literal.count) { return true }
                from = i + 1
            }
            return false
        }
    }

    /// `firstMatch`, and how many instructions the search visited: at most the program's
    /// size per rune of the text, plus one, whatever the pattern (what the tests check).
    func firstMatchCountingVisits(in text: String) -> (slots: [Int]?, visits: Int) {
        var text = text
        return text.withUTF8 { search(UnsafeRawBufferPointer($0)) }
    }

    /// The number of instructions of the compiled program.
    public var programSize: Int { program.instructions.count }
}

/// A set of threads, at most one per instruction, in priority order, each with its capture
/// slots (a sparse set, as in Go's `regexp` and RE2).
private struct ThreadQueue {
    /// The instructions in the queue, in priority order.
    var dense: [Int32]
    /// `sparse[pc]`: where `pc` is in `dense`, if it is (checked against `dense`).
    var sparse: [Int32]
    /// Capture slots, `slotCount` per instruction, by instruction.
    var slots: [Int]
    let slotCount: Int

    init(size: Int, slotCount: Int) {
        dense = []
        dense.reserveCapacity(size)
        sparse = Array(repeating: 0, count: size)
        slots = Array(repeating: -1, count: size * slotCount)
        self.slotCount = slotCount
    }

    func contains(_ pc: Int) -> Bool {
        let i = Int(sparse[pc])
        return i < dense.count && Int(dense[i]) == pc
    }

    mutating func insert(_ pc: Int) {
        sparse[pc] = Int32(dense.count)
        dense.append(Int32(pc))
    }

    mutating func clear() { dense.removeAll(keepingCapacity: true) }
}

/// One search: two thread queues (this position's, the next one's) over the program.
private struct PikeVM {
    let program: RegexProgram
    private var current: ThreadQueue
    private var next: ThreadQueue
    /// The slots of the thread being followed through `add`.
    private var scratch: [Int]
    private var matched: [Int]?
    /// `add`'s explicit stack: instructions to visit, and slots to restore after a subtree.
    private var stack: [(pc: Int, slot: Int, value: Int)] = []
    /// Instructions visited so far (each at most once per queue, so per position).
    private(set) var visits = 0

    init(program: RegexProgram) {
        self.program = program
        let size = program.instructions.count
        current = ThreadQueue(size: size, slotCount: program.slotCount)
        next = ThreadQueue(size: size, slotCount: program.slotCount)
        scratch = Array(repeating: -1, count: program.slotCount)
    }

    /// What the empty-width assertions see between two runes (-1: the text's edge).
    private struct Context {
        var before: Int64
        var after: Int64

        func holds(_ kind: RegexAssertion) -> Bool {
            switch kind {
            case .beginText: return before < 0
            case .endText: return after < 0
            case .beginLine: return before < 0 || before == 0x0A
            case .endLine: return after < 0 || after == 0x0A
            case .wordBoundary: return Self.isWord(before) != Self.isWord(after)
            case .noWordBoundary: return Self.isWord(before) == Self.isWord(after)
            }
        }

        private static func isWord(_ rune: Int64) -> Bool { rune >= 0 && ASCIIClasses.isWord(UInt32(rune)) }
    }

    /// The rune at `offset` and its width in bytes, as Go decodes UTF-8 (a bad byte is
    /// U+FFFD, one byte wide); -1 and 0 at the end.
    private static func rune(in text: UnsafeRawBufferPointer, at offset: Int) -> (Int64, Int) {
        guard offset < text.count else { return (-1, 0) }
        let b0 = UInt32(text[offset])
        if b0 < 0x80 { return (Int64(b0), 1) }
        func continuation(_ i: Int) -> UInt32? {
            guard offset + i < text.count else { return nil }
            let b = UInt32(text[offset + i])
            return b & 0xC0 == 0x80 ? b & 0x3F : nil
        }
        if b0 >= 0xC2 && b0 <= 0xDF, let b1 = continuation(1) { return (Int64((b0 & 0x1F) << 6 | b1), 2) }
        if b0 >= 0xE0 && b0 <= 0xEF, let b1 = continuation(1), let b2 = continuation(2) {
            let r = (b0 & 0x0F) << 12 | b1 << 6 | b2
            if r >= 0x800 && !(r >= 0xD800 && r <= 0xDFFF) { return (Int64(r), 3) }
        }
        if b0 >= 0xF0 && b0 <= 0xF4, let b1 = continuation(1), let b2 = continuation(2), let b3 = continuation(3) {
            let r = (b0 & 0x07) << 18 | b1 << 12 | b2 << 6 | b3
            if r >= 0x10000 && r <= 0x10FFFF { return (Int64(r), 4) }
        }
        return (0xFFFD, 1)
    }

    mutating func run(_ text: UnsafeRawBufferPointer) -> [Int]? {
        var position = 0
        var (rune, width) = Self.rune(in: text, at: 0)
        var context = Context(before: -1, after: rune)
        while true {
            if current.dense.isEmpty {
                if matched != nil { break }
                if program.anchoredAtStart && position > 0 { break }
            }
            if matched == nil && (position == 0 || !program.anchoredAtStart) {
                for i in scratch.indices { scratch[i] = -1 }
                visits += Self.add(
                    program, to: &current, pc: 0, position: position, context: context, scratch: &scratch, stack: &stack)
            }
            let (nextRune, nextWidth) = Self.rune(in: text, at: position + width)
            let nextContext = Context(before: rune, after: nextRune)
            step(position: position, rune: rune, nextPosition: position + width, nextContext: nextContext)
            if width == 0 { break }
            position += width
            (rune, width) = (nextRune, nextWidth)
            context = nextContext
            swap(&current, &next)
        }
        return matched
    }

    /// Runs each thread of `current` over `rune`, in priority order, into `next`. A thread
    /// that reaches `match` records it and ends every thread of lower priority.
    private mutating func step(position: Int, rune: Int64, nextPosition: Int, nextContext: Context) {
        let slotCount = program.slotCount
        for i in 0..<current.dense.count {
            let pc = Int(current.dense[i])
            let consumed: Bool
            switch program.instructions[pc] {
            case .match:
                var slots = Array(current.slots[pc * slotCount..<(pc + 1) * slotCount])
                slots[1] = position
                matched = slots
                current.clear()
                return
            case .rune(let r): consumed = rune == Int64(r)
            case .runeFold(let orbit): consumed = rune >= 0 && orbit.contains(UInt32(rune))
            case .runeClass(let n): consumed = rune >= 0 && program.runeClass(n).contains(UInt32(rune))
            case .anyRune: consumed = rune >= 0
            case .anyRuneNotNewline: consumed = rune >= 0 && rune != 0x0A
            default: consumed = false  // only consuming instructions and match are queued
            }
            guard consumed else { continue }
            for s in 0..<slotCount { scratch[s] = current.slots[pc * slotCount + s] }
            visits += Self.add(
                program, to: &next, pc: pc + 1, position: nextPosition, context: nextContext, scratch: &scratch, stack: &stack)
        }
        current.clear()
    }

    /// Follows the thread in `scratch` from `pc` through jumps, splits, saves and assertions
    /// (which take no input) to the instructions that do, and queues those in priority order.
    /// - Returns: how many instructions it entered in the queue.
    private static func add(
        _ program: RegexProgram, to queue: inout ThreadQueue, pc start: Int, position: Int, context: Context,
        scratch: inout [Int], stack: inout [(pc: Int, slot: Int, value: Int)]
    ) -> Int {
        var visited = 0
        stack.append((start, -1, 0))
        while let (pc, slot, value) = stack.popLast() {
            if slot >= 0 {
                scratch[slot] = value  // the subtree under a save is done: undo it
                continue
            }
            if queue.contains(pc) { continue }
            queue.insert(pc)
            visited += 1
            switch program.instructions[pc] {
            case .jump(let target):
                stack.append((target, -1, 0))
            case .split(let first, let second):
                stack.append((second, -1, 0))
                stack.append((first, -1, 0))
            case .save(let n):
                stack.append((0, n, scratch[n]))
                scratch[n] = position
                stack.append((pc + 1, -1, 0))
            case .assertion(let kind):
                if context.holds(kind) { stack.append((pc + 1, -1, 0)) }
            default:
                let base = pc * queue.slotCount
                for s in 0..<queue.slotCount { queue.slots[base + s] = scratch[s] }
            }
        }
        return visited
    }
}
