import Foundation
import Testing

@testable import StatorCore

/// A mapper from a mapping file's text.
private func mapper(_ yaml: String) throws -> MetricMapper {
    MetricMapper(try MappingFile.parse(yaml, source: "test.yml"))
}

/// What `name` of `type` maps to, written `name{label="value",...}` (labels in file order),
/// `drop #rule` or `-` when nothing matches.
private func show(_ m: MetricMapper, _ name: String, _ type: MetricType = .counter) -> String {
    switch m.map(name, type: type) {
    case .unmatched: return "-"
    case .dropped(let rule): return "drop #\(rule)"
    case .mapped(let mapped):
        return mapped.name + "{" + mapped.labels.map { "\($0.name)=\"\($0.value)\"" }.joined(separator: ",") + "}"
    }
}

@Test func mapsTheExamplesOfStatsdExportersReadme() throws {
    let m = try mapper(
        """
        mappings:
        - match: test.dispatcher.*.*.*
          name: "dispatcher_events_total"
          labels:
            processor: "$1"
            action: "$2"
            outcome: "$3"
            job: "test_dispatcher"
        - match: "*.signup.*.*"
          name: "signup_events_total"
          labels:
            provider: "$2"
            outcome: "$3"
            job: "${1}_server"
        - match: test.*.*.counter
          name: "${2}_total"
          labels:
            provider: "$1"
        """)
    #expect(
        show(m, "test.dispatcher.FooProcessor.send.success")
            == #"dispatcher_events_total{processor="FooProcessor",action="send",outcome="success",job="test_dispatcher"}"#)
    #expect(show(m, "foo_product.signup.facebook.failure") == #"signup_events_total{provider="facebook",outcome="failure",job="foo_product_server"}"#)
    #expect(show(m, "test.web-server.foo.bar") == "-")
    #expect(show(m, "test.a.b.counter") == #"b_total{provider="a"}"#)
}

@Test func globsAreTriedInFileOrderAndBeforeEveryRegex() throws {
    let m = try mapper(
        """
        mappings:
        - match: "a.*.c"
          name: "star_first"
        - match: "a.b.c"
          name: "literal_second"
        - match: "a\\\\.b\\\\.c"
          match_type: regex
          name: "regex_first_in_file"
        """)
    // The regex comes first in the file, but every glob is tried before it.
    #expect(show(m, "a.b.c") == "star_first{}")
    #expect(show(m, "a.x.c") == "star_first{}")
    let reordered = try mapper(
        """
        mappings:
        - match: "a.b.c"
          name: "literal_first"
        - match: "a.*.c"
          name: "star_second"
        """)
    #expect(show(reordered, "a.b.c") == "literal_first{}")
    #expect(show(reordered, "a.x.c") == "star_second{}")
}

@Test func theFirstRuleWinsAlsoWhenItsPathNeedsBacktracking() throws {
    // The literal path a.b.* leads nowhere for a.b.x.y; the walk must come back to a.*.
    let m = try mapper(
        """
        mappings:
        - match: "a.b.*"
          name: "three"
        - match: "a.*.x.y"
          name: "four_star"
          labels: {second: "$1"}
        - match: "a.b.x.*"
          name: "four_literal"
        """)
    #expect(show(m, "a.b.z") == "three{}")
    #expect(show(m, "a.b.x.y") == #"four_star{second="b"}"#)  // the earlier rule, through *
    #expect(show(m, "a.b.x.z") == "four_literal{}")
    #expect(show(m, "a.b") == "-")
    #expect(show(m, "a.b.x.y.z") == "-")
}

