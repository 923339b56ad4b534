"""The decay a leveraged fund is expected to suffer over a planned hold, from a volatility forecast.

Expected log gap against L x the index over N sessions (the terms of bot/risk/leverage.py, with the
index's daily variance forecast as s2 and D = N * 365/252 calendar days):

    vol_drag  = -(L^2 - L)/2 * N * s2
    expense   = -expense_ratio * D / 365
    financing = (1 - L) * rate * D / 365

`cost` = -(their sum), in log points: what the hold is expected to lose to decay and carry (negative
when financing outweighs the rest, e.g. SOXS at high rates in a calm market).

The variance forecast is RiskMetrics' EWMA (lambda = 0.94) of squared daily simple returns, flat over
the horizon. `EwmaVariance` steps it in O(1) per close (the engine's live path); `ewma_variance` is
the same recurrence over an array (bench, `soxbot decay`); they agree to the last bit. Both are seeded
with the mean of the first `MIN_OBS` squared returns and say nothing (None / NaN) before that.
GARCH(1,1) via the optional `arch` package (`pip install 'soxbot[research]'`) is offered for research.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.risk.leverage import DAYS_PER_YEAR, drag_coefficient, financing_multiplier

RISKMETRICS_LAMBDA = 0.94
MIN_OBS = 20  # squared returns averaged to seed the EWMA; no forecast before
SESSIONS_PER_YEAR = 252.0


@dataclass(frozen=True, slots=True)
class DecayForecast:
    sessions: int
    variance: float  # the index's daily variance forecast used
    vol_drag: float
    expense: float
    financing: float

    @property
    def total(self) -> float:
        """Expected log gap against L x the index (negative: a loss)."""
        return self.vol_drag + self.expense + self.financing

    @property
    def cost(self) -> float:
        """Expected decay as a positive cost in log points (= -total)."""
        return -self.total

    @property
    def sigma_annual(self) -> float:
        return float(np.sqrt(self.variance * SESSIONS_PER_YEAR))


def expected_decay(
    leverage: float, variance: float, sessions: int, expense_ratio: float = 0.0, rate: float = 0.0
) -> DecayForecast:
    """The decay terms over `sessions` sessions for an index daily variance `variance` (see above)."""
    days = sessions * DAYS_PER_YEAR / SESSIONS_PER_YEAR
    return DecayForecast(
        sessions,
        variance,
        -drag_coefficient(leverage) * sessions * variance,
        -expense_ratio * days / DAYS_PER_YEAR,
        financing_multiplier(leverage) * rate * days / DAYS_PER_YEAR,
    )


class EwmaVariance:
    """EWMA of squared simple returns from a stream of closes: O(1) per close. `value` is the
    variance forecast for the next session (None until `MIN_OBS` returns have been seen)."""

    __slots__ = ("_n", "_prev", "_seed", "_undo", "lam", "value")

    def __init__(self, lam: float = RISKMETRICS_LAMBDA) -> None:
        self.lam = lam
        self._prev: float | None = None
        self._n = 0
        self._seed = 0.0
        self.value: float | None = None
        self._undo: tuple[float | None, int, float, float | None] | None = None

    def update(self, close: float) -> float | None:
        self._undo = (self._prev, self._n, self._seed, self.value)
        prev = self._prev
        self._prev = close
        if prev is None or not prev > 0:
            return self.value
        r = close / prev - 1.0
        if self.value is None:
            self._seed += r * r
            self._n += 1
            if self._n == MIN_OBS:
                self.value = self._seed / MIN_OBS
        else:
            self.value = self.lam * self.value + (1.0 - self.lam) * r * r
        return self.value

    def revise(self, close: float) -> float | None:
        """Redo the last update with the bar's final close (a daily bar first seen before the close)."""
        if self._undo is not None:
            self._prev, self._n, self._seed, self.value = self._undo
        return self.update(close)


def ewma_variance(closes: np.ndarray, lam: float = RISKMETRICS_LAMBDA) -> np.ndarray:
    """`EwmaVariance.value` after each close of `closes` (NaN while it has none), as an array."""
    c = np.asarray(closes, dtype=float)
    out = np.full(len(c), np.nan)
    if len(c) <= MIN_OBS:
        return out
    r = c[1:] / c[:-1] - 1.0
    seed = 0.0
    for x in r[:MIN_OBS].tolist():  # the stepper's order of additions, for the same bits
        seed += x * x
    v = seed / MIN_OBS
    out[MIN_OBS] = v
    one = 1.0 - lam
    for i, x in enumerate(r[MIN_OBS:].tolist(), start=MIN_OBS + 1):
        v = lam * v + one * x * x
        out[i] = v
    return out


def trailing_variance(closes: np.ndarray, window: int = 20) -> np.ndarray:
    """Sample variance (ddof=1) of the last `window` simple returns after each close: the trailing-sigma
    estimate the EWMA is measured against (NaN before `window` returns)."""
    c = np.asarray(closes, dtype=float)
    out = np.full(len(c), np.nan)
    if len(c) <= window:
        return out
    r = c[1:] / c[:-1] - 1.0
    from numpy.lib.stride_tricks import sliding_window_view

    out[window:] = sliding_window_view(r, window).var(axis=1, ddof=1)
    return out


def garch_mean_variance(omega: float, alpha: float, beta: float, next_var: float, horizon: int) -> float:
    """Mean of a GARCH(1,1)'s expected daily variances over the next `horizon` sessions, from the
    next session's `next_var`: E[s2_{t+h}] = v + (alpha + beta)^(h-1) (next_var - v), v = omega /
    (1 - alpha - beta) (with alpha + beta >= 1 there is no mean to revert to: next_var throughout)."""
    phi = alpha + beta
    if phi >= 1.0:
        return next_var
    v = omega / (1.0 - phi)
    return v + (next_var - v) * (1.0 - phi**horizon) / ((1.0 - phi) * horizon)


def garch_variance(returns: np.ndarray, horizon: int) -> float:
    """Mean daily variance over the next `horizon` sessions from a GARCH(1,1) (constant mean, normal
    errors) fitted to `returns` (daily simple returns). Needs the optional `arch` package."""
    try:
        from arch import arch_model
    except ImportError as exc:
        raise ImportError("GARCH needs the optional 'arch' package: pip install 'soxbot[research]'") from exc
    r = np.asarray(returns, dtype=float) * 100.0  # arch's optimiser prefers percent
    res = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="normal").fit(disp="off")
    path = res.forecast(horizon=horizon, reindex=False).variance.to_numpy()[-1]
    return float(np.mean(path)) / 10_000.0
