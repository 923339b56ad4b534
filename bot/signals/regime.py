"""The figures the regime gates read (`[risk.bull]` / `[risk.bear]` regime_sma, regime_drawdown_pct):
the signal symbol's close, its N-bar SMA and its rolling peak, per side.

Two ways to the same numbers: `RegimeStepper` updates them in O(1) per bar for the live path (it rides
along `TrailingSignals`), `regime_series` computes them over a whole history at once for the backtest.
The SMA is TA-Lib's (the stepper replays its running sum, `bot/signals/stepping.py`) and the peak a
plain maximum, so both give the same bits and decide the same entries (tests/test_regime.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from bot.core.config import RegimeGate, Settings
from bot.signals.stepping import SMA, RollingMax

NAN = float("nan")
SIDES = ("bull", "bear")


class Regime(NamedTuple):
    """The signal's figures at one bar: its close and, per side, the SMA and the peak that side's gate
    reads (NaN when the gate does not use it or it is not known yet). A tuple: made every bar."""

    close: float
    bull_sma: float = NAN
    bull_peak: float = NAN
    bear_sma: float = NAN
    bear_peak: float = NAN

    def of(self, side: str) -> tuple[float, float]:
        """(SMA, peak) for 'bull' or 'bear'."""
        return (self.bull_sma, self.bull_peak) if side == "bull" else (self.bear_sma, self.bear_peak)


def gates(cfg: Settings) -> dict[str, RegimeGate]:
    """The sides that have a regime gate, with their rules."""
    uni = cfg.universe
    out = {}
    for side in SIDES:
        rules = getattr(cfg.risk, side)
        if getattr(uni, side) and rules is not None and rules.gated:
            out[side] = rules
    return out


def _lengths(rules: RegimeGate) -> tuple[int, int]:
    """(SMA length, peak length) a side's gate needs; 0 = not used."""
    return rules.regime_sma, rules.regime_peak_bars if rules.regime_drawdown_pct > 0 else 0


def regime_window(cfg: Settings) -> int:
    """Bars of history the gates need before they know their figures (0: no gate)."""
    return max((n for rules in gates(cfg).values() for n in _lengths(rules)), default=0)


class RegimeStepper:
    """The gates' figures, one close at a time, in O(1) per bar. `revise` redoes the newest bar with
    its final close (a daily bar decided before the close), from a twin one bar behind."""

    def __init__(self, cfg: Settings) -> None:
        spec = {side: _lengths(rules) for side, rules in gates(cfg).items()}
        smas = sorted({s for s, _ in spec.values() if s})
        peaks = sorted({p for _, p in spec.values() if p})
        self._steppers: list[SMA | RollingMax] = [*(SMA(n) for n in smas), *(RollingMax(n) for n in peaks)]
        # where each Regime field is in the list of values; -1: the NaN appended at its end
        at = {("sma", n): k for k, n in enumerate(smas)} | {
            ("peak", n): len(smas) + k for k, n in enumerate(peaks)
        }
        self._fields = tuple(
            at.get((kind, spec.get(side, (0, 0))[j]), -1)
            for side in SIDES
            for j, kind in enumerate(("sma", "peak"))
        )
        self._behind = copy.deepcopy(self._steppers)
        self._newest: float | None = None  # not yet in the twins

    def push(self, close: float) -> Regime:
        if self._newest is not None:
            for st in self._behind:
                st.update(self._newest)
        self._newest = close
        return self._figures(close)

    def revise(self, close: float) -> Regime:
        self._steppers = copy.deepcopy(self._behind)
        self._newest = close
        return self._figures(close)

    def _figures(self, close: float) -> Regime:
        v = [st.update(close) for st in self._steppers]
        v.append(NAN)
        a, b, c, d = self._fields
        return Regime(close, v[a], v[b], v[c], v[d])


@dataclass(frozen=True)
class RegimeSeries:
    """The gates' figures over a whole history (the backtest): `at(i)` is what `RegimeStepper` gives
    after the i-th close."""

    close: np.ndarray
    columns: dict[str, np.ndarray]

    def at(self, i: int) -> Regime:
        return Regime(float(self.close[i]), **{k: float(v[i]) for k, v in self.columns.items()})


def regime_series(cfg: Settings, close: np.ndarray) -> RegimeSeries | None:
    """The figures for every bar of the signal's `close`, vectorised; None when no side is gated."""
    spec = {side: _lengths(rules) for side, rules in gates(cfg).items()}
    if not spec:
        return None
    import talib

    close = np.ascontiguousarray(close, dtype=float)
    nan = np.full(len(close), np.nan)
    cols: dict[str, np.ndarray] = {}
    for side, (s, p) in spec.items():
        cols[f"{side}_sma"] = talib.SMA(close, s) if s and len(close) else nan
        cols[f"{side}_peak"] = pd.Series(close).rolling(p).max().to_numpy() if p else nan
    return RegimeSeries(close, cols)
