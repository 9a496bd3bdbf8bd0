/// Why a line was rejected. Each reason is counted in
/// `stator_lines_invalid_total{reason="<name>"}`.
public enum ParseFailure: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// No `:` between name and value.
    case missingColon
    /// Nothing before the `:`.
    case emptyName
    /// The name holds a `|` or NUL byte.
    case invalidName
    /// The name or a tag is not valid UTF-8.
    case invalidUTF8
    /// No `|<type>` after the value.
    case missingType
    /// A type other than `c`, `g`, `ms`, `h`, `d`, `s`.
    case unknownType
    /// A value that is not a finite decimal number (or an empty set member).
    case invalidValue
    /// A counter below zero.
    case negativeCounter
    /// `@rate` unparsable, outside 0 < rate <= 1, or making a sample's rate-scaled
    /// contribution not finite (`x:1|c|@1e-310`).
    case invalidSampleRate
    /// Several values (`name:a:b|s`) for a set.
    case multipleSetValues
    /// Malformed InfluxDB/Librato/SignalFx name tags.
    case invalidTags
    /// Name tags and `|#` tags on the same line.
    case mixedTags
    /// An unknown, empty or repeated `|` field, a `|T` timestamp that is not digits, or `|T`
    /// on a type other than a counter or gauge.
    case invalidField
    /// The line would create a series past `max_series` (counted by the aggregator).
    case seriesLimit
    /// The name (before its name tags) is longer than `max_name_bytes`.
    case nameTooLong
    /// More than `max_tags` tags, or one longer than `max_tag_bytes`.
    case tagsTooLong
    /// A TCP line longer than `tcp.max_line_bytes`, or a Unix datagram longer than the
    /// reader's buffer (counted by the input that read it).
    case lineTooLong
    /// A DogStatsD event (`_e{`) that does not parse as the Datadog agent parses it: lengths
    /// that do not match the bytes, an empty title, a bad optional field, text over 4 KB.
    case invalidEvent
    /// A DogStatsD service check (`_sc|`) that does not parse: no name, a status other than
    /// 0-3, a bad optional field, a message over 4 KB.
    case invalidServiceCheck
    /// A `|T` timestamp more than an hour old or more than ten minutes ahead of the agent's
    /// clock (SPEC section 15).
    case invalidTimestamp

    /// The reason label, e.g. `invalid_value`.
    public var description: String {
        switch self {
        case .missingColon: "missing_colon"
        case .emptyName: "empty_name"
        case .invalidName: "invalid_name"
        case .invalidUTF8: "invalid_utf8"
        case .missingType: "missing_type"
        case .unknownType: "unknown_type"
        case .invalidValue: "invalid_value"
        case .negativeCounter: "negative_counter"
        case .invalidSampleRate: "invalid_sample_rate"
        case .multipleSetValues: "multiple_set_values"
        case .invalidTags: "invalid_tags"
        case .mixedTags: "mixed_tags"
        case .invalidField: "invalid_field"
        case .seriesLimit: "series_limit"
        case .nameTooLong: "name_too_long"
        case .tagsTooLong: "tags_too_long"
        case .lineTooLong: "line_too_long"
        case .invalidEvent: "invalid_event"
        case .invalidServiceCheck: "invalid_service_check"
        case .invalidTimestamp: "invalid_timestamp"
        }
    }
}
