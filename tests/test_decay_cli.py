"""`soxbot decay`, the attribution line of `soxbot status` and the bad-input messages of the
leveraged settings, through the real CLI (typer's runner) on hand-built files and a real replay."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.config import load_config

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _write(dirpath, symbol, close, dates):
    close = np.asarray(close, float)
    pd.DataFrame(
        {
            "timestamp": [d.date().isoformat() for d in dates],
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 1000.0,
        }
    ).to_csv(dirpath / f"{symbol}_1d.csv", index=False)


def _market(tmp_path, n=80):
    """SOX zig-zagging +-1% a day and SOXL/SOXS/SOXX built from it by the daily-reset rule."""
    dates = pd.bdate_range("2024-01-02", periods=n)
    dates = dates[~dates.isin(pd.to_datetime(["2024-01-15", "2024-02-19", "2024-03-29"]))]  # NYSE holidays
    r = np.array([0.0] + [0.01 if i % 2 else -0.01 for i in range(1, len(dates))])
    sox = 4000 * np.cumprod(1 + r)
    _write(tmp_path, "SOX", sox, dates)
    _write(tmp_path, "SOXX", sox / 20, dates)
    _write(tmp_path, "SOXL", 30 * np.cumprod(1 + 3 * r), dates)
    _write(tmp_path, "SOXS", 30 * np.cumprod(1 - 3 * r), dates)
    return dates


def test_decay_prints_the_forecast_and_the_history(tmp_path):
    _market(tmp_path)
    res = runner.invoke(app, ["decay", "--symbol", "SOXS", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "SOXS: -3x SOX, expense ratio 0.97%/yr" in out
    # every squared SOX return is 1e-4: the EWMA says sigma 1%/day; drag over n = 6 n 1e-4
    assert "sigma 1.00%/day (16%/yr)" in out
    for n in (5, 10, 20):
        drag, expense = 6 * n * 1e-4, 0.0097 * n / 252
        row = f"{n:>8}  {-drag:>+9.2%}  {-expense:>+8.2%}  {0:>+9.2%}  {drag + expense:>13.2%}"
        assert row in out
    assert "realised, last 3 windows of 20 sessions" in out
    # the fund follows the rule with no expense: its gap is the compounding, close to the forecast drag
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("  2024-")]
    assert len(rows) == 3
    assert rows[0][-2:] == ["n/a", "n/a"]  # the EWMA had fewer than 20 returns at that window's start
    # the fund follows the rule without fees: its gap is the drag (-6 x 20 x 1e-4 = -1.2%, to the
    # third order) and the error the forecast's expense
    for r in rows:
        assert r[4] == "-1.20%"
    for r in rows[1:]:
        assert r[6] == f"{-0.012 - 0.0097 * 20 / 252:+.2%}" and r[7] == f"{0.0097 * 20 / 252:+.2%}"


def test_decay_names_a_symbol_that_is_not_leveraged(tmp_path):
    _market(tmp_path)
    res = runner.invoke(app, ["decay", "--symbol", "SOXX", "--data-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "SOXX is not a declared leveraged fund. Fix: declare it under [[leveraged.funds]]" in res.output
    assert "Traceback" not in res.output


class _Result:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.exit_code = proc.returncode
        self.output = proc.stdout + proc.stderr


def _cli(*args: str) -> _Result:
    """`soxbot backtest` in its own process: it configures logging onto its stdout, which typer's
    runner closes after each call (later log lines in this process would then fail)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    return _Result(proc)


def _backtest(tmp_path, toml: str) -> _Result:
    cfg = tmp_path / "bt.toml"
    cfg.write_text('[[strategies]]\nname = "ma_cross"\nparams = { fast = 5, slow = 10 }\n' + toml)
    return _cli("backtest", "--config", str(cfg), "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"))


