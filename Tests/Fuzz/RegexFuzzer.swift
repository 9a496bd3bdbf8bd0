// libFuzzer target for the regex engine of mapping rules (`STATOR_FUZZ_TARGET`, see
// FuzzMain.swift), built by scripts/fuzz with StatorCore's sources and `-sanitize=fuzzer,address`. An input is a pattern,
// a NUL byte, then a name. The pattern is compiled (refusing it is fine; crashing is not);
// a compiled pattern is matched against the name, and the match checked: offsets inside the
// name, in order, on UTF-8 boundaries, and the machine's visits within its linear bound.
// Seeds are in Tests/Fuzz/regex-corpus.

private func regexFuzzCheck(_ condition: Bool, _ what: String) {
    if !condition { fatalError("regex fuzz check failed: \(what)") }
}

public func regexFuzzOneInput(_ data: UnsafeRawPointer?, _ count: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: count > 0 ? data : nil, count: count)
    let split = bytes.firstIndex(of: 0) ?? bytes.count
    let pattern = String(decoding: bytes[..<split], as: UTF8.self)
    let name = split < bytes.count ? String(decoding: bytes[(split + 1)...], as: UTF8.self) : ""
    guard let regex = try? LinearRegex(pattern) else { return 0 }
    regexFuzzCheck(regex.programSize <= RegexProgram.maxInstructions, "program size")
    let (slots, visits) = regex.firstMatchCountingVisits(in: name)
    let utf8 = Array(name.utf8)
    regexFuzzCheck(visits <= 2 * regex.programSize * (utf8.count + 1), "linear bound: \(visits) visits")
    guard let slots else { return 0 }
    regexFuzzCheck(slots.count == 2 * (regex.captureCount + 1), "slot count")
    regexFuzzCheck(slots[0] >= 0 && slots[0] <= slots[1] && slots[1] <= utf8.count, "the match's range")
    for group in 0...regex.captureCount {
        let (start, end) = (slots[2 * group], slots[2 * group + 1])
        if start < 0 {
            regexFuzzCheck(end < 0, "a group without a start has no end")
            continue
        }
        regexFuzzCheck(start <= end && end <= utf8.count, "group \(group) range")
        for offset in [start, end] where offset < utf8.count {
            regexFuzzCheck(utf8[offset] & 0xC0 != 0x80, "group \(group) on a UTF-8 boundary")
        }
    }
    // The same answer again: the engine keeps no state between searches.
    regexFuzzCheck(regex.firstMatch(in: name) == slots, "a second search agrees")
    return 0
}
