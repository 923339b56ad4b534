"""The live signal path: strategies evaluated on a bounded trailing window, one bar at a time.

The window is a fixed-size ring of OHLCV arrays, so the per-bar cost does not grow with history:
each new bar costs one DataFrame over at most `window` rows and one `signals()` call per strategy.
Its length comes from the strategies' `memory` (see bot/window.py), chosen so that recursive
indicators match the full-history values the backtest uses; a test checks the decisions agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bot.combine import combine
from bot.config import Settings
from bot.strategy import DIRECTION, REASON, Strategy

_COLS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Decision:
    ts: pd.Timestamp
    direction: int | None  # None while warming up
    reason: str
    per_strategy: dict[str, tuple[int, str, dict[str, float]]]


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
        self._tz = None
        self._n = 0  # bars held in the buffer
        self._start = 0
        self.count = 0  # bars seen since start

    def push(self, ts: pd.Timestamp, o: float, h: float, low: float, c: float, v: float) -> Decision:
        end = self._start + self._n
        if end == self._data.shape[1]:  # compact: keep the newest window-1 bars (amortised O(1))
            keep = min(self._n, self.window - 1)
            self._data[:, :keep] = self._data[:, end - keep : end]
            self._ts[:keep] = self._ts[end - keep : end]
            self._start, self._n, end = 0, keep, keep
        self._data[:, end] = (o, h, low, c, v)
        if ts.tzinfo is not None:
            self._tz = ts.tzinfo
            self._ts[end] = ts.tz_convert("UTC").tz_localize(None).to_datetime64()
        else:
            self._ts[end] = ts.to_datetime64()
        self._n += 1
        if self._n > self.window:
            self._start += 1
            self._n -= 1
        self.count += 1
        return self._evaluate(ts)

    def revise(self, ts: pd.Timestamp, o: float, h: float, low: float, c: float, v: float) -> None:
        """Replace the newest bar (same label) with its final values, without deciding again: a daily
        bar decided on before the close (the day so far) is completed once the session has closed."""
        if not self._n or self.last_ts() != ts:
            raise ValueError(f"revise({ts}): the newest bar is {self.last_ts()}")
        self._data[:, self._start + self._n - 1] = (o, h, low, c, v)

    def last_ts(self) -> pd.Timestamp | None:
        if not self._n:
            return None
        t = pd.Timestamp(self._ts[self._start + self._n - 1])
        return t.tz_localize("UTC").tz_convert(self._tz) if self._tz is not None else t

    def frame(self) -> pd.DataFrame:
        s, e = self._start, self._start + self._n
        idx = pd.DatetimeIndex(self._ts[s:e], name="timestamp")
        if self._tz is not None:
            idx = idx.tz_localize("UTC").tz_convert(self._tz)
        d = self._data
        return pd.DataFrame({c: d[k, s:e] for k, c in enumerate(_COLS)}, index=idx, copy=False)

    def _evaluate(self, ts: pd.Timestamp) -> Decision:
        if self.count <= self.warmup:
            return Decision(ts, None, "warm-up", {})
        df = self.frame()
        per: dict[str, tuple[int, str, dict[str, float]]] = {}
        dirs = np.empty((1, len(self.strategies)), dtype=np.int8)
        for k, (name, s) in enumerate(zip(self.names, self.strategies, strict=True)):
            out = s.signals(df)
            last = out.iloc[-1]
            d = int(last[DIRECTION])
            dirs[0, k] = d
            vals = {c: float(last[c]) for c in out.columns if c not in (DIRECTION, REASON)}
            per[name] = (d, str(last[REASON]), vals)
        combined = int(combine(dirs, self.cfg.combine.mode, self.weights, self.cfg.combine.threshold)[0])
        reason = "; ".join(f"{n}: {r}" for n, (_, r, _) in per.items())
        return Decision(ts, combined, reason, per)
