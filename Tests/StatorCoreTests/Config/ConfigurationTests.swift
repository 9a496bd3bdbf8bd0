import Foundation
import Testing
@testable import StatorCore

private func parse(_ args: [String] = [], env: [String: String] = [:], file: String? = nil) throws -> CommandLineParser.Parsed {
    try CommandLineParser.parse(args, environment: env) { _ in
        guard let file else { throw CocoaError(.fileNoSuchFile) }
        return Data(file.utf8)
    }
}

private func configuration(_ args: [String] = [], env: [String: String] = [:], file: String? = nil) throws -> StatorConfiguration
{
    switch try parse(args, env: env, file: file).command {
    case .run(let c), .checkConfig(let c): return c
    default: throw ConfigError("not a run command")
    }
}

private func error(_ args: [String] = [], env: [String: String] = [:], file: String? = nil) -> String {
    do {
        _ = try parse(args, env: env, file: file)
        return "no error"
    } catch {
        return (error as? ConfigError)?.message ?? "\(error)"
    }
}

@Test func defaultsMatchTheSpec() throws {
    let c = try configuration()
    #expect(c.udp.address == "127.0.0.1:8125")
    #expect(c.http.address == "127.0.0.1:9102")
    #expect(c.json.path == "-")
    #expect(c.flush.intervalMillis == 10_000)
    #expect(c.flush.seriesTTLMillis == 300_000)
    #expect(c.flush.percentiles.map(\.value) == [90, 95, 99])
    #expect(c.aggregation.maxSamplesPerSeries == 10_000)
    #expect(c.aggregation.maxSeries == 1_000_000)
    #expect(c.udp.receiveBufferBytes == 8 << 20)
    #expect(c.udp.readers == ReceiverConfiguration.defaultReaders)
}

@Test func sourcesApplyInPrecedenceOrder() throws {
    let file = #"{"flush_interval": "5s", "udp": {"address": "127.0.0.1:1000"}, "sinks": {"json": {"path": "/tmp/a"}}}"#
    let env = ["STATOR_FLUSH_INTERVAL": "2s", "STATOR_SINKS_JSON_PATH": "/tmp/b"]
    let c = try configuration(["--config", "x.json", "--sinks.json.path=/tmp/c"], env: env, file: file)
    #expect(c.udp.address == "127.0.0.1:1000")  // file
    #expect(c.flush.intervalMillis == 2000)  // env over file
    #expect(c.json.path == "/tmp/c")  // flag over env
}

@Test func listsAndNumbersFromEnvironmentAndFlags() throws {
    let c = try configuration(["--percentiles", "[50, 99.9]", "--shards", "16"], env: ["STATOR_MAX_SERIES": "10"])
    #expect(c.flush.percentiles.map(\.label) == ["50", "99.9"])
    #expect(c.aggregation.shards == 16)
    #expect(c.aggregation.maxSeries == 10)
}

@Test func unknownEnvironmentVariablesOnlyWarn() throws {
    let parsed = try parse(env: ["STATOR_UDP_ADRESS": "x", "HOME": "/root"])
    #expect(parsed.warnings == ["unknown environment variable STATOR_UDP_ADRESS ignored"])
}

