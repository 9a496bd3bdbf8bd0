/// Reads YAML as go-yaml (statsd_exporter's parser) reads mapping files: block mappings and
/// sequences, flow sequences and mappings (`[0.1, 0.5]`, `{a: b}`, also over several lines),
/// plain, single- and double-quoted scalars (also folded over several lines), comments, a
/// leading `---` (and `...`), literal (`|`) and folded (`>`) block scalars with their
/// chomping indicators, anchors (`&name`) and aliases (`*name`) of block values, and `<<:`
/// merge keys (a mapping or a list of them; the mapping's own keys win, then the first merged).
///
/// Anything else (tags, directives, `?` keys, several documents, tabs in indentation or after
/// a key's `:`, aliases inside flow collections, a duplicate key) is an error naming its line,
/// never a silent misreading. Scalars stay text: the reader of the document decides what is
/// a number or a boolean.
public struct YAMLReader {
    struct Line {
        var number: Int
        /// Spaces before the content.
        var indent: Int
        /// The line without its indentation (comments still in).
        var content: Substring
        var raw: Substring
    }

    var lines: [Line]
    var at = 0
    /// The nodes anchored so far (`&name`), for aliases (`*name`) further on.
    var anchors: [String: YAMLNode] = [:]
    /// The block collections the current one is nested in (`FlowScanner.maxDepth` at most).
    var depth = 0

