import Glibc

/// Renders the agent's own metrics (SPEC section 6) in the Prometheus text
/// format, read live at scrape time.
public struct SelfMetricsPage: Sendable {
    let metrics: SelfMetrics
    let table: ShardedTable
    let pushes: [PushMetrics]
    let mapping: MappingRules?
    /// The inputs configured (their counters are shown; UDP always is).
    let inputs: [Input]
    let flushIntervalSeconds: Double
    /// Whether the Graphite sink is on (its queue is shown).
    let graphite: Bool
    /// The roll-up sink, when on (its usage ratios are shown).
    let rollup: RollupSink?

    /// - Parameter flushIntervalSeconds: `flush_interval`, shown as `stator_flush_interval_seconds`
    ///   (the reference for a slow-flush alert).
    public init(
        metrics: SelfMetrics, table: ShardedTable, pushes: [PushMetrics] = [], mapping: MappingRules? = nil,
        inputs: [Input] = [.udp], flushIntervalSeconds: Double = 10, graphite: Bool = false, rollup: RollupSink? = nil
    ) {
        self.graphite = graphite
        self.rollup = rollup
        self.inputs = inputs
        self.metrics = metrics
        self.table = table
        self.pushes = pushes
        self.mapping = mapping
        self.flushIntervalSeconds = flushIntervalSeconds
    }

    /// The family names this page uses (statsd families may not take them).
    public static let familyNames = [
        "stator_packets_received_total", "stator_lines_received_total", "stator_lines_invalid_total",
        "stator_events_received_total", "stator_events_total", "stator_lines_dropped_total", "stator_mapping_series_total",
        "stator_mapping_reloads_total", "stator_mapping_series_reset_total", "stator_mapping_rules", "stator_tcp_connections",
        "stator_tag_policy_total", "stator_tag_values_limited_total", "stator_tag_values_tracked",
        "stator_udp_kernel_drops_total",
        "stator_series_active",
        "stator_flushes_total",
        "stator_flush_duration_seconds", "stator_flush_interval_seconds", "stator_sink_errors_total",
        "stator_series_dropped_total", "stator_http_connections_closed_total", "stator_accept_failures_total",
        "stator_push_requests_total", "stator_push_series_total", "stator_push_retries_total",
        "stator_push_dropped_series_total", "stator_push_queue_bytes", "stator_graphite_queue_bytes", "stator_rollup_usage_ratio",
        "stator_rollup_queries_failed_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds",
        "process_open_fds", "process_max_fds",
    ]

