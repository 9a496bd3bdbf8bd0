/// Where a share keeps each series it has an aggregate for in the open interval: from the
/// series' number to the aggregate's position in the list for its type. Consulted only when
/// a line's `LineIdentityCache` record does not know the position (the series' first line in the
/// interval, or a record new since), so that a series whose record was evicted and made
/// again does not get a second aggregate. Open addressing, linear probing, at most half
/// full; emptied, back to its first size, with the interval.
struct SeriesPositions: ~Copyable {
    private var series: UnsafeMutablePointer<SeriesID>
    private var positions: UnsafeMutablePointer<Int32>
    private var capacity: Int
    private(set) var count = 0

    private static var firstCapacity: Int { 64 }
    /// A free entry (no table numbers a series so).
    private static let empty = SeriesID.none

    init() {
        capacity = Self.firstCapacity
        series = .allocate(capacity: capacity)
        series.initialize(repeating: Self.empty, count: capacity)
        positions = .allocate(capacity: capacity)
    }

    deinit {
        series.deallocate()
        positions.deallocate()
    }

    /// The position recorded for `id`, or `nil`.
    func position(of id: SeriesID) -> Int? {
        var i = Self.slot(id, capacity)
        while series[i] != Self.empty {
            if series[i] == id { return Int(positions[i]) }
            i = (i &+ 1) & (capacity &- 1)
        }
        return nil
    }

    /// Records `position` for `id` (not recorded yet).
    mutating func insert(_ id: SeriesID, at position: Int) {
        if (count &+ 1) &* 2 > capacity { grow() }
        var i = Self.slot(id, capacity)
        while series[i] != Self.empty { i = (i &+ 1) & (capacity &- 1) }
        series[i] = id
        positions[i] = Int32(position)
        count &+= 1
    }

    /// Forgets every entry, back to the first size.
    mutating func removeAll() {
        if capacity > Self.firstCapacity {
            series.deallocate()
            positions.deallocate()
            capacity = Self.firstCapacity
            series = .allocate(capacity: capacity)
            positions = .allocate(capacity: capacity)
        }
        series.initialize(repeating: Self.empty, count: capacity)
        count = 0
    }

    @inline(__always)
    private static func slot(_ id: SeriesID, _ capacity: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(id.index) &* 0x9E37_79B9_7F4A_7C15) >> 32) & (capacity &- 1)
    }

    private mutating func grow() {
        let (oldSeries, oldPositions, oldCapacity) = (series, positions, capacity)
        capacity *= 2
        series = .allocate(capacity: capacity)
        series.initialize(repeating: Self.empty, count: capacity)
        positions = .allocate(capacity: capacity)
        count = 0
        for i in 0..<oldCapacity where oldSeries[i] != Self.empty { insert(oldSeries[i], at: Int(oldPositions[i])) }
        oldSeries.deallocate()
        oldPositions.deallocate()
    }
}
