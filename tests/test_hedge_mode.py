"""Hedge mode (`[hedge]`, bot/execution/hedge.py) in backtests on the real daily files, with the holdings'
data: the hedge is rebalanced exactly when an independent computation of its drift (numpy betas here)
leaves the band, never sits beside SOXL, runs the same in the in-process live driver, and `soxbot
status` shows its ratio, drift and cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.broker.sim import SimBroker
from bot.core.config import ConfigError, StrategyConfig, load_config
from bot.journal.journal import Journal
from bot.run.assemble import load_market
from bot.run.backtest import run_backtest, set_id_for
from bot.run.replay import run_replay
from bot.run.service.status import status_report
from bot.signals.plugins import create
from bot.signals.window import live_window

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HOLD = {"NVDA": 100, "AMD": 500, "AVGO": 400, "INTC": 1500}
pytestmark = pytest.mark.skipif(
    not all((DATA / f"{s}_1d.csv").exists() for s in [*HOLD, "SOXX", "SOXS", "SOXL"]),
    reason=f"real daily data not found in {DATA}",
)


def _cfg(bull: str = "", mode: str = "always", band: float = 0.08, cash: float = 1_000_000):
    cfg = load_config()
    cfg.data.source, cfg.data.dir = "csv", DATA
    cfg.data.start, cfg.data.end = "2017-01-01", "2024-03-08"
    cfg.universe.signal, cfg.universe.bull, cfg.universe.bear = "SOXX", bull, ""
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 10, "slow": 40})]
    cfg.risk.fractional = True
    cfg.broker.starting_cash = cash
    cfg.run.speed = 1e9
    cfg.hedge.holdings = ",".join(f"{s}={q}" for s, q in HOLD.items())
    cfg.hedge.mode = mode
    cfg.hedge.band = band
    cfg.hedge.min_trade = 0.0
    return cfg


def _run(cfg, path: Path, live: bool = False):
    bars, _ = load_market(cfg)
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    j = Journal(path, buffered=True)
    j.start_run("paper" if live else "backtest", set_id_for(cfg), {})
    if live:
        eng = run_replay(cfg, strategies, bars, SimBroker.from_settings(cfg), j, live_window(strategies))
    else:
        eng = run_backtest(cfg, strategies, bars, j).engine
    j.flush()
    return eng, j, bars


def _hedge_rows(j: Journal) -> pd.DataFrame:
    return j.query("SELECT ts, reason, details FROM risk WHERE action='hedge' ORDER BY rowid")


def test_rebalances_exactly_when_an_independent_drift_leaves_the_band(tmp_path):
    cfg = _cfg()
    _, j, bars = _run(cfg, tmp_path / "bt.db")
    fills = j.query("SELECT ts, side, qty FROM fills WHERE symbol='SOXS' ORDER BY rowid")
    orders = j.query("SELECT ts FROM orders WHERE symbol='SOXS' AND intent='hedge' ORDER BY rowid")
    assert len(orders) >= 20
    # independent: betas by least squares on the last 60 daily returns before each session
    closes = pd.concat({s: bars[s]["close"] for s in [*HOLD, "SOXX", "SOXS"]}, axis=1)
    rets = closes.pct_change()
    qty = pd.Series(np.where(fills.side == "buy", fills.qty, -fills.qty), index=pd.to_datetime(fills.ts))
    held = qty.groupby(level=0).sum().reindex(closes.index, fill_value=0).cumsum()
    sent = set(pd.to_datetime(orders.ts))
    checked = rebal = 0
    for k in range(61, len(closes)):
        t = closes.index[k]
        if closes.index[k - 1] in sent:  # an order was on its way on this bar (it fills at its open)
            continue
        win = rets.iloc[k - 60 : k]
        x = np.column_stack([np.ones(60), win["SOXX"].to_numpy()])
        exp = sum(
            np.linalg.lstsq(x, win[s].to_numpy(), rcond=None)[0][1] * HOLD[s] * closes[s].iat[k] for s in HOLD
        )
        target = exp / 3
        h = held.iat[k] * closes["SOXS"].iat[k]
        if h == 0:
            continue
        drift = h / target - 1
        if abs(abs(drift) - cfg.hedge.band) < 1e-6:
            continue  # on the edge: float noise decides
        assert (t in sent) == (abs(drift) > cfg.hedge.band), (t, drift)
        checked += 1
        rebal += t in sent
    assert checked > 1000 and rebal >= 10
    # each rebalance brought the hedge back to its target
    for _, r in _hedge_rows(j).iterrows():
        d = json.loads(r.details)
        if "rebalance" in r.reason:
            assert abs(d["drift"]) > cfg.hedge.band


def test_never_beside_soxl_and_waits_for_the_hedge_to_close(tmp_path):
    cfg = _cfg(bull="SOXL", mode="always", cash=300_000)
    _, j, _ = _run(cfg, tmp_path / "bt.db")
    fills = j.query("SELECT ts, symbol, side, qty FROM fills ORDER BY rowid")
    held = {"SOXL": 0.0, "SOXS": 0.0}
    both = []
    for _, f in fills.iterrows():
        held[f.symbol] += f.qty if f.side == "buy" else -f.qty
        if held["SOXL"] > 1e-9 and held["SOXS"] > 1e-9:
            both.append(f.ts)
    assert both == []
    assert (fills.symbol == "SOXL").sum() >= 4 and (fills.symbol == "SOXS").sum() >= 4
    waits = _hedge_rows(j)
    assert waits.reason.str.contains("entry into SOXL waits for the SOXS hedge to be closed").any()
    assert waits.reason.str.contains("hedge off \\(SOXL is held by the strategy\\)").any()


def test_on_bear_signal_and_the_live_driver_make_the_same_hedge(tmp_path):
    cfg = _cfg(bull="SOXL", mode="on_bear_signal", cash=300_000)
    _, jb, _ = _run(cfg, tmp_path / "bt.db")
    _, jl, _ = _run(cfg, tmp_path / "live.db", live=True)
    bt, live = _hedge_rows(jb), _hedge_rows(jl)
    assert len(bt) >= 10
    pd.testing.assert_frame_equal(bt, live)
    q = "SELECT ts, symbol, side, qty, price FROM fills ORDER BY rowid"
    fb, fl = jb.query(q), jl.query(q)
    assert len(fb) - len(fl) in (0, 1)  # a backtest closes what is held at the end of the data
    assert len(fb) == len(fl) or fb.ts.iat[-1] == fb.ts.max()
    pd.testing.assert_frame_equal(fb.iloc[: len(fl)], fl)
    # on_bear_signal: the hedge is only bought on a bar whose combined direction is -1
    sig = jb.query("SELECT ts, direction FROM signals WHERE strategy='combined' ORDER BY rowid")
    last_dir = pd.Series(sig.direction.to_numpy(), index=pd.to_datetime(sig.ts))
    for _, r in bt.iterrows():
        if r.reason.startswith("hedge on"):
            assert last_dir[last_dir.index <= pd.Timestamp(r.ts)].iat[-1] == -1


def test_status_shows_ratio_drift_and_cost(tmp_path):
    cfg = _cfg()
    eng, j, _ = _run(cfg, tmp_path / "bt.db")
    j.close()
    text = status_report(tmp_path / "bt.db")
    line = next(ln for ln in text.splitlines() if ln.startswith("hedge:"))
    h = eng.hedge
    assert f"{h.qty:g} SOXS" in line and "ratio " in line and "drift " in line
    assert f"cost so far {h.cost:,.2f}" in line


def test_hedge_mode_refuses_the_bear_side_on_the_same_fund(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[universe]\nbear = "SOXS"\n[hedge]\nholdings = "NVDA=10"\n')
    with pytest.raises(ConfigError, match='set \\[universe\\] bear = ""'):
        load_config(f)


def test_every_hedge_trade_is_alerted(tmp_path):
    from bot.run.service.alerts import engine_alert

    cfg = _cfg(bull="SOXL", cash=300_000)
    seen: list = []
    bars, _ = load_market(cfg)  # the in-process live driver, journal as it runs
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    j = Journal(tmp_path / "live.db", buffered=True)
    j.start_run("paper", set_id_for(cfg), {})
    eng = run_replay(cfg, strategies, bars, SimBroker.from_settings(cfg), j, live_window(strategies))
    del eng
    j.flush()
    for _, r in _hedge_rows(j).iterrows():
        if r.reason.startswith("hedge waits"):  # warming up its betas: journaled, not a message
            continue
        seen.append(engine_alert("risk", {"action": "hedge", "reason": r.reason}))
    assert seen and all(a is not None and a.event == "fill" and a.text.startswith("HEDGE: ") for a in seen)


def test_a_hedge_that_cannot_be_bought_is_said_once(tmp_path):
    """Whole shares of SOXS on its back-adjusted prices (millions a share in 2017) cannot make the hedge
    until the price has fallen below the target: said once, and no order before."""
    cfg = _cfg()
    cfg.risk.fractional = False
    _, j, _ = _run(cfg, tmp_path / "bt.db")
    said = _hedge_rows(j)
    said = said[said.reason.str.startswith("hedge cannot be bought")]
    assert len(said) == 1 and "SOXS at " in said.reason.iat[0]
    first = j.query("SELECT min(ts) AS t FROM orders WHERE symbol='SOXS'").t.iat[0]
    assert first is None or first > said.ts.iat[0]
