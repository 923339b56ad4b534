"""Is a backtest's Sharpe ratio more than the luck of many tries?

- `probabilistic_sharpe`: PSR (Bailey & López de Prado 2012), the probability that the true Sharpe
  ratio exceeds a benchmark given the sample's length, skewness and kurtosis.
- `expected_max_sharpe` and `deflated_sharpe`: DSR (Bailey & López de Prado 2014, "The Deflated
  Sharpe Ratio"), PSR against the Sharpe ratio the best of N independent trials reaches by chance
  alone; every trial a sweep ran counts in N.
- `pbo`: the Probability of Backtest Overfitting by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu 2015): how often the in-sample best is below the median out
  of sample.

Sharpe ratios here are per bar (not annualised), as in the papers' formulas.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(r: np.ndarray) -> float:
    """Per-bar Sharpe ratio mean / std (ddof=1); 0 for a flat series."""
    r = np.asarray(r, float)
    if len(r) < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    return float(r.mean()) / sd if sd > 1e-12 else 0.0


def moments(r: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of `r`, population moments as in the papers; (0, 3) for a
    flat series."""
    r = np.asarray(r, float)
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if m2 <= 1e-24:
        return 0.0, 3.0
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def probabilistic_sharpe(sr: float, sr_star: float, t: int, skew: float, kurt: float) -> float:
    """PSR: P(true SR > sr_star) for an observed per-bar `sr` over `t` bars."""
    if t < 2:
        return float("nan")
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if var <= 0:
        return float("nan")
    return _N.cdf((sr - sr_star) * math.sqrt(t - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: int, var_sr: float) -> float:
    """E[max SR] of `n_trials` independent trials whose Sharpe ratios have variance `var_sr` and a
    true value of 0 (the DSR paper's SR_0)."""
    if n_trials < 2 or var_sr <= 0:
        return 0.0
    g = EULER_GAMMA
    z1 = _N.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sr) * ((1.0 - g) * z1 + g * z2)


def deflated_sharpe(r: np.ndarray, trial_srs: np.ndarray) -> dict[str, float]:
    """DSR of returns `r` (the selected trial) given the per-bar Sharpe ratios of every trial run.

    Returns {"dsr", "sr", "sr0", "n_trials", "skew", "kurtosis", "t"}; dsr is a probability: above
    0.95 the result is significant at 5% after the number of trials is accounted for."""
    r = np.asarray(r, float)
    srs = np.asarray(trial_srs, float)
    srs = srs[np.isfinite(srs)]
    n = len(srs)
    var = float(srs.var(ddof=1)) if n > 1 else 0.0
    sr0 = expected_max_sharpe(n, var)
    sr = sharpe(r)
    skew, kurt = moments(r)
    return {
        "dsr": probabilistic_sharpe(sr, sr0, len(r), skew, kurt),
        "sr": sr,
        "sr0": sr0,
        "n_trials": n,
        "skew": skew,
        "kurtosis": kurt,
        "t": len(r),
    }


def _block_sharpes(sums: np.ndarray, sq: np.ndarray, counts: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """Per-column Sharpe of the rows in the blocks `pick` (a 0/1 matrix: combinations x blocks)."""
    n = pick @ counts  # rows per combination
    s = pick @ sums
    q = pick @ sq
    mean = s / n[:, None]
    var = (q - n[:, None] * mean**2) / (n[:, None] - 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 1e-12, mean / sd, 0.0)


def pbo(returns: np.ndarray, n_blocks: int = 16) -> dict[str, object]:
    """PBO by CSCV over `returns` (bars x trials), performance = Sharpe ratio.

    The rows are cut into `n_blocks` (even) equal blocks (the first T mod n_blocks rows dropped); for
    each way of taking half the blocks as in-sample, the in-sample best trial's rank among all
    trials out of sample gives w = rank / (N + 1) and the logit log(w / (1 - w)). PBO is the share
    of logits <= 0 (the chosen trial at or below the median out of sample).
    Returns {"pbo", "logits", "n_splits", "n_blocks", "n_trials"}."""
    m = np.asarray(returns, float)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("pbo needs a matrix of at least two trials (columns)")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be even and >= 2, got {n_blocks}")
    t = m.shape[0] - m.shape[0] % n_blocks
    if t < 2 * n_blocks:
        raise ValueError(f"pbo needs at least {2 * n_blocks} rows for {n_blocks} blocks, got {m.shape[0]}")
    m = m[m.shape[0] - t :]
    blocks = m.reshape(n_blocks, t // n_blocks, m.shape[1])
    sums, sq = blocks.sum(axis=1), (blocks**2).sum(axis=1)
    counts = np.full(n_blocks, t // n_blocks, float)
    n_trials = m.shape[1]
    logits: list[np.ndarray] = []
    combos = itertools.combinations(range(n_blocks), n_blocks // 2)
    while chunk := list(itertools.islice(combos, 512)):
        pick = np.zeros((len(chunk), n_blocks))
        for row, c in enumerate(chunk):
            pick[row, list(c)] = 1.0
        train = _block_sharpes(sums, sq, counts, pick)
        test = _block_sharpes(sums, sq, counts, 1.0 - pick)
        best = np.argmax(train, axis=1)
        chosen = test[np.arange(len(chunk)), best]
        rank = (test < chosen[:, None]).sum(axis=1) + 1  # 1 = worst out of sample
        w = rank / (n_trials + 1.0)
        logits.append(np.log(w / (1.0 - w)))
    lam = np.concatenate(logits)
    return {
        "pbo": float(np.mean(lam <= 0)),
        "logits": lam,
        "n_splits": len(lam),
        "n_blocks": n_blocks,
        "n_trials": n_trials,
    }
