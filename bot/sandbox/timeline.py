"""The sandbox's event schedule: which bar or session event comes next, and when a day order expires.

Kept apart from the exchange so the order of time (bar open, bar close, session open, session close,
oldest first) is decided in one place and the handlers that react to it need not know the calendar.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bot.sandbox.market import TF_MINUTES, MarketData

# ties at one instant: a bar closes, then the session closes, then the next session and bar open
BAR_CLOSE, SESSION_CLOSE, SESSION_OPEN, BAR_OPEN = 0, 1, 2, 3


class Timeline:
    """Cursors into every symbol's bars and the calendar, plus `t`, the time of the event being handled."""

    def __init__(self, market: MarketData, start: pd.Timestamp) -> None:
        self.market = market
        self.t = start
        now = start.value
        self._open_ptr = {s: int(np.searchsorted(b.start, now, "right")) for s, b in market.bars.items()}
        self._close_ptr = {s: int(np.searchsorted(b.end, now, "right")) for s, b in market.bars.items()}
        cal = market.calendar
        self._sess_open = int(np.searchsorted(cal.opens.asi8, now, "right"))
        self._sess_close = int(np.searchsorted(cal.closes.asi8, now, "right"))

    def peek(self) -> tuple[int, int, str] | None:
        """(time in ns, kind, symbol) of the next event, or None when the data has run out."""
        best: tuple[int, int, str] | None = None
        for sym, sb in self.market.bars.items():
            i = self._open_ptr[sym]
            if i < len(sb):
                cand = (int(sb.start[i]), BAR_OPEN, sym)
                best = cand if best is None or cand < best else best
            j = self._close_ptr[sym]
            if j < len(sb):
                cand = (int(sb.end[j]), BAR_CLOSE, sym)
                best = cand if best is None or cand < best else best
        cal = self.market.calendar
        if self._sess_open < len(cal):
            cand = (int(cal.opens.asi8[self._sess_open]), SESSION_OPEN, "")
            best = cand if best is None or cand < best else best
        if self._sess_close < len(cal):
            cand = (int(cal.closes.asi8[self._sess_close]), SESSION_CLOSE, "")
            best = cand if best is None or cand < best else best
        return best

    def next_event_time(self) -> pd.Timestamp | None:
        ev = self.peek()
        return pd.Timestamp(ev[0], tz="UTC") if ev else None

    def due(self, until: pd.Timestamp) -> Iterator[tuple[int, str, int]]:
        """Yield (kind, symbol, bar index) for each event up to `until`, moving `t` to it first.

        Lazy on purpose: the caller handles one event before the next is looked up.
        """
        end = until.value
        while (ev := self.peek()) is not None and ev[0] <= end:
            t_ns, kind, sym = ev
            self.t = pd.Timestamp(t_ns, tz="UTC")
            if kind == BAR_OPEN:
                i = self._open_ptr[sym]
                self._open_ptr[sym] += 1
            elif kind == BAR_CLOSE:
                i = self._close_ptr[sym]
                self._close_ptr[sym] += 1
            elif kind == SESSION_OPEN:
                i = self._sess_open
                self._sess_open += 1
            else:
                i = self._sess_close
                self._sess_close += 1
            yield kind, sym, i


def order_expiry(market: MarketData, tif: str, after: pd.Timestamp) -> pd.Timestamp | None:
    """When an order placed (or activated) at `after` expires.

    Day orders live through the session of the first bar they can trade on; gtc for 90 days.
    """
    if tif != "day":
        return after + pd.Timedelta(days=90) if tif == "gtc" else None
    cal = market.calendar
    sess = cal.current_or_next(after)
    if sess is None:
        return None
    minutes = TF_MINUTES[market.timeframe]
    if after < sess.open:
        return sess.close
    if minutes is not None:
        step = pd.Timedelta(minutes=minutes)
        k = (after - sess.open) // step + 1
        if sess.open + k * step < sess.close:
            return sess.close
    nxt = cal.current_or_next(sess.close)
    return nxt.close if nxt is not None else sess.close
