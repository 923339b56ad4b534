"""`status_report` on journals written by real runs: the replay driver (the `soxbot run` default)
with the paper broker, stopped where a backtest of the same bars says a position is open or a
daily-loss lock is on. Expected values come from the engine and broker objects, not the journal."""

from __future__ import annotations

import datetime as dt
import json

import exchange_calendars as xc
import pytest

from bot.broker.sim import SimBroker
from bot.core.config import Settings, load_config
from bot.journal.journal import Journal
from bot.run.assemble import build_strategies, load_market
from bot.run.backtest import run_backtest, set_id_for
from bot.run.replay import run_replay
from bot.run.service.schedule import NY, UTC, SchedulerInfo, ScheduleSpec
from bot.run.service.status import status_report
from bot.signals.window import live_window

XNYS = xc.get_calendar("XNYS", start="2015-01-01", end="2030-12-31")


def config() -> Settings:
    cfg = load_config()
    cfg.run.speed = 1e6
    cfg.run.log_level = "WARNING"
    cfg.strategies[0].params = {"fast": 5, "slow": 20, "kind": "sma"}
    cfg.risk.trailing_stop_pct = 0.08
    cfg.risk.daily_loss_limit_pct = 0.04
    return cfg


@pytest.fixture(scope="module")
def market():
    cfg = config()
    strategies = build_strategies(cfg)
    bars, synthetic = load_market(cfg)
    return cfg, strategies, bars, synthetic


def replay(tmp_path, market, max_bars: int, name: str = "j.db"):
    cfg, strategies, bars, synthetic = market
    cfg.run.max_bars = max_bars
    path = tmp_path / name
    journal = Journal(path)
    journal.start_run("paper-replay", set_id_for(cfg), json.loads(cfg.model_dump_json()), synthetic)
    broker = SimBroker(cfg.broker.starting_cash)
    engine = run_replay(cfg, strategies, bars, broker, journal, live_window(strategies), None, synthetic)
    journal.end_run("ok")
    journal.close()
    return path, engine, broker


def backtest_journal(tmp_path, market):
    cfg, strategies, bars, synthetic = market
    j = Journal(tmp_path / "bt.db", buffered=True)
    j.start_run("backtest", set_id_for(cfg), json.loads(cfg.model_dump_json()), synthetic)
    res = run_backtest(cfg, strategies, bars, journal=j)
    j.end_run("ok")
    return res, j


def session_close(day: dt.date) -> dt.datetime:
    return XNYS.session_open_close(day.isoformat())[1].to_pydatetime()


def test_open_position_stop_orders_pnl_and_freshness(tmp_path, market):
    cfg = market[0]
    res, _ = backtest_journal(tmp_path, market)
    idx = market[2][cfg.universe.signal].index
    trade = next(
        t for t in res.trades.itertuples() if idx.get_loc(t.exit_time) - idx.get_loc(t.entry_time) >= 4
    )
    stop_at = idx.get_loc(trade.entry_time) + 3  # three bars into that trade
    path, engine, broker = replay(tmp_path, market, stop_at)
    pos = engine.pos
    assert pos is not None and pos.stop is not None, "the replay should hold the backtest's position here"
    last_day = idx[stop_at - 1].date()
    now = session_close(last_day) + dt.timedelta(hours=2, minutes=30)
    text = status_report(path, broker=broker, now=now)
    lines = text.splitlines()

    assert lines[1].startswith("mode: paper-replay [SYNTHETIC DATA]")
    assert "schedule: none" in text
    mark = engine.last_close[pos.symbol]
    pnl = (mark - pos.entry_price) * pos.qty
    (line,) = [ln for ln in lines if ln.startswith(f"  {pos.symbol} {pos.qty:g} @ ")]
    assert f"@ {pos.entry_price:.4f}" in line and f"stop {pos.stop:.4f}" in line
    assert f"mark {mark:.4f}" in line and f"P&L {pnl:+,.2f}" in line
    # the journal's open orders are the broker's (replaced stop revisions are not listed)
    journal_orders = {ln.rsplit("(", 1)[1].rstrip(")") for ln in lines if "] intent since" in ln}
    assert journal_orders == {o.client_order_id for o in broker.open_orders()} == {pos.stop_cid}
    assert f"  {pos.symbol} {broker.positions[pos.symbol]:g}" in lines  # broker view
    assert "MISMATCH" not in text
    day_pnl = engine.equity_now - engine.day_start_equity
    assert f"P&L {last_day}: {day_pnl:+,.2f}" in text
    assert f"equity {engine.equity_now:,.2f}" in text
    assert "locks: daily loss off; kill switch off" in text
    assert "age 2h30m  (replayed history)" in text

    broker.positions[pos.symbol] -= 1  # the broker disagrees: say so
    text = status_report(path, broker=broker, now=now)
    assert f"MISMATCH {pos.symbol}: journal {pos.qty:g}, broker {pos.qty - 1:g}" in text


