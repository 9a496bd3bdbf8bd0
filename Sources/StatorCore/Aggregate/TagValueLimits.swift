import Foundation

/// `tags.limits` (SPEC section 14): per key matching a rule's glob, at most `max_values`
/// distinct values within `series_ttl`; a further value becomes `__other__`.
///
/// A value is remembered while a live series carries it (`retain` when a shard creates the
/// series, `release` when `series_ttl` expires it), and for `series_ttl` after a reader last
/// admitted it (so that a value whose series was never made, refused by `max_series` or
/// overridden by a mapping label, does not hold its place for good). Bounded: at most
/// `max_values` values for each of at most `maxKeysPerRule` keys per rule; a value of a key
/// past that becomes `__other__` too. Admission runs once per new line identity (a reader
/// remembers the key it made), creation and expiry once per series: none runs per line.
///
/// One lock for the whole table: it is taken alone (never while taking another), from readers
/// with their share locked and from shards with their lock held.
final class TagValueLimits: Sendable {
    struct Rule: Sendable {
        var glob: [UInt8]
        var maxValues: Int
        /// The glob as configured, escaped as a label value: the `key` label of
        /// `stator_tag_values_limited_total`.
        var label: String
    }

    private struct Value {
        /// Live series carrying the value.
        var series: Int
        /// When a reader last admitted it (the flush clock at the last sweep; `.min`: before the first).
        var admitted: Int64
    }

    private struct State {
        /// Per rule: key -> value -> its entry.
        var keys: [[[UInt8]: [[UInt8]: Value]]]
        /// Per rule: values replaced by `__other__`.
        var limited: [UInt64]
        var tracked = 0
        /// The flush clock at the last `sweep`.
        var now = Int64.min
    }

    static let other = Array("__other__".utf8)
    static let maxKeysPerRule = 1024

    let rules: [Rule]
    private let state: PthreadLock<State>

    init(_ limits: [TagPolicyConfiguration.Limit]) {
        rules = limits.map { limit in
            let label = limit.key.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return Rule(glob: Array(limit.key.utf8), maxValues: limit.maxValues, label: label)
        }
        state = PthreadLock(State(keys: rules.map { _ in [:] }, limited: rules.map { _ in 0 }))
    }

    /// The first rule whose glob matches `key`.
    func rule(for key: UnsafeRawBufferPointer) -> Int? {
        for (n, rule) in rules.enumerated() where Glob.matches(rule.glob, key) { return n }
        return nil
    }

    /// Whether `value` of `key` keeps its place under `rule`: it is remembered already, or
    /// there is room for it (and it is remembered from now). `__other__` itself always passes.
    /// A refusal is counted.
    func admit(rule n: Int, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        if value.elementsEqual(Self.other) { return true }
        let keyBytes = Array(key)
        let valueBytes = Array(value)
        let most = rules[n].maxValues
        return state.withLock { s in
            if s.keys[n][keyBytes] == nil, s.keys[n].count >= Self.maxKeysPerRule {
                s.limited[n] &+= 1
                return false
            }
            let admitted = Self.admit(valueBytes, into: &s.keys[n][keyBytes, default: [:]], most: most, now: s.now)
            switch admitted {
            case .known: return true
            case .added:
                s.tracked += 1
                return true
            case .refused:
                s.limited[n] &+= 1
                return false
            }
        }
    }

    private enum Admission { case known, added, refused }

    private static func admit(_ value: [UInt8], into values: inout [[UInt8]: Value], most: Int, now: Int64) -> Admission {
        if values[value] != nil {
            values[value]?.admitted = now
            return .known
        }
        guard values.count < most else { return .refused }
        values[value] = Value(series: 0, admitted: now)
        return .added
    }

    /// A shard made the series of `key`: the values it carries are held while it lives.
    func retain(_ key: MetricKey) { adjust(key, by: 1) }

    /// `series_ttl` expired these series.
    func release(_ keys: [MetricKey]) {
        for key in keys { adjust(key, by: -1) }
    }

    private func adjust(_ key: MetricKey, by delta: Int) {
        key.forEachTag { k, v in
            guard let n = rule(for: k), !v.elementsEqual(Self.other) else { return }
            let keyBytes = Array(k)
            let valueBytes = Array(v)
            state.withLock { s in
                // (A value a mapping label put there, or one forgotten meanwhile, is not remembered: nothing to count.)
                guard let entry = s.keys[n][keyBytes]?[valueBytes] else { return }
                s.keys[n][keyBytes]?[valueBytes]?.series = max(0, entry.series + delta)
            }
        }
    }

    /// Forgets the values no live series carries and no reader admitted within `ttl` (0: no
    /// value is forgotten, as no series expires); `now` is the flush clock.
    func sweep(now: Int64, ttl: Int64) {
        state.withLock { s in
            s.now = now
            for n in s.keys.indices {
                for (key, values) in s.keys[n] {
                    var stale: [[UInt8]] = []
                    var unstamped = false
                    for (value, entry) in values {
                        if entry.admitted == .min {
                            unstamped = true
                        } else if ttl > 0, entry.series == 0, now - entry.admitted >= ttl {
                            stale.append(value)
                        }
                    }
                    guard unstamped || !stale.isEmpty else { continue }
                    var kept = values
                    for value in stale { kept[value] = nil }
                    if unstamped { for (value, entry) in kept where entry.admitted == .min { kept[value]?.admitted = now } }
                    s.tracked -= stale.count
                    s.keys[n][key] = kept.isEmpty ? nil : kept
                }
            }
        }
    }

    /// Per rule, its glob and the values it replaced by `__other__`.
    var limitedCounts: [(key: String, count: UInt64)] {
        let counts = state.withLock { $0.limited }
        return rules.indices.map { (rules[$0].label, counts[$0]) }
    }

    /// Values remembered over all rules and keys.
    var trackedValues: Int { state.withLock { $0.tracked } }
}
