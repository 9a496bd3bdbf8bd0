#!/usr/bin/env python3
"""Orchestrates Stator benchmarks: starts the release agent, drives stator-load,
and measures from the outside (/proc CPU, /metrics kernel drops, the flushed JSON)."""
import argparse, json, os, re, signal, socket, subprocess, sys, tempfile, time, urllib.request

LIVE = False  # --format-live: the "as fast as possible" step formats lines as it sends them
SENDERS = 1  # --senders: concurrent stator-load processes, each its own socket (source port)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release")
AGENT = os.path.join(BIN, "stator")  # --agent: another build's binary, to compare two in turns
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Agent:
    def __init__(self, flags, out):
        self.out = out
        # Logs go to a file: a pipe nobody drains would block the agent once full.
        self.log_path = out + ".log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [AGENT, "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0",
             "--sinks.json.path", out] + flags,
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 10
        self.udp = self.http = None
        while time.time() < deadline and self.udp is None:
            time.sleep(0.05)
            for line in open(self.log_path):
                if '"stator started"' in line:
                    obj = json.loads(line)
                    self.udp = int(obj["udp.address"].rsplit(":", 1)[1])
                    self.http = int(obj["http.address"].rsplit(":", 1)[1])
        if self.udp is None:
            raise SystemExit("stator did not start")

    def cpu_ticks(self):
        """User + system CPU ticks the agent used so far."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def log_lines(self, msg):
        lines = []
        for line in open(self.log_path):
            if f'"msg":"{msg}"' in line:
                lines.append(json.loads(line))
        return lines

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=30) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    values[name] = float(value)
                except ValueError:
                    continue
                # The receive counters carry an input label: also sum them without it.
                if 'input="' in name:
                    base = re.sub(r'input="[^"]*",?', "", name).replace(",}", "}").replace("{}", "")
                    values[base] = values.get(base, 0.0) + float(value)
        return values, len(text)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return self.proc.returncode


def load(port, rate, seconds, size, extra=()):
    """Runs SENDERS stator-load processes at rate/SENDERS each (seeds 1, 2, ...) and sums what they sent."""
    if rate == 0 and LIVE:
        extra = list(extra) + ["--format-live", "1"]
    procs = []
    for k in range(SENDERS):
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{port}", "--rate", str(rate / SENDERS),
               "--duration", str(seconds), "--keys", "2000", "--mix", "c=50,ms=30,g=10,s=10",
               "--datagram-size", str(size), "--seed", str(k + 1)] + list(extra)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit("stator-load failed")
        results.append(json.loads(out))
    total = {key: sum(r[key] for r in results) for key in ("lines", "datagrams", "counter_sum", "timer_count",
                                                           "send_errors")}
    total["seconds"] = max(r["seconds"] for r in results)
    total["lines_per_second"] = total["lines"] / total["seconds"]
    return total


def accounted(path):
    """The flushed counter sums and timer counts of the generator's series, unmapped
    (bench.counter.N, bench.timer.N) or mapped by `mapping_rules` (bench_counter_total, bench_timer)."""
    counters = timers = 0.0
    if not os.path.exists(path): return 0.0, 0.0
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            name = o["name"]
            if o["type"] == "counter" and (name.startswith("bench.counter.") or name == "bench_counter_total"):
                counters += o["value"]
            elif o["type"] == "timer" and (name.startswith("bench.timer.") or name == "bench_timer"):
                timers += o["count"]
    return counters, timers


def step(rate, seconds, size, flags, warmup=0.0):
    """One paced step. `warmup` seconds of the same load go first, unmeasured (but accounted):
    the agent has then met every line identity of the workload."""
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "1s"] + flags, out)
        time.sleep(0.3)
        early = load(agent.udp, rate, warmup, size) if warmup > 0 else None
        cpu0 = cpu_seconds(agent.proc.pid)
        sent = load(agent.udp, rate, seconds, size)
        time.sleep(0.2)  # let the readers finish what the socket holds
        cpu1 = cpu_seconds(agent.proc.pid)
        values, _ = agent.metrics()
        rss = rss_bytes(agent.proc.pid)
        if agent.stop() != 0:
            raise SystemExit("stator exited non-zero")
        counters, timers = accounted(out)
        expected = sent["counter_sum"] + sent["timer_count"]
        if early:
            expected += early["counter_sum"] + early["timer_count"]
        share = (counters + timers) / expected if expected else 1.0
        return {
            "target_rate": rate or "max", "sent_lines": sent["lines"], "sent_rate": round(sent["lines_per_second"]),
            "datagrams": sent["datagrams"], "accounted": share,
            "received_lines": int(values.get("stator_lines_received_total", 0)),
            "kernel_drops": int(values.get("stator_udp_kernel_drops_total", 0)),
            "cpu_s_per_million": (cpu1 - cpu0) / sent["lines"] * 1e6 if sent["lines"] else 0,
            "rss_mb": rss / 1e6,
        }


def measured_run(agent, port, rate, seconds, size, extra=()):
    """Loads a started agent, then stops it: what was sent, the share of it the JSON lines
    account for, the agent's CPU-s per million lines, and its own metrics before the stop."""
    cpu0 = cpu_seconds(agent.proc.pid)
    sent = load(port, rate, seconds, size, extra)
    time.sleep(0.3)  # let the readers finish what the socket holds
    cpu1 = cpu_seconds(agent.proc.pid)
    values, _ = agent.metrics()
    agent.stop()
    counters, timers = accounted(agent.out)
    expected = sent["counter_sum"] + sent["timer_count"]
    share = (counters + timers) / expected if expected else 1.0
    return sent, share, (cpu1 - cpu0) / sent["lines"] * 1e6, values


