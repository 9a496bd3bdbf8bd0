import Glibc

/// Strings numbered in the order they are first seen, found by their UTF-8 bytes: looking one
/// up makes no `String`. Two spellings of one text (NFC and NFD) are two strings, as SQLite's
/// BINARY collation keeps them apart.
///
/// An open-addressing table with linear probing. The hash is the series keys' own
/// (`SeriesKeyBuilder.hash`), seeded per process: tag values and names come from the network,
/// and crafted collisions must not make every lookup walk one long run of slots.
struct Interner {
    private(set) var strings: [String] = []
    /// Each string's hash, to skip most byte comparisons and to place it again on growth.
    private var hashes: [Int] = []
    /// A string's number + 1, or 0 for an empty slot. A power of two in size, at most half full.
    private var slots: [Int32] = []

    var count: Int { strings.count }

    mutating func id(_ string: String) -> Int32 {
        var string = string
        return string.withUTF8 { id(UnsafeRawBufferPointer($0)) }
    }

    mutating func id(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        if slots.isEmpty { rehash(size: 16) }
        let hash = Self.hash(bytes)
        let slot = slot(of: bytes, hash: hash)
        if slots[slot] != 0 { return slots[slot] - 1 }
        let number = Int32(strings.count)
        strings.append(String(decoding: bytes, as: UTF8.self))
        hashes.append(hash)
        if strings.count * 2 > slots.count {
            rehash(size: slots.count * 2)
        } else {
            slots[slot] = number + 1
        }
        return number
    }

    func lookup(_ string: String) -> Int32? {
        guard !slots.isEmpty else { return nil }
        var string = string
        return string.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let slot = slot(of: bytes, hash: Self.hash(bytes))
            return slots[slot] == 0 ? nil : slots[slot] - 1
        }
    }

    subscript(id: Int32) -> String { strings[Int(id)] }

    /// Each string's place when they are sorted by their UTF-8 bytes, as SQLite's BINARY
    /// collation sorts text.
    func byteOrderRanks() -> [Int32] {
        var ranks = [Int32](repeating: 0, count: strings.count)
        let order = strings.indices.sorted { strings[$0].utf8.lexicographicallyPrecedes(strings[$1].utf8) }
        for (rank, index) in order.enumerated() { ranks[index] = Int32(rank) }
        return ranks
    }

    /// The slot that holds `bytes`, or the empty slot where they would go. Ends: the table
    /// always has an empty slot.
    private func slot(of bytes: UnsafeRawBufferPointer, hash: Int) -> Int {
        let mask = slots.count - 1
        var slot = hash & mask
        while true {
            let number = Int(slots[slot]) - 1
            if number < 0 || (hashes[number] == hash && Self.equal(strings[number], bytes)) { return slot }
            slot = (slot + 1) & mask
        }
    }

    private mutating func rehash(size: Int) {
        slots = [Int32](repeating: 0, count: size)
        let mask = size - 1
        for number in hashes.indices {
            var slot = hashes[number] & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(number + 1)
        }
    }

    private static let seed = UInt64.random(in: 0...UInt64.max)

    private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
        Int(truncatingIfNeeded: SeriesKeyBuilder.hash(bytes, seed: seed))
    }

    private static func equal(_ string: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let utf8 = string.utf8
        guard utf8.count == bytes.count else { return false }
        guard let b = bytes.baseAddress else { return true }  // both empty
        return utf8.withContiguousStorageIfAvailable { stored in
            stored.baseAddress.map { memcmp($0, b, bytes.count) == 0 } ?? false
        } ?? utf8.elementsEqual(bytes)
    }
}
