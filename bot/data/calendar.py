"""The NYSE (XNYS) trading calendar: sessions, regular hours and the intraday bar grid.

Everything that asks "should there be a bar here?" (gap checks, the synthetic model, bar counts for
annualising) goes through this module, so holidays, early closes and DST are handled once.

Conventions: session labels are naive midnight timestamps (as in the daily files); intraday
timestamps are tz-aware America/New_York bar *starts*. Intraday bars are anchored at the session
open, so "1h" bars start 09:30, 10:30, ... 15:30 (the last one is 30 minutes long) and every bar
start lies inside regular hours.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TZ = "America/New_York"
EXCHANGE = "XNYS"
_FIRST = pd.Timestamp("1960-01-01")
_HORIZONS = (pd.Timestamp("2100-12-31"), pd.Timestamp("2260-12-31"))

_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}
TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "1d")
REGULAR_MINUTES = 390  # 09:30-16:00
TRADING_DAYS = 252

DateLike = dt.date | str | pd.Timestamp


@lru_cache(maxsize=len(_HORIZONS))
def _calendar(end: pd.Timestamp) -> Any:
    import exchange_calendars as xc  # ~60 ms to import: only when a schedule is built

    with warnings.catch_warnings():  # exchange_calendars 4.13 on pandas 3.1: a deprecation, not ours
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xc.get_calendar(EXCHANGE, start=_FIRST, end=end)


@dataclass(frozen=True)
class Schedule:
    """The XNYS sessions as plain arrays: naive midnight labels, opens and closes (UTC), all int64 ns.

    Building the exchange_calendars calendar takes ~0.25 s, a large part of a short `soxbot` process,
    so the arrays are built once and kept in a cache file (`cache_dir()`), keyed by the
    exchange_calendars version and the horizon; a process after the first reads them in ~1 ms."""

    days: np.ndarray
    opens: np.ndarray
    closes: np.ndarray

    @property
    def first_session(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.days[0]))

    def positions(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The row of each session label; KeyError naming the first that is not a session."""
        keys = pd.DatetimeIndex(days).as_unit("ns").asi8
        pos = np.searchsorted(self.days, keys)
        ok = pos < len(self.days)
        ok[ok] = self.days[pos[ok]] == keys[ok]
        if not ok.all():
            raise KeyError(f"{pd.Timestamp(int(keys[np.flatnonzero(~ok)[0]])).date()} is not an XNYS session")
        return pos

    def is_session(self, day: pd.Timestamp) -> bool:
        i = int(np.searchsorted(self.days, day.value))
        return i < len(self.days) and int(self.days[i]) == day.value


def cache_dir() -> Path:
    """Where the built calendar is kept: $SOXBOT_CACHE_DIR, else $XDG_CACHE_HOME/soxbot or ~/.cache/soxbot."""
    env = os.environ.get("SOXBOT_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soxbot"


def _built(end: pd.Timestamp) -> Schedule:
    cal = _calendar(end)
    sched = cal.schedule
    days = pd.DatetimeIndex(sched.index).as_unit("ns").asi8
    opens = pd.DatetimeIndex(sched["open"]).as_unit("ns").asi8
    closes = pd.DatetimeIndex(sched["close"]).as_unit("ns").asi8
    return Schedule(days.copy(), opens.copy(), closes.copy())


@lru_cache(maxsize=len(_HORIZONS))
def _schedule(end: pd.Timestamp) -> Schedule:
    from importlib.metadata import version

    try:
        key = f"{EXCHANGE}-{_FIRST.date()}-{end.date()}-xc{version('exchange_calendars')}.npz"
    except Exception:  # no metadata (a vendored copy): build every time
        return _built(end)
    path = cache_dir() / key
    try:
        with np.load(path) as z:
            return Schedule(z["days"], z["opens"], z["closes"])
    except (OSError, KeyError, ValueError):
        pass
    sched = _built(end)
    try:  # written whole then renamed: a process reading at the same time sees all of it or none
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, days=sched.days, opens=sched.opens, closes=sched.closes)
        os.replace(tmp, path)
    except OSError:  # a read-only home: fine, built again next time
        pass
    return sched


def calendar(upto: DateLike | None = None) -> Schedule:
    """The XNYS schedule covering 1960 to at least `upto` (cached in memory and on disk)."""
    want = _FIRST if upto is None else _naive_day(upto)
    for horizon in _HORIZONS:
        if want <= horizon:
            return _schedule(horizon)
    raise ValueError(f"dates after {_HORIZONS[-1].date()} are not supported by the calendar (got {upto})")


