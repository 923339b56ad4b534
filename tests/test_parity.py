"""Backtest and live share one engine: on real data, the vectorised backtest (signals over the whole
history) and the live path (bar by bar: the strategies' steppers, or signals on a bounded trailing
window for a strategy without one) make the same trades."""

from __future__ import annotations

import pandas as pd
import pytest

from bot.broker.sim import SimBroker
from bot.core.config import StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.execution.engine import Engine
from bot.run.backtest import run_backtest, session_labels, set_id_for, size_by_basis
from bot.signals.live import TrailingSignals
from bot.signals.plugins import create
from bot.signals.window import live_window

CASES = [
    [("ma_cross", {"fast": 20, "slow": 50, "kind": "sma"})],
    [("ma_cross", {"fast": 10, "slow": 30, "kind": "ema"})],
    [("rsi", {"length": 14})],
    [("support", {})],
    [("ma_cross", {"fast": 20, "slow": 50}), ("rsi", {}), ("support", {})],
]


def name(combo):
    return "+".join(n for n, _ in combo)


def windowed(s):
    """The same strategy without its stepper: the live path evaluates it on the trailing window."""
    return type(f"Windowed{type(s).__name__}", (type(s),), {"stepper": lambda self: None})(s.params)


def live_trades(cfg, strategies, bars):
    broker = SimBroker.from_settings(cfg)
    eng = Engine(cfg, set_id_for(cfg), broker, None)
    size_by_basis(cfg, bars, None, eng)  # as every driver sizes it (SOXS here: by notional)
    live = TrailingSignals(cfg, strategies, live_window(strategies))
    sig = bars[cfg.universe.signal]
    sess = session_labels(sig.index)
    traded = {s: bars[s].reindex(sig.index) for s in cfg.universe.traded}
    for i, (ts, o, h, lo, c, v) in enumerate(
        sig[["open", "high", "low", "close", "volume"]].itertuples(name=None)
    ):
        bars_i = {
            s: (df.open.iat[i], df.high.iat[i], df.low.iat[i], df.close.iat[i])
            for s, df in traded.items()
            if pd.notna(df.close.iat[i])
        }
        dec = live.push(ts, o, h, lo, c, v)
        ok = bool(sig.tradable.iat[i])
        eng.step(ts, sess[i], bars_i, dec.direction, ok, dec.reason, dec.regime, (o, h, lo, c))
    eng.finish(sig.index[-1])
    return eng.trades


@pytest.mark.slow
@pytest.mark.parametrize(
    ("combo", "offset", "stepped"),
    [pytest.param(c, 0, True, id=name(c)) for c in CASES]
    + [pytest.param(CASES[-1], 10, True, id="offset10")]  # decided before the close, filled at the close
    + [pytest.param(CASES[-1], 0, False, id="windowed")],  # the trailing-window path (no steppers)
)
def test_backtest_and_trailing_window_make_the_same_trades(shared_data, combo, offset, stepped):
    cfg = load_config()
    cfg.service.daily_decision_offset_minutes = offset
    cfg.strategies = [StrategyConfig(name=n, params=p) for n, p in combo]
    cfg.risk.stop_loss_pct = 0.08
    cfg.risk.trailing_stop_pct = 0.15
    bars = {
        s: clean_bars(load_csv(shared_data, s, "1d", "2016-01-01", "2026-08-21"), s, "1d")[0]
        for s in ("SOXX", "SOXL", "SOXS")
    }
    strategies = [create(n, p) for n, p in combo]
    if not stepped:
        strategies = [windowed(s) for s in strategies]
    assert live_window(strategies) < 2000  # bounded: the live path's cost does not grow with history
    bt = run_backtest(cfg, strategies, bars).engine.trades
    lv = live_trades(cfg, strategies, bars)
    assert len(bt) > 5
    assert [(t.symbol, t.entry_time, t.exit_time, t.exit_reason) for t in bt] == [
        (t.symbol, t.entry_time, t.exit_time, t.exit_reason) for t in lv
    ]
    for a, b in zip(bt, lv, strict=True):
        assert a.qty == b.qty and a.pnl == pytest.approx(b.pnl, rel=1e-9)


INDEX_RISKS = {  # stops and sizes in the index's terms (bot/risk/index.py), fed bar by bar on both paths
    "sigma_stop": {"stop_loss_pct": 0.0, "stop_sigma_mult": 2.5},
    "vol_target_ewma": {"stop_loss_pct": 0.0, "stop_sigma_mult": 2.0, "sizing": "vol_target",
                        "vol_target_pct": 0.02, "vol_ewma_lambda": 0.94},
    "gap_risk_underlying_atr": {"stop_loss_pct": 0.0, "atr_stop_mult": 2.0, "atr_source": "underlying",
                                "sizing": "risk_per_trade", "risk_per_trade": 0.02, "gap_quantile": 0.99},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("offset", [0, 10])
@pytest.mark.parametrize("risk", list(INDEX_RISKS))
def test_index_stops_and_sizing_same_in_backtest_and_live(shared_data, risk, offset):
    cfg = load_config()
    cfg.service.daily_decision_offset_minutes = offset
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 10, "slow": 30})]
    cfg.risk.fractional = True
    for k, v in INDEX_RISKS[risk].items():
        setattr(cfg.risk, k, v)
    bars = {
        s: clean_bars(load_csv(shared_data, s, "1d", "2011-01-01", "2026-08-21"), s, "1d")[0]
        for s in ("SOXX", "SOXL", "SOXS")
    }
    strategies = [create("ma_cross", {"fast": 10, "slow": 30})]
    bt = run_backtest(cfg, strategies, bars).engine.trades
    lv = live_trades(cfg, strategies, bars)
    assert len(bt) > 20 and sum(t.exit_reason == "stop_loss" for t in bt) > 5
    assert [(t.symbol, t.entry_time, t.exit_time, t.exit_reason, t.qty, t.pnl) for t in bt] == [
        (t.symbol, t.entry_time, t.exit_time, t.exit_reason, t.qty, t.pnl) for t in lv
    ]
