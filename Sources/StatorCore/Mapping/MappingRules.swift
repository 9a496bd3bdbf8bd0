import Synchronization

/// What a reader does with a line's name and type under the mapping in force, worked out once
/// per name and type (`MappingCache`).
enum MappingDecision: Sendable {
    /// No rule matches: the line's own name and tags.
    case unmatched
    /// An `action: drop` rule matches: `stator_lines_dropped_total{reason="mapping"}`.
    case dropped
    /// A rule maps the name to one that cannot be used (empty, or longer than
    /// `max_name_bytes`): `stator_lines_dropped_total{reason="mapping_invalid_name"}`.
    case invalidName
    /// A rule maps it: the key's parts.
    case mapped(MappedKeyParts)
}

/// The parts of a mapped series' key besides the line's own tags.
final class MappedKeyParts: Sendable {
    let name: [UInt8]
    let labels: [(name: [UInt8], value: [UInt8])]
    let honorLabels: Bool
    /// The rule's options (`MappingOptionsRegistry`).
    let options: UInt16

    init(name: [UInt8], labels: [(name: [UInt8], value: [UInt8])], honorLabels: Bool, options: UInt16) {
        self.name = name
        self.labels = labels
        self.honorLabels = honorLabels
        self.options = options
    }
}

/// One loaded mapping file, ready for readers: its mapper and each rule's options number.
final class LoadedMapping: Sendable {
    let mapper: MetricMapper
    let optionNumbers: [UInt16]
    let generation: UInt32
    let maxNameBytes: Int
    /// `defaults.ttl`, which replaces `series_ttl` for every series without a rule's own.
    let defaultTTLMillis: Int64?

    init(mapper: MetricMapper, optionNumbers: [UInt16], generation: UInt32, maxNameBytes: Int, defaultTTLMillis: Int64?) {
        self.defaultTTLMillis = defaultTTLMillis
        self.mapper = mapper
        self.optionNumbers = optionNumbers
        self.generation = generation
        self.maxNameBytes = maxNameBytes
    }

    /// What the rules say of `name` (UTF-8, as the parser checked it) for `type`.
    func decide(_ name: UnsafeRawBufferPointer, type: MetricType) -> MappingDecision {
        switch mapper.map(String(decoding: name, as: UTF8.self), type: type) {
        case .unmatched: return .unmatched
        case .dropped: return .dropped
        case .mapped(let mapped):
            let bytes = Array(mapped.name.utf8)
            guard !bytes.isEmpty, bytes.count <= maxNameBytes else { return .invalidName }
            let rule = mapper.rules[mapped.rule]
            return .mapped(
                MappedKeyParts(
                    name: bytes, labels: mapped.labels.map { (Array($0.name.utf8), Array($0.value.utf8)) },
                    honorLabels: rule.honorLabels, options: optionNumbers[mapped.rule]))
        }
    }
}

/// The mapping in force (`mapping_config`): loaded at start, replaced whole by a reload.
/// Readers look at `generation` once per receive batch and take the new rules (forgetting
/// what they decided under the old ones) when it moved, so a reload applies to every line
/// read after it, and never to part of a batch.
public final class MappingRules: Sendable {
    /// The file, as configured.
    public let path: String
    let options: MappingOptionsRegistry
    /// `max_name_bytes`: a mapped name longer than this drops the line.
    let maxNameBytes: Int
    /// (`PthreadLock`, not `Mutex`: ThreadSanitizer sees pthread locks; see `PthreadLock`.)
    private let loaded: PthreadLock<LoadedMapping>
    private let generationValue = Atomic<UInt32>(1)
    /// Held across a whole reload, so that two at once (SIGHUP and `/-/reload`) take turns.
    private let reloading = PthreadLock(())
    /// Keys statsd_exporter accepts that change nothing here, with their lines (for a warning).
    public let ignoredKeys: [String]

    /// Loads `path`.
    /// - Throws: what is wrong with the file, naming its line.
    public init(path: String, options: MappingOptionsRegistry = MappingOptionsRegistry(), maxNameBytes: Int) throws(ConfigError) {
        self.path = path
        self.options = options
        self.maxNameBytes = maxNameBytes
        let file = try MappingFile.load(path: path)
        let mapping = try Self.prepare(file, options: options, generation: 1, maxNameBytes: maxNameBytes)
        options.putInForce(file.rules, slots: mapping.optionNumbers)
        loaded = PthreadLock(mapping)
        ignoredKeys = file.ignoredKeys.map { "\($0.key) (line \($0.line))" }
    }

    private static func prepare(
        _ file: MappingFile, options: MappingOptionsRegistry, generation: UInt32, maxNameBytes: Int
    ) throws(ConfigError) -> LoadedMapping {
        guard let numbers = options.slots(for: file.rules) else {
            throw ConfigError("mapping_config: more than 65,536 distinct rules since start; restart to reset")
        }
        return LoadedMapping(
            mapper: MetricMapper(file), optionNumbers: numbers, generation: generation, maxNameBytes: maxNameBytes,
            defaultTTLMillis: file.defaultTTLMillis)
    }

    /// Counts the rule sets loaded; moves with each successful reload.
    var generation: UInt32 { generationValue.load(ordering: .acquiring) }

    /// The rules in force.
    var current: LoadedMapping { loaded.withLock { $0 } }

    /// The number of rules in force.
    public var ruleCount: Int { current.mapper.rules.count }

    /// Reads the file again and, when it is valid, puts its rules in force.
    /// - Returns: the number of rules now in force.
    /// - Throws: what is wrong with the file; the old rules stay.
    @discardableResult
    public func reload() throws(ConfigError) -> Int {
        reloading.lock()
        defer { reloading.unlock() }
        let file = try MappingFile.load(path: path)
        let next = generation &+ 1
        let mapping = try Self.prepare(file, options: options, generation: next, maxNameBytes: maxNameBytes)
        // The options first: a rule kept across the reload keeps its slot, and its series take
        // the new options from the next interval on, whichever rules map their next lines.
        options.putInForce(file.rules, slots: mapping.optionNumbers)
        loaded.withLock { $0 = mapping }
        generationValue.store(next, ordering: .releasing)
        return file.rules.count
    }
}
