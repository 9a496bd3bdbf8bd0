/// Wires the pipeline: receive -> parse -> aggregate -> flush -> sinks, plus
/// the HTTP server. Binding happens in `init`, so a port in use is reported
/// before anything is served.
public final class Agent: Sendable {
    public let configuration: StatorConfiguration
    private let logger: Logger
    private let metrics: SelfMetrics
    private let table: ShardedTable
    private let receiver: Receiver
    /// The TCP input (`tcp.address`), when configured.
    private let tcp: TCPInput?
    private let fanout: SinkFanout
    private let flusher: Flusher
    private let http: HTTPServer
    /// `/api/v1/top`'s tables, fed with every batch.
    private let top: TopStatistics
    /// The mapping rules (`mapping_config`), when configured.
    private let mapping: MappingRules?

    /// The bound UDP address (its real port when 0 was configured).
    public var udpAddress: String { receiver.boundAddress }
    /// The bound TCP address, when the TCP input is on.
    public var tcpAddress: String? { tcp?.boundAddress }
    /// The bound HTTP address.
    public var httpAddress: String { http.boundAddress }

    /// Builds every stage and binds the sockets.
    /// - Parameters:
    ///   - configuration: the effective configuration.
    ///   - extraSinks: sinks of your own, after the built-in ones.
    /// - Throws: `ConfigError` or `SystemError` (address in use, ...).
    public init(configuration: StatorConfiguration, logger: Logger, extraSinks: [any Sink] = []) throws {
        self.configuration = configuration
        self.logger = logger
        let metrics = SelfMetrics(readers: configuration.udp.readers)
        self.metrics = metrics
        var aggregation = configuration.aggregation
        var nativeBase = configuration.histograms.options
        nativeBase.keepsStatsdUnit = configuration.pushes.contains { !$0.url.isEmpty && $0.format == .otlp }
        let native = configuration.histograms.native ? nativeBase : nil
        aggregation.buckets = configuration.prometheus.buckets.with(native: native)
        var mapping: MappingRules?
        if !configuration.mappingConfig.isEmpty {
            let rules = try MappingRules(
                path: configuration.mappingConfig,
                options: MappingOptionsRegistry(
                    defaultBuckets: configuration.prometheus.buckets.defaults.upperBounds, native: native,
                    nativeBase: nativeBase),
                maxNameBytes: configuration.aggregation.lineLimits.maxNameBytes)
            for key in rules.ignoredKeys {
                logger.warning("mapping_config: key accepted but not used by Stator", metadata: [("key", key)])
            }
            mapping = rules
        }
        self.mapping = mapping
        aggregation.mapping = mapping
        aggregation.tagPolicy = try TagPolicy(configuration.tags)
        let table = ShardedTable(configuration: aggregation)
        self.table = table
        receiver = try Receiver(
            configuration: configuration.udp, unixgram: configuration.unixgram, table: table, metrics: metrics,
            logger: logger.child("stator.receive"))
        tcp =
            configuration.tcp.address.isEmpty
            ? nil
            : try TCPInput(configuration: configuration.tcp, table: table, metrics: metrics, logger: logger.child("stator.tcp"))
        let prometheus = PrometheusSink(
            configuration: configuration.prometheus, metrics: metrics, reservedNames: SelfMetricsPage.familyNames,
            logger: logger.child("stator.prometheus"), mappingOptions: mapping?.options)
        var sinks: [any Sink] = [prometheus]
        if !configuration.json.path.isEmpty { sinks.append(JSONLinesSink(configuration: configuration.json, metrics: metrics)) }
        var pushMetrics: [PushMetrics] = []
        for (position, var push) in configuration.pushes.enumerated() where !push.url.isEmpty {
            if push.name.isEmpty { push.name = HTTPPushConfiguration.defaultName(position: position) }
            let measured = PushMetrics(sink: push.name, selfMetrics: metrics)
            pushMetrics.append(measured)
            sinks.append(
                try HTTPPushSink(
                    configuration: push, state: prometheus.state, metrics: measured,
                    logger: logger.child("stator.push").with(("sink", push.name))))
        }
        if !configuration.graphite.address.isEmpty {
            sinks.append(
                GraphiteSink(configuration: configuration.graphite, metrics: metrics, logger: logger.child("stator.graphite")))
        }
        let rollup =
            configuration.rollup.path.isEmpty
            ? nil : try RollupSink(configuration: configuration.rollup, metrics: metrics, logger: logger.child("stator.rollup"))
        if let rollup { sinks.append(rollup) }
        sinks.append(contentsOf: extraSinks)
        let fanout = SinkFanout(sinks: sinks, metrics: metrics, logger: logger.child("stator.sinks"))
        self.fanout = fanout
        let top = TopStatistics(
            metrics: metrics, sinks: { fanout.health() }, mapping: mapping, logger: logger.child("stator.top"))
        self.top = top
        flusher = Flusher(
            table: table, configuration: configuration.flush, startMillis: SystemFlushClock().monotonicMillis(),
            metrics: metrics, logger: logger.child("stator.flush")
        ) {
            fanout.publish($0)
            top.offer($0)
        }
        let page = SelfMetricsPage(
            metrics: metrics, table: table, pushes: pushMetrics, mapping: mapping,
            inputs: [.udp] + (configuration.unixgram.path.isEmpty ? [] : [.unixgram])
                + (configuration.tcp.address.isEmpty ? [] : [.tcp]),
            flushIntervalSeconds: Double(configuration.flush.intervalMillis) / 1000,
            graphite: !configuration.graphite.address.isEmpty, rollup: rollup)
        let reload = Agent.reloader(mapping: mapping, metrics: metrics, logger: logger.child("stator.mapping"))
        http = try HTTPServer(configuration: configuration.http, logger: logger.child("stator.http"), metrics: metrics) {
            Agent.route($0, page: page, prometheus: prometheus, rollup: rollup, top: top, reload: reload)
        }
        servedRoutes = HTTPRoute.allCases.filter { $0 != .rollups || rollup != nil }
        reloadMapping = reload
    }

