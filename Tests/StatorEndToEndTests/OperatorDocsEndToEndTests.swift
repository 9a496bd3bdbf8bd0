import Foundation
import Glibc
import StatorCore
import Testing

// The operator's documents tell the truth (issue 34): what the HTTP port serves, the proxy
// example, the shell examples, the metrics and labels the alerts and the dashboard use.

/// The router answers every path of its table (`HTTPRoute`, which docs/security.md must
/// name) with each of the route's methods, and no other path; the start-up warning of an
/// HTTP address beyond loopback names every route.
@Test func theServerAnswersEveryRouteOfItsTableAndNoOtherPath() throws {
    let dir = try TemporaryDirectory()
    let agent = try StatorProcess([
        "--udp.address", "127.0.0.1:0", "--http.address", "0.0.0.0:0", "--sinks.json.path", "",
        "--sinks.rollup.path", dir.file("rollups.db"), "--mapping_config", repositoryPath("etc/mapping.yml"),
    ])
    for route in HTTPRoute.allCases {
        for method in route.methods {
            let reply = try httpRequest(port: agent.httpPort, route.rawValue, method: method)
            #expect(reply.status == 200, "\(method) \(route.rawValue): \(reply.status) \(reply.body)")
        }
    }
    for path in ["/index.html", "/metrics/", "/api/v1/rollup", "/api/v1/rollups/x", "/debug/pprof"] {
        #expect(try httpRequest(port: agent.httpPort, path).status == 404, "\(path)")
    }
    let warning = try agent.waitFor(timeout: 10) { text in
        text.split(separator: "\n").first { $0.contains("listening beyond loopback") && $0.contains("http.address") }
    }
    #expect(
        warning.contains(
            "can GET /metrics, GET /healthz, POST /-/reload, GET /api/v1/rollups, GET /api/v1/top, GET /, "
                + "GET /ui/app.js and GET /ui/app.css (see docs/security.md)"))
    #expect(try agent.stop() == 0)
}

/// A request through a TLS proxy with curl: the status and the body.
private func curl(_ url: String, user: String?) throws -> (status: Int, body: String) {
    var arguments = ["-sk", "--max-time", "10", "-w", "\n%{http_code}", url]
    if let user { arguments += ["-u", user] }
    let (status, output) = try runProgram(try tool("curl"), arguments)
    guard status == 0, let newline = output.lastIndex(of: "\n") else { throw TestFailure("curl \(url): \(output)") }
    return (Int(output[output.index(after: newline)...]) ?? 0, String(output[..<newline]))
}

