"""Stops and sizing in the index's terms: the math (property tests), the O(1) measures against a
direct computation, and the engine on hand-built series (the stop a SOXL entry gets, the size
vol_target gives, entries that wait for the measures, a gap-aware risk_per_trade size)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.config import ConfigError, RiskConfig, RiskSide, load_config
from bot.journal.journal import Journal
from bot.risk import stops
from bot.risk.index import GAP_MIN, DailyVol, Gaps, IndexRisk
from bot.risk.sizing import position_qty
from tests.helpers import days, make_engine

price = st.floats(0.5, 5000, allow_nan=False)
equity = st.floats(1_000, 10_000_000, allow_nan=False)
sigma = st.floats(0.001, 0.08)
lev = st.sampled_from([1.0, 2.0, 3.0])
mult = st.floats(0.5, 4.0)


# -- the math --------------------------------------------------------------------------------------
@given(price, sigma, lev, mult)
def test_sigma_stop_distance_is_k_sigma_abs_l_of_the_entry(px, sig, L, k):
    cfg = RiskConfig(stop_loss_pct=0.0, stop_sigma_mult=k)
    stop = stops.initial_stop(cfg, px, None, sig, L)
    if k * sig * L >= 1:  # a stop at or below zero is no stop
        assert stop is None
        return
    assert (px - stop) / px == pytest.approx(k * sig * L, rel=1e-9)
    # it scales with each of k, sigma and |L|: twice any of them, twice the distance (while above 0)
    for args in ((2 * k, sig, L), (k, 2 * sig, L), (k, sig, 2 * L)):
        k2, s2, l2 = args
        wider = stops.initial_stop(RiskConfig(stop_loss_pct=0.0, stop_sigma_mult=k2), px, None, s2, l2)
        if k2 * s2 * l2 < 1:
            assert px - wider == pytest.approx(2 * (px - stop), rel=1e-9)


@given(price, st.floats(0.002, 0.06), lev, mult)
def test_underlying_atr_stop_is_mult_abs_l_times_the_index_atr_share(px, atr_frac, L, m):
    cfg = RiskConfig(stop_loss_pct=0.0, atr_stop_mult=m, atr_source="underlying")
    stop = stops.initial_stop(cfg, px, 123.0, None, L, atr_frac)  # the fund's own ATR is not used
    if m * L * atr_frac >= 1:
        assert stop is None
    else:
        assert (px - stop) / px == pytest.approx(m * L * atr_frac, rel=1e-9)


def test_index_rules_set_no_level_until_their_measure_is_known():
    cfg = RiskConfig(stop_loss_pct=0.05, stop_sigma_mult=2.5, atr_stop_mult=2, atr_source="underlying")
    assert stops.initial_stop(cfg, 100.0, None, None, 3.0, None) == pytest.approx(95.0)
    # the tightest rule wins: 2.5 x 1% x 3 = 7.5% is wider than 5%; 2 x 3 x 0.5% = 3% is tighter
    assert stops.initial_stop(cfg, 100.0, None, 0.01, 3.0, 0.005) == pytest.approx(97.0)


@given(equity, price, sigma, lev, st.floats(0.001, 0.05))
def test_vol_target_qty_is_inverse_in_sigma(eq, px, sig, L, target):
    cfg = RiskConfig(sizing="vol_target", vol_target_pct=target, fractional=True)
    q = position_qty(cfg, eq, eq, px, None, sig, L)
    q2 = position_qty(cfg, eq, eq, px, None, 2 * sig, L)
    assert q2 <= q
    uncapped = target * eq / (px * L * sig)
    if uncapped <= eq / px * 0.999:  # below the cash/position cap: the position's daily vol is the target
        assert q * px * L * sig == pytest.approx(target * eq, rel=1e-4, abs=px * L * sig * 2e-6)
        assert q2 == pytest.approx(q / 2, rel=1e-4, abs=2e-6)
    else:
        assert q * px <= eq + 1e-6
    assert position_qty(cfg, eq, eq, px, None, None, L) == 0.0  # sigma not known: no size


@given(equity, price, st.floats(0.001, 0.2), st.floats(0.001, 0.5), st.floats(0.0, 0.6), st.booleans())
def test_gap_aware_risk_sizing_never_sizes_a_bigger_loss_than_r(eq, px, r, stop_pct, gap, fractional):
    cfg = RiskConfig(
        sizing="risk_per_trade",
        risk_per_trade=r,
        stop_loss_pct=stop_pct,
        gap_quantile=0.99,
        fractional=fractional,
    )
    stop = stops.initial_stop(cfg, px, None)
    q = position_qty(cfg, eq, eq, px, stop, gap=gap)
    # neither at the stop nor at the gap allowance does the loss exceed r x equity
    assert q * (px - stop) <= r * eq * (1 + 1e-9) + 1e-9
    assert q * px * gap <= r * eq * (1 + 1e-9) + 1e-9
    plain = position_qty(RiskConfig(sizing="risk_per_trade", risk_per_trade=r, stop_loss_pct=stop_pct,
                                    fractional=fractional), eq, eq, px, stop)  # fmt: skip
    assert q <= plain  # the gap can only make the size smaller
    if gap * px <= px - stop:
        assert q == plain
    assert position_qty(cfg, eq, eq, px, stop, gap=None) == 0.0  # allowance not known: no size


# -- the O(1) measures -----------------------------------------------------------------------------
def _closes(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))


@given(st.integers(0, 10_000), st.integers(2, 30))
def test_rolling_sigma_equals_the_rms_of_the_last_n_log_returns(seed, n):
    c = _closes(seed, 80)
    v = DailyVol(n)
    r = np.diff(np.log(c))
    for i, x in enumerate(c):
        v.update(i, float(x))
        if i < n:
            assert v.value is None
        else:
            want = math.sqrt(np.mean(r[i - n : i] ** 2))
            assert v.value == pytest.approx(want, rel=1e-9)


@given(st.integers(0, 10_000), st.integers(2, 10), st.floats(0.5, 0.99))
def test_ewma_sigma_is_seeded_with_the_window_then_follows_the_recursion(seed, n, lam):
    c = _closes(seed, 60)
    r2 = np.diff(np.log(c)) ** 2
    v = DailyVol(n, lam)
    for i, x in enumerate(c):
        v.update(i, float(x))
    var = r2[:n].mean()
    for x in r2[n:]:
        var = lam * var + (1 - lam) * x
    assert v.var == pytest.approx(var, rel=1e-9)


def test_intraday_bars_count_one_return_per_session_and_revise_replaces_it():
    v = DailyVol(2)
    for session, closes in enumerate([[100, 101, 102], [103, 99], [104, 108, 110]]):
        for c in closes:
            v.update(session, c)
    # sessions end at 102, 99, 110: the daily returns are log(99/102) and log(110/99)
    want = math.sqrt((math.log(99 / 102) ** 2 + math.log(110 / 99) ** 2) / 2)
    assert v.value == pytest.approx(want, rel=1e-12)
    one = DailyVol(2)
    for session, c in enumerate([102, 99, 110]):
        one.update(session, c)
    assert one.value == pytest.approx(v.value, rel=1e-12)


@given(st.lists(st.floats(-0.2, 0.2), min_size=GAP_MIN, max_size=60), st.floats(0.5, 0.999))
def test_adverse_gap_quantile_is_numpys_on_the_adverse_moves(gaps, q):
    g = Gaps(250)
    close = 100.0
    for session, x in enumerate(gaps):
        g.update(session, close, close)  # the first session sets the close the next one gaps from
        close = close * (1 + x)
    g.update(len(gaps), close, close)
    got = np.array(g.gaps)
    assert got == pytest.approx(np.array(gaps), abs=1e-12)
    assert g.adverse(q) == pytest.approx(np.quantile(np.maximum(0, -got), q), abs=1e-12)
    assert g.adverse(q, -1.0) == pytest.approx(np.quantile(np.maximum(0, got), q), abs=1e-12)


def test_too_few_gaps_give_no_allowance():
    g = Gaps(250)
    for s in range(GAP_MIN):  # GAP_MIN bars: GAP_MIN - 1 gaps
        g.update(s, 100.0, 100.0)
    assert g.adverse(0.99) is None


def test_live_warm_up_of_history_bars_gives_the_state_of_a_run_from_the_start():
    cfg = load_config()
    cfg.risk.stop_sigma_mult = 2.5
    c = _closes(3, 400)
    full, warm = IndexRisk(cfg), IndexRisk(cfg)
    for i, x in enumerate(c):
        full.on_bar(i, (x, x, x, x), {})
    need = warm.history_bars
    for i in range(len(c) - need, len(c)):
        warm.on_bar(i, (c[i], c[i], c[i], c[i]), {})
    assert warm.vol.value == full.vol.value  # type: ignore[union-attr]


# -- the engine on hand-built series -----------------------------------------------------------------
SIG = 0.01  # the index alternates +-1% log moves: its daily sigma is exactly 1%


def _index(n: int) -> list[float]:
    return [100 * math.exp(SIG * (i % 2)) for i in range(n)]


def _run(cfg, rows, journal=None):
    """rows: (direction, index close, {symbol: (o, h, l, c)}) per business day, through `Engine.step`."""
    eng, broker = make_engine(cfg, journal)
    for t, (d, ic, bars) in zip(days(len(rows)), rows, strict=True):
        eng.step(t, t.value // 86_400_000_000_000, bars, d, index_bar=(ic, ic, ic, ic))
    return eng, broker


def _cfg(**risk):
    cfg = load_config()
    cfg.risk.stop_loss_pct = risk.pop("stop_loss_pct", 0.0)
    for k, v in risk.items():
        setattr(cfg.risk, k, v)
    return cfg


def test_a_soxl_entry_gets_a_stop_of_k_sigma_times_three_below_its_fill(tmp_path):
    cfg = _cfg(stop_sigma_mult=2.5, vol_lookback=10)
    ix = _index(14)
    rows = [(0, ix[i], {"SOXL": (50.0,) * 4}) for i in range(12)]
    rows.append((1, ix[12], {"SOXL": (50.0,) * 4}))  # decide +1 at this close
    rows.append((1, ix[13], {"SOXL": (52.0, 53.0, 51.0, 52.0)}))  # filled at the open, 52
    eng, broker = _run(cfg, rows)
    assert eng.pos is not None and eng.pos.entry_price == 52.0
    assert eng.pos.stop == pytest.approx(52.0 * (1 - 2.5 * SIG * 3), rel=1e-9)
    stop_order = next(o for o in broker.open_orders() if o.stop_price is not None)
    assert stop_order.stop_price == pytest.approx(eng.pos.stop)
    # SOXS (L = -3) gets the same distance; a symbol with no leverage listed counts |L| = 1
    assert eng.stop_for("SOXS", 10.0) == pytest.approx(10.0 * (1 - 0.075))
    assert eng.stop_for("XYZ", 10.0) == pytest.approx(10.0 * (1 - 0.025))


def test_a_side_may_stop_in_the_index_terms_while_the_other_keeps_its_fixed_stop():
    """[risk.bear] sets a sigma stop, [risk] keeps a fixed 8%: the engine follows sigma for the bear side
    alone, and each side's entry is stopped by its own rule."""
    cfg = _cfg(stop_loss_pct=0.08, vol_lookback=10)
    cfg.risk.bear = RiskSide(stop_sigma_mult=2.0)
    eng, _ = _run(cfg, [(0, x, {}) for x in _index(12)])
    assert eng.ix is not None and eng.ix.vol is not None  # only the bear side needs it
    assert eng.stop_for("SOXL", 50.0) == pytest.approx(50.0 * (1 - 0.08))
    assert eng.stop_for("SOXS", 10.0) == pytest.approx(10.0 * (1 - min(0.08, 2.0 * SIG * 3)), rel=1e-9)
    cfg.risk.bear = None
    assert IndexRisk.for_settings(cfg) is None  # nobody uses the index's measures: nothing followed


