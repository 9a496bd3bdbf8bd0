import Foundation
import Testing

/// Debian's chromium, headless, as root needs it (no sandbox), with its profile in `dir`.
private func chromium(_ dir: TemporaryDirectory, _ arguments: [String]) throws -> String {
    let (status, output) = try runProgram(
        try tool("chromium"),
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(dir.file("profile"))",
            "--virtual-time-budget=8000",
        ] + arguments)
    guard status == 0 else { throw TestFailure("chromium \(arguments): \(status) \(output)") }
    return output
}

extension HeavyEndToEndTests {
    /// The page in a real browser, fed with known traffic: its tables show the names and counts
    /// `/api/v1/top` gives, its charts are drawn (an SVG path through the points), a hostile
    /// name shows as text and runs nothing, and the page is sent with its CSP. The screenshot
    /// in docs/operating.md is this test's (`STATOR_PAGE_SCREENSHOT=docs/page.png`).
    // Budget: 3 s plain with one core busy (2026-12-07), most of it chromium starting twice;
    // its waits (three flushes 30 s, each chromium run 60 s) hold for a 60x slower agent.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")))
    func thePageShowsTheTopTablesAndChartsInABrowser() throws {
        let dir = try TemporaryDirectory()
        let agent = try StatorProcess(agent: [
            "--flush_interval", "1s", "--sinks.json.path", "", "--mapping_config", repositoryPath("etc/mapping.yml"),
        ])
        defer { _ = try? agent.stop() }
        let hostile = "<img src=x onerror=alert(1)>"
        let script = "<script>document.title='owned'</script>"
        func traffic() throws {
            try agent.send((0..<30).map { "api.hits:1|c|#host:h\($0 % 3)" } + (0..<5).map { "db.ms:\($0)|ms" })
            try agent.send(["\(hostile):1|g", "\(script):2|g", "no colon here"])
        }
        try traffic()
        try eventually(timeout: 30, "three points of history") {
            try traffic()
            usleep(300_000)
            return (try topAnswer(agent)["history"] as? [Any])?.count ?? 0 >= 3
        }
        let page = try httpRequest(port: agent.httpPort, "/")
        let policy = page.headers["content-security-policy"] ?? ""
        #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "\(policy)")
        #expect(!policy.contains("unsafe"))
        #expect(page.body.contains("<noscript>"))

        let url = "http://127.0.0.1:\(agent.httpPort)/"
        let dom = try chromium(dir, ["--dump-dom", url])
        let answer = try topAnswer(agent)
        // The first rows the API gives, as the page's table shows them.
        let rows = (answer["names_by_lines"] as? [[String: Any]] ?? []).prefix(2).map { r in
            #"<td class="name">\#(r["name"] ?? "")</td><td class="n">\#(r["lines"] ?? "")</td>"#
        }
        #expect(rows.first?.contains(">api.hits<") == true, "\(rows)")
        for row in rows { #expect(dom.contains(row), "\(row) not in the page") }
        // Hostile names are text: escaped in the DOM, no element made, no script run.
        #expect(dom.contains(#"<td class="name">&lt;img src=x onerror=alert(1)&gt;</td>"#))
        #expect(dom.contains(#"<td class="name">&lt;script&gt;document.title='owned'&lt;/script&gt;</td>"#))
        #expect(!dom.contains("<img") && dom.contains("<title>Stator</title>"))
        #expect(dom.contains("no colon here"))
        // The charts: a path through at least two points.
        let path = try #require(dom.firstMatch(of: #/<svg id="chart-lines"[^>]*><path d="(M[^"]*)"/#), "no chart path")
        #expect(path.output.1.split(separator: "L").count >= 3, "\(path.output.1)")
        #expect(dom.contains(">prometheus</td>") && dom.contains(">matched</td>"))
        // Each mapping rule's hits, as the API lists them.
        let rules = (answer["mapping"] as? [String: Any])?["rules"] as? [[String: Any]] ?? []
        let firstRule = try #require(rules.first, "no mapping rules in \(answer)")
        #expect(dom.contains(#"<table id="t-rules">"#))
        #expect(dom.contains(">\(firstRule["match"] ?? "")</td><td class=\"n\">\(firstRule["lines"] ?? "")</td>"), "\(firstRule)")

        let shot = dir.file("page.png")
        _ = try chromium(dir, ["--window-size=900,1400", "--hide-scrollbars", "--screenshot=\(shot)", url])
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        #expect(png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]) && png.count > 10_000)
        if let keep = ProcessInfo.processInfo.environment["STATOR_PAGE_SCREENSHOT"] {
            try png.write(to: URL(fileURLWithPath: repositoryPath(keep)))
        }
    }
}