def in_turn(variants, k):
    """The variants in round k's order (ABBA): each goes first in every other round, so that
    none always follows another while the machine drifts."""
    return variants if k % 2 == 0 else variants[::-1]


def print_medians(results, mean=False):
    """One line per variant of a run in turns: the median (and the mean) of its runs' CPU figures."""
    for label, values in results.items():
        values = sorted(values)
        n = len(values)
        median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
        average = f", mean {sum(values) / n:.4f}" if mean else ""
        print(f"{label}: median {median:.4f}{average} CPU-s per million lines over {n} runs")


def print_table(rows, title):
    print(f"\n{title}")
    print("| target lines/s | sent lines/s | lines sent | accounted | kernel drops | CPU-s per million lines | RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target_rate']} | {r['sent_rate']:,} | {r['sent_lines']:,} | {100 * r['accounted']:.3f}% | "
              f"{r['kernel_drops']} | {r['cpu_s_per_million']:.3f} | {r['rss_mb']:.1f} |")
    sys.stdout.flush()


def throughput(args):
    rates = [int(r) for r in args.rates.split(",")]
    rows = [step(rate, args.seconds, args.size, args.flags) for rate in rates]
    print_table(rows, f"datagram size {args.size or 'one line'} bytes, {args.seconds} s per step, flush 1 s")


def memory(args):
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "2s", "--sinks.json.path", ""], out)
        time.sleep(1)
        idle = rss_bytes(agent.proc.pid)
        n = args.series
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", "400000",
               "--duration", str(n / 400000 * 1.5 + 1), "--keys", str(n), "--mix", "c=1", "--tags", "0",
               "--datagram-size", "1400", "--seed", "2", "--sequential", "1"]
        subprocess.check_output(cmd)
        time.sleep(5)  # two flushes: the Prometheus state and page hold every series too
        values, _ = agent.metrics()
        live = values.get("stator_series_active", 0)
        loaded = rss_bytes(agent.proc.pid)
        agent.stop()
    print("\n| measure | value |\n|---|---|")
    print(f"| idle RSS | {idle / 1e6:.1f} MB |")
    print(f"| live counter series | {int(live):,} |")
    print(f"| RSS with them | {loaded / 1e6:.1f} MB |")
    print(f"| RSS per series | {(loaded - idle) / max(live, 1):.0f} bytes |")
    timers()


