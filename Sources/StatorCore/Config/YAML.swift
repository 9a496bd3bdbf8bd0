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

/// Reads the subset of YAML that statsd_exporter mapping files are written in: block mappings
/// and sequences, flow sequences and mappings (`[0.1, 0.5]`, `{a: b}`, also over several
/// lines), plain, single- and double-quoted scalars, comments, a leading `---` (and `...`),
/// and literal (`|`) and folded (`>`) block scalars with their chomping indicators.
///
/// Anything else (anchors and aliases, tags, directives, `?` keys, several documents, tabs in
/// indentation, a quoted scalar over several lines, a duplicate key) is an error naming its
/// line, never a silent misreading. Scalars stay text: the reader of the document decides
/// what is a number or a boolean.
public struct YAMLReader {
    private struct Line {
        var number: Int
        /// Spaces before the content.
        var indent: Int
        /// The line without its indentation (comments still in).
        var content: Substring
        var raw: Substring
    }

    private var lines: [Line]
    private var at = 0

    /// Reads `text` as one document: `nil` when it holds no node at all.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var reader = try YAMLReader(text)
        return try reader.document()
    }

    private init(_ text: String) throws(YAMLError) {
        var lines: [Line] = []
        var number = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let raw = raw.last == "\r" ? raw.dropLast() : raw
            let indent = raw.prefix { $0 == " " }.count
            let content = raw.dropFirst(indent)
            if content.first == "\t", !Self.isBlank(content) {
                throw YAMLError(line: number, message: "a tab in indentation (YAML indents with spaces)")
            }
            lines.append(Line(number: number, indent: indent, content: content, raw: raw))
        }
        self.lines = lines
    }

    /// Whether a line holds nothing but spaces, tabs and a comment.
    private static func isBlank(_ content: Substring) -> Bool {
        let rest = content.drop { $0 == " " || $0 == "\t" }
        return rest.isEmpty || rest.first == "#"
    }

    // MARK: Lines

    /// Moves to the next line with content; returns it (nil at the end).
    private mutating func current() -> Line? {
        while at < lines.count, Self.isBlank(lines[at].content) { at += 1 }
        return at < lines.count ? lines[at] : nil
    }

    private mutating func document() throws(YAMLError) -> YAMLNode? {
        guard var first = current() else { return nil }
        if first.content.hasPrefix("%") {
            throw YAMLError(line: first.number, message: "directives (%) are not supported")
        }
        if first.indent == 0, Self.isMarker(first.content, "---") {
            let rest = Self.stripComment(first.content.dropFirst(3))
            guard rest.allSatisfy({ $0 == " " }) else {
                throw YAMLError(line: first.number, message: "content after --- is not supported; start it on the next line")
            }
            at += 1
            guard let next = current() else { return nil }
            first = next
        }
        if first.indent == 0, Self.isMarker(first.content, "...") { return try end(after: first) }
        let node = try block(minimumIndent: 0)
        if let line = current() {
            if line.indent == 0, Self.isMarker(line.content, "---") {
                throw YAMLError(line: line.number, message: "several documents in one file are not supported")
            }
            if line.indent == 0, Self.isMarker(line.content, "...") {
                _ = try end(after: line)
                return node
            }
            throw YAMLError(line: line.number, message: "unexpected indentation or content here")
        }
        return node
    }

    /// After a `...` marker only blank lines and comments may follow.
    private mutating func end(after marker: Line) throws(YAMLError) -> YAMLNode? {
        at += 1
        if let line = current() {
            throw YAMLError(line: line.number, message: "content after the end of the document (...)")
        }
        return nil
    }

    /// Whether a line is `---` or `...` at the start of the line.
    private static func isDocumentMarker(_ line: Line) -> Bool {
        line.indent == 0 && (isMarker(line.content, "---") || isMarker(line.content, "..."))
    }

    /// Whether `content` is the document marker `marker`, alone or followed by a space.
    private static func isMarker(_ content: Substring, _ marker: String) -> Bool {
        content.hasPrefix(marker) && (content.count == marker.count || content.dropFirst(marker.count).first == " ")
    }

    // MARK: Block structure

    /// The block node starting at the current line, whose indentation is at least `minimumIndent`.
    private mutating func block(minimumIndent: Int) throws(YAMLError) -> YAMLNode {
        guard let line = current(), line.indent >= minimumIndent else {
            return .scalar("", quoted: false, line: at < lines.count ? lines[at].number : lines.count)
        }
        try Self.rejectUnsupported(line.content, line.number)
        if Self.isSequenceItem(line.content) { return try sequence(indent: line.indent) }
        if try Self.splitKey(line.content, line.number) != nil { return try mapping(indent: line.indent) }
        // A scalar or flow collection on its own line(s).
        at += 1
        if line.content.first == "|" || line.content.first == ">" {
            return try blockScalar(header: Self.stripComment(line.content), parentIndent: line.indent - 1, line: line.number)
        }
        return try inlineValue(Self.stripComment(line.content), line: line.number)
    }

    private static func isSequenceItem(_ content: Substring) -> Bool {
        content == "-" || content.hasPrefix("- ") || content.hasPrefix("-\t")
    }

    private mutating func sequence(indent: Int) throws(YAMLError) -> YAMLNode {
        let start = lines[at].number
        var items: [YAMLNode] = []
        while let line = current(), line.indent == indent, Self.isSequenceItem(line.content), !Self.isDocumentMarker(line) {
            let rest = line.content.dropFirst(1)
            let spaces = rest.prefix { $0 == " " }.count
            let item = rest.dropFirst(spaces)
            if Self.isBlank(item) {
                at += 1
                items.append(try nested(under: indent, line: line.number, allowSequenceAtSameIndent: false))
            } else if item.first == "|" || item.first == ">" {
                at += 1
                items.append(try blockScalar(header: Self.stripComment(item), parentIndent: indent, line: line.number))
            } else {
                // The item starts on this line: read it as a block indented to where it starts.
                lines[at].indent = indent + 1 + spaces
                lines[at].content = item
                items.append(try block(minimumIndent: indent + 1 + spaces))
            }
        }
        return .sequence(items, line: start)
    }

    private mutating func mapping(indent: Int) throws(YAMLError) -> YAMLNode {
        let start = lines[at].number
        var entries: [(key: String, value: YAMLNode)] = []
        var seen: Set<String> = []
        while let line = current(), line.indent == indent, !Self.isSequenceItem(line.content), !Self.isDocumentMarker(line) {
            try Self.rejectUnsupported(line.content, line.number)
            guard let (key, rest) = try Self.splitKey(line.content, line.number) else {
                throw YAMLError(line: line.number, message: "expected \"key: value\" at this indentation")
            }
            guard seen.insert(key).inserted else {
                throw YAMLError(line: line.number, message: "duplicate key \"\(key)\"")
            }
            at += 1
            let value: YAMLNode
            let text = Self.stripComment(rest).drop { $0 == " " }
            if text.isEmpty {
                value = try nested(under: indent, line: line.number, allowSequenceAtSameIndent: true)
            } else if let header = text.first, header == "|" || header == ">" {
                value = try blockScalar(header: text, parentIndent: indent, line: line.number)
            } else {
                value = try inlineValue(text, line: line.number)
            }
            entries.append((key, value))
        }
        return .mapping(entries, line: start)
    }

    /// The value of a key or item with nothing after it on its line: a block indented deeper
    /// (or, for a key, a sequence at the key's own indentation), else null.
    private mutating func nested(under indent: Int, line: Int, allowSequenceAtSameIndent: Bool) throws(YAMLError) -> YAMLNode {
        guard let next = current() else { return .scalar("", quoted: false, line: line) }
        if next.indent > indent { return try block(minimumIndent: indent + 1) }
        if allowSequenceAtSameIndent, next.indent == indent, Self.isSequenceItem(next.content) {
            return try sequence(indent: indent)
        }
        return .scalar("", quoted: false, line: line)
    }

    /// A literal (`|`) or folded (`>`) block scalar: its lines are those indented deeper than
    /// `parentIndent` (and blank lines among them).
    private mutating func blockScalar(header: Substring, parentIndent: Int, line: Int) throws(YAMLError) -> YAMLNode {
        let literal = header.first == "|"
        var chomping: Character = " "
        var explicitIndent: Int?
        for c in header.dropFirst().prefix(while: { $0 != " " }) {
            if c == "-" || c == "+", chomping == " " {
                chomping = c
            } else if let d = c.wholeNumberValue, d > 0, explicitIndent == nil {
                explicitIndent = parentIndent + d
            } else {
                throw YAMLError(
                    line: line, message: "a block scalar header is | or > with an optional - or + and indentation digit")
            }
        }
        var body: [Substring] = []
        var contentIndent = explicitIndent
        while at < lines.count {
            let l = lines[at]
            let blank = l.raw.allSatisfy { $0 == " " }
            if !blank {
                if contentIndent == nil { contentIndent = l.indent }
                guard l.indent > parentIndent, let ci = contentIndent, l.indent >= ci else { break }
                body.append(l.raw.dropFirst(ci))
            } else {
                body.append(contentIndent.map { l.raw.dropFirst($0) } ?? "")
            }
            at += 1
        }
        if let ci = contentIndent, ci <= parentIndent { body = [] }
        // Trailing blank lines belong to the chomping, not the text.
        var trailing = 0
        while let last = body.last, last.isEmpty {
            body.removeLast()
            trailing += 1
        }
        var text = ""
        if literal {
            text = body.joined(separator: "\n")
        } else {
            // Folded: the break between two lines of text becomes a space; a blank line
            // stands for one break; lines indented further keep the breaks around them.
            var previous: (empty: Bool, further: Bool)?
            var beforeBlank = false
            for l in body {
                if l.isEmpty {
                    text += "\n"
                    if let p = previous, !p.empty { beforeBlank = p.further }
                    previous = (true, previous?.further ?? false)
                    continue
                }
                let further = l.first == " " || l.first == "\t"
                if let p = previous {
                    if p.empty {
                        if further || beforeBlank { text += "\n" }
                    } else {
                        text += further || p.further ? "\n" : " "
                    }
                }
                text += l
                previous = (false, further)
            }
        }
        switch chomping {
        case "-": break
        case "+": if !body.isEmpty || trailing > 0 { text += String(repeating: "\n", count: (body.isEmpty ? 0 : 1) + trailing) }
        default: if !body.isEmpty { text += "\n" }
        }
        return .scalar(text, quoted: true, line: line)
    }

    // MARK: Keys, comments and scalars on one line

    /// What the subset does not read, caught where a node starts so that it is never misread.
    private static func rejectUnsupported(_ content: Substring, _ line: Int) throws(YAMLError) {
        switch content.first {
        case "&": throw YAMLError(line: line, message: "anchors (&) are not supported")
        case "*": throw YAMLError(line: line, message: "aliases (*) are not supported; quote a value that starts with *")
        case "!": throw YAMLError(line: line, message: "tags (!) are not supported")
        case "?":
            if content.count == 1 || content.dropFirst().first == " " {
                throw YAMLError(line: line, message: "complex keys (?) are not supported")
            }
        case "%": throw YAMLError(line: line, message: "directives (%) are not supported")
        case "@": throw YAMLError(line: line, message: "a plain value cannot start with @; quote it")
        case "`": throw YAMLError(line: line, message: "a plain value cannot start with `; quote it")
        default: break
        }
    }

    /// `content` cut at a comment: a `#` at the start or after a space, outside quotes.
    static func stripComment(_ content: Substring) -> Substring {
        var quote: Character?
        var previous: Character = " "
        var index = content.startIndex
        while index < content.endIndex {
            let c = content[index]
            if let q = quote {
                if c == q {
                    if q == "'", content.index(after: index) < content.endIndex, content[content.index(after: index)] == "'" {
                        index = content.index(after: index)  // '' inside single quotes
                    } else {
                        quote = nil
                    }
                } else if q == "\"", c == "\\" {
                    index = content.index(after: index)
                    if index == content.endIndex { break }
                }
            } else if c == "#", previous == " " || previous == "\t" {
                return trimTrailing(content[..<index])
            } else if (c == "\"" || c == "'"),
                previous == " " || previous == "[" || previous == "{" || previous == "," || index == content.startIndex
            {
                quote = c
            }
            previous = c
            index = content.index(after: index)
        }
        return trimTrailing(content)
    }

    private static func trimTrailing(_ s: Substring) -> Substring {
        var s = s
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return s
    }

    /// A block mapping key on this line, and what follows its `:`; nil when the line is no key.
    private static func splitKey(_ content: Substring, _ line: Int) throws(YAMLError) -> (String, Substring)? {
        let content = stripComment(content)
        if let q = content.first, q == "\"" || q == "'" {
            var scanner = FlowScanner(text: content, line: line)
            let key = try scanner.quoted()
            scanner.skipSpaces()
            guard scanner.peek == ":" else { return nil }
            scanner.advance()
            guard scanner.atEnd || scanner.peek == " " else { return nil }
            return (key, scanner.rest)
        }
        if content.first == "[" || content.first == "{" { return nil }
        var index = content.startIndex
        while index < content.endIndex {
            if content[index] == ":" {
                let after = content.index(after: index)
                if after == content.endIndex || content[after] == " " {
                    let key = trimTrailing(content[..<index])
                    guard !key.isEmpty else { throw YAMLError(line: line, message: "an empty key") }
                    return (String(key), content[after...])
                }
            }
            index = content.index(after: index)
        }
        return nil
    }

    /// A value that starts on a key's or item's line: a flow collection (which may go on over
    /// the following lines until it closes), a quoted scalar or a plain one.
    private mutating func inlineValue(_ text: Substring, line: Int) throws(YAMLError) -> YAMLNode {
        let text = text.drop { $0 == " " }
        try Self.rejectUnsupported(text, line)
        if text.first == "[" || text.first == "{" {
            var joined = String(text)
            while true {
                var scanner = FlowScanner(text: Substring(joined), line: line)
                do throws(YAMLError) {
                    let node = try scanner.flowNode()
                    scanner.skipSpaces()
                    guard scanner.atEnd else {
                        throw YAMLError(line: line, message: "unexpected text after a flow collection")
                    }
                    return node
                } catch {
                    guard error.message == FlowScanner.unclosed else { throw error }
                    // Not closed on this line: take the next one in, as YAML allows.
                    guard at < lines.count else {
                        throw YAMLError(line: line, message: "a [ or { that is never closed")
                    }
                    joined += " " + Self.stripComment(lines[at].content)
                    at += 1
                }
            }
        }
        var scanner = FlowScanner(text: text, line: line)
        if text.first == "\"" || text.first == "'" {
            let value = try scanner.quoted()
            scanner.skipSpaces()
            guard scanner.atEnd else { throw YAMLError(line: line, message: "unexpected text after a quoted value") }
            return .scalar(value, quoted: true, line: line)
        }
        if let next = current(), next.indent > lines[line - 1].indent {
            throw YAMLError(
                line: next.number, message: "a plain value over several lines is not supported; quote it or use | or >")
        }
        return .scalar(String(text), quoted: false, line: line)
    }
}

/// Reads flow collections and quoted scalars from one (joined) line.
private struct FlowScanner {
    static let unclosed = "unclosed flow collection"
    let text: Substring
    let line: Int
    var index: Substring.Index

    init(text: Substring, line: Int) {
        self.text = text
        self.line = line
        index = text.startIndex
    }

    var atEnd: Bool { index >= text.endIndex }
    var peek: Character? { atEnd ? nil : text[index] }
    var rest: Substring { text[index...] }

    mutating func advance() { index = text.index(after: index) }

    mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { advance() } }

    mutating func flowNode() throws(YAMLError) -> YAMLNode {
        skipSpaces()
        switch peek {
        case "[":
            advance()
            var items: [YAMLNode] = []
            while true {
                skipSpaces()
                guard let c = peek else { throw YAMLError(line: line, message: Self.unclosed) }
                if c == "]" {
                    advance()
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
            guard let c = peek else {
                throw YAMLError(line: line, message: "a quoted value must end on its line (use | or > for long text)")
            }
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
                guard let e = peek else { throw YAMLError(line: line, message: "a \\ at the end of a quoted value") }
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
