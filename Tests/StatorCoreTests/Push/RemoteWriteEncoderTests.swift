import Testing
@testable import StatorCore

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Test func writeRequestBytesArePinned() {
    let series = RemoteWriteEncoder.Series(labels: [(bytes("__name__"), bytes("up")), (bytes("job"), bytes("x"))], value: 1)
    let encoded = RemoteWriteEncoder.writeRequest([series][...], timestamp: 1000)
    let label1: [UInt8] = [0x0A, 0x08] + bytes("__name__") + [0x12, 0x02] + bytes("up")
    let label2: [UInt8] = [0x0A, 0x03] + bytes("job") + [0x12, 0x01] + bytes("x")
    let sample: [UInt8] = [0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 0xE8, 0x07]
    let timeSeries: [UInt8] = [0x0A, 0x0E] + label1 + [0x0A, 0x08] + label2 + [0x12, 0x0C] + sample
    #expect(encoded == [0x0A, 0x28] + timeSeries)
}

@Test func seriesComeFromTheSharedStateWithSortedLabelsAndHistograms() throws {
    let table = ShardedTable(
        configuration: AggregationConfiguration(shards: 2, buckets: HistogramBuckets(defaults: [0.1])), seed: 3)
    let state = CumulativeState()
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        state.apply($0)
    }
    ingest(table, ["hits:2|c|#zone:b,app:a", "temp:3|g", "lat:50|ms", "lat:500|ms|@0.5"])
    flusher.flush(at: 10_000)
    ingest(table, ["hits:1|c|#zone:b,app:a"])
    flusher.flush(at: 20_000)
    let (series, timestamp, sequence) = RemoteWriteEncoder.series(from: state)
    #expect(timestamp == 20_000)
    #expect(sequence == 2)
    func find(_ name: String, _ extra: [(String, String)] = []) -> Double? {
        let labels = ([("__name__", name)] + extra).sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            .map { (bytes($0.0), bytes($0.1)) }
        return series.first { $0 == RemoteWriteEncoder.Series(labels: labels, value: $0.value) }?.value
    }
    #expect(find("hits_total", [("app", "a"), ("zone", "b")]) == 3)
    #expect(find("temp") == 3)
    #expect(find("lat_seconds_bucket", [("le", "0.1")]) == 1)
    #expect(find("lat_seconds_bucket", [("le", "+Inf")]) == 3)
    #expect(find("lat_seconds_count") == 3)
    #expect(find("lat_seconds_sum") == 1.05)
    #expect(series.count == 1 + 1 + 4)  // hits, temp, lat: two buckets, _sum, _count
    // Every series' labels are in byte order, __name__ first here.
    for s in series {
        #expect(s.labels.first?.name == bytes("__name__"))
        #expect(zip(s.labels, s.labels.dropFirst()).allSatisfy { $0.name.lexicographicallyPrecedes($1.name) })
    }
}

@Test func escapedLabelValuesComeBackRaw() {
    let key = MetricKey(type: .gauge, name: "x", tags: [("q", "say \"hi\"\nback\\slash")])
    let labels = PrometheusNaming.labels(of: key, histogram: false)
    let parsed = RemoteWriteEncoder.parseLabels(labels)
    #expect(parsed.count == 1)
    #expect(parsed.first?.value == bytes("say \"hi\"\nback\\slash"))
}
