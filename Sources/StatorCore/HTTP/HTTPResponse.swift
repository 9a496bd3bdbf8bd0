/// Body bytes produced while the response is written, a slice per call, so that one
/// client's large response never holds the server thread for long.
public protocol HTTPBodyStream: AnyObject, Sendable {
    /// The next bytes (not empty), or `nil` at the end.
    func next() -> [UInt8]?
}

/// A response to serialize: status, headers and body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    /// Written first, when set: `streamLength` bytes produced as the socket takes them.
    public var stream: (any HTTPBodyStream)?
    public var streamLength: Int
    /// The body in parts, written one after the other (a large page is never copied).
    public var body: [[UInt8]]
    /// When set, the real response is this work's, run off the server's thread (the rest
    /// of this value is ignored). The work must bound its own time: the connection waits
    /// for it without a deadline.
    public var deferred: (@Sendable () -> HTTPResponse)?

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.init(status: status, headers: headers, parts: [body])
    }

    public init(
        status: Int, headers: [(String, String)] = [], stream: (any HTTPBodyStream)? = nil, streamLength: Int = 0,
        parts: [[UInt8]]
    ) {
        self.status = status
        self.headers = headers
        self.stream = stream
        self.streamLength = stream == nil ? 0 : streamLength
        body = parts
    }

    /// A response produced by `work` on the server's worker thread, while the server goes on
    /// serving its other connections (a query that may take long).
    public static func later(_ work: @escaping @Sendable () -> HTTPResponse) -> HTTPResponse {
        var response = HTTPResponse(status: 503)
        response.deferred = work
        return response
    }

    /// Total body length.
    public var contentLength: Int { streamLength + body.reduce(0) { $0 + $1.count } }

    /// A plain-text response.
    public static func text(_ status: Int, _ text: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
            body: Array(text.utf8))
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }

    /// The parts on the wire: the head, then the body parts unless `includeBody` is
    /// false (`HEAD` keeps the headers, Content-Length included, but not the body).
    /// The stream, if any, goes between the head and the parts; the server writes it.
    func serialize(keepAlive: Bool, includeBody: Bool) -> [[UInt8]] {
        var text = "HTTP/1.1 \(status) \(HTTPResponse.reason(status))\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(contentLength)\r\n"
        text += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        return [Array(text.utf8)] + (includeBody ? body.filter { !$0.isEmpty } : [])
    }
}
