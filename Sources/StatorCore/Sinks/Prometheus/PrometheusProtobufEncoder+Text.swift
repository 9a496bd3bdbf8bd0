extension PrometheusProtobufEncoder {
    /// A text page of counters, gauges and untyped samples (the agent's own metrics, which are
    /// rendered as text, live, on every scrape) as delimited `MetricFamily` messages with the
    /// same names, HELP, labels and values: one source for both pages.
    ///
    /// A family is its `# HELP` and `# TYPE` lines and the samples of its name that follow; a
    /// sample of another name starts an untyped family of its own. A family without samples is
    /// left out, as client_golang leaves it out (a `MetricFamily` must have a metric).
    static func encode(text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var family = PendingFamily()
        var metric = ProtobufWriter()
        var value = ProtobufWriter()
        var labelValue: [UInt8] = []
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count, text[end] != 0x0A { end += 1 }
            let line = text[start..<end]
            start = end + 1
            if line.starts(with: Self.helpPrefix) || line.starts(with: Self.typePrefix) {
                let rest = line.dropFirst(Self.helpPrefix.count)
                let space = rest.firstIndex(of: 0x20) ?? rest.endIndex
                let name = rest[..<space]
                let words = space < rest.endIndex ? rest[(space + 1)...] : []
                if family.name[...] != name {
                    family.flush(into: &out)
                    family = PendingFamily(name: Array(name))
                }
                if line.starts(with: Self.helpPrefix) {
                    family.help = Self.unescapedHelp(words)
                } else {
                    family.type = Self.metricType(words)
                }
                continue
            }
            guard let first = line.first, first != UInt8(ascii: "#") else { continue }
            guard let sample = Self.sample(line) else { continue }
            if family.name[...] != sample.name {
                family.flush(into: &out)
                family = PendingFamily(name: Array(sample.name))
            }
            let type = family.type
            family.writer.message(4, scratch: &metric) { m in
                appendLabels(text: sample.labels, &m, &value, &labelValue)
                // Metric {gauge 2, counter 3, untyped 5}, each {value 1}
                let field: UInt32 = type == .counter ? 3 : type == .gauge ? 2 : 5
                m.message(field, scratch: &value) { $0.doubleField(1, sample.value) }
            }
            family.metrics += 1
        }
        family.flush(into: &out)
        return out
    }

    /// A family read so far: its metrics written, its name, HELP and type kept until it ends.
    private struct PendingFamily {
        var name: [UInt8] = []
        var help: [UInt8]? = nil
        var type: MetricType = .untyped
        var writer = ProtobufWriter()
        var metrics = 0

        /// Appends the family, length-delimited, if it has metrics.
        func flush(into out: inout [UInt8]) {
            guard metrics > 0, !name.isEmpty else { return }
            var head = ProtobufWriter()
            head.bytesField(1, name)
            if let help { PrometheusProtobufEncoder.appendString(2, help, &head) }
            head.varintField(3, type.rawValue)
            Varint.append(UInt64(head.bytes.count + writer.bytes.count), to: &out)
            out.append(contentsOf: head.bytes)
            out.append(contentsOf: writer.bytes)
        }
    }

    private static let helpPrefix = Array("# HELP ".utf8)
    private static let typePrefix = Array("# TYPE ".utf8)

    private static func metricType(_ text: ArraySlice<UInt8>) -> MetricType {
        switch String(decoding: text, as: UTF8.self) {
        case "counter": .counter
        case "gauge": .gauge
        default: .untyped
        }
    }

    /// HELP text with the text format's escapes (`\\`, `\n`) undone.
    private static func unescapedHelp(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        _ = PrometheusNaming.unescape(text, from: text.startIndex, into: &out)
        return out
    }

    /// A sample line, `name{labels} value`: its name, label text and value; nil when it does
    /// not parse.
    private static func sample(_ line: ArraySlice<UInt8>) -> (
        name: ArraySlice<UInt8>, labels: ArraySlice<UInt8>, value: Double
    )? {
        var i = line.startIndex
        while i < line.endIndex, line[i] != UInt8(ascii: "{"), line[i] != 0x20 { i += 1 }
        let name = line[line.startIndex..<i]
        var labels: ArraySlice<UInt8> = []
        if i < line.endIndex, line[i] == UInt8(ascii: "{") {
            // The closing brace outside quotes (a label value may hold `}` or an escaped quote).
            let open = i + 1
            var quoted = false
            i = open
            while i < line.endIndex {
                let b = line[i]
                if quoted, b == 0x5C {
                    i += 2
                    continue
                }
                if b == UInt8(ascii: "\"") { quoted.toggle() }
                if !quoted, b == UInt8(ascii: "}") { break }
                i += 1
            }
            guard i < line.endIndex else { return nil }
            labels = line[open..<i]
            i += 1
        }
        while i < line.endIndex, line[i] == 0x20 { i += 1 }
        var end = i
        while end < line.endIndex, line[end] != 0x20 { end += 1 }
        guard !name.isEmpty, let value = Double(String(decoding: line[i..<end], as: UTF8.self)) else { return nil }
        return (name, labels, value)
    }
}
