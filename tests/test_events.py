"""The event calendar and its blackouts (bot/data/events.py, bot/risk/events.py): the file format and
its errors, when an event reaches prices, and the blackout enforced identically by the backtest and by
the in-process live driver (`run_replay`: the live signal path bar by bar) on the shipped FOMC dates,
and by the Alpaca driver against the sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.broker.sim import SimBroker
from bot.core.config import EventPolicy, StrategyConfig, load_config
from bot.data import calendar as xnys
from bot.data.csv_feed import load_csv
from bot.data.errors import DataError
from bot.data.events import hit_time, load_events
from bot.data.quality import clean_bars
from bot.journal.journal import Journal
from bot.run.backtest import run_backtest, set_id_for
from bot.run.replay import run_replay
from bot.signals.plugins import create
from bot.signals.window import live_window

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EVENTS = ROOT / "events.example.csv"
need_data = pytest.mark.skipif(not (DATA / "SOXX_1d.csv").exists(), reason=f"real data not found in {DATA}")


def ny(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz=xnys.TZ)


# -- the file -------------------------------------------------------------------------------------
def test_shipped_file_loads_and_every_fomc_decision_is_a_session_at_14():
    ev = load_events(EVENTS)
    assert len(ev) == 40 and {e.kind for e in ev} == {"fomc"}
    for e in ev:
        assert xnys.is_session(e.day) and e.hit == ny(f"{e.day.date()} 14:00")


def test_hit_times():
    d = pd.Timestamp("2024-08-28")  # a Wednesday
    assert hit_time(d, "bmo") == ny("2024-08-28 09:30")
    assert hit_time(d, "amc") == ny("2024-08-29 09:30")
    assert hit_time(d, "14:00") == ny("2024-08-28 14:00")
    assert hit_time(d, "08:30") == ny("2024-08-28 09:30")  # before the open: the open takes it
    assert hit_time(d, "16:30") == ny("2024-08-29 09:30")
    assert hit_time(pd.Timestamp("2024-08-30"), "amc") == ny("2024-09-03 09:30")  # Fri -> Tue (Labor Day)
    assert hit_time(pd.Timestamp("2024-07-03"), "13:30") == ny("2024-07-05 09:30")  # after a 13:00 close


BAD = [
    ("2024-13-01,14:00,fomc,,x", "line 2: date '2024-13-01' is not YYYY-MM-DD"),
    ("2024-09-18,2pm,fomc,,x", "line 2: time '2pm' is not bmo, amc or HH:MM"),
    ("2024-09-18,14:00,FOMC,,x", "line 2: kind 'FOMC' must be a lower-case word"),
    ("2024-09-18,amc,earnings,nvda!,x", "line 2: symbol 'nvda!' is not a ticker"),
    ("2024-09-18,amc,earnings,NVDA,a,b", "line 2: 6 columns, expected 5"),
]


@pytest.mark.parametrize("row,msg", BAD)
def test_malformed_rows_name_the_line(tmp_path, row, msg):
    p = tmp_path / "ev.csv"
    p.write_text("date,time,kind,symbol,note\n" + row + "\n")
    with pytest.raises(DataError, match="Fix: a CSV") as err:
        load_events(p)
    assert msg in str(err.value)


def test_cli_stops_on_a_malformed_events_file_with_one_message(tmp_path):
    (tmp_path / "ev.csv").write_text("day,kind\n2024-09-18,fomc\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[events]\nfile = "ev.csv"\n')
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "backtest", "--config", str(cfg), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "ev.csv line 1: the header must be date,time,kind,symbol,note" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2


# -- parity: backtest and the in-process live driver ---------------------------------------------------
def _cfg(action: str = "no_entry", before: int = 1, offset: int = 0):
    cfg = load_config()
    cfg.data.source = "csv"
    cfg.data.dir = DATA
    cfg.universe.signal, cfg.universe.bull, cfg.universe.bear = "SOXX", "SOXL", "SOXS"
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 3, "slow": 8})]
    cfg.risk.fractional = True
    cfg.service.daily_decision_offset_minutes = offset
    cfg.run.speed = 1e9  # the replay's pacing: no wait between bars
    cfg.events.file = EVENTS
    cfg.events.policy = {"fomc": EventPolicy(sessions_before=before, action=action, size_factor=0.5)}
    return cfg


def _bars(cfg):
    out = {}
    for s in cfg.universe.symbols:
        df, _ = clean_bars(load_csv(DATA, s, "1d"), s, "1d")
        out[s] = df.loc["2021-10-01":"2026-07-31"]
    return out


def _blocks(j: Journal) -> list[tuple[str, str]]:
    rows = j.query("SELECT ts, action, reason FROM risk WHERE reason LIKE '%event blackout%' ORDER BY rowid")
    return list(zip(rows.ts, rows.action + ": " + rows.reason, strict=True))


def _backtest(cfg, bars, path):
    j = Journal(path, buffered=True)
    j.start_run("backtest", set_id_for(cfg), {})
    res = run_backtest(cfg, [create(s.name, s.params) for s in cfg.strategies], bars, j)
    j.flush()
    return res, j


def _live(cfg, bars, path):
    j = Journal(path, buffered=True)
    j.start_run("paper", set_id_for(cfg), {})
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    eng = run_replay(cfg, strategies, bars, SimBroker.from_settings(cfg), j, live_window(strategies))
    j.flush()
    return eng, j


@need_data
@pytest.mark.parametrize("action,before,offset", [("no_entry", 1, 0), ("reduce", 2, 10), ("flat", 2, 0)])
def test_same_events_block_the_same_entries_in_backtest_and_live(tmp_path, action, before, offset):
    cfg = _cfg(action, before, offset)
    bars = _bars(cfg)
    res, jb = _backtest(cfg, bars, tmp_path / "bt.db")
    eng, jl = _live(cfg, bars, tmp_path / "live.db")
    bt, live = _blocks(jb), _blocks(jl)
    assert len(bt) >= 3, f"the blackout never acted: {bt}"
    assert bt == live
    pd.testing.assert_frame_equal(res.trades.reset_index(drop=True), _trades(eng.trades))
    # on real dates from the file: each verdict names an FOMC decision day of the file
    days = {str(e.day.date()) for e in load_events(EVENTS)}
    for _ts, reason in bt:
        assert any(d in reason for d in days), reason


def _trades(trades):
    from bot.run.backtest import trades_frame

    return trades_frame(trades).reset_index(drop=True)


@need_data
def test_no_entry_is_decided_inside_a_blackout_and_without_the_file_some_are(tmp_path):
    cfg = _cfg("no_entry", 1)
    bars = _bars(cfg)
    windows = [
        (xnys.session_bounds(xnys.sessions(e.day - pd.Timedelta(days=10), e.day)[-2])[0], e.hit)
        for e in load_events(EVENTS)
    ]

    def entries_in_windows(res):
        # a daily decision is made at the close of the bar before the entry's fill (next open)
        n = 0
        for t in res.trades.entry_time:
            prev = xnys.sessions(t - pd.Timedelta(days=10), t - pd.Timedelta(days=1))[-1]
            decided = xnys.session_bounds(prev)[1]
            n += any(a <= decided < b for a, b in windows)
        return n

    with_events = run_backtest(cfg, [create("ma_cross", {"fast": 3, "slow": 8})], bars)
    cfg.events.file = None
    without = run_backtest(cfg, [create("ma_cross", {"fast": 3, "slow": 8})], bars)
    assert entries_in_windows(with_events) == 0
    assert entries_in_windows(without) > 0


# -- flat before, intraday -----------------------------------------------------------------------------
@pytest.mark.skipif(not (DATA / "SOXL_5m.csv").exists(), reason="real intraday data not found")
def test_flat_policy_holds_nothing_into_the_fomc_statement_on_5m_bars():
    cfg = load_config()
    cfg.data.timeframe = "5m"
    cfg.universe.signal = cfg.universe.bull = "SOXL"
    cfg.universe.bear = ""
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 6, "slow": 24})]
    cfg.risk.fractional = True
    cfg.events.file = EVENTS
    cfg.events.policy = {"fomc": EventPolicy(sessions_before=0, action="flat")}
    df, _ = clean_bars(load_csv(DATA, "SOXL", "5m"), "SOXL", "5m")
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    a = run_backtest(cfg, strategies, {"SOXL": df})
    b = run_backtest(cfg, strategies, {"SOXL": df}, every_bar=True)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    eq = a.equity["position_value"]
    fomc = [e.hit for e in load_events(EVENTS) if df.index[0] <= e.hit <= df.index[-1]]
    assert len(fomc) >= 20
    held = [t for t in fomc if eq.loc[t - pd.Timedelta(minutes=5)] != 0]  # the bar that ends at 14:00
    assert held == []
    cfg.events.file = None
    eq0 = run_backtest(cfg, strategies, {"SOXL": df}).equity["position_value"]
    assert sum(eq0.loc[t - pd.Timedelta(minutes=5)] != 0 for t in fomc) > 0  # without it, some are held
    assert np.isfinite(eq.to_numpy()).all()


# -- status countdown and the backtest's event-day figures ---------------------------------------------
def test_status_counts_down_to_the_next_event_and_shows_a_blackout_in_force():
    from bot.run.service.events_status import event_lines

    cfg = load_config()
    cfg.events.file = EVENTS
    cfg.events.policy = {"fomc": EventPolicy(sessions_before=1, action="no_entry")}
    before = "\n".join(event_lines(cfg, ny("2024-09-13 12:00").to_pydatetime()))  # a Friday
    assert "fomc 2024-09-18 14:00" in before and "in 3 sessions" in before  # Mon, Tue, Wed
    assert "blackout from Tue 2024-09-17 09:30 EDT (no_entry)" in before
    assert "BLACKOUT NOW" not in before
    during = "\n".join(event_lines(cfg, ny("2024-09-17 10:00").to_pydatetime()))
    assert "BLACKOUT NOW until Wed 2024-09-18 14:00 EDT" in during and "in 1 session," in during
    cfg.events.file = None
    assert event_lines(cfg, ny("2024-09-17 10:00").to_pydatetime()) == []


@need_data
def test_backtest_summary_compares_event_days_with_the_rest(tmp_path):
    import json

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[data]\nsource = "csv"\ndir = "{DATA}"\nstart = "2022-01-03"\nend = "2025-12-31"\n'
        '[universe]\nsignal = "SOXX"\n'
        f'[events]\nfile = "{EVENTS}"\n[events.policy.fomc]\nsessions_before = 1\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "backtest", "--config", str(cfg), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "o" / "summary.json").read_text())["events"]
    # independent: SOXX close-to-close returns and gaps on the file's FOMC days (all in regular hours)
    px = pd.read_csv(DATA / "SOXX_1d.csv", index_col=0, parse_dates=True).loc["2022-01-03":"2025-12-31"]
    prev = px.close.shift(1)
    ret, gap = (px.close / prev - 1).to_numpy(), (px.open / prev - 1).to_numpy()
    days = pd.read_csv(EVENTS, comment="#").date.astype("datetime64[ns]")
    on = px.index.isin(days) & ~np.isnan(ret)
    rest = ~px.index.isin(days) & ~np.isnan(ret)
    assert ev["fomc"]["sessions"] == px.index.isin(days).sum() == 32
    assert ev["fomc"]["SOXX"]["mean_return"] == pytest.approx(ret[on].mean(), rel=1e-9)
    assert ev["fomc"]["SOXX"]["mean_abs_gap"] == pytest.approx(np.abs(gap[on]).mean(), rel=1e-9)
    assert ev["rest"]["SOXX"]["mean_return"] == pytest.approx(ret[rest].mean(), rel=1e-9)
    assert ev["rest"]["SOXX"]["share_gap_over_2pct"] == pytest.approx((np.abs(gap[rest]) > 0.02).mean())


# -- the Alpaca driver (live) against the sandbox ---------------------------------------------------
def test_the_alpaca_driver_blocks_the_entry_the_backtest_blocks_before_an_event(tmp_path):
    """The live driver on the sandbox (alpaca-py over HTTP), the same events file and policy as a
    backtest of the same bars: the cross up decided on 2024-10-11 falls one session before an event
    on 10-14, and both refuse that entry with the same verdict; without the file the live driver enters."""
    import json

    from tests.alpaca_support import live_daily_run
    from tests.sandbox_support import daily_bars, write_bars

    events = tmp_path / "events.csv"
    events.write_text("date,time,kind,symbol,note\n2024-10-14,14:00,fomc,,a decision (test)\n")
    policy = f'[events]\nfile = "{events}"\n[events.policy.fomc]\nsessions_before = 1\naction = "no_entry"\n'
    bars = daily_bars(start="2023-06-01")
    d = write_bars(tmp_path / "data", bars, "1d")

    def live(extra: str, sub: str) -> tuple[pd.DataFrame, object]:
        cfg, path = live_daily_run(tmp_path / sub, d, "2024-10-07", 5, extra=extra)  # 10-11: a cross up
        j = Journal(path)
        out = j.query("SELECT ts, action, reason, details FROM risk WHERE ts LIKE '2024-10-11%'")
        j.close()
        return out, cfg

    blocked, cfg = live(policy, "with")
    free, _ = live("", "without")
    bt = Journal(tmp_path / "bt.db", buffered=True)
    bt.start_run("backtest", set_id_for(cfg), {})
    run_backtest(cfg, [create("ma_cross", {"fast": 2, "slow": 5, "kind": "sma"})], bars, bt)
    want = bt.query("SELECT ts, action, reason, details FROM risk WHERE ts LIKE '2024-10-11%'")
    bt.close()
    assert list(want.action) == ["block"] and "event blackout" in want.reason.iloc[0], want
    assert list(blocked.action) == list(want.action) and list(blocked.reason) == list(want.reason)
    assert json.loads(blocked.details.iloc[0]) == json.loads(want.details.iloc[0])
    assert list(free.action) == ["allow"], free  # the same decision enters without the file
