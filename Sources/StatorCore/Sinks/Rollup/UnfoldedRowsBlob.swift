/// The blob the waiting rows are saved as (the `unfolded` table's `rows`), format 1, all
/// integers unsigned LEB128 varints:
///
/// - four string tables (tag values, days, names, types): a count, then each string as its
///   UTF-8 length and bytes;
/// - a count of rows, then each row: its four string numbers, a byte of flags
///   (bit 0 sum, 1 count, 2 min, 3 max, 4 last) and each value flagged, as 8 bytes of an
///   IEEE 754 double, little-endian.
extension UnfoldedRows {
    static let blobFormat: Int64 = 1

    /// The waiting rows as a blob, leaving out those being folded (in the same transaction
    /// that saves it).
    func encoded(leavingOut fold: Fold? = nil) -> [UInt8] {
        var folding = [Bool](repeating: false, count: slots.count)
        for slot in fold?.slots ?? [] { folding[Int(slot)] = true }
        let waiting = count - (fold?.slots.count ?? 0)
        var out: [UInt8] = []
        out.reserveCapacity(64 + strings.reduce(0) { $0 + $1.count * 12 } + waiting * 30)
        for table in strings {
            Varint.append(UInt64(table.count), to: &out)
            for string in table.strings {
                Varint.append(UInt64(string.utf8.count), to: &out)
                out.append(contentsOf: string.utf8)
            }
        }
        Varint.append(UInt64(waiting), to: &out)
        // The rows, written through a pointer: a row is at most 4 varints of 5 bytes (the
        // numbers are non-negative Int32s), a flags byte and 5 doubles of 8 bytes.
        let maxRowBytes = 4 * 5 + 1 + 5 * 8
        let rows = [UInt8](unsafeUninitializedCapacity: waiting * maxRowBytes) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            var p = 0
            func varint(_ number: Int32) {
                var v = UInt32(bitPattern: number)
                while v >= 0x80 {
                    base[p] = UInt8(truncatingIfNeeded: v) | 0x80
                    v >>= 7
                    p += 1
                }
                base[p] = UInt8(v)
                p += 1
            }
            func put(_ value: Double?) {
                guard let value else { return }
                UnsafeMutableRawPointer(base + p).storeBytes(of: value.bitPattern.littleEndian, as: UInt64.self)
                p += 8
            }
            for (slot, entry) in slots.enumerated() where entry.id != .free && !folding[slot] {
                // The bound above holds for every row, and `waiting` rows are written.
                precondition(p + maxRowBytes <= buffer.count, "more waiting rows than counted")
                varint(entry.id.key)
                varint(entry.id.day)
                varint(entry.id.name)
                varint(entry.id.type)
                let v = entry.values
                var flags: UInt8 = 0
                if v.sum != nil { flags |= 1 }
                if v.count != nil { flags |= 2 }
                if v.min != nil { flags |= 4 }
                if v.max != nil { flags |= 8 }
                if v.last != nil { flags |= 16 }
                base[p] = flags
                p += 1
                // In flag order.
                put(v.sum)
                put(v.count)
                put(v.min)
                put(v.max)
                put(v.last)
            }
            initialized = p
        }
        out.append(contentsOf: rows)
        return out
    }

    /// The rows a blob holds, or nil when it is not a blob `encoded()` wrote.
    static func decode(_ blob: [UInt8]) -> UnfoldedRows? {
        var reader = BlobReader(bytes: blob)
        var rows = UnfoldedRows()
        for table in 0..<4 {
            guard let n = reader.varint(), n <= blob.count else { return nil }
            for _ in 0..<n {
                guard let length = reader.varint(), let bytes = reader.bytes(Int(clamping: length)),
                    let string = String(validating: bytes, as: UTF8.self)
                else { return nil }
                rows.intern(string, table: table)
            }
        }
        guard let n = reader.varint(), n <= blob.count else { return nil }
        for _ in 0..<n {
            var parts: [Int32] = []
            for table in 0..<4 {
                guard let part = reader.varint(), part < UInt64(rows.strings[table].count) else { return nil }
                parts.append(Int32(part))
            }
            guard let flags = reader.bytes(1)?.first, flags < 32 else { return nil }
            var fields = [Double?](repeating: nil, count: 5)
            for bit in 0..<5 where flags & (1 << UInt8(bit)) != 0 {
                guard let raw = reader.bytes(8) else { return nil }
                fields[bit] = Double(bitPattern: raw.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
            }
            rows.restore(
                ID(key: parts[0], day: parts[1], name: parts[2], type: parts[3]),
                RollupValues(sum: fields[0], count: fields[1], min: fields[2], max: fields[3], last: fields[4]))
        }
        return reader.atEnd ? rows : nil
    }

    private struct BlobReader {
        let bytes: [UInt8]
        var offset = 0

        var atEnd: Bool { offset == bytes.count }

        mutating func varint() -> UInt64? { Varint.read(bytes[...], at: &offset) }

        mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, n <= bytes.count - offset else { return nil }
            defer { offset += n }
            return bytes[offset..<(offset + n)]
        }
    }
}
