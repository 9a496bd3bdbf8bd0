import Foundation
import Testing
@testable import StatorCore

private func repositoryFile(_ path: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
}

/// The cells of a markdown table row, trimmed, without the backticks around a whole cell.
private func cells(_ line: Substring) -> [String] {
    line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { cell in
        let text = cell.trimmingCharacters(in: .whitespaces)
        return text.hasPrefix("`") && text.hasSuffix("`") && text.count >= 2 ? String(text.dropFirst().dropLast()) : text
    }
}

/// The keys whose default follows the machine's core count: the reference gives it in words,
/// and etc/stator.json leaves them out, so that every host it is installed on gets its own.
private let machineDependentKeys: Set<String> = ["udp.readers", "shards"]

/// etc/stator.json holds every key of the registry with its default, as the README and
/// docs/configuration.md say, but the machine-dependent ones: a host installed from it runs
/// on the defaults until its operator edits the file.
@Test func theExampleConfigurationHoldsEveryKeyWithItsDefault() throws {
    let document = try JSONValue.parse(Data(try repositoryFile("etc/stator.json").utf8), source: "etc/stator.json")
    var found: [String: JSONValue] = [:]
    func walk(_ value: JSONValue, _ path: String) {
        if ConfigKeys.key(path) != nil {
            found[path] = value
        } else if case .object(let fields) = value {
            for (name, inner) in fields { walk(inner, path.isEmpty ? name : "\(path).\(name)") }
        } else {
            Issue.record("etc/stator.json: \(path) is neither a key nor a section")
        }
    }
    walk(document, "")
    #expect(Set(found.keys) == Set(ConfigKeys.all.map(\.path)).subtracting(machineDependentKeys))
    let defaults = StatorConfiguration()
    for (path, value) in found {
        guard let key = ConfigKeys.key(path) else { continue }
        var configuration = StatorConfiguration()
        try key.write(&configuration, value)
        #expect(ConfigKeys.text(key.read(configuration)) == ConfigKeys.text(key.read(defaults)), "etc/stator.json: \(path)")
    }
}

/// docs/configuration.md lists every key of the registry, and nothing else, each with its
/// flag, environment variable and default as the code has them.
@Test func theConfigurationReferenceMatchesTheKeyRegistry() throws {
    let reference = try repositoryFile("docs/configuration.md")
    var documented: [String: [String]] = [:]
    for line in reference.split(separator: "\n") where line.hasPrefix("| `") {
        let row = cells(line)
        guard row.count == 5, row[2].hasPrefix("STATOR_") else { continue }
        documented[row[0]] = row
    }
    #expect(Set(documented.keys) == Set(ConfigKeys.all.map(\.path)))
    for key in ConfigKeys.all {
        guard let row = documented[key.path] else { continue }
        #expect(row[1] == key.flag, "\(key.path)")
        #expect(row[2] == key.environmentName, "\(key.path)")
        // udp.readers and shards default from the machine's core count; the reference says so in words.
        let inWords = ["udp.readers": "number of cores", "shards": "8 per core, at least 16"]
        #expect(Set(inWords.keys) == machineDependentKeys)
        let expected = inWords[key.path] ?? key.defaultText
        #expect(row[3] == expected, "\(key.path)")
        #expect(row[4] == key.help, "\(key.path)")
    }
}

