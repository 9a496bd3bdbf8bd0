/// The tag policy in force (`tags.*`, SPEC section 14), ready to apply to a parsed line.
///
/// A reader applies it to a line whose identity it does not know, before the line's series key
/// is built (and before mapping rules see the tags): so a removed tag or a hashed value never
/// reaches a series, a sink, a mapping label or a log. The key it makes is what the reader's
/// `LineIdentityCache` remembers, so a line seen before costs nothing more: the policy runs
/// once per new line identity per reader. In order: `drop`, then `allow`, then `hash`, then
/// `limits` (on the pseudonym when a key is hashed too, so the limits table holds no value
/// that `hash` protects).
final class TagPolicy: Sendable {
    /// What the policy did to a tag, as counted in `stator_tag_policy_total{policy}`.
    enum Effect: Int, CaseIterable, CustomStringConvertible {
        case drop, allow, hash
        var description: String { ["drop", "allow", "hash"][rawValue] }
    }

    private let drop: [[UInt8]]
    private let allow: [[UInt8]]
    private let hash: [[UInt8]]
    private let hasher: SipHash24?
    /// `tags.limits`, when configured.
    let limits: TagValueLimits?
    /// Tags removed or hashed, by `Effect` (readers add their counts at `flushCounts`).
    let applied: [AtomicCounter] = Effect.allCases.map { _ in AtomicCounter() }

    /// Whether the policy removes or hashes tags: then no line as received may be logged.
    var hidesValues: Bool { !drop.isEmpty || !allow.isEmpty || hasher != nil }
    /// What a log shows in place of a line when `hidesValues`.
    static let withheld = "<withheld: tags.drop, tags.allow or tags.hash is set>"

    /// - Returns: `nil` when no policy is configured.
    /// - Throws: `ConfigError` when `hash` is set and the key was not resolved (`resolve(environment:)`).
    init?(_ configuration: TagPolicyConfiguration) throws(ConfigError) {
        guard configuration.isActive else { return nil }
        drop = configuration.drop.map { Array($0.utf8) }
        allow = configuration.allow.map { Array($0.utf8) }
        hash = configuration.hash.map { Array($0.utf8) }
        if hash.isEmpty {
            hasher = nil
        } else {
            guard let key = configuration.resolvedHashKey else {
                throw ConfigError("tags.hash needs tags.hash_key: 32 hex digits (16 bytes), e.g. \"${TAG_HASH_KEY}\"")
            }
            hasher = SipHash24(key: key)
        }
        limits = configuration.limits.isEmpty ? nil : TagValueLimits(configuration.limits)
    }

    private static func anyMatches(_ globs: [[UInt8]], _ key: UnsafeRawBufferPointer) -> Bool {
        for glob in globs where Glob.matches(glob, key) { return true }
        return false
    }

    /// Applies the policy to `line`: its name and the tags it keeps, values replaced where the
    /// policy says, are written to `out`, and `line.name` and `line.tags` are left pointing
    /// there (its groups and values still point into `src`). Adds what it did to `counts`
    /// (by `Effect`) and to the limits' own counts.
    func apply(
        _ line: inout ParsedLine, _ src: UnsafeRawBufferPointer, into out: inout TagPolicyScratch, counts: inout [UInt64]
    ) {
        out.removeAll()
        line.name = out.append(src, line.name)
        var kept = 0
        for t in line.tags.indices {
            let tag = line.tags[t]
            let key = UnsafeRawBufferPointer(rebasing: src[tag.key])
            if !drop.isEmpty, Self.anyMatches(drop, key) {
                counts[Effect.drop.rawValue] &+= 1
                continue
            }
            if !allow.isEmpty, !Self.anyMatches(allow, key) {
                counts[Effect.allow.rawValue] &+= 1
                continue
            }
            let newKey = out.append(src, tag.key)
            guard tag.value != TagRange.bare else {
                // A bare tag (`#canary`) has no value to hash or count: it stays bare (as an
                // event's does), which `TagRange.bare` marks outside any buffer.
                line.tags[kept] = TagRange(key: newKey, value: TagRange.bare)
                kept += 1
                continue
            }
            var value = UnsafeRawBufferPointer(rebasing: src[tag.value])
            var newValue: Range<Int>
            if let hasher, Self.anyMatches(hash, key) {
                newValue = out.appendPseudonym(of: value, hasher)
                counts[Effect.hash.rawValue] &+= 1
                value = out.bytes(newValue)
            } else {
                newValue = out.append(src, tag.value)
            }
            if let limits, let rule = limits.rule(for: key), !limits.admit(rule: rule, key: key, value: value) {
                out.truncate(to: newValue.lowerBound)
                newValue = out.append(TagValueLimits.other)
            }
            line.tags[kept] = TagRange(key: newKey, value: newValue)
            kept += 1
        }
        line.tags.truncate(to: kept)
    }

