/// A node of a YAML document, from the subset that mapping files use (`YAMLReader`). Every
/// node keeps the line it starts on, for error messages.
public indirect enum YAMLNode: Equatable, Sendable {
    /// A scalar's text, and whether it was quoted (a quoted scalar is always a string:
    /// `"1"` is not a number, `"~"` is not null).
    case scalar(String, quoted: Bool, line: Int)
    case sequence([YAMLNode], line: Int)
    /// Keys in file order; a key appears once.
    case mapping([(key: String, value: YAMLNode)], line: Int)

    public var line: Int {
        switch self {
        case .scalar(_, _, let line), .sequence(_, let line), .mapping(_, let line): line
        }
    }

    /// Whether this is YAML's null: an empty plain scalar, `~` or `null`.
    public var isNull: Bool {
        if case .scalar(let text, false, _) = self {
            return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
        }
        return false
    }

    public static func == (a: YAMLNode, b: YAMLNode) -> Bool {
        switch (a, b) {
        case (.scalar(let x, let qx, _), .scalar(let y, let qy, _)): x == y && qx == qy
        case (.sequence(let x, _), .sequence(let y, _)): x == y
        case (.mapping(let x, _), .mapping(let y, _)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }
}

/// Why a YAML text could not be read: the line (from 1) and what is wrong there.
public struct YAMLError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public var description: String { "line \(line): \(message)" }
}
