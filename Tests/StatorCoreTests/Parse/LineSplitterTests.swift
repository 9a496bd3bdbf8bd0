import Testing
@testable import StatorCore

/// Reference test against the standard library's split, for many chunkings.
@Test(arguments: [
    "", "\n", "\n\n\n", "a", "a\n", "\na", "a\nb", "a\r\nb\r\n", "a\n\nb", "a\r", "\r\n", "x:1|c\ny:2|c\r\n\nz:3|g",
])
func splitsLikeTheStandardLibrary(_ text: String) {
    let bytes = Array(text.utf8)
    var ours: [String] = []
    bytes.withUnsafeBytes { raw in
        LineSplitter.forEachLine(in: raw) { r in
            ours.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[r]), as: UTF8.self))
        }
    }
    let reference = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        .map { $0.last == 0x0D ? $0.dropLast() : $0 }
        .filter { !$0.isEmpty }
        .map { String(decoding: $0, as: UTF8.self) }
    #expect(ours == reference)
}
