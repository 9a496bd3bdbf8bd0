import Testing

@testable import StatorCore

/// A reader skips parsing a line whose identity (name, and all after the value) it has seen
/// before (`LineIdentityCache`). These tests hold that shortcut to what a full parse of every line does.

/// Lines that exercise the shortcut: identities seen many times with changing values (valid,
/// negative, junk, empty, signed), every type, sample rates, tags in either order, name tags,
/// several values or groups per line, long identities that make the ring wrap, and events.
private func corpus(lines: Int, seed: UInt64) -> [String] {
    var rng = SplitMix64(state: seed)
    func pick<T>(_ options: [T]) -> T { options[Int(rng.next() % UInt64(options.count))] }
    let long = String(repeating: "x", count: 900)
    let identities: [(name: String, suffix: String)] = [
        ("api.requests", "|c"), ("api.requests", "|c|@0.5"), ("api.requests", "|c|#b:2,a:1"),
        ("api.requests", "|c|#a:1,b:2"), ("api.requests", "|c|#a:1,a:3"), ("db.query", "|ms|#table:users"),
        ("db.query", "|ms|@0.25|#table:users"), ("db.size", "|h"), ("db.dist", "|d|#x:y"), ("pool.free", "|g"),
        ("pool.free", "|g|#pool:a"), ("users", "|s"), ("users", "|s|#site:eu"), ("influx,host=a", "|c"),
        ("signalfx[host=b]", "|g"), ("bad", "|q"), ("bad2", "|c|@2"), ("bad3", "|c|#k:v|#k:w"), ("ts", "|c|T1700000000"),
        ("container", "|c|c:abc"), ("weird name", "|c"), ("ünïcode", "|c|#ö:ä"), ("long.\(long)", "|c|#k:\(long)"),
    ]
    let values = ["1", "2.5", "0", "-3", "+4", "1e3", "abc", "", "7", "u1", "u2", "-0", "00012"]
    var out: [String] = []
    for k in 0..<lines {
        switch k % 50 {
        case 0: out.append("multi:1:2:\(pick(values))|c")
        case 1: out.append("groups:1|c:\(pick(values))|ms")
        case 2: out.append("_e{5,4}:title|text")
        case 3: out.append("nocolon|c")
        case 4, 14, 24, 34:
            // 1,000 long identities (3.7 kB each, 3.7 MB together): the 2 MiB ring wraps, and a
            // record dies between sightings of its identity.
            out.append("wrap.\(rng.next() % 1_000).\(long):\(pick(values))|c|#k:\(long)")
        default:
            let identity = pick(identities)
            out.append("\(identity.name):\(pick(values))\(identity.suffix)")
        }
    }
    return out
}

/// Everything a table holds after `drain`, as sorted, comparable text.
private func contents(_ table: ShardedTable) -> [String] {
    var out: [String] = []
    for part in table.drainAll(nextGeneration: 2) {
        for c in part.counters { out.append("c \(c.key) \(c.sum)") }
        for g in part.gauges { out.append("g \(g.key) \(g.hasSet) \(g.value) \(g.delta)") }
        for s in part.sets { out.append("s \(s.key) \(s.members.count)") }
        for t in part.samples {
            out.append(
                "t \(t.key) \(t.count) \(t.samples) \(t.sum) \(t.weightedSum) \(t.min) \(t.max) \(t.values.sorted { ($0, $0.sign == .minus ? 0 : 1) < ($1, $1.sign == .minus ? 0 : 1) }) \(t.bucketCounts)")
        }
    }
    return out.sorted()
}

