/// Where a shard keeps a series: its slot and the series' number. A hint that the shard
/// checks (the slot must still hold that series) before it trusts it; see `Shard.record`.
struct SeriesRoute: Equatable {
    var slot: Int32
    var series: SeriesID

    /// No hint: the shard looks the key up.
    static let unknown = SeriesRoute(slot: -1, series: .none)
}
