import Foundation

/// A statsd_exporter mapping file, read and checked: its rules in file order and whether glob
/// ordering is disabled. Everything Stator cannot honour is an error naming the file's line;
/// keys statsd_exporter accepts and Stator has no use for are accepted and listed in
/// `ignoredKeys`, for one warning.
struct MappingFile: Sendable {
    var rules: [MappingRule] = []
    var globDisableOrdering = false
    /// `defaults.ttl`: replaces `series_ttl` for unmatched series too (0: they never expire).
    var defaultTTLMillis: Int64?
    /// Accepted keys that change nothing here (`max_age`, `age_buckets`, `buf_cap`), with
    /// their lines.
    var ignoredKeys: [(key: String, line: Int)] = []

    /// Reads the file at `path`.
    static func load(path: String) throws(ConfigError) -> MappingFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("mapping_config \(path): cannot read it: \(error.localizedDescription)")
        }
        return try parse(text, source: path)
    }

    /// Reads a mapping file's text; `source` names it in errors.
    static func parse(_ text: String, source: String) throws(ConfigError) -> MappingFile {
        do throws(MappingError) {
            let root: YAMLNode?
            do throws(YAMLError) {
                root = try YAMLReader.parse(text)
            } catch {
                throw MappingError(line: error.line, message: error.message)
            }
            var file = MappingFile()
            guard let root else { return file }
            try file.read(root)
            return file
        } catch {
            throw ConfigError("mapping_config \(source): line \(error.line): \(error.message)")
        }
    }

    // MARK: Reading

    private struct Defaults {
        var matchType = MappingRule.MatchType.glob
        var observerType: MappingOptions.ObserverType?
        var buckets: [Double]?
        var quantiles: [Double]?
        var ttlMillis: Int64?
        var native = NativeOptions()
    }

    /// `histogram_options.native_histogram_bucket_factor` and `native_histogram_max_buckets`.
    private struct NativeOptions {
        var bucketFactor: Double?
        var maxBuckets: Int?
    }

    private mutating func read(_ root: YAMLNode) throws(MappingError) {
        let top = try Fields(root, "the file")
        try top.allow(["mappings", "defaults"])
        var defaults = Defaults()
        if let node = top["defaults"] {
            let d = try Fields(node, "defaults")
            try d.allow([
                "match_type", "glob_disable_ordering", "observer_type", "timer_type", "ttl", "buckets",
                "histogram_options", "quantiles", "summary_options",
            ])
            if let v = d["match_type"] { defaults.matchType = try Self.matchType(v) }
            if let v = d["glob_disable_ordering"] { globDisableOrdering = try Self.bool(v, "glob_disable_ordering") }
            defaults.observerType = try observerType(d)
            defaults.ttlMillis = try d["ttl"].map { v throws(MappingError) in try Self.duration(v, "ttl") }
            defaultTTLMillis = defaults.ttlMillis
            defaults.buckets = try buckets(d)
            defaults.quantiles = try quantiles(d)
            defaults.native = try nativeOptions(d)
        }
        guard let node = top["mappings"] else { return }
        if node.isNull { return }
        guard case .sequence(let items, _) = node else {
            throw MappingError(line: node.line, message: "mappings must be a list")
        }
        for item in items { rules.append(try rule(item, index: rules.count, defaults: defaults)) }
    }

    private mutating func rule(_ node: YAMLNode, index: Int, defaults: Defaults) throws(MappingError) -> MappingRule {
        let f = try Fields(node, "a mapping")
        try f.allow([
            "match", "match_type", "match_metric_type", "name", "labels", "honor_labels", "action", "observer_type",
            "timer_type", "histogram_options", "buckets", "summary_options", "quantiles", "ttl", "scale", "help",
        ])
        guard let matchNode = f["match"] else { throw MappingError(line: node.line, message: "a mapping needs a match") }
        let match = try Self.string(matchNode, "match")
        let matchType = try f["match_type"].map { v throws(MappingError) in try Self.matchType(v) } ?? defaults.matchType
        let action =
            try f["action"].map { v throws(MappingError) in
                let text = try Self.string(v, "action")
                // An empty action is `map`, as in statsd_exporter.
                guard let a = text.isEmpty ? .map : MappingRule.Action(rawValue: text) else {
                    throw MappingError(line: v.line, message: "action must be map or drop, got \(text)")
                }
                return a
            } ?? .map
        var regex: LinearRegex?
        switch matchType {
        case .glob:
            if let problem = Self.globProblem(match) { throw MappingError(line: matchNode.line, message: problem) }
        case .regex:
            do throws(RegexSyntaxError) {
                regex = try LinearRegex(match)
            } catch {
                throw MappingError(line: matchNode.line, message: "match is not a valid regular expression: \(match) (\(error))")
            }
        }
        var metricKind: GlobTrie.Kind?
        if let v = f["match_metric_type"] {
            switch try Self.string(v, "match_metric_type") {
            case "counter": metricKind = .counter
            case "gauge": metricKind = .gauge
            case "observer", "timer": metricKind = .observer
            case let other:
                throw MappingError(line: v.line, message: "match_metric_type must be counter, gauge or observer, got \(other)")
            }
        }
        // A drop rule needs no name (statsd_exporter asks for one; any is ignored).
        let nameNode = f["name"]
        let nameText = try nameNode.map { v throws(MappingError) in try Self.string(v, "name") } ?? ""
        if action == .map {
            guard let nameNode else { throw MappingError(line: node.line, message: "a mapping needs a name") }
            guard Self.isValidNameTemplate(nameText) else {
                throw MappingError(
                    line: nameNode.line,
                    message: "name \(nameText) is not a metric name: letters, digits and _, not starting with a digit, "
                        + "with captures written $1 or ${1}")
            }
        }
        var labels: [(name: String, value: MappingTemplate)] = []
        if let v = f["labels"], !v.isNull {
            guard case .mapping(let entries, _) = v else { throw MappingError(line: v.line, message: "labels must be a mapping") }
            for (key, value) in entries {
                guard Self.isValidLabelName(key) else {
                    throw MappingError(
                        line: value.line,
                        message: "label name \(key) is invalid: letters, digits and _, not starting with a digit or __")
                }
                labels.append((key, MappingTemplate(try Self.string(value, "labels.\(key)"))))
            }
        }
        var options = MappingOptions()
        options.observerType = try observerType(f) ?? defaults.observerType
        if let b = try buckets(f) {
            guard options.observerType != .summary else {
                throw MappingError(line: node.line, message: "histogram buckets are set on a summary mapping")
            }
            options.buckets = b
        } else {
            options.buckets = defaults.buckets
        }
        let native = try nativeOptions(f)
        if native.bucketFactor != nil || native.maxBuckets != nil, options.observerType == .summary {
            throw MappingError(line: node.line, message: "native histogram options are set on a summary mapping")
        }
        options.nativeBucketFactor = native.bucketFactor ?? defaults.native.bucketFactor
        options.nativeMaxBuckets = native.maxBuckets ?? defaults.native.maxBuckets
        if let q = try quantiles(f) {
            guard options.observerType != .histogram else {
                throw MappingError(line: node.line, message: "summary quantiles are set on a histogram mapping")
            }
            options.quantiles = q
        } else if let q = defaults.quantiles {
            options.quantiles = q
        }
        // As statsd_exporter: a rule's ttl of 0 takes the defaults' when they set one.
        let ttl = try f["ttl"].map { v throws(MappingError) in try Self.duration(v, "ttl") }
        options.ttlMillis = ttl == 0 && (defaults.ttlMillis ?? 0) > 0 ? defaults.ttlMillis : ttl ?? defaults.ttlMillis
        if let v = f["scale"] {
            let s = try Self.number(v, "scale")
            guard s.isFinite, s != 0 else {
                throw MappingError(line: v.line, message: "scale must be a finite number other than 0")
            }
            options.scale = s
        }
        if let v = f["help"] { options.help = try Self.string(v, "help") }
        return MappingRule(
            index: index, line: node.line, match: match, matchType: matchType, metricKind: metricKind,
            nameText: nameText, name: MappingTemplate(nameText), labels: labels,
            honorLabels: try f["honor_labels"].map { v throws(MappingError) in try Self.bool(v, "honor_labels") } ?? false,
            action: action, options: options, regex: regex)
    }

    /// `observer_type`, or its older name `timer_type`.
    private func observerType(_ f: Fields) throws(MappingError) -> MappingOptions.ObserverType? {
        if f["observer_type"] != nil, f["timer_type"] != nil {
            throw MappingError(line: f.line, message: "observer_type and timer_type are the same setting; keep one")
        }
        guard let v = f["observer_type"] ?? f["timer_type"] else { return nil }
        let text = try Self.string(v, "observer_type")
        if text == "" || text == "default" { return nil }
        guard let t = MappingOptions.ObserverType(rawValue: text) else {
            throw MappingError(line: v.line, message: "observer_type must be histogram or summary, got \(text)")
        }
        return t
    }

    /// `<block>.<key>`, or the older top-level `<key>`. With both, the block's wins, as in
    /// statsd_exporter, and the older one goes to `ignoredKeys` (one warning). Keys of the
    /// block that Stator has no use for go there too.
    private mutating func optionOrLegacy(
        _ f: Fields, block: String, key: String, alsoRead: [String] = [], ignored: [String]
    ) throws(MappingError) -> YAMLNode? {
        var found: YAMLNode?
        if let b = f[block], !b.isNull {
            let o = try Fields(b, block)
            try o.allow(Set([key] + alsoRead + ignored))
            for k in ignored {
                if let v = o[k] { ignoredKeys.append((k, v.line)) }
            }
            found = o[key]
        }
        if let legacy = f[key] {
            if found != nil {
                ignoredKeys.append(("\(key), overridden by \(block).\(key)", legacy.line))
            } else {
                found = legacy
            }
        }
        guard let node = found, !node.isNull else { return nil }
        return node
    }

    /// `histogram_options.buckets`, or the older `buckets`.
    private mutating func buckets(_ f: Fields) throws(MappingError) -> [Double]? {
        guard
            let node = try optionOrLegacy(
                f, block: "histogram_options", key: "buckets",
                alsoRead: ["native_histogram_bucket_factor", "native_histogram_max_buckets"], ignored: [])
        else { return nil }
        guard case .sequence(let items, _) = node else {
            throw MappingError(line: node.line, message: "buckets must be a list of numbers")
        }
        var bounds: [Double] = []
        for item in items { bounds.append(try Self.number(item, "buckets")) }
        if bounds.isEmpty { return nil }
        if let problem = HistogramBuckets.problem(with: bounds) {
            throw MappingError(line: node.line, message: "buckets \(problem)")
        }
        return bounds
    }

    /// `histogram_options.native_histogram_bucket_factor` (a number; above 1 it turns native
    /// histograms on for the rule's series, at most 1 off) and `native_histogram_max_buckets`
    /// (a whole number; 0 keeps `histograms.native_max_buckets`), as statsd_exporter reads them.
    private func nativeOptions(_ f: Fields) throws(MappingError) -> NativeOptions {
        var result = NativeOptions()
        guard let b = f["histogram_options"], !b.isNull else { return result }
        let o = try Fields(b, "histogram_options")
        if let v = o["native_histogram_bucket_factor"], !v.isNull {
            let factor = try Self.number(v, "native_histogram_bucket_factor")
            guard factor.isFinite, factor >= 0 else {
                throw MappingError(line: v.line, message: "native_histogram_bucket_factor must be a finite number >= 0")
            }
            result.bucketFactor = factor
        }
        if let v = o["native_histogram_max_buckets"], !v.isNull {
            let n = try Self.number(v, "native_histogram_max_buckets")
            guard n == n.rounded(), n >= 0, n <= 65_536 else {
                throw MappingError(line: v.line, message: "native_histogram_max_buckets must be a whole number from 0 to 65536")
            }
            result.maxBuckets = Int(n)
        }
        return result
    }

    /// `summary_options.quantiles`, or the older `quantiles`: a list of `{quantile, error}`.
    private mutating func quantiles(_ f: Fields) throws(MappingError) -> [Double]? {
        guard
            let node = try optionOrLegacy(
                f, block: "summary_options", key: "quantiles", ignored: ["max_age", "age_buckets", "buf_cap"])
        else { return nil }
        guard case .sequence(let items, _) = node else {
            throw MappingError(line: node.line, message: "quantiles must be a list of {quantile: q, error: e}")
        }
        var result: [Double] = []
        for item in items {
            let q = try Fields(item, "a quantile")
            try q.allow(["quantile", "error"])
            guard let v = q["quantile"] else { throw MappingError(line: item.line, message: "a quantile needs quantile:") }
            let x = try Self.number(v, "quantile")
            guard x >= 0, x <= 1 else { throw MappingError(line: v.line, message: "quantile must be between 0 and 1, got \(x)") }
            if let e = q["error"] { _ = try Self.number(e, "error") }  // exact here: the error bound is met
            result.append(x)
        }
        if result.isEmpty { return nil }
        return Array(Set(result)).sorted()
    }

    // MARK: Checks, as statsd_exporter makes them

    /// Why `match` is not a glob statsd_exporter accepts, if it is not: dot-separated
    /// components, each `*` or a name. The first name is `[a-zA-Z_][a-zA-Z0-9_-]*`; a later
    /// one may also start with a digit (`http.*.200`, `kafka.partition.0.*`), and `-` may
    /// repeat anywhere after the first character (`svc--name.*`).
    static func globProblem(_ match: String) -> String? {
        for (index, component) in match.split(separator: ".", omittingEmptySubsequences: false).enumerated() {
            if component == "*" { continue }
            var valid = !component.isEmpty
            for (k, c) in component.enumerated() {
                let letter = c.isASCII && (c.isLetter || c == "_")
                let digit = c.isASCII && c.isNumber
                if k == 0 {
                    valid = valid && (letter || (digit && index > 0))
                } else {
                    valid = valid && (letter || digit || c == "-")
                }
            }
            if !valid {
                let rule =
                    index == 0
                    ? "the first must be * or start with a letter or _"
                    : "a later one must be * or start with a letter, digit or _"
                return "match \(match) is not a glob: each dot-separated component is * or letters, digits, _ and -; "
                    + "\(rule); \(component) is neither. Use match_type: regex for anything else"
            }
        }
        return nil
    }

    /// A metric name with capture references: `[a-zA-Z_]` or a reference, then
    /// `[a-zA-Z0-9_]` or references (statsd_exporter's check, before substitution).
    static func isValidNameTemplate(_ name: String) -> Bool {
        var rest = Substring(name)
        var first = true
        while let c = rest.first {
            if c == "$" {
                var r = rest.dropFirst()
                let braced = r.first == "{"
                if braced { r = r.dropFirst() }
                let digits = r.prefix { $0.isASCII && $0.isNumber }
                guard !digits.isEmpty else { return false }
                r = r.dropFirst(digits.count)
                if braced {
                    guard r.first == "}" else { return false }
                    r = r.dropFirst()
                }
                rest = r
            } else {
                guard c.isASCII, c.isLetter || c == "_" || (!first && c.isNumber) else { return false }
                rest = rest.dropFirst()
            }
            first = false
        }
        return !name.isEmpty
    }

    /// A Prometheus label name that a mapping may set: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting
    /// with `__` (reserved).
    static func isValidLabelName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_", !name.hasPrefix("__") else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    // MARK: Scalars

    private static func matchType(_ v: YAMLNode) throws(MappingError) -> MappingRule.MatchType {
        let text = try string(v, "match_type")
        if text == "" || text == "default" { return .glob }
        guard let t = MappingRule.MatchType(rawValue: text) else {
            throw MappingError(line: v.line, message: "match_type must be glob or regex, got \(text)")
        }
        return t
    }

    static func string(_ v: YAMLNode, _ what: String) throws(MappingError) -> String {
        guard case .scalar(let text, _, _) = v else {
            throw MappingError(line: v.line, message: "\(what) must be a single value")
        }
        return text
    }

    /// A plain YAML number (YAML 1.1 forms that Go's decoder reads: `.5`, `1e3`, `-1`).
    static func number(_ v: YAMLNode, _ what: String) throws(MappingError) -> Double {
        guard case .scalar(let text, false, _) = v, let x = Double(text), x.isFinite,
            text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) })
        else {
            throw MappingError(line: v.line, message: "\(what) must be a number, got \(describe(v))")
        }
        return x
    }

    /// A YAML boolean, in the forms Go's YAML decoder reads.
    static func bool(_ v: YAMLNode, _ what: String) throws(MappingError) -> Bool {
        // YAML 1.1's booleans, as go-yaml reads them: these spellings exactly (`tRUE` is text).
        if case .scalar(let text, false, _) = v {
            switch text {
            case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON": return true
            case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF": return false
            default: break
            }
        }
        throw MappingError(line: v.line, message: "\(what) must be true or false, got \(describe(v))")
    }

    /// A Go duration (`ttl`): `0`, or numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`,
    /// such as `1m20s`; in milliseconds, a positive duration under one taken as 1.
    static func duration(_ v: YAMLNode, _ what: String) throws(MappingError) -> Int64 {
        let text = try string(v, what)
        guard let ms = parseGoDuration(text) else {
            throw MappingError(line: v.line, message: "\(what) must be a duration such as 30s, 1m20s or 0, got \(text)")
        }
        return ms
    }

    static func parseGoDuration(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        let units: [(String, Double)] = [
            ("ns", 1e-6), ("us", 1e-3), ("µs", 1e-3), ("μs", 1e-3), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000),
        ]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let (unit, scale) = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) })
            else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * scale
        }
        guard total.isFinite, total < 1e15 else { return nil }
        return total > 0 && total < 1 ? 1 : Int64(total.rounded())
    }

    private static func describe(_ v: YAMLNode) -> String {
        switch v {
        case .scalar(let text, let quoted, _): quoted ? "\"\(text)\"" : text
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }
}

/// A problem at a line of a mapping file.
struct MappingError: Error {
    var line: Int
    var message: String
}

/// The keys of a YAML mapping node, checked against what the reader knows.
private struct Fields {
    let entries: [(key: String, value: YAMLNode)]
    let line: Int
    let what: String

    init(_ node: YAMLNode, _ what: String) throws(MappingError) {
        guard case .mapping(let entries, let line) = node else {
            throw MappingError(line: node.line, message: "\(what) must be a mapping of keys to values")
        }
        self.entries = entries
        self.line = line
        self.what = what
    }

    subscript(key: String) -> YAMLNode? { entries.first { $0.key == key }?.value }

    /// Fails on the first key not in `known`.
    func allow(_ known: Set<String>) throws(MappingError) {
        for (key, value) in entries where !known.contains(key) {
            throw MappingError(
                line: value.line, message: "unknown key \(key) in \(what) (known: \(known.sorted().joined(separator: ", ")))")
        }
    }
}
