"""The synthetic market: reproducible, on the calendar, self-consistent, and SOX-like in its statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.data import calendar as cal
from bot.data.quality import clean_bars
from bot.data.synthetic import SYNTHETIC_LABEL, generate, session_carry, short_rates
from tests.conftest import SHARED_DATA

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
def test_leveraged_funds_return_l_x_the_index_plus_a_rate_dependent_carry(seed: int) -> None:
    out = generate(["SOX", "SOXL", "SOXS"], years=0.6, seed=seed)
    idx = _ret(out["SOX"]["close"])
    rate = short_rates("2020-01-02", 0.6, seed).reindex(idx.index)
    for sym, k in (("SOXL", 3.0), ("SOXS", -3.0)):
        expected = k * idx + session_carry(sym, rate)
        np.testing.assert_allclose(_ret(out[sym]["close"]), expected, rtol=0, atol=1e-12)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_leveraged_intraday_bars_follow_the_index_since_the_previous_close(seed: int) -> None:
    out = generate(["SOX", "SOXL", "SOXS"], timeframe="15m", years=0.1, seed=seed)
    sox = out["SOX"]
    day = sox.index.tz_localize(None).normalize()
    prev_close = sox["close"].groupby(day).last().shift(1).reindex(day).to_numpy()
    move = sox["close"].to_numpy() / prev_close - 1
    rate = short_rates("2020-01-02", 0.1, seed).reindex(day).to_numpy()
    for sym, k in (("SOXL", 3.0), ("SOXS", -3.0)):
        fund_prev = out[sym]["close"].groupby(day).last().shift(1).reindex(day).to_numpy()
        expected = fund_prev * (1 + k * move + session_carry(sym, rate))
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


# --- The model against the real market (issue 10, item 6) -------------------------------------------------
#
# The statistics a trader looks at, on daily bars: does volatility cluster (autocorrelation of |log return|
# at lags 1, 5 and 20 sessions), how big and how frequent are the overnight gaps (std of log(open / previous
# close); sessions a year with |gap| > 3%; the overnight share of variance var(gap) / (var(gap) +
# var(open-to-close))), how wide is a day (mean (high - low) / close), and what the 3x funds earn beyond
# L x the index at zero and at 5% rates.
#
# Real figures: SOX 2010-01-04 .. (closes, highs, lows; its opens are stale before ~2008, see
# scripts/calibrate_synthetic.py) for the autocorrelations and the range; SOXX 2010 on (an ETF's opens are
# trades) for the gaps. REAL holds them as computed on ../shared/data (SOX and SOXX to 2026-08-21) by
# _real_figures below and printed by scripts/calibrate_synthetic.py on 2026-12-03; the tests recompute them
# when the data is there and fall back to REAL when it is not, so the bands are always checked.
#
# Model figures: the mean over consecutive windows as long as the real sample (4184 sessions) cut from
# 100-year runs with seeds 7 and 11, so both sides are the same estimator (autocorrelations and
# kurtosis from 16 years are biased low against a century's).
#
# Bands: the model must sit within a tolerance of the real figure. Across the model's own 16-year
# windows these statistics vary by about 0.07 (autocorrelations), 0.0014 (gap std), 2.4 a year (big gaps),
# 0.011 (overnight share) and 0.0017 (range); the bands are that wide or narrower, and the old model
# (regime switching, gaps fitted on pre-2005 SOX opens: .15/.14/.12, gap std 0.0076, 0.4-0.7 big gaps a
# year, share 0.12, range 0.031, a flat 0.9%/yr carry) fails every one of them.
REAL = {
    "ac1": 0.238, "ac5": 0.225, "ac20": 0.160,
    "gap_std": 0.0115, "big_gaps_per_year": 6.69, "overnight_share": 0.365, "range": 0.0202,
}  # fmt: skip
BANDS = {
    "ac1": 0.04, "ac5": 0.04, "ac20": 0.04,
    "gap_std": 0.0015, "big_gaps_per_year": 2.5, "overnight_share": 0.03, "range": 0.002,
}  # fmt: skip
# Residual carry per year, mean of (fund return - L x benchmark return) x 252, in the spells with a flat
# policy rate: 2010-03-12 .. 2015-12-16 (Fed funds 0-0.25%) and 2023-07-27 .. 2024-09-18 (5.25-5.50%).
# Benchmark SOX until the funds' index switch on 2021-08-25, SOXX after.
SPELLS = {
    "zero": ("2010-03-12", "2015-12-16", 0.0, 0.005),
    "high": ("2023-07-27", "2024-09-18", 0.0483, 0.0583),
}
REAL_CARRY = {
    ("SOXL", "zero"): 0.0194,
    ("SOXL", "high"): -0.1381,
    ("SOXS", "zero"): -0.0882,
    ("SOXS", "high"): 0.1179,
}
CARRY_BAND = 0.02  # per year
REAL_SESSIONS = 4184
SEEDS = (7, 11)


def _day_stats(df: pd.DataFrame) -> dict[str, float]:
    lc = np.log(df["close"])
    r = lc.diff().dropna()
    gap = (np.log(df["open"]) - lc.shift(1)).dropna()
    oc = np.log(df["close"] / df["open"]).loc[gap.index]
    a = r.abs()
    return {
        "ac1": a.autocorr(1), "ac5": a.autocorr(5), "ac20": a.autocorr(20), "kurt": r.kurt(),
        "gap_std": gap.std(), "big_gaps_per_year": (gap.abs() > 0.03).mean() * 252,
        "overnight_share": gap.var() / (gap.var() + oc.var()),
        "range": ((df["high"] - df["low"]) / df["close"]).mean(),
    }  # fmt: skip


def _read(data: Path, sym: str) -> pd.DataFrame:
    return pd.read_csv(data / f"{sym}_1d.csv", index_col="timestamp", parse_dates=True).loc["2010":]


def _real_figures(data: Path) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    sox, soxx = _read(data, "SOX"), _read(data, "SOXX")
    a, b = _day_stats(sox), _day_stats(soxx)
    figures = {k: (b if k in ("gap_std", "big_gaps_per_year", "overnight_share") else a)[k] for k in REAL}
    close = pd.DataFrame({s: _read(data, s)["close"] for s in ("SOX", "SOXX", "SOXL", "SOXS")})
    ret = close.loc["2010-03-11":].pct_change().dropna()
    bench = ret["SOX"].where(ret.index < "2021-08-25", ret["SOXX"])
    carry = {
        (sym, spell): float((ret[sym] - lev * bench).loc[start:end].mean() * 252)
        for sym, lev in (("SOXL", 3.0), ("SOXS", -3.0))
        for spell, (start, end, _, _) in SPELLS.items()
    }
    return figures, carry


@pytest.fixture(scope="module")
def real() -> tuple[dict[str, float], dict[tuple[str, str], float], str]:
    """The real figures from ../shared/data when it is there, else the documented REAL / REAL_CARRY."""
    if not (SHARED_DATA / "SOX_1d.csv").is_file() or not (SHARED_DATA / "SOXL_1d.csv").is_file():
        return REAL, REAL_CARRY, f"documented constants (no real data at {SHARED_DATA})"
    figures, carry = _real_figures(SHARED_DATA)
    return figures, carry, f"computed from {SHARED_DATA}"


@pytest.fixture(scope="module")
def century() -> dict[int, dict[str, pd.DataFrame]]:
    """100 years of daily SOX, SOXL and SOXS per seed (the funds only for the first seed)."""
    syms = {s: ["SOX", "SOXL", "SOXS"] if s == SEEDS[0] else ["SOX"] for s in SEEDS}
    return {s: generate(syms[s], years=100.0, seed=s) for s in SEEDS}


@pytest.fixture(scope="module")
def model(century) -> dict[str, float]:
    parts = [
        _day_stats(df.iloc[i : i + REAL_SESSIONS])
        for df in (century[s]["SOX"] for s in SEEDS)
        for i in range(0, len(df) - REAL_SESSIONS + 1, REAL_SESSIONS)
    ]
    return pd.DataFrame(parts).mean().to_dict()


def test_the_documented_real_figures_are_what_the_data_says(shared_data: Path) -> None:
    figures, carry = _real_figures(shared_data)
    for k, v in REAL.items():
        assert figures[k] == pytest.approx(v, rel=0.01, abs=5e-4), k
    for k, v in REAL_CARRY.items():
        assert carry[k] == pytest.approx(v, abs=5e-4), k


@pytest.mark.parametrize("stat", list(REAL))
def test_the_model_matches_the_real_market_within_its_band(stat: str, real, model) -> None:
    figures, _, source = real
    assert abs(model[stat] - figures[stat]) <= BANDS[stat], (
        f"{stat}: model {model[stat]:.4f}, real {figures[stat]:.4f} ({source}), band +-{BANDS[stat]}"
    )


@pytest.mark.parametrize("sym", ["SOXL", "SOXS"])
def test_leveraged_carry_responds_to_the_rate_like_the_real_funds(sym: str, real, century) -> None:
    """At ~0% rates SOXS pays ~9%/yr beyond -3x the index and SOXL earns ~2%; at ~5.3% SOXS earns ~12%
    and SOXL pays ~14%: financing changes sign with rates, as on the real funds."""
    _, carry, source = real
    frames = century[SEEDS[0]]
    lev = {"SOXL": 3.0, "SOXS": -3.0}[sym]
    resid = frames[sym]["close"].pct_change() - lev * frames["SOX"]["close"].pct_change()
    rate = short_rates(years=100.0, seed=SEEDS[0])
    for spell, (_, _, lo, hi) in SPELLS.items():
        in_spell = (rate >= lo) & (rate < hi)
        assert in_spell.sum() > 250, f"the rate path spends under a year in the {spell}-rate range"
        got = float(resid[in_spell].mean() * 252)
        want = carry[(sym, spell)]
        assert abs(got - want) <= CARRY_BAND, (
            f"{sym} {spell} rates: model {got:+.4f}/yr, real {want:+.4f} ({source})"
        )


def test_the_open_is_the_busiest_time_of_day() -> None:
    """5-minute returns swing more in the first half hour and the last 10 minutes than at midday: std of
    5-minute bar returns against 12:00-13:30, real SOXL_5m 2023-26: 2.3 and 1.5 (model: 2.3 and 1.4)."""
    bars = generate(["SOX"], timeframe="5m", years=1.0, seed=3)["SOX"]
    t = bars.index.hour * 60 + bars.index.minute
    ret = np.log(bars["close"] / bars["open"])
    mid = ret[(t >= 720) & (t < 810)].std()
    assert 1.7 <= ret[t < 600].std() / mid <= 2.8
    assert 1.1 <= ret[t >= 950].std() / mid <= 2.0


@pytest.mark.parametrize("seed", SEEDS)
def test_long_sample_statistics_are_in_the_documented_real_sox_ranges(seed: int, century) -> None:
    """The "tested range" column of the table in bot/data/synthetic.py."""
    close = century[seed]["SOX"]["close"]
    r = np.log(close).diff().dropna()
    assert 0.26 <= r.std() * np.sqrt(252) <= 0.42
    assert 0.03 <= r.mean() * 252 <= 0.25
    kurt = [r.iloc[i : i + REAL_SESSIONS].kurt() for i in range(0, len(r) - REAL_SESSIONS + 1, REAL_SESSIONS)]
    assert 2.5 <= np.median(kurt) <= 10
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
