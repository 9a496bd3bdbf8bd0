/// A configuration problem, reported in one line before the agent starts.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
