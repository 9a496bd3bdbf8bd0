import Glibc

// The one libFuzzer entry point: scripts/fuzz compiles every target of this folder with
// StatorCore's sources into one binary (one whole-module build with the sanitizers, not one
// per target), and `STATOR_FUZZ_TARGET` picks the target an input goes to (parser when
// unset).

private enum FuzzTarget: String, CaseIterable {
    case parser, regex, yaml, rollup, tcp
}

nonisolated(unsafe) private var chosenFuzzTarget: FuzzTarget?

private func chooseFuzzTarget() -> FuzzTarget {
    let name = getenv("STATOR_FUZZ_TARGET").map { String(cString: $0) } ?? "parser"
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("STATOR_FUZZ_TARGET is one of \(FuzzTarget.allCases.map(\.rawValue)), not '\(name)'")
    }
    return target
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafeRawPointer?, _ count: Int) -> Int32 {
    let target = chosenFuzzTarget ?? chooseFuzzTarget()
    chosenFuzzTarget = target
    switch target {
    case .parser: return statorFuzzOneInput(data, count)
    case .regex: return regexFuzzOneInput(data, count)
    case .yaml: return yamlFuzzOneInput(data, count)
    case .rollup: return rollupFuzzOneInput(data, count)
    case .tcp: return tcpFuzzOneInput(data, count)
    }
}