def test_vol_target_sizes_the_position_to_the_target_daily_volatility():
    cfg = _cfg(sizing="vol_target", vol_target_pct=0.01, vol_lookback=10, fractional=True)
    ix = _index(14)
    rows = [(0, ix[i], {"SOXL": (20.0,) * 4}) for i in range(12)]
    rows += [(1, ix[12], {"SOXL": (20.0,) * 4}), (1, ix[13], {"SOXL": (20.0,) * 4})]
    eng, _ = _run(cfg, rows)
    # target 1% of 100,000 = 1,000 a day; the position moves 3 x 1% a day: worth 33,333.33
    assert eng.pos is not None
    assert eng.pos.qty * 20.0 == pytest.approx(100_000 * 0.01 / (3 * SIG), abs=20.0 * 1e-6)


def test_entries_wait_for_the_index_volatility_and_say_so(tmp_path):
    cfg = _cfg(stop_sigma_mult=2.5, vol_lookback=10)
    j = Journal(tmp_path / "j.db")
    j.start_run("backtest", "x", {})
    ix = _index(5)
    rows = [(0, ix[0], {"SOXL": (50.0,) * 4})] + [(1, ix[i], {"SOXL": (50.0,) * 4}) for i in range(1, 5)]
    eng, _ = _run(cfg, rows, j)
    assert eng.pos is None and not eng.trades
    risk = j.query("SELECT action, reason FROM risk")
    assert (risk.action == "block").any()
    assert risk.reason.str.contains("daily volatility is not known yet \\(1 of 10 daily returns\\)").any()
    j.close()


