"""Time for the live driver: the broker's clock (`GET /v2/clock`, extrapolated at the rate it is seen
to run, so `soxbot sandbox --speed 1000` simply runs 1000x faster) and the bar arithmetic on the XNYS
calendar.

soxbot's sandbox says its speed, and whether its clock is held, in a header (bot.core.sandbox_clock):
then nothing is measured, the clock is not extrapolated while it stands still, and `release()` starts
it once the bot is ready. Against Alpaca (no header) the rate is measured and nothing is released.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd

from bot.broker.alpaca import error_kind
from bot.core.sandbox_clock import SandboxLink
from bot.data.alpaca_feed import bar_end
from bot.data.calendar import TZ, bar_starts, is_intraday, session_bounds, sessions
from bot.data.errors import DataError


# -- time ------------------------------------------------------------------------------------------------
class Clock(Protocol):
    def now(self) -> pd.Timestamp: ...  # tz-aware UTC

    def wall_seconds(self, span: pd.Timedelta) -> float: ...  # wall time that `span` of clock time takes


class BrokerClock:
    """The broker's time (`GET /v2/clock`), extrapolated between queries at the rate it is seen to run."""

    def __init__(
        self, get_clock: Callable[[], dict[str, Any]], resync: float = 5.0, sandbox: SandboxLink | None = None
    ) -> None:
        self._get = get_clock
        self.resync = resync
        self.sandbox = sandbox
        self.rate = 1.0  # clock seconds per wall second while it runs
        self._pace = 1.0  # ... right now: 0 while the sandbox's clock stands still
        self._sim: pd.Timestamp | None = None
        self._wall = 0.0
        self._samples = 0

    @classmethod
    def of(cls, client: Any, resync: float = 5.0) -> BrokerClock:
        """The clock of an alpaca-py TradingClient, listening for soxbot's sandbox's clock header."""
        return cls(client.get_clock, resync, SandboxLink(client))

    @property
    def told(self) -> bool:
        """The broker said how its clock runs (soxbot's sandbox): nothing to measure."""
        return self.sandbox is not None and self.sandbox.note is not None

    @property
    def held(self) -> bool:
        """soxbot's sandbox holds its clock until this bot is ready (`release`)."""
        return self.sandbox is not None and self.sandbox.note is not None and self.sandbox.note.held

    def _fetch(self) -> dict[str, Any]:
        for wait in (0.2, 0.5, 1.0, 2.0, 4.0, 0.0):
            try:
                return self._get()
            except Exception as exc:
                if error_kind(exc) != "ambiguous" or not wait:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    def sync(self) -> pd.Timestamp:
        c = self._fetch()
        t = pd.Timestamp(c["timestamp"]).tz_convert("UTC")
        w = time.monotonic()
        note = self.sandbox.note if self.sandbox is not None else None
        if note is not None:  # told by the sandbox: exact, and still while held or frozen
            if note.speed > 0:
                self.rate = note.speed
            self._pace = 0.0 if note.held else note.speed
        else:
            if self._sim is not None and w - self._wall > 0.05:
                r = (t - self._sim).total_seconds() / (w - self._wall)
                if r > 0:
                    self.rate = r if self._samples == 0 else 0.5 * self.rate + 0.5 * r
                    self._samples += 1
            self._pace = self.rate
        self._sim, self._wall = t, w
        return t

    def calibrate(self, seconds: float = 0.3) -> None:
        self.sync()
        if self.told:
            return
        time.sleep(seconds)
        self.sync()

    def release(self) -> pd.Timestamp:
        """The bot is ready: start the sandbox's clock if it holds it (nothing is ever sent to Alpaca).
        Returns the broker's time the clock runs on from."""
        t = self.sync()  # the latest word on whether it is held
        if not self.held or self.sandbox is None:
            return t
        at = self.sandbox.release()
        if at is None:
            return self.sync()
        note = self.sandbox.note  # from the release's answer
        self._sim, self._wall = pd.Timestamp(at).tz_convert("UTC"), time.monotonic()
        self._pace = note.speed if note is not None and not note.held else 0.0
        return self._sim

    def now(self) -> pd.Timestamp:
        if self._sim is None or time.monotonic() - self._wall >= self.resync:
            self.sync()
        assert self._sim is not None
        return self._sim + pd.Timedelta(seconds=(time.monotonic() - self._wall) * self._pace)

    def wall_seconds(self, span: pd.Timedelta) -> float:
        return max(0.0, span.total_seconds() / max(self.rate, 1e-9))


# -- the bar grid ----------------------------------------------------------------------------------------
def next_bar(after: pd.Timestamp, timeframe: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(label, end UTC) of the first bar on the XNYS grid that ends after `after` (UTC)."""
    day = after.tz_convert(TZ).tz_localize(None).normalize()
    for s in sessions(day, day + pd.Timedelta(days=14)):
        if not is_intraday(timeframe):
            close = session_bounds(s)[1].tz_convert("UTC")
            if close > after:
                return s, close
            continue
        for start in bar_starts(s, timeframe):
            end = bar_end(start, timeframe)
            if end > after:
                return start, end
    raise DataError(f"no XNYS session within two weeks after {after}")


def missing_between(prev: pd.Timestamp, ts: pd.Timestamp, timeframe: str) -> int:
    """Bars expected on the grid strictly between two bar labels."""
    if not is_intraday(timeframe):
        return max(0, len(sessions(prev, ts)) - 2)
    d0 = prev.tz_convert(TZ).tz_localize(None).normalize()
    d1 = ts.tz_convert(TZ).tz_localize(None).normalize()
    n = 0
    for s in sessions(d0, d1):
        starts = bar_starts(s, timeframe)
        n += int(((starts > prev) & (starts < ts)).sum())
    return n


def label_str(ts: pd.Timestamp) -> str:
    return str(ts.date()) if ts.tzinfo is None and ts == ts.normalize() else str(ts)


def utc_label(ts: pd.Timestamp) -> pd.Timestamp:
    return (ts.tz_localize(TZ) if ts.tzinfo is None else ts).tz_convert("UTC")
