import CStatorSys
import Testing
@testable import StatorCore

/// The identity hash as `lines.c` defines it, written again here byte by byte (not through
/// the C function): each range in 8-byte little-endian words, the last one zero-padded, each
/// mixed in with a multiply; then both lengths and a finalizer, and the low bit set.
private func referenceIdentityHash(_ bytes: UnsafeRawBufferPointer, name: Range<Int>, suffix: Range<Int>, seed: UInt64)
    -> UInt64
{
    func mix(_ h: UInt64, _ range: Range<Int>) -> UInt64 {
        var h = h
        var i = range.lowerBound
        while i < range.upperBound {
            var word: UInt64 = 0
            for k in 0..<min(8, range.upperBound - i) { word |= UInt64(bytes[i + k]) << (8 * k) }
            h = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
            i += 8
        }
        return h
    }
    var h = mix(mix(seed, name), suffix)
    h ^= UInt64(name.count << 16 | suffix.count) &* 0x9E37_79B9_7F4A_7C15
    h ^= h >> 32
    h &*= 0xD6E8_FEB8_6659_FD93
    h ^= h >> 29
    return h | 1
}

/// What `LineScanner` must find, from the scalar pieces it replaces: `LineSplitter`'s lines,
/// `StatsdParser.simpleShape`'s shapes and the identity hash of each simple line.
private func reference(_ bytes: [UInt8], seed: UInt64) -> [[Int]] {
    var lines: [[Int]] = []
    bytes.withUnsafeBytes { raw in
        LineSplitter.forEachLine(in: raw) { r in
            if let shape = StatsdParser.simpleShape(raw, r),
                (shape.colon - r.lowerBound) + (r.upperBound - shape.pipe) <= Int(CStatorSys_IDENTITY_MAX_BYTES)
            {
                let h = referenceIdentityHash(
                    raw, name: r.lowerBound..<shape.colon, suffix: shape.pipe..<r.upperBound, seed: seed)
                lines.append([r.lowerBound, r.upperBound, shape.colon, shape.pipe, Int(truncatingIfNeeded: h)])
            } else {
                lines.append([r.lowerBound, r.upperBound, -1, -1, 0])
            }
        }
    }
    return lines
}

private func scanned(_ bytes: [UInt8], seed: UInt64) -> [[Int]] {
    var lines: [[Int]] = []
    bytes.withUnsafeBytes { raw in
        LineScanner.forEachLine(in: raw, seed: seed) { l in
            #expect(l.record == UInt64.max)
            #expect((l.identity == 0) == (l.pipe < 0))
            lines.append([Int(l.start), Int(l.end), Int(l.colon), Int(l.pipe), Int(truncatingIfNeeded: l.identity)])
        }
    }
    return lines
}

@Test(arguments: [
    "", "\n", "\r\n", "a", "a:1|c", "a:1|c\n", "a:1|c\r\n", "a:1|c\r", "\r", "a:|c", "a:1", "a|1:c", "a:1:2|c", "a:1|c:2|c",
    ":1|c", "a:1|", "a:1|\r\n", "a:1\r|c", "a\r:1|c\nb:2|ms|@0.5|#t:v\n\nc:3|g", "x\ny\nz", "_e{1,1}:a|b|#t:v",
    "bench.counter.1234:1|c|#t0:v3,t1:v4\nbench.timer.12:456|ms|#t0:v1,t1:v2\n",
])
func scansLikeTheSplitterAndTheShape(_ text: String) {
    let bytes = Array(text.utf8)
    #expect(scanned(bytes, seed: 3) == reference(bytes, seed: 3))
}

@Test func scansRandomDatagramsOfEverySizeLikeTheReference() {
    // Bytes drawn mostly from the delimiters, so that lines, colons and pipes fall at every
    // position of the 64-byte blocks and the eight-byte words, and at the datagram's end.
    var rng = SplitMix64(state: 20_261_205)  // seeded: a failure comes back on the next run
    let alphabet = Array("ab.:|\n\r#,1".utf8) + [0, 0xFF]
    // Also few newlines and delimiters: lines and names that span several 64-byte blocks.
    let sparse = Array(repeating: UInt8(ascii: "x"), count: 60) + Array(":|\n".utf8)
    for size in 0..<300 {
        for letters in [alphabet, sparse] {
            for _ in 0..<8 {
                let bytes = (0..<size).map { _ in letters[Int.random(in: 0..<letters.count, using: &rng)] }
                #expect(scanned(bytes, seed: 9) == reference(bytes, seed: 9), "\(bytes)")
            }
        }
    }
}

@Test func scansADatagramLargerThanUDPAllows() {
    // Past 65,535 bytes the masks go on the heap (callers other than the receiver).
    let line = Array("some.metric.name:12|ms|#host:a\n".utf8)
    let bytes = Array((0..<3_000).map { _ in line }.joined()) + Array("tail:1|c".utf8)
    #expect(bytes.count > 65_535)
    let lines = scanned(bytes, seed: 1)
    #expect(lines.count == 3_001)
    #expect(lines == reference(bytes, seed: 1))
    #expect(Set(lines.dropLast().map { $0[4] }).count == 1)  // one identity, wherever it sits
}

@Test func theIdentityHashDependsOnlyOnTheNameAndSuffixBytes() {
    // The same name and suffix hash alike at the start, the middle and the very end of a
    // buffer (where the last word is loaded from before them), in buffers of under 8 bytes too.
    for name in ["a", "abc", "abcdefg", "abcdefgh", "abcdefghi", "bench.counter.1234"] {
        for suffix in ["|c", "|ms|#t0:v3", "|g|#host:web-1,env:prod"] {
            let line = Array((name + ":1" + suffix).utf8)
            var hashes = Set<UInt64>()
            for (before, after) in [(0, 0), (5, 0), (0, 13), (7, 9)] {
                let bytes = [UInt8](repeating: 0x41, count: before) + line + [UInt8](repeating: 0x42, count: after)
                let h = bytes.withUnsafeBytes { raw in
                    LineScanner.identityHash(
                        raw, name: before..<(before + name.utf8.count),
                        suffix: (before + name.utf8.count + 2)..<(before + line.count), seed: 5)
                }
                hashes.insert(h)
            }
            #expect(hashes.count == 1, "\(name) \(suffix)")
            #expect(hashes.first.map { $0 & 1 == 1 } == true)
        }
    }
    // Lengths count: a name that ends where the suffix begins is not the same identity.
    let a = Array("ab|c".utf8).withUnsafeBytes { LineScanner.identityHash($0, name: 0..<2, suffix: 2..<4, seed: 5) }
    let b = Array("ab|c".utf8).withUnsafeBytes { LineScanner.identityHash($0, name: 0..<1, suffix: 1..<4, seed: 5) }
    #expect(a != b)
}

/// A line whose name and suffix are longer than the key cache keeps is not simple: its name
/// is not hashed (a 60 KB name cost 7,500 multiplies), and the parser sees it in full.
@Test(arguments: [
    (4_094, true), (4_095, false), (60_000, false),
])
func aLineTooLongToBeCachedIsNotHashed(_ nameBytes: Int, _ simple: Bool) {
    let bytes = [UInt8](repeating: UInt8(ascii: "n"), count: nameBytes) + Array(":1|c".utf8)
    #expect(scanned(bytes, seed: 3) == reference(bytes, seed: 3))
    bytes.withUnsafeBytes { raw in
        LineScanner.forEachLine(in: raw, seed: 3) { l in
            #expect((l.identity != 0) == simple)
            #expect(l.colon == (simple ? Int64(nameBytes) : -1))
        }
    }
}
