import Testing

@testable import StatorCore

/// Member hashes as readers make them: seeded and well mixed.
private func members(_ count: Int, seed: UInt64) -> [UInt64] {
    var rng = SplitMix64(state: seed)
    return (0..<count).map { _ in rng.next() }
}

@Test func aSetCountsExactlyUpToItsLimitThenEstimates() {
    var set = MemberSet(limit: 100)
    let hundred = members(100, seed: 1)
    for m in hundred + hundred + [0] where m != 0 { set.insert(m) }
    #expect(!set.isEstimated)  // repeats of members it has never switch it
    #expect(set.distinct == 100)
    set.insert(0)  // the 101st distinct member
    #expect(set.isEstimated)
    #expect(abs(set.distinct - 101) <= 2)
    #expect(set.memberBytes == 16_384)  // the table is gone; only the sketch is left
    for m in hundred { set.insert(m) }
    #expect(abs(set.distinct - 101) <= 2)
}

@Test(arguments: [1, 10, 1_000, 10_001, 30_000, 100_000, 1_000_000])
func theSketchEstimatesWithinThreePercentAtEveryScale(_ n: Int) {
    var hll = HyperLogLog()
    for m in members(n, seed: UInt64(n)) { hll.insert(m) }
    #expect(abs(hll.estimate - Double(n)) <= max(1, 0.03 * Double(n)), "n \(n): \(hll.estimate)")
}

@Test func tenMillionMembersOfOneSetStayWithinTheBoundAndThreePercent() {
    // SPEC section 2: exact up to max_set_members (10,000 by default), then a 16 KiB sketch.
    var set = MemberSet()
    var rng = SplitMix64(state: 42)
    var peak = 0
    for k in 0..<10_000_000 {
        set.insert(rng.next())
        if k & 0xFFF == 0 { peak = max(peak, set.memberBytes) }
    }
    #expect(set.isEstimated)
    #expect(abs(set.distinct - 10_000_000) <= 300_000, "estimate \(set.distinct)")
    #expect(set.memberBytes == 16_384)
    #expect(peak <= 32_768 * 8)  // the exact table at its largest: 10,000 members in 16,384 or 32,768 slots
}

@Test func setsMergeAcrossReadersAndShardsInEitherForm() {
    // One series' set from two places (a reader's share, a shard): exact with exact, exact
    // with a sketch, a sketch with a sketch. The union's count is what one set would say.
    let all = members(300, seed: 9)
    func set(_ slice: ArraySlice<UInt64>, limit: Int) -> MemberSet {
        var s = MemberSet(limit: limit)
        for m in slice { s.insert(m) }
        return s
    }
    var exact = set(all[0..<50], limit: 1000)
    exact.formUnion(set(all[25..<100], limit: 1000))
    #expect(!exact.isEstimated && exact.distinct == 100)
    var small = set(all[0..<50], limit: 100)
    small.formUnion(set(all[0..<300], limit: 100))  // the other side is a sketch
    #expect(small.isEstimated && abs(small.distinct - 300) <= 9)
    var sketch = set(all[0..<200], limit: 100)
    sketch.formUnion(set(all[100..<300], limit: 100))
    #expect(abs(sketch.distinct - 300) <= 9)
    var grown = set(all[0..<80], limit: 100)
    grown.formUnion(set(all[40..<150], limit: 1000))  // exact sides whose union passes the limit
    #expect(grown.isEstimated && abs(grown.distinct - 150) <= 5)
}

@Test func aSetFloodThroughTheReaderIsEstimatedInBoundedMemory() throws {
    // 50,000 members of one set through a reader (lines seen before go to its share) with
    // max_set_members 1,000: the batch says about 50,000, and no set kept a table past the limit.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2, maxSetMembers: 1_000), seed: 3)
    var reader = ReaderAggregator(table: table)
    for start in stride(from: 0, to: 50_000, by: 500) {
        let text = (start..<start + 500).map { "users:u\($0)|s|#site:eu" }.joined(separator: "\n")
        Array(text.utf8).withUnsafeBytes { reader.ingest($0) }
    }
    let parts = table.drainAll(nextGeneration: 2)
    #expect(parts.flatMap(\.sets).allSatisfy { $0.members.memberBytes <= 16_384 })
    var merged = MemberSet(limit: 1_000)
    for s in parts.flatMap(\.sets) { merged.formUnion(s.members) }
    #expect(abs(merged.distinct - 50_000) <= 1_500, "estimate \(merged.distinct)")
}