def test_gap_aware_risk_per_trade_sizes_for_the_bad_gap_not_the_stop():
    cfg = _cfg(sizing="risk_per_trade", risk_per_trade=0.01, stop_loss_pct=0.05, gap_quantile=0.99,
               gap_lookback=40, fractional=True)  # fmt: skip
    n = GAP_MIN + 12
    closes = [40.0] * n
    opens = [40.0] * n
    opens[5] = 40.0 * 0.8  # one -20% overnight gap among 31: the 99% quantile is near it
    rows = [(0, 100.0, {"SOXL": (opens[i], 40.0, min(opens[i], 40.0), closes[i])}) for i in range(n - 2)]
    rows += [(1, 100.0, {"SOXL": (40.0,) * 4}), (1, 100.0, {"SOXL": (40.0,) * 4})]
    eng, _ = _run(cfg, rows)
    gaps = np.maximum(0, -(np.array(opens[1 : n - 1]) / 40.0 - 1))
    allowance = float(np.quantile(gaps, 0.99))
    assert allowance > 0.05  # the gap is the bigger loss per share here
    assert eng.pos is not None
    assert eng.pos.qty == pytest.approx(math.floor(0.01 * 100_000 / (40.0 * allowance) * 1e6) / 1e6)
    assert eng.pos.qty * 40.0 * allowance <= 0.01 * 100_000 + 1e-6


