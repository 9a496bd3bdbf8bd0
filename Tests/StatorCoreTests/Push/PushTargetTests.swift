import Foundation
import Testing
@testable import StatorCore

struct TargetCase: Sendable, CustomTestStringConvertible {
    var url: String
    var host: String
    var port: Int?
    var requestTarget: String
    /// `user:password` as sent in Basic auth, before base64.
    var credentials: String?
    var redacted: String
    var testDescription: String { url }
}

private let targetCases: [TargetCase] = [
    // Escapes stay as written: URL.path decoded them into "/a b/c/d?e?q=%26x", which servers refuse.
    .init(
        url: "http://h:8080/a%20b/c%2Fd%3Fe?q=%26x", host: "h", port: 8080, requestTarget: "/a%20b/c%2Fd%3Fe?q=%26x",
        redacted: "http://h:8080/a%20b/c%2Fd%3Fe?q=%26x"),
    .init(url: "http://h", host: "h", requestTarget: "/", redacted: "http://h"),
    .init(url: "http://h?db=x", host: "h", requestTarget: "/?db=x", redacted: "http://h?db=x"),
    .init(url: "https://h/p#frag", host: "h", requestTarget: "/p", redacted: "https://h/p"),
    .init(url: "http://[::1]:9/w", host: "::1", port: 9, requestTarget: "/w", redacted: "http://[::1]:9/w"),
    .init(
        url: "http://alice:s3cret@h/w", host: "h", requestTarget: "/w", credentials: "alice:s3cret",
        redacted: "http://alice:xxxxx@h/w"),
    // User information is percent-decoded, as curl does; the last @ ends it.
    .init(
        url: "http://al%40ice:p%3Aw@rd@h:1/", host: "h", port: 1, requestTarget: "/", credentials: "al@ice:p:w@rd",
        redacted: "http://al%40ice:xxxxx@h:1/"),
    .init(url: "http://bob@h/", host: "h", requestTarget: "/", credentials: "bob:", redacted: "http://bob@h/"),
]

@Test(arguments: targetCases) func aPushURLIsTakenApartAsWritten(_ c: TargetCase) throws {
    let target = try PushTarget(parsing: c.url)
    #expect(target.host == c.host)
    #expect(target.port == c.port)
    #expect(target.requestTarget == c.requestTarget)
    #expect(target.authorization == c.credentials.map { "Basic " + Data($0.utf8).base64EncodedString() })
    #expect(target.redacted == c.redacted)
    #expect(!target.identity.contains("@"))
}

@Test(arguments: ["ftp://h/", "http://", "http:///x", "h:80/x", "http://h:99999/", "http://h/a b", "http://[::1/"])
func aURLThatIsNotAPushTargetIsRefused(_ url: String) {
    #expect(throws: ConfigError.self) { try PushTarget(parsing: url) }
}

@Test func aRefusedURLIsShownWithoutItsPassword() {
    do {
        _ = try PushTarget(parsing: "http://alice:s3cret@h:99999/")
        Issue.record("accepted")
    } catch {
        #expect(error.message.contains("alice:xxxxx@"))
        #expect(!error.message.contains("s3cret"))
    }
}
