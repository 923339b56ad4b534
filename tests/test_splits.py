"""Splits like a broker does them, in backtests: as-traded bars plus a splits table. The engine and
the in-process broker apply a split to the position and its resting orders (quantity x ratio, prices
/ ratio, cash in lieu below one share), journal it, and equity is continuous across it; strategies read
the split-adjusted series. Bad splits files stop the run with one message each, before anything is
traded. All through the real engine, broker, journal and CLI."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.config import load_config
from bot.core.events import ExitReason, Intent, OrderType
from bot.data.splits import Split, SplitTable, read_splits
from bot.journal.journal import Journal
from bot.run.assemble import build_strategies, load_market
from bot.run.backtest import run_backtest
from tests.helpers import days, drive, flat, make_cfg, make_engine
from tests.sandbox_support import write_bars
from tests.test_cli_messages import soxbot

RUNNER = CliRunner()  # in-process for the one-line refusals; the backtest that trades runs in a subprocess

SPLIT_DAY = pd.Timestamp("2024-03-01")


# -- the engine and the in-process broker ----------------------------------------------------------------
def _holding(cfg_risk: dict, journal: Journal | None = None):
    """Long 2500 SOXL bought at 40 with a 10% stop and a 50% take-profit resting at the broker."""
    cfg = make_cfg(stop_loss_pct=0.10, take_profit_pct=0.5, **cfg_risk)
    cfg.universe.bear = ""
    eng, broker = make_engine(cfg, journal)
    ts = drive(eng, broker, [(1, {"SOXL": flat(40.0)}), (1, {"SOXL": flat(40.0)})])
    assert eng.pos is not None and eng.pos.qty == 2500
    return eng, broker, ts[-1]


@pytest.mark.parametrize(
    ("ratio", "qty", "lieu_shares"),
    [(1 / 3, 833, 1 / 3), (4.0, 10000, 0.0)],  # a 1:3 reverse split (cash in lieu), a 4:1 split
)
def test_a_split_while_holding_moves_position_stop_and_resting_orders(tmp_path, ratio, qty, lieu_shares):
    j = Journal(tmp_path / "j.db")
    j.start_run("backtest", "test0001", {})
    eng, broker, last = _holding({}, j)
    before_equity, stop_cid, tp_cid = eng.equity_now, eng.pos.stop_cid, eng.pos.tp_cid
    split_day = last + pd.offsets.BDay(1)
    eng.apply_split(split_day, "SOXL", ratio, source="splits.csv")
    px = 40.0 / ratio  # the as-traded price on the new basis: the same value per old share
    eng.step(split_day, split_day.value // 86_400_000_000_000, {"SOXL": flat(px)}, 1)

    pos = eng.pos
    assert pos.qty == qty and broker.positions["SOXL"] == qty
    assert pos.entry_price == pytest.approx(px) and pos.stop == pytest.approx(36.0 / ratio)
    assert pos.take_profit == pytest.approx(60.0 / ratio)
    resting = {o.intent: o for o in broker.open_orders()}
    assert set(resting) == {Intent.STOP, Intent.TAKE_PROFIT}
    stop, tp = resting[Intent.STOP], resting[Intent.TAKE_PROFIT]
    assert (stop.type, stop.qty, stop.stop_price) == (OrderType.STOP, qty, pytest.approx(36.0 / ratio))
    assert (tp.qty, tp.limit_price) == (qty, pytest.approx(60.0 / ratio))
    assert stop.client_order_id == stop_cid + "-r1" and tp.client_order_id.startswith(tp_cid + "-r")
    # equity continuous: the price moved by 1/ratio, the shares by ratio, the rest is cash in lieu
    assert eng.equity_now == pytest.approx(before_equity, rel=1e-12)
    assert eng.cash == pytest.approx(broker.cash) and eng.cash == pytest.approx(lieu_shares * px)
    j.flush()
    _, reason, details = j.db.execute(
        "SELECT action, reason, details FROM risk WHERE action='split'"
    ).fetchone()
    d = json.loads(details)
    assert (d["qty_before"], d["qty_after"], d["ratio"]) == (2500, qty, pytest.approx(ratio))
    assert d["stop_before"] == pytest.approx(36.0) and d["stop_after"] == pytest.approx(36.0 / ratio)
    assert d["cash_in_lieu"] == pytest.approx(lieu_shares * px)
    assert "SOXL split" in reason and "position kept" in reason
    intents = {r[0]: r[1:] for r in j.db.execute("SELECT client_order_id, qty, stop_price FROM orders")}
    assert intents[stop_cid + "-r1"] == (qty, pytest.approx(36.0 / ratio))  # the new stop is journaled
    j.close()


def test_a_stop_after_a_split_fills_at_the_new_price_and_pnl_is_the_same_money():
    eng, broker, last = _holding({})
    split_day = last + pd.offsets.BDay(1)
    eng.apply_split(split_day, "SOXL", 0.25)  # 1:4: 2500 -> 625 shares, stop 36 -> 144
    later = days(2, f"{split_day + pd.offsets.BDay(1):%Y-%m-%d}")
    for t, bar in zip(later, [flat(160.0), (150.0, 151.0, 130.0, 135.0)], strict=True):
        eng.step(t, t.value // 86_400_000_000_000, {"SOXL": bar}, 1)
    t = eng.trades[-1]
    assert (t.qty, t.exit_price, t.exit_reason) == (625, 144.0, ExitReason.STOP_LOSS)
    assert t.pnl == pytest.approx(2500 * (36.0 - 40.0))  # what the same stop made before the split
    assert eng.cash == pytest.approx(broker.cash) == pytest.approx(100_000 - 2500 * 4.0)


def test_a_reverse_split_below_one_share_pays_it_out_and_closes_the_position():
    cfg = make_cfg(stop_loss_pct=0.10)
    cfg.universe.bear = ""
    cfg.broker.starting_cash = 100.0
    eng, broker = make_engine(cfg)
    drive(eng, broker, [(1, {"SOXL": flat(40.0)}), (1, {"SOXL": flat(40.0)})])
    assert eng.pos.qty == 2
    eng.apply_split(pd.Timestamp("2024-01-05"), "SOXL", 0.1)  # 1:10 of 2 shares: 0.2 share, cash in lieu
    assert eng.pos is None and "SOXL" not in broker.positions and not broker.open_orders()
    t = eng.trades[-1]
    assert t.exit_reason is ExitReason.SPLIT and t.pnl == pytest.approx(0.0)
    assert eng.cash == pytest.approx(broker.cash) == pytest.approx(100.0)


# -- a backtest on as-traded files with a splits table --------------------------------------------------
def _as_traded(n: int = 120) -> dict[str, pd.DataFrame]:
    """AAA (the signal) rises, dips for two weeks (an exit and a new entry) and rises again; BBB's value
    wanders, and it splits 1:4 (reverse) on SPLIT_DAY: from then on it trades at 4x its old price."""
    idx = pd.DatetimeIndex(pd.bdate_range("2023-11-01", periods=n).difference(_holidays()))
    rng = np.random.default_rng(5)
    value = 40 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx))))
    factor = np.where(idx >= SPLIT_DAY, 4.0, 1.0)
    out = {}
    signal = 100 + 0.5 * np.arange(len(idx))
    signal[20:30] = signal[19] - 1.5 * np.arange(1, 11)
    signal[30:] = signal[29] + 0.5 * np.arange(1, len(idx) - 29)
    for sym, close in (("AAA", signal), ("BBB", value * factor)):
        open_ = np.concatenate([[close[0]], close[:-1]])
        open_ = np.where(idx == SPLIT_DAY, open_ * 4.0, open_) if sym == "BBB" else open_
        out[sym] = pd.DataFrame(
            {"open": open_, "high": np.maximum(open_, close) * 1.005, "low": np.minimum(open_, close) * 0.995,
             "close": close, "volume": 1000.0},
            index=pd.DatetimeIndex(idx, name="timestamp"),
        )  # fmt: skip
    return out


def _holidays() -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2023-01-02", end="2024-12-31")
    every = pd.bdate_range("2023-11-01", "2024-12-31")
    return every.difference(cal.sessions_in_range("2023-11-01", "2024-12-31"))


def _config(tmp_path: Path, data: Path, extra: str = "", fractional: bool = False) -> Path:
    p = tmp_path / "bt.toml"
    p.write_text(
        f"""[data]
