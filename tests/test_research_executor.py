"""Serial, the local process pool and Dask give the same sweep and the same Monte Carlo runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bot.core.config import Settings
from bot.data.calendar import bars_per_year
from bot.research.executor import Runner
from bot.research.montecarlo import PerturbContext, perturbed_run, seeds
from bot.research.space import parse_dims
from bot.research.sweep import SweepSpec, run_sweep
from bot.run.assemble import load_market


def _inputs() -> tuple[Settings, dict[str, pd.DataFrame]]:
    cfg = Settings()  # the offline default: seeded synthetic bars
    bars, _ = load_market(cfg)
    return cfg, bars


def _sweep(where: str, out, cfg, bars) -> tuple[pd.DataFrame, np.ndarray]:  # type: ignore[no-untyped-def]
    dims = parse_dims(["ma_cross.fast=5:15:5", "ma_cross.slow=30,60", "risk.stop_loss_pct=0,0.05"])
    spec = SweepSpec(dims, "random", n=10, seed=3, objective="sharpe")
    res = run_sweep(cfg, bars, None, spec, out, bars_per_year("1d"), where, workers=2)
    return res.drop(columns=["error"]), np.load(out / "returns.npy")


@pytest.mark.slow
def test_serial_pool_and_dask_give_identical_results(tmp_path) -> None:  # type: ignore[no-untyped-def]
    distributed = pytest.importorskip("distributed")
    cfg, bars = _inputs()
    serial = _sweep("serial", tmp_path / "serial", cfg, bars)
    pool = _sweep("pool", tmp_path / "pool", cfg, bars)
    ctx = PerturbContext(cfg, bars, None, bars_per_year("1d"), 25.0)
    runs = seeds(11, 6)
    with Runner(ctx, "serial") as r:
        mc_serial = r.map(perturbed_run, runs)
    with Runner(ctx, "pool", 2) as r:
        mc_pool = r.map(perturbed_run, runs)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = _sweep(cluster.scheduler_address, tmp_path / "dask", cfg, bars)
        with Runner(ctx, cluster.scheduler_address) as r:
            assert r.kind == "dask"
            mc_dask = r.map(perturbed_run, runs)
    assert (serial[0]["status"] == "ok").sum() == 10
    for other in (pool, dask):
        pd.testing.assert_frame_equal(serial[0], other[0])
        assert np.array_equal(serial[1], other[1])
    assert mc_serial == mc_pool == mc_dask
    assert len({r["cagr"] for r in mc_serial}) > 1  # each run its own perturbation


def test_seeds_are_fixed_per_run() -> None:
    assert seeds(5, 4) == seeds(5, 4)
    assert seeds(5, 4)[:2] == seeds(5, 2)  # run i's seed does not depend on how many runs
    assert seeds(5, 4) != seeds(6, 4)


def test_a_cluster_nobody_runs_is_a_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    from typer.testing import CliRunner

    from bot.cli import app

    args = [
        "sweep",
        "--param",
        "ma_cross.fast=5,10",
        "--cluster",
        "tcp://127.0.0.1:9",
        "--out",
        str(tmp_path / "o"),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "No Dask scheduler answers at tcp://127.0.0.1:9" in r.output and "Traceback" not in r.output
