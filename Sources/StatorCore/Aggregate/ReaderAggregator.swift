import CStatorSys

/// One reader's aggregation engine: drives its datagrams through parse -> aggregate.
/// `stage(_:datagram:rejected:)` splits a datagram into lines, parses them and stages their samples;
/// `commit(rejected:)` records everything staged, shard by shard (one lock per
/// shard, lookups prefetched together). One per reader thread: it owns the
/// reusable parse, key and staging scratch; not shared.
public struct ReaderAggregator: ~Copyable {
    /// A rejected line: why, which datagram of the batch, and its byte range there.
    public typealias Rejection = (_ reason: ParseFailure, _ datagram: Int, _ line: Range<Int>) -> Void

    private let table: ShardedTable
    private var line: ParsedLine
    private var keys: SeriesKeyBuilder
    private var cache: LineIdentityCache
    private var staged = StagedBatch()
    /// This reader's share of the open interval (see `LockedReaderAggregates`).
    let share: LockedReaderAggregates
    private let maxSamples: Int
    /// `cache.written` when the current batch began. The batch is committed once an eighth of
    /// the ring has been written since, so that the keys it reads from the ring stay young
    /// (`stageSeen` copies an older one). Safety does not rest on this: `stageLine` commits
    /// before an insert could write over a staged key.
    private var batchStart: UInt64 = 0
    /// The current datagram's lines, between the passes of `stage`.
    private var pending = ScratchList<LineScanner.Line>(capacity: 64)
    private var order: [Int32] = []
    private var starts: [Int32] = []
    private var rejectedSamples: [Int32] = []
    /// Counts since the last `flushCounts(to:)`.
    public private(set) var lines: UInt64 = 0
    /// Event and service-check lines, and the valid ones by `DogEvent.Kind.rawValue`.
    public private(set) var eventLines: UInt64 = 0
    public private(set) var events: [UInt64] = [0, 0]
    private var invalid = [UInt64](repeating: 0, count: ParseFailure.allCases.count)
    private var dropped = [UInt64](repeating: 0, count: DropReason.allCases.count)
    /// The mapping in force (`mapping_config`), the rules this reader follows, and the
    /// decisions it made under them.
    private let mappingRules: MappingRules?
    private var mapping: LoadedMapping?
    private var mappingCache: MappingCache
    /// New names an `action: drop` rule matched, since the last `flushCounts(to:)`.
    private var droppedNames: UInt64 = 0
    /// The tag policy in force (`tags.*`), the scratch its rewritten lines go to, and what it
    /// did since the last `flushCounts(to:)` (by `TagPolicy.Effect`).
    private let tagPolicy: TagPolicy?
    private var policyScratch = TagPolicyScratch()
    private var policyCounts = [UInt64](repeating: 0, count: TagPolicy.Effect.allCases.count)
    /// Staged samples past which `stage` commits by itself (datagrams stay valid until then).
    private let commitThreshold = 8192

    public init(table: ShardedTable) {
        self.table = table
        line = ParsedLine(limits: table.configuration.lineLimits)
        keys = table.makeKeyBuilder()
        cache = LineIdentityCache(seed: table.seed ^ 0x6A09_E667_F3BC_C908)
        share = table.makeShare()
        maxSamples = table.configuration.maxSamplesPerSeries
        mappingRules = table.configuration.mapping
        mapping = mappingRules?.current
        mappingCache = MappingCache(seed: table.seed ^ 0xBB67_AE85_84CA_A73B)
        tagPolicy = table.configuration.tagPolicy
    }

    deinit { table.retire(share) }

    /// Parses and records every line of `datagram` at once.
    public mutating func ingest(_ datagram: UnsafeRawBufferPointer, rejected: Rejection = { _, _, _ in }) {
        stage(datagram, datagram: 0, rejected: rejected)
        commit(rejected: rejected)
    }

    /// Parses every line of `datagram` and stages its samples.
    ///
    /// Four passes over the datagram's lines: find each line's shape and identity hash and
    /// start fetching its `LineIdentityCache` set; start fetching the records the sets name; find the
    /// records and start fetching the aggregates in this reader's share that they name; then
    /// add or stage each line: a line seen before adds its value to the share
    /// (`addToShare`) or is staged from its record (only the value is new), another is parsed
    /// and staged. The passes let the cache misses of different lines overlap.
    /// - Parameters:
    ///   - datagram: must stay valid until `commit` (it may run from here when much is staged).
    ///   - index: the datagram's number in the caller's batch, handed back in rejections.
    ///   - rejected: called for each rejected line (for rate-limited logging); not on the fast path.
    ///     It runs with this reader's share locked, so it must not flush the table.
    public mutating func stage(_ datagram: UnsafeRawBufferPointer, datagram index: Int, rejected: Rejection) {
        stage(batch: 1, from: index, payload: { _ in datagram }, rejected: rejected)
    }