    /// Re-reads `mapping_config` (SIGHUP, `POST /-/reload`): the rules in force, or why the
    /// file was refused (the old rules stay).
    private let reloadMapping: @Sendable () -> Result<Int, ConfigError>

    private static func reloader(
        mapping: MappingRules?, metrics: SelfMetrics, logger: Logger
    ) -> @Sendable () -> Result<Int, ConfigError> {
        // Anyone who can reach the HTTP port can ask for reloads: a line a second at most
        // (with what it held back), each one counted all the same.
        let reloadLog = RateLimiter(period: 1)
        let failureLog = RateLimiter(period: 1)
        return {
            guard let mapping else { return .failure(ConfigError("no mapping_config is configured: nothing to reload")) }
            do throws(ConfigError) {
                let rules = try mapping.reload()
                metrics.mappingReloadsSucceeded.add(1)
                if let suppressed = reloadLog.admit() {
                    logger.info(
                        "mapping rules reloaded",
                        metadata: [("rules", "\(rules)"), ("path", mapping.path), ("suppressed", "\(suppressed)")])
                }
                return .success(rules)
            } catch {
                metrics.mappingReloadsFailed.add(1)
                if let suppressed = failureLog.admit() {
                    logger.error(
                        "mapping rules not reloaded: the old rules stay",
                        metadata: [("error", error.message), ("suppressed", "\(suppressed)")])
                }
                return .failure(error)
            }
        }
    }

    /// The routes this agent serves: every `HTTPRoute`, the roll-up API only with `sinks.rollup.path`.
    private let servedRoutes: [HTTPRoute]

