import Glibc
import StatorCore

/// The regex engine and the mapping rules, timed: each pathological pattern against a
/// 5,000-byte name it does not match (the backtracking engine took seconds on some), then the
/// cost of one new name through 1,000 regex rules and through 1,000 glob rules.
func benchmarkRegexes(names: Int) {
    print("| pattern | name | program | median ms (of 21) |\n|---|---|---|---|")
    let pathological: [(String, String, String)] = [
        (#"^(\w+\.?)+$"#, String(repeating: "a", count: 4_999) + "!", "a x 4,999 + !"),
        (#"(\w+)_(\w+)_(\w+)_total"#, String(repeating: "a_", count: 2_496) + "a!_total", "a_ x 2,496 + a!_total"),
        ("(a+)+b", String(repeating: "a", count: 5_000), "a x 5,000"),
        ("(a|a)*c", String(repeating: "a", count: 5_000), "a x 5,000"),
        ("(.*)*x", String(repeating: "y", count: 5_000), "y x 5,000"),
        ("(x+x+)+y", String(repeating: "x", count: 5_000), "x x 5,000"),
    ]
    for (pattern, name, shown) in pathological {
        guard let regex = try? LinearRegex(pattern) else { continue }
        var times: [Double] = []
        for _ in 0..<21 {
            let started = now()
            _ = regex.firstMatch(in: name)
            times.append(now() - started)
        }
        times.sort()
        print("| `\(pattern)` | \(shown) | \(regex.programSize) | \(format(times[10] * 1000, 3)) |")
    }

    let dir = "/tmp/stator-regex-bench-\(getpid())"
    mkdir(dir, 0o700)
    defer { rmdir(dir) }
    print("\n| rules | names | µs per new name: no rule matches | µs per new name: the last rule matches |\n|---|---|---|---|")
    for kind in ["regex", "glob"] {
        let path = "\(dir)/\(kind).yml"
        defer { unlink(path) }
        var yaml = "mappings:\n"
        for i in 0..<1_000 {
            if kind == "regex" {
                yaml += "- match: '^batch\(i)\\.(\\w+)\\.(\\w+)\\.duration$'\n  match_type: regex\n  name: \"batch_duration\"\n"
            } else {
                yaml += "- match: \"batch\(i).*.*.duration\"\n  name: \"batch_duration\"\n"
            }
            yaml += "  labels:\n    batch: \"\(i)\"\n    job: \"$1\"\n"
        }
        guard let file = fopen(path, "w") else { continue }
        fputs(yaml, file)
        fclose(file)
        guard let rules = try? MappingRules(path: path, maxNameBytes: 1024) else {
            print("| \(kind) | could not load the rules |")
            continue
        }
        func perName(_ make: (Int) -> String) -> Double {
            let list = (0..<names).map(make)
            let started = now()
            var matched = 0
            for name in list where rules.matchingRule(for: name, type: .timer) != nil { matched += 1 }
            let elapsed = now() - started
            precondition(matched == 0 || matched == names, "every name or none must match")
            return elapsed / Double(names) * 1e6
        }
        let none = perName { "service\($0 % 97).host\($0).request.duration" }
        let last = perName { "batch999.job\($0).step\($0 % 13).duration" }
        print("| 1,000 \(kind) | \(names) | \(format(none, 2)) | \(format(last, 2)) |")
    }
}

private func format(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return "\(rounded)"
}