def timer_rss(keys, samples):
    """RSS growth of an agent holding `keys` timer series with `samples` values each, all in
    one open interval (flush interval 1 h), and the lines it accounted for."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "1h", "--sinks.json.path", ""], out)
        time.sleep(1)
        idle = rss_bytes(agent.proc.pid)
        lines = keys * samples
        rate = 400000
        # Paced so that the generator sends exactly `lines` (it stops at the duration).
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", str(rate),
               "--duration", str(lines / rate), "--keys", str(keys), "--mix", "ms=1", "--tags", "0",
               "--datagram-size", "1400", "--seed", "3", "--sequential", "1"]
        sent = json.loads(subprocess.check_output(cmd))
        time.sleep(1)
        values, _ = agent.metrics()
        loaded = rss_bytes(agent.proc.pid)
        agent.stop()
    return (loaded - idle), sent["lines"], int(values.get("stator_lines_received_total", 0))


def timers():
    """Timers cost their samples (8 bytes each) plus a bounded constant per series."""
    keys = 20000
    rows = []
    for samples in (10, 100, 400):
        grown, sent, received = timer_rss(keys, samples)
        rows.append((samples, grown / keys, sent, received))
    print("\n| timer series | samples each (one interval) | lines sent / received | RSS per series |")
    print("|---|---|---|---|")
    for samples, per, sent, received in rows:
        print(f"| {keys:,} | {samples} | {sent:,} / {received:,} | {per:.0f} bytes |")
    (s0, p0, _, _), (s1, p1, _, _) = rows[0], rows[-1]
    slope = (p1 - p0) / (s1 - s0)
    print(f"\nper sample: {slope:.1f} bytes; constant per series: {p0 - s0 * slope:.0f} bytes")
    # One series up to and far past max_samples_per_series (10,000): the reservoir keeps it bounded.
    for samples in (10_000, 1_000_000):
        grown, sent, received = timer_rss(1, samples)
        print(f"one timer series, {sent:,} samples in one interval ({received:,} received): RSS grew "
              f"{grown / 1e3:.0f} kB (every sample kept would be {sent * 8 / 1e3:.0f} kB)")


def scale(args):
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "5s", "--sinks.json.path", "", "--log.level", "debug"], out)
        n = args.series
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", "400000",
               "--duration", str(n / 400000 * 1.5 + 1), "--keys", str(n), "--mix", "c=1", "--tags", "0",
               "--datagram-size", "1400", "--seed", "3", "--sequential", "1"]
        subprocess.check_output(cmd)
        # Wait until a page with every series is published: two renders of the same size.
        # Flushes render the page only while someone asks for it: ask, as a scraper would.
        deadline = time.time() + 180
        while time.time() < deadline:
            time.sleep(1)
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{agent.http}/metrics", method="HEAD"),
                                   timeout=60).read()
            pages = agent.log_lines("page rendered")
            if len(pages) >= 2 and int(pages[-1]["text_bytes"]) > n * 50 and \
                    pages[-1]["text_bytes"] == pages[-2]["text_bytes"]:
                break
        flushes = agent.log_lines("flushed")
        biggest = max(flushes, key=lambda f: int(f["series"]))
        page = agent.log_lines("page rendered")[-1]
        text_mb = int(page["text_bytes"]) / 1e6
        t0 = time.time()
        gz = subprocess.run(["curl", "-s", "-H", "Accept-Encoding: gzip", "-o", "/dev/null", "-w", "%{size_download}",
                             f"http://127.0.0.1:{agent.http}/metrics"], capture_output=True, text=True)
        gz_time = time.time() - t0
        t0 = time.time()
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                                f"http://127.0.0.1:{agent.http}/metrics"], capture_output=True, text=True)
        plain_time = time.time() - t0
        print("\n| measure | value |\n|---|---|")
        print(f"| live series | {n:,} |")
        print(f"| flush of {int(biggest['series']):,} series (drain, summarise, hand to sinks) | {float(biggest['duration_s']):.3f} s |")
        print(f"| page render + gzip on the sink thread | {float(page['duration_s']):.2f} s for {text_mb:.1f} MB of text "
              f"({text_mb / float(page['duration_s']):.0f} MB/s) |")
        print(f"| scrape with Accept-Encoding: gzip | {gz_time:.3f} s ({int(gz.stdout) / 1e6:.1f} MB sent) |")
        print(f"| scrape as plain text (inflated on demand) | {plain_time:.3f} s ({int(plain.stdout) / 1e6:.1f} MB, "
              f"{int(plain.stdout) / 1e6 / plain_time:.0f} MB/s) |")
        # Ingestion at 400k lines/s while the million-series page is re-rendered every flush.
        values0, _ = agent.metrics()
        sent = load(agent.udp, 400000, 12, 1400)
        time.sleep(0.5)
        values, _ = agent.metrics()
        received = values.get("stator_lines_received_total", 0) - values0.get("stator_lines_received_total", 0)
        renders = [float(p["duration_s"]) for p in agent.log_lines("page rendered")[-2:]]
        agent.stop()
        print(f"| lines sent at 400k/s while flushing | {sent['lines']:,} |")
        print(f"| lines received | {int(received):,} |")
        print(f"| kernel drops | {int(values.get('stator_udp_kernel_drops_total', 0))} |")
        print(f"| page renders during that load | {', '.join(f'{r:.2f} s' for r in renders)} |")


def top(args):
    """/api/v1/top and / with a million live series: the flush with the top tables beside it,
    and the agent's CPU per request (a scraper polling every second must cost less than a flush)."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "5s", "--sinks.json.path", "", "--log.level", "debug"], out)
        n = args.series
        # Names of 10 series each (1 tag of 10 values): 100,000 names, past the 10,000 the tables name.
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", "400000",
               "--duration", str(n / 400000 * 1.5 + 1), "--keys", str(n), "--mix", "c=1", "--tags", "1",
               "--datagram-size", "1400", "--seed", "3", "--sequential", "1"]
        subprocess.check_output(cmd)
        base = f"http://127.0.0.1:{agent.http}"
        deadline = time.time() + 180
        answer = {}
        while time.time() < deadline:
            time.sleep(1)
            answer = json.loads(urllib.request.urlopen(f"{base}/api/v1/top?limit=1000", timeout=60).read())
            live = sum(r["series"] for r in answer["names_by_series"]) + answer["other_names"]["series"]
            if live >= n * 0.99 and len(agent.log_lines("top tally folded")) >= 2:
                break
        flushes = agent.log_lines("flushed")
        biggest = max(flushes, key=lambda f: int(f["series"]))
        folds = agent.log_lines("top tally folded")
        slowest = max(folds, key=lambda m: float(m["duration_s"]))
        made = agent.log_lines("top tables made")
        print("\n| measure | value |\n|---|---|")
        print(f"| live series | {n:,} ({len(answer['names_by_series'])} names listed, "
              f"{answer['other_names']['series']:,} series past the 10,000 names) |")
        print(f"| flush of {int(biggest['series']):,} series | {float(biggest['duration_s']):.3f} s |")
        print(f"| top tallies folded, per flush (own thread) | {float(folds[-1]['duration_s']):.3f} s "
              f"(the slowest, as {int(slowest['series']):,} series arrived: {float(slowest['duration_s']):.3f} s) |")
        print(f"| tables sorted, at a request's first ask after a flush | "
              f"{max(float(m['duration_s']) for m in made):.3f} s at most, {len(made)} times |")
        for path, count in [("/api/v1/top", 200), ("/api/v1/top?limit=1000", 50), ("/", 200), ("/ui/app.js", 200)]:
            ticks0 = agent.cpu_ticks()
            t0 = time.time()
            size = 0
            for _ in range(count):
                size = len(urllib.request.urlopen(base + path, timeout=60).read())
            wall = (time.time() - t0) / count
            cpu = (agent.cpu_ticks() - ticks0) / os.sysconf("SC_CLK_TCK") / count
            print(f"| GET {path} ({size:,} bytes) | {wall * 1000:.2f} ms wall, {cpu * 1000:.2f} ms agent CPU per request |")
        agent.stop()