def test_daily_loss_lock_and_kill_switch(tmp_path, market):
    cfg = market[0]
    _, bt = backtest_journal(tmp_path, market)
    locks = bt.query("SELECT ts FROM risk WHERE action='lock' ORDER BY rowid")
    assert not locks.empty, "the settings should hit the 4% daily loss limit on synthetic bars"
    idx = market[2][cfg.universe.signal].index
    lock_ts = locks["ts"].iloc[0]
    path, engine, _ = replay(tmp_path, market, idx.get_loc(lock_ts[:10]) + 1)
    assert engine.locked is not None and "daily loss" in engine.locked
    text = status_report(path)
    assert f"daily loss ON since {lock_ts}" in text and "kill switch off" in text

    j = Journal(path)
    j.set_state("kill_switch", "2020-08-05: drawdown 30% >= max_drawdown_pct 25%")
    j.close()
    text = status_report(path)
    assert "kill switch ON (2020-08-05: drawdown 30% >= max_drawdown_pct 25%); run `soxbot rearm`" in text
    j = Journal(path)
    j.set_state("kill_switch", "")  # what `soxbot rearm` writes
    j.close()
    assert "kill switch off" in status_report(path)


def test_flat_run_and_a_live_mode_schedule(tmp_path, market):
    cfg = market[0]
    live_cfg = load_config()
    live_cfg.data.timeframe = "5m"
    path = tmp_path / "live.db"
    j = Journal(path)
    j.start_run("alpaca-paper", set_id_for(cfg), json.loads(live_cfg.model_dump_json()))
    j.close()
    now = dt.datetime(2024, 7, 3, 12, 50, 30, tzinfo=NY)  # 13:00 early close; 4 July is a holiday
    text = status_report(path, now=now, n_next=4)
    assert text.splitlines()[2:7] == [
        "schedule (5m), next runs:",
        "  Wed 2024-07-03 12:55 EDT  decision",
        "  Wed 2024-07-03 13:00 EDT  decision",
        "  Wed 2024-07-03 13:05 EDT  end_of_day",
        "  Fri 2024-07-05 09:00 EDT  pre_open",
    ]
    assert "positions (journal, run #1): flat" in text and "open orders (journal): none" in text
    assert "data: no bar yet" in text

    info = SchedulerInfo(
        "1d", SchedulerInfo.planned(now, ScheduleSpec("1d"), 2).next_runs, ran=40, skipped=2, errors=1
    )
    text = status_report(path, scheduler_info=info, now=now)
    assert "  Wed 2024-07-03 12:55 EDT  decision" not in text
    assert "  Fri 2024-07-05 09:00 EDT  pre_open" in text
    assert "jobs so far: 40 ran, 2 skipped as too late, 1 failed" in text


def test_missing_and_empty_journal(tmp_path):
    with pytest.raises(FileNotFoundError, match="No journal at"):
        status_report(tmp_path / "nope.db")
    Journal(tmp_path / "empty.db").close()
    assert status_report(tmp_path / "empty.db", now=dt.datetime(2024, 7, 5, tzinfo=UTC)).endswith(
        "no runs in this journal yet"
    )
