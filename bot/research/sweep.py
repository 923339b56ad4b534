"""`soxbot sweep`: backtest every point of a parameter space on bars loaded once, rank by an
objective, and keep every trial (the Deflated Sharpe Ratio and PBO need them all).

The output directory is the sweep's record and what makes it resumable:
- `sweep.json`: the space, method, seed, objective and a fingerprint of the data;
- `results.csv`: one row per finished trial (status, parameters, metrics), appended and flushed as
  each group of trials finishes;
- `returns.npy`: each trial's per-bar returns (a memory-mapped matrix, row = trial number);
- `research.db`: the journal's `runs` table, one row per session of the sweep (seed, space, trials);
- `summary.json` and `report.html`.
Run the same command again after an interruption: finished trials are kept, the rest are run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.core.config import ConfigError, Settings
from bot.data.splits import SplitTable
from bot.research.curves import OBJECTIVES, score
from bot.research.executor import Runner
from bot.research.runlog import journaled
from bot.research.space import Dim, SpaceError, check_keys, grid, random_points
from bot.research.trials import Context, TrialResult, group_points, run_group

METRIC_COLUMNS = [
    "sharpe", "cagr", "total_return", "max_drawdown", "calmar", "sortino", "volatility", "exposure",
    "n_trades", "win_rate",
]  # fmt: skip


@dataclass
class SweepSpec:
    dims: list[Dim]
    method: str = "grid"  # grid | random | optuna
    n: int = 0  # trials for random / optuna
    seed: int = 0
    objective: str = "sharpe"

    def check(self) -> None:
        if self.method not in ("grid", "random", "optuna"):
            raise SpaceError(f"--method {self.method}: use grid, random or optuna.")
        if self.objective not in OBJECTIVES:
            raise SpaceError(f"--objective {self.objective}: use one of {', '.join(OBJECTIVES)}.")
        if self.method != "grid" and self.n <= 0:
            raise SpaceError(f"--method {self.method} needs --trials N (N > 0).")

    def manifest(self, fingerprint: str) -> dict[str, Any]:
        return {
            "method": self.method,
            "n": self.n,
            "seed": self.seed,
            "objective": self.objective,
            "dims": [{"key": d.key, "values": list(d.values)} for d in self.dims],
            "data": fingerprint,
        }


def fingerprint(cfg: Settings, bars: dict[str, pd.DataFrame]) -> str:
    """A short hash of the bars and the base config: a resumed sweep must run on the same ones."""
    h = hashlib.sha256(cfg.model_dump_json(exclude={"journal", "run"}).encode())
    for sym in sorted(bars):
        df = bars[sym]
        h.update(sym.encode())
        h.update(df.index.as_unit("ns").asi8.tobytes())
        h.update(np.ascontiguousarray(df["close"].to_numpy(float)).tobytes())
    return h.hexdigest()[:16]


def plan(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point the sweep will run, in order (grid or seeded random; Optuna proposes its own)."""
    if spec.method == "grid":
        return grid(spec.dims)
    return random_points(spec.dims, spec.n, spec.seed)


class Store:
    """The sweep's files: results.csv appended per finished group, returns.npy row per trial."""

    def __init__(self, out: Path, keys: list[str], n_trials: int, n_bars: int) -> None:
        self.out = out
        self.columns = ["trial", "status", *keys, *METRIC_COLUMNS, "error"]
        self.keys = keys
        path = out / "results.csv"
        new = not path.exists() or path.stat().st_size == 0
        self._fh = path.open("a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(self.columns)
        rpath = out / "returns.npy"
        if rpath.exists():
            self.returns = np.load(rpath, mmap_mode="r+")
        else:
            self.returns = np.lib.format.open_memmap(rpath, "w+", np.float64, (n_trials, n_bars))

    def add(self, results: list[TrialResult]) -> None:
        for t in results:
            row = [t.trial, t.status, *[t.point.get(k) for k in self.keys]]
            row += [_cell(t.metrics.get(c)) for c in METRIC_COLUMNS] + [t.error]
            self._csv.writerow(row)
            if t.returns is not None:
                self.returns[t.trial] = t.returns
        self.returns.flush()
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
        self.returns.flush()


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return v


def read_results(out: Path) -> pd.DataFrame:
    path = out / "results.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["trial", "status"])
    df = pd.read_csv(path)
    return df.drop_duplicates("trial", keep="last").sort_values("trial").reset_index(drop=True)


def _open(out: Path, manifest: dict[str, Any], fresh: bool) -> None:
    """Start or resume: a directory holding another sweep is refused, not mixed."""
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / "sweep.json"
    if fresh:
        for name in ("sweep.json", "results.csv", "returns.npy", "summary.json", "report.html"):
            (out / name).unlink(missing_ok=True)
    elif mpath.exists():
        old = json.loads(mpath.read_text())
        if old != manifest:
            diff = [k for k in manifest if old.get(k) != manifest[k]]
            raise ConfigError(
                f"{out} holds another sweep (it differs in: {', '.join(diff)}). "
                "Fix: a new --out directory, or --fresh to start this one over."
            )
        return
    mpath.write_text(json.dumps(manifest, indent=1, default=str))


def run_sweep(
    cfg: Settings,
    bars: dict[str, pd.DataFrame],
    splits: SplitTable | None,
    spec: SweepSpec,
    out: Path,
    ppy: float,
    where: str = "pool",
    workers: int | None = None,
    fresh: bool = False,
    on_result: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run (or finish) the sweep in `out`; returns the results table of every trial run."""
    spec.check()
    check_keys(cfg, spec.dims)
    manifest = spec.manifest(fingerprint(cfg, bars))
    _open(out, manifest, fresh)
    keys = [d.key for d in spec.dims]
    n_bars = len(bars[cfg.universe.signal])
    done = set(read_results(out)["trial"].astype(int).tolist())
    ctx = Context(cfg, bars, splits, ppy)
    with journaled(out, "sweep", cfg, manifest), Runner(ctx, where, workers) as runner:
        if spec.method == "optuna":
            from bot.research.optuna_sampler import run_optuna

            earlier = read_results(out)
            store = Store(out, keys, spec.n, n_bars)
            run_optuna(runner, spec, store, earlier, on_result)
        else:
            points = plan(spec)
            store = Store(out, keys, len(points), n_bars)
            todo = [(i, p) for i, p in enumerate(points) if i not in done]
            # serially a group is all trials of one strategy point (its signals computed once);
            # in parallel, big groups are split so every worker has work
            size = math.ceil(len(todo) / (4 * runner.workers)) if runner.workers > 1 else len(todo)
            groups = group_points(todo, max(1, min(size, 64)))
            finished = len(done)
            for _, results in runner.run(run_group, groups):
                store.add(results)
                finished += len(results)
                if on_result is not None:
                    on_result(finished, len(points))
        store.close()
    return read_results(out)


def ok_trials(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"] == "ok"].copy()


def best_trial(results: pd.DataFrame, objective: str) -> pd.Series:
    ok = ok_trials(results)
    scores = [score({objective: _num(v)}, objective) for v in ok[objective]]
    return ok.iloc[int(np.argmax(scores))]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def spec_dict(spec: SweepSpec) -> dict[str, Any]:
    return asdict(spec)
