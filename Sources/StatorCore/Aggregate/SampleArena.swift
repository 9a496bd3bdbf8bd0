/// Sample values and bucket counts of one shard's interval, carved from slabs that never
/// move: a series' values cost 8 bytes each plus part of its last block (no growth by
/// copying, no doubling slack), and writing one touches no Swift array (no uniqueness check).
/// Owned by one `IntervalAggregates`; freed with it after the flush has read it.
final class SampleArena: @unchecked Sendable {
    // SAFETY: the slabs are only written with the lock of the interval that owns the arena
    // held (a shard's, or a reader share's) while the interval is open, or by the flusher
    // while it holds every such lock during the drain's merge (`IntervalMerge`); afterwards
    // they are only read, by the flusher, from the interval `drain` handed over.
    /// Values per block of a series' samples.
    static let blockValues = 16
    /// Doubles per slab (8 KiB).
    static let slabValues = 1024
    private var slabs: [UnsafeMutablePointer<Double>] = []
    private var next: UnsafeMutablePointer<Double>?
    private var left = 0
    /// Doubles allocated in slabs, used or not.
    private(set) var capacity = 0
    /// Objects that live as long as the arena (the series' native histograms), which the
    /// aggregates refer to unretained.
    private var objects: [AnyObject] = []

    /// Keeps `object` alive until the arena is freed.
    /// - Returns: `object`.
    @discardableResult
    func keep<T: AnyObject>(_ object: T) -> T {
        objects.append(object)
        return object
    }

    /// `n` zeroed doubles that stay where they are until the arena is freed.
    func allocate(_ n: Int) -> UnsafeMutablePointer<Double> {
        if n > left {
            let size = Swift.max(n, Self.slabValues)
            let slab = UnsafeMutablePointer<Double>.allocate(capacity: size)
            slabs.append(slab)
            capacity += size
            next = slab
            left = size
        }
        let p = next.unsafelyUnwrapped
        p.initialize(repeating: 0, count: n)
        next = p + n
        left -= n
        return p
    }

    deinit {
        for slab in slabs { slab.deallocate() }
    }
}
