import Glibc

/// Parses statsd / DogStatsD lines (SPEC section 1) from raw datagram bytes.
///
/// The parser never allocates once its `ParsedLine` is warm and never throws:
/// a bad line comes back as `.failure(reason)`, which the receiver counts.
public enum StatsdParser {
    private static let colon = UInt8(ascii: ":")
    private static let pipe = UInt8(ascii: "|")
    private static let comma = UInt8(ascii: ",")
    private static let equals = UInt8(ascii: "=")

    /// Parses one line `name[tags]:value[:value...]|type[|@rate][|#tags][|c:id][|Tts]`.
    /// - Parameters:
    ///   - bytes: the whole datagram.
    ///   - line: the line's range in `bytes`, without `\n` (and without a trailing `\r`).
    ///   - out: reused scratch; on `.metric` it describes the line with ranges into `bytes`.
    /// - Returns: `.metric`, `.event`, or `.failure` with the reason.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, _ line: Range<Int>, into out: inout ParsedLine
    ) -> ParseOutcome {
        out.reset()
        let start = line.lowerBound
        let end = line.upperBound
        if isEvent(bytes, line) { return .event }

        // One pass over the name: find the `:`, the first name-tag marker (`[` `#` `,`),
        // and whether UTF-8 needs checking. The pass stops early once the line is refused
        // whatever follows: at a byte a name may not hold (`|` NUL), or past `max_name_bytes`
        // with no marker yet (the name is too long); the rest of the line is then only
        // searched for the reason, at memory speed (`refusedName`), so that a line of junk
        // costs little more than finding its end (SPEC section 12).
        var colonIndex = start
        var marker = -1
        var badName = false
        var nonASCII = false
        // Up to `max_name_bytes` and one more until a marker is seen (then name tags follow,
        // up to the `:`).
        var limit = min(end, start &+ out.limits.maxNameBytes &+ 1)
        while colonIndex < limit {
            let b = bytes[colonIndex]
            if Self.isSpecialNameByte(b) {
                if b == colon { break }
                if b >= 0x80 {
                    nonASCII = true
                } else if b == pipe || b == 0 {
                    badName = true
                    break
                } else if marker < 0 {
                    marker = colonIndex
                    limit = end
                }
            }
            colonIndex &+= 1
        }
        noteVisited(&out, colonIndex &- start)
        // Stopped early (a bad byte, a name past the limit) or at the end: refused.
        guard colonIndex < end, !badName, bytes[colonIndex] == colon else {
            return .failure(refusedName(bytes, colonIndex, end, badByte: badName))
        }

        // Name and InfluxDB / Librato / SignalFx name tags.
        let hasNameTags = marker >= 0
        let nameEnd = hasNameTags ? marker : colonIndex
        guard nameEnd > start else { return .failure(.emptyName) }
        guard nameEnd &- start <= out.limits.maxNameBytes else { return .failure(.nameTooLong) }
        if nonASCII, !UTF8Validation.isValid(bytes, start..<colonIndex) { return .failure(.invalidUTF8) }
        out.name = start..<nameEnd
        // The longest tag kept, `key:value` as sent (for `max_tag_bytes`, checked at the end).
        var longestTag = 0
        if hasNameTags {
            guard let longest = parseNameTags(bytes, marker, colonIndex, &out) else { return .failure(.invalidTags) }
            longestTag = longest
        }

        // Sample groups: `v[:v...]|type[|@rate]`, further groups after `:` (etsy multi form).
        var i = colonIndex &+ 1
        var groupRateSeen = false
        while true {
            out.pendingValues.removeAll()
            var valueStart = i
            while true {
                var j = valueStart
                while j < end, bytes[j] != colon, bytes[j] != pipe { j &+= 1 }
                // An empty item of packed values (`1::2`, a trailing `:`) is skipped, as the
                // Datadog agent and gostatsd skip it; a group of none is `invalid_value`
                // (`convertValues`).
                if j > valueStart { out.pendingValues.append(valueStart..<j) }
                guard j < end else { return .failure(.missingType) }
                if bytes[j] == pipe {
                    i = j &+ 1
                    break
                }
                valueStart = j &+ 1
            }
            let typeStart = i
            while i < end, bytes[i] != pipe, bytes[i] != colon { i &+= 1 }
            guard let type = parseType(bytes, typeStart..<i) else {
                return .failure(i == typeStart ? .missingType : .unknownType)
            }
            var group = SampleGroup(
                type: type, rate: 1, valueStart: out.values.count, valueEnd: out.values.count, member: 0..<0)
            if i &+ 1 < end, bytes[i] == pipe, bytes[i &+ 1] == UInt8(ascii: "@") {
                let rateStart = i &+ 2
                i = rateStart
                while i < end, bytes[i] != pipe, bytes[i] != colon { i &+= 1 }
                guard let rate = parseRate(bytes, rateStart..<i) else { return .failure(.invalidSampleRate) }
                group.rate = rate
                groupRateSeen = true
            }
            if let failure = convertValues(bytes, &group, &out) { return .failure(failure) }
            out.groups.append(group)
            if i < end, bytes[i] == colon {
                i &+= 1
                continue
            }
            break
        }

        // Trailing fields, each `|...`; they apply to every group.
        var seenRate = groupRateSeen
        var seenTags = false
        var seenContainer = false
        var seenTimestamp = false
        while i < end {
            // bytes[i] is `|` here.
            let fieldStart = i &+ 1
            i = fieldStart
            var tagsHadNonASCII = false
            if i < end, bytes[i] == UInt8(ascii: "#") {
                // DogStatsD tags: find the field's end, split `k:v` pairs and note non-ASCII in one pass.
                i &+= 1
                var pairStart = i
                var sep = -1
                var high: UInt8 = 0
                while i < end {
                    let b = bytes[i]
                    if b == pipe { break }
                    high |= b
                    if b == comma {
                        appendDogTag(bytes, pairStart, sep, i, &out, &longestTag)
                        pairStart = i &+ 1
                        sep = -1
                    } else if b == colon, sep < 0 {
                        sep = i
                    }
                    i &+= 1
                }
                appendDogTag(bytes, pairStart, sep, i, &out, &longestTag)
                tagsHadNonASCII = high >= 0x80
            } else {
                while i < end, bytes[i] != pipe { i &+= 1 }
            }
            let field = fieldStart..<i
            guard !field.isEmpty else { return .failure(.invalidField) }
            switch bytes[fieldStart] {
            case UInt8(ascii: "@"):
                guard !seenRate else { return .failure(.invalidField) }
                seenRate = true
                guard let rate = parseRate(bytes, (fieldStart &+ 1)..<i) else { return .failure(.invalidSampleRate) }
                for k in out.groups.indices { out.groups[k].rate = rate }
            case UInt8(ascii: "#"):
                guard !seenTags else { return .failure(.invalidField) }
                seenTags = true
                guard !hasNameTags else { return .failure(.mixedTags) }
                let tags = (fieldStart &+ 1)..<i
                guard !tagsHadNonASCII || UTF8Validation.isValid(bytes, tags) else { return .failure(.invalidUTF8) }
            // The pairs went into `out.tags` during the scan (a rejected line's tags are never read).
            case UInt8(ascii: "T"):
                guard !seenTimestamp else { return .failure(.invalidField) }
                seenTimestamp = true
                guard NumberParsing.isUnsignedInteger(bytes, (fieldStart &+ 1)..<i) else {
                    return .failure(.invalidField)
                }
                // At most 19 digits (`isUnsignedInteger`): past `Int64.max` it saturates, and
                // the reader's age bound refuses it (`invalid_timestamp`).
                var seconds: Int64 = 0
                for k in (fieldStart &+ 1)..<i {
                    let (times10, o1) = seconds.multipliedReportingOverflow(by: 10)
                    let (next, o2) = times10.addingReportingOverflow(Int64(bytes[k] &- 48))
                    seconds = o1 || o2 ? .max : next
                }
                out.timestamp = seconds
            default:
                // `c:<container>` or a newer extension `<letters>:<text>`: accepted and ignored.
                var k = fieldStart
                while k < i, isLetter(bytes[k]) { k &+= 1 }
                guard k > fieldStart, k < i, bytes[k] == colon else { return .failure(.invalidField) }
                if k == fieldStart &+ 1, bytes[fieldStart] == UInt8(ascii: "c") {
                    guard !seenContainer else { return .failure(.invalidField) }
                    seenContainer = true
                    out.containerID = (k &+ 1)..<i
                }
            }
        }
        // `|T` is for counters and gauges only, as in the Datadog agent (SPEC section 15).
        if seenTimestamp {
            for g in out.groups.indices where out.groups[g].type != .counter && out.groups[g].type != .gauge {
                return .failure(.invalidField)
            }
        }
        // The origin tag, when asked for: the entity id, else the container id, as `container_id`
        // (bounded as if sent as `container_id:<id>`).
        if out.limits.originTags {
            let id = out.entityID.isEmpty ? out.containerID : out.entityID
            if !id.isEmpty {
                out.tags.append(TagRange(key: TagRange.containerIDKey, value: id))
                longestTag = max(longestTag, TagRange.containerID.utf8CodeUnitCount &+ 1 &+ id.count)
            }
        }
        // `max_tags` and `max_tag_bytes`: each tag `key:value`, `key=value` or bare as sent, its
        // length noted as the tags were scanned.
        guard out.tags.count <= out.limits.maxTags, longestTag <= out.limits.maxTagBytes else {
            return .failure(.tagsTooLong)
        }
        // (Written out here, not in a function of `out`: passing the noncopyable line to a
        // function copied its bytes on every call.)
        // A counter adds value / rate: each must be finite (`x:1e308|c|@0.5` is not). A timer's
        // weight 1 / rate is finite for every rate `parseRate` accepts.
        if seenRate {
            for g in out.groups.indices {
                let group = out.groups[g]
                guard group.type == .counter, group.rate != 1 else { continue }
                for v in group.valueStart..<group.valueEnd where !isScalable(out.values[v].value, rate: group.rate) {
                    return .failure(.invalidSampleRate)
                }
            }
        }
        return .metric
    }

    /// Keeps one DogStatsD tag `bytes[start..<end]`, whose first `:` is at `sep` (-1: none), as
    /// SPEC section 15 says: a bare tag (`canary`) is part of the identity, with the value
    /// `TagRange.bare`; an origin field (`dd.internal.entity_id:`, `dd.internal.card:`) is not a
    /// tag (the entity id is noted for `LineLimits.originTags`); an empty tag or key is skipped.
    @inline(__always)
    private static func appendDogTag(
        _ bytes: UnsafeRawBufferPointer, _ start: Int, _ sep: Int, _ end: Int, _ out: inout ParsedLine,
        _ longest: inout Int
    ) {
        if sep < 0 {
            guard end > start else { return }
            out.tags.append(TagRange(key: start..<end, value: TagRange.bare))
        } else {
            guard sep > start else { return }
            switch originField(bytes, start..<sep) {
            case 1:
                out.entityID = (sep &+ 1)..<end
                return
            case 2:
                return
            default:
                out.tags.append(TagRange(key: start..<sep, value: (sep &+ 1)..<end))
            }
        }
        longest = max(longest, end &- start)
    }

    private static let entityIDKey: StaticString = "dd.internal.entity_id"
    private static let cardKey: StaticString = "dd.internal.card"

    /// Whether a tag key is an origin field: 1 the entity id, 2 the cardinality, else 0.
    /// (Lengths first: most keys are neither 21 nor 16 bytes long.)
    @inline(__always)
    private static func originField(_ bytes: UnsafeRawBufferPointer, _ key: Range<Int>) -> Int {
        let n = key.count
        guard n == entityIDKey.utf8CodeUnitCount || n == cardKey.utf8CodeUnitCount,
            let base = bytes.baseAddress
        else { return 0 }
        let field = n == entityIDKey.utf8CodeUnitCount ? entityIDKey : cardKey
        guard memcmp(base + key.lowerBound, field.utf8Start, n) == 0 else { return 0 }
        return n == entityIDKey.utf8CodeUnitCount ? 1 : 2
    }

    /// Debug builds: notes how far the name scan went (`ParsedLine.nameBytesVisited`).
    @inline(__always)
    private static func noteVisited(_ out: inout ParsedLine, _ visited: Int) {
        #if DEBUG
            out.nameBytesVisited = visited
        #endif
    }

    /// Why a line is refused whose name scan stopped at `at` (see `parse`): at a `|` or NUL
    /// (`badByte`), past `max_name_bytes` without a name-tag marker, or at the line's end. The reasons are those
    /// of a full scan, in its order: no `:` in the line is `missing_colon`; else a `|` or NUL
    /// before the `:` is `invalid_name`; else the name is too long. Each search is a `memchr`
    /// over the rest of the line.
    @inline(never)
    static func refusedName(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ end: Int, badByte: Bool) -> ParseFailure {
        guard let colonIndex = ByteScan.find(colon, in: bytes, at..<end) else { return .missingColon }
        if badByte { return .invalidName }
        let name = at..<colonIndex
        let bad = ByteScan.find(pipe, in: bytes, name) != nil || ByteScan.find(0, in: bytes, name) != nil
        return bad ? .invalidName : .nameTooLong
    }

    /// Whether a counter's `value / rate` is finite (`rate` from `parseRate`).
    @inline(__always)
    public static func isScalable(_ value: Double, rate: Double) -> Bool { (value / rate).isFinite }

    /// `_e{` starts an event, `_sc|` a service check.
    @inline(__always)
    private static func isEvent(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Bool {
        let s = line.lowerBound
        guard line.count >= 3, bytes[s] == UInt8(ascii: "_") else { return false }
        if bytes[s &+ 1] == UInt8(ascii: "e"), bytes[s &+ 2] == UInt8(ascii: "{") { return true }
        return line.count >= 4 && bytes[s &+ 1] == UInt8(ascii: "s") && bytes[s &+ 2] == UInt8(ascii: "c")
            && bytes[s &+ 3] == pipe
    }

    @inline(__always)
    private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) &- UInt8(ascii: "a") < 26 }

    /// Bytes that need a look while scanning a name: `:` `|` NUL `[` `#` `,` and non-ASCII.
    private static let specialLow: UInt64 = 1 << 0 | 1 << 0x23 | 1 << 0x2C | 1 << 0x3A  // NUL # , :
    private static let specialHigh: UInt64 = 1 << (0x5B - 64) | 1 << (0x7C - 64)  // [ |

    @inline(__always)
    private static func isSpecialNameByte(_ b: UInt8) -> Bool {
        if b < 64 { return specialLow >> UInt64(b) & 1 != 0 }
        if b < 128 { return specialHigh >> UInt64(b &- 64) & 1 != 0 }
        return true
    }

    /// Parses the name tags that start at `marker` (`[`, `#` or `,`) and end at the `:`.
    /// - Returns: the longest tag kept, in bytes as sent; `nil` when the tags are malformed
    ///   (`invalid_tags`).
    private static func parseNameTags(
        _ bytes: UnsafeRawBufferPointer, _ marker: Int, _ colonIndex: Int, _ out: inout ParsedLine
    ) -> Int? {
        var tags = (marker &+ 1)..<colonIndex
        if bytes[marker] == UInt8(ascii: "[") {
            // SignalFx: name[k=v,k2=v2], the `]` last.
            guard colonIndex > marker &+ 1, bytes[colonIndex &- 1] == UInt8(ascii: "]") else { return nil }
            tags = (marker &+ 1)..<(colonIndex &- 1)
            for k in tags where bytes[k] == UInt8(ascii: "[") || bytes[k] == UInt8(ascii: "]") { return nil }
        }
        return appendTags(bytes, tags, separator: equals, &out)
    }

    /// Appends `k<sep>v` pairs separated by `,`; pairs without the separator
    /// (bare tags) or with an empty key are ignored.
    /// - Returns: the longest pair appended, in bytes.
    private static func appendTags(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, separator: UInt8, _ out: inout ParsedLine
    ) -> Int {
        var longest = 0
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let pairStart = i
            var sep = -1
            while i < end, bytes[i] != comma {
                if sep < 0, bytes[i] == separator { sep = i }
                i &+= 1
            }
            if sep > pairStart {
                out.tags.append(TagRange(key: pairStart..<sep, value: (sep &+ 1)..<i))
                longest = max(longest, i &- pairStart)
            }
            i &+= 1
        }
        return longest
    }

    @inline(__always)
    private static func parseType(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> MetricType? {
        switch r.count {
        case 1:
            switch bytes[r.lowerBound] {
            case UInt8(ascii: "c"): return .counter
            case UInt8(ascii: "g"): return .gauge
            case UInt8(ascii: "s"): return .set
            case UInt8(ascii: "h"): return .histogram
            case UInt8(ascii: "d"): return .distribution
            default: return nil
            }
        case 2:
            return bytes[r.lowerBound] == UInt8(ascii: "m") && bytes[r.lowerBound &+ 1] == UInt8(ascii: "s")
                ? .timer : nil
        default:
            return nil
        }
    }

    /// A rate in (0, 1] whose reciprocal, a sample's weight, is finite: a subnormal rate such
    /// as `1e-310` would count a sample infinitely often (and make a timer's sum `NaN`).
    @inline(__always)
    private static func parseRate(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Double? {
        guard let rate = NumberParsing.parseDouble(bytes, r), rate > 0, rate <= 1, (1 / rate).isFinite else {
            return nil
        }
        return rate
    }

    /// Converts the group's pending value ranges by its type into `out.values` (or the set member).
    private static func convertValues(
        _ bytes: UnsafeRawBufferPointer, _ group: inout SampleGroup, _ out: inout ParsedLine
    ) -> ParseFailure? {
        guard !out.pendingValues.isEmpty else { return .invalidValue }
        if group.type == .set {
            guard out.pendingValues.count == 1 else { return .multipleSetValues }
            let member = out.pendingValues[0]
            guard isMember(member) else { return .invalidValue }
            group.member = member
            return nil
        }
        for p in out.pendingValues.indices {
            switch value(bytes, out.pendingValues[p], type: group.type) {
            case .value(let value): out.values.append(value)
            case .failure(let reason): return reason
            }
        }
        group.valueEnd = out.values.count
        return nil
    }

    /// Whether `r` can be a set's member: any bytes, but at least one.
    @inline(__always)
    public static func isMember(_ r: Range<Int>) -> Bool { !r.isEmpty }

    /// What one value of a group that is not a set converts to.
    public enum ValueOutcome {
        case value(ParsedValue)
        case failure(ParseFailure)
    }

    /// Converts one value of a `type` group (not a set): a finite number, not negative
    /// for a counter, a delta for a gauge when written with a sign.
    @inline(__always)
    public static func value(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>, type: MetricType) -> ValueOutcome {
        guard let value = NumberParsing.parseDouble(bytes, r) else { return .failure(.invalidValue) }
        var isDelta = false
        switch type {
        case .counter:
            if value < 0 { return .failure(.negativeCounter) }
        case .gauge:
            isDelta = bytes[r.lowerBound] == UInt8(ascii: "+") || bytes[r.lowerBound] == UInt8(ascii: "-")
        default:
            break
        }
        return .value(ParsedValue(value: value, isDelta: isDelta))
    }

    /// The shape of a line with one value, `name:value|rest`: where its first `:` is, and
    /// the `|` that ends the value. `nil` when there is no `:`, no `|` after it, or another
    /// `:` before that `|` (several values or groups, or no type). For a line that `parse`
    /// accepts with one group of one value, the name (as sent, name tags included) is
    /// `line.lowerBound..<colon` and everything but the value is in it or in `pipe..<end`:
    /// another line with the same bytes there differs only in its value (`ReaderAggregator`
    /// relies on this to skip parsing lines it has seen before).
    @inline(__always)
    public static func simpleShape(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> (colon: Int, pipe: Int)? {
        guard let colonIndex = ByteScan.firstIndex(of: colon, in: bytes, line) else { return nil }
        var j = colonIndex &+ 1
        let end = line.upperBound
        while j < end {
            let b = bytes[j]
            if b == pipe { return (colonIndex, j) }
            if b == colon { return nil }
            j &+= 1
        }
        return nil
    }
}
