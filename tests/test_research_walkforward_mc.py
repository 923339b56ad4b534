"""Walk-forward and Monte Carlo as a user runs them, and their building blocks' properties."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bot.cli import app
from bot.core.config import Settings
from bot.research.curves import max_drawdown, returns_of
from bot.research.resample import block_bootstrap, path_stats, perturb_bars, random_path
from bot.research.space import apply
from bot.research.walkforward import make_folds
from bot.run.assemble import build_strategies, load_market
from bot.run.backtest import run_backtest

runner = CliRunner()


def test_folds_by_hand() -> None:
    rolling = make_folds(100, 10, 40, 20, anchored=False)
    assert [(f.is_start, f.is_end, f.oos_start, f.oos_end) for f in rolling] == [
        (10, 50, 50, 70), (30, 70, 70, 90), (50, 90, 90, 100)
    ]  # fmt: skip
    anchored = make_folds(100, 10, 40, 20, anchored=True)
    assert [(f.is_start, f.oos_start) for f in anchored] == [(10, 50), (10, 70), (10, 90)]


def test_a_window_of_a_full_run_equals_a_run_that_stops_there(shared_data: Path) -> None:
    """Why walk-forward may slice one full-history run: the returns up to a bar do not change when
    the run goes on past it."""
    cfg = Settings.model_validate({"data": {"source": "csv", "dir": str(shared_data), "start": "2011-01-01"}})
    bars, _ = load_market(cfg)
    c = apply(cfg, {"ma_cross.fast": 10, "ma_cross.slow": 40, "risk.stop_loss_pct": 0.08})
    full = run_backtest(c, build_strategies(c), bars)
    cut = {s: df[df.index < "2018-06-01"] for s, df in bars.items()}
    part = run_backtest(c, build_strategies(c), cut)
    n = len(part.equity)
    a = returns_of(full.equity["equity"].to_numpy(), 100_000)[:n]
    b = returns_of(part.equity["equity"].to_numpy(), 100_000)
    assert np.allclose(a[:-1], b[:-1], rtol=0, atol=1e-12)  # the last bar: the cut run closes out


def test_walkforward_on_real_data(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "wf"
    r = runner.invoke(
        app,
        ["walkforward", "--data-dir", str(shared_data), "--start", "2011-01-01", "--param",
         "ma_cross.fast=10,20", "--param", "ma_cross.slow=50,100", "--is-bars", "504", "--oos-bars", "252",
         "--out", str(out), "--serial"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "buy & hold SOXX" in r.output and "buy & hold SOXL" in r.output
    folds = pd.read_csv(out / "folds.csv")
    oos = pd.read_csv(out / "oos_returns.csv", index_col=0, parse_dates=True)
    returns = np.load(out / "sweep" / "returns.npy")
    base = Settings.model_validate(
        {"data": {"source": "csv", "dir": str(shared_data), "start": "2011-01-01"}}
    )
    index = load_market(base)[0]["SOXX"].index
    # the OOS windows follow each other, and each is the chosen trial's returns in that window
    for k, f in folds.iterrows():
        sel = (oos.index >= f["oos_start"]) & (oos.index <= pd.Timestamp(f["oos_end"]))
        win = (index >= f["oos_start"]) & (index <= pd.Timestamp(f["oos_end"]))
        assert np.allclose(oos["oos_return"].to_numpy()[sel], returns[int(f["trial"])][win])
        if k:
            assert pd.Timestamp(f["oos_start"]) > pd.Timestamp(folds["oos_end"].iloc[k - 1])
    s = json.loads((out / "summary.json").read_text())
    assert s["period"]["bars"] == len(oos)  # buy-and-hold over exactly the OOS bars
    assert {r["parameter"] for r in s["stability"]} == {"ma_cross.fast", "ma_cross.slow"}
    assert "Parameter stability" in (out / "report.html").read_text()
    with sqlite3.connect(out / "research.db") as db:
        mode, status, config = db.execute("SELECT mode, status, config FROM runs").fetchone()
    assert (mode, status) == ("walkforward", "ok")
    assert json.loads(config)["research"]["is_bars"] == 504


@settings(max_examples=40, deadline=None)
@given(
    r=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=2, max_size=60),
    block=st.integers(1, 30),
    seed=st.integers(0, 1000),
)
def test_bootstrap_never_shows_a_drawdown_beyond_100_percent(r: list[float], block: int, seed: int) -> None:
    paths = block_bootstrap(np.array(r), 50, block, np.random.default_rng(seed))
    assert paths.shape == (50, len(r))
    assert set(np.unique(paths)) <= set(r)  # resampled, never invented
    s = path_stats(paths, 1.0)
    assert np.all((s["max_drawdown"] >= 0) & (s["max_drawdown"] <= 1.0))
    assert np.all(s["cagr"] >= -1.0)
    assert 0.0 <= max_drawdown(np.array(r)) <= 1.0


def test_a_total_loss_is_a_drawdown_of_exactly_100_percent() -> None:
    s = path_stats(np.array([[0.5, -1.0, 0.3]]), 1.0)
    assert s["max_drawdown"][0] == 1.0 and s["cagr"][0] == -1.0


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 15), max_size=8), seed=st.integers(0, 1000), start=st.integers(0, 20))
def test_random_entries_keep_the_holding_profile(lengths: list[int], seed: int, start: int) -> None:
    n = 200
    path = random_path(np.array([-1, 1]), np.array(lengths, int), n, start, np.random.default_rng(seed))
    assert int((path != 0).sum()) == sum(lengths)  # the same exposure
    assert not path[:start].any()
    runs = [len(g) for g in "".join("x" if v else " " for v in path).split()]
    assert sorted(runs) == sorted(lengths)  # the same holding lengths, never two trades touching


def test_perturbed_bars_stay_valid() -> None:
    bars, _ = load_market(Settings())
    p = perturb_bars(bars["SOXX"], 50, np.random.default_rng(1))
    assert (p["low"] <= p[["open", "close"]].min(axis=1)).all() and (p["high"] >= p["low"]).all()
    assert (p["close"] > 0).all() and not np.allclose(p["close"], bars["SOXX"]["close"])


RANDOM_PLUGIN = '''
import numpy as np
from bot.strategy import Strategy, StrategyParams, finalize

class Params(StrategyParams):
    seed: int = 0

class Coin(Strategy):
    """A random strategy: a coin flip every 10 bars."""
    name = "coin"
    Params = Params
    warmup = 0

    def signals(self, bars):
        rng = np.random.default_rng(self.params.seed)
        d = np.repeat(rng.choice([-1, 1], size=len(bars) // 10 + 1), 10)[: len(bars)]
        return finalize(bars.index, d, np.full(len(bars), "coin", object), 0)
'''


def test_a_random_strategy_is_not_significant(shared_data: Path, tmp_path: Path) -> None:
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "coin.py").write_text(RANDOM_PLUGIN)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[universe]\nsignal = "SOXX"\nbull = "SOXX"\nbear = ""\n[[strategies]]\nname = "coin"\n')
    out = tmp_path / "mc"
    r = runner.invoke(
        app,
        ["montecarlo", "--config", str(cfg), "--path", str(plugins), "--data-dir", str(shared_data),
         "--start", "2011-01-01", "--runs", "300", "--perturb-runs", "4", "--random-runs", "400",
         "--out", str(out), "--serial"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["random_entry"]["p_value"] > 0.05
    assert "not significant" in r.output
    assert s["bootstrap"]["worst_max_drawdown"] <= 1.0
    assert "Random-entry baseline" in (out / "report.html").read_text()
    with sqlite3.connect(out / "research.db") as db:
        mode, status, config = db.execute("SELECT mode, status, config FROM runs").fetchone()
    assert (mode, status) == ("montecarlo", "ok")
    assert json.loads(config)["research"]["random_runs"] == 400


def test_optuna_sampler_runs_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    args = ["sweep", "--param", "ma_cross.fast=5,10,15", "--param", "ma_cross.slow=30,60", "--method",
            "optuna", "--trials", "4", "--seed", "2", "--out", str(tmp_path / "o"), "--serial",
            "--no-progress"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and again.output == first.output
    assert len(pd.read_csv(tmp_path / "o" / "results.csv")) == 4


def test_walkforward_starts_where_every_traded_symbol_has_data(shared_data: Path, tmp_path: Path) -> None:
    """SOXX from 2001, SOXL/SOXS traded only from 2010: no in-sample window starts before 2010."""
    out = tmp_path / "wf"
    r = runner.invoke(
        app,
        ["walkforward", "--data-dir", str(shared_data), "--start", "2004-01-01", "--param",
         "ma_cross.fast=10,20", "--is-bars", "504", "--oos-bars", "504", "--out", str(out), "--serial"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    soxl_first = pd.read_csv(shared_data / "SOXL_1d.csv", usecols=["timestamp"])["timestamp"].min()
    folds = pd.read_csv(out / "folds.csv")
    assert folds["is_start"].min() >= soxl_first
    assert "no data" not in r.output  # buy-and-hold of SOXL over bars it exists on
