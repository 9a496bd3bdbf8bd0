import Glibc
import StatorCore

/// The roll-up sink at scale: `tenants` × `names` counters rolled up per flush (the first
/// flush of a day inserts every row, later ones update them), a `days`-day history, and a
/// query of one tenant over all of it through the API, as `GET /api/v1/rollups` runs it.
func benchmarkRollups(tenants: Int, names: Int, days: Int) {
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
    configuration.retentionDays = days
    configuration.limits = [.init(match: "usage.0", daily: 1000)]
    let day0: EpochMillis = 1_790_000_000_000 / 86_400_000 * 86_400_000  // a midnight, UTC
    // swift-format-ignore: NeverUseForceTry
    let sink = try! RollupSink(
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

    // A day of flushes: the first inserts every row, the others update them.
    var inserts: [Double] = []
    var updates: [Double] = []
    for day in 0..<days {
        let midnight = day0 + EpochMillis(day) * 86_400_000
        for flush in 0..<(day == days - 1 ? 6 : 1) {
            let batch = interval(at: midnight + EpochMillis(flush + 1) * 10_000)
            // swift-format-ignore: NeverUseForceTry
            let seconds = timed { try! sink.emit(batch) }
            if flush == 0 { inserts.append(seconds) } else { updates.append(seconds) }
        }
    }
    sink.shutdown()
    var st = stat()
    stat(path, &st)
    let rows = Double(tenants * names * days)
    print("roll-ups, \(tenants) tenants x \(names) names = \(tenants * names) rows per day, \(days) days:")
    print("  a day's first flush (inserts): median \((median(inserts) * 1e4).rounded() / 10) ms over \(inserts.count) days")
    print("  a later flush (updates):       median \((median(updates) * 1e4).rounded() / 10) ms over \(updates.count) flushes")
    print("  database: \(Int(st.st_size)) bytes, \(Int(Double(st.st_size) / rows)) bytes per row (\(Int(rows)) rows)")

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
    print(
        "  one tenant, \(days) days (\(names * days) rows, \(returned) bytes of JSON): median "
            + "\((median(queries) * 1e4).rounded() / 10) ms over \(queries.count) queries")
}
