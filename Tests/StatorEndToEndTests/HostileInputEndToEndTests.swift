import Foundation
import Glibc
import Testing

// Hostile input over the network (issue 6): a cardinality bomb and abusive HTTP clients.

@Test func aCardinalityBombIsCappedCountedAndForgotten() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", "200ms", "--sinks.json.path", out, "--max_series", "1000", "--series_ttl", "1s",
            "--udp.readers", "1",
        ])
    // Four series exist before the bomb.
    try agent.send(["known.c:1|c", "known.g:5|g", "known.t:10|ms", "known.s:a|s"])
    try eventually("the known series") { try selfMetric(agent, "stator_series_active") == 4 }
    // 5,000 distinct names, 40 lines a datagram, interleaved with more known data.
    for chunk in 0..<125 {
        let lines = (0..<40).map { "bomb.\(chunk * 40 + $0):1|c" }
        try agent.send([lines.joined(separator: "\n"), "known.c:1|c\nknown.t:20|ms"])
    }
    try eventually("every bomb line counted") {
        try selfMetric(agent, "stator_lines_received_total") == 4 + 5_000 + 250
    }
    // 996 bomb series fit under max_series; the other 4,004 lines are refused and counted.
    #expect(try selfMetric(agent, "stator_series_active") == 1000)
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{reason="series_limit"}"#) == 4_004)
    #expect(try selfMetric(agent, "stator_udp_kernel_drops_total") == 0)
    // The existing series kept aggregating, exactly.
    try eventually("the known series flushed") {
        let objects = (try? jsonLines(readFile(out))) ?? []
        let c = objects.filter { $0["name"] as? String == "known.c" }.reduce(0) { $0 + ($1["value"] as? Double ?? 0) }
        let t = objects.filter { $0["name"] as? String == "known.t" }.reduce(0) { $0 + ($1["count"] as? Double ?? 0) }
        return c == 126 && t == 126
    }
    // After series_ttl without data, every series is forgotten and new names are welcome again.
    try eventually("the series expire") { try selfMetric(agent, "stator_series_active") == 0 }
    try agent.send((0..<10).map { "after.\($0):1|c" })
    try eventually("new series accepted") { try selfMetric(agent, "stator_series_active") == 10 }
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{reason="series_limit"}"#) == 4_004)
    #expect(try agent.stop() == 0)
}
