import Testing

@testable import StatorCore

@Test func aReaderNapsLongerWhileBatchesComeSmallAndShorterOnceTheyFill() {
    var nap = ReaderNap(capacity: 32, maxNanos: 1_000_000)
    // Idle or slow: 20 us, doubling to the 1 ms cap.
    #expect(
        (0..<8).map { _ in nap.after(batchOf: 1) } == [
            20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_000_000, 1_000_000,
        ])
    // Half a batch or more, not full: keep the nap.
    #expect(nap.after(batchOf: 16) == 1_000_000)
    #expect(nap.after(batchOf: 31) == 1_000_000)
    // Full batches: call again at once, and halve the next nap each time.
    #expect(nap.after(batchOf: 32) == 0)
    #expect(nap.after(batchOf: 32) == 0)
    #expect(nap.nanos == 250_000)
    #expect(nap.after(batchOf: 20) == 250_000)
    // Never longer than the cap, which a small receive buffer makes smaller.
    var small = ReaderNap(capacity: 32, maxNanos: 488)
    #expect(small.after(batchOf: 0) == 488)
}
