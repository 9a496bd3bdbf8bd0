import CStatorSys
import Glibc
import StatorCore

// stator-load: sends a reproducible statsd mix over UDP with sendmmsg, paced to a
// rate, and prints what it sent as one JSON object (lines, datagrams, and the
// counter sum and timer count the aggregated output must account for).
//
//   stator-load --target 127.0.0.1:8125 --rate 400000 --duration 10 --keys 2000
//               --mix c=50,ms=30,g=10,s=10 --sample-rate 0 --tags 2 --datagram-size 1400 --seed 1
//   --unix PATH: the same datagrams to a Unix datagram socket (blocking: a busy agent makes
//   the sender wait); --tcp N: the same lines, newline-ended, over N connections to --target.

struct Options {
    var host = "127.0.0.1"
    var port: UInt16 = 8125
    var rate = 0.0  // lines per second; 0 = as fast as possible
    var duration = 5.0
    var keys = 2000
    var mix: [(String, Double)] = [("c", 50), ("ms", 30), ("g", 10), ("s", 10)]
    var sampleRate = 0.0  // share of counter/timer lines sent with @0.5
    var tags = 2
    var datagramSize = 1400  // 0 = one line per datagram
    var seed: UInt64 = 1
    var batch = 64
    /// Format datagrams on the fly with keys 0, 1, 2, ... (mod `keys`) instead of cycling a pool:
    /// for memory and scale runs that need every key to exist.
    var sequential = false
    /// Format every datagram at send time with the configured mix, as a client does,
    /// instead of replaying pre-built ones (which sends far faster than any client).
    var formatLive = false
    /// Pad every name with `x` to this many bytes (0: names as they are), e.g. to send the
    /// longest names `max_name_bytes` allows.
    var nameBytes = 0
    /// Pad every tag (`key:value`) with `x` to this many bytes (0: tags as they are).
    var tagBytes = 0
    /// Send to this Unix datagram socket instead of UDP.
    var unixPath = ""
    /// Send over this many TCP connections instead of UDP (0: UDP).
    var tcpConnections = 0
}

func fail(_ message: String) -> Never {
    var text = "stator-load: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    while let flag = args.popFirst() {
        guard let value = args.popFirst() else { fail("\(flag) needs a value") }
        switch flag {
        case "--target":
            guard let colon = value.lastIndex(of: ":"), let port = UInt16(value[value.index(after: colon)...]) else {
                fail("--target host:port")
            }
            o.host = String(value[..<colon])
            o.port = port
        case "--rate": o.rate = Double(value) ?? 0
        case "--duration": o.duration = Double(value) ?? 5
        case "--keys": o.keys = max(1, Int(value) ?? 2000)
        case "--mix":
            o.mix = value.split(separator: ",").compactMap { part in
                let kv = part.split(separator: "=")
                guard kv.count == 2, let w = Double(kv[1]) else { return nil }
                return (String(kv[0]), w)
            }
        case "--sample-rate": o.sampleRate = Double(value) ?? 0
        case "--tags": o.tags = max(0, Int(value) ?? 0)
        case "--datagram-size": o.datagramSize = max(0, Int(value) ?? 1400)
        case "--seed": o.seed = UInt64(value) ?? 1
        case "--batch": o.batch = max(1, min(1024, Int(value) ?? 64))
        case "--sequential": o.sequential = (value == "1" || value == "true")
        case "--format-live": o.formatLive = (value == "1" || value == "true")
        case "--name-bytes": o.nameBytes = max(0, Int(value) ?? 0)
        case "--tag-bytes": o.tagBytes = max(0, Int(value) ?? 0)
        case "--unix": o.unixPath = value
        case "--tcp": o.tcpConnections = max(0, Int(value) ?? 0)
        default: fail("unknown flag \(flag)")
        }
    }
    return o
}

