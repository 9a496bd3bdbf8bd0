import Testing
@testable import StatorCore

/// An independent snappy block decoder, written from the format description:
/// varint length, then elements tagged by the low two bits (literal, copy with
/// 1-, 2- or 4-byte offset).
func snappyDecode(_ input: [UInt8]) throws -> [UInt8] {
    struct Corrupt: Error {}
    var i = 0
    var length = 0
    var shift = 0
    while true {
        guard i < input.count else { throw Corrupt() }
        let b = input[i]
        i += 1
        length |= Int(b & 0x7F) << shift
        if b < 0x80 { break }
        shift += 7
    }
    var out: [UInt8] = []
    while i < input.count {
        let tag = input[i]
        i += 1
        switch tag & 3 {
        case 0:
            var n = Int(tag >> 2)
            if n >= 60 {
                let extra = n - 59
                n = 0
                for k in 0..<extra { n |= Int(input[i + k]) << (8 * k) }
                i += extra
            }
            n += 1
            guard i + n <= input.count else { throw Corrupt() }
            out.append(contentsOf: input[i..<(i + n)])
            i += n
        case 1:
            let n = Int((tag >> 2) & 7) + 4
            let offset = Int(tag >> 5) << 8 | Int(input[i])
            i += 1
            guard offset > 0, offset <= out.count else { throw Corrupt() }
            for _ in 0..<n { out.append(out[out.count - offset]) }
        case 2:
            let n = Int(tag >> 2) + 1
            let offset = Int(input[i]) | Int(input[i + 1]) << 8
            i += 2
            guard offset > 0, offset <= out.count else { throw Corrupt() }
            for _ in 0..<n { out.append(out[out.count - offset]) }
        default:
            let n = Int(tag >> 2) + 1
            var offset = 0
            for k in 0..<4 { offset |= Int(input[i + k]) << (8 * k) }
            i += 4
            guard offset > 0, offset <= out.count else { throw Corrupt() }
            for _ in 0..<n { out.append(out[out.count - offset]) }
        }
    }
    guard out.count == length else { throw Corrupt() }
    return out
}

@Test func snappyKnownVectors() throws {
    #expect(Snappy.compress([]) == [0x00])
    #expect(Snappy.compress(Array("a".utf8)) == [0x01, 0x00, 0x61])
    // 20 x "a": literal "a", then an overlapping copy of 19 bytes at offset 1 (tag ((19-1)<<2)|2 = 0x4A).
    let run = Snappy.compress(Array(repeating: 0x61, count: 20))
    #expect(run == [0x14, 0x00, 0x61, 0x4A, 0x01, 0x00])
    #expect(try snappyDecode(run) == Array(repeating: 0x61, count: 20))
}

@Test(arguments: [0, 1, 3, 4, 59, 60, 61, 255, 256, 1000, 65_535, 65_536, 65_537, 200_000])
func snappyRoundTripsThroughAnIndependentDecoder(_ size: Int) throws {
    var rng = SplitMix64(state: UInt64(size) + 1)
    // Half random bytes, half repetitive text, so both literals and copies occur.
    let text = Array("api_requests_total{env=\"prod\",region=\"eu\"} ".utf8)
    let input = (0..<size).map { i in i % 1000 < 500 ? UInt8(truncatingIfNeeded: rng.next()) : text[i % text.count] }
    #expect(try snappyDecode(Snappy.compress(input)) == input)
}

@Test func snappyCompressesRepetitiveData() {
    let input = Array(String(repeating: "http_requests_total{code=\"200\"} 1027\n", count: 2000).utf8)
    #expect(Snappy.compress(input).count * 10 < input.count)
}
