"""The real `soxbot` command, run as a user would, in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def soxbot(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_backtest_on_real_data_writes_every_file(shared_data, tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        '[universe]\nsignal = "SOXX"\nbull = "SOXL"\nbear = "SOXS"\n'
        '[[strategies]]\nname = "ma_cross"\nparams = { fast = 20, slow = 50 }\n'
        '[[strategies]]\nname = "rsi"\n[[strategies]]\nname = "support"\n'
        "[risk]\nstop_loss_pct = 0.08\nfractional = true\nmax_hold_days = 20\n"
    )
    r = soxbot(
        "backtest",
        "--config",
        str(cfg),
        "--data-dir",
        str(shared_data),
        "--start",
        "2021-01-01",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    trades = pd.read_csv(out / "trades.csv")
    assert list(trades.columns)[:9] == [
        "symbol",
        "side",
        "qty",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "pnl",
        "exit_reason",
    ]
    # then the decay and carry attribution (tests/test_leverage_attribution.py checks its values)
    assert list(trades.columns)[9:] == [
        "leverage",
        "underlying",
        "log_return",
        "index_log_return",
        "attr_leveraged_index",
        "attr_vol_drag",
        "attr_expense",
        "attr_financing",
        "attr_rest",
    ]
    assert len(trades) > 5 and set(trades.symbol) <= {"SOXL", "SOXS"}
    assert set(trades.exit_reason) <= {
        "signal",
        "stop_loss",
        "take_profit",
        "max_hold",
        "end_of_data",
        "risk",
    }
    assert pd.to_datetime(trades.entry_time).min() >= pd.Timestamp("2021-01-01")
    eq = pd.read_csv(out / "equity.csv")
    assert list(eq.columns) == ["timestamp", "equity", "cash", "position_value"]
    assert (eq.equity - eq.cash - eq.position_value).abs().max() < 1e-6
    # the trades add up to the equity change: nothing is lost between fills and the books
    assert eq.equity.iloc[-1] - 100_000 == pytest.approx(trades.pnl.sum(), rel=1e-6, abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    for block in ("strategy", "buy_and_hold"):
        for k in (
            "total_return",
            "cagr",
            "sharpe",
            "sortino",
            "max_drawdown",
            "win_rate",
            "profit_factor",
            "exposure",
            "n_trades",
        ):
            assert k in summary[block]
    assert summary["strategy"]["n_trades"] == len(trades)
    html = (out / "report.html").read_text()
    assert "SYNTHETIC DATA" not in html and "plotly" in html.lower()
    j = sqlite3.connect(out / "journal.db")
    n_orders = j.execute("SELECT count(*) FROM orders").fetchone()[0]
    n_fills = j.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert n_fills == 2 * len(trades) and n_orders >= n_fills


def test_backtest_on_synthetic_default_is_labelled(tmp_path):
    r = soxbot("backtest", "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout
    assert "SYNTHETIC DATA" in (tmp_path / "o" / "report.html").read_text()


def test_replay_offline_default_logs_decisions_and_journals(tmp_path):
    db = tmp_path / "run.db"
    r = soxbot(
        "replay",
        "--config",
        "config.example.toml",
        "--max-bars",
        "160",
        "--speed",
        "5000",
        env={"SOXBOT_JOURNAL__PATH": str(db)},
    )
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout and "signal=" in r.stdout
    assert "ORDER BUY" in r.stdout and "FILL BUY" in r.stdout
    j = sqlite3.connect(db)
    assert j.execute("SELECT status, synthetic FROM runs").fetchall() == [("ok", 1)]
    assert j.execute("SELECT count(*) FROM equity").fetchone()[0] == 160
    assert j.execute("SELECT count(DISTINCT ts) FROM signals").fetchone()[0] == 160
    assert j.execute("SELECT count(*) FROM orders").fetchone()[0] >= 1
    r2 = soxbot("journal", "--path", str(db), "--kind", "orders")
    assert r2.returncode == 0 and "sx-" in r2.stdout


def test_replay_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "run.db"
    p = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "replay", "--speed", "20"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SOXBOT_JOURNAL__PATH": str(db)},
    )
    deadline = time.time() + 60
    assert p.stdout is not None
    seen = 0
    while time.time() < deadline:
        line = p.stdout.readline()
        if "bar" in line:
            seen += 1
            if seen >= 5:
                break
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=20)
    assert rc == 0
    status = sqlite3.connect(db).execute("SELECT status FROM runs").fetchone()[0]
    assert status == "stopped"


def test_bad_config_fails_at_start_naming_key_and_file(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[risk]\nstop_loss = 0.05\n")
    r = soxbot("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "risk.stop_loss" in r.stderr and "stop_loss_pct" in r.stderr and str(cfg) in r.stderr
    cfg.write_text('[[strategies]]\nname = "ma_cross"\nparams = { fast = 50, slow = 20 }\n')
    r = soxbot("backtest", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "strategies[0]" in r.stderr and "fast" in r.stderr


def test_live_needs_both_opt_ins(tmp_path):
    r = soxbot("run", "--live", "--max-bars", "1")
    assert r.returncode == 2 and "live = true" in r.stderr


def test_strategies_lists_plugins_with_params():
    r = soxbot("strategies")
    assert r.returncode == 0
    for name in ("ma_cross", "rsi", "support"):
        assert name in r.stdout
    assert "fast" in r.stdout and "oversold" in r.stdout and "lookback" in r.stdout


def test_scaffold_then_check_a_new_plugin(tmp_path):
    r = soxbot("new-strategy", "my_breakout", "--dest", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "my_breakout.py").is_file()
    r = soxbot("test-strategy", "my_breakout", "--path", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert soxbot("new-strategy", "my_breakout", "--dest", str(tmp_path)).returncode == 2  # no overwrite
