"""`soxbot montecarlo`: how much of a backtest's result is the one path history happened to take.

- Block bootstrap of the strategy's per-bar compounded returns (blocks keep volatility clusters):
  distributions of CAGR and max drawdown; a drawdown is never beyond -100%.
- Perturbed bars: every bar's prices moved by a small random factor, the backtest run again (on the
  executor seam, each run with its own seed): how fragile the trades are to the exact prices.
- Random-entry baseline: random trades with the strategy's number of trades, holding lengths,
  exposure and sides, at random places; the p-value is the share of random strategies whose Sharpe
  ratio is at least the strategy's (both on the same close-to-close model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bot.core.config import Settings
from bot.data.splits import SplitTable
from bot.research.curves import metrics, years_between
from bot.research.resample import (
    holding_profile,
    path_returns,
    perturb_bars,
    position_path,
    random_path,
)
from bot.research.stats import sharpe

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass
class PerturbContext:
    cfg: Settings
    bars: dict[str, pd.DataFrame]
    splits: SplitTable | None
    ppy: float
    bps: float


def perturbed_run(ctx: PerturbContext, seed: int) -> dict[str, float | None]:
    """One backtest on bars perturbed with `seed`: its CAGR, max drawdown, Sharpe and trades."""
    from bot.research.curves import returns_of
    from bot.run.assemble import build_strategies
    from bot.run.backtest import run_backtest

    rng = np.random.default_rng(seed)
    bars = {s: perturb_bars(df, ctx.bps, rng) for s, df in sorted(ctx.bars.items())}
    res = run_backtest(ctx.cfg, build_strategies(ctx.cfg, "montecarlo"), bars, splits=ctx.splits)
    r = returns_of(res.equity["equity"].to_numpy(float), ctx.cfg.broker.starting_cash)
    m = metrics(r, years_between(res.equity.index.to_numpy()), ctx.ppy)
    return {
        "cagr": m["cagr"],
        "max_drawdown": m["max_drawdown"],
        "sharpe": m["sharpe"],
        "n_trades": len(res.trades),
    }


def seeds(seed: int, n: int) -> list[int]:
    """`n` independent child seeds of `seed` (numpy SeedSequence): run i always gets seed i."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def quantiles(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return {}
    return {f"p{int(q * 100)}": float(np.quantile(x, q)) for q in QUANTILES} | {"mean": float(x.mean())}


def baseline(
    trades: pd.DataFrame,
    bars: dict[str, pd.DataFrame],
    cfg: Settings,
    start: int,
    n: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The random-entry baseline: the strategy's Sharpe (close-to-close model) against `n` random
    strategies with its trades' lengths and sides, starting no earlier than bar `start`."""
    uni = cfg.universe
    index = bars[uni.signal].index
    sides = {uni.bull: 1} if uni.bull else {}
    if uni.bear:
        sides[uni.bear] = -1

    def rets(sym: str) -> np.ndarray:
        return bars[sym]["close"].reindex(index).ffill().pct_change().fillna(0.0).to_numpy(float)

    bull = rets(uni.bull) if uni.bull else np.zeros(len(index))
    bear = rets(uni.bear) if uni.bear else None
    own = position_path(trades, index, sides)
    strat = sharpe(path_returns(own, bull, bear)[start:])
    _sides, lengths = holding_profile(trades, index, sides)
    choices = np.array(sorted(set(sides.values())) or [1])
    rand = np.array(
        [
            sharpe(path_returns(random_path(choices, lengths, len(index), start, rng), bull, bear)[start:])
            for _ in range(n)
        ]
    )
    p = (1 + int(np.sum(rand >= strat))) / (n + 1)
    return {
        "strategy_sharpe_per_bar": strat,
        "random_sharpes": rand,
        "p_value": p,
        "n_random": n,
        "n_trades": len(lengths),
        "exposure": float(np.mean(own[start:] != 0)) if len(own) > start else 0.0,
        "sides": [int(s) for s in choices],
    }
