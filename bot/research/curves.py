"""Metrics of a curve given as per-bar compounded returns, with `bot/report/metrics.py`'s definitions
(the equity is base * cumprod(1 + r); the peak includes the base). Research works on returns, never
on absolute P&L: a return series can be sliced into windows, resampled and stitched, and its
compounded curve can never fall below zero (a return is floored at -100%), so no drawdown is ever
beyond -100%.
"""

from __future__ import annotations

import math

import numpy as np

_FLAT_STD = 1e-12

# What a sweep can rank by; each is "higher is better" after `score` (max_drawdown is negated).
OBJECTIVES = ("sharpe", "cagr", "total_return", "calmar", "sortino", "max_drawdown")


def returns_of(values: np.ndarray, base: float) -> np.ndarray:
    """r_i = v_i / v_{i-1} - 1 with v_{-1} = base; 0 where the previous value is <= 0."""
    values = np.asarray(values, float)
    prev = np.concatenate([[base], values[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0, values / prev - 1.0, 0.0)
    return np.maximum(np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0), -1.0)


def max_drawdown(r: np.ndarray) -> float:
    """Largest fractional fall from a running peak (base 1 included) of the compounded curve: in [0, 1]."""
    curve = np.cumprod(1.0 + np.maximum(np.asarray(r, float), -1.0))
    peak = np.maximum.accumulate(np.concatenate([[1.0], curve]))[1:]
    if not len(curve):
        return 0.0
    return float(np.max(np.where(peak > 0, 1.0 - curve / peak, 0.0)))


def metrics(r: np.ndarray, years: float, ppy: float) -> dict[str, float | None]:
    """total_return, cagr, sharpe, sortino, max_drawdown, calmar, volatility of returns `r` over
    `years` of calendar time, annualised with `ppy` bars a year (risk-free rate 0)."""
    r = np.maximum(np.asarray(r, float), -1.0)
    final = float(np.prod(1.0 + r)) if len(r) else 1.0
    cagr: float | None
    if final <= 0:
        cagr = -1.0
    elif years > 0:
        try:
            cagr = final ** (1.0 / years) - 1.0
        except OverflowError:
            cagr = None
    else:
        cagr = None
    mean = float(r.mean()) if len(r) else 0.0
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    ann = math.sqrt(ppy)
    sharpe = mean / std * ann if std >= _FLAT_STD else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if len(r) else 0.0
    sortino = mean / downside * ann if downside >= _FLAT_STD else (None if mean > 0 else 0.0)
    mdd = max_drawdown(r)
    if cagr is None:
        calmar = None
    elif mdd > 0:
        calmar = cagr / mdd
    else:
        calmar = None if cagr > 0 else 0.0
    return {
        "total_return": final - 1.0,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "calmar": calmar,
        "volatility": std * ann,
    }


def score(m: dict[str, float | None], objective: str) -> float:
    """The objective as "higher is better"; a missing value (unbounded or undefined) ranks last."""
    v = m.get(objective)
    if v is None or not math.isfinite(v):
        return -math.inf
    return -float(v) if objective == "max_drawdown" else float(v)


def years_between(index: np.ndarray) -> float:
    """Calendar years from the first to the last timestamp (datetime64 values)."""
    if len(index) < 2:
        return 0.0
    ns = (np.datetime64(index[-1], "ns") - np.datetime64(index[0], "ns")).astype("int64")
    return float(ns) / 1e9 / (365.25 * 24 * 3600)
