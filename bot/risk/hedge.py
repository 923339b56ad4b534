"""Sizing an inverse leveraged fund (SOXS, L = -3) as a hedge for semiconductor holdings.

- beta of a holding: OLS slope (with intercept) of its daily simple returns on the index proxy's, over
  the last `window` sessions both have;
- beta-weighted exposure E = sum(beta_i x value_i); the hedge's notional for a hedge ratio h is
  h x E / |L|, since the fund moves L times the index each day;
- drift: after an index move m the fund's notional is N (1 + L m) and the exposure
  sum(beta_i v_i (1 + beta_i m)), so the hedge is off its target by N' / target' - 1;
- `band_moves`: the index moves (down, up) at which that drift reaches the rebalance band;
- `backtest`: the hedge held `horizon` sessions from every start, sized then on the beta of the
  portfolio (its current weights) over the `window` sessions before (nothing from the future), with
  and without: volatility, worst and mean of the `horizon`-session return, and the hedge's cost (its
  return short of L x the index's over the window; the fund's real prices carry its decay and carry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def ols_beta(y: np.ndarray, x: np.ndarray) -> float:
    """Slope of y on x with an intercept (NaN pairs dropped); NaN with fewer than 3 pairs."""
    ok = np.isfinite(y) & np.isfinite(x)
    y, x = y[ok], x[ok]
    if len(x) < 3:
        return float("nan")
    dx = x - x.mean()
    den = float(dx @ dx)
    return float(dx @ (y - y.mean()) / den) if den > 0 else float("nan")


def hedge_notional(exposure: float, ratio: float, leverage: float) -> float:
    """Dollars of the inverse fund that offset `ratio` of a beta-weighted `exposure`."""
    return ratio * exposure / abs(leverage)


def drift(betas: Mapping[str, float], values: Mapping[str, float], leverage: float, move: float) -> float:
    """How far a hedge sized exactly on target is off it after the index moves `move` (0.01 = +1%)."""
    e0 = sum(betas[s] * values[s] for s in betas)
    e1 = sum(betas[s] * values[s] * (1 + betas[s] * move) for s in betas)
    if e0 <= 0 or e1 <= 0:
        return float("nan")
    return (1 + leverage * move) / (e1 / e0) - 1


def band_moves(
    betas: Mapping[str, float], values: Mapping[str, float], leverage: float, band: float
) -> tuple[float, float]:
    """The index moves (down, up) at which the drift reaches -band or +band (bisection; NaN if beyond 50%)."""

    def solve(lo: float, hi: float) -> float:
        f = lambda m: abs(drift(betas, values, leverage, m)) - band  # noqa: E731
        if not f(hi) >= 0:
            return float("nan")
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2

    return solve(0.0, -0.3), solve(0.0, 0.3)


@dataclass(frozen=True, slots=True)
class HedgeBacktest:
    starts: np.ndarray  # index of each window's start
    notional: np.ndarray  # hedge dollars per portfolio dollar at each start
    without: np.ndarray  # the portfolio's horizon return
    with_hedge: np.ndarray  # plus the hedge's
    cost: np.ndarray  # the hedge's shortfall against L x the index, per portfolio dollar (positive: a cost)

    def figures(self) -> dict[str, float]:
        def stats(r: np.ndarray) -> dict[str, float]:
            return {"volatility": float(np.std(r, ddof=1)), "worst": float(r.min()), "mean": float(r.mean())}

        return {
            "windows": len(self.starts),
            "median_notional_per_dollar": float(np.median(self.notional)),
            "without": stats(self.without),
            "with": stats(self.with_hedge),
            "mean_cost": float(self.cost.mean()),
        }


def backtest(
    port_ret: np.ndarray,
    index_close: np.ndarray,
    fund_close: np.ndarray,
    ratio: float,
    leverage: float,
    window: int = 60,
    horizon: int = 20,
) -> HedgeBacktest:
    """See the module docstring. Aligned daily arrays; `port_ret[t]` is the return from t-1 to t."""
    idx_ret = np.r_[np.nan, index_close[1:] / index_close[:-1] - 1]
    n = len(port_ret)
    starts = np.arange(window, n - horizon)
    if len(starts) < 2:
        raise ValueError(f"{n} common sessions: the backtest needs at least {window + horizon + 2}")
    growth = np.r_[0.0, np.cumsum(np.log1p(np.nan_to_num(port_ret[1:])))]
    out = np.empty((5, len(starts)))
    for k, t in enumerate(starts):
        beta = ols_beta(port_ret[t - window + 1 : t + 1], idx_ret[t - window + 1 : t + 1])
        nt = hedge_notional(beta, ratio, leverage)
        rp = float(np.expm1(growth[t + horizon] - growth[t]))
        rf = fund_close[t + horizon] / fund_close[t] - 1
        ri = index_close[t + horizon] / index_close[t] - 1
        out[:, k] = (nt, rp, rp + nt * rf, -nt * (rf - leverage * ri), t)
    return HedgeBacktest(out[4].astype(int), out[0], out[1], out[2], out[3])
