// The tag policy's keys (`tags.*`, SPEC section 14; docs/tags.md).
extension ConfigKeys {
    static let tagPolicyKeys: [ConfigKey] = [
        globList(
            "tags.drop", "Globs on tag keys: matching tags are removed before the series is identified (e.g. email, user_*).",
            { $0.tags.drop }
        ) { $0.tags.drop = $1 },
        globList(
            "tags.allow", "Globs on tag keys: when not empty, only tags whose key matches one are kept.",
            { $0.tags.allow }
        ) { $0.tags.allow = $1 },
        globList(
            "tags.hash", "Globs on tag keys whose values become 16 hex digits of SipHash-2-4 under tags.hash_key.",
            { $0.tags.hash }
        ) { $0.tags.hash = $1 },
        string(
            "tags.hash_key", "The key of tags.hash: 32 hex digits (16 bytes), from ${VAR}; required with tags.hash.",
            { $0.tags.shownHashKey }
        ) { (c, s) throws(ConfigError) in c.tags.hashKey = s },
        ConfigKey(
            path: "tags.limits", kind: .objectList,
            help:
                "A list of {\"key\": \"<glob>\", \"max_values\": N}: past N values of a key within series_ttl, the rest become __other__.",
            read: { c in
                .array(c.tags.limits.map { .object(["key": .string($0.key), "max_values": .number(Double($0.maxValues))]) })
            }
        ) { (c, v) throws(ConfigError) in
            let what = "tags.limits"
            guard case .array(let items) = v else { throw ConfigError("\(what) must be a list of objects, got \(v.kind)") }
            var limits: [TagPolicyConfiguration.Limit] = []
            for (n, item) in items.enumerated() {
                guard case .object(let fields) = item, case .string(let glob)? = fields["key"], !glob.isEmpty,
                    case .number(let most)? = fields["max_values"], most == most.rounded(), most >= 1, most <= 1_000_000,
                    fields.count == 2
                else {
                    throw ConfigError(
                        "\(what)[\(n)] must be {\"key\": \"<glob>\", \"max_values\": <an integer from 1 to 1000000>}")
                }
                limits.append(.init(key: glob, maxValues: Int(most)))
            }
            c.tags.limits = limits
        },
    ]

    /// A list of non-empty globs (possibly empty).
    private static func globList(
        _ path: String, _ help: String, _ get: @escaping @Sendable (StatorConfiguration) -> [String],
        _ set: @escaping @Sendable (inout StatorConfiguration, [String]) -> Void
    ) -> ConfigKey {
        ConfigKey(path: path, kind: .stringList, help: help, read: { .array(get($0).map { .string($0) }) }) {
            (c, v) throws(ConfigError) in
            guard case .array(let items) = v else { throw ConfigError("\(path) must be a list of globs, got \(describe(v))") }
            var globs: [String] = []
            for item in items {
                guard case .string(let glob) = item, !glob.isEmpty else {
                    throw ConfigError("\(path): each glob must be a non-empty string, got \(describe(item))")
                }
                globs.append(glob)
            }
            set(&c, globs)
        }
    }
}
