"""RSI mean reversion: buy a recovery from oversold, sell a roll-over from overbought."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from bot.signals import ta
from bot.stepping import NAN, SMA, WilderRSI
from bot.strategy import WARMUP_REASON, Strategy, StrategyParams, finalize, labels, recursive_memory

MIDLINE = 50.0


def _last_index(mask: np.ndarray) -> np.ndarray:
    """Index of the most recent True at or before each bar (-1 before the first): a vectorised ffill."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    return np.maximum.accumulate(idx) if len(idx) else idx


def _held(entry: np.ndarray, exit_: np.ndarray, max_hold: int) -> tuple[np.ndarray, np.ndarray]:
    """One side's state machine "in from an entry until an exit", without a loop over bars.

    Returns (in position, timed out). An exit on the entry bar wins; with max_hold > 0 the position
    also ends `max_hold` bars after its latest entry.
    """
    last_entry, last_exit = _last_index(entry), _last_index(exit_)
    on = (last_entry >= 0) & (last_entry > last_exit)
    if max_hold <= 0:
        return on, np.zeros_like(on)
    fresh = np.arange(len(entry)) - last_entry < max_hold
    return on & fresh, on & ~fresh


class RsiReversion(Strategy):
    """RSI mean reversion: +1 after RSI recovers from oversold, -1 after it rolls over from overbought.

    Rule, on Wilder's RSI(`length`) of the close (TA-Lib: seeded with the mean gain/loss of the first
    `length` changes):
    - enter long (+1) on the bar RSI crosses up through `oversold` (previous RSI <= oversold < RSI);
      hold until RSI >= `overbought` (or >= 50 with `exit_mid`), then flat (0);
    - enter short (-1) on the bar RSI crosses down through `overbought` (previous >= overbought > RSI);
      hold until RSI <= `oversold` (or <= 50 with `exit_mid`), then flat;
    - an entry in the other direction replaces the open one; an entry and its exit on the same bar
      (RSI jumped past the target at once) leave the strategy flat;
    - `trend_filter` > 0: long only while close > SMA(trend_filter), short only while close < it;
      crossing the SMA against the position closes it;
    - `max_hold` > 0: a trade is closed `max_hold` bars after its latest entry signal (a time stop).
      It also bounds how far back the state reaches, so a trailing window of `memory` bars decides
      exactly as the full history does; with 0 a trade can stay open for years (hundreds of bars on
      SOX with 20/80 thresholds), beyond what a bounded live window sees.
    0 during warm-up (until RSI has a previous value to cross from, and the SMA exists).
    """

    name = "rsi"
    panels: ClassVar[dict[str, str]] = {"rsi": "rsi", "trend_sma": "price"}

    class Params(StrategyParams):
        length: int = Field(14, ge=2, description="RSI length, in bars (Wilder smoothing).")
        oversold: float = Field(30.0, gt=0, lt=100, description="Go long when RSI crosses up through this.")
        overbought: float = Field(
            70.0,
            gt=0,
            lt=100,
            validate_default=True,
            description="Go short when RSI crosses down through this (> oversold).",
        )
        trend_filter: int = Field(
            0, ge=0, description="SMA length: long only above it, short only below it; 0 = off."
        )
        exit_mid: bool = Field(
            False,
            validate_default=True,
            description="Exit at the RSI midline (50) instead of the opposite extreme.",
        )
        max_hold: int = Field(
            0, ge=0, description="Close a trade this many bars after its entry signal; 0 = no time limit."
        )

        @field_validator("overbought")
        @classmethod
        def _above_oversold(cls, overbought: float, info: ValidationInfo) -> float:
            oversold = info.data.get("oversold")
            if oversold is not None and overbought <= oversold:
                raise ValueError(f"overbought ({overbought:g}) must be greater than oversold ({oversold:g})")
            return overbought

        @field_validator("trend_filter")
        @classmethod
        def _trend_length(cls, trend_filter: int) -> int:
            if trend_filter == 1:
                raise ValueError("must be 0 (off) or an SMA length of at least 2")
            return trend_filter

        @field_validator("exit_mid")
        @classmethod
        def _mid_between(cls, exit_mid: bool, info: ValidationInfo) -> bool:
            lo, hi = info.data.get("oversold"), info.data.get("overbought")
            if exit_mid and lo is not None and hi is not None and not lo < MIDLINE < hi:
                raise ValueError(f"exit at the midline needs oversold < 50 < overbought (got {lo:g}, {hi:g})")
            return exit_mid

    params: Params

    @property
    def warmup(self) -> int:
        return max(self.params.length + 1, self.params.trend_filter - 1)

    @property
    def memory(self) -> int:
        # With max_hold the state reaches back at most max_hold bars, each needing a settled RSI.
        p = self.params
        return max(recursive_memory(p.length), p.trend_filter) + p.max_hold

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        close = bars["close"].astype(float)
        n = len(close)
        out = ta.rsi(close, length=p.length)
        rsi = np.full(n, np.nan) if out is None else out.to_numpy(dtype=float)
        prev = np.r_[np.nan, rsi[:-1]] if n else rsi

        with np.errstate(invalid="ignore"):
            long_entry = (prev <= p.oversold) & (rsi > p.oversold)
            short_entry = (prev >= p.overbought) & (rsi < p.overbought)
            long_target = MIDLINE if p.exit_mid else p.overbought
            short_target = MIDLINE if p.exit_mid else p.oversold
            long_exit = rsi >= long_target
            short_exit = rsi <= short_target
            values: dict[str, np.ndarray] = {"rsi": rsi}
            if p.trend_filter:
                out = ta.sma(close, length=p.trend_filter)
                sma = np.full(n, np.nan) if out is None else out.to_numpy(dtype=float)
                above, below = close.to_numpy() > sma, close.to_numpy() < sma
                long_entry &= above
                short_entry &= below
                long_exit |= ~above
                short_exit |= ~below
                values["trend_sma"] = sma

        # Each side is "entered until exited"; the other side's entry also exits it.
        long_on, long_late = _held(long_entry, long_exit | short_entry, p.max_hold)
        short_on, short_late = _held(short_entry, short_exit | long_entry, p.max_hold)
        direction = long_on.astype(int) - short_on.astype(int)

        long_r, short_r, late_r, none_r = self._reasons()
        reason = labels(
            [direction > 0, direction < 0, long_late | short_late], [long_r, short_r, late_r], default=none_r
        )
        return finalize(bars.index, direction, reason, self.warmup, **values)

    def _reasons(self) -> tuple[str, str, str, str]:
        """Reasons while long, while short, after a max_hold time-out, and with no trade open."""
        p = self.params
        r = f"RSI{p.length}"
        trend = f" above SMA{p.trend_filter}" if p.trend_filter else ""
        trend_s = f" below SMA{p.trend_filter}" if p.trend_filter else ""
        long_target = MIDLINE if p.exit_mid else p.overbought
        short_target = MIDLINE if p.exit_mid else p.oversold
        return (
            f"{r} crossed up through {p.oversold:g}{trend}: long until {r} >= {long_target:g}",
            f"{r} crossed down through {p.overbought:g}{trend_s}: short until {r} <= {short_target:g}",
            f"{r} reversion trade closed after max_hold={p.max_hold} bars",
            f"{r}: no open reversion trade",
        )

    def stepper(self) -> _RsiStepper:
        return _RsiStepper(self)


