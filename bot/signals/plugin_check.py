"""`soxbot test-strategy NAME`: the checks a plugin must pass before it trades.

Run on seeded synthetic bars, so they need no data files: default parameters validate; the output
has one row per bar with `direction` in {-1, 0, +1} and a `reason`; warm-up rows are 0; no look-ahead
(signals on a prefix of the bars equal the first rows of signals on all of them); the live
trailing window makes the same decisions as the full history; and a `stepper()`, where the plugin
has one, gives every bar the row `signals()` gives it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from bot.signals.strategy import DIRECTION, REASON, Strategy


def check_plugin(name: str, extra_paths: Iterable[Path] = (), years: float = 6.0) -> list[str]:
    from bot.data.synthetic import generate
    from bot.signals.plugins import PluginError, create
    from bot.signals.window import live_window

    try:
        strat = create(name, {}, tuple(extra_paths))
    except PluginError as exc:
        return [f"cannot build with default parameters: {exc}"]
    bars = generate(["SOXX"], "1d", "2015-01-02", years, seed=11)["SOXX"]
    problems: list[str] = []
    try:
        out = strat.signals(bars)
    except Exception as exc:  # a plugin's own bug: report it, do not crash the checker
        return [f"signals() raised {type(exc).__name__}: {exc}"]
    if not out.index.equals(bars.index):
        problems.append("output index differs from the bars' index")
    for col in (DIRECTION, REASON):
        if col not in out:
            problems.append(f"output has no '{col}' column")
    if problems:
        return problems
    d = out[DIRECTION].to_numpy()
    if not np.isin(d, (-1, 0, 1)).all():
        problems.append("direction has values outside {-1, 0, +1}")
    w = strat.warmup
    if w < 0 or w >= len(bars):
        problems.append(f"warmup {w} is not a bar count within the data")
    elif (d[:w] != 0).any():
        problems.append("direction is not 0 during warm-up")
    if (d[w:] != 0).sum() == 0:
        problems.append("never leaves 0 on 6 years of synthetic bars (check the rule)")
    for k in (w + 5, len(bars) // 2, len(bars) - 7):
        if 0 < k < len(bars):
            head = strat.signals(bars.iloc[:k])[DIRECTION].to_numpy()
            if not np.array_equal(head, d[:k]):
                problems.append(f"look-ahead: signals on the first {k} bars differ from the full run")
                break
    win = live_window([strat])
    for i in range(max(w, win), len(bars), max(1, (len(bars) - win) // 40)):
        last = strat.signals(bars.iloc[i - win + 1 : i + 1])[DIRECTION].iat[-1]
        if last != d[i]:
            problems.append(f"live window of {win} bars decides {last} at bar {i}, full history {d[i]}")
            break
    problem = check_stepper(strat, bars, out)
    if problem:
        problems.append(problem)
    return problems


def check_stepper(strat: Strategy, bars: pd.DataFrame, out: pd.DataFrame) -> str | None:
    """The first bar where the plugin's stepper and `out` (its signals on `bars`) disagree: direction
    or reason, or an indicator value off by more than 1e-9 relative (NaN only where NaN). None when
    they agree or the plugin has no stepper."""
    try:
        stepper = strat.stepper()
    except Exception as exc:
        return f"stepper() raised {type(exc).__name__}: {exc}"
    if stepper is None:
        return None
    d, r = out[DIRECTION].to_numpy(), out[REASON].to_numpy()
    cols = [c for c in out.columns if c not in (DIRECTION, REASON)]
    want = {c: out[c].to_numpy(dtype=float) for c in cols}
    rows = bars[["open", "high", "low", "close", "volume"]].itertuples(index=False, name=None)
    for i, bar in enumerate(rows):
        try:
            direction, reason, values = stepper.update(*(float(x) for x in bar))
        except Exception as exc:
            return f"stepper update raised {type(exc).__name__} at bar {i}: {exc}"
        if (direction, reason) != (d[i], r[i]):
            return f"stepper decides {direction} {reason!r} at bar {i}, signals() {d[i]} {r[i]!r}"
        if sorted(values) != sorted(cols):
            return f"stepper values {sorted(values)} at bar {i}, signals() columns {sorted(cols)}"
        for c in cols:
            got, exp = float(values[c]), want[c][i]
            same = (
                math.isnan(got) and math.isnan(exp)
                if math.isnan(got) or math.isnan(exp)
                else math.isclose(got, exp, rel_tol=1e-9, abs_tol=1e-12)
            )
            if not same:
                return f"stepper {c} = {got!r} at bar {i}, signals() {exp!r}"
    return None
