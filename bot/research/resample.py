"""Monte Carlo building blocks: block bootstrap of compounded returns, perturbed bars, and the
random-entry baseline (random trades with the strategy's exposure, holding profile and sides).

Everything resamples *returns*, never absolute P&L: a trade's P&L in dollars depends on the equity
it was sized from, so replaying dollar amounts in another order misstates both the growth and the
drawdowns (and can show drawdowns beyond -100%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bot.research.curves import max_drawdown


def block_bootstrap(r: np.ndarray, n_paths: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """`n_paths` resampled series of len(r): circular blocks of `block` bars starting at random
    bars, so autocorrelation and volatility clusters within a block are kept. (n_paths x len(r))"""
    r = np.asarray(r, float)
    t = len(r)
    block = max(1, min(block, t))
    n_blocks = -(-t // block)
    starts = rng.integers(0, t, size=(n_paths, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_paths, -1)[:, :t] % t
    return r[idx]


def path_stats(paths: np.ndarray, years: float) -> dict[str, np.ndarray]:
    """CAGR and max drawdown of each compounded path (rows), both as fractions; a path that loses
    everything has CAGR -1 and drawdown 1, never beyond."""
    paths = np.maximum(np.asarray(paths, float), -1.0)
    final = np.prod(1.0 + paths, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cagr = np.where(final > 0, final ** (1.0 / years) - 1.0, -1.0) if years > 0 else final - 1.0
    mdd = np.array([max_drawdown(p) for p in paths])
    return {"cagr": cagr, "max_drawdown": mdd, "total_return": final - 1.0}


def perturb_bars(df: pd.DataFrame, bps: float, rng: np.random.Generator) -> pd.DataFrame:
    """The bars with each bar's open, high, low and close multiplied by one factor exp(N(0, bps)):
    prices stay positive and each bar stays consistent (low <= open, close <= high)."""
    out = df.copy()
    f = np.exp(rng.normal(0.0, bps / 1e4, size=len(df)))
    for c in ("open", "high", "low", "close"):
        if c in out:
            out[c] = out[c].to_numpy(float) * f
    return out


def holding_profile(
    trades: pd.DataFrame, index: pd.DatetimeIndex, sides: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each trade's (side, bars held) on `index`: side +1 for the bull symbol, -1 for the bear one.
    A trade is held from the bar after its entry fill to its exit bar (close-to-close returns)."""
    if not len(trades):
        return np.zeros(0, int), np.zeros(0, int)
    entry = index.searchsorted(pd.DatetimeIndex(pd.to_datetime(trades["entry_time"])))
    exit_ = index.searchsorted(pd.DatetimeIndex(pd.to_datetime(trades["exit_time"])))
    side = np.array([sides.get(str(s), 1) for s in trades["symbol"]], int)
    return side, np.maximum(exit_ - entry, 0).astype(int)


def position_path(trades: pd.DataFrame, index: pd.DatetimeIndex, sides: dict[str, int]) -> np.ndarray:
    """The side held over each bar (-1, 0, +1) by the strategy's own trades, on the same
    close-to-close model the random baseline uses."""
    path = np.zeros(len(index), int)
    if not len(trades):
        return path
    entry = index.searchsorted(pd.DatetimeIndex(pd.to_datetime(trades["entry_time"])))
    exit_ = index.searchsorted(pd.DatetimeIndex(pd.to_datetime(trades["exit_time"])))
    for s, e, x in zip([sides.get(str(v), 1) for v in trades["symbol"]], entry, exit_, strict=True):
        path[e + 1 : x + 1] = s
    return path


def random_path(
    side_choices: np.ndarray, lengths: np.ndarray, n_bars: int, start: int, rng: np.random.Generator
) -> np.ndarray:
    """A path with the same trade lengths in a random order, at random non-overlapping places in
    bars [start, n_bars), each trade's side drawn from `side_choices`."""
    path = np.zeros(n_bars, int)
    k = len(lengths)
    free = n_bars - start - int(lengths.sum()) - k  # at least one flat bar before each trade
    if k == 0 or free < 0:
        return path
    order = rng.permutation(lengths)
    cuts = np.sort(rng.choice(free + k, size=k, replace=False)) - np.arange(k)  # stars and bars
    gaps = np.diff(np.concatenate([[0], cuts]))
    pos = start
    for g, length in zip(gaps, order, strict=True):
        pos += int(g) + 1
        path[pos : pos + int(length)] = rng.choice(side_choices)
        pos += int(length)
    return path


def path_returns(path: np.ndarray, bull: np.ndarray, bear: np.ndarray | None) -> np.ndarray:
    """Per-bar returns of holding the bull instrument where path = +1 and the bear one where -1
    (short the bull instrument when there is no separate bear one)."""
    out = np.where(path > 0, bull, 0.0)
    short = -bull if bear is None else bear
    return np.where(path < 0, short, out)
