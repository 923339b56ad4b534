"""A backtest's bars as arrays, for the event-skipping driver (`bot/run/eventskip.py`) and
`Engine.advance`: what `Engine.step` would read bar by bar, laid out so that a stretch of quiet bars
is crossed in O(1) (the last close seen, the sessions begun, the equity at a given bar) and its
equity curve is filled in at the end with a few vectorised operations (`EquityLog.frame`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class Tape:
    def __init__(
        self,
        keys: np.ndarray,
        sessions: np.ndarray,
        ohlc: Mapping[str, np.ndarray],
        index: np.ndarray | None = None,
    ) -> None:
        """`keys`: each bar's time as int nanoseconds (what the driver passes `step`); `sessions`: the
        trading date of each bar as a day number, ascending; `ohlc[sym]`: the traded symbols' bars as
        (open, high, low, close) rows aligned to `keys`, NaN rows where a symbol has no bar; `index`:
        the signal symbol's rows likewise, when the engine follows it (`Engine.ix`)."""
        self.index = index
        n = len(keys)
        self.n = n
        self.keys = np.asarray(keys, np.int64)
        self.sessions = np.asarray(sessions, np.int64)
        self.ohlc = dict(ohlc)
        self.closes = {s: r[:, 3] for s, r in self.ohlc.items()}
        at = np.arange(n)
        # seen[sym][k]: the latest bar <= k on which sym has a bar (-1: none yet)
        self.seen: dict[str, np.ndarray] = {}
        for s, c in self.closes.items():
            last = np.where(np.isnan(c), -1, at)
            np.maximum.accumulate(last, out=last)
            self.seen[s] = last
        new = np.zeros(n, bool)
        new[1:] = self.sessions[1:] != self.sessions[:-1]
        self.new_session = new
        self.starts = np.cumsum(new)  # bars in 1..k that open a session
        first = np.where(new, at, 0)
        np.maximum.accumulate(first, out=first)
        self.first = first  # the first bar of bar k's session

    def close_at(self, symbol: str, k: int, since: int, before: float) -> float:
        """The last close of `symbol` seen by bar k, counting only bars from `since` on (`before`: the
        one seen until then)."""
        seen = self.seen.get(symbol)
        if seen is None:
            return before
        j = int(seen[k])
        return float(self.closes[symbol][j]) if j >= since else before

    def closes_over(
        self, symbol: str | None, bars: np.ndarray, since: np.ndarray, before: np.ndarray
    ) -> np.ndarray:
        """`close_at` for many bars at once (each with its own `since` and `before`)."""
        seen = self.seen.get(symbol) if symbol is not None else None
        if seen is None:
            return np.asarray(before, float)
        j = seen[bars]
        return np.where(j >= since, self.closes[symbol][j], before)  # type: ignore[index]
