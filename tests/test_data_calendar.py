"""XNYS calendar facts the gap checks and the synthetic model rely on."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bot.data import calendar as cal

NY = "America/New_York"


def test_independence_day_is_not_a_session_and_the_eve_closes_early() -> None:
    days = cal.sessions("2024-07-01", "2024-07-08")
    assert pd.Timestamp("2024-07-04") not in days
    assert list(days.strftime("%Y-%m-%d")) == [
        "2024-07-01",
        "2024-07-02",
        "2024-07-03",
        "2024-07-05",
        "2024-07-08",
    ]
    assert days.tz is None
    _, close = cal.session_bounds("2024-07-03")
    assert (close.hour, close.minute) == (13, 0)


def test_day_after_thanksgiving_is_a_half_day_of_42_five_minute_bars() -> None:
    open_, close = cal.session_bounds("2024-11-29")
    assert open_ == pd.Timestamp("2024-11-29 09:30", tz=NY)
    assert close == pd.Timestamp("2024-11-29 13:00", tz=NY)
    starts = cal.bar_starts("2024-11-29", "5m")
    assert len(starts) == (13 * 60 - (9 * 60 + 30)) // 5 == 42
    assert starts[0] == open_ and starts[-1] == pd.Timestamp("2024-11-29 12:55", tz=NY)
    assert len(cal.bar_starts("2024-11-29", "1m")) == 210


@pytest.mark.parametrize(("tf", "minutes"), [("1m", 1), ("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60)])
def test_full_day_bar_grid(tf: str, minutes: int) -> None:
    starts = cal.bar_starts("2024-11-26", tf)
    assert len(starts) == math.ceil(390 / minutes)
    assert starts[0] == pd.Timestamp("2024-11-26 09:30", tz=NY)
    assert (starts.to_series().diff().dropna() == pd.Timedelta(minutes=minutes)).all()
    assert starts[-1] < pd.Timestamp("2024-11-26 16:00", tz=NY)
    assert cal.timeframe_delta(tf) == pd.Timedelta(minutes=minutes)
    assert cal.bars_per_year(tf) == 252 * math.ceil(390 / minutes)


def test_hourly_bars_start_at_the_open_and_every_start_is_inside_regular_hours() -> None:
    assert [t.strftime("%H:%M") for t in cal.bar_starts("2024-11-26", "1h")] == [
        "09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30",
    ]  # fmt: skip
    assert len(cal.bar_starts("2024-11-29", "1h")) == 4  # 09:30 .. 12:30, the last one 30 minutes


@pytest.mark.parametrize(("before", "after"), [("2024-03-08", "2024-03-11"), ("2024-11-01", "2024-11-04")])
def test_dst_changes_keep_09_30_local_and_shift_utc_by_an_hour(before: str, after: str) -> None:
    o1, _ = cal.session_bounds(before)
    o2, _ = cal.session_bounds(after)
    assert (o1.hour, o1.minute) == (o2.hour, o2.minute) == (9, 30)
    assert abs(o1.tz_convert("UTC").hour - o2.tz_convert("UTC").hour) == 1
    assert len(cal.bar_starts(before, "5m")) == len(cal.bar_starts(after, "5m")) == 78


def test_daily_timeframe() -> None:
    assert cal.timeframe_delta("1d") == pd.Timedelta(days=1)
    assert cal.bars_per_year("1d") == 252.0
    with pytest.raises(ValueError, match="1d"):
        cal.bar_starts("2024-11-26", "1d")
    with pytest.raises(ValueError, match="unknown timeframe"):
        cal.timeframe_delta("2m")


def test_closures_and_non_sessions() -> None:
    days = cal.sessions("2001-09-07", "2001-09-18")
    assert [d.day for d in days] == [7, 10, 17, 18]  # 9/11 closure
    assert not cal.is_session("2024-07-04") and cal.is_session("2024-07-05")
    with pytest.raises(ValueError, match="not an XNYS session"):
        cal.session_bounds("2024-07-06")
    assert len(cal.sessions("2024-07-08", "2024-07-01")) == 0


def test_session_date_of_daily_labels_and_intraday_stamps() -> None:
    assert cal.session_date(pd.Timestamp("2024-01-02")) == pd.Timestamp("2024-01-02")
    assert cal.session_date(pd.Timestamp("2024-01-02 15:55", tz=NY)) == pd.Timestamp("2024-01-02")
    # 01:00 UTC on the 3rd is still the evening of the 2nd in New York
    assert cal.session_date(pd.Timestamp("2024-01-03 01:00", tz="UTC")) == pd.Timestamp("2024-01-02")
    assert cal.session_date(pd.Timestamp("2024-01-02 15:55", tz=NY)).tz is None


def test_calendar_object_is_cached() -> None:
    assert cal.calendar() is cal.calendar("2050-01-01")


def test_session_grid_matches_bar_starts_per_session() -> None:
    days = cal.sessions("2024-11-25", "2024-12-03")
    starts, sess, _ = cal.session_grid(days, "15m")
    expected = pd.DatetimeIndex(
        [t for d in days for t in cal.bar_starts(d, "15m").tz_convert("UTC")]
    ).as_unit("ns")
    assert (starts == expected.asi8).all()
    full, half = 390 // 15, 210 // 15  # 2024-11-28 is Thanksgiving, 11-29 closes at 13:00
    assert pd.Series(sess).value_counts().sort_index().tolist() == [full, full, full, half, full, full]


def test_sessions_match_the_real_daily_files(shared_data: Path) -> None:
    """SOURCES.md: the daily files have no missing and no extra trading days from 1997 on."""
    spy = pd.read_csv(shared_data / "SPY_1d.csv", usecols=["timestamp"])["timestamp"]
    dates = pd.DatetimeIndex(pd.to_datetime(spy)).as_unit("ns")
    dates = dates[dates >= "1997-01-01"]
    pd.testing.assert_index_equal(cal.sessions(dates[0], dates[-1]), dates, check_names=False)
