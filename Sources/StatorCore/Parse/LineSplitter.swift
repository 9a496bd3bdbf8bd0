import Glibc

/// Splits a datagram into lines at `\n` without copying: calls `body` with each
/// non-empty line's range, a trailing `\r` stripped.
public enum LineSplitter {
    @inline(__always)
    public static func forEachLine(in bytes: UnsafeRawBufferPointer, _ body: (Range<Int>) -> Void) {
        guard let base = bytes.baseAddress else { return }
        var start = 0
        let count = bytes.count
        while start < count {
            var end = count
            if let hit = memchr(base + start, 0x0A, count - start) {
                end = base.distance(to: UnsafeRawPointer(hit))
            }
            var lineEnd = end
            if lineEnd > start, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd > start { body(start..<lineEnd) }
            start = end + 1
        }
    }
}