class _RsiStepper:
    """RsiReversion.signals one bar at a time. `_held` becomes four indices: the latest entry and
    the latest exit bar of each side (-1 for none), so a trade open for years stays open."""

    __slots__ = (
        "_hi",
        "_hold",
        "_lo",
        "_long_in",
        "_long_out",
        "_long_target",
        "_prev",
        "_reasons",
        "_rsi",
        "_short_in",
        "_short_out",
        "_short_target",
        "_sma",
        "_t",
        "_warmup",
    )

    def __init__(self, s: RsiReversion) -> None:
        p = s.params
        self._rsi = WilderRSI(p.length)
        self._sma = SMA(p.trend_filter) if p.trend_filter else None
        self._lo, self._hi, self._hold = p.oversold, p.overbought, p.max_hold
        self._long_target = MIDLINE if p.exit_mid else p.overbought
        self._short_target = MIDLINE if p.exit_mid else p.oversold
        self._reasons = s._reasons()
        self._warmup = s.warmup
        self._prev = NAN
        self._t = 0
        self._long_in = self._long_out = self._short_in = self._short_out = -1

    def update(self, o: float, h: float, low: float, c: float, v: float) -> tuple[int, str, dict[str, float]]:
        c = float(c)
        t = self._t
        self._t = t + 1
        rsi = self._rsi.update(c)
        prev, self._prev = self._prev, rsi
        lo, hi = self._lo, self._hi
        long_entry = prev <= lo and rsi > lo  # comparisons with NaN are False, as in numpy
        short_entry = prev >= hi and rsi < hi
        long_exit = rsi >= self._long_target
        short_exit = rsi <= self._short_target
        values = {"rsi": rsi}
        if self._sma is not None:
            sma = self._sma.update(c)
            above, below = c > sma, c < sma
            long_entry = long_entry and above
            short_entry = short_entry and below
            long_exit = long_exit or not above
            short_exit = short_exit or not below
            values["trend_sma"] = sma
        # Each side is "entered until exited"; the other side's entry also exits it.
        if long_entry:
            self._long_in = t
        if long_exit or short_entry:
            self._long_out = t
        if short_entry:
            self._short_in = t
        if short_exit or long_entry:
            self._short_out = t
        long_on = self._long_in >= 0 and self._long_in > self._long_out
        short_on = self._short_in >= 0 and self._short_in > self._short_out
        late = False
        if self._hold > 0:
            long_fresh = t - self._long_in < self._hold
            short_fresh = t - self._short_in < self._hold
            late = (long_on and not long_fresh) or (short_on and not short_fresh)
            long_on = long_on and long_fresh
            short_on = short_on and short_fresh
        if t < self._warmup:
            return 0, WARMUP_REASON, values
        long_r, short_r, late_r, none_r = self._reasons
        if long_on and not short_on:
            return 1, long_r, values
        if short_on and not long_on:
            return -1, short_r, values
        return 0, late_r if late else none_r, values
