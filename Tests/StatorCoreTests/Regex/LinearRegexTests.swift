import Testing

@testable import StatorCore

// Go's `regexp` (RE2), case by case: each expected value is what Go's
// `FindStringSubmatchIndex` returns for the pattern and text (byte offsets, -1 for a group
// that took no part, nil for no match), or the error `regexp.Compile` gives.

private func match(_ pattern: String, _ text: String) throws -> [Int]? {
    try LinearRegex(pattern).firstMatch(in: text)
}

@Test(arguments: [
    // Leftmost-first: the first alternative that leads to a match wins, not the longest.
    ("a|ab", "ab", [0, 1]),
    ("ab|a", "ab", [0, 2]),
    ("(a|ab)(c|bcd)", "abcd", [0, 4, 0, 1, 1, 4]),
    ("b|abc", "xabc", [1, 4]),  // leftmost first: the earlier start wins over the earlier alternative
    ("(a)|b", "b", [0, 1, -1, -1]),
    ("(a)|(b)", "b", [0, 1, -1, -1, 0, 1]),
    // Greed and its absence.
    ("a*", "baaa", [0, 0]),
    ("a+", "baaa", [1, 4]),
    ("a*?", "aaa", [0, 0]),
    ("a+?", "aaa", [0, 1]),
    ("a??b", "ab", [0, 2]),
    ("(?U)a+", "aaa", [0, 1]),
    ("(?U)a+?", "aaa", [0, 3]),
    ("x*", "", [0, 0]),
    ("(a*)+", "b", [0, 0, 0, 0]),
    // A star of what can match empty is (x+)?, as Go compiles it since 1.17.
    ("(|a)*", "aa", [0, 0, 0, 0]),
    ("(|a)+", "aa", [0, 0, 0, 0]),
    ("(a|)*", "aa", [0, 2, 1, 2]),
    ("(a+)(a*)", "aaa", [0, 3, 0, 3, 3, 3]),
    ("(a+?)(a*)", "aaa", [0, 3, 0, 1, 1, 3]),
    ("(\\w+)_(\\w+)_(\\w+)_total", "a_b_c_total", [0, 11, 0, 1, 2, 3, 4, 5]),
    ("(\\w+)_(\\w+)", "ab_cd_ef", [0, 8, 0, 5, 6, 8]),
    // Counted repetition; `{` that is not one is a literal.
    ("a{2}", "aaa", [0, 2]),
    ("a{2,}", "aaaa", [0, 4]),
    ("a{1,2}", "aaa", [0, 2]),
    ("a{2,3}?", "aaa", [0, 2]),
    ("a{0}b", "ab", [1, 2]),
    ("a{,3}", "a{,3}", [0, 5]),
    ("a{", "a{", [0, 2]),
    ("a{x}", "a{x}", [0, 4]),
    ("x{01}", "x{01}", [0, 5]),
    // Empty-width assertions: `^`/`$` are the text's ends unless (?m); `$` never before a final \n.
    ("^abc$", "abc", [0, 3]),
    ("^b", "ab", nil),
    ("a$", "a\n", nil),
    ("(?m)^b$", "a\nb\nc", [2, 3]),
    ("(?m)a$", "a\n", [0, 1]),
    ("\\Aa", "ba", nil),
    ("a\\z", "a\n", nil),
    ("^", "abc", [0, 0]),
    ("$", "abc", [3, 3]),
    // \b \w \d \s are ASCII, as in Go.
    ("\\bapi\\b", "service.api.requests", [8, 11]),
    ("\\Bpi", "api", [1, 3]),
    ("\\bé", "aé", [1, 3]),
    ("^\\w+$", "café", nil),
    ("\\w+", "café", [0, 3]),
    ("\\d+", "web.\u{663}\u{660}\u{660}.count", nil),
    ("\\d+", "a42b", [1, 3]),
    ("\\s", "a b", [1, 2]),
    ("\\D+", "12ab3", [2, 4]),
    ("\\W", "a-b", [1, 2]),
    // Unicode classes.
    ("\\pL+", "été2", [0, 5]),
    ("\\p{Lu}", "abcD", [3, 4]),
    ("\\PN+", "12ab3", [2, 4]),
    ("\\p{^L}", "ab1", [2, 3]),
    ("\\P{^L}+", "ab1", [0, 2]),
    ("[\\p{Nd}x]+", "\u{663}x", [0, 3]),
    ("\\p{Any}", "\n", [0, 1]),
    ("\\p{Letter}+", "Ωmega1", [0, 6]),
    ("\\p{L}\\p{M}", "e\u{301}", [0, 3]),
    // POSIX classes (ASCII).
    ("[[:alpha:]]+", "ab1", [0, 2]),
    ("[[:^alpha:]]+", "ab12", [2, 4]),
    ("[[:digit:][:upper:]]+", "aB1c", [1, 3]),
    ("[[:word:]]+", "a_1-", [0, 3]),
    // Classes.
    ("[a-c]+", "xabcd", [1, 4]),
    ("[^a-c]+", "abxyc", [2, 4]),
    ("[^a]", "\n", [0, 1]),
    ("[]a]+", "]a]", [0, 3]),
    ("[a-]+", "-a-", [0, 3]),
    ("[\\d.]+", "v1.2", [1, 4]),
    ("[\\]]", "]", [0, 1]),
    // Flags.
    ("(?i)abc", "xABC", [1, 4]),
    ("(?i:a)b", "AB", nil),
    ("(?i:a)b", "Ab", [0, 2]),
    ("(?i)a(?-i)b", "AB", nil),
    ("(?i)a(?-i:b)c", "AbC", [0, 3]),
    ("(?s).", "\n", [0, 1]),
    (".", "\n", nil),
    ("(?s:.)", "\n", [0, 1]),
    ("(?i)k", "\u{212A}", [0, 3]),
    ("(?i)\u{212A}", "k", [0, 1]),
    ("(?i)s", "\u{17F}", [0, 2]),
    ("(?i)[a-c]+", "ABC", [0, 3]),
    ("(?i)[^a]", "A", nil),
    ("(?i)é", "É", [0, 2]),
    ("(?i)ı", "I", nil),  // Go folds neither dotless ı nor dotted İ
    ("(?i)I", "ı", nil),
    ("(?i)İ", "i", nil),
    ("(?i)в", "\u{1C80}", [0, 3]),
    ("(?i)\\x{1C80}", "в", [0, 2]),
    // Under (?i) a negated class is the negation of the folded class.
    ("(?i)[[:^upper:]]+", "abc1", [3, 4]),
    ("(?i)\\P{Lu}", "a1", [1, 2]),
    ("(?i)\\W", "\u{17F}!", [2, 3]),
    ("(?i)[^k]", "\u{212A}x", [3, 4]),
    ("(?im)^A$", "x\na", [2, 3]),
    // Literal text.
    ("\\Qa.b\\E", "axb a.b", [4, 7]),
    ("\\Qa.b", "a.b", [0, 3]),
    ("\\Q*\\E+", "**", [0, 2]),
    // Escapes.
    ("\\x41\\x{42}\\103", "ABC", [0, 3]),
    ("\\x{263a}", "☺", [0, 3]),
    ("\\.", "a.", [1, 2]),
    ("\\_", "_", [0, 1]),
    ("\\n\\t", "\n\t", [0, 2]),
    ("\\0", "\u{0}", [0, 1]),
    // Named groups.
    ("(?P<first>\\w+)\\.(?<second>\\w+)", "a.b", [0, 3, 0, 1, 2, 3]),
    // Non-capturing groups.
    ("(?:a|b)+(c)", "abac", [0, 4, 3, 4]),
    // Byte offsets count UTF-8.
    ("(b)", "éb", [2, 3, 2, 3]),
] as [(String, String, [Int]?)])
func matchesAsGoDoes(_ pattern: String, _ text: String, _ expected: [Int]?) throws {
    let got = try match(pattern, text)
    #expect(got == expected, "\(pattern) on \(text)")
}

