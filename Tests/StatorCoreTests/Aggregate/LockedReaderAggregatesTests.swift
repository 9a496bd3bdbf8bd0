import Testing

@testable import StatorCore

/// A reader adds the values of lines seen before into its own share of the interval
/// (`LockedReaderAggregates`); the table merges the shares with the shards when it drains them. These
/// tests hold the merged interval to what one place would have recorded.

private func send(_ lines: [String], _ ingestor: inout ReaderAggregator) {
    for line in lines { Array(line.utf8).withUnsafeBytes { ingestor.ingest($0) } }
}

/// A drained table's intervals. (A sampled series' values live in its interval's arena: read
/// them while the intervals live, `withExtendedLifetime`.)
private func drained(_ table: ShardedTable, generation: UInt32 = 2) -> [IntervalAggregates] {
    table.drainAll(nextGeneration: generation)
}

@Test func aSeriesInTheShardAndInTheShareComesOutOnceWithBothSums() {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2), seed: 7)
    var reader = ReaderAggregator(table: table)
    // The first line is parsed and staged (the shard learns the series, the reader its route);
    // the next ones go to the share; a line with several values is always parsed and staged.
    send(["a:1|c", "a:2|c", "a:2|c", "a:1:4|c", "a:2|c"], &reader)
    let counters = drained(table).flatMap(\.counters)
    #expect(counters.count == 1)
    #expect(counters.first?.sum == 12)
}

@Test func twoReadersOfOneSeriesMergeCountersSetsAndTimers() {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4), seed: 9)
    var first = ReaderAggregator(table: table)
    var second = ReaderAggregator(table: table)
    send(["c:1|c", "c:1|c", "c:1|c|@0.5", "c:1|c|@0.5", "u:x|s", "u:x|s", "u:y|s"], &first)
    send(["c:10|c", "c:10|c", "u:y|s", "u:y|s", "u:z|s"], &second)
    send(["t:1|ms", "t:2|ms", "t:3|ms|@0.5", "t:3|ms|@0.5"], &first)
    send(["t:10|ms", "t:20|ms", "t:30|ms"], &second)
    let parts = drained(table)
    let counters = parts.flatMap(\.counters)
    #expect(counters.map(\.key.name) == ["c"])
    #expect(counters.first?.sum == 26)
    let sets = parts.flatMap(\.sets)
    #expect(sets.map(\.key.name) == ["u"])
    #expect(sets.first?.members.count == 3)
    let timers = parts.flatMap(\.samples)
    #expect(timers.map(\.key.name) == ["t"])
    guard let t = timers.first else { return }
    defer { withExtendedLifetime(parts) {} }
    #expect(t.samples == 7)
    #expect(t.count == 9)
    #expect(t.sum == 69)
    #expect(t.weightedSum == 1 + 2 + 6 + 6 + 60)
    #expect(t.min == 1)
    #expect(t.max == 30)
    #expect(t.values.sorted() == [1, 2, 3, 3, 10, 20, 30])
    #expect(!t.isSampled)
    #expect(t.bucketCounts.reduce(0, +) == 9)
}

@Test func twoIdentitiesOfOneSeriesInOneShareMerge() {
    // Tags in either order are one series but two identities, each with its own record.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2), seed: 4)
    var reader = ReaderAggregator(table: table)
    send(["r:1|c|#a:1,b:2", "r:1|c|#b:2,a:1", "r:1|c|#a:1,b:2", "r:1|c|#b:2,a:1", "r:1|c|#b:2,a:1"], &reader)
    // The second identity finds the series' aggregate in the share (`SeriesPositions`), as does a
    // record made again after the cache evicted it: one aggregate per series and interval.
    #expect(reader.shareSizes.counters == 1)
    let counters = drained(table).flatMap(\.counters)
    #expect(counters.count == 1)
    #expect(counters.first?.sum == 5)
}

@Test func aStoppedReadersShareGoesOutWithTheNextDrain() {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2), seed: 1)
    do {
        var reader = ReaderAggregator(table: table)
        send(["gone:1|c", "gone:1|c", "gone:1|c"], &reader)
    }
    let counters = drained(table).flatMap(\.counters)
    #expect(counters.map(\.sum) == [3])
    #expect(drained(table, generation: 3).flatMap(\.counters).isEmpty)
}

