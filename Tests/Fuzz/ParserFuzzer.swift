// libFuzzer target for the receive path (`STATOR_FUZZ_TARGET=parser`, the
// default; see FuzzMain.swift), built by scripts/fuzz with StatorCore's sources (one module,
// so internal checks are reachable) and `-sanitize=fuzzer,address`. Each input is one datagram. It is split, parsed
// line by line (with the parse result checked against the line's bounds) and
// ingested into a small table; every 64 inputs the table is flushed and the
// batch encoded as JSON lines and as a Prometheus page, whose output must be
// valid UTF-8. Any crash, sanitizer report or failed check stops the run and
// leaves the input in .build/fuzz/crashes; each one becomes a test in
// Tests/StatorCoreTests/Parse/FuzzRegressionTests.swift.

nonisolated(unsafe) private var fuzzTable: ShardedTable?
nonisolated(unsafe) private var fuzzIngestor: ReaderAggregator?
nonisolated(unsafe) private var fuzzFlusher: Flusher?
nonisolated(unsafe) private var fuzzPrometheus: PrometheusSink?
nonisolated(unsafe) private var fuzzInputs = 0
/// With `dogstatsd.origin_tags` on (the ingestor has it off): both paths are fuzzed.
nonisolated(unsafe) private var fuzzParsed = ParsedLine(limits: LineLimits(originTags: true))

private func fuzzCheck(_ condition: Bool, _ what: String) {
    if !condition { fatalError("fuzz check failed: \(what)") }
}

private func fuzzSetUp() {
    var configuration = AggregationConfiguration(shards: 4, maxSeries: 5_000, maxSamplesPerSeries: 64)
    // A fixed clock, so that the corpus' `|T` lines (around 1796637000) stay within the bounds.
    configuration.clock = { 1_796_637_600_000 }
    let table = ShardedTable(configuration: configuration, seed: 7)
    let metrics = SelfMetrics(readers: 1)
    fuzzTable = table
    fuzzIngestor = ReaderAggregator(table: table)
    fuzzFlusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 1_000, seriesTTLMillis: 3_000),
        startMillis: 0, metrics: metrics, publish: { _ in })
    fuzzPrometheus = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
}

/// Checks what the parser says about one line: every range it hands out lies inside the line.
private func fuzzCheckLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) {
    guard case .metric = StatsdParser.parse(bytes, line, into: &fuzzParsed) else { return }
    fuzzCheck(
        !fuzzParsed.name.isEmpty && line.contains(fuzzParsed.name.lowerBound) && fuzzParsed.name.upperBound <= line.upperBound,
        "name")
    // A tag's key and value lie in the line, but for a bare tag's value and the origin tag's key
    // (`TagRange.bare`, `TagRange.containerIDKey`), which stand for bytes of their own.
    func inLine(_ r: Range<Int>) -> Bool { r.lowerBound >= line.lowerBound && r.upperBound <= line.upperBound }
    let limits = fuzzParsed.limits
    for t in 0..<fuzzParsed.tags.count {
        let tag = fuzzParsed.tags[t]
        if tag.key == TagRange.containerIDKey {
            fuzzCheck(inLine(tag.value) && !tag.value.isEmpty, "origin tag range")
            fuzzCheck("container_id:".utf8.count + tag.value.count <= limits.maxTagBytes, "max_tag_bytes (origin)")
            continue
        }
        fuzzCheck(inLine(tag.key) && !tag.key.isEmpty, "tag key range")
        if tag.value == TagRange.bare {
            fuzzCheck(tag.key.count <= limits.maxTagBytes, "max_tag_bytes (bare)")
        } else {
            fuzzCheck(inLine(tag.value) && tag.value.upperBound - tag.key.lowerBound <= limits.maxTagBytes, "tag range")
        }
    }
    fuzzCheck(fuzzParsed.name.count <= limits.maxNameBytes, "max_name_bytes")
    fuzzCheck(fuzzParsed.tags.count <= limits.maxTags, "max_tags")
    fuzzCheck(fuzzParsed.groups.count > 0, "a metric has a sample group")
    if fuzzParsed.timestamp >= 0 {
        for g in 0..<fuzzParsed.groups.count {
            let type = fuzzParsed.groups[g].type
            fuzzCheck(type == .counter || type == .gauge, "|T only on counters and gauges")
        }
    }
    for g in 0..<fuzzParsed.groups.count {
        let group = fuzzParsed.groups[g]
        fuzzCheck(group.rate > 0 && group.rate <= 1, "rate in (0, 1]")
        fuzzCheck(group.valueStart <= group.valueEnd && group.valueEnd <= fuzzParsed.values.count, "value range")
        fuzzCheck((1 / group.rate).isFinite, "a finite weight")
        for v in group.valueStart..<group.valueEnd {
            fuzzCheck(fuzzParsed.values[v].value.isFinite, "finite value")
            if group.type == .counter { fuzzCheck((fuzzParsed.values[v].value / group.rate).isFinite, "finite scaled value") }
        }
    }
}

public func statorFuzzOneInput(_ data: UnsafeRawPointer?, _ count: Int) -> Int32 {
    if fuzzTable == nil { fuzzSetUp() }
    let bytes = UnsafeRawBufferPointer(start: count > 0 ? data : nil, count: count)
    LineSplitter.forEachLine(in: bytes) { fuzzCheckLine(bytes, $0) }
    fuzzIngestor!.ingest(bytes)
    fuzzInputs += 1
    if fuzzInputs % 64 == 0 {
        let batch = fuzzFlusher!.flush(at: Int64(fuzzInputs) * 16)
        let numbers =
            batch.gauges.map(\.value) + batch.counters.flatMap { [$0.value, $0.rate] } + batch.sets.map(\.value)
            + batch.samples.flatMap { [$0.count, $0.sum, $0.mean, $0.median, $0.stddev, $0.weightedSum] + $0.percentiles }
        fuzzCheck(!numbers.contains { $0.isNaN }, "no NaN reaches a sink")
        let json = JSONLinesEncoder.encode(batch)
        fuzzCheck(String(validating: json, as: UTF8.self) != nil, "JSON lines are UTF-8")
        try? fuzzPrometheus!.emit(batch)
        let page = fuzzPrometheus!.page.body
        fuzzCheck(String(validating: page, as: UTF8.self) != nil, "the page is UTF-8")
        fuzzCheck(!String(decoding: page, as: UTF8.self).contains(" NaN\n"), "no NaN on the page")
    }
    return 0
}
