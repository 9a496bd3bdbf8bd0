// libFuzzer target for the mapping file reader (`STATOR_FUZZ_TARGET`, see
// FuzzMain.swift), built by scripts/fuzz with StatorCore's sources and `-sanitize=fuzzer,address`. An input is a mapping file's text.
// The YAML reader must read it or refuse it naming a line of the text, the same way twice;
// a text it reads goes on to the mapping file checks (which may refuse it too). A crash, a
// hang (libFuzzer's -timeout) or a failed check is a finding. Seeds are in
// Tests/Fuzz/yaml-corpus.

private func yamlFuzzCheck(_ condition: Bool, _ what: String) {
    if !condition { fatalError("yaml fuzz check failed: \(what)") }
}

public func yamlFuzzOneInput(_ data: UnsafeRawPointer?, _ count: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: count > 0 ? data : nil, count: count)
    let text = String(decoding: bytes, as: UTF8.self)
    let lineCount = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).count
    let first: Result<YAMLNode?, YAMLError>
    do throws(YAMLError) {
        first = .success(try YAMLReader.parse(text))
    } catch {
        yamlFuzzCheck(error.line >= 1 && error.line <= max(1, lineCount), "an error names a line of the text: \(error)")
        first = .failure(error)
    }
    let second: Result<YAMLNode?, YAMLError>
    do throws(YAMLError) {
        second = .success(try YAMLReader.parse(text))
    } catch {
        second = .failure(error)
    }
    switch (first, second) {
    case (.success(let a), .success(let b)): yamlFuzzCheck(a == b, "the same node twice")
    case (.failure(let a), .failure(let b)): yamlFuzzCheck(a == b, "the same error twice")
    default: yamlFuzzCheck(false, "read once and refused once")
    }
    if case .success = first { _ = try? MappingFile.parse(text, source: "fuzz.yml") }
    return 0
}
