/// SPEC section 4's naming rules, on bytes.
public enum PrometheusNaming {
    /// Replaces every byte outside `[a-zA-Z0-9_]` with `_` and puts `_` before a leading digit.
    static func sanitize(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount + 8)
        for b in bytes { out.append(sanitized(b)) }
        prefixLeadingDigit(&out)
        return out
    }

    private static func prefixLeadingDigit(_ out: inout [UInt8]) {
        if let first = out.first, first >= 0x30 && first <= 0x39 { out.insert(0x5F, at: 0) }
    }

    /// Replaces `out` with the family name (see `familyName`), reusing its storage.
    /// A mapped series (`mapped`) is named as its mapping rule wrote the name: no prefix and no
    /// suffix, only invalid bytes replaced.
    static func appendFamilyName(
        prefix: [UInt8], statsdName: UnsafeRawBufferPointer, type: MetricType, mapped: Bool = false, to out: inout [UInt8]
    ) {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(prefix.count + statsdName.count + 9)
        if !mapped { prefix.withUnsafeBytes { appendSanitized($0, to: &out) } }
        appendSanitized(statsdName, to: &out)
        prefixLeadingDigit(&out)
        if out.isEmpty { out.append(0x5F) }
        if mapped { return }
        switch type {
        case .counter: appendSuffix("_total", to: &out)
        case .timer: appendSuffix("_seconds", to: &out)
        default: break
        }
    }

    /// Appends `bytes` sanitized: runs of valid bytes in one call each, `_` for each other byte.
    private static func appendSanitized(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var run = 0
        for (i, b) in bytes.enumerated() where sanitized(b) != b {
            if run < i { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[run..<i])) }
            out.append(0x5F)
            run = i + 1
        }
        if run < bytes.count { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[run...])) }
    }

    @inline(__always)
    private static func sanitized(_ b: UInt8) -> UInt8 {
        let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
        return ok ? b : 0x5F
    }

    /// The family name of a statsd series: `prefix` + sanitized name, `_total` for
    /// counters, `_seconds` for timers; a suffix already present is not doubled.
    static func familyName(prefix: [UInt8], statsdName: UnsafeRawBufferPointer, type: MetricType) -> [UInt8] {
        var name: [UInt8] = []
        appendFamilyName(prefix: prefix, statsdName: statsdName, type: type, to: &name)
        return name
    }

    private static func appendSuffix(_ suffix: StaticString, to name: inout [UInt8]) {
        suffix.withUTF8Buffer { s in
            if !(name.count >= s.count && name.suffix(s.count).elementsEqual(s)) { name.append(contentsOf: s) }
        }
    }

    /// The public form of `familyName`, for tests and docs.
    public static func familyName(prefix: String = "", statsdName: String, type: MetricType) -> String {
        let bytes = Array(statsdName.utf8).withUnsafeBytes {
            familyName(prefix: Array(prefix.utf8), statsdName: $0, type: type)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends a label value escaped per the text format: `\` `"` and newline.
    static func appendEscapedLabelValue(_ value: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        for b in value {
            switch b {
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            default: out.append(b)
            }
        }
    }

    /// Appends HELP text escaped per the text format: `\` and newline.
    static func appendEscapedHelp(_ text: some Sequence<UInt8>, to out: inout [UInt8]) {
        for b in text {
            switch b {
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            default: out.append(b)
            }
        }
    }

    /// The rendered labels of a series, split around where `le` sorts for histograms.
    struct Labels: Hashable {
        /// `before`, then (histograms with labels sorting after `le`) 0xFF and `after`. 0xFF
        /// never occurs in UTF-8, so it marks the split; one array keeps a series record small.
        private var text: [UInt8] = []

        /// `a="1",b="2"`: the labels sorting before `le` (all of them for other types).
        var before: ArraySlice<UInt8> { text[..<splitIndex] }
        /// `,m="3",z="4"`: the labels sorting after `le`, each after a comma (histograms only).
        var after: ArraySlice<UInt8> {
            let split = splitIndex
            return split < text.count ? text[(split + 1)...] : []
        }
        /// No labels at all.
        var isEmpty: Bool { text.isEmpty }

        /// Bytes the labels' storage holds (tests: each series record keeps its labels).
        var storageCapacity: Int { text.capacity }

        init() {}

        /// Labels already rendered (see `text`).
        fileprivate init(rendered: [UInt8]) { text = rendered }

        static func == (a: Labels, b: Labels) -> Bool { a.text == b.text }

        /// The bytes in one call (an array of bytes would be combined byte by byte).
        func hash(into hasher: inout Hasher) { text.withUnsafeBytes { hasher.combine(bytes: $0) } }

        private var splitIndex: Int { text.firstIndex(of: 0xFF) ?? text.count }

        /// Adds a label to `before` (all of them are added before any to `after`).
        mutating func appendBefore(_ name: [UInt8], _ escapedValue: [UInt8]) {
            if !text.isEmpty { text.append(0x2C) }
            Self.append(name, escapedValue, to: &text)
        }

        /// Adds a label to `after`.
        mutating func appendAfter(_ name: [UInt8], _ escapedValue: [UInt8]) {
            if !text.contains(0xFF) { text.append(0xFF) }
            text.append(0x2C)
            Self.append(name, escapedValue, to: &text)
        }

        private static func append(_ name: [UInt8], _ value: [UInt8], to text: inout [UInt8]) {
            text.append(contentsOf: name)
            text.append(contentsOf: Array("=\"".utf8))
            text.append(contentsOf: value)
            text.append(0x22)
        }
    }

    /// Turns statsd tags into sorted, escaped Prometheus labels: names sanitized,
    /// empty values and names starting `__` left out, `le` renamed `exported_le` on
    /// histograms; of two tags with the same sanitized name the later (in tag order) wins.
    static func labels(of key: MetricKey, histogram: Bool) -> Labels {
        labels(of: key, reserving: histogram ? "le" : nil)
    }

    /// `labels(of:histogram:)` with the label the family's own samples add (`le` on a
    /// histogram, `quantile` on a summary): a tag of that name becomes `exported_<name>`, and
    /// the labels are split where it goes.
    static func labels(of key: MetricKey, reserving reserved: String?) -> Labels {
        let name = reserved.map { Array($0.utf8) }
        return plainLabels(of: key, reserving: name) ?? sortedLabels(of: key, reserving: name)
    }

    /// `labels(of:histogram:)` for any key: each tag renamed and escaped on its own, then sorted.
    static func sortedLabels(of key: MetricKey, reserving reserved: [UInt8]?) -> Labels {
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        key.forEachTag { k, v in
            guard !v.isEmpty else { return }
            var name = sanitize(k)
            if name.count >= 2, name[0] == 0x5F, name[1] == 0x5F { return }
            if let reserved, name == reserved { name = Array("exported_".utf8) + reserved }
            var value: [UInt8] = []
            appendEscapedLabelValue(v, to: &value)
            if let same = pairs.firstIndex(where: { $0.name == name }) {
                pairs[same].value = value
            } else {
                pairs.append((name, value))
            }
        }
        pairs.sort { $0.name.lexicographicallyPrecedes($1.name) }
        var labels = Labels()
        for (name, value) in pairs {
            // Sorted: every label going before the reserved one comes first.
            if let reserved, reserved.lexicographicallyPrecedes(name) {
                labels.appendAfter(name, value)
            } else {
                labels.appendBefore(name, value)
            }
        }
        return labels
    }

    /// The labels of a key whose tags all keep their names and order: every name already a
    /// valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting `__`, not `le` on a histogram),
    /// every value non-empty, names strictly ascending. Rendered in one pass into one array,
    /// as `labels(of:histogram:)` renders them; `nil` for any other key (the general path).
    static func plainLabels(of key: MetricKey, reserving reserved: [UInt8]?) -> Labels? {
        // (No capacity reserved: a series record keeps this array, and a million of them with
        // spare capacity, or one allocated for no labels at all, cost RSS.)
        var text: [UInt8] = []
        var plain = true
        var previous = UnsafeRawBufferPointer(start: nil, count: 0)
        var split = false
        key.forEachTag { k, v in
            guard plain else { return }
            guard !v.isEmpty, isLabelName(k), !(reserved.map { k.elementsEqual($0) } ?? false),
                previous.baseAddress == nil || previous.lexicographicallyPrecedes(k)
            else {
                plain = false
                return
            }
            previous = k
            if let reserved, !split, reserved.lexicographicallyPrecedes(k) {
                text.append(0xFF)
                split = true
            }
            if split || !text.isEmpty { text.append(0x2C) }
            text.append(contentsOf: k)
            text.append(UInt8(ascii: "="))
            text.append(UInt8(ascii: "\""))
            appendEscapedLabelValue(v, to: &text)
            text.append(UInt8(ascii: "\""))
        }
        return plain ? Labels(rendered: text) : nil
    }

    /// Whether `name` is a label name as it stands: not empty, `[a-zA-Z0-9_]` bytes, no
    /// leading digit, not starting `__` (reserved).
    private static func isLabelName(_ name: UnsafeRawBufferPointer) -> Bool {
        guard let first = name.first, !(first >= 0x30 && first <= 0x39) else { return false }
        if name.count >= 2, first == 0x5F, name[1] == 0x5F { return false }
        return name.allSatisfy { sanitized($0) == $0 }
    }
}

extension PrometheusNaming {
    /// Appends the bytes of `text` from `start` to `out` with the text format's escapes
    /// (`\\`, `\"`, `\n`) undone, up to the first unescaped `stop` byte (a label value's
    /// closing quote) or the end.
    /// - Returns: the index of that `stop` byte, or `text.endIndex`.
    static func unescape(
        _ text: ArraySlice<UInt8>, from start: Int, upTo stop: UInt8? = nil, into out: inout [UInt8]
    ) -> Int {
        var i = start
        while i < text.endIndex, text[i] != stop {
            if text[i] == 0x5C, i + 1 < text.endIndex {
                i += 1
                out.append(text[i] == UInt8(ascii: "n") ? 0x0A : text[i])
            } else {
                out.append(text[i])
            }
            i += 1
        }
        return i
    }
}
