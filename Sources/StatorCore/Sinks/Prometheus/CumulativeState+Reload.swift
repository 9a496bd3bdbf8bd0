// A mapping reload that changed a rule's options, as its series' next samples meet the state:
// the key is the same (the rule kept its slot), the options are new.
extension CumulativeState {
    /// Brings the family of a known mapped sampled series up to its rule's options in force:
    /// a family whose `observer_type` changed is forgotten whole and made again as its new
    /// type; a histogram family whose buckets changed starts again from zero with the new
    /// ones (every series of a family shares its buckets); a summary takes its new quantiles.
    /// - Returns: the series started again (`stator_mapping_series_reset_total`).
    func followOptions(
        of key: MetricKey, bounds: BucketBounds?, series i: Int32, _ s: inout State, _ scratch: inout NameScratch
    ) -> Int {
        let f = s.series[Int(i)].family
        let type = FamilyType.of(key, s.mappingOptions)
        let family = s.families[Int(f)]
        if family.type != type {
            return forgetFamily(f, &s, &scratch)
        }
        if type == .histogram, let bounds, let old = s.bounds(of: family), old != bounds {
            // Only a family that this rule alone made follows its new buckets. One that another
            // rule feeds too keeps its buckets, and this rule's samples conflict (counted), as
            // at a start with the new file; resetting it would flip between the rules' buckets.
            var next = family.firstSeries
            while next >= 0 {
                let h = s.series[Int(next)].histogram
                if h >= 0, s.histograms[Int(h)].slot != key.mappingOptions { return 0 }
                next = s.series[Int(next)].next
            }
            var reset = 0
            next = family.firstSeries
            while next >= 0 {
                let h = s.series[Int(next)].histogram
                if h >= 0 {
                    // Every series of a family with native histograms carries one, empty until its
                    // next samples: OTLP allows one type per metric name, and Prometheus would
                    // otherwise see the idle series' histogram change kind when samples come.
                    s.histograms[Int(h)] = Histogram(
                        bounds: bounds, buckets: Array(repeating: 0, count: bounds.upperBounds.count + 1),
                        slot: key.mappingOptions,
                        native: bounds.native.map { CumulativeNative(empty: $0, key.type, valueScale: bounds.valueScale) })
                    reset += 1
                }
                next = s.series[Int(next)].next
            }
            return reset
        }
        if type == .summary, let id = key.mappingOptions, Int(id) < s.mappingOptions.count {
            let h = Int(s.series[Int(i)].histogram)
            let quantiles = s.mappingOptions[Int(id)].quantiles
            if h >= 0, s.histograms[h].quantiles != quantiles {
                // The quantile samples are the last interval's: only their list changes; _sum and _count go on.
                s.histograms[h].quantiles = quantiles
                s.histograms[h].buckets = Array(repeating: 0, count: quantiles.count)
            }
        }
        return 0
    }

    /// Forgets every statsd series that feeds family `f`, and so the family (the next batch
    /// makes it again). Scans the routes: only when a reload changed a family's type.
    /// - Returns: the Prometheus series forgotten.
    private func forgetFamily(_ f: Int32, _ s: inout State, _ scratch: inout NameScratch) -> Int {
        var members = Set<Int32>()
        var next = s.families[Int(f)].firstSeries
        while next >= 0 {
            members.insert(next)
            next = s.series[Int(next)].next
        }
        for number in s.routes.indices where s.routes[number].series >= 0 && members.contains(s.routes[number].series) {
            forget(number, &s, &scratch)
        }
        return members.count
    }
}
