/// The DogStatsD events and service checks of the open interval, from every reader, taken
/// whole by the flush into its batch (SPEC section 15). Bounded, so that a flood of events
/// costs at most `capacity` of them per interval: past it one is refused as `series_limit`,
/// as a line past `max_series` is.
final class EventQueue: Sendable {
    /// Events kept per interval at most.
    let capacity: Int
    private let pending = PthreadLock<[DogEvent]>([])

    init(capacity: Int) { self.capacity = capacity }

    /// Parses the event or service check `bytes[line]`, applies the tag policy to its tags
    /// (a dropped or hashed value reaches no sink through an event either) and queues it.
    /// - Returns: its kind, or why it was refused.
    func offer(
        _ bytes: UnsafeRawBufferPointer, _ line: Range<Int>, limits: LineLimits, policy: TagPolicy? = nil
    ) -> Offer {
        switch EventParser.parse(bytes, line, limits: limits) {
        case .failure(let reason):
            return .refused(reason)
        case .parsed(var event):
            if let policy { event.tags = policy.apply(eventTags: event.tags) }
            let kept = pending.withLock { events in
                guard events.count < capacity else { return false }
                events.append(event)
                return true
            }
            return kept ? .queued(event.kind) : .refused(.seriesLimit)
        }
    }

    enum Offer {
        case queued(DogEvent.Kind)
        case refused(ParseFailure)
    }

    /// Takes every queued event, oldest first.
    func drain() -> [DogEvent] {
        pending.withLock { events in
            defer { events = [] }
            return events
        }
    }
}
