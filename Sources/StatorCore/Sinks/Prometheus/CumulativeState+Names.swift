import Glibc

// The index of exposed sample names: every family's names hash into `State.nameHeads`, and
// families sharing a bucket chain through their links. Names are derived from each family's
// source key when compared, never stored.
extension CumulativeState {
    /// The bucket of `nameHeads` an exposed sample name is indexed under.
    func nameBucket(_ bytes: [UInt8], _ s: borrowing State) -> Int {
        Self.nameHash(bytes) & (s.nameHeads.count - 1)
    }

    /// The hash of an exposed sample name. Seeded (per process): names come from the network,
    /// and crafted collisions would make each new family walk one long chain.
    static func nameHash(_ bytes: [UInt8]) -> Int {
        var h = Hasher()
        bytes.withUnsafeBytes { h.combine(bytes: $0) }  // in one call, not byte by byte
        return h.finalize()
    }

    /// The family name a statsd key registers.
    func familyName(of key: MetricKey) -> [UInt8] {
        var name: [UInt8] = []
        writeFamilyName(of: key, into: &name)
        return name
    }

    /// Writes the family name a statsd key registers into `out`, reusing its storage.
    func writeFamilyName(of key: MetricKey, into out: inout [UInt8]) {
        key.withName {
            PrometheusNaming.appendFamilyName(prefix: prefix, statsdName: $0, type: key.type, mapped: key.isMapped, to: &out)
        }
    }

    /// How many sample names a family of `type` exposes: its name (slot 0), and for a
    /// histogram also `_bucket`, `_sum` and `_count` (slots 1-3).
    /// (A summary exposes its name, `_sum` and `_count`, and keeps `_bucket` too, so that the
    /// slots are a histogram's.)
    static func exposedCount(_ type: FamilyType) -> Int { type == .histogram || type == .summary ? 4 : 1 }

    /// Writes exposed name `slot` of the family named `name` into `out`.
    static func writeExposed(_ name: [UInt8], slot: Int, into out: inout [UInt8]) {
        let suffix: StaticString =
            switch slot {
            case 1: "_bucket"
            case 2: "_sum"
            case 3: "_count"
            default: ""
            }
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: name)
        suffix.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// Whether two names are the same bytes (compared in one call).
    static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return true }  // both empty
                return memcmp(x, y, pa.count) == 0
            }
        }
    }

    /// The next family in the bucket chain of exposed name `slot` of family `f`.
    static func link(_ f: Int32, _ slot: Int, _ s: borrowing State) -> Int32 {
        if slot == 0 { return s.families[Int(f)].nextSameName }
        guard let links = s.histogramNameLinks[f] else { return -1 }
        switch slot {
        case 1: return links.0
        case 2: return links.1
        default: return links.2
        }
    }

    static func setLink(_ f: Int32, _ slot: Int, _ value: Int32, _ s: inout State) {
        if slot == 0 {
            s.families[Int(f)].nextSameName = value
            return
        }
        var links = s.histogramNameLinks[f] ?? (-1, -1, -1)
        switch slot {
        case 1: links.0 = value
        case 2: links.1 = value
        default: links.2 = value
        }
        s.histogramNameLinks[f] = links
    }

    /// The family named as `key` registers, or what else holds the name; the name is left in
    /// `scratch.name`.
    func findFamily(named key: MetricKey, _ s: inout State, _ scratch: inout NameScratch) -> FamilyLookup {
        writeFamilyName(of: key, into: &scratch.name)
        let h = nameBucket(scratch.name, s)
        guard let existing = family(exposing: scratch.name, bucket: h, s, &scratch.other, &scratch.exposed) else {
            return .free(bucket: h)
        }
        return isNamed(scratch.name, s.families[Int(existing)], &scratch.other) ? .named(existing) : .taken
    }

    /// Grows `nameHeads` once for the names that `fresh` (sorted by `pageOrder`) can add: one
    /// set per statsd name and type among them (the most new families they can make), instead
    /// of doubling it again and again as the first flush routes a large page.
    func sizeNameHeads(
        for fresh: [(key: MetricKey, bounds: BucketBounds?)], _ s: inout State, _ scratch: inout NameScratch
    ) {
        var names = s.nameCount
        for k in fresh.indices where k == 0 || !Self.sameNameAndType(fresh[k - 1].key, fresh[k].key) {
            names += Self.exposedCount(FamilyType(fresh[k].key.type))
        }
        guard names > s.nameHeads.count else { return }
        let saved = s.nameCount
        s.nameCount = names
        rebuildNameHeads(&s, &scratch)
        s.nameCount = saved
    }

    /// Whether two keys have the same type and name.
    static func sameNameAndType(_ a: MetricKey, _ b: MetricKey) -> Bool {
        a.type == b.type && a.isMapped == b.isMapped
            && a.withName { na in
                b.withName { nb in
                    guard na.count == nb.count else { return false }
                    guard let x = na.baseAddress, let y = nb.baseAddress else { return true }  // both empty
                    return memcmp(x, y, na.count) == 0
                }
            }
    }

    /// Whether `family` is named `name` (its name derived into `other`).
    func isNamed(_ name: [UInt8], _ family: Family, _ other: inout [UInt8]) -> Bool {
        writeFamilyName(of: family.source, into: &other)
        return Self.same(other, name)
    }

    /// Pushes family `f` on the front of the bucket chain of each name it exposes, whose buckets
    /// (`nameBucket`) are known: its name's, then a histogram's `_bucket`, `_sum` and `_count`.
    func linkNames(_ f: Int32, _ type: FamilyType, buckets: (Int, Int, Int, Int), _ s: inout State) {
        for slot in 0..<Self.exposedCount(type) {
            let h =
                switch slot {
                case 0: buckets.0
                case 1: buckets.1
                case 2: buckets.2
                default: buckets.3
                }
            Self.setLink(f, slot, s.nameHeads[h], &s)
            s.nameHeads[h] = f
        }
    }

    /// Pushes family `f`, named `name`, on the front of the bucket chain of each name it exposes.
    func linkNames(_ f: Int32, _ name: [UInt8], _ type: FamilyType, _ s: inout State, _ exposed: inout [UInt8]) {
        for slot in 0..<Self.exposedCount(type) {
            Self.writeExposed(name, slot: slot, into: &exposed)
            let h = nameBucket(exposed, s)
            Self.setLink(f, slot, s.nameHeads[h], &s)
            s.nameHeads[h] = f
        }
    }

    /// Sizes `nameHeads` for `nameCount` names (a bucket per name, rounded up to a power of
    /// two: 4 bytes per name; at least twice as many as before, so that a growing page
    /// rebuilds it O(log n) times) and links every live family into it again.
    func rebuildNameHeads(_ s: inout State, _ scratch: inout NameScratch) {
        s.nameHeads = [Int32](repeating: -1, count: Int.powerOfTwo(atLeast: s.nameCount, minimum: 64))
        s.histogramNameLinks = [:]
        var f = s.firstFamily
        while f >= 0 {
            let family = s.families[Int(f)]
            writeFamilyName(of: family.source, into: &scratch.other)
            linkNames(f, scratch.other, family.type, &s, &scratch.exposed)
            f = family.next
        }
    }
}
