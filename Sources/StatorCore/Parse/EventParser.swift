/// A DogStatsD event (`_e{...}`) or service check (`_sc|...`), as the Datadog agent reads it
/// (SPEC section 15). Events are rare next to metric lines: parsing one allocates its strings.
public struct DogEvent: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case event
        case serviceCheck

        /// The `kind` label of `stator_events_total` and the JSON `type`.
        public var description: String { self == .event ? "event" : "service_check" }
    }

    public var kind: Kind
    /// An event's title, a service check's name.
    public var title: String
    /// An event's text, a service check's message (`m:`), with `\n` read as a newline.
    public var text: String
    /// A service check's status, 0 (OK) to 3 (unknown); -1 for an event.
    public var status: Int = -1
    /// `d:` unix seconds, when sent.
    public var timestamp: Int64?
    /// `h:`
    public var hostname: String?
    /// Events: `k:` aggregation key, `p:` priority (`normal` unless `low`), `s:` source type,
    /// `t:` alert type (`info` unless `error`, `warning` or `success`).
    public var aggregationKey: String?
    public var priority: String?
    public var sourceType: String?
    public var alertType: String?
    /// The `|#` tags as sent (`k:v` or bare), origin fields (`dd.internal.*`) left out.
    public var tags: [String] = []

    public init(kind: Kind, title: String, text: String) {
        self.kind = kind
        self.title = title
        self.text = text
        if kind == .event {
            priority = "normal"
            alertType = "info"
        }
    }
}

/// Parses events and service checks. A malformed one is `invalid_event` or
/// `invalid_service_check`; a title or name over `max_name_bytes` is `name_too_long`, tags
/// past `max_tags` or `max_tag_bytes` are `tags_too_long`, text over 4 KB is refused as
/// malformed, and invalid UTF-8 anywhere is `invalid_utf8`.
public enum EventParser {
    /// The longest event text or service check message, in bytes.
    public static let maxTextBytes = 4096

    public enum Outcome: Sendable, Equatable {
        case parsed(DogEvent)
        case failure(ParseFailure)
    }