@Test(
    arguments: [
        (["--nope", "1"], nil as String?, "unknown flag --nope (try stator --help)"),
        // One spool directory, however it is spelled, is one directory.
        (
            [],
            #"{"sinks": {"http_push": [{"url": "http://h/a", "spool_dir": "/nonexistent/sp"}, {"url": "http://h/b", "spool_dir": "/nonexistent/./x/../sp/"}]}}"#,
            "sinks.http_push[1].spool_dir: two pushes share /nonexistent/./x/../sp/; each needs its own"
        ),
        // A refused URL never shows its password, even one holding what ends an authority.
        (
            ["--sinks.http_push.url", "http://u:s3c#ret@127.0.0.1:19401/p"], nil,
            "--sinks.http_push.url: sinks.http_push.url must be an http:// or https:// URL, got \"http://u:xxxxx@127.0.0.1:19401/p\""
        ),
        (
            ["--sinks.http_push.url", "http://u:s3c/ret@h/p"], nil,
            "--sinks.http_push.url: sinks.http_push.url must be an http:// or https:// URL, got \"http://u:xxxxx@h/p\""
        ),
        // Written as it is before every Graphite path: only the bytes a sanitized name keeps.
        (
            ["--sinks.graphite.prefix", "my\tapp*"], nil,
            "--sinks.graphite.prefix: sinks.graphite.prefix takes letters, digits, _, - and dots between them, got \"my\tapp*\""
        ),
        (
            ["--sinks.graphite.prefix", "a..b"], nil,
            "--sinks.graphite.prefix: sinks.graphite.prefix takes letters, digits, _, - and dots between them, got \"a..b\""
        ),
        ([], #"{"udp": {"adress": "x"}}"#, "x.json: unknown configuration key \"udp.adress\""),
        (
            [], #"{"flush_interval": 10}"#,
            "x.json: flush_interval must be a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\", got a number"
        ),
        ([], #"{"shards": 3}"#, "x.json: shards must be a power of two from 1 to 65536, got a number"),
        ([], #"{"percentiles": [0]}"#, "x.json: percentiles: each must be a number in (0, 100], got a number"),
        ([], #"{"udp": "x"}"#, "x.json: unknown configuration key \"udp\""),
        ([], "{", "x.json: not valid JSON"),
        (["--udp.readers", "0"], nil, "--udp.readers: udp.readers must be between 1 and 256, got 0"),
        (["--udp.readers", "two"], nil, "--udp.readers: udp.readers must be an integer, got \"two\""),
        (
            ["--series_ttl", "5x"], nil,
            "--series_ttl: series_ttl must be a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\", got \"5x\""
        ),
        (["--flush_interval", "0"], nil, "--flush_interval: flush_interval must be at least 10ms, got 0"),
        (["--udp.address", "localhost"], nil, "--udp.address: invalid address \"localhost\": expected host:port"),
        (
            ["--log.level", "loud"], nil,
            "--log.level: log.level must be one of trace, debug, info, notice, warning, error, critical, got \"loud\""
        ),
        (["frobnicate"], nil, "unknown command \"frobnicate\" (try stator --help)"),
        (["--sinks.prometheus.buckets", "[]"], nil, "--sinks.prometheus.buckets: sinks.prometheus.buckets must not be empty"),
        (
            ["--sinks.prometheus.buckets", "[1, 1]"], nil,
            "--sinks.prometheus.buckets: sinks.prometheus.buckets must be strictly increasing"
        ),
        (
            ["--sinks.prometheus.buckets", "[2, 1]"], nil,
            "--sinks.prometheus.buckets: sinks.prometheus.buckets must be strictly increasing"
        ),
        (
            ["--sinks.prometheus.buckets", "[1, \"x\"]"], nil,
            "--sinks.prometheus.buckets: sinks.prometheus.buckets must be a list of numbers"
        ),
        (
            [], #"{"sinks": {"prometheus": {"bucket_overrides": [{"match": "a.*"}]}}}"#,
            "x.json: sinks.prometheus.bucket_overrides[0] must be {\"match\": \"<glob>\", \"buckets\": [...]}"
        ),
        (
            [], #"{"sinks": {"prometheus": {"bucket_overrides": [{"match": "a.*", "buckets": [3, 2]}]}}}"#,
            "x.json: sinks.prometheus.bucket_overrides[0].buckets must be strictly increasing"
        ),
        ([], #"{"sinks": {"prometheus": {"prefix": "my-app"}}}"#, "x.json: sinks.prometheus.prefix may hold only letters"),
        ([], #"{"sinks": {"prometheus": {"unknown": 1}}}"#, "x.json: unknown configuration key \"sinks.prometheus.unknown\""),
        (["--flush_interval"], nil, "flag --flush_interval needs a value"),
        // The push client's timer counts whole seconds: a shorter timeout would not be the one in force.
        (
            ["--sinks.http_push.timeout", "500ms"], nil,
            "--sinks.http_push.timeout: sinks.http_push.timeout must be at least 1s, got 500ms"
        ),
        (["--max_name_bytes", "0"], nil, "--max_name_bytes: max_name_bytes must be between 1 and 65535, got 0"),
        (
            [], #"{"sinks": {"http_push": {"headers": {"X-Key": "a\u0000b"}}}}"#,
            "x.json: sinks.http_push.headers: invalid header \"X-Key\""
        ),
        // The client frames the request and names the host: a configured one would go twice.
        (
            ["--sinks.http_push.headers", #"{"host": "evil.example"}"#], nil,
            "--sinks.http_push.headers: sinks.http_push.headers: host cannot be set"
        ),
        (
            ["--sinks.http_push.headers", #"{"Content-Length": "0"}"#], nil,
            "--sinks.http_push.headers: sinks.http_push.headers: Content-Length cannot be set"
        ),
        (
            [], #"{"sinks": {"http_push": {"headers": {"Transfer-Encoding": "chunked"}}}}"#,
            "x.json: sinks.http_push.headers: Transfer-Encoding cannot be set"
        ),
        (
            ["--sinks.http_push.headers", #"{"X-Key": "a", "x-key": "b"}"#], nil,
            "--sinks.http_push.headers: sinks.http_push.headers: \"x-key\" is given twice"
        ),
    ] as [([String], String?, String)])
func reportsOneClearLine(_ args: [String], _ file: String?, _ expected: String) {
    let message = error(file == nil ? args : args + ["--config", "x.json"], file: file)
    #expect(message.hasPrefix(expected), "\(message)")
    #expect(!message.contains("\n"))
}

@Test(
    arguments: [("250ms", 250), ("10s", 10_000), ("1.5s", 1500), ("5m", 300_000), ("1h", 3_600_000), ("0", 0)]
        as [(String, Int64)])
func parsesDurations(_ text: String, _ millis: Int64) {
    #expect(ConfigDuration.parseMillis(text) == millis)
    #expect(ConfigDuration.parseMillis(ConfigDuration.format(millis)) == millis)
}

@Test(arguments: ["", "s", "10", "-1s", "1d", "1e3s", "ms", "5 m", "nan s"])
func rejectsBadDurations(_ text: String) {
    #expect(ConfigDuration.parseMillis(text) == nil)
}

@Test func everyKeyHasEnvironmentVariableAndFlag() {
    #expect(ConfigKeys.key("sinks.json.path")?.environmentName == "STATOR_SINKS_JSON_PATH")
    #expect(ConfigKeys.key("udp.address")?.environmentName == "STATOR_UDP_ADDRESS")
    #expect(ConfigKeys.key("flush_interval")?.flag == "--flush_interval")
    #expect(Set(ConfigKeys.all.map(\.path)).count == ConfigKeys.all.count)
}

@Test func renderedConfigurationReadsBackUnchanged() throws {
    let c = try configuration(["--flush_interval", "250ms", "--percentiles", "[99.9]", "--sinks.json.path", "/tmp/x y"])
    let text = ConfigKeys.render(c)
    let again = try configuration(["--config", "rendered.json"], file: text)
    #expect(ConfigKeys.render(again) == text)
    #expect(text.contains("\"flush_interval\": \"250ms\""))
}

@Test func helpListsEveryKey() {
    let usage = CommandLineParser.usage
    for key in ConfigKeys.all {
        #expect(usage.contains(key.flag))
        #expect(usage.contains(key.environmentName))
    }
}

@Test func prometheusBucketsAndOverridesParse() throws {
    let file =
        #"{"sinks": {"prometheus": {"prefix": "app_", "buckets": [0.1, 1], "bucket_overrides": [{"match": "db.*", "buckets": [5, 50]}]}}}"#
    let c = try configuration(["--config", "x.json"], file: file)
    #expect(c.prometheus.prefix == "app_")
    #expect(c.prometheus.buckets.defaults.upperBounds == [0.1, 1])
    #expect(c.prometheus.buckets.overrides.map(\.match) == ["db.*"])
    #expect(c.prometheus.buckets.overrides.first?.bounds.upperBounds == [5, 50])
    let env = try configuration(env: ["STATOR_SINKS_PROMETHEUS_BUCKET_OVERRIDES": #"[{"match": "x", "buckets": [1]}]"#])
    #expect(env.prometheus.buckets.overrides.count == 1)
}

@Test(
    arguments: [
        ("api.*", "api.latency", true), ("api.*", "api.v1.latency", true), ("api.*", "apix", false),
        ("*.latency", "db.latency", true), ("db.?", "db.x", true), ("db.?", "db.xy", false), ("exact", "exact", true),
        ("exact", "exactly", false), ("*", "", true), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false),
    ] as [(String, String, Bool)])
func globsMatchStatsdNames(_ pattern: String, _ name: String, _ expected: Bool) {
    #expect(Glob.matches(pattern, name) == expected)
}

@Test func aBareDoubleDashIsIgnored() throws {
    #expect(try configuration(["--", "--flush_interval", "1s"]).flush.intervalMillis == 1000)
}

@Test func severalPushesReadFromAListEachWithItsNameAndResolvedValues() throws {
    let file = #"""
        {"sinks": {"http_push": [
          {"url": "http://a.example/api/v1/write", "format": "remote_write", "external_labels": {"host": "${HOST_ID}"}},
          {"url": "http://b.example/v1/metrics", "format": "otlp", "temporality": "delta", "service_name": "billing"},
          {"url": "http://c.example/write", "format": "influx", "name": "influx-main", "spool_dir": "/var/spool/c"}
        ]}}
        """#
    let c = try configuration(["--config", "x.json"], env: ["HOST_ID": "web-1"], file: file)
    #expect(c.pushes.map(\.name) == ["http_push", "http_push_2", "influx-main"])
    #expect(c.pushes.map(\.format) == [.remoteWrite, .otlp, .influx])
    #expect(c.pushes[0].resolvedExternalLabels?.map(\.name) == ["host"])
    #expect(c.pushes[0].resolvedExternalLabels?.map(\.value) == ["web-1"])
    #expect(c.pushes[1].temporality == .delta)
    #expect(c.pushes[1].serviceName == "billing")
    #expect(c.pushes[2].spoolDirectory == "/var/spool/c")
    // A flag sets the first push; the others keep what the file says.
    let flagged = try configuration(
        ["--config", "x.json", "--sinks.http_push.batch_size", "7"], env: ["HOST_ID": "w"], file: file)
    #expect(flagged.pushes.map(\.batchSize) == [7, 1000, 1000])
}

@Test(arguments: [
    (
        #"{"sinks": {"http_push": [{"url": "http://a/", "name": "x"}, {"url": "http://b/", "name": "x"}]}}"#,
        "sinks.http_push[1].name: two pushes are named x"
    ),
    (
        #"{"sinks": {"http_push": [{"url": "http://a/", "spool_dir": "/s"}, {"url": "http://b/", "spool_dir": "/s"}]}}"#,
        "sinks.http_push[1].spool_dir: two pushes share /s; each needs its own"
    ),
    (
        #"{"sinks": {"http_push": [{"url": "http://a/", "name": "json"}]}}"#,
        "sinks.http_push.name: json is the name of another sink"
    ),
    (
        #"{"sinks": {"http_push": [{"url": "http://a/", "colour": "red"}]}}"#,
        "x.json: sinks.http_push[0]: unknown configuration key \"sinks.http_push.colour\""
    ),
    (#"{"sinks": {"http_push": ["http://a/"]}}"#, "x.json: sinks.http_push[0] must be an object, got a string"),
    (
        #"{"sinks": {"http_push": {"url": "http://a/", "external_labels": {"le": "x"}}}}"#,
        "x.json: sinks.http_push.external_labels: \"le\" is not a label name a push may add (le and quantile are the histograms')"
    ),
    (
        #"{"sinks": {"http_push": {"url": "http://a/", "format": "otlp", "temporality": "sometimes"}}}"#,
        "x.json: sinks.http_push.temporality must be cumulative or delta, got \"sometimes\""
    ),
    (
        #"{"sinks": {"graphite": {"address": "graphite"}}}"#,
        "x.json: sinks.graphite.address must be host:port or [IPv6]:port, got \"graphite\""
    ),
    (#"{"sinks": {"graphite": {"tags": "yes"}}}"#, "x.json: sinks.graphite.tags must be graphite or none, got \"yes\""),
    (#"{"sinks": {"json": {"format": "xml"}}}"#, "x.json: sinks.json.format must be json or emf, got \"xml\""),
])
func badPushAndSinkSettingsAreOneClearLine(_ file: String, _ message: String) {
    #expect(error(["--config", "x.json"], file: file) == message)
}

@Test func aListOfPushesIsPrintedAsAListByCheckConfig() throws {
    let file = #"{"sinks": {"http_push": [{"url": "http://a/"}, {"url": "http://b/", "format": "influx"}]}}"#
    let text = ConfigKeys.render(try configuration(["--config", "x.json"], file: file))
    let document = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    let pushes = try #require((document["sinks"] as? [String: Any])?["http_push"] as? [[String: Any]])
    #expect(pushes.map { $0["url"] as? String } == ["http://a/", "http://b/"])
    #expect(pushes.map { $0["format"] as? String } == ["json", "influx"])
    #expect(pushes.map { $0["name"] as? String } == ["http_push", "http_push_2"])
    // What check-config prints is a configuration file that gives the same pushes.
    let again = try configuration(["--config", "x.json"], file: text)
    #expect(again.pushes.map(\.url) == ["http://a/", "http://b/"])
}

@Test func thePushListComesWholeFromTheEnvironment() throws {
    // It was refused as an unknown variable: a container configured by environment only had
    // no way to get several pushes.
    let env = [
        "STATOR_SINKS_HTTP_PUSH": #"""
            [{"url": "http://a.example/api/v1/write", "format": "remote_write", "headers": {"X-Key": "${KEY}"}},
             {"url": "http://b.example/v1/metrics", "format": "otlp", "name": "otel"}]
            """#,
        "KEY": "k1",
        // The per-key variables set the first entry, over the list.
        "STATOR_SINKS_HTTP_PUSH_BATCH_SIZE": "7",
    ]
    let parsed = try parse([], env: env, file: nil)
    #expect(parsed.warnings.isEmpty)
    guard case .run(let c) = parsed.command else { throw ConfigError("not a run command") }
    #expect(c.pushes.map(\.name) == ["http_push", "otel"])
    #expect(c.pushes.map(\.format) == [.remoteWrite, .otlp])
    #expect(c.pushes.map(\.batchSize) == [7, 1000])
    #expect(c.pushes[0].resolvedHeaders == ["X-Key": "k1"])
    // It replaces the file's list; a flag still wins over it.
    let file = #"{"sinks": {"http_push": [{"url": "http://f1/"}, {"url": "http://f2/"}, {"url": "http://f3/"}]}}"#
    let flagged = try configuration(
        ["--config", "x.json", "--sinks.http_push.url", "http://flag/"], env: env, file: file)
    #expect(flagged.pushes.map(\.url) == ["http://flag/", "http://b.example/v1/metrics"])
    // One object is a list of one.
    let one = try configuration(env: ["STATOR_SINKS_HTTP_PUSH": #"{"url": "http://one/", "format": "influx"}"#])
    #expect(one.pushes.map(\.url) == ["http://one/"])
    #expect(one.pushes.map(\.format) == [.influx])
}

@Test(arguments: [
    (#"[{"url": "http://a/", "colour": "red"}]"#, "STATOR_SINKS_HTTP_PUSH: sinks.http_push[0]: unknown configuration key"),
    (#"["http://a/"]"#, "STATOR_SINKS_HTTP_PUSH: sinks.http_push[0] must be an object, got a string"),
    (#""http://a/""#, "STATOR_SINKS_HTTP_PUSH must be a JSON list of push objects, or one object; got a string"),
    (#"[{"url": "http://a/"}"#, "STATOR_SINKS_HTTP_PUSH: not valid JSON"),
] as [(String, String)])
func aBadPushListInTheEnvironmentIsOneClearLine(_ text: String, _ expected: String) {
    let message = error(env: ["STATOR_SINKS_HTTP_PUSH": text])
    #expect(message.hasPrefix(expected), "\(message)")
    #expect(!message.contains("\n"))
}

@Test func aSpoolDirectoryIsTheSameThroughASymlinkOrAnotherSpelling() throws {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("stator-canonical-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: base) }
    try FileManager.default.createDirectory(atPath: base + "/real/sp", withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: base + "/link", withDestinationPath: base + "/real")
    let real = StatorConfiguration.canonicalDirectory(base + "/real/sp")
    #expect(StatorConfiguration.canonicalDirectory(base + "/link/sp/") == real)
    #expect(StatorConfiguration.canonicalDirectory(base + "/link/./sp/new/..") == real)
    #expect(StatorConfiguration.canonicalDirectory(base + "/link/missing") == real.dropLast(2) + "missing")
}
