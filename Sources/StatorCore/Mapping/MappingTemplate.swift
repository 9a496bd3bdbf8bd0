/// A mapping's `name` or label value with its capture references, read once when the file is
/// loaded, as statsd_exporter reads them (Go's `regexp.Expand` rules): `$name` takes the
/// longest run of letters, digits and `_` after the `$`, `${name}` what is between the braces,
/// and `$$` is a `$`. A name of digits refers to a capture by number (`$0` is a regex's whole
/// match; a glob has no `$0`); another name to a regex's named group. A reference to a capture
/// or group that does not exist is empty, so `$1_total` is empty (it names the group
/// `1_total`): write `${1}_total`.
struct MappingTemplate: Sendable, Equatable {
    enum Piece: Sendable, Equatable {
        case literal(String)
        case capture(Int)
        case named(String)
    }

    let pieces: [Piece]

    init(_ text: String) {
        var pieces: [Piece] = []
        var literal = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            literal += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            let name: Substring
            if rest.first == "$" {
                literal += "$"
                rest = rest.dropFirst()
                continue
            } else if rest.first == "{" {
                // `${name}`: a name of word characters, else the `$` is plain text.
                let inner = rest.dropFirst().prefix { Self.isWord($0) }
                guard !inner.isEmpty, inner.endIndex < rest.endIndex, rest[inner.endIndex] == "}" else {
                    literal += "$"
                    continue
                }
                name = inner
                rest = rest[rest.index(after: inner.endIndex)...]
            } else {
                name = rest.prefix { Self.isWord($0) }
                rest = rest.dropFirst(name.count)
            }
            guard !name.isEmpty else {
                literal += "$"  // a lone `$` stays, as Go leaves it
                continue
            }
            if !literal.isEmpty { pieces.append(.literal(literal)) }
            literal = ""
            if name.allSatisfy({ $0.isASCII && $0.isNumber }) {
                pieces.append(.capture(Int(name) ?? .max))  // too large for any capture: empty
            } else {
                pieces.append(.named(String(name)))
            }
        }
        literal += rest
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        self.pieces = pieces
    }

    private static func isWord(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "_") }

    /// Whether the text has no references.
    var isLiteral: Bool { pieces.allSatisfy { if case .literal = $0 { true } else { false } } }

    /// The text with its references filled: `capture(n)` gives capture `n` (nil: empty), `named`
    /// a named group's text (nil: empty).
    func expand(capture: (Int) -> Substring?, named: (String) -> Substring? = { _ in nil }) -> String {
        var out = ""
        for piece in pieces {
            switch piece {
            case .literal(let text): out += text
            case .capture(let n): out += capture(n) ?? ""
            case .named(let name): out += named(name) ?? ""
            }
        }
        return out
    }
}