@Test func linesSeenBeforeRecordWhatAFullParseOfEachRecords() {
    let lines = corpus(lines: 20_000, seed: 11)
    // Long names and tags (past the default max_name_bytes and max_tag_bytes) fill the ring fast.
    let configuration = AggregationConfiguration(
        shards: 4, maxSeries: 100_000, lineLimits: LineLimits(maxNameBytes: 4096, maxTagBytes: 4096))
    let cached = ShardedTable(configuration: configuration, seed: 3)
    let parsed = ShardedTable(configuration: configuration, seed: 3)
    var cachedCounts = [ParseFailure: Int]()
    var parsedCounts = [ParseFailure: Int]()

    // One reader for everything, as a reader thread runs: lines packed into datagrams of up
    // to 60 kB, 64 datagrams staged per commit (the long lines make the ring wrap within a
    // batch, so keys staged from the ring must survive until the commit). Most lines are seen before.
    var reader = ReaderAggregator(table: cached)
    var datagrams: [[UInt8]] = [[]]
    for line in lines {
        if !datagrams[datagrams.count - 1].isEmpty, datagrams[datagrams.count - 1].count + line.utf8.count >= 60_000 {
            datagrams.append([])
        }
        if !datagrams[datagrams.count - 1].isEmpty { datagrams[datagrams.count - 1].append(0x0A) }
        datagrams[datagrams.count - 1].append(contentsOf: line.utf8)
    }
    let report: ReaderAggregator.Rejection = { reason, _, _ in cachedCounts[reason, default: 0] += 1 }
    for start in stride(from: 0, to: datagrams.count, by: 64) {
        let batch = datagrams[start..<min(start + 64, datagrams.count)].map { bytes in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
            copy.copyBytes(from: bytes)
            return UnsafeRawBufferPointer(copy)
        }
        reader.stage(batch: batch.count, payload: { batch[$0] }, rejected: report)  // as the receiver does
        reader.commit(rejected: report)
        for datagram in batch { datagram.deallocate() }
    }
    // A new reader per line: nothing is ever seen before, every line is parsed.
    for line in lines {
        var fresh = ReaderAggregator(table: parsed)
        Array(line.utf8).withUnsafeBytes { raw in
            fresh.ingest(raw) { reason, _, _ in parsedCounts[reason, default: 0] += 1 }
        }
    }

    #expect(cachedCounts == parsedCounts)
    #expect(cachedCounts[.invalidValue, default: 0] > 100)
    #expect(cachedCounts[.negativeCounter, default: 0] > 100)
    let recorded = contents(cached)
    #expect(recorded.count > 600)
    let expected = contents(parsed)
    #expect(recorded.count == expected.count)
    // The first difference, shortened (the long identities run to kilobytes).
    let difference = zip(recorded, expected).first { $0 != $1 }.map { "\($0.prefix(300)) != \($1.prefix(300))" }
    #expect(difference == nil)
}

@Test func aRouteToASeriesThatExpiredIsNotFollowed() {
    // One shard: the series made after the expiry takes the expired one's slot (and number).
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 5)
    var reader = ReaderAggregator(table: table)
    func send(_ line: String, _ ingestor: inout ReaderAggregator) {
        Array(line.utf8).withUnsafeBytes { ingestor.ingest($0) }
    }
    send("a:1|c", &reader)
    send("a:1|c", &reader)  // now the reader knows where "a" is
    _ = table.drainAll(nextGeneration: 2)
    #expect(table.expire(cutoff: 1).count == 1)
    var other = ReaderAggregator(table: table)
    send("b:10|c", &other)
    send("a:5|c", &reader)
    let sums = Dictionary(
        uniqueKeysWithValues: table.drainAll(nextGeneration: 3).flatMap(\.counters).map { ($0.key.name, $0.sum) })
    #expect(sums == ["a": 5, "b": 10])
}

@Test func byteScanFindsTheFirstMatchAtEveryOffset() {
    var rng = SplitMix64(state: 9)
    for _ in 0..<2_000 {
        let count = Int(rng.next() % 40)
        let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4 == 0 ? 0x3A : rng.next()) }
        let from = count == 0 ? 0 : Int(rng.next() % UInt64(count))
        bytes.withUnsafeBytes { raw in
            let expected = bytes[from...].firstIndex(of: 0x3A)
            #expect(ByteScan.firstIndex(of: 0x3A, in: raw, from..<count) == expected)
        }
    }
}

@Test func byteScanEqualSeesADifferenceAtEveryPositionOfEveryLength() {
    // The words overlap at the tail and short lengths read first, middle and last: a byte
    // that differs anywhere must be seen, and equal bytes must compare equal.
    for count in 0...40 {
        let a = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        var equal = true
        a.withUnsafeBytes { x in
            a.map { $0 }.withUnsafeBytes { y in
                equal = ByteScan.equal(
                    x.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, y.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!,
                    count: count)
            }
        }
        #expect(equal, "length \(count)")
        for position in 0..<count {
            var b = a
            b[position] ^= 0x20
            a.withUnsafeBytes { x in
                b.withUnsafeBytes { y in
                    #expect(!ByteScan.equal(x.baseAddress!, y.baseAddress!, count: count), "length \(count), at \(position)")
                }
            }
        }
    }
}

