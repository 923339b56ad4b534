"""The engine's books against an independent, vectorised computation on real data.

With no stops, no costs, fractional shares and bull = the signal symbol itself (bear empty, so -1
means flat), a long-only MA cross buys at the open after each +1 signal and sells at the open after
the next change. The quantity is fixed when the order is made, at the signal close (equity / close),
and shrunk to what the cash pays for if the open gaps up: the books must follow exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.config import StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.run.backtest import run_backtest
from bot.signals.plugins import create


@pytest.mark.parametrize("symbol", ["SOXX", "SMH", "SOX"])
def test_long_only_ma_cross_compounds_open_to_open_returns(shared_data, symbol):
    cfg = load_config()
    cfg.universe.signal, cfg.universe.bull, cfg.universe.bear = symbol, symbol, ""
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 10, "slow": 40})]
    cfg.risk.stop_loss_pct = 0.0
    cfg.risk.fractional = True
    bars, _ = clean_bars(load_csv(shared_data, symbol, "1d", "2005-01-01", "2026-06-30"), symbol, "1d")
    strat = create("ma_cross", {"fast": 10, "slow": 40})
    res = run_backtest(cfg, [strat], {symbol: bars})

    # independent computation: numpy moving averages, positions from the day after each signal
    c = bars["close"].to_numpy()
    o = bars["open"].to_numpy()
    fast = np.convolve(c, np.ones(10) / 10, "full")[: len(c)]
    slow = np.convolve(c, np.ones(40) / 40, "full")[: len(c)]
    want = np.where(fast > slow, 1, 0)
    want[:39] = 0
    held = np.zeros(len(c), int)
    held[1:] = want[:-1]  # a signal at close t is held from the open of t+1
    cash, qty = 100_000.0, 0.0
    for i in range(1, len(c)):
        if held[i] and not held[i - 1]:
            qty = min(cash / c[i - 1], cash / o[i])  # sized at the signal close, capped by cash
            cash -= qty * o[i]
        if not held[i] and held[i - 1]:
            cash += qty * o[i]
            qty = 0.0
    final_want = cash + qty * c[-1]  # an open position is closed at the last close (end_of_data)
    final = res.equity["equity"].iloc[-1]
    assert len(res.trades) > 20
    assert final == pytest.approx(final_want, rel=1e-5)  # the engine floors qty to 1e-6 shares
    n_entries = int(((held[1:] == 1) & (held[:-1] == 0)).sum())
    assert len(res.trades) == n_entries


@pytest.mark.parametrize("symbol", ["SOXX", "SMH"])
def test_decided_before_the_close_it_compounds_close_to_close_returns(shared_data, symbol):
    """`[service] daily_decision_offset_minutes` > 0: the day's decision fills at that day's close."""
    cfg = load_config()
    cfg.universe.signal, cfg.universe.bull, cfg.universe.bear = symbol, symbol, ""
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 10, "slow": 40})]
    cfg.risk.stop_loss_pct = 0.0
    cfg.risk.fractional = True
    cfg.service.daily_decision_offset_minutes = 10
    bars, _ = clean_bars(load_csv(shared_data, symbol, "1d", "2005-01-01", "2026-06-30"), symbol, "1d")
    res = run_backtest(cfg, [create("ma_cross", {"fast": 10, "slow": 40})], {symbol: bars})

    c = bars["close"].to_numpy()
    fast = np.convolve(c, np.ones(10) / 10, "full")[: len(c)]
    slow = np.convolve(c, np.ones(40) / 40, "full")[: len(c)]
    want = np.where(fast > slow, 1, 0)
    want[:39] = 0
    cash, qty = 100_000.0, 0.0
    for i in range(1, len(c)):
        if want[i] and not want[i - 1]:
            qty = cash / c[i]  # sized and filled at the same close: no gap to cap
            cash = 0.0
        if not want[i] and want[i - 1]:
            cash += qty * c[i]
            qty = 0.0
    final_want = cash + qty * c[-1]
    assert len(res.trades) > 20
    assert res.equity["equity"].iloc[-1] == pytest.approx(final_want, rel=1e-5)
    entries = res.trades["entry_time"]
    assert (bars.loc[entries, "close"].to_numpy() == pytest.approx(res.trades["entry_price"].to_numpy()))
