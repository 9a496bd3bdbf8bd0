import Foundation
import Glibc
import Testing

/// Runs tmux with `arguments`; its output. Spawned directly with an empty signal mask and
/// default dispositions (a child of this process would inherit most signals blocked, and
/// tmux waits for signals), its output and status through files: the tmux server that the
/// first call starts keeps a pipe open for good, and Foundation's `Process` may not see the
/// client end while its run loop waits.
@discardableResult
private func tmux(_ arguments: [String]) throws -> String {
    let dir = try TemporaryDirectory()
    let script = "\"$0\" \"$@\" > \(dir.file("out")) 2>&1 < /dev/null; echo $? > \(dir.file("rc"))"
    let argv = ["/bin/sh", "-c", script, try tool("tmux")] + arguments
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let cArguments = argv.map { strdup($0) } + [nil]
    defer { for a in cArguments { free(a) } }
    guard posix_spawn(&pid, "/bin/sh", nil, &attributes, cArguments, environ) == 0 else {
        throw TestFailure("posix_spawn /bin/sh failed")
    }
    let deadline = Date().addingTimeInterval(20)
    var status: Int32 = 0
    var rcText = ""
    while rcText.isEmpty && Date() < deadline {
        usleep(10_000)
        rcText = readFile(dir.file("rc"))
    }
    guard let rc = Int(rcText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        throw TestFailure("tmux \(arguments) did not finish")
    }
    _ = waitpid(pid, &status, 0)  // the shell ends after the echo (ECHILD when already reaped)
    let text = readFile(dir.file("out"))
    guard rc == 0 else { throw TestFailure("tmux \(arguments): \(rc) \(text)") }
    return text
}

/// `stator top` in a real terminal (a tmux pane of 120 x 40): it shows the top name, ends on
/// `q` (exit 0) or Ctrl-C (exit 130), and leaves the terminal as it found it: the normal
/// screen, the cursor shown, canonical mode and echo on.
@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux")))
func statorTopShowsTheTopNameAndRestoresTheTerminal() throws {
    let agent = try StatorProcess(agent: ["--flush_interval", "1s", "--sinks.json.path", ""])
    defer { _ = try? agent.stop() }
    try agent.send((0..<20).map { "checkout.latency:\($0)|ms" } + ["cart.adds:1|c"])
    try eventually(timeout: 20, "the name in /api/v1/top") {
        topRows(try topAnswer(agent), "names_by_lines").first == "checkout.latency 20 1"
    }
    let binary = try statorBinary(.release)
    // Not a terminal: plain frames, no escape sequence, until SIGTERM (exit 143).
    let (plainStatus, plain) = try runProgram(
        try tool("timeout"), ["--preserve-status", "-s", "TERM", "2.5", binary, "top", "--http.address", "127.0.0.1:\(agent.httpPort)"])
    #expect(plainStatus == 143 && plain.contains("checkout.latency") && !plain.contains("\u{1B}"), "\(plainStatus) \(plain)")
    for (key, status) in [("q", "exit=0"), ("C-c", "exit=130")] {
        let dir = try TemporaryDirectory()
        let session = "stator-top-\(getpid())-\(status.dropFirst(5))"
        // The shell outlives `stator top` (a trap keeps Ctrl-C for the child), then records
        // its status and the terminal's modes.
        let command =
            "trap true INT; \(binary) top --http.address 127.0.0.1:\(agent.httpPort); echo exit=$? > \(dir.file("status")); "
            + "stty -a > \(dir.file("stty")); sleep 60"
        try tmux(["new-session", "-d", "-s", session, "-x", "120", "-y", "40", command])
        defer { _ = try? tmux(["kill-session", "-t", session]) }
        var pane = ""
        try eventually(timeout: 20, "the top name in the pane", seen: pane) {
            pane = try tmux(["capture-pane", "-p", "-t", session])
            return pane.contains("checkout.latency") && pane.contains("cart.adds")
        }
        #expect(pane.contains("stator top  127.0.0.1:\(agent.httpPort)"))
        #expect(try tmux(["display-message", "-p", "-t", session, "#{alternate_on} #{cursor_flag}"]) == "1 0\n")
        try tmux(["send-keys", "-t", session, key])
        try eventually(timeout: 20, "stator top to exit on \(key)") { readFile(dir.file("stty")).contains("echo") }
        #expect(readFile(dir.file("status")) == "\(status)\n")
        let modes = Set(readFile(dir.file("stty")).split(whereSeparator: { $0 == " " || $0 == ";" || $0 == "\n" }))
        #expect(modes.contains("icanon") && modes.contains("echo"), "\(modes)")
        #expect(try tmux(["display-message", "-p", "-t", session, "#{alternate_on} #{cursor_flag}"]) == "0 1\n")
        #expect(!(try tmux(["capture-pane", "-p", "-t", session])).contains("checkout.latency"))
    }
}
