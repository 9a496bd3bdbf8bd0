import Foundation
import Testing
@testable import StatorCore

/// Reference test: the byte parser agrees with the standard library on every form it accepts.
@Test(arguments: [
    "0", "1", "-1", "12.5", "-2.5", "1e3", "1E-2", "123456789012345", "1234567890123456789",
    "0.1", "0.3", "3.14159265358979", "2.2250738585072014e-308", "1.7976931348623157e308",
    "9007199254740993", "0.000001", "123.456e-7", "00012", "-0.0",
])
func parsesLikeTheStandardLibrary(_ text: String) throws {
    let ours = Array(text.utf8).withUnsafeBytes { NumberParsing.parseDouble($0, 0..<$0.count) }
    let reference = try #require(Double(text))
    #expect(ours == reference)
}

@Test func randomDecimalsMatchTheStandardLibrary() {
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<20_000 {
        let whole = Int.random(in: 0...999_999_999, using: &rng)
        let fraction = Int.random(in: 0...999_999, using: &rng)
        let digits = Int.random(in: 0...6, using: &rng)
        var text = "\(Bool.random(using: &rng) ? "-" : "")\(whole)"
        if digits > 0 { text += "." + String(String(fraction).prefix(digits)) }
        let ours = Array(text.utf8).withUnsafeBytes { NumberParsing.parseDouble($0, 0..<$0.count) }
        #expect(ours == Double(text), "\(text)")
    }
}

@Test(arguments: ["", "-", "+", ".", "e5", "1e", "1e+", "0x10", "1_000", "inf", "nan", "1e400", "-1e400", "1.2.3", " 1", "1 "])
func rejectsNonNumbers(_ text: String) {
    #expect(Array(text.utf8).withUnsafeBytes { NumberParsing.parseDouble($0, 0..<$0.count) } == nil)
}

/// A number text longer than `maxBytes` is refused before it is read (`strtod` over 60 KB of
/// digits cost 100-230 µs a line); `%f` of the largest double still fits.
@Test func numbersOverTheLengthBoundAreRefusedUnread() {
    func parse(_ text: String) -> Double? { Array(text.utf8).withUnsafeBytes { NumberParsing.parseDouble($0, 0..<$0.count) } }
    let largest = String(format: "%f", Double.greatestFiniteMagnitude)
    #expect(largest.utf8.count == 316)
    #expect(parse(largest) == Double.greatestFiniteMagnitude)
    let longest = "1." + String(repeating: "0", count: NumberParsing.maxBytes - 2)
    #expect(parse(longest) == 1)
    #expect(parse(longest + "0") == nil)
    #expect(parse("1." + String(repeating: "9", count: 60_000)) == nil)
}