/// Every rejection reason is explained in docs/protocol.md.
@Test func theProtocolPageExplainsEveryRejectionReason() throws {
    let protocolPage = try repositoryFile("docs/protocol.md")
    for reason in ParseFailure.allCases { #expect(protocolPage.contains("| `\(reason)` |"), "\(reason)") }
}

/// Every example line of docs/protocol.md is accepted by the parser.
@Test func theProtocolPagesExamplesParse() throws {
    let page = try repositoryFile("docs/protocol.md")
    let start = try #require(page.range(of: "```text\n"))
    let end = try #require(page.range(of: "```", range: start.upperBound..<page.endIndex))
    let examples = page[start.upperBound..<end.lowerBound].split(separator: "\n").map { line in
        String(line.prefix { $0 != " " })
    }
    #expect(examples.count >= 16)
    for example in examples {
        let outcome = parseLine(example)
        #expect(!outcome.hasPrefix("error:"), "\(example): \(outcome)")
    }
}

/// docs/metrics.md has a row for every metric family the agent exports, and no other.
@Test func theMetricsReferenceMatchesTheExportedFamilies() throws {
    let reference = try repositoryFile("docs/metrics.md")
    var documented: Set<String> = []
    for line in reference.split(separator: "\n") where line.hasPrefix("| `") {
        let name = cells(line)[0]
        documented.insert(String(name.prefix { $0 != "{" }))
    }
    #expect(documented == Set(SelfMetricsPage.familyNames))
}

/// docs/security.md has a row for every path the HTTP server answers (`HTTPRoute`, the table
/// the router dispatches on) and for every input, and the README names every path: a new
/// page or input cannot be served without saying who may reach it.
@Test func theSecurityPageHasARowForEveryRouteAndInput() throws {
    let page = try repositoryFile("docs/security.md")
    let readme = try repositoryFile("README.md")
    let rows = Set(page.split(separator: "\n").filter { $0.hasPrefix("| ") }.map { cells($0)[0] })
    for route in HTTPRoute.allCases {
        #expect(rows.contains("HTTP `\(route.request)`"), "docs/security.md has no row for \(route.request)")
        #expect(readme.contains("`\(route.request)`"), "README.md does not name \(route.request)")
    }
    for input in ["UDP", "TCP", "Unix socket"] { #expect(rows.contains(input), "docs/security.md has no row for \(input)") }
}

/// docs/operating.md's list of alerts names every alert of etc/prometheus/alerts.yml.
@Test func theOperatingPageListsEveryAlert() throws {
    let alerts = try repositoryFile("etc/prometheus/alerts.yml").matches(of: #/- alert: (\w+)/#).map { String($0.output.1) }
    #expect(alerts.count >= 9)
    let page = try repositoryFile("docs/operating.md")
    for alert in alerts { #expect(page.contains("`\(alert)`"), "docs/operating.md does not list \(alert)") }
}

/// Every page that gives the period of the invalid-line log gives the code's, and the
/// troubleshooting page's example has the fields the log line has, on every input.
@Test func theInvalidLineLogIsDescribedAsItIs() throws {
    let period = "\(Int(InvalidLineLog.period))"
    #expect(try repositoryFile("docs/troubleshooting.md").contains("at most every \(period) seconds"))
    #expect(try repositoryFile("docs/reliability.md").contains("an example logged at most every \(period) s"))
    #expect(try repositoryFile("etc/prometheus/alerts.yml").contains("every \(period) s."))
    #expect(try repositoryFile("etc/prometheus/alerts.test.yml").contains("every \(period) s."))
    let example = try repositoryFile("docs/troubleshooting.md").split(separator: "\n").first { $0.contains(#""msg":"invalid line dropped""#) }
    for field in ["reason", "line", "sender", "input", "suppressed"] {
        #expect(example?.contains("\"\(field)\":") == true, "the example has no \(field)")
    }
}

/// A figure measured by a benchmark is given once, in BENCHMARKS.md: the pages that cite one
/// name its section (a link to a heading there) and its row (`row` and the row's first cell
/// in backticks), and both exist.
@Test(arguments: ["docs/reliability.md", "docs/rollups.md"])
func theBenchmarkFiguresTheDocsCiteExist(_ page: String) throws {
    let text = try repositoryFile(page)
    let benchmarks = try repositoryFile("BENCHMARKS.md")
    let anchors = Set(
        benchmarks.split(separator: "\n").filter { $0.hasPrefix("#") }.map { heading in
            String(
                heading.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
                    .compactMap { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : $0 == " " ? "-" : nil })
        })
    let links = text.matches(of: #/\]\(\.\./BENCHMARKS\.md#([a-z0-9-]+)\)/#).map { String($0.output.1) }
    #expect(!links.isEmpty)
    for link in links { #expect(anchors.contains(link), "\(page): BENCHMARKS.md has no heading #\(link)") }
    let rows = benchmarks.split(separator: "\n").filter { $0.hasPrefix("| ") }
    let cited = text.matches(of: #/row `([^`]+)`/#).map { String($0.output.1) }
    #expect(!cited.isEmpty)
    for row in cited {
        #expect(
            rows.contains { $0.hasPrefix("| \(row)") || $0.hasPrefix("| `\(row)`") }, "\(page): BENCHMARKS.md has no row \(row)")
    }
}

/// The README links every page of docs/.
@Test func theReadmeLinksEveryDocumentationPage() throws {
    let readme = try repositoryFile("README.md")
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    let pages = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
        .filter { $0.hasSuffix(".md") }
    #expect(pages.count >= 9)
    for page in pages { #expect(readme.contains("](docs/\(page))"), "README does not link docs/\(page)") }
}

/// The custom sink example of docs/design.md, compiled and run here.
final class CountingSink: Sink {
    let name = "counting"
    func emit(_ batch: FlushBatch) throws {
        let total = batch.counters.reduce(0) { $0 + $1.value }
        print("\(batch.timestamp): \(batch.seriesCount) series, counters sum to \(total)")
    }
}

@Test func theSinkExampleCompilesAndRuns() throws {
    var configuration = StatorConfiguration()
    configuration.udp.address = "127.0.0.1:0"
    configuration.http.address = "127.0.0.1:0"
    configuration.json.path = ""
    let agent = try Agent(
        configuration: configuration, logger: Logger(label: "stator", level: .error),
        extraSinks: [CountingSink()])
    let running = agent.start()
    running.shutdown()
    #expect(try repositoryFile("docs/design.md").contains("final class CountingSink: Sink {"))
}

/// The sink example in docs/design.md, as written there (not a copy), type-checks against
/// the StatorCore module this test run was built with.
@Test func theSinkExampleInTheDocsTypeChecksAsWritten() throws {
    let page = try repositoryFile("docs/design.md")
    let blocks = page.components(separatedBy: "```swift\n").dropFirst().map { $0.components(separatedBy: "\n```")[0] }
    let example = try #require(blocks.first { $0.contains(": Sink {") })
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    // The build folder of this run: the agent binary's (scripts/test --sanitize sets it), else .build/debug.
    let build = ProcessInfo.processInfo.environment["TEST_STATOR_BINARY"].map {
        URL(fileURLWithPath: $0).deletingLastPathComponent()
    } ?? root.appendingPathComponent(".build/debug")
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("sink-example-\(UUID().uuidString).swift")
    try example.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let swiftc = Process()
    swiftc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    swiftc.arguments = [
        "swiftc", "-typecheck", "-I", build.appendingPathComponent("Modules").path,
        "-Xcc", "-fmodule-map-file=" + build.appendingPathComponent("CStatorSys.build/module.modulemap").path, file.path,
    ]
    let errors = Pipe()
    swiftc.standardError = errors
    try swiftc.run()
    let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    swiftc.waitUntilExit()
    #expect(swiftc.terminationStatus == 0, "\(output)")
}

/// Every configuration example in the docs (a ```json block holding a configuration object)
/// is a configuration the agent takes.
@Test(arguments: ["docs/formats.md", "docs/operating.md", "docs/mapping.md", "docs/rollups.md", "README.md"])
func theConfigurationExamplesInTheDocsAreAccepted(_ page: String) throws {
    let text = try repositoryFile(page)
    var examples = 0
    var rest = text[...]
    while let open = rest.range(of: "```json\n") {
        guard let close = rest.range(of: "```", range: open.upperBound..<rest.endIndex) else { break }
        let block = String(rest[open.upperBound..<close.lowerBound])
        rest = rest[close.upperBound...]
        let trimmed = block.trimmingCharacters(in: .whitespacesAndNewlines)
        // Objects the sinks write (JSON lines, EMF) are examples of output, not configuration.
        guard trimmed.hasPrefix("{\n"), !trimmed.contains("\"_aws\""), !trimmed.contains("\"ts\":") else { continue }
        examples += 1
        var configuration = StatorConfiguration()
        do {
            let document = try JSONValue.parse(Data(block.utf8), source: page)
            try ConfigKeys.apply(document, to: &configuration, source: page)
            try configuration.resolvePushes(environment: ["STATOR_PUSH_TOKEN": "t", "DD_API_KEY": "k", "INFLUX_TOKEN": "t"])
        } catch {
            Issue.record("\(page): \(error.message) in\n\(block)")
        }
    }
    if page == "docs/formats.md" { #expect(examples >= 8) }
}
