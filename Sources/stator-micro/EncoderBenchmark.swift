import Glibc
import StatorCore

/// One flush of `series` distinct series (50% counters, 30% timers of five values each, 10%
/// gauges, 10% sets; two tags each), handed to every sink's `emit`: what each format costs to
/// encode (and queue or write) on its sink's thread. The Prometheus sink folds the batch into
/// the shared state first, as in the agent, so remote write and OTLP cumulative only encode.
func benchmarkEncoders(series: Int) {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 16), seed: 1)
    let metrics = SelfMetrics(readers: 1)
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: metrics) { _ in }
    var aggregator = ReaderAggregator(table: table)
    var rng = SplitMix64(state: 7)
    let quiet = Logger(label: "bench", level: .critical)

    /// One interval with every series, flushed a second after the previous one.
    func interval(_ second: Int64) -> FlushBatch {
        var datagram: [UInt8] = []
        func send() {
            datagram.withUnsafeBytes { aggregator.ingest($0) }
            datagram.removeAll(keepingCapacity: true)
        }
        for key in 0..<series {
            let tags = "|#env:e\(key % 5),shard:s\(key % 64)"
            var lines: [String]
            switch key % 10 {
            case 0..<5: lines = ["enc.counter.\(key):1|c\(tags)"]
            case 5..<8: lines = (0..<5).map { _ in "enc.timer.\(key):\(rng.next() % 1000)|ms\(tags)" }
            case 8: lines = ["enc.gauge.\(key):\(rng.next() % 100)|g\(tags)"]
            default: lines = ["enc.set.\(key):u\(rng.next() % 100)|s\(tags)"]
            }
            for line in lines {
                if datagram.count + line.utf8.count + 1 > 1400 { send() }
                if !datagram.isEmpty { datagram.append(0x0A) }
                datagram.append(contentsOf: line.utf8)
            }
        }
        if !datagram.isEmpty { send() }
        return flusher.flush(at: 1_800_000_000_000 + second * 1000)
    }

    let prometheus = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    func push(_ format: PushFormat, temporality: OTLPTemporality = .cumulative) -> any Sink {
        var c = HTTPPushConfiguration()
        c.url = "http://127.0.0.1:9/"  // the discard port: nothing answers; sending is not measured
        c.format = format
        c.temporality = temporality
        c.maxSpoolBytes = 1 << 40
        c.shutdownGraceMillis = 0
        c.initialBackoffMillis = 60_000
        // swift-format-ignore: NeverUseForceTry
        return try! HTTPPushSink(configuration: c, state: prometheus.state, metrics: PushMetrics(), logger: quiet)
    }
    var graphite = GraphiteConfiguration()
    graphite.address = "127.0.0.1:9"
    graphite.maxQueueBytes = 1 << 40
    graphite.shutdownGraceMillis = 0
    var emf = JSONLinesConfiguration(path: "/dev/null")
    emf.format = .emf
    let sinks: [(String, any Sink)] = [
        ("prometheus (fold + page)", prometheus),
        ("json lines", JSONLinesSink(configuration: JSONLinesConfiguration(path: "/dev/null"))),
        ("json lines, emf", JSONLinesSink(configuration: emf)),
        ("push json", push(.json)),
        ("push remote_write", push(.remoteWrite)),
        ("push otlp cumulative", push(.otlp)),
        ("push otlp delta", push(.otlp, temporality: .delta)),
        ("push influx", push(.influx)),
        ("push datadog", push(.datadog)),
        ("graphite", GraphiteSink(configuration: graphite, metrics: nil, logger: quiet)),
    ]
    var times = [[Double]](repeating: [], count: sinks.count)
    var seriesInBatch = 0
    for run in 0..<6 {
        let batch = interval(Int64(run + 1))
        seriesInBatch = batch.seriesCount
        for (k, (_, sink)) in sinks.enumerated() {
            let t0 = now()
            // swift-format-ignore: NeverUseForceTry
            try! sink.emit(batch)
            if run > 0 { times[k].append(now() - t0) }  // the first run creates every series
        }
    }
    print("one flush of \(seriesInBatch) series, each sink's emit (median of \(times[0].count) flushes):")
    for (k, (label, _)) in sinks.enumerated() {
        let median = times[k].sorted()[times[k].count / 2]
        let padded = label + String(repeating: " ", count: max(0, 26 - label.count))
        let ms = (median * 10_000).rounded() / 10
        print("  \(padded) \(ms) ms  \(Int(median / Double(seriesInBatch) * 1e9)) ns/series")
    }
    for (_, sink) in sinks { sink.shutdown() }
}
