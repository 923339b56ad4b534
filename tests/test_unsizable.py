"""A side that can never be sized (a price above what the account can buy of it) is said once, on
screen at the start and in the backtest's summary and report, not only bar by bar in the journal."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.config import load_config
from bot.data.calendar import sessions
from bot.risk.sizable import unsizable
from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def _write(d: Path, symbol: str, close: np.ndarray, days: pd.DatetimeIndex) -> None:
    df = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1000},
        index=pd.Index(days.strftime("%Y-%m-%d"), name="timestamp"),
    )
    df.to_csv(d / f"{symbol}_1d.csv")


def _market(d: Path, soxs_price: float) -> None:
    days = sessions("2024-01-02", "2024-06-28")
    t = np.arange(len(days))
    soxx = 200 * (1 + 0.08 * np.sin(t / 6))  # swings: ma_cross 3/8 goes bull and bear many times
    r = np.diff(np.log(soxx), prepend=np.log(soxx[0]))
    _write(d, "SOXX", soxx, days)
    _write(d, "SOXL", 30 * np.exp(np.cumsum(3 * r)), days)
    _write(d, "SOXS", soxs_price * np.exp(np.cumsum(-3 * r)), days)


def _backtest(tmp: Path, soxs_price: float) -> tuple[subprocess.CompletedProcess, Path]:
    data, out = tmp / "data", tmp / "out"
    data.mkdir()
    _market(data, soxs_price)
    cfg = tmp / "bt.toml"
    cfg.write_text(  # prices as traded: a SOXS at 500k is a price the account cannot pay, not an adjustment
        '[data]\nprice_basis = "as_traded"\n'
        '[[strategies]]\nname = "ma_cross"\nparams = { fast = 3, slow = 8 }\n[risk]\nstop_loss_pct = 0\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "backtest", "--config", str(cfg), "--data-dir", str(data),
         "--out", str(out), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r, out


def test_a_side_priced_above_the_account_is_warned_once_on_screen_and_in_the_summary(tmp_path):
    r, out = _backtest(tmp_path, soxs_price=500_000.0)
    screen = r.stdout + r.stderr
    assert screen.count("bear SOXS cannot be sized") == 1, screen
    line = next(x for x in screen.splitlines() if "cannot be sized" in x)
    assert "on every bar" in line and "Fix: set [risk] fractional = true" in line
    assert screen.index("cannot be sized") < screen.index("strategy:")  # said at the start, not the end
    summary = json.loads((out / "summary.json").read_text())
    (u,) = summary["unsizable"]
    assert (u["side"], u["symbol"], u["bars"], u["of"]) == ("bear", "SOXS", u["of"], u["of"])
    assert summary["warnings"] == [u["message"]]
    # the run did try to enter the bear side, and each try is in the journal; the summary counts them
    j = sqlite3.connect(out / "journal.db")
    blocked = j.execute(
        "SELECT count(*) FROM risk WHERE reason = 'no entry into SOXS: size is 0'"
    ).fetchone()[0]
    assert blocked >= 3 and summary["entries_blocked_size_0"] == {"SOXS": blocked}
    html = (out / "report.html").read_text()
    assert html.count("bear SOXS cannot be sized") == 1
    assert f"entries blocked at size 0: {blocked} into SOXS" in html


def test_no_warning_when_both_sides_can_be_bought(tmp_path):
    r, out = _backtest(tmp_path, soxs_price=50.0)
    assert "cannot be sized" not in r.stdout + r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["warnings"] == [] and summary["unsizable"] == [] and summary["entries_blocked_size_0"] == {}
    )


def test_the_rule_counts_the_bars_and_the_broker_minimum():
    cfg = load_config()
    days = pd.date_range("2020-01-01", periods=4)
    prices = [2e5, 1.5e5, np.nan, 50.0]
    u = unsizable(cfg, "bear", "SOXS", prices, days, 100_000.0)
    assert u is not None and (u.bars, u.of, u.first, u.last) == (2, 3, "2020-01-01", "2020-01-02")
    assert "on 2 of 3 bars (2020-01-01 .. 2020-01-02)" in u.message(False)
    cfg.risk.fractional = True  # the in-process broker takes a millionth of a share
    assert unsizable(cfg, "bear", "SOXS", prices, days, 100_000.0) is None
    cfg.broker.kind = "alpaca"  # Alpaca places protective stops on whole shares only
    assert unsizable(cfg, "bear", "SOXS", prices, days, 100_000.0) is not None
    cfg.risk.stop_loss_pct = 0.0  # no stop rule: a fractional position needs no stop order
    assert unsizable(cfg, "bear", "SOXS", prices, days, 100_000.0) is None


def test_soxbot_replay_says_it_once_at_start(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _market(data, soxs_price=500_000.0)
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[data]\nsource = "csv"\ndir = "{data}"\nprice_basis = "as_traded"\n'
        f'[journal]\npath = "{tmp_path / "j.db"}"\n'
        '[[strategies]]\nname = "ma_cross"\nparams = { fast = 3, slow = 8 }\n[risk]\nstop_loss_pct = 0\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "replay", "--config", str(cfg), "--speed", "5000"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    screen = r.stdout + r.stderr
    assert screen.count("bear SOXS cannot be sized on every bar") == 1, screen
    assert screen.index("cannot be sized") < screen.index("bar ")  # before the first bar's line
    assert screen.count("no entry into SOXS: size is 0") >= 3  # each blocked entry is still on its bar line


def test_prices_in_the_preroll_before_start_are_not_judged(tmp_path):
    """Bars before --start only warm up: a SOXS priced beyond the account there (and affordable from
    --start on, as after a reverse split in as-traded prices) is not said to be unsizable."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _market(data, soxs_price=50.0)
    soxs = pd.read_csv(data / "SOXS_1d.csv", index_col=0)
    soxs.loc[soxs.index < "2024-04-01", ["open", "high", "low", "close"]] *= 10_000  # 500k a share
    soxs.to_csv(data / "SOXS_1d.csv")
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        '[data]\nprice_basis = "as_traded"\n'
        '[[strategies]]\nname = "ma_cross"\nparams = { fast = 3, slow = 8 }\n[risk]\nstop_loss_pct = 0\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "backtest", "--config", str(cfg), "--data-dir", str(data),
         "--out", str(out), "--no-progress", "--start", "2024-04-01"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "cannot be sized" not in r.stdout + r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unsizable"] == [] and summary["period"]["preroll_bars"] > 0
