"""Soak run (by hand, not a test): the real service on 1-minute bars against `soxbot sandbox`.

Starts the sandbox (synthetic 1-minute bars, accelerated clock) and `soxbot run` as the long-lived
service, lets `--days` simulated calendar days pass, and samples the bot's RSS and open file
descriptors (from /proc) plus its /metrics counters. Prints a table and whether memory and fds stay
flat after warm-up (the first 20% of samples are warm-up).

    .venv/bin/python bench/soak.py --days 30 --speed 1500 [--page]

`--page`: the dashboard's overview is open the whole time, as a browser keeps it: the page, then its
htmx fragment every 2 s of wall time (what `overview.html` asks for).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CMD = [sys.executable, "-m", "bot.cli"]


def proc_stats(pid: int) -> tuple[float, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--speed", type=float, default=1500)
    ap.add_argument("--every", type=float, default=15, help="seconds between samples")
    ap.add_argument("--port", type=int, default=19108)
    ap.add_argument("--page", action="store_true", help="keep the dashboard's overview open (polling)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soxbot-soak-"))
    sb = subprocess.Popen([*CMD, "sandbox", "--port", "0", "--speed", str(a.speed), "--timeframe", "1m",
                           "--key", "PKSOAK", "--secret", "SOAK", "--start", "2024-03-04"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    line = sb.stdout.readline()  # type: ignore[union-attr]
    url = "http://127.0.0.1:" + line.split("127.0.0.1:")[1].split()[0]
    cfg = tmp / "soak.toml"
    cfg.write_text(f"""
[data]
source = "alpaca"
timeframe = "1m"
base_url = "{url}"
cache_dir = "{tmp / "cache"}"
[[strategies]]
name = "ma_cross"
params = {{ fast = 20, slow = 50 }}
[risk]
fraction = 0.5
stop_loss_pct = 0.02
[broker]
kind = "alpaca"
base_url = "{url}"
[service]
health_port = {a.port}
dashboard_port = {a.port + 1}
[journal]
path = "{tmp / "soak.db"}"
[run]
log_format = "keyvalue"
log_level = "WARNING"
""")
    env = {**os.environ, "APCA_API_KEY_ID": "PKSOAK", "APCA_API_SECRET_KEY": "SOAK"}
    bot = subprocess.Popen([*CMD, "run", "--config", str(cfg)], cwd=REPO, env=env,
                           stdout=(tmp / "bot.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    wall = a.days * 86400 / a.speed
    done = threading.Event()
    polls = [0, 0]  # answered, failed
    if a.page:
        threading.Thread(target=_keep_page_open, args=(a.port + 1, done, polls), daemon=True).start()
    rows = []
    t0 = time.monotonic()
    print("| wall s | RSS MiB | fds | decisions | skipped | fills | journal MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    try:
        while time.monotonic() - t0 < wall and bot.poll() is None:
            time.sleep(a.every)
            rss, fds = proc_stats(bot.pid)
            try:
                m = urllib.request.urlopen(f"http://127.0.0.1:{a.port}/metrics", timeout=5).read().decode()
            except OSError:
                m = ""
            db = sum(p.stat().st_size for p in tmp.glob("soak.db*")) / 2**20
            row = (time.monotonic() - t0, rss, fds, metric(m, "soxbot_decisions_total"),
                   metric(m, "soxbot_skipped_misfires_total"), metric(m, "soxbot_fills_total"), db)
            rows.append(row)
            print("| {:.0f} | {:.1f} | {} | {:.0f} | {:.0f} | {:.0f} | {:.1f} |".format(*row), flush=True)
    finally:
        done.set()
        bot.send_signal(signal.SIGTERM)
        bot.wait(30)
        sb.send_signal(signal.SIGTERM)
        sb.wait(10)
    if len(rows) >= 5:
        warm = rows[len(rows) // 5 :]
        rss = [r[1] for r in warm]
        fds = [r[2] for r in warm]
        print(f"\nafter warm-up: RSS {min(rss):.1f}..{max(rss):.1f} MiB (growth {rss[-1] - rss[0]:+.1f}), "
              f"fds {min(fds)}..{max(fds)}; bot exit code {bot.returncode}; log {tmp / 'bot.log'}")
    if a.page:
        print(f"dashboard overview polls: {polls[0]} answered, {polls[1]} failed")
    return 0


def _keep_page_open(port: int, done: threading.Event, polls: list[int]) -> None:
    base = f"http://127.0.0.1:{port}"
    first = True
    while not done.wait(2.0):
        try:
            path = "/" if first else "/partials/overview"
            urllib.request.urlopen(base + path, timeout=10).read()
            polls[0] += 1
            first = False
        except OSError:
            polls[1] += 1


if __name__ == "__main__":
    raise SystemExit(main())
