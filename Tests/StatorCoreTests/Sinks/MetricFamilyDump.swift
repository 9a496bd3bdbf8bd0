@testable import StatorCore

/// Reads delimited `io.prometheus.client.MetricFamily` messages back, field by field, into the
/// protobuf text format (one field a line, a message of scalars on one line), so that tests
/// compare whole pages exactly. Field numbers and types are those of Prometheus'
/// `prompb/io/prometheus/client/metrics.proto` (a copy of client_model's
/// `io/prometheus/client/metrics.proto`), written out here independently of the encoder.
enum MetricFamilyDump {
    enum Kind {
        case string, uint, sint, double
        case message(String)
        case packedSint, packedDouble
    }

    static let schema: [String: [UInt64: (String, Kind)]] = [
        "MetricFamily": [
            1: ("name", .string), 2: ("help", .string), 3: ("type", .uint), 4: ("metric", .message("Metric")),
            5: ("unit", .string),
        ],
        "Metric": [
            1: ("label", .message("LabelPair")), 2: ("gauge", .message("Gauge")), 3: ("counter", .message("Counter")),
            4: ("summary", .message("Summary")), 5: ("untyped", .message("Untyped")), 6: ("timestamp_ms", .uint),
            7: ("histogram", .message("Histogram")),
        ],
        "LabelPair": [1: ("name", .string), 2: ("value", .string)],
        "Gauge": [1: ("value", .double)],
        "Counter": [1: ("value", .double)],
        "Untyped": [1: ("value", .double)],
        "Summary": [1: ("sample_count", .uint), 2: ("sample_sum", .double), 3: ("quantile", .message("Quantile"))],
        "Quantile": [1: ("quantile", .double), 2: ("value", .double)],
        "Histogram": [
            1: ("sample_count", .uint), 4: ("sample_count_float", .double), 2: ("sample_sum", .double),
            3: ("bucket", .message("Bucket")), 5: ("schema", .sint), 6: ("zero_threshold", .double),
            7: ("zero_count", .uint), 8: ("zero_count_float", .double), 9: ("negative_span", .message("BucketSpan")),
            10: ("negative_delta", .packedSint), 11: ("negative_count", .packedDouble),
            12: ("positive_span", .message("BucketSpan")), 13: ("positive_delta", .packedSint),
            14: ("positive_count", .packedDouble),
        ],
        "Bucket": [1: ("cumulative_count", .uint), 4: ("cumulative_count_float", .double), 2: ("upper_bound", .double)],
        "BucketSpan": [1: ("offset", .sint), 2: ("length", .uint)],
    ]

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Each family of a delimited page, dumped.
    static func families(_ page: [UInt8]) throws -> [String] {
        var result: [String] = []
        var position = 0
        while position < page.count {
            guard let length = Varint.read(page[...], at: &position), Int(length) <= page.count - position else {
                throw Failure(description: "a length prefix runs past the page at \(position)")
            }
            result.append(try dump(page[position..<position + Int(length)], "MetricFamily", indent: ""))
            position += Int(length)
        }
        return result
    }

    /// The families whose name is `name`.
    static func family(_ page: [UInt8], _ name: String) throws -> String? {
        try families(page).first { $0.hasPrefix("name: \"\(name)\"\n") }
    }

    static func dump(_ bytes: ArraySlice<UInt8>, _ type: String, indent: String) throws -> String {
        guard let fields = schema[type] else { throw Failure(description: "no schema for \(type)") }
        var reader = ProtobufReader(bytes)
        var lines: [String] = []
        while let (number, value) = reader.next() {
            guard let (name, kind) = fields[number] else { throw Failure(description: "\(type) has no field \(number)") }
            switch (kind, value) {
            case (.string, .bytes(let b)): lines.append("\(name): \"\(String(decoding: b, as: UTF8.self))\"")
            case (.uint, .varint(let v)): lines.append("\(name): \(v)")
            case (.sint, .varint(let v)): lines.append("\(name): \(unzigzag(v))")
            case (.double, .fixed64(let v)): lines.append("\(name): \(Self.number(Double(bitPattern: v)))")
            case (.packedSint, .bytes(let b)):
                var p = b.startIndex
                var values: [String] = []
                while p < b.endIndex {
                    guard let v = Varint.read(b, at: &p) else { throw Failure(description: "bad packed \(name)") }
                    values.append("\(unzigzag(v))")
                }
                lines.append("\(name): [\(values.joined(separator: ", "))]")
            case (.packedDouble, .bytes(let b)):
                guard b.count % 8 == 0 else { throw Failure(description: "bad packed \(name)") }
                var values: [String] = []
                var p = b.startIndex
                while p < b.endIndex {
                    var bits: UInt64 = 0
                    for k in 0..<8 { bits |= UInt64(b[p + k]) << (8 * UInt64(k)) }
                    values.append(Self.number(Double(bitPattern: bits)))
                    p += 8
                }
                lines.append("\(name): [\(values.joined(separator: ", "))]")
            case (.message(let inner), .bytes(let b)):
                let body = try dump(b, inner, indent: indent + "  ")
                // Flat when every line is a scalar (`name: value`), not a message.
                let scalars = body.split(separator: "\n").allSatisfy { line in
                    line.drop { $0 == " " }.prefix { $0 != " " }.hasSuffix(":")
                }
                if !scalars {
                    lines.append("\(name) {\n\(body)\(indent)}")
                } else {
                    let flat = body.split(separator: "\n").map { $0.drop { $0 == " " } }
                    lines.append("\(name) { \(flat.joined(separator: " ")) }")
                }
            default:
                throw Failure(description: "\(type).\(name): unexpected wire type")
            }
        }
        return lines.map { "\(indent)\($0)\n" }.joined()
    }

    private static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    private static func number(_ v: Double) -> String { PrometheusNumber.format(v) }
}