extension HeavyEndToEndTests {
    /// docs/security.md's nginx example, as written there but for its ports and file paths, in
    /// front of a real agent: with the password, `/metrics` and the roll-up API (query string
    /// included) answer as the agent does; without it 401; every other path, `/-/reload`
    /// included, 404. The password file holds a bcrypt hash, as `htpasswd -B` writes.
    // Budget: 0.6 s plain with one core busy (2026-12-07), most of it the RSA key; its waits
    // (nginx ready 30 s, the roll-up row 10 s) are over 10x that.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx")))
    func theSecurityPagesNginxExamplePassesTheScrapeAndTheRollupAPIWithAuth() throws {
        let dir = try TemporaryDirectory()
        let agent = try StatorProcess(agent: [
            "--sinks.json.path", "", "--flush_interval", "100ms", "--sinks.rollup.path", dir.file("rollups.db"),
        ])
        try agent.send("api.calls:3|c|#tenant:acme")
        let query = "/api/v1/rollups?key=acme&name=api.*"
        try eventually("the roll-up row") { try httpRequest(port: agent.httpPort, query).body.contains(#""sum":3"#) }
        let direct = try httpRequest(port: agent.httpPort, query).body

        let page = readFile(repositoryPath("docs/security.md"))
        let block = try #require(page.components(separatedBy: "```nginx\n").dropFirst().first?.components(separatedBy: "```")[0])
        let (openssl, python) = (try tool("openssl"), try tool("python3"))
        let (keyStatus, keyOutput) = try runProgram(openssl, [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=metrics.example.internal",
            "-keyout", dir.file("metrics.key"), "-out", dir.file("metrics.crt"),
        ])
        #expect(keyStatus == 0, "\(keyOutput)")
        let (hashStatus, hash) = try runProgram(python, [
            "-W", "ignore", "-c", "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        ])
        #expect(hashStatus == 0 && hash.hasPrefix("$2b$"), "\(hash)")
        try "prometheus:\(hash)".write(toFile: dir.file("stator.htpasswd"), atomically: true, encoding: .utf8)
        // nginx's workers run as nobody: they read the password file at every request.
        chmod(dir.path, 0o755)
        chmod(dir.file("stator.htpasswd"), 0o644)
        let replacements = [
            "listen 9443 ssl;": nil, "/etc/nginx/tls/metrics.crt": dir.file("metrics.crt"),
            "/etc/nginx/tls/metrics.key": dir.file("metrics.key"), "/etc/nginx/stator.htpasswd": dir.file("stator.htpasswd"),
            "http://127.0.0.1:9102": "http://127.0.0.1:\(agent.httpPort)",
        ]
        for (text, _) in replacements { #expect(block.contains(text), "the example no longer has \(text)") }
        let nginx = try PeerProcess("/usr/sbin/nginx", ports: 1) { ports in
            var server = block
            for (text, replacement) in replacements {
                server = server.replacingOccurrences(of: text, with: replacement ?? "listen 127.0.0.1:\(ports[0]) ssl;")
            }
            let configuration = """
                daemon off;
                pid \(dir.file("nginx.pid"));
                error_log stderr;
                worker_processes 1;
                events { worker_connections 64; }
                http {
                    access_log off;
                    client_body_temp_path \(dir.file("body"));
                    proxy_temp_path \(dir.file("proxy"));
                    fastcgi_temp_path \(dir.file("fastcgi"));
                    uwsgi_temp_path \(dir.file("uwsgi"));
                    scgi_temp_path \(dir.file("scgi"));
                \(server)
                }

                """
            try configuration.write(toFile: dir.file("nginx.conf"), atomically: true, encoding: .utf8)
            return ["-p", dir.path, "-e", "stderr", "-c", dir.file("nginx.conf")]
        } ready: { ports in
            acceptsConnections(ports[0])
        }
        let base = "https://127.0.0.1:\(nginx.ports[0])"
        let user = "prometheus:s3cret"
        let metrics = try curl(base + "/metrics", user: user)
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("stator_lines_received_total{input=\"udp\"} 1"))
        let rollups = try curl(base + query, user: user)
        #expect(rollups.status == 200)
        #expect(rollups.body == direct)
        #expect(try curl(base + "/metrics", user: nil).status == 401)
        #expect(try curl(base + query, user: "prometheus:wrong").status == 401)
        for path in ["/healthz", "/-/reload", "/", "/api/v1/rollups/x"] {
            #expect(try curl(base + path, user: user).status == 404, "\(path)")
        }
        #expect(try agent.stop() == 0)
    }
}

/// The label names of every family on the page of an agent with every input, sink and page on
/// (push, Graphite, roll-ups with a limit, mapping), fed one line on each input (UDP, the Unix
/// socket, TCP), read once each has counted its line and the roll-up usage shows.
func emittedLabels() throws -> [String: Set<String>] {
    let dir = try TemporaryDirectory()
    let socket = dir.file("statsd.sock")
    // Every optional part on, so that its metrics are emitted: a tag policy of each kind too.
    let agent = try StatorProcess(agent: [
        "--sinks.json.path", "", "--flush_interval", "100ms", "--sinks.http_push.url", "http://127.0.0.1:\(try freePort())/",
        "--mapping_config", repositoryPath("etc/mapping.yml"), "--tcp.address", "127.0.0.1:0", "--unixgram.path", socket,
        "--sinks.graphite.address", "127.0.0.1:\(try freePort())", "--sinks.rollup.path", dir.file("rollups.db"),
        "--sinks.rollup.limits", #"[{"match": "api.*", "daily": 1000}]"#,
        "--tags.drop", #"["email"]"#, "--tags.hash", #"["user"]"#, "--tags.hash_key", String(repeating: "0f", count: 16),
        "--tags.limits", #"[{"key": "tenant", "max_values": 1}]"#,
    ])
    try agent.send("api.calls:1|c|#tenant:acme")
    try UnixDatagramSender(path: socket).send("api.calls:1|c|#tenant:acme")
    let tcp = try TCPClient(port: agent.tcpPort)
    try tcp.send("api.calls:1|c|#tenant:acme\n")
    tcp.close()
    let page = try scrape(agent, until: "a line on every input, and the roll-up usage") { page in
        ["udp", "unixgram", "tcp"].allSatisfy { sample(page, "stator_lines_received_total{input=\"\($0)\"}") == 1 }
            && sample(page, "stator_rollup_usage_ratio") != nil
    }
    #expect(try agent.stop() == 0)
    var labels: [String: Set<String>] = [:]
    for line in page.split(separator: "\n") {
        if line.hasPrefix("# TYPE ") { labels[String(line.split(separator: " ")[2]), default: []] = [] }
        guard !line.hasPrefix("#"), let brace = line.firstIndex(of: "{") else { continue }
        let inside = line[line.index(after: brace)...].prefix { $0 != "}" }
        let names = inside.matches(of: #/([a-zA-Z_][a-zA-Z0-9_]*)="/#).map { String($0.output.1) }
        labels[String(line[..<brace]), default: []].formUnion(names)
    }
    return labels
}

/// The metric mentions in a text: a name and, when braces follow, what is inside them.
private func mentions(in text: String) -> [(name: String, inside: String?)] {
    text.matches(of: #/\b((?:stator|process)_[a-z_]+)(\{[^}]*\})?/#).map { match in
        (String(match.output.1), match.output.2.map { String($0.dropFirst().dropLast()) })
    }
}

/// The label names in a selector's inside (`a="x", b=~"y"`), or in a list of names (`a,b`).
private func labelNames(_ inside: String) -> (names: Set<String>, isList: Bool) {
    let selector = inside.matches(of: #/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/#).map { String($0.output.1) }
    if !selector.isEmpty || inside.contains("=") { return (Set(selector), false) }
    return (Set(inside.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }), true)
}

/// Labels every scrape adds to a series (the target's), and the bucket bound.
private let scrapeLabels: Set<String> = ["instance", "job", "le"]

/// Every metric and label that etc/prometheus, the Grafana dashboard and the docs use is one
/// a running agent emits: a selector names only labels of its family; a list of a family's
/// labels (`stator_lines_invalid_total{input,reason}`, as the docs write them) and a test
/// series of alerts.test.yml have all of them; grouping, legends and annotations name labels
/// of the families in their expression.
@Test func theAlertsDashboardAndDocsUseOnlyWhatTheAgentEmits() throws {
    let emitted = try emittedLabels()
    func check(_ text: String, in file: String, seriesAreWhole: Bool = false) {
        for (name, inside) in mentions(in: text) {
            guard let family = emitted[name] else {
                Issue.record("\(file): \(name) is not emitted")
                continue
            }
            guard let inside else { continue }
            let (names, isList) = labelNames(inside)
            if isList || seriesAreWhole {
                #expect(names.subtracting(scrapeLabels) == family, "\(file): \(name){\(inside)} against \(family.sorted())")
            } else {
                #expect(names.subtracting(scrapeLabels).isSubset(of: family), "\(file): \(name){\(inside)} against \(family.sorted())")
            }
        }
    }
    /// Labels an expression groups by or prints: `by (...)`, `without (...)`, `$labels.x`, `{{x}}`.
    func checkGrouping(_ text: String, in file: String) {
        let families = Set(mentions(in: text).map(\.name))
        let known = families.reduce(scrapeLabels) { $0.union(emitted[$1] ?? []) }
        var used: Set<String> = []
        for match in text.matches(of: #/\b(?:by|without)\s*\(([^)]*)\)/#) {
            used.formUnion(match.output.1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        used.formUnion(text.matches(of: #/\$labels\.([a-zA-Z_]+)/#).map { String($0.output.1) })
        used.formUnion(text.matches(of: #/\{\{\s*([a-zA-Z_]+)\s*\}\}/#).map { String($0.output.1) })
        used.remove("__name__")
        #expect(used.isSubset(of: known), "\(file): \(used.subtracting(known).sorted()) in: \(text)")
    }

    let alerts = readFile(repositoryPath("etc/prometheus/alerts.yml"))
    check(alerts, in: "alerts.yml")
    for rule in alerts.components(separatedBy: "- alert: ").dropFirst() { checkGrouping(rule, in: "alerts.yml") }
    let tests = readFile(repositoryPath("etc/prometheus/alerts.test.yml"))
    for line in tests.split(separator: "\n") where line.contains("- series: ") {
        check(String(line), in: "alerts.test.yml", seriesAreWhole: !line.contains("up{"))
    }
    check(readFile(repositoryPath("etc/prometheus/scrape.yml")), in: "scrape.yml")

    let dashboard = readFile(repositoryPath("etc/grafana/stator.json"))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) as? [String: Any])
    for panel in object["panels"] as? [[String: Any]] ?? [] {
        for target in panel["targets"] as? [[String: Any]] ?? [] {
            let text = "\(target["expr"] as? String ?? "")\n\(target["legendFormat"] as? String ?? "")"
            check(text, in: "grafana/stator.json")
            checkGrouping(text, in: "grafana/stator.json")
        }
    }
    let pages = try FileManager.default.contentsOfDirectory(atPath: repositoryPath("docs")).filter { $0.hasSuffix(".md") }
    for page in ["README.md"] + pages.map({ "docs/\($0)" }) { check(readFile(repositoryPath(page)), in: page) }
}

/// The procfs mount options that the unit's `ProtectProc=` and `ProcSubset=` give the service
/// (systemd mounts its /proc with `hidepid=` and `subset=`).
func procMountOptions(unit: String) -> String {
    var options: [String] = []
    for line in unit.split(separator: "\n") {
        if line.hasPrefix("ProtectProc=") { options.append("hidepid=" + line.dropFirst("ProtectProc=".count)) }
        if line.hasPrefix("ProcSubset=") { options.append("subset=" + line.dropFirst("ProcSubset=".count)) }
    }
    return options.joined(separator: ",")
}

/// The agent, under the unit's /proc as systemd would mount it (its `ProtectProc=` and
/// `ProcSubset=` as procfs options, /proc/sys read-only as `ProtectKernelTunables=` makes it),
/// still reads the sysctls it needs: the start-up warning about a short
/// `net.unix.max_dgram_qlen` fires when this host's is short, and a datagram as large as
/// `net.core.wmem_max` allows (past the 212,992-byte fallback) is read whole. systemd is not
/// PID 1 in every test machine, so the mounts are made with `unshare` in a mount namespace
/// of the agent's own; root only.
@Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")))
func theUnitsProcSettingsLetTheAgentReadItsSysctls() throws {
    let unit = readFile(repositoryPath("etc/systemd/stator.service"))
    #expect(unit.contains("ProtectKernelTunables=yes"))
    let options = procMountOptions(unit: unit)
    let queue = Int(readFile("/proc/sys/net/unix/max_dgram_qlen").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    let wmem = Int(readFile("/proc/sys/net/core/wmem_max").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    let dir = try TemporaryDirectory()
    let socket = dir.file("statsd.sock")
    let script = """
        mount -t proc -o \(options.isEmpty ? "defaults" : options) proc /proc && \
        mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" "$@"
        """
    let agent = try StatorProcess(
        executable: "/usr/bin/unshare",
        [
            "--mount", "/bin/sh", "-c", script, try statorBinary(), "--udp.address", "127.0.0.1:0", "--http.address",
            "127.0.0.1:0", "--sinks.json.path", "", "--unixgram.path", socket,
        ])
    #expect(agent.stderr.text.contains("max_dgram_qlen\":\"\(queue)\"") == (queue < 128), "\(agent.stderr.text)")
    // A datagram past the fallback, within what this host lets a sender send.
    let size = min(wmem, 4 << 20) - 4096
    if size > 212_992 {
        let line = "sandbox.big:1|c\n"
        let count = size / line.utf8.count
        let sender = try UnixDatagramSender(path: socket)
        var buffer = Int32(size * 2)
        setsockopt(sender.fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, 4)
        try sender.send(String(repeating: line, count: count))
        try scrape(agent, until: "the large datagram's lines") { sample($0, "stator_lines_received_total{input=\"unixgram\"}") == Double(count) }
    }
    #expect(try agent.stop() == 0)
}

/// The shell examples of a page that show what they print: each ```sh block followed by
/// "which prints:" and a ```text block.
func shellExamples(_ page: String) -> [(script: String, output: String)] {
    let text = readFile(repositoryPath(page))
    return text.matches(of: #/```sh\n((?:[^`]|`[^`])*)```\n\nwhich prints:\n\n```text\n((?:[^`]|`[^`])*)```/#).map {
        (String($0.output.1), String($0.output.2))
    }
}

/// Runs a page's shell examples against `agent` as a user types them, all at once: `stator`
/// (and `swift run -c release stator`) is the binary under test, the agent's addresses
/// replace the defaults the examples use; each prints what the page shows.
func runShellExamples(_ page: String, against agent: StatorProcess) throws {
    let examples = shellExamples(page)
    #expect(!examples.isEmpty, "\(page) has no example with its output")
    let bin = try TemporaryDirectory()
    try FileManager.default.createSymbolicLink(atPath: bin.file("stator"), withDestinationPath: try statorBinary())
    for (script, output) in examples {
        let command = script.replacingOccurrences(of: "swift run -c release stator", with: "stator")
            .replacingOccurrences(of: "127.0.0.1:9102", with: "127.0.0.1:\(agent.httpPort)")
        let (status, printed) = try runProgram(
            "/usr/bin/env",
            [
                "PATH=\(bin.path):/usr/bin:/bin", "STATOR_UDP_ADDRESS=127.0.0.1:\(agent.udpPort)", "/bin/sh", "-e", "-c",
                command,
            ])
        #expect(status == 0, "\(page): \(script) exited \(status): \(printed)")
        #expect(printed == output, "\(page): \(script)")
    }
}

/// The README's first example, typed at once in a second terminal while the first runs the
/// agent as shown (after its first flush), prints what the README shows; the agent prints the JSON lines shown
/// (their `ts` aside).
@Test func theReadmesFirstExampleRunsAsWritten() throws {
    let readme = readFile(repositoryPath("README.md"))
    let flags = try #require(readme.firstMatch(of: #/\nswift run -c release stator (--[a-z_.]+ \S+)\n/#)).output.1
    let agent = try StatorProcess(agent: flags.split(separator: " ").map(String.init))
    // A user switches terminals in more than a second: the lines land in a whole interval,
    // not the partial one the agent starts with.
    try scrape(agent, until: "the first flush") { (sample($0, "stator_flushes_total") ?? 0) >= 1 }
    try runShellExamples("README.md", against: agent)
    let shown = try #require(readme.components(separatedBy: "the first terminal prints one JSON object per series:\n\n```json\n").dropFirst().first?.components(separatedBy: "```")[0])
    var expected = try jsonLines(shown)
    // The time and the measured interval (and the rate per second of it) vary from run to
    // run: a flush on a loaded machine comes a few milliseconds late. They are held to 5%.
    let timing = ["interval", "rate"]
    for index in expected.indices { expected[index]["ts"] = nil }
    try eventually("the JSON lines", seen: agent.stdout.text) {
        let printed = (try? jsonLines(agent.stdout.text)) ?? []
        return expected.allSatisfy { want in
            printed.contains { got in
                var (got, want) = (got, want)
                got["ts"] = nil
                for key in timing {
                    guard let a = got[key] as? Double, let b = want[key] as? Double else { continue }
                    if abs(a - b) > 0.05 * abs(b) { return false }
                    (got[key], want[key]) = (nil, nil)
                }
                return NSDictionary(dictionary: got).isEqual(to: want)
            }
        }
    }
    #expect(try agent.stop() == 0)
}

/// docs/operating.md's smoke test, typed at once against an agent running the installed
/// configuration (etc/stator.json), prints what the page shows. It waits for a flush of 10 s.
@Test func theOperatingPagesSmokeTestRunsAsWritten() throws {
    let agent = try StatorProcess([
        "--config", repositoryPath("etc/stator.json"), "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0",
    ])
    try runShellExamples("docs/operating.md", against: agent)
    #expect(try agent.stop() == 0)
}

/// The invalid-line log names the line, its sender and its input, over TCP as over UDP, as
/// docs/protocol.md and docs/troubleshooting.md say.
@Test func theInvalidLineLogNamesTheLineAndItsSenderOnEveryInput() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", "", "--tcp.address", "127.0.0.1:0"])
    let tcp = try TCPClient(port: agent.tcpPort)
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(tcp.fd, $0, &length) }
    }
    try tcp.send("good.line:1|c\ntcp bad line\n")
    try agent.send("udp bad line")
    for (input, sender) in [("tcp", "127.0.0.1:\(UInt16(bigEndian: address.sin_port))"), ("udp", "127.0.0.1:")] {
        let line = try agent.waitFor(timeout: 10) { text in
            text.split(separator: "\n").first { $0.contains(#""msg":"invalid line dropped""#) && $0.contains(#""input":"\#(input)""#) }
        }
        #expect(line.contains(#""reason":"missing_colon","line":"\#(input) bad line","sender":"\#(sender)"#), "\(line)")
    }
    tcp.close()
    #expect(try agent.stop() == 0)
}
