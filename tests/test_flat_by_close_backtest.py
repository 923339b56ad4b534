"""`[service] flat_by_close` in backtests (bot/risk/closing.py, bot/run/backtest.py): on the real
5-minute SOXL bars, no position is held over any close, half days (13:00 closes) included, and the
event-skipping driver and the per-bar loop agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.config import StrategyConfig, load_config
from bot.data import calendar as xnys
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.run.backtest import run_backtest
from bot.signals.plugins import create

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FILE = DATA / "SOXL_5m.csv"
pytestmark = pytest.mark.skipif(not FILE.exists(), reason=f"real intraday data not found at {FILE}")


def _cfg(minutes: int, flat: bool = True):
    cfg = load_config()
    cfg.data.timeframe = "5m"
    cfg.universe.signal = cfg.universe.bull = "SOXL"
    cfg.universe.bear = ""
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 6, "slow": 24})]
    cfg.risk.fractional = True
    cfg.risk.stop_loss_pct = 0.0
    cfg.service.flat_by_close = flat
    cfg.service.flat_by_close_minutes = minutes
    return cfg


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    df, _ = clean_bars(load_csv(DATA, "SOXL", "5m"), "SOXL", "5m")
    return df  # 2023-07-07 .. 2026-07-09: seven half days


def _run(cfg, bars, every_bar=False):
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    return run_backtest(cfg, strategies, {"SOXL": bars}, every_bar=every_bar)


def _ny_day(ts: pd.Series | pd.DatetimeIndex):
    return pd.DatetimeIndex(ts).tz_convert(xnys.TZ).tz_localize(None).normalize()


@pytest.mark.parametrize("minutes", [5, 10, 7])
def test_no_position_over_any_close(bars, minutes):
    res = _run(_cfg(minutes), bars)
    t = res.trades
    assert len(t) > 50
    entry_day, exit_day = _ny_day(t["entry_time"]), _ny_day(t["exit_time"])
    assert (entry_day == exit_day).all(), "a trade was held over a close"
    # every exit fill is at or before the cut-off: the session's close minus N minutes
    closes = np.array([xnys.session_bounds(d)[1].value for d in exit_day])
    assert (pd.DatetimeIndex(t["exit_time"]).as_unit("ns").asi8 <= closes - minutes * 60_000_000_000).all()
    # the equity curve: nothing held at the last bar of any session
    eq = res.equity
    day = _ny_day(eq.index)
    last = np.r_[day[1:] != day[:-1], True]
    assert (eq["position_value"].to_numpy()[last] == 0).all()
    # half days (13:00 closes): trades on them closed by 13:00 - N, some by the rule at exactly the cut
    half = [d for d in day.unique() if xnys.session_bounds(d)[1].hour == 13]
    assert len(half) == 7
    at_cut = 0
    for d in half:
        on = t[exit_day == d]
        cut = pd.Timestamp(f"{d.date()} 13:00", tz=xnys.TZ) - pd.Timedelta(minutes=minutes)
        assert (pd.DatetimeIndex(on["exit_time"]) <= cut).all()
        at_cut += int((pd.DatetimeIndex(on["exit_time"]) > cut - pd.Timedelta(minutes=5)).sum())
    assert at_cut >= 1, "the rule closed nothing on a half day"
    assert "risk" in set(t["exit_reason"])  # the flat-by-close exits (ExitReason.RISK, as live)


def test_without_the_rule_positions_are_held_overnight(bars):
    """The check above can fail: the same strategy without the rule holds positions over closes."""
    t = _run(_cfg(5, flat=False), bars).trades
    assert (_ny_day(t["entry_time"]) != _ny_day(t["exit_time"])).any()


def test_event_skipping_matches_per_bar_loop(bars):
    cfg = _cfg(10)
    a, b = _run(cfg, bars), _run(cfg, bars, every_bar=True)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.equity, b.equity)
