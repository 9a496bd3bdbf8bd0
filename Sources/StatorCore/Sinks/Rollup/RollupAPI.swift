import Synchronization

/// `GET /api/v1/rollups`: the roll-up rows as JSON, a page at a time (docs/rollups.md).
///
/// Parameters: `by` (the configured tag; optional), `key` (one tag value), `name` (a glob on
/// the statsd name), `start` and `end` (inclusive UTC days, `YYYY-MM-DD`), `limit` (rows per
/// page, at most and by default 10,000) and `cursor` (the `next` of the page before). A bad
/// or unknown parameter answers 400 with the reason.
/// A query runs off the HTTP server's thread (`HTTPResponse.later`) within `queryBudget`
/// seconds of its arrival; past it, it stops and answers 503, counted in
/// `stator_rollup_queries_failed_total{reason="timeout"}` and logged once a minute at most.
extension RollupSink {
    static let maxRowsPerPage = 10_000

    /// Why a query was not answered (`stator_rollup_queries_failed_total{reason}`).
    enum QueryFailure: String, CaseIterable {
        /// A bad or unknown parameter (400).
        case badRequest = "bad_request"
        /// Past `queryBudget` (503): a scan too long, or the file locked for reading.
        case timeout
        /// The database could not be read (500).
        case unreadable
        /// `maxQueriesWaiting` queries were already waiting for the worker (503 at once).
        case busy

        var series: String { "stator_rollup_queries_failed_total{reason=\"\(rawValue)\"}" }
    }

    /// `stator_rollup_queries_failed_total{reason}`, every reason (from 0).
    func renderQueryFailures() -> String {
        var out = "# HELP stator_rollup_queries_failed_total Roll-up API queries not answered, by reason.\n"
        out += "# TYPE stator_rollup_queries_failed_total counter\n"
        for failure in QueryFailure.allCases { out += "\(failure.series) \(metrics?.labeledValue(failure.series) ?? 0)\n" }
        return out
    }

    /// Queries that may wait for the server's worker at once. Each holds its connection until
    /// answered (up to `queryBudget`): past this many, a new one answers 503 at once, so that
    /// slow queries can neither starve each other for long nor fill the server's connections
    /// and shut `/metrics` and `/healthz` out.
    static let maxQueriesWaiting = 4

    /// Checks the request on the server's thread, and hands the query to the server's worker.
    public func answer(_ head: HTTPRequestHead) -> HTTPResponse {
        let deadline = WallClock.monotonicSeconds() + queryBudget
        guard head.method == "GET" || head.method == "HEAD" else {
            return .text(405, "method not allowed\n", headers: [("Allow", "GET, HEAD")])
        }
        switch Request.parse(head, by: configuration.by) {
        case .success(let request):
            // Only the server's thread adds, so the check and the add cannot race another add.
            guard queriesWaiting.load(ordering: .acquiring) < Self.maxQueriesWaiting else {
                metrics?.addLabeled(QueryFailure.busy.series)
                if let suppressed = queryLog.admit() {
                    logger.warning(
                        "roll-up query refused: others are waiting",
                        metadata: [("waiting", "\(Self.maxQueriesWaiting)"), ("suppressed", "\(suppressed)")])
                }
                return .text(
                    503, "\(Self.maxQueriesWaiting) roll-up queries are already waiting; try again\n",
                    headers: [("Retry-After", "1")])
            }
            queriesWaiting.add(1, ordering: .acquiringAndReleasing)
            return .later { [self] in
                defer { queriesWaiting.subtract(1, ordering: .acquiringAndReleasing) }
                return answer(request, deadline: deadline)
            }
        case .failure(let reason):
            metrics?.addLabeled(QueryFailure.badRequest.series)
            return .text(400, "\(reason.description)\n")
        }
    }

