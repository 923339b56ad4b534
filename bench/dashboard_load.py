"""What the dashboard costs the service: `soxbot run` on the embedded sandbox (the example config), measured
from outside as a process.

1. idle: the service's CPU (user + system, /proc/PID/stat) over a window with no page open;
2. overview open: the same window with one browser's worth of polling (GET /partials/overview every
   2 s, what the page does), so the difference is the cost of an open page;
3. load: GET / (the whole overview page) from C threads as fast as they go: requests/s, latency
   percentiles and the service's CPU meanwhile;
4. memory: the service's RSS sampled while a page polls over a simulated month (21+ sessions).

The bar -> intent path is not measured here: the dashboard adds no code to it (`bench/run_bench.py
--only live` times it; compare with bench/README.md). Usage:
    .venv/bin/python bench/dashboard_load.py [--window 20] [--threads 4] [--load-seconds 15]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = 4096


def cpu_seconds(pid: int) -> float:
    f = (Path(f"/proc/{pid}/stat").read_text()).rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def fetch(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
    return time.perf_counter() - t0


def window(pid: int, seconds: float, poll: str | None) -> float:
    """CPU share of the service (percent of one core) over `seconds`, optionally polling `poll` every 2 s."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    nxt = t0
    while time.monotonic() - t0 < seconds:
        if poll is not None and time.monotonic() >= nxt:
            fetch(poll)
            nxt += 2.0
        time.sleep(0.05)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def load(pid: int, url: str, threads: int, seconds: float) -> tuple[float, list[float], float]:
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        mine = []
        while time.monotonic() < stop:
            mine.append(fetch(url))
        with lock:
            lat.extend(mine)

    c0, t0 = cpu_seconds(pid), time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    return len(lat) / wall, sorted(lat), 100 * (cpu_seconds(pid) - c0) / wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=20.0, help="seconds per CPU window")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--load-seconds", type=float, default=15.0)
    ap.add_argument("--soak-seconds", type=float, default=90.0, help="RSS sampling with a page open")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soxbot-dash-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "SOXBOT_"))}
    env.update(
        SOXBOT_SERVICE__HEALTH_PORT="0", SOXBOT_SERVICE__DASHBOARD_PORT="0", SOXBOT_RUN__LOG_LEVEL="WARNING"
    )
    log = (tmp / "run.log").open("w")
    cmd = [sys.executable, "-m", "bot.cli", "run", "--config", str(REPO / "config.example.toml")]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None and time.monotonic() < deadline:
            m = re.search(r"^dashboard: (\S+)", (tmp / "run.log").read_text(), re.M)
            url = m.group(1) if m else None
            time.sleep(0.2)
        assert url, (tmp / "run.log").read_text()[-2000:]
        fetch(url)  # warm: templates compiled, first journal read
        idle = window(proc.pid, a.window, None)
        polled = window(proc.pid, a.window, url + "partials/overview")
        rps, lat, busy = load(proc.pid, url, a.threads, a.load_seconds)
        samples = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.soak_seconds:
            fetch(url + "partials/overview")
            samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
            time.sleep(2.0)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        log.close()
    q = statistics.quantiles(lat, n=100)
    print("| measure | value |\n|---|---|")
    print(f"| service CPU, no page open ({a.window:g} s) | {idle:.1f}% of a core |")
    print(
        f"| service CPU, overview open (polls every 2 s) | {polled:.1f}% of a core (+{polled - idle:.1f}) |"
    )
    print(f"| GET / from {a.threads} threads, {a.load_seconds:g} s | {rps:.0f} requests/s |")
    print(f"| latency p50 / p95 / p99 | {q[49] * 1e3:.1f} / {q[94] * 1e3:.1f} / {q[98] * 1e3:.1f} ms |")
    print(f"| service CPU under that load | {busy:.0f}% of a core |")
    first, last = samples[0][1], samples[-1][1]
    import sqlite3

    sessions = sqlite3.connect(tmp / "soxbot-sandbox.db").execute("SELECT count(*) FROM equity").fetchone()[0]
    print(
        f"| RSS with a page open, {samples[-1][0]:.0f} s | {first:.1f} MB -> {last:.1f} MB "
        f"(max {max(s for _, s in samples):.1f}) |"
    )
    print(f"| exit code after SIGINT | {code} |")
    print(f"\n(sandbox clock 43200x; journal at {tmp}; daily bars the service decided on: {sessions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
