import Foundation

/// A push `url` taken apart once, from the text as written (SPEC section 10):
/// - the request target (path and query) is sent byte for byte: never decoded, so `%2F`
///   stays `%2F` and `%26` in a query stays `%26` (Foundation's `URL.path` decodes them);
/// - `user:password@` becomes an `Authorization: Basic` header, the user information
///   percent-decoded first as curl does; it never goes on the request line, nor into a log
///   (`redacted`), nor into the spool (`identity`).
struct PushTarget: Sendable, Equatable {
    /// `http` or `https`.
    let scheme: String
    /// The host as written, without the brackets of an IPv6 literal.
    let host: String
    /// The port as written, if any.
    let port: Int?
    /// Path and query as written (`/` when the URL has neither); the fragment is dropped.
    let requestTarget: String
    /// `Basic <base64 of user:password>` when the URL carries user information.
    let authorization: String?
    /// The URL with its password replaced by `xxxxx`: what logs and `check-config` show.
    let redacted: String
    /// The URL without user information: what the spool records as a request's target, and
    /// what URLSession is given (it would otherwise send the credentials its own way).
    let identity: String

    /// - Throws: `ConfigError` (showing the URL redacted) when the text is not an absolute
    ///   `http://` or `https://` URL with a host.
    init(parsing text: String) throws(ConfigError) {
        guard let schemeEnd = text.range(of: "://") else { throw Self.error(text) }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw Self.error(text) }
        var rest = text[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let pathAndQuery = rest[authorityEnd...]
        var hostPort = authority
        var credentials: (user: [UInt8], password: [UInt8]?)?
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                credentials = (Self.decode(userinfo[..<colon]), Self.decode(userinfo[userinfo.index(after: colon)...]))
            } else {
                credentials = (Self.decode(userinfo), nil)
            }
        }
        var host = hostPort
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw Self.error(text) }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Self.error(text) }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "@" }) else { throw Self.error(text) }
        var port: Int?
        if let portText, !portText.isEmpty {
            guard portText.allSatisfy(\.isASCII), let number = Int(portText), (1...65535).contains(number) else {
                throw Self.error(text)
            }
            port = number
        }
        guard !pathAndQuery.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } == true })
        else { throw Self.error(text) }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        requestTarget = pathAndQuery.isEmpty ? "/" : pathAndQuery.hasPrefix("?") ? "/" + pathAndQuery : String(pathAndQuery)
        let prefix = "\(scheme)://"
        identity = prefix + hostPort + pathAndQuery
        authorization = credentials.map { credentials in
            let pair = credentials.user + [UInt8(ascii: ":")] + (credentials.password ?? [])
            return "Basic " + Data(pair).base64EncodedString()
        }
        redacted = Self.redact(String(text.prefix { $0 != "#" }))
    }

    /// `url` with the password of its user information replaced by `xxxxx`, whether or not
    /// the rest of it is a valid URL (an error message shows a refused URL this way too).
    static func redact(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") else {
            return url
        }
        return String(url[..<colon]) + ":xxxxx" + url[at...]
    }

    /// A URL that did not parse, with everything between the user's name and the last `@`
    /// hidden: a password holding `#`, `/` or `?` (which end the authority of a valid URL) is
    /// still a password.
    static func redactRefused(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://"), let at = url[schemeEnd.upperBound...].lastIndex(of: "@") else {
            return url
        }
        let user = url[schemeEnd.upperBound..<at].prefix { $0 != ":" }
        return String(url[..<schemeEnd.upperBound]) + user + ":xxxxx" + url[at...]
    }

    private static func error(_ text: String) -> ConfigError {
        ConfigError("sinks.http_push.url must be an http:// or https:// URL, got \"\(redactRefused(text))\"")
    }

    /// Percent-decodes user information to the bytes sent; an escape that is not two hex
    /// digits stays as written.
    private static func decode(_ text: Substring) -> [UInt8] {
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count, let high = Hex.value(utf8[i + 1]),
                let low = Hex.value(utf8[i + 2])
            {
                bytes.append(high << 4 | low)
                i += 3
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return bytes
    }
}
