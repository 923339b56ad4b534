"""Decay and carry attribution (bot/risk/leverage.py, bot/risk/attribution.py): the terms sum to the
trade's log return, each term is what its definition says on a fund built by the daily-reset rule,
and on real SOXL/SOXS trades every trade is attributed and adds up."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.config import LeveragedConfig, LeveragedFund, load_config
from bot.data.rates import Rates
from bot.risk.attribution import Pair, attribute_trades
from bot.risk.leverage import TERMS, attribute, drag_coefficient, financing_multiplier

LEVERAGE = st.sampled_from([-3.0, -2.0, -1.0, 2.0, 3.0, 1.5, -1.5])


def test_financing_follows_the_derivation():
    # +3x borrows 2 x its assets: pays 2r; -3x holds its assets plus the proceeds of a 3x short: earns 4r
    assert financing_multiplier(3.0) == -2.0
    assert financing_multiplier(-3.0) == 4.0
    assert financing_multiplier(1.0) == 0.0
    assert drag_coefficient(3.0) == 3.0 and drag_coefficient(-3.0) == 6.0 and drag_coefficient(1.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    lev=LEVERAGE,
    prices=st.tuples(*[st.floats(0.01, 1e9)] * 4),
    segs=st.lists(st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3)), min_size=0, max_size=30),
    accr=st.lists(st.tuples(st.floats(0, 5), st.floats(-0.01, 0.2)), min_size=0, max_size=30),
    er=st.floats(0, 0.05),
)
def test_terms_sum_to_the_log_return(lev, prices, segs, accr, er):
    pe, px, ue, ux = prices
    a = attribute(
        lev,
        pe,
        px,
        ue,
        ux,
        [s[0] for s in segs],
        [s[1] for s in segs],
        [x[0] for x in accr],
        [x[1] for x in accr],
        er,
    )
    assert math.fsum(a.terms().values()) == pytest.approx(math.log(px / pe), abs=1e-12)
    assert a.leveraged_index == pytest.approx(lev * math.log(ux / ue), rel=1e-12, abs=1e-15)


def _fund_by_the_rule(lev, index_close, dates, er, rate):
    """A fund that follows the daily-reset rule exactly: each close, 1 + L r_t + carry_t."""
    f = [100.0]
    for t in range(1, len(index_close)):
        r = index_close[t] / index_close[t - 1] - 1
        days = (dates[t] - dates[t - 1]).days
        carry = (-er + (1 - lev) * rate) * days / 365
        f.append(f[-1] * (1 + lev * r + carry))
    return np.array(f)


@settings(max_examples=100, deadline=None)
@given(
    lev=LEVERAGE,
    rets=st.lists(st.floats(-0.08, 0.08), min_size=3, max_size=40),
    er=st.floats(0, 0.02),
    rate=st.floats(0, 0.08),
    span=st.data(),
)
def test_each_term_is_its_definition_on_a_rule_built_fund(lev, rets, er, rate, span):
    """Close-to-close holds of a fund built by the rule: the rest is exactly the compounding beyond
    second order, sum of ln(1 + L r + c) - L ln(1 + r) + (L^2 - L)/2 r^2 - c."""
    dates = pd.bdate_range("2024-01-02", periods=len(rets) + 1)
    u = 1000.0 * np.cumprod([1.0, *[1 + r for r in rets]])
    f = _fund_by_the_rule(lev, u, dates, er, rate)
    fund = LeveragedFund(symbol="X", leverage=lev, underlying="I", expense_ratio=er)
    # opens away from the closes, so a fill at a close price is a fill at the close
    fb = pd.DataFrame({"open": f * 1.5, "high": f * 1.6, "low": f * 0.5, "close": f}, index=dates)
    ub = pd.DataFrame({"open": u, "high": u, "low": u, "close": u}, index=dates)
    pair = Pair.of(fund, fb, ub)
    i = span.draw(st.integers(1, len(rets) - 1))
    j = span.draw(st.integers(i + 1, len(rets)))
    a = pair.attribute(dates[i], f[i], dates[j], f[j], Rates.constant(rate))
    expected_rest = 0.0
    for t in range(i + 1, j + 1):
        r = u[t] / u[t - 1] - 1
        c = (-er + (1 - lev) * rate) * (dates[t] - dates[t - 1]).days / 365
        expected_rest += math.log(1 + lev * r + c) - lev * math.log(1 + r) + drag_coefficient(lev) * r * r - c
    assert a.rest == pytest.approx(expected_rest, abs=1e-11)
    assert a.sessions == j - i
    assert a.days == (dates[j] - dates[i]).days
    assert a.expense == pytest.approx(-er * a.days / 365, abs=1e-15)
    assert a.financing == pytest.approx((1 - lev) * rate * a.days / 365, abs=1e-15)


def test_a_stop_inside_the_bar_is_placed_by_the_fund_price():
    """Entry at the open, exit at a stop inside the same session: the exit's index level is the one
    the fund implies from the previous closes, and no close is held through (no fees, no interest)."""
    dates = pd.bdate_range("2024-01-02", periods=3)
    idx = pd.DataFrame(
        {
            "open": [100, 101, 102.0],
            "high": [101, 102, 103.0],
            "low": [99, 98, 97.0],
            "close": [100, 100, 101.0],
        },
        index=dates,
    )
    fnd = pd.DataFrame(
        {"open": [30, 30.9, 32.0], "high": [31, 32, 33.0], "low": [29, 28, 27.0], "close": [30, 30, 30.9]},
        index=dates,
    )
    fund = LeveragedFund(symbol="X", leverage=3, underlying="I", expense_ratio=0.01)
    pair = Pair.of(fund, fnd, idx)
    a = pair.attribute(dates[1], 30.9, dates[1], 29.1, Rates.constant(0.05))
    # index at entry: its open 101; at exit: 100 x (1 + (29.1/30 - 1)/3) = 99
    assert a.index_log == pytest.approx(math.log(99 / 101))
    assert a.days == 0 and a.expense == 0 and a.financing == 0
    assert a.vol_drag == pytest.approx(-3 * ((99 / 100 - 1) ** 2 - (101 / 100 - 1) ** 2))
    assert math.fsum(a.terms().values()) == pytest.approx(math.log(29.1 / 30.9), abs=1e-15)


def test_a_missing_index_bar_is_named_not_guessed():
    dates = pd.bdate_range("2024-01-02", periods=6)
    c = np.array([10, 11, 12, 13, 14, 15.0])
    bars = pd.DataFrame({"open": c, "high": c, "low": c, "close": c}, index=dates)
    trades = pd.DataFrame(
        {
            "symbol": ["SOXL"],
            "entry_time": [dates[1]],
            "entry_price": [11.0],
            "exit_time": [dates[5]],
            "exit_price": [15.0],
        }
    )
    cols, notes = attribute_trades(
        trades, {"SOXL": bars, "SOX": bars.drop(dates[3])}, LeveragedConfig(), Rates.constant(0.0)
    )
    assert cols["log_return"].isna().all()
    assert notes == [f"SOX has no bar on {dates[3].date()} (held) (1 trade not attributed)"]


# -- real SOXL/SOXS trades --------------------------------------------------------------------------
def test_real_soxl_soxs_trades_add_up(shared_data, tmp_path):
    """A backtest on the real files (SOXX signal, SOXL/SOXS traded, 2011-2026, stops and a max hold
    so there are many trades of every exit kind): every trade is attributed against SOX, its terms
    sum to its log return, and the journal holds the same rows."""
    from bot.report.writer import write_outputs
    from bot.run.assemble import build_strategies, load_market
    from bot.run.leveraged import prepare

    rates = tmp_path / "rates.csv"
    rates.write_text("date,rate\n2010-01-04,0.125\n2022-06-16,1.625\n2023-07-27,5.375\n")
    cfg = load_config()
    cfg.data.source, cfg.data.dir, cfg.data.start = "csv", shared_data, "2011-01-01"
    cfg.risk.fractional, cfg.risk.stop_loss_pct, cfg.risk.max_hold_days = True, 0.08, 15
    cfg.leveraged.rates_file = rates
    bars, _ = load_market(cfg)
    summary = write_outputs(cfg, build_strategies(cfg), bars, tmp_path / "out", leverage=prepare(cfg, bars))
    trades = pd.read_csv(tmp_path / "out" / "trades.csv")
    assert len(trades) > 50 and set(trades.symbol) == {"SOXL", "SOXS"}
    assert set(trades.exit_reason) >= {"stop_loss", "max_hold", "signal"}
    assert trades["log_return"].notna().all(), summary["attribution"]["notes"]
    assert (trades.underlying == "SOX").all()
    assert np.allclose(trades.log_return, np.log(trades.exit_price / trades.entry_price), rtol=0, atol=1e-12)
    terms = trades[[f"attr_{t}" for t in TERMS]].sum(axis=1)
    assert np.abs(terms - trades.log_return).max() < 1e-12
    assert (trades.loc[trades.symbol == "SOXL", "attr_financing"] <= 0).all()  # a long fund pays
    assert (trades.loc[trades.symbol == "SOXS", "attr_financing"] >= 0).all()  # an inverse one earns
    assert (trades.attr_vol_drag.groupby(trades.symbol).sum() < 0).all()
    # the index term explains most of it: the rest is smaller than the return in a typical trade
    assert trades.attr_rest.abs().median() < 0.5 * trades.log_return.abs().median()
    by = summary["attribution"]["by_symbol"]
    assert by["all"]["trades"] == len(trades)
    assert by["all"]["log_return"] == pytest.approx(trades.log_return.sum(), abs=1e-9)
    with sqlite3.connect(tmp_path / "out" / "journal.db") as db:
        rows = pd.read_sql_query("SELECT * FROM attribution ORDER BY rowid", db)
    assert len(rows) == len(trades)
    assert np.allclose(rows.rest, trades.attr_rest, rtol=0, atol=1e-15)
    assert "Decay and carry" in (tmp_path / "out" / "report.html").read_text()