@Test func identityHashesSpreadOverTheSets() {
    // 20,000 identities that differ in a few digits, as a client's series do: all hashes
    // distinct, and no set (8,192 of them, four ways each) gets many more than its share.
    let cache = LineIdentityCache(seed: 11)
    var hashes = Set<UInt64>()
    var perSet = [Int](repeating: 0, count: LineIdentityCache.sets)
    for n in 0..<20_000 {
        let name = Array("bench.\(["counter", "timer", "gauge", "set"][n % 4]).\(n / 4)".utf8)
        let suffix = Array("|\(["c", "ms", "g", "s"][n % 4])|#t0:v\(n % 7),t1:v\((n + 1) % 7)".utf8)
        let line = name + Array("1".utf8) + suffix
        let h = line.withUnsafeBytes { raw in
            cache.hash(raw, name: 0..<name.count, suffix: (name.count + 1)..<line.count)
        }
        hashes.insert(h)
        perSet[Int(truncatingIfNeeded: h >> 40) & (LineIdentityCache.sets - 1)] += 1
    }
    #expect(hashes.count == 20_000)
    // About 2.4 per set on average: a dozen would be a clumping hash.
    #expect(perSet.max()! <= 12)
}

@Test func keyHashesOfShortAndOverlappingInputsDiffer() {
    // Every string of up to 3 bytes over 40 letters, and 8-16 byte strings that differ in
    // one byte of the overlapping tail: no two hash alike.
    var seen = Set<UInt64>()
    var count = 0
    let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789.:|#".utf8)
    var inputs: [[UInt8]] = [[]]
    for a in letters {
        inputs.append([a])
        for b in letters {
            inputs.append([a, b])
            for c in letters { inputs.append([a, b, c]) }
        }
    }
    for length in 8...16 {
        for position in 0..<length {
            for letter in letters.prefix(8) {
                var bytes = [UInt8](repeating: UInt8(ascii: "k"), count: length)
                bytes[position] = letter
                inputs.append(bytes)
            }
        }
    }
    for input in Set(inputs) {
        count += 1
        seen.insert(input.withUnsafeBytes { SeriesKeyBuilder.hash($0, seed: 1) })
    }
    #expect(seen.count == count)
}

@Test func aKeyStagedFromTheRingSurvivesUntilTheCommit() {
    // "a" is staged twice in one batch, the second time from its record in the ring (its
    // series is not known yet, so the shard reads the key). Then 3 MB of new long lines go
    // through the same batch: more than the 2 MiB ring. The reader must commit (or copy the
    // key) before the ring overwrites that key.
    let table = ShardedTable(
        configuration: AggregationConfiguration(
            shards: 4, lineLimits: LineLimits(maxNameBytes: 4096, maxTagBytes: 4096)), seed: 5)
    var reader = ReaderAggregator(table: table)
    let long = String(repeating: "y", count: 1_000)
    var datagrams = ["a:1|c", "a:2|c"].map { Array($0.utf8) }
    for d in 0..<200 {
        datagrams.append(Array((0..<4).map { "fill.\(d).\($0).\(long):1|c|#k:\(long)" }.joined(separator: "\n").utf8))
    }
    let buffers = datagrams.map { bytes in
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        copy.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(copy)
    }
    defer { for b in buffers { b.deallocate() } }
    for (k, datagram) in buffers.enumerated() { reader.stage(datagram, datagram: k, rejected: { _, _, _ in }) }
    reader.commit(rejected: { _, _, _ in })
    let counters = table.drainAll(nextGeneration: 2).flatMap(\.counters)
    #expect(counters.count == 801)
    #expect(counters.first { $0.key.name == "a" }?.sum == 3)
}

@Test func theRingIsNeverWrittenOverAStagedKeyWithinOneHugeDatagram() {
    // "a" is staged from its record in the ring (its series is not known yet). Then one
    // datagram of 3 MB of new lines, more than the 2 MiB ring, is staged: nothing between
    // datagrams can commit in time, so the reader must commit before an insert reaches the key.
    // (A Unix datagram socket can carry datagrams well past UDP's 64 KiB.)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4), seed: 5)
    var reader = ReaderAggregator(table: table)
    let long = String(repeating: "z", count: 200)
    let fill = (0..<15_000).map { "fill.\($0).\(long):1|c" }.joined(separator: "\n")
    let datagrams = [Array("a:1|c".utf8), Array("a:2|c".utf8), Array(fill.utf8)]
    let buffers = datagrams.map { bytes in
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        copy.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(copy)
    }
    defer { for b in buffers { b.deallocate() } }
    reader.stage(batch: buffers.count, payload: { buffers[$0] }, rejected: { _, _, _ in })
    reader.commit(rejected: { _, _, _ in })
    let counters = table.drainAll(nextGeneration: 2).flatMap(\.counters)
    #expect(counters.count == 15_001)
    #expect(counters.first { $0.key.name == "a" }?.sum == 3)
}