def test_an_underlying_without_data_stops_a_declared_fund_and_notes_a_default(tmp_path):
    _market(tmp_path)
    (tmp_path / "SOX_1d.csv").unlink()
    res = _backtest(
        tmp_path,
        '[[leveraged.funds]]\nsymbol = "SOXL"\nleverage = 3\nunderlying = "SOX"\nexpense_ratio = 0.0075\n',
    )
    assert res.exit_code == 2
    assert res.output.startswith(
        "SOXL is declared leveraged on SOX ([[leveraged.funds]]), but SOX has no data"
    )
    assert "Fix: add SOX_1d.csv" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o" / "trades.csv").exists()  # nothing traded on it
    res = _backtest(tmp_path, "")  # the built-in declaration: the backtest runs, the summary says why
    assert res.exit_code == 0, res.output
    notes = json.loads((tmp_path / "o" / "summary.json").read_text())["attribution"]["notes"]
    assert any(n.startswith("no decay attribution for SOXL: its underlying SOX has no data") for n in notes)


def test_a_malformed_rates_file_is_one_message(tmp_path):
    _market(tmp_path)
    rates = tmp_path / "rates.csv"
    rates.write_text("date,rate\n2024-01-02,5.3\n2024-13-01,5.1\n")
    res = _backtest(tmp_path, f'[leveraged]\nrates_file = "{rates}"\n')
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"{rates} line 3: '2024-13-01' is not a YYYY-MM-DD date. Fix: a CSV with header date,rate and rows "
        "like 2024-01-02,5.33 (percent a year)."
    ]
    rates.write_text("date,rate\n2024-01-02,0.053\n2024-01-03,530\n")
    res = _backtest(tmp_path, f'[leveraged]\nrates_file = "{rates}"\n')
    assert res.exit_code == 2 and "line 3: rate 530 is outside -5..30 (percent a year)" in res.output


def test_a_fred_download_reads_as_a_rates_file(tmp_path):
    from bot.data.rates import load_rates

    p = tmp_path / "DFF.csv"
    p.write_text("observation_date,DFF\n2024-01-02,5.33\n2024-01-03,.\n2024-01-04,5.32\n")
    r = load_rates(p)
    assert r.at(pd.Timestamp("2024-01-03").date()) == pytest.approx(0.0533)
    assert r.at(pd.Timestamp("2024-02-01").date()) == pytest.approx(0.0532)
    assert r.at(pd.Timestamp("2023-01-01").date()) == pytest.approx(0.0533)


def test_status_shows_the_open_positions_decay(tmp_path):
    """A replay of the default synthetic market stopped while it holds SOXL: `soxbot status` adds the
    attribution line, whose total is the position's log return to the mark."""
    from bot.broker.sim import SimBroker
    from bot.journal.journal import Journal
    from bot.run.assemble import build_strategies, load_market
    from bot.run.backtest import set_id_for
    from bot.run.replay import run_replay
    from bot.signals.window import live_window

    cfg = load_config()
    cfg.run.speed, cfg.run.log_level = 1e6, "WARNING"
    strategies = build_strategies(cfg)
    bars, synthetic = load_market(cfg)
    path = tmp_path / "j.db"
    for max_bars in range(55, 400, 5):
        path.unlink(missing_ok=True)
        cfg.run.max_bars = max_bars
        journal = Journal(path)
        journal.start_run("paper-replay", set_id_for(cfg), json.loads(cfg.model_dump_json()), synthetic)
        engine = run_replay(
            cfg,
            strategies,
            bars,
            SimBroker(cfg.broker.starting_cash),
            journal,
            live_window(strategies),
            None,
            synthetic,
        )
        journal.end_run("ok")
        journal.close()
        if engine.pos is not None and engine.pos.sessions >= 3:
            break
    pos = engine.pos
    assert pos is not None
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[journal]\npath = "{path}"\n')
    res = runner.invoke(app, ["status", "--config", str(cfg_file)])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.output.splitlines() if "decay/carry since entry" in ln]
    mark = engine.last_close[pos.symbol]
    total = math.log(mark / pos.entry_price) * 100
    assert f"(log points): {total:+.2f} = {'+3x' if pos.symbol == 'SOXL' else '-3x'} SOX " in line
    terms = [float(x.split()[-1]) for x in line.split("=", 1)[1].split(",")]
    assert math.fsum(terms) == pytest.approx(total, abs=0.03)  # rounded to 2 decimals each


