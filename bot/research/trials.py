"""One trial of a sweep: a config point backtested on bars loaded once, reduced to its per-bar
returns and metrics. Runs in a worker (`executor.Runner`), so everything here is picklable.

Trials are handed out in groups that share their strategy parameters (only risk keys differ): the
group computes its strategies' signals (every indicator) once and reuses them for each trial.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bot.core.config import Settings
from bot.data.splits import SplitTable
from bot.research.curves import metrics, returns_of, years_between
from bot.research.space import apply, is_invalid, strategy_part


@dataclass
class Context:
    """What every worker needs once: the base config and the cleaned bars."""

    cfg: Settings
    bars: dict[str, pd.DataFrame]
    splits: SplitTable | None
    ppy: float
    keep_returns: bool = True

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.bars[self.cfg.universe.signal].index


@dataclass
class TrialResult:
    trial: int
    point: dict[str, Any]
    status: str  # "ok" or "invalid" (the point is not a valid config, e.g. slow <= fast)
    metrics: dict[str, Any] = field(default_factory=dict)
    returns: np.ndarray | None = None
    error: str = ""


class _Memo:
    """A strategy whose `signals` is computed once and then reused (the bars never change within a
    group): the indicators of trials that differ only in risk keys are computed once."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._out: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def warmup(self) -> int:
        return self._inner.warmup

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        if self._out is None or len(self._out) != len(bars):
            self._out = self._inner.signals(bars)
        return self._out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def group_points(
    points: list[tuple[int, dict[str, Any]]], max_size: int
) -> list[list[tuple[int, dict[str, Any]]]]:
    """Consecutive points with the same strategy part, in chunks of at most `max_size`."""
    groups: list[list[tuple[int, dict[str, Any]]]] = []
    last: Any = object()
    for tid, point in points:
        key = strategy_part(point)
        if key != last or len(groups[-1]) >= max_size:
            groups.append([])
            last = key
        groups[-1].append((tid, point))
    return groups


def backtest_metrics(
    ctx: Context, equity: pd.DataFrame, trades: pd.DataFrame
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-bar returns of the equity curve and the metrics the sweep ranks by."""
    r = returns_of(equity["equity"].to_numpy(float), ctx.cfg.broker.starting_cash)
    m: dict[str, Any] = metrics(r, years_between(equity.index.to_numpy()), ctx.ppy)
    pos = np.nan_to_num(equity["position_value"].to_numpy(float))
    pnl = pd.to_numeric(trades["pnl"], errors="coerce").to_numpy(float) if len(trades) else np.zeros(0)
    m["exposure"] = float(np.mean(np.abs(pos) > 1e-9)) if len(pos) else 0.0
    m["n_trades"] = len(trades)
    m["win_rate"] = float(np.mean(pnl > 0)) if len(pnl) else None
    return r, {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in m.items()}


def run_group(ctx: Context, group: list[tuple[int, dict[str, Any]]]) -> list[TrialResult]:
    """Backtest each point of a group; the group's signals are computed once."""
    from bot.run.assemble import build_strategies
    from bot.run.backtest import run_backtest

    out: list[TrialResult] = []
    memo: list[_Memo] | None = None
    for tid, point in group:
        try:
            cfg = apply(ctx.cfg, point)
            if memo is None:
                memo = [_Memo(s) for s in build_strategies(cfg, "sweep")]
        except Exception as exc:
            if not is_invalid(exc):
                raise
            out.append(TrialResult(tid, point, "invalid", error=str(exc).splitlines()[-1].strip()))
            continue
        try:
            res = run_backtest(cfg, memo, ctx.bars, splits=ctx.splits)  # type: ignore[arg-type]
        except Exception as exc:  # a failing trial is recorded with the reason, not fatal to the sweep
            msg = "".join(traceback.format_exception_only(exc)).strip()
            out.append(TrialResult(tid, point, "error", error=msg))
            continue
        r, m = backtest_metrics(ctx, res.equity, res.trades)
        out.append(TrialResult(tid, point, "ok", m, r if ctx.keep_returns else None))
    return out
