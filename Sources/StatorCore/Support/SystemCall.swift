import Glibc

/// An error from a system call: which call failed and the `errno` it set.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    /// The `errno` value.
    public let errno: Int32
    /// The name of the failing call, e.g. `"bind"`.
    public let call: String

    /// Creates an error for `call` with the given `errno`.
    public init(errno: Int32, call: String) {
        self.errno = errno
        self.call = call
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno)))"
    }
}

/// Runs a system call, retrying on `EINTR`.
///
/// - Parameters:
///   - call: the call's name, for the error.
///   - body: performs the call and returns its result; negative means failure with `errno` set.
/// - Returns: the result, or `nil` when the call would block (`EAGAIN`/`EWOULDBLOCK`).
/// - Throws: `SystemError` for any other failure.
@discardableResult
func syscall<T: FixedWidthInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T? {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemError(errno: code, call: call)
    }
}
