/// The pages `/metrics` serves, and which one a request's `Accept` header asks for.
public enum ExpositionFormat: Sendable, Equatable {
    /// The text format 0.0.4 (SPEC section 4).
    case text
    /// Length-delimited `io.prometheus.client.MetricFamily` messages (SPEC section 13).
    case protobuf

    /// The protobuf page's `Content-Type`, as Prometheus names the format.
    public static let protobufContentType =
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

    /// The format for a request whose `Accept` headers are `accept` (several header lines
    /// count as one comma-separated list), by HTTP's content negotiation (RFC 9110, section
    /// 12.5.1):
    /// - each media range has a q-value, 1 unless it says otherwise; `q=0`, or a q that is
    ///   not a number from 0 to 1, makes it not acceptable;
    /// - the protobuf page is `application/vnd.google.protobuf` with
    ///   `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`; the text page is
    ///   `text/plain` without a version or with `version=0.0.4`, else `text/*`, else `*/*` (a
    ///   format takes the q of the most specific range naming it; wildcards name only the text
    ///   page, which any client can read);
    /// - the format with the higher q wins; of two with the same q, the one whose range comes
    ///   first in the header (the scraper listed it first);
    /// - no header, or none of our formats acceptable: the text page (`/metrics` always
    ///   answers; a client that asked for something else gets what section 4 promises).
    ///
    /// Media types and parameter names are compared ignoring case (RFC 9110 makes them
    /// case-insensitive; Go's `mime.ParseMediaType` lowercases them), as is the `encoding`
    /// token; the `proto` value is a protobuf message name, so it must match exactly. Quotes
    /// around a parameter value are dropped.
    public static func negotiate(accept: [String]) -> ExpositionFormat {
        var text: (specificity: Int, q: Double, position: Int) = (-1, 0, 0)
        var protobuf: (q: Double, position: Int)? = nil
        var position = 0
        for header in accept {
            for range in header.split(separator: ",") {
                defer { position += 1 }
                guard let parsed = MediaRange(range) else { continue }
                if parsed.isPrometheusProtobuf {
                    if protobuf == nil { protobuf = (parsed.q, position) }
                } else if let specificity = parsed.textSpecificity, specificity > text.specificity {
                    text = (specificity, parsed.q, position)
                }
            }
        }
        guard let protobuf, protobuf.q > 0 else { return .text }
        if text.specificity < 0 || protobuf.q > text.q || (protobuf.q == text.q && protobuf.position < text.position) {
            return .protobuf
        }
        return .text
    }

    /// `negotiate(accept:)` with the `Accept` headers of a request.
    public static func negotiate(_ head: HTTPRequestHead) -> ExpositionFormat {
        negotiate(accept: head.headers.filter { $0.name == "accept" }.map(\.value))
    }
}

/// One media range of an `Accept` header: `type/subtype;name=value;q=0.5`.
private struct MediaRange {
    var type: Substring
    var subtype: Substring
    var q = 1.0
    var proto: Substring? = nil
    var encoding: Substring? = nil
    var version: Substring? = nil

    /// Parses a range; nil when it has no `type/subtype`.
    init?(_ text: Substring) {
        var fields = text.split(separator: ";", omittingEmptySubsequences: false).makeIterator()
        guard let media = fields.next().map(Self.trimmed) else { return nil }
        let parts = media.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        type = Self.trimmed(parts[0])
        subtype = Self.trimmed(parts[1])
        guard !type.isEmpty, !subtype.isEmpty else { return nil }
        while let field = fields.next() {
            guard let equals = field.firstIndex(of: "=") else { continue }
            let name = Self.trimmed(field[..<equals])
            var value = Self.trimmed(field[field.index(after: equals)...])
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            if Self.same(name, "q") {
                // Not a number from 0 to 1: not acceptable, as Go's parser reads a q it cannot parse as 0.
                guard let q = Double(value), q >= 0, q <= 1 else {
                    self.q = 0
                    continue
                }
                self.q = q
            } else if Self.same(name, "proto") {
                proto = value
            } else if Self.same(name, "encoding") {
                encoding = value
            } else if Self.same(name, "version") {
                version = value
            }
        }
    }

    var isPrometheusProtobuf: Bool {
        Self.same(type, "application") && Self.same(subtype, "vnd.google.protobuf")
            && proto == "io.prometheus.client.MetricFamily" && encoding.map { Self.same($0, "delimited") } == true
    }

    /// How specifically the range names the text page: 2 `text/plain` (no version or 0.0.4),
    /// 1 `text/*`, 0 `*/*`; nil when it does not.
    var textSpecificity: Int? {
        if type == "*" && subtype == "*" { return 0 }
        guard Self.same(type, "text") else { return nil }
        if subtype == "*" { return 1 }
        guard Self.same(subtype, "plain"), version == nil || version == "0.0.4" else { return nil }
        return 2
    }

    private static func same(_ a: Substring, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && zip(a.utf8, b.utf8).allSatisfy { lower($0) == lower($1) }
    }

    private static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    private static func trimmed(_ s: Substring) -> Substring {
        var s = s
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
