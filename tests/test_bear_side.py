"""The bear side with its own rules: `[risk.bull]` / `[risk.bear]` override [risk] keys for their side
(a bear trade gets the bear stop, size and max hold, a bull trade the bull ones) and may gate entries
on the signal's regime (close vs its SMA, drawdown from its peak). Hand-built series through the real
backtest (engine, in-process broker, SQLite journal); the same bars through the live path (the replay
driver: trailing signals, regime stepper) block the same entries and make the same trades; bad
`[risk.bear]` keys stop the real CLI with one clear message."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.broker.sim import SimBroker
from bot.core.config import Settings, StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.journal.journal import Journal
from bot.run.backtest import run_backtest, set_id_for
from bot.run.replay import run_replay
from bot.signals.live import TrailingSignals
from bot.signals.regime import RegimeStepper, regime_series, regime_window
from bot.signals.strategy import Strategy, finalize
from bot.signals.window import live_window
from tests.conftest import REPO

Bar = tuple[float, float, float, float]


class Scripted(Strategy):
    """Hand-built scenarios: the direction is read from the signal bars' volume (0: -1, 1: 0, 2: +1),
    so it can be set apart from the closes the regime gate reads."""

    name = "scripted"
    warmup = 0  # type: ignore[assignment]

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        d = bars["volume"].to_numpy().astype(int) - 1
        return finalize(bars.index, d, np.array([f"script {x:+d}" for x in d], dtype=object), 0)

    def stepper(self) -> _ScriptedStep:
        return _ScriptedStep()


class _ScriptedStep:
    def update(self, o: float, h: float, low: float, c: float, v: float) -> tuple[int, str, dict[str, float]]:
        d = int(v) - 1
        return d, f"script {d:+d}", {}


def market(closes: list[float], dirs: list[int], **traded: list[Bar]) -> dict[str, pd.DataFrame]:
    """SOXX with these closes and scripted directions; the traded symbols' bars as given (flat at
    50 for SOXL and 20 for SOXS where not)."""
    n = len(closes)
    idx = pd.bdate_range("2024-01-02", periods=n, name="timestamp")
    c = np.array(closes, float)
    out = {
        "SOXX": pd.DataFrame(
            {"open": c, "high": c, "low": c, "close": c, "volume": np.array(dirs, float) + 1}, index=idx
        )
    }
    for sym, px in (("SOXL", 50.0), ("SOXS", 20.0)):
        rows = traded.get(sym, [(px, px, px, px)] * n)
        out[sym] = pd.DataFrame(rows, index=idx, columns=["open", "high", "low", "close"]).assign(volume=1e6)
    return out


def cfg_with(**risk: Any) -> Settings:
    cfg = load_config()
    cfg.strategies = [StrategyConfig(name="scripted")]
    for k, v in risk.items():
        setattr(cfg.risk, k, v)
    return cfg


def backtest(cfg: Settings, bars: dict[str, pd.DataFrame], tmp_path: Path, name: str = "bt"):
    j = Journal(tmp_path / f"{name}.db", buffered=True)
    j.start_run("backtest", set_id_for(cfg), {})
    res = run_backtest(cfg, [Scripted()], bars, j)
    j.end_run()
    risk = j.query("SELECT ts, action, reason, details FROM risk ORDER BY rowid")
    orders = j.query("SELECT client_order_id, symbol, intent, stop_price, limit_price FROM orders")
    j.close()
    return res, risk, orders


def trades(res) -> list[tuple]:
    t = res.trades
    day = {ts: i for i, ts in enumerate(res.equity.index)}
    return [
        (r.symbol, day[r.entry_time], day[r.exit_time], r.exit_reason, r.qty)
        for r in t.itertuples(index=False)
    ]


# -- per-side rules ----------------------------------------------------------------------------------
def test_each_side_gets_its_own_stop_size_and_max_hold(tmp_path):
    """[risk] has a far 50% stop and no max hold; [risk.bull] a 10% stop; [risk.bear] a 3% stop, a
    3-session max hold and half the size. The bull trade is stopped at 45 after 6 sessions (the bear's
    max hold does not reach it); the bear trade's stop rests at 19.4 and it leaves on max hold."""
    n = 16
    soxl = [(50.0, 50.0, 50.0, 50.0)] * n
    soxl[6] = (50.0, 50.0, 44.0, 46.0)  # through the bull stop (45), far above [risk]'s (25)
    dirs = [1] * 9 + [-1] * 7
    bars = market([100.0] * n, dirs, SOXL=soxl)
    cfg = cfg_with(
        stop_loss_pct=0.5,
        bull={"stop_loss_pct": 0.10},
        bear={"stop_loss_pct": 0.03, "max_hold_days": 3, "fraction": 0.5},
    )
    res, risk, orders = backtest(cfg, bars, tmp_path)
    # SOXL: 2000 shares (all of 100k at 50), stopped at 45 -> equity 90k; SOXS: half of 90k at 20
    assert trades(res) == [("SOXL", 1, 6, "stop_loss", 2000.0), ("SOXS", 10, 13, "max_hold", 2250.0)]
    assert res.trades["exit_price"].iloc[0] == 45.0
    stops = orders[orders.intent == "stop"].set_index("symbol")["stop_price"]
    assert stops["SOXL"] == pytest.approx(45.0) and stops["SOXS"] == pytest.approx(19.4)
    assert "held 3 sessions >= max_hold_days 3" in set(risk.reason)
    # without the side tables the same bars give [risk]'s rules: no stop-out, no max hold
    plain, _, _ = backtest(cfg_with(stop_loss_pct=0.5), bars, tmp_path, "plain")
    assert [t[:4] for t in trades(plain)] == [("SOXL", 1, 10, "signal"), ("SOXS", 10, 15, "end_of_data")]


