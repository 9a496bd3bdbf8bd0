/// Where each series of a flush is rolled up: the group of its rows (`UnfoldedRows.group`),
/// or nowhere. A series is rolled up when a `match` glob accepts its name and it carries the
/// `by` tag with a value.
///
/// Remembered per series, by its number in the aggregation table, so a known series costs
/// no glob, tag scan or hashing; and per name, since many series share one (a name per
/// tenant), so a new series costs a lookup of its name and its tag value.
struct RollupRouter {
    struct Route {
        var incarnation: UInt32
        /// The waiting rows' epoch the group belongs to (`UnfoldedRows.epoch`).
        var epoch: UInt32
        /// -1: the series is not rolled up.
        var group: Int32
        /// Whether a `limits` glob accepts the name.
        var limited: Bool

        static let none = Route(incarnation: 0, epoch: 0, group: -1, limited: false)
    }

    /// What is known of a name routed before.
    private struct RememberedName {
        var matched: Bool
        var limited: Bool
        /// The name's number among the waiting rows' strings, while their epoch is `epoch`.
        var number: Int32 = -1
        var epoch: UInt32 = 0
    }

    /// Indexed by `SeriesID.index` (below the table's series bound).
    private var routes: [Route] = []
    /// Names routed before, numbered, and what is known of each; they start again at
    /// `maxRememberedNames`.
    private var names = Interner()
    private var remembered: [RememberedName] = []
    static let maxRememberedNames = 1 << 16
    private let matchGlobs: [[UInt8]]
    private let limitGlobs: [[UInt8]]
    private let by: [UInt8]

    init(match: [[UInt8]], limits: [[UInt8]], by: [UInt8]) {
        (matchGlobs, limitGlobs, self.by) = (match, limits, by)
    }

    /// A router that knows nothing and routes nothing (what the sink holds while a flush uses
    /// its own).
    init() { self.init(match: [], limits: [], by: []) }

    /// The route of a series, remembered or worked out. `key` is read only for a series not
    /// seen before: reading it costs a retain of its bytes, a cache miss. `expected`: the
    /// batch's series still to come.
    mutating func route(_ series: SeriesID, _ rows: inout UnfoldedRows, expected: Int, _ key: () -> MetricKey) -> Route {
        let number = Int(series.index)
        if number < routes.count, routes[number].incarnation == series.incarnation, routes[number].epoch == rows.epoch {
            return routes[number]
        }
        let route = workOut(key(), &rows, expected: expected)
        if series != .none {
            if number >= routes.count { routes += repeatElement(.none, count: number + 1 - routes.count) }
            routes[number] = route
        }
        return route
    }

    private mutating func workOut(_ key: MetricKey, _ rows: inout UnfoldedRows, expected: Int) -> Route {
        var route = Route(incarnation: key.series.incarnation, epoch: rows.epoch, group: -1, limited: false)
        key.withName { name in
            let n = rememberedName(name)
            guard remembered[n].matched else { return }
            route.limited = remembered[n].limited
            var found = false
            key.forEachTag { k, v in
                guard !found, !v.isEmpty, k.elementsEqual(by) else { return }
                found = true
                if remembered[n].number < 0 || remembered[n].epoch != rows.epoch {
                    (remembered[n].number, remembered[n].epoch) = (rows.nameNumber(name), rows.epoch)
                }
                route.group = rows.group(key: v, nameNumber: remembered[n].number, type: key.type, expected: expected)
            }
        }
        return route
    }

    /// A name's place in `remembered`, the globs asked once per name.
    private mutating func rememberedName(_ name: UnsafeRawBufferPointer) -> Int {
        if names.count >= Self.maxRememberedNames {
            names = Interner()
            remembered = []
        }
        let n = Int(names.id(name))
        if n == remembered.count {
            remembered.append(
                RememberedName(
                    matched: matchGlobs.contains { Glob.matches($0, name) },
                    limited: limitGlobs.contains { Glob.matches($0, name) }))
        }
        return n
    }
}
