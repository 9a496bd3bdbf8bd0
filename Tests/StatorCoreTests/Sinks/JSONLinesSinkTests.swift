import Foundation
import Glibc
import Testing

@testable import StatorCore

private func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("json-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    return path
}

private func batch(_ names: [String]) -> FlushBatch {
    FlushBatch(
        timestamp: 10_000, interval: 10, percentiles: [],
        counters: names.map { CounterSummary(key: MetricKey(type: .counter, name: $0), value: 1, rate: 0.1) })
}

private let empty = FlushBatch(timestamp: 20_000, interval: 10, percentiles: [])

@Test func theFileIsNeverOpenedThroughASymlinkAndIsCreated0640AtMost() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = "\(dir)/out.json"
    let victim = "\(dir)/victim"
    #expect(FileManager.default.createFile(atPath: victim, contents: Data("keep\n".utf8)))
    #expect(symlink(victim, path) == 0)
    let sink = JSONLinesSink(configuration: JSONLinesConfiguration(path: path))
    #expect(throws: SystemError.self) { try sink.emit(batch(["a"])) }
    #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep\n")
    // Once the link is gone the sink creates the file itself, and writes what it kept.
    #expect(unlink(path) == 0)
    try sink.emit(batch(["b"]))
    var st = stat()
    #expect(lstat(path, &st) == 0)
    #expect(st.st_mode & S_IFMT == S_IFREG)
    #expect(st.st_mode & 0o037 == 0)  // no group write, nothing for others
    #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == 2)
}

@Test func sighupReopensTheFileEvenWhenTheNextBatchIsEmpty() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = "\(dir)/out.json"
    let sink = JSONLinesSink(configuration: JSONLinesConfiguration(path: path))
    try sink.emit(batch(["a"]))
    #expect(rename(path, "\(path).1") == 0)  // logrotate's rotation, then its SIGHUP
    sink.reopen()
    try sink.emit(empty)
    #expect(FileManager.default.fileExists(atPath: path))
    try sink.emit(batch(["b"]))
    #expect(try String(contentsOfFile: path, encoding: .utf8).contains("\"name\":\"b\""))
    #expect(!(try String(contentsOfFile: "\(path).1", encoding: .utf8).contains("\"name\":\"b\"")))
    sink.shutdown()
}

@Test(.enabled(if: getuid() == 0, "mounts a small tmpfs to fill"))
func aFailedWriteAfterCopytruncateLeavesNoNULBytes() throws {
    // logrotate's copytruncate empties the file behind the sink's back. A write that fails
    // afterwards (the disk is full) must not cut the file back to the size the sink
    // remembers, which would extend it with NUL bytes.
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let mountPoint = "\(dir)/small"
    try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
    let mount = Process()
    mount.executableURL = URL(fileURLWithPath: "/bin/mount")
    mount.arguments = ["-t", "tmpfs", "-o", "size=256k", "stator-test", mountPoint]
    try mount.run()
    mount.waitUntilExit()
    try #require(mount.terminationStatus == 0)
    defer {
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = ["-l", mountPoint]
        try? umount.run()
        umount.waitUntilExit()
    }
    let path = "\(mountPoint)/out.json"
    let sink = JSONLinesSink(configuration: JSONLinesConfiguration(path: path))
    try sink.emit(batch((0..<500).map { "before.\($0)" }))  // about 40 kB
    #expect(truncate(path, 0) == 0)  // copytruncate
    let filler = open("\(mountPoint)/filler", O_WRONLY | O_CREAT, 0o600)
    let block = [UInt8](repeating: 0x41, count: 4096)
    while write(filler, block, block.count) > 0 {}
    close(filler)
    #expect(throws: SystemError.self) { try sink.emit(batch((0..<500).map { "after.\($0)" })) }
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    #expect(!bytes.contains(0))
    #expect(bytes.count < 4096)  // nothing, or whole lines of what fit
    // Room again: the kept batch arrives whole, after nothing stale.
    #expect(unlink("\(mountPoint)/filler") == 0)
    try sink.emit(empty)
    try sink.emit(batch(["last"]))
    let text = try String(contentsOfFile: path, encoding: .utf8)
    #expect(!text.contains("\0"))
    #expect(text.split(separator: "\n").filter { $0.contains("after.") }.count == 500)
    sink.shutdown()
}
