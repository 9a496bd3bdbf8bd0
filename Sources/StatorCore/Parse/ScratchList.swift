/// A growable list of plain values in one buffer, for per-line scratch space:
/// `removeAll()` only resets the count, and appending checks neither uniqueness
/// nor exclusivity at run time. Noncopyable, so its buffer has exactly one owner.
public struct ScratchList<Element>: ~Copyable {
    private var storage: UnsafeMutablePointer<Element>
    private var capacity: Int
    /// Number of elements.
    public private(set) var count = 0

    /// Creates an empty list with room for `capacity` elements.
    public init(capacity: Int = 16) {
        precondition(_isPOD(Element.self), "ScratchList holds plain values only")
        self.capacity = max(1, capacity)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    public var isEmpty: Bool { count == 0 }
    public var indices: Range<Int> { 0..<count }

    /// The element at `index` (which must be below `count`).
    public subscript(index: Int) -> Element {
        @inline(__always) get {
            precondition(index >= 0 && index < count, "ScratchList index out of range")
            return storage[index]
        }
        @inline(__always) set {
            precondition(index >= 0 && index < count, "ScratchList index out of range")
            storage[index] = newValue
        }
    }

    @inline(__always)
    public mutating func append(_ element: Element) {
        if count == capacity { grow() }
        storage[count] = element
        count &+= 1
    }

    /// Keeps the first `n` elements (`n` at most `count`).
    @inline(__always)
    public mutating func truncate(to n: Int) {
        precondition(n >= 0 && n <= count, "ScratchList.truncate past its count")
        count = n
    }

    /// Forgets the elements, keeping the buffer.
    @inline(__always)
    public mutating func removeAll() { count = 0 }

    /// Replaces the elements with those `body` writes to the buffer it gets, which has room
    /// for `most` of them; `body` returns how many it wrote (at most `most`).
    @inline(__always)
    public mutating func refill(atMost most: Int, _ body: (UnsafeMutablePointer<Element>) -> Int) {
        count = 0
        if capacity < most { grow(to: most) }
        let written = body(storage)
        precondition(written >= 0 && written <= most, "ScratchList.refill wrote past its room")
        count = written
    }

    /// Calls `body` with the elements in place.
    @inline(__always)
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage, count: count))
    }

    /// Calls `body` with the elements in place, to change them.
    @inline(__always)
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws -> R
    ) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: storage, count: count))
    }

    /// The elements as an array (tests, tools; allocates).
    public func toArray() -> [Element] { Array(UnsafeBufferPointer(start: storage, count: count)) }

    private mutating func grow(to least: Int = 0) {
        let wanted = Swift.max(capacity * 2, least)
        let bigger = UnsafeMutablePointer<Element>.allocate(capacity: wanted)
        bigger.update(from: storage, count: count)
        storage.deallocate()
        storage = bigger
        capacity = wanted
    }
}
