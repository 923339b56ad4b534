"""The sandbox's simulated time: an XNYS session calendar and a clock that runs at `speed` x wall time.

Alpaca's clock and calendar answer from the exchange calendar; the sandbox does the same from
exchange_calendars so holidays and 13:00 early closes match the real market.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import exchange_calendars as xcals
import numpy as np
import pandas as pd

NY = "America/New_York"


@dataclass(frozen=True, slots=True)
class Session:
    date: pd.Timestamp  # naive session date
    open: pd.Timestamp  # UTC
    close: pd.Timestamp  # UTC


class Calendar:
    """XNYS regular sessions between two dates, with O(log n) look-ups."""

    def __init__(self, start: pd.Timestamp, end: pd.Timestamp) -> None:
        first = max(pd.Timestamp(start).tz_localize(None).normalize(), pd.Timestamp("1980-01-01"))
        last = pd.Timestamp(end).tz_localize(None).normalize()
        cal = xcals.get_calendar("XNYS", start=first.strftime("%Y-%m-%d"), end=last.strftime("%Y-%m-%d"))
        sched = cal.schedule
        self.dates = pd.DatetimeIndex(sched.index)
        self.opens = pd.DatetimeIndex(sched["open"]).tz_convert("UTC")
        self.closes = pd.DatetimeIndex(sched["close"]).tz_convert("UTC")
        self._open_ns = self.opens.asi8
        self._close_ns = self.closes.asi8

    def __len__(self) -> int:
        return len(self.dates)

    def session(self, i: int) -> Session:
        return Session(self.dates[i], self.opens[i], self.closes[i])

    def index_on_or_after(self, ts: pd.Timestamp) -> int:
        """Index of the first session whose close is after `ts` (the current or next session)."""
        return int(np.searchsorted(self._close_ns, _ns(ts), side="right"))

    def is_open(self, ts: pd.Timestamp) -> bool:
        i = self.index_on_or_after(ts)
        return bool(i < len(self) and self._open_ns[i] <= _ns(ts) < self._close_ns[i])

    def current_or_next(self, ts: pd.Timestamp) -> Session | None:
        i = self.index_on_or_after(ts)
        return self.session(i) if i < len(self) else None

    def next_open(self, ts: pd.Timestamp) -> pd.Timestamp:
        """First session open strictly after `ts`."""
        i = int(np.searchsorted(self._open_ns, _ns(ts), side="right"))
        return self.opens[min(i, len(self) - 1)]

    def next_close(self, ts: pd.Timestamp) -> pd.Timestamp:
        """First session close strictly after `ts`."""
        i = int(np.searchsorted(self._close_ns, _ns(ts), side="right"))
        return self.closes[min(i, len(self) - 1)]

    def session_for_date(self, day: pd.Timestamp) -> Session | None:
        i = int(np.searchsorted(self.dates.asi8, pd.Timestamp(day).normalize().value))
        if i < len(self) and self.dates[i] == pd.Timestamp(day).normalize():
            return self.session(i)
        return None

    def sessions_between(self, start: pd.Timestamp, end: pd.Timestamp) -> list[Session]:
        lo = int(np.searchsorted(self.dates.asi8, pd.Timestamp(start).normalize().value))
        hi = int(np.searchsorted(self.dates.asi8, pd.Timestamp(end).normalize().value, side="right"))
        return [self.session(i) for i in range(lo, hi)]


def _ns(ts: pd.Timestamp) -> int:
    return pd.Timestamp(ts).value


class SimClock:
    """Simulated UTC time: `anchor_sim + (wall - anchor_wall) * speed`. Speed 0 freezes it (tests).

    `held` stands it still at its time until `release()` (`--hold-clock`: the market waits for a bot
    to be ready, so a slow start-up costs no market time); `set` moves it while held too."""

    def __init__(
        self, start: pd.Timestamp, speed: float = 1.0, wall=time.monotonic, held: bool = False
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed
        self.held = held
        self._wall = wall
        self.set(start)

    def set(self, ts: pd.Timestamp) -> None:
        self._anchor_sim = to_utc(ts)
        self._anchor_wall = self._wall()

    def now(self) -> pd.Timestamp:
        if self.held:
            return self._anchor_sim
        elapsed = (self._wall() - self._anchor_wall) * self.speed
        return self._anchor_sim + pd.Timedelta(seconds=elapsed)

    def hold(self) -> pd.Timestamp:
        """Stand still at the current time; returns it."""
        self.set(self.now())
        self.held = True
        return self._anchor_sim

    def release(self) -> pd.Timestamp:
        """Run on from where it stands (a no-op when running); returns the time it runs from."""
        self.set(self.now())
        self.held = False
        return self._anchor_sim

    def seconds_until(self, ts: pd.Timestamp) -> float:
        """Wall seconds until simulated `ts` (inf when frozen or held)."""
        gap = (to_utc(ts) - self.now()).total_seconds()
        if gap <= 0:
            return 0.0
        return gap / self.speed if self.speed > 0 and not self.held else float("inf")


def to_utc(ts: object) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def rfc3339(ts: pd.Timestamp | None, tz: str = "UTC") -> str | None:
    """Alpaca style: UTC as ...Z with microseconds when present; other zones with their offset."""
    if ts is None:
        return None
    t = to_utc(ts)
    if tz == "UTC":
        s = t.strftime("%Y-%m-%dT%H:%M:%S")
        if t.microsecond:
            s += f".{t.microsecond:06d}"
        return s + "Z"
    local = t.tz_convert(tz)
    s = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        s += f".{local.microsecond:06d}"
    off = local.strftime("%z")
    return s + off[:3] + ":" + off[3:]
