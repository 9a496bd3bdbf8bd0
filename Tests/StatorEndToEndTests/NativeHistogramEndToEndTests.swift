import Foundation
import StatorCore
import Testing

/// SPEC section 13 from outside: the protobuf page a native-histogram scraper asks for, and a
/// real Prometheus reading native histograms from it.

/// What Debian's Prometheus (2.42) sends with `--enable-feature=native-histograms`.
private let prometheusAccept =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    + "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,"
    + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

/// One GET of `/metrics` with extra header lines: the head (lowercased) and the body bytes.
private func scrapeBytes(_ agent: StatorProcess, headers: String) throws -> (head: String, body: [UInt8]) {
    let reply = try rawHTTPBytes(port: agent.httpPort, "GET /metrics HTTP/1.1\r\n\(headers)Connection: close\r\n\r\n")
    let split = try #require(reply.firstRange(of: Array("\r\n\r\n".utf8)))
    return (String(decoding: reply[..<split.lowerBound], as: UTF8.self).lowercased(), Array(reply[split.upperBound...]))
}

/// The fields of one protobuf message, by number, in order (enough of the wire format to read
/// a MetricFamily: varints, fixed 64-bit and length-delimited fields).
private func fields(_ bytes: ArraySlice<UInt8>) throws -> [(number: UInt64, varint: UInt64, bytes: ArraySlice<UInt8>)] {
    var out: [(UInt64, UInt64, ArraySlice<UInt8>)] = []
    var p = bytes.startIndex
    func varint() throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while p < bytes.endIndex {
            let b = bytes[p]
            p += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        throw TestFailure("a varint runs past its message")
    }
    while p < bytes.endIndex {
        let key = try varint()
        switch key & 7 {
        case 0: out.append((key >> 3, try varint(), []))
        case 1:
            guard bytes.endIndex - p >= 8 else { throw TestFailure("a fixed64 runs past its message") }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[p + k]) << (8 * UInt64(k)) }
            out.append((key >> 3, v, bytes[p..<p + 8]))
            p += 8
        case 2:
            let n = Int(try varint())
            guard bytes.endIndex - p >= n else { throw TestFailure("a field runs past its message") }
            out.append((key >> 3, 0, bytes[p..<p + n]))
            p += n
        default: throw TestFailure("wire type \(key & 7)")
        }
    }
    return out
}

