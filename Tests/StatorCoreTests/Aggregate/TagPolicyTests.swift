import Testing
@testable import StatorCore

private let hashKey = "000102030405060708090a0b0c0d0e0f"

/// A table and flusher under a tag policy, the clock starting at 0.
private struct PolicyHarness {
    let table: ShardedTable
    let flusher: Flusher
    let policy: TagPolicy

    init(_ configure: (inout TagPolicyConfiguration) -> Void, ttlMillis: Int64 = 300_000) throws {
        var tags = TagPolicyConfiguration()
        configure(&tags)
        try tags.resolve(environment: ["KEY": hashKey])
        var aggregation = AggregationConfiguration(shards: 4, maxSeries: 200_000)
        policy = try #require(try TagPolicy(tags))
        aggregation.tagPolicy = policy
        table = ShardedTable(configuration: aggregation, seed: 42)
        flusher = Flusher(
            table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: ttlMillis),
            startMillis: 0, metrics: SelfMetrics(readers: 1)
        ) { _ in }
    }

    /// Sends each line through one reader and adds its counts to the policy.
    func send(_ lines: [String]) {
        var reader = ReaderAggregator(table: table)
        for line in lines { Array(line.utf8).withUnsafeBytes { reader.ingest($0) } }
        reader.flushCounts(to: SelfMetrics(readers: 1))
    }

    func counters(at ms: EpochMillis) -> [String: Double] {
        var out: [String: Double] = [:]
        for c in flusher.flush(at: ms).counters {
            out[c.key.name + c.key.tags.map { ",\($0.key)=\($0.value)" }.joined()] = c.value
        }
        return out
    }
}

@Test func dropAllowAndHashApplyBeforeTheSeriesIsIdentified() throws {
    let h = try PolicyHarness { t in
        t.drop = ["email", "user_*"]
        t.allow = ["env", "user_*", "email", "session", "region"]
        t.hash = ["session"]
        t.hashKey = "${KEY}"
    }
    let line = "hits:1|c|#env:prod,email:a@b.c,user_id:42,session:s-1,host:h1"
    h.send([line, line, "hits:1|c|#env:prod,session:s-1"])
    let pseudonym = SipHash24(key: (0..<16).map { UInt8($0) }).pseudonym("s-1")
    // One series: the known line costs nothing more, and both spellings meet after the policy.
    #expect(h.counters(at: 10_000) == ["hits,env=prod,session=\(pseudonym)": 3])
    // Per new identity (the repeated line is known): email and user_id dropped, host not allowed.
    #expect(h.policy.applied.map(\.value) == [2, 1, 2])
}

@Test func hashAloneKeepsEveryOtherTagAndThePseudonymIsStable() throws {
    let a = try PolicyHarness { t in
        t.hash = ["user"]
        t.hashKey = "${KEY}"
    }
    let b = try PolicyHarness { t in
        t.hash = ["user"]
        t.hashKey = "${KEY}"
    }
    a.send(["n:1|c|#user:alice,x:y"])
    b.send(["n:1|c|#user:alice,x:y"])
    let first = a.counters(at: 10_000)
    #expect(first == b.counters(at: 10_000))
    #expect(first.keys.first?.contains("alice") == false)
    #expect(first.keys.first?.hasSuffix(",x=y") == true)
}

@Test func limitsCapAKeyAtMaxValuesAndTheRestBecomeOther() throws {
    let h = try PolicyHarness { t in t.limits = [.init(key: "user*", maxValues: 3)] }
    h.send((0..<10).map { "n:1|c|#user:u\($0),env:prod" } + ["n:1|c|#user:u1,env:prod"])
    let counts = h.counters(at: 10_000)
    #expect(counts.count == 4)
    #expect(counts["n,env=prod,user=__other__"] == 7)
    #expect(counts["n,env=prod,user=u1"] == 2)
    let limits = try #require(h.policy.limits)
    #expect(limits.limitedCounts.map(\.count) == [7])
    #expect(limits.trackedValues == 3)
}

