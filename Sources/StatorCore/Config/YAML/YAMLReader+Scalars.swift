// The scalars of YAMLReader: block scalars, keys and comments on a line, and values that
// start on a key's or item's line (plain, quoted, flow).
extension YAMLReader {
    /// A literal (`|`) or folded (`>`) block scalar: its lines are those indented deeper than
    /// `parentIndent` (and blank lines among them).
    mutating func blockScalar(header: Substring, parentIndent: Int, line: Int) throws(YAMLError) -> YAMLNode {
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
    static func rejectUnsupported(_ content: Substring, _ line: Int) throws(YAMLError) {
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

    static func trimTrailing(_ s: Substring) -> Substring {
        var s = s
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return s
    }

    /// A block mapping key on this line, and what follows its `:`; nil when the line is no key.
    static func splitKey(_ content: Substring, _ line: Int) throws(YAMLError) -> (String, Substring)? {
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
                if after < content.endIndex, content[after] == "\t" {
                    throw YAMLError(
                        line: line, message: "a tab after the : of \(content[..<index]) (YAML separates with spaces)")
                }
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
    /// the following lines until it closes), a quoted scalar (which may go on until its quote
    /// closes) or a plain one (which goes on over the lines indented deeper than
    /// `parentIndent`). A quoted or plain scalar over several lines is folded as YAML folds
    /// it: each line break a space, each blank line a line break.
    mutating func inlineValue(_ text: Substring, line: Int, parentIndent: Int) throws(YAMLError) -> YAMLNode {
        let text = text.drop { $0 == " " }
        try Self.rejectUnsupported(text, line)
        if text.first == "[" || text.first == "{" {
            var joined = String(text)
            while true {
                var scanner = FlowScanner(text: Substring(joined), line: line, anchors: anchors, depth: depth)
                do throws(YAMLError) {
                    let node = try scanner.flowNode()
                    scanner.skipSpaces()
                    guard scanner.atEnd else {
                        throw YAMLError(line: line, message: "unexpected text after a flow collection")
                    }
                    anchors = scanner.anchors
                    return node
                } catch {
                    guard error.message == FlowScanner.unclosed else { throw error }
                    // Not closed on this line: take the next ones in, as YAML allows, until
                    // their brackets may close it (each line counted once, the whole read again
                    // only then: linear in the lines).
                    var open = Self.openBrackets(Substring(joined))
                    repeat {
                        guard at < lines.count else {
                            throw YAMLError(line: line, message: "a [ or { that is never closed")
                        }
                        let next = Self.stripComment(lines[at].content)
                        joined += " " + next
                        open += Self.openBrackets(next)
                        at += 1
                    } while open > 0
                }
            }
        }
        if text.first == "\"" || text.first == "'" { return try quotedValue(text, line: line) }
        var value = String(text)
        var breaks = 0
        while at < lines.count {
            let next = lines[at]
            if next.raw.allSatisfy({ $0 == " " || $0 == "\t" }) {
                breaks += 1
                at += 1
                continue
            }
            guard next.indent > parentIndent, next.content.first != "#", !Self.isDocumentMarker(next) else { break }
            let content = Self.stripComment(next.content)
            if try Self.splitKey(content, next.number) != nil {
                throw YAMLError(
                    line: next.number, message: "a key inside a plain value that goes on from line \(line); indent it less")
            }
            value += breaks > 0 ? String(repeating: "\n", count: breaks) : " "
            value += content
            breaks = 0
            at += 1
        }
        return .scalar(value, quoted: false, line: line)
    }

    /// A quoted scalar starting on this line, taking the following lines in until its quote
    /// closes (folded: a line break is a space, a blank line a line break). Each line is
    /// looked at once for the closing quote, and the whole read once: a quote left open over
    /// many lines costs time linear in them.
    mutating func quotedValue(_ text: Substring, line: Int) throws(YAMLError) -> YAMLNode {
        let quote: Character = text.first == "'" ? "'" : "\""
        var joined = String(text)
        var closed = Self.closesQuote(text.dropFirst(), quote)
        var breaks = 0
        while !closed {
            guard at < lines.count, !Self.isDocumentMarker(lines[at]) else {
                throw YAMLError(line: line, message: FlowScanner.unterminated)
            }
            let next = lines[at].raw.drop { $0 == " " || $0 == "\t" }
            at += 1
            if next.allSatisfy({ $0 == " " || $0 == "\t" }) {
                breaks += 1
                continue
            }
            // The line break before this line: a space, or the blank lines' breaks; none after
            // a `\` that ends a double-quoted line (an escaped line break).
            if quote == "\"" && joined.reversed().prefix(while: { $0 == "\\" }).count % 2 == 1 {
                joined.removeLast()
            } else {
                while let last = joined.last, last == " " || last == "\t" { joined.removeLast() }
                joined += breaks > 0 ? String(repeating: "\n", count: breaks) : " "
            }
            joined += next
            breaks = 0
            closed = Self.closesQuote(next, quote)
        }
        var scanner = FlowScanner(text: Substring(joined), line: line)
        let value = try scanner.quoted()
        scanner.skipSpaces()
        guard scanner.atEnd || scanner.peek == "#" else {
            throw YAMLError(line: line, message: "unexpected text after a quoted value")
        }
        return .scalar(value, quoted: true, line: line)
    }

    /// Whether `text` (inside a scalar quoted with `quote`) holds its closing quote: a `'` not
    /// doubled, or a `"` not escaped.
    static func closesQuote(_ text: Substring, _ quote: Character) -> Bool {
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            index = text.index(after: index)
            if quote == "\"", c == "\\" {
                if index < text.endIndex { index = text.index(after: index) }
                continue
            }
            guard c == quote else { continue }
            if quote == "'", index < text.endIndex, text[index] == "'" {
                index = text.index(after: index)
                continue
            }
            return true
        }
        return false
    }

    /// How many `[` and `{` of `text` are left open (negative: closed more than opened),
    /// outside quotes, for a flow collection read over several lines.
    static func openBrackets(_ text: Substring) -> Int {
        var open = 0
        var quote: Character?
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            index = text.index(after: index)
            if let q = quote {
                if q == "\"", c == "\\", index < text.endIndex {
                    index = text.index(after: index)
                } else if c == q {
                    quote = nil
                }
                continue
            }
            switch c {
            case "\"", "'": quote = c
            case "[", "{": open += 1
            case "]", "}": open -= 1
            default: break
            }
        }
        return open
    }
}
