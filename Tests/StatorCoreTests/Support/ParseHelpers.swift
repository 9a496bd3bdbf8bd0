@testable import StatorCore

/// Renders a parsed line compactly for table-driven expectations:
/// `name{k=v,...} type=v1,v2[@rate] ...`; gauge deltas are written `d+2`/`d-2`.
func render(_ line: borrowing ParsedLine, _ bytes: UnsafeRawBufferPointer) -> String {
    func text(_ r: Range<Int>) -> String { String(decoding: SeriesKeyBuilder.resolve(bytes, r), as: UTF8.self) }
    var out = text(line.name)
    let values = line.values.toArray()
    if !line.tags.isEmpty {
        // A bare tag shows as its key alone.
        out +=
            "{"
            + line.tags.toArray().map { $0.value == TagRange.bare ? text($0.key) : "\(text($0.key))=\(text($0.value))" }
            .joined(separator: ",") + "}"
    }
    for g in line.groups.toArray() {
        let code: String
        switch g.type {
        case .counter: code = "c"
        case .gauge: code = "g"
        case .set: code = "s"
        case .timer: code = "ms"
        case .histogram: code = "h"
        case .distribution: code = "d"
        }
        out += " \(code)="
        if g.type == .set {
            out += text(g.member)
        } else {
            out += values[g.valueStart..<g.valueEnd].map { v in
                let number = v.value == v.value.rounded() && abs(v.value) < 1e15 ? String(Int64(v.value)) : "\(v.value)"
                return v.isDelta ? "d\(v.value < 0 || (v.value == 0 && v.value.sign == .minus) ? "" : "+")\(number)" : number
            }.joined(separator: ",")
        }
        if g.rate != 1 { out += "@\(g.rate)" }
    }
    if line.timestamp >= 0 { out += " T=\(line.timestamp)" }
    return out
}

/// Parses one line given as bytes; returns the rendering or the outcome.
func parseLine(_ bytes: [UInt8]) -> String {
    bytes.withUnsafeBytes { raw in
        var line = ParsedLine()
        switch StatsdParser.parse(raw, 0..<raw.count, into: &line) {
        case .metric: return render(line, raw)
        case .event: return "event"
        case .failure(let reason): return "error:\(reason)"
        }
    }
}

func parseLine(_ text: String) -> String { parseLine(Array(text.utf8)) }

/// Parses and records lines into a table the way a reader thread does (through
/// `ReaderAggregator`, one line per datagram).
/// - Returns: the outcome of each line (`ok`, `event`, `error:<reason>`).
@discardableResult
func ingest(_ table: ShardedTable, _ lines: [String]) -> [String] {
    var ingestor = ReaderAggregator(table: table)
    return lines.map { text in
        var outcome = "ok"
        let events = ingestor.eventLines
        Array(text.utf8).withUnsafeBytes { raw in
            ingestor.ingest(raw) { reason, _, _ in outcome = "error:\(reason)" }
        }
        if ingestor.eventLines > events { outcome = "event" }
        return outcome
    }
}
