"""The research commands' bodies (`soxbot sweep`, `walkforward`, `montecarlo`): load and clean the
bars once, run, analyse, write the files, and return the lines the CLI prints. User mistakes are
raised as ConfigError / DataError / ClusterError, which the CLI turns into one-line messages."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from bot.core.config import Settings
from bot.data.splits import SplitTable
from bot.research.space import SpaceError, parse_dims


def load_inputs(cfg: Settings) -> tuple[dict[str, pd.DataFrame], SplitTable | None, float, bool]:
    """Bars (cleaned once), the split table, bars per year, synthetic or not."""
    from bot.data.calendar import bars_per_year
    from bot.data.splits import table_for
    from bot.run.assemble import build_strategies, load_market

    build_strategies(cfg, "config")  # a bad plugin or parameter stops here, before any work
    bars, synthetic = load_market(cfg)
    splits = table_for(cfg.data, cfg.universe.symbols)
    return bars, splits, bars_per_year(cfg.data.timeframe), synthetic


def read_space(params: list[str] | None, space: Path | None) -> list[Any]:
    """--param KEY=VALUES options plus a TOML file's [params] table."""
    table: dict[str, Any] = {}
    if space is not None:
        try:
            table = tomllib.loads(space.read_text()).get("params", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SpaceError(f"--space {space}: {exc}. Fix: a TOML file with a [params] table.") from exc
    for p in params or []:
        key, _, val = p.partition("=")
        if not _:
            raise SpaceError(f"--param {p!r}: expected KEY=VALUES, e.g. ma_cross.fast=5:50:5.")
        table[key.strip()] = val.strip()
    return parse_dims(table)


def sweep(
    cfg: Settings,
    dims: list[Any],
    out: Path,
    method: str,
    trials: int,
    seed: int,
    objective: str,
    where: str,
    workers: int | None,
    fresh: bool,
    heatmap: list[str] | None,
    progress: bool = False,
) -> list[str]:
    from bot.research.sweep import SweepSpec, run_sweep
    from bot.research.sweep_report import analyse, write_html, write_summary

    spec = SweepSpec(dims, method, trials, seed, objective)
    spec.check()
    bars, splits, ppy, synthetic = load_inputs(cfg)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="trial", desc="sweep", mininterval=0.5)

    def tick(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    results = run_sweep(cfg, bars, splits, spec, out, ppy, where, workers, fresh, tick)
    if bar is not None:
        bar.close()
    manifest = json.loads((out / "sweep.json").read_text())
    summary = analyse(out, results, manifest)
    write_summary(out, summary)
    write_html(out, results, summary, manifest, heatmap)
    lines = [
        f"{'SYNTHETIC DATA: ' if synthetic else ''}{summary['trials_ok']} trials ok, "
        f"{summary['trials_invalid']} invalid points, {summary['trials_error']} failed"
    ]
    if "best" in summary:
        b, d = summary["best"], summary["deflated_sharpe"]
        lines.append(
            f"best ({objective}): trial {b['trial']} {json.dumps(b['params'])}  sharpe {b['sharpe']:.2f}  "
            f"cagr {b['cagr']:+.2%}  max dd {b['max_drawdown']:.2%}"
        )
        verdict = "significant" if d["dsr"] > 0.95 else "not significant"
        lines.append(f"deflated sharpe {d['dsr']:.3f} over {d['n_trials']} trials ({verdict} at 5%)")
        if "pbo" in summary.get("pbo", {}):
            lines.append(f"probability of backtest overfitting {summary['pbo']['pbo']:.2f}")
    lines.append(f"wrote {out}/results.csv returns.npy summary.json report.html research.db")
    return lines
