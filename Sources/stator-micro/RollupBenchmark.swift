import Glibc
import StatorCore

/// The roll-up sink at scale: `tenants` × `names` counters rolled up per flush, a `days`-day
/// history (each day's rows folded whole, as at a SIGTERM), two days of 10-second flushes, and a
/// query of one tenant over all of it through the API, as `GET /api/v1/rollups` runs it.
func benchmarkRollups(tenants: Int, names: Int, days: Int, flushesPerDay: Int = 40) {
    let dir = "/tmp/stator-rollup-bench-\(getpid())"
    mkdir(dir, 0o700)
    let path = dir + "/rollups.db"
    defer {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        rmdir(dir)
    }
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 16, maxSeries: tenants * names + 1000), seed: 1)
    let metrics = SelfMetrics(readers: 1)
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: metrics) { _ in }
    var aggregator = ReaderAggregator(table: table)
    var configuration = RollupConfiguration()
    configuration.path = path
    configuration.retentionDays = days - 1  // the last midnight expires the first day
    configuration.limits = [.init(match: "usage.0", daily: 1000)]
    let day0: EpochMillis = 1_790_000_000_000 / 86_400_000 * 86_400_000  // a midnight, UTC
    // swift-format-ignore: NeverUseForceTry
    var sink = try! RollupSink(
        configuration: configuration, metrics: nil, logger: Logger(label: "bench", level: .critical), now: day0)

    /// One flush's worth: every tenant's every name once.
    func interval(at millis: EpochMillis) -> FlushBatch {
        var datagram: [UInt8] = []
        for tenant in 0..<tenants {
            for name in 0..<names {
                let line = "usage.\(name):\(1 + (tenant + name) % 7)|c|#tenant:t\(tenant)"
                if datagram.count + line.utf8.count + 1 > 1400 {
                    datagram.withUnsafeBytes { aggregator.ingest($0) }
                    datagram.removeAll(keepingCapacity: true)
                }
                if !datagram.isEmpty { datagram.append(0x0A) }
                datagram.append(contentsOf: line.utf8)
            }
        }
        datagram.withUnsafeBytes { aggregator.ingest($0) }
        return flusher.flush(at: millis)
    }
    func timed(_ body: () -> Void) -> Double {
        let t0 = now()
        body()
        return now() - t0
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func ms(_ seconds: Double) -> Double { (seconds * 1e4).rounded() / 10 }

    // History: each day's one flush, folded whole as at a SIGTERM (a day's rows inserted).
    var dayFolds: [Double] = []
    for day in 0..<(days - 2) {
        let batch = interval(at: day0 + EpochMillis(day) * 86_400_000 + 10_000)
        // swift-format-ignore: NeverUseForceTry
        try! sink.emit(batch)
        dayFolds.append(timed { sink.shutdown() })
    }
    var st = stat()
    stat(path, &st)
    let historyBytes = Int(st.st_size)
    let historyRows = Double(tenants * names * (days - 2))
    // A restart (no series known), then the last two days: flushes every 10 s, each folding
    // a part of the rows waiting. At midnight the day before's rows still wait, every series
    // starts a new row, and the first day's rows expire, a chunk a flush.
    var flushes: [Double] = []
    var firstAfterStart = 0.0
    var firstAfterMidnight = 0.0
    // swift-format-ignore: NeverUseForceTry
    sink = try! RollupSink(
        configuration: configuration, metrics: nil, logger: Logger(label: "bench", level: .critical),
        now: day0 + EpochMillis(days - 2) * 86_400_000)
    for day in (days - 2)..<days {
        let midnight = day0 + EpochMillis(day) * 86_400_000
        for flush in 0..<flushesPerDay {
            let batch = interval(at: midnight + EpochMillis(flush + 1) * 10_000)
            // swift-format-ignore: NeverUseForceTry
            let seconds = timed { try! sink.emit(batch) }
            if day == days - 2, flush == 0 {
                firstAfterStart = seconds  // every series' row worked out
            } else {
                flushes.append(seconds)
            }
            if day == days - 1, flush == 0 { firstAfterMidnight = seconds }
        }
    }
    // Queries while a day's changes wait unfolded, as between SIGTERMs.
    let last = RollupSink.day(of: day0 + EpochMillis(days - 1) * 86_400_000)
    let first = RollupSink.day(of: day0)
    var queries: [Double] = []
    var returned = 0
    for k in 0..<21 {
        let head = HTTPRequestHead(
            method: "GET", path: "/api/v1/rollups", query: "key=t\((k * 997) % tenants)&start=\(first)&end=\(last)")
        var response: HTTPResponse?
        queries.append(timed { response = sink.answer(head) })
        returned = response?.contentLength ?? 0
    }
    stat(path + "-wal", &st)
    let walBytes = Int(st.st_size)
    let finalFold = timed { sink.shutdown() }
    print("roll-ups, \(tenants) tenants x \(names) names = \(tenants * names) rows per day, \(days) days:")
    print(
        "  a flush (changes merged, a part folded, the rest saved): median \(ms(median(flushes))) ms, "
            + "slowest \(ms(flushes.max() ?? 0)) ms, over \(flushes.count) flushes across a midnight")
    print("    the first after midnight \(ms(firstAfterMidnight)) ms; the first after a start \(ms(firstAfterStart)) ms")
    print("    in run order: \(flushes.map { "\(ms($0))" }.joined(separator: " "))")
    print("  a whole day's rows folded at once (SIGTERM): median \(ms(median(dayFolds))) ms, last day \(ms(finalFold)) ms")
    print("  write-ahead log before the last fold: \(walBytes) bytes")
    print(
        "  database after \(days - 2) days: \(historyBytes) bytes, \(Int(Double(historyBytes) / historyRows)) bytes "
            + "per row (\(Int(historyRows)) rows)")

    print(
        "  one tenant, \(days) days (\(names * days) rows, \(returned) bytes of JSON): median "
            + "\(ms(median(queries))) ms over \(queries.count) queries")
}
