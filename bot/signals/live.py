"""The live signal path: strategies evaluated one bar at a time, at a cost that does not grow with history.

A strategy with a `stepper()` (all the built-ins) decides each bar from its running state in O(1):
the stepper returns what the last row of `signals()` over the whole history so far would be, so
live decisions are the backtest's. A strategy without one is evaluated by `signals()` over a
bounded trailing window: a fixed-size ring of OHLCV arrays, one DataFrame over at most `window`
rows per bar. The window's length comes from the strategies' `memory` (see bot/signals/window.py), chosen
so that recursive indicators match the full-history values the backtest uses; a test checks the
decisions agree. The ring is kept either way (`frame()`, `revise()`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bot.core.config import Settings
from bot.signals.combine import combine
from bot.signals.regime import Regime, RegimeStepper, gates
from bot.signals.strategy import DIRECTION, REASON, Stepper, Strategy

_COLS = ("open", "high", "low", "close", "volume")
Row = tuple[int, str, dict[str, float]]  # one strategy's (direction, reason, indicator values)


@dataclass(frozen=True, slots=True)
class Decision:
    ts: pd.Timestamp
    direction: int | None  # None while warming up
    reason: str
    per_strategy: dict[str, Row]
    regime: Regime | None = None  # the regime gates' figures, when a side is gated


class TrailingSignals:
    def __init__(self, cfg: Settings, strategies: Sequence[Strategy], window: int) -> None:
        self.cfg = cfg
        self.strategies = list(strategies)
        self.names = []
        for s in self.strategies:
            self.names.append(s.name if s.name not in self.names else f"{s.name}#{len(self.names)}")
        self.window = int(window)
        self.warmup = max(s.warmup for s in self.strategies)
        self.weights = [sc.weight for sc in cfg.strategies]
        cap = 2 * self.window
        self._data = np.empty((len(_COLS), cap), dtype=float)
        self._ts = np.empty(cap, dtype="datetime64[ns]")
        self._ns = self._ts.view(np.int64)  # the same buffer, written as integers (Timestamp.value)
        self._tz = None
        self._n = 0  # bars held in the buffer
        self._start = 0
        self.count = 0  # bars seen since start
        # Steppers decide in O(1). Each has a twin one bar behind it, so that `revise` can redo the
        # newest bar from the state before it (a stepper remembers more than the window holds).
        self._steppers: list[Stepper | None] = [s.stepper() for s in self.strategies]
        self._behind: list[Stepper | None] = [
            s.stepper() if st is not None else None
            for s, st in zip(self.strategies, self._steppers, strict=True)
        ]
        self._windowed = [k for k, st in enumerate(self._steppers) if st is None]
        self._newest: tuple[float, float, float, float, float] | None = None  # not yet in the twins
        self._regime = RegimeStepper(cfg) if gates(cfg) else None
        self._figures: Regime | None = None

    def push(self, ts: pd.Timestamp, o: float, h: float, low: float, c: float, v: float) -> Decision:
        end = self._start + self._n
        if end == self._data.shape[1]:  # compact: keep the newest window-1 bars (amortised O(1))
            keep = min(self._n, self.window - 1)
            self._data[:, :keep] = self._data[:, end - keep : end]
            self._ts[:keep] = self._ts[end - keep : end]
            self._start, self._n, end = 0, keep, keep
        bar = _bar(o, h, low, c, v)
        self._data[:, end] = bar
        if ts.tzinfo is not None:
            self._tz = ts.tzinfo
        self._ns[end] = ts.value  # UTC nanoseconds when tz-aware, wall-clock ones when naive
        self._n += 1
        if self._n > self.window:
            self._start += 1
            self._n -= 1
        self.count += 1
        if self._newest is not None:
            for twin in self._behind:
                if twin is not None:
                    twin.update(*self._newest)
        self._newest = bar
        stepped = [st.update(*bar) if st is not None else None for st in self._steppers]
        if self._regime is not None:
            self._figures = self._regime.push(bar[3])
        return self._evaluate(ts, stepped)

    def revise(self, ts: pd.Timestamp, o: float, h: float, low: float, c: float, v: float) -> None:
        """Replace the newest bar (same label) with its final values, without deciding again: a daily
        bar decided on before the close (the day so far) is completed once the session has closed.
        Steppers are left as if the final bar had come instead: each is rebuilt from its twin one bar
        behind (a copy, once per revised bar) fed the final values."""
        if not self._n or self.last_ts() != ts:
            raise ValueError(f"revise({ts}): the newest bar is {self.last_ts()}")
        bar = _bar(o, h, low, c, v)
        self._data[:, self._start + self._n - 1] = bar
        self._newest = bar
        for k, twin in enumerate(self._behind):
            if twin is not None:
                s = self.strategies[k]
                self._steppers[k] = st = copy.deepcopy(twin, {id(s): s})  # shares the strategy itself
                st.update(*bar)
        if self._regime is not None:
            self._figures = self._regime.revise(bar[3])

    def last_ts(self) -> pd.Timestamp | None:
        if not self._n:
            return None
        t = pd.Timestamp(self._ts[self._start + self._n - 1])
        return t.tz_localize("UTC").tz_convert(self._tz) if self._tz is not None else t

    def frame(self) -> pd.DataFrame:
        """The trailing window as a DataFrame (one float block viewing the ring, not a copy)."""
        s, e = self._start, self._start + self._n
        idx = pd.DatetimeIndex(self._ts[s:e], name="timestamp")
        if self._tz is not None:
            idx = idx.tz_localize("UTC").tz_convert(self._tz)
        return pd.DataFrame(self._data[:, s:e].T, index=idx, columns=list(_COLS), copy=False)

    def _evaluate(self, ts: pd.Timestamp, stepped: list[Row | None]) -> Decision:
        if self.count <= self.warmup:
            return Decision(ts, None, "warm-up", {}, self._figures)
        if self._windowed:
            df = self.frame()
            for k in self._windowed:
                stepped[k] = _last_row(self.strategies[k].signals(df))
        per = dict(zip(self.names, stepped, strict=True))
        dirs = np.array([[d for d, _, _ in stepped]], dtype=np.int8)
        combined = int(combine(dirs, self.cfg.combine.mode, self.weights, self.cfg.combine.threshold)[0])
        reason = "; ".join(f"{n}: {r}" for n, (_, r, _) in per.items())
        return Decision(ts, combined, reason, per, self._figures)


def _bar(
    o: float, h: float, low: float, c: float, v: float | None
) -> tuple[float, float, float, float, float]:
    """A bar as plain floats (faster arithmetic in steppers than numpy scalars); no volume is NaN."""
    return float(o), float(h), float(low), float(c), float("nan") if v is None else float(v)


def _last_row(out: pd.DataFrame) -> Row:
    """A signals() frame's last row as (direction, reason, values), read cell by cell (`iat`):
    `iloc[-1]` would first build a row Series of mixed types."""
    cols = list(out.columns)
    d = int(out.iat[-1, cols.index(DIRECTION)])
    r = str(out.iat[-1, cols.index(REASON)])
    vals = {c: float(out.iat[-1, k]) for k, c in enumerate(cols) if c not in (DIRECTION, REASON)}
    return d, r, vals