    /// The router: each path of `HTTPRoute` (the roll-up API only when `rollup` is on), every
    /// other path 404, a method its route does not take 405. `/metrics` is the statsd series as
    /// of the last flush, then the agent's own metrics read live: the text page, or the
    /// protobuf page when the `Accept` header prefers it (SPEC section 13); gzip when accepted.
    static func route(
        _ head: HTTPRequestHead, page: SelfMetricsPage, prometheus: PrometheusSink, rollup: RollupSink? = nil,
        top: TopStatistics? = nil,
        reload: () -> Result<Int, ConfigError> = { .failure(ConfigError("no mapping_config is configured: nothing to reload")) }
    ) -> HTTPResponse {
        guard let route = HTTPRoute(rawValue: head.path), route != .rollups || rollup != nil else {
            return .text(404, "not found\n")
        }
        guard route.methods.contains(head.method) else {
            return .text(405, "method not allowed\n", headers: [("Allow", route.methods.joined(separator: ", "))])
        }
        switch route {
        case .healthz:
            return .text(200, "ok\n")
        case .reload:
            switch reload() {
            case .success(let rules): return .text(200, "reloaded: \(rules) mapping rules\n")
            case .failure(let error): return .text(400, "\(error.message)\n")
            }
        case .rollups:
            return rollup?.answer(head) ?? .text(404, "not found\n")
        case .top:
            return top?.answer(head) ?? .text(404, "not found\n")
        case .page, .pageScript, .pageStyle:
            return TopPage.response(route)
        case .metrics:
            break
        }
        let format = ExpositionFormat.negotiate(head)
        let statsd = prometheus.page(format)
        let ownText = Array(page.render().utf8)
        let body: PageBody
        let own: [UInt8]
        var headers: [(String, String)]
        if format == .protobuf, let protobuf = statsd.protobuf {
            body = protobuf
            own = PrometheusProtobufEncoder.encode(text: ownText)
            headers = [("Content-Type", ExpositionFormat.protobufContentType)]
        } else {
            body = statsd.text
            own = ownText
            headers = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]
        }
        headers.append(("Vary", "Accept-Encoding, Accept"))
        guard head.acceptsGzip else {
            // A large page is kept gzipped only: inflate it as the client reads it.
            if let stream = body.plainStream() {
                return HTTPResponse(status: 200, headers: headers, stream: stream, streamLength: body.length, parts: [own])
            }
            return HTTPResponse(status: 200, headers: headers, parts: [body.body, own])
        }
        // gzip members concatenate: the page's (compressed once per flush) then the live part's.
        headers.append(("Content-Encoding", "gzip"))
        let parts = body.isEmpty ? [Gzip.compress(own)] : [body.gzipped, Gzip.compress(own)]
        return HTTPResponse(status: 200, headers: headers, parts: parts)
    }

    /// Starts reading, flushing and serving; returns at once.
    public func start() -> AgentHandle {
        receiver.start()
        tcp?.start()
        http.start()
        let flusher = self.flusher
        let thread = WorkerThread(name: "flusher") { flusher.runLoop() }
        logger.info(
            "stator started",
            metadata: [
                ("udp.address", udpAddress), ("http.address", httpAddress),
                ("unixgram.path", receiver.unixPath ?? ""), ("tcp.address", tcpAddress ?? ""),
                ("flush_interval", ConfigDuration.format(configuration.flush.intervalMillis)),
            ])
        warnAboutExposure()
        return AgentHandle(agent: self, flushThread: thread)
    }

    /// Stator authenticates no one (SPEC section 12): says once, at start, which listeners
    /// other machines can reach. The Unix socket is local: its file mode says who may write.
    private func warnAboutExposure() {
        var listeners = [
            ("udp.address", udpAddress, "write series"), ("http.address", httpAddress, HTTPRoute.list(servedRoutes)),
        ]
        if let tcpAddress { listeners.append(("tcp.address", tcpAddress, "write series")) }
        for (key, address, what) in listeners {
            guard let parsed = try? SocketAddress(parsing: address), !parsed.isLoopback else { continue }
            logger.warning(
                "listening beyond loopback without authentication: whoever can reach this address can \(what) (see docs/security.md)",
                metadata: [("key", key), ("address", address)])
        }
    }

    /// Reopens the sinks' files and reloads the mapping rules (SIGHUP).
    public func reopen() {
        logger.info("reopening sink files")
        fanout.reopen()
        if mapping != nil { _ = reloadMapping() }
    }

    fileprivate func shutdown(flushThread: WorkerThread) {
        logger.info("shutting down: draining sockets and flushing the last interval")
        // The whole shutdown ends within the sinks' grace plus one second, however much
        // traffic still arrives and however many targets are dead: the inputs drain for at
        // most a second, then every sink gets the grace (ending at most 5.5 s after the
        // signal), all at once, and is left behind half a second past it.
        let started = WallClock.monotonicSeconds()
        receiver.stop(drainUntil: started + SinkShutdown.drainSeconds)
        tcp?.stop(drainUntil: started + SinkShutdown.drainSeconds)
        flusher.stop()
        flushThread.join()
        flusher.flushNow()
        let deadline = min(WallClock.monotonicSeconds() + SinkShutdown.graceSeconds, started + SinkShutdown.graceSeconds + 0.5)
        fanout.shutdown(deadline: deadline, abandonAfter: 0.5)
        http.stop()
        top.stop()
        logger.info("stator stopped")
    }
}

/// A running agent; `shutdown()` stops it.
public struct AgentHandle: Sendable {
    public let agent: Agent
    let flushThread: WorkerThread

    /// Stops reading after draining the sockets, flushes the partial interval to every sink, stops serving.
    public func shutdown() { agent.shutdown(flushThread: flushThread) }
}
