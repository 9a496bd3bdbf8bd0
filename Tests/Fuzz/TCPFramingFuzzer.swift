// libFuzzer target for the TCP input's framing (TCPLineFramer) (`STATOR_FUZZ_TARGET`, see
// FuzzMain.swift), built by scripts/fuzz with StatorCore's sources and `-sanitize=fuzzer,address`. An input is one byte
// for `tcp.max_line_bytes` (1 to 32, so that long lines are common), then a stream whose
// 0xFE bytes mark where one read ends and the next begins (they are not part of the stream).
// The stream is framed read by read, as the input does (the partial line in front of each
// chunk), then closed; the lines and refusals must be those of splitting the whole stream at
// its newlines: a piece longer than the limit refused once, the last piece (cut by the
// close) a line. Seeds are in Tests/Fuzz/tcp-corpus.

private func tcpFuzzCheck(_ condition: Bool, _ what: String) {
    if !condition { fatalError("tcp fuzz check failed: \(what)") }
}

public func tcpFuzzOneInput(_ data: UnsafeRawPointer?, _ count: Int) -> Int32 {
    guard count > 0, let data else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: count)
    let maxLineBytes = Int(input[0] % 32) + 1
    let chunks = input[1...].split(separator: 0xFE, omittingEmptySubsequences: false).map { Array($0) }

    // The framer, read by read.
    var framer = TCPLineFramer(maxLineBytes: maxLineBytes)
    var lines: [[UInt8]] = []
    var refused = 0
    for chunk in chunks {
        let buffer = framer.partial + chunk
        var regions: [Range<Int>] = []
        let result = buffer.withUnsafeBytes { framer.frame($0, 0..<buffer.count, into: &regions) }
        refused += result.refused
        tcpFuzzCheck(framer.partial.count <= maxLineBytes, "the partial line within the limit")
        tcpFuzzCheck(result.used >= 0 && result.used <= buffer.count, "used within the data")
        var last = 0
        for region in regions {
            tcpFuzzCheck(region.lowerBound >= last && region.upperBound <= result.used, "regions in order, within used")
            tcpFuzzCheck(!region.isEmpty && buffer[region.upperBound - 1] == 0x0A, "a region ends with a newline")
            last = region.upperBound
            lines += buffer[region].split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { Array($0) }
        }
    }
    if let line = framer.finish() { lines.append(line) }
    tcpFuzzCheck(framer.partial.isEmpty && !framer.skipping, "nothing kept after close")

    // The reference: the whole stream split at its newlines.
    let stream = Array(chunks.joined())
    var pieces = stream.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
    let cut = pieces.removeLast()  // after the last newline: the line cut by the close
    var expected: [[UInt8]] = []
    var expectedRefused = 0
    for piece in pieces {
        if piece.count > maxLineBytes { expectedRefused += 1 } else { expected.append(piece) }
    }
    if cut.count > maxLineBytes { expectedRefused += 1 } else if !cut.isEmpty { expected.append(cut) }
    tcpFuzzCheck(lines == expected, "the lines: \(lines.count) framed, \(expected.count) expected")
    tcpFuzzCheck(refused == expectedRefused, "refused \(refused), expected \(expectedRefused)")
    return 0
}
