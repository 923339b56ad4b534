"""The synthetic market: reproducible, on the calendar, self-consistent, and SOX-like in its statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.data import calendar as cal
from bot.data.quality import clean_bars
from bot.data.synthetic import EXPENSE, SYNTHETIC_LABEL, generate

ALL = ["SOX", "SOXX", "SMH", "SOXL", "SOXS", "NVDA"]


def test_same_seed_same_bars_and_labelled_synthetic() -> None:
    a = generate(ALL, years=1.0, seed=3)
    b = generate(ALL, years=1.0, seed=3)
    assert list(a) == ALL
    for sym in ALL:
        pd.testing.assert_frame_equal(a[sym], b[sym])
        assert a[sym].attrs["synthetic"] is True and a[sym].attrs["source"] == SYNTHETIC_LABEL == "synthetic"


def test_different_seeds_differ() -> None:
    a = generate(["SOX", "NVDA"], years=0.5, seed=1)
    b = generate(["SOX", "NVDA"], years=0.5, seed=2)
    for sym in a:
        assert not np.allclose(a[sym]["close"], b[sym]["close"])


def test_a_symbol_does_not_depend_on_its_companions_or_on_a_longer_history() -> None:
    alone = generate(["SOXL"], years=1.0)["SOXL"]
    longer = generate(["NVDA", "SOX", "SOXL"], years=2.5)["SOXL"]
    pd.testing.assert_frame_equal(alone, longer.iloc[: len(alone)])


def test_caret_symbol_is_the_index() -> None:
    out = generate(["^SOX", "SOX"], years=0.3)
    pd.testing.assert_frame_equal(out["^SOX"], out["SOX"])


def _ohlc_ok(df: pd.DataFrame) -> None:
    p = df[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(p).all() and (p > 0).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["volume"] >= 0).all()
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(d == np.float64 for d in df.dtypes)


def test_daily_bars_sit_on_xnys_sessions_with_sane_ohlc() -> None:
    out = generate(ALL, timeframe="1d", start="2020-01-02", years=3.0)
    days = cal.sessions("2020-01-02", "2022-12-31")
    for sym, df in out.items():
        pd.testing.assert_index_equal(df.index, days, check_names=False)
        assert df.index.name == "timestamp"
        _ohlc_ok(df)
        _, rep = clean_bars(df, sym, "1d", max_gap_bars=0)
        assert rep.n_out == rep.n_in and not any(rep.counts.values()), rep.summary()
    assert (out["SOX"]["volume"] == 0).all()
    for sym in ("SOXX", "SMH", "SOXL", "SOXS", "NVDA"):
        assert (out[sym]["volume"] > 0).all()


@pytest.mark.parametrize("tf", ["1m", "5m", "15m", "30m", "1h"])
def test_intraday_bars_fill_regular_hours_including_half_days(tf: str) -> None:
    out = generate(["SOX", "SOXS"], timeframe=tf, start="2020-11-23", years=0.05)
    for sym, df in out.items():
        assert str(df.index.tz) == "America/New_York"
        expected = pd.DatetimeIndex(
            [t for d in cal.sessions("2020-11-23", "2020-12-10") for t in cal.bar_starts(d, tf)]
        )
        pd.testing.assert_index_equal(df.index, expected.as_unit("ns"), check_names=False)
        _ohlc_ok(df)
        _, rep = clean_bars(df, sym, tf, max_gap_bars=0)
        assert not any(rep.counts.values()), rep.summary()
    half = out["SOX"].loc["2020-11-27"]  # day after Thanksgiving
    assert half.index[-1] + cal.timeframe_delta(tf) >= pd.Timestamp("2020-11-27 13:00", tz="America/New_York")
    assert half.index[-1] < pd.Timestamp("2020-11-27 13:00", tz="America/New_York")


def _to_daily(df: pd.DataFrame) -> pd.DataFrame:
    day = df.index.tz_localize(None).normalize()
    g = df.groupby(day)
    out = pd.DataFrame(
        {"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
         "close": g["close"].last(), "volume": g["volume"].sum()}
    )  # fmt: skip
    out.index.name = "timestamp"
    return out


@pytest.mark.parametrize("tf", ["5m", "1h"])
def test_daily_ohlc_is_the_aggregate_of_the_intraday_path(tf: str) -> None:
    syms = ["SOX", "SMH", "SOXL", "SOXS", "AMD"]
    daily = generate(syms, timeframe="1d", years=0.4, seed=5)
    intra = generate(syms, timeframe=tf, years=0.4, seed=5)
    for sym in syms:
        pd.testing.assert_frame_equal(_to_daily(intra[sym]), daily[sym], check_freq=False, rtol=1e-12)


def test_finer_bars_aggregate_to_coarser_ones_and_the_path_is_continuous() -> None:
    one = generate(["SOXL", "NVDA"], timeframe="1m", years=0.03, seed=4)
    five = generate(["SOXL", "NVDA"], timeframe="5m", years=0.03, seed=4)
    for sym in one:
        m = one[sym]
        day = m.index.tz_localize(None).normalize()
        opens = m.index.to_series().groupby(day).transform("min")
        bucket = opens + ((m.index - opens) // pd.Timedelta(minutes=5)) * pd.Timedelta(minutes=5)
        g = m.groupby(bucket.to_numpy())
        agg = pd.DataFrame(
            {"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
             "close": g["close"].last(), "volume": g["volume"].sum()}
        )  # fmt: skip
        np.testing.assert_allclose(agg.to_numpy(), five[sym].to_numpy(), rtol=1e-12)
        # within a session each bar opens where the previous one closed
        same_day = day[1:] == day[:-1]
        np.testing.assert_allclose(m["open"].to_numpy()[1:][same_day], m["close"].to_numpy()[:-1][same_day])


def _ret(s: pd.Series) -> pd.Series:
    return (s / s.shift(1) - 1).dropna()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_leveraged_funds_return_3x_the_index_minus_expense_each_session(seed: int) -> None:
    out = generate(["SOX", "SOXL", "SOXS"], years=0.6, seed=seed)
    idx = _ret(out["SOX"]["close"])
    drag = EXPENSE / 252
    np.testing.assert_allclose(_ret(out["SOXL"]["close"]), 3 * idx - drag, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_ret(out["SOXS"]["close"]), -3 * idx - drag, rtol=0, atol=1e-12)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_leveraged_intraday_bars_follow_the_index_since_the_previous_close(seed: int) -> None:
    out = generate(["SOX", "SOXL", "SOXS"], timeframe="15m", years=0.1, seed=seed)
    sox = out["SOX"]
    day = sox.index.tz_localize(None).normalize()
    prev_close = sox["close"].groupby(day).last().shift(1).reindex(day).to_numpy()
    move = sox["close"].to_numpy() / prev_close - 1
    for sym, k in (("SOXL", 3.0), ("SOXS", -3.0)):
        fund_prev = out[sym]["close"].groupby(day).last().shift(1).reindex(day).to_numpy()
        expected = fund_prev * (1 + k * move - EXPENSE / 252)
        ok = ~np.isnan(prev_close)
        np.testing.assert_allclose(out[sym]["close"].to_numpy()[ok], expected[ok], rtol=1e-11)


def test_etfs_track_the_index_and_the_stock_has_beta_near_1_2() -> None:
    out = generate(["SOX", "SOXX", "SMH", "NVDA"], years=20.0, seed=9)
    r = np.log(pd.DataFrame({s: df["close"] for s, df in out.items()})).diff().dropna()
    for etf in ("SOXX", "SMH"):
        assert r[etf].corr(r["SOX"]) > 0.99
        assert (r[etf] - r["SOX"]).std() < 0.003
    beta = r["NVDA"].cov(r["SOX"]) / r["SOX"].var()
    assert 1.1 < beta < 1.3
    assert 0.5 < r["NVDA"].corr(r["SOX"]) < 0.95


def _max_drawdowns(close: np.ndarray, window: int = 756, step: int = 21) -> np.ndarray:
    return np.array(
        [
            (w / np.maximum.accumulate(w) - 1).min()
            for w in (close[i : i + window] for i in range(0, len(close) - window, step))
        ]
    )


@pytest.mark.parametrize("seed", [7, 11])
def test_long_sample_statistics_are_in_the_documented_real_sox_ranges(seed: int) -> None:
    """The "tested range" column of the table in bot/data/synthetic.py."""
    close = generate(["SOX"], years=100.0, seed=seed)["SOX"]["close"]
    r = np.log(close).diff().dropna()
    assert 0.30 <= r.std() * np.sqrt(252) <= 0.42
    assert 0.03 <= r.mean() * 252 <= 0.25
    assert 1.5 <= r.kurt() <= 8
    dd = _max_drawdowns(close.to_numpy())
    assert -0.55 <= np.median(dd) <= -0.25
    assert -0.97 <= dd.min() <= -0.55
    vol63 = r.rolling(63).std().dropna()
    high = vol63 > vol63.median()
    runs = high.groupby((high != high.shift()).cumsum()).size()
    assert 30 <= runs.mean() <= 250


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown timeframe"):
        generate(["SOX"], timeframe="2m")
    with pytest.raises(ValueError, match="positive"):
        generate(["SOX"], years=0)