source = "csv"
dir = "{data}"
{extra}
[universe]
signal = "AAA"
bull = "BBB"
bear = ""
[[strategies]]
name = "ma_cross"
params = {{ fast = 2, slow = 5, kind = "sma" }}
[risk]
stop_loss_pct = 0.5
fractional = {str(fractional).lower()}
[journal]
path = "{tmp_path / "unused.db"}"
"""
    )
    return p


def test_backtest_on_as_traded_bars_with_a_splits_file(tmp_path):
    """The CLI on as-traded files: the split is applied on its date while the position is held (journal
    row), equity has no jump, strategies saw no jump, and the summary and the report say how."""
    data = write_bars(tmp_path / "data", _as_traded(), "1d")
    (tmp_path / "splits.csv").write_text("symbol,date,ratio,source\nBBB,2024-03-01,1:4,test fixture\n")
    cfg = _config(tmp_path, data, f'splits_file = "{tmp_path / "splits.csv"}"')
    r = soxbot("backtest", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "price basis: BBB: as-traded prices; 1 split from splits.csv applied" in r.stdout
    out = tmp_path / "out"
    eq = pd.read_csv(out / "equity.csv", index_col=0, parse_dates=True)["equity"]
    k = eq.index.get_loc(SPLIT_DAY)
    bbb = _as_traded()["BBB"]
    value_ret = bbb["close"].iloc[k] / 4.0 / bbb["close"].iloc[k - 1] - 1  # the fund's own move that day
    assert eq.iloc[k] / eq.iloc[k - 1] - 1 == pytest.approx(value_ret, abs=2e-4)  # no 4x jump
    db = sqlite3.connect(out / "journal.db")
    rows = db.execute("SELECT ts, reason, details FROM risk WHERE action='split'").fetchall()
    assert len(rows) == 1 and rows[0][0].startswith("2024-03-01") and "position kept" in rows[0][1]
    d = json.loads(rows[0][2])
    assert d["qty_after"] == math.floor(d["qty_before"] / 4) and d["stop_after"] == pytest.approx(
        4 * d["stop_before"]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["price_basis"]["BBB"]["basis"] == "as_traded_splits"
    assert "as-traded prices; 1 split from splits.csv" in (out / "report.html").read_text()
    trades = pd.read_csv(out / "trades.csv")
    assert not trades.empty and (trades["exit_reason"] != "stop_loss").all()  # the split is no loss


def test_as_traded_with_splits_gives_the_adjusted_backtest(tmp_path):
    """The same market two ways: as-traded bars + the splits table, and the back-adjusted bars. With
    fractional shares every trade and the equity curve agree (to float noise); the event-skipping
    driver and the plain loop agree too."""
    raw = _as_traded()
    table = SplitTable([Split("BBB", SPLIT_DAY, 0.25, "1:4")])
    adjusted = {"AAA": raw["AAA"], "BBB": table.adjusted("BBB", raw["BBB"])}
    assert adjusted["BBB"]["close"].iloc[-1] == raw["BBB"]["close"].iloc[-1]  # the last bar's basis
    runs = {}
    for name, bars, splits, every in (
        ("raw", raw, table, False),
        ("raw-every-bar", raw, table, True),
        ("adjusted", adjusted, None, False),
    ):
        d = write_bars(tmp_path / name, bars, "1d")
        extra = f'splits_file = "{tmp_path / "s.csv"}"' if splits else 'price_basis = "as_traded"'
        (tmp_path / "s.csv").write_text("symbol,date,ratio\nBBB,2024-03-01,1:4\n")
        cfg = load_config(_config(tmp_path, d, extra, fractional=True))
        loaded, _ = load_market(cfg)
        runs[name] = run_backtest(cfg, build_strategies(cfg), loaded, every_bar=every)
    a, b, c = runs["raw"], runs["raw-every-bar"], runs["adjusted"]
    assert len(a.trades) == len(c.trades) >= 2
    pd.testing.assert_series_equal(a.equity["equity"], c.equity["equity"], rtol=1e-9)
    pd.testing.assert_frame_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    held = a.trades[(a.trades.entry_time < SPLIT_DAY) & (a.trades.exit_time >= SPLIT_DAY)]
    assert len(held) == 1  # the comparison covers a split while holding
    np.testing.assert_allclose(a.trades["pnl"], c.trades["pnl"], atol=1e-3)  # dollars


# -- bad splits files: one message each, nothing traded ------------------------------------------------
BAD = [
    ("symbol,date,ratio\nBBB,2024-03-01,0\n", ["line 2", "'0' is zero or negative", "1:10"]),
    ("symbol,date,ratio\nBBB,2024-03-01,-2:1\n", ["line 2", "zero or negative"]),
    ("symbol,date,ratio\nBBB,2024-03-01,1/4\n", ["line 2", "'1/4' is not a split ratio"]),
    ("symbol,date,ratio\nBBB,2024-03-01,1:1\n", ["line 2", "changes nothing"]),
    ("symbol,date,ratio\nBBB,01/03/2024,1:4\n", ["line 2", "'01/03/2024' is not a date", "YYYY-MM-DD"]),
    ("symbol,date,ratio\nBBB,2030-01-02,1:4\n", ["line 2", "outside the data", "BBB_1d.csv covers"]),
    ("symbol,date,ratio\nBBB,2023-11-01,1:4\n", ["outside the data"]),  # on the first bar: no bar before
    ("symbol,date,ratio\nBBB,2024-03-02,1:4\n", ["2024-03-02", "not a day with a bar", "BBB_1d.csv"]),
    ("symbol,date,ratio\nBBB,2024-03-01,1:4\nBBB,2024-03-01,1:4\n", ["line 3", "listed again", "line 2"]),
    ("symbol,when,ratio\nBBB,2024-03-01,1:4\n", ["line 1", "lacks date"]),
    ("symbol,date,ratio\nBBB,2024-03-01,1:4,extra,more\n", ["line 2", "5 fields"]),
    ("# only a comment\n", ["is empty"]),
]


def refused(cfg: Path, out: Path, *needles: str) -> str:
    """`soxbot backtest` refuses: exit 2, one or two lines holding every needle, no traceback, no output."""
    r = RUNNER.invoke(app, ["backtest", "--config", str(cfg), "--out", str(out)])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    msg = r.stderr.strip()
    assert 1 <= len(msg.splitlines()) <= 2 and "Traceback" not in r.output, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert not out.exists()  # nothing ran, nothing traded
    return msg


@pytest.mark.parametrize(("text", "needles"), BAD, ids=[b[1][-1] for b in BAD])
def test_a_bad_splits_file_is_one_clear_message_and_nothing_is_traded(tmp_path, text, needles):
    data = write_bars(tmp_path / "data", _as_traded(), "1d")
    (tmp_path / "splits.csv").write_text(text)
    cfg = _config(tmp_path, data, f'splits_file = "{tmp_path / "splits.csv"}"')
    refused(cfg, tmp_path / "out", "splits.csv", *needles)


def test_a_missing_splits_file_or_a_source_without_files_is_one_clear_message(tmp_path):
    data = write_bars(tmp_path / "data", _as_traded(), "1d")
    cfg = _config(tmp_path, data, f'splits_file = "{tmp_path / "nope.csv"}"')
    refused(cfg, tmp_path / "o", "nope.csv does not exist")
    (tmp_path / "s.csv").write_text("symbol,date,ratio\nSOXL,2024-03-01,1:4\n")
    syn = tmp_path / "syn.toml"
    syn.write_text(f'[data]\nsource = "synthetic"\nsplits_file = "{tmp_path / "s.csv"}"\n')
    refused(syn, tmp_path / "o", "splits_file", "source = 'synthetic'", "Fix")


def test_the_example_table_reads_and_names_a_source_for_every_split():
    table = read_splits(Path(__file__).resolve().parents[1] / "splits.example.csv")
    rows = [s for v in table.by_symbol.values() for s in v]
    assert len(rows) == 10 and all(s.source for s in rows)
    assert [s.ratio for s in table.of("SOXL")] == [4.0, 15.0]
    assert math.prod(s.ratio for s in table.of("SOXS")) == pytest.approx(1 / 9.6e6)  # 9.6e8 / 10 / 10


def test_the_replay_applies_splits_as_the_backtest_does(tmp_path):
    """`soxbot run` on CSV bars (the live signal path, offline) books the same split and trades."""
    from bot.broker.sim import SimBroker
    from bot.run.replay import run_replay
    from bot.signals.window import live_window

    data = write_bars(tmp_path / "data", _as_traded(), "1d")
    (tmp_path / "s.csv").write_text("symbol,date,ratio\nBBB,2024-03-01,1:4\n")
    cfg = load_config(_config(tmp_path, data, f'splits_file = "{tmp_path / "s.csv"}"'))
    cfg.run.speed = 1e9
    bars, _ = load_market(cfg)
    strategies = build_strategies(cfg)
    back = run_backtest(cfg, strategies, bars)
    j = Journal(tmp_path / "replay.db")
    j.start_run("paper-replay", "x", {})
    eng = run_replay(cfg, strategies, bars, SimBroker.from_settings(cfg), j, live_window(strategies))
    eng.finish(eng.now)
    rows = j.db.execute("SELECT ts, reason FROM risk WHERE action='split'").fetchall()
    assert len(rows) == 1 and rows[0][0].startswith("2024-03-01") and "position kept" in rows[0][1]
    assert [(t.entry_time, t.qty) for t in eng.trades] == list(
        zip(back.trades.entry_time, back.trades.qty, strict=True)
    )
    j.close()
