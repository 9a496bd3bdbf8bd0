/// The glob rules of a mapping file as one state machine, as statsd_exporter builds it: a
/// trie of dot-separated components per metric type (`counter`, `gauge`, `observer`), where
/// a component is a literal or `*` (any one component, captured). A name is matched by
/// walking the trie once, not by trying the rules one by one.
///
/// - In file order (the default): of all the glob rules that match, the first in the file.
///   The walk follows both a literal and `*` where both exist, and skips a subtree whose
///   rules all come after the best match found so far, or that cannot hold a name of the
///   remaining length.
/// - With `glob_disable_ordering`: a literal component is preferred over `*` at each step,
///   from the left, and the first complete match wins (the walk backtracks to a `*` only when
///   the literal path finds nothing).
struct GlobTrie: Sendable {
    /// The metric types a rule can be restricted to (`match_metric_type`).
    enum Kind: Int, Sendable, CaseIterable {
        case counter = 0, gauge, observer

        /// Sets are gauges, as they are on the page; timers, histograms and distributions observers.
        init(_ type: MetricType) {
            switch type {
            case .counter: self = .counter
            case .gauge, .set: self = .gauge
            case .timer, .histogram, .distribution: self = .observer
            }
        }
    }

    private struct Node: Sendable {
        var literal: [Substring: Int32] = [:]
        var star: Int32 = -1
        /// The first rule (by file order) whose glob ends here.
        var rule = Int.max
        /// The first rule ending here or below: a walk skips the subtree once it found one earlier.
        var firstBelow = Int.max
        /// Fewest and most components after this node on the way to a rule's end.
        var minRemaining = Int.max
        var maxRemaining = -1
    }

    private var nodes: [Node]
    let orderingDisabled: Bool

    init(orderingDisabled: Bool) {
        self.orderingDisabled = orderingDisabled
        nodes = Array(repeating: Node(), count: Kind.allCases.count)  // the roots
    }

    /// Adds rule `index` (its file position) for `components`, under `kind` or every kind.
    mutating func add(_ components: [Substring], kind: Kind?, rule index: Int) {
        for root in kind.map({ [$0] }) ?? Kind.allCases {
            var at = root.rawValue
            for c in components {
                if c == "*" {
                    if nodes[at].star < 0 {
                        nodes[at].star = Int32(nodes.count)
                        nodes.append(Node())
                    }
                    at = Int(nodes[at].star)
                } else if let next = nodes[at].literal[c] {
                    at = Int(next)
                } else {
                    nodes[at].literal[c] = Int32(nodes.count)
                    nodes.append(Node())
                    at = nodes.count - 1
                }
            }
            nodes[at].rule = min(nodes[at].rule, index)
        }
    }

    /// Readies the trie for matching, once every rule is added.
    mutating func finish() {
        for root in Kind.allCases.map(\.rawValue) { summarise(root) }
    }

    /// Fills `firstBelow` and the remaining lengths of `node`'s subtree.
    @discardableResult
    private mutating func summarise(_ node: Int) -> (first: Int, minimum: Int, maximum: Int) {
        var first = nodes[node].rule
        var (minimum, maximum) = nodes[node].rule == .max ? (Int.max, -1) : (0, 0)
        var children = Array(nodes[node].literal.values)
        if nodes[node].star >= 0 { children.append(nodes[node].star) }
        for child in children {
            let below = summarise(Int(child))
            first = min(first, below.first)
            if below.maximum >= 0 {
                minimum = min(minimum, below.minimum + 1)
                maximum = max(maximum, below.maximum + 1)
            }
        }
        nodes[node].firstBelow = first
        nodes[node].minRemaining = minimum
        nodes[node].maxRemaining = maximum
        return (first, minimum, maximum)
    }

    /// The rule that `components` (a name split at its dots) match for `kind`, and the
    /// components each `*` captured, in order.
    func match(_ components: [Substring], kind: Kind) -> (rule: Int, captures: [Substring])? {
        var best: (rule: Int, captures: [Substring])?
        var captures: [Substring] = []
        captures.reserveCapacity(components.count)
        walk(kind.rawValue, components, 0, &captures, &best)
        return best
    }

    /// Depth-first from `node`, with `depth` components consumed.
    /// - Returns: whether the walk is over (ordering disabled and a match found).
    @discardableResult
    private func walk(
        _ node: Int, _ components: [Substring], _ depth: Int, _ captures: inout [Substring],
        _ best: inout (rule: Int, captures: [Substring])?
    ) -> Bool {
        let n = nodes[node]
        let remaining = components.count - depth
        guard remaining >= n.minRemaining, remaining <= n.maxRemaining else { return false }
        if !orderingDisabled, let b = best, n.firstBelow >= b.rule { return false }
        if remaining == 0 {
            if n.rule != .max, best.map({ n.rule < $0.rule }) ?? true { best = (n.rule, captures) }
            return orderingDisabled && best != nil
        }
        let component = components[depth]
        if let next = n.literal[component], walk(Int(next), components, depth + 1, &captures, &best) { return true }
        if n.star >= 0 {
            captures.append(component)
            defer { captures.removeLast() }
            if walk(Int(n.star), components, depth + 1, &captures, &best) { return true }
        }
        return false
    }
}