@Test func globDisableOrderingPrefersLiteralsFromTheLeft() throws {
    let text = """
        defaults:
          glob_disable_ordering: true
        mappings:
        - match: "a.*.*"
          name: "stars"
        - match: "a.b.*"
          name: "literal"
        - match: "*.b.c"
          name: "leading_star"
        """
    let m = try mapper(text)
    #expect(show(m, "a.b.c") == "literal{}")  // the literal a, then the literal b
    #expect(show(m, "a.x.c") == "stars{}")
    #expect(show(m, "z.b.c") == "leading_star{}")
    let ordered = try mapper(text.replacingOccurrences(of: "true", with: "false"))
    #expect(show(ordered, "a.b.c") == "stars{}")
}

@Test func regexesAreSearchedWithGroupsZeroAndMissingOnes() throws {
    let m = try mapper(
        #"""
        mappings:
        - match: (.*)\.(.*)--(.*)\.status\.(.*)\.count
          match_type: regex
          name: "request_total"
          labels:
            hostname: "$1"
            exec: "$2"
            protocol: "$3"
            code: "$4"
        - match: 'api\.(?P<verb>\w+)'
          match_type: regex
          name: "api_${1}_total"
          labels:
            verb: "${verb}"
            whole: "$0"
            missing: "${9}"
            not_a_group: "$1_x"
        - match: '^exact$'
          match_type: regex
          name: "anchored"
        """#)
    #expect(
        show(m, "host1.exec--http.status.200.count")
            == #"request_total{hostname="host1",exec="exec",protocol="http",code="200"}"#)
    // Searched, not anchored: the match may start and end inside the name.
    #expect(show(m, "my.api.get.latency") == #"api_get_total{verb="get",whole="api.get",missing="",not_a_group=""}"#)
    #expect(show(m, "exact") == "anchored{}")
    #expect(show(m, "not.exact") == "-")
}

@Test func matchMetricTypeRestrictsARule() throws {
    let m = try mapper(
        """
        mappings:
        - match: "test.foo.*"
          name: "test_foo_counter"
          match_metric_type: counter
        - match: "test.foo.*"
          name: "test_foo_observer"
          match_metric_type: observer
        - match: "test.foo.*"
          name: "test_foo_gauge"
          match_metric_type: gauge
        - match: "re\\\\..*"
          match_type: regex
          match_metric_type: gauge
          name: "re_gauge"
        """)
    #expect(show(m, "test.foo.a", .counter) == "test_foo_counter{}")
    #expect(show(m, "test.foo.a", .timer) == "test_foo_observer{}")
    #expect(show(m, "test.foo.a", .histogram) == "test_foo_observer{}")
    #expect(show(m, "test.foo.a", .distribution) == "test_foo_observer{}")
    #expect(show(m, "test.foo.a", .gauge) == "test_foo_gauge{}")
    #expect(show(m, "test.foo.a", .set) == "test_foo_gauge{}")  // sets are gauges
    #expect(show(m, "re.x", .gauge) == "re_gauge{}")
    #expect(show(m, "re.x", .counter) == "-")
}

@Test func dropRulesDropWhatTheyMatchFirst() throws {
    let m = try mapper(
        """
        mappings:
        - match: test.timing.*.*.*
          name: "my_timer"
          labels:
            provider: "$2"
        - match: .
          match_type: regex
          action: drop
          name: "dropped"
        - match: "debug.*"
          action: drop
        """)
    #expect(show(m, "test.timing.a.b.c", .timer) == #"my_timer{provider="b"}"#)
    #expect(show(m, "anything.else") == "drop #1")
    #expect(show(m, "debug.x") == "drop #2")  // a glob: tried before the regex drop
}

@Test func readsOptionsWithDefaultsAndLegacyKeys() throws {
    let file = try MappingFile.parse(
        """
        defaults:
          observer_type: summary
          quantiles:
            - quantile: 0.99
              error: 0.001
            - quantile: 0.5
              error: 0.05
          ttl: 1m20s
        mappings:
        - match: a.*
          name: a
        - match: b.*
          name: b
          timer_type: histogram
          buckets: [0.1, 1]
          ttl: 0
          scale: 0.001
          help: |
            Requests, by route.
        - match: c.*
          name: c
          summary_options:
            quantiles: [{quantile: 0.9, error: 0.01}]
            max_age: 30s
        """, source: "test.yml")
    #expect(file.rules[0].options.observerType == .summary)
    #expect(file.rules[0].options.quantiles == [0.5, 0.99])
    #expect(file.rules[0].options.ttlMillis == 80_000)
    #expect(file.rules[1].options.observerType == .histogram)
    #expect(file.rules[1].options.buckets == [0.1, 1])
    #expect(file.rules[1].options.ttlMillis == 80_000)  // ttl 0 takes the defaults' ttl, as statsd_exporter does
    #expect(file.rules[1].options.scale == 0.001)
    #expect(file.rules[1].options.help == "Requests, by route.\n")
    #expect(file.rules[2].options.quantiles == [0.9])
    #expect(file.ignoredKeys.map(\.key) == ["max_age"])
}

@Test(arguments: [
    ("mappings:\n- match: api_*_count\n  name: x", "line 2: match api_*_count is not a glob"),
    ("mappings:\n- match: a..b\n  name: x", "line 2: match a..b is not a glob"),
    ("mappings:\n- match: 0.b\n  name: x", "line 2: match 0.b is not a glob"),
    ("mappings:\n- match: a.-b\n  name: x", "line 2: match a.-b is not a glob"),
    ("mappings:\n- match: a.b*\n  name: x", "line 2: match a.b* is not a glob"),
    ("mappings:\n- match: '(a'\n  match_type: regex\n  name: x", "line 2: match is not a valid regular expression: (a"),
    ("mappings:\n- match: a.b\n  name: x\n  ttl: 5 minutes", "line 4: ttl must be a duration such as 30s, 1m20s or 0, got 5 minutes"),
    ("mappings:\n- match: a.b\n  name: x\n  labels:\n    bad-label: y", "line 5: label name bad-label is invalid"),
    ("mappings:\n- match: a.b\n  name: x\n  labels:\n    __reserved: y", "line 5: label name __reserved is invalid"),
    ("mappings:\n- match: a.b\n  name: my.metric", "line 3: name my.metric is not a metric name"),
    ("mappings:\n- match: a.b\n  name: 1abc", "line 3: name 1abc is not a metric name"),
    ("mappings:\n- match: a.b", "line 2: a mapping needs a name"),
    ("mappings:\n- name: x", "line 2: a mapping needs a match"),
    ("mappings:\n- match: a.b\n  name: x\n  colour: red", "line 4: unknown key colour in a mapping"),
    ("defaults:\n  speed: 1\nmappings: []", "line 2: unknown key speed in defaults"),
    ("mapping:\n- match: a.b", "line 2: unknown key mapping in the file"),
    ("mappings:\n- match: a.b\n  name: x\n  match_type: fuzzy", "line 4: match_type must be glob or regex, got fuzzy"),
    ("mappings:\n- match: a.b\n  name: x\n  match_metric_type: set", "line 4: match_metric_type must be counter, gauge or observer, got set"),
    ("mappings:\n- match: a.b\n  name: x\n  action: keep", "line 4: action must be map or drop, got keep"),
    ("mappings:\n- match: a.b\n  name: x\n  honor_labels: maybe", "line 4: honor_labels must be true or false, got maybe"),
    ("mappings:\n- match: a.b\n  name: x\n  honor_labels: tRUE", "line 4: honor_labels must be true or false, got tRUE"),
    ("mappings:\n- match: a.b\n  name: x\n  buckets: [1, 0.5]", "line 4: buckets"),
    ("mappings:\n- match: a.b\n  name: x\n  buckets: [a]", "line 4: buckets must be a number, got a"),
    ("mappings:\n- match: a.b\n  name: x\n  observer_type: summary\n  buckets: [1]", "line 2: histogram buckets are set on a summary mapping"),
    ("mappings:\n- match: a.b\n  name: x\n  quantiles: [{quantile: 2}]", "line 4: quantile must be between 0 and 1, got 2.0"),
    ("mappings:\n- match: a.b\n  name: x\n  scale: 0", "line 4: scale must be a finite number other than 0"),
    ("mappings: {a: b}", "line 1: mappings must be a list"),
    ("mappings:\n- match: *.b\n  name: x", "line 2: *.b is an alias to no anchor; quote a value that starts with *"),
])
func rejectsABadFileNamingItsLine(_ text: String, _ message: String) {
    #expect(throws: ConfigError.self) { try MappingFile.parse(text, source: "m.yml") }
    do {
        _ = try MappingFile.parse(text, source: "m.yml")
    } catch {
        #expect(error.message.hasPrefix("mapping_config m.yml: " + message), "\(error.message)")
    }
}

@Test(arguments: [
    ("$1", [MappingTemplate.Piece.capture(1)]),
    ("${1}_total", [.capture(1), .literal("_total")]),
    ("$1_total", [.named("1_total")]),
    ("a$$b", [.literal("a$b")]),
    ("cost$", [.literal("cost$")]),
    ("${1", [.literal("${1")]),
    ("${x y}", [.literal("${x y}")]),
    ("${verb}s", [.named("verb"), .literal("s")]),
    ("$99999999999999999999", [.capture(.max)]),
])
func readsTemplatesAsGoExpandsThem(_ text: String, _ pieces: [MappingTemplate.Piece]) {
    #expect(MappingTemplate(text).pieces == pieces)
}

@Test func parsesGoDurations() {
    #expect(MappingFile.parseGoDuration("1m20s") == 80_000)
    #expect(MappingFile.parseGoDuration("1.5h") == 5_400_000)
    #expect(MappingFile.parseGoDuration("250ms") == 250)
    #expect(MappingFile.parseGoDuration("10us") == 1)  // under a millisecond, but not 0
    #expect(MappingFile.parseGoDuration("0") == 0)
    #expect(MappingFile.parseGoDuration("5") == nil)
    #expect(MappingFile.parseGoDuration("") == nil)
    #expect(MappingFile.parseGoDuration("1d") == nil)
}

@Test func globsTakeDigitsAfterTheFirstComponentAndRepeatedDashes() throws {
    // Each of these stopped the agent at start before ("200 is neither...").
    let m = try mapper(
        """
        mappings:
        - match: http.*.200
          name: "http_ok_total"
          labels:
            route: "$1"
        - match: kafka.partition.0.*
          name: "kafka_first_partition_total"
          labels:
            topic: "$1"
        - match: svc--name.*
          name: "svc_total"
          labels:
            op: "$1"
        - match: edge-.b--
          name: "dashes_total"
        """)
    #expect(show(m, "http.login.200") == #"http_ok_total{route="login"}"#)
    #expect(show(m, "http.login.404") == "-")
    #expect(show(m, "kafka.partition.0.orders") == #"kafka_first_partition_total{topic="orders"}"#)
    #expect(show(m, "svc--name.read") == #"svc_total{op="read"}"#)
    #expect(show(m, "edge-.b--") == "dashes_total{}")
}

@Test func regexRulesMeanWhatGoMeans() throws {
    // Go's \b, \w and \d are ASCII; Swift's Regex read them as Unicode.
    let m = try mapper(
        #"""
        mappings:
        - match: '\bapi\b'
          match_type: regex
          name: "api_total"
        - match: '^(\w+)\.(\d+)\.count$'
          match_type: regex
          name: "code_total"
          labels:
            service: "$1"
            code: "$2"
        - match: '^\pL+\.a{,3}$'
          match_type: regex
          name: "letters_total"
        """#)
    #expect(show(m, "service.api.requests") == "api_total{}")
    #expect(show(m, "web.200.count") == #"code_total{service="web",code="200"}"#)
    #expect(show(m, "café.200.count") == "-")
    #expect(show(m, "web.\u{663}\u{660}\u{660}.count") == "-")
    #expect(show(m, "été.a{,3}") == "letters_total{}")
}

@Test func theNewSpellingWinsOverTheLegacyOneWithAWarningAndAnEmptyActionMaps() throws {
    // Refused before ("quantiles are set twice"); statsd_exporter lets the new spelling win.
    let file = try MappingFile.parse(
        """
        mappings:
        - match: a.*
          name: a
          observer_type: summary
          quantiles: [{quantile: 0.5, error: 0.05}]
          summary_options:
            quantiles: [{quantile: 0.9, error: 0.01}]
        - match: b.*
          name: b
          buckets: [1, 2]
          histogram_options:
            buckets: [5, 10]
          action: ""
        """, source: "test.yml")
    #expect(file.rules[0].options.quantiles == [0.9])
    #expect(file.rules[1].options.buckets == [5, 10])
    #expect(file.rules[1].action == .map)
    #expect(
        file.ignoredKeys.map { "\($0.key) (line \($0.line))" } == [
            "quantiles, overridden by summary_options.quantiles (line 5)",
            "buckets, overridden by histogram_options.buckets (line 10)",
        ])
}

@Test func statorMapEscapesLabelValuesAsThePageDoes() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("map-\(UUID().uuidString).yml").path
    try "mappings:\n- match: '^q\\.(.*)$'\n  match_type: regex\n  name: quoted\n  labels:\n    v: \"$1\"\n".write(
        toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let rules = try MappingRules(path: path, maxNameBytes: 1024)
    let text = rules.describe(#"q.say "hi" \ bye"#, type: .counter)
    #expect(text.contains(#"  label: v="say \"hi\" \\ bye""#), "\(text)")
}

@Test func aRuleKeepsItsSlotWhenOnlyItsOptionsChange() throws {
    let registry = MappingOptionsRegistry()
    let first = try MappingFile.parse(
        "mappings:\n- match: a.*\n  name: a\n  help: one\n- match: b.*\n  name: b\n  histogram_options: {buckets: [1, 2]}\n",
        source: "test.yml")
    let slots = try #require(registry.slots(for: first.rules))
    registry.putInForce(first.rules, slots: slots)
    #expect(slots == [0, 1])
    let bounds = try #require(registry.bounds(1))
    // Moved, with new options: the same slots, the new options in force once put in force.
    let second = try MappingFile.parse(
        "mappings:\n- match: b.*\n  name: b\n  histogram_options: {buckets: [1, 2]}\n  help: new\n"
            + "- match: a.*\n  name: a\n  help: two\n- match: a.*\n  name: other\n",
        source: "test.yml")
    let again = try #require(registry.slots(for: second.rules))
    #expect(again == [1, 0, 2])  // `name: other` is another rule
    #expect(registry.snapshot()[0].help == "one")  // not in force before the reload commits
    registry.putInForce(second.rules, slots: again)
    #expect(registry.snapshot().map(\.help) == ["two", "new", nil])
    #expect(registry.bounds(1) === bounds)  // equal buckets: the same bounds, nothing reset
}

@Test(arguments: [
    ("y", true), ("Y", true), ("yes", true), ("Yes", true), ("YES", true), ("true", true), ("True", true),
    ("TRUE", true), ("on", true), ("On", true), ("ON", true), ("n", false), ("N", false), ("no", false),
    ("No", false), ("NO", false), ("false", false), ("False", false), ("FALSE", false), ("off", false),
    ("Off", false), ("OFF", false),
])
func booleansAreYAML11s(_ text: String, _ value: Bool) throws {
    let file = try MappingFile.parse("mappings:\n- match: a.b\n  name: x\n  honor_labels: \(text)\n", source: "test.yml")
    #expect(file.rules[0].honorLabels == value)
}