    /// Runs a checked query.
    /// - Parameter deadline: when its budget ends (`WallClock.monotonicSeconds`).
    func answer(_ request: Request, deadline: Double) -> HTTPResponse {
        let rows: [RollupRow]
        do throws(SQLiteError) {
            // A query that waited for the worker past its budget does not start.
            guard WallClock.monotonicSeconds() < deadline else {
                throw SQLiteError(code: SQLiteDatabase.interrupted, message: "interrupted")
            }
            rows = try self.rows(
                key: request.key, nameGlob: request.name, start: request.start, end: request.end, after: request.cursor,
                limit: request.limit + 1, deadline: deadline)
        } catch {
            let timedOut = error.code == SQLiteDatabase.interrupted || error.code == SQLiteDatabase.busy
            let failure = timedOut ? QueryFailure.timeout : .unreadable
            metrics?.addLabeled(failure.series)
            if let suppressed = queryLog.admit() {
                logger.warning(
                    timedOut ? "roll-up query stopped at its time budget" : "roll-up query failed",
                    metadata: [
                        ("budget_s", "\(queryBudget)"), ("error", error.message), ("suppressed", "\(suppressed)"),
                    ])
            }
            guard timedOut else { return .text(500, "the roll-up database could not be read: \(error.message)\n") }
            return .text(
                503,
                "the query took longer than its \(PrometheusNumber.format(queryBudget)) s budget; narrow it (key, name, start, end, limit)\n",
                headers: [("Retry-After", "1")])
        }
        var w = JSONWriter(capacity: 64 + Swift.min(rows.count, request.limit) * 140)
        w.raw("{\"by\":")
        w.string(configuration.by)
        w.raw(",\"rows\":[")
        for (n, row) in rows.prefix(request.limit).enumerated() {
            if n > 0 { w.raw(",") }
            w.raw("{\"day\":")
            w.string(row.day)
            w.raw(",\"key\":")
            w.string(row.key)
            w.raw(",\"name\":")
            w.string(row.name)
            w.raw(",\"type\":")
            w.string(row.type)
            for (field, value) in [
                (",\"sum\":", row.sum), (",\"count\":", row.count), (",\"min\":", row.min), (",\"max\":", row.max),
                (",\"last\":", row.last),
            ] {
                w.text(field)
                if let value { w.number(value) } else { w.raw("null") }
            }
            w.raw("}")
        }
        w.raw("],\"next\":")
        if rows.count > request.limit, let last = rows.prefix(request.limit).last {
            w.string(Request.encode(RollupStore.Cursor(key: last.key, day: last.day, name: last.name, type: last.type)))
        } else {
            w.raw("null")
        }
        w.raw("}\n")
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: w.bytes)
    }

    struct BadRequest: Error, CustomStringConvertible {
        let description: String
    }

    /// The parameters of one query, checked.
    struct Request {
        var key: String?
        var name: String?
        var start = "0000-01-01"
        var end = "9999-12-31"
        var limit = RollupSink.maxRowsPerPage
        var cursor: RollupStore.Cursor?

        static func parse(_ head: HTTPRequestHead, by: String) -> Result<Request, BadRequest> {
            guard let parameters = head.queryParameters else {
                return .failure(BadRequest(description: "the query string is not valid percent-encoded UTF-8"))
            }
            var request = Request()
            var seen = Set<String>()
            for (name, value) in parameters {
                guard seen.insert(name).inserted else { return .failure(BadRequest(description: "\(name) is given twice")) }
                switch name {
                case "by":
                    guard value == by else {
                        return .failure(
                            BadRequest(
                                description: "by must be \(by), the tag roll-ups are kept by (sinks.rollup.by), got \(value)"))
                    }
                case "key":
                    guard !value.isEmpty else { return .failure(BadRequest(description: "key must not be empty")) }
                    request.key = value
                case "name":
                    guard !value.isEmpty else { return .failure(BadRequest(description: "name must not be empty")) }
                    request.name = value
                case "start", "end":
                    guard isDay(value) else {
                        return .failure(BadRequest(description: "\(name) must be a day as YYYY-MM-DD, got \(value)"))
                    }
                    if name == "start" { request.start = value } else { request.end = value }
                case "limit":
                    guard let n = Int(value), n >= 1, n <= RollupSink.maxRowsPerPage else {
                        return .failure(
                            BadRequest(description: "limit must be from 1 to \(RollupSink.maxRowsPerPage), got \(value)"))
                    }
                    request.limit = n
                case "cursor":
                    guard let cursor = decode(value) else {
                        return .failure(BadRequest(description: "cursor is not a next value this API gave"))
                    }
                    request.cursor = cursor
                default:
                    return .failure(
                        BadRequest(description: "unknown parameter \(name) (by, key, name, start, end, limit, cursor)"))
                }
            }
            guard request.start <= request.end else {
                return .failure(BadRequest(description: "start \(request.start) is after end \(request.end)"))
            }
            return .success(request)
        }

        /// A real calendar day written `YYYY-MM-DD`.
        static func isDay(_ text: String) -> Bool {
            let bytes = Array(text.utf8)
            guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
                bytes.enumerated().allSatisfy({ $0.offset == 4 || $0.offset == 7 || ($0.element >= 48 && $0.element <= 57) })
            else { return false }
            // timegm normalises 2026-02-30 to March 2nd: a real day comes back as written.
            return RollupSink.day(of: RollupSink.millis(ofDay: text)) == text
        }

        /// The cursor as hex of its four fields joined by NUL bytes.
        static func encode(_ cursor: RollupStore.Cursor) -> String {
            let bytes = Array([cursor.key, cursor.day, cursor.name, cursor.type].joined(separator: "\u{0}").utf8)
            var out: [UInt8] = []
            for b in bytes {
                out.append(Hex.digit(b >> 4))
                out.append(Hex.digit(b & 15))
            }
            return String(decoding: out, as: UTF8.self)
        }

        static func decode(_ text: String) -> RollupStore.Cursor? {
            let hex = Array(text.utf8)
            guard hex.count % 2 == 0, hex.count <= 8192 else { return nil }
            var bytes: [UInt8] = []
            var i = 0
            while i < hex.count {
                guard let hi = nibble(hex[i]), let lo = nibble(hex[i + 1]) else { return nil }
                bytes.append(hi << 4 | lo)
                i += 2
            }
            guard let joined = String(validating: bytes, as: UTF8.self) else { return nil }
            let parts = joined.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 4 else { return nil }
            return RollupStore.Cursor(key: parts[0], day: parts[1], name: parts[2], type: parts[3])
        }

        private static func nibble(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): b - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): b - 87
            default: nil
            }
        }
    }
}
