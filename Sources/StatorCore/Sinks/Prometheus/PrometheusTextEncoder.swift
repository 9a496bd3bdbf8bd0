/// Renders the cumulative state in the text exposition format 0.0.4: every
/// family with `# HELP` and `# TYPE`, its series together, labels sorted.
enum PrometheusTextEncoder {
    /// Renders every family of `state`.
    static func render(_ state: CumulativeState) -> [UInt8] {
        state.withFamilies { families, flushNumber in
            var out: [UInt8] = []
            out.reserveCapacity(families.count * 160)
            for family in families {
                guard let family else { continue }
                render(family, flushNumber: flushNumber, into: &out)
            }
            return out
        }
    }

    private static func render(_ family: CumulativeState.Family, flushNumber: UInt64, into out: inout [UInt8]) {
        append("# HELP ", &out)
        out.append(contentsOf: family.name)
        out.append(0x20)
        PrometheusNaming.appendEscapedHelp(family.help, to: &out)
        append("\n# TYPE ", &out)
        out.append(contentsOf: family.name)
        append(" \(family.type.text)\n", &out)
        let bounds = family.bounds?.upperBounds ?? []
        let leTexts = bounds.map { Array("le=\"\(PrometheusNumber.format($0))\"".utf8) } + [Array("le=\"+Inf\"".utf8)]
        for series in family.series {
            guard let series else { continue }
            switch family.type {
            case .counter, .gauge:
                let value = series.isSet && series.setAt != flushNumber ? 0 : series.value
                sample(family.name, [], series.labels, nil, value, &out)
            case .histogram:
                var cumulative = 0.0
                for (i, le) in leTexts.enumerated() {
                    cumulative += series.buckets[i]
                    // The +Inf bucket is the count itself, so the two always agree.
                    let value = i == leTexts.count - 1 ? series.count : cumulative
                    sample(family.name, Array("_bucket".utf8), series.labels, le, value, &out)
                }
                sample(family.name, Array("_sum".utf8), series.labels, nil, series.sum, &out)
                sample(family.name, Array("_count".utf8), series.labels, nil, series.count, &out)
            }
        }
    }

    /// One sample line: `name{labels} value`, with `le` in its sorted place.
    private static func sample(
        _ name: [UInt8], _ suffix: [UInt8], _ labels: PrometheusNaming.Labels, _ le: [UInt8]?, _ value: Double,
        _ out: inout [UInt8]
    ) {
        out.append(contentsOf: name)
        out.append(contentsOf: suffix)
        let after = le == nil && labels.before.isEmpty ? labels.after.dropFirst() : labels.after[...]
        if !labels.before.isEmpty || !after.isEmpty || le != nil {
            out.append(UInt8(ascii: "{"))
            out.append(contentsOf: labels.before)
            if let le {
                if !labels.before.isEmpty { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: le)
            }
            out.append(contentsOf: after)
            out.append(UInt8(ascii: "}"))
        }
        out.append(0x20)
        append(PrometheusNumber.format(value), &out)
        out.append(0x0A)
    }

    private static func append(_ text: String, _ out: inout [UInt8]) { out.append(contentsOf: text.utf8) }
}
