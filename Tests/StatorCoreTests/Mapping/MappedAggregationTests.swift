import Foundation
import Testing

@testable import StatorCore

/// A table and flusher that map by `yaml`, flushing every 10 s from 0 (driven by hand).
private struct MappedPipeline {
    let rules: MappingRules
    let table: ShardedTable
    let flusher: Flusher
    let path: String

    init(_ yaml: String, seriesTTLMillis: Int64 = 0) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mapping-\(UUID().uuidString).yml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        rules = try MappingRules(path: path, maxNameBytes: 256)
        var configuration = AggregationConfiguration(shards: 2)
        configuration.mapping = rules
        table = ShardedTable(configuration: configuration, seed: 9)
        flusher = Flusher(
            table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: seriesTTLMillis),
            startMillis: 0, metrics: SelfMetrics(readers: 1)
        ) { _ in }
    }

    /// Every series in a batch, as `name{k=v,...}` sorted.
    static func names(_ batch: FlushBatch) -> [String] {
        let keys = batch.counters.map(\.key) + batch.gauges.map(\.key) + batch.sets.map(\.key) + batch.samples.map(\.key)
        return keys.map { k in k.name + "{" + k.tags.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}" }.sorted()
    }
}

@Test func aMappingLabelWinsOverALineTagUnlessTheRuleHonoursLabels() throws {
    let p = try MappedPipeline(
        """
        mappings:
        - match: "won.*"
          name: "won_total"
          labels: {env: "mapping", part: "$1"}
        - match: "honoured.*"
          name: "honoured_total"
          honor_labels: true
          labels: {env: "mapping", part: "$1"}
        """)
    ingest(p.table, ["won.a:1|c|#env:prod,zone:z", "honoured.a:1|c|#env:prod,zone:z", "honoured.b:1|c|#zone:z"])
    #expect(
        MappedPipeline.names(p.flusher.flush(at: 10_000)) == [
            "honoured_total{env=mapping,part=b,zone=z}", "honoured_total{env=prod,part=a,zone=z}",
            "won_total{env=mapping,part=a,zone=z}",
        ])
}

@Test func mappedKeysAreNeverTheSameSeriesAsUnmappedOnes() throws {
    // `plain` maps to the name an unmapped `plain` line has; the two stay apart.
    let p = try MappedPipeline("mappings:\n- match: \"plain\"\n  name: \"plain\"\n  match_metric_type: gauge\n")
    ingest(p.table, ["plain:1|c", "plain:5|g"])
    let batch = p.flusher.flush(at: 10_000)
    #expect(batch.counters.map(\.key.isMapped) == [false])
    #expect(batch.gauges.map(\.key.isMapped) == [true])
    #expect(batch.gauges.first?.key.name == "plain")
}

@Test func aRuleTTLAndTheDefaultsTTLReplaceSeriesTTL() throws {
    let p = try MappedPipeline(
        """
        defaults:
          ttl: 30s
        mappings:
        - match: "short.*"
          name: "short_total"
          ttl: 15s
        - match: "forever.*"
          name: "forever_total"
          ttl: 0
        - match: "never.*"
          name: "never_total"
        """, seriesTTLMillis: 5_000)
    ingest(p.table, ["short.a:1|c", "forever.a:1|c", "never.a:1|c", "unmatched:1|c"])
    _ = p.flusher.flush(at: 10_000)
    // A series expires once its TTL has passed since the end of the last interval it had data in.
    #expect(p.flusher.flush(at: 20_000).expired.isEmpty)
    #expect(p.flusher.flush(at: 30_000).expired.map(\.name) == ["short_total"])  // 15s after 10s
    #expect(p.table.activeSeries == 3)
    // forever's ttl 0 takes the defaults' 30s (as statsd_exporter), like never's and the unmatched one.
    let expired = p.flusher.flush(at: 40_000).expired.map(\.name).sorted()
    #expect(expired == ["forever_total", "never_total", "unmatched"])
    #expect(p.table.activeSeries == 0)
}

