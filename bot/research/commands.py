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
from bot.research.runlog import journaled
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
    write_html(out, results, summary, manifest, heatmap, synthetic)
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


def first_tradable(cfg: Settings, bars: dict[str, pd.DataFrame]) -> int:
    """The first bar of the signal's index on which every traded symbol has data: before it the
    strategy cannot trade what it would, so no window, resample or benchmark starts earlier
    (e.g. SOXL from 2010 under a SOX signal from 1994)."""
    index = bars[cfg.universe.signal].index
    starts = [int(index.searchsorted(bars[s].index[0])) for s in cfg.universe.traded if len(bars[s])]
    return max(starts, default=0)


def _max_warmup(cfg: Settings, dims: list[Any]) -> int:
    """The longest warm-up over the space's strategy points: the first bar every trial can trade."""
    from bot.research.space import apply, grid, strategy_part
    from bot.run.assemble import build_strategies

    strat_dims = [d for d in dims if not d.is_risk]
    warm = 0
    seen = set()
    for point in grid(strat_dims) if strat_dims else [{}]:
        key = strategy_part(point)
        if key in seen:
            continue
        seen.add(key)
        try:
            warm = max(warm, *(s.warmup for s in build_strategies(apply(cfg, point), "sweep")))
        except Exception:  # an invalid point is never traded
            continue
    return warm


def walkforward(
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
    is_bars: int,
    oos_bars: int,
    anchored: bool,
) -> list[str]:
    from bot.research.sweep import SweepSpec, run_sweep
    from bot.research.walkforward import make_folds

    spec = SweepSpec(dims, method, trials, seed, objective)
    spec.check()
    bars, splits, ppy, synthetic = load_inputs(cfg)
    index = bars[cfg.universe.signal].index
    first = max(_max_warmup(cfg, dims), first_tradable(cfg, bars))
    folds = make_folds(len(index), first, is_bars, oos_bars, anchored)
    sweep_dir = out / "sweep"
    results = run_sweep(cfg, bars, splits, spec, sweep_dir, ppy, where, workers, fresh)
    if not (results["status"] == "ok").any():
        raise SpaceError(
            "No valid point in the space: every combination was refused. Fix: the --param ranges."
        )
    research = {"sweep": "sweep/", "is_bars": is_bars, "oos_bars": oos_bars, "anchored": anchored,
                "objective": objective, "seed": seed, "folds": len(folds)}  # fmt: skip
    with journaled(out, "walkforward", cfg, research):
        return _walk(cfg, out, bars, ppy, synthetic, spec, results, folds, is_bars, oos_bars, anchored, seed)


