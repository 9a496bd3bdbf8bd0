import Testing

@testable import StatorCore

/// Frames `chunks` read by read, as the TCP input does, then closes.
/// - Returns: the lines (empty ones included) and how many were refused.
private func frame(_ chunks: [[UInt8]], maxLineBytes: Int) -> (lines: [[UInt8]], refused: Int) {
    var framer = TCPLineFramer(maxLineBytes: maxLineBytes)
    var lines: [[UInt8]] = []
    var refused = 0
    for chunk in chunks {
        let buffer = framer.partial + chunk
        var regions: [Range<Int>] = []
        let result = buffer.withUnsafeBytes { framer.frame($0, 0..<buffer.count, into: &regions) }
        refused += result.refused
        #expect(framer.partial.count <= maxLineBytes)
        for region in regions {
            #expect(region.upperBound <= result.used && buffer[region.upperBound - 1] == 0x0A)
            lines += buffer[region].split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { Array($0) }
        }
    }
    if let line = framer.finish() { lines.append(line) }
    return (lines, refused)
}

/// The whole stream split at its newlines: a piece over the limit refused, the last piece a
/// line if it is not empty.
private func reference(_ stream: [UInt8], maxLineBytes: Int) -> (lines: [[UInt8]], refused: Int) {
    var pieces = stream.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
    let cut = pieces.removeLast()
    var lines: [[UInt8]] = []
    var refused = 0
    for piece in pieces + (cut.isEmpty ? [] : [cut]) {
        if piece.count > maxLineBytes { refused += 1 } else { lines.append(piece) }
    }
    return (lines, refused)
}

@Test(arguments: [
    (["a:1|c\nb:2|c\n"], 8, ["a:1|c", "b:2|c"], 0),
    (["a:1", "|c\nb:", "2|c\n"], 8, ["a:1|c", "b:2|c"], 0),  // lines cut across reads
    (["abcdefgh", "ijk\nok\n"], 4, ["ok"], 1),  // a long line over two reads, skipped to its newline
    (["abcdefghij\nok\nxy"], 4, ["ok", "xy"], 1),  // a long line in one read; the last cut by the close
    (["ab", "cdef"], 4, [], 1),  // cut by the close past the limit
    (["abcd", "\n"], 4, ["abcd"], 0),  // exactly the limit
])
func framesLinesAcrossReads(_ chunks: [String], _ maxLineBytes: Int, _ lines: [String], _ refused: Int) {
    let framed = frame(chunks.map { Array($0.utf8) }, maxLineBytes: maxLineBytes)
    #expect(framed.lines.map { String(decoding: $0, as: UTF8.self) } == lines)
    #expect(framed.refused == refused)
}

@Test func framesRandomStreamsInRandomReadsLikeSplittingTheWhole() {
    var rng = SplitMix64(state: 20_261_207)  // seeded: a failure comes back on the next run
    let alphabet = Array("ab:|c\n\n\r".utf8)
    for _ in 0..<3_000 {
        let maxLineBytes = Int(rng.next() % 12) + 1
        let stream = (0..<Int(rng.next() % 80)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        var chunks: [[UInt8]] = []
        var at = 0
        while at < stream.count {
            let n = min(stream.count - at, Int(rng.next() % 20) + 1)
            chunks.append(Array(stream[at..<(at + n)]))
            at += n
        }
        let framed = frame(chunks, maxLineBytes: maxLineBytes)
        let expected = reference(stream, maxLineBytes: maxLineBytes)
        #expect(framed.lines == expected.lines, "\(stream) in \(chunks.count) reads, limit \(maxLineBytes)")
        #expect(framed.refused == expected.refused)
    }
}