    /// Applies `drop`, `allow` and `hash` to an event's or service check's tags (`k:v`, or a
    /// bare `k`, which has no value to hash), counting what it did in `applied`. Events make
    /// no series, so `limits` does not apply to them.
    func apply(eventTags tags: [String]) -> [String] {
        var kept: [String] = []
        kept.reserveCapacity(tags.count)
        for tag in tags {
            let colon = tag.utf8.firstIndex(of: UInt8(ascii: ":"))
            let key = colon.map { String(tag[..<$0]) } ?? tag
            if !drop.isEmpty, Self.anyMatches(drop, key) {
                applied[Effect.drop.rawValue].add(1)
                continue
            }
            if !allow.isEmpty, !Self.anyMatches(allow, key) {
                applied[Effect.allow.rawValue].add(1)
                continue
            }
            if let hasher, let colon, Self.anyMatches(hash, key) {
                let value = String(tag[tag.utf8.index(after: colon)...])
                kept.append(key + ":" + hasher.pseudonym(value))
                applied[Effect.hash.rawValue].add(1)
                continue
            }
            kept.append(tag)
        }
        return kept
    }

    private static func anyMatches(_ globs: [[UInt8]], _ key: String) -> Bool {
        globs.contains { Glob.matches($0, key) }
    }
}

/// A reader's scratch for the lines `TagPolicy.apply` rewrites: the name and kept tags, one
/// after another. Nothing is allocated once the buffer has grown.
struct TagPolicyScratch: ~Copyable {
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity = 256
    private(set) var count = 0

    init() { buffer = .allocate(capacity: capacity) }

    deinit { buffer.deallocate() }

    /// The bytes written since `removeAll` (valid until the next append).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer, count: count) }

    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer + range.lowerBound, count: range.count)
    }

    mutating func removeAll() { count = 0 }

    mutating func truncate(to n: Int) { count = n }

    /// Appends `src[range]`. - Returns: where it is now.
    mutating func append(_ src: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        append(UnsafeRawBufferPointer(rebasing: src[range]))
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        reserve(bytes.count)
        if let base = bytes.baseAddress, !bytes.isEmpty {
            (buffer + count).update(from: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        }
        count += bytes.count
        return (count - bytes.count)..<count
    }

    mutating func append(_ bytes: [UInt8]) -> Range<Int> { bytes.withUnsafeBytes { append($0) } }

    /// Appends the 16 hex digits of `value`'s pseudonym.
    mutating func appendPseudonym(of value: UnsafeRawBufferPointer, _ hasher: SipHash24) -> Range<Int> {
        reserve(16)
        hasher.pseudonym(value, into: buffer + count)
        count += 16
        return (count - 16)..<count
    }

    private mutating func reserve(_ n: Int) {
        guard count + n > capacity else { return }
        var size = capacity * 2
        while size < count + n { size *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        bigger.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = bigger
        capacity = size
    }
}
