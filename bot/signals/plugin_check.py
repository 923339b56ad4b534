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

import pandas as pd

from bot.signals.strategy import DIRECTION, REASON, Strategy
from bot.signals.validate import (
    LOOKAHEAD_SAMPLES,
    SignalError,
    WarmupDrift,
    lookahead,
    run_signals,
    warmup_drift,
)


def check_plugin(
    name: str, extra_paths: Iterable[Path] = (), years: float = 6.0, notes: list[str] | None = None
) -> list[str]:
    """The problems found (empty: all passed). `notes` (when given) receives the warm-up drift: how
    far the indicators are from the full history's with only `warmup + 1` and `memory` bars."""
    from bot.data.synthetic import generate
    from bot.signals.plugins import PluginError, create
    from bot.signals.window import live_window

    try:
        strat = create(name, {}, tuple(extra_paths))
    except PluginError as exc:
        return [f"cannot build with default parameters: {exc}"]
    bars = generate(["SOXX"], "1d", "2015-01-02", years, seed=11)["SOXX"]
    problems: list[str] = []
    try:  # the backtest's own checks (`bot/signals/validate.py`): shape, values, NaN policy
        out = run_signals(name, strat, bars)
    except SignalError as exc:
        return [str(exc)]
    d = out[DIRECTION].to_numpy()
    w = strat.warmup
    if w < 0 or w >= len(bars):
        problems.append(f"warmup {w} is not a bar count within the data")
    elif (d[:w] != 0).any():
        problems.append("direction is not 0 during warm-up")
    if (d[w:] != 0).sum() == 0:
        problems.append("never leaves 0 on 6 years of synthetic bars (check the rule)")
    try:
        found = lookahead(name, strat, bars, out, samples=LOOKAHEAD_SAMPLES * 2)
    except SignalError as exc:  # the plugin fails on a shorter history
        return [*problems, str(exc)]
    if found is not None:
        problems.append(found.message(override=False))
        return problems  # the live-window check would only restate it
    if notes is not None:
        for h in sorted({w + 1, strat.memory}):
            drift: WarmupDrift | None = warmup_drift(name, strat, bars, out, h)
            if drift is not None:
                notes.append(drift.message())
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