    /// Parses the line `bytes[line]`, which starts `_e{` or `_sc|`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>, limits: LineLimits) -> Outcome {
        guard UTF8Validation.isValid(bytes, line) else { return .failure(.invalidUTF8) }
        let text = Array(UnsafeRawBufferPointer(rebasing: bytes[line]))
        if text.starts(with: Array("_e{".utf8)) { return event(text, limits) }
        return serviceCheck(text, limits)
    }

    private static let pipe = UInt8(ascii: "|")

    /// `_e{<title bytes>,<text bytes>}:<title>|<text>[|d:|h:|k:|p:|s:|t:|#tags|c:...]`: the
    /// lengths must match the bytes (the title is followed by `|`, the text by `|` or the end).
    private static func event(_ s: [UInt8], _ limits: LineLimits) -> Outcome {
        let bad = Outcome.failure(.invalidEvent)
        guard let close = s.firstIndex(of: UInt8(ascii: "}")), close + 1 < s.count, s[close + 1] == UInt8(ascii: ":"),
            let comma = s[3..<close].firstIndex(of: UInt8(ascii: ",")),
            let titleLength = integer(s[3..<comma]), let textLength = integer(s[(comma + 1)..<close])
        else { return bad }
        let titleStart = close + 2
        let titleEnd = titleStart + titleLength
        guard titleLength > 0, titleEnd < s.count, s[titleEnd] == pipe else { return bad }
        let textStart = titleEnd + 1
        let textEnd = textStart + textLength
        guard textEnd <= s.count, textEnd == s.count || s[textEnd] == pipe else { return bad }
        guard titleLength <= limits.maxNameBytes else { return .failure(.nameTooLong) }
        guard textLength <= maxTextBytes else { return bad }
        var event = DogEvent(
            kind: .event, title: unescaped(s[titleStart..<titleEnd]), text: unescaped(s[textStart..<textEnd]))
        var seen = Set<UInt8>()
        for field in fields(s, from: textEnd) {
            let value = String(decoding: field.dropFirst(2), as: UTF8.self)
            if field.first == UInt8(ascii: "#") {
                guard seen.insert(UInt8(ascii: "#")).inserted else { return bad }
                guard let tags = tags(field.dropFirst(), limits) else { return .failure(.tagsTooLong) }
                event.tags = tags
                continue
            }
            guard let kind = optionalField(field), kind == 0 || seen.insert(kind).inserted else { return bad }
            switch kind {
            case UInt8(ascii: "d"):
                guard let t = integer(field.dropFirst(2)) else { return bad }
                event.timestamp = Int64(t)
            case UInt8(ascii: "h"): event.hostname = value
            case UInt8(ascii: "k"): event.aggregationKey = value
            case UInt8(ascii: "p"):
                guard value == "normal" || value == "low" else { return bad }
                event.priority = value
            case UInt8(ascii: "s"): event.sourceType = value
            case UInt8(ascii: "t"):
                guard ["info", "warning", "error", "success"].contains(value) else { return bad }
                event.alertType = value
            default: break  // `c:`, `e:` (origin fields) and newer extensions
            }
        }
        return .parsed(event)
    }

    /// `_sc|<name>|<status 0-3>[|d:|h:|#tags|m:<message>|c:...]`.
    private static func serviceCheck(_ s: [UInt8], _ limits: LineLimits) -> Outcome {
        let bad = Outcome.failure(.invalidServiceCheck)
        let parts = s.split(separator: pipe, maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 3, !parts[1].isEmpty, parts[2].count == 1, let status = parts[2].first,
            (UInt8(ascii: "0")...UInt8(ascii: "3")).contains(status)
        else { return bad }
        guard parts[1].count <= limits.maxNameBytes else { return .failure(.nameTooLong) }
        var check = DogEvent(kind: .serviceCheck, title: String(decoding: parts[1], as: UTF8.self), text: "")
        check.status = Int(status - UInt8(ascii: "0"))
        var seen = Set<UInt8>()
        for field in parts.count == 4 ? parts[3].split(separator: pipe, omittingEmptySubsequences: false) : [] {
            if field.first == UInt8(ascii: "#") {
                guard seen.insert(UInt8(ascii: "#")).inserted else { return bad }
                guard let tags = tags(field.dropFirst(), limits) else { return .failure(.tagsTooLong) }
                check.tags = tags
                continue
            }
            guard let kind = optionalField(field), kind == 0 || seen.insert(kind).inserted else { return bad }
            switch kind {
            case UInt8(ascii: "d"):
                guard let t = integer(field.dropFirst(2)) else { return bad }
                check.timestamp = Int64(t)
            case UInt8(ascii: "h"): check.hostname = String(decoding: field.dropFirst(2), as: UTF8.self)
            case UInt8(ascii: "m"):
                guard field.count - 2 <= maxTextBytes else { return bad }
                check.text = unescaped(field.dropFirst(2))
            default: break  // `c:`, `e:` (origin fields) and newer extensions
            }
        }
        return .parsed(check)
    }

    /// The `|`-separated fields after `from` (which is the line's end or a `|`).
    private static func fields(_ s: [UInt8], from: Int) -> [ArraySlice<UInt8>] {
        guard from < s.count else { return [] }
        return s[(from + 1)...].split(separator: pipe, omittingEmptySubsequences: false)
    }

    /// The field's letter when it is a single-letter field `x:...` (the ones read), 0 for a newer
    /// extension `<letters>:<text>` (ignored, as on metric lines), `nil` for anything else.
    private static func optionalField(_ field: ArraySlice<UInt8>) -> UInt8? {
        var k = field.startIndex
        while k < field.endIndex, (field[k] | 0x20) >= UInt8(ascii: "a"), (field[k] | 0x20) <= UInt8(ascii: "z") { k += 1 }
        guard k > field.startIndex, k < field.endIndex, field[k] == UInt8(ascii: ":") else { return nil }
        return k == field.startIndex + 1 ? field[field.startIndex] : 0
    }

    /// A decimal integer without sign, at most 12 digits.
    private static func integer(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 12 else { return nil }
        var n = 0
        for d in digits {
            guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + Int(d - UInt8(ascii: "0"))
        }
        return n
    }

    /// The text with `\n` (backslash, n) read as a newline and `m\:` as `m:` (how DogStatsD
    /// clients escape them).
    private static func unescaped(_ raw: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        while i < raw.endIndex {
            if raw[i] == UInt8(ascii: "\\"), i + 1 < raw.endIndex {
                if raw[i + 1] == UInt8(ascii: "n") {
                    out.append(UInt8(ascii: "\n"))
                    i += 2
                    continue
                }
                if raw[i + 1] == UInt8(ascii: ":"), out.last == UInt8(ascii: "m") {
                    out.append(UInt8(ascii: ":"))
                    i += 2
                    continue
                }
            }
            out.append(raw[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The tags of a `#` field, origin fields left out; `nil` past `max_tags` or `max_tag_bytes`.
    private static func tags(_ raw: ArraySlice<UInt8>, _ limits: LineLimits) -> [String]? {
        var tags: [String] = []
        for tag in raw.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
            guard tag.count <= limits.maxTagBytes else { return nil }
            let text = String(decoding: tag, as: UTF8.self)
            if text.hasPrefix("dd.internal.entity_id:") || text.hasPrefix("dd.internal.card:") { continue }
            tags.append(text)
        }
        return tags.count <= limits.maxTags ? tags : nil
    }
}