def test_underlying_atr_stop_is_scaled_by_the_fund_leverage():
    cfg = _cfg(atr_stop_mult=2.0, atr_period=3, atr_source="underlying")
    eng, _ = make_engine(cfg)
    ts = days(8)
    for i, t in enumerate(ts[:-1]):
        d = 1 if i == len(ts) - 2 else 0
        # index: every bar's range is 2 around 100 (true range 2): ATR 2, 2% of its close
        eng.step(
            t, t.value // 86_400_000_000_000, {"SOXL": (30.0,) * 4}, d, index_bar=(100.0, 101.0, 99.0, 100.0)
        )
    t = ts[-1]
    eng.step(
        t, t.value // 86_400_000_000_000, {"SOXL": (30.0,) * 4}, 1, index_bar=(100.0, 101.0, 99.0, 100.0)
    )
    assert eng.pos is not None
    assert eng.pos.stop == pytest.approx(30.0 * (1 - 2.0 * 3 * 0.02), rel=1e-9)


def test_config_rejects_a_zero_leverage_and_accepts_a_sigma_stop_for_risk_sizing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[leveraged.funds]]\nsymbol = "SOXL"\nleverage = 0\nunderlying = "SOX"\n')
    with pytest.raises(ConfigError, match="must be non-zero"):
        load_config(bad)
    ok = tmp_path / "ok.toml"
    ok.write_text("[risk]\nsizing = 'risk_per_trade'\nstop_loss_pct = 0\nstop_sigma_mult = 2.5\n")
    assert load_config(ok).risk.stop_sigma_mult == 2.5
    ix = IndexRisk(load_config(ok))  # L from [leveraged]: SOXL +3 and SOXS -3 by default, else 1
    assert (ix.leverage("SOXL"), ix.leverage("SOXS"), ix.leverage("XYZ")) == (3.0, -3.0, 1.0)


def test_daily_vol_matches_pandas_rolling_on_real_soxx(shared_data):
    from bot.data.csv_feed import load_csv

    c = load_csv(shared_data, "SOXX", "1d", "2015-01-01", "2018-12-31")["close"]
    v = DailyVol(20)
    got = []
    for i, x in enumerate(c.to_numpy()):
        v.update(i, float(x))
        got.append(v.value if v.value is not None else np.nan)
    want = np.sqrt((np.log(c).diff() ** 2).rolling(20).mean())
    pd.testing.assert_series_equal(pd.Series(got, index=c.index), want, check_names=False, rtol=1e-9)


def test_a_bar_decided_before_the_close_then_revised_leaves_the_measures_of_the_final_bar():
    """Live daily decisions before the close step the day's bar so far, then revise it with the final
    values: sigma, the index's ATR and the gaps must end as if the final bar had been stepped."""
    cfg = _cfg(stop_sigma_mult=2.5, vol_lookback=3, atr_stop_mult=2.0, atr_period=3, atr_source="underlying",
               sizing="risk_per_trade", gap_quantile=0.9, gap_source="underlying")  # fmt: skip
    rng = np.random.default_rng(5)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 40)))
    final = [(c * 0.99, c * 1.02, c * 0.97, c) for c in closes]
    a, _ = make_engine(cfg)
    b, _ = make_engine(cfg)
    for t, bar in zip(days(len(final)), final, strict=True):
        s = t.value // 86_400_000_000_000
        so_far = (bar[0], bar[1] * 0.995, bar[2] * 1.005, bar[3] * 1.01)
        a.step(t, s, {"SOXL": (10.0,) * 4}, 0, index_bar=so_far)
        a.revise_bar({"SOXL": (10.0,) * 4}, bar)
        b.step(t, s, {"SOXL": (10.0,) * 4}, 0, index_bar=bar)
    for x, y in ((a.ix, b.ix),):
        assert x.vol.var == y.vol.var and x.vol.count == y.vol.count
        assert x.atr.value == pytest.approx(y.atr.value, rel=1e-12)
        assert list(x.index_gaps.gaps) == list(y.index_gaps.gaps) and x._close == y._close
    assert a.ix.terms("SOXL") == b.ix.terms("SOXL")
