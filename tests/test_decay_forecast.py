"""The decay forecast (bot/risk/decay.py) and the entry gate `[risk] max_expected_decay_pct`
(bot/risk/decay_gate.py, applied in bot/execution/decide.py) on hand-built series."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.config import ConfigError, load_config
from bot.journal.journal import Journal
from bot.risk.decay import MIN_OBS, EwmaVariance, ewma_variance, expected_decay, trailing_variance
from tests.helpers import drive, make_cfg, make_engine


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.5, 2.0), min_size=1, max_size=80))
def test_the_stepper_and_the_array_agree_to_the_bit(factors):
    closes = 50.0 * np.cumprod(factors)
    stepper = EwmaVariance()
    stepped = [stepper.update(c) for c in closes]
    arr = ewma_variance(closes)
    for i, v in enumerate(stepped):
        if v is None:
            assert np.isnan(arr[i]) and i < MIN_OBS
        else:
            assert v == arr[i]


def test_revise_redoes_the_last_close():
    a, b = EwmaVariance(), EwmaVariance()
    closes = 100 * np.cumprod(1 + 0.02 * np.sin(np.arange(40)))
    for c in closes[:-1]:
        a.update(c)
        b.update(c)
    a.update(closes[-1] * 1.1)  # the day's bar so far
    a.revise(closes[-1])  # its final close
    b.update(closes[-1])
    assert a.value == b.value


def test_forecast_of_a_steady_market_equals_its_realised_drag():
    """An index moving +-1% every day: the EWMA converges on 1e-4 exactly, and the forecast drag
    over N sessions equals the textbook drag realised over N such sessions."""
    closes = 100 * np.cumprod([1.0] + [1.01, 0.99] * 30)
    r = closes[1:] / closes[:-1] - 1
    v = ewma_variance(closes)[-1]
    assert v == pytest.approx(1e-4, rel=1e-9)
    f = expected_decay(-3.0, v, 20, expense_ratio=0.0, rate=0.0)
    assert f.vol_drag == pytest.approx(-6.0 * np.sum(r[-20:] ** 2), rel=1e-9)
    g = expected_decay(3.0, v, 252, expense_ratio=0.01, rate=0.05)
    assert g.expense == pytest.approx(-0.01) and g.financing == pytest.approx(-2 * 0.05)
    assert expected_decay(-3.0, v, 252, rate=0.05).financing == pytest.approx(4 * 0.05)


def test_trailing_variance_is_the_sample_variance_of_the_window():
    closes = 100 * np.cumprod(1 + np.random.default_rng(1).normal(0, 0.02, 60))
    r = closes[1:] / closes[:-1] - 1
    assert trailing_variance(closes)[-1] == pytest.approx(np.var(r[-20:], ddof=1), rel=1e-12)
    assert np.isnan(trailing_variance(closes)[19])


def _bars(daily_move: float, n: int) -> list[dict[str, tuple[float, float, float, float]]]:
    """SOXL zig-zagging +-daily_move and SOXS the mirror, as flat bars."""
    out, bull, bear = [], 50.0, 50.0
    for i in range(n):
        s = 1 if i % 2 else -1
        bull *= 1 + s * daily_move
        bear *= 1 - s * daily_move
        out.append({"SOXL": (bull,) * 4, "SOXS": (bear,) * 4})
    return out


@pytest.mark.parametrize("move", [0.03, 0.15])
def test_the_gate_blocks_a_costly_hold_and_journals_the_figures(tmp_path, move):
    """30 sessions of SOXL moving +-move (index sigma move/3 a day), then a +1 signal. Planned hold 10
    sessions, limit 1%: the calm market passes, the wild one is blocked with the forecast journaled."""
    cfg = make_cfg(stop_loss_pct=0.0, planned_hold_days=10, max_expected_decay_pct=0.01)
    j = Journal(tmp_path / "j.db")
    j.start_run("test", "s", {})
    eng, broker = make_engine(cfg, j)
    bars = _bars(move, 32)
    drive(eng, broker, [(None, b) for b in bars[:30]] + [(1, bars[30]), (1, bars[31])])
    var_index = move**2 / 9  # every squared SOXL return is move^2
    drag = 3 * 10 * var_index
    expense = 0.0075 * 10 / 252
    expected = drag + expense  # short_rate 0: no financing
    risk = j.query("SELECT action, reason, details FROM risk")
    if expected <= 0.01:
        assert eng.pos is not None and eng.pos.symbol == "SOXL"
        assert "block" not in set(risk.action)
    else:
        assert eng.pos is None and not broker.positions
        row = risk[risk.action == "block"].iloc[-1]
        assert row.reason.startswith("no entry into SOXL: expected decay")
        d = json.loads(row.details)
        assert d["expected_decay"] == pytest.approx(expected, rel=1e-5)
        assert d["vol_drag"] == pytest.approx(-drag, rel=1e-5) and d["hold_days"] == 10
        assert d["limit"] == 0.01


def test_no_forecast_yet_blocks_and_says_why(tmp_path):
    cfg = make_cfg(stop_loss_pct=0.0, planned_hold_days=5, max_expected_decay_pct=0.05)
    j = Journal(tmp_path / "j.db")
    j.start_run("test", "s", {})
    eng, broker = make_engine(cfg, j)
    bars = _bars(0.01, 6)
    drive(eng, broker, [(None, b) for b in bars[:4]] + [(1, bars[4]), (1, bars[5])])
    assert eng.pos is None
    reason = j.query("SELECT reason FROM risk WHERE action='block'").reason.iloc[-1]
    assert reason == f"no entry into SOXL: no volatility forecast yet (needs {MIN_OBS} closes of SOXL)"


def test_a_symbol_not_declared_leveraged_is_not_gated(tmp_path):
    cfg = make_cfg(stop_loss_pct=0.0, planned_hold_days=5, max_expected_decay_pct=0.0001)
    cfg.universe.bull = "SOXX"
    eng, broker = make_engine(cfg)
    drive(eng, broker, [(1, {"SOXX": (10.0,) * 4}), (1, {"SOXX": (10.0,) * 4})])
    assert eng.pos is not None and eng.pos.symbol == "SOXX"


def test_the_gate_needs_a_planned_hold(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[risk]\nmax_expected_decay_pct = 0.05\n")
    with pytest.raises(ConfigError, match="set planned_hold_days"):
        load_config(p)


def test_backtest_and_event_skipping_agree_with_the_gate_on():
    """The gate's EWMA follows quiet bars too: the event-skipping driver and the per-bar loop give the
    same trades and the same verdicts, and the gate did block some entries."""
    from bot.run.assemble import build_strategies, load_market
    from bot.run.backtest import run_backtest

    cfg = load_config()
    cfg.data.synthetic_years = 6
    cfg.risk.planned_hold_days, cfg.risk.max_expected_decay_pct = 10, 0.02
    cfg.risk.fractional = True
    bars, _ = load_market(cfg)
    strategies = build_strategies(cfg)
    runs = []
    for every_bar in (True, False):
        j = Journal(":memory:", buffered=True)
        j.start_run("backtest", "s", {})
        res = run_backtest(cfg, strategies, bars, j, every_bar=every_bar)
        j.flush()
        runs.append((res.trades, j.query("SELECT ts, action, reason, details FROM risk")))
    (t1, r1), (t2, r2) = runs
    assert t1.equals(t2) and r1.equals(r2)
    assert (r1.action == "block").sum() >= 1 and (r1.action == "allow").sum() >= 1


def test_garch_forecast_is_near_the_true_variance():
    pytest.importorskip("arch", reason="GARCH needs the optional 'arch' package (soxbot[research])")
    from bot.risk.decay import garch_variance

    r = np.random.default_rng(3).normal(0, 0.02, 3000)
    assert garch_variance(r, 20) == pytest.approx(0.02**2, rel=0.1)


def test_live_warm_up_feeds_the_gate(tmp_path):
    """The Alpaca driver against the real sandbox: its warm-up puts the traded fund's history into the
    gate's EWMA, so the first live decision already has the forecast a backtest would have."""
    from tests.alpaca_support import bot_config, in_process_run
    from tests.sandbox_support import admin, at, daily_bars, serving

    bars = daily_bars()
    lev = '[[leveraged.funds]]\nsymbol = "BBB"\nleverage = 3\nunderlying = "AAA"\nexpense_ratio = 0.01\n'
    with serving(tmp_path / "bars", bars, "1d", "2024-06-03") as srv:
        admin(srv, "reset", {"start": at("2024-06-03 09:00")})
        cfg_file = bot_config(
            tmp_path, srv.url, universe=("AAA", "BBB", ""), keys=("PKTEST", "SECRET"),
            risk="planned_hold_days = 10\nmax_expected_decay_pct = 0.5", extra=lev,
        )  # fmt: skip
        cfg = load_config(cfg_file)
        j = Journal(cfg.journal.path)
        try:
            r = in_process_run(cfg, j)
            r.reconcile()
            r.warm_up()
            f = r.engine.decay.forecast("BBB", pd.Timestamp("2024-06-03").date())
        finally:
            j.close()
    closes = bars["BBB"].loc[:"2024-05-31", "close"].to_numpy()[-r.window :]
    assert f is not None
    assert f.variance == pytest.approx(ewma_variance(closes)[-1] / 9, rel=1e-12)
