/// The tag policy (`tags.*`, SPEC section 14): what happens to a line's tags before its series
/// is identified. Every list empty (the default) leaves tags as sent.
public struct TagPolicyConfiguration: Sendable {
    /// `tags.limits` entry: past `maxValues` distinct values of a key matching `key`, further
    /// values become `__other__`.
    public struct Limit: Sendable, Equatable {
        public var key: String
        public var maxValues: Int

        public init(key: String, maxValues: Int) {
            self.key = key
            self.maxValues = maxValues
        }
    }

    /// Globs on tag keys whose tags are removed (`tags.drop`).
    public var drop: [String] = []
    /// Globs on tag keys; when not empty, a tag whose key none matches is removed (`tags.allow`).
    public var allow: [String] = []
    /// Globs on tag keys whose values are replaced by their pseudonyms (`tags.hash`).
    public var hash: [String] = []
    /// The SipHash key as configured (`tags.hash_key`): 32 hex digits, usually `${VAR}`.
    public var hashKey: String = ""
    /// `hashKey` with its `${VAR}`s replaced and decoded (see `resolve(environment:)`).
    public var resolvedHashKey: [UInt8]?
    public var limits: [Limit] = []

    public init() {}

    /// Whether any policy is configured.
    public var isActive: Bool { !drop.isEmpty || !allow.isEmpty || !hash.isEmpty || !limits.isEmpty }

    /// Replaces `hash_key`'s `${VAR}`s and decodes it. Errors name the key and the variable,
    /// never the value (a secret).
    /// - Throws: `ConfigError` when `hash` is set without a key, a variable is not set, or the
    ///   key is not 32 hex digits.
    public mutating func resolve(environment: [String: String]) throws(ConfigError) {
        resolvedHashKey = nil
        if hashKey.isEmpty {
            guard hash.isEmpty else {
                throw ConfigError(
                    "tags.hash needs tags.hash_key: 32 hex digits (16 bytes), e.g. \"${TAG_HASH_KEY}\"")
            }
            return
        }
        let text = try HTTPPushConfiguration.expand(hashKey, environment: environment, what: "tags.hash_key")
        let digits = Array(text.utf8)
        var key: [UInt8] = []
        if digits.count == 32 {
            for i in stride(from: 0, to: 32, by: 2) {
                guard let high = Hex.value(digits[i]), let low = Hex.value(digits[i + 1]) else { break }
                key.append(high << 4 | low)
            }
        }
        guard key.count == 16 else {
            throw ConfigError("tags.hash_key must be 32 hex digits (16 bytes) once ${VAR}s are replaced")
        }
        resolvedHashKey = key
    }

    /// `hash_key` as `check-config` shows it: a `${VAR}` reference as written, a key written
    /// out in the file as `<set>` (it is a secret).
    var shownHashKey: String { hashKey.isEmpty || hashKey.contains("${") ? hashKey : "<set>" }
}
