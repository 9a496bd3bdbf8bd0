import Glibc
import StatorCore

// stator-micro: parser and aggregation micro-benchmarks on a fixed corpus
// (the bench mix: 50% counters, 30% timers, 10% gauges, 10% sets, 2,000 keys,
// two tags, packed into 1,400-byte datagrams).
//   stator-micro                     lines per second per core: parse only, parse + aggregate, and
//                                    as the agent runs (batched commits, flushes every 400k lines)
//   stator-micro --callgrind ingest --lines N   one pass of parse + aggregate, for instruction counts
//   stator-micro --callgrind parse --lines N    one pass of the parser alone over every line
//   stator-micro --callgrind flush --lines N    two flushes of 400,000 lines each, encoded and folded
//   --shards N                                  lock shards (default as the agent's)
//   stator-micro --rollup [--tenants N --names N --days N]  the roll-up sink: a flush of N x N rows
//                                               (insert, update), N days of history, one tenant's query
//   stator-micro --encoders [--series N]        each sink's emit (encode, and queue or write) for a
//                                               flush of N series (default 100,000), median of 5
//   stator-micro --junk                         agent CPU per 60 KB junk datagram (a refused line)
//   stator-micro --callgrind junk --lines N     N rounds of the junk datagrams, for instruction counts
//   stator-micro --regex [--names N]            pathological regexes on 5,000-byte names, and N new
//                                               names (default 20,000) through 1,000 regex or glob rules

var lineCount = 2_000_000
var callgrind: String?
var encoderSeries: Int?
var rollup: (tenants: Int, names: Int, days: Int)?
var regexNames: Int?
var junk = false
var shards = AggregationConfiguration.defaultShards
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--lines": lineCount = Int(args.popFirst() ?? "") ?? lineCount
    case "--callgrind": callgrind = args.popFirst()
    case "--shards": shards = Int(args.popFirst() ?? "") ?? shards
    case "--encoders": encoderSeries = 100_000
    case "--rollup": rollup = (10_000, 20, 90)
    case "--tenants": rollup?.tenants = Int(args.popFirst() ?? "") ?? 10_000
    case "--regex": regexNames = 20_000
    case "--junk": junk = true
    case "--names":
        let n = Int(args.popFirst() ?? "")
        if regexNames != nil { regexNames = n ?? 20_000 } else { rollup?.names = n ?? 20 }
    case "--days": rollup?.days = Int(args.popFirst() ?? "") ?? 90
    case "--series": encoderSeries = Int(args.popFirst() ?? "") ?? encoderSeries
    default: break
    }
}

if junk || callgrind == "junk" {
    let junkTable = ShardedTable(configuration: AggregationConfiguration(shards: shards), seed: 1)
    if junk {
        benchmarkJunk(table: junkTable)
    } else {
        var junkIngestor = ReaderAggregator(table: junkTable)
        ingestJunk(junkDatagrams().map(\.bytes), rounds: lineCount, into: &junkIngestor)
    }
    exit(0)
}
if let regexNames {
    benchmarkRegexes(names: regexNames)
    exit(0)
}
if let rollup {
    benchmarkRollups(tenants: rollup.tenants, names: rollup.names, days: rollup.days)
    exit(0)
}
if let encoderSeries {
    benchmarkEncoders(series: encoderSeries)
    exit(0)
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

let table = ShardedTable(configuration: AggregationConfiguration(shards: shards), seed: 1)
var ingestor = ReaderAggregator(table: table)

/// Stages `buffers[batch]` as a reader stages a receive batch, and commits them. (What callgrind
/// counts in the `ingest` mode: one function around both, since stage may itself commit.)
@inline(never)
func ingestBatch(_ buffers: [UnsafeRawBufferPointer], _ batch: Range<Int>, into ingestor: inout ReaderAggregator) {
    ingestor.stage(batch: batch.count, payload: { buffers[batch.lowerBound + $0] }, rejected: { _, _, _ in })
    ingestor.commit(rejected: { _, _, _ in })
}

/// Drives the corpus through an ingestor as a reader does at 400k lines/s: ten datagrams per
/// commit (a typical recvmmsg batch), and a flush every 400,000 lines (one second's worth).
/// - Returns: the number of flushes.
@inline(never)
func ingestAsTheAgent(_ datagrams: [[UInt8]], table: ShardedTable, flusher: Flusher) -> Int64 {
    var ingestor = ReaderAggregator(table: table)
    // The datagrams where a batch of them can be handed over together, as a reader's buffers are.
    let buffers = datagrams.map { bytes in
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        copy.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(copy)
    }
    defer { for b in buffers { b.deallocate() } }
    let linesPerDatagram = datagrams.map { d in d.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 } }
    var sinceFlush = 0
    var flushes: Int64 = 0
    for first in stride(from: 0, to: datagrams.count, by: 10) {
        let batch = first..<min(first + 10, datagrams.count)
        ingestBatch(buffers, batch, into: &ingestor)
        for i in batch { sinceFlush += linesPerDatagram[i] }
        if sinceFlush >= 400_000 {
            sinceFlush = 0
            flushes += 1
            flusher.flush(at: flushes * 1000)
        }
    }
    return flushes
}