def flushed_sum(path, name):
    """The sum of `value` over every JSON line of series `name` in the flushed output."""
    total = 0.0
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            if o["name"] == name:
                total += o["value"]
    return total


def bomb(args):
    """A cardinality bomb: 10M distinct counter names at 1M lines/s against max_series
    1M, while one known counter keeps arriving; then series_ttl passes. With --name-bytes 256
    every name is as long as max_name_bytes allows (--names and --bomb-rate set the count
    and the pace: long names fill datagrams faster)."""
    import socket, threading
    n, cap, ttl = args.names, args.series, 30
    rate = args.bomb_rate
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "1s", "--series_ttl", f"{ttl}s", "--max_series", str(cap)], out)
        time.sleep(1.5)
        idle = rss_bytes(agent.proc.pid)
        known = {"sent": 0}
        done = threading.Event()
        peak = {"rss": 0}

        def known_sender():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            while not done.is_set():
                sock.sendto(b"known.counter:1|c", ("127.0.0.1", agent.udp))
                known["sent"] += 1
                time.sleep(0.01)

        def sampler():
            while not done.is_set():
                peak["rss"] = max(peak["rss"], rss_bytes(agent.proc.pid))
                time.sleep(0.2)

        threads = [threading.Thread(target=known_sender), threading.Thread(target=sampler)]
        for t in threads:
            t.start()
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", str(rate),
               "--duration", str(n / rate + 0.05), "--keys", str(n), "--mix", "c=1", "--tags", str(args.bomb_tags),
               "--datagram-size", "1400", "--seed", "4", "--sequential", "1", "--name-bytes", str(args.name_bytes),
               "--tag-bytes", str(args.tag_bytes)]
        sent = json.loads(subprocess.check_output(cmd, text=True))
        time.sleep(2)
        done.set()
        for t in threads:
            t.join()
        during, _ = agent.metrics()
        peak_rss = max(peak["rss"], rss_bytes(agent.proc.pid))
        # series_ttl passes with no data; the series are forgotten and the heap trimmed.
        deadline = time.time() + ttl + 30
        while time.time() < deadline:
            time.sleep(1)
            values, _ = agent.metrics()
            if values.get("stator_series_active", 1) == 0:
                break
        time.sleep(5)  # the flushes after the expiry return the freed memory
        after = rss_bytes(agent.proc.pid)
        values, _ = agent.metrics()
        agent.stop()
        counted = flushed_sum(out, "known.counter")
    received = during.get("stator_lines_received_total", 0)
    limit = during.get('stator_lines_invalid_total{reason="series_limit"}', 0)
    print("\n| measure | value |\n|---|---|")
    print(f"| distinct names sent | {sent['lines']:,} at {sent['lines_per_second']:,.0f} lines/s |")
    print(f"| lines received | {int(received):,} (kernel drops {int(during.get('stator_udp_kernel_drops_total', 0))}) |")
    print(f"| series active (max_series {cap:,}) | {int(during.get('stator_series_active', 0)):,} |")
    print(f"| refused, counted as series_limit | {int(limit):,} |")
    print(f"| known counter: sent / flushed | {known['sent']:,} / {int(counted):,} |")
    print(f"| name bytes | {args.name_bytes or 'as generated (about 20)'} |")
    print(f"| tags per line, bytes per tag | {args.bomb_tags}, {args.tag_bytes or 'as generated (5)'} |")
    print(f"| RSS idle / peak / after series_ttl | {idle / 1e6:.0f} MB / {peak_rss / 1e6:.0f} MB / {after / 1e6:.0f} MB |")
    print(f"| peak RSS above idle per series at the cap | {(peak_rss - idle) / max(1, during.get('stator_series_active', 1)):.0f} B |")
    print(f"| series active after series_ttl | {int(values.get('stator_series_active', 0)):,} |")


