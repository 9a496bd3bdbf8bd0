/// Strings numbered in the order they are first seen.
struct Interner {
    private(set) var strings: [String] = []
    private var numbers: [String: Int32] = [:]

    var count: Int { strings.count }

    mutating func id(_ string: String) -> Int32 {
        if let n = numbers[string] { return n }
        let n = Int32(strings.count)
        numbers[string] = n
        strings.append(string)
        return n
    }

    func lookup(_ string: String) -> Int32? { numbers[string] }

    subscript(id: Int32) -> String { strings[Int(id)] }

    /// Each string's place when they are sorted by their UTF-8 bytes, as SQLite's BINARY
    /// collation sorts text.
    func byteOrderRanks() -> [Int32] {
        var ranks = [Int32](repeating: 0, count: strings.count)
        let order = strings.indices.sorted { strings[$0].utf8.lexicographicallyPrecedes(strings[$1].utf8) }
        for (rank, index) in order.enumerated() { ranks[index] = Int32(rank) }
        return ranks
    }
}
