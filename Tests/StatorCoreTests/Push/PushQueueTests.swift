import Foundation
import Testing
@testable import StatorCore

private func request(_ n: Int, size: Int = 10) -> PushRequest {
    PushRequest(format: .json, body: Array(repeating: UInt8(truncatingIfNeeded: n), count: size), series: n)
}

private let quiet = Logger(label: "test", level: .critical)

@Test func spooledRequestsSurviveAReopenInOrder() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
        let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
        for n in 1...3 { #expect(queue.append(request(n)) == 0) }
        let head = try #require(queue.waitForHead(until: 0))
        queue.removeHead(head.id)  // the first was delivered
    }
    let reopened = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
    #expect(reopened.count == 2)
    #expect(reopened.queuedBytes == 20)
    var seen: [Int] = []
    while let head = reopened.waitForHead(until: 0) {
        seen.append(head.request.series)
        reopened.removeHead(head.id)
    }
    #expect(seen == [2, 3])
    // New requests continue after the old sequence numbers.
    #expect(reopened.append(request(4)) == 0)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 1)
}

@Test func theQueueDropsOldestFirstPastItsBound() throws {
    let queue = try PushQueue(spoolDirectory: nil, maxBytes: 25, logger: quiet)
    #expect(queue.append(request(1)) == 0)
    #expect(queue.append(request(2)) == 0)
    #expect(queue.append(request(3)) == 1)  // the oldest (1 series) made room
    #expect(queue.waitForHead(until: 0)?.request.series == 2)
    #expect(queue.append(request(9, size: 100)) == 9 + 2 + 3)  // larger than the bound: everything goes
    #expect(queue.count == 0)
}
