"""Moving-average crossover: long while the fast average is above the slow one, short while below."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from bot.signals import ta
from bot.stepping import EMA, SMA
from bot.strategy import WARMUP_REASON, Strategy, StrategyParams, finalize, labels, recursive_memory

# Averages closer than this (relative) count as equal: TA-Lib's running-sum SMA carries float noise
# of ~1e-13, which must not flip the direction between a trailing window and the full history.
_EQUAL_RTOL = 1e-10


class MaCross(Strategy):
    """Moving-average crossover: +1 while fast MA > slow MA, -1 while fast MA < slow MA.

    Rule, per bar on the close: direction = +1 while the fast average is above the slow one,
    -1 while it is below, 0 when they are equal (within 1e-10 relative) and during warm-up
    (until the slow average exists). `kind` picks simple ("sma") or exponential ("ema", seeded
    with the SMA of its first `length` closes like TA-Lib). Reason reads e.g. "SMA20 > SMA50".
    """

    name = "ma_cross"
    panels: ClassVar[dict[str, str]] = {"ma_fast": "price", "ma_slow": "price"}

    class Params(StrategyParams):
        fast: int = Field(
            20, ge=1, description="Length of the fast moving average, in bars (1 = the close itself)."
        )
        slow: int = Field(
            50, ge=2, validate_default=True, description="Length of the slow moving average (> fast)."
        )
        kind: Literal["sma", "ema"] = Field("sma", description="Average type: 'sma' or 'ema'.")

        @field_validator("slow")
        @classmethod
        def _slow_above_fast(cls, slow: int, info: ValidationInfo) -> int:
            fast = info.data.get("fast")
            if fast is not None and slow <= fast:
                raise ValueError(f"slow ({slow}) must be greater than fast ({fast})")
            return slow

    params: Params

    @property
    def warmup(self) -> int:
        return self.params.slow - 1

    @property
    def memory(self) -> int:
        if self.params.kind == "ema":
            return recursive_memory(self.params.slow, alpha=2.0 / (self.params.slow + 1))
        return self.params.slow

    def _reasons(self) -> tuple[str, str, str]:
        """Reasons for fast above, below and equal to slow, e.g. "SMA20 > SMA50"."""
        p = self.params
        label = p.kind.upper()
        f, s = f"{label}{p.fast}", f"{label}{p.slow}"
        return f"{f} > {s}", f"{f} < {s}", f"{f} = {s}"

    def _ma(self, close: pd.Series, length: int) -> np.ndarray:
        if length == 1:  # a 1-bar average is the close (pandas-ta's own 1-bar SMA fails)
            return close.to_numpy(dtype=float)
        fn = ta.ema if self.params.kind == "ema" else ta.sma
        out = fn(close, length=length)
        return np.full(len(close), np.nan) if out is None else out.to_numpy(dtype=float)

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        close = bars["close"].astype(float)
        fast = self._ma(close, p.fast)
        slow = self._ma(close, p.slow)
        with np.errstate(invalid="ignore"):
            equal = np.abs(fast - slow) <= _EQUAL_RTOL * np.abs(slow)
            direction = np.where(equal, 0, np.sign(fast - slow))
        above, below, equal_reason = self._reasons()
        reason = labels([direction > 0, direction < 0], [above, below], default=equal_reason)
        return finalize(bars.index, direction, reason, self.warmup, ma_fast=fast, ma_slow=slow)

    def stepper(self) -> _MaCrossStepper:
        return _MaCrossStepper(self)


class _MaCrossStepper:
    """MaCross.signals one bar at a time: both averages as running TA-Lib-exact indicators."""

    __slots__ = ("_fast", "_reasons", "_slow", "_t", "_warmup")

    def __init__(self, s: MaCross) -> None:
        p = s.params
        ma = EMA if p.kind == "ema" else SMA
        self._fast = ma(p.fast) if p.fast > 1 else None  # a 1-bar average is the close
        self._slow = ma(p.slow)
        self._reasons = s._reasons()
        self._warmup = s.warmup
        self._t = 0

    def update(self, o: float, h: float, low: float, c: float, v: float) -> tuple[int, str, dict[str, float]]:
        c = float(c)
        fast = c if self._fast is None else self._fast.update(c)
        slow = self._slow.update(c)
        t = self._t
        self._t = t + 1
        values = {"ma_fast": fast, "ma_slow": slow}
        if t < self._warmup:
            return 0, WARMUP_REASON, values
        above, below, equal = self._reasons
        diff = fast - slow
        if abs(diff) <= _EQUAL_RTOL * abs(slow):
            return 0, equal, values
        if diff > 0:
            return 1, above, values
        if diff < 0:
            return -1, below, values
        return 0, equal, values  # NaN: an average not there yet
