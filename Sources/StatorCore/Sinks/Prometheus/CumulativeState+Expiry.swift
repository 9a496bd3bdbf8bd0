import CStatorSys

// Forgetting expired statsd series, and compacting the state once most of it is free.
extension CumulativeState {
    /// A statsd series expired: drop its share, and the series and family once nothing feeds them.
    func forget(_ key: MetricKey, _ s: inout State, _ scratch: inout NameScratch) {
        guard Self.knownRoute(key, s) != nil else { return }
        forget(Int(key.series.index), &s, &scratch)
    }

    /// Drops the route of statsd series number `number` (it has one).
    func forget(_ number: Int, _ s: inout State, _ scratch: inout NameScratch) {
        let i = s.routes[number].series
        s.routes[number] = Route()
        let index = Int(i)
        s.series[index].contributors -= 1
        guard s.series[index].contributors == 0 else { return }
        let series = s.series[index]
        let f = Int(series.family)
        if series.previous >= 0 {
            s.series[Int(series.previous)].next = series.next
        } else {
            s.families[f].firstSeries = series.next
        }
        if series.next >= 0 {
            s.series[Int(series.next)].previous = series.previous
        } else {
            s.families[f].lastSeries = series.previous
        }
        if series.labels.isEmpty {
            s.families[f].bareSeries = -1
        } else {
            s.seriesIndex[SeriesIdentity(family: series.family, labels: series.labels)] = nil
        }
        if series.histogram >= 0 {
            s.histograms[Int(series.histogram)] = Histogram(bounds: nil, buckets: [])
            s.freeHistograms.append(series.histogram)
        }
        s.series[index] = Series(family: -1, labels: .init())
        if !s.tagsAsSent.isEmpty { s.tagsAsSent[i] = nil }
        s.freeSeries.append(i)
        guard s.families[f].firstSeries < 0 else { return }
        let family = s.families[f]
        if family.previous >= 0 { s.families[Int(family.previous)].next = family.next } else { s.firstFamily = family.next }
        if family.next >= 0 { s.families[Int(family.next)].previous = family.previous } else { s.lastFamily = family.previous }
        // Unlink the family from each of its names' bucket chains.
        writeFamilyName(of: family.source, into: &scratch.name)
        s.nameCount -= Self.exposedCount(family.type)
        for slot in 0..<Self.exposedCount(family.type) {
            Self.writeExposed(scratch.name, slot: slot, into: &scratch.query)
            let h = nameBucket(scratch.query, s)
            let after = Self.link(Int32(f), slot, s)
            if s.nameHeads[h] == Int32(f) {
                s.nameHeads[h] = after
                continue
            }
            var p = s.nameHeads[h]
            while p >= 0 {
                let pf = s.families[Int(p)]
                writeFamilyName(of: pf.source, into: &scratch.other)
                var found: Int? = nil
                for pSlot in 0..<Self.exposedCount(pf.type) {
                    Self.writeExposed(scratch.other, slot: pSlot, into: &scratch.exposed)
                    if nameBucket(scratch.exposed, s) == h {
                        found = pSlot
                        break
                    }
                }
                guard let pSlot = found else { break }
                let next = Self.link(p, pSlot, s)
                if next == Int32(f) {
                    Self.setLink(p, pSlot, after, &s)
                    break
                }
                p = next
            }
        }
        s.histogramNameLinks[Int32(f)] = nil
        s.families[f] = Family(source: MetricKey(bytes: [], series: .none), type: .gauge)
        s.freeFamilies.append(Int32(f))
        s.liveFamilies -= 1
    }

    /// Rebuilds the arrays and indexes without their free entries once most entries are
    /// free (after a mass expiry): Swift arrays and dictionaries never shrink by themselves,
    /// so a cardinality bomb would otherwise keep its peak memory after `series_ttl`.
    /// Families keep their order, and their series theirs.
    func compactIfSparse(_ s: inout State, _ scratch: inout NameScratch) {
        let liveSeries = s.series.count - s.freeSeries.count
        guard s.series.count >= 4096, liveSeries * 4 < s.series.count else { return }
        var familyMap = [Int32](repeating: -1, count: s.families.count)
        var seriesMap = [Int32](repeating: -1, count: s.series.count)
        var histogramMap = [Int32](repeating: -1, count: s.histograms.count)
        var families: [Family] = []
        var series: [Series] = []
        var histograms: [Histogram] = []
        var starts: [UInt32] = []
        families.reserveCapacity(s.liveFamilies)
        series.reserveCapacity(liveSeries)
        starts.reserveCapacity(liveSeries)
        var f = s.firstFamily
        while f >= 0 {
            familyMap[Int(f)] = Int32(families.count)
            families.append(s.families[Int(f)])
            var i = s.families[Int(f)].firstSeries
            while i >= 0 {
                seriesMap[Int(i)] = Int32(series.count)
                series.append(s.series[Int(i)])
                starts.append(s.seriesStarts[Int(i)])
                let h = s.series[Int(i)].histogram
                if h >= 0 {
                    histogramMap[Int(h)] = Int32(histograms.count)
                    histograms.append(s.histograms[Int(h)])
                }
                i = s.series[Int(i)].next
            }
            f = s.families[Int(f)].next
        }
        func map(_ table: [Int32], _ old: Int32) -> Int32 { old >= 0 ? table[Int(old)] : -1 }
        for k in families.indices {
            families[k].firstSeries = map(seriesMap, families[k].firstSeries)
            families[k].lastSeries = map(seriesMap, families[k].lastSeries)
            families[k].bareSeries = map(seriesMap, families[k].bareSeries)
            families[k].next = map(familyMap, families[k].next)
            families[k].previous = map(familyMap, families[k].previous)
        }
        for k in series.indices {
            series[k].family = map(familyMap, series[k].family)
            // (Only series with a histogram: the field also marks sets, which must stay sets.)
            if series[k].histogram >= 0 { series[k].histogram = histogramMap[Int(series[k].histogram)] }
            series[k].next = map(seriesMap, series[k].next)
            series[k].previous = map(seriesMap, series[k].previous)
        }
        s.seriesIndex = Dictionary(
            uniqueKeysWithValues: s.seriesIndex.map {
                (SeriesIdentity(family: map(familyMap, $0.key.family), labels: $0.key.labels), map(seriesMap, $0.value))
            })
        for k in s.routes.indices { s.routes[k].series = map(seriesMap, s.routes[k].series) }
        s.tagsAsSent = Dictionary(
            uniqueKeysWithValues: s.tagsAsSent.compactMap { old, bytes in
                let new = map(seriesMap, old)
                return new >= 0 ? (new, bytes) : nil
            })
        s.firstFamily = map(familyMap, s.firstFamily)
        s.lastFamily = map(familyMap, s.lastFamily)
        s.families = families
        s.series = series
        s.seriesStarts = starts
        s.histograms = histograms
        s.freeFamilies = []
        s.freeSeries = []
        s.freeHistograms = []
        rebuildNameHeads(&s, &scratch)
        // The old arrays are gone now; hand their pages back to the kernel.
        _ = CStatorSys_release_free_memory()
    }
}
