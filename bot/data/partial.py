"""The day's bar so far: intraday bars of one session, aggregated up to a moment before the close.

Daily strategies that decide at e.g. 15:50 ET (`[service] daily_decision_offset_minutes`) read this
provisional bar as the day's bar; the completed daily bar replaces it once the session has closed.
Only bars that have ended by `at` count (no peeking at a bar still forming).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bot.data.calendar import session_bounds


@dataclass(frozen=True, slots=True)
class DaySoFar:
    open: float
    high: float
    low: float
    close: float
    volume: float
    bars: int  # intraday bars aggregated
    last_end: pd.Timestamp  # when the newest of them ended (UTC)


def day_so_far(
    intraday: pd.DataFrame, session: pd.Timestamp, at: pd.Timestamp, bar: pd.Timedelta
) -> DaySoFar | None:
    """Aggregate the bars of `session` (index: tz-aware bar starts) that ended by `at`; None if none."""
    if intraday.empty:
        return None
    open_ = session_bounds(session)[0]
    at = at.tz_convert("UTC") if at.tzinfo is not None else at.tz_localize("UTC")
    starts = intraday.index
    df = intraday[(starts >= open_) & (starts + bar <= at)]
    if df.empty:
        return None
    return DaySoFar(
        float(df["open"].iat[0]),
        float(df["high"].max()),
        float(df["low"].min()),
        float(df["close"].iat[-1]),
        float(df["volume"].sum()),
        len(df),
        (df.index[-1] + bar).tz_convert("UTC"),
    )


__all__ = ["DaySoFar", "day_so_far"]