def test_bull_side_take_profit_and_trailing_apply_to_bull_only(tmp_path):
    """[risk.bull] take_profit 10%; the bear side keeps [risk]'s (none): SOXS rises 20% and stays held."""
    n = 12
    soxl = [(50.0, 50.0, 50.0, 50.0)] * n
    soxl[3] = (50.0, 56.0, 50.0, 55.0)
    soxs = [(20.0, 20.0, 20.0, 20.0)] * 7 + [(24.0, 24.0, 24.0, 24.0)] * 5
    bars = market([100.0] * n, [1] * 5 + [-1] * 7, SOXL=soxl, SOXS=soxs)
    cfg = cfg_with(stop_loss_pct=0.0, bull={"take_profit_pct": 0.10})
    res, _, orders = backtest(cfg, bars, tmp_path)
    assert [t[:4] for t in trades(res)] == [("SOXL", 1, 3, "take_profit"), ("SOXS", 6, 11, "end_of_data")]
    assert set(orders[orders.intent == "tp"].symbol) == {"SOXL"}


# -- regime gates ------------------------------------------------------------------------------------
def test_bear_sma_gate_blocks_entry_above_sma_and_journals_the_figures(tmp_path):
    """[risk.bear] regime_sma = 3. At bar 3 the direction turns -1 with SOXX at 103 above its SMA3
    (101+102+103)/3 = 102: SOXL is sold (exits are never gated), SOXS not bought, and the block is
    journaled with the figures. The gate is read where the engine decides: at bar 5 the close is back
    under the SMA but the direction has not changed, so nothing happens until the next -1 (bar 7,
    95 below (100+100+95)/3), which is entered."""
    closes = [100.0, 101.0, 102.0, 103.0, 103.0, 100.0, 100.0, 95.0, 95.0, 95.0, 95.0]
    dirs = [1, 1, 1, -1, -1, -1, 0, -1, -1, -1, -1]
    cfg = cfg_with(stop_loss_pct=0.0, bear={"regime_sma": 3})
    res, risk, _ = backtest(cfg, market(closes, dirs), tmp_path)
    assert [t[:4] for t in trades(res)] == [("SOXL", 1, 4, "signal"), ("SOXS", 8, 10, "end_of_data")]
    blocks = risk[risk.action == "block"]
    assert list(blocks.reason) == ["no entry into SOXS: regime gate: SOXX close 103.00 above SMA3 102.00"]
    details = json.loads(blocks.details.iloc[0])
    assert details["close"] == 103.0 and details["sma"] == 102.0 and details["direction"] == -1
    assert pd.Timestamp(blocks.ts.iloc[0]).date() == res.equity.index[3].date()