    /// Stages `count` datagrams in turn, as `stage(_:datagram:rejected:)` does: `payload(k)` for
    /// `k` in `0..<count` is the `k`th, handed back in rejections as `first + k`. The share's lock
    /// is taken once for the batch, not once per datagram.
    public mutating func stage(
        batch count: Int, from first: Int = 0, payload: (Int) -> UnsafeRawBufferPointer, rejected: Rejection
    ) {
        guard count > 0 else { return }
        if let rules = mappingRules, rules.generation != mapping?.generation { followReload(rules, rejected: rejected) }
        share.lock()
        for k in 0..<count {
            stageLocked(payload(k), datagram: first &+ k, rejected: rejected)
            if staged.samples.count >= commitThreshold || cache.written &- batchStart > UInt64(LineIdentityCache.ringBytes / 8) {
                commitLocked(rejected: rejected)
            }
        }
        share.unlock()
    }

    /// Takes the rules a reload put in force, between two batches: what is staged is committed
    /// under the old rules, then every decision made under them is forgotten (the line
    /// identities, whose records hold mapped keys, and the mapping decisions), so every line
    /// from here on is mapped by the new rules, also a line seen before.
    @inline(never)
    private mutating func followReload(_ rules: MappingRules, rejected: Rejection) {
        commit(rejected: rejected)
        cache.forgetAll()
        mappingCache.forgetAll()
        mapping = rules.current
    }

    /// `stage(_:datagram:rejected:)` of one datagram, with the share's lock held.
    @inline(__always)
    private mutating func stageLocked(_ datagram: UnsafeRawBufferPointer, datagram index: Int, rejected: Rejection) {
        pending.refill(atMost: LineScanner.maxLines(datagram.count)) { out in
            LineScanner.scan(datagram, seed: cache.seed, into: out, sets: cache.sets, setMask: LineIdentityCache.setMask)
        }
        lines &+= UInt64(pending.count)
        pending.withUnsafeBufferPointer { pending in
            for p in pending where p.identity != 0 {
                cache.prefetchRecords(p.identity, identity: Int(p.end &- p.pipe &+ p.colon &- p.start))
            }
        }
        // SAFETY: `share` (held by this aggregator) keeps the state at one address for its
        // life, and `stage(batch:)` holds its lock until this datagram is done.
        let state = share.state
        pending.withUnsafeMutableBufferPointer { pending in
            for k in pending.indices where pending[k].identity != 0 {
                let p = pending[k]
                if let record = cache.find(datagram, name: p.name, suffix: p.suffix, hash: p.identity) {
                    pending[k].record = record
                    state.pointee.prefetch(
                        record: record, cache: cache, datagram: datagram, value: p.value, memberSeed: table.memberSeed)
                }
            }
        }
        // A line parsed below may insert records, which can overwrite the ring's oldest: then
        // records found above are looked up again.
        let written = cache.written
        for k in pending.indices {
            let p = pending[k]
            let range = p.range
            if p.record != LineIdentityCache.none {
                if let record = cache.written == written
                    ? p.record : cache.find(datagram, name: p.name, suffix: p.suffix, hash: p.identity)
                {
                    let value = p.value
                    if Self.addToShare(
                        datagram, record: record, value: value, share: state, cache: cache, table: table,
                        maxSamples: maxSamples)
                    {
                        continue
                    }
                    if cache[record].metricType == .gauge {
                        state.pointee.sealGauge(keyHash: cache[record].keyHash, into: &staged)
                    }
                    if Self.stageSeen(
                        datagram, range, index, record: record, value: value, into: &staged, cache: cache,
                        memberSeed: table.memberSeed)
                    {
                        continue
                    }
                }
            }
            switch StatsdParser.parse(datagram, range, into: &line) {
            case .metric:
                stageLine(datagram, p, index, rejected: rejected)
            case .event:
                // Events are rare: parsed whole (and allocating) here, queued for the flush.
                eventLines &+= 1
                switch table.events.offer(datagram, range, limits: line.limits, policy: tagPolicy) {
                case .queued(let kind): events[Int(kind.rawValue)] &+= 1
                case .refused(let reason):
                    invalid[Int(reason.rawValue)] &+= 1
                    rejected(reason, index, range)
                }
            case .failure(let reason):
                invalid[Int(reason.rawValue)] &+= 1
                rejected(reason, index, range)
            }
        }
    }

