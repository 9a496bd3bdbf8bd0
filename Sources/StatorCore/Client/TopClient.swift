import Foundation
import Glibc

/// `stator top`'s side of `/api/v1/top`: one GET over HTTP/1.1, and the answer laid out as
/// lines of text for a terminal.
public enum TopClient {
    /// The longest answer read, head included: `/api/v1/top` at its largest `limit` is far
    /// smaller, and an endless answer must not take the terminal's memory.
    public static let maxAnswerBytes = 16 << 20

    /// Fetches `path` from the agent at `address` (`host:port`) and returns the body of a
    /// 200 answer; waits `timeout` seconds at most for each step and for the whole answer (a
    /// trickling agent cannot hold it longer), and gives up at once when a signal arrives, so
    /// that `stator top` reads it and ends.
    public static func get(_ path: String, from address: SocketAddress, timeout: Int = 2) throws(SystemError) -> [UInt8] {
        let deadline = WallClock.monotonicSeconds() + Double(timeout)
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        defer { close(fd) }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) }
        }
        guard rc == 0 else { throw SystemError(errno: errno, call: "connect \(address)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8)
        guard Glibc.send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
            throw SystemError(errno: errno, call: "send \(address)")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n >= 0 else { throw SystemError(errno: errno, call: "recv \(address)") }
            if n == 0 { break }
            received += buffer[0..<n]
            guard received.count <= maxAnswerBytes else {
                throw SystemError(errno: EMSGSIZE, call: "recv \(address): answer past \(maxAnswerBytes) bytes")
            }
            guard WallClock.monotonicSeconds() < deadline else {
                throw SystemError(errno: ETIMEDOUT, call: "recv \(address): answer not complete in \(timeout) s")
            }
        }
        // The agent closes after the body (`Connection: close`): the body is what follows the head.
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = received.firstRange(of: separator), received.starts(with: Array("HTTP/1.1 200".utf8)) else {
            let line = received.prefix { $0 != 13 }
            throw SystemError(errno: EPROTO, call: "GET \(path): \(String(decoding: line, as: UTF8.self))")
        }
        return Array(received[end.upperBound...])
    }

    /// The answer as at most `height` lines of at most `width` columns. Names and refused
    /// lines come from the network: every control character (an escape sequence could move
    /// the cursor or retitle the terminal) is shown as `?`.
    public static func screen(_ answer: JSONValue, address: String, width: Int, height: Int) -> [String] {
        let top = answer.objectValue
        var lines: [String] = []
        let window = Int(top["window_seconds"]?.numberValue ?? 0)
        lines.append("stator top  \(address)  window \(window) s  (q to quit)")
        if let last = top["history"]?.arrayValue.last?.objectValue {
            let rate = Int((last["lines_per_second"]?.numberValue ?? 0).rounded())
            let drops = Int((last["drops_per_second"]?.numberValue ?? 0).rounded())
            lines.append("lines/s \(rate)  kernel drops/s \(drops)")
        }
        lines.append("")
        lines.append(row(["NAME", "LINES", "SERIES", "TYPES"], [-32, 10, 8, 0]))
        for n in top["names_by_lines"]?.arrayValue ?? [] {
            let o = n.objectValue
            lines.append(
                row(
                    [
                        o["name"]?.stringValue ?? "", count(o["lines"]), count(o["series"]),
                        (o["types"]?.arrayValue ?? []).map { $0.stringValue ?? "" }.joined(separator: ","),
                    ], [-32, 10, 8, 0]))
        }
        lines.append("")
        lines.append(row(["TAG KEY", "DISTINCT", "TOP VALUES"], [-24, 10, 0]))
        for k in top["tag_keys"]?.arrayValue ?? [] {
            let o = k.objectValue
            let values = (o["top_values"]?.arrayValue ?? []).map {
                "\($0.objectValue["value"]?.stringValue ?? "") (\(count($0.objectValue["series"])))"
            }
            let cells = [o["key"]?.stringValue ?? "", count(o["distinct_values"]), values.joined(separator: ", ")]
            lines.append(row(cells, [-24, 10, 0]))
        }
        let refused = top["refused"]?.arrayValue ?? []
        if !refused.isEmpty {
            lines.append("")
            lines.append(row(["REFUSED", "TOTAL", "LAST LINE"], [-24, 10, 0]))
            for r in refused {
                let o = r.objectValue
                let last = o["samples"]?.arrayValue.first?.objectValue["line"]?.stringValue ?? ""
                lines.append(row([o["reason"]?.stringValue ?? "", count(o["total"]), last], [-24, 10, 0]))
            }
        }
        lines.append("")
        lines.append(row(["SINK", "LAST SUCCESS", "QUEUED", "ERRORS"], [-24, 14, 8, 8]))
        for s in top["sinks"]?.arrayValue ?? [] {
            let o = s.objectValue
            let ago = o["last_success_seconds_ago"]?.numberValue.map { "\(Int($0.rounded())) s ago" } ?? "never"
            lines.append(row([o["name"]?.stringValue ?? "", ago, count(o["queued"]), count(o["errors"])], [-24, 14, 8, 8]))
        }
        return lines.prefix(max(1, height)).map { clip($0, width) }
    }

    /// Cells padded to their widths (negative: left-aligned; 0: as long as it is), one space apart.
    static func row(_ cells: [String], _ widths: [Int]) -> String {
        zip(cells, widths).map { cell, width in
            let text = printable(cell)
            let pad = String(repeating: " ", count: max(0, abs(width) - text.count))
            return width < 0 ? text + pad : pad + text
        }.joined(separator: " ")
    }

    static func count(_ value: JSONValue?) -> String { value?.numberValue.map { String(Int64($0)) } ?? "" }

    /// `text` with every control character (C0, DEL, C1) and every bidirectional formatting
    /// character (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069) as `?`: a name that
    /// reverses the rest of its row would misalign or disguise the table.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { isShown($0.value) ? $0 : "?" }))
    }

    private static func isShown(_ v: UInt32) -> Bool {
        !(v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x061C || (0x200E...0x200F).contains(v)
            || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v))
    }

    public static func clip(_ line: String, _ width: Int) -> String { line.count > width ? String(line.prefix(width)) : line }
}

extension JSONValue {
    var objectValue: [String: JSONValue] {
        if case .object(let o) = self { return o }
        return [:]
    }
    var arrayValue: [JSONValue] {
        if case .array(let a) = self { return a }
        return []
    }
    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    var numberValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }
}
