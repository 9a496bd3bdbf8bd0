// libFuzzer target for the roll-up API's query parsing (`STATOR_FUZZ_TARGET`, see
// FuzzMain.swift), built by scripts/fuzz with StatorCore's sources and `-sanitize=fuzzer,address`. An input is the query
// string of `GET /api/v1/rollups?<input>`: the request head is parsed, then its parameters
// decoded and checked as the API does (refusing them is fine; crashing is not). Parameters
// taken are checked: days real and in order, the limit in range, a cursor that encodes back
// to itself, and the name's glob matching itself (its `*` and `?` take themselves).
// Seeds are in Tests/Fuzz/rollup-corpus.

private func rollupFuzzCheck(_ condition: Bool, _ what: String) {
    if !condition { fatalError("roll-up fuzz check failed: \(what)") }
}

public func rollupFuzzOneInput(_ data: UnsafeRawPointer?, _ count: Int) -> Int32 {
    let query = UnsafeRawBufferPointer(start: count > 0 ? data : nil, count: count)
    let head = Array("GET /api/v1/rollups?".utf8) + Array(query) + Array(" HTTP/1.1\r\nHost: fuzz\r\n\r\n".utf8)
    guard case .complete(let parsed, _) = HTTPRequestHead.parse(head[...], limit: 1 << 20) else { return 0 }
    guard case .success(let request) = RollupSink.Request.parse(parsed, by: "tenant") else { return 0 }
    for day in [request.start, request.end] where day != "0000-01-01" && day != "9999-12-31" {
        rollupFuzzCheck(RollupSink.Request.isDay(day), "\(day) is a day")
    }
    rollupFuzzCheck(request.start <= request.end, "start after end")
    rollupFuzzCheck(request.limit >= 1 && request.limit <= RollupSink.maxRowsPerPage, "limit \(request.limit)")
    rollupFuzzCheck(request.key.map { !$0.isEmpty } ?? true, "an empty key")
    if let cursor = request.cursor {
        rollupFuzzCheck(RollupSink.Request.decode(RollupSink.Request.encode(cursor)) == cursor, "a cursor round trip")
    }
    if let name = request.name {
        rollupFuzzCheck(!name.isEmpty, "an empty name")
        rollupFuzzCheck(Glob.matches(name, name), "a glob matches itself")
    }
    return 0
}
