"""`soxbot sweep` as a user runs it: real data, results equal to single backtests, resumable,
signals computed once per strategy point, mistakes as messages."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.config import Settings
from bot.data.calendar import bars_per_year
from bot.report.metrics import summarize
from bot.research.space import apply, parse_dims
from bot.research.sweep import SweepSpec, run_sweep
from bot.run.assemble import build_strategies, load_market
from bot.run.backtest import run_backtest

runner = CliRunner()
GRID = [
    "--param",
    "ma_cross.fast=10,20",
    "--param",
    "ma_cross.slow=50,100",
    "--param",
    "risk.stop_loss_pct=0,0.08",
]


def _cfg(data: Path) -> Settings:
    return Settings.model_validate(
        {
            "data": {"source": "csv", "dir": str(data), "start": "2012-01-01"},
            "universe": {"signal": "SOXX", "bull": "SOXX", "bear": ""},
        }
    )


def test_sweep_on_real_data_matches_single_backtests(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    r = runner.invoke(
        app,
        ["sweep", "--data-dir", str(shared_data), "--start", "2012-01-01", *GRID, "--out", str(out),
         "--serial", "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "8 trials ok" in r.output and "deflated sharpe" in r.output
    res = pd.read_csv(out / "results.csv")
    assert len(res) == 8 and set(res["status"]) == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["deflated_sharpe"]["n_trials"] == 8
    # every trial's figures are what a single backtest of that config reports
    cfg = Settings.model_validate({"data": {"source": "csv", "dir": str(shared_data), "start": "2012-01-01"}})
    bars, _ = load_market(cfg)
    for _, row in res.iloc[[0, 5]].iterrows():
        point = {"ma_cross.fast": int(row["ma_cross.fast"]), "ma_cross.slow": int(row["ma_cross.slow"]),
                 "risk.stop_loss_pct": float(row["risk.stop_loss_pct"])}  # fmt: skip
        c = apply(cfg, point)
        bt = run_backtest(c, build_strategies(c), bars)
        s = summarize(bt.equity, bt.trades, bars["SOXX"]["close"], bars_per_year("1d"), 100_000)["strategy"]
        for k in ("sharpe", "cagr", "total_return", "max_drawdown"):
            assert row[k] == pytest.approx(s[k], rel=1e-9, abs=1e-12), k
        assert row["n_trades"] == s["n_trades"]
    html = (out / "report.html").read_text()
    assert "Deflated Sharpe Ratio" in html and "plotly" in html
    assert not re.findall(r"<script[^>]*src=", html)  # plotly.js embedded, nothing fetched: opens offline


def test_an_interrupted_sweep_resumes_where_it_stopped(shared_data: Path, tmp_path: Path) -> None:
    cfg = _cfg(shared_data)
    bars, _ = load_market(cfg)
    spec = SweepSpec(parse_dims(["ma_cross.fast=5:20:5", "ma_cross.slow=40,80", "risk.stop_loss_pct=0,0.1"]))
    ppy = bars_per_year("1d")
    whole = run_sweep(cfg, bars, None, spec, tmp_path / "whole", ppy, "serial")

    def stop_after_six(done: int, total: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, bars, None, spec, out, ppy, "serial", on_result=stop_after_six)
    first = pd.read_csv(out / "results.csv")
    assert 6 <= len(first) < 16
    resumed = run_sweep(cfg, bars, None, spec, out, ppy, "serial")
    assert len(pd.read_csv(out / "results.csv")) == 16  # the finished trials were not run again
    pd.testing.assert_frame_equal(whole, resumed)
    assert np.array_equal(np.load(tmp_path / "whole" / "returns.npy"), np.load(out / "returns.npy"))
    with sqlite3.connect(out / "research.db") as db:
        runs = db.execute("SELECT mode, status, config FROM runs ORDER BY id").fetchall()
    assert [(m, s) for m, s, _ in runs] == [("sweep", "interrupted"), ("sweep", "ok")]
    assert json.loads(runs[0][2])["research"]["seed"] == 0


def test_each_strategy_point_computes_its_signals_once(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    calls = tmp_path / "calls.txt"
    (plugins / "counted.py").write_text(
        f'''
from pathlib import Path
import numpy as np
from bot.strategy import Strategy, StrategyParams, finalize

class Params(StrategyParams):
    length: int = 10

class Counted(Strategy):
    """Long above the N-bar mean; writes a line per signals() call."""
    name = "counted"
    Params = Params

    @property
    def warmup(self) -> int:
        return self.params.length

    def signals(self, bars):
        with open({str(calls)!r}, "a") as fh:
            fh.write(f"{{self.params.length}}\\n")
        c = bars["close"]
        d = np.where(c > c.rolling(self.params.length).mean(), 1, -1)
        return finalize(bars.index, d, np.full(len(c), "x", object), self.warmup)
'''
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[strategies]]\nname = "counted"\n')
    r = runner.invoke(
        app,
        ["sweep", "--config", str(cfg), "--path", str(plugins), "--param", "counted.length=10,20",
         "--param", "risk.stop_loss_pct=0,0.03,0.06", "--out", str(tmp_path / "o"), "--serial",
         "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "6 trials ok" in r.output
    lines = calls.read_text().split()
    assert sorted(lines) == ["10", "20"]  # 6 trials, one signals() per strategy point


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "ma_cross.fats"], "expected KEY=VALUES"),
        (["--param", "rsi.length=5,10"], "no strategy 'rsi'"),
        (["--param", "risk.stop=0.1"], "not a [risk] key"),
        (["--param", "ma_cross.fast=5:1:0"], "START:STOP:STEP"),
        (["--param", "ma_cross.fast=5,10", "--objective", "luck"], "--objective luck"),
        (["--param", "ma_cross.fast=5,10", "--method", "random"], "needs --trials"),
        (["--param", "ma_cross.fast=5,10", "--serial", "--cluster", "tcp://h:8786"], "exclude each other"),
        ([], "No parameters to vary"),
        (["--param", "ma_cross.fast=5,10", "--heatmap", "ma_cross.fast,risk.fraction"], "--heatmap"),
        (["--param", "ma_cross.fast=5,10", "--workers", "0"], "--workers 0"),
    ],
)
def test_mistakes_are_messages(tmp_path: Path, args: list[str], message: str) -> None:
    r = runner.invoke(app, ["sweep", *args, "--out", str(tmp_path / "o"), "--no-progress"])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_a_directory_holding_another_sweep_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    base = ["sweep", "--out", str(out), "--serial", "--no-progress"]
    assert runner.invoke(app, [*base, "--param", "ma_cross.fast=5,10"]).exit_code == 0
    r = runner.invoke(app, [*base, "--param", "ma_cross.fast=5,15"])
    assert r.exit_code == 2 and "holds another sweep (it differs in: dims)" in r.output
    assert runner.invoke(app, [*base, "--param", "ma_cross.fast=5,15", "--fresh"]).exit_code == 0


def test_invalid_points_are_skipped_and_counted(tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        ["sweep", "--param", "ma_cross.fast=10,30", "--param", "ma_cross.slow=20,40", "--out",
         str(tmp_path / "o"), "--serial", "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "3 trials ok, 1 invalid points" in r.output  # fast 30 / slow 20 is no config
    res = pd.read_csv(tmp_path / "o" / "results.csv")
    bad = res[res["status"] == "invalid"]
    assert "slow (20) must be greater than fast (30)" in bad["error"].iloc[0]


def test_a_space_file(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[params]\n"ma_cross.fast" = [5, 10]\n"ma_cross.slow" = "30:60:30"\n')
    args = ["sweep", "--space", str(space), "--out", str(tmp_path / "o"), "--serial", "--no-progress"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = pd.read_csv(tmp_path / "o" / "results.csv")
    pairs = sorted(zip(res["ma_cross.fast"], res["ma_cross.slow"], strict=True))
    assert pairs == [(5, 30), (5, 60), (10, 30), (10, 60)]
    space.write_text("[params\n")
    bad = runner.invoke(app, ["sweep", "--space", str(space), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "a TOML file with a [params] table" in bad.output