if callgrind == "ingest" {
    // (Callgrind counts only stage and commit: the flushes are not the hot path.)
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        _ in
    }
    _ = ingestAsTheAgent(datagrams, table: table, flusher: flusher)
    exit(0)
}
/// One second's worth of the corpus (400,000 lines) ingested, then flushed and handed to the
/// JSON-lines encoder and the Prometheus state, twice: the first fold creates every series, the
/// second finds them (the steady state). Callgrind counts each step separately.
@inline(never)
func flushStep(_ flusher: Flusher, at second: Int64) -> FlushBatch { flusher.flush(at: second * 1000) }
@inline(never)
func encodeStep(_ batch: FlushBatch) -> Int { JSONLinesEncoder.encode(batch).count }
@inline(never)
func firstFoldStep(_ state: CumulativeState, _ batch: FlushBatch) -> Bool { state.apply(batch) == nil }
@inline(never)
func foldStep(_ state: CumulativeState, _ batch: FlushBatch) { _ = state.apply(batch) }
if callgrind == "flush" {
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        _ in
    }
    let state = CumulativeState()
    var ingestor = ReaderAggregator(table: table)
    var sinceFlush = 0
    var second: Int64 = 0
    for (n, d) in datagrams.enumerated() {
        d.withUnsafeBytes { ingestor.stage($0, datagram: n % 10, rejected: { _, _, _ in }) }
        if n % 10 == 9 { ingestor.commit(rejected: { _, _, _ in }) }
        sinceFlush += d.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        if sinceFlush >= 400_000 || n == datagrams.count - 1 {
            ingestor.commit(rejected: { _, _, _ in })
            sinceFlush = 0
            second += 1
            let batch = flushStep(flusher, at: second)
            _ = encodeStep(batch)
            if second <= 1 { _ = firstFoldStep(state, batch) } else { foldStep(state, batch) }
            print("series \(batch.seriesCount)")
            if second >= 2 { break }
        }
    }
    exit(0)
}
/// Parses every line of the corpus (the ingestor parses only lines it has not seen before).
@inline(never)
func parseEveryLine(_ datagrams: [[UInt8]]) {
    var line = ParsedLine()
    for d in datagrams {
        d.withUnsafeBytes { raw in
            LineSplitter.forEachLine(in: raw) { range in _ = StatsdParser.parse(raw, range, into: &line) }
        }
    }
}
if callgrind == "parse" {
    parseEveryLine(datagrams)
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

// As the agent runs: ten datagrams per commit (a typical recvmmsg batch at 400k lines/s)
// and a flush every 400,000 lines (one second's worth), summaries included.
do {
    let agentTable = ShardedTable(configuration: AggregationConfiguration(shards: shards), seed: 1)
    let flusher = Flusher(
        table: agentTable, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)
    ) { _ in }
    let t0 = now()
    let flushes = ingestAsTheAgent(datagrams, table: agentTable, flusher: flusher)
    let t = now() - t0
    print(
        "as the agent runs: \(Int(Double(lineCount) / t)) lines/s per core (\(Int(t / Double(lineCount) * 1e9)) ns/line, "
            + "10 datagrams per commit, \(flushes) flushes)")
}
