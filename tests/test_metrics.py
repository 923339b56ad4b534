"""Metrics users read in summary.json: checked against values computed by hand (plain loops)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.report.metrics import SECONDS_PER_YEAR, bar_positions, drawdown, summarize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRADE_COLUMNS = [
    "symbol", "side", "qty", "entry_time", "entry_price", "exit_time", "exit_price", "pnl", "exit_reason",
]
KEYS = {
    "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "volatility", "win_rate",
    "profit_factor", "exposure", "n_trades", "avg_trade_pnl", "best_trade", "worst_trade", "avg_hold_bars",
}


def frame(values: list[float], index: pd.DatetimeIndex | None = None, invested: list[bool] | None = None):
    index = index if index is not None else pd.date_range("2021-01-04", periods=len(values), freq="B")
    invested = invested if invested is not None else [True] * len(values)
    pv = [v if inv else 0.0 for v, inv in zip(values, invested, strict=True)]
    return pd.DataFrame(
        {"equity": values, "cash": [v - p for v, p in zip(values, pv, strict=True)], "position_value": pv},
        index=index,
    )


def trades_from(pnls: list[float], index: pd.DatetimeIndex | None = None, holds: list[int] | None = None):
    rows = []
    for i, pnl in enumerate(pnls):
        entry = index[i] if index is not None else pd.Timestamp("2021-01-04")
        exit_ = index[i + (holds[i] if holds else 0)] if index is not None else entry
        rows.append(["SOXL", "long", 10, entry, 100.0, exit_, 100.0 + pnl / 10, pnl, "signal"])
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def no_trades() -> pd.DataFrame:
    return pd.DataFrame(columns=TRADE_COLUMNS)


def flat_bench(index: pd.DatetimeIndex) -> pd.Series:
    return pd.Series(50.0, index=index)


def brute_max_drawdown(values: list[float]) -> float:
    worst = 0.0
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            if values[i] > 0:
                worst = max(worst, 1.0 - values[j] / values[i])
    return worst


def loop_returns(values: list[float], base: float) -> list[float]:
    out, prev = [], base
    for v in values:
        out.append(v / prev - 1.0)
        prev = v
    return out


def assert_json_clean(summary: dict) -> None:
    json.dumps(summary, allow_nan=False)  # raises on NaN/inf
    for block in ("strategy", "buy_and_hold"):
        assert summary[block].keys() >= KEYS


# --- drawdown -------------------------------------------------------------------------------------


def test_single_known_drawdown():
    eq = pd.Series([100.0, 120.0, 90.0, 130.0, 117.0])
    dd = drawdown(eq)
    assert dd.tolist() == pytest.approx([0.0, 0.0, 30 / 120, 0.0, 13 / 130])
    s = summarize(frame(eq.tolist()), no_trades(), flat_bench(frame(eq.tolist()).index), 252, 100.0)
    assert s["strategy"]["max_drawdown"] == pytest.approx(0.25)


@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=40))
def test_drawdown_matches_brute_force(values):
    dd = drawdown(pd.Series(values))
    assert (dd >= 0).all() and (dd < 1).all()
    assert dd.max() == pytest.approx(brute_max_drawdown(values), abs=1e-12)
    # zero exactly where the curve is at its running high
    peak = -math.inf
    for v, d in zip(values, dd, strict=True):
        peak = max(peak, v)
        assert (d == 0) == (v == peak)


def test_first_bar_loss_counts_against_starting_cash():
    eq = frame([80.0, 90.0])
    s = summarize(eq, no_trades(), flat_bench(eq.index), 252, 100.0)["strategy"]
    assert s["max_drawdown"] == pytest.approx(0.2)
    assert s["total_return"] == pytest.approx(-0.1)


# --- curve statistics -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    annual=st.floats(-0.6, 2.0),
    n=st.integers(2, 200),
    step_days=st.integers(1, 7),
    start=st.floats(1_000, 1e7),
)
def test_constant_growth_curve_has_known_cagr_and_no_drawdown(annual, n, step_days, start):
    index = pd.date_range("2015-03-02", periods=n, freq=f"{step_days}D")
    years = [(t - index[0]).total_seconds() / SECONDS_PER_YEAR for t in index]
    values = [start * (1 + annual) ** y for y in years]
    s = summarize(frame(values, index), no_trades(), flat_bench(index), 252, start)
    strat = s["strategy"]
    assert strat["cagr"] == pytest.approx(annual, rel=1e-9, abs=1e-12)
    assert strat["total_return"] == pytest.approx(values[-1] / start - 1, rel=1e-9, abs=1e-12)
    if annual >= 0:
        assert strat["max_drawdown"] == pytest.approx(0.0, abs=1e-12)
    else:  # a steady decline: the whole fall is the drawdown
        assert strat["max_drawdown"] == pytest.approx(1 - values[-1] / start, rel=1e-9)
    assert s["period"]["years"] == pytest.approx(years[-1])
    assert s["period"]["bars"] == n
    assert_json_clean(s)


def test_flat_equity_gives_zero_ratios_not_nan():
    eq = frame([100_000.0] * 30)
    s = summarize(eq, no_trades(), flat_bench(eq.index), 252, 100_000.0)
    strat = s["strategy"]
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "volatility"):
        assert strat[key] == 0.0, key
    assert s["buy_and_hold"]["sharpe"] == 0.0
    assert_json_clean(s)


def test_steady_growth_has_zero_sharpe_and_unbounded_sortino_calmar():
    # per-bar returns all 1%: std 0 -> sharpe 0 by definition; no downside -> sortino/calmar None
    values = [100.0 * 1.01 ** (i + 1) for i in range(50)]
    eq = frame(values)
    s = summarize(eq, no_trades(), flat_bench(eq.index), 252, 100.0)["strategy"]
    assert s["sharpe"] == 0.0
    assert s["sortino"] is None and s["calmar"] is None
    assert s["cagr"] > 0


@settings(max_examples=60, deadline=None)
@given(
    rets=st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=60),
    ppy=st.sampled_from([252.0, 252.0 * 390, 52.0]),
)
def test_sharpe_sortino_volatility_match_hand_formulas(rets, ppy):
    start = 10_000.0
    values, v = [], start
    for r in rets:
        v *= 1 + r
        values.append(v)
    eq = frame(values)
    s = summarize(eq, no_trades(), flat_bench(eq.index), ppy, start)["strategy"]
    r = loop_returns(values, start)
    sd = statistics.stdev(r)
    if sd > 1e-9:
        assert s["sharpe"] == pytest.approx(statistics.fmean(r) / sd * math.sqrt(ppy), rel=1e-6, abs=1e-9)
    assert s["volatility"] == pytest.approx(sd * math.sqrt(ppy), rel=1e-6, abs=1e-12)
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    if downside > 1e-9:
        assert s["sortino"] == pytest.approx(statistics.fmean(r) / downside * math.sqrt(ppy), rel=1e-6)
    assert s["max_drawdown"] == pytest.approx(brute_max_drawdown([start, *values]), abs=1e-12)
    if s["max_drawdown"] > 1e-9 and s["cagr"] is not None:
        assert s["calmar"] == pytest.approx(s["cagr"] / s["max_drawdown"], rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    rets=st.lists(st.floats(-0.1, 0.1), min_size=2, max_size=40),
    scale=st.floats(0.01, 1000.0),
)
def test_ratios_do_not_depend_on_account_size(rets, scale):
    values = list(np.cumprod([1 + r for r in rets]) * 1000.0)
    eq1, eq2 = frame(values), frame([v * scale for v in values])
    a = summarize(eq1, no_trades(), flat_bench(eq1.index), 252, 1000.0)["strategy"]
    b = summarize(eq2, no_trades(), flat_bench(eq2.index), 252, 1000.0 * scale)["strategy"]
    for key in ("total_return", "cagr", "sharpe", "max_drawdown", "volatility"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key


def test_wiped_out_account():
    eq = frame([100.0, 0.0, 0.0])
    s = summarize(eq, no_trades(), flat_bench(eq.index), 252, 100.0)
    assert s["strategy"]["cagr"] == -1.0
    assert s["strategy"]["max_drawdown"] == 1.0
    assert_json_clean(s)


def test_exposure_counts_bars_with_a_position():
    eq = frame([100.0] * 10, invested=[i in (2, 3, 4, 7) for i in range(10)])
    s = summarize(eq, no_trades(), flat_bench(eq.index), 252, 100.0)
    assert s["strategy"]["exposure"] == pytest.approx(4 / 10)
    assert s["buy_and_hold"]["exposure"] == 1.0


def test_one_bar_run_is_json_clean():
    eq = frame([101.0])
    s = summarize(eq, no_trades(), pd.Series([10.0], index=eq.index), 252, 100.0)
    assert s["strategy"]["cagr"] is None  # zero calendar time: no annual rate
    assert s["strategy"]["total_return"] == pytest.approx(0.01)
    assert_json_clean(s)


def test_rejects_empty_equity():
    with pytest.raises(ValueError):
        summarize(frame([]), no_trades(), pd.Series(dtype=float), 252, 100.0)


# --- trade statistics -----------------------------------------------------------------------------


def test_profit_factor_and_trade_stats_from_small_list():
    pnls = [100.0, -50.0, 30.0, -20.0, 0.0]
    eq = frame([1000.0] * 20)
    tr = trades_from(pnls, eq.index, holds=[1, 2, 3, 4, 5])
    s = summarize(eq, tr, flat_bench(eq.index), 252, 1000.0)["strategy"]
    assert s["n_trades"] == 5
    assert s["profit_factor"] == pytest.approx((100 + 30) / (50 + 20))
    assert s["win_rate"] == pytest.approx(2 / 5)  # a break-even trade is not a win
    assert s["avg_trade_pnl"] == pytest.approx(sum(pnls) / 5)
    assert s["best_trade"] == 100.0 and s["worst_trade"] == -50.0
    assert s["avg_hold_bars"] == pytest.approx(3.0)


def test_all_winners_profit_factor_is_none_and_all_losers_zero():
    eq = frame([1000.0] * 5)
    win = summarize(eq, trades_from([5.0, 7.0], eq.index), flat_bench(eq.index), 252, 1000.0)
    assert win["strategy"]["profit_factor"] is None
    assert win["strategy"]["win_rate"] == 1.0
    assert_json_clean(win)
    lose = summarize(eq, trades_from([-5.0, -7.0], eq.index), flat_bench(eq.index), 252, 1000.0)
    assert lose["strategy"]["profit_factor"] == 0.0
    assert lose["strategy"]["win_rate"] == 0.0


def test_no_trades():
    eq = frame([1000.0, 1000.0, 1000.0])
    s = summarize(eq, no_trades(), flat_bench(eq.index), 252, 1000.0)
    strat = s["strategy"]
    assert strat["n_trades"] == 0
    for key in ("win_rate", "profit_factor", "avg_trade_pnl", "best_trade", "worst_trade", "avg_hold_bars"):
        assert strat[key] is None
    assert strat["exposure"] == 1.0  # frame() marks every bar invested; exposure is independent of trades
    assert_json_clean(s)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=0, max_size=12))
def test_any_trade_list_gives_clean_json(pnls):
    eq = frame([1000.0 + i for i in range(15)])
    s = summarize(eq, trades_from(pnls, eq.index), flat_bench(eq.index), 252, 1000.0)
    assert_json_clean(s)
    assert s["strategy"]["n_trades"] == len(pnls)
    losses = -sum(p for p in pnls if p < 0)
    if losses > 0:
        want = sum(p for p in pnls if p > 0) / losses
        # a loss so small (subnormal) that the ratio overflows is unbounded, reported as None
        assert s["strategy"]["profit_factor"] == (pytest.approx(want) if math.isfinite(want) else None)


def test_hold_bars_from_trades_csv_strings_on_intraday_index_across_dst():
    # 1-minute NY bars on the days before and after the March 2024 DST switch; trades as written
    # to trades.csv (ISO strings with their own offsets)
    day1 = pd.date_range("2024-03-08 09:30", periods=390, freq="min", tz="America/New_York")
    day2 = pd.date_range("2024-03-11 09:30", periods=390, freq="min", tz="America/New_York")
    index = day1.append(day2)
    tr = trades_from([10.0, -4.0])
    tr["entry_time"] = [day1[10].isoformat(), day1[380].isoformat()]
    tr["exit_time"] = [day1[40].isoformat(), day2[5].isoformat()]
    assert day1[0].isoformat().endswith("-05:00") and day2[0].isoformat().endswith("-04:00")
    pos = bar_positions(tr["exit_time"], index)
    assert pos.tolist() == [40, 390 + 5]
    eq = frame([1000.0] * len(index), index)
    s = summarize(eq, tr, flat_bench(index), 252 * 390, 1000.0)
    assert s["strategy"]["avg_hold_bars"] == pytest.approx(((40 - 10) + (395 - 380)) / 2)
    assert s["period"]["start"] == "2024-03-08T09:30:00-05:00"


def test_bar_positions_between_bars_maps_to_the_bar_before():
    index = pd.date_range("2024-01-02", periods=5, freq="D")
    got = bar_positions(["2024-01-03 12:00", "2023-12-01", "2024-02-01"], index)
    assert got.tolist() == [1, 0, 4]


# --- buy and hold, on real data -------------------------------------------------------------------


def load_daily(symbol: str) -> pd.DataFrame:
    path = DATA / f"{symbol}_1d.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present (real market data lives beside the repo)")
    df = pd.read_csv(path)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp")))
    return df


def test_buy_and_hold_on_soxx_and_a_fully_invested_strategy_agree():
    bars = load_daily("SOXX").loc["2018-01-01":"2021-12-31"]
    close = bars["close"]
    cash = 100_000.0
    # strategy: fully invested in SOXX from the first close -> its curve is buy-and-hold itself
    eq = frame(list(cash * close / close.iloc[0]), close.index)
    s = summarize(eq, no_trades(), close, 252, cash)
    bh, strat = s["buy_and_hold"], s["strategy"]
    closes = close.tolist()
    years = (close.index[-1] - close.index[0]).days / 365.25
    assert bh["total_return"] == pytest.approx(closes[-1] / closes[0] - 1)
    assert bh["cagr"] == pytest.approx((closes[-1] / closes[0]) ** (1 / years) - 1)
    peak, mdd = closes[0], 0.0
    for c in closes:
        peak = max(peak, c)
        mdd = max(mdd, 1 - c / peak)
    assert bh["max_drawdown"] == pytest.approx(mdd)
    assert 0.2 < mdd < 0.6  # the 2018 and 2020 sell-offs are in this window
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "volatility"):
        assert strat[key] == pytest.approx(bh[key], rel=1e-9), key
    assert bh["n_trades"] == 1 and bh["exposure"] == 1.0
    assert s["period"]["start"] == "2018-01-02T00:00:00"
    assert_json_clean(s)


def test_hand_made_soxx_switching_strategy():
    """In SOXX for two windows, in cash otherwise: equity and trades built by hand from the CSV."""
    bars = load_daily("SOXX").loc["2019-01-01":"2019-12-31"]
    close = bars["close"]
    idx = close.index
    windows = [(10, 60), (120, 200)]  # (entry bar, exit bar) at closes
    cash, qty_held, values, pos_values, rows = 10_000.0, 0.0, [], [], []
    for i, c in enumerate(close):
        for a, b in windows:
            if i == a:
                qty_held, entry = cash / c, c
                cash = 0.0
            elif i == b:
                cash = qty_held * c
                pnl = qty_held * (c - entry)
                rows.append(["SOXX", "long", qty_held, idx[a], entry, idx[b], c, pnl, "signal"])
                qty_held = 0.0
        values.append(cash + qty_held * c)
        pos_values.append(qty_held * c)
    eq = pd.DataFrame(
        {"equity": values, "cash": np.array(values) - pos_values, "position_value": pos_values}, idx
    )
    tr = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    s = summarize(eq, tr, close, 252, 10_000.0)["strategy"]
    assert s["n_trades"] == 2
    assert s["avg_hold_bars"] == pytest.approx(((60 - 10) + (200 - 120)) / 2)
    assert s["exposure"] == pytest.approx(((60 - 10) + (200 - 120)) / len(idx))
    assert s["total_return"] == pytest.approx(values[-1] / 10_000.0 - 1)
    assert s["total_return"] == pytest.approx(
        (close.iloc[60] / close.iloc[10]) * (close.iloc[200] / close.iloc[120]) - 1
    )
    pnls = [r[7] for r in rows]
    assert s["best_trade"] == pytest.approx(max(pnls)) and s["worst_trade"] == pytest.approx(min(pnls))
