"""The equity curve of a run: a point per bar stepped and, from the event-skipping backtest driver,
spans of quiet bars kept compactly until `frame` fills them in from the tape with a few array
operations. Live runs keep none of it in memory (the journal has it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bot.data.tape import Tape

QuietSpan = tuple[int, int, float, "str | None", float, float]  # (a, f, cash, symbol, qty, last close)


@dataclass
class EquityLog:
    """The equity curve: a point per bar stepped and, from the event-skipping backtest driver, spans
    of quiet bars kept as (bars, cash, position) until `frame` fills them in from the tape at once."""

    ts: list[pd.Timestamp] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    position_value: list[float] = field(default_factory=list)
    quiet: list[tuple[int, QuietSpan]] = field(default_factory=list)  # (points before it, span)
    tape: Tape | None = None

    def add_quiet(
        self, tape: Tape, a: int, f: int, cash: float, symbol: str | None, qty: float, before: float
    ) -> None:
        """Bars a..f-1 of `tape`, marked as `step` would: cash + qty x the symbol's last close seen
        (`before` until the span has one of its own); flat (`symbol` None): `before` is the equity."""
        self.tape = tape
        self.quiet.append((len(self.ts), (a, f, cash, symbol, qty, before)))

    @staticmethod
    def quiet_values(
        tape: Tape, spans: list[QuietSpan]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys, equity, cash, position value) of every bar of `spans`, in order."""
        a = np.array([s[0] for s in spans], np.int64)
        m = np.array([s[1] for s in spans], np.int64) - a
        total = int(m.sum())
        rep = np.repeat(np.arange(len(spans)), m)
        bars = a[rep] + (np.arange(total) - (np.cumsum(m) - m)[rep])
        cash = np.array([s[2] for s in spans], float)[rep]
        qty = np.array([s[4] for s in spans], float)[rep]
        before = np.array([s[5] for s in spans], float)[rep]
        symbols = [s[3] for s in spans]
        equity = np.empty(total)
        pos_value = np.zeros(total)
        for sym in set(symbols):
            sel = np.array([x == sym for x in symbols])[rep]
            if sym is None:
                equity[sel] = before[sel]
                continue
            closes = tape.closes_over(sym, bars[sel], a[rep][sel], before[sel])
            pos_value[sel] = qty[sel] * closes
            equity[sel] = cash[sel] + pos_value[sel]
        return tape.keys[bars], equity, cash, pos_value

    def frame(self, tz: Any = None) -> pd.DataFrame:
        if self.quiet:
            keys, cols = self._with_quiet()
            idx = pd.DatetimeIndex(keys.view("datetime64[ns]"), name="timestamp")
            if tz is not None:
                idx = idx.tz_localize("UTC").tz_convert(tz)
            return pd.DataFrame(cols, index=idx)
        if self.ts and isinstance(self.ts[0], int):
            stamps = np.fromiter(self.ts, np.int64, len(self.ts)).view("datetime64[ns]")
            idx = pd.DatetimeIndex(stamps, name="timestamp")
            if tz is not None:
                idx = idx.tz_localize("UTC").tz_convert(tz)
        else:
            idx = pd.DatetimeIndex(self.ts, name="timestamp")
        cols = {"equity": self.equity, "cash": self.cash, "position_value": self.position_value}
        if self.ts:  # float arrays first: pandas infers lists ~6x slower
            return pd.DataFrame({k: np.fromiter(v, float, len(v)) for k, v in cols.items()}, index=idx)
        return pd.DataFrame(cols, index=idx)

    def _with_quiet(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The points (int keys) and the quiet spans merged in time order."""
        assert self.tape is not None
        n_points = len(self.ts)
        at = np.array([q[0] for q in self.quiet], np.int64)
        spans = [q[1] for q in self.quiet]
        keys, equity, cash, pos_value = self.quiet_values(self.tape, spans)
        ends = np.cumsum([f - a for a, f, *_ in spans])
        total = n_points + int(ends[-1])
        points = np.arange(n_points)
        slots = points + np.concatenate(([0], ends))[np.searchsorted(at, points, side="right")]
        quiet = np.ones(total, bool)
        quiet[slots] = False

        def merge(values: list[Any], spans_values: np.ndarray, dtype: Any) -> np.ndarray:
            out = np.empty(total, dtype)
            out[slots] = np.fromiter(values, dtype, n_points)
            out[quiet] = spans_values
            return out

        cols = {
            "equity": merge(self.equity, equity, float),
            "cash": merge(self.cash, cash, float),
            "position_value": merge(self.position_value, pos_value, float),
        }
        return merge(self.ts, keys, np.int64), cols
