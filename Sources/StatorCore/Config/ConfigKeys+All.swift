import Foundation

// Every configuration key: its path, help text, and how it is read and written.
extension ConfigKeys {
    /// Every key, in documentation order: the tag policy's after `mapping_config`.
    public static let all: [ConfigKey] = {
        var keys = core
        let after = (keys.firstIndex { $0.path == "mapping_config" } ?? keys.count - 1) + 1
        keys.insert(contentsOf: tagPolicyKeys, at: after)
        return keys
    }()

    /// Every key but the tag policy's (`ConfigKeys+Tags.swift`).
    private static let core: [ConfigKey] = [
        address(
            "udp.address", "UDP address to receive statsd lines on: host:port or [v6]:port.",
            { $0.udp.address }
        ) { $0.udp.address = $1 },
        integer(
            "udp.readers", 1...256, "Reader threads, each with its own SO_REUSEPORT socket (default: one per core).",
            { Int64($0.udp.readers) }
        ) { $0.udp.readers = Int($1) },
        integer(
            "udp.receive_buffer_bytes", 4096...(1 << 31 - 1),
            "Receive buffer asked for per socket; a warning says when the kernel grants less.",
            { Int64($0.udp.receiveBufferBytes) }
        ) { $0.udp.receiveBufferBytes = Int($1) },
        string(
            "unixgram.path", "A Unix datagram socket to receive statsd lines on (DogStatsD's local path); \"\" disables it.",
            { $0.unixgram.path }
        ) { (c, s) throws(ConfigError) in c.unixgram.path = s },
        string(
            "unixgram.mode", "Permission bits of the socket file, in octal: who may send to it.",
            { "0" + String($0.unixgram.mode, radix: 8) }
        ) { (c, s) throws(ConfigError) in
            guard let mode = UnixgramConfiguration.parseMode(s) else {
                throw ConfigError("unixgram.mode must be octal permission bits such as \"0660\", got \"\(s)\"")
            }
            c.unixgram.mode = mode
        },
        integer(
            "unixgram.receive_buffer_bytes", 4096...(1 << 31 - 1),
            "Receive buffer asked for on the Unix socket; a full buffer makes senders wait.",
            { Int64($0.unixgram.receiveBufferBytes) }
        ) { $0.unixgram.receiveBufferBytes = Int($1) },
        string(
            "tcp.address", "TCP address to receive newline-delimited statsd lines on: host:port or [v6]:port; \"\" disables it.",
            { $0.tcp.address }
        ) { (c, s) throws(ConfigError) in
            if !s.isEmpty { _ = try SocketAddress(parsing: s) }
            c.tcp.address = s
        },
        integer(
            "tcp.max_connections", 1...1_000_000, "TCP connections served at once; a new one past this is closed at once.",
            { Int64($0.tcp.maxConnections) }
        ) { $0.tcp.maxConnections = Int($1) },
        duration(
            "tcp.idle_timeout", minimum: 1000, allowZero: true,
            "A TCP connection that sends nothing for this long is closed; 0 never closes it.",
            { $0.tcp.idleTimeoutMillis }
        ) { $0.tcp.idleTimeoutMillis = $1 },
        integer(
            "tcp.max_line_bytes", 256...262_144,
            "Longest TCP line; a longer one is dropped (line_too_long) up to its newline and the connection kept.",
            { Int64($0.tcp.maxLineBytes) }
        ) { $0.tcp.maxLineBytes = Int($1) },
        address(
            "http.address", "HTTP address for \(HTTPRoute.list()): host:port or [v6]:port.",
            { $0.http.address }
        ) { $0.http.address = $1 },
        integer(
            "http.max_connections", 1...100_000,
            "Concurrent HTTP connections; at the cap the one idle longest is closed for a newcomer.",
            { Int64($0.http.maxConnections) }
        ) { $0.http.maxConnections = Int($1) },
        integer(
            "http.max_header_bytes", 1024...(1 << 20), "Largest HTTP request head; larger is answered 431.",
            { Int64($0.http.maxHeaderBytes) }
        ) { $0.http.maxHeaderBytes = Int($1) },
        duration(
            "http.read_timeout", minimum: 10, allowZero: false,
            "Time to receive a whole request head, or to write a response, before the connection is closed.",
            { $0.http.readTimeoutMillis }
        ) { $0.http.readTimeoutMillis = $1 },
        duration(
            "http.idle_timeout", minimum: 10, allowZero: false, "Time an idle keep-alive connection stays open.",
            { $0.http.idleTimeoutMillis }
        ) { $0.http.idleTimeoutMillis = $1 },
        duration(
            "flush_interval", minimum: 10, allowZero: false,
            "Interval between flushes; flushes fire at wall-clock multiples of it.",
            { $0.flush.intervalMillis }
        ) { $0.flush.intervalMillis = $1 },
        duration(
            "series_ttl", minimum: 1, allowZero: true,
            "A series that receives nothing for this long is forgotten by every sink; 0 never forgets.",
            { $0.flush.seriesTTLMillis }
        ) { $0.flush.seriesTTLMillis = $1 },
        ConfigKey(
            path: "percentiles", kind: .numberList,
            help: "Percentiles for timers, histograms and distributions, each in (0, 100]; JSON key p<N>.",
            read: { .array($0.flush.percentiles.map { .number($0.value) }) }
        ) { (c, v) throws(ConfigError) in
            guard case .array(let items) = v else { throw ConfigError("percentiles must be a list of numbers, got \(v.kind)") }
            var result: [Percentile] = []
            for item in items {
                guard case .number(let p) = item, p > 0, p <= 100 else {
                    throw ConfigError("percentiles: each must be a number in (0, 100], got \(describe(item))")
                }
                if !result.contains(where: { $0.value == p }) { result.append(Percentile(p)) }
            }
            c.flush.percentiles = result
        },
        boolean(
            "histograms.native",
            "Also keep a native (exponential) histogram per timer, histogram and distribution series: percentiles that merge across hosts.",
            { $0.histograms.native }
        ) { $0.histograms.native = $1 },
        integer(
            "histograms.native_schema", -4...8,
            "Native histograms' resolution, -4 to 8: each bucket's bound is 2^(2^-schema) times the one below (3: 1.0905).",
            { Int64($0.histograms.options.schema) }
        ) { $0.histograms.options.schema = Int8($1) },
        number(
            "histograms.native_zero_threshold", Double.leastNonzeroMagnitude...1e300,
            "Native histograms: values of magnitude up to this count in the zero bucket (above 0).",
            { $0.histograms.options.zeroThreshold }
        ) { $0.histograms.options.zeroThreshold = $1 },
        integer(
            "histograms.native_max_buckets", 1...65_536,
            "Native histograms: populated buckets per series past which the resolution is halved (schema - 1).",
            { Int64($0.histograms.options.maxBuckets) }
        ) { $0.histograms.options.maxBuckets = Int($1) },
        integer(
            "max_samples_per_series", 1...10_000_000,
            "Exact samples kept per timer series per interval; past it percentiles come from a uniform reservoir.",
            { Int64($0.aggregation.maxSamplesPerSeries) }
        ) { $0.aggregation.maxSamplesPerSeries = Int($1) },
        integer(
            "max_set_members", 1...10_000_000,
            "Members a set counts exactly per interval; past it the count is a HyperLogLog estimate (16 KiB, ~0.8% error).",
            { Int64($0.aggregation.maxSetMembers) }
        ) { $0.aggregation.maxSetMembers = Int($1) },
        integer(
            "max_series", 1...100_000_000,
            "Cap on tracked series; a line that would create one more is dropped (reason series_limit).",
            { Int64($0.aggregation.maxSeries) }
        ) { $0.aggregation.maxSeries = Int($1) },
        string(
            "mapping_config",
            "A statsd_exporter mapping file (YAML) that names series and adds labels (docs/mapping.md); \"\" maps nothing.",
            { $0.mappingConfig }
        ) { (c, s) throws(ConfigError) in c.mappingConfig = s },
        integer(
            "max_name_bytes", 1...65_535, "Longest name in bytes (before name tags); longer lines are dropped (name_too_long).",
            { Int64($0.aggregation.lineLimits.maxNameBytes) }
        ) { $0.aggregation.lineLimits.maxNameBytes = Int($1) },
        integer(
            "max_tags", 0...10_000, "Most tags on one line; more and the line is dropped (tags_too_long).",
            { Int64($0.aggregation.lineLimits.maxTags) }
        ) { $0.aggregation.lineLimits.maxTags = Int($1) },
        integer(
            "max_tag_bytes", 1...65_535,
            "Longest tag in bytes, key:value as sent; longer and the line is dropped (tags_too_long).",
            { Int64($0.aggregation.lineLimits.maxTagBytes) }
        ) { $0.aggregation.lineLimits.maxTagBytes = Int($1) },
        boolean(
            "dogstatsd.origin_tags",
            "Keep a DogStatsD line's entity id (dd.internal.entity_id), else its container id (c: field), as one container_id tag; off: origin fields are dropped.",
            { $0.aggregation.lineLimits.originTags }
        ) { $0.aggregation.lineLimits.originTags = $1 },
        ConfigKey(
            path: "shards", kind: .integer,
            help: "Lock shards of the series table, a power of two (default: eight per core, at least 16).",
            read: { .number(Double($0.aggregation.shards)) }
        ) { (c, v) throws(ConfigError) in
            guard case .number(let d) = v, d == d.rounded(), d >= 1, d <= 65536, Int(d) & (Int(d) - 1) == 0 else {
                throw ConfigError("shards must be a power of two from 1 to 65536, got \(describe(v))")
            }
            c.aggregation.shards = Int(d)
        },
        string(
            "sinks.json.path", "JSON-lines output file; \"-\" is standard output, \"\" disables the sink.",
            { $0.json.path }
        ) { (c, s) throws(ConfigError) in c.json.path = s },
        integer(
            "sinks.json.rotate_bytes", 0...(1 << 50), "Start a new file once the current one reaches this size; 0 never rotates.",
            { $0.json.rotateBytes }
        ) { $0.json.rotateBytes = $1 },
        integer(
            "sinks.json.keep_files", 0...1000, "Rotated files kept (path.1 is the newest).",
            { Int64($0.json.keepFiles) }
        ) { $0.json.keepFiles = Int($1) },
        string(
            "sinks.json.format", "json: one object per series; emf: CloudWatch Embedded Metric Format objects (docs/formats.md).",
            { $0.json.format.rawValue }
        ) { (c, s) throws(ConfigError) in
            guard let format = JSONLinesFormat(rawValue: s) else {
                throw ConfigError("sinks.json.format must be json or emf, got \"\(s)\"")
            }
            c.json.format = format
        },
        string(
            "sinks.json.namespace", "The CloudWatch namespace of format emf.", { $0.json.namespace }
        ) { (c, s) throws(ConfigError) in
            guard !s.isEmpty, s.utf8.count <= 255 else {
                throw ConfigError("sinks.json.namespace must be 1 to 255 bytes, got \"\(s)\"")
            }
            c.json.namespace = s
        },
        string(
            "sinks.prometheus.prefix", "Prepended to every statsd family name on /metrics (letters, digits, _).",
            { $0.prometheus.prefix }
        ) { (c, s) throws(ConfigError) in
            guard s.utf8.allSatisfy(isNameByte) else {
                throw ConfigError("sinks.prometheus.prefix may hold only letters, digits and _, got \"\(s)\"")
            }
            c.prometheus.prefix = s
        },
        ConfigKey(
            path: "sinks.prometheus.buckets", kind: .numberList,
            help: "Histogram bucket upper bounds (seconds for timers) for timers, histograms and distributions.",
            read: { .array($0.prometheus.buckets.defaults.upperBounds.map { .number($0) }) }
        ) { (c, v) throws(ConfigError) in
            c.prometheus.buckets.defaults = BucketBounds(try bucketList(v, "sinks.prometheus.buckets"))
        },
        ConfigKey(
            path: "sinks.prometheus.bucket_overrides", kind: .objectList,
            help: "Per-name buckets: a list of {\"match\": \"<glob on the statsd name>\", \"buckets\": [...]}; first match wins.",
            read: { c in
                .array(
                    c.prometheus.buckets.overrides.map {
                        .object(["match": .string($0.match), "buckets": .array($0.bounds.upperBounds.map { .number($0) })])
                    })
            }
        ) { (c, v) throws(ConfigError) in
            let what = "sinks.prometheus.bucket_overrides"
            guard case .array(let items) = v else { throw ConfigError("\(what) must be a list of objects, got \(v.kind)") }
            var overrides: [HistogramBuckets.Override] = []
            for (n, item) in items.enumerated() {
                guard case .object(let fields) = item, case .string(let glob)? = fields["match"], !glob.isEmpty,
                    let buckets = fields["buckets"], fields.count == 2
                else {
                    throw ConfigError("\(what)[\(n)] must be {\"match\": \"<glob>\", \"buckets\": [...]}")
                }
                overrides.append(.init(match: glob, buckets: try bucketList(buckets, "\(what)[\(n)].buckets")))
            }
            c.prometheus.buckets.overrides = overrides
        },
        string(
            "sinks.http_push.name",
            "The sink label of this push's metrics (default http_push, then http_push_2... by position in a list).",
            { $0.push.name }
        ) { (c, s) throws(ConfigError) in
            guard s.utf8.allSatisfy({ isNameByte($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else {
                throw ConfigError("sinks.http_push.name may hold only letters, digits, _, - and ., got \"\(s)\"")
            }
            c.push.name = s
        },
        string(
            "sinks.http_push.url",
            "POST every flush here (http:// or https://), path and query as written; user:password@ is sent as Basic auth; empty disables the push sink.",
            { PushTarget.redact($0.push.url) }
        ) { (c, s) throws(ConfigError) in
            if !s.isEmpty {
                let target = try PushTarget(parsing: s)
                // URLSession (https) needs a URL Foundation accepts.
                guard target.scheme == "http" || URL(string: target.identity) != nil else {
                    throw ConfigError("sinks.http_push.url must be an http:// or https:// URL, got \"\(target.redacted)\"")
                }
            }
            c.push.url = s
        },
        string(
            "sinks.http_push.format", "Body format: json, remote_write, datadog, otlp or influx.", { $0.push.format.rawValue }
        ) { (c, s) throws(ConfigError) in
            guard let format = PushFormat(rawValue: s), format.isConfigurable else {
                throw ConfigError(
                    "sinks.http_push.format must be one of json, remote_write, datadog, otlp, influx, got \"\(s)\"")
            }
            c.push.format = format
        },
        integer(
            "sinks.http_push.batch_size", 1...1_000_000,
            "Series per request at most (a histogram is several series in remote_write).",
            { Int64($0.push.batchSize) }
        ) { $0.push.batchSize = Int($1) },
        ConfigKey(
            path: "sinks.http_push.headers", kind: .object,
            help:
                "Request headers, e.g. {\"Authorization\": \"Bearer ${TOKEN}\"}, replacing defaults of the same name; ${VAR} is read from the environment at start-up.",
            read: { .object($0.push.headers.mapValues { .string($0) }) }
        ) { (c, v) throws(ConfigError) in
            guard case .object(let fields) = v else {
                throw ConfigError("sinks.http_push.headers must be an object, got \(v.kind)")
            }
            var headers: [String: String] = [:]
            for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                guard case .string(let text) = value else {
                    throw ConfigError("sinks.http_push.headers.\(name) must be a string, got \(value.kind)")
                }
                guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }),
                    !text.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" })
                else { throw ConfigError("sinks.http_push.headers: invalid header \"\(name)\"") }
                // The client frames the request and names the host itself: a second value
                // would make the request ambiguous (request smuggling) or misdirected.
                guard !PushFormat.framingHeaders.contains(name.lowercased()) else {
                    throw ConfigError(
                        "sinks.http_push.headers: \(name) cannot be set (the push writes Host, Content-Length and Transfer-Encoding itself)"
                    )
                }
                guard !headers.keys.contains(where: { $0.lowercased() == name.lowercased() }) else {
                    throw ConfigError("sinks.http_push.headers: \"\(name)\" is given twice (header names ignore case)")
                }
                headers[name] = text
            }
            c.push.headers = headers
        },
        ConfigKey(
            path: "sinks.http_push.external_labels", kind: .object,
            help:
                "Labels added to every series this push sends, e.g. {\"host\": \"${HOSTNAME}\"}; a line's own tag of the same name wins.",
            read: { .object($0.push.externalLabels.mapValues { .string($0) }) }
        ) { (c, v) throws(ConfigError) in
            guard case .object(let fields) = v else {
                throw ConfigError("sinks.http_push.external_labels must be an object, got \(v.kind)")
            }
            var labels: [String: String] = [:]
            for (name, value) in fields {
                guard case .string(let text) = value else {
                    throw ConfigError("sinks.http_push.external_labels.\(name) must be a string, got \(value.kind)")
                }
                guard isLabelName(name), name != "le", name != "quantile" else {
                    throw ConfigError(
                        "sinks.http_push.external_labels: \"\(name)\" is not a label name a push may add (le and quantile are the histograms')"
                    )
                }
                labels[name] = text
            }
            c.push.externalLabels = labels
        },
        string(
            "sinks.http_push.service_name", "OTLP resource attribute service.name.", { $0.push.serviceName }
        ) { (c, s) throws(ConfigError) in
            guard !s.isEmpty else { throw ConfigError("sinks.http_push.service_name must not be empty") }
            c.push.serviceName = s
        },
        string(
            "sinks.http_push.temporality",
            "OTLP temporality: cumulative (the state /metrics shows) or delta (each interval's own aggregates).",
            { $0.push.temporality.rawValue }
        ) { (c, s) throws(ConfigError) in
            guard let temporality = OTLPTemporality(rawValue: s) else {
                throw ConfigError("sinks.http_push.temporality must be cumulative or delta, got \"\(s)\"")
            }
            c.push.temporality = temporality
        },
        duration(
            "sinks.http_push.timeout", minimum: 1000, allowZero: false,
            "Time allowed per push request, at least 1s (the HTTP client counts whole seconds).",
            { $0.push.timeoutMillis }
        ) { $0.push.timeoutMillis = $1 },
        string(
            "sinks.http_push.spool_dir",
            "Directory where every request is spooled (fsynced) before it is sent; empty keeps the queue in memory.",
            { $0.push.spoolDirectory }
        ) { (c, s) throws(ConfigError) in c.push.spoolDirectory = s },
        integer(
            "sinks.http_push.max_spool_bytes", 1024...(1 << 50),
            "Bound on queued push bytes (memory or spool); the oldest are dropped past it, a larger request alone.",
            { $0.push.maxSpoolBytes }
        ) { $0.push.maxSpoolBytes = $1 },
        string(
            "sinks.graphite.address",
            "Graphite plaintext TCP receiver, host:port (resolved at every connect); \"\" disables the sink.",
            { $0.graphite.address }
        ) { (c, s) throws(ConfigError) in
            if !s.isEmpty { _ = try GraphiteConfiguration.split(s) }
            c.graphite.address = s
        },
        string(
            "sinks.graphite.prefix", "Put before every Graphite path, e.g. \"myapp\" (no trailing dot).", { $0.graphite.prefix }
        ) { (c, s) throws(ConfigError) in
            // The prefix is written as it is: only the bytes a sanitized name keeps.
            guard s.utf8.allSatisfy(GraphiteConfiguration.isPathByte), !s.hasSuffix("."), !s.hasPrefix("."), !s.contains("..")
            else {
                throw ConfigError(
                    "sinks.graphite.prefix takes letters, digits, _, - and dots between them, got \"\(s)\"")
            }
            c.graphite.prefix = s
        },
        string(
            "sinks.graphite.tags", "graphite: tags as ;k=v after the path; none: tags left out.", { $0.graphite.tags.rawValue }
        ) { (c, s) throws(ConfigError) in
            guard let tags = GraphiteConfiguration.Tags(rawValue: s) else {
                throw ConfigError("sinks.graphite.tags must be graphite or none, got \"\(s)\"")
            }
            c.graphite.tags = tags
        },
        integer(
            "sinks.graphite.max_queue_bytes", 1024...(1 << 40),
            "Bound on Graphite text waiting for the connection; the oldest flushes are dropped past it.",
            { $0.graphite.maxQueueBytes }
        ) { $0.graphite.maxQueueBytes = $1 },
        string(
            "sinks.rollup.path", "SQLite database of daily roll-ups by one tag (docs/rollups.md); \"\" disables the sink.",
            { $0.rollup.path }
        ) { (c, s) throws(ConfigError) in c.rollup.path = s },
        string("sinks.rollup.by", "The tag to roll up by, e.g. tenant.", { $0.rollup.by }) { (c, s) throws(ConfigError) in
            guard !s.isEmpty, !s.contains(where: { $0 == ":" || $0 == "," || $0 == "|" || $0 == "\n" }) else {
                throw ConfigError("sinks.rollup.by must be a tag key (no :, comma or |), got \"\(s)\"")
            }
            c.rollup.by = s
        },
        ConfigKey(
            path: "sinks.rollup.match", kind: .stringList,
            help: "Globs on the statsd name: a series is rolled up when one matches.",
            read: { .array($0.rollup.match.map { .string($0) }) }
        ) { (c, v) throws(ConfigError) in
            guard case .array(let items) = v, !items.isEmpty else {
                throw ConfigError("sinks.rollup.match must be a non-empty list of globs, got \(describe(v))")
            }
            var globs: [String] = []
            for item in items {
                guard case .string(let glob) = item, !glob.isEmpty else {
                    throw ConfigError("sinks.rollup.match: each glob must be a non-empty string, got \(describe(item))")
                }
                globs.append(glob)
            }
            c.rollup.match = globs
        },
        integer(
            "sinks.rollup.retention_days", 1...36_500, "Days of roll-ups kept, today included; older rows are deleted daily.",
            { Int64($0.rollup.retentionDays) }
        ) { $0.rollup.retentionDays = Int($1) },
        ConfigKey(
            path: "sinks.rollup.limits", kind: .objectList,
            help: "Daily limits: a list of {\"match\": \"<glob>\", \"daily\": N}, shown as stator_rollup_usage_ratio{key,name}.",
            read: { c in .array(c.rollup.limits.map { .object(["match": .string($0.match), "daily": .number($0.daily)]) }) }
        ) { (c, v) throws(ConfigError) in
            let what = "sinks.rollup.limits"
            guard case .array(let items) = v else { throw ConfigError("\(what) must be a list of objects, got \(v.kind)") }
            var limits: [RollupConfiguration.Limit] = []
            for (n, item) in items.enumerated() {
                guard case .object(let fields) = item, case .string(let glob)? = fields["match"], !glob.isEmpty,
                    case .number(let daily)? = fields["daily"], daily > 0, daily.isFinite, fields.count == 2
                else { throw ConfigError("\(what)[\(n)] must be {\"match\": \"<glob>\", \"daily\": <a number above 0>}") }
                limits.append(.init(match: glob, daily: daily))
            }
            c.rollup.limits = limits
        },
        ConfigKey(
            path: "log.level", kind: .logLevel,
            help: "Lowest log level written: trace, debug, info, notice, warning, error or critical.",
            read: { .string($0.logLevel.name) }
        ) { (c, v) throws(ConfigError) in
            guard case .string(let s) = v, let level = Logger.Level(name: s) else {
                throw ConfigError(
                    "log.level must be one of \(Logger.Level.allCases.map(\.name).joined(separator: ", ")), got \(describe(v))")
            }
            c.logLevel = level
        },
    ]
}
