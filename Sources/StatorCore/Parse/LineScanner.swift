import CStatorSys

/// A datagram's lines, and for each line of the simple shape (`name:value|suffix`, see
/// `StatsdParser.simpleShape`) where its `:` and `|` are and its identity hash (the seeded
/// hash of its name and suffix that `LineIdentityCache` looks it up by).
///
/// The work is done in C (`CStatorSys_scan_lines`): bit masks of the datagram's `\n`, `:` and
/// `|` bytes, sixteen bytes per compare, then each line's delimiters found by counting
/// trailing zeros, and its name and suffix hashed eight bytes at a time. Before, the bytes
/// were visited three times (`memchr` for the newline, the shape's scans, the hash); Swift has
/// no portable way to turn a vector compare into a bit mask. The lines are those of
/// `LineSplitter` (split at `\n`, a trailing `\r` stripped, empty lines skipped), the shapes
/// those of `simpleShape`, except that a line whose name and suffix take more than
/// `CStatorSys_IDENTITY_MAX_BYTES` (which the cache would not keep) is not simple: its name is
/// not hashed, so a junk line costs no more than its masks.
public enum LineScanner {
    /// One line: `start..<end`; for a simple line `colon`, `pipe` and `identity` (never 0),
    /// else -1, -1 and 0. `record` is the caller's (`UInt64.max` on return).
    typealias Line = CStatorSys_line

    /// The most lines `count` bytes can hold (a non-empty line and its newline take two).
    static func maxLines(_ count: Int) -> Int { count / 2 + 1 }

    /// Scans `bytes` into `out`, which has room for `maxLines(bytes.count)` lines, and starts
    /// fetching the 64-byte set `sets + ((identity >> 40) & setMask) * 64` of each simple line.
    /// - Returns: the number of lines.
    @inline(__always)
    static func scan(
        _ bytes: UnsafeRawBufferPointer, seed: UInt64, into out: UnsafeMutablePointer<Line>,
        sets: UnsafeRawPointer, setMask: UInt64
    ) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        return CStatorSys_scan_lines(base.assumingMemoryBound(to: UInt8.self), bytes.count, seed, out, sets, setMask)
    }

    /// Calls `body` with each line (tests, tools: allocates).
    static func forEachLine(in bytes: UnsafeRawBufferPointer, seed: UInt64, _ body: (Line) -> Void) {
        var lines = ScratchList<Line>(capacity: 1)
        let set = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)  // where every prefetch goes
        defer { set.deallocate() }
        lines.refill(atMost: maxLines(bytes.count)) { scan(bytes, seed: seed, into: $0, sets: set, setMask: 0) }
        for k in lines.indices { body(lines[k]) }
    }

    /// The identity hash of a line with `name` and `suffix` (never 0): each in eight-byte
    /// words from its start (the last zero above its bytes), a multiply per word, then their
    /// lengths and one final mix. Lighter than the series key hash, which guards the shards'
    /// probing against crafted collisions: in the key cache a collision costs only a compare.
    static func identityHash(_ bytes: UnsafeRawBufferPointer, name: Range<Int>, suffix: Range<Int>, seed: UInt64) -> UInt64 {
        guard let base = bytes.baseAddress else { return 1 }
        return CStatorSys_identity_hash(
            base.assumingMemoryBound(to: UInt8.self), bytes.count, name.lowerBound, name.count, suffix.lowerBound,
            suffix.count, seed)
    }
}

extension CStatorSys_line {
    /// The line's bytes.
    var range: Range<Int> { Int(start)..<Int(end) }
}

/// The parts of a line of the simple shape (`StatsdParser.simpleShape`), as the scanner found them.
extension LineScanner.Line {
    // (The scanner orders them: start <= colon < pipe < end. Unchecked: each check was a
    // compare and branch per line.)
    /// The line's name as sent (a simple line's).
    var name: Range<Int> { Range(uncheckedBounds: (Int(start), Int(colon))) }
    /// Everything after the value (a simple line's).
    var suffix: Range<Int> { Range(uncheckedBounds: (Int(pipe), Int(end))) }
    /// The value (a simple line's).
    var value: Range<Int> { Range(uncheckedBounds: (Int(colon &+ 1), Int(pipe))) }
}
