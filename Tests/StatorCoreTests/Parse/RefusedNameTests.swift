import Testing

@testable import StatorCore

/// A line refused for its name (SPEC section 12: a rejected line costs no more than finding
/// its end): the parser's byte-by-byte scan stops at a byte a name cannot hold, or past
/// `max_name_bytes` without a name-tag marker, and the reason comes from `memchr` over the
/// rest. `visited` is how far the scan went (`ParsedLine.nameBytesVisited`, debug builds).
struct RefusedNameCase: Sendable, CustomTestStringConvertible {
    var line: [UInt8]
    var shown: String
    var expected: String
    var visited: Int
    var testDescription: String { "\(shown) -> \(expected), \(visited) bytes visited" }

    init(_ shown: String, _ line: [UInt8], _ expected: String, visited: Int) {
        self.shown = shown
        self.line = line
        self.expected = expected
        self.visited = visited
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
private let j60k = [UInt8](repeating: UInt8(ascii: "j"), count: 60_000)
private let j300 = [UInt8](repeating: UInt8(ascii: "j"), count: 300)

let refusedNameCases: [RefusedNameCase] = [
    RefusedNameCase("j x 60,000 + :1|c", j60k + bytes(":1|c"), "error:name_too_long", visited: 257),
    RefusedNameCase("j x 60,000", j60k, "error:missing_colon", visited: 257),
    RefusedNameCase("j x 300 + | + :1|c", j300 + bytes("|:1|c"), "error:invalid_name", visited: 257),
    RefusedNameCase("j x 300 + NUL + :1|c", j300 + [0] + bytes(":1|c"), "error:invalid_name", visited: 257),
    RefusedNameCase("j x 300 + :1|c + NUL", j300 + bytes(":1|c") + [0], "error:name_too_long", visited: 257),
    RefusedNameCase("j x 300 + NUL, no colon", j300 + [0] + j300, "error:missing_colon", visited: 257),
    RefusedNameCase("NUL + j x 60,000 + :1|c", [0] + j60k + bytes(":1|c"), "error:invalid_name", visited: 0),
    RefusedNameCase("| + j x 60,000", bytes("|") + j60k, "error:missing_colon", visited: 0),
    RefusedNameCase("j x 300 + ,k=v:1|c (the marker past the limit)", j300 + bytes(",k=v:1|c"), "error:name_too_long", visited: 257),
    RefusedNameCase("j x 300 + é:1|c", j300 + bytes("é:1|c"), "error:name_too_long", visited: 257),
    // Name tags before the limit: the name ended there, the scan goes on to the `:`.
    RefusedNameCase(
        "j x 10 + ,k= + v x 300 + :1|c", bytes("jjjjjjjjjj,k=") + [UInt8](repeating: UInt8(ascii: "v"), count: 300) + bytes(":1|c"),
        "error:tags_too_long", visited: 313),
    RefusedNameCase("j x 256 + :1|c", [UInt8](repeating: UInt8(ascii: "j"), count: 256) + bytes(":1|c"), "ok", visited: 256),
]

@Test(arguments: refusedNameCases)
func aRefusedNameIsNotScannedPastWhereItIsRefused(_ c: RefusedNameCase) {
    c.line.withUnsafeBytes { raw in
        var line = ParsedLine()
        let outcome: String
        switch StatsdParser.parse(raw, 0..<raw.count, into: &line) {
        case .metric: outcome = "ok"
        case .event: outcome = "event"
        case .failure(let reason): outcome = "error:\(reason)"
        }
        #expect(outcome == c.expected)
        #if DEBUG
            #expect(line.nameBytesVisited == c.visited)
        #endif
    }
}

/// The reasons of the name, as a full scan gives them, in its order: no `:` at all; a `|` or
/// NUL before the first `:`; nothing before the name's end (a marker `[` `#` `,` or the `:`);
/// a name over the limit. `nil` when the name passes.
private func referenceNameReason(_ line: [UInt8], maxNameBytes: Int) -> String? {
    guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return "missing_colon" }
    if line[..<colon].contains(where: { $0 == UInt8(ascii: "|") || $0 == 0 }) { return "invalid_name" }
    let nameEnd = line[..<colon].firstIndex(where: { Array("[#,".utf8).contains($0) }) ?? colon
    if nameEnd == 0 { return "empty_name" }
    if nameEnd > maxNameBytes { return "name_too_long" }
    return nil
}

/// Random lines over the bytes that matter to a name, with a limit of 4 bytes: the parser
/// refuses a name for the same reason as a full scan, and for no other line.
@Test func aRefusedNameGetsTheReasonOfAFullScan() {
    var rng = SplitMix64(state: 20_261_207)  // seeded: a failure comes back on the next run
    let alphabet = Array("ab:|,[#1c".utf8) + [0, 0xC3, 0xA9]
    let nameReasons: Set<String> = ["missing_colon", "invalid_name", "empty_name", "name_too_long"]
    for _ in 0..<20_000 {
        let n = Int(rng.next() % 24)
        let line = (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        guard !(line.count >= 3 && line[0] == UInt8(ascii: "_")) else { continue }  // (events)
        let got = line.withUnsafeBytes { raw -> String in
            var parsed = ParsedLine(limits: LineLimits(maxNameBytes: 4))
            if case .failure(let reason) = StatsdParser.parse(raw, 0..<raw.count, into: &parsed) { return "\(reason)" }
            return "ok"
        }
        let expected = referenceNameReason(line, maxNameBytes: 4)
        if let expected {
            #expect(got == expected, "\(line)")
        } else {
            #expect(!nameReasons.contains(got), "\(line)")
        }
    }
}
