import Foundation
import Glibc
import Testing

/// What the end-to-end tests run against, and how much work they may ask of it.
///
/// The same test runs in three passes (`scripts/test --sanitize`): plain, under
/// ThreadSanitizer and under AddressSanitizer. The agent under TSan is about 60x slower
/// than the release build (35,000 counters over TCP onto the page: 0.3 s release, 2.8 s
/// debug, 19.5 s TSan debug), so a test about scale (tens of thousands of series, big
/// pages, floods) sizes its input with `TestBuild.scaled(_:)`, and a test whose point only
/// holds at full size (a page over 8 MB) says so with `.enabled(if: !TestBuild.isSanitized)`.
/// Race coverage stays: the concurrent paths run under the sanitizers with the smaller inputs.
enum TestBuild {
    /// The sanitizer this test process runs under, if any. Read from the runtime itself
    /// (a sanitized process has the runtime's entry point linked in), so a plain
    /// `swift test --sanitize=thread` knows it too.
    static let sanitizer: String? = {
        // dlsym(nil, ...) is RTLD_DEFAULT: the executable and every library loaded.
        if dlsym(nil, "__tsan_init") != nil { return "thread" }
        if dlsym(nil, "__asan_init") != nil { return "address" }
        return nil
    }()

    static var isSanitized: Bool { sanitizer != nil }

    /// A scale test's size: `full` in the plain pass, a tenth of it under a sanitizer.
    static func scaled(_ full: Int) -> Int { isSanitized ? max(1, full / 10) : full }
}

/// A flush interval for a test whose only batch is the one written at shutdown. Flushes fall
/// on wall-clock multiples of the interval, so `1h` would flush at every hh:00:00 that a test
/// happens to straddle; the next multiple of a million hours is in 2084.
let untilShutdown = "1000000h"

/// Which `stator` binary an end-to-end test starts.
enum AgentBuild {
    /// What users run (`swift run -c release stator`): every test but the few below.
    case release
    /// The debug build, for the tests that exercise what only a debug build checks: the
    /// invariants `assert` guards in the hot path (the series index's hash, the key
    /// cache's type byte, the sample arena's owner, a lock held where a value is read).
    /// The tests that use it carry the `.debugAssertions` tag.
    case debug
}

/// The `stator` binary for `build`.
///
/// `$TEST_STATOR_BINARY` wins for every build: under the sanitizers scripts/test points it
/// at the sanitized debug binary, which is then what every test runs. Otherwise the release
/// binary, or the debug one for `.debug`; scripts/test builds both before the tests run.
func statorBinary(_ build: AgentBuild = .release) throws -> String {
    if let path = ProcessInfo.processInfo.environment["TEST_STATOR_BINARY"] { return path }
    let path = repositoryPath(build == .release ? ".build/release/stator" : ".build/debug/stator")
    guard FileManager.default.isExecutableFile(atPath: path) else {
        let command = build == .release ? "swift build -c release" : "swift build"
        throw TestFailure("stator binary not found at \(path): run `\(command)` first (scripts/test does)")
    }
    return path
}

/// Stops a child process started by a test: SIGTERM, up to `grace` seconds, then SIGKILL,
/// and reaps it. Safe on a process that never started (a peer whose binary was missing):
/// Foundation traps on `terminate()` for one.
func stopChild(_ process: Process, grace: Double = 10) {
    guard process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(grace)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

extension Tag {
    /// The test starts the debug build of the agent (see `AgentBuild.debug`).
    @Tag static var debugAssertions: Self
    /// The test is heavy (a real Prometheus, VictoriaMetrics or carbon, a big page, a flood):
    /// it lives in `HeavyEndToEndTests`, which runs its tests one at a time, and scripts/test
    /// runs that suite on its own after every other test.
    @Tag static var heavy: Self
}

/// The heavy end-to-end tests: a real Prometheus, VictoriaMetrics or carbon, a big page,
/// a flood of lines or connections. Each file adds its own in an extension.
///
/// They run one at a time, and scripts/test runs this suite on its own after every other
/// test, so that no two of them (and no other test) compete for the two cores while they
/// run: their budgets then hold on a loaded machine too. Each names, in its comment, the
/// worst case measured under ThreadSanitizer that its budget is sized from.
@Suite(.serialized, .tags(.heavy)) struct HeavyEndToEndTests {}