def sets(args):
    """One set fed --names distinct members (10M by default) in one interval at --bomb-rate
    lines/s: past max_set_members it must switch to its sketch, so RSS stays flat, and the
    count it flushes must be within 3% of what was sent."""
    import threading
    n, rate = args.names, args.bomb_rate
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "1h"], out)
        time.sleep(1)
        idle = rss_bytes(agent.proc.pid)
        done = threading.Event()
        peak = {"rss": 0}

        def sampler():
            while not done.is_set():
                peak["rss"] = max(peak["rss"], rss_bytes(agent.proc.pid))
                time.sleep(0.1)

        thread = threading.Thread(target=sampler)
        thread.start()
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", str(rate),
               "--duration", str(n / rate + 0.05), "--keys", str(n), "--mix", "s=1", "--tags", "0",
               "--datagram-size", "1400", "--seed", "4", "--sequential", "1"]
        sent = json.loads(subprocess.check_output(cmd, text=True))
        time.sleep(1)
        done.set()
        thread.join()
        values, _ = agent.metrics()
        peak_rss = max(peak["rss"], rss_bytes(agent.proc.pid))
        agent.stop()  # SIGTERM: the one interval is flushed
        value = flushed_sum(out, "bench.set")
    distinct = min(sent["lines"], n)
    print("\n| measure | value |\n|---|---|")
    print(f"| members sent | {sent['lines']:,} at {sent['lines_per_second']:,.0f} lines/s ({distinct:,} distinct) |")
    print(f"| lines received, kernel drops | {int(values.get('stator_lines_received_total', 0)):,}, "
          f"{int(values.get('stator_udp_kernel_drops_total', 0))} |")
    print(f"| set value flushed | {value:,.0f} ({100 * (value - distinct) / distinct:+.2f}%) |")
    print(f"| RSS idle / peak | {idle / 1e6:.1f} MB / {peak_rss / 1e6:.1f} MB |")


def micro(args):
    exe = os.path.join(BIN, "stator-micro")
    print(subprocess.check_output([exe], text=True))
    if args.callgrind:
        # Count instructions only inside the measured functions, not the corpus generation. The
        # ingest pass runs as a reader does (ten datagrams per commit, a flush every 400k lines)
        # and simulates this machine's per-core caches (32 KiB L1d, 1 MiB L2, as the last level):
        # the misses per line say how much of the work waits on memory. (They include reading the
        # corpus itself, about one miss per 64 bytes of datagram, which a reader gets from the
        # kernel's copy instead.)
        lines = 400000
        for label, mode, patterns, caches in [
                ("parse + aggregate (ReaderAggregator stage(batch:) + commit)", "ingest",
                 ["*11ingestBatch__4intoySaySWG_SnySiG10StatorCore16ReaderAggregatorVztF"], True),  # (not its closures)
                ("parse only (split + StatsdParser.parse, every line)", "parse",
                 ["*parseEveryLineyySaySays5UInt8VGGF"], False)]:
            with tempfile.TemporaryDirectory() as tmp:
                outfile = os.path.join(tmp, "cg.out")
                simulate = ["--cache-sim=yes", "--D1=32768,8,64", "--LL=1048576,8,64"] if caches else []
                subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}"] + simulate
                               + [f"--toggle-collect={p}" for p in patterns] + [exe, "--lines", str(lines), "--callgrind", mode],
                               check=True, capture_output=True)
                show = "Ir,DLmr,DLmw" if caches else "Ir"
                summary = subprocess.check_output(["callgrind_annotate", f"--show={show}", outfile], text=True)
                total = re.search(r"^\s*([\d,]+)(?: \([\d.]+%\))?\s+([\d,]+)?(?: \([\d.]+%\))?\s*([\d,]+)?(?: \([\d.]+%\))?\s+PROGRAM TOTALS",
                                  summary, re.M)
                if total:
                    instructions = int(total.group(1).replace(",", ""))
                    print(f"callgrind, {label}: {instructions / lines:.0f} instructions per line")
                    if caches and total.group(3):
                        misses = int(total.group(2).replace(",", "")) + int(total.group(3).replace(",", ""))
                        print(f"callgrind, {label}: {misses / lines:.2f} misses of a 1 MiB L2 per line (reads and writes)")
        # The flush side, per flush of the corpus' 8,000 series (two flushes of 400k lines each):
        # the flusher's drain and summaries, the JSON-lines encoding, the Prometheus state's
        # first fold (every series new) and its steady fold (every series known).
        steps = [("flush", "flushStep"), ("JSON encode", "encodeStep"), ("first Prometheus fold", "firstFoldStep"),
                 ("steady Prometheus fold", "8foldStep")]
        with tempfile.TemporaryDirectory() as tmp:
            outfile = os.path.join(tmp, "cg.out")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}"]
                           + [f"--toggle-collect=*{symbol}*" for _, symbol in steps]
                           + [exe, "--lines", "800000", "--callgrind", "flush"], check=True, capture_output=True)
            summary = subprocess.check_output(["callgrind_annotate", "--inclusive=yes", outfile], text=True)
            figures = []
            for label, symbol in steps:
                m = re.search(r"^\s*([\d,]+)(?: \(\s*[\d.]+%\))?\s+\S*main\.swift:\S*" + symbol, summary, re.M)
                if m:
                    count = int(m.group(1).replace(",", ""))
                    # flush and encode run twice (once per flush); each fold once
                    per_flush = count / 2 if symbol in ("flushStep", "encodeStep") else count
                    figures.append(f"{label} {per_flush / 1e6:.1f}M")
            print("callgrind, per flush of 8,000 series (instructions): " + ", ".join(figures))