def _walk(
    cfg: Settings,
    out: Path,
    bars: dict[str, pd.DataFrame],
    ppy: float,
    synthetic: bool,
    spec: Any,
    results: pd.DataFrame,
    folds: list[Any],
    is_bars: int,
    oos_bars: int,
    anchored: bool,
    seed: int,
) -> list[str]:
    import numpy as np

    from bot.research.sweep_report import analyse
    from bot.research.walkforward import dumps, stability, summarize_walk, walk, write_walk_html

    objective = spec.objective
    sweep_dir = out / "sweep"
    index = bars[cfg.universe.signal].index
    returns = np.load(sweep_dir / "returns.npy", mmap_mode="r")
    keys = [d.key for d in spec.dims]
    table, stitched = walk(returns, results, keys, index, folds, objective, ppy)
    oos_index = index[folds[0].oos_start : folds[-1].oos_end]
    summary = summarize_walk(stitched, oos_index, bars, cfg.universe.signal, cfg.universe.bull, ppy)
    full = analyse(sweep_dir, results, json.loads((sweep_dir / "sweep.json").read_text()))
    kind = "anchored" if anchored else "rolling"
    n_ok = int((results["status"] == "ok").sum())
    summary["method_note"] = (
        f"{len(folds)} {kind} folds: in-sample {is_bars} bars, out-of-sample {oos_bars} bars; each "
        f"in-sample window picks the best of {n_ok} trials by {objective}; seed {seed}."
    )
    d = full["deflated_sharpe"]
    summary["dsr_note"] = {
        "DSR of the full-period best (every trial counted)": d["dsr"],
        "trials": d["n_trials"],
    }
    summary["folds"] = table.to_dict("records")
    stab = stability(table, keys)
    summary["stability"] = stab.to_dict("records")
    (out / "summary.json").write_text(dumps(summary))
    table.to_csv(out / "folds.csv", index=False)
    curves = {"out-of-sample (stitched)": pd.Series(np.cumprod(1 + stitched), oos_index)}
    for key, label in (("buy_and_hold_signal", "buy & hold"), ("buy_and_hold_bull", "buy & hold")):
        if key in summary:
            sym = summary[key]["symbol"]
            c = bars[sym]["close"].reindex(oos_index).ffill().bfill()
            curves[f"{label} {sym}"] = c / c.iloc[0]
    pd.DataFrame({"oos_return": stitched}, index=oos_index).to_csv(out / "oos_returns.csv")
    write_walk_html(out, table, stab, summary, curves, synthetic)
    o = summary["oos"]
    lines = [
        f"{'SYNTHETIC DATA: ' if synthetic else ''}{summary['method_note']}",
        f"out-of-sample {summary['period']['start'][:10]} .. {summary['period']['end'][:10]}: return "
        f"{o['total_return']:+.2%}  cagr {o['cagr']:+.2%}  sharpe {o['sharpe']:.2f}  "
        f"max dd {o['max_drawdown']:.2%}",
    ]
    for key in ("buy_and_hold_signal", "buy_and_hold_bull"):
        if key in summary:
            b = summary[key]
            lines.append(
                f"buy & hold {b['symbol']}: return {b['total_return']:+.2%}  cagr {b['cagr']:+.2%}  "
                f"sharpe {b['sharpe']:.2f}  max dd {b['max_drawdown']:.2%}"
            )
    lines += [f"warning: {w}" for w in summary["warnings"]]
    moves = [f"{r['parameter']} {r['distinct values']} distinct" for r in summary["stability"]]
    lines.append(f"parameters across folds: {'; '.join(moves)}")
    lines.append(f"wrote {out}/summary.json folds.csv oos_returns.csv report.html sweep/")
    return lines


def montecarlo(
    cfg: Settings,
    out: Path,
    runs: int,
    block: int,
    perturb_runs: int,
    perturb_bps: float,
    random_runs: int,
    seed: int,
    where: str,
    workers: int | None,
) -> list[str]:
    if runs < 1 or block < 1 or perturb_runs < 0 or random_runs < 0 or perturb_bps < 0:
        raise SpaceError(
            "--runs and --block must be >= 1; --perturb-runs, --random-runs, --perturb-bps >= 0."
        )
    bars, splits, ppy, synthetic = load_inputs(cfg)
    params = {"seed": seed, "runs": runs, "block": block, "perturb_runs": perturb_runs,
              "perturb_bps": perturb_bps, "random_runs": random_runs}  # fmt: skip
    with journaled(out, "montecarlo", cfg, params):
        return _montecarlo(cfg, out, bars, splits, ppy, synthetic, runs, block, perturb_runs, perturb_bps,
                           random_runs, seed, where, workers)  # fmt: skip