@Test func aRuleTTLOfZeroWithoutDefaultsNeverExpires() throws {
    let p = try MappedPipeline(
        "mappings:\n- match: \"kept.*\"\n  name: \"kept_total\"\n  ttl: 0\n", seriesTTLMillis: 10_000)
    ingest(p.table, ["kept.a:1|c", "other:1|c"])
    _ = p.flusher.flush(at: 10_000)
    #expect(p.flusher.flush(at: 20_000).expired.map(\.name) == ["other"])
    for t in 3...10 { #expect(p.flusher.flush(at: EpochMillis(t) * 10_000).expired.isEmpty) }
    #expect(p.table.activeSeries == 1)
}

@Test func aReaderTakesReloadedRulesForNamesItHasSeen() throws {
    let p = try MappedPipeline("mappings:\n- match: \"jobs.*\"\n  name: \"first_total\"\n")
    var reader = ReaderAggregator(table: p.table)
    func send(_ line: String) { Array(line.utf8).withUnsafeBytes { reader.ingest($0) } }
    send("jobs.a:1|c")
    send("jobs.a:1|c")  // from the reader's memory of the line
    try "mappings:\n- match: \"jobs.*\"\n  name: \"second_total\"\n".write(toFile: p.path, atomically: true, encoding: .utf8)
    #expect(try p.rules.reload() == 1)
    send("jobs.a:1|c")
    let batch = p.flusher.flush(at: 10_000)
    #expect(batch.counters.map { "\($0.key.name)=\($0.value)" }.sorted() == ["first_total=2.0", "second_total=1.0"])
    // A refused file keeps the rules.
    try "mappings:\n- match: \"jobs.*\"\n".write(toFile: p.path, atomically: true, encoding: .utf8)
    #expect(throws: ConfigError.self) { try p.rules.reload() }
    send("jobs.a:1|c")
    #expect(p.flusher.flush(at: 20_000).counters.map(\.key.name) == ["second_total"])
}

@Test func mappingDecisionsAreBoundedPerReader() throws {
    var cache = MappingCache(seed: 1, capacity: 100)
    let p = try MappedPipeline("mappings:\n- match: \"a.*\"\n  name: \"a\"\n")
    let rules = p.rules.current
    for n in 0..<1_000 {
        Array("name.\(n)".utf8).withUnsafeBytes { _ = cache.decision($0, type: .counter, rules: rules) }
        #expect(cache.count <= 100)
    }
    let (first, new) = Array("a.x".utf8).withUnsafeBytes { cache.decision($0, type: .counter, rules: rules) }
    #expect(new)
    guard case .mapped(let parts) = first else {
        Issue.record("a.x is mapped")
        return
    }
    #expect(parts.name == Array("a".utf8))
    let again = Array("a.x".utf8).withUnsafeBytes { cache.decision($0, type: .timer, rules: rules) }
    #expect(again.new)  // another kind: decided again
    #expect(!Array("a.x".utf8).withUnsafeBytes { cache.decision($0, type: .counter, rules: rules) }.new)
}

/// A mapped series keeps a bare tag as bare (SPEC section 15) and never an origin field; a
/// rule's label of the same name wins over it as over any tag.
@Test func aMappedSeriesKeepsBareTagsAndDropsOriginFields() throws {
    let p = try MappedPipeline("mappings:\n- match: \"job.*\"\n  name: \"job_total\"\n  labels: {part: \"$1\", won: \"rule\"}\n")
    ingest(p.table, ["job.a:1|c|#canary,won,dd.internal.entity_id:pod-1|c:abc", "job.a:1|c|#dd.internal.entity_id:pod-2"])
    let batch = p.flusher.flush(at: 10_000)
    #expect(MappedPipeline.names(batch) == ["job_total{canary=true,part=a,won=rule}", "job_total{part=a,won=rule}"])
    let canary = try #require(batch.counters.first { $0.key.hasTag(named: Array("canary".utf8)) })
    var bare: [String] = []
    canary.key.forEachTagMarkingBare { k, _, isBare in if isBare { bare.append(String(decoding: k, as: UTF8.self)) } }
    #expect(bare == ["canary"])
}
