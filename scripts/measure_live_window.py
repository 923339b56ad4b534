"""Measure how short a trailing window can be and still decide like the full history.

For each strategy: the shortest window W such that, at every bar, signals(bars[i-W+1 : i+1]) ends
with the full-history direction (for W and every longer window), and the worst indicator deviation
at a few window lengths. Uses the no-look-ahead property: the window ending at bar i is the prefix
of bars[i-W+1:], so one signals() call per start bar covers every W. bot/signals/window.py quotes the output.

    .venv/bin/python scripts/measure_live_window.py [SYMBOL] [START] [W ...]
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bot.signals.plugins import create
from bot.signals.window import live_window

CASES = [
    ("ma_cross", {}),
    ("ma_cross", {"kind": "ema"}),
    ("rsi", {}),
    ("rsi", {"exit_mid": True}),
    ("rsi", {"trend_filter": 200}),
    ("support", {}),
    ("support", {"vol_mult": 1.5}),
]


def measure(strategy, bars: pd.DataFrame, windows: np.ndarray, column: str | None):
    full = strategy.signals(bars)
    fd = full["direction"].to_numpy()
    fv = full[column].to_numpy() if column else None
    n = len(bars)
    bad = np.zeros(len(windows), dtype=bool)
    dev = np.zeros(len(windows))
    for start in range(n - int(windows[0]) + 1):
        out = strategy.signals(bars.iloc[start:])
        end = start + windows - 1
        m = (end < n) & (end >= strategy.warmup)
        i = end[m]
        bad[m] |= out["direction"].to_numpy()[i - start] != fd[i]
        if column:
            d = np.abs(out[column].to_numpy()[i - start] - fv[i])
            dev[m] = np.maximum(dev[m], np.nan_to_num(d, nan=0.0))
    shortest = int(windows[bad].max()) + 1 if bad.any() else int(windows[0])
    return shortest, dev


def main() -> None:
    symbol = sys.argv[1] if len(sys.argv) > 1 else "SOXX"
    start = sys.argv[2] if len(sys.argv) > 2 else "2015-01-01"
    report_at = [int(w) for w in sys.argv[3:]] or [100, 160, 200, 250, 294, 400]
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / f"{symbol}_1d.csv"
    bars = pd.read_csv(data, index_col=0, parse_dates=True).loc[start:]
    windows = np.arange(20, 1200)
    warnings.simplefilter("ignore")
    print(f"{symbol} 1d from {start}: {len(bars)} bars")
    for name, params in CASES:
        s = create(name, params)
        column = {"rsi": "rsi", "ma_cross": "ma_fast"}.get(name)
        shortest, dev = measure(s, bars, windows, column)
        line = f"{s!r}: memory {s.memory}, live_window {live_window([s])}, "
        line += f"shortest same-decision window {shortest}"
        if column:
            under = windows[(dev < 1e-6) & (windows >= 20)]
            tail_ok = [int(w) for w in under if (dev[windows >= w] < 1e-6).all()]
            line += f"; |{column}| < 1e-6 from W={tail_ok[0] if tail_ok else None}; max |dev| " + ", ".join(
                f"W={w}: {dev[w - windows[0]]:.1e}" for w in report_at if windows[0] <= w <= windows[-1]
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
