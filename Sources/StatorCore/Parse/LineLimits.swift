/// Per-line bounds on what a line may carry (SPEC section 1, "Bounds"), so that `max_series`
/// also bounds memory: a series' key is at most a name of `maxNameBytes` and `maxTags` tags
/// of `maxTagBytes` each, whatever a sender writes.
public struct LineLimits: Sendable, Equatable {
    /// Longest name, in bytes, before its name tags (`max_name_bytes`); longer is `name_too_long`.
    public var maxNameBytes: Int = 256
    /// Most tags on one line, bare tags included (`max_tags`); more is `tags_too_long`.
    public var maxTags: Int = 32
    /// Longest tag, `key:value` (or `key=value`) as sent, in bytes (`max_tag_bytes`); longer is `tags_too_long`.
    public var maxTagBytes: Int = 256

    /// Not a bound but how the parser reads origin fields (`dogstatsd.origin_tags`, SPEC section
    /// 15): when set, the entity id (`dd.internal.entity_id:`), else the `|c:` container id,
    /// becomes one `container_id` tag, counted and bounded like the others. Off by default,
    /// since it multiplies series by pods.
    public var originTags = false

    public init(maxNameBytes: Int = 256, maxTags: Int = 32, maxTagBytes: Int = 256, originTags: Bool = false) {
        self.maxNameBytes = maxNameBytes
        self.maxTags = maxTags
        self.maxTagBytes = maxTagBytes
        self.originTags = originTags
    }

    /// The longest series key (`MetricKey.bytes`) these limits let through: a type byte, then
    /// the name and each tag's key and value, each behind a 2-byte length (the tag's own `:`
    /// or `=` is not stored). For the memory bound in docs/reliability.md.
    public var longestKeyBytes: Int { 1 + 2 + maxNameBytes + maxTags * (maxTagBytes - 1 + 4) }
}
