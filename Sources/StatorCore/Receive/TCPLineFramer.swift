import CStatorSys
import Glibc

/// One TCP connection's stream cut into lines (SPEC section 9), a chunk at a time.
///
/// The caller puts the partial line left from the last chunk (`partial`, at most
/// `maxLineBytes`) in front of each new chunk and hands both to `frame`, which finds the
/// complete lines (up to the chunk's last newline) and keeps the rest as the next partial
/// line. A line longer than `maxLineBytes` is refused once and left out, whether it lies
/// whole in a chunk or runs on past one (then the rest is skipped up to its newline, over as
/// many chunks as it takes). At close, `finish` gives the last line if it had no newline.
/// Lengths exclude the newline. Not shared: one per connection.
struct TCPLineFramer {
    /// The longest line (`tcp.max_line_bytes`).
    let maxLineBytes: Int
    /// The line begun in the last chunk (at most `maxLineBytes` bytes).
    private(set) var partial: [UInt8] = []
    /// Skipping the rest of a line longer than `maxLineBytes`, up to its newline.
    private(set) var skipping = false

    init(maxLineBytes: Int) { self.maxLineBytes = maxLineBytes }

    /// Frames one chunk.
    /// - Parameters:
    ///   - bytes: the buffer holding `data`.
    ///   - data: `partial` (as this framer held it) followed by the new chunk.
    ///   - regions: where the ranges of complete lines are appended (each may hold many lines,
    ///     newlines included; none holds a line longer than `maxLineBytes`).
    /// - Returns: the end of what the regions use of `bytes` (`data.lowerBound` when nothing),
    ///   and how many lines were refused as too long.
    mutating func frame(_ bytes: UnsafeRawBufferPointer, _ data: Range<Int>, into regions: inout [Range<Int>]) -> (
        used: Int, refused: Int
    ) {
        var data = data
        let kept = partial.count
        partial.removeAll(keepingCapacity: true)
        if skipping {
            // The rest of a line that was too long: dropped up to its newline (no partial is
            // kept while skipping, so all of `data` is the new chunk).
            guard let newline = Self.firstNewline(bytes, in: (data.lowerBound + kept)..<data.upperBound) else {
                return (data.lowerBound, 0)
            }
            skipping = false
            data = (newline + 1)..<data.upperBound
        }
        // Lines up to the last newline are complete; the rest waits for the next chunk.
        let end = Self.lastNewline(bytes, in: data).map { $0 + 1 } ?? data.lowerBound
        let rest = end..<data.upperBound
        var refused = 0
        if rest.count > maxLineBytes {
            refused += 1
            skipping = true
        } else if !rest.isEmpty {
            partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[rest]))
        }
        refused += complete(data.lowerBound..<end, bytes, into: &regions)
        return (end, refused)
    }

    /// At close: the last line, when it had no newline (and was not being skipped).
    mutating func finish() -> [UInt8]? {
        defer {
            partial = []
            skipping = false
        }
        return partial.isEmpty || skipping ? nil : partial
    }

    /// Appends complete lines, leaving out any longer than `maxLineBytes`.
    /// - Returns: how many were left out.
    private func complete(_ lines: Range<Int>, _ bytes: UnsafeRawBufferPointer, into regions: inout [Range<Int>]) -> Int {
        guard !lines.isEmpty else { return 0 }
        guard lines.count > maxLineBytes else {
            regions.append(lines)  // no line in it can be too long
            return 0
        }
        var refused = 0
        var from = lines.lowerBound
        var at = lines.lowerBound
        while at < lines.upperBound {
            let newline = Self.firstNewline(bytes, in: at..<lines.upperBound) ?? (lines.upperBound - 1)
            if newline - at > maxLineBytes {
                if at > from { regions.append(from..<at) }
                refused += 1
                from = newline + 1
            }
            at = newline + 1
        }
        if from < lines.upperBound { regions.append(from..<lines.upperBound) }
        return refused
    }

    static func firstNewline(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Int? {
        ByteScan.find(0x0A, in: bytes, range)
    }

    static func lastNewline(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Int? {
        guard !range.isEmpty, let base = bytes.baseAddress,
            let hit = CStatorSys_memrchr(base + range.lowerBound, 0x0A, range.count)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }
}
