/// A parsed HTTP/1.x request line and headers.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The path, without the query string.
    public var path: String
    /// The query string (after `?`), as received; empty when there is none.
    public var query: String = ""
    /// `1.0` -> 0, `1.1` -> 1.
    public var minorVersion: Int
    /// Header names lowercased, in the order received.
    public var headers: [(name: String, value: String)]

    public init(
        method: String, path: String, query: String = "", minorVersion: Int = 1, headers: [(name: String, value: String)] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.minorVersion = minorVersion
        self.headers = headers
    }

    public static func == (a: HTTPRequestHead, b: HTTPRequestHead) -> Bool {
        a.method == b.method && a.path == b.path && a.minorVersion == b.minorVersion
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    /// The first value of header `name` (lowercase).
    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    /// Whether the connection stays open after the response.
    public var keepAlive: Bool {
        let connection = header("connection")?.lowercased() ?? ""
        return minorVersion >= 1 ? !connection.contains("close") : connection.contains("keep-alive")
    }

    /// Whether the request announces a body (which this server does not read).
    public var hasBody: Bool {
        if header("transfer-encoding") != nil { return true }
        if let length = header("content-length") { return Int(length) != 0 }
        return false
    }

    /// Whether the client accepts a gzip-encoded body.
    public var acceptsGzip: Bool {
        guard let accept = header("accept-encoding")?.lowercased() else { return false }
        return accept.split(separator: ",").contains { part in
            let fields = part.split(separator: ";").map { $0.trimmingSpaces() }
            guard fields.first == "gzip" else { return false }
            return !fields.dropFirst().contains { field in
                let t = String(field.filter { $0 != " " })
                return t.hasPrefix("q=") && Double(t.dropFirst(2)) == 0
            }
        }
    }

    /// The outcome of looking for a request head at the start of a buffer.
    public enum ParseResult: Sendable, Equatable {
        /// A head, and how many bytes it took (including the blank line).
        case complete(HTTPRequestHead, consumed: Int)
        /// More bytes are needed.
        case incomplete
        /// The head exceeds the limit (answer 431).
        case tooLarge
        /// Not HTTP/1.x (answer 400).
        case invalid
    }

    /// Parses a request head from `bytes`.
    /// - Parameters:
    ///   - bytes: what the connection has received so far.
    ///   - limit: the largest head accepted, in bytes.
    public static func parse(_ bytes: ArraySlice<UInt8>, limit: Int) -> ParseResult {
        // Find the end of the head: CRLF CRLF (or LF LF).
        var end = -1
        var i = bytes.startIndex
        let stop = min(bytes.endIndex, bytes.startIndex + limit)
        while i < stop {
            if bytes[i] == 0x0A {
                if i + 1 < bytes.endIndex, bytes[i + 1] == 0x0A { end = i + 2; break }
                if i + 2 < bytes.endIndex, bytes[i + 1] == 0x0D, bytes[i + 2] == 0x0A { end = i + 3; break }
            }
            i += 1
        }
        if end < 0 { return bytes.count >= limit ? .tooLarge : .incomplete }
        if end - bytes.startIndex > limit { return .tooLarge }
        var lines = bytes[bytes.startIndex..<end].split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? line.dropLast() : line
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first else { return .invalid }
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: true)
        guard parts.count == 3, let version = String(validating: parts[2], as: UTF8.self),
            version == "HTTP/1.1" || version == "HTTP/1.0",
            let method = String(validating: parts[0], as: UTF8.self), !method.isEmpty,
            method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
            let target = String(validating: parts[1], as: UTF8.self)
        else { return .invalid }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy(isTokenByte)
            else { return .invalid }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces()
            headers.append((name.lowercased(), value))
            if headers.count > 100 { return .tooLarge }
        }
        // Framing that two parsers could read differently (request smuggling through a proxy
        // in front): a second Content-Length, one that is not a number, Transfer-Encoding
        // with it, or on a request that has no body (GET, HEAD).
        let lengths = headers.filter { $0.name == "content-length" }
        let encodings = headers.filter { $0.name == "transfer-encoding" }
        if lengths.count > 1 || lengths.contains(where: { $0.value.isEmpty || !$0.value.utf8.allSatisfy(isDigit) }) {
            return .invalid
        }
        if !encodings.isEmpty, !lengths.isEmpty || method == "GET" || method == "HEAD" { return .invalid }
        let targetParts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = targetParts.first.map(String.init) ?? target
        var head = HTTPRequestHead(method: method, path: path, minorVersion: version == "HTTP/1.1" ? 1 : 0, headers: headers)
        if targetParts.count == 2 { head.query = String(targetParts[1]) }
        return .complete(head, consumed: end - bytes.startIndex)
    }
}

extension HTTPRequestHead {
    /// The query's parameters, percent-decoded (`+` is a space), in order; nil when one is
    /// not valid percent-encoded UTF-8.
    public var queryParameters: [(name: String, value: String)]? {
        var result: [(name: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : "") else { return nil }
            result.append((name, value))
        }
        return result
    }

    private static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var i = text.utf8.startIndex
        let utf8 = text.utf8
        while i < utf8.endIndex {
            let b = utf8[i]
            if b == UInt8(ascii: "%") {
                let h = utf8.index(after: i)
                guard h < utf8.endIndex, utf8.index(after: h) < utf8.endIndex,
                    let hi = Hex.value(utf8[h]), let lo = Hex.value(utf8[utf8.index(after: h)])
                else { return nil }
                bytes.append(hi << 4 | lo)
                i = utf8.index(h, offsetBy: 2)
                continue
            }
            bytes.append(b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
            i = utf8.index(after: i)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// RFC 9110's `tchar`: the bytes a header name (a token) may hold.
private func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(b)
    }
}

private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

extension StringProtocol {
    /// Drops leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
