import Foundation
import Testing
@testable import StatorCore

private func repositoryFile(_ path: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
}

/// The README's configuration table and the key registry list the same keys.
@Test func readmeDocumentsEveryConfigurationKey() throws {
    let readme = try repositoryFile("README.md")
    let documented = Set(
        readme.split(separator: "\n").filter { $0.hasPrefix("| `") }.compactMap { line -> String? in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, cells[1].hasPrefix("`STATOR_") else { return nil }
            return cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
        })
    #expect(documented == Set(ConfigKeys.all.map(\.path)))
    for key in ConfigKeys.all { #expect(readme.contains("`\(key.environmentName)`")) }
}

/// Every rejection reason is explained in the README.
@Test func readmeDocumentsEveryRejectionReason() throws {
    let readme = try repositoryFile("README.md")
    for reason in ParseFailure.allCases { #expect(readme.contains("| `\(reason)` |"), "\(reason)") }
}

/// The README's custom sink example, compiled and run here.
final class CountingSink: Sink {
    let name = "counting"
    func emit(_ batch: FlushBatch) throws {
        let total = batch.counters.reduce(0) { $0 + $1.value }
        print("\(batch.timestamp): \(batch.seriesCount) series, counters sum to \(total)")
    }
}

@Test func readmeSinkExampleCompilesAndRuns() throws {
    var configuration = StatorConfiguration()
    configuration.udp.address = "127.0.0.1:0"
    configuration.http.address = "127.0.0.1:0"
    configuration.json.path = ""
    let agent = try Agent(
        configuration: configuration, logger: Logger(label: "stator", level: .error),
        extraSinks: [CountingSink()])
    let running = agent.start()
    running.shutdown()
    #expect(try repositoryFile("README.md").contains("final class CountingSink: Sink {"))
}
