"""Checks on what a strategy plugin returns, run by every backtest and by `soxbot test-strategy`.

A backtest must not print numbers a plugin could not have known. Three checks:

- **Output shape and values** (every run, ~0.1 ms): a DataFrame on exactly the bars' index, with a
  `direction` column whose values are -1, 0 or +1 and a `reason` column. NaN policy: a NaN
  *direction* is an error (a strategy that does not know yet says 0; `finalize` turns NaN into 0
  for you); NaN *indicator* values are allowed (not known yet) and are journaled and plotted as gaps.
- **Look-ahead** (before each backtest, `--no-lookahead-check` skips it): the signals recomputed on
  the history truncated at sampled bars must equal the first rows of the full run, direction and
  every indicator column (1e-9 relative). A value that changes when later bars are removed was
  computed from them.
- **Warm-up (recursive) drift**: at sampled bars, the signals recomputed from only `warmup + 1` and
  from `memory` bars of history, against the full history: how far the indicators drift and whether
  the direction changes. Recursive indicators (EMA, Wilder RSI) never quite forget their seed, so
  this is reported, not fatal; a changed direction with `memory` bars means the declared memory is
  too short for the live window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bot.signals.strategy import DIRECTION, REASON, Strategy

REL_TOL = 1e-9
LOOKAHEAD_SAMPLES = 8


class SignalError(Exception):
    """A plugin's output the engine cannot trust: names the plugin, the bar and the fix."""


def _time(index: pd.Index, i: int) -> str:
    t = index[i]
    return t.isoformat() if hasattr(t, "isoformat") else str(t)


def _bar(index: pd.Index, i: int) -> str:
    return f"bar {i} ({_time(index, i)})"


def run_signals(name: str, strategy: Strategy, bars: pd.DataFrame) -> pd.DataFrame:
    """`strategy.signals(bars)`, its output checked: any exception or bad shape is a SignalError."""
    try:
        out = strategy.signals(bars)
    except Exception as exc:  # a plugin's own bug: one message, not the plugin's traceback
        raise SignalError(
            f"strategy {name!r}: signals() raised {type(exc).__name__}: {exc}. "
            f"Fix: the plugin's code; `soxbot test-strategy {strategy.name}` runs it on synthetic bars."
        ) from None
    check_output(name, bars, out)
    return out


