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
import warnings
from functools import lru_cache

import exchange_calendars as xc
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
def _calendar(end: pd.Timestamp) -> xc.ExchangeCalendar:
    with warnings.catch_warnings():  # exchange_calendars 4.13 on pandas 3.1: a deprecation, not ours
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xc.get_calendar(EXCHANGE, start=_FIRST, end=end)


def calendar(upto: DateLike | None = None) -> xc.ExchangeCalendar:
    """The cached XNYS calendar covering 1960 to at least `upto` (building one takes ~0.1-0.3 s)."""
    want = _FIRST if upto is None else _naive_day(upto)
    for horizon in _HORIZONS:
        if want <= horizon:
            return _calendar(horizon)
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
    cal = calendar(e)
    s = max(s, cal.first_session)
    out = cal.sessions_in_range(s, e)
    return pd.DatetimeIndex(out, freq=None).as_unit("ns")


def is_session(day: DateLike) -> bool:
    d = _naive_day(day)
    return bool(calendar(d).is_session(d))


def session_bounds(session: DateLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(open, close) of a session in New York time; early closes end at 13:00."""
    d = _naive_day(session)
    cal = calendar(d)
    if not cal.is_session(d):
        raise ValueError(f"{d.date()} is not an XNYS session")
    o, c = cal.session_open_close(d)
    return o.tz_convert(TZ), c.tz_convert(TZ)


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
    sched = cal.schedule.loc[days]
    opens = pd.DatetimeIndex(sched["open"]).as_unit("ns").asi8
    closes = pd.DatetimeIndex(sched["close"]).as_unit("ns").asi8
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
    sched = calendar(days.max()).schedule.loc[days]
    return ((sched["close"] - sched["open"]) // pd.Timedelta(minutes=1)).to_numpy(dtype=np.int64)


def session_date(ts: pd.Timestamp) -> pd.Timestamp:
    """The session (naive date) a timestamp belongs to: daily labels as-is, intraday via New York time."""
    return _naive_day(ts)
