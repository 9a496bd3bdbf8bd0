import Dispatch
import Foundation
import FoundationNetworking

/// The outcome of one POST.
enum PushOutcome: Sendable, Equatable {
    /// The server answered. `location` is a redirect's `Location` (never followed); `body` is
    /// the start of a 2xx answer's body, at most `PushHTTPClient.keptBodyBytes` (an OTLP
    /// partial success is read from it).
    case response(status: Int, retryAfter: Double?, bodyStart: String, location: String? = nil, body: [UInt8] = [])
    /// No answer: connection refused or reset, DNS, timeout.
    case failure(String)

    /// Whether the request may be tried again: no answer, 5xx or 429.
    var isRetryable: Bool {
        switch self {
        case .failure: true
        case .response(let status, _, _, _, _): status >= 500 || status == 429
        }
    }

    var isSuccess: Bool {
        if case .response(let status, _, _, _, _) = self { return (200..<300).contains(status) }
        return false
    }
}

/// A blocking POST on top of URLSession, for `https://` pushes (its TLS), one request at a time.
///
/// Redirects are never followed (SPEC section 5): URLSession would turn the POST into a GET
/// without its body, count that as delivered, and send every header, `Authorization`
/// included, to whatever host the `Location` names. The 3xx answer itself comes back instead.
final class PushHTTPClient: PushTransport, Sendable {
    private let session: URLSession
    /// How much of a successful answer's body is kept: enough for an OTLP partial success's message.
    static let keptBodyBytes = 4096

    init() {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieStorage = nil
        configuration.urlCache = nil
        configuration.httpMaximumConnectionsPerHost = 1
        session = URLSession(configuration: configuration, delegate: RedirectRefusal(), delegateQueue: nil)
    }

    /// Posts `body` to `target` and waits for the answer, `timeout` seconds, or until
    /// `abortAt()` (monotonic seconds, checked every 50 ms) has passed.
    func post(
        _ target: PushTarget, body: [UInt8], headers: [(String, String)], timeout: Double,
        abortAt: @escaping () -> Double = { .infinity }
    ) -> PushOutcome {
        // Without user information: the credentials are in `headers` already.
        guard let url = URL(string: target.identity) else { return .failure("not a URL: \(target.redacted)") }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = "POST"
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = Data(body)
        let result = PthreadLock<PushOutcome?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: request) { data, response, error in
            let outcome: PushOutcome
            if let http = response as? HTTPURLResponse {
                let start = data.map { String(decoding: $0.prefix(200), as: UTF8.self) } ?? ""
                outcome = .response(
                    status: http.statusCode, retryAfter: Self.retryAfter(http.value(forHTTPHeaderField: "Retry-After")),
                    bodyStart: start,
                    location: (300..<400).contains(http.statusCode) ? http.value(forHTTPHeaderField: "Location") : nil,
                    body: (200..<300).contains(http.statusCode) ? data.map { Array($0.prefix(Self.keptBodyBytes)) } ?? [] : [])
            } else {
                outcome = .failure(error.map { "\($0.localizedDescription)" } ?? "no response")
            }
            result.withLock { $0 = outcome }
            done.signal()
        }
        task.resume()
        let giveUp = WallClock.monotonicSeconds() + timeout + 1
        while done.wait(timeout: .now() + 0.05) == .timedOut {
            let now = WallClock.monotonicSeconds()
            if now >= giveUp || now >= abortAt() {
                task.cancel()
                return .failure(now >= giveUp ? "timed out after \(timeout) s" : "abandoned at shutdown")
            }
        }
        return result.withLock { $0 } ?? .failure("no response")
    }

    /// `Retry-After` as seconds: a number of seconds, or an HTTP date.
    static func retryAfter(_ value: String?) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return max(0, date.timeIntervalSinceNow)
    }
}

/// Answers every redirect with "do not follow": the task then completes with the 3xx response.
private final class RedirectRefusal: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