def test_synthetic_funds_leave_only_the_models_own_carry_in_the_rest(tmp_path):
    """The synthetic SOXL/SOXS are daily-reset 3x of the synthetic SOX plus a per-session carry the
    model states (`session_carry`: financing a + b x rate fitted on the real funds, minus its expense).
    A trade's rest is then that carry less the declared expense and textbook financing the attribution
    counts, plus the compounding beyond second order, ln(1 + L r) - L ln(1 + r) + (L^2 - L)/2 r^2 a
    session: computed here from the model's own index and rates, the two agree to within a session's
    worth at the ends of the hold. `soxbot journal --kind attribution` lists the same rows."""
    from bot.data.synthetic import generate, session_carry, short_rates

    out = tmp_path / "o"
    res = _cli("backtest", "--out", str(out), "--no-progress")
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "trades.csv")
    assert len(t) > 5 and t.log_return.notna().all()
    d = load_config().data
    start = pd.Timestamp(d.start or "2020-01-02")
    rates = short_rates(start, d.synthetic_years, d.seed).to_numpy()
    sox = generate(["SOX"], "1d", start, d.synthetic_years, d.seed)["SOX"]["close"]
    days = pd.DatetimeIndex(sox.index).tz_localize(None).normalize()
    r = sox.pct_change().to_numpy()
    expect = []
    for sym, a, b in zip(t.symbol, t.entry_time, t.exit_time, strict=True):
        lev = 3.0 if sym == "SOXL" else -3.0
        d0, d1 = (pd.Timestamp(x).tz_localize(None).normalize() for x in (a, b))
        held = (days >= d0) & (days < d1)  # entered and left at an open: the closes held through
        whole = (days > d0) & (days < d1)  # sessions held from close to close
        x = r[whole]
        higher = np.log1p(lev * x) - lev * np.log1p(x) + (lev * lev - lev) / 2 * x * x
        expect.append(float(np.sum(session_carry(sym, rates[held])) + np.sum(higher)))
    model_rest = np.array(expect) - (t.attr_expense + t.attr_financing).to_numpy()
    gap = np.abs(t.attr_rest.to_numpy() - model_rest)
    assert gap.max() < 0.002 < t.log_return.abs().median(), gap
    assert np.abs(t.attr_rest).max() > 0.005  # the carry is there: the rest is not ~0 by construction
    res = runner.invoke(
        app, ["journal", "--path", str(out / "journal.db"), "--kind", "attribution", "-n", "100"]
    )
    assert res.exit_code == 0
    rows = [ln.split() for ln in res.output.splitlines()[1:]]
    assert [r[1] for r in rows] == list(t.symbol) and [float(r[-1]) for r in rows] == pytest.approx(
        list(t.attr_rest), abs=1e-6
    )


def test_the_offline_run_journals_each_trades_decay(tmp_path):
    """`soxbot run` (the synthetic replay) ends by journaling every closed trade's decay and carry."""
    db = tmp_path / "j.db"
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "replay", "--max-bars", "300", "--speed", "100000"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "SOXBOT_JOURNAL__PATH": str(db)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        fills = pd.read_sql_query("SELECT side, price FROM fills ORDER BY rowid", c)
        rows = pd.read_sql_query("SELECT * FROM attribution", c)
    sells = fills[fills.side == "sell"]
    assert len(rows) == len(sells) > 3
    total = rows[["leveraged_index", "vol_drag", "expense", "financing", "rest"]].sum(axis=1)
    assert np.abs(total - rows.log_return).max() < 1e-12