    /// Adds a line seen before straight into this reader's share (`ReaderAggregates.add`),
    /// when the shard's route to its series is known. Gauges too: their operations compose in
    /// the share, and `ReaderAggregates.sealGauge` keeps their order with staged gauge lines.
    /// The share's lock is held.
    /// - Returns: `false` when the line must be staged instead (no route yet, a route to an
    ///   expired series, a value that does not convert).
    @inline(__always)
    private static func addToShare(
        _ datagram: UnsafeRawBufferPointer, record position: UInt64, value: Range<Int>,
        share: UnsafeMutablePointer<ReaderAggregates>, cache: borrowing LineIdentityCache, table: ShardedTable,
        maxSamples: Int
    ) -> Bool {
        let record = cache[position]
        guard record.route.slot >= 0 else { return false }
        // The value first: a line that does not convert is staged, and the parser says why.
        guard
            let (member, number) = seenValue(
                datagram, value, type: record.metricType, rate: record.rate, memberSeed: table.memberSeed)
        else { return false }
        return share.pointee.add(
            record: position, member: member, number: number, cache: cache, table: table, maxSamples: maxSamples)
    }

    /// The value of a line seen before, converted and checked as the parser does: for a set its
    /// member's seeded hash (and no number), else the number (and no member). Only the value is
    /// new (the rest of the line is the record's), so only the checks on it are repeated: the
    /// number, and a sampled counter's `value / rate` being finite.
    /// - Returns: `nil` when it does not convert (the full parser then says why).
    @inline(__always)
    private static func seenValue(
        _ datagram: UnsafeRawBufferPointer, _ value: Range<Int>, type: MetricType, rate: Double, memberSeed: UInt64
    ) -> (member: UInt64, number: ParsedValue)? {
        if type == .set {
            guard StatsdParser.isMember(value) else { return nil }
            return (MemberSet.hash(of: value, in: datagram, seed: memberSeed), ParsedValue(value: 0, isDelta: false))
        }
        guard case .value(let v) = StatsdParser.value(datagram, value, type: type) else { return nil }
        if type == .counter, rate != 1, !StatsdParser.isScalable(v.value, rate: rate) { return nil }
        return (0, v)
    }

    /// Stages a line from its `LineIdentityCache` record and its value.
    /// (Static, with the batch and the cache passed in: as a mutating method of this
    /// noncopyable struct it is not inlined, and the call is paid on every line.)
    /// - Returns: `false` when the value does not convert (the full parser then says why).
    @inline(__always)
    private static func stageSeen(
        _ datagram: UnsafeRawBufferPointer, _ range: Range<Int>, _ index: Int, record position: UInt64, value: Range<Int>,
        into staged: inout StagedBatch, cache: borrowing LineIdentityCache, memberSeed: UInt64
    ) -> Bool {
        let record = cache[position]
        let type = record.metricType
        // The member's hash for a set, else the value itself, inline (nothing in the value list).
        guard let (member, number) = seenValue(datagram, value, type: type, rate: record.rate, memberSeed: memberSeed)
        else { return false }
        let payload = type == .set ? member : number.value.bitPattern
        let storage: StagedSample.ValueStorage = type == .set ? .inList : .init(inline: number.isDelta)
        // The key stays in the ring (no copy) when the record is at most half a ring old, and
        // the batch notes the oldest such record: `stageLine` commits before an insert could
        // write over it (see `StagedBatch.oldestRingRecord`). An older record's key is copied,
        // so that one old record does not force commits.
        let offset: Int32
        if cache.written &- position <= UInt64(LineIdentityCache.ringBytes / 2) {
            offset = staged.ringKey(record: position, in: cache)
        } else {
            offset = staged.appendKey(cache.key(position))
        }
        staged.samples.append(
            StagedSample(
                hash: record.keyHash, rate: record.rate, payload: payload, route: record.route, keyOffset: offset,
                keyLength: Int32(record.keyLength), valueStart: 0, valueEnd: 0, datagram: Int32(index),
                lineStart: Int32(range.lowerBound), lineEnd: Int32(range.upperBound), cacheRecord: position, type: type,
                values: storage))
        return true
    }

