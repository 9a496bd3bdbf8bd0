import Glibc
import StatorCore

/// Junk datagrams (SPEC section 12: a rejected line costs no more than finding its end), one
/// 60,000-byte line each: a name past `max_name_bytes` with a value and a type
/// (`name_too_long`), the same name without its `:` (`missing_colon`), and a name with a NUL
/// at its start (`invalid_name`).
func junkDatagrams() -> [(label: String, bytes: [UInt8])] {
    let name = [UInt8](repeating: UInt8(ascii: "j"), count: 60_000)
    return [
        ("60 KB name, `:1|c` after it", name + Array(":1|c".utf8)),
        ("60 KB without a `:`", name),
        ("60 KB name with a NUL first", [0] + name + Array(":1|c".utf8)),
    ]
}

/// Stages and commits each datagram `rounds` times, as a reader does (what callgrind counts in
/// the `junk` mode).
@inline(never)
func ingestJunk(_ datagrams: [[UInt8]], rounds: Int, into ingestor: inout ReaderAggregator) {
    for _ in 0..<rounds {
        for d in datagrams {
            d.withUnsafeBytes { raw in
                ingestor.stage(raw, datagram: 0, rejected: { _, _, _ in })
                ingestor.commit(rejected: { _, _, _ in })
            }
        }
    }
}

/// Prints the agent's CPU per junk datagram of each kind (best of three rounds of 2,000).
func benchmarkJunk(table: ShardedTable) {
    var ingestor = ReaderAggregator(table: table)
    for (label, bytes) in junkDatagrams() {
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = now()
            ingestJunk([bytes], rounds: 2_000, into: &ingestor)
            best = min(best, now() - t0)
        }
        let perDatagram = best / 2_000
        print(
            "junk, \(label): \(fixed(perDatagram * 1e6, 2)) µs per datagram "
                + "(\(fixed(perDatagram / Double(bytes.count) * 1e9, 3)) ns per byte)")
    }
}

private func fixed(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let whole = (value * scale).rounded()
    let text = String(Int(whole))
    guard decimals > 0 else { return text }
    let padded = String(repeating: "0", count: max(0, decimals + 1 - text.count)) + text
    return padded.dropLast(decimals) + "." + padded.suffix(decimals)
}
