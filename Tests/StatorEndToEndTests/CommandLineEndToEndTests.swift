import Foundation
import Glibc
import Testing

@Test func checkConfigPrintsTheEffectiveConfiguration() throws {
    let dir = try TemporaryDirectory()
    let config = dir.file("stator.json")
    try #"{"flush_interval": "5s", "sinks": {"json": {"path": "/tmp/x.json"}}}"#.write(
        toFile: config, atomically: true, encoding: .utf8)
    let run = try StatorProcess(
        ["check-config", "--config", config, "--percentiles", "[99.9]"],
        environment: ["STATOR_SERIES_TTL": "1m"], waitForStart: false)
    #expect(try run.waitForExit() == 0)
    let printed = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.text.utf8)) as? [String: Any])
    #expect(printed["flush_interval"] as? String == "5s")
    #expect(printed["series_ttl"] as? String == "1m")
    #expect(printed["percentiles"] as? [Double] == [99.9])
    let json = try #require((printed["sinks"] as? [String: Any])?["json"] as? [String: Any])
    #expect(json["path"] as? String == "/tmp/x.json")
    #expect(json["rotate_bytes"] as? Double == 0)
    #expect(json["keep_files"] as? Double == 5)
}

@Test(
    arguments: [
        (#"{"udp": {"adress": "x"}}"#, [String](), "unknown configuration key \"udp.adress\""),
        (#"{"flush_interval": "soon"}"#, [], "flush_interval must be a duration"),
        ("{}", ["--max_series", "-5"], "max_series must be between 1 and"),
        ("{}", ["--bogus", "1"], "unknown flag --bogus"),
    ] as [(String, [String], String)])
func badConfigurationExitsNonZeroWithOneLine(_ file: String, _ flags: [String], _ message: String) throws {
    let dir = try TemporaryDirectory()
    let config = dir.file("stator.json")
    try file.write(toFile: config, atomically: true, encoding: .utf8)
    for command in [["check-config"], []] {
        let run = try StatorProcess(command + ["--config", config] + flags, waitForStart: false)
        #expect(try run.waitForExit() != 0)
        let stderr = run.stderr.text
        #expect(stderr.hasPrefix("stator: "))
        #expect(stderr.contains(message), "\(stderr)")
        #expect(stderr.split(separator: "\n").count == 1)
    }
}

@Test func helpAndVersion() throws {
    let help = try StatorProcess(["--help"], waitForStart: false)
    #expect(try help.waitForExit() == 0)
    #expect(help.stdout.text.contains("STATOR_UDP_ADDRESS"))
    let version = try StatorProcess(["version"], waitForStart: false)
    #expect(try version.waitForExit() == 0)
    #expect(version.stdout.text.hasPrefix("stator "))
}

@Test func addressesInUseFailBeforeServing() throws {
    let (udp, udpPort) = try bindLoopback(Int32(SOCK_DGRAM.rawValue))
    defer { close(udp) }
    let run = try StatorProcess(["--udp.address", "127.0.0.1:\(udpPort)", "--http.address", "127.0.0.1:0"], waitForStart: false)
    #expect(try run.waitForExit() != 0)
    #expect(run.stderr.text.contains("Address already in use"), "\(run.stderr.text)")
    #expect(run.stderr.text.split(separator: "\n").count == 1)

    let (tcp, tcpPort) = try bindLoopback(Int32(SOCK_STREAM.rawValue))
    defer { close(tcp) }
    let run2 = try StatorProcess(["--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:\(tcpPort)"], waitForStart: false)
    #expect(try run2.waitForExit() != 0)
    #expect(run2.stderr.text.contains("Address already in use"), "\(run2.stderr.text)")
}

@Test func unknownStatorEnvironmentVariablesWarnButRun() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", ""], environment: ["STATOR_NOT_A_KEY": "1"])
    #expect(agent.stderr.text.contains("unknown environment variable STATOR_NOT_A_KEY ignored"))
    #expect(try agent.stop() == 0)
}

@Test func exampleConfigurationPassesCheckConfig() throws {
    let run = try StatorProcess(["check-config", "--config", repositoryPath("etc/stator.json")], waitForStart: false)
    #expect(try run.waitForExit() == 0, "\(run.stderr.text)")
    #expect(run.stderr.text.isEmpty)
    // The file holds every key with its default but the two that follow the core count: the
    // effective configuration it gives is the file with those two added.
    let effective = run.stdout.text.split(separator: "\n", omittingEmptySubsequences: false).filter {
        !$0.hasPrefix("    \"readers\": ") && !$0.hasPrefix("  \"shards\": ")
    }
    #expect(effective.count == run.stdout.text.split(separator: "\n", omittingEmptySubsequences: false).count - 2)
    #expect(effective.joined(separator: "\n") == readFile(repositoryPath("etc/stator.json")))
}
