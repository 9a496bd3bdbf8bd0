/// The owned identity of one series: type, name and its sorted, de-duplicated tags.
///
/// Encoded as bytes so that a reader thread can look a series up by comparing
/// bytes it built in scratch space, and allocate a `MetricKey` only on insert:
/// `[type][u16 name length][name]` then, per tag in key order,
/// `[u16 key length][key][u16 value length][value]` (lengths little-endian).
/// A series named by a mapping rule (`mapping_config`) has bit 7 of the type byte set and
/// ends with `[u16 options]`, its rule's `MappingOptions` in the `MappingOptionsRegistry`:
/// so a mapped series is never the same series as an unmapped one of the same name and tags.
public struct MetricKey: Hashable, Sendable, CustomStringConvertible {
    /// The encoded key.
    public let bytes: [UInt8]
    /// The series' number in the table that made the key (`SeriesID.none` for keys made by hand).
    let series: SeriesID

    init(bytes: [UInt8], series: SeriesID) {
        self.bytes = bytes
        self.series = series
    }

    /// Builds a key from Swift values (for tests and tools; the hot path uses `SeriesKeyBuilder`).
    public init(type: MetricType, name: String, tags: [(String, String)] = []) {
        var builder = SeriesKeyBuilder(seed: 0)
        self = builder.makeKey(type: type, name: name, tags: tags)
    }

    /// Keys are equal when their bytes are; the number only says where a table tracks the series.
    public static func == (a: MetricKey, b: MetricKey) -> Bool { a.bytes == b.bytes }
    /// Hashes the bytes in one call (an array of bytes would be combined byte by byte).
    public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }

    /// The type byte's flag of a mapped series.
    static let mappedFlag: UInt8 = 0x80

    /// The series' type.
    public var type: MetricType { MetricType(rawValue: bytes[0] & ~Self.mappedFlag) ?? .counter }

    /// Whether a mapping rule named the series (its name is then used as written).
    public var isMapped: Bool { bytes[0] & Self.mappedFlag != 0 }

    /// The options of the rule that named the series (`MappingOptionsRegistry`), if one did.
    var mappingOptions: UInt16? {
        guard isMapped, bytes.count >= 5 else { return nil }
        return UInt16(bytes[bytes.count - 2]) | UInt16(bytes[bytes.count - 1]) << 8
    }

    /// Calls `body` with the name's bytes.
    public func withName<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeBytes { raw in
            let n = Int(raw[1]) | Int(raw[2]) << 8
            return body(UnsafeRawBufferPointer(rebasing: raw[3..<(3 + n)]))
        }
    }

    /// The value length that marks a bare tag (`|#canary`): no bytes follow it.
    static let bareValueLength = Int(UInt16.max)
    /// What a bare tag's value reads as in sinks with key=value tags (Telegraf's convention).
    static let bareValue: StaticString = "true"

    /// Calls `body` with each tag's key and value bytes, in key order; a bare tag's value is
    /// `true` (SPEC section 15).
    public func forEachTag(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        forEachTagMarkingBare { k, v, _ in body(k, v) }
    }

    /// `forEachTag`, also saying whether the tag was sent bare (its value then reads `true`): for
    /// the Datadog push, which sends it bare as it came.
    public func forEachTagMarkingBare(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, Bool) -> Void) {
        let trueValue = UnsafeRawBufferPointer(start: Self.bareValue.utf8Start, count: Self.bareValue.utf8CodeUnitCount)
        bytes.withUnsafeBytes { raw in
            var i = 3 + (Int(raw[1]) | Int(raw[2]) << 8)
            let end = raw[0] & Self.mappedFlag != 0 ? raw.count - 2 : raw.count
            while i < end {
                let kl = Int(raw[i]) | Int(raw[i + 1]) << 8
                let k = UnsafeRawBufferPointer(rebasing: raw[(i + 2)..<(i + 2 + kl)])
                i += 2 + kl
                let vl = Int(raw[i]) | Int(raw[i + 1]) << 8
                if vl == Self.bareValueLength {
                    i += 2
                    body(k, trueValue, true)
                    continue
                }
                let v = UnsafeRawBufferPointer(rebasing: raw[(i + 2)..<(i + 2 + vl)])
                i += 2 + vl
                body(k, v, false)
            }
        }
    }

    /// Whether the key has a tag of this name.
    public func hasTag(named name: [UInt8]) -> Bool {
        var found = false
        forEachTag { k, _ in if !found, k.elementsEqual(name) { found = true } }
        return found
    }

    /// The name as a String.
    public var name: String { withName { String(decoding: $0, as: UTF8.self) } }

    /// The tags as Strings, in key order.
    public var tags: [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        forEachTag { k, v in result.append((String(decoding: k, as: UTF8.self), String(decoding: v, as: UTF8.self))) }
        return result
    }

    public var description: String {
        let t = tags.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return "\(type) \(name){\(t)}"
    }
}

/// A tracked series' number, given by the table when the series is created and kept until it
/// expires: sinks that keep state per series index it by `index` (dense: numbers of expired
/// series are given out again) instead of hashing the key. `incarnation` tells a reused
/// number from its earlier holder, for a sink that missed the earlier holder's expiry.
struct SeriesID: Hashable, Sendable {
    /// Dense: below the highest number of series tracked at once.
    let index: UInt32
    /// Different for each series that held `index` (counts every numbering, wrapping).
    let incarnation: UInt32

    /// The number of keys made outside a table (tests, tools).
    static let none = SeriesID(index: .max, incarnation: 0)
}
