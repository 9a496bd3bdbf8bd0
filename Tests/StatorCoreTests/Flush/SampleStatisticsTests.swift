import Testing
@testable import StatorCore

/// Inputs that break naive quicksorts (sorted, reversed, equal, organ pipe, few distinct
/// values), random ones, and sizes on both sides of the insertion-sort cutoff.
private func sortInputs() -> [[Double]] {
    var rng = SplitMix64(state: 7)
    var inputs: [[Double]] = [[], [1], [2, 1], [-0.0, 0.0, -0.0]]
    for n in [3, 15, 16, 17, 60, 61, 1000, 10_000] {
        inputs.append((0..<n).map(Double.init))
        inputs.append((0..<n).reversed().map(Double.init))
        inputs.append(Array(repeating: 4.5, count: n))
        inputs.append((0..<n).map { Double(min($0, n - $0)) })
        inputs.append((0..<n).map { _ in Double(rng.next() % 3) - 1 })
        inputs.append((0..<n).map { _ in Double(bitPattern: rng.next() >> 2) * (rng.next() % 2 == 0 ? 1 : -1) })
    }
    return inputs
}

@Test func sortsValuesAsTheStandardLibraryDoes() {
    for input in sortInputs() {
        for depth in [nil, 0, 1] as [Int?] {
            var values = input
            SampleStatistics.sortAscending(&values, depthLimit: depth)
            #expect(values == input.sorted(), "n=\(input.count) depth=\(String(describing: depth))")
        }
    }
}

@Test func summarizesWithEtsyRanksAfterSorting() {
    let arena = SampleArena()
    let key = MetricKey(type: .timer, name: "t", tags: [])
    var aggregate = SampleAggregate(key: key, bounds: BucketBounds([1]), arena: arena)
    var rng = SplitMix64(state: 3)
    for v in [5.0, 1, 4, 2, 3, 10, 9, 8, 7, 6, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11] {
        aggregate.add(v, weight: 1, maxSamples: 100, arena: arena, rng: &rng)
    }
    let s = SampleStatistics.summarize(aggregate, percentiles: [Percentile(90), Percentile(50)], interval: 10)
    #expect(s.sortedValues == (1...20).map(Double.init))
    #expect(s.median == 10.5)
    #expect(s.percentiles == [18, 10])
    #expect(s.min == 1 && s.max == 20 && s.sum == 210 && s.count == 20 && s.rate == 2)
}