    /// The page text.
    public func render() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ series: String, _ value: Double) { out += "\(series) \(PrometheusNumber.format(value))\n" }
        func sample(_ series: String, _ value: UInt64) { out += "\(series) \(value)\n" }

        family(
            "stator_packets_received_total", "counter", "Datagrams received (UDP, Unix), and reads on TCP connections, by input.")
        for input in inputs { sample("stator_packets_received_total{input=\"\(input)\"}", metrics.input(input).packets.value) }
        family("stator_lines_received_total", "counter", "Non-empty statsd lines received, by input.")
        for input in inputs { sample("stator_lines_received_total{input=\"\(input)\"}", metrics.input(input).lines.value) }
        family("stator_lines_invalid_total", "counter", "Lines rejected, by input and reason.")
        for input in inputs {
            for reason in ParseFailure.allCases.sorted(by: { $0.description < $1.description }) {
                sample(
                    "stator_lines_invalid_total{input=\"\(input)\",reason=\"\(reason)\"}",
                    metrics.input(input).invalid[Int(reason.rawValue)].value)
            }
        }
        if inputs.contains(.tcp) {
            family("stator_tcp_connections", "gauge", "Open connections on the TCP input.")
            sample("stator_tcp_connections", metrics.tcpConnections.value)
        }
        family("stator_events_received_total", "counter", "DogStatsD event and service check lines received, valid or not.")
        sample("stator_events_received_total", metrics.eventsReceived.value)
        family(
            "stator_events_total", "counter", "Valid DogStatsD events and service checks, by kind (forwarded, not aggregated).")
        for kind in DogEvent.Kind.allCases {
            sample("stator_events_total{kind=\"\(kind)\"}", metrics.events[Int(kind.rawValue)].value)
        }
        family("stator_lines_dropped_total", "counter", "Valid lines not aggregated, by reason (mapping rules).")
        for reason in DropReason.allCases {
            sample("stator_lines_dropped_total{reason=\"\(reason)\"}", metrics.linesDropped[reason.rawValue].value)
        }
        if let mapping {
            let (mapped, unmapped) = table.newSeriesByMapping
            let counts: [MappingResult: UInt64] = [
                .matched: mapped, .unmatched: unmapped,
                .dropped: metrics.mappingSeries[MappingResult.dropped.rawValue].value,
            ]
            family(
                "stator_mapping_series_total", "counter",
                "New series identities by what the mapping rules said (dropped: new names a drop rule matched).")
            for result in MappingResult.allCases {
                sample("stator_mapping_series_total{result=\"\(result)\"}", counts[result] ?? 0)
            }
            family(
                "stator_mapping_reloads_total", "counter", "Reloads of mapping_config, by result (failure keeps the old rules).")
            sample("stator_mapping_reloads_total{result=\"failure\"}", metrics.mappingReloadsFailed.value)
            sample("stator_mapping_reloads_total{result=\"success\"}", metrics.mappingReloadsSucceeded.value)
            family(
                "stator_mapping_series_reset_total", "counter",
                "Series started again from zero because a reload changed their rule's buckets or observer_type.")
            sample("stator_mapping_series_reset_total", metrics.mappingSeriesResets.value)
            family("stator_mapping_rules", "gauge", "Mapping rules in force.")
            sample("stator_mapping_rules", Double(mapping.ruleCount))
        }
        if let policy = table.configuration.tagPolicy {
            family(
                "stator_tag_policy_total", "counter",
                "Tags the tag policy removed (drop, allow) or hashed (hash), once per new line identity a reader meets.")
            for effect in TagPolicy.Effect.allCases {
                sample("stator_tag_policy_total{policy=\"\(effect)\"}", policy.applied[effect.rawValue].value)
            }
            if let limits = policy.limits {
                family(
                    "stator_tag_values_limited_total", "counter",
                    "Tag values tags.limits replaced by __other__, by the rule's key glob.")
                for (key, count) in limits.limitedCounts {
                    sample("stator_tag_values_limited_total{key=\"\(key)\"}", count)
                }
                family("stator_tag_values_tracked", "gauge", "Tag values tags.limits remembers, over all keys.")
                sample("stator_tag_values_tracked", Double(limits.trackedValues))
            }
        }
        family("stator_udp_kernel_drops_total", "counter", "Datagrams the kernel dropped on our sockets (receive buffer full).")
        sample("stator_udp_kernel_drops_total", metrics.kernelDropsTotal)
        family("stator_series_active", "gauge", "Series tracked (not yet expired through series_ttl).")
        sample("stator_series_active", Double(table.activeSeries))
        family("stator_flushes_total", "counter", "Flushes completed.")
        sample("stator_flushes_total", metrics.flushes.value)
        family("stator_flush_duration_seconds", "gauge", "Duration of the last flush (drain, summarise, hand to sinks).")
        sample("stator_flush_duration_seconds", metrics.lastFlushDuration)
        family("stator_flush_interval_seconds", "gauge", "The configured flush_interval.")
        sample("stator_flush_interval_seconds", flushIntervalSeconds)

        let labeled = metrics.labeledSnapshot()
        for (name, type, help) in [
            ("stator_sink_errors_total", "counter", "Batches a sink failed to take or write, by sink."),
            ("stator_series_dropped_total", "counter", "Series a sink left out, by sink and reason."),
            ("stator_http_connections_closed_total", "counter", "Connections the HTTP server closed, by reason."),
            ("stator_accept_failures_total", "counter", "Connections a listener could not accept for want of resources."),
        ] {
            family(name, type, help)
            for (series, value) in labeled where series.hasPrefix(name + "{") { sample(series, value) }
        }

        out += PushMetrics.render(pushes)
        if let rollup { out += rollup.renderUsage() + rollup.renderQueryFailures() }
        if graphite {
            family("stator_graphite_queue_bytes", "gauge", "Bytes of Graphite text waiting for the connection.")
            sample("stator_graphite_queue_bytes", Double(metrics.graphiteQueueBytes.value))
        }

        let process = ProcessStats.read()
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        sample("process_cpu_seconds_total", process.cpuSeconds)
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        sample("process_resident_memory_bytes", Double(process.residentBytes))
        family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
        sample("process_virtual_memory_bytes", Double(process.virtualBytes))
        family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        sample("process_start_time_seconds", metrics.startTime)
        family("process_open_fds", "gauge", "Number of open file descriptors.")
        sample("process_open_fds", Double(process.openFDs))
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.")
        sample("process_max_fds", Double(process.maxFDs))
        return out
    }
}

/// Figures about this process from `/proc/self`.
struct ProcessStats {
    var cpuSeconds: Double = 0
    var residentBytes: Int = 0
    var virtualBytes: Int = 0
    var openFDs: Int = 0
    var maxFDs: Int = 0

    static func read() -> ProcessStats {
        var s = ProcessStats()
        var usage = rusage()
        if getrusage(Int32(RUSAGE_SELF.rawValue), &usage) == 0 {
            s.cpuSeconds =
                Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = readSmallFile("/proc/self/statm") {
            let fields = statm.split(separator: " ")
            if fields.count > 1 {
                s.virtualBytes = (Int(fields[0]) ?? 0) * page
                s.residentBytes = (Int(fields[1]) ?? 0) * page
            }
        }
        if let dir = opendir("/proc/self/fd") {
            while let entry = readdir(dir) {
                if entry.pointee.d_name.0 != 0x2E { s.openFDs += 1 }  // skip . and ..
            }
            closedir(dir)
            s.openFDs -= 1  // the directory handle itself
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { s.maxFDs = Int(limit.rlim_cur) }
        return s
    }

    /// Reads a small text file in one go (files in /proc report size 0).
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// The number a /proc file such as a sysctl holds, if it can be read.
    static func readNumber(_ path: String) -> Int? { readSmallFile(path).flatMap { Int($0.filter(\.isNumber)) } }
}
