import CStatorSys
import Glibc

/// Receives up to `capacity` datagrams per system call with `recvmmsg`, into
/// a preallocated arena (`maxDatagram` bytes per datagram: 64 KiB for UDP, so none is ever
/// truncated; a Unix socket's largest datagram for `unixgram`).
///
/// Owned by one reader thread; not shared.
final class DatagramBatchReader {
    /// The largest UDP datagram (and more than the largest UDP payload).
    static let udpDatagram = 65_536
    let maxDatagram: Int
    let capacity: Int
    private let buffers: UnsafeMutableRawPointer
    private let iovecs: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutablePointer<CStatorSys_mmsghdr>
    private let names: UnsafeMutablePointer<sockaddr_storage>

    init(capacity: Int, maxDatagram: Int = DatagramBatchReader.udpDatagram) {
        self.capacity = capacity
        self.maxDatagram = maxDatagram
        buffers = .allocate(byteCount: capacity * maxDatagram, alignment: 16)
        iovecs = .allocate(capacity: capacity)
        headers = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: buffers + i * maxDatagram, iov_len: maxDatagram)
        }
    }

    deinit {
        buffers.deallocate()
        iovecs.deallocate()
        headers.deallocate()
        names.deallocate()
    }

    /// Reads a batch.
    /// - Parameters:
    ///   - fd: the socket.
    ///   - wait: block for the first datagram (up to the socket's receive timeout), or not at all.
    /// - Returns: the number of datagrams read; 0 when none was waiting.
    /// - Throws: `SystemError` for failures other than `EINTR`/`EAGAIN`.
    func read(from fd: Int32, wait: Bool) throws(SystemError) -> Int {
        for i in 0..<capacity {
            var msg = msghdr()
            msg.msg_name = UnsafeMutableRawPointer(names + i)
            msg.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            msg.msg_iov = iovecs + i
            msg.msg_iovlen = 1
            headers[i] = CStatorSys_mmsghdr(msg_hdr: msg, msg_len: 0)
        }
        let flags = wait ? CStatorSys_MSG_WAITFORONE : Int32(MSG_DONTWAIT)
        let n = try syscall("recvmmsg") { CStatorSys_recvmmsg(fd, headers, UInt32(capacity), flags, nil) }
        return Int(n ?? 0)
    }

    /// The payload of datagram `i` of the last batch.
    @inline(__always)
    func payload(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffers + i * maxDatagram, count: Int(headers[i].msg_len))
    }

    /// Whether datagram `i` of the last batch was longer than `maxDatagram` (and cut).
    func isTruncated(_ i: Int) -> Bool { headers[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 }

    /// The sender of datagram `i`, formatted (for log lines only).
    func sender(_ i: Int) -> String {
        SocketAddress.format(UnsafeRawBufferPointer(start: names + i, count: Int(headers[i].msg_hdr.msg_namelen)))
    }

}