def _naive_day(d: DateLike) -> pd.Timestamp:
    ts = pd.Timestamp(d)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(TZ).tz_localize(None)
    return ts.normalize()


def _check_tf(timeframe: str) -> None:
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}")


def is_intraday(timeframe: str) -> bool:
    _check_tf(timeframe)
    return timeframe != "1d"


def sessions(start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    """Session dates from `start` to `end` inclusive, as naive midnight timestamps."""
    s, e = _naive_day(start), _naive_day(end)
    if e < s:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    days = calendar(e).days
    lo, hi = (
        np.searchsorted(days, s.as_unit("ns").value, "left"),
        np.searchsorted(days, e.as_unit("ns").value, "right"),
    )
    return pd.DatetimeIndex(days[lo:hi].view("datetime64[ns]"))


def is_session(day: DateLike) -> bool:
    d = _naive_day(day)
    return calendar(d).is_session(d.as_unit("ns"))


def session_bounds(session: DateLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(open, close) of a session in New York time; early closes end at 13:00."""
    d = _naive_day(session).as_unit("ns")
    cal = calendar(d)
    if not cal.is_session(d):
        raise ValueError(f"{d.date()} is not an XNYS session")
    i = int(np.searchsorted(cal.days, d.value))
    o, c = (pd.Timestamp(int(x[i]), tz="UTC").tz_convert(TZ) for x in (cal.opens, cal.closes))
    return o, c


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    _check_tf(timeframe)
    return pd.Timedelta(days=1) if timeframe == "1d" else pd.Timedelta(minutes=_MINUTES[timeframe])


def timeframe_minutes(timeframe: str) -> int:
    """Minutes per intraday bar (raises for "1d")."""
    if not is_intraday(timeframe):
        raise ValueError("timeframe '1d' has no intraday bars")
    return _MINUTES[timeframe]


def bars_per_session(timeframe: str, minutes: int = REGULAR_MINUTES) -> int:
    """Bars in a session of `minutes` regular minutes (a trailing partial bar counts)."""
    if not is_intraday(timeframe):
        return 1
    return -(-minutes // _MINUTES[timeframe])


def bars_per_year(timeframe: str) -> float:
    """Bars in a year of full sessions, to annualise per-bar statistics."""
    return float(TRADING_DAYS * bars_per_session(timeframe))


def bar_starts(session: DateLike, timeframe: str) -> pd.DatetimeIndex:
    """Expected bar starts (New York time) of one session, anchored at the open."""
    step = timeframe_minutes(timeframe)
    o, c = session_bounds(session)
    n = bars_per_session(timeframe, int((c - o) / pd.Timedelta(minutes=1)))
    return pd.DatetimeIndex(o + pd.to_timedelta(np.arange(n) * step, unit="min")).as_unit("ns")


def session_grid(days: pd.DatetimeIndex, timeframe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised bar grid for many sessions: (bar starts as UTC int64 ns, session index, minute offset).

    Used by the gap check and the synthetic model, where a per-session Python loop would be slow.
    """
    step = timeframe_minutes(timeframe)
    if len(days) == 0:
        empty = np.array([], dtype=np.int64)
        return empty, empty, empty
    cal = calendar(days.max())
    pos = cal.positions(days)
    opens, closes = cal.opens[pos], cal.closes[pos]
    minutes = (closes - opens) // 60_000_000_000
    counts = -(-minutes // step)
    sess_idx = np.repeat(np.arange(len(days)), counts)
    first = np.cumsum(counts) - counts
    k = np.arange(counts.sum()) - np.repeat(first, counts)
    offs = k * step
    starts = opens[sess_idx] + offs * 60_000_000_000
    return starts, sess_idx, offs


def session_minutes(days: pd.DatetimeIndex) -> np.ndarray:
    """Regular minutes of each session (390, or 210 on early closes)."""
    if len(days) == 0:
        return np.array([], dtype=np.int64)
    cal = calendar(days.max())
    pos = cal.positions(days)
    return (cal.closes[pos] - cal.opens[pos]) // 60_000_000_000


def session_date(ts: pd.Timestamp) -> pd.Timestamp:
    """The session (naive date) a timestamp belongs to: daily labels as-is, intraday via New York time."""
    return _naive_day(ts)
