import CStatorSys

/// Everything recorded in one shard during one interval, by type.
struct IntervalAggregates {
    var counters: [CounterAggregate] = []
    var gauges: [GaugeAggregate] = []
    var sets: [SetAggregate] = []
    var samples: [SampleAggregate] = []
    /// Holds the values and bucket counts of `samples`; made with the interval's first one.
    var arena: SampleArena?

    /// Starts fetching the aggregate of a `type` series at `position`.
    @inline(__always)
    func prefetch(_ type: MetricType, at position: Int) {
        switch type {
        case .counter: Self.prefetch(counters, position)
        case .gauge: Self.prefetch(gauges, position)
        case .set: Self.prefetch(sets, position)
        case .timer, .histogram, .distribution: Self.prefetch(samples, position)
        }
    }

    /// Starts fetching what recording into the (fetched) aggregate at `position` writes
    /// outside it: a set's member slot, a sampled series' bucket counts and value slot.
    @inline(__always)
    func prefetchTargets(_ type: MetricType, at position: Int, member: UInt64) {
        // Through the buffers: reading an element by subscript would copy it (and retain what it holds).
        switch type {
        case .counter, .gauge: break
        case .set:
            sets.withUnsafeBufferPointer { b in
                if let base = b.baseAddress, position < b.count { MemberSet.prefetch(member, in: base + position) }
            }
        case .timer, .histogram, .distribution:
            samples.withUnsafeBufferPointer { b in
                if let base = b.baseAddress, position < b.count { SampleAggregate.prefetchTargets(of: base + position) }
            }
        }
    }

    @inline(__always)
    private static func prefetch<T>(_ array: [T], _ position: Int) {
        array.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress, position < b.count else { return }
            let start = UnsafeRawPointer(base + position)
            CStatorSys_prefetch(start)
            if MemoryLayout<T>.stride > 64 { CStatorSys_prefetch(start + 64) }
            if MemoryLayout<T>.stride > 128 { CStatorSys_prefetch(start + 128) }
        }
    }
}

extension IntervalAggregates {
    /// Whether nothing was recorded.
    var isEmpty: Bool { counters.isEmpty && gauges.isEmpty && sets.isEmpty && samples.isEmpty }
}
