"""The event-skipping backtest driver (`bot/run/eventskip.py`, the default) against the plain per-bar loop
(`run_backtest(..., every_bar=True)`): the same trades, the same equity curve bar for bar, the same
journal (signals, risk verdicts, orders, fills, equity, state) and the same engine state at the end,
on real and synthetic data, across the stop, take-profit, trailing, ATR-stop, max-hold, daily-loss and
kill-switch settings and both market timings (`daily_decision_offset_minutes` 0: next open; 10: the
decision bar's close)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.config import Settings, StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.data.synthetic import generate
from bot.journal.journal import Journal
from bot.run.backtest import BacktestResult, run_backtest, set_id_for
from bot.signals.plugins import create

SYMS = ("SOXX", "SOXL", "SOXS")
TABLES = {  # journal tables and the columns that hold wall-clock times (not compared)
    "signals": (),
    "risk": (),
    "orders": ("updated_at",),
    "fills": (),
    "equity": (),
    "state": ("updated_at",),
}
RISKS: dict[str, dict[str, Any]] = {
    "stop": {"stop_loss_pct": 0.08},
    "no_stop": {"stop_loss_pct": 0.0},
    "trailing_tp": {"stop_loss_pct": 0.06, "trailing_stop_pct": 0.04, "take_profit_pct": 0.07},
    "atr": {
        "stop_loss_pct": 0.0,
        "atr_stop_mult": 1.5,
        "atr_period": 10,
        "sizing": "risk_per_trade",
        "risk_per_trade": 0.05,
    },
    "max_hold": {"max_hold_days": 3},
    "daily_loss": {"daily_loss_limit_pct": 0.03},
    "kill_switch": {"max_drawdown_pct": 0.3},
    # stops and sizes in the index's terms (bot/risk/index.py)
    "sigma_stop": {"stop_loss_pct": 0.0, "stop_sigma_mult": 2.5},
    "vol_target": {
        "stop_loss_pct": 0.0,
        "stop_sigma_mult": 2.0,
        "sizing": "vol_target",
        "vol_ewma_lambda": 0.94,
    },
    "gap_risk": {
        "stop_loss_pct": 0.0,
        "atr_stop_mult": 2.0,
        "atr_source": "underlying",
        "sizing": "risk_per_trade",
        "risk_per_trade": 0.02,
        "gap_quantile": 0.99,
        "gap_source": "instrument",
    },
    "all": {
        "stop_loss_pct": 0.07,
        "trailing_stop_pct": 0.06,
        "take_profit_pct": 0.15,
        "atr_stop_mult": 2.5,
        "max_hold_days": 5,
        "daily_loss_limit_pct": 0.04,
        "max_drawdown_pct": 0.5,
    },
    # each side its own rules ([risk.bull] / [risk.bear]) and regime gates read where the engine decides
    "sides": {
        "stop_loss_pct": 0.0,
        "bull": {"trailing_stop_pct": 0.12, "max_hold_days": 30},
        "bear": {"stop_loss_pct": 0.06, "take_profit_pct": 0.1, "max_hold_days": 4, "fraction": 0.5},
    },
    "gates": {
        "stop_loss_pct": 0.08,
        "bull": {"regime_drawdown_pct": 0.25, "regime_peak_bars": 126},
        "bear": {"regime_sma": 200, "regime_drawdown_pct": 0.1, "max_hold_days": 5},
    },
}
MINUTE_RISKS: dict[str, dict[str, Any]] = {  # minute bars move less: tighter levels
    "stop": {"stop_loss_pct": 0.01},
    "no_stop": {"stop_loss_pct": 0.0},
    "trailing_tp": {"stop_loss_pct": 0.01, "trailing_stop_pct": 0.005, "take_profit_pct": 0.01},
    "atr": {"stop_loss_pct": 0.0, "atr_stop_mult": 3.0, "sizing": "risk_per_trade", "risk_per_trade": 0.01},
    "max_hold": {"max_hold_days": 2},
    "daily_loss": {"daily_loss_limit_pct": 0.01},
    "kill_switch": {"max_drawdown_pct": 0.1},
    "sigma_stop": {"stop_loss_pct": 0.0, "stop_sigma_mult": 0.5, "vol_lookback": 5},
    "gap_risk": {
        "stop_loss_pct": 0.0,
        "stop_sigma_mult": 0.5,
        "vol_lookback": 5,
        "sizing": "risk_per_trade",
        "risk_per_trade": 0.01,
        "gap_quantile": 0.9,
        "gap_lookback": 20,
        "gap_source": "underlying",
    },
    "all": {
        "stop_loss_pct": 0.02,
        "trailing_stop_pct": 0.01,
        "take_profit_pct": 0.02,
        "atr_stop_mult": 5.0,
        "max_hold_days": 2,
        "daily_loss_limit_pct": 0.02,
        "max_drawdown_pct": 0.2,
    },
}
STRATEGIES = {
    "ma_cross": [("ma_cross", {"fast": 5, "slow": 20})],
    "ma_slow": [("ma_cross", {"fast": 60, "slow": 240})],
    "three": [("ma_cross", {"fast": 10, "slow": 30}), ("rsi", {}), ("support", {})],
}


def make_cfg(
    risk: dict[str, Any], strategies: str, offset: int = 0, tf: str = "1d", **broker: Any
) -> Settings:
    cfg = load_config()
    cfg.data.timeframe = tf
    cfg.service.daily_decision_offset_minutes = offset
    cfg.strategies = [StrategyConfig(name=n, params=p) for n, p in STRATEGIES[strategies]]
    cfg.risk.fractional = True
    for k, v in risk.items():
        setattr(cfg.risk, k, v)
    for k, v in broker.items():
        setattr(cfg.broker, k, v)
    return cfg


def run(
    cfg: Settings, bars: dict[str, pd.DataFrame], every_bar: bool, d: Path
) -> tuple[BacktestResult, dict]:
    j = Journal(d / f"journal-{every_bar}.db", buffered=True)
    j.start_run("backtest", set_id_for(cfg), {})
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    res = run_backtest(cfg, strategies, bars, j, every_bar=every_bar)
    j.end_run()
    rows = {
        t: j.query(f"SELECT * FROM {t} ORDER BY rowid").drop(columns=list(skip)) for t, skip in TABLES.items()
    }
    j.close()
    return res, rows


def engine_state(res: BacktestResult) -> dict[str, Any]:
    e = res.engine
    pos = e.pos
    return {
        "cash": e.cash,
        "equity_now": e.equity_now,
        "day_start": e.day_start_equity,
        "peak": e.peak_equity,
        "last_dir": e.last_dir,
        "session": e.session,
        "n_bars": e.n_bars,
        "killed": e.killed,
        "locked_until": e.locked_until,
        "last_close": dict(e.last_close),
        "atr": {s: (a.value, a._prev_close, a._count, a._seed) for s, a in e.atr.items()},
        "ix": None if e.ix is None else _ix_state(e.ix),
        "size_zero": dict(e.size_zero),
        "orders": sorted(e.orders),
        "broker": (
            e.broker.cash,
            dict(e.broker.positions),
            [o.client_order_id for o in e.broker.open_orders()],
        ),
        "pos": None
        if pos is None
        else (pos.symbol, pos.qty, pos.sessions, pos.stop, pos.stop_rev, pos.closing),
    }


def _ix_state(ix: Any) -> tuple:
    v, a, g = ix.vol, ix.atr, ix.index_gaps
    return (
        None if v is None else (v.var, v.count, v._sum, v._prev, v._cur, v._session),
        None if a is None else (a.value, a._prev_close, a._count),
        None if g is None else (list(g.gaps), g._last, g._session),
        {s: (list(x.gaps), x._last, x._session) for s, x in ix.gaps.items()},
        ix._close,
    )


def assert_same(cfg: Settings, bars: dict[str, pd.DataFrame]) -> tuple[BacktestResult, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        plain, plain_rows = run(cfg, bars, True, Path(tmp))
        fast, fast_rows = run(cfg, bars, False, Path(tmp))
    pd.testing.assert_frame_equal(fast.trades, plain.trades, check_exact=True)
    pd.testing.assert_frame_equal(fast.equity, plain.equity, check_exact=True)
    for t in TABLES:
        pd.testing.assert_frame_equal(fast_rows[t], plain_rows[t], check_exact=True, obj=f"journal {t}")
    assert engine_state(fast) == engine_state(plain)
    n = len(bars[cfg.universe.signal])
    assert plain.stepped == n and fast.engine.n_bars == n
    return fast, fast_rows


def exercised(res: BacktestResult, rows: dict, risk: str) -> None:
    """The scenario does what it is named for (else the comparison proves little)."""
    reasons = set(res.trades["exit_reason"])
    actions = set(rows["risk"]["action"])
    assert len(res.trades) >= (1 if risk == "kill_switch" else 3)
    assert res.stepped < res.engine.n_bars / 2  # the fast driver did skip
    if risk in ("stop", "atr", "sigma_stop", "vol_target", "gap_risk"):
        assert "stop_loss" in reasons
    if risk == "trailing_tp":
        assert {"stop_loss", "take_profit"} <= reasons
        assert (rows["orders"]["reason"] == "trailing stop raised").any()
    if risk == "max_hold":
        assert "max_hold" in reasons
    if risk == "daily_loss":
        assert {"lock", "unlock"} <= actions
    if risk == "kill_switch":
        assert "kill" in actions and "block" in actions
    if risk == "sides":
        assert {"max_hold", "take_profit", "stop_loss"} <= reasons
    if risk == "gates":
        assert rows["risk"]["reason"].str.contains("no entry into SOXL: regime gate").any()
        assert rows["risk"]["reason"].str.contains("no entry into SOXS: regime gate").any()
        assert (res.trades["symbol"] == "SOXS").any()


@pytest.fixture(scope="module")
def real_daily() -> dict[str, pd.DataFrame]:
    """SOXX from 2008; SOXL/SOXS only from 2010-03: the traded bars are missing for two years."""
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "SOXX_1d.csv").is_file():
        pytest.skip(f"real market data not found at {SHARED_DATA}")
    return {s: clean_bars(load_csv(SHARED_DATA, s, "1d", "2008-01-01"), s, "1d")[0] for s in SYMS}


@pytest.fixture(scope="module")
def synthetic_minutes() -> dict[str, pd.DataFrame]:
    raw = generate(list(SYMS), "1m", "2024-03-04", 0.25, seed=11)
    return {s: clean_bars(df, s, "1m")[0] for s, df in raw.items()}


@pytest.mark.parametrize("offset", [0, 10])
@pytest.mark.parametrize("risk", list(RISKS))
def test_real_daily_bars_same_as_every_bar(real_daily, risk, offset):
    cfg = make_cfg(RISKS[risk], "ma_cross", offset)
    res, rows = assert_same(cfg, real_daily)
    if risk != "daily_loss":  # daily bars: a day's loss is seen at its close, at once
        exercised(res, rows, risk)


@pytest.mark.parametrize("risk", ["stop", "trailing_tp", "max_hold", "daily_loss", "all"])
def test_real_daily_bars_three_strategies_with_costs(real_daily, risk):
    cfg = make_cfg(RISKS[risk], "three", slippage_bps=5.0, commission=1.0)
    cfg.risk.fractional = False
    assert_same(cfg, real_daily)


@pytest.mark.parametrize("risk", list(MINUTE_RISKS))
def test_synthetic_minute_bars_same_as_every_bar(synthetic_minutes, risk):
    cfg = make_cfg(MINUTE_RISKS[risk], "ma_slow", tf="1m")
    res, rows = assert_same(cfg, synthetic_minutes)
    exercised(res, rows, risk)


def test_kill_switch_already_on_at_start(real_daily, tmp_path):
    """A journal that holds the kill switch: no entry all run, both drivers block the same decisions."""
    cfg = make_cfg(RISKS["stop"], "ma_cross")
    out = {}
    for every_bar in (True, False):
        j = Journal(tmp_path / f"k{every_bar}.db", buffered=True)
        j.set_state("kill_switch", "earlier run")
        j.start_run("backtest", set_id_for(cfg), {})
        res = run_backtest(
            cfg, [create("ma_cross", {"fast": 5, "slow": 20})], real_daily, j, every_bar=every_bar
        )
        j.end_run()
        out[every_bar] = (res, j.query("SELECT ts, action, reason FROM risk ORDER BY rowid"))
        j.close()
    assert out[False][0].trades.empty and (out[False][1]["action"] == "block").sum() > 20
    pd.testing.assert_frame_equal(out[False][1], out[True][1])
    pd.testing.assert_frame_equal(out[False][0].equity, out[True][0].equity, check_exact=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(1, 10_000),
    tf=st.sampled_from(["1d", "15m", "1m"]),
    risk=st.fixed_dictionaries(
        {
            "stop_loss_pct": st.sampled_from([0.0, 0.02, 0.08]),
            "trailing_stop_pct": st.sampled_from([0.0, 0.01, 0.05]),
            "take_profit_pct": st.sampled_from([0.0, 0.03, 0.1]),
            "atr_stop_mult": st.sampled_from([0.0, 1.0, 3.0]),
            "atr_source": st.sampled_from(["instrument", "underlying"]),
            "stop_sigma_mult": st.sampled_from([0.0, 0.5, 2.5]),
            "vol_lookback": st.sampled_from([3, 20]),
            "vol_ewma_lambda": st.sampled_from([0.0, 0.9]),
            "sizing": st.sampled_from(["fixed_fraction", "vol_target"]),
            "max_hold_days": st.sampled_from([0, 1, 2, 6]),
            "daily_loss_limit_pct": st.sampled_from([0.0, 0.01, 0.05]),
            "max_drawdown_pct": st.sampled_from([0.0, 0.1, 0.4]),
            "bull": st.sampled_from([None, {"trailing_stop_pct": 0.03}, {"regime_sma": 30}]),
            "bear": st.sampled_from(
                [
                    None,
                    {"max_hold_days": 1, "stop_loss_pct": 0.03, "fraction": 0.4},
                    {"regime_sma": 50, "take_profit_pct": 0.02},
                    {"regime_drawdown_pct": 0.05, "regime_peak_bars": 40, "trailing_stop_pct": 0.0},
                ]
            ),
        }
    ),
    offset=st.sampled_from([0, 10]),
    fractional=st.booleans(),
    drop=st.sampled_from([0.0, 0.02, 0.2]),
    strategies=st.sampled_from(list(STRATEGIES)),
)
def test_property_any_risk_settings_and_missing_bars(seed, tf, risk, offset, fractional, drop, strategies):
    """Random markets, risk settings and traded bars missing at random (no fill, last close stands)."""
    years = {"1d": 4.0, "15m": 0.4, "1m": 0.03}[tf]
    raw = generate(list(SYMS), tf, "2015-01-02", years, seed=seed)
    bars = {s: clean_bars(df, s, tf)[0] for s, df in raw.items()}
    rng = np.random.default_rng(seed)
    for s in ("SOXL", "SOXS"):
        keep = rng.random(len(bars[s])) >= drop
        bars[s] = bars[s][keep]
    cfg = make_cfg(risk, strategies, offset, tf=tf)
    cfg.risk.fractional = fractional
    assert_same(cfg, bars)


def test_advance_refuses_when_equity_is_journaled_bar_by_bar(tmp_path):
    """Live drivers journal each bar's equity as it comes; a bulk advance would leave gaps there."""
    from bot.broker.sim import SimBroker
    from bot.data.tape import Tape
    from bot.execution.engine import Engine

    cfg = load_config()
    j = Journal(tmp_path / "j.db")
    j.start_run("paper", "x", {})
    eng = Engine(cfg, "x", SimBroker.from_settings(cfg), j)  # journal_equity=True: the live default
    keys = np.arange(5, dtype=np.int64) * 86_400 * 10**9
    tape = Tape(keys, keys // (86_400 * 10**9), {"SOXL": np.ones((5, 4))})
    eng.step(int(keys[0]), 0, {"SOXL": (1.0, 1.0, 1.0, 1.0)}, 0)
    with pytest.raises(RuntimeError, match="step every bar"):
        eng.advance(tape, 1, 5)
    assert eng.n_bars == 1 and len(j.query("SELECT * FROM equity")) == 1
