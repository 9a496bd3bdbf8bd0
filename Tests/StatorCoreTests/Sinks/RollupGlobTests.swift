import Foundation
import Testing
@testable import StatorCore

private let quiet = Logger(label: "test", level: .critical)

@Test(
    arguments: [
        ("caf?", "café", true), ("caf?", "cafe", true), ("caf??", "café", false), ("?", "€", true), ("??", "€", false),
        ("*??", "€", false), ("*??", "a€", true), ("?", "𝄞", true), ("a*?b", "a𝄞b", true), ("*.?", "x.é", true),
        ("*a", "*ba", true), ("?*", "", false), ("*é*", "café.calls", true),
    ] as [(String, String, Bool)])
func globsMatchCharactersNotBytes(_ pattern: String, _ name: String, _ expected: Bool) {
    #expect(Glob.matches(pattern, name) == expected)
}

/// A byte that starts no well-formed UTF-8 scalar is one character of its own.
@Test(
    arguments: [
        ([0x61, 0xC3, 0x62], true), ([0x61, 0xC3, 0xA9, 0x62], true), ([0x61, 0xE2, 0x82, 0x62], false),
        ([0x61, 0xED, 0xA0, 0x80, 0x62], false), ([0x61, 0xFF, 0x62], true),
    ] as [([UInt8], Bool)])
func aByteOutsideUTF8IsOneCharacter(_ name: [UInt8], _ expected: Bool) {
    #expect(name.withUnsafeBytes { Glob.matches(Array("a?b".utf8), $0) } == expected)
}

/// `caf?` rolls up, limits and finds `café` as `cafe`, in the waiting rows and in the table.
@Test func aQuestionMarkIsOneCharacterInMatchLimitsAndTheAPI() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = RollupConfiguration()
    configuration.path = path
    configuration.match = ["caf?"]
    configuration.limits = [.init(match: "caf?", daily: 10)]
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight + 1000)
    let counters = ["cafe", "café", "caf€s"].map { rollupCounter($0, 1, [("tenant", "acme")]) }
    try sink.emit(FlushBatch(timestamp: rollupMidnight + 10_000, interval: 10, percentiles: [], counters: counters))
    let expected = ["cafe", "café"].map { RollupRow(day: "2026-12-06", key: "acme", name: $0, type: "counter", sum: 1) }
    #expect(try allRollupRows(sink) == expected)
    #expect(sink.renderUsage().contains("stator_rollup_usage_ratio{key=\"acme\",name=\"café\"} 0.1\n"))
    let query = { (s: RollupSink) in
        try s.rows(key: nil, nameGlob: "caf?", start: "0000-01-01", end: "9999-12-31", after: nil, limit: 10)
    }
    #expect(try query(sink) == expected)  // from the waiting rows
    sink.shutdown()  // folds every waiting row into the table
    let reopened = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight + 20_000)
    #expect(try query(reopened) == expected)  // from the table
    #expect(reopened.renderUsage().contains("stator_rollup_usage_ratio{key=\"acme\",name=\"café\"} 0.1\n"))
}
