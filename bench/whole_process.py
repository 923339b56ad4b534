"""`soxbot backtest` as a whole process against a backtesting.py script on the same data (run by
hand; figures in bench/README.md).

Both read SOXX daily from the data directory, trade an SMA 20/50 cross long-only all-in at the next
open, and write an HTML report. backtesting.py runs in a venv of its own:

    python3 -m venv /tmp/btpy && /tmp/btpy/bin/pip install backtesting
    .venv/bin/python bench/whole_process.py --peer-python /tmp/btpy/bin/python [--rounds 7]

Rounds alternate the commands so both see the same machine load; medians and minimums of wall time.
The first soxbot run builds the calendar cache (`bot/data/calendar.py`) if it is missing; it is not
counted (a warm-up round runs each command once first).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = """[universe]
signal = "SOXX"
bull = "SOXX"
bear = ""
[[strategies]]
name = "ma_cross"
params = { fast = 20, slow = 50 }
[risk]
stop_loss_pct = 0
fraction = 1.0
max_position_pct = 1.0
"""


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-python", required=True, help="a python with backtesting installed")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "c.toml").write_text(CONFIG)
    soxbot = [str(REPO / ".venv" / "bin" / "soxbot"), "backtest", "--config", str(tmp / "c.toml"),
              "--data-dir", a.data_dir, "--out", str(tmp / "out"), "--no-progress"]  # fmt: skip
    peer = [
        a.peer_python,
        str(REPO / "bench" / "peer_backtesting_py.py"),
        str(Path(a.data_dir) / "SOXX_1d.csv"),
    ]
    cmds = {
        "soxbot backtest (report, look-ahead check)": soxbot,
        "soxbot backtest --no-lookahead-check": [*soxbot, "--no-lookahead-check"],
        "backtesting.py script (run + plot to HTML)": [*peer, str(tmp / "peer.html")],
        "backtesting.py script (run only)": peer,
        "python -c 'import pandas' (floor)": [sys.executable, "-c", "import pandas"],
    }
    for cmd in cmds.values():  # warm-up: caches, page cache
        timed(cmd)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(a.rounds):
        for k, cmd in cmds.items():
            times[k].append(timed(cmd))
    print("| command | median (s) | min (s) |\n|---|---:|---:|")
    for k, ts in times.items():
        print(f"| {k} | {statistics.median(ts):.2f} | {min(ts):.2f} |")


if __name__ == "__main__":
    main()
