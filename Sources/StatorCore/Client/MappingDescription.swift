// `stator map`: what the mapping rules make of a name, for an operator debugging a file.
extension MappingRules {
    /// What the rules in force make of `name` sent as `type`, for `stator map`: the rule that
    /// matched (its position, line and match), the series' name and labels, and the family
    /// name `/metrics` shows; or that nothing matches.
    public func describe(_ name: String, type: MetricType) -> String {
        let rules = current
        let kind = GlobTrie.Kind(type)
        switch rules.mapper.map(name, type: type) {
        case .unmatched:
            let family = PrometheusNaming.familyName(statsdName: name, type: type)
            return "\(name) (\(type), \(kind)): no rule matches; the name is used as without a mapping (\(family) on /metrics)\n"
        case .dropped(let index):
            let rule = rules.mapper.rules[index]
            return
                "\(name) (\(type), \(kind)): dropped by rule \(index + 1) (line \(rule.line), \(rule.matchType) \(rule.match))\n"
        case .mapped(let mapped):
            let rule = rules.mapper.rules[mapped.rule]
            var out = "\(name) (\(type), \(kind)): rule \(mapped.rule + 1) (line \(rule.line), \(rule.matchType) \(rule.match))\n"
            let bytes = Array(mapped.name.utf8)
            if bytes.isEmpty || bytes.count > maxNameBytes {
                return out + "  name: \"\(mapped.name)\" cannot be used: the line is dropped (mapping_invalid_name)\n"
            }
            out += "  name: \(mapped.name)\n"
            for label in mapped.labels {
                // Escaped as the page writes a label value (backslash, quote, newline).
                var escaped: [UInt8] = []
                Array(label.value.utf8).withUnsafeBytes { PrometheusNaming.appendEscapedLabelValue($0, to: &escaped) }
                out += "  label: \(label.name)=\"\(String(decoding: escaped, as: UTF8.self))\"\n"
            }
            if rule.honorLabels { out += "  honor_labels: the line's own tags win over these labels\n" }
            let family = bytes.withUnsafeBytes { raw in
                var text: [UInt8] = []
                PrometheusNaming.appendFamilyName(prefix: [], statsdName: raw, type: type, mapped: true, to: &text)
                return String(decoding: text, as: UTF8.self)
            }
            out += "  on /metrics: \(family)"
            if type.isSampled { out += " (\(rule.options.observerType ?? .histogram))" }
            return out + "\n"
        }
    }

    /// The position in the file (0 for the first) of the rule that decides `name` sent as
    /// `type`, mapping or dropping it; nil when none matches. What a reader works out once per
    /// new series (`scripts/bench mapping` times it).
    public func matchingRule(for name: String, type: MetricType) -> Int? {
        switch current.mapper.map(name, type: type) {
        case .unmatched: return nil
        case .dropped(let rule): return rule
        case .mapped(let mapped): return mapped.rule
        }
    }
}