def test_drawdown_gates_both_sides_and_unknown_figures_block(tmp_path):
    """Both sides with regime_drawdown_pct = 0.2 over a 5-bar peak. Bar 0: the peak needs 5 bars,
    so the bull entry is blocked; bar 6: drawdown 0 -> bull entered; bar 7: 10% -> bear blocked
    (shallower than 20%); bar 9: 25% -> bear entered; bar 10: 25% -> bull blocked (20% or deeper)."""
    closes = [100.0] * 7 + [90.0, 78.0, 75.0, 75.0, 75.0]
    dirs = [1] * 5 + [0, 1, -1, 0, -1, 1, 1]
    gate = {"regime_drawdown_pct": 0.2, "regime_peak_bars": 5}
    cfg = cfg_with(stop_loss_pct=0.0, bull=gate, bear=gate)
    res, risk, _ = backtest(cfg, market(closes, dirs), tmp_path)
    assert [t[:4] for t in trades(res)] == [("SOXL", 7, 8, "signal"), ("SOXS", 10, 11, "signal")]
    assert list(risk[risk.action == "block"].reason) == [
        "no entry into SOXL: regime gate: SOXX 5-bar peak not known yet (needs 5 bars)",
        "no entry into SOXS: regime gate: SOXX drawdown 10.0% from its 5-bar peak 100.00 is shallower "
        "than 20%",
        "no entry into SOXL: regime gate: SOXX drawdown 25.0% from its 5-bar peak 100.00 is 20% or deeper",
    ]


def test_bull_sma_and_drawdown_must_both_hold(tmp_path):
    """[risk.bull] regime_sma = 2 and regime_drawdown_pct = 0.1 over a 3-bar peak: a bull entry needs
    the close above its SMA2 and a drawdown under 10%; the block names each condition that fails."""
    closes = [100.0, 100.0, 99.0, 80.0, 85.0, 70.0, 60.0, 60.0, 61.0, 61.0, 61.0]
    dirs = [0, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1]
    bull = {"regime_sma": 2, "regime_drawdown_pct": 0.1, "regime_peak_bars": 3}
    res, risk, _ = backtest(cfg_with(stop_loss_pct=0.0, bull=bull), market(closes, dirs), tmp_path)
    assert list(risk[risk.action == "block"].reason) == [
        "no entry into SOXL: regime gate: SOXX close 99.00 below SMA2 99.50",
        "no entry into SOXL: regime gate: SOXX drawdown 14.1% from its 3-bar peak 99.00 is 10% or deeper",
        "no entry into SOXL: regime gate: SOXX close 60.00 below SMA2 65.00; SOXX drawdown 29.4% from its "
        "3-bar peak 85.00 is 10% or deeper",
    ]
    assert [t[:4] for t in trades(res)] == [("SOXL", 9, 10, "end_of_data")]