/// The delimited MetricFamily messages of a page, by name (field 1).
private func families(_ page: [UInt8]) throws -> [String: ArraySlice<UInt8>] {
    var result: [String: ArraySlice<UInt8>] = [:]
    var p = 0
    while p < page.count {
        var length = 0
        var shift = 0
        while true {
            let b = page[p]
            p += 1
            length |= Int(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        let message = page[p..<p + length]
        p += length
        let name = try fields(message).first { $0.number == 1 }.map { String(decoding: $0.bytes, as: UTF8.self) }
        result[name ?? ""] = message
    }
    return result
}

extension HeavyEndToEndTests {
    // Budget: 6.3 s plain (2026-12-07; not yet timed under TSan), mostly Prometheus' 1 s scrapes; its waits are 45 s.
    @Test func aRealPrometheusReadsNativeHistogramsFromTheProtobufPage() throws {
        let agent = try StatorProcess(agent: [
            "--flush_interval", "200ms", "--sinks.json.path", "", "--histograms.native", "true",
        ])
        try agent.send("nh.lat:100|ms\nnh.lat:100|ms\nnh.lat:300|ms\nnh.hits:2|c|#env:ci\nnh.rated:1|h|@0.3")
        try eventually("the flush") { try httpRequest(port: agent.httpPort, "/metrics").body.contains("nh_lat_seconds_count 3") }

        // A plain request (no Accept) still gets the text page, classic buckets and all.
        let plain = try scrapeBytes(agent, headers: "")
        #expect(plain.head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"))
        let text = String(decoding: plain.body, as: UTF8.self)
        #expect(text.contains("nh_lat_seconds_bucket{le=\"0.1\"} 2\nnh_lat_seconds_bucket{le=\"0.25\"} 2\n"))
        #expect(text.contains("nh_hits_total{env=\"ci\"} 2\n"))

        // Prometheus' Accept gets the protobuf page, gzipped when asked, the same either way.
        let proto = try scrapeBytes(agent, headers: "Accept: \(prometheusAccept)\r\n")
        #expect(proto.head.contains("content-type: \(ExpositionFormat.protobufContentType.lowercased())"))
        let zipped = try scrapeBytes(agent, headers: "Accept: \(prometheusAccept)\r\nAccept-Encoding: gzip\r\n")
        #expect(zipped.head.contains("content-encoding: gzip"))
        let page = try families(proto.body)
        #expect(try families(try #require(Gzip.decompress(zipped.body))).keys.sorted() == page.keys.sorted())
        // The histogram's one metric carries classic buckets (field 3) beside its native ones:
        // schema 3 (field 5, zigzag 6) and positive spans (field 12).
        let family = try fields(try #require(page["nh_lat_seconds"]))
        #expect(family.first { $0.number == 3 }?.varint == 4)  // HISTOGRAM
        let metric = try fields(try #require(family.first { $0.number == 4 }?.bytes))
        let histogram = try fields(try #require(metric.first { $0.number == 7 }?.bytes))
        #expect(histogram.first { $0.number == 1 }?.varint == 3)
        #expect(histogram.first { $0.number == 5 }?.varint == 6)
        #expect(histogram.contains { $0.number == 12 })
        let buckets = try histogram.filter { $0.number == 3 }.map { bucket in
            let f = try fields(bucket.bytes)
            return (
                try #require(f.first { $0.number == 1 }).varint,
                Double(bitPattern: try #require(f.first { $0.number == 2 }).varint)
            )
        }
        #expect(buckets.map(\.0) == [0, 0, 0, 0, 2, 2, 3, 3, 3, 3, 3])
        #expect(buckets.map(\.1) == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
        #expect(page["stator_lines_received_total"] != nil)
        #expect(page["process_start_time_seconds"] != nil)

        // A real Prometheus with native histograms on stores the native histogram.
        // (Prometheus 2.42 ingests only the native one of a histogram that has both;
        // `scrape_classic_histograms`, which keeps both, came in 2.45. The classic buckets
        // are checked in the page above.)
        let prometheus = try PrometheusServer(
            scrapeTargets: [agent.httpPort], extraFlags: ["--enable-feature=native-histograms"])
        var count: Double?
        try eventually(timeout: 45, "prometheus to scrape the agent") {
            count = try? prometheus.query("histogram_count(nh_lat_seconds{job=\"stator\"})")
            return count != nil || !prometheus.process.isRunning
        }
        #expect(prometheus.process.isRunning, "prometheus exited: \(prometheus.log.text)")
        #expect(count == 3)
        #expect(try prometheus.query("histogram_sum(nh_lat_seconds)") == 0.5)
        // Native buckets (schema 3): 0.1 s lies in (2^(-27/8), 2^(-26/8)] = (0.0964, 0.1051],
        // 0.3 s in (0.2973, 0.3242]; none straddles 0.2, so the fraction below it is exact.
        #expect(try prometheus.query("histogram_fraction(0, 0.2, nh_lat_seconds)") == 2.0 / 3.0)
        #expect(try prometheus.query("nh_hits_total{env=\"ci\"}") == 2)
        // A count made fractional by a sample rate arrives as a float histogram.
        #expect(try prometheus.query("histogram_count(nh_rated)") == 1 / 0.3)
        #expect(try prometheus.query("histogram_sum(nh_rated)") == 1 / 0.3)
        #expect(try prometheus.query("stator_lines_received_total") == 5)
        #expect(try prometheus.query("up{job=\"stator\"}") == 1)
        #expect(try agent.stop() == 0)
    }
}
