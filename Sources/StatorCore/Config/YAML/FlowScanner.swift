/// Reads flow collections and quoted scalars from one (joined) line.
struct FlowScanner {
    static let unclosed = "unclosed flow collection"
    static let unterminated = "a quoted value that is never closed"
    static let trailingBackslash = "a \\ at the end of a quoted value"
    /// How deep collections may nest, in flow and block style together. The reader recurses
    /// once (flow) to three times (block) per level, on whatever thread reads the file: a
    /// test thread under ThreadSanitizer overflowed its stack at 1,000 levels. Mapping files
    /// nest about six deep (go-yaml's own bound is 10,000).
    static let maxDepth = 100
    static let tooDeep = "collections nested more than 100 deep"
    let text: Substring
    let line: Int
    var index: Substring.Index
    /// The document's anchors: read for `*name`, added to for `&name`.
    var anchors: [String: YAMLNode]
    /// The collections this one is nested in (the block ones around it included).
    var depth: Int

    init(text: Substring, line: Int, anchors: [String: YAMLNode] = [:], depth: Int = 0) {
        self.text = text
        self.line = line
        self.anchors = anchors
        self.depth = depth
        index = text.startIndex
    }

    var atEnd: Bool { index >= text.endIndex }
    var peek: Character? { atEnd ? nil : text[index] }
    var rest: Substring { text[index...] }

    mutating func advance() { index = text.index(after: index) }

    mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { advance() } }

    mutating func flowNode() throws(YAMLError) -> YAMLNode {
        skipSpaces()
        if peek == "&" {
            let name = anchorName()
            guard !name.isEmpty else { throw YAMLError(line: line, message: "an anchor (&) needs a name") }
            let node = try flowNode()
            anchors[name] = node
            return node
        }
        if peek == "*" { return try Self.resolve(alias: Substring(anchorName()), in: anchors, line: line) }
        if peek == "[" || peek == "{" {
            guard depth < Self.maxDepth else { throw YAMLError(line: line, message: Self.tooDeep) }
            depth += 1
        }
        switch peek {
        case "[":
            advance()
            var items: [YAMLNode] = []
            while true {
                skipSpaces()
                guard let c = peek else { throw YAMLError(line: line, message: Self.unclosed) }
                if c == "]" {
                    advance()
                    depth -= 1
                    return .sequence(items, line: line)
                }
                items.append(try flowNode())
                skipSpaces()
                guard let d = peek else { throw YAMLError(line: line, message: Self.unclosed) }
                if d == "," {
                    advance()
                } else if d != "]" {
                    throw YAMLError(line: line, message: "expected , or ] in a flow sequence, found \(d)")
                }
            }
        case "{":
            advance()
            var entries: [(key: String, value: YAMLNode)] = []
            while true {
                skipSpaces()
                guard let c = peek else { throw YAMLError(line: line, message: Self.unclosed) }
                if c == "}" {
                    advance()
                    depth -= 1
                    return .mapping(entries, line: line)
                }
                let key = try flowScalar(isKey: true)
                guard case .scalar(let k, _, _) = key else {
                    throw YAMLError(line: line, message: "a flow mapping key must be a scalar")
                }
                if entries.contains(where: { $0.key == k }) { throw YAMLError(line: line, message: "duplicate key \"\(k)\"") }
                skipSpaces()
                guard peek == ":" else {
                    throw YAMLError(line: line, message: "expected : after the key \"\(k)\" in a flow mapping")
                }
                advance()
                skipSpaces()
                let value: YAMLNode
                if peek == "," || peek == "}" {
                    value = .scalar("", quoted: false, line: line)
                } else {
                    value = try flowNode()
                }
                entries.append((k, value))
                skipSpaces()
                guard let d = peek else { throw YAMLError(line: line, message: Self.unclosed) }
                if d == "," {
                    advance()
                } else if d != "}" {
                    throw YAMLError(line: line, message: "expected , or } in a flow mapping, found \(d)")
                }
            }
        default:
            return try flowScalar(isKey: false)
        }
    }

    /// The name after `&` or `*` here (the sign skipped).
    private mutating func anchorName() -> String {
        advance()
        let name = Self.anchorName(rest)
        index = name.endIndex
        return String(name)
    }

    /// The name of an anchor or alias, in flow or block style: what follows its `&` or `*` up
    /// to a space, `,`, `[`, `]`, `{` or `}`.
    static func anchorName(_ afterSign: Substring) -> Substring { afterSign.prefix { !" \t,[]{}".contains($0) } }

    /// The node `*name` stands for.
    static func resolve(alias name: Substring, in anchors: [String: YAMLNode], line: Int) throws(YAMLError) -> YAMLNode {
        guard let node = anchors[String(name)] else {
            throw YAMLError(line: line, message: "*\(name) is an alias to no anchor; quote a value that starts with *")
        }
        return node
    }

    /// A scalar inside a flow collection: quoted, or plain up to `,`, `]`, `}` (and for a key, `:`).
    mutating func flowScalar(isKey: Bool) throws(YAMLError) -> YAMLNode {
        skipSpaces()
        if let c = peek, c == "\"" || c == "'" { return .scalar(try quoted(), quoted: true, line: line) }
        if let c = peek, "&*!%@`?".contains(c) {
            throw YAMLError(line: line, message: "\(c) cannot start a plain value here; quote it")
        }
        let start = index
        while let c = peek, c != ",", c != "]", c != "}", c != "[", c != "{" {
            if c == ":" {
                let after = text.index(after: index)
                if isKey || after == text.endIndex || text[after] == " " || text[after] == "," { break }
            }
            advance()
        }
        var value = text[start..<index]
        while let last = value.last, last == " " { value.removeLast() }
        return .scalar(String(value), quoted: false, line: line)
    }

    /// A single- or double-quoted scalar starting here, unescaped.
    mutating func quoted() throws(YAMLError) -> String {
        guard let q = peek else { throw YAMLError(line: line, message: "expected a quoted value") }
        advance()
        var out = ""
        while true {
            guard let c = peek else { throw YAMLError(line: line, message: Self.unterminated) }
            advance()
            if c == q {
                if q == "'", peek == "'" {
                    out.append("'")
                    advance()
                    continue
                }
                return out
            }
            if q == "\"", c == "\\" {
                guard let e = peek else { throw YAMLError(line: line, message: Self.trailingBackslash) }
                advance()
                switch e {
                case "\\": out.append("\\")
                case "\"": out.append("\"")
                case "/": out.append("/")
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "0": out.append("\0")
                case " ": out.append(" ")
                case "x", "u", "U":
                    let digits = e == "x" ? 2 : e == "u" ? 4 : 8
                    var value: UInt32 = 0
                    for _ in 0..<digits {
                        guard let h = peek?.hexDigitValue else {
                            throw YAMLError(line: line, message: "\\\(e) needs \(digits) hexadecimal digits")
                        }
                        value = value << 4 | UInt32(h)
                        advance()
                    }
                    guard let scalar = Unicode.Scalar(value) else {
                        throw YAMLError(line: line, message: "\\\(e) names no Unicode character")
                    }
                    out.unicodeScalars.append(scalar)
                default:
                    throw YAMLError(line: line, message: "unknown escape \\\(e) in a double-quoted value")
                }
                continue
            }
            out.append(c)
        }
    }
}
