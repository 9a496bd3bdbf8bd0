/// A growable array of aggregates that the reader reaches through plain pointers (a Swift
/// array would check its uniqueness on every write). Owned by one `ReaderAggregates`.
struct AggregateList<Element>: ~Copyable {
    private var storage: UnsafeMutablePointer<Element>
    private var capacity: Int
    private(set) var count = 0

    init() {
        capacity = Self.firstCapacity
        storage = .allocate(capacity: capacity)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    /// The element at `index` (below `count`), in place.
    @inline(__always)
    func pointer(_ index: Int) -> UnsafeMutablePointer<Element> {
        precondition(index >= 0 && index < count, "AggregateList index out of range")
        return storage + index
    }

    /// Appends `element`; returns its index.
    mutating func append(_ element: Element) -> Int {
        if count == capacity {
            let bigger = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: storage, count: count)
            storage.deallocate()
            storage = bigger
            capacity *= 2
        }
        (storage + count).initialize(to: element)
        count += 1
        return count - 1
    }

    /// Moves the elements out into an array and empties the list, back to its first size (so
    /// that an interval with many series leaves no large buffer behind, as the shards' do not).
    mutating func take() -> [Element] {
        let n = count
        // (Not through the initializer below when empty: it stores the count, 0, into the
        // shared empty-array storage, which other threads read; ThreadSanitizer reports it.)
        guard n > 0 else { return [] }
        let taken = [Element](unsafeUninitializedCapacity: n) { buffer, initialized in
            buffer.baseAddress.unsafelyUnwrapped.moveInitialize(from: storage, count: n)
            initialized = n
        }
        count = 0
        if capacity > Self.firstCapacity {
            storage.deallocate()
            capacity = Self.firstCapacity
            storage = .allocate(capacity: capacity)
        }
        return taken
    }

    /// Empties the list, back to its first size.
    mutating func removeAll() {
        storage.deinitialize(count: count)
        count = 0
        if capacity > Self.firstCapacity {
            storage.deallocate()
            capacity = Self.firstCapacity
            storage = .allocate(capacity: capacity)
        }
    }

    static var firstCapacity: Int { 64 }
}