extension SplitMix64 {
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// A datagram and what it contributes.
struct Datagram {
    var bytes: [UInt8]
    var lines: Int
    var counterSum: Double
    var timerCount: Double
}

let o = parseOptions()
var rng = SplitMix64(state: o.seed)
let totalWeight = o.mix.reduce(0) { $0 + $1.1 }

/// `|#` and `--tags` tags of `key`, each padded with `x` to `--tag-bytes` bytes.
func tags(_ key: Int) -> String {
    "|#"
        + (0..<o.tags).map { t in
            let tag = "t\(t):v\((key + t) % 7)"
            return tag.utf8.count >= o.tagBytes ? tag : tag + String(repeating: "x", count: o.tagBytes - tag.utf8.count)
        }.joined(separator: ",")
}

/// `base`, padded with `.xxx...` to `--name-bytes` bytes when it is shorter.
func padded(_ base: String) -> String {
    base.utf8.count >= o.nameBytes ? base : base + "." + String(repeating: "x", count: o.nameBytes - base.utf8.count - 1)
}

func line(_ rng: inout SplitMix64) -> (String, Double, Double) {
    let key = Int(rng.next() % UInt64(o.keys))
    var pick = rng.unit() * totalWeight
    var type = o.mix.first?.0 ?? "c"
    for (t, w) in o.mix {
        if pick < w { type = t; break }
        pick -= w
    }
    var tagText = ""
    if o.tags > 0 {
        tagText = tags(key)
    }
    let sampled = (type == "c" || type == "ms") && rng.unit() < o.sampleRate
    let rateText = sampled ? "|@0.5" : ""
    let weight = sampled ? 2.0 : 1.0
    func name(_ kind: String) -> String { padded("bench.\(kind).\(key)") }
    switch type {
    case "c": return ("\(name("counter")):1|c\(rateText)\(tagText)", weight, 0)
    case "ms": return ("\(name("timer")):\(rng.next() % 1000)|ms\(rateText)\(tagText)", 0, weight)
    case "g": return ("\(name("gauge")):\(rng.next() % 100)|g\(tagText)", 0, 0)
    case "s": return ("\(name("set")):u\(rng.next() % 100)|s\(tagText)", 0, 0)
    case "h": return ("\(name("histogram")):\(rng.next() % 1000)|h\(tagText)", 0, 0)
    default: return ("\(name("distribution")):\(rng.next() % 1000)|d\(tagText)", 0, 0)
    }
}

/// A datagram of random lines from the mix, filled up to the datagram size
/// (a line that would not fit is dropped), or one line when the size is 0.
func randomDatagram(_ rng: inout SplitMix64) -> Datagram {
    var d = Datagram(bytes: [], lines: 0, counterSum: 0, timerCount: 0)
    repeat {
        let (text, c, t) = line(&rng)
        if o.datagramSize > 0, d.lines > 0, d.bytes.count + 1 + text.utf8.count > o.datagramSize { break }
        if d.lines > 0 { d.bytes.append(0x0A) }
        d.bytes.append(contentsOf: text.utf8)
        d.lines += 1
        d.counterSum += c
        d.timerCount += t
    } while o.datagramSize > 0
    return d
}

// A pool of distinct datagrams, cycled through while sending.
var pool: [Datagram] = []
for _ in 0..<256 {  // a small working set, like a real client formatting lines as it goes
    pool.append(randomDatagram(&rng))
}

/// The sockets to send on: one (UDP or Unix datagram), or `--tcp` connections.
func openSockets() -> [Int32] {
    if !o.unixPath.isEmpty {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var sndbuf: Int32 = 8 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, 4)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in o.unixPath.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { fail("connect \(o.unixPath) failed") }
        return [fd]
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = o.port.bigEndian
    guard inet_pton(AF_INET, o.host, &addr.sin_addr) == 1 else { fail("--target needs an IPv4 address") }
    let kind = o.tcpConnections > 0 ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
    return (0..<max(1, o.tcpConnections)).map { _ in
        let fd = socket(AF_INET, kind, 0)
        var sndbuf: Int32 = 8 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, 4)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { fail("connect failed") }
        return fd
    }
}
let sockets = openSockets()
let fd = sockets[0]

/// Sends all of `bytes` on a stream socket.
func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        guard let base = bytes.baseAddress else { return true }
        let n = send(fd, base + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}

// Pinned buffers for sendmmsg.
var sequentialKey = 0
// Each with a newline after its bytes, which a TCP stream sends and a datagram does not.
var pinned = pool.map { d -> UnsafeMutableRawBufferPointer in
    let p = UnsafeMutableRawBufferPointer.allocate(byteCount: d.bytes.count + 1, alignment: 1)
    d.bytes.withUnsafeBytes { p.copyMemory(from: $0) }
    p[d.bytes.count] = 0x0A
    return p
}
/// Replaces pool entry `k` and its pinned copy.
@MainActor func install(_ d: Datagram, at k: Int) {
    pool[k] = d
    pinned[k].deallocate()
    pinned[k] = UnsafeMutableRawBufferPointer.allocate(byteCount: d.bytes.count + 1, alignment: 1)
    d.bytes.withUnsafeBytes { pinned[k].copyMemory(from: $0) }
    pinned[k][d.bytes.count] = 0x0A
}

