#!/usr/bin/env python3
"""scripts/soak: a long steady run of the release agent (see scripts/soak)."""
import argparse, json, os, statistics, subprocess, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, Agent, accounted, cpu_seconds, rss_bytes  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("minutes", nargs="?", type=float, default=10)
    # Half of the highest paced rate scripts/bench measured lossless here (1.6M lines/s).
    p.add_argument("--rate", type=int, default=800_000)
    args = p.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        out = os.path.join(tmp, "out.json")
        agent = Agent(["--flush_interval", "1s"], out)
        done = threading.Event()
        rss = []  # (seconds since start, bytes)
        scrapes = {"count": 0, "failed": 0, "max_s": 0.0}
        start = time.time()

        def watch():
            while not done.is_set():
                t0 = time.time()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{agent.http}/metrics", timeout=5) as r:
                        r.read()
                    scrapes["count"] += 1
                    scrapes["max_s"] = max(scrapes["max_s"], time.time() - t0)
                except OSError:
                    scrapes["failed"] += 1
                rss.append((time.time() - start, rss_bytes(agent.proc.pid)))
                done.wait(max(0.0, 1 - (time.time() - t0)))

        watcher = threading.Thread(target=watch)
        watcher.start()
        cpu0 = cpu_seconds(agent.proc.pid)
        cmd = [os.path.join(BIN, "stator-load"), "--target", f"127.0.0.1:{agent.udp}", "--rate", str(args.rate),
               "--duration", str(seconds), "--keys", "2000", "--mix", "c=50,ms=30,g=10,s=10",
               "--datagram-size", "1400", "--seed", "5"]
        sent = json.loads(subprocess.check_output(cmd, text=True))
        time.sleep(0.5)
        cpu1 = cpu_seconds(agent.proc.pid)
        done.set()
        watcher.join()
        values, _ = agent.metrics()
        code = agent.stop()
        counters, timers = accounted(out)
    expected = sent["counter_sum"] + sent["timer_count"]
    share = (counters + timers) / expected if expected else 1.0
    drops = int(values.get("stator_udp_kernel_drops_total", 0))
    if seconds >= 180:
        second = [b for t, b in rss if 60 <= t < 120]
        last = [b for t, b in rss if t >= seconds - 60]
    else:  # a short run: the middle third against the last third
        second = [b for t, b in rss if seconds / 3 <= t < 2 * seconds / 3]
        last = [b for t, b in rss if t >= 2 * seconds / 3]
    second = second or [b for _, b in rss]
    last = last or [b for _, b in rss]
    drift = statistics.mean(last) / statistics.mean(second) - 1
    print("\n| measure | value |\n|---|---|")
    print(f"| duration | {args.minutes:g} min at {args.rate:,} lines/s (2,000 keys, 50% c, 30% ms, 10% g, 10% s) |")
    print(f"| lines sent | {sent['lines']:,} ({sent['lines_per_second']:,.0f} lines/s) |")
    print(f"| accounted in the JSON output | {100 * share:.4f}% ({int(counters + timers):,} of {int(expected):,}) |")
    print(f"| kernel drops | {drops} |")
    print(f"| scrapes | {scrapes['count']:,} ({scrapes['failed']} failed), slowest {scrapes['max_s'] * 1000:.0f} ms |")
    print(f"| RSS, second minute / last minute (mean) | {statistics.mean(second) / 1e6:.1f} MB / "
          f"{statistics.mean(last) / 1e6:.1f} MB ({100 * drift:+.2f}%) |")
    print(f"| RSS max | {max(b for _, b in rss) / 1e6:.1f} MB |")
    print(f"| CPU-s per million lines | {(cpu1 - cpu0) / sent['lines'] * 1e6:.3f} |")
    print(f"| exit status | {code} |")
    ok = share == 1.0 and drops == 0 and abs(drift) <= 0.05 and code == 0 and scrapes["failed"] == 0
    print("\nsoak: " + ("passed" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