@Test func limitedValuesAreForgottenWithTheirSeries() throws {
    let h = try PolicyHarness({ t in t.limits = [.init(key: "user", maxValues: 2)] }, ttlMillis: 30_000)
    h.send(["n:1|c|#user:a", "n:1|c|#user:b", "n:1|c|#user:c"])
    #expect(h.counters(at: 10_000).count == 3)
    // a and b live while their series do; b keeps sending.
    for t in stride(from: 20_000, through: 50_000, by: 10_000) {
        h.send(["n:1|c|#user:b"])
        _ = h.counters(at: EpochMillis(t))
    }
    // a's series has expired, so a new value takes its place; c is still over the limit.
    h.send(["n:1|c|#user:d", "n:1|c|#user:e"])
    let counts = h.counters(at: 60_000)
    #expect(counts["n,user=d"] == 1)
    #expect(counts["n,user=__other__"] == 1)
    #expect(try #require(h.policy.limits).trackedValues == 2)
}

@Test func aHashWithoutAKeyIsRefusedAndTheKeyIsChecked() throws {
    var tags = TagPolicyConfiguration()
    tags.hash = ["email"]
    #expect(throws: ConfigError.self) { try tags.resolve(environment: [:]) }
    tags.hashKey = "${MISSING}"
    #expect(throws: ConfigError.self) { try tags.resolve(environment: [:]) }
    tags.hashKey = "${SHORT}"
    #expect(throws: ConfigError.self) { try tags.resolve(environment: ["SHORT": "0011"]) }
    tags.hashKey = "${KEY}"
    try tags.resolve(environment: ["KEY": hashKey + "\n"])
    #expect(tags.resolvedHashKey == (0..<16).map { UInt8($0) })
    #expect(tags.shownHashKey == "${KEY}")
    tags.hashKey = hashKey
    #expect(tags.shownHashKey == "<set>")
}

@Test func checkConfigShowsThePolicyAndRefusesAHashWithoutAKey() throws {
    let shown = try CommandLineParser.parse(
        [
            "check-config", "--tags.hash", "[\"email\"]", "--tags.hash_key", "${K}", "--tags.limits",
            "[{\"key\": \"user\", \"max_values\": 5}]",
        ], environment: ["K": hashKey])
    guard case .checkConfig(let configuration) = shown.command else {
        Issue.record("not check-config")
        return
    }
    let text = ConfigKeys.render(configuration)
    #expect(text.contains("email"))
    #expect(text.contains("${K}"))
    #expect(!text.contains(hashKey))
    #expect(text.contains("max_values"))
    #expect(throws: ConfigError.self) {
        try CommandLineParser.parse(["check-config", "--tags.hash", "[\"email\"]"], environment: [:])
    }
}

@Test func eventAndServiceCheckTagsGoThroughDropAllowAndHash() throws {
    let h = try PolicyHarness { t in
        t.drop = ["email"]
        t.hash = ["session"]
        t.hashKey = "${KEY}"
    }
    h.send([
        "_e{5,4}:title|text|#email:bob@x.com,session:s-1,env:prod",
        "_sc|db.up|0|#email:bob@x.com,session:s-1,canary|m:ok",
    ])
    let pseudonym = SipHash24(key: (0..<16).map { UInt8($0) }).pseudonym("s-1")
    let events = h.flusher.flush(at: 10_000).events
    #expect(events.map(\.tags) == [["session:\(pseudonym)", "env:prod"], ["session:\(pseudonym)", "canary"]])
    #expect(h.policy.applied.map(\.value) == [2, 0, 2])
}

/// A bare tag (`#canary`) stays bare under every policy: kept as `canary` = `true`, never
/// hashed (it has no value) nor counted by `limits`; dropped when its key is dropped.
@Test func bareTagsStayBareUnderThePolicy() throws {
    let h = try PolicyHarness { t in
        t.drop = ["email"]
        t.hash = ["session", "canary"]
        t.hashKey = "${KEY}"
        t.limits = [.init(key: "canary", maxValues: 1)]
    }
    h.send(["x:1|c|#canary,env:prod", "y:1|c|#session", "z:1|c|#email", "x:2|c|#canary,env:prod"])
    #expect(h.counters(at: 10_000) == ["x,canary=true,env=prod": 3, "y,session=true": 1, "z": 1])
}