    /// Stages a parsed line, and remembers its identity when it has one value (see `LineIdentityCache`).
    /// With a tag policy, the line's name and tags are first rewritten by it (into
    /// `policyScratch`), so that the key, the mapping and the cached record all see the
    /// policy's tags; its members and values stay in the datagram.
    /// Remembering it writes a record into the cache's ring, which may write over the oldest
    /// records: when one of them holds the key of a staged sample, everything staged is
    /// committed first. Committing mid-datagram is fine: the datagram stays valid until the
    /// caller's commit anyway, and nothing staged is left pointing into the ring.
    @inline(__always)
    private mutating func stageLine(_ datagram: UnsafeRawBufferPointer, _ p: LineScanner.Line, _ index: Int, rejected: Rejection)
    {
        let range = p.range
        if line.timestamp >= 0, !TimestampBounds.accepts(line.timestamp, now: table.configuration.clock()) {
            invalid[Int(ParseFailure.invalidTimestamp.rawValue)] &+= 1
            rejected(.invalidTimestamp, index, range)
            return
        }
        var source = datagram
        if let tagPolicy {
            tagPolicy.apply(&line, datagram, into: &policyScratch, counts: &policyCounts)
            source = policyScratch.bytes
        }
        keys.prepare(line, source)
        // A timestamped line is never remembered: its points are not aggregated.
        let single = p.identity != 0 && line.groups.count == 1 && line.values.count <= 1 && line.timestamp < 0
        if single, staged.oldestRingRecord != LineIdentityCache.none, !cache.survivesInsert(staged.oldestRingRecord) {
            commitLocked(rejected: rejected)
        }
        /// What `keys` holds: the line's own name and tags (nil), or a mapping's.
        var mappedParts: MappedKeyParts?
        var drop: DropReason?
        var refusedPoint = false
        for g in line.groups.indices {
            let group = line.groups[g]
            if let mapping {
                let name = UnsafeRawBufferPointer(rebasing: source[line.name])
                let (decision, new) = mappingCache.decision(name, type: group.type, rules: mapping)
                switch decision {
                case .unmatched:
                    if mappedParts != nil {
                        keys.prepare(line, source)
                        mappedParts = nil
                    }
                case .dropped:
                    if new { droppedNames &+= 1 }
                    drop = .mapping
                    continue
                case .invalidName:
                    drop = drop ?? .mappingInvalidName
                    continue
                case .mapped(let parts):
                    if mappedParts !== parts {
                        keys.prepareMapped(line, source, parts)
                        mappedParts = parts
                    }
                }
            }
            let hash = keys.build(type: group.type)
            if line.timestamp >= 0 {
                if !offerPoint(group, hash: hash) { refusedPoint = true }
                continue
            }
            if group.type == .gauge { share.state.pointee.sealGauge(keyHash: hash, into: &staged) }
            let offset = staged.appendKey(keys.bytes)
            let valueStart = Int32(staged.values.count)
            for v in group.valueStart..<group.valueEnd { staged.values.append(line.values[v]) }
            let memberHash = group.type == .set ? MemberSet.hash(of: group.member, in: datagram, seed: table.memberSeed) : 0
            var record = LineIdentityCache.none
            if single {
                record =
                    cache.insert(
                        datagram, name: p.name, suffix: p.suffix, hash: p.identity,
                        type: group.type, rate: group.rate, key: keys.bytes, keyHash: hash) ?? LineIdentityCache.none
            }
            staged.samples.append(
                StagedSample(
                    hash: hash, rate: group.rate, payload: memberHash, route: .unknown, keyOffset: offset,
                    keyLength: Int32(keys.count), valueStart: valueStart, valueEnd: Int32(staged.values.count),
                    datagram: Int32(index), lineStart: Int32(range.lowerBound), lineEnd: Int32(range.upperBound),
                    cacheRecord: record, type: group.type))
        }
        if let drop { dropped[drop.rawValue] &+= 1 }
        if refusedPoint {
            invalid[Int(ParseFailure.seriesLimit.rawValue)] &+= 1
            rejected(.seriesLimit, index, range)
        }
    }