def inputs(args):
    """The Unix datagram and TCP inputs against UDP, in turns (ABBA): single-line datagrams
    from two senders at 400k lines/s through the Unix socket (blocking senders) and through
    UDP; and 1M lines/s over 8 TCP connections (1,400-byte writes) against UDP datagrams of
    1,400 bytes at the same rate."""
    global SENDERS
    runs = max(1, args.runs)
    cases = [
        ("single-line datagrams, 2 senders, 400k lines/s", 400000, 0, 2, [("udp", None), ("unixgram", "unix")]),
        ("1,400-byte writes, 1M lines/s", 1000000, 1400, 1, [("udp", None), ("tcp, 8 connections", "tcp")]),
    ]
    for title, rate, size, senders, variants in cases:
        print(f"\n{title}\n\n| run | input | lines sent | accounted | send errors | kernel drops | CPU-s per million lines |")
        print("|---|---|---|---|---|---|---|")
        results = {label: [] for label, _ in variants}
        for k in range(runs):
            for label, kind in in_turn(variants, k):
                with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
                    out = os.path.join(tmp, "out.json")
                    sock = os.path.join(tmp, "stator.sock")
                    flags = ["--flush_interval", "1s"] + args.flags
                    if kind == "unix": flags += ["--unixgram.path", sock]
                    if kind == "tcp": flags += ["--tcp.address", "127.0.0.1:0"]
                    agent = Agent(flags, out)
                    tcp_port = None
                    if kind == "tcp":
                        for line in open(agent.log_path):
                            if '"stator started"' in line:
                                tcp_port = int(json.loads(line)["tcp.address"].rsplit(":", 1)[1])
                    time.sleep(0.3)
                    extra = ["--unix", sock] if kind == "unix" else ["--tcp", "8"] if kind == "tcp" else []
                    SENDERS = senders
                    port = tcp_port if kind == "tcp" else agent.udp
                    sent, share, cpu, values = measured_run(agent, port, rate, args.seconds, size, extra)
                    results[label].append(cpu)
                    print(f"| {k + 1} | {label} | {sent['lines']:,} | {100 * share:.3f}% | {sent['send_errors']} | "
                          f"{int(values.get('stator_udp_kernel_drops_total', 0))} | {cpu:.3f} |")
                    sys.stdout.flush()
        SENDERS = 1
        print_medians(results)


def encoders(args):
    """Each sink's emit for one flush of --series series (default here 100,000): encode, and
    queue or write, on the sink's own thread."""
    exe = os.path.join(BIN, "stator-micro")
    series = args.series if args.series != 1000000 else 100000
    print(subprocess.check_output([exe, "--encoders", "--series", str(series)], text=True))


def rollup(args):
    """The roll-up sink at scale: a flush of 10,000 tenants x 20 names, a 90-day history, one
    tenant's 90-day query, and the database's bytes per row (stator-micro --rollup)."""
    exe = os.path.join(BIN, "stator-micro")
    print(subprocess.check_output([exe, "--rollup", "--tenants", "10000", "--names", "20", "--days", "90"], text=True))


