import Testing

@testable import StatorCore

/// A reader skips parsing a line whose identity (name, and all after the value) it has seen
/// before (`KeyCache`). These tests hold that shortcut to what a full parse of every line does.

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
            // 400 long identities (3.7 kB each, 1.5 MB together): the 1 MiB ring wraps, and a
            // record dies between sightings of its identity.
            out.append("wrap.\(rng.next() % 400).\(long):\(pick(values))|c|#k:\(long)")
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
                "t \(t.key) \(t.count) \(t.samples) \(t.sum) \(t.weightedSum) \(t.min) \(t.max) \(t.values) \(t.bucketCounts)")
        }
    }
    return out.sorted()
}

@Test func linesSeenBeforeRecordWhatAFullParseOfEachRecords() {
    let lines = corpus(lines: 20_000, seed: 11)
    let configuration = AggregationConfiguration(shards: 4, maxSeries: 100_000)
    let cached = ShardedTable(configuration: configuration, seed: 3)
    let parsed = ShardedTable(configuration: configuration, seed: 3)
    var cachedCounts = [ParseFailure: Int]()
    var parsedCounts = [ParseFailure: Int]()

    // One reader for everything, lines packed into datagrams of up to 1,400 bytes: most lines are seen before.
    var reader = DatagramIngestor(table: cached)
    var datagram: [UInt8] = []
    func send() {
        datagram.withUnsafeBytes { raw in reader.ingest(raw) { reason, _, _ in cachedCounts[reason, default: 0] += 1 } }
        datagram = []
    }
    for line in lines {
        if !datagram.isEmpty, datagram.count + line.utf8.count >= 1_400 { send() }
        if !datagram.isEmpty { datagram.append(0x0A) }
        datagram.append(contentsOf: line.utf8)
    }
    send()
    // A new reader per line: nothing is ever seen before, every line is parsed.
    for line in lines {
        var fresh = DatagramIngestor(table: parsed)
        Array(line.utf8).withUnsafeBytes { raw in
            fresh.ingest(raw) { reason, _, _ in parsedCounts[reason, default: 0] += 1 }
        }
    }

    #expect(cachedCounts == parsedCounts)
    #expect(cachedCounts[.invalidValue, default: 0] > 100)
    #expect(cachedCounts[.negativeCounter, default: 0] > 100)
    let recorded = contents(cached)
    #expect(recorded.count > 350)
    let expected = contents(parsed)
    #expect(recorded.count == expected.count)
    // The first difference, shortened (the long identities run to kilobytes).
    let difference = zip(recorded, expected).first { $0 != $1 }.map { "\($0.prefix(300)) != \($1.prefix(300))" }
    #expect(difference == nil)
}

@Test func aRouteToASeriesThatExpiredIsNotFollowed() {
    // One shard: the series made after the expiry takes the expired one's slot (and number).
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 5)
    var reader = DatagramIngestor(table: table)
    func send(_ line: String, _ ingestor: inout DatagramIngestor) {
        Array(line.utf8).withUnsafeBytes { ingestor.ingest($0) }
    }
    send("a:1|c", &reader)
    send("a:1|c", &reader)  // now the reader knows where "a" is
    _ = table.drainAll(nextGeneration: 2)
    #expect(table.expire(cutoff: 1).count == 1)
    var other = DatagramIngestor(table: table)
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