@Test func theNextIntervalStartsEmptyAndTheSeriesStaysAlive() {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 2)
    var reader = ReaderAggregator(table: table)
    send(["a:1|c", "a:1|c"], &reader)
    #expect(drained(table, generation: 2).flatMap(\.counters).map(\.sum) == [2])
    // Generation 2: only the share's aggregate gets data; the shard still learns that the
    // series received some, so an expiry of generation 1 and older keeps it.
    send(["a:5|c"], &reader)
    #expect(table.expire(cutoff: 1).isEmpty)
    #expect(drained(table, generation: 3).flatMap(\.counters).map(\.sum) == [5])
    #expect(table.expire(cutoff: 2).count == 1)
}

@Test func gaugesComposeInTheShareAfterWhatTheShardHolds() {
    // The first line is staged (set 5 in the shard); the others go to the share, composed
    // in order (+1, set 7, -2): merged shard then share, 5.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 3)
    var reader = ReaderAggregator(table: table)
    send(["g:5|g", "g:+1|g", "g:7|g", "d:+1|g", "g:-2|g", "d:+2|g", "d:-0.5|g"], &reader)
    #expect(reader.shareSizes.gauges == 2)
    let gauges = drained(table).flatMap(\.gauges)
    #expect(gauges.count == 2)
    #expect(gauges.first { $0.key.name == "g" }?.resolve(previous: 0) == 5)
    #expect(gauges.first { $0.key.name == "d" }?.resolve(previous: 10) == 12.5)
}

@Test func aGaugeLineStagedAfterShareOperationsStillComesAfterThem() {
    // `#a:2,b:1` and `#b:1,a:2` are one series, two identities. After the first identity's
    // +1 went to the share, the second's first line (set 7) is parsed and staged: the share's
    // operations on the series are staged before it (`sealGauge`), and later ones compose in
    // the share again. Without that, the merge (shard, then share) would give 10. A staged
    // line of another series (`k`, first seen) leaves the share's gauges as they are.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2), seed: 5)
    var reader = ReaderAggregator(table: table)
    send(["g:1|g|#a:2,b:1", "h:4|g", "g:+1|g|#a:2,b:1", "h:+1|g"], &reader)
    #expect(reader.shareSizes.gauges == 2)
    send(["k:1|g", "g:7|g|#b:1,a:2", "g:+2|g|#a:2,b:1", "h:-3|g"], &reader)
    #expect(reader.shareSizes.gauges == 2)
    let gauges = drained(table).flatMap(\.gauges)
    #expect(gauges.count == 3)
    #expect(gauges.first { $0.key.name == "g" }?.resolve(previous: 0) == 9)
    #expect(gauges.first { $0.key.name == "h" }?.resolve(previous: 0) == 2)
    // The next interval takes gauges into the share again.
    send(["g:+1|g|#a:2,b:1", "g:+1|g|#a:2,b:1"], &reader)
    #expect(reader.shareSizes.gauges == 1)
    #expect(drained(table, generation: 3).flatMap(\.gauges).first?.resolve(previous: 9) == 11)
}

@Test func mergedReservoirsKeepTheLimitAndExactStatistics() {
    // 3,000 values in the shard's aggregate and 5,000 in a share's, against 2,000 kept.
    let limit = 2_000
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1, maxSamplesPerSeries: limit), seed: 6)
    var reader = ReaderAggregator(table: table)
    var all: [Double] = []
    // Several values per line are parsed and staged: they go to the shard.
    var line = "t"
    for k in 0..<3_000 {
        line += ":\(k)"
        all.append(Double(k))
    }
    send([line + "|ms"], &reader)
    send(["t:0|ms"], &reader)  // teaches the reader the route (parsed, staged)
    all.append(0)
    for k in 0..<5_000 {
        send(["t:\(10_000 + k)|ms"], &reader)
        all.append(Double(10_000 + k))
    }
    let parts = drained(table)
    defer { withExtendedLifetime(parts) {} }
    let timers = parts.flatMap(\.samples)
    #expect(timers.count == 1)
    guard let t = timers.first else { return }
    #expect(t.samples == all.count)
    #expect(t.count == Double(all.count))
    #expect(t.sum == all.reduce(0, +))
    #expect(t.min == 0)
    #expect(t.max == 14_999)
    #expect(t.isSampled)
    let kept = t.values
    #expect(kept.count == limit)
    let population = Set(all)
    #expect(kept.allSatisfy { population.contains($0) })
    // Drawn in proportion: 3,001 of 8,001 values are below 10,000 (expect ~750 of 2,000).
    let low = kept.filter { $0 < 10_000 }.count
    #expect(low > 600 && low < 900)
    // Population stddev from the combined running moments, against the exact one.
    let summary = SampleStatistics.summarize(t, percentiles: [], interval: 1)
    let mean = all.reduce(0, +) / Double(all.count)
    let exact = (all.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(all.count)).squareRoot()
    #expect(abs(summary.stddev - exact) < 1e-6 * exact)
}