let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: o.batch)
let headers = UnsafeMutablePointer<CStatorSys_mmsghdr>.allocate(capacity: o.batch)

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

var sentLines = 0
var sentDatagrams = 0
var counterSum = 0.0
var timerCount = 0.0
var errors = 0
var next = 0
let start = now()
let end = start + o.duration
while true {
    let t = now()
    if t >= end { break }
    if o.rate > 0 {
        // Pace: don't run ahead of rate * elapsed.
        let allowed = o.rate * (t - start)
        if Double(sentLines) >= allowed {
            let wait = (Double(sentLines) - allowed) / o.rate
            var ts = timespec(tv_sec: Int(wait), tv_nsec: Int((wait - Double(Int(wait))) * 1e9))
            nanosleep(&ts, nil)
            continue
        }
    }
    if o.formatLive {
        // Format the batch's datagrams now, with the same mix as the pool.
        for i in 0..<o.batch { install(randomDatagram(&rng), at: (next + i) % pool.count) }
    } else if o.sequential {
        // Fill the pool's buffers anew with the next keys: counters (value 1), timers when
        // the mix starts with `ms`, or members of one set when it starts with `s`.
        let timers = o.mix.first?.0 == "ms"
        let members = o.mix.first?.0 == "s"
        for i in 0..<o.batch {
            let k = (next + i) % pool.count
            var d = Datagram(bytes: [], lines: 0, counterSum: 0, timerCount: 0)
            while true {
                let key = sequentialKey % o.keys
                let tagText = o.tags > 0 ? tags(key) : ""
                let text =
                    members
                    ? "bench.set:member.\(key)|s\(tagText)"
                    : timers
                        ? "\(padded("bench.timer.\(key)")):\(rng.next() % 1000)|ms\(tagText)"
                        : "\(padded("bench.counter.\(key)")):1|c\(tagText)"
                if d.lines > 0, d.bytes.count + 1 + text.utf8.count > max(o.datagramSize, 1) { break }
                if d.lines > 0 { d.bytes.append(0x0A) }
                d.bytes.append(contentsOf: text.utf8)
                d.lines += 1
                if timers { d.timerCount += 1 } else { d.counterSum += 1 }
                sequentialKey += 1
                if o.datagramSize == 0 { break }
            }
            install(d, at: k)
        }
    }
    if o.tcpConnections > 0 {
        // A stream: each datagram's lines with their newline, the connections in turn.
        var sent = 0
        for i in 0..<o.batch {
            let k = (next + i) % pool.count
            let bytes = UnsafeRawBufferPointer(rebasing: pinned[k][0..<(pool[k].bytes.count + 1)])
            guard sendAll(sockets[(sentDatagrams + i) % sockets.count], bytes) else { break }
            sent += 1
        }
        if sent == 0 {
            errors += 1
            continue
        }
        for i in 0..<sent {
            let d = pool[(next + i) % pool.count]
            sentLines += d.lines
            counterSum += d.counterSum
            timerCount += d.timerCount
        }
        sentDatagrams += sent
        next = (next + sent) % pool.count
        continue
    }
    for i in 0..<o.batch {
        let k = (next + i) % pool.count
        iovecs[i] = iovec(iov_base: pinned[k].baseAddress, iov_len: pool[k].bytes.count)
        var msg = msghdr()
        msg.msg_iov = iovecs + i
        msg.msg_iovlen = 1
        headers[i] = CStatorSys_mmsghdr(msg_hdr: msg, msg_len: 0)
    }
    let n = CStatorSys_sendmmsg(fd, headers, UInt32(o.batch), 0)
    if n <= 0 {
        errors += 1
        continue
    }
    for i in 0..<Int(n) {
        let d = pool[(next + i) % pool.count]
        sentLines += d.lines
        counterSum += d.counterSum
        timerCount += d.timerCount
    }
    sentDatagrams += Int(n)
    next = (next + Int(n)) % pool.count
}
for s in sockets { close(s) }  // TCP: the agent reads to the end, and the last line counts at close
let elapsed = now() - start
print(
    "{\"lines\":\(sentLines),\"datagrams\":\(sentDatagrams),\"seconds\":\(elapsed),\"lines_per_second\":\(Double(sentLines) / elapsed),"
        + "\"counter_sum\":\(counterSum),\"timer_count\":\(timerCount),\"send_errors\":\(errors)}")
