import Foundation
import Testing
@testable import StatorCore

@Test func theTerminalScreenShowsTheTablesWithoutControlCharacters() throws {
    let json = """
        {"window_seconds":300,"names_by_lines":[{"name":"api.hits","lines":30,"series":3,"types":["counter"],"tag_keys":[]},\
        {"name":"evil\\u001b]0;owned\\u0007name","lines":1,"series":1,"types":["gauge"],"tag_keys":[]}],\
        "tag_keys":[{"key":"host","distinct_values":3,"top_values":[{"value":"h0","series":2}]}],\
        "refused":[{"reason":"missing_colon","total":4,"samples":[{"line":"no colon"}]}],\
        "history":[{"time":1,"lines_per_second":12.4,"drops_per_second":0}],\
        "sinks":[{"name":"prometheus","last_success_seconds_ago":1.2,"queued":0,"errors":0}]}
        """
    let answer = try JSONValue.parse(Data(json.utf8), source: "test")
    #expect(
        TopClient.screen(answer, address: "127.0.0.1:9102", width: 80, height: 40) == [
            "stator top  127.0.0.1:9102  window 300 s  (q to quit)",
            "lines/s 12  kernel drops/s 0",
            "",
            "NAME                                  LINES   SERIES TYPES",
            "api.hits                                 30        3 counter",
            "evil?]0;owned?name                        1        1 gauge",
            "",
            "TAG KEY                    DISTINCT TOP VALUES",
            "host                              3 h0 (2)",
            "",
            "REFUSED                       TOTAL LAST LINE",
            "missing_colon                     4 no colon",
            "",
            "SINK                       LAST SUCCESS   QUEUED   ERRORS",
            "prometheus                      1 s ago        0        0",
        ])
    // Cut to the terminal.
    #expect(TopClient.screen(answer, address: "a", width: 10, height: 2) == ["stator top", "lines/s 12"])
}