# -- the same figures and decisions in backtest and live -------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    tick=st.booleans(),
    sma=st.sampled_from([0, 2, 5, 50]),
    peak=st.sampled_from([0, 2, 7, 60]),
)
def test_stepper_equals_the_vectorised_figures_to_the_bit(seed, tick, sma, peak):
    """RegimeStepper (live) and regime_series (backtest) give the same bits, ties on a tick grid too."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-3, 4, 300) * 0.25 if tick else rng.normal(0, 0.02, 300)
    close = 100.0 + np.cumsum(steps) if tick else 100.0 * np.exp(np.cumsum(steps))
    cfg = load_config()
    cfg.risk.bear = {"regime_sma": sma or 3, "regime_drawdown_pct": 0.2 if peak else 0.0,
                     "regime_peak_bars": peak or 2}  # fmt: skip
    cfg.risk.bull = {"regime_sma": 200, "regime_drawdown_pct": 0.1, "regime_peak_bars": 20}
    series = regime_series(cfg, close)
    stepper = RegimeStepper(cfg)
    for i, c in enumerate(close.tolist()):
        got, want = stepper.push(c), series.at(i)
        for a, b in zip(
            (got.bull_sma, got.bull_peak, got.bear_sma, got.bear_peak),
            (want.bull_sma, want.bull_peak, want.bear_sma, want.bear_peak),
            strict=True,
        ):
            assert (math.isnan(a) and math.isnan(b)) or a == b, (i, got, want)


def test_revise_redoes_the_newest_bar_like_a_fresh_push():
    """A daily bar decided before the close is revised to its final close: the figures are those of
    a stepper that saw the final close in the first place."""
    cfg = load_config()
    cfg.risk.bear = {"regime_sma": 4, "regime_drawdown_pct": 0.1, "regime_peak_bars": 3}
    a, b = RegimeStepper(cfg), RegimeStepper(cfg)
    closes = [10.0, 12.0, 11.0, 13.0, 9.0, 14.0, 8.0]
    for k, c in enumerate(closes):
        a.push(c + 5.0)  # the day so far
        got = a.revise(c)
        want = b.push(c)
        np.testing.assert_array_equal(tuple(got), tuple(want), err_msg=str(k))
    assert regime_window(cfg) == 4
    # the same through TrailingSignals, as the Alpaca driver uses it: decided on the day so far, revised
    # to the final bar at the close; the next bar's figures are those of the final bars all along
    cfg.strategies = [StrategyConfig(name="scripted")]
    early, final = TrailingSignals(cfg, [Scripted()], 10), TrailingSignals(cfg, [Scripted()], 10)
    days = pd.bdate_range("2024-01-02", periods=len(closes) + 1)
    for ts, c in zip(days, closes, strict=False):
        early.push(ts, c, c + 5.0, c, c + 5.0, 2.0)
        early.revise(ts, c, c, c, c, 2.0)
        final.push(ts, c, c, c, c, 2.0)
    got, want = (
        early.push(days[-1], 11.0, 11.0, 11.0, 11.0, 2.0),
        final.push(days[-1], 11.0, 11.0, 11.0, 11.0, 2.0),
    )
    assert got.regime is not None and not math.isnan(got.regime.bear_sma)
    np.testing.assert_array_equal(tuple(got.regime), tuple(want.regime))


def replay_journal(cfg: Settings, strategies: list[Strategy], bars: dict[str, pd.DataFrame], path: Path):
    cfg.run.speed = 1e9
    cfg.run.log_level = "WARNING"
    j = Journal(path)
    j.start_run("paper-replay", set_id_for(cfg), json.loads(cfg.model_dump_json()))
    window = max(live_window(strategies), regime_window(cfg))
    engine = run_replay(cfg, strategies, bars, SimBroker.from_settings(cfg), j, window)
    j.end_run("ok")
    risk = j.query("SELECT ts, action, reason, details FROM risk ORDER BY rowid")
    j.close()
    return engine, risk


def same_trades(bt, live) -> None:
    assert [(t.symbol, t.entry_time, t.exit_time, t.exit_reason) for t in bt] == [
        (t.symbol, t.entry_time, t.exit_time, t.exit_reason) for t in live
    ]
    for a, b in zip(bt, live, strict=True):
        assert a.qty == b.qty and a.pnl == pytest.approx(b.pnl, rel=1e-9)


def test_parity_hand_built_replay_blocks_and_trades_like_the_backtest(tmp_path):
    closes = [100.0, 101.0, 102.0, 103.0, 103.0, 100.0, 100.0, 95.0, 95.0, 70.0, 70.0, 90.0, 90.0, 95.0]
    dirs = [1, 1, 1, -1, -1, -1, 0, -1, -1, 1, 0, 1, -1, 1]
    cfg = cfg_with(
        stop_loss_pct=0.0,
        bull={"regime_drawdown_pct": 0.2, "regime_peak_bars": 6, "stop_loss_pct": 0.1},
        bear={"regime_sma": 3, "max_hold_days": 2},
    )
    bars = market(closes, dirs)
    res, bt_risk, _ = backtest(cfg, bars, tmp_path)
    engine, live_risk = replay_journal(cfg.model_copy(deep=True), [Scripted()], bars, tmp_path / "live.db")
    assert (bt_risk.action == "block").sum() >= 2 and "max_hold" in set(res.trades.exit_reason)
    n = len(engine.trades)
    same_trades(res.engine.trades[:n], engine.trades)
    assert [t.exit_reason for t in res.engine.trades[n:]] in ([], ["end_of_data"])  # closed at the end
    blocks = [r for r in bt_risk.itertuples() if r.action == "block"]
    assert [(r.ts, r.reason, r.details) for r in blocks] == [
        (r.ts, r.reason, r.details) for r in live_risk.itertuples() if r.action == "block"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("offset", [0, 10])
def test_parity_real_data_gated_bear_side(shared_data, tmp_path, offset):
    """SOXX signal, ma_cross 20/50, SOXS only below SOXX's SMA200 with a 10-session max hold and a
    15% stop, SOXL with a 25% trailing stop: the replay driver (live path) makes the backtest's trades
    and blocks the same entries with the same figures."""
    cfg = load_config()
    cfg.service.daily_decision_offset_minutes = offset
    cfg.risk.stop_loss_pct = 0.0
    cfg.risk.fractional = True
    cfg.risk.bull = {"trailing_stop_pct": 0.25}
    cfg.risk.bear = {"regime_sma": 200, "max_hold_days": 10, "stop_loss_pct": 0.15}
    bars = {
        s: clean_bars(load_csv(shared_data, s, "1d", "2011-01-01", "2026-08-21"), s, "1d")[0]
        for s in ("SOXX", "SOXL", "SOXS")
    }
    from bot.signals.plugins import create

    strategies = [create("ma_cross", {"fast": 20, "slow": 50, "kind": "sma"})]
    j = Journal(tmp_path / "bt.db", buffered=True)
    j.start_run("backtest", set_id_for(cfg), {})
    res = run_backtest(cfg, strategies, bars, j)
    j.end_run()
    bt_risk = j.query("SELECT ts, action, reason, details FROM risk WHERE action = 'block' ORDER BY rowid")
    j.close()
    engine, live_risk = replay_journal(cfg.model_copy(deep=True), strategies, bars, tmp_path / "live.db")
    gated = bt_risk[bt_risk.reason.str.contains("regime gate")]
    assert len(gated) >= 5 and (res.trades.symbol == "SOXS").sum() >= 3
    assert {"max_hold", "stop_loss"} <= set(res.trades.exit_reason)
    n = len(engine.trades)
    same_trades(res.engine.trades[:n], engine.trades)
    assert len(res.engine.trades) - n <= 1  # only the backtest's end-of-data close is extra
    pd.testing.assert_frame_equal(
        bt_risk.reset_index(drop=True), live_risk[live_risk.action == "block"].reset_index(drop=True)
    )


# -- bad configuration -------------------------------------------------------------------------------
def soxbot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("table", "needles"),
    [
        ("[risk.bear]\nstop_los_pct = 0.1\n", ["risk.bear.stop_los_pct", "unknown key", "stop_loss_pct"]),
        ("[risk.bear]\nregime_sma = -200\n", ["risk.bear.regime_sma", "greater than or equal to 0"]),
        ("[risk.bull]\nregime_sma = 1\n", ["risk.bull.regime_sma", "0 (off) or a length of 2 bars"]),
        ("[risk.bear]\ndaily_loss_limit_pct = 0.1\n", ["risk.bear.daily_loss_limit_pct", "unknown key"]),
        (
            "[risk]\nstop_loss_pct = 0\n[risk.bear]\nsizing = 'risk_per_trade'\n",
            ["[risk.bear] sizes by 'risk_per_trade' but has no stop", "stop_loss_pct"],
        ),
    ],
    ids=["unknown", "negative_sma", "sma_1", "account_key", "risk_sizing_without_stop"],
)
def test_bad_side_table_one_clear_message(tmp_path, table, needles):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[data]\nsource = "synthetic"\n' + table)
    r = soxbot("backtest", "--config", str(cfg), "--out", str(tmp_path / "out"))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out[-2000:]
    assert "Traceback" not in out
    msg = r.stderr.strip()
    assert 1 <= len(msg.splitlines()) <= 2, msg
    for n in needles:
        assert n in msg, (n, msg)


# -- the Alpaca driver (live) against the sandbox ---------------------------------------------------
def test_alpaca_driver_warms_the_gate_up_and_blocks_like_the_backtest(tmp_path):
    """The live driver on the sandbox (alpaca-py over HTTP): a bull gate on AAA's SMA300, longer than
    the strategies' live window (256 bars), is warmed up from enough history to know its SMA at the
    first decision, and blocks the entry the backtest of the same bars blocks, with the same figures."""
    from bot.run.assemble import build_strategies
    from bot.signals.plugins import create
    from tests.alpaca_support import live_daily_run
    from tests.sandbox_support import daily_bars, write_bars

    bars = daily_bars(start="2023-06-01")
    d = write_bars(tmp_path / "data", bars, "1d")
    cfg, path = live_daily_run(tmp_path / "live", d, "2024-10-07", 5, risk="[risk.bull]\nregime_sma = 300")
    assert live_window(build_strategies(cfg)) < 300  # the gate needs more history than the strategies
    j = Journal(path)
    live = j.query("SELECT ts, reason, details FROM risk WHERE action = 'block'")  # 10-11: a cross up
    j.close()
    bt = Journal(tmp_path / "bt.db", buffered=True)
    bt.start_run("backtest", set_id_for(cfg), {})
    run_backtest(cfg, [create("ma_cross", {"fast": 2, "slow": 5, "kind": "sma"})], bars, bt)
    want = bt.query("SELECT ts, reason, details FROM risk WHERE action = 'block' AND ts LIKE '2024-10-11%'")
    bt.close()
    assert len(want) == 1 and "below SMA300" in want.reason.iloc[0], want
    assert list(live.reason) == list(want.reason)
    assert json.loads(live.details.iloc[0]) == json.loads(want.details.iloc[0])
