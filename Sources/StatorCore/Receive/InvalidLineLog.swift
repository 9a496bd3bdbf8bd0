/// The log line about refused lines, the same for every input: at most one every `period`
/// seconds for the datagram inputs (UDP and the Unix socket) and one for TCP (the count is
/// exact in `stator_lines_invalid_total`), with the reason,
/// the line and its sender, so that an operator can find the client. docs/troubleshooting.md
/// shows it, and its alert text gives the period: the tests hold them to this.
enum InvalidLineLog {
    /// Seconds between two examples of one input.
    static let period = 10.0
    /// The longest part of a line shown; a longer one is cut and ends with `...`.
    static let shownBytes = 200

    /// A new limiter for one input's examples.
    static func limiter() -> RateLimiter { RateLimiter(period: period) }

    /// Logs `line` as refused for `reason` if `limiter` lets it through now, and offers it to
    /// `samples` (the page's refused lines, with a limit of their own per reason). With a tag
    /// policy that drops or hashes tags (`withhold`), the line is not shown: the policy
    /// promises that their values never reach a log or the page.
    static func log(
        _ reason: ParseFailure, line: UnsafeRawBufferPointer, sender: @autoclosure () -> String, input: String,
        withhold: Bool, limiter: RateLimiter, logger: Logger, samples: RefusedSamples
    ) {
        let now = WallClock.monotonicSeconds()
        samples.offer(reason, line: line, input: input, withhold: withhold, now: now)
        guard let suppressed = limiter.admit(now: now) else { return }
        var example = TagPolicy.withheld
        if !withhold {
            example = String(decoding: UnsafeRawBufferPointer(rebasing: line.prefix(shownBytes)), as: UTF8.self)
            if line.count > shownBytes { example += "..." }
        }
        logger.warning(
            "invalid line dropped",
            metadata: [
                ("reason", reason.description), ("line", example), ("sender", sender()), ("input", input),
                ("suppressed", "\(suppressed)"),
            ])
    }
}