@Test(arguments: [
    ("(a", "missing closing ): `(a`"),
    ("a)", "unexpected ): `a)`"),
    ("(a))", "unexpected ): `(a))`"),
    ("[a", "missing closing ]: `[a`"),
    ("[]", "missing closing ]: `[]`"),
    ("*a", "missing argument to repetition operator: `*`"),
    ("(*a)", "missing argument to repetition operator: `*`"),
    ("a|*", "missing argument to repetition operator: `*`"),
    ("a**", "invalid nested repetition operator: `**`"),
    ("a*?+", "invalid nested repetition operator: `*?+`"),
    ("a{2}*", "invalid nested repetition operator: `{2}*`"),
    ("a\\", "trailing backslash at end of expression: ``"),
    ("\\1", "invalid escape sequence: `\\1`"),
    ("(a)\\1", "invalid escape sequence: `\\1`"),
    ("\\C", "invalid escape sequence: `\\C`"),
    ("\\Z", "invalid escape sequence: `\\Z`"),
    ("\\é", "invalid escape sequence: `\\é`"),
    ("\\x{110000}", "invalid escape sequence: `\\x{110000`"),
    ("\\xZ1", "invalid escape sequence: `\\xZ1`"),
    ("(?=a)", "invalid or unsupported Perl syntax: `(?=`"),
    ("(?!a)", "invalid or unsupported Perl syntax: `(?!`"),
    ("(?<=a)b", "invalid named capture: `(?<=a)b`"),
    ("(?P=a)", "invalid or unsupported Perl syntax: `(?P`"),
    ("(?i-)a", "invalid or unsupported Perl syntax: `(?i-)`"),
    ("(?z)", "invalid or unsupported Perl syntax: `(?z`"),
    ("(?i", "invalid or unsupported Perl syntax: `(?i`"),
    ("(?P<a-b>x)", "invalid named capture: `(?P<a-b>`"),
    ("(?P<>x)", "invalid named capture: `(?P<>`"),
    ("(?P<name", "invalid named capture: `(?P<name`"),
    ("(?P<", "invalid or unsupported Perl syntax: `(?P`"),
    ("(?<", "invalid or unsupported Perl syntax: `(?<`"),
    ("[z-a]", "invalid character class range: `z-a`"),
    ("\\pX", "invalid character class range: `\\pX`"),
    ("\\p{Greek}", "invalid character class range: `\\p{Greek}`"),
    ("\\p{L", "invalid character class range: `\\p{L`"),
    ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
    ("x{1001}", "invalid repeat count: `{1001}`"),
    ("x{2,1}", "invalid repeat count: `{2,1}`"),
    ("x{1,1001}", "invalid repeat count: `{1,1001}`"),
    ("x{100000000}", "invalid repeat count: `{100000000}`"),
    ("(a{500}){3}", "invalid repeat count: `{3}`"),
    ("((a{10}){10}){11}", "invalid repeat count: `{11}`"),
])
func refusesAsGoDoes(_ pattern: String, _ message: String) {
    #expect(throws: RegexSyntaxError.self, "\(pattern)") { try LinearRegex(pattern) }
    do {
        _ = try LinearRegex(pattern)
    } catch {
        #expect(error.description == "error parsing regexp: " + message)
    }
}

