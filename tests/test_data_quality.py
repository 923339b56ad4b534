"""Every bad-bar kind, fed in on hand-built frames, against the rule stated in bot/data/quality.py."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bot.data import calendar as cal
from bot.data.csv_feed import load_csv
from bot.data.quality import KINDS, REJECTED, check_bar, clean_bars

NY = "America/New_York"


def daily(n: int = 10, start: str = "2024-01-02") -> pd.DataFrame:
    """n clean daily bars on consecutive XNYS sessions, prices distinct per row."""
    days = cal.sessions(start, pd.Timestamp(start) + pd.Timedelta(days=3 * n))[:n]
    base = 100.0 + np.arange(n)
    return pd.DataFrame(
        {"open": base, "high": base + 2, "low": base - 2, "close": base + 1, "volume": 1000.0 + np.arange(n)},
        index=pd.DatetimeIndex(days, name="timestamp"),
    )


def intraday(session: str = "2024-11-26", tf: str = "5m") -> pd.DataFrame:
    idx = cal.bar_starts(session, tf)
    base = 50.0 + np.arange(len(idx)) / 10
    return pd.DataFrame(
        {"open": base, "high": base + 1, "low": base - 1, "close": base + 0.5, "volume": 10.0},
        index=pd.DatetimeIndex(idx, name="timestamp"),
    )


def only(counts: dict[str, int], **expected: int) -> None:
    """All kinds are reported; those not named must be zero."""
    assert set(counts) == set(KINDS)
    assert {k: v for k, v in counts.items() if v} == expected


def test_clean_frame_passes_untouched_and_tradable() -> None:
    df = daily()
    out, rep = clean_bars(df, "X", "1d")
    pd.testing.assert_frame_equal(out.drop(columns="tradable"), df)
    assert out["tradable"].dtype == bool and out["tradable"].all()
    only(rep.counts)
    assert (rep.n_in, rep.n_out, rep.symbol) == (10, 10, "X")
    assert "no defects" in rep.summary()


def test_out_of_order_rows_are_sorted() -> None:
    df = daily()
    shuffled = df.iloc[[0, 3, 1, 2, 4, 5, 9, 6, 7, 8]]
    steps_back = int((np.diff(shuffled.index.asi8) < 0).sum())
    out, rep = clean_bars(shuffled, "X", "1d")
    pd.testing.assert_frame_equal(out.drop(columns="tradable"), df)
    only(rep.counts, out_of_order=steps_back)
    assert rep.examples["out_of_order"][0] == df.index[1].isoformat()


def test_duplicates_keep_the_last_row_in_file_order() -> None:
    df = daily(5)
    dup = df.iloc[[2]].copy()
    dup[["open", "high", "low", "close"]] += 10
    out, rep = clean_bars(pd.concat([df.iloc[:3], dup, df.iloc[3:]]), "X", "1d")
    assert len(out) == 5
    assert out.loc[df.index[2], "close"] == dup["close"].iloc[0]
    only(rep.counts, duplicate=1)
    # a duplicate that also arrives out of order still loses to the row written later
    late = pd.concat([dup, df])
    out2, rep2 = clean_bars(late, "X", "1d")
    assert out2.loc[df.index[2], "close"] == df["close"].iloc[2]
    assert rep2.counts["duplicate"] == 1


@pytest.mark.parametrize(
    ("kind", "col", "value"),
    [
        ("nan_price", "close", np.nan),
        ("nan_price", "open", np.nan),
        ("non_positive", "low", 0.0),
        ("non_positive", "open", -1.0),
        ("high_below_low", "high", 97.0),  # row 2 has low 100
    ],
)
def test_impossible_prices_reject_the_bar(kind: str, col: str, value: float) -> None:
    df = daily()
    df.loc[df.index[2], col] = value
    out, rep = clean_bars(df, "X", "1d")
    assert df.index[2] not in out.index and len(out) == 9
    only(rep.counts, **{kind: 1, "missing_bars": 1})
    assert rep.examples[kind] == [df.index[2].isoformat()]
    assert out["tradable"].all()  # one missing bar is within the default max_gap_bars=1


def test_a_bar_failing_several_rules_is_counted_once() -> None:
    df = daily()
    df.loc[df.index[4], ["open", "high"]] = [np.nan, -5.0]
    _, rep = clean_bars(df, "X", "1d")
    assert rep.counts["nan_price"] == 1 and rep.counts["non_positive"] == 0


def test_open_or_close_outside_range_widens_high_and_low() -> None:
    df = daily()
    df.loc[df.index[1], "open"] = df["low"].iloc[1] - 0.7  # like SOX 2023-04-26
    df.loc[df.index[5], "close"] = df["high"].iloc[5] + 1.3
    out, rep = clean_bars(df, "X", "1d")
    assert len(out) == 10
    assert out["low"].iloc[1] == df["open"].iloc[1] and out["high"].iloc[1] == df["high"].iloc[1]
    assert out["high"].iloc[5] == df["close"].iloc[5] and out["low"].iloc[5] == df["low"].iloc[5]
    only(rep.counts, open_close_outside_range=2)


def test_nan_or_negative_volume_becomes_zero() -> None:
    df = daily()
    df.loc[df.index[[1, 6]], "volume"] = [np.nan, -3.0]
    out, rep = clean_bars(df, "X", "1d")
    assert len(out) == 10 and out["volume"].iloc[1] == 0 and out["volume"].iloc[6] == 0
    assert out["volume"].drop(df.index[[1, 6]]).equals(df["volume"].drop(df.index[[1, 6]]))
    only(rep.counts, bad_volume=2)


def test_daily_bar_on_a_holiday_or_weekend_is_rejected() -> None:
    df = daily(3, "2024-07-02")  # 07-02, 07-03, 07-05
    extra = df.iloc[[0]].set_axis(pd.DatetimeIndex(["2024-07-04"], name="timestamp"))
    sat = df.iloc[[0]].set_axis(pd.DatetimeIndex(["2024-07-06"], name="timestamp"))
    out, rep = clean_bars(pd.concat([df, extra, sat]), "X", "1d")
    pd.testing.assert_index_equal(out.index, df.index)
    only(rep.counts, not_a_session=2, out_of_order=1)


def test_intraday_bars_outside_regular_hours_or_off_grid_are_rejected() -> None:
    df = intraday()
    odd = ["2024-11-26 09:25", "2024-11-26 16:00", "2024-11-26 10:02", "2024-11-28 10:00"]  # 11-28 closed
    bad = pd.DataFrame(
        {c: [60.0] * 4 for c in df.columns}, index=pd.DatetimeIndex(odd, name="timestamp").tz_localize(NY)
    )
    out, rep = clean_bars(pd.concat([df, bad]).sort_index(), "X", "5m")
    pd.testing.assert_index_equal(out.index, df.index)
    only(rep.counts, outside_hours=4)


def test_daily_gap_larger_than_max_gap_bars_makes_the_next_bar_untradable() -> None:
    df = daily(12)
    holed = df.drop(df.index[3:6])  # three sessions missing before df.index[6]
    for max_gap, tradable in [(0, False), (1, False), (2, False), (3, True)]:
        out, rep = clean_bars(holed, "X", "1d", max_gap_bars=max_gap)
        assert bool(out.loc[df.index[6], "tradable"]) is tradable
        assert out["tradable"].drop(df.index[6]).all()
        assert rep.counts["missing_bars"] == 3
        assert rep.counts["gap_untradable"] == (0 if tradable else 1)


def test_rejected_bars_count_as_missing_for_the_gap_rule() -> None:
    df = daily()
    df.loc[df.index[3], "close"] = np.nan
    df.loc[df.index[4], "high"] = 1.0  # high < low
    out, rep = clean_bars(df, "X", "1d", max_gap_bars=1)
    assert not out.loc[df.index[5], "tradable"]
    assert rep.counts["missing_bars"] == 2 and rep.counts["gap_untradable"] == 1


def test_first_bar_is_tradable_even_if_the_file_starts_late() -> None:
    df = intraday().iloc[40:]
    out, rep = clean_bars(df, "X", "5m", max_gap_bars=0)
    assert out["tradable"].all() and rep.counts["missing_bars"] == 0


def test_intraday_gaps_are_within_sessions_and_overnight_is_not_a_gap() -> None:
    two = pd.concat([intraday("2024-11-26"), intraday("2024-11-27")])
    out, rep = clean_bars(two, "X", "5m", max_gap_bars=0)
    assert out["tradable"].all() and rep.counts["missing_bars"] == 0
    holed = two.drop(two.index[[10, 11, 100]])
    out, rep = clean_bars(holed, "X", "5m", max_gap_bars=1)
    assert rep.counts["missing_bars"] == 3
    assert list(out.index[~out["tradable"]]) == [two.index[12]]
    out0, _ = clean_bars(holed, "X", "5m", max_gap_bars=0)
    assert list(out0.index[~out0["tradable"]]) == [two.index[12], two.index[101]]


def test_half_day_has_no_missing_bars_after_13_00() -> None:
    two = pd.concat([intraday("2024-11-29"), intraday("2024-12-02")])
    out, rep = clean_bars(two, "X", "5m", max_gap_bars=0)
    assert out["tradable"].all() and rep.counts["missing_bars"] == 0


def test_report_is_frozen_logged_and_summarised() -> None:
    df = daily()
    df.loc[df.index[2], "close"] = np.nan
    df.loc[df.index[5], "volume"] = -1.0
    with capture_logs() as logs:
        _, rep = clean_bars(df, "SOXX", "1d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.n_out = 3  # type: ignore[misc]
    lines = {e["kind"]: e for e in logs if e["event"] == "bad_bars"}
    assert (
        set(lines) == {k for k, n in rep.counts.items() if n} == {"nan_price", "bad_volume", "missing_bars"}
    )
    assert lines["nan_price"]["count"] == 1 and lines["nan_price"]["first"] == [df.index[2].isoformat()]
    assert all(e["symbol"] == "SOXX" for e in lines.values())
    s = rep.summary()
    assert "SOXX" in s and "9/10" in s and "nan_price=1" in s and "bad_volume=1" in s


def test_examples_are_capped_at_the_first_few() -> None:
    df = daily(30)
    df["volume"] = np.nan
    _, rep = clean_bars(df, "X", "1d")
    assert rep.counts["bad_volume"] == 30
    assert rep.examples["bad_volume"] == [t.isoformat() for t in df.index[:5]]


# ---- property: whatever goes in, what comes out is usable -------------------------------------

_price = st.one_of(st.floats(1, 200), st.just(np.nan), st.just(0.0), st.floats(-50, -0.01))
_row = st.tuples(
    st.integers(0, 19),
    _price,
    _price,
    _price,
    _price,
    st.one_of(st.floats(0, 1e6), st.just(np.nan), st.just(-1.0)),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=40), max_gap=st.integers(0, 3))
def test_output_invariants_for_arbitrary_bad_input(rows: list[tuple], max_gap: int) -> None:
    days = cal.sessions("2024-01-02", "2024-02-05")[:20]
    idx = pd.DatetimeIndex([days[r[0]] for r in rows], name="timestamp")
    df = pd.DataFrame([r[1:] for r in rows], columns=["open", "high", "low", "close", "volume"], index=idx)
    out, rep = clean_bars(df, "X", "1d", max_gap_bars=max_gap)
    assert out.index.is_monotonic_increasing and out.index.is_unique
    p = out[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(p).all() and (p > 0).all()
    assert (out["high"] >= out[["open", "close"]].max(axis=1)).all()
    assert (out["low"] <= out[["open", "close"]].min(axis=1)).all()
    assert (out["volume"] >= 0).all()
    assert rep.n_in == len(df) and rep.n_out == len(out)
    assert rep.n_out == rep.n_in - sum(rep.counts[k] for k in REJECTED)
    if len(out):
        assert out["tradable"].iloc[0]
    # each surviving bar is the last row written for its date
    last = df[~df.index.duplicated(keep="last")]
    for ts in out.index:
        assert out.loc[ts, "open"] == last.loc[ts, "open"]


# ---- live path -------------------------------------------------------------------------------


T0 = pd.Timestamp("2024-11-26 10:00", tz=NY)
T1 = T0 + pd.Timedelta(minutes=5)


@pytest.mark.parametrize(
    ("bar", "prev", "reason"),
    [
        ((10, 11, 9, 10.5), T0, None),
        ((10, 11, 9, 10.5), None, None),
        ((np.nan, 11, 9, 10.5), T0, "nan_price"),
        ((10, 11, 9, np.nan), T0, "nan_price"),
        ((10, 11, 0.0, 10.5), T0, "non_positive"),
        ((10, 9, 11, 10.5), T0, "high_below_low"),
        ((10, 11, 9, 10.5), T1, "duplicate"),
        ((10, 11, 9, 10.5), T1 + pd.Timedelta(minutes=5), "out_of_order"),
    ],
)
def test_check_bar_reasons(bar: tuple[float, ...], prev: pd.Timestamp | None, reason: str | None) -> None:
    assert check_bar("SOXL", T1, *bar, 100.0, prev) == reason


def test_check_bar_ignores_volume_like_clean_bars_repairs_it() -> None:
    assert check_bar("SOXL", T1, 10, 11, 9, 10.5, np.nan, T0) is None
    assert check_bar("SOXL", T1, 10, 11, 9, 10.5, -5, T0) is None


@settings(max_examples=80, deadline=None)
@given(o=_price, h=_price, lo=_price, c=_price)
def test_check_bar_rejects_exactly_what_clean_bars_rejects(o: float, h: float, lo: float, c: float) -> None:
    df = intraday().iloc[:2].copy()
    df.iloc[1, :4] = [o, h, lo, c]
    out, rep = clean_bars(df, "X", "5m")
    reason = check_bar("X", df.index[1], o, h, lo, c, 1.0, df.index[0])
    assert (reason is None) == (len(out) == 2)
    if reason is not None:
        assert rep.counts[reason] == 1


# ---- real data -------------------------------------------------------------------------------


def test_real_files_load_and_pass_with_the_known_defects(shared_data: Path) -> None:
    reports = {}
    for path in sorted(shared_data.glob("*_*.csv")):
        sym, tf = path.stem.split("_")
        out, rep = clean_bars(load_csv(shared_data, sym, tf), sym, tf)
        reports[path.stem] = (out, rep)
        for kind in (
            "out_of_order",
            "duplicate",
            "nan_price",
            "non_positive",
            "high_below_low",
            "not_a_session",
        ):
            assert rep.counts[kind] == 0, (path.stem, kind)
        if tf == "1d" or tf == "5m":  # no calendar gaps in the daily and 5-minute files
            assert rep.counts["missing_bars"] == 0, path.stem
            assert out["tradable"].all()
    sox, rep = reports["SOX_1d"]
    assert rep.counts["open_close_outside_range"] == 1
    assert rep.examples["open_close_outside_range"] == ["2023-04-26T00:00:00"]
    day = sox.loc["2023-04-26"]
    assert day["low"] == day["open"] == 2906.3 and day["high"] == 2952.1
    others = {k: r for k, (_, r) in reports.items() if k != "SOX_1d"}
    assert all(r.counts["open_close_outside_range"] == 0 for r in others.values())
    # the 1-minute files: minutes without trades are gaps, and a 13:00 print after the half-day close
    # of 2019-12-24 is outside regular hours
    for stem in ("SOXL_1m", "SOXS_1m", "SPY_1m"):
        assert reports[stem][1].examples["outside_hours"] == ["2019-12-24T13:00:00-05:00"]
    assert reports["SOXX_1m"][1].counts["missing_bars"] > 0
    assert not reports["SOXX_1m"][0]["tradable"].all()


def test_clean_bars_is_fast_on_the_largest_file(shared_data: Path) -> None:
    df = load_csv(shared_data, "SOXL", "5m")
    t = time.perf_counter()
    clean_bars(df, "SOXL", "5m")
    assert time.perf_counter() - t < 1.0  # ~10 ms measured for 58,560 bars
