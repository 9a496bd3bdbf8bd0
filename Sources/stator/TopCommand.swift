import Foundation
import Glibc
import StatorCore

/// `stator top`: `/api/v1/top` of the agent at `http.address`, redrawn each second until `q`,
/// Ctrl-C or SIGTERM. On a terminal it draws on the alternate screen with the cursor hidden
/// and keystrokes unechoed, and puts all three back however it ends (a signal is read from a
/// pipe, not handled mid-write, so the restore always runs). Elsewhere (a pipe, a
/// file) it prints plain frames, one a second, without escape sequences.
/// - Returns: the exit status: 0 after `q`, 128 + the signal's number after one.
func runTop(_ configuration: StatorConfiguration) -> Int32 {
    let address: SocketAddress
    do {
        address = try SocketAddress(parsing: configuration.http.address)
    } catch {
        fail(error.message)
    }
    let signalDescriptor = signalPipe()
    let terminal = isatty(1) == 1
    var saved = termios()
    let keys = isatty(0) == 1 && tcgetattr(0, &saved) == 0
    if keys {
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        tcsetattr(0, TCSANOW, &raw)
    }
    if terminal { printOut("\u{1B}[?1049h\u{1B}[?25l") }
    defer {
        if terminal { printOut("\u{1B}[?25h\u{1B}[?1049l") }
        if keys { tcsetattr(0, TCSANOW, &saved) }
    }
    var input: Int32 = 0
    while true {
        var size = winsize()
        let measured = terminal && ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0
        let (width, height) = measured ? (Int(size.ws_col), Int(size.ws_row)) : (Int.max, Int.max)
        var lines: [String]
        do {
            let body = try TopClient.get("/api/v1/top?limit=\(max(1, min(height - 6, 50)))", from: address)
            let answer = try JSONValue.parse(Data(body), source: "/api/v1/top")
            lines = TopClient.screen(answer, address: configuration.http.address, width: width, height: height)
        } catch {
            lines = [TopClient.clip("stator top: cannot read http://\(configuration.http.address)/api/v1/top: \(error)", width)]
        }
        if terminal {
            printOut("\u{1B}[H\u{1B}[2J" + lines.joined(separator: "\n"))
        } else {
            printOut(lines.joined(separator: "\n") + "\n\n")
        }
        // Wait a second for `q` or a signal.
        let deadline = WallClock.monotonicSeconds() + 1
        while true {
            let left = deadline - WallClock.monotonicSeconds()
            if left <= 0 { break }
            var fds = [
                pollfd(fd: input, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signalDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            guard poll(&fds, 2, Int32(left * 1000) + 1) > 0 else { continue }
            if fds[1].revents != 0 {
                var signal: UInt8 = 0
                _ = read(signalDescriptor, &signal, 1)
                return 128 + Int32(signal)
            }
            if fds[0].revents != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                let n = read(input, &bytes, bytes.count)
                if n <= 0 {
                    input = -1  // no more input (end of file): only a signal ends it now
                } else if bytes[0..<n].contains(where: { $0 == UInt8(ascii: "q") || $0 == UInt8(ascii: "Q") }) {
                    return 0
                }
            }
        }
    }
}

/// The write end of `signalPipe`'s pipe, for the handler. SAFETY: set once, before the
/// handler is installed; the handler only reads it.
nonisolated(unsafe) private var signalPipeInput: Int32 = -1

/// A pipe that receives the number of each SIGINT and SIGTERM as a byte: the handler only
/// writes (async-signal-safe), and the loop reads it with the keyboard.
/// - Returns: the read end.
private func signalPipe() -> Int32 {
    var ends: [Int32] = [-1, -1]
    guard pipe(&ends) == 0 else { fail("pipe failed: \(String(cString: strerror(errno)))") }
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)  // a burst of signals never blocks the handler
    signalPipeInput = ends[1]
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { signal in
        var byte = UInt8(truncatingIfNeeded: signal)
        _ = write(signalPipeInput, &byte, 1)
    }
    sigemptyset(&action.sa_mask)
    var unblock = sigset_t()
    sigemptyset(&unblock)
    for signal in [SIGINT, SIGTERM] {
        sigaction(signal, &action, nil)
        sigaddset(&unblock, signal)
    }
    // (A parent may have left them blocked: they would never arrive.)
    pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    return ends[0]
}
