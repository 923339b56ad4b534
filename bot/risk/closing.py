"""Flat by close (`[service] flat_by_close`, `flat_by_close_minutes` N): nothing is held over a close.

A leveraged fund held overnight carries the gap risk the rule exists to avoid, so the same rule runs in
backtests and live. Its cut-off T is the session's close (13:00 on a half day, from the XNYS calendar)
minus N minutes. Live, the service flattens at T and plans no decision at or after it; here:
- `flat_bars`: the backtest's bar on which the position is closed, the last bar of the session whose
  end (start + bar length) is at or before T and which has a bar after it, so the close fills at that
  next bar's open, no later than T; when a session has no such bar, its first bar;
- `CloseGuard.blocked`: an entry decided on a bar ending after T (or on the flat bar) is refused, in
  both drivers, since it would be held over the close.
Daily bars have no time of day to close at: the rule needs intraday bars in a backtest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bot.data import calendar as xnys

_NS_MIN = 60_000_000_000


def cutoffs(days: pd.DatetimeIndex, minutes: int) -> np.ndarray:
    """T (UTC ns) for each session label in `days` (naive dates): its close minus `minutes`."""
    if len(days) == 0:
        return np.array([], np.int64)
    sched = xnys.calendar(days.max())
    return sched.closes[sched.positions(pd.DatetimeIndex(days))] - minutes * _NS_MIN


class CloseGuard:
    """Cut-offs of `minutes` before each close for bars of `timeframe`, looked up once per session."""

    def __init__(self, minutes: int, timeframe: str) -> None:
        self.minutes = minutes
        self.bar_ns = int(xnys.timeframe_delta(timeframe).value)
        self._cut: tuple[pd.Timestamp | None, int] = (None, 0)

    def cutoff(self, day: pd.Timestamp) -> int:
        if self._cut[0] != day:
            self._cut = (day, int(cutoffs(pd.DatetimeIndex([day]), self.minutes)[0]))
        return self._cut[1]

    def blocked(self, bar_start: pd.Timestamp) -> str | None:
        """Why an entry decided on the bar starting at `bar_start` would be held over the close, else None."""
        day = xnys.session_date(bar_start)
        t = self.cutoff(day)
        if bar_start.value + self.bar_ns <= t and not self._is_flat_bar(bar_start, t):
            return None
        at = pd.Timestamp(t, tz="UTC").tz_convert(xnys.TZ)
        return f"flat by close: no entry after {at:%H:%M} ET ({self.minutes} min before the close)"

    def _is_flat_bar(self, bar_start: pd.Timestamp, t: int) -> bool:
        """The last bar ending at or before T is where the position is closed: no entry on it either."""
        return bar_start.value + 2 * self.bar_ns > t


def flat_bars(index: pd.DatetimeIndex, timeframe: str, minutes: int) -> np.ndarray:
    """Per bar of an intraday `index` (tz-aware bar starts): True on the bar where the position is closed."""
    n = len(index)
    out = np.zeros(n, bool)
    if n == 0:
        return out
    ny = index.tz_convert(xnys.TZ).tz_localize(None)
    labels = ny.normalize()
    days = pd.DatetimeIndex(labels.unique())
    sess = days.get_indexer(labels)
    t = cutoffs(days, minutes)[sess]
    end = index.as_unit("ns").asi8 + int(xnys.timeframe_delta(timeframe).value)
    last = np.ones(n, bool)
    last[:-1] = sess[1:] != sess[:-1]  # the session's last bar: a close there fills next session
    ok = (end <= t) & ~last
    first = np.flatnonzero(np.r_[True, sess[1:] != sess[:-1]])
    for k, a in enumerate(first):
        b = first[k + 1] if k + 1 < len(first) else n
        cand = np.flatnonzero(ok[a:b])
        out[a + cand[-1] if len(cand) else a] = True
    return out