@Test func setUnionCountsEachMemberOnce() {
    var a = MemberSet()
    var b = MemberSet()
    for m in [0, 1, 2, 3] as [UInt64] { a.insert(m) }
    for m in [2, 3, 4, 0, 99] as [UInt64] { b.insert(m) }
    a.formUnion(b)
    #expect(a.count == 6)
}

@Test func aRecordsTypeReadsBackAsWritten() {
    for type in MetricType.allCases {
        var record = LineIdentityCache.Record(
            keyHash: 0, rate: 1, route: .unknown, shareGeneration: 0, localPosition: 0, setHint: 0, targets: (0, 0),
            nameLength: 0,
            suffixLength: 0, keyLength: 0, type: 0)
        record.type = type.rawValue
        #expect(record.metricType == type)
    }
}

@Test func aShareIndexFindsWhatItRecordedThroughGrowthAndForgetsItAtTheEnd() {
    var index = SeriesPositions()
    for k in 0..<1_000 { index.insert(SeriesID(index: UInt32(k * 7), incarnation: 1), at: k) }
    #expect(index.count == 1_000)
    #expect((0..<1_000).allSatisfy { index.position(of: SeriesID(index: UInt32($0 * 7), incarnation: 1)) == $0 })
    // Another incarnation of a number is another series.
    #expect(index.position(of: SeriesID(index: 7, incarnation: 2)) == nil)
    #expect(index.position(of: SeriesID(index: 8, incarnation: 1)) == nil)
    index.removeAll()
    #expect(index.count == 0)
    #expect(index.position(of: SeriesID(index: 7, incarnation: 1)) == nil)
    index.insert(SeriesID(index: 7, incarnation: 1), at: 3)
    #expect(index.position(of: SeriesID(index: 7, incarnation: 1)) == 3)
}

@Test func aTimersTargetsNameItsBucketsAndWhereItsNextValueGoes() {
    // A reader prefetches through these addresses without reading the aggregate: they must be
    // where the next add writes (or 0 when it starts a block or draws a reservoir slot).
    let arena = SampleArena()
    var aggregate = SampleAggregate(key: MetricKey(type: .timer, name: "t"), bounds: BucketBounds([1, 10]), arena: arena)
    var rng = SplitMix64(state: 1)
    var checked = 0
    for n in 0..<40 {
        let (buckets, slot) = withUnsafePointer(to: &aggregate) { SampleAggregate.targets(of: $0) }
        #expect(buckets != 0)
        if n % SampleArena.blockValues == 0 || n > 30 { #expect(slot == 0, "n=\(n)") }
        if n < 30 && n % SampleArena.blockValues != 0 { #expect(slot != 0, "n=\(n)") }
        aggregate.add(Double(100 + n), weight: 1, maxSamples: 30, arena: arena, rng: &rng)
        if n < 30, let p = UnsafePointer<Double>(bitPattern: UInt(slot)) {
            #expect(p.pointee == Double(100 + n))
            checked += 1
        }
        // The bucket counts: 3 buckets (two bounds and +Inf), every add counted once.
        let counts = UnsafePointer<Double>(bitPattern: UInt(buckets)).map { $0[0] + $0[1] + $0[2] }
        #expect(counts == Double(n + 1))
    }
    #expect(checked == 28)  // the 30 kept values but the two that start a block (the 1st and the 17th)
}

@Test func aSetsTargetsNameItsSlotsAndTheirMask() {
    var aggregate = SetAggregate(key: MetricKey(type: .set, name: "s"), members: MemberSet(expected: 4))
    for member in [3, 12, 77, 1_000_003] as [UInt64] {
        aggregate.members.insert(member)
        let (slots, mask) = withUnsafePointer(to: &aggregate) { MemberSet.targets(of: $0) }
        #expect(mask + 1 == UInt64(aggregate.members.capacity))
        // Open addressing from `member & mask`: the member is there or a few slots on.
        let table = UnsafePointer<UInt64>(bitPattern: UInt(slots))
        let found = (0...mask).contains { table?[Int((member + $0) & mask)] == member }
        #expect(found)
    }
    #expect(withUnsafePointer(to: SetAggregate(key: MetricKey(type: .set, name: "e"), members: MemberSet())) {
        MemberSet.targets(of: $0) == (0, 0)
    })
}

extension ReaderAggregator {
    /// Aggregates in this reader's share of the open interval, by list.
    var shareSizes: (counters: Int, gauges: Int, sets: Int, samples: Int) {
        share.lock()
        defer { share.unlock() }
        return share.state.pointee.sizes
    }
}