    /// Reads `text` as one document: `nil` when it holds no node at all.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var reader = try YAMLReader(text)
        return try reader.document()
    }

    init(_ text: String) throws(YAMLError) {
        var lines: [Line] = []
        var number = 0
        // A byte order mark opens some files written on Windows: it is no part of the text.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
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
    static func isBlank(_ content: Substring) -> Bool {
        let rest = content.drop { $0 == " " || $0 == "\t" }
        return rest.isEmpty || rest.first == "#"
    }

    // MARK: Lines

    /// Moves to the next line with content; returns it (nil at the end).
    mutating func current() -> Line? {
        while at < lines.count, Self.isBlank(lines[at].content) { at += 1 }
        return at < lines.count ? lines[at] : nil
    }

    mutating func document() throws(YAMLError) -> YAMLNode? {
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
    mutating func end(after marker: Line) throws(YAMLError) -> YAMLNode? {
        at += 1
        if let line = current() {
            throw YAMLError(line: line.number, message: "content after the end of the document (...)")
        }
        return nil
    }

    /// Whether a line is `---` or `...` at the start of the line.
    static func isDocumentMarker(_ line: Line) -> Bool {
        line.indent == 0 && (isMarker(line.content, "---") || isMarker(line.content, "..."))
    }

    /// Whether `content` is the document marker `marker`, alone or followed by a space.
    static func isMarker(_ content: Substring, _ marker: String) -> Bool {
        content.hasPrefix(marker) && (content.count == marker.count || content.dropFirst(marker.count).first == " ")
    }

    // MARK: Block structure

    /// The block node starting at the current line, whose indentation is at least `minimumIndent`.
    mutating func block(minimumIndent: Int) throws(YAMLError) -> YAMLNode {
        guard depth < FlowScanner.maxDepth else {
            throw YAMLError(line: at < lines.count ? lines[at].number : lines.count, message: FlowScanner.tooDeep)
        }
        depth += 1
        defer { depth -= 1 }
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
        return try inlineValue(Self.stripComment(line.content), line: line.number, parentIndent: minimumIndent - 1)
    }

    static func isSequenceItem(_ content: Substring) -> Bool {
        content == "-" || content.hasPrefix("- ") || content.hasPrefix("-\t")
    }

    mutating func sequence(indent: Int) throws(YAMLError) -> YAMLNode {
        let start = lines[at].number
        var items: [YAMLNode] = []
        while let line = current(), line.indent == indent, Self.isSequenceItem(line.content), !Self.isDocumentMarker(line) {
            let rest = line.content.dropFirst(1)
            var item = rest.drop { $0 == " " }
            var anchor: String?
            if item.first == "&" { (anchor, item) = try Self.splitAnchor(item, line.number) }
            let value: YAMLNode
            if Self.isBlank(item) {
                at += 1
                value = try nested(under: indent, line: line.number, allowSequenceAtSameIndent: false)
            } else if item.first == "*" {
                at += 1
                value = try alias(Self.stripComment(item), line.number)
            } else if item.first == "|" || item.first == ">" {
                at += 1
                value = try blockScalar(header: Self.stripComment(item), parentIndent: indent, line: line.number)
            } else {
                // The item starts on this line: read it as a block indented to where it starts.
                let start = indent + line.content.distance(from: line.content.startIndex, to: item.startIndex)
                lines[at].indent = start
                lines[at].content = item
                value = try block(minimumIndent: start)
            }
            if let anchor { anchors[anchor] = value }
            items.append(value)
        }
        return .sequence(items, line: start)
    }

    mutating func mapping(indent: Int) throws(YAMLError) -> YAMLNode {
        let start = lines[at].number
        var entries: [(key: String, value: YAMLNode)] = []
        var seen: Set<String> = []
        var merges: [(node: YAMLNode, line: Int)] = []
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
            var text = Self.stripComment(rest).drop { $0 == " " }
            var anchor: String?
            if text.first == "&" { (anchor, text) = try Self.splitAnchor(text, line.number) }
            if text.isEmpty {
                value = try nested(under: indent, line: line.number, allowSequenceAtSameIndent: true)
            } else if text.first == "*" {
                value = try alias(text, line.number)
            } else if let header = text.first, header == "|" || header == ">" {
                value = try blockScalar(header: text, parentIndent: indent, line: line.number)
            } else {
                value = try inlineValue(text, line: line.number, parentIndent: indent)
            }
            if let anchor { anchors[anchor] = value }
            if key == "<<" {
                merges.append((value, line.number))
            } else {
                entries.append((key, value))
            }
        }
        // `<<:` merges: keys the mapping sets itself win, then the first merged mapping's.
        for merge in merges {
            let sources: [YAMLNode]
            if case .sequence(let items, _) = merge.node { sources = items } else { sources = [merge.node] }
            for source in sources {
                guard case .mapping(let merged, _) = source else {
                    throw YAMLError(line: merge.line, message: "a merge (<<) takes a mapping or a list of mappings")
                }
                for entry in merged where seen.insert(entry.key).inserted { entries.append(entry) }
            }
        }
        return .mapping(entries, line: start)
    }

    /// The value of a key or item with nothing after it on its line: a block indented deeper
    /// (or, for a key, a sequence at the key's own indentation), else null.
    mutating func nested(under indent: Int, line: Int, allowSequenceAtSameIndent: Bool) throws(YAMLError) -> YAMLNode {
        guard let next = current() else { return .scalar("", quoted: false, line: line) }
        if next.indent > indent { return try block(minimumIndent: indent + 1) }
        if allowSequenceAtSameIndent, next.indent == indent, Self.isSequenceItem(next.content) {
            return try sequence(indent: indent)
        }
        return .scalar("", quoted: false, line: line)
    }

    // MARK: Anchors and aliases

    /// `&name` at the start of a value: the name, and the value that follows it.
    static func splitAnchor(_ text: Substring, _ line: Int) throws(YAMLError) -> (String, Substring) {
        let name = FlowScanner.anchorName(text.dropFirst())
        guard !name.isEmpty else { throw YAMLError(line: line, message: "an anchor (&) needs a name") }
        return (String(name), text.dropFirst(1 + name.count).drop { $0 == " " })
    }

    /// The node a block value `*name` stands for (nothing may follow the name).
    func alias(_ text: Substring, _ line: Int) throws(YAMLError) -> YAMLNode {
        let name = text.dropFirst()
        // With more after the name (`*a b`) the value names no anchor: refused as such.
        let known = FlowScanner.anchorName(name).count == name.count ? anchors : [:]
        return try FlowScanner.resolve(alias: name, in: known, line: line)
    }
}