class OTLPReceiver:
    """Answers every POST with 200 and an empty body (a full success), as an OpenTelemetry
    Collector does; counts the requests."""
    def __init__(self):
        import http.server, threading
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sinks(args):
    """CPU per line at 400k lines/s with every sink on (Prometheus, JSON lines, Graphite, and
    pushes of remote write, Influx and Datadog into one VictoriaMetrics and OTLP to a local
    receiver) against Prometheus and JSON lines alone, in turns (ABBA)."""
    runs = max(1, args.runs)
    rate = 400000
    with tempfile.TemporaryDirectory(dir="/dev/shm") as vmdir:
        http_port, graphite_port = free_port(), free_port()
        vm = subprocess.Popen(["victoria-metrics", f"-storageDataPath={vmdir}", f"-httpListenAddr=127.0.0.1:{http_port}",
                               f"-graphiteListenAddr=127.0.0.1:{graphite_port}", "-loggerLevel=ERROR"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        otlp = OTLPReceiver()
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            base = f"http://127.0.0.1:{http_port}"
            config = {"sinks": {
                "graphite": {"address": f"127.0.0.1:{graphite_port}"},
                "http_push": [
                    {"name": "rw", "url": f"{base}/api/v1/write", "format": "remote_write"},
                    {"name": "influx", "url": f"{base}/write", "format": "influx"},
                    {"name": "dd", "url": f"{base}/datadog/api/v1/series", "format": "datadog"},
                    {"name": "otlp", "url": f"http://127.0.0.1:{otlp.port}/v1/metrics", "format": "otlp"},
                ]}}
            variants = [("prometheus + json", None), ("every sink", config)]
            interval = args.flags[args.flags.index("--flush_interval") + 1] if "--flush_interval" in args.flags else "1s"
            print(f"\n400k lines/s, {args.seconds:g} s per run, flush every {interval}\n")
            print("| run | sinks | lines sent | accounted | kernel drops | push requests | CPU-s per million lines |")
            print("|---|---|---|---|---|---|---|")
            results = {label: [] for label, _ in variants}
            for k in range(runs):
                for label, cfg in in_turn(variants, k):
                    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
                        out = os.path.join(tmp, "out.json")
                        flags = ["--flush_interval", "1s"] + args.flags
                        if cfg:
                            path = os.path.join(tmp, "stator.json")
                            with open(path, "w") as f:
                                json.dump(cfg, f)
                            flags += ["--config", path]
                        agent = Agent(flags, out)
                        time.sleep(0.3)
                        sent, share, cpu, values = measured_run(agent, agent.udp, rate, args.seconds, args.size)
                        results[label].append(cpu)
                        pushed = sum(v for n, v in values.items()
                                     if n.startswith("stator_push_requests_total") and 'result="success"' in n)
                        print(f"| {k + 1} | {label} | {sent['lines']:,} | {100 * share:.3f}% | "
                              f"{int(values.get('stator_udp_kernel_drops_total', 0))} | {int(pushed)} | {cpu:.3f} |")
                        sys.stdout.flush()
            print_medians(results)
        finally:
            otlp.stop()
            vm.terminate()
            vm.wait(timeout=30)


def mapping_rules(path, rules=1000):
    """A mapping file as large ones are written: globs over app and service names (most),
    regexes over batch job names, and, last, the two rules that map the generator's counters
    and timers (so every line is still accounted for). The generator's gauges and sets match
    nothing: their names go through every glob state and every regex when first seen."""
    out = ["mappings:"]
    globs = (rules - 2) * 9 // 10
    for i in range(globs):
        if i % 2 == 0:
            out += [f'- match: "app{i}.*.requests"', '  name: "app_requests_total"', "  labels:",
                    f'    app: "app{i}"', '    route: "$1"']
        else:
            out += [f'- match: "svc{i}.*.*.latency"', '  name: "svc_latency"', "  labels:",
                    f'    service: "svc{i}"', '    method: "$1"', '    code: "$2"']
    for i in range(rules - 2 - globs):
        out += [f"- match: '^batch{i}\\.(\\w+)\\.(\\w+)\\.duration$'", "  match_type: regex",
                '  name: "batch_duration"', "  labels:", f'    batch: "{i}"', '    job: "$1"', '    step: "$2"']
    out += ['- match: "bench.counter.*"', '  name: "bench_counter_total"', "  labels:", '    key: "$1"',
            '- match: "bench.timer.*"', '  name: "bench_timer"', "  labels:", '    key: "$1"']
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def mapping(args):
    """CPU per line at 400k lines/s with a 1,000-rule mapping file against none, in turns, after a
    second of warm-up (each line identity is mapped once; the storm below measures that cost);
    then a storm of new names (1M a minute) through the same rules, against none."""
    runs = max(1, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "mapping.yml")
        mapping_rules(rules)
        variants = [("no mapping", []), ("1,000 rules", ["--mapping_config", rules])]
        results = {label: [] for label, _ in variants}
        print("\n| run | variant | CPU-s per million lines | accounted | kernel drops |\n|---|---|---|---|---|")
        for k in range(runs):
            for label, flags in in_turn(variants, k):
                r = step(400000, args.seconds, args.size, args.flags + flags, warmup=1.0)
                results[label].append(r["cpu_s_per_million"])
                print(f"| {k + 1} | {label} | {r['cpu_s_per_million']:.3f} | {100 * r['accounted']:.3f}% | {r['kernel_drops']} |")
                sys.stdout.flush()
        print_medians(results, mean=True)

        # The storm: every line a new name, half counters (a glob maps them), half gauges (no
        # rule matches: every glob state and regex tried). 1M names a minute.
        rate, seconds = 1_000_000 // 60, args.storm_seconds
        print("\n| variant | new names | CPU-s | µs of agent CPU per new name | series active |\n|---|---|---|---|---|")
        for label, flags in variants:
            with tempfile.TemporaryDirectory(dir="/dev/shm") as out_dir:
                agent = Agent(["--flush_interval", "1s", "--max_series", "10000000"] + args.flags + flags,
                              os.path.join(out_dir, "out.json"))
                time.sleep(0.5)
                cpu0 = cpu_seconds(agent.proc.pid)
                cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", str(rate),
                       "--duration", str(seconds), "--keys", str(rate * seconds + 1), "--mix", "c=1,g=1",
                       "--datagram-size", "1400", "--seed", "5", "--sequential", "1"]
                sent = json.loads(subprocess.check_output(cmd, text=True))
                time.sleep(1.5)
                cpu1 = cpu_seconds(agent.proc.pid)
                values, _ = agent.metrics()
                agent.stop()
            names = sent["lines"]
            print(f"| {label} | {names:,} | {cpu1 - cpu0:.2f} | {(cpu1 - cpu0) / names * 1e6:.1f} | "
                  f"{int(values.get('stator_series_active', 0)):,} |")

    # The regex engine alone: pathological patterns on 5,000-byte names, and one new name
    # through 1,000 regex rules beside 1,000 glob rules (stator-micro --regex).
    sys.stdout.flush()
    subprocess.run([os.path.join(BIN, "stator-micro"), "--regex"], check=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="throughput", choices=["throughput", "small", "memory", "scale", "top", "micro", "bomb", "sets", "mapping", "inputs",
                                                           "encoders", "sinks", "rollup"])
    p.add_argument("--rates", default="50000,100000,200000,400000,800000,1600000,0")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--size", type=int, default=1400)
    p.add_argument("--series", type=int, default=1000000, help="scale: live series; bomb: max_series")
    p.add_argument("--names", type=int, default=10_000_000, help="bomb: distinct names sent")
    p.add_argument("--bomb-rate", type=int, default=1_000_000, help="bomb: lines per second")
    p.add_argument("--name-bytes", type=int, default=0, help="bomb: pad every name to this many bytes")
    p.add_argument("--bomb-tags", type=int, default=0, help="bomb: tags per line")
    p.add_argument("--tag-bytes", type=int, default=0, help="bomb: pad every tag (key:value) to this many bytes")
    p.add_argument("--callgrind", action="store_true", default=True)
    p.add_argument("--format-live", action="store_true",
                   help="at the as-fast-as-possible step, format lines while sending, like a client")
    p.add_argument("--senders", type=int, default=1,
                   help="concurrent generator processes (each its own source port, so SO_REUSEPORT spreads them)")
    p.add_argument("--flag", dest="flags", action="append", default=[], help="extra stator flag (repeat)")
    p.add_argument("--runs", type=int, default=6, help="mapping, inputs, sinks: runs of each variant, in turns")
    p.add_argument("--storm-seconds", type=int, default=30, help="mapping: seconds of the new-name storm")
    p.add_argument("--agent", default=None, help="the stator binary to measure (default: this checkout's release build)")
    args = p.parse_args()
    global LIVE, SENDERS, AGENT
    AGENT = args.agent or AGENT
    LIVE = args.format_live
    SENDERS = max(1, args.senders)
    if args.mode == "small":
        args.size = 0
        args.mode = "throughput"
    modes = {"throughput": throughput, "memory": memory, "scale": scale, "top": top, "micro": micro, "bomb": bomb, "sets": sets,
             "mapping": mapping, "inputs": inputs, "encoders": encoders, "sinks": sinks, "rollup": rollup}
    modes[args.mode](args)


if __name__ == "__main__":
    main()
