/// Hexadecimal digits, for the escapes of JSON strings, URLs, Graphite paths and roll-up
/// cursors.
enum Hex {
    /// The digit of `nibble` (0 to 15): `0-9a-f`, or `0-9A-F` when `uppercase`.
    @inline(__always)
    static func digit(_ nibble: UInt8, uppercase: Bool = false) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : (uppercase ? UInt8(ascii: "A") : UInt8(ascii: "a")) + nibble - 10
    }

    /// The value of a hex digit of either case; `nil` for any other byte.
    static func value(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
