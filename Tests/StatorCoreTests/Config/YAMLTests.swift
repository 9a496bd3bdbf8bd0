import Testing

@testable import StatorCore

/// A compact rendering of a node for exact comparisons: scalars as "text" (quoted) or text
/// (plain), sequences as [a, b], mappings as {k: v}.
private func show(_ node: YAMLNode?) -> String {
    guard let node else { return "nil" }
    switch node {
    case .scalar(let text, let quoted, _): return quoted ? "\"\(text)\"" : text
    case .sequence(let items, _): return "[" + items.map(show).joined(separator: ", ") + "]"
    case .mapping(let entries, _): return "{" + entries.map { "\($0.key): \(show($0.value))" }.joined(separator: ", ") + "}"
    }
}

private func parse(_ text: String) throws -> String { show(try YAMLReader.parse(text)) }

private func error(_ text: String) -> YAMLError? {
    do throws(YAMLError) {
        _ = try YAMLReader.parse(text)
        return nil
    } catch {
        return error
    }
}

@Test func readsTheFirstMappingExampleOfStatsdExportersReadme() throws {
    let text = """
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
        """
    #expect(
        try parse(text)
            == "{mappings: [{match: test.dispatcher.*.*.*, name: \"dispatcher_events_total\", labels: {processor: \"$1\", "
            + "action: \"$2\", outcome: \"$3\", job: \"test_dispatcher\"}}, {match: \"*.signup.*.*\", "
            + "name: \"signup_events_total\", labels: {provider: \"$2\", outcome: \"$3\", job: \"${1}_server\"}}]}")
}

@Test func readsDefaultsFlowBucketsCommentsAndRegexesWithBackslashes() throws {
    let text = """
        ---
        # Defaults for every mapping.
        defaults:
          observer_type: histogram
          buckets: [.005, .01, .025, .05, .1, .25, .5, 1, 2.5 ]
          match_type: glob
          glob_disable_ordering: false
          ttl: 0 # metrics do not expire
        mappings:
        # A regex, written plain: its backslashes stay as they are.
        - match: (.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count
          match_type: regex
          name: "request_total"
          labels: {hostname: "$1", exec: '$2'}
        - match: .
          match_type: regex
          action: drop
          name: "dropped"
        """
    #expect(
        try parse(text)
            == "{defaults: {observer_type: histogram, buckets: [.005, .01, .025, .05, .1, .25, .5, 1, 2.5], "
            + "match_type: glob, glob_disable_ordering: false, ttl: 0}, mappings: [{match: (.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count, "
            + "match_type: regex, name: \"request_total\", labels: {hostname: \"$1\", exec: \"$2\"}}, "
            + "{match: ., match_type: regex, action: drop, name: \"dropped\"}]}")
}

@Test func readsIndentedSequencesOfMappingsAsInTheQuantilesExample() throws {
    let text = """
        mappings:
          - match: test.timing.*.*.*
            observer_type: summary
            summary_options:
              quantiles:
                - quantile: 0.99
                  error: 0.001
                - quantile: 0.5
                  error: 0.005
            histogram_options:
              buckets:
              - 1
              - 2
        """
    #expect(
        try parse(text)
            == "{mappings: [{match: test.timing.*.*.*, observer_type: summary, summary_options: {quantiles: "
            + "[{quantile: 0.99, error: 0.001}, {quantile: 0.5, error: 0.005}]}, histogram_options: {buckets: [1, 2]}}]}")
}

@Test func readsQuotedScalarsWithTheirEscapes() throws {
    #expect(try parse(#"a: "tab\tquote\" back\\ \x41\u00e9 # not a comment""#) == "{a: \"tab\tquote\" back\\ A\u{e9} # not a comment\"}")
    #expect(try parse("a: 'it''s # here' # a comment") == "{a: \"it's # here\"}")
    #expect(try parse("\"quoted key\": 1\n'other': 2") == "{quoted key: 1, other: 2}")
    #expect(try parse("a: b#c") == "{a: b#c}")  // a # inside a plain value is no comment
    #expect(try parse("a: http://x:9/y") == "{a: http://x:9/y}")
}

@Test func readsNestedFlowCollectionsAlsoOverSeveralLines() throws {
    #expect(try parse("a: [1, [2, 3], {b: c, d: [e]}, \"x, y\"]") == "{a: [1, [2, 3], {b: c, d: [e]}, \"x, y\"]}")
    #expect(try parse("a: []\nb: {}") == "{a: [], b: {}}")
    #expect(try parse("buckets: [0.1,\n  0.5, # half\n  1]\nnext: x") == "{buckets: [0.1, 0.5, 1], next: x}")
    #expect(try parse("[a, b]") == "[a, b]")
    #expect(try parse("a: [1 2]") == "{a: [1 2]}")  // one plain value with a space, as YAML reads it
}