@Test func nestedCountsWithinAThousandAreAccepted() throws {
    #expect(try match("((a{10}){10}){10}", String(repeating: "a", count: 1000)) == [0, 1000, 900, 1000, 990, 1000])
}

@Test(arguments: [
    "(?:abcdefghijklmnopqrst){100}",  // 2,000 literal instructions and more: past 2,000
    String(repeating: "(a*)", count: 1_600),  // 8,000 instructions x 3,202 slots: 428 MB a search before
    String(repeating: "()", count: 3_330),
])
func aProgramPastTheBoundsIsRefusedAsTooLarge(_ pattern: String) {
    #expect(throws: RegexSyntaxError(code: .large, expression: pattern)) { try LinearRegex(pattern) }
}

@Test func programsWithinTheBoundsLoad() throws {
    #expect(try LinearRegex(String(repeating: "a", count: 1_990)).programSize == 1_993)
    #expect(try LinearRegex(String(repeating: "(a)", count: 20)).captureCount == 20)
}

@Test func namedGroupsAreFoundByName() throws {
    let regex = try LinearRegex("(?P<a>x)(y)(?<b>z)")
    #expect(regex.captureCount == 3)
    #expect(regex.group(named: "a") == 1)
    #expect(regex.group(named: "b") == 3)
    #expect(regex.group(named: "c") == nil)
}

/// The patterns that stalled Swift's backtracking `Regex` (1.45 s for 17 bytes, 5.5 s for 240),
/// and the classic exponential ones: on a 5,000-byte name each visits at most two queues'
/// worth of the program per byte. Counted, not timed: `scripts/bench mapping` times them.
@Test(arguments: [
    ("^(\\w+\\.?)+$", String(repeating: "a", count: 4_999) + "!"),
    ("(\\w+)_(\\w+)_(\\w+)_total", String(repeating: "a_", count: 2_496) + "a!_total"),
    ("(a+)+b", String(repeating: "a", count: 5_000)),
    ("(a|a)*c", String(repeating: "a", count: 5_000)),
    ("(.*)*x", String(repeating: "y", count: 5_000)),
    ("(x+x+)+y", String(repeating: "x", count: 5_000)),
    ("^(([a-z])+.)+[A-Z]([a-z])+$", String(repeating: "aaaa.", count: 1_000)),
    ("(?i)(\\pL|\\d|_)+\\.(\\pL|\\d|_)+!", String(repeating: "ab.", count: 1_666) + "ab"),
])
func pathologicalPatternsTakeLinearSteps(_ pattern: String, _ name: String) throws {
    let regex = try LinearRegex(pattern)
    let (slots, visits) = regex.firstMatchCountingVisits(in: name)
    #expect(slots == nil)
    #expect(name.utf8.count == 5_000)
    #expect(visits <= 2 * regex.programSize * (name.utf8.count + 1), "\(visits) visits, program \(regex.programSize)")
    #expect(visits > 0)
}
