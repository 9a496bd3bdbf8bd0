/// What a mapping file says of one statsd name and type.
enum MappingOutcome: Sendable, Equatable {
    /// No rule matches: the name is used as sections 2-4 of the line protocol say.
    case unmatched
    /// A rule with `action: drop` matches.
    case dropped(rule: Int)
    /// A rule maps the name: the series' name and the labels the rule adds (file order).
    case mapped(MappedName)
}

/// A name as a rule maps it.
struct MappedName: Sendable, Equatable {
    /// The rule's position in the file.
    var rule: Int
    var name: String
    var labels: [Label]

    struct Label: Sendable, Equatable {
        var name: String
        var value: String
    }
}

/// The rules of a mapping file, ready to match: every glob rule in one `GlobTrie`, tried
/// first, then the regex rules in file order, as statsd_exporter tries them.
final class MetricMapper: Sendable {
    let rules: [MappingRule]
    private let trie: GlobTrie
    private let regexRules: [Int]

    init(_ file: MappingFile) {
        rules = file.rules
        var trie = GlobTrie(orderingDisabled: file.globDisableOrdering)
        for rule in file.rules where rule.matchType == .glob {
            trie.add(rule.match.split(separator: ".", omittingEmptySubsequences: false), kind: rule.metricKind, rule: rule.index)
        }
        trie.finish()
        self.trie = trie
        regexRules = file.rules.filter { $0.matchType == .regex }.map(\.index)
    }

    /// Maps a statsd name of a type.
    func map(_ name: String, type: MetricType) -> MappingOutcome {
        let kind = GlobTrie.Kind(type)
        if let found = trie.match(name.split(separator: ".", omittingEmptySubsequences: false), kind: kind) {
            let rule = rules[found.rule]
            if rule.action == .drop { return .dropped(rule: rule.index) }
            // Glob captures count from 1; a glob has no `$0` and no named groups.
            let capture = { (n: Int) -> Substring? in n >= 1 && n <= found.captures.count ? found.captures[n - 1] : nil }
            return .mapped(
                MappedName(
                    rule: rule.index, name: rule.name.expand(capture: capture),
                    labels: rule.labels.map { .init(name: $0.name, value: $0.value.expand(capture: capture)) }))
        }
        for index in regexRules {
            let rule = rules[index]
            if let k = rule.metricKind, k != kind { continue }
            guard let regex = rule.regex, let match = try? regex.regex.firstMatch(in: name) else { continue }
            if rule.action == .drop { return .dropped(rule: rule.index) }
            let output = match.output
            let capture = { (n: Int) -> Substring? in n >= 0 && n < output.count ? output[n].substring : nil }
            let named = { (group: String) -> Substring? in output[group]?.substring }
            return .mapped(
                MappedName(
                    rule: rule.index, name: rule.name.expand(capture: capture, named: named),
                    labels: rule.labels.map { .init(name: $0.name, value: $0.value.expand(capture: capture, named: named)) }))
        }
        return .unmatched
    }
}