def check_output(name: str, bars: pd.DataFrame, out: object) -> None:
    """Raise SignalError unless `out` is a frame on `bars.index` with directions in {-1, 0, +1}."""
    fix = "Fix: return finalize(bars.index, direction, reason, self.warmup, ...) from signals()."
    if not isinstance(out, pd.DataFrame):
        got = type(out).__name__
        raise SignalError(f"strategy {name!r}: signals() returned {got}, not a DataFrame. {fix}")
    idx = bars.index
    if len(out) != len(idx):
        raise SignalError(
            f"strategy {name!r}: signals() returned {len(out)} rows for {len(idx)} bars "
            f"(one row per bar, on the bars' index). {fix}"
        )
    if not out.index.equals(idx):
        i = int(np.flatnonzero(out.index != idx)[0])
        raise SignalError(
            f"strategy {name!r}: output index differs from the bars' at {_bar(idx, i)}: "
            f"{out.index[i]!r}. {fix}"
        )
    for col in (DIRECTION, REASON):
        if col not in out.columns:
            raise SignalError(f"strategy {name!r}: output has no {col!r} column. {fix}")
    d = out[DIRECTION].to_numpy()
    if d.dtype.kind in "iu":
        if len(d) and (d.min() < -1 or d.max() > 1):
            i = int(np.flatnonzero((d < -1) | (d > 1))[0])
            raise SignalError(
                f"strategy {name!r}: direction {d[i]} at {_bar(idx, i)}; directions must be -1, 0 or +1. "
                + fix
            )
        return
    try:
        x = d.astype(float)
    except (TypeError, ValueError):
        raise SignalError(f"strategy {name!r}: direction is not numeric ({d.dtype}). {fix}") from None
    nan = np.isnan(x)
    if nan.any():
        i = int(np.flatnonzero(nan)[0])
        raise SignalError(
            f"strategy {name!r}: direction is NaN at {_bar(idx, i)}; a strategy that does not know "
            f"says 0. {fix}"
        )
    bad = ~np.isin(x, (-1.0, 0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SignalError(
            f"strategy {name!r}: direction {x[i]:g} at {_bar(idx, i)}; directions must be -1, 0 or +1. {fix}"
        )


def _numeric(out: pd.DataFrame) -> list[str]:
    return [c for c in out.columns if c != REASON and out[c].dtype.kind in "biuf"]


def _first_diff(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first position where two float columns differ (NaN equals NaN; 1e-9 relative)."""
    a, b = a.astype(float, copy=False), b.astype(float, copy=False)
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= REL_TOL * np.maximum(np.abs(a), np.abs(b)) + 1e-12
    bad = ~(close | both_nan)
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


@dataclass(frozen=True)
class LookAhead:
    """Where a truncated history changed an earlier row: the bar, the column, the two values."""

    strategy: str
    bar: int
    time: str
    column: str
    truncated_at: str
    full: float
    truncated: float

    def message(self, override: bool = True) -> str:
        tail = "; --no-lookahead-check overrides." if override else "."
        return (
            f"look-ahead in strategy {self.strategy!r}: {self.column} at {self.time} (bar {self.bar}) is "
            f"{self.full:g} on the full history but {self.truncated:g} when the history ends at "
            f"{self.truncated_at}: the signal uses later bars. Fix: use only bars up to t (no "
            f"shift(-n), centred windows or whole-series statistics){tail}"
        )


def sample_bars(n: int, start: int, k: int) -> list[int]:
    """Up to `k` truncation points spread over [start, n-2], always including n-2 (deterministic)."""
    lo, hi = max(start, 1), n - 2
    if hi < lo:
        return []
    return sorted({round(x) for x in np.linspace(lo, hi, min(k, hi - lo + 1))})


def lookahead(
    name: str, strategy: Strategy, bars: pd.DataFrame, out: pd.DataFrame, samples: int = LOOKAHEAD_SAMPLES
) -> LookAhead | None:
    """The first look-ahead found by recomputing the signals on `bars` truncated at sampled bars,
    or None. `out`: the signals on all of `bars` (already checked)."""
    cols = [DIRECTION, *(c for c in _numeric(out) if c != DIRECTION)]
    full = {c: out[c].to_numpy() for c in cols}
    for k in sample_bars(len(bars), strategy.warmup, samples):
        head = run_signals(name, strategy, bars.iloc[: k + 1])
        for c in cols:
            at = _time(bars.index, k)
            if c not in head.columns:
                return LookAhead(name, k, at, c, at, math.nan, math.nan)
            j = _first_diff(full[c][: k + 1], head[c].to_numpy())
            if j is not None:
                f, t = float(full[c][j]), float(head[c].to_numpy()[j])
                return LookAhead(name, j, _time(bars.index, j), c, at, f, t)
    return None


@dataclass(frozen=True)
class WarmupDrift:
    """Signals from a short history against the full one at sampled bars."""

    strategy: str
    history: int  # bars of history used (warmup + 1, or memory)
    samples: int
    max_drift: float  # the largest relative indicator difference seen
    column: str  # where it was largest
    direction_changes: int  # sampled bars whose direction differed

    what: str = "history"  # "warmup + 1" or "memory"

    def message(self) -> str:
        drift = "no drift"
        if self.column:
            drift = f"indicators drift up to {self.max_drift:.2g} relative ({self.column})"
        verdict = (
            f"direction differs at {self.direction_changes} of {self.samples} sampled bars: "
            f"{self.what} is not enough history to decide as the full history does"
            if self.direction_changes
            else f"same direction at all {self.samples} sampled bars"
        )
        return f"strategy {self.strategy!r} from {self.history} bars ({self.what}): {drift}; {verdict}"


def warmup_drift(
    name: str, strategy: Strategy, bars: pd.DataFrame, out: pd.DataFrame, history: int, samples: int = 4
) -> WarmupDrift | None:
    """Signals computed from only `history` bars ending at sampled bars, against `out` there."""
    n = len(bars)
    points = sample_bars(n, 2 * history, samples)
    if history < 1 or not points:
        return None
    cols = [c for c in _numeric(out) if c != DIRECTION]
    worst, where, changes = 0.0, "", 0
    for k in points:
        head = run_signals(name, strategy, bars.iloc[k - history + 1 : k + 1])
        if head[DIRECTION].iat[-1] != out[DIRECTION].iat[k]:
            changes += 1
        for c in cols:
            a, b = float(out[c].iat[k]), float(head[c].iat[-1]) if c in head else math.nan
            if math.isnan(a) and math.isnan(b):
                continue
            rel = abs(a - b) / max(abs(a), abs(b), 1e-12) if not (math.isnan(a) or math.isnan(b)) else 1.0
            if rel > worst:
                worst, where = rel, c
    what = "history"
    if history == strategy.warmup + 1:
        what = "warmup + 1"
    elif history == strategy.memory:
        what = "memory"
    return WarmupDrift(name, history, len(points), worst, where, changes, what)