    /// Queues the point of a timestamped line's `group`, whose key `keys` holds: a counter's
    /// rate-scaled sum of its values, a gauge's last value as written (SPEC section 15).
    /// - Returns: `false` when it is refused (`max_series` series tracked, or the interval's
    ///   points are full).
    private mutating func offerPoint(_ group: SampleGroup, hash: UInt64) -> Bool {
        var value = 0.0
        for v in group.valueStart..<group.valueEnd {
            let parsed = line.values[v]
            value = group.type == .counter ? value + parsed.value / group.rate : parsed.value
        }
        let timestamp = line.timestamp &* 1000
        // The place first: a point refused for it must not make (or keep alive) its series.
        guard table.points.reserve() else { return false }
        guard let key = table.admitPoint(key: keys.bytes, hash: hash, type: group.type) else {
            table.points.fill(nil)
            return false
        }
        table.points.fill(TimestampedPoint(key: key, value: value, timestamp: timestamp))
        return true
    }

    /// Records everything staged. A line that would create a series past `max_series`
    /// is counted once (`series_limit`) and reported to `rejected`.
    /// It runs with this reader's share locked (see `LockedReaderAggregates`), so `rejected` must not flush the table.
    public mutating func commit(rejected: Rejection) {
        share.lock()
        commitLocked(rejected: rejected)
        share.unlock()
    }

    /// `commit` with the share's lock held.
    private mutating func commitLocked(rejected: Rejection) {
        // Every key a staged sample reads from the ring is still there (see `stageLine`).
        assert(
            staged.oldestRingRecord == LineIdentityCache.none || cache.isAlive(staged.oldestRingRecord),
            "the key cache's ring wrote over the key of a staged sample")
        guard !staged.samples.isEmpty else {
            staged.reset()
            batchStart = cache.written
            return
        }
        rejectedSamples.removeAll(keepingCapacity: true)
        staged.cacheKeys = cache.ringBytes
        table.record(&staged, order: &order, starts: &starts, rejected: &rejectedSamples)
        staged.samples.withUnsafeBufferPointer { samples in
            for e in samples where e.learned && e.cacheRecord != LineIdentityCache.none {
                cache.learn(e.cacheRecord, route: e.route)
            }
        }
        if !rejectedSamples.isEmpty {
            // Samples are staged in line order, so a line's samples are neighbours once sorted.
            rejectedSamples.sort()
            var previous: (Int32, Int32) = (-1, -1)
            for i in rejectedSamples {
                let e = staged.samples[Int(i)]
                guard (e.datagram, e.lineStart) != previous else { continue }
                previous = (e.datagram, e.lineStart)
                invalid[Int(ParseFailure.seriesLimit.rawValue)] &+= 1
                // (A sealed gauge's operations have no line of their own to show; see `sealGauge`.)
                if e.datagram >= 0 { rejected(.seriesLimit, Int(e.datagram), Int(e.lineStart)..<Int(e.lineEnd)) }
            }
        }
        staged.reset()
        batchStart = cache.written
    }

    /// Counts a line that its input refused before parsing (a TCP line over
    /// `tcp.max_line_bytes`, a cut Unix datagram): once as received, once as invalid.
    public mutating func countRefused(_ reason: ParseFailure) {
        lines &+= 1
        invalid[Int(reason.rawValue)] &+= 1
    }

    /// Adds the counts to the agent's metrics, under `input`, and resets them. Lines received
    /// go last, so whoever sees them has the batch's other counts too (if it reads those afterwards).
    public mutating func flushCounts(to metrics: SelfMetrics, input: Input = .udp) {
        let counters = metrics.input(input)
        if eventLines > 0 { metrics.eventsReceived.add(eventLines) }
        for (kind, n) in events.enumerated() where n > 0 {
            metrics.events[kind].add(n)
            events[kind] = 0
        }
        for (reason, n) in invalid.enumerated() where n > 0 {
            counters.invalid[reason].add(n)
            invalid[reason] = 0
        }
        for (reason, n) in dropped.enumerated() where n > 0 {
            metrics.linesDropped[reason].add(n)
            dropped[reason] = 0
        }
        if droppedNames > 0 {
            metrics.mappingSeries[MappingResult.dropped.rawValue].add(droppedNames)
            droppedNames = 0
        }
        if let tagPolicy {
            for (effect, n) in policyCounts.enumerated() where n > 0 {
                tagPolicy.applied[effect].add(n)
                policyCounts[effect] = 0
            }
        }
        counters.lines.add(lines)
        lines = 0
        eventLines = 0
    }
}