def _montecarlo(
    cfg: Settings,
    out: Path,
    bars: dict[str, pd.DataFrame],
    splits: SplitTable | None,
    ppy: float,
    synthetic: bool,
    runs: int,
    block: int,
    perturb_runs: int,
    perturb_bps: float,
    random_runs: int,
    seed: int,
    where: str,
    workers: int | None,
) -> list[str]:
    import numpy as np

    from bot.research.curves import metrics, returns_of, years_between
    from bot.research.executor import Runner
    from bot.research.montecarlo import PerturbContext, baseline, perturbed_run, quantiles, seeds
    from bot.research.montecarlo_report import write_mc_html
    from bot.research.resample import block_bootstrap, path_stats
    from bot.research.walkforward import dumps
    from bot.run.assemble import build_strategies
    from bot.run.backtest import run_backtest

    strategies = build_strategies(cfg, "montecarlo")
    res = run_backtest(cfg, strategies, bars, splits=splits)
    warm = max(max(s.warmup for s in strategies), first_tradable(cfg, bars))
    r_all = returns_of(res.equity["equity"].to_numpy(float), cfg.broker.starting_cash)
    r = r_all[warm:]  # the bars the strategy could trade: warmed up, every traded symbol there
    idx = res.equity.index[warm:]
    if len(r) < 2:
        raise SpaceError("Too few bars after the strategies' warm-up to resample. Fix: a longer date range.")
    years = years_between(idx.to_numpy())
    actual = metrics(r, years, ppy)
    ss = np.random.SeedSequence(seed).spawn(3)
    paths = block_bootstrap(r, runs, block, np.random.default_rng(ss[0]))
    boot = path_stats(paths, years)
    summary: dict[str, object] = {
        "seed": seed,
        "period": {"start": str(idx[0]), "end": str(idx[-1]), "bars": len(idx), "years": years},
        "actual": actual,
        "bootstrap": {
            "runs": runs,
            "block_bars": block,
            "cagr": quantiles(boot["cagr"]),
            "max_drawdown": quantiles(boot["max_drawdown"]),
            "p_loss": float(np.mean(boot["total_return"] < 0)),
            "worst_max_drawdown": float(boot["max_drawdown"].max()),
        },
    }
    pert = None
    if perturb_runs:
        ctx = PerturbContext(cfg, bars, splits, ppy, perturb_bps)
        child = seeds(int(ss[1].generate_state(1)[0]), perturb_runs)
        with Runner(ctx, where, workers) as runner:
            pert = pd.DataFrame(runner.map(perturbed_run, child))
        summary["perturbed"] = {
            "runs": perturb_runs,
            "bps": perturb_bps,
            "cagr": quantiles(pert["cagr"].astype(float).to_numpy()),
            "max_drawdown": quantiles(pert["max_drawdown"].astype(float).to_numpy()),
            "n_trades": quantiles(pert["n_trades"].astype(float).to_numpy()),
        }
    base = None
    if random_runs:
        base = baseline(res.trades, bars, cfg, warm, random_runs, np.random.default_rng(ss[2]))
        summary["random_entry"] = {k: v for k, v in base.items() if k != "random_sharpes"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(dumps(summary))
    write_mc_html(out, summary, boot, pert, base, synthetic)
    b = summary["bootstrap"]
    lines = [
        f"{'SYNTHETIC DATA: ' if synthetic else ''}{summary['period']['start'][:10]} .. "
        f"{summary['period']['end'][:10]}: cagr {actual['cagr']:+.2%}  max dd {actual['max_drawdown']:.2%}",
        f"bootstrap ({runs} paths, blocks of {block} bars): cagr 5%..95% {b['cagr']['p5']:+.2%} .. "
        f"{b['cagr']['p95']:+.2%}; max dd median {b['max_drawdown']['p50']:.2%}, 95th pct "
        f"{b['max_drawdown']['p95']:.2%}; P(loss) {b['p_loss']:.1%}",
    ]
    if pert is not None:
        p = summary["perturbed"]
        lines.append(
            f"perturbed bars ({perturb_runs} runs, {perturb_bps:g} bps): cagr 5%..95% "
            f"{p['cagr']['p5']:+.2%} .. "
            f"{p['cagr']['p95']:+.2%}; max dd median {p['max_drawdown']['p50']:.2%}"
        )
    if base is not None:
        verdict = "significant" if base["p_value"] < 0.05 else "not significant"
        lines.append(
            f"random-entry baseline ({random_runs} runs, same trades' lengths and sides): p-value "
            f"{base['p_value']:.3f} ({verdict} at 5%)"
        )
    lines.append(f"wrote {out}/summary.json report.html")
    return lines
