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

/// Compresses text handed over in chunks into one gzip member, so a large page
/// is never held uncompressed in full.
final class GzipWriter {
    private var stream = CStatorSys_zstream()

    init(level: Int32 = 1) {
        let rc = CStatorSys_zstream_deflate_init(&stream, level)
        precondition(rc == 0, "zlib deflateInit2 failed")
    }

    deinit { CStatorSys_zstream_free(&stream) }

    /// Compresses `bytes` (the caller may reuse its buffer afterwards).
    func write(_ bytes: [UInt8]) {
        let rc = bytes.withUnsafeBufferPointer { CStatorSys_zstream_write(&stream, $0.baseAddress, $0.count, 0) }
        precondition(rc == 0, "zlib deflate failed")
    }

    /// Ends the member and returns the compressed bytes.
    func finish() -> [UInt8] {
        let rc = CStatorSys_zstream_write(&stream, nil, 0, 1)
        precondition(rc == 0, "zlib deflate failed")
        return Array(UnsafeBufferPointer(start: stream.out, count: stream.length))
    }
}

extension Gzip {
    /// Decompresses gzip (several members are fine).
    /// - Returns: the bytes, or `nil` when the input is not gzip.
    public static func decompress(_ bytes: [UInt8]) -> [UInt8]? {
        var stream = CStatorSys_zstream()
        guard CStatorSys_zstream_inflate_init(&stream) == 0 else { return nil }
        defer { CStatorSys_zstream_free(&stream) }
        let rc = bytes.withUnsafeBufferPointer { CStatorSys_zstream_write(&stream, $0.baseAddress, $0.count, 0) }
        guard rc == 0 else { return nil }
        return Array(UnsafeBufferPointer(start: stream.out, count: stream.length))
    }
}

/// Inflates a gzip body a slice at a time, as an HTTP response is written: a large page
/// for a plain-text client is never inflated in full, and never in one go on the server
/// thread. Used by that one thread only.
final class GzipInflatingStream: HTTPBodyStream, @unchecked Sendable {
    // SAFETY: only the HTTP server thread calls `next()`, one call at a time.
    private var stream = CStatorSys_zstream()
    private let compressed: [UInt8]
    private var offset = 0
    /// Compressed bytes fed to zlib per step (about 12 times as much text comes out).
    private static let slice = 16 * 1024

    /// - Returns: `nil` when zlib cannot be set up.
    init?(_ compressed: [UInt8]) {
        self.compressed = compressed
        guard CStatorSys_zstream_inflate_init(&stream) == 0 else { return nil }
    }

    deinit { CStatorSys_zstream_free(&stream) }

    func next() -> [UInt8]? {
        while offset < compressed.count {
            let n = min(Self.slice, compressed.count - offset)
            let start = offset
            let rc = compressed.withUnsafeBufferPointer {
                CStatorSys_zstream_write(&stream, $0.baseAddress.map { $0 + start }, n, 0)
            }
            offset += n
            guard rc == 0 else { return nil }  // corrupt: the body ends short and the connection closes
            if stream.length > 0 {
                let out = Array(UnsafeBufferPointer(start: stream.out, count: stream.length))
                stream.length = 0
                return out
            }
        }
        return nil
    }
}
