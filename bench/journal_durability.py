"""What a durable journal costs (run by hand, not a test): `.venv/bin/python bench/journal_durability.py`.

`soxbot run` opens a durable journal (SQLite `synchronous=FULL`, WAL): every commit waits for the
disk; backtests (`buffered=True`) do not. Timed per call, as the live driver makes them, on a fresh
journal in `--dir` (put it on the disk the journal will live on; default: the system's temp dir):

- per order: the intent written before the order is sent (`order_intent`), and the order's whole
  journal round (intent, 'submitted', the fill, 'filled');
- per bar: the per-bar record (one signal row per strategy + the combined one, the equity point),
  which a durable journal commits without waiting for the disk; "all FULL" shows what it would cost
  if those rows waited too.

Prints a Markdown table (median and p99 of `--n` calls, in microseconds); copy it into bench/README.md
with the date, the machine and the disk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bot.journal.journal as journal_mod
from bot.core.events import EquityPoint, Intent, OrderFilled, OrderIntent, OrderType, Side
from bot.journal.journal import Journal

TS = pd.Timestamp("2024-06-03 15:50", tz="America/New_York")


def _intent(i: int) -> OrderIntent:
    return OrderIntent(f"sx-bench-SOXL-{i:012d}-open", TS, "SOXL", Side.BUY, 100, OrderType.MARKET,
                       Intent.OPEN, "ma_cross: SMA20 > SMA50")  # fmt: skip


def order_intent(j: Journal, i: int) -> None:
    j.order_intent(_intent(i))


def order_round(j: Journal, i: int) -> None:
    cid = _intent(i).client_order_id
    j.order_intent(_intent(i))
    j.order_status(cid, "submitted", f"broker-{i}")
    j.fill(OrderFilled(cid, TS, "SOXL", Side.BUY, 100, 31.25))
    j.order_status(cid, "filled")


def bar_record(j: Journal, i: int) -> None:
    j.signal(TS, "SOXX", "ma_cross", 1, "SMA20 > SMA50", {"ma_fast": 201.5, "ma_slow": 198.25})
    j.signal(TS, "SOXX", "combined", 1, "majority")
    j.equity(EquityPoint(TS, 100_000.0 + i, 50_000.0, 50_000.0 + i))


def timed(d: Path, name: str, durable: bool, call: Callable[[Journal, int], None], n: int) -> list[float]:
    j = Journal(d / f"{name}-{int(durable)}-{time.monotonic_ns()}.db", durable=durable)
    j.start_run("bench", "bench", {})
    for i in range(20):  # warm the connection and the file
        call(j, 10_000_000 + i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        call(j, i)
        out.append((time.perf_counter() - t) * 1e6)
    j.close()
    return out


def row(label: str, times: list[float]) -> str:
    p99 = statistics.quantiles(times, n=100)[98]
    return f"| {label} | {statistics.median(times):,.1f} | {p99:,.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=None, help="where the journals go (the journal's disk)")
    ap.add_argument("--n", type=int, default=500, help="calls timed per row")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        d = Path(tmp)
        rows = ["| what | median (us) | p99 (us) |", "|---|---:|---:|"]
        for label, call in (("order intent", order_intent), ("order round (intent, 2 statuses, fill)",
                                                              order_round)):  # fmt: skip
            rows.append(row(f"{label}, NORMAL (before; durable=False)", timed(d, "o", False, call, a.n)))
            rows.append(row(f"{label}, FULL (soxbot run)", timed(d, "o", True, call, a.n)))
        rows.append(row("bar record (2 signals, equity), NORMAL", timed(d, "b", False, bar_record, a.n)))
        rows.append(row("bar record, durable journal (soxbot run)", timed(d, "b", True, bar_record, a.n)))
        journal_mod.PER_BAR = frozenset()  # what it would cost if the per-bar rows waited for the disk too
        rows.append(row("bar record, all FULL (not used)", timed(d, "b", True, bar_record, a.n)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
