/// Renders the cumulative state in the text exposition format 0.0.4: every
/// family with `# HELP` and `# TYPE`, its series together, labels sorted.
enum PrometheusTextEncoder {
    /// Renders every family, handing the text to `sink` in chunks of about `chunk` bytes.
    static func render(_ state: CumulativeState, chunk: Int = 1 << 20, _ sink: (_ text: [UInt8]) -> Void) {
        state.withState { s in
            var out: [UInt8] = []
            out.reserveCapacity(chunk + 4096)
            var name: [UInt8] = []
            var f = s.firstFamily
            while f >= 0 {
                render(s, Int(f), prefix: state.prefix, name: &name, into: &out)
                if out.count >= chunk {
                    sink(out)
                    out.removeAll(keepingCapacity: true)
                }
                f = s.families[Int(f)].next
            }
            if !out.isEmpty { sink(out) }
        }
    }

    /// Renders every family into one buffer (tests, small pages).
    static func render(_ state: CumulativeState) -> [UInt8] {
        var all: [UInt8] = []
        render(state) { all.append(contentsOf: $0) }
        return all
    }

    private static func render(
        _ s: borrowing CumulativeState.State, _ f: Int, prefix: [UInt8], name: inout [UInt8], into out: inout [UInt8]
    ) {
        let family = s.families[f]
        family.source.withName {
            PrometheusNaming.appendFamilyName(
                prefix: prefix, statsdName: $0, type: family.source.type, mapped: family.source.isMapped, to: &name)
        }
        append("# HELP ", &out)
        out.append(contentsOf: name)
        if let help = mappingHelp(family.source, s) {
            out.append(0x20)
            Array(help.utf8).withUnsafeBytes { PrometheusNaming.appendEscapedHelp($0, to: &out) }
        } else {
            append(" statsd \(family.source.type) ", &out)
            family.source.withName { PrometheusNaming.appendEscapedHelp($0, to: &out) }
        }
        append("\n# TYPE ", &out)
        out.append(contentsOf: name)
        append(" \(family.type.text)\n", &out)
        let bounds = s.bounds(of: family)?.upperBounds ?? []
        let leTexts =
            family.type == .histogram
            ? bounds.map { Array("le=\"\(PrometheusNumber.format($0))\"".utf8) } + [Array("le=\"+Inf\"".utf8)] : []
        var i = family.firstSeries
        while i >= 0 {
            let series = s.series[Int(i)]
            switch family.type {
            case .counter, .gauge:
                let value = series.reads(at: s.flushNumber)
                sample(name, [], series.labels, nil, value, &out)
            case .histogram:
                let h = s.histograms[Int(series.histogram)]
                var cumulative = 0.0
                for (b, le) in leTexts.enumerated() {
                    cumulative += b < h.buckets.count ? h.buckets[b] : 0
                    // The +Inf bucket is the count itself, so the two always agree.
                    let value = b == leTexts.count - 1 ? h.count : cumulative
                    sample(name, bucketSuffix, series.labels, le, value, &out)
                }
                sample(name, sumSuffix, series.labels, nil, h.sum, &out)
                sample(name, countSuffix, series.labels, nil, h.count, &out)
            case .summary:
                let h = s.histograms[Int(series.histogram)]
                // The last interval's quantiles; none after an interval without samples.
                if series.setAt == UInt32(truncatingIfNeeded: s.flushNumber) {
                    for (k, q) in h.quantiles.enumerated() where k < h.buckets.count {
                        let label = Array("quantile=\"\(PrometheusNumber.format(q))\"".utf8)
                        sample(name, [], series.labels, label, h.buckets[k], &out)
                    }
                }
                sample(name, sumSuffix, series.labels, nil, h.sum, &out)
                sample(name, countSuffix, series.labels, nil, h.count, &out)
            }
            i = series.next
        }
    }

    /// The `help` of a mapped family's rule, if it sets one (trailing line breaks dropped).
    static func mappingHelp(_ key: MetricKey, _ s: borrowing CumulativeState.State) -> String? {
        guard let id = key.mappingOptions, Int(id) < s.mappingOptions.count, var help = s.mappingOptions[Int(id)].help
        else { return nil }
        while help.last == "\n" { help.removeLast() }
        return help.isEmpty ? nil : help
    }

    private static let bucketSuffix = Array("_bucket".utf8)
    private static let sumSuffix = Array("_sum".utf8)
    private static let countSuffix = Array("_count".utf8)

    /// One sample line: `name{labels} value`, with `le` (or a summary's `quantile`) in its sorted place.
    private static func sample(
        _ name: [UInt8], _ suffix: [UInt8], _ labels: PrometheusNaming.Labels, _ le: [UInt8]?, _ value: Double,
        _ out: inout [UInt8]
    ) {
        out.append(contentsOf: name)
        out.append(contentsOf: suffix)
        let before = labels.before
        let after = le == nil && before.isEmpty ? labels.after.dropFirst() : labels.after
        if !before.isEmpty || !after.isEmpty || le != nil {
            out.append(UInt8(ascii: "{"))
            out.append(contentsOf: before)
            if let le {
                if !before.isEmpty { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: le)
            }
            out.append(contentsOf: after)
            out.append(UInt8(ascii: "}"))
        }
        out.append(0x20)
        PrometheusNumber.append(value, to: &out)
        out.append(0x0A)
    }

    private static func append(_ text: String, _ out: inout [UInt8]) { out.append(contentsOf: text.utf8) }
}