@Test func readsLiteralAndFoldedBlockScalars() throws {
    #expect(try parse("help: |\n  line one\n  line two\nnext: x") == "{help: \"line one\nline two\n\", next: x}")
    #expect(try parse("help: |-\n  kept\n    indented\n\nnext: x") == "{help: \"kept\n  indented\", next: x}")
    #expect(try parse("help: >\n  folded\n  into one\n\n  paragraph two\nnext: x") == "{help: \"folded into one\nparagraph two\n\", next: x}")
    #expect(try parse("help: >-\n  a\n  b\n") == "{help: \"a b\"}")
    #expect(try parse("help: |+\n  a\n\nnext: x") == "{help: \"a\n\n\", next: x}")
    #expect(try parse("- |\n  in a list\n- b") == "[\"in a list\n\", b]")
}

@Test func readsNullsEmptyDocumentsAndTheEndMarker() throws {
    #expect(try YAMLReader.parse("") == nil)
    #expect(try YAMLReader.parse("# only a comment\n\n---\n") == nil)
    #expect(try parse("a:\nb: ~\n") == "{a: , b: ~}")
    #expect(try YAMLReader.parse("a:")?.mappingValue("a")?.isNull == true)
    #expect(try parse("a: 1\n...\n# trailing comment") == "{a: 1}")
    #expect(try parse("a: 1\r\nb: 2\r\n") == "{a: 1, b: 2}")
}

@Test func keepsLineNumbersOnNodes() throws {
    let node = try #require(try YAMLReader.parse("# header\nmappings:\n- match: a\n\n  name: b\n"))
    guard case .mapping(let top, let line) = node else { Issue.record("not a mapping"); return }
    #expect(line == 2)
    guard case .sequence(let items, _) = top[0].value, case .mapping(let entries, let itemLine) = items[0] else {
        Issue.record("not a list of mappings")
        return
    }
    #expect(itemLine == 3)
    #expect(entries.map(\.value.line) == [3, 5])
}

@Test(arguments: [
    ("a: 1\n  b: 2", 2, "a key inside a plain value that goes on from line 1; indent it less"),
    ("a: 1\na: 2", 2, "duplicate key \"a\""),
    ("a: *x", 1, "*x is an alias to no anchor; quote a value that starts with *"),
    ("- match: *.signup.*.*", 1, "*.signup.*.* is an alias to no anchor; quote a value that starts with *"),
    ("a: &\nb: 1", 1, "an anchor (&) needs a name"),
    ("a: &x 1\nb:\n  <<: *x", 3, "a merge (<<) takes a mapping or a list of mappings"),
    ("- match:\tfoo\n  name: x", 1, "a tab after the : of match (YAML separates with spaces)"),
    ("a: !!str 1", 1, "tags (!) are not supported"),
    ("? a\n: b", 1, "complex keys (?) are not supported"),
    ("%YAML 1.2\n---\na: 1", 1, "directives (%) are not supported"),
    ("a: 1\n---\nb: 2", 2, "several documents in one file are not supported"),
    ("a:\n\t- 1", 2, "a tab in indentation (YAML indents with spaces)"),
    ("a: \"open\nb: 1", 1, "a quoted value that is never closed"),
    ("a: [1, 2", 1, "a [ or { that is never closed"),
    ("a: [1, [2]x]", 1, "expected , or ] in a flow sequence, found x"),
    ("a: {b c}", 1, "expected : after the key \"b c\" in a flow mapping"),
    ("a: \"x\" y", 1, "unexpected text after a quoted value"),
    ("a: \"\\q\"", 1, "unknown escape \\q in a double-quoted value"),
    ("a:\n  - 1\n  b: 2", 3, "unexpected indentation or content here"),
    ("a: 1\n...\nb: 2", 3, "content after the end of the document (...)"),
    ("a: |x\n  b", 1, "a block scalar header is | or > with an optional - or + and indentation digit"),
    ("a: 1\n b: 2", 2, "a key inside a plain value that goes on from line 1; indent it less"),
])
func rejectsWhatTheSubsetDoesNotReadNamingTheLine(_ text: String, _ line: Int, _ message: String) {
    #expect(error(text) == YAMLError(line: line, message: message))
}

extension YAMLNode {
    /// The value under `key`, for a mapping.
    fileprivate func mappingValue(_ key: String) -> YAMLNode? {
        guard case .mapping(let entries, _) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }
}

