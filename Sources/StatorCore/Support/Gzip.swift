import CStatorSys

/// gzip through the system zlib.
public enum Gzip {
    /// Compresses `bytes` as one gzip member. Members concatenate: `gzip(a) + gzip(b)` decodes to `a + b`.
    /// - Parameter level: 1 (fast) to 9 (small).
    public static func compress(_ bytes: [UInt8], level: Int32 = 1) -> [UInt8] {
        let capacity = CStatorSys_gzip_bound(bytes.count)
        var out = [UInt8](repeating: 0, count: capacity)
        let written = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                CStatorSys_gzip(input.baseAddress, input.count, output.baseAddress, output.count, level)
            }
        }
        precondition(written > 0, "gzip failed with an output of \(capacity) bytes for \(bytes.count)")
        out.removeSubrange(written...)
        return out
    }
}
