import Glibc
import CStatorSys
import StatorCore

// stator-micro: parser and aggregation micro-benchmarks on a fixed corpus
// (the bench mix: 50% counters, 30% timers, 10% gauges, 10% sets, 2,000 keys,
// two tags, packed into 1,400-byte datagrams).
//   stator-micro                     lines per second per core, parse only and parse + aggregate
//   stator-micro --callgrind --lines N   one pass of parse + aggregate, for instruction counts

var lineCount = 2_000_000
var callgrind = false
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--lines": lineCount = Int(args.popFirst() ?? "") ?? lineCount
    case "--callgrind": callgrind = true
    default: break
    }
}

// The corpus: datagrams of up to 1,400 bytes.
var rng = SplitMix64(state: 42)
var datagrams: [[UInt8]] = []
var current: [UInt8] = []
for _ in 0..<lineCount {
    let key = Int(rng.next() % 2000)
    let pick = rng.next() % 10
    let tags = "|#t0:v\(key % 7),t1:v\((key + 1) % 7)"
    let text: String
    switch pick {
    case 0..<5: text = "bench.counter.\(key):1|c\(tags)"
    case 5..<8: text = "bench.timer.\(key):\(rng.next() % 1000)|ms\(tags)"
    case 8: text = "bench.gauge.\(key):\(rng.next() % 100)|g\(tags)"
    default: text = "bench.set.\(key):u\(rng.next() % 100)|s\(tags)"
    }
    if !current.isEmpty, current.count + 1 + text.utf8.count > 1400 {
        datagrams.append(current)
        current = []
    }
    if !current.isEmpty { current.append(0x0A) }
    current.append(contentsOf: text.utf8)
}
if !current.isEmpty { datagrams.append(current) }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let table = ShardedTable(configuration: AggregationConfiguration(), seed: 1)
var ingestor = DatagramIngestor(table: table)

if CommandLine.arguments.contains("--expiry-memory") {
    // Heap in use through a cardinality bomb's life: 300k series, flushed into the Prometheus sink, then expired.
    let metrics = SelfMetrics(readers: 1)
    let t = ShardedTable(configuration: AggregationConfiguration(), seed: 1)
    let sink = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    let flusher = Flusher(
        table: t, configuration: FlushConfiguration(intervalMillis: 1000, seriesTTLMillis: 2000),
        startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    var ing = DatagramIngestor(table: t)
    print("start", CStatorSys_heap_bytes_in_use())
    var k = 0
    while k < 300_000 {
        var d: [UInt8] = []
        for _ in 0..<40 { d += Array("bomb.\(k):1|c\n".utf8); k += 1 }
        d.withUnsafeBytes { ing.ingest($0) }
    }
    print("ingested", CStatorSys_heap_bytes_in_use())
    flusher.flush(at: 1000)
    print("flushed", CStatorSys_heap_bytes_in_use(), t.activeSeries)
    for n in 2...5 {
        flusher.flush(at: Int64(n) * 1000);
        print("flush \(n)", CStatorSys_heap_bytes_in_use(), t.activeSeries, sink.state.familyCount)
    }
    exit(0)
}

if callgrind {
    for d in datagrams { d.withUnsafeBytes { ingestor.ingest($0) } }
    exit(0)
}

// Parse only.
var parsed = ParsedLine()
var metrics = 0
var best = Double.infinity
for _ in 0..<3 {
    let t0 = now()
    for d in datagrams {
        d.withUnsafeBytes { raw in
            LineSplitter.forEachLine(in: raw) { r in
                if case .metric = StatsdParser.parse(raw, r, into: &parsed) { metrics &+= 1 }
            }
        }
    }
    best = min(best, now() - t0)
}
print("parse only:        \(Int(Double(lineCount) / best)) lines/s per core (\(Int(best / Double(lineCount) * 1e9)) ns/line)")

// Parse + aggregate (one reader, no contention), flushing between rounds as the agent does.
best = .infinity
for _ in 0..<3 {
    let t0 = now()
    for d in datagrams { d.withUnsafeBytes { ingestor.ingest($0) } }
    best = min(best, now() - t0)
}
print("parse + aggregate: \(Int(Double(lineCount) / best)) lines/s per core (\(Int(best / Double(lineCount) * 1e9)) ns/line)")
print("(\(lineCount) lines in \(datagrams.count) datagrams; \(metrics / 3) metric lines per parse pass)")