@Test func neverCrashesOrHangsOnRandomText() {
    // Texts drawn mostly from YAML's structural characters: every one is read or rejected.
    var rng = SplitMix64(state: 42)
    let alphabet = Array("-:#[]{},|>'\"\\ \n\n  ab1*&!?~.%")
    var read = 0
    for _ in 0..<5_000 {
        let length = Int(rng.next() % 40)
        let text = String((0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
        if (try? YAMLReader.parse(text)) != nil { read += 1 }
    }
    #expect(read > 100)  // not everything is rejected
}

@Test func readsAnchorsAliasesAndMergeKeysAsGoYAMLDoes() throws {
    // The way mapping files share histogram options between rules.
    let text = """
        defaults: &defaults
          observer_type: histogram
          histogram_options: &buckets
            buckets: [0.1, 1]
        mappings:
        - match: a.*
          name: a
          <<: *defaults
        - match: b.*
          name: b
          histogram_options: *buckets
          <<: [{name: ignored, help: from the first}, {help: from the second, ttl: 1m}]
        - &third
          match: c.*
          name: c
        - *third
        """
    #expect(
        try parse(text)
            == "{defaults: {observer_type: histogram, histogram_options: {buckets: [0.1, 1]}}, mappings: ["
            + "{match: a.*, name: a, observer_type: histogram, histogram_options: {buckets: [0.1, 1]}}, "
            + "{match: b.*, name: b, histogram_options: {buckets: [0.1, 1]}, help: from the first, ttl: 1m}, "
            + "{match: c.*, name: c}, {match: c.*, name: c}]}")
}

@Test func foldsPlainAndQuotedScalarsOverSeveralLines() throws {
    let folded = """
        a: one
          two

          three
        b: "x
          y \\
          z"
        c: 'it''s
         fine' # a comment

        """
    #expect(error(folded + "- not: part of c") == YAMLError(line: 10, message: "unexpected indentation or content here"))
    let fine = folded + "d: end"
    // An escaped line break (a \ ending a double-quoted line) adds no space: "y " + "z".
    let got = try parse(fine)
    #expect(got == "{a: one two\nthree, b: \"x y z\", c: \"it's fine\", d: end}")
}

@Test func readsAByteOrderMarkAndCRLFLineEnds() throws {
    #expect(try parse("\u{FEFF}mappings:\r\n- match: a.*\r\n  name: a\r\n") == "{mappings: [{match: a.*, name: a}]}")
}

@Test func readsAnchorsAndAliasesInFlowCollections() throws {
    // `<<: [*a, *b]` is the usual way to merge several mappings.
    let text = """
        a: &a {x: 1, y: 2}
        b: &b {y: 3, z: 4}
        c:
          <<: [*a, *b]
          w: 0
        d: [&n 5, *n, {k: *n}]
        """
    #expect(try parse(text) == "{a: {x: 1, y: 2}, b: {y: 3, z: 4}, c: {w: 0, x: 1, y: 2, z: 4}, d: [5, 5, {k: 5}]}")
}

@Test(arguments: [
    "m: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000),
    "m: " + String(repeating: "{a: ", count: 2_000) + String(repeating: "}", count: 2_000),
    String(repeating: "- ", count: 2_000) + "x",
])
func refusesNestingPastAHundredInsteadOfOverflowingTheStack(_ text: String) {
    // The first killed the agent on a reload (a stack overflow), 50,000 deep.
    #expect(error(text) == YAMLError(line: 1, message: "collections nested more than 100 deep"))
}

@Test func refusesBlockNestingPastAHundredNamingTheLine() {
    let text = (0..<1_100).map { String(repeating: " ", count: $0) + "a:" }.joined(separator: "\n")
    #expect(error(text) == YAMLError(line: 101, message: "collections nested more than 100 deep"))
    // 100 deep is read.
    let deep = (0..<99).map { String(repeating: " ", count: $0) + "a:" }.joined(separator: "\n") + " 1"
    #expect(error(deep) == nil)
}

@Test func aQuoteOrBracketLeftOpenOverManyLinesIsReadOnce() {
    // Each line of a quoted value or flow collection was read again with every line after
    // it (the fuzzer's timeout): 20,000 lines took minutes. Now each is looked at once.
    let quoted = "a: \"open\n" + String(repeating: "  more text\n", count: 20_000)
    #expect(error(quoted) == YAMLError(line: 1, message: "a quoted value that is never closed"))
    let flow = "a: [1,\n" + String(repeating: "  2,\n", count: 20_000)
    #expect(error(flow) == YAMLError(line: 1, message: "a [ or { that is never closed"))
    #expect((try? parse("a: [1,\n" + String(repeating: "  2,\n", count: 20_000) + "  3]")) != nil)
}
