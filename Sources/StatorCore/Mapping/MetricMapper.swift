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
    /// The regex rules in file order: position, `match_metric_type` and the compiled pattern
    /// (kept apart from the rules so that trying one copies no rule).
    private let regexRules: [(index: Int, kind: GlobTrie.Kind?, regex: LinearRegex)]

    init(_ file: MappingFile) {
        rules = file.rules
        var trie = GlobTrie(orderingDisabled: file.globDisableOrdering)
        for rule in file.rules where rule.matchType == .glob {
            trie.add(rule.match.split(separator: ".", omittingEmptySubsequences: false), kind: rule.metricKind, rule: rule.index)
        }
        trie.finish()
        self.trie = trie
        regexRules = file.rules.compactMap { rule in rule.regex.map { (rule.index, rule.metricKind, $0) } }
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
        // The name's bytes once for every regex rule (most refuse it by their literal prefilter).
        var bytes = name
        let found = bytes.withUTF8 { utf8 -> (Int, [Int])? in
            let text = UnsafeRawBufferPointer(utf8)
            for candidate in regexRules {
                if let k = candidate.kind, k != kind { continue }
                if let slots = candidate.regex.firstMatch(in: text) { return (candidate.index, slots) }
            }
            return nil
        }
        if let (index, slots) = found, let regex = rules[index].regex {
            let rule = rules[index]
            if rule.action == .drop { return .dropped(rule: rule.index) }
            // Byte offsets into the name's UTF-8, on rune boundaries; -1 for a group that took no part.
            let capture = { (n: Int) -> Substring? in
                guard n >= 0, 2 * n + 1 < slots.count, slots[2 * n] >= 0 else { return nil }
                let utf8 = name.utf8
                let start = utf8.index(utf8.startIndex, offsetBy: slots[2 * n])
                let end = utf8.index(utf8.startIndex, offsetBy: slots[2 * n + 1])
                return name[start..<end]
            }
            let named = { (group: String) -> Substring? in regex.group(named: group).flatMap(capture) }
            return .mapped(
                MappedName(
                    rule: rule.index, name: rule.name.expand(capture: capture, named: named),
                    labels: rule.labels.map { .init(name: $0.name, value: $0.value.expand(capture: capture, named: named)) }))
        }
        return .unmatched
    }
}
